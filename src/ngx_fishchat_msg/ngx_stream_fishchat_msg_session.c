
/*
 * FishChat for nginx: the msg server role, its sessions.
 *
 * A session from accept to close: reading and decoding frames, HELLO and
 * login (presence and the inbox, page by page), keepalive, what is written
 * to the client and the refusals; the worker's channel, which delivers
 * frames to the sessions of this worker and closes those logged in
 * elsewhere.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_stream.h"
#include "ngx_stream_fishchat_msg_private.h"


typedef ngx_int_t (*ngx_stream_fishchat_msg_command_pt)(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);

typedef struct {
    ngx_str_t                            name;
    ngx_stream_fishchat_msg_command_pt   handler;
} ngx_stream_fishchat_msg_optin_t;


static void ngx_stream_fishchat_msg_cleanup(void *data);
static void ngx_stream_fishchat_msg_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_fishchat_msg_may_read(
    ngx_stream_fishchat_msg_session_t *sess, ngx_event_t *rev);
static ngx_int_t ngx_stream_fishchat_msg_parse(
    ngx_stream_fishchat_msg_session_t *sess, ngx_buf_t *b);
static ngx_int_t ngx_stream_fishchat_msg_block_reading(ngx_event_t *rev);
static ngx_int_t ngx_stream_fishchat_msg_frame(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *frame);
static ngx_int_t ngx_stream_fishchat_msg_hello(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_msg_login(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_msg_presence(
    ngx_stream_fishchat_msg_session_t *sess, ngx_uint_t resync,
    ngx_str_t *iat);
static void ngx_stream_fishchat_msg_logged_in(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_msg_after_login(
    ngx_stream_fishchat_msg_session_t *sess);
static ngx_int_t ngx_stream_fishchat_msg_inbox_page(
    ngx_stream_fishchat_msg_session_t *sess, redisReply *reply);
static void ngx_stream_fishchat_msg_inbox_fetch(
    ngx_stream_fishchat_msg_session_t *sess);
static void ngx_stream_fishchat_msg_inbox_fetched(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_msg_ping(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_msg_frame_out(
    ngx_stream_fishchat_msg_session_t *sess, char *cmd, ngx_str_t *args,
    ngx_uint_t nargs, ngx_uint_t pass);
static ngx_int_t ngx_stream_fishchat_msg_write_pass(
    ngx_stream_fishchat_msg_session_t *sess, u_char *data, size_t len);
static void ngx_stream_fishchat_msg_write_handler(ngx_event_t *wev);
static ngx_stream_fishchat_msg_optin_t *ngx_stream_fishchat_msg_optin_cmd(
    ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_msg_optin_check(
    ngx_stream_fishchat_msg_session_t *sess, char *cmd);


/*
 * The commands of the opt-in protocol (after HELLO): unknown to a seed
 * client, refused before login; checked here, before their handlers run
 */

static ngx_stream_fishchat_msg_optin_t  ngx_stream_fishchat_msg_optins[] = {
    { ngx_string("REFRESH_TOKEN"), ngx_stream_fishchat_msg_refresh },
    { ngx_string("FILE_SLOT"), ngx_stream_fishchat_msg_file_slot },
    { ngx_string("SEND_FILE_P2P"), ngx_stream_fishchat_msg_file_send },
    { ngx_string("SEND_FILE_TOPIC"), ngx_stream_fishchat_msg_file_send },
    { ngx_string("FILE_URL"), ngx_stream_fishchat_msg_file_url },
    { ngx_string("FILE_DELETE"), ngx_stream_fishchat_msg_file_delete },
    { ngx_string("MEDIA_PUBLISH"), ngx_stream_fishchat_msg_media_publish },
    { ngx_string("MEDIA_PLAY"), ngx_stream_fishchat_msg_media_play },
    { ngx_null_string, NULL }
};


/* sessions */

void
ngx_stream_fishchat_msg_handler(ngx_stream_session_t *s)
{
    ngx_connection_t                    *c;
    ngx_fishchat_counters_t             *counters;
    ngx_stream_fishchat_msg_session_t   *sess;
    ngx_stream_fishchat_msg_srv_conf_t  *mscf;

    c = s->connection;
    c->log->action = "serving fishchat session";

    mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_fishchat_msg_module);

    if (ngx_stream_fishchat_msg_worker == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    sess = ngx_fishchat_stream_init(s, &ngx_stream_fishchat_msg_module,
                                    sizeof(ngx_stream_fishchat_msg_session_t),
                                    ngx_stream_fishchat_msg_cleanup,
                                    mscf->counters, &counters);
    if (sess == NULL) {
        return;
    }

    sess->s = s;
    sess->c = c;
    sess->conf = mscf;
    sess->counters = counters;
    sess->sid = ++ngx_stream_fishchat_msg_worker->serial;
    sess->rate_tokens = mscf->burst * 1000;
    sess->rate_last = ngx_current_msec;

    ngx_queue_init(&sess->reqs);
    ngx_queue_init(&sess->topics);
    ngx_fishchat_parser_init(&sess->parser,
                             ngx_stream_fishchat_msg_worker->fcf->frame_max);

    ngx_fishchat_stream_start(c, ngx_stream_fishchat_msg_read_handler,
                              ngx_stream_fishchat_msg_write_handler,
                              mscf->keepalive);
}


/* everything a session holds is let go here, whatever closed it */

static void
ngx_stream_fishchat_msg_cleanup(void *data)
{
    ngx_stream_fishchat_msg_session_t *sess = data;

    ngx_str_t                            args[5], key;
    ngx_queue_t                         *q;
    ngx_stream_fishchat_msg_call_t      *call;
    ngx_stream_fishchat_msg_worker_t    *w;
    u_char                              *p, sid[NGX_INT64_LEN];

    w = ngx_stream_fishchat_msg_worker;

    sess->closed = 1;
    sess->counters->active--;

    if (sess->is_stalled) {
        ngx_queue_remove(&sess->stalled);
        sess->is_stalled = 0;
    }

    if (sess->acks_queued) {
        ngx_stream_fishchat_msg_acks_flush();
    }

    ngx_stream_fishchat_msg_auth_cleanup(sess);

    /* before the logout: positions are saved while presence is ours */
    ngx_stream_fishchat_topic_cleanup(sess);

    while (!ngx_queue_empty(&sess->reqs)) {
        q = ngx_queue_head(&sess->reqs);
        call = ngx_queue_data(q, ngx_stream_fishchat_msg_call_t, queue);

        if (call->req && ngx_fishchat_redis_link()) {

            if (call->frame.len || call->file.len) {
                /*
                 * a message on its way to Redis is stored whatever becomes
                 * of its sender, and must reach a recipient on this worker
                 * (a file message: its file must know of it)
                 */
                ngx_queue_remove(q);
                call->sess = NULL;
                continue;
            }

            ngx_fishchat_redis_cancel(call->req);
        }

        ngx_stream_fishchat_msg_call_done(call);
    }

    if (sess->in_table && w) {
        ngx_rbtree_delete(&w->sessions, &sess->node.node);
        sess->in_table = 0;

        if (sess->logged_in) {
            sess->counters->sessions--;
        }

        /* presence goes, unless a newer login took it over meanwhile */

        p = w->scratch;

        key = ngx_fishchat_key(&p, "client:", &sess->node.str, "");
        args[0] = key;
        args[1].data = sid;
        args[1].len = ngx_sprintf(sid, "%uL", sess->sid) - sid;
        args[2] = w->fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];
        ngx_str_set(&args[3], "LOGOUT");
        args[4] = sess->node.str;

        if (sess->kicked) {
            ngx_str_set(&args[3], "KICKED");
        }

        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                       "fishchat msg: \"%V\" logs out (%V)",
                       &sess->node.str, &args[3]);

        (void) ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                       w->mmcf->logout, NULL, NULL, 1, 5,
                                       args);
    }

    ngx_fishchat_out_free(&sess->out);
    ngx_fishchat_out_free(&sess->held);

    if (sess->stash) {
        ngx_free(sess->stash);
        sess->stash = NULL;
    }

    if (sess->node.str.data) {
        ngx_free(sess->node.str.data);
        sess->node.str.data = NULL;
    }

    ngx_fishchat_parser_free(&sess->parser);
}


void
ngx_stream_fishchat_msg_close(ngx_stream_fishchat_msg_session_t *sess)
{
    if (sess->closed) {
        return;
    }

    sess->closed = 1;

    if (sess->out.head && sess->c->write->ready) {
        /* frames that waited for the end of the pass, if the socket takes */
        (void) ngx_fishchat_out_flush(sess->c, &sess->out, sess->counters);
    }

    ngx_stream_finalize_session(sess->s, NGX_STREAM_OK);
}


static void
ngx_stream_fishchat_msg_read_handler(ngx_event_t *rev)
{
    ssize_t                              n;
    ngx_int_t                            rc;
    ngx_buf_t                            b;
    ngx_connection_t                    *c;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *sess;

    c = rev->data;
    sess = ngx_fishchat_stream_ctx(rev, ngx_stream_fishchat_msg_module);
    w = ngx_stream_fishchat_msg_worker;

    if (ngx_stream_fishchat_msg_may_read(sess, rev) != NGX_OK) {
        return;
    }

    for ( ;; ) {

        n = c->recv(c, w->read, NGX_STREAM_FISHCHAT_MSG_READ_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "fishchat msg: client closed the connection");
            ngx_stream_fishchat_msg_close(sess);
            return;
        }

        if (n == 0) {
            /*
             * the end of the client's input (maybe a half-close): what it
             * sent is answered, then the session is closed
             */

            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "fishchat msg: client closed the connection");

            sess->eof = 1;

            if (ngx_queue_empty(&sess->reqs) && sess->out.head == NULL) {
                ngx_stream_fishchat_msg_close(sess);
                return;
            }

            if (ngx_stream_fishchat_msg_block_reading(rev) != NGX_OK) {
                ngx_stream_fishchat_msg_close(sess);
            }

            return;
        }

        sess->counters->bytes_in += n;

        ngx_memzero(&b, sizeof(ngx_buf_t));
        b.pos = w->read;
        b.last = w->read + n;

        rc = ngx_stream_fishchat_msg_parse(sess, &b);

        if (rc == NGX_ERROR) {
            return;
        }

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        ngx_add_timer(c->read, sess->conf->keepalive);

        if (rc == NGX_AGAIN) {
            /* a login is under way: the rest is read after it */

            if (ngx_stream_fishchat_msg_block_reading(rev) != NGX_OK) {
                ngx_stream_fishchat_msg_close(sess);
            }

            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_fishchat_msg_close(sess);
    }
}


/*
 * Whether the session is read now: NGX_DONE when it is not (closed, timed
 * out, held back while the worker catches up or while a login is under
 * way, or its input ended).
 */

static ngx_int_t
ngx_stream_fishchat_msg_may_read(ngx_stream_fishchat_msg_session_t *sess,
    ngx_event_t *rev)
{
    ngx_connection_t                  *c;
    ngx_stream_fishchat_msg_worker_t  *w;

    c = sess->c;
    w = ngx_stream_fishchat_msg_worker;

    if (c->close) {
        /* worker_shutdown_timeout */
        ngx_stream_fishchat_msg_close(sess);
        return NGX_DONE;
    }

    if (rev->timedout) {

        if (sess->is_stalled) {
            /* not read by us: the client is not to blame */
            rev->timedout = 0;
            ngx_add_timer(rev, sess->conf->keepalive);
            return NGX_DONE;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "fishchat msg: no frame for %M ms, closing",
                      sess->conf->keepalive);
        ngx_stream_fishchat_msg_close(sess);
        return NGX_DONE;
    }

    if (w->overloaded && !sess->eof) {
        /*
         * the worker has more topic messages to write than it can: its
         * clients are read again when it has caught up (back-pressure on
         * the senders through TCP)
         */

        if (!sess->is_stalled) {
            ngx_queue_insert_tail(&w->stalled, &sess->stalled);
            sess->is_stalled = 1;
        }

        if (ngx_stream_fishchat_msg_block_reading(rev) != NGX_OK) {
            ngx_stream_fishchat_msg_close(sess);
        }

        return NGX_DONE;
    }

    if (sess->logging_in || sess->eof) {
        /*
         * what follows a login is read once the login is done; after the
         * end of the input only the replies are waited for
         */

        if (ngx_stream_fishchat_msg_block_reading(rev) != NGX_OK) {
            ngx_stream_fishchat_msg_close(sess);
        }

        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * The frames in b.  NGX_OK: b is used up; NGX_AGAIN: a login began, and
 * the rest of b is kept to be served after it, in order; NGX_ERROR: the
 * session is closed.
 */

static ngx_int_t
ngx_stream_fishchat_msg_parse(ngx_stream_fishchat_msg_session_t *sess,
    ngx_buf_t *b)
{
    size_t     n;
    ngx_int_t  rc;
    ngx_str_t  frame;

    for ( ;; ) {
        rc = ngx_fishchat_parse_frame(&sess->parser, b, &frame,
                                      sess->c->log);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        if (rc == NGX_FISHCHAT_FRAME_EMPTY) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                            NGX_FISHCHAT_ERR_BAD_FRAME, 1,
                                            "empty frame");
            return NGX_ERROR;
        }

        if (rc == NGX_FISHCHAT_FRAME_TOO_LARGE) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                            NGX_FISHCHAT_ERR_FRAME_TOO_LARGE,
                                            1, "frame of %uD bytes is over "
                                            "the maximum of %uz",
                                            sess->parser.length,
                                            sess->parser.max);
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            ngx_stream_fishchat_msg_close(sess);
            return NGX_ERROR;
        }

        sess->counters->frames_in++;

        if (ngx_stream_fishchat_msg_frame(sess, &frame) != NGX_OK) {
            return NGX_ERROR;
        }

        if (!sess->logging_in) {
            continue;
        }

        n = b->last - b->pos;

        if (n) {
            sess->stash = ngx_alloc(n, sess->c->log);
            if (sess->stash == NULL) {
                ngx_stream_fishchat_msg_close(sess);
                return NGX_ERROR;
            }

            ngx_memcpy(sess->stash, b->pos, n);
            sess->stash_len = n;
            b->pos = b->last;
        }

        return NGX_AGAIN;
    }
}


/* as ngx_http_block_reading(): level-triggered methods would call again */

static ngx_int_t
ngx_stream_fishchat_msg_block_reading(ngx_event_t *rev)
{
    if ((ngx_event_flags & NGX_USE_LEVEL_EVENT) && rev->active) {
        return ngx_del_event(rev, NGX_READ_EVENT, 0);
    }

    return NGX_OK;
}


/*
 * The topics of this worker have more messages waiting to be written than
 * fishchat_topic_backlog: sessions are not read until they are down to
 * half of it; then every session that was left unread is read again
 */

void
ngx_stream_fishchat_msg_overload(ngx_uint_t on)
{
    ngx_queue_t                        *q;
    ngx_stream_fishchat_msg_worker_t   *w;
    ngx_stream_fishchat_msg_session_t  *sess;

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL || w->overloaded == on) {
        return;
    }

    w->overloaded = on;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                   "fishchat msg: topic backlog: reading clients %s",
                   on ? "paused" : "resumed");

    if (on) {
        return;
    }

    while (!ngx_queue_empty(&w->stalled)) {
        q = ngx_queue_head(&w->stalled);
        ngx_queue_remove(q);

        sess = ngx_queue_data(q, ngx_stream_fishchat_msg_session_t, stalled);
        sess->is_stalled = 0;

        ngx_post_event(sess->c->read, &ngx_posted_events);
    }
}


/* NGX_OK: go on reading; anything else: the session is closed */

static ngx_int_t
ngx_stream_fishchat_msg_frame(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *frame)
{
    ngx_int_t                         rc;
    ngx_fishchat_frame_t              m;
    ngx_stream_fishchat_msg_optin_t  *cmd;
    u_char                            err[128];

    if (ngx_fishchat_frame_decode(frame, &m, err, sizeof(err)) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_FRAME,
                                              1, "%s", err);
    }

    if (ngx_fishchat_frame_is(&m, "P2P_ACK")) {
        rc = ngx_stream_fishchat_msg_ack(sess, &m);
        goto done;
    }

    if (sess->acks_queued) {
        /* the session's acks reach Redis before what it sent next */
        ngx_stream_fishchat_msg_acks_flush();
    }

    if (ngx_fishchat_frame_is(&m, "SEND_MESSAGE_P2P")) {
        rc = ngx_stream_fishchat_msg_p2p(sess, &m);

    } else if (ngx_fishchat_frame_is(&m, "SEND_PING")) {
        rc = ngx_stream_fishchat_msg_ping(sess, &m);

    } else if (ngx_fishchat_frame_is(&m, "SEND_CLIENT_ID")) {
        rc = ngx_stream_fishchat_msg_login(sess, &m);

    } else if (ngx_fishchat_frame_is(&m, "HELLO")) {
        rc = ngx_stream_fishchat_msg_hello(sess, &m);

    } else if ((cmd = ngx_stream_fishchat_msg_optin_cmd(&m)) != NULL) {
        rc = ngx_stream_fishchat_msg_optin_check(sess,
                                                 (char *) cmd->name.data);

        if (rc == NGX_DECLINED) {
            rc = cmd->handler(sess, &m);
        }

    } else {
        rc = ngx_stream_fishchat_topic_command(sess, &m);

        if (rc == NGX_DECLINED) {
            rc = ngx_stream_fishchat_msg_refuse(sess,
                                            sess->logged_in
                                            ? NGX_FISHCHAT_ERR_UNKNOWN_COMMAND
                                            : NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                            1, "unknown command \"%*s\"",
                                            ngx_min(m.cmd.len, 64),
                                            m.cmd.data);
        }
    }

done:

    ngx_fishchat_frame_free(&m);

    return rc;
}


/* HELLO <version>: the client takes the replies seed clients never get */

static ngx_int_t
ngx_stream_fishchat_msg_hello(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    ngx_str_t  args[3];
    u_char     pid[NGX_INT64_LEN];

    if (m->nargs != 1 || m->args[0].len != 1 || m->args[0].data[0] != '1') {
        sess->optin = 1;
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "HELLO takes the protocol "
                                              "version, "
                                              NGX_STREAM_FISHCHAT_MSG_VERSION);
    }

    sess->optin = 1;

    args[0] = m->args[0];
    args[1] = ngx_stream_fishchat_msg_worker->fcf->name;
    args[2].data = pid;
    args[2].len = ngx_sprintf(pid, "%P", ngx_pid) - pid;

    return ngx_stream_fishchat_msg_reply(sess, "HELLO", args, 3);
}


static ngx_int_t
ngx_stream_fishchat_msg_login(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    ngx_str_t                            *id, iat;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *old;
    u_char                               iat_text[NGX_TIME_T_LEN];

    w = ngx_stream_fishchat_msg_worker;

    if (m->nargs < 1 || m->nargs > 2
        || ngx_fishchat_valid_id(&m->args[0]) != NGX_OK)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "SEND_CLIENT_ID takes an id "
                                              "of 1 to 128 bytes without "
                                              "white space, control "
                                              "characters or braces, and "
                                              "a token");
    }

    id = &m->args[0];

    if (sess->logged_in || sess->logging_in) {
        if (id->len == sess->node.str.len
            && ngx_strncmp(id->data, sess->node.str.data, id->len) == 0)
        {
            /* the same login again: nothing to do */
            return NGX_OK;
        }

        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "already logged in as "
                                              "\"%V\"", &sess->node.str);
    }

    iat.data = iat_text;

    if (ngx_stream_fishchat_msg_auth_login(sess, m, &iat) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a session of the same id on this worker is replaced */

    old = ngx_stream_fishchat_msg_find(id);

    if (old) {
        ngx_log_error(NGX_LOG_INFO, old->c->log, 0,
                      "fishchat msg: \"%V\" logged in again, closing this "
                      "session", &old->node.str);

        old->kicked = 1;

        (void) ngx_stream_fishchat_msg_refuse(old, NGX_FISHCHAT_ERR_KICKED, 1,
                                              "logged in elsewhere");
    }

    /* the id is kept once, of its own length: the tree's key */

    sess->node.str.data = ngx_alloc(id->len, sess->c->log);
    if (sess->node.str.data == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    ngx_memcpy(sess->node.str.data, id->data, id->len);
    sess->node.str.len = id->len;
    sess->node.node.key = ngx_crc32_short(sess->node.str.data, id->len);

    ngx_rbtree_insert(&w->sessions, &sess->node.node);
    sess->in_table = 1;

    if (ngx_stream_fishchat_msg_presence(sess, 0, &iat) != NGX_OK) {
        if (sess->closed) {
            return NGX_ERROR;
        }

        ngx_rbtree_delete(&w->sessions, &sess->node.node);
        sess->in_table = 0;
        sess->logging_in = 0;

        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_REDIS, 1,
                                              "can't log in: Redis is "
                                              "unavailable");
    }

    return NGX_OK;
}


/*
 * Runs the login script for the session: at login, and again for every
 * session of the worker after its subscriber link was down (messages
 * published meanwhile were lost, and presence with them if Redis
 * restarted): the inbox is delivered anew then.
 */

static ngx_int_t
ngx_stream_fishchat_msg_presence(ngx_stream_fishchat_msg_session_t *sess,
    ngx_uint_t resync, ngx_str_t *iat)
{
    u_char                              *p;
    ngx_str_t                            args[18], *id;
    ngx_stream_fishchat_msg_call_t      *call;
    ngx_stream_fishchat_msg_worker_t    *w;
    u_char                               sid[NGX_INT64_LEN];
    u_char                               now[NGX_INT64_LEN];
    u_char                               max[NGX_INT_T_LEN];
    u_char                               budget[NGX_INT_T_LEN];

    w = ngx_stream_fishchat_msg_worker;
    id = &sess->node.str;

    call = ngx_stream_fishchat_msg_call(sess, 0);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    call->resync = resync;

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "client:", id, "");
    args[1] = ngx_fishchat_key(&p, "inbox:", id, "");
    args[2] = ngx_fishchat_key(&p, "inbox:", id, ":m");
    args[3] = ngx_fishchat_key(&p, "revoked:", id, "");
    args[4] = w->fcf->name;
    args[5] = w->channel;
    args[6] = sess->c->addr_text;
    args[7] = sess->conf->advertise;
    args[8].data = sid;
    args[8].len = ngx_sprintf(sid, "%uL", sess->sid) - sid;
    args[9].data = now;
    args[9].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[10] = *id;
    args[11].data = max;
    args[11].len = ngx_sprintf(max, "%ui", sess->conf->inbox_max) - max;
    args[12] = w->fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];
    args[13].data = budget;
    args[13].len = ngx_sprintf(budget, "%uz", sess->conf->send_buffer / 2)
                   - budget;

    /*
     * a resync goes on after what the session was sent: what was written
     * to it already is not written again
     */

    if (resync && sess->inbox_after_len) {
        args[14].data = sess->inbox_after;
        args[14].len = sess->inbox_after_len;
        args[15].data = sess->inbox_gen;
        args[15].len = sess->inbox_gen_len;

    } else {
        ngx_str_set(&args[14], "0");
        ngx_str_null(&args[15]);
    }

    /* the token's "iat", for the revocation check; "" without tokens */

    if (iat) {
        args[16] = *iat;

    } else {
        ngx_str_null(&args[16]);
    }

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->login,
                                        ngx_stream_fishchat_msg_logged_in,
                                        call, 4, 17, args);
    if (call->req == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        return NGX_DECLINED;
    }

    sess->logging_in = 1;

    return NGX_OK;
}


void
ngx_stream_fishchat_msg_resync(void *data)
{
    ngx_rbtree_node_t                  *node, *root, *sentinel;
    ngx_stream_fishchat_msg_worker_t   *w = data;
    ngx_stream_fishchat_msg_session_t  *sess;

    sentinel = w->sessions.sentinel;
    root = w->sessions.root;

    if (root == sentinel) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "fishchat msg: subscriptions were down, delivering the "
                  "inboxes of this worker's sessions again");

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&w->sessions, node))
    {
        sess = (ngx_stream_fishchat_msg_session_t *) node;

        if (sess->logged_in && !sess->logging_in && !sess->closed) {
            (void) ngx_stream_fishchat_msg_presence(sess, 1, NULL);
        }
    }
}


static void
ngx_stream_fishchat_msg_logged_in(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                            args[3];
    ngx_uint_t                           resync;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *sess;
    u_char                               pid[NGX_INT64_LEN];

    sess = call->sess;
    resync = call->resync;
    w = ngx_stream_fishchat_msg_worker;

    ngx_stream_fishchat_msg_call_done(call);

    sess->logging_in = 0;

    if (reply && reply->type == REDIS_REPLY_STRING && !resync) {
        /* the login script's answer to a revoked token */

        ngx_rbtree_delete(&w->sessions, &sess->node.node);
        sess->in_table = 0;

        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_AUTH_FAILED, 1,
                                              "login of \"%V\" refused: "
                                              "the token is revoked",
                                              &sess->node.str);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sess->c->log, 0,
                          "fishchat msg: login script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        if (resync) {
            /* still logged in here; the inbox comes at the next login */
            ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                          "fishchat msg: resync of \"%V\" failed",
                          &sess->node.str);
            goto held;
        }

        ngx_rbtree_delete(&w->sessions, &sess->node.node);
        sess->in_table = 0;

        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 1,
                                              "can't log in: Redis is "
                                              "unavailable");
        return;
    }

    if (resync) {
        goto inbox;
    }

    sess->logged_in = 1;
    sess->counters->sessions++;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                   "fishchat msg: \"%V\" logged in", &sess->node.str);

    if (sess->optin) {
        args[0] = sess->node.str;
        args[1] = w->fcf->name;
        args[2].data = pid;
        args[2].len = ngx_sprintf(pid, "%P", ngx_pid) - pid;

        if (ngx_stream_fishchat_msg_reply(sess, "LOGIN_OK", args, 3)
            != NGX_OK)
        {
            return;
        }
    }

inbox:

    /* what waited in the inbox, oldest first, then what came meanwhile */

    if (ngx_stream_fishchat_msg_inbox_page(sess, reply) != NGX_OK) {
        return;
    }

held:

    if (ngx_stream_fishchat_msg_after_login(sess) != NGX_OK) {
        return;
    }

    ngx_post_event(sess->c->read, &ngx_posted_events);

    if (!resync) {
        /* the topics of the client: what it missed, then live messages */
        ngx_stream_fishchat_topic_login(sess);
    }
}


/*
 * After a login or a resync: what arrived for the session meanwhile, then
 * what the client sent after its login.  NGX_ERROR: the session is closed.
 */

static ngx_int_t
ngx_stream_fishchat_msg_after_login(ngx_stream_fishchat_msg_session_t *sess)
{
    u_char              *stash;
    ngx_int_t            rc;
    ngx_buf_t            b;
    ngx_fishchat_out_t  *held;

    while (sess->held.head) {
        held = sess->held.head;

        sess->held.head = held->next;
        sess->held.bytes -= held->last - held->pos;

        if (sess->held.head == NULL) {
            sess->held.last = NULL;
        }

        if (ngx_stream_fishchat_msg_write(sess, held->pos,
                                          held->last - held->pos)
            != NGX_OK)
        {
            ngx_free(held);
            return NGX_ERROR;
        }

        sess->counters->frames_out++;
        ngx_free(held);
    }

    /* what the client sent after its login, then what it sends now */

    if (sess->stash) {
        ngx_memzero(&b, sizeof(ngx_buf_t));
        b.pos = sess->stash;
        b.last = sess->stash + sess->stash_len;

        stash = sess->stash;
        sess->stash = NULL;

        rc = ngx_stream_fishchat_msg_parse(sess, &b);

        ngx_free(stash);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A page of the inbox: {more, last seq, frame...}.  While more is left, the
 * next page is fetched once the output queue is empty; live deliveries are
 * dropped meanwhile (they are in the inbox too, later than this page) and
 * noted, so that one more page is read after the last.
 */

static ngx_int_t
ngx_stream_fishchat_msg_inbox_page(ngx_stream_fishchat_msg_session_t *sess,
    redisReply *reply)
{
    size_t      i;
    ngx_int_t   rc;
    ngx_str_t   f;
    ngx_uint_t  own;

    if (reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[1]->len >= sizeof(sess->inbox_after)
        || reply->element[2]->type != REDIS_REPLY_STRING
        || reply->element[2]->len > sizeof(sess->inbox_gen))
    {
        ngx_log_error(NGX_LOG_ERR, sess->c->log, 0,
                      "fishchat msg: unexpected inbox page from Redis");
        sess->inbox_more = 0;
        return NGX_OK;
    }

    sess->inbox_more = (reply->element[0]->integer != 0);
    sess->inbox_after_len = reply->element[1]->len;
    ngx_memcpy(sess->inbox_after, reply->element[1]->str,
               sess->inbox_after_len);
    sess->inbox_gen_len = reply->element[2]->len;
    ngx_memcpy(sess->inbox_gen, reply->element[2]->str, sess->inbox_gen_len);

    if (!sess->inbox_more && sess->inbox_missed) {
        /* live messages were dropped during the last page: read on */
        sess->inbox_more = 1;
    }

    sess->inbox_missed = 0;

    for (i = 3; i < reply->elements; i++) {
        if (ngx_fishchat_redis_str(reply->element[i], &f) != NGX_OK) {
            continue;
        }

        own = ngx_stream_fishchat_msg_media_own(sess, &f);

        rc = ngx_stream_fishchat_msg_write(sess, f.data, f.len);

        if (own) {
            ngx_free(f.data);
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        sess->counters->frames_out++;
    }

    if (sess->inbox_more && sess->out.head == NULL) {
        ngx_stream_fishchat_msg_inbox_fetch(sess);
    }

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_inbox_fetch(ngx_stream_fishchat_msg_session_t *sess)
{
    u_char                            *p;
    ngx_str_t                          args[6];
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;
    u_char                             max[NGX_INT_T_LEN];
    u_char                             budget[NGX_INT_T_LEN];

    if (sess->inbox_fetching || sess->closed) {
        return;
    }

    w = ngx_stream_fishchat_msg_worker;

    call = ngx_stream_fishchat_msg_call(sess, 0);
    if (call == NULL) {
        return;
    }

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "inbox:", &sess->node.str, "");
    args[1] = ngx_fishchat_key(&p, "inbox:", &sess->node.str, ":m");
    args[2].data = sess->inbox_after;
    args[2].len = sess->inbox_after_len;
    args[3].data = max;
    args[3].len = ngx_sprintf(max, "%ui", sess->conf->inbox_max) - max;
    args[4].data = budget;
    args[4].len = ngx_sprintf(budget, "%uz", sess->conf->send_buffer / 2)
                  - budget;
    args[5].data = sess->inbox_gen;
    args[5].len = sess->inbox_gen_len;

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->fetch,
                                        ngx_stream_fishchat_msg_inbox_fetched,
                                        call, 2, 6, args);
    if (call->req == NULL) {
        /* the rest comes at the next login */
        ngx_stream_fishchat_msg_call_done(call);
        sess->inbox_more = 0;
        return;
    }

    sess->inbox_fetching = 1;
}


static void
ngx_stream_fishchat_msg_inbox_fetched(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    ngx_stream_fishchat_msg_call_done(call);

    sess->inbox_fetching = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: the rest of the inbox of \"%V\" comes "
                      "at the next login: Redis is unavailable",
                      &sess->node.str);
        sess->inbox_more = 0;
        return;
    }

    (void) ngx_stream_fishchat_msg_inbox_page(sess, reply);
}


static ngx_int_t
ngx_stream_fishchat_msg_ping(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    if (m->nargs > 1) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "SEND_PING takes at most "
                                              "one argument");
    }

    if (!sess->optin) {
        return NGX_OK;
    }

    return ngx_stream_fishchat_msg_reply(sess, "PONG", NULL, 0);
}


/*
 * A refusal: an ERROR frame for clients that opted in, an info line in the
 * log, and the close when "fatal" (always for seed clients, which would
 * take any frame for a delivery).  Returns NGX_OK when the session goes on.
 */

ngx_int_t
ngx_stream_fishchat_msg_refuse(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_err_e err, ngx_uint_t fatal, const char *fmt, ...)
{
    va_list     args;
    ngx_str_t   text, eargs[2];
    u_char      buf[256];

    va_start(args, fmt);
    text = ngx_fishchat_refusal(sess->c->log, "msg", sess->counters, err,
                                fatal, buf, sizeof(buf), fmt, args);
    va_end(args);

    if (sess->optin) {
        eargs[0] = *ngx_fishchat_err_code(err);
        eargs[1] = text;

        if (ngx_stream_fishchat_msg_reply(sess, "ERROR", eargs, 2) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (fatal) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the command of the frame if it is one of the opt-in protocol, or NULL */

static ngx_stream_fishchat_msg_optin_t *
ngx_stream_fishchat_msg_optin_cmd(ngx_fishchat_frame_t *m)
{
    ngx_stream_fishchat_msg_optin_t  *cmd;

    for (cmd = ngx_stream_fishchat_msg_optins; cmd->name.len; cmd++) {
        if (m->cmd.len == cmd->name.len
            && ngx_strncmp(m->cmd.data, cmd->name.data, cmd->name.len) == 0)
        {
            return cmd;
        }
    }

    return NULL;
}


/*
 * A command of the opt-in protocol: unknown to a seed client, refused
 * before login.  NGX_DECLINED: go on; otherwise the refusal's result.
 */

static ngx_int_t
ngx_stream_fishchat_msg_optin_check(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd)
{
    if (!sess->optin) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                              1, "unknown command \"%s\"",
                                              cmd);
    }

    if (!sess->logged_in) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                              1, "%s before login", cmd);
    }

    return NGX_DECLINED;
}


/*
 * A command the server is not set up for (a directive it needs is not
 * set): UNKNOWN_COMMAND, and the session goes on
 */

ngx_int_t
ngx_stream_fishchat_msg_needs(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd, char *directives)
{
    return ngx_stream_fishchat_msg_refuse(sess,
                                          NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                          0, "%s needs %s on the server",
                                          cmd, directives);
}


/*
 * No answer to a message to store (to a client, to a topic): where Redis
 * may have stored it all the same, the client is told so; otherwise the
 * message is not accepted
 */

ngx_int_t
ngx_stream_fishchat_msg_not_stored(ngx_stream_fishchat_msg_session_t *sess,
    redisReply *reply)
{
    if (reply == NULL && ngx_fishchat_redis_unknown()) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_CONFIRMED,
                                              !sess->optin,
                                              "Redis did not answer: the "
                                              "message may have been stored");
    }

    return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                          !sess->optin,
                                          "message not accepted: Redis is "
                                          "unavailable");
}


ngx_int_t
ngx_stream_fishchat_msg_reply(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd, ngx_str_t *args, ngx_uint_t nargs)
{
    return ngx_stream_fishchat_msg_frame_out(sess, cmd, args, nargs, 0);
}


/* ACCEPTED of a 1:1 message: with the other frames of the pass */

ngx_int_t
ngx_stream_fishchat_msg_accepted(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *args)
{
    return ngx_stream_fishchat_msg_frame_out(sess, "ACCEPTED", args, 2, 1);
}


static ngx_int_t
ngx_stream_fishchat_msg_frame_out(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd, ngx_str_t *args, ngx_uint_t nargs, ngx_uint_t pass)
{
    size_t                             size;
    u_char                            *buf, *last;
    ngx_int_t                          rc;
    ngx_str_t                          name;
    u_char                             small[512];

    name.data = (u_char *) cmd;
    name.len = ngx_strlen(cmd);

    size = ngx_fishchat_frame_size(&name, args, nargs);

    if (size <= sizeof(small)) {
        buf = small;

    } else {
        buf = ngx_alloc(size, sess->c->log);
        if (buf == NULL) {
            ngx_stream_fishchat_msg_close(sess);
            return NGX_ERROR;
        }
    }

    last = ngx_fishchat_frame_write(buf, &name, args, nargs);

    rc = pass ? ngx_stream_fishchat_msg_write_pass(sess, buf, last - buf)
              : ngx_stream_fishchat_msg_write(sess, buf, last - buf);

    if (buf != small) {
        ngx_free(buf);
    }

    if (rc == NGX_OK) {
        sess->counters->frames_out++;
    }

    return rc;
}


/*
 * A delivery from another session or another worker (a live notice of
 * the media role made into the session's own frame first).  Returns
 * NGX_ERROR when the session was closed by it (a slow reader).
 */

ngx_int_t
ngx_stream_fishchat_msg_deliver(ngx_stream_fishchat_msg_session_t *sess,
    u_char *frame, size_t len)
{
    ngx_int_t   rc;
    ngx_str_t   f;
    ngx_uint_t  own;

    if (sess->closed) {
        return NGX_ERROR;
    }

    if (!sess->logging_in && !sess->logged_in) {
        return NGX_OK;
    }

    if (sess->inbox_more && !sess->logging_in) {
        /* it is in the inbox too, after the pages still to come */
        sess->inbox_missed = 1;
        return NGX_OK;
    }

    f.data = frame;
    f.len = len;
    own = ngx_stream_fishchat_msg_media_own(sess, &f);

    if (sess->logging_in) {
        /*
         * after the inbox, to keep the order; should memory fail, the
         * message still waits in the inbox
         */
        (void) ngx_fishchat_out_append(&sess->held, f.data, f.len,
                                       sess->c->log);
        rc = NGX_OK;

    } else {
        rc = ngx_stream_fishchat_msg_write_pass(sess, f.data, f.len);

        if (rc == NGX_OK) {
            sess->counters->frames_out++;
        }
    }

    if (own) {
        ngx_free(f.data);
    }

    return rc;
}


/*
 * Writes at once what the socket takes and queues the rest, up to
 * fishchat_msg_send_buffer: a reader slower than that is disconnected
 * (what it did not acknowledge stays in its inbox).  Returns NGX_ERROR
 * when the session was closed.
 */

ngx_int_t
ngx_stream_fishchat_msg_write(ngx_stream_fishchat_msg_session_t *sess,
    u_char *data, size_t len)
{
    ngx_fishchat_out_piece_t  piece;

    piece.data = data;
    piece.len = len;
    piece.chunk = NULL;

    return ngx_stream_fishchat_msg_writev(sess, &piece, 1);
}


/*
 * The same for ACCEPTED and the deliveries of 1:1 messages: made from the
 * replies of a read of a Redis link, which are many, they wait for the
 * end of the pass, so that a session's frames among them go in one write
 */

static ngx_int_t
ngx_stream_fishchat_msg_write_pass(ngx_stream_fishchat_msg_session_t *sess,
    u_char *data, size_t len)
{
    if (ngx_fishchat_redis_replying()
        && !sess->closed
        && sess->out.bytes + len <= sess->conf->send_buffer)
    {
        if (ngx_fishchat_out_append(&sess->out, data, len, sess->c->log)
            != NGX_OK)
        {
            ngx_stream_fishchat_msg_close(sess);
            return NGX_ERROR;
        }

        if (!sess->c->write->posted) {
            ngx_post_event(sess->c->write, &ngx_posted_events);
        }

        return NGX_OK;
    }

    return ngx_stream_fishchat_msg_write(sess, data, len);
}


/*
 * The same for several frames at once, with as few system calls as the
 * socket allows; frames in a shared chunk wait by reference
 */

ngx_int_t
ngx_stream_fishchat_msg_writev(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_out_piece_t *pieces, ngx_uint_t n)
{
    ngx_int_t  rc;

    if (sess->closed) {
        return NGX_ERROR;
    }

    rc = ngx_fishchat_out_writev(sess->c, &sess->out, pieces, n,
                                 sess->conf->send_buffer, sess->counters);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_DECLINED) {
        sess->counters->errors++;
        sess->counters->error[NGX_FISHCHAT_ERR_SLOW_READER]++;

        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: SLOW_READER: over %uz bytes waiting to "
                      "be sent, closing", sess->conf->send_buffer);
    }

    ngx_stream_fishchat_msg_close(sess);

    return NGX_ERROR;
}


static void
ngx_stream_fishchat_msg_write_handler(ngx_event_t *wev)
{
    ngx_connection_t                    *c;
    ngx_stream_fishchat_msg_session_t   *sess;

    c = wev->data;
    sess = ngx_fishchat_stream_ctx(wev, ngx_stream_fishchat_msg_module);

    if (sess == NULL || sess->closed) {
        return;
    }

    switch (ngx_fishchat_out_flush(c, &sess->out, sess->counters)) {

    case NGX_AGAIN:
        return;

    case NGX_ERROR:
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    if (sess->eof && ngx_queue_empty(&sess->reqs)) {
        /* everything the client sent before its end is answered */
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    if (sess->inbox_more && sess->out.head == NULL) {
        /* the client has read the last page of its inbox */
        ngx_stream_fishchat_msg_inbox_fetch(sess);
    }

    if (!ngx_queue_empty(&sess->topics)) {
        /* topic catch-ups wait for this */
        ngx_stream_fishchat_topic_drained(sess);
    }
}


ngx_stream_fishchat_msg_call_t *
ngx_stream_fishchat_msg_call(ngx_stream_fishchat_msg_session_t *sess,
    size_t size)
{
    ngx_stream_fishchat_msg_call_t  *call;

    call = ngx_alloc(sizeof(ngx_stream_fishchat_msg_call_t) + size,
                     sess->c->log);
    if (call == NULL) {
        return NULL;
    }

    ngx_memzero(call, sizeof(ngx_stream_fishchat_msg_call_t));

    call->sess = sess;
    call->counters = sess->counters;
    ngx_queue_insert_tail(&sess->reqs, &call->queue);

    return call;
}


/*
 * A call of the session that keeps "to" (a topic's name, a recipient, a
 * file id) in call->to and "ref", if any, in call->ref for its handler,
 * with "more" bytes of its data free after them, from *last (if "last");
 * NULL when memory ran out and the session was closed.
 */

ngx_stream_fishchat_msg_call_t *
ngx_stream_fishchat_msg_call_str(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *to, ngx_str_t *ref, size_t more, u_char **last)
{
    u_char                          *p;
    ngx_stream_fishchat_msg_call_t  *call;

    call = ngx_stream_fishchat_msg_call(sess, to->len + (ref ? ref->len : 0)
                                              + more);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NULL;
    }

    call->to.data = call->data;
    call->to.len = to->len;
    p = ngx_cpymem(call->data, to->data, to->len);

    if (ref) {
        call->ref.data = p;
        call->ref.len = ref->len;
        p = ngx_cpymem(p, ref->data, ref->len);
    }

    if (last) {
        *last = p;
    }

    return call;
}


void
ngx_stream_fishchat_msg_call_done(ngx_stream_fishchat_msg_call_t *call)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    ngx_queue_remove(&call->queue);
    ngx_free(call);

    if (sess && sess->eof && !sess->closed) {
        /* the client's input ended: the session may be done now */
        ngx_post_event(sess->c->write, &ngx_posted_events);
    }
}


/*
 * The script of a call.  NGX_OK: under way; otherwise the call is gone
 * and the client was refused (REDIS_UNAVAILABLE): "what" says what was
 * not done, for the log.
 */

ngx_int_t
ngx_stream_fishchat_msg_call_eval(ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args, char *what)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script,
                                        handler, call, nkeys, nargs, args);
    if (call->req) {
        return NGX_OK;
    }

    ngx_stream_fishchat_msg_call_done(call);

    return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                          !sess->optin,
                                          "%s: Redis is unavailable", what);
}


/*
 * A script's refusal of a call, or no answer: the call is gone and the
 * client is told "<what>: <why>" (non-fatal).  -2 is FORBIDDEN, why
 * "forbidden"; another integer "none", why "missing"; anything else
 * REDIS_UNAVAILABLE.
 */

void
ngx_stream_fishchat_msg_call_refused(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply, char *what, ngx_fishchat_err_e none, char *forbidden,
    char *missing)
{
    char                               *why;
    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        err = NGX_FISHCHAT_ERR_REDIS;
        why = "Redis is unavailable";

    } else if (reply->integer == -2) {
        err = NGX_FISHCHAT_ERR_FORBIDDEN;
        why = forbidden;

    } else {
        err = none;
        why = missing;
    }

    ngx_stream_fishchat_msg_call_done(call);

    (void) ngx_stream_fishchat_msg_refuse(sess, err, 0, "%s: %s", what, why);
}


ngx_stream_fishchat_msg_session_t *
ngx_stream_fishchat_msg_find(ngx_str_t *id)
{
    ngx_str_node_t  *node;

    node = ngx_str_rbtree_lookup(&ngx_stream_fishchat_msg_worker->sessions,
                                 id, ngx_crc32_short(id->data, id->len));

    return (ngx_stream_fishchat_msg_session_t *) node;
}


/*
 * The channel of this worker:
 *     D<id>\n<frame>     deliver the frame to the session of <id>
 *     K<id>\n<sid>       <id> logged in elsewhere: close its session here
 *                        unless it is session <sid> (the manager's kick
 *                        sends 0, no session's number)
 *     J<id>\n<topic>     the manager made <id> a member of <topic>
 *     L<id>\n<topic>     the manager took <id> out of <topic>
 */

void
ngx_stream_fishchat_msg_channel(ngx_str_t *payload, void *data)
{
    u_char                             *nl, *last;
    uint64_t                            sid;
    ngx_str_t                           id, name;
    ngx_stream_fishchat_msg_session_t  *sess;

    if (payload->len < 3) {
        return;
    }

    last = payload->data + payload->len;

    nl = ngx_strlchr(payload->data + 1, last, '\n');
    if (nl == NULL) {
        return;
    }

    id.data = payload->data + 1;
    id.len = nl - id.data;

    sess = ngx_stream_fishchat_msg_find(&id);

    if (sess == NULL) {
        /* gone: the message waits in the inbox for the next login */
        return;
    }

    switch (payload->data[0]) {

    case 'D':
        (void) ngx_stream_fishchat_msg_deliver(sess, nl + 1, last - nl - 1);
        break;

    case 'K':
        sid = 0;

        for (nl++; nl < last && *nl >= '0' && *nl <= '9'; nl++) {
            sid = sid * 10 + (*nl - '0');
        }

        if (sid != sess->sid) {
            sess->kicked = 1;
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                                  NGX_FISHCHAT_ERR_KICKED, 1,
                                                  sid ? "logged in elsewhere"
                                                      : "kicked by the "
                                                        "manager");
        }

        break;

    case 'J':
    case 'L':
        name.data = nl + 1;
        name.len = last - nl - 1;

        ngx_stream_fishchat_topic_control(sess, payload->data[0], &name);
        break;
    }
}
