
/*
 * FishChat for nginx: the msg server role.
 *
 * Client sessions of the seed protocol: login (SEND_CLIENT_ID), keepalive
 * (SEND_PING), 1:1 messages (SEND_MESSAGE_P2P, RESP_MESSAGE_P2P, P2P_ACK)
 * with at-least-once delivery through an inbox in Redis, and the opt-in
 * replies (HELLO) that seed clients never see.
 *
 * A message costs the sender one Redis round trip: one script stores it
 * in the recipient's inbox and, when the recipient is connected to another
 * worker or node, publishes it to that worker's channel.  Each worker
 * subscribes to its own channel (named after its pid) and writes what
 * arrives there to its sessions.  An acknowledged message leaves the inbox;
 * the rest is delivered again at the next login.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg.h"


static void ngx_stream_fishchat_msg_handler(ngx_stream_session_t *s);
static void ngx_stream_fishchat_msg_cleanup(void *data);
static void ngx_stream_fishchat_msg_read_handler(ngx_event_t *rev);
static void ngx_stream_fishchat_msg_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_stream_fishchat_msg_parse(
    ngx_stream_fishchat_msg_session_t *sess, ngx_buf_t *b);
static ngx_int_t ngx_stream_fishchat_msg_block_reading(ngx_event_t *rev);
static ngx_int_t ngx_stream_fishchat_msg_frame(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *frame);
static ngx_int_t ngx_stream_fishchat_msg_hello(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static ngx_int_t ngx_stream_fishchat_msg_login(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static ngx_int_t ngx_stream_fishchat_msg_presence(
    ngx_stream_fishchat_msg_session_t *sess, ngx_uint_t resync);
static void ngx_stream_fishchat_msg_resync(void *data);
static void ngx_stream_fishchat_msg_logged_in(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_msg_inbox_page(
    ngx_stream_fishchat_msg_session_t *sess, redisReply *reply);
static void ngx_stream_fishchat_msg_inbox_fetch(
    ngx_stream_fishchat_msg_session_t *sess);
static void ngx_stream_fishchat_msg_inbox_fetched(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_msg_ping(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static ngx_int_t ngx_stream_fishchat_msg_p2p(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_msg_stored(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_routed(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_msg_ack(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_msg_acked(redisReply *reply, void *data);
static ngx_stream_fishchat_msg_session_t *ngx_stream_fishchat_msg_find(
    ngx_str_t *id);
static void ngx_stream_fishchat_msg_channel(ngx_str_t *payload, void *data);
static ngx_int_t ngx_stream_fishchat_msg_deliver(
    ngx_stream_fishchat_msg_session_t *sess, u_char *frame, size_t len);
static void ngx_stream_fishchat_msg_beat(ngx_event_t *ev);
static void ngx_stream_fishchat_msg_persistence(
    ngx_stream_fishchat_msg_worker_t *w, const char *param,
    ngx_fishchat_redis_handler_pt handler);
static void ngx_stream_fishchat_msg_aof(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_rdb(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_stats(ngx_fishchat_slot_t *slot);

static void *ngx_stream_fishchat_msg_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_fishchat_msg_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_stream_fishchat_msg_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_fishchat_msg_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_stream_fishchat_msg_postconfiguration(ngx_conf_t *cf);
static char *ngx_stream_fishchat_msg(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_fishchat_msg_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_fishchat_msg_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_fishchat_msg_init_process(ngx_cycle_t *cycle);
static void ngx_stream_fishchat_msg_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_stream_fishchat_msg_commands[] = {

    { ngx_string("fishchat_msg"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_fishchat_msg,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_msg_advertise"),
      NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, advertise),
      NULL },

    { ngx_string("fishchat_msg_keepalive_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, keepalive),
      NULL },

    { ngx_string("fishchat_msg_inbox_max"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, inbox_max),
      NULL },

    { ngx_string("fishchat_msg_inbox_ttl"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, inbox_ttl),
      NULL },

    { ngx_string("fishchat_msg_rate"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_fishchat_msg_rate,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_msg_send_buffer"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, send_buffer),
      NULL },

    { ngx_string("fishchat_topic_history"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, topic_history),
      NULL },

    { ngx_string("fishchat_msg_heartbeat"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, heartbeat),
      NULL },

    { ngx_string("fishchat_topic_backlog"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, topic_backlog),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_fishchat_msg_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_fishchat_msg_postconfiguration, /* postconfiguration */

    ngx_stream_fishchat_msg_create_main_conf, /* create main configuration */
    ngx_stream_fishchat_msg_init_main_conf, /* init main configuration */

    ngx_stream_fishchat_msg_create_srv_conf, /* create server configuration */
    ngx_stream_fishchat_msg_merge_srv_conf /* merge server configuration */
};


ngx_module_t  ngx_stream_fishchat_msg_module = {
    NGX_MODULE_V1,
    &ngx_stream_fishchat_msg_module_ctx,   /* module context */
    ngx_stream_fishchat_msg_commands,      /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_fishchat_msg_init_module,   /* init module */
    ngx_stream_fishchat_msg_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_fishchat_msg_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * KEYS: presence, inbox order, inbox messages.
 * ARGV: node, worker channel, client address, msg server, session id,
 * login time, id, how many pending messages to return, the system
 * channel of client events, how many bytes of them, the last seq the
 * session was sent from the inbox and its generation ("0" and "" at
 * login: the whole inbox).
 * Takes the presence over (and tells the worker that had it to close its
 * session), returns the first page of the inbox, oldest first.  A new session
 * (not a resync of the same one) is published as LOGIN, and the session
 * it replaces, on another worker, as KICKED.
 */

/*
 * A page of an inbox after seq "after": {more, last seq, generation,
 * frame...}, at most "limit" messages and "budget" bytes (one message at
 * least), so that a large inbox goes out as the client reads it, never
 * all at once.  "after" counts only in the inbox generation "gen" (the
 * counter starts again when an inbox is emptied and made anew): in
 * another, the page starts at the beginning.
 */

#define NGX_STREAM_FISHCHAT_MSG_INBOX_PAGE                                   \
    "local function page(z, h, after, gen, limit, budget) "                  \
        "local g = redis.call('HGET', h, '#gen') or '' "                     \
        "if g ~= gen then after = '0' end "                                  \
        "local ids = redis.call('ZRANGEBYSCORE', z, '(' .. after, '+inf', "  \
                               "'WITHSCORES', 'LIMIT', 0, limit + 1) "      \
        "local r = {0, after, g} "                                           \
        "local size, n = 0, 0 "                                              \
        "for i = 1, #ids, 2 do "                                             \
            "if n == limit then r[1] = 1 break end "                         \
            "local m = redis.call('HGET', h, ids[i]) "                       \
            "if m then "                                                     \
                "if n > 0 and size + #m > budget then r[1] = 1 break end "   \
                "size = size + #m "                                          \
                "r[#r + 1] = m "                                             \
            "end "                                                           \
            "r[2] = ids[i + 1] "                                             \
            "n = n + 1 "                                                     \
        "end "                                                               \
        "return r "                                                          \
    "end "

static char  ngx_stream_fishchat_msg_login_lua[] =
    "local old = redis.call('HMGET', KEYS[1], 'ch', 'sid', 'node', 'srv') "
    "redis.call('HSET', KEYS[1], 'node', ARGV[1], 'ch', ARGV[2], "
               "'addr', ARGV[3], 'srv', ARGV[4], 'sid', ARGV[5], "
               "'since', ARGV[6]) "
    "if old[1] and old[1] ~= ARGV[2] then "
        "redis.call('PUBLISH', old[1], 'K' .. ARGV[7] .. '\\n' .. ARGV[5]) "
    "end "
    "if old[2] ~= ARGV[5] then "
        "if old[2] and old[1] ~= ARGV[2] then "
            "redis.call('PUBLISH', ARGV[9], 'KICKED\\n' .. ARGV[7] .. '\\n' "
                       ".. (old[3] or '') .. '\\n' .. (old[4] or '')) "
        "end "
        "redis.call('PUBLISH', ARGV[9], 'LOGIN\\n' .. ARGV[7] .. '\\n' "
                   ".. ARGV[1] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[3]) "
    "end "
    NGX_STREAM_FISHCHAT_MSG_INBOX_PAGE
    "return page(KEYS[2], KEYS[3], ARGV[11], ARGV[12], tonumber(ARGV[8]), "
                "tonumber(ARGV[10]))";

/*
 * KEYS: inbox order, inbox messages; ARGV: the last seq delivered, how
 * many messages, how many bytes at most, the inbox generation.  The next
 * page of the inbox.
 */

static char  ngx_stream_fishchat_msg_fetch_lua[] =
    NGX_STREAM_FISHCHAT_MSG_INBOX_PAGE
    "return page(KEYS[1], KEYS[2], ARGV[1], ARGV[4], tonumber(ARGV[2]), "
                "tonumber(ARGV[3]))";

/* 1:1 messages and their acknowledgements: shared with the manager */

static char  ngx_stream_fishchat_msg_send_lua[] = NGX_FISHCHAT_LUA_SEND;

static char  ngx_stream_fishchat_msg_ack_lua[] = NGX_FISHCHAT_LUA_ACK;

/*
 * KEYS: presence; ARGV: session id, the system channel of client events,
 * the event (LOGOUT or KICKED), id
 */

static char  ngx_stream_fishchat_msg_logout_lua[] =
    "local p = redis.call('HMGET', KEYS[1], 'sid', 'node', 'srv') "
    "if p[1] ~= ARGV[1] then return 0 end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', ARGV[2], ARGV[3] .. '\\n' .. ARGV[4] .. '\\n' "
               ".. (p[2] or '') .. '\\n' .. (p[3] or '')) "
    "return 1";

/*
 * KEYS: heartbeats, loads; ARGV: address, ttl (ms), load JSON, the system
 * channel of the beats, node, sessions.
 * Heartbeats dead for a minute are removed.
 */

static char  ngx_stream_fishchat_msg_beat_lua[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) "
    "local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 60000, "
                            "'LIMIT', 0, 100) "
    "if #dead > 0 then "
        "redis.call('ZREM', KEYS[1], unpack(dead)) "
        "redis.call('HDEL', KEYS[2], unpack(dead)) "
    "end "
    "redis.call('PUBLISH', ARGV[4], 'BEAT\\n' .. ARGV[5] .. '\\n' .. ARGV[1] "
               ".. '\\n' .. ARGV[6]) "
    "return 1";


static ngx_str_t  ngx_stream_fishchat_msg_resp_p2p =
    ngx_string("RESP_MESSAGE_P2P");


char  *ngx_stream_fishchat_sys_names[] = {
    "client-status",
    "topic-status",
    "topic-sync",
    "send",
    "monitor",
    NULL
};


ngx_stream_fishchat_msg_worker_t  *ngx_stream_fishchat_msg_worker;


/* sessions */

static void
ngx_stream_fishchat_msg_handler(ngx_stream_session_t *s)
{
    ngx_connection_t                    *c;
    ngx_pool_cleanup_t                  *cln;
    ngx_stream_fishchat_msg_session_t   *sess;
    ngx_stream_fishchat_msg_srv_conf_t  *mscf;

    c = s->connection;
    c->log->action = "serving fishchat session";

    mscf = ngx_stream_get_module_srv_conf(s, ngx_stream_fishchat_msg_module);

    if (ngx_stream_fishchat_msg_worker == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    sess = ngx_pcalloc(c->pool, sizeof(ngx_stream_fishchat_msg_session_t));
    if (sess == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    sess->s = s;
    sess->c = c;
    sess->conf = mscf;
    sess->counters = ngx_fishchat_counters(mscf->counters);
    sess->sid = ++ngx_stream_fishchat_msg_worker->serial;
    sess->rate_tokens = mscf->burst * 1000;
    sess->rate_last = ngx_current_msec;

    ngx_queue_init(&sess->reqs);
    ngx_queue_init(&sess->topics);
    ngx_fishchat_parser_init(&sess->parser,
                             ngx_stream_fishchat_msg_worker->fcf->frame_max);

    sess->counters->accepted++;
    sess->counters->active++;

    cln->handler = ngx_stream_fishchat_msg_cleanup;
    cln->data = sess;

    ngx_stream_set_ctx(s, sess, ngx_stream_fishchat_msg_module);

    c->read->handler = ngx_stream_fishchat_msg_read_handler;
    c->write->handler = ngx_stream_fishchat_msg_write_handler;

    ngx_add_timer(c->read, mscf->keepalive);

    ngx_stream_fishchat_msg_read_handler(c->read);
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

    /* before the logout: positions are saved while presence is ours */
    ngx_stream_fishchat_topic_cleanup(sess);

    while (!ngx_queue_empty(&sess->reqs)) {
        q = ngx_queue_head(&sess->reqs);
        call = ngx_queue_data(q, ngx_stream_fishchat_msg_call_t, queue);

        if (call->req && ngx_fishchat_redis_link()) {

            if (call->frame.len) {
                /*
                 * a message on its way to Redis is stored whatever becomes
                 * of its sender, and must reach a recipient on this worker
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

        key = ngx_stream_fishchat_msg_key(&p, "client:", &sess->node.str,
                                           "");
        args[0] = key;
        args[1].data = sid;
        args[1].len = ngx_sprintf(sid, "%uL", sess->sid) - sid;
        args[2] = w->sys[NGX_STREAM_FISHCHAT_SYS_CLIENT_STATUS];
        ngx_str_set(&args[3], "LOGOUT");
        args[4] = sess->node.str;

        if (sess->kicked) {
            ngx_str_set(&args[3], "KICKED");
        }

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

    ngx_fishchat_parser_free(&sess->parser);
}


void
ngx_stream_fishchat_msg_close(ngx_stream_fishchat_msg_session_t *sess)
{
    if (sess->closed) {
        return;
    }

    sess->closed = 1;

    ngx_stream_finalize_session(sess->s, NGX_STREAM_OK);
}


static void
ngx_stream_fishchat_msg_read_handler(ngx_event_t *rev)
{
    ssize_t                              n;
    ngx_int_t                            rc;
    ngx_buf_t                            b;
    ngx_connection_t                    *c;
    ngx_stream_session_t                *s;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *sess;

    c = rev->data;
    s = c->data;
    sess = ngx_stream_get_module_ctx(s, ngx_stream_fishchat_msg_module);
    w = ngx_stream_fishchat_msg_worker;

    if (c->close) {
        /* worker_shutdown_timeout */
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    if (rev->timedout) {

        if (sess->is_stalled) {
            /* not read by us: the client is not to blame */
            rev->timedout = 0;
            ngx_add_timer(rev, sess->conf->keepalive);
            return;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "fishchat msg: no frame for %M ms, closing",
                      sess->conf->keepalive);
        ngx_stream_fishchat_msg_close(sess);
        return;
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

        return;
    }

    if (sess->logging_in || sess->eof) {
        /*
         * what follows a login is read once the login is done; after the
         * end of the input only the replies are waited for
         */

        if (ngx_stream_fishchat_msg_block_reading(rev) != NGX_OK) {
            ngx_stream_fishchat_msg_close(sess);
        }

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


#define ngx_stream_fishchat_msg_is(m, name)                                  \
    ((m)->cmd.len == sizeof(name) - 1                                        \
     && ngx_strncmp((m)->cmd.data, name, sizeof(name) - 1) == 0)


/* NGX_OK: go on reading; anything else: the session is closed */

static ngx_int_t
ngx_stream_fishchat_msg_frame(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *frame)
{
    ngx_int_t           rc;
    ngx_fishchat_msg_t  m;
    u_char              err[128];

    if (ngx_fishchat_msg_decode(frame, &m, err, sizeof(err)) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_FRAME,
                                              1, "%s", err);
    }

    if (ngx_stream_fishchat_msg_is(&m, "SEND_MESSAGE_P2P")) {
        rc = ngx_stream_fishchat_msg_p2p(sess, &m);

    } else if (ngx_stream_fishchat_msg_is(&m, "P2P_ACK")) {
        rc = ngx_stream_fishchat_msg_ack(sess, &m);

    } else if (ngx_stream_fishchat_msg_is(&m, "SEND_PING")) {
        rc = ngx_stream_fishchat_msg_ping(sess, &m);

    } else if (ngx_stream_fishchat_msg_is(&m, "SEND_CLIENT_ID")) {
        rc = ngx_stream_fishchat_msg_login(sess, &m);

    } else if (ngx_stream_fishchat_msg_is(&m, "HELLO")) {
        rc = ngx_stream_fishchat_msg_hello(sess, &m);

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

    ngx_fishchat_msg_free(&m);

    return rc;
}


/* HELLO <version>: the client takes the replies seed clients never get */

static ngx_int_t
ngx_stream_fishchat_msg_hello(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
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
    ngx_fishchat_msg_t *m)
{
    ngx_str_t                            *id;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *old;

    w = ngx_stream_fishchat_msg_worker;

    if (m->nargs != 1 || ngx_stream_fishchat_msg_valid_id(&m->args[0])
                         != NGX_OK)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "SEND_CLIENT_ID takes an id "
                                              "of 1 to 128 bytes without "
                                              "white space, control "
                                              "characters or braces");
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

    ngx_memcpy(sess->id, id->data, id->len);
    sess->node.str.data = sess->id;
    sess->node.str.len = id->len;
    sess->node.node.key = ngx_crc32_short(sess->id, id->len);

    ngx_rbtree_insert(&w->sessions, &sess->node.node);
    sess->in_table = 1;

    if (ngx_stream_fishchat_msg_presence(sess, 0) != NGX_OK) {
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
    ngx_uint_t resync)
{
    u_char                              *p;
    ngx_str_t                            args[15], *id;
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

    args[0] = ngx_stream_fishchat_msg_key(&p, "client:", id, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "inbox:", id, "");
    args[2] = ngx_stream_fishchat_msg_key(&p, "inbox:", id, ":m");
    args[3] = w->fcf->name;
    args[4] = w->channel;
    args[5] = sess->c->addr_text;
    args[6] = sess->conf->advertise;
    args[7].data = sid;
    args[7].len = ngx_sprintf(sid, "%uL", sess->sid) - sid;
    args[8].data = now;
    args[8].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[9] = *id;
    args[10].data = max;
    args[10].len = ngx_sprintf(max, "%ui", sess->conf->inbox_max) - max;
    args[11] = w->sys[NGX_STREAM_FISHCHAT_SYS_CLIENT_STATUS];
    args[12].data = budget;
    args[12].len = ngx_sprintf(budget, "%uz", sess->conf->send_buffer / 2)
                   - budget;

    /*
     * a resync goes on after what the session was sent: what was written
     * to it already is not written again
     */

    if (resync && sess->inbox_after_len) {
        args[13].data = sess->inbox_after;
        args[13].len = sess->inbox_after_len;
        args[14].data = sess->inbox_gen;
        args[14].len = sess->inbox_gen_len;

    } else {
        ngx_str_set(&args[13], "0");
        ngx_str_null(&args[14]);
    }

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->login,
                                        ngx_stream_fishchat_msg_logged_in,
                                        call, 3, 15, args);
    if (call->req == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        return NGX_DECLINED;
    }

    sess->logging_in = 1;

    return NGX_OK;
}


static void
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
            (void) ngx_stream_fishchat_msg_presence(sess, 1);
        }
    }
}


static void
ngx_stream_fishchat_msg_logged_in(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    u_char                              *stash;
    ngx_int_t                            rc;
    ngx_buf_t                            b;
    ngx_str_t                            args[3];
    ngx_uint_t                           resync;
    ngx_fishchat_out_t                  *held;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *sess;
    u_char                               pid[NGX_INT64_LEN];

    sess = call->sess;
    resync = call->resync;
    w = ngx_stream_fishchat_msg_worker;

    ngx_stream_fishchat_msg_call_done(call);

    sess->logging_in = 0;

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
            return;
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
            return;
        }
    }

    ngx_post_event(sess->c->read, &ngx_posted_events);

    if (!resync) {
        /* the topics of the client: what it missed, then live messages */
        ngx_stream_fishchat_topic_login(sess);
    }
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
    size_t       i;
    redisReply  *e;

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
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (ngx_stream_fishchat_msg_write(sess, (u_char *) e->str, e->len)
            != NGX_OK)
        {
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

    args[0] = ngx_stream_fishchat_msg_key(&p, "inbox:", &sess->node.str, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "inbox:", &sess->node.str,
                                          ":m");
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
    ngx_fishchat_msg_t *m)
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

    if (ref && ref->len > NGX_STREAM_FISHCHAT_MSG_ID_MAX) {
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


static ngx_int_t
ngx_stream_fishchat_msg_p2p(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    u_char                              *p;
    size_t                               size;
    ngx_int_t                            rc;
    ngx_str_t                            args[12], dargs[3], frame, *to;
    ngx_stream_fishchat_msg_call_t      *call;
    ngx_stream_fishchat_msg_worker_t    *w;
    u_char                               max[NGX_INT_T_LEN];
    u_char                               ttl[NGX_INT64_LEN];
    u_char                               uuid[NGX_STREAM_FISHCHAT_MSG_UUID_LEN];

    w = ngx_stream_fishchat_msg_worker;

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

    to = &m->args[0];

    if (ngx_stream_fishchat_msg_valid_id(to) != NGX_OK) {
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

    rc = ngx_stream_fishchat_msg_send_check(sess,
                                            m->nargs == 4 ? &m->args[3]
                                                          : NULL);
    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? NGX_OK : rc;
    }

    /*
     * the delivery frame, made once: stored, published and written;
     * the uuid is made first, as the size counts the bytes to escape
     */

    ngx_stream_fishchat_msg_uuid(uuid);

    dargs[0] = m->args[1];
    dargs[1] = m->args[2];
    dargs[2].data = uuid;
    dargs[2].len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;

    size = ngx_fishchat_frame_size(&ngx_stream_fishchat_msg_resp_p2p, dargs,
                                   3);

    call = ngx_stream_fishchat_msg_call(sess, size + to->len
                                              + (m->nargs == 4
                                                 ? m->args[3].len : 0));
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    ngx_memcpy(call->uuid, uuid, NGX_STREAM_FISHCHAT_MSG_UUID_LEN);
    dargs[2].data = call->uuid;

    frame.data = call->data;
    p = ngx_fishchat_frame_write(frame.data,
                                 &ngx_stream_fishchat_msg_resp_p2p, dargs, 3);
    frame.len = p - frame.data;

    call->frame = frame;

    call->to.data = p;
    call->to.len = to->len;
    p = ngx_cpymem(p, to->data, to->len);

    if (m->nargs == 4) {
        call->ref.data = p;
        call->ref.len = m->args[3].len;
        ngx_memcpy(p, m->args[3].data, m->args[3].len);
    }

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "inbox:", to, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "inbox:", to, ":m");
    args[2] = ngx_stream_fishchat_msg_key(&p, "client:", to, "");
    args[3] = dargs[2];
    args[4] = frame;
    args[5].data = max;
    args[5].len = ngx_sprintf(max, "%ui", sess->conf->inbox_max) - max;
    args[6].data = ttl;
    args[6].len = ngx_sprintf(ttl, "%M", sess->conf->inbox_ttl) - ttl;
    args[7] = w->channel;
    args[8] = call->to;
    args[9] = w->sys[NGX_STREAM_FISHCHAT_SYS_SEND];
    args[10] = m->args[2];
    args[11] = w->sys[NGX_STREAM_FISHCHAT_SYS_CLIENT_STATUS];

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->send,
                                        ngx_stream_fishchat_msg_stored,
                                        call, 3, 12, args);
    if (call->req == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "message not accepted: Redis "
                                              "is unavailable");
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

        if (reply == NULL && ngx_fishchat_redis_unknown()) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                             NGX_FISHCHAT_ERR_NOT_CONFIRMED,
                                             !sess->optin,
                                             "Redis did not answer: the "
                                             "message may have been stored");
            return;
        }

        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "message not accepted: Redis "
                                              "is unavailable");
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

    call->counters->messages++;

    if (sess && sess->optin) {
        args[0] = call->ref;
        args[1].data = call->uuid;
        args[1].len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;

        (void) ngx_stream_fishchat_msg_reply(sess, "ACCEPTED", args, 2);
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


ngx_int_t
ngx_stream_fishchat_msg_route(ngx_str_t *to, ngx_str_t *msg, ngx_str_t *from,
    u_char *uuid, ngx_stream_fishchat_msg_routed_pt handler, void *data,
    ngx_log_t *log)
{
    u_char                               *p;
    size_t                                size;
    ngx_str_t                             args[12], dargs[3];
    ngx_fishchat_redis_req_t             *req;
    ngx_stream_fishchat_msg_route_t      *r;
    ngx_stream_fishchat_msg_worker_t     *w;
    ngx_stream_fishchat_msg_srv_conf_t  **mscf;
    u_char                                max[NGX_INT_T_LEN];
    u_char                                ttl[NGX_INT64_LEN];

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL) {
        return NGX_ERROR;
    }

    /* the inbox limits of the first msg server of this node */
    mscf = w->mmcf->servers.elts;

    dargs[0] = *msg;
    dargs[1] = *from;
    dargs[2].data = uuid;
    dargs[2].len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;

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

    args[0] = ngx_stream_fishchat_msg_key(&p, "inbox:", to, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "inbox:", to, ":m");
    args[2] = ngx_stream_fishchat_msg_key(&p, "client:", to, "");
    args[3] = dargs[2];
    args[4] = r->frame;
    args[5].data = max;
    args[5].len = ngx_sprintf(max, "%ui", mscf[0]->inbox_max) - max;
    args[6].data = ttl;
    args[6].len = ngx_sprintf(ttl, "%M", mscf[0]->inbox_ttl) - ttl;
    args[7] = w->channel;
    args[8] = r->to;
    args[9] = w->sys[NGX_STREAM_FISHCHAT_SYS_SEND];
    args[10] = *from;
    args[11] = w->sys[NGX_STREAM_FISHCHAT_SYS_CLIENT_STATUS];

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), w->mmcf->send,
                                  ngx_stream_fishchat_msg_routed, r, 3, 12,
                                  args);
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


static ngx_int_t
ngx_stream_fishchat_msg_ack(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    u_char                              *p;
    ngx_str_t                            args[3];
    ngx_stream_fishchat_msg_call_t      *call;
    ngx_stream_fishchat_msg_worker_t    *w;

    w = ngx_stream_fishchat_msg_worker;

    if (!sess->logged_in) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                              1, "P2P_ACK before login");
    }

    if (m->nargs != 2
        || m->args[1].len != NGX_STREAM_FISHCHAT_MSG_UUID_LEN)
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

    call = ngx_stream_fishchat_msg_call(sess, 0);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "inbox:", &sess->node.str, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "inbox:", &sess->node.str,
                                           ":m");
    args[2] = m->args[1];

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->ack,
                                        ngx_stream_fishchat_msg_acked,
                                        call, 2, 3, args);
    if (call->req == NULL) {
        /* not lost: the message comes again at the next login */
        ngx_stream_fishchat_msg_call_done(call);
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: ack not recorded: Redis is unavailable");
    }

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_acked(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    if (call->sess->eof) {
        ngx_post_event(call->sess->c->write, &ngx_posted_events);
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_INFO, call->sess->c->log, 0,
                      "fishchat msg: ack not recorded: %s",
                      reply ? "script failed" : "Redis is unavailable");
    }

    ngx_stream_fishchat_msg_call_done(call);
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
    u_char     *p;
    va_list     args;
    ngx_str_t   text, eargs[2];
    u_char      buf[256];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    text.data = buf;
    text.len = p - buf;

    sess->counters->errors++;
    sess->counters->error[err]++;

    ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                  "fishchat msg: %V: %V%s", ngx_fishchat_err_code(err), &text,
                  fatal ? ", closing" : "");

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


ngx_int_t
ngx_stream_fishchat_msg_reply(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd, ngx_str_t *args, ngx_uint_t nargs)
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

    rc = ngx_stream_fishchat_msg_write(sess, buf, last - buf);

    if (buf != small) {
        ngx_free(buf);
    }

    if (rc == NGX_OK) {
        sess->counters->frames_out++;
    }

    return rc;
}


/*
 * A delivery from another session or another worker.  Returns NGX_ERROR
 * when the session was closed by it (a slow reader).
 */

static ngx_int_t
ngx_stream_fishchat_msg_deliver(ngx_stream_fishchat_msg_session_t *sess,
    u_char *frame, size_t len)
{
    if (sess->closed) {
        return NGX_ERROR;
    }

    if (sess->logging_in) {
        /*
         * after the inbox, to keep the order; should memory fail, the
         * message still waits in the inbox
         */
        (void) ngx_fishchat_out_append(&sess->held, frame, len,
                                       sess->c->log);
        return NGX_OK;
    }

    if (!sess->logged_in) {
        return NGX_OK;
    }

    if (sess->inbox_more) {
        /* it is in the inbox too, after the pages still to come */
        sess->inbox_missed = 1;
        return NGX_OK;
    }

    if (ngx_stream_fishchat_msg_write(sess, frame, len) != NGX_OK) {
        return NGX_ERROR;
    }

    sess->counters->frames_out++;

    return NGX_OK;
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
    ngx_stream_session_t                *s;
    ngx_stream_fishchat_msg_session_t   *sess;

    c = wev->data;
    s = c->data;
    sess = ngx_stream_get_module_ctx(s, ngx_stream_fishchat_msg_module);

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
 * Ids go into key names: 1 to 128 bytes, no white space or control
 * characters, and no braces (they would break the Redis Cluster hash tag).
 */

ngx_int_t
ngx_stream_fishchat_msg_valid_id(ngx_str_t *id)
{
    size_t  i;

    if (id->len == 0 || id->len > NGX_STREAM_FISHCHAT_MSG_ID_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] <= ' ' || id->data[i] == 0x7f
            || id->data[i] == '{' || id->data[i] == '}')
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* <prefix><kind>{<id>}<suffix>, written at *p */

ngx_str_t
ngx_stream_fishchat_msg_key(u_char **p, char *kind, ngx_str_t *id,
    char *suffix)
{
    ngx_str_t  key;

    key.data = *p;
    *p = ngx_sprintf(*p, "%V%s{%V}%s",
                     &ngx_stream_fishchat_msg_worker->fcf->redis_prefix,
                     kind, id, suffix);
    key.len = *p - key.data;

    return key;
}


static ngx_stream_fishchat_msg_session_t *
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

static void
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


/* a version 4 uuid from a per-worker xorshift128+ seeded at start */

void
ngx_stream_fishchat_msg_uuid(u_char *p)
{
    uint64_t                           x, y, r[2];
    ngx_uint_t                         i;
    ngx_stream_fishchat_msg_worker_t  *w;
    u_char                             b[16];
    static u_char                      hex[] = "0123456789abcdef";

    w = ngx_stream_fishchat_msg_worker;

    for (i = 0; i < 2; i++) {
        x = w->rnd[0];
        y = w->rnd[1];
        w->rnd[0] = y;
        x ^= x << 23;
        w->rnd[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
        r[i] = w->rnd[1] + y;
    }

    ngx_memcpy(b, r, 16);

    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }

        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xf];
    }
}


/* heartbeats of every msg server of this node, from every worker */

static void
ngx_stream_fishchat_msg_beat(ngx_event_t *ev)
{
    u_char                               *p, *counters;
    ngx_str_t                             args[8];
    ngx_uint_t                            i, k;
    ngx_atomic_int_t                      sessions;
    ngx_fishchat_slot_t                  *slot;
    ngx_stream_fishchat_msg_worker_t     *w;
    ngx_stream_fishchat_msg_srv_conf_t  **mscf;
    u_char                                ttl[NGX_INT_T_LEN];
    u_char                                load[256];
    u_char                                count[NGX_ATOMIC_T_LEN];

    w = ngx_stream_fishchat_msg_worker;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    mscf = w->mmcf->servers.elts;

    for (i = 0; i < w->mmcf->servers.nelts; i++) {

        sessions = 0;

        for (k = 0; w->fcf->zone && k < NGX_MAX_PROCESSES; k++) {
            counters = ngx_fishchat_zone_slot(w->fcf->zone, k, &slot);

            if (counters && slot->pid) {
                sessions += ((ngx_fishchat_counters_t *) counters
                             + mscf[i]->counters)->sessions;
            }
        }

        p = w->scratch;

        args[0].data = p;
        p = ngx_sprintf(p, "%V{nodes}:beat", &w->fcf->redis_prefix);
        args[0].len = p - args[0].data;

        args[1].data = p;
        p = ngx_sprintf(p, "%V{nodes}:load", &w->fcf->redis_prefix);
        args[1].len = p - args[1].data;

        args[2] = mscf[i]->advertise;

        args[3].data = ttl;
        args[3].len = ngx_sprintf(ttl, "%M", 3 * w->mmcf->heartbeat) - ttl;

        args[4].data = load;
        p = ngx_sprintf(load, "{\"node\":\"");
        p = (u_char *) ngx_escape_json(p, w->fcf->name.data,
                                       ngx_min(w->fcf->name.len, 64));
        p = ngx_sprintf(p, "\",\"sessions\":%A}", sessions);
        args[4].len = p - load;

        args[5] = w->sys[NGX_STREAM_FISHCHAT_SYS_MONITOR];
        args[6] = w->fcf->name;
        args[7].data = count;
        args[7].len = ngx_sprintf(count, "%A", sessions) - count;

        (void) ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                       w->mmcf->beat, NULL, NULL, 2, 8, args);
    }

    /* one worker of the node asks, until Redis has answered once */

    if (ngx_worker == 0
        && w->persistence == NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK)
    {
        ngx_stream_fishchat_msg_persistence(w, "appendonly",
                                            ngx_stream_fishchat_msg_aof);
    }

    ngx_add_timer(ev, w->mmcf->heartbeat);
}


/*
 * An accepted message is only as safe as Redis keeps it: a warning when
 * Redis has neither the append-only file nor RDB snapshots.  Nothing is
 * said when CONFIG is refused (a managed Redis may rename it).
 */

static void
ngx_stream_fishchat_msg_persistence(ngx_stream_fishchat_msg_worker_t *w,
    const char *param, ngx_fishchat_redis_handler_pt handler)
{
    const char  *argv[3];
    size_t       argvlen[3];

    argv[0] = "CONFIG";
    argv[1] = "GET";
    argv[2] = param;

    argvlen[0] = sizeof("CONFIG") - 1;
    argvlen[1] = sizeof("GET") - 1;
    argvlen[2] = ngx_strlen(param);

    w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASKING;

    if (ngx_fishchat_redis_command(ngx_fishchat_redis_link(), handler, w, 3,
                                   argv, argvlen)
        == NULL)
    {
        w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK;
    }
}


static void
ngx_stream_fishchat_msg_aof(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_worker_t *w = data;

    if (reply == NULL) {
        /* Redis did not answer: asked again at the next heartbeat */
        w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK;
        return;
    }

    w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_KNOWN;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (reply->element[1]->len == 3
        && ngx_strncmp(reply->element[1]->str, "yes", 3) == 0)
    {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: redis %V keeps its data in an "
                      "append-only file", &w->fcf->redis->url);
        return;
    }

    ngx_stream_fishchat_msg_persistence(w, "save", ngx_stream_fishchat_msg_rdb);
}


static void
ngx_stream_fishchat_msg_rdb(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_worker_t *w = data;

    if (reply == NULL) {
        w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK;
        return;
    }

    w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_KNOWN;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (reply->element[1]->len) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: redis %V keeps its data in RDB "
                      "snapshots only (save \"%*s\"): what came after the "
                      "last one is lost when it restarts",
                      &w->fcf->redis->url, (size_t) reply->element[1]->len,
                      reply->element[1]->str);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "fishchat msg: redis %V keeps its data in memory only "
                  "(no append-only file, no RDB snapshots): accepted "
                  "messages are lost when it restarts, see "
                  "docs/operations.md", &w->fcf->redis->url);
}


/* for the monitor: what waits in the output queues of the sessions */

static void
ngx_stream_fishchat_msg_stats(ngx_fishchat_slot_t *slot)
{
    size_t                              bytes;
    ngx_rbtree_node_t                  *node, *root, *sentinel;
    ngx_stream_fishchat_msg_worker_t   *w;
    ngx_stream_fishchat_msg_session_t  *sess;

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL) {
        return;
    }

    slot->backlog += ngx_stream_fishchat_topic_backlog();

    sentinel = w->sessions.sentinel;
    root = w->sessions.root;

    if (root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&w->sessions, node))
    {
        sess = (ngx_stream_fishchat_msg_session_t *) node;

        bytes = sess->out.bytes + sess->held.bytes;

        if (bytes) {
            slot->queued += bytes;
            slot->queues++;
        }

        if (sess->is_stalled) {
            slot->stalled++;
        }
    }
}


/* configuration */

static void *
ngx_stream_fishchat_msg_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_fishchat_msg_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mmcf->servers, cf->pool, 2,
                       sizeof(ngx_stream_fishchat_msg_srv_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    mmcf->heartbeat = NGX_CONF_UNSET_MSEC;
    mmcf->topic_backlog = NGX_CONF_UNSET;

    return mmcf;
}


static char *
ngx_stream_fishchat_msg_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_fishchat_msg_main_conf_t *mmcf = conf;

    ngx_conf_init_msec_value(mmcf->heartbeat, 2000);
    ngx_conf_init_value(mmcf->topic_backlog, 1024);

    if (mmcf->topic_backlog < 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_topic_backlog\" must be at least 2");
        return NGX_CONF_ERROR;
    }

    if (mmcf->heartbeat < 10) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_msg_heartbeat\" must be at least 10ms");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_stream_fishchat_msg_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_fishchat_msg_srv_conf_t  *mscf;

    mscf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_fishchat_msg_srv_conf_t));
    if (mscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mscf->enabled = 0;
     *     mscf->advertise = { 0, NULL };
     *     mscf->cscf = NULL;
     */

    mscf->keepalive = NGX_CONF_UNSET_MSEC;
    mscf->inbox_max = NGX_CONF_UNSET_UINT;
    mscf->inbox_ttl = NGX_CONF_UNSET_MSEC;
    mscf->rate = NGX_CONF_UNSET_UINT;
    mscf->burst = NGX_CONF_UNSET_UINT;
    mscf->send_buffer = NGX_CONF_UNSET_SIZE;
    mscf->topic_history = NGX_CONF_UNSET_UINT;

    return mscf;
}


static char *
ngx_stream_fishchat_msg_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_fishchat_msg_srv_conf_t *prev = parent;
    ngx_stream_fishchat_msg_srv_conf_t *conf = child;

    ngx_conf_merge_msec_value(conf->keepalive, prev->keepalive, 100000);
    ngx_conf_merge_uint_value(conf->inbox_max, prev->inbox_max, 1000);
    ngx_conf_merge_msec_value(conf->inbox_ttl, prev->inbox_ttl,
                              7 * 24 * 3600 * 1000);
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 100);
    ngx_conf_merge_uint_value(conf->burst, prev->burst, conf->rate);
    ngx_conf_merge_size_value(conf->send_buffer, prev->send_buffer,
                              1024 * 1024);
    ngx_conf_merge_uint_value(conf->topic_history, prev->topic_history,
                              1000);

    if (conf->burst == 0) {
        conf->burst = 1;
    }

    if (conf->topic_history == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_topic_history\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (conf->inbox_max == 0 || conf->inbox_ttl == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_msg_inbox_max\" and "
                           "\"fishchat_msg_inbox_ttl\" must not be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the address clients are given: fishchat_msg_advertise, or the listen */

static ngx_int_t
ngx_stream_fishchat_msg_postconfiguration(ngx_conf_t *cf)
{
    u_char                               *p;
    in_port_t                             port;
    ngx_uint_t                            i, j, k, l;
    ngx_fishchat_conf_t                  *fcf;
    ngx_stream_conf_addr_t               *addr;
    ngx_stream_conf_port_t               *ports;
    ngx_stream_core_srv_conf_t          **cscfp;
    ngx_stream_core_main_conf_t          *cmcf;
    ngx_stream_fishchat_msg_srv_conf_t  **mscf;
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;

    mmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_fishchat_msg_module);
    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    fcf = ngx_fishchat_conf(cf);

    mscf = mmcf->servers.elts;

    for (i = 0; i < mmcf->servers.nelts; i++) {

        if (mscf[i]->advertise.len) {
            continue;
        }

        ports = cmcf->ports ? cmcf->ports->elts : NULL;

        for (j = 0; ports && j < cmcf->ports->nelts; j++) {
            addr = ports[j].addrs.elts;

            for (k = 0; k < ports[j].addrs.nelts; k++) {
                cscfp = addr[k].servers.elts;

                for (l = 0; l < addr[k].servers.nelts; l++) {
                    if (cscfp[l] != mscf[i]->cscf) {
                        continue;
                    }

                    if (!addr[k].opt.wildcard) {
                        mscf[i]->advertise = addr[k].opt.addr_text;
                        goto found;
                    }

                    port = ngx_inet_get_port(addr[k].opt.sockaddr);

                    p = ngx_pnalloc(cf->pool, NGX_MAXHOSTNAMELEN
                                              + sizeof(":65535"));
                    if (p == NULL) {
                        return NGX_ERROR;
                    }

                    mscf[i]->advertise.data = p;
                    mscf[i]->advertise.len =
                        ngx_snprintf(p, NGX_MAXHOSTNAMELEN + sizeof(":65535"),
                                     "%V:%d",
                                     fcf->advertise.len ? &fcf->advertise
                                                        : &cf->cycle->hostname,
                                     (int) port)
                        - p;
                    goto found;
                }
            }
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "a \"fishchat_msg\" server has no \"listen\"");
        return NGX_ERROR;

    found:

        continue;
    }

    return NGX_OK;
}


static char *
ngx_stream_fishchat_msg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_fishchat_msg_srv_conf_t *mscf = conf;

    ngx_stream_core_srv_conf_t            *cscf;
    ngx_stream_fishchat_msg_srv_conf_t   **p;
    ngx_stream_fishchat_msg_main_conf_t   *mmcf;

    if (mscf->enabled) {
        return "is duplicate";
    }

    if (ngx_fishchat_counters_add(cf, "msg", &mscf->counters) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    mscf->enabled = 1;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = ngx_stream_fishchat_msg_handler;
    mscf->cscf = cscf;

    mmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_fishchat_msg_module);

    if (mmcf->login == NULL) {
        mmcf->login = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_login_lua);
        mmcf->send = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_send_lua);
        mmcf->ack = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_ack_lua);
        mmcf->logout = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_logout_lua);
        mmcf->beat = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_beat_lua);
        mmcf->fetch = ngx_fishchat_redis_script(cf,
                                            ngx_stream_fishchat_msg_fetch_lua);

        if (mmcf->login == NULL || mmcf->send == NULL || mmcf->ack == NULL
            || mmcf->logout == NULL || mmcf->beat == NULL
            || mmcf->fetch == NULL)
        {
            return NGX_CONF_ERROR;
        }

        if (ngx_stream_fishchat_topic_conf(cf, mmcf) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(&mmcf->servers);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    *p = mscf;

    return NGX_CONF_OK;
}


/* fishchat_msg_rate number [burst=number]: messages a second, 0 is off */

static char *
ngx_stream_fishchat_msg_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_fishchat_msg_srv_conf_t *mscf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (mscf->rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n > 1000000) {
        return "invalid rate";
    }

    mscf->rate = n;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
            return "invalid parameter";
        }

        n = ngx_atoi(value[2].data + 6, value[2].len - 6);
        if (n == NGX_ERROR || n == 0 || n > 1000000) {
            return "invalid burst";
        }

        mscf->burst = n;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_fishchat_msg_init_module(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t                  *fcf;
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;

    mmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                ngx_stream_fishchat_msg_module);

    if (mmcf == NULL || mmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_msg\" needs \"fishchat_redis\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_fishchat_msg_init_process(ngx_cycle_t *cycle)
{
    u_char                               *p;
    ngx_uint_t                            i;
    ngx_fishchat_conf_t                  *fcf;
    ngx_stream_fishchat_msg_worker_t     *w;
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;

    mmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                ngx_stream_fishchat_msg_module);

    if (mmcf == NULL || mmcf->servers.nelts == 0) {
        return NGX_OK;
    }

    fcf = ngx_fishchat_get_conf(cycle);

    w = ngx_pcalloc(cycle->pool, sizeof(ngx_stream_fishchat_msg_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->mmcf = mmcf;
    w->fcf = fcf;

    ngx_rbtree_init(&w->sessions, &w->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&w->stalled);

    w->scratch_size = 4 * (fcf->redis_prefix.len
                           + NGX_STREAM_FISHCHAT_MSG_ID_MAX + 64);
    w->scratch = ngx_palloc(cycle->pool, w->scratch_size);
    if (w->scratch == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cycle->pool, fcf->redis_prefix.len + fcf->name.len
                                 + sizeof("w::") + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    w->channel.data = p;
    w->channel.len = ngx_sprintf(p, "%Vw:%V:%P", &fcf->redis_prefix,
                                 &fcf->name, ngx_pid)
                     - p;

    for (i = 0; i < NGX_STREAM_FISHCHAT_SYS_N; i++) {
        p = ngx_pnalloc(cycle->pool, fcf->redis_prefix.len + sizeof("sys:")
                                     + ngx_strlen(
                                           ngx_stream_fishchat_sys_names[i]));
        if (p == NULL) {
            return NGX_ERROR;
        }

        w->sys[i].data = p;
        w->sys[i].len = ngx_sprintf(p, "%Vsys:%s", &fcf->redis_prefix,
                                    ngx_stream_fishchat_sys_names[i])
                        - p;
    }

    if (ngx_fishchat_get_random(w->rnd, sizeof(w->rnd), cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * session ids are compared between workers and nodes (a login
     * elsewhere closes every session of the id but the new one, a logout
     * removes the presence only if it is still its own): each worker
     * counts from a random start, so that they do not meet
     */

    if (ngx_fishchat_get_random(&w->serial, sizeof(w->serial), cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_stream_fishchat_msg_worker = w;

    if (ngx_fishchat_redis_start(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_fishchat_redis_subscribe(cycle, &w->channel,
                                     ngx_stream_fishchat_msg_channel,
                                     ngx_stream_fishchat_msg_resync, w)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_stream_fishchat_topic_init_worker(cycle, w) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_fishchat_stats_handler(ngx_stream_fishchat_msg_stats) != NGX_OK) {
        return NGX_ERROR;
    }

    w->beat.handler = ngx_stream_fishchat_msg_beat;
    w->beat.data = w;
    w->beat.log = cycle->log;
    w->beat.cancelable = 1;

    ngx_stream_fishchat_msg_beat(&w->beat);

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_fishchat_msg_worker_t  *w;

    w = ngx_stream_fishchat_msg_worker;

    if (w == NULL) {
        return;
    }

    if (w->beat.timer_set) {
        ngx_del_timer(&w->beat);
    }

    ngx_stream_fishchat_topic_exit_worker(w);

    ngx_stream_fishchat_msg_worker = NULL;
}
