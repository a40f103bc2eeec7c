
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
#include "ngx_fishchat_stream.h"
#include "ngx_stream_fishchat_msg_private.h"


static void ngx_stream_fishchat_msg_beat(ngx_event_t *ev);
static void ngx_stream_fishchat_msg_persistence(
    ngx_stream_fishchat_msg_worker_t *w, const char *param,
    ngx_fishchat_redis_handler_pt handler);
static void ngx_stream_fishchat_msg_aof(redisReply *reply, void *data);
static void ngx_stream_fishchat_msg_rdb(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_msg_config(
    ngx_stream_fishchat_msg_worker_t *w, redisReply *reply, ngx_str_t *value);
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
static void ngx_stream_fishchat_msg_pool_size(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_fishchat_msg_init_process(ngx_cycle_t *cycle);
static void ngx_stream_fishchat_msg_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_stream_fishchat_msg_auth_modes[] = {
    { ngx_string("off"), NGX_STREAM_FISHCHAT_MSG_AUTH_OFF },
    { ngx_string("token"), NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN },
    { ngx_null_string, 0 }
};


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

    { ngx_string("fishchat_msg_auth"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_msg_srv_conf_t, auth),
      &ngx_stream_fishchat_msg_auth_modes },

    { ngx_string("fishchat_msg_login_rate"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE12,
      ngx_stream_fishchat_msg_login_rate,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
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
 * KEYS: presence, inbox order, inbox messages, the id's revocation.
 * ARGV: node, worker channel, client address, msg server, session id,
 * login time, id, how many pending messages to return, the system
 * channel of client events, how many bytes of them, the last seq the
 * session was sent from the inbox and its generation ("0" and "" at
 * login: the whole inbox), the login token's "iat" ("" without one).
 * A token issued before the id's revocation is answered "REVOKED".
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
    "if ARGV[13] ~= '' then "
        "local r = redis.call('GET', KEYS[4]) "
        "if r and tonumber(ARGV[13]) < tonumber(r) then "
            "return 'REVOKED' "
        "end "
    "end "
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


static ngx_fishchat_redis_script_slot_t
    ngx_stream_fishchat_msg_scripts[] =
{
    { ngx_stream_fishchat_msg_login_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, login) },
    { ngx_stream_fishchat_msg_send_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, send) },
    { ngx_stream_fishchat_msg_ack_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, ack) },
    { ngx_stream_fishchat_msg_logout_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, logout) },
    { ngx_stream_fishchat_msg_beat_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, beat) },
    { ngx_stream_fishchat_msg_fetch_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, fetch) },
    { ngx_stream_fishchat_msg_revoked_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, revoked) },
    { ngx_stream_fishchat_msg_media_publish_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, media_publish) },
    { ngx_stream_fishchat_msg_media_play_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, media_play) },
    { ngx_stream_fishchat_msg_file_slot_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_slot) },
    { ngx_stream_fishchat_msg_file_send_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_send) },
    { ngx_stream_fishchat_msg_file_ref_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_ref) },
    { ngx_stream_fishchat_msg_file_url_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_url) },
    { ngx_stream_fishchat_msg_file_topic_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_topic) },
    { ngx_stream_fishchat_msg_file_delete_lua,
      offsetof(ngx_stream_fishchat_msg_main_conf_t, file_delete) },
    { NULL, 0 }
};


ngx_stream_fishchat_msg_worker_t  *ngx_stream_fishchat_msg_worker;


/* heartbeats of every msg server of this node, from every worker */

static void
ngx_stream_fishchat_msg_beat(ngx_event_t *ev)
{
    u_char                               *counters;
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

        args[0] = w->fcf->beat_key;
        args[1] = w->fcf->load_key;
        args[2] = mscf[i]->advertise;

        args[3].data = ttl;
        args[3].len = ngx_sprintf(ttl, "%M", 3 * w->mmcf->heartbeat) - ttl;

        args[4].data = load;
        args[4].len = ngx_fishchat_load_encode(load, sizeof(load),
                                               &w->fcf->name, sessions,
                                               mscf[i]->ssl)
                      - load;

        args[5] = w->fcf->sys[NGX_FISHCHAT_SYS_MONITOR];
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

    ngx_str_t  value;

    if (ngx_stream_fishchat_msg_config(w, reply, &value) != NGX_OK) {
        return;
    }

    if (value.len == 3 && ngx_strncmp(value.data, "yes", 3) == 0) {
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

    ngx_str_t  value;

    if (ngx_stream_fishchat_msg_config(w, reply, &value) != NGX_OK) {
        return;
    }

    if (value.len) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: redis %V keeps its data in RDB "
                      "snapshots only (save \"%V\"): what came after the "
                      "last one is lost when it restarts",
                      &w->fcf->redis->url, &value);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "fishchat msg: redis %V keeps its data in memory only "
                  "(no append-only file, no RDB snapshots): accepted "
                  "messages are lost when it restarts, see "
                  "docs/operations.md", &w->fcf->redis->url);
}


/*
 * The value of a CONFIG GET reply.  No reply: asked again at the next
 * heartbeat; a refusal (CONFIG renamed or forbidden): nothing is said.
 */

static ngx_int_t
ngx_stream_fishchat_msg_config(ngx_stream_fishchat_msg_worker_t *w,
    redisReply *reply, ngx_str_t *value)
{
    if (reply == NULL) {
        w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK;
        return NGX_DECLINED;
    }

    w->persistence = NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_KNOWN;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return NGX_DECLINED;
    }

    return ngx_fishchat_redis_str(reply->element[1], value);
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
    mscf->auth = NGX_CONF_UNSET_UINT;
    mscf->login_rate = NGX_CONF_UNSET_UINT;
    mscf->login_burst = NGX_CONF_UNSET_UINT;

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
    ngx_conf_merge_uint_value(conf->auth, prev->auth,
                              NGX_STREAM_FISHCHAT_MSG_AUTH_OFF);
    ngx_conf_merge_uint_value(conf->login_rate, prev->login_rate, 0);
    ngx_conf_merge_uint_value(conf->login_burst, prev->login_burst, 1);

    if (conf->auth == NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN) {
        /* the core checks that a key is set once it has read it all */
        ngx_fishchat_conf(cf)->auth_required = 1;
    }

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


/* the address clients are given (fishchat_msg_advertise, or the listen), and
 * whether it is TLS; the log phase of the stream roles */

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

    if (ngx_fishchat_stream_log_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    mscf = mmcf->servers.elts;

    for (i = 0; i < mmcf->servers.nelts; i++) {

        ports = cmcf->ports ? cmcf->ports->elts : NULL;

        for (j = 0; ports && j < cmcf->ports->nelts; j++) {
            addr = ports[j].addrs.elts;

            for (k = 0; k < ports[j].addrs.nelts; k++) {
                cscfp = addr[k].servers.elts;

                for (l = 0; l < addr[k].servers.nelts; l++) {
                    if (cscfp[l] != mscf[i]->cscf) {
                        continue;
                    }

#if (NGX_STREAM_SSL)
                    mscf[i]->ssl = addr[k].opt.ssl;
#endif

                    if (mscf[i]->advertise.len) {
                        goto found;
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

    char                                  *rv;
    ngx_stream_fishchat_msg_srv_conf_t   **p;
    ngx_stream_fishchat_msg_main_conf_t   *mmcf;

    rv = ngx_fishchat_stream_role(cf, "msg", &mscf->enabled, &mscf->counters,
                                  ngx_stream_fishchat_msg_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mscf->cscf = ngx_stream_conf_get_module_srv_conf(cf,
                                                     ngx_stream_core_module);

    mmcf = ngx_stream_conf_get_module_main_conf(cf,
                                                ngx_stream_fishchat_msg_module);

    if (mmcf->login == NULL) {
        if (ngx_fishchat_redis_scripts(cf, mmcf,
                                       ngx_stream_fishchat_msg_scripts)
            != NGX_OK)
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

    return ngx_stream_fishchat_msg_burst(cf, &mscf->burst);
}


/* the "burst=<n>" of fishchat_msg_rate and fishchat_msg_login_rate */

char *
ngx_stream_fishchat_msg_burst(ngx_conf_t *cf, ngx_uint_t *burst)
{
    ngx_int_t   n;
    ngx_str_t  *value;

    if (cf->args->nelts != 3) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
        return "invalid parameter";
    }

    n = ngx_atoi(value[2].data + 6, value[2].len - 6);
    if (n == NGX_ERROR || n == 0 || n > 1000000) {
        return "invalid burst";
    }

    *burst = n;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_fishchat_msg_init_module(ngx_cycle_t *cycle)
{
    if (ngx_stream_fishchat_msg_servers(cycle) == 0) {
        return NGX_OK;
    }

    ngx_stream_fishchat_msg_pool_size(cycle);

    return ngx_fishchat_redis_needed(cycle, "fishchat_msg");
}


/*
 * The pool of a connection that a msg server takes is made large enough
 * for one idle session: the client's address, the log, the stream
 * session with its arrays, our session and its cleanup in one block.  The
 * 256 bytes stream's "listen" gives it (ngx_stream_add_listening()) took
 * three blocks and a fourth allocation for our session; a session lives
 * long and thousands of them are held, so these are most of what a worker
 * spends on one (bench/README.md, "Memory a session").  A listen socket
 * counts when the default server of one of its addresses is a msg server.
 * Only memory changes: what does not fit goes to a further block, as
 * before.
 */

static void
ngx_stream_fishchat_msg_pool_size(ngx_cycle_t *cycle)
{
    size_t                               size;
    ngx_uint_t                           i, n, naddrs;
    ngx_listening_t                     *ls;
    ngx_stream_port_t                   *port;
    ngx_stream_addr_conf_t              *addr;
    ngx_stream_core_srv_conf_t          *cscf;
    ngx_stream_core_main_conf_t         *cmcf;
    ngx_stream_fishchat_msg_srv_conf_t  *mscf;

    cmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                 ngx_stream_core_module);

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {

        if (ls[i].handler != ngx_stream_init_connection) {
            continue;
        }

        port = ls[i].servers;
        naddrs = port->naddrs;

        for (n = 0; n < naddrs; n++) {

            switch (ls[i].sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
            case AF_INET6:
                addr = &((ngx_stream_in6_addr_t *) port->addrs)[n].conf;
                break;
#endif

            default: /* AF_INET, AF_UNIX */
                addr = &((ngx_stream_in_addr_t *) port->addrs)[n].conf;
                break;
            }

            cscf = addr->default_server;
            mscf = ngx_stream_conf_get_module_srv_conf(cscf,
                                               ngx_stream_fishchat_msg_module);

            if (!mscf->enabled) {
                continue;
            }

            /*
             * in the order of ngx_event_accept() and
             * ngx_stream_init_connection(), each allocation aligned
             */

            size = sizeof(ngx_pool_t)
                   + ngx_align(ls[i].socklen, NGX_ALIGNMENT)
                   + ngx_align(sizeof(ngx_log_t), NGX_ALIGNMENT)
                   + ngx_align(ls[i].addr_text_max_len, NGX_ALIGNMENT)
                   + ngx_align(sizeof(ngx_stream_session_t), NGX_ALIGNMENT)
                   + ngx_stream_max_module * sizeof(void *)
                   + cmcf->variables.nelts
                     * sizeof(ngx_stream_variable_value_t)
                   + ngx_align(sizeof(ngx_stream_fishchat_msg_session_t),
                               NGX_ALIGNMENT)
                   + sizeof(ngx_pool_cleanup_t);

            if (mscf->auth == NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN) {
                /* the timer of the token's end */
                size += ngx_align(sizeof(ngx_event_t), NGX_ALIGNMENT);
            }

#if (NGX_STREAM_SSL)
            if (addr->ssl) {
                /* and the server name the client sent (SNI), if short */
                size += ngx_align(sizeof(ngx_ssl_connection_t),
                                  NGX_ALIGNMENT)
                        + NGX_STREAM_FISHCHAT_MSG_SNI_ROOM;
            }
#endif

            if (size > ls[i].pool_size) {
                ls[i].pool_size = size;
            }
        }
    }
}


static ngx_int_t
ngx_stream_fishchat_msg_init_process(ngx_cycle_t *cycle)
{
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
                           + NGX_FISHCHAT_ID_MAX + 64);
    w->scratch = ngx_palloc(cycle->pool, w->scratch_size);
    if (w->scratch == NULL) {
        return NGX_ERROR;
    }

    if (ngx_stream_fishchat_msg_limiter_init(w, cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_stream_fishchat_msg_acks_init(cycle, fcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_fishchat_worker_channel(cycle->pool, &w->channel) != NGX_OK) {
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

    ngx_fishchat_event_init(&w->beat, ngx_stream_fishchat_msg_beat,
                            w, cycle->log);
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
