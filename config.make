# FishChat for nginx: make rules of the suite, sourced by nginx's auto/make.
#
# The monitor's dashboard (src/ngx_fishchat_monitor/dashboard.html) is
# compiled into the monitor module as a C string: made again, and the
# module recompiled, whenever the page changes.

if [ "$HTTP" != NO ]; then

fc_dash_src=$ngx_addon_dir/src/ngx_fishchat_monitor/dashboard.html
fc_dash_sh=$ngx_addon_dir/src/ngx_fishchat_monitor/embed.sh
fc_dash_h=$NGX_OBJS/ngx_http_fishchat_monitor_dashboard.h
fc_dash_o=$NGX_OBJS/addon/ngx_fishchat_monitor/ngx_http_fishchat_monitor_module.o

cat << END >> $NGX_MAKEFILE

$fc_dash_o:	$fc_dash_h

$fc_dash_h:	$fc_dash_src $fc_dash_sh
	sh $fc_dash_sh $fc_dash_src $fc_dash_h

END

fi
