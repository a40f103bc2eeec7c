
/*
 * FishChat for nginx: the msg server role, 1:1 messages.
 *
 * SEND_MESSAGE_P2P and P2P_ACK of a session, and the same message from
 * outside a session (ngx_stream_fishchat_msg_route(), the router's
 * ROUTE_MESSAGE_P2P): one script stores the message in the recipient's
 * inbox and publishes it to the recipient's worker.
 *
 * The P2P_ACKs a worker reads in one pass of its event loop go to Redis
 * as one script call, at the end of the pass (a posted event), up to
 * NGX_STREAM_FISHCHAT_MSG_ACKS at a time.  A session's acks go before
 * any other frame of the session is handled, and before it closes, so
 * that Redis sees a session's commands in the order the client sent them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_stream_fishchat_msg_private.h"


/* the acks of a script call at the most */
#define NGX_STREAM_FISHCHAT_MSG_ACKS  64

/* the room for the two inbox keys of an ack, less the prefix */
#define NGX_STREAM_FISHCHAT_MSG_ACK_KEYS                                      \
    (2 * (NGX_FISHCHAT_ID_MAX + sizeof("inbox:{}:m")))


typedef struct {
    ngx_stream_fishchat_msg_session_t  *sess;
    size_t                              len;
    u_char                              id[NGX_FISHCHAT_ID_MAX];
    u_char                              uuid[NGX_FISHCHAT_UUID_LEN];
} ngx_stream_fishchat_msg_ack_t;


static ngx_int_t ngx_stream_fishchat_msg_p2p_args(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_msg_stored(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_routed(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_acks_handler(ngx_event_t *ev);
static void ngx_stream_fishchat_msg_acked(redisReply *reply, void *data);


static ngx_stream_fishchat_msg_ack_t
    ngx_stream_fishchat_msg_acks[NGX_STREAM_FISHCHAT_MSG_ACKS];
static ngx_uint_t   ngx_stream_fishchat_msg_nacks;
static ngx_event_t  ngx_stream_fishchat_msg_acks_event;
static u_char      *ngx_stream_fishchat_msg_acks_keys;


static ngx_str_t  ngx_stream_fishchat_msg_resp_p2p =
    ngx_string("RESP_MESSAGE_P2P");


/*
 * What every message a client sends must pass: its reference, then the
 * token bucket of fishchat_msg_rate.  NGX_OK: it may pass; NGX_DECLINED:
 * refused, the session goes on; NGX_ERROR: refused and closed.
 */

ngx_int_t
ngx_stream_fishchat_msg_send_check(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *ref)
{
    ngx_int_t                            rc;
    ngx_msec_int_t                       ms;
    ngx_stream_fishchat_msg_srv_conf_t  *mscf;

    mscf = sess->conf;

    if (ref && ref->len > NGX_FISHCHAT_ID_MAX) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "reference over 128 bytes");
    }

    if (mscf->rate == 0) {
        return NGX_OK;
    }

    ms = (ngx_msec_int_t) (ngx_current_msec - sess->rate_last);
    sess->rate_last = ngx_current_msec;

    if (ms > 0) {
        sess->rate_tokens += (ngx_uint_t) ms * mscf->rate;

        if (sess->rate_tokens > mscf->burst * 1000) {
            sess->rate_tokens = mscf->burst * 1000;
        }
    }

    if (sess->rate_tokens >= 1000) {
        sess->rate_tokens -= 1000;
        sess->rate_strikes = 0;
        return NGX_OK;
    }

    rc = ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_RATE_LIMITED,
                                        !sess->optin
                                        || ++sess->rate_strikes > mscf->burst,
                                        "over %ui messages a second",
                                        mscf->rate);

    return (rc == NGX_OK) ? NGX_DECLINED : rc;
}


ngx_int_t
ngx_stream_fishchat_msg_p2p(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    ngx_int_t  rc;
    u_char     uuid[NGX_FISHCHAT_UUID_LEN];

    rc = ngx_stream_fishchat_msg_p2p_args(sess, m);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_stream_fishchat_msg_send_check(sess,
                                            m->nargs == 4 ? &m->args[3]
                                                          : NULL);
    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? NGX_OK : rc;
    }

    ngx_fishchat_uuid(uuid);

    return ngx_stream_fishchat_msg_p2p_send(sess, &m->args[0], &m->args[1],
                                            &m->args[2],
                                            m->nargs == 4 ? &m->args[3]
                                                          : NULL,
                                            uuid);
}


/*
 * A checked 1:1 message of the session to "to" under "uuid": stored and
 * delivered as "from" (the logged-in id, or "{file}" for a file message,
 * ngx_stream_fishchat_msg_file_msg.c); "ref" (or NULL) is answered with
 * ACCEPTED.  NGX_OK while the session goes on.
 */

ngx_int_t
ngx_stream_fishchat_msg_p2p_send(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *to, ngx_str_t *text, ngx_str_t *from, ngx_str_t *ref,
    u_char *uuid)
{
    u_char                              *p;
    size_t                               size;
    ngx_str_t                            args[NGX_FISHCHAT_SEND_ARGS];
    ngx_str_t                            dargs[3], frame;
    ngx_stream_fishchat_msg_call_t      *call;
    ngx_stream_fishchat_msg_worker_t    *w;
    u_char                               num[NGX_FISHCHAT_SEND_NUM];

    w = ngx_stream_fishchat_msg_worker;

    /*
     * the delivery frame, made once: stored, published and written;
     * the uuid is made first, as the size counts the bytes to escape
     */

    dargs[0] = *text;
    dargs[1] = *from;
    dargs[2].data = uuid;
    dargs[2].len = NGX_FISHCHAT_UUID_LEN;

    size = ngx_fishchat_frame_size(&ngx_stream_fishchat_msg_resp_p2p, dargs,
                                   3);

    /* to and ref, then the frame */

    call = ngx_stream_fishchat_msg_call_str(sess, to, ref, size, &p);
    if (call == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(call->uuid, uuid, NGX_FISHCHAT_UUID_LEN);
    dargs[2].data = call->uuid;

    frame.data = p;
    p = ngx_fishchat_frame_write(frame.data,
                                 &ngx_stream_fishchat_msg_resp_p2p, dargs, 3);
    frame.len = p - frame.data;

    call->frame = frame;

    p = w->scratch;

    ngx_fishchat_send_args(args, &p, w->fcf, &call->to, &dargs[2], &frame,
                           &sess->node.str, &w->channel,
                           sess->conf->inbox_max, sess->conf->inbox_ttl, num);

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->send,
                                             ngx_stream_fishchat_msg_stored,
                                             NGX_FISHCHAT_SEND_KEYS,
                                             NGX_FISHCHAT_SEND_ARGS, args,
                                             "message not accepted");
}


/* SEND_MESSAGE_P2P <to> <msg> <from> [<ref>]: NGX_OK, or refused */

static ngx_int_t
ngx_stream_fishchat_msg_p2p_args(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    if (!sess->logged_in) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                              1, "SEND_MESSAGE_P2P before "
                                              "login");
    }

    if (m->nargs != 3 && m->nargs != 4) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "SEND_MESSAGE_P2P takes to, "
                                              "message, from and an "
                                              "optional reference");
    }

    if (ngx_fishchat_valid_id(&m->args[0]) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "invalid recipient id");
    }

    if (m->args[2].len != sess->node.str.len
        || ngx_strncmp(m->args[2].data, sess->node.str.data,
                       m->args[2].len) != 0)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_FORBIDDEN,
                                              1, "\"from\" is not the "
                                              "logged-in id");
    }

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_stored(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                            args[2];
    ngx_stream_fishchat_msg_session_t   *sess, *to;

    sess = call->sess;

    /*
     * Either write below may close a session, the sender's included (a
     * message to oneself over the send buffer), and a closed session
     * frees its calls: the call is taken off the session's list first and
     * freed last, and the sender is not looked at after its reply.  A
     * sender that left meanwhile gets nothing, but a recipient here still
     * gets the message.
     */

    if (sess) {
        ngx_queue_remove(&call->queue);

        if (sess->eof) {
            /* the client's input ended: all may be answered after this */
            ngx_post_event(sess->c->write, &ngx_posted_events);
        }
    }

    if (reply == NULL
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_STATUS))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR,
                          sess ? sess->c->log : ngx_cycle->log, 0,
                          "fishchat msg: send script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        ngx_free(call);

        if (sess == NULL) {
            return;
        }

        (void) ngx_stream_fishchat_msg_not_stored(sess, reply);
        return;
    }

    if (reply->len == 4 && ngx_strncmp(reply->str, "FULL", 4) == 0) {
        ngx_free(call);

        if (sess) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                                  NGX_FISHCHAT_ERR_INBOX_FULL,
                                                  !sess->optin,
                                                  "the inbox of the "
                                                  "recipient is full");
        }

        return;
    }

    if (reply->len == 8 && ngx_strncmp(reply->str, "CONFLICT", 8) == 0) {
        ngx_free(call);

        if (sess) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                               NGX_FISHCHAT_ERR_DUPLICATE_UUID,
                                               !sess->optin,
                                               "another message has this "
                                               "uuid");
        }

        return;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "fishchat msg: message %*s to \"%V\": %*s",
                   (size_t) NGX_FISHCHAT_UUID_LEN, call->uuid, &call->to,
                   (size_t) reply->len, reply->str);

    call->counters->messages++;

    if (sess && sess->optin) {
        args[0] = call->ref;
        args[1].data = call->uuid;
        args[1].len = NGX_FISHCHAT_UUID_LEN;

        (void) ngx_stream_fishchat_msg_accepted(sess, args);
    }

    if (reply->len == 5 && ngx_strncmp(reply->str, "LOCAL", 5) == 0) {
        to = ngx_stream_fishchat_msg_find(&call->to);

        if (to) {
            (void) ngx_stream_fishchat_msg_deliver(to, call->frame.data,
                                                   call->frame.len);
        }
    }

    ngx_free(call);
}


/* a 1:1 message from outside a session: the router's ROUTE_MESSAGE_P2P */

typedef struct {
    ngx_stream_fishchat_msg_routed_pt   handler;
    void                               *data;
    ngx_log_t                          *log;
    ngx_str_t                           to;
    ngx_str_t                           frame;
    u_char                              buf[1];
} ngx_stream_fishchat_msg_route_t;


ngx_uint_t
ngx_stream_fishchat_msg_servers(ngx_cycle_t *cycle)
{
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;

    mmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                ngx_stream_fishchat_msg_module);

    return mmcf ? mmcf->servers.nelts : 0;
}


ngx_uint_t
ngx_stream_fishchat_msg_ready(void)
{
    return ngx_stream_fishchat_msg_worker != NULL;
}


ngx_int_t
ngx_stream_fishchat_msg_route(ngx_str_t *to, ngx_str_t *msg, ngx_str_t *from,
    u_char *uuid, ngx_stream_fishchat_msg_routed_pt handler, void *data,
    ngx_log_t *log)
{
    u_char                               *p;
    size_t                                size;
    ngx_str_t                             args[NGX_FISHCHAT_SEND_ARGS];
    ngx_str_t                             dargs[3];
    ngx_fishchat_redis_req_t             *req;
    ngx_stream_fishchat_msg_route_t      *r;
    ngx_stream_fishchat_msg_worker_t     *w;
    ngx_stream_fishchat_msg_srv_conf_t  **mscf;
    u_char                                num[NGX_FISHCHAT_SEND_NUM];

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL) {
        return NGX_ERROR;
    }

    /* the inbox limits of the first msg server of this node */
    mscf = w->mmcf->servers.elts;

    dargs[0] = *msg;
    dargs[1] = *from;
    dargs[2].data = uuid;
    dargs[2].len = NGX_FISHCHAT_UUID_LEN;

    size = ngx_fishchat_frame_size(&ngx_stream_fishchat_msg_resp_p2p, dargs,
                                   3);

    r = ngx_alloc(sizeof(ngx_stream_fishchat_msg_route_t) + size + to->len,
                  log);
    if (r == NULL) {
        return NGX_ERROR;
    }

    r->handler = handler;
    r->data = data;
    r->log = log;

    r->frame.data = r->buf;
    p = ngx_fishchat_frame_write(r->buf, &ngx_stream_fishchat_msg_resp_p2p,
                                 dargs, 3);
    r->frame.len = p - r->buf;

    r->to.data = p;
    r->to.len = to->len;
    ngx_memcpy(p, to->data, to->len);

    p = w->scratch;

    ngx_fishchat_send_args(args, &p, w->fcf, &r->to, &dargs[2], &r->frame,
                           from, &w->channel, mscf[0]->inbox_max,
                           mscf[0]->inbox_ttl, num);

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), w->mmcf->send,
                                  ngx_stream_fishchat_msg_routed, r,
                                  NGX_FISHCHAT_SEND_KEYS,
                                  NGX_FISHCHAT_SEND_ARGS, args);
    if (req == NULL) {
        ngx_free(r);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_routed(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_route_t *r = data;

    ngx_fishchat_err_e                   err;
    ngx_stream_fishchat_msg_session_t   *to;

    if (reply == NULL
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_STATUS))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->log, 0,
                          "fishchat msg: send script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        err = (reply == NULL && ngx_fishchat_redis_unknown())
              ? NGX_FISHCHAT_ERR_NOT_CONFIRMED : NGX_FISHCHAT_ERR_REDIS;

        goto failed;
    }

    if (reply->len == 4 && ngx_strncmp(reply->str, "FULL", 4) == 0) {
        err = NGX_FISHCHAT_ERR_INBOX_FULL;
        goto failed;
    }

    if (reply->len == 8 && ngx_strncmp(reply->str, "CONFLICT", 8) == 0) {
        err = NGX_FISHCHAT_ERR_DUPLICATE_UUID;
        goto failed;
    }

    /* DUP: a retry of a message the inbox holds, nothing more to do */

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, r->log, 0,
                   "fishchat msg: routed message to \"%V\": %*s",
                   &r->to, (size_t) reply->len, reply->str);

    if (reply->len == 5 && ngx_strncmp(reply->str, "LOCAL", 5) == 0) {
        to = ngx_stream_fishchat_msg_find(&r->to);

        if (to) {
            (void) ngx_stream_fishchat_msg_deliver(to, r->frame.data,
                                                   r->frame.len);
        }
    }

    r->handler(NGX_OK, 0, r->data);
    ngx_free(r);
    return;

failed:

    r->handler(NGX_ERROR, err, r->data);
    ngx_free(r);
}


ngx_int_t
ngx_stream_fishchat_msg_ack(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    ngx_stream_fishchat_msg_ack_t  *ack;

    if (!sess->logged_in) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                              1, "P2P_ACK before login");
    }

    if (m->nargs != 2
        || m->args[1].len != NGX_FISHCHAT_UUID_LEN)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "P2P_ACK takes the id and "
                                              "a uuid");
    }

    if (m->args[0].len != sess->node.str.len
        || ngx_strncmp(m->args[0].data, sess->node.str.data,
                       m->args[0].len) != 0)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_FORBIDDEN,
                                              1, "P2P_ACK for another id");
    }

    ack = &ngx_stream_fishchat_msg_acks[ngx_stream_fishchat_msg_nacks++];

    ack->sess = sess;
    ack->len = sess->node.str.len;
    ngx_memcpy(ack->id, sess->node.str.data, ack->len);
    ngx_memcpy(ack->uuid, m->args[1].data, NGX_FISHCHAT_UUID_LEN);

    sess->acks_queued = 1;

    if (ngx_stream_fishchat_msg_nacks == NGX_STREAM_FISHCHAT_MSG_ACKS) {
        ngx_stream_fishchat_msg_acks_flush();
        return NGX_OK;
    }

    ngx_post_event(&ngx_stream_fishchat_msg_acks_event, &ngx_posted_events);

    return NGX_OK;
}


/* the acks' event and the room for their keys, once a worker */

ngx_int_t
ngx_stream_fishchat_msg_acks_init(ngx_cycle_t *cycle,
    ngx_fishchat_conf_t *fcf)
{
    size_t  size;

    size = NGX_STREAM_FISHCHAT_MSG_ACKS
           * (2 * fcf->redis_prefix.len + NGX_STREAM_FISHCHAT_MSG_ACK_KEYS);

    ngx_stream_fishchat_msg_acks_keys = ngx_palloc(cycle->pool, size);
    if (ngx_stream_fishchat_msg_acks_keys == NULL) {
        return NGX_ERROR;
    }

    ngx_fishchat_event_init(&ngx_stream_fishchat_msg_acks_event,
                            ngx_stream_fishchat_msg_acks_handler, NULL,
                            cycle->log);

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_acks_handler(ngx_event_t *ev)
{
    ngx_stream_fishchat_msg_acks_flush();
}


/*
 * The acks read so far go to Redis: not lost if Redis is unavailable, the
 * messages come again at the next login
 */

void
ngx_stream_fishchat_msg_acks_flush(void)
{
    u_char                            *p;
    ngx_str_t                          id;
    ngx_uint_t                         i, n;
    ngx_fishchat_redis_req_t          *req;
    ngx_stream_fishchat_msg_ack_t     *ack;
    ngx_stream_fishchat_msg_worker_t  *w;

    static ngx_str_t  args[3 * NGX_STREAM_FISHCHAT_MSG_ACKS];

    n = ngx_stream_fishchat_msg_nacks;

    if (n == 0) {
        return;
    }

    ngx_stream_fishchat_msg_nacks = 0;

    if (ngx_stream_fishchat_msg_acks_event.posted) {
        ngx_delete_posted_event(&ngx_stream_fishchat_msg_acks_event);
    }

    for (i = 0; i < n; i++) {
        ngx_stream_fishchat_msg_acks[i].sess->acks_queued = 0;
    }

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL) {
        /* the worker is exiting: the messages come again at the next login */
        return;
    }

    p = ngx_stream_fishchat_msg_acks_keys;

    for (i = 0; i < n; i++) {
        ack = &ngx_stream_fishchat_msg_acks[i];

        id.data = ack->id;
        id.len = ack->len;

        args[2 * i] = ngx_fishchat_key(&p, "inbox:", &id, "");
        args[2 * i + 1] = ngx_fishchat_key(&p, "inbox:", &id, ":m");
        args[2 * n + i].data = ack->uuid;
        args[2 * n + i].len = NGX_FISHCHAT_UUID_LEN;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "fishchat msg: %ui acks to Redis", n);

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), w->mmcf->ack,
                                  ngx_stream_fishchat_msg_acked,
                                  (void *) (uintptr_t) n, 2 * n, 3 * n, args);

    if (req == NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: %ui ack(s) not recorded: Redis is "
                      "unavailable", n);
    }
}


static void
ngx_stream_fishchat_msg_acked(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: %ui ack(s) not recorded: %s",
                      (ngx_uint_t) (uintptr_t) data,
                      reply ? "script failed" : "Redis is unavailable");
    }
}
