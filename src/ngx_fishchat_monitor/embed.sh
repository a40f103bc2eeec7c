#!/bin/sh
# FishChat for nginx: makes the monitor's dashboard page a C string.
#
#   embed.sh dashboard.html ngx_http_fishchat_monitor_dashboard.h
#
# Run by make (the rule is in config.make): the page is rebuilt into the
# monitor module whenever it changes.  Backslashes, quotes and "?" (no
# trigraphs) are escaped, tabs written as \t; the page is meant to be ASCII.

set -e

src=$1
out=$2
tab=$(printf '\t')

{
    echo "/* made from $(basename "$src") by embed.sh: do not edit */"
    echo
    echo "static u_char  ngx_http_fishchat_monitor_dashboard[] ="
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' \
        -e "s/$tab/\\\\t/g" -e 's/^/    "/' -e 's/$/\\n"/' "$src"
    echo "    ;"
} > "$out.tmp"

mv "$out.tmp" "$out"
