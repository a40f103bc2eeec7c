
/*
 * FishChat for nginx: what the msg server role offers other modules (the
 * router): whether it runs here, and a 1:1 message from outside a session.
 * The system channels and the keyspace are the core's (ngx_fishchat.h).
 */


#ifndef _NGX_STREAM_FISHCHAT_MSG_H_INCLUDED_
#define _NGX_STREAM_FISHCHAT_MSG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


/*
 * "handler" of ngx_stream_fishchat_msg_route(): NGX_OK once stored, or
 * NGX_ERROR and the error (INBOX_FULL, DUPLICATE_UUID, REDIS,
 * NOT_CONFIRMED).
 */
typedef void (*ngx_stream_fishchat_msg_routed_pt)(ngx_int_t rc,
    ngx_fishchat_err_e err, void *data);


/* the fishchat_msg servers of the stream block of "cycle" */
ngx_uint_t ngx_stream_fishchat_msg_servers(ngx_cycle_t *cycle);

/* this worker serves msg sessions (its Redis link and channel are up) */
ngx_uint_t ngx_stream_fishchat_msg_ready(void);

/*
 * A 1:1 message from outside a session (the router's ROUTE_MESSAGE_P2P):
 * stored and delivered as SEND_MESSAGE_P2P would, under "uuid"
 * (NGX_FISHCHAT_UUID_LEN bytes).  "handler" is called when this returns
 * NGX_OK; NGX_DECLINED: Redis is unavailable, NGX_ERROR: no msg server
 * here or no memory.
 */
ngx_int_t ngx_stream_fishchat_msg_route(ngx_str_t *to, ngx_str_t *msg,
    ngx_str_t *from, u_char *uuid, ngx_stream_fishchat_msg_routed_pt handler,
    void *data, ngx_log_t *log);


#endif /* _NGX_STREAM_FISHCHAT_MSG_H_INCLUDED_ */
