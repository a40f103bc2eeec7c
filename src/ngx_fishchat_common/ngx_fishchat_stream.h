
/*
 * FishChat for nginx: what the stream roles (gateway, msg, router) share.
 */


#ifndef _NGX_FISHCHAT_STREAM_H_INCLUDED_
#define _NGX_FISHCHAT_STREAM_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"


/* the context of "module" in the session of a connection's event */

#define ngx_fishchat_stream_ctx(ev, module)                                   \
    ngx_stream_get_module_ctx(                                                \
        (ngx_stream_session_t *) ((ngx_connection_t *) (ev)->data)->data,     \
        module)


void *ngx_fishchat_stream_init(ngx_stream_session_t *s, ngx_module_t *module,
    size_t size, ngx_pool_cleanup_pt cleanup, ngx_uint_t counters,
    ngx_fishchat_counters_t **cp);
void ngx_fishchat_stream_start(ngx_connection_t *c,
    ngx_event_handler_pt read, ngx_event_handler_pt write,
    ngx_msec_t timeout);
char *ngx_fishchat_stream_role(ngx_conf_t *cf, char *role, ngx_flag_t *enabled,
    ngx_uint_t *counters, ngx_stream_content_handler_pt handler);
ngx_int_t ngx_fishchat_stream_log_init(ngx_conf_t *cf);
ngx_int_t ngx_fishchat_stream_log(ngx_stream_session_t *s);


#endif /* _NGX_FISHCHAT_STREAM_H_INCLUDED_ */
