
/*
 * FishChat for nginx: the manager role.
 *
 * "fishchat_manager;" in a location answers a REST API in JSON over the
 * state in Redis: the clients (presence, the online ones page by page,
 * kicking a session), their inboxes, the topics and their members and
 * history, messages posted to a client or a topic, and the live nodes.
 * See docs/manager.md.
 *
 * Every Redis round trip is asynchronous on the worker's command link:
 * the request holds a reference while a command is under way and is
 * finalized from the reply's handler.  A request that goes away meanwhile
 * (the client closed, worker_shutdown_timeout) cancels its command from
 * the cleanup of its pool, so that a late reply never touches it.
 *
 * Messages and topic changes run the msg server's own scripts
 * (ngx_fishchat_lua.h), so what the manager posts is stored and delivered
 * exactly as a message sent over TCP.  A change that a live session must
 * see (a member added or removed, a topic deleted, a kick) is published to
 * the channel of the session's worker, as the msg servers do between
 * themselves (docs/keyspace.md).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"


#define NGX_HTTP_FISHCHAT_MANAGER_ID_MAX     128
#define NGX_HTTP_FISHCHAT_MANAGER_UUID_LEN   36
#define NGX_HTTP_FISHCHAT_MANAGER_PAGE       100
#define NGX_HTTP_FISHCHAT_MANAGER_PAGE_MAX   1000
#define NGX_HTTP_FISHCHAT_MANAGER_SEGS       4
#define NGX_HTTP_FISHCHAT_MANAGER_PARAMS     2
#define NGX_HTTP_FISHCHAT_MANAGER_CURSOR_MAX 20
#define NGX_HTTP_FISHCHAT_MANAGER_RETRY      "1"


typedef struct {
    ngx_flag_t                      enabled;
    ngx_str_t                       token;
    size_t                          body_max;
    ngx_uint_t                      inbox_max;
    ngx_msec_t                      inbox_ttl;
    ngx_uint_t                      topic_history;
} ngx_http_fishchat_manager_loc_conf_t;


typedef struct {
    ngx_uint_t                      enabled;

    /* the msg server's scripts */
    ngx_fishchat_redis_script_t    *send;
    ngx_fishchat_redis_script_t    *ack;
    ngx_fishchat_redis_script_t    *topic_create;
    ngx_fishchat_redis_script_t    *topic_join;
    ngx_fishchat_redis_script_t    *topic_leave;
    ngx_fishchat_redis_script_t    *topic_send;

    /* the manager's own */
    ngx_fishchat_redis_script_t    *client;
    ngx_fishchat_redis_script_t    *clients;
    ngx_fishchat_redis_script_t    *kick;
    ngx_fishchat_redis_script_t    *inbox;
    ngx_fishchat_redis_script_t    *topic;
    ngx_fishchat_redis_script_t    *topics;
    ngx_fishchat_redis_script_t    *topic_delete;
    ngx_fishchat_redis_script_t    *members;
    ngx_fishchat_redis_script_t    *history;
    ngx_fishchat_redis_script_t    *client_topic;
    ngx_fishchat_redis_script_t    *nodes;
} ngx_http_fishchat_manager_main_conf_t;


/* the JSON of a response, grown as it is written */

typedef struct {
    ngx_pool_t                     *pool;
    u_char                         *start;
    u_char                         *pos;
    u_char                         *end;
    ngx_uint_t                      failed;
} ngx_http_fishchat_manager_out_t;


typedef struct ngx_http_fishchat_manager_ctx_s
    ngx_http_fishchat_manager_ctx_t;

/* a reply arrived: NGX_DONE when another command is under way */
typedef ngx_int_t (*ngx_http_fishchat_manager_done_pt)(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);

/* an endpoint: NGX_DONE when a command is under way, or what to finalize */
typedef ngx_int_t (*ngx_http_fishchat_manager_start_pt)(
    ngx_http_fishchat_manager_ctx_t *ctx);


struct ngx_http_fishchat_manager_ctx_s {
    ngx_http_request_t             *request;
    ngx_http_fishchat_manager_loc_conf_t   *conf;
    ngx_http_fishchat_manager_main_conf_t  *main;
    ngx_fishchat_conf_t            *fcf;

    ngx_fishchat_redis_req_t       *req;
    ngx_http_fishchat_manager_done_pt   done;
    ngx_http_fishchat_manager_start_pt  start;

    ngx_str_t                       param[NGX_HTTP_FISHCHAT_MANAGER_PARAMS];
    ngx_str_t                       cursor;
    ngx_uint_t                      count;

    json_t                         *json;
    ngx_str_t                       name;      /* of a body's topic */
    ngx_str_t                       id;        /* of a body's client */

    u_char                         *scratch;   /* key names */
    u_char                          uuid[NGX_HTTP_FISHCHAT_MANAGER_UUID_LEN];

    unsigned                        waiting:1;
    unsigned                        starting:1;
    unsigned                        stores:1;  /* a command that writes */
};


typedef struct {
    ngx_uint_t                      nsegs;
    char                           *seg[NGX_HTTP_FISHCHAT_MANAGER_SEGS];
    ngx_http_fishchat_manager_start_pt  get;
    ngx_http_fishchat_manager_start_pt  post;
    ngx_http_fishchat_manager_start_pt  put;
    ngx_http_fishchat_manager_start_pt  del;
} ngx_http_fishchat_manager_route_t;


static ngx_int_t ngx_http_fishchat_manager_handler(ngx_http_request_t *r);
static void ngx_http_fishchat_manager_body_handler(ngx_http_request_t *r);
static void ngx_http_fishchat_manager_run(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_auth(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_fishchat_manager_route(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_http_fishchat_manager_route_t **route);
static ngx_int_t ngx_http_fishchat_manager_allow(ngx_http_request_t *r,
    ngx_http_fishchat_manager_route_t *route);
static ngx_int_t ngx_http_fishchat_manager_page(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_int_t *rc);
static ngx_int_t ngx_http_fishchat_manager_read_body(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_int_t *rc);
static ngx_int_t ngx_http_fishchat_manager_field(
    ngx_http_fishchat_manager_ctx_t *ctx, char *name, ngx_str_t *value);
static ngx_int_t ngx_http_fishchat_manager_valid_id(ngx_str_t *id);
static void ngx_http_fishchat_manager_cleanup(void *data);
static void ngx_http_fishchat_manager_json_cleanup(void *data);

static ngx_int_t ngx_http_fishchat_manager_eval(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done, ngx_uint_t nkeys,
    ngx_uint_t nargs, ngx_str_t *args);
static void ngx_http_fishchat_manager_reply(redisReply *reply, void *data);
static ngx_str_t ngx_http_fishchat_manager_key(
    ngx_http_fishchat_manager_ctx_t *ctx, u_char **p, char *kind,
    ngx_str_t *id, char *suffix);
static ngx_str_t ngx_http_fishchat_manager_sys(
    ngx_http_fishchat_manager_ctx_t *ctx, u_char **p, char *name);
static ngx_str_t ngx_http_fishchat_manager_pattern(
    ngx_http_fishchat_manager_ctx_t *ctx, u_char **p, char *kind);
static void ngx_http_fishchat_manager_uuid(u_char *p);

static ngx_int_t ngx_http_fishchat_manager_error(ngx_http_request_t *r,
    ngx_uint_t status, char *code, const char *fmt, ...);
static ngx_int_t ngx_http_fishchat_manager_header(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static ngx_int_t ngx_http_fishchat_manager_send(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_uint_t status,
    ngx_http_fishchat_manager_out_t *out);
static void ngx_http_fishchat_manager_out_init(
    ngx_http_fishchat_manager_out_t *out, ngx_pool_t *pool, size_t size);
static u_char *ngx_http_fishchat_manager_reserve(
    ngx_http_fishchat_manager_out_t *out, size_t size);
static void ngx_http_fishchat_manager_fmt(ngx_http_fishchat_manager_out_t *out,
    const char *fmt, ...);
static void ngx_http_fishchat_manager_str(ngx_http_fishchat_manager_out_t *out,
    ngx_str_t *s);
static void ngx_http_fishchat_manager_rstr(
    ngx_http_fishchat_manager_out_t *out, redisReply *e);
static void ngx_http_fishchat_manager_rnum(
    ngx_http_fishchat_manager_out_t *out, redisReply *e);
static void ngx_http_fishchat_manager_presence(
    ngx_http_fishchat_manager_out_t *out, redisReply **p);
static void ngx_http_fishchat_manager_cursor(
    ngx_http_fishchat_manager_out_t *out, redisReply *e, ngx_uint_t more);

static ngx_int_t ngx_http_fishchat_manager_client(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_client_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_clients(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_scan(
    ngx_http_fishchat_manager_ctx_t *ctx, char *kind,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done);
static ngx_int_t ngx_http_fishchat_manager_clients_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_kick(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_kick_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_inbox(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_inbox_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_inbox_delete(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_inbox_deleted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topics(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_topics_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_create(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_topic_created(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_creator(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_topic_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_delete(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_topic_deleted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_members(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_members_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_member_add(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_member_remove(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_member(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script);
static ngx_int_t ngx_http_fishchat_manager_member_changed(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_member_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_client_topic(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *id, ngx_str_t *name,
    ngx_uint_t join, ngx_http_fishchat_manager_done_pt done);
static ngx_int_t ngx_http_fishchat_manager_history(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_history_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_message(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_nodes(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_nodes_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);

static void *ngx_http_fishchat_manager_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_fishchat_manager_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fishchat_manager_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_fishchat_manager(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_fishchat_manager_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_fishchat_manager_init_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_fishchat_manager_commands[] = {

    { ngx_string("fishchat_manager"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fishchat_manager,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_manager_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_manager_loc_conf_t, token),
      NULL },

    { ngx_string("fishchat_manager_body_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_manager_loc_conf_t, body_max),
      NULL },

    { ngx_string("fishchat_manager_inbox_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_manager_loc_conf_t, inbox_max),
      NULL },

    { ngx_string("fishchat_manager_inbox_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_manager_loc_conf_t, inbox_ttl),
      NULL },

    { ngx_string("fishchat_manager_topic_history"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_manager_loc_conf_t, topic_history),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_manager_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_fishchat_manager_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fishchat_manager_create_loc_conf, /* create location conf */
    ngx_http_fishchat_manager_merge_loc_conf /* merge location conf */
};


ngx_module_t  ngx_http_fishchat_manager_module = {
    NGX_MODULE_V1,
    &ngx_http_fishchat_manager_module_ctx, /* module context */
    ngx_http_fishchat_manager_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_fishchat_manager_init_module, /* init module */
    ngx_http_fishchat_manager_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * The endpoints: path segments after the location's prefix, NULL for a
 * parameter (a client id or topic name first, then a uuid or member id).
 */

static ngx_http_fishchat_manager_route_t  ngx_http_fishchat_manager_routes[] = {

    { 1, { "clients" },
      ngx_http_fishchat_manager_clients, NULL, NULL, NULL },

    { 2, { "clients", NULL },
      ngx_http_fishchat_manager_client, NULL, NULL, NULL },

    { 3, { "clients", NULL, "session" },
      NULL, NULL, NULL, ngx_http_fishchat_manager_kick },

    { 3, { "clients", NULL, "inbox" },
      ngx_http_fishchat_manager_inbox, NULL, NULL, NULL },

    { 4, { "clients", NULL, "inbox", NULL },
      NULL, NULL, NULL, ngx_http_fishchat_manager_inbox_delete },

    { 1, { "topics" },
      ngx_http_fishchat_manager_topics,
      ngx_http_fishchat_manager_topic_create, NULL, NULL },

    { 2, { "topics", NULL },
      ngx_http_fishchat_manager_topic, NULL, NULL,
      ngx_http_fishchat_manager_topic_delete },

    { 3, { "topics", NULL, "members" },
      ngx_http_fishchat_manager_members, NULL, NULL, NULL },

    { 4, { "topics", NULL, "members", NULL },
      NULL, NULL, ngx_http_fishchat_manager_member_add,
      ngx_http_fishchat_manager_member_remove },

    { 3, { "topics", NULL, "history" },
      ngx_http_fishchat_manager_history, NULL, NULL, NULL },

    { 1, { "messages" },
      NULL, ngx_http_fishchat_manager_message, NULL, NULL },

    { 1, { "nodes" },
      ngx_http_fishchat_manager_nodes, NULL, NULL, NULL },

    { 0, { NULL }, NULL, NULL, NULL, NULL }
};


/* the msg server's: see ngx_fishchat_lua.h */

static char  ngx_http_fishchat_manager_send_lua[] = NGX_FISHCHAT_LUA_SEND;
static char  ngx_http_fishchat_manager_ack_lua[] = NGX_FISHCHAT_LUA_ACK;
static char  ngx_http_fishchat_manager_topic_create_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_CREATE;
static char  ngx_http_fishchat_manager_topic_join_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_JOIN;
static char  ngx_http_fishchat_manager_topic_leave_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_LEAVE;
static char  ngx_http_fishchat_manager_topic_send_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_SEND;

/*
 * KEYS: presence, inbox order, topics of the client.
 * 0 for a client Redis knows nothing of; otherwise {presence (node, ch,
 * addr, srv, sid, since; nil when offline), pending, topics, stale}.
 * A presence is stale when no worker listens on its channel: the worker
 * that wrote it is gone (a crash) and the next login replaces it.
 */

static char  ngx_http_fishchat_manager_client_lua[] =
    "local p = redis.call('HMGET', KEYS[1], 'node', 'ch', 'addr', 'srv', "
                         "'sid', 'since') "
    "local n = redis.call('ZCARD', KEYS[2]) "
    "local t = redis.call('SCARD', KEYS[3]) "
    "if not p[2] and n == 0 and t == 0 then return 0 end "
    "local stale = 0 "
    "if p[2] and redis.call('PUBSUB', 'NUMSUB', p[2])[2] == 0 then "
        "stale = 1 "
        "for i = 1, 6 do p[i] = false end "
    "end "
    "return {p, n, t, stale}";

/*
 * ARGV: the MATCH pattern of presence keys, cursor, count, the prefix.
 * SCAN until about "count" keys or the end (at most 16 calls);
 * {cursor, {id, node, ch, addr, srv, sid, since, pending}...}.
 */

static char  ngx_http_fishchat_manager_clients_lua[] =
    "local cursor = ARGV[2] "
    "local want = tonumber(ARGV[3]) "
    "local keys = {} "
    "local i = 0 "
    "repeat "
        "local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], "
                             "'COUNT', want) "
        "cursor = r[1] "
        "for _, k in ipairs(r[2]) do keys[#keys + 1] = k end "
        "i = i + 1 "
    "until cursor == '0' or #keys >= want or i == 16 "
    "local skip = #ARGV[4] + 9 "
    "local out = {} "
    "for _, k in ipairs(keys) do "
        "local id = string.sub(k, skip, -2) "
        "local p = redis.call('HMGET', k, 'node', 'ch', 'addr', 'srv', "
                             "'sid', 'since') "
        "if p[2] and redis.call('PUBSUB', 'NUMSUB', p[2])[2] > 0 then "
            "p[7] = redis.call('ZCARD', ARGV[4] .. 'inbox:{' .. id .. '}') "
            "table.insert(p, 1, id) "
            "out[#out + 1] = p "
        "end "
    "end "
    "return {cursor, out}";

/*
 * KEYS: presence.  ARGV: id, the system channel of client events.
 * The worker of the session closes it (K<id>\n0: no session is number
 * 0): 1; 0 when offline; 2 when no worker listens on the channel any more
 * (presence left by a crash): the presence is removed.
 */

static char  ngx_http_fishchat_manager_kick_lua[] =
    "local p = redis.call('HMGET', KEYS[1], 'ch', 'node', 'srv') "
    "if not p[1] then return 0 end "
    "if redis.call('PUBLISH', p[1], 'K' .. ARGV[1] .. '\\n0') > 0 then "
        "return 1 "
    "end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('PUBLISH', ARGV[2], 'KICKED\\n' .. ARGV[1] .. '\\n' "
               ".. (p[2] or '') .. '\\n' .. (p[3] or '')) "
    "return 2";

/*
 * KEYS: presence, inbox order, inbox messages, topics of the client.
 * ARGV: the last seq seen, count.
 * -1 for an unknown client; otherwise {total, more, seq, uuid, frame...}.
 */

static char  ngx_http_fishchat_manager_inbox_lua[] =
    "local total = redis.call('ZCARD', KEYS[2]) "
    "if total == 0 and redis.call('EXISTS', KEYS[1]) == 0 "
       "and redis.call('EXISTS', KEYS[4]) == 0 then "
        "return -1 "
    "end "
    "local limit = tonumber(ARGV[2]) "
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], "
                           "'+inf', 'WITHSCORES', 'LIMIT', 0, limit + 1) "
    "local out = {total, 0} "
    "local n = 0 "
    "for i = 1, #ids, 2 do "
        "if n == limit then out[2] = 1 break end "
        "out[#out + 1] = ids[i + 1] "
        "out[#out + 1] = ids[i] "
        "out[#out + 1] = redis.call('HGET', KEYS[3], ids[i]) or '' "
        "n = n + 1 "
    "end "
    "return out";

/*
 * KEYS: topic, members, history.
 * 0 for no topic; otherwise {creator, created, seq, members, history}.
 */

static char  ngx_http_fishchat_manager_topic_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "local t = redis.call('HMGET', KEYS[1], 'creator', 'created', 'seq') "
    "return {t[1] or '', t[2] or '', t[3] or '0', "
            "redis.call('HLEN', KEYS[2]), redis.call('LLEN', KEYS[3])}";

/*
 * ARGV: the MATCH pattern of topic keys, cursor, count, the prefix.
 * {cursor, {name, creator, created, seq, members}...}.
 */

static char  ngx_http_fishchat_manager_topics_lua[] =
    "local cursor = ARGV[2] "
    "local want = tonumber(ARGV[3]) "
    "local keys = {} "
    "local i = 0 "
    "repeat "
        "local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], "
                             "'COUNT', want) "
        "cursor = r[1] "
        "for _, k in ipairs(r[2]) do keys[#keys + 1] = k end "
        "i = i + 1 "
    "until cursor == '0' or #keys >= want or i == 16 "
    "local skip = #ARGV[4] + 8 "
    "local out = {} "
    "for _, k in ipairs(keys) do "
        "local t = redis.call('HMGET', k, 'creator', 'created', 'seq') "
        "if t[3] then "
            "out[#out + 1] = {string.sub(k, skip, -2), t[1] or '', "
                             "t[2] or '', t[3], "
                             "redis.call('HLEN', k .. ':members')} "
        "end "
    "end "
    "return {cursor, out}";

/*
 * KEYS: topic, members, history.  ARGV: the system channel of topic
 * events, the name.  -1 for no topic; otherwise the ids of its members.
 */

static char  ngx_http_fishchat_manager_topic_delete_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local ids = redis.call('HKEYS', KEYS[2]) "
    "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) "
    "redis.call('PUBLISH', ARGV[1], 'DELETE\\n' .. ARGV[2]) "
    "return ids";

/*
 * KEYS: topic, members.  ARGV: cursor, count.
 * -1 for no topic; otherwise {cursor, {id, position...}, members}.
 */

static char  ngx_http_fishchat_manager_members_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local r = redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', ARGV[2]) "
    "return {r[1], r[2], redis.call('HLEN', KEYS[2])}";

/*
 * KEYS: topic, history.  ARGV: the first seq not wanted (0: none), count.
 * -1 for no topic; otherwise {seq, first seq kept, first seq returned,
 * entry...}: the last "count" messages before the one given, oldest first.
 */

static char  ngx_http_fishchat_manager_history_lua[] =
    "local seq = redis.call('HGET', KEYS[1], 'seq') "
    "if not seq then return -1 end "
    "seq = tonumber(seq) "
    "local first = seq - redis.call('LLEN', KEYS[2]) + 1 "
    "local hi = seq "
    "local before = tonumber(ARGV[1]) "
    "if before > 0 and before - 1 < hi then hi = before - 1 end "
    "local lo = hi - tonumber(ARGV[2]) + 1 "
    "if lo < first then lo = first end "
    "local out = {seq, first, lo} "
    "if hi >= lo then "
        "for _, v in ipairs(redis.call('LRANGE', KEYS[2], lo - first, "
                                      "hi - first)) do "
            "out[#out + 1] = v "
        "end "
    "end "
    "return out";

/*
 * KEYS: presence, topics of the client.  ARGV: SADD or SREM, the topic,
 * J or L, id.  The topic list of the client follows its membership, and
 * its session, where it is online, takes the topic up or lets it go
 * (J<id>\n<topic>, L<id>\n<topic> on its worker's channel).  1 when
 * online, 0 when not.
 */

static char  ngx_http_fishchat_manager_client_topic_lua[] =
    "redis.call(ARGV[1], KEYS[2], ARGV[2]) "
    "local ch = redis.call('HGET', KEYS[1], 'ch') "
    "if not ch then return 0 end "
    "redis.call('PUBLISH', ch, ARGV[3] .. ARGV[4] .. '\\n' .. ARGV[2]) "
    "return 1";

/*
 * KEYS: heartbeats, loads.  The live msg servers, by Redis's clock:
 * {address, ms left, load JSON...}.
 */

static char  ngx_http_fishchat_manager_nodes_lua[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', "
                         "'WITHSCORES') "
    "local out = {} "
    "for i = 1, #m, 2 do "
        "out[#out + 1] = m[i] "
        "out[#out + 1] = tonumber(m[i + 1]) - now "
        "out[#out + 1] = redis.call('HGET', KEYS[2], m[i]) or '' "
    "end "
    "return out";


static ngx_str_t  ngx_http_fishchat_manager_resp_p2p =
    ngx_string("RESP_MESSAGE_P2P");

static ngx_str_t  ngx_http_fishchat_manager_system = ngx_string("system");


static uint64_t  ngx_http_fishchat_manager_rnd[2];


/* requests */

static ngx_int_t
ngx_http_fishchat_manager_handler(ngx_http_request_t *r)
{
    ngx_int_t                               rc;
    ngx_uint_t                              i;
    ngx_pool_cleanup_t                     *cln;
    ngx_http_fishchat_manager_ctx_t        *ctx;
    ngx_http_fishchat_manager_route_t      *route;
    ngx_http_fishchat_manager_start_pt      start;
    ngx_http_fishchat_manager_loc_conf_t   *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_manager_module);

    if (mlcf->token.len
        && ngx_http_fishchat_manager_auth(r, &mlcf->token) != NGX_OK)
    {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fishchat_manager_error(r, NGX_HTTP_UNAUTHORIZED,
                                               "UNAUTHORIZED",
                                               "a valid bearer token is "
                                               "required");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fishchat_manager_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = mlcf;
    ctx->main = ngx_http_get_module_main_conf(r,
                                            ngx_http_fishchat_manager_module);
    ctx->fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    ctx->scratch = ngx_pnalloc(r->pool,
                               8 * (ctx->fcf->redis_prefix.len
                                    + 2 * NGX_HTTP_FISHCHAT_MANAGER_ID_MAX
                                    + 64));
    if (ctx->scratch == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fishchat_manager_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_fishchat_manager_module);

    rc = ngx_http_fishchat_manager_route(ctx, &route);

    if (rc != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fishchat_manager_error(r, NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no such endpoint");
    }

    switch (r->method) {

    case NGX_HTTP_GET:
    case NGX_HTTP_HEAD:
        start = route->get;
        break;

    case NGX_HTTP_POST:
        start = route->post;
        break;

    case NGX_HTTP_PUT:
        start = route->put;
        break;

    case NGX_HTTP_DELETE:
        start = route->del;
        break;

    default:
        start = NULL;
    }

    if (start == NULL) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_fishchat_manager_allow(r, route) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fishchat_manager_error(r, NGX_HTTP_NOT_ALLOWED,
                                               "METHOD_NOT_ALLOWED",
                                               "method %V not allowed here",
                                               &r->method_name);
    }

    for (i = 0; i < NGX_HTTP_FISHCHAT_MANAGER_PARAMS; i++) {
        if (ctx->param[i].data
            && ngx_http_fishchat_manager_valid_id(&ctx->param[i]) != NGX_OK)
        {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                                   "BAD_REQUEST",
                                                   "an id or name in the "
                                                   "path is 1 to 128 bytes "
                                                   "without white space, "
                                                   "control characters or "
                                                   "braces");
        }
    }

    ctx->start = start;

    if (r->method == NGX_HTTP_POST) {

        if (r->headers_in.content_length_n > (off_t) mlcf->body_max) {
            if (ngx_http_discard_request_body(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_fishchat_manager_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "BODY_TOO_LARGE",
                                           "a body is at most %uz bytes",
                                           mlcf->body_max);
        }

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                       ngx_http_fishchat_manager_body_handler);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the reference of the command */
    r->main->count++;

    ngx_http_fishchat_manager_run(ctx);

    return NGX_DONE;
}


/* the body is read: it holds the reference of the command */

static void
ngx_http_fishchat_manager_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_fishchat_manager_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_manager_module);

    if (ngx_http_fishchat_manager_read_body(ctx, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    ngx_http_fishchat_manager_run(ctx);
}


/*
 * Starts the endpoint.  The caller holds a reference for the command,
 * which the reply's handler finalizes; one more is held here, as the
 * handler may be called before the command is even taken (hiredis refused
 * it).
 */

static void
ngx_http_fishchat_manager_run(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    r->main->count++;

    ctx->starting = 1;

    rc = ctx->start(ctx);

    ctx->starting = 0;

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


/* "Authorization: Bearer <token>", compared in constant time */

static ngx_int_t
ngx_http_fishchat_manager_auth(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char            *p, *last;
    size_t             i, len;
    ngx_uint_t         diff;
    ngx_table_elt_t   *h;

    h = r->headers_in.authorization;

    if (h == NULL || h->value.len < sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    p = h->value.data + sizeof("Bearer ") - 1;
    last = h->value.data + h->value.len;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    len = last - p;
    diff = (len != token->len);

    for (i = 0; i < token->len; i++) {
        diff |= token->data[i] ^ (i < len ? p[i] : 0);
    }

    return diff ? NGX_DECLINED : NGX_OK;
}


/*
 * The path after the location's prefix, split at "/", each segment
 * URL-decoded: the route and its parameters.  NGX_DECLINED: no route.
 */

static ngx_int_t
ngx_http_fishchat_manager_route(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_http_fishchat_manager_route_t **route)
{
    u_char                             *p, *last, *end, *dst, *src;
    size_t                              skip;
    ngx_str_t                           seg[NGX_HTTP_FISHCHAT_MANAGER_SEGS];
    ngx_uint_t                          n, i, k;
    ngx_http_request_t                 *r;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_fishchat_manager_route_t  *rt;

    r = ctx->request;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    end = ngx_strlchr(p, last, '?');
    if (end) {
        last = end;
    }

    /* the location's prefix: "/api/" and "/api" serve "/api/clients" */

    skip = 0;

    if (!clcf->named && !clcf->noname && !clcf->exact_match
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && clcf->name.len)
    {
        skip = clcf->name.len;

        if (clcf->name.data[skip - 1] == '/') {
            skip--;
        }
    }

    if ((size_t) (last - p) < skip || ngx_strncmp(p, clcf->name.data, skip)
                                      != 0)
    {
        return NGX_DECLINED;
    }

    p += skip;

    if (p == last || *p != '/') {
        return NGX_DECLINED;
    }

    p++;

    /* one slash at the end is the same as none */

    if (last > p && last[-1] == '/') {
        last--;
    }

    n = 0;

    while (p <= last) {
        if (n == NGX_HTTP_FISHCHAT_MANAGER_SEGS) {
            return NGX_DECLINED;
        }

        end = ngx_strlchr(p, last, '/');
        if (end == NULL) {
            end = last;
        }

        dst = ngx_pnalloc(r->pool, end - p + 1);
        if (dst == NULL) {
            return NGX_ERROR;
        }

        seg[n].data = dst;
        src = p;
        ngx_unescape_uri(&dst, &src, end - p, 0);
        seg[n].len = dst - seg[n].data;

        n++;
        p = end + 1;
    }

    for (rt = ngx_http_fishchat_manager_routes; rt->nsegs; rt++) {

        if (rt->nsegs != n) {
            continue;
        }

        for (i = 0; i < n; i++) {
            if (rt->seg[i]
                && (seg[i].len != ngx_strlen(rt->seg[i])
                    || ngx_strncmp(seg[i].data, rt->seg[i], seg[i].len) != 0))
            {
                break;
            }
        }

        if (i < n) {
            continue;
        }

        k = 0;

        for (i = 0; i < n; i++) {
            if (rt->seg[i] == NULL) {
                ctx->param[k++] = seg[i];
            }
        }

        *route = rt;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* the Allow header of a 405 */

static ngx_int_t
ngx_http_fishchat_manager_allow(ngx_http_request_t *r,
    ngx_http_fishchat_manager_route_t *route)
{
    u_char     *p;
    ngx_str_t   allow;

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PUT, DELETE") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    allow.data = p;

    if (route->get) {
        p = ngx_cpymem(p, "GET, HEAD, ", sizeof("GET, HEAD, ") - 1);
    }

    if (route->post) {
        p = ngx_cpymem(p, "POST, ", sizeof("POST, ") - 1);
    }

    if (route->put) {
        p = ngx_cpymem(p, "PUT, ", sizeof("PUT, ") - 1);
    }

    if (route->del) {
        p = ngx_cpymem(p, "DELETE, ", sizeof("DELETE, ") - 1);
    }

    allow.len = p - allow.data - 2;

    return ngx_http_fishchat_manager_header(r, "Allow", &allow);
}


/*
 * ?cursor=&count= of a page: the cursor is digits (empty when absent),
 * count is 1 to 1000 (100 when absent).  NGX_OK, or NGX_DONE when a 400
 * was sent (*rc: what to finalize the request with).
 */

static ngx_int_t
ngx_http_fishchat_manager_page(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_int_t *rc)
{
    u_char              *dst, *src;
    size_t               i;
    ngx_int_t            n;
    ngx_str_t            v;
    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->count = NGX_HTTP_FISHCHAT_MANAGER_PAGE;
    ngx_str_null(&ctx->cursor);

    if (ngx_http_arg(r, (u_char *) "count", 5, &v) == NGX_OK) {
        n = ngx_atoi(v.data, v.len);

        if (n < 1 || n > NGX_HTTP_FISHCHAT_MANAGER_PAGE_MAX) {
            *rc = ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                                  "BAD_REQUEST",
                                                  "count is a number from "
                                                  "1 to %d",
                                           NGX_HTTP_FISHCHAT_MANAGER_PAGE_MAX);
            return NGX_DONE;
        }

        ctx->count = n;
    }

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &v) == NGX_OK) {
        dst = ngx_pnalloc(r->pool, v.len + 1);
        if (dst == NULL) {
            *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return NGX_DONE;
        }

        ctx->cursor.data = dst;
        src = v.data;
        ngx_unescape_uri(&dst, &src, v.len, 0);
        ctx->cursor.len = dst - ctx->cursor.data;

        if (ctx->cursor.len > NGX_HTTP_FISHCHAT_MANAGER_CURSOR_MAX) {
            goto invalid;
        }

        for (i = 0; i < ctx->cursor.len; i++) {
            if (ctx->cursor.data[i] < '0' || ctx->cursor.data[i] > '9') {
                goto invalid;
            }
        }
    }

    return NGX_OK;

invalid:

    *rc = ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                          "BAD_REQUEST",
                                          "cursor is a number, as the "
                                          "last page gave it");
    return NGX_DONE;
}


/*
 * The request body: a JSON object of at most fishchat_manager_body_max
 * bytes.  NGX_OK, or NGX_DONE when the request is answered (*rc: what to
 * finalize it with).
 */

static ngx_int_t
ngx_http_fishchat_manager_read_body(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_int_t *rc)
{
    u_char              *buf, *p;
    size_t               len;
    ssize_t              n;
    ngx_buf_t           *b;
    json_t              *root;
    ngx_chain_t         *cl;
    json_error_t         jerr;
    ngx_pool_cleanup_t  *cln;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        goto not_object;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    if (len > ctx->conf->body_max) {
        *rc = ngx_http_fishchat_manager_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "BODY_TOO_LARGE",
                                           "a body is at most %uz bytes",
                                           ctx->conf->body_max);
        return NGX_DONE;
    }

    buf = ngx_pnalloc(r->pool, len + 1);
    if (buf == NULL) {
        goto failed;
    }

    p = buf;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            goto failed;
        }

        p += n;
    }

    root = json_loadb((const char *) buf, len, 0, &jerr);

    if (root == NULL) {
        *rc = ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                              "BAD_REQUEST",
                                              "invalid JSON: %s at offset "
                                              "%d", jerr.text,
                                              jerr.position);
        return NGX_DONE;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(root);
        goto failed;
    }

    cln->handler = ngx_http_fishchat_manager_json_cleanup;
    cln->data = root;

    if (!json_is_object(root)) {
        goto not_object;
    }

    ctx->json = root;

    return NGX_OK;

not_object:

    *rc = ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                          "BAD_REQUEST",
                                          "a JSON object expected in the "
                                          "body");
    return NGX_DONE;

failed:

    *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    return NGX_DONE;
}


/* a string field of the body: NGX_OK, NGX_DECLINED (absent), NGX_ERROR */

static ngx_int_t
ngx_http_fishchat_manager_field(ngx_http_fishchat_manager_ctx_t *ctx,
    char *name, ngx_str_t *value)
{
    json_t  *v;

    v = json_object_get(ctx->json, name);

    if (v == NULL || json_is_null(v)) {
        return NGX_DECLINED;
    }

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    value->data = (u_char *) json_string_value(v);
    value->len = json_string_length(v);

    return NGX_OK;
}


/* as the msg server's: 1 to 128 bytes, no white space, controls, braces */

static ngx_int_t
ngx_http_fishchat_manager_valid_id(ngx_str_t *id)
{
    size_t  i;

    if (id->len == 0 || id->len > NGX_HTTP_FISHCHAT_MANAGER_ID_MAX) {
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


/* the request is freed: a command still under way is forgotten */

static void
ngx_http_fishchat_manager_cleanup(void *data)
{
    ngx_http_fishchat_manager_ctx_t *ctx = data;

    if (ctx->req && ngx_fishchat_redis_link()) {
        ngx_fishchat_redis_cancel(ctx->req);
    }

    ctx->req = NULL;
}


static void
ngx_http_fishchat_manager_json_cleanup(void *data)
{
    json_decref((json_t *) data);
}


/* Redis */

/* EVALSHA; nargs counts the keys too, as ngx_fishchat_redis_eval() */

static ngx_int_t
ngx_http_fishchat_manager_eval(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done, ngx_uint_t nkeys,
    ngx_uint_t nargs, ngx_str_t *args)
{
    ngx_http_request_t        *r;
    ngx_fishchat_redis_req_t  *req;

    r = ctx->request;

    ctx->done = done;
    ctx->waiting = 1;

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script,
                                  ngx_http_fishchat_manager_reply, ctx,
                                  nkeys, nargs, args);

    if (req == NULL) {
        ctx->waiting = 0;

        return ngx_http_fishchat_manager_error(r,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "REDIS_UNAVAILABLE",
                                               "Redis is unavailable");
    }

    if (ctx->waiting) {
        ctx->req = req;

        if (!r->discard_body) {
            /* not answered yet: a client that goes away is noticed */
            r->read_event_handler = ngx_http_test_reading;
        }
    }

    return NGX_DONE;
}


static void
ngx_http_fishchat_manager_reply(redisReply *reply, void *data)
{
    ngx_http_fishchat_manager_ctx_t *ctx = data;

    ngx_int_t            rc;
    ngx_uint_t           starting;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;
    starting = ctx->starting;

    ctx->req = NULL;
    ctx->waiting = 0;

    if (reply == NULL) {
        if (ctx->stores && ngx_fishchat_redis_unknown()) {
            rc = ngx_http_fishchat_manager_error(r,
                                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "NOT_CONFIRMED",
                                                "Redis did not answer: the "
                                                "change may have been made");
        } else {
            rc = ngx_http_fishchat_manager_error(r,
                                                NGX_HTTP_SERVICE_UNAVAILABLE,
                                                "REDIS_UNAVAILABLE",
                                                "Redis is unavailable");
        }

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "fishchat manager: script failed: %*s",
                      (size_t) reply->len, reply->str);

        rc = ngx_http_fishchat_manager_error(r,
                                            NGX_HTTP_INTERNAL_SERVER_ERROR,
                                            "INTERNAL", "Redis refused the "
                                            "command");

    } else {
        rc = ctx->done(ctx, reply);

        if (rc == NGX_DONE) {
            return;
        }
    }

    ngx_http_finalize_request(r, rc);

    if (!starting) {
        ngx_http_run_posted_requests(c);
    }
}


/* <prefix><kind>{<id>}<suffix>, written at *p */

static ngx_str_t
ngx_http_fishchat_manager_key(ngx_http_fishchat_manager_ctx_t *ctx,
    u_char **p, char *kind, ngx_str_t *id, char *suffix)
{
    ngx_str_t  key;

    key.data = *p;
    *p = ngx_sprintf(*p, "%V%s{%V}%s", &ctx->fcf->redis_prefix, kind, id,
                     suffix);
    key.len = *p - key.data;

    return key;
}


/* <prefix>sys:<name> */

static ngx_str_t
ngx_http_fishchat_manager_sys(ngx_http_fishchat_manager_ctx_t *ctx,
    u_char **p, char *name)
{
    ngx_str_t  ch;

    ch.data = *p;
    *p = ngx_sprintf(*p, "%Vsys:%s", &ctx->fcf->redis_prefix, name);
    ch.len = *p - ch.data;

    return ch;
}


/* the SCAN pattern <prefix><kind>{*}, the prefix escaped for MATCH */

static ngx_str_t
ngx_http_fishchat_manager_pattern(ngx_http_fishchat_manager_ctx_t *ctx,
    u_char **p, char *kind)
{
    u_char     *s;
    size_t      i;
    ngx_str_t   pat, *prefix;

    prefix = &ctx->fcf->redis_prefix;
    s = *p;
    pat.data = s;

    for (i = 0; i < prefix->len; i++) {
        switch (prefix->data[i]) {
        case '*': case '?': case '[': case ']': case '\\':
            *s++ = '\\';
            /* fall through */
        default:
            *s++ = prefix->data[i];
        }
    }

    s = ngx_sprintf(s, "%s{*}", kind);

    pat.len = s - pat.data;
    *p = s;

    return pat;
}


/* a version 4 uuid from a per-worker xorshift128+ seeded at start */

static void
ngx_http_fishchat_manager_uuid(u_char *p)
{
    uint64_t        x, y, r[2];
    ngx_uint_t      i;
    u_char          b[16];
    static u_char   hex[] = "0123456789abcdef";

    for (i = 0; i < 2; i++) {
        x = ngx_http_fishchat_manager_rnd[0];
        y = ngx_http_fishchat_manager_rnd[1];
        ngx_http_fishchat_manager_rnd[0] = y;
        x ^= x << 23;
        ngx_http_fishchat_manager_rnd[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
        r[i] = ngx_http_fishchat_manager_rnd[1] + y;
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


/* responses */

/*
 * {"error":{"code":"<CODE>","message":"<text>"}} and one line in the log
 * (info; error for a 500).  Returns what to finalize the request with.
 */

static ngx_int_t
ngx_http_fishchat_manager_error(ngx_http_request_t *r, ngx_uint_t status,
    char *code, const char *fmt, ...)
{
    u_char                           *p;
    va_list                           args;
    ngx_str_t                         text, v;
    ngx_uint_t                        level;
    ngx_http_fishchat_manager_out_t   out;
    ngx_http_fishchat_manager_ctx_t   ctx;
    u_char                            buf[256];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    text.data = buf;
    text.len = p - buf;

    level = (status == NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                        : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "fishchat manager: %ui %s: %V", status, code, &text);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ngx_str_set(&v, NGX_HTTP_FISHCHAT_MANAGER_RETRY);

        if (ngx_http_fishchat_manager_header(r, "Retry-After", &v)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&v, "Bearer realm=\"fishchat\"");

        if (ngx_http_fishchat_manager_header(r, "WWW-Authenticate", &v)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_fishchat_manager_out_init(&out, r->pool, 128 + 6 * text.len);

    ngx_http_fishchat_manager_fmt(&out, "{\"error\":{\"code\":\"%s\","
                                  "\"message\":", code);
    ngx_http_fishchat_manager_str(&out, &text);
    ngx_http_fishchat_manager_fmt(&out, "}}");

    ngx_memzero(&ctx, sizeof(ngx_http_fishchat_manager_ctx_t));
    ctx.request = r;

    return ngx_http_fishchat_manager_send(&ctx, status, &out);
}


static ngx_int_t
ngx_http_fishchat_manager_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->next = NULL;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fishchat_manager_send(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_uint_t status, ngx_http_fishchat_manager_out_t *out)
{
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t          cl;
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_fishchat_manager_fmt(out, "\n");

    if (out->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = out->start;
    b->last = out->pos;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    cl.buf = b;
    cl.next = NULL;

    return ngx_http_output_filter(r, &cl);
}


static void
ngx_http_fishchat_manager_out_init(ngx_http_fishchat_manager_out_t *out,
    ngx_pool_t *pool, size_t size)
{
    out->pool = pool;
    out->failed = 0;

    out->start = ngx_pnalloc(pool, size);

    if (out->start == NULL) {
        out->failed = 1;
        out->pos = NULL;
        out->end = NULL;
        return;
    }

    out->pos = out->start;
    out->end = out->start + size;
}


static u_char *
ngx_http_fishchat_manager_reserve(ngx_http_fishchat_manager_out_t *out,
    size_t size)
{
    u_char  *p;
    size_t   n;

    if (out->failed) {
        return NULL;
    }

    if ((size_t) (out->end - out->pos) >= size) {
        return out->pos;
    }

    n = ngx_max(2 * (size_t) (out->end - out->start),
                (size_t) (out->pos - out->start) + size);

    p = ngx_pnalloc(out->pool, n);
    if (p == NULL) {
        out->failed = 1;
        return NULL;
    }

    ngx_memcpy(p, out->start, out->pos - out->start);

    (void) ngx_pfree(out->pool, out->start);

    out->pos = p + (out->pos - out->start);
    out->start = p;
    out->end = p + n;

    return out->pos;
}


/* punctuation, names and numbers: at most 256 bytes a call */

static void
ngx_http_fishchat_manager_fmt(ngx_http_fishchat_manager_out_t *out,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_fishchat_manager_reserve(out, 256);
    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    out->pos = ngx_vslprintf(p, p + 256, fmt, args);
    va_end(args);
}


/* a JSON string of any bytes, escaped as the frame encoder does */

static void
ngx_http_fishchat_manager_str(ngx_http_fishchat_manager_out_t *out,
    ngx_str_t *s)
{
    u_char  *p;

    p = ngx_http_fishchat_manager_reserve(out,
                                         ngx_fishchat_json_escape_len(s) + 2);
    if (p == NULL) {
        return;
    }

    *p++ = '"';
    p = ngx_fishchat_json_escape(p, s);
    *p++ = '"';

    out->pos = p;
}


/* a string of a Redis reply, or null */

static void
ngx_http_fishchat_manager_rstr(ngx_http_fishchat_manager_out_t *out,
    redisReply *e)
{
    ngx_str_t  s;

    if (e == NULL || e->type != REDIS_REPLY_STRING) {
        ngx_http_fishchat_manager_fmt(out, "null");
        return;
    }

    s.data = (u_char *) e->str;
    s.len = e->len;

    ngx_http_fishchat_manager_str(out, &s);
}


/* a number of a Redis reply (an integer, or a string of digits), or null */

static void
ngx_http_fishchat_manager_rnum(ngx_http_fishchat_manager_out_t *out,
    redisReply *e)
{
    size_t  i;

    if (e && e->type == REDIS_REPLY_INTEGER) {
        ngx_http_fishchat_manager_fmt(out, "%L", (int64_t) e->integer);
        return;
    }

    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len == 0
        || e->len > NGX_INT64_LEN)
    {
        ngx_http_fishchat_manager_fmt(out, "null");
        return;
    }

    for (i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9') {
            ngx_http_fishchat_manager_fmt(out, "null");
            return;
        }
    }

    ngx_http_fishchat_manager_fmt(out, "%*s", (size_t) e->len, e->str);
}


/*
 * The presence fields (node, ch, addr, srv, sid, since) after "online":
 * the worker is the pid at the end of the channel's name
 */

static void
ngx_http_fishchat_manager_presence(ngx_http_fishchat_manager_out_t *out,
    redisReply **p)
{
    u_char      *s, *last;
    ngx_int_t    pid;

    if (p[1]->type != REDIS_REPLY_STRING) {
        ngx_http_fishchat_manager_fmt(out, "false");
        return;
    }

    ngx_http_fishchat_manager_fmt(out, "true,\"node\":");
    ngx_http_fishchat_manager_rstr(out, p[0]);

    s = (u_char *) p[1]->str;
    last = s + p[1]->len;

    while (last > s && last[-1] >= '0' && last[-1] <= '9') {
        last--;
    }

    pid = ngx_atoi(last, (u_char *) p[1]->str + p[1]->len - last);

    if (pid > 0) {
        ngx_http_fishchat_manager_fmt(out, ",\"worker\":%i", pid);

    } else {
        ngx_http_fishchat_manager_fmt(out, ",\"worker\":null");
    }

    ngx_http_fishchat_manager_fmt(out, ",\"channel\":");
    ngx_http_fishchat_manager_rstr(out, p[1]);
    ngx_http_fishchat_manager_fmt(out, ",\"address\":");
    ngx_http_fishchat_manager_rstr(out, p[2]);
    ngx_http_fishchat_manager_fmt(out, ",\"server\":");
    ngx_http_fishchat_manager_rstr(out, p[3]);
    ngx_http_fishchat_manager_fmt(out, ",\"session\":");
    ngx_http_fishchat_manager_rstr(out, p[4]);
    ngx_http_fishchat_manager_fmt(out, ",\"since\":");
    ngx_http_fishchat_manager_rnum(out, p[5]);
}


/* ,"cursor":"<n>" for the next page, or null after the last */

static void
ngx_http_fishchat_manager_cursor(ngx_http_fishchat_manager_out_t *out,
    redisReply *e, ngx_uint_t more)
{
    if (!more || e == NULL || e->type != REDIS_REPLY_STRING
        || (e->len == 1 && e->str[0] == '0'))
    {
        ngx_http_fishchat_manager_fmt(out, ",\"cursor\":null");
        return;
    }

    ngx_http_fishchat_manager_fmt(out, ",\"cursor\":");
    ngx_http_fishchat_manager_rstr(out, e);
}


/* the endpoints: clients */

/* GET /clients/{id} */

static ngx_int_t
ngx_http_fishchat_manager_client(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[3], *id;

    id = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", id, "");
    args[2] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id,
                                            ":topics");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->client,
                                      ngx_http_fishchat_manager_client_done,
                                      3, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_client_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    redisReply                       *p;
    ngx_http_fishchat_manager_out_t   out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no client \"%V\"",
                                               &ctx->param[0]);
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_ARRAY
        || reply->element[0]->elements != 6)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = reply->element[0];

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"id\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"online\":");
    ngx_http_fishchat_manager_presence(&out, p->element);
    ngx_http_fishchat_manager_fmt(&out, ",\"pending\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[1]);
    ngx_http_fishchat_manager_fmt(&out, ",\"topics\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[2]);

    if (reply->element[3]->type == REDIS_REPLY_INTEGER
        && reply->element[3]->integer)
    {
        ngx_http_fishchat_manager_fmt(&out, ",\"stale\":true");
    }

    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /clients?cursor=&count=: the online clients, SCAN by SCAN */

static ngx_int_t
ngx_http_fishchat_manager_clients(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_scan(ctx, "client:", ctx->main->clients,
                                      ngx_http_fishchat_manager_clients_done);
}


/*
 * A page of a SCAN over the keys of one kind ("client:", "topic:"): the
 * script gets the MATCH pattern, the cursor, the page size and the prefix
 */

static ngx_int_t
ngx_http_fishchat_manager_scan(ngx_http_fishchat_manager_ctx_t *ctx,
    char *kind, ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   args[4];
    u_char      count[NGX_INT_T_LEN];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_pattern(ctx, &p, kind);
    args[1] = ctx->cursor;

    if (args[1].len == 0) {
        ngx_str_set(&args[1], "0");
    }

    args[2].data = count;
    args[2].len = ngx_sprintf(count, "%ui", ctx->count) - count;
    args[3] = ctx->fcf->redis_prefix;

    return ngx_http_fishchat_manager_eval(ctx, script, done, 0, 4, args);
}


static ngx_int_t
ngx_http_fishchat_manager_clients_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                            i;
    ngx_uint_t                        n;
    redisReply                       *list, *e;
    ngx_http_fishchat_manager_out_t   out;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = reply->element[1];

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool,
                                       512 + 256 * list->elements);

    ngx_http_fishchat_manager_fmt(&out, "{\"clients\":[");

    n = 0;

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 8) {
            continue;
        }

        ngx_http_fishchat_manager_fmt(&out, "%s{\"id\":", n++ ? "," : "");
        ngx_http_fishchat_manager_rstr(&out, e->element[0]);
        ngx_http_fishchat_manager_fmt(&out, ",\"online\":");
        ngx_http_fishchat_manager_presence(&out, &e->element[1]);
        ngx_http_fishchat_manager_fmt(&out, ",\"pending\":");
        ngx_http_fishchat_manager_rnum(&out, e->element[7]);
        ngx_http_fishchat_manager_fmt(&out, "}");
    }

    ngx_http_fishchat_manager_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out, reply->element[0], 1);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* DELETE /clients/{id}/session */

static ngx_int_t
ngx_http_fishchat_manager_kick(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[3];

    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "client:",
                                            &ctx->param[0], "");
    args[1] = ctx->param[0];
    args[2] = ngx_http_fishchat_manager_sys(ctx, &p, "client-status");

    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->kick,
                                        ngx_http_fishchat_manager_kick_done,
                                        1, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_kick_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "client \"%V\" is not online",
                                               &ctx->param[0]);
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 512);

    ngx_http_fishchat_manager_fmt(&out, "{\"id\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"kicked\":true,\"stale\":%s}",
                                  reply->integer == 2 ? "true" : "false");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /clients/{id}/inbox?cursor=&count= */

static ngx_int_t
ngx_http_fishchat_manager_inbox(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   args[6], *id;
    u_char      count[NGX_INT_T_LEN];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    id = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", id, "");
    args[2] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", id, ":m");
    args[3] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id,
                                            ":topics");
    args[4] = ctx->cursor;

    if (args[4].len == 0) {
        ngx_str_set(&args[4], "0");
    }

    args[5].data = count;
    args[5].len = ngx_sprintf(count, "%ui", ctx->count) - count;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->inbox,
                                       ngx_http_fishchat_manager_inbox_done,
                                       4, 6, args);
}


static ngx_int_t
ngx_http_fishchat_manager_inbox_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                            i, size;
    ngx_str_t                         frame;
    redisReply                       *e;
    ngx_fishchat_msg_t                m;
    ngx_http_fishchat_manager_out_t   out;
    u_char                            err[128];

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no client \"%V\"",
                                               &ctx->param[0]);
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || (reply->elements - 2) % 3)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 512;

    for (i = 2; i < reply->elements; i++) {
        size += 2 * reply->element[i]->len + 64;
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, size);

    ngx_http_fishchat_manager_fmt(&out, "{\"id\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"total\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"messages\":[");

    for (i = 2; i < reply->elements; i += 3) {
        e = reply->element[i + 2];

        ngx_http_fishchat_manager_fmt(&out, "%s{\"seq\":", i > 2 ? "," : "");
        ngx_http_fishchat_manager_rnum(&out, reply->element[i]);
        ngx_http_fishchat_manager_fmt(&out, ",\"uuid\":");
        ngx_http_fishchat_manager_rstr(&out, reply->element[i + 1]);

        /* the stored RESP_MESSAGE_P2P frame: <msg> <from> <uuid> */

        m.root = NULL;

        if (e->type == REDIS_REPLY_STRING && e->len > 4) {
            frame.data = (u_char *) e->str + 4;
            frame.len = e->len - 4;

            if (ngx_fishchat_msg_decode(&frame, &m, err, sizeof(err))
                != NGX_OK)
            {
                m.root = NULL;
            }
        }

        if (m.root && m.nargs >= 2) {
            ngx_http_fishchat_manager_fmt(&out, ",\"from\":");
            ngx_http_fishchat_manager_str(&out, &m.args[1]);
            ngx_http_fishchat_manager_fmt(&out, ",\"message\":");
            ngx_http_fishchat_manager_str(&out, &m.args[0]);

        } else {
            ngx_http_fishchat_manager_fmt(&out, ",\"from\":null,"
                                          "\"message\":null");
        }

        ngx_fishchat_msg_free(&m);

        ngx_http_fishchat_manager_fmt(&out, "}");
    }

    ngx_http_fishchat_manager_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out,
                                    reply->elements > 2
                                    ? reply->element[reply->elements - 3]
                                    : NULL,
                                    reply->element[1]->type
                                        == REDIS_REPLY_INTEGER
                                    && reply->element[1]->integer);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* DELETE /clients/{id}/inbox/{uuid}: as the client's P2P_ACK */

static ngx_int_t
ngx_http_fishchat_manager_inbox_delete(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[3], *id;

    id = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", id, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", id, ":m");
    args[2] = ctx->param[1];

    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->ack,
                                    ngx_http_fishchat_manager_inbox_deleted,
                                    2, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_inbox_deleted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no message \"%V\" in the "
                                               "inbox of \"%V\"",
                                               &ctx->param[1],
                                               &ctx->param[0]);
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 512);

    ngx_http_fishchat_manager_fmt(&out, "{\"id\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"uuid\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[1]);
    ngx_http_fishchat_manager_fmt(&out, ",\"deleted\":true}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* the endpoints: topics */

/* GET /topics?cursor=&count= */

static ngx_int_t
ngx_http_fishchat_manager_topics(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_scan(ctx, "topic:", ctx->main->topics,
                                       ngx_http_fishchat_manager_topics_done);
}


static ngx_int_t
ngx_http_fishchat_manager_topics_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                            i;
    ngx_uint_t                        n;
    redisReply                       *list, *e;
    ngx_http_fishchat_manager_out_t   out;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = reply->element[1];

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool,
                                       512 + 256 * list->elements);

    ngx_http_fishchat_manager_fmt(&out, "{\"topics\":[");

    n = 0;

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 5) {
            continue;
        }

        ngx_http_fishchat_manager_fmt(&out, "%s{\"name\":", n++ ? "," : "");
        ngx_http_fishchat_manager_rstr(&out, e->element[0]);
        ngx_http_fishchat_manager_fmt(&out, ",\"creator\":");
        ngx_http_fishchat_manager_rstr(&out, e->element[1]);
        ngx_http_fishchat_manager_fmt(&out, ",\"created\":");
        ngx_http_fishchat_manager_rnum(&out, e->element[2]);
        ngx_http_fishchat_manager_fmt(&out, ",\"messages\":");
        ngx_http_fishchat_manager_rnum(&out, e->element[3]);
        ngx_http_fishchat_manager_fmt(&out, ",\"members\":");
        ngx_http_fishchat_manager_rnum(&out, e->element[4]);
        ngx_http_fishchat_manager_fmt(&out, "}");
    }

    ngx_http_fishchat_manager_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out, reply->element[0], 1);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* POST /topics {"name": ..., "creator": ...}: as CREATE_TOPIC */

static ngx_int_t
ngx_http_fishchat_manager_topic_create(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[6];
    u_char      now[NGX_INT64_LEN];

    if (ngx_http_fishchat_manager_field(ctx, "name", &ctx->name) != NGX_OK
        || ngx_http_fishchat_manager_valid_id(&ctx->name) != NGX_OK)
    {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"name\": a topic name of 1 "
                                               "to 128 bytes without white "
                                               "space, control characters "
                                               "or braces");
    }

    if (ngx_http_fishchat_manager_field(ctx, "creator", &ctx->id) != NGX_OK
        || ngx_http_fishchat_manager_valid_id(&ctx->id) != NGX_OK)
    {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"creator\": a client id "
                                               "of 1 to 128 bytes without "
                                               "white space, control "
                                               "characters or braces");
    }

    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", &ctx->name,
                                            "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", &ctx->name,
                                            ":members");
    args[2] = ctx->id;
    args[3].data = now;
    args[3].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[4] = ngx_http_fishchat_manager_sys(ctx, &p, "topic-status");
    args[5] = ctx->name;

    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic_create,
                                    ngx_http_fishchat_manager_topic_created,
                                    2, 6, args);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_created(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_CONFLICT,
                                               "TOPIC_EXISTS",
                                               "topic \"%V\" exists",
                                               &ctx->name);
    }

    /* the creator's topic list, and its session if it is online */

    return ngx_http_fishchat_manager_client_topic(ctx, &ctx->id, &ctx->name,
                                    1, ngx_http_fishchat_manager_topic_creator);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_creator(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    u_char                           *p;
    size_t                            len;
    ngx_str_t                         location;
    ngx_http_request_t               *r;
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_fishchat_manager_out_t   out;

    r = ctx->request;

    /* Location: <the location's prefix>/topics/<name, escaped> */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    len = 0;

    if (!clcf->named && !clcf->noname && !clcf->exact_match
#if (NGX_PCRE)
        && clcf->regex == NULL
#endif
        && clcf->name.len)
    {
        len = clcf->name.len;

        if (clcf->name.data[len - 1] == '/') {
            len--;
        }
    }

    p = ngx_pnalloc(r->pool, len + sizeof("/topics/") - 1 + 3 * ctx->name.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    location.data = p;
    p = ngx_cpymem(p, clcf->name.data, len);
    p = ngx_cpymem(p, "/topics/", sizeof("/topics/") - 1);
    p = (u_char *) ngx_escape_uri(p, ctx->name.data, ctx->name.len,
                                  NGX_ESCAPE_URI_COMPONENT);
    location.len = p - location.data;

    if (ngx_http_fishchat_manager_header(r, "Location", &location)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_out_init(&out, r->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, &ctx->name);
    ngx_http_fishchat_manager_fmt(&out, ",\"creator\":");
    ngx_http_fishchat_manager_str(&out, &ctx->id);
    ngx_http_fishchat_manager_fmt(&out, ",\"created\":true}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


/* GET /topics/{name} */

static ngx_int_t
ngx_http_fishchat_manager_topic(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[3], *name;

    name = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name,
                                            ":members");
    args[2] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, ":h");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic,
                                       ngx_http_fishchat_manager_topic_done,
                                       3, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"",
                                               &ctx->param[0]);
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"creator\":");
    ngx_http_fishchat_manager_rstr(&out, reply->element[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"created\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[1]);
    ngx_http_fishchat_manager_fmt(&out, ",\"messages\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[2]);
    ngx_http_fishchat_manager_fmt(&out, ",\"members\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[3]);
    ngx_http_fishchat_manager_fmt(&out, ",\"history\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[4]);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * DELETE /topics/{name}: the topic's keys go; each member's topic list
 * loses it and its session, where it is online, lets it go (as removed)
 */

static ngx_int_t
ngx_http_fishchat_manager_topic_delete(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[5], *name;

    name = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name,
                                            ":members");
    args[2] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, ":h");
    args[3] = ngx_http_fishchat_manager_sys(ctx, &p, "topic-status");
    args[4] = *name;

    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic_delete,
                                    ngx_http_fishchat_manager_topic_deleted,
                                    3, 5, args);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_deleted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    u_char                           *p;
    size_t                            i;
    ngx_str_t                         args[6], id, *name;
    ngx_uint_t                        failed;
    redisReply                       *e;
    ngx_http_fishchat_manager_out_t   out;

    name = &ctx->param[0];

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"", name);
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The members' lists and sessions, without waiting: in the order of
     * the link, so before any later command of anyone on this worker.  A
     * name left in a list is harmless: a login drops it (see keyspace.md).
     */

    failed = 0;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        id.data = (u_char *) e->str;
        id.len = e->len;

        if (ngx_http_fishchat_manager_valid_id(&id) != NGX_OK) {
            continue;
        }

        p = ctx->scratch;

        args[0] = ngx_http_fishchat_manager_key(ctx, &p, "client:", &id, "");
        args[1] = ngx_http_fishchat_manager_key(ctx, &p, "client:", &id,
                                                ":topics");
        ngx_str_set(&args[2], "SREM");
        args[3] = *name;
        ngx_str_set(&args[4], "L");
        args[5] = id;

        if (ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                    ctx->main->client_topic, NULL, NULL,
                                    2, 6, args)
            == NULL)
        {
            failed++;
        }
    }

    if (failed) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "fishchat manager: topic \"%V\" deleted, but %ui of "
                      "its members were not told: Redis is unavailable",
                      name, failed);
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 512);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, name);
    ngx_http_fishchat_manager_fmt(&out, ",\"deleted\":true,\"members\":%uz}",
                                  reply->elements);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /topics/{name}/members?cursor=&count= */

static ngx_int_t
ngx_http_fishchat_manager_members(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   args[4], *name;
    u_char      count[NGX_INT_T_LEN];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    name = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name,
                                            ":members");
    args[2] = ctx->cursor;

    if (args[2].len == 0) {
        ngx_str_set(&args[2], "0");
    }

    args[3].data = count;
    args[3].len = ngx_sprintf(count, "%ui", ctx->count) - count;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->members,
                                     ngx_http_fishchat_manager_members_done,
                                     2, 4, args);
}


static ngx_int_t
ngx_http_fishchat_manager_members_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                            i;
    redisReply                       *list;
    ngx_http_fishchat_manager_out_t   out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"",
                                               &ctx->param[0]);
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = reply->element[1];

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool,
                                       512 + 320 * list->elements);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"total\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[2]);
    ngx_http_fishchat_manager_fmt(&out, ",\"members\":[");

    for (i = 0; i + 1 < list->elements; i += 2) {
        ngx_http_fishchat_manager_fmt(&out, "%s{\"id\":", i ? "," : "");
        ngx_http_fishchat_manager_rstr(&out, list->element[i]);
        ngx_http_fishchat_manager_fmt(&out, ",\"position\":");
        ngx_http_fishchat_manager_rnum(&out, list->element[i + 1]);
        ngx_http_fishchat_manager_fmt(&out, "}");
    }

    ngx_http_fishchat_manager_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out, reply->element[0], 1);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * PUT /topics/{name}/members/{id}: as JOIN_TOPIC;
 * DELETE /topics/{name}/members/{id}: as LEAVE_TOPIC
 */

static ngx_int_t
ngx_http_fishchat_manager_member_add(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_member(ctx, ctx->main->topic_join);
}


static ngx_int_t
ngx_http_fishchat_manager_member_remove(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_member(ctx, ctx->main->topic_leave);
}


static ngx_int_t
ngx_http_fishchat_manager_member(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script)
{
    u_char     *p;
    ngx_str_t   args[5], *name;

    name = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name,
                                            ":members");
    args[2] = ctx->param[1];
    args[3] = ngx_http_fishchat_manager_sys(ctx, &p, "topic-status");
    args[4] = *name;

    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, script,
                                    ngx_http_fishchat_manager_member_changed,
                                    2, 5, args);
}


static ngx_int_t
ngx_http_fishchat_manager_member_changed(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_uint_t  join;

    join = (ctx->request->method != NGX_HTTP_DELETE);

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer < 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"",
                                               &ctx->param[0]);
    }

    if (!join && reply->integer == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "\"%V\" is not a member of "
                                               "topic \"%V\"",
                                               &ctx->param[1],
                                               &ctx->param[0]);
    }

    return ngx_http_fishchat_manager_client_topic(ctx, &ctx->param[1],
                                        &ctx->param[0], join,
                                        ngx_http_fishchat_manager_member_done);
}


static ngx_int_t
ngx_http_fishchat_manager_member_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"id\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[1]);
    ngx_http_fishchat_manager_fmt(&out, ",\"member\":%s,\"online\":%s}",
                                  ctx->request->method == NGX_HTTP_PUT
                                  ? "true" : "false",
                                  reply->integer ? "true" : "false");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * Right after a topic's script: the client's topic list, and the session
 * of the client where it is online
 */

static ngx_int_t
ngx_http_fishchat_manager_client_topic(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *id, ngx_str_t *name, ngx_uint_t join,
    ngx_http_fishchat_manager_done_pt done)
{
    u_char     *p;
    ngx_str_t   args[6];

    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "client:", id,
                                            ":topics");

    if (join) {
        ngx_str_set(&args[2], "SADD");
        ngx_str_set(&args[4], "J");

    } else {
        ngx_str_set(&args[2], "SREM");
        ngx_str_set(&args[4], "L");
    }

    args[3] = *name;
    args[5] = *id;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->client_topic, done,
                                          2, 6, args);
}


/* GET /topics/{name}/history?cursor=&count=: newest page first */

static ngx_int_t
ngx_http_fishchat_manager_history(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   args[4], *name;
    u_char      count[NGX_INT_T_LEN];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    name = &ctx->param[0];
    p = ctx->scratch;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:", name, ":h");
    args[2] = ctx->cursor;

    if (args[2].len == 0) {
        ngx_str_set(&args[2], "0");
    }

    args[3].data = count;
    args[3].len = ngx_sprintf(count, "%ui", ctx->count) - count;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->history,
                                     ngx_http_fishchat_manager_history_done,
                                     2, 4, args);
}


static ngx_int_t
ngx_http_fishchat_manager_history_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    u_char                           *s, *last, *nl;
    size_t                            i, size;
    ngx_str_t                         v;
    ngx_uint_t                        n;
    redisReply                       *e;
    ngx_http_fishchat_manager_out_t   out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"",
                                               &ctx->param[0]);
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 512;

    for (i = 3; i < reply->elements; i++) {
        size += 2 * reply->element[i]->len + 64;
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, size);

    ngx_http_fishchat_manager_fmt(&out, "{\"name\":");
    ngx_http_fishchat_manager_str(&out, &ctx->param[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"last\":");
    ngx_http_fishchat_manager_rnum(&out, reply->element[0]);
    ngx_http_fishchat_manager_fmt(&out, ",\"messages\":[");

    n = 0;

    for (i = 3; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        /* <seq>\n<uuid>\n<from>\n<message> */

        s = (u_char *) e->str;
        last = s + e->len;

        ngx_http_fishchat_manager_fmt(&out, "%s{", n++ ? "," : "");

        nl = ngx_strlchr(s, last, '\n');
        v.data = s;
        v.len = (nl ? nl : last) - s;

        ngx_http_fishchat_manager_fmt(&out, "\"seq\":%L",
                                      (int64_t) ngx_atoof(v.data, v.len));

        s = nl ? nl + 1 : last;
        nl = ngx_strlchr(s, last, '\n');
        v.data = s;
        v.len = (nl ? nl : last) - s;

        ngx_http_fishchat_manager_fmt(&out, ",\"uuid\":");
        ngx_http_fishchat_manager_str(&out, &v);

        s = nl ? nl + 1 : last;
        nl = ngx_strlchr(s, last, '\n');
        v.data = s;
        v.len = (nl ? nl : last) - s;

        ngx_http_fishchat_manager_fmt(&out, ",\"from\":");
        ngx_http_fishchat_manager_str(&out, &v);

        v.data = nl ? nl + 1 : last;
        v.len = last - v.data;

        ngx_http_fishchat_manager_fmt(&out, ",\"message\":");
        ngx_http_fishchat_manager_str(&out, &v);
        ngx_http_fishchat_manager_fmt(&out, "}");
    }

    /* older messages are left while the first returned is not the first */

    if (reply->element[2]->integer > reply->element[1]->integer
        && n)
    {
        ngx_http_fishchat_manager_fmt(&out, "],\"cursor\":\"%L\"}",
                                      (int64_t) reply->element[2]->integer);

    } else {
        ngx_http_fishchat_manager_fmt(&out, "],\"cursor\":null}");
    }

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* the endpoints: messages */

/*
 * POST /messages {"to": id | "topic": name, "message": ..., "from": id}:
 * stored and delivered by the script of SEND_MESSAGE_P2P or
 * SEND_MESSAGE_TOPIC
 */

static ngx_int_t
ngx_http_fishchat_manager_message(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char                                *p;
    size_t                                 size;
    ngx_int_t                              rc, rt;
    ngx_str_t                              args[12], dargs[3], frame, from;
    ngx_str_t                              msg, uuid;
    ngx_http_request_t                    *r;
    ngx_http_fishchat_manager_loc_conf_t  *mlcf;
    u_char                                 max[NGX_INT_T_LEN];
    u_char                                 ttl[NGX_INT64_LEN];

    r = ctx->request;
    mlcf = ctx->conf;

    rc = ngx_http_fishchat_manager_field(ctx, "to", &ctx->id);
    rt = ngx_http_fishchat_manager_field(ctx, "topic", &ctx->name);

    if (rc == NGX_ERROR || rt == NGX_ERROR || (rc == NGX_OK) == (rt == NGX_OK))
    {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "either \"to\" (a client id) "
                                               "or \"topic\" (a topic name) "
                                               "is needed");
    }

    if ((rc == NGX_OK
         && ngx_http_fishchat_manager_valid_id(&ctx->id) != NGX_OK)
        || (rt == NGX_OK
            && ngx_http_fishchat_manager_valid_id(&ctx->name) != NGX_OK))
    {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"%s\" is 1 to 128 bytes "
                                               "without white space, "
                                               "control characters or "
                                               "braces",
                                               rc == NGX_OK ? "to" : "topic");
    }

    if (ngx_http_fishchat_manager_field(ctx, "message", &msg) != NGX_OK) {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"message\" (a string) is "
                                               "needed");
    }

    switch (ngx_http_fishchat_manager_field(ctx, "from", &from)) {

    case NGX_DECLINED:
        from = ngx_http_fishchat_manager_system;
        break;

    case NGX_OK:
        if (ngx_http_fishchat_manager_valid_id(&from) == NGX_OK) {
            break;
        }

        /* fall through */

    default:
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"from\" is a client id of "
                                               "1 to 128 bytes without "
                                               "white space, control "
                                               "characters or braces");
    }

    /* a 1:1 message may name its own uuid: a retry is then harmless */

    switch (ngx_http_fishchat_manager_field(ctx, "uuid", &uuid)) {

    case NGX_DECLINED:
        ngx_http_fishchat_manager_uuid(ctx->uuid);
        break;

    case NGX_OK:
        if (rc == NGX_OK && ngx_fishchat_uuid_valid(&uuid) == NGX_OK) {
            ngx_memcpy(ctx->uuid, uuid.data, NGX_FISHCHAT_UUID_LEN);
            break;
        }

        /* fall through */

    default:
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"uuid\" is a uuid v4, and "
                                               "only for a message to a "
                                               "client");
    }

    uuid.data = ctx->uuid;
    uuid.len = NGX_HTTP_FISHCHAT_MANAGER_UUID_LEN;

    ctx->stores = 1;
    p = ctx->scratch;

    if (rt == NGX_OK) {
        args[0] = ngx_http_fishchat_manager_key(ctx, &p, "topic:",
                                                &ctx->name, "");
        args[1] = ngx_http_fishchat_manager_key(ctx, &p, "topic:",
                                                &ctx->name, ":members");
        args[2] = ngx_http_fishchat_manager_key(ctx, &p, "topic:",
                                                &ctx->name, ":h");
        args[3] = from;
        args[4] = uuid;
        args[5] = msg;
        args[6].data = max;
        args[6].len = ngx_sprintf(max, "%ui", mlcf->topic_history) - max;
        args[7] = ngx_http_fishchat_manager_key(ctx, &p, "t:", &ctx->name,
                                                "");
        args[8] = ngx_http_fishchat_manager_sys(ctx, &p, "topic-sync");
        args[9] = ctx->name;
        ngx_str_set(&args[10], "1");

        return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic_send,
                                ngx_http_fishchat_manager_topic_message_sent,
                                3, 11, args);
    }

    /* the delivery frame, as the msg server makes it */

    dargs[0] = msg;
    dargs[1] = from;
    dargs[2] = uuid;

    size = ngx_fishchat_frame_size(&ngx_http_fishchat_manager_resp_p2p,
                                   dargs, 3);

    frame.data = ngx_pnalloc(r->pool, size);
    if (frame.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    frame.len = ngx_fishchat_frame_write(frame.data,
                                         &ngx_http_fishchat_manager_resp_p2p,
                                         dargs, 3)
                - frame.data;

    args[0] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", &ctx->id, "");
    args[1] = ngx_http_fishchat_manager_key(ctx, &p, "inbox:", &ctx->id,
                                            ":m");
    args[2] = ngx_http_fishchat_manager_key(ctx, &p, "client:", &ctx->id,
                                            "");
    args[3] = uuid;
    args[4] = frame;
    args[5].data = max;
    args[5].len = ngx_sprintf(max, "%ui", mlcf->inbox_max) - max;
    args[6].data = ttl;
    args[6].len = ngx_sprintf(ttl, "%M", mlcf->inbox_ttl) - ttl;
    ngx_str_set(&args[7], "");
    args[8] = ctx->id;
    args[9] = ngx_http_fishchat_manager_sys(ctx, &p, "send");
    args[10] = from;
    args[11] = ngx_http_fishchat_manager_sys(ctx, &p, "client-status");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->send,
                                     ngx_http_fishchat_manager_message_sent,
                                     3, 12, args);
}


static ngx_int_t
ngx_http_fishchat_manager_message_sent(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_str_t                        uuid;
    ngx_uint_t                       dup;
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->len == 4 && ngx_strncmp(reply->str, "FULL", 4) == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_CONFLICT,
                                               "INBOX_FULL",
                                               "the inbox of \"%V\" is full",
                                               &ctx->id);
    }

    uuid.data = ctx->uuid;
    uuid.len = NGX_HTTP_FISHCHAT_MANAGER_UUID_LEN;

    if (reply->len == 8 && ngx_strncmp(reply->str, "CONFLICT", 8) == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_CONFLICT,
                                               "DUPLICATE_UUID",
                                               "another message to \"%V\" "
                                               "has the uuid %V",
                                               &ctx->id, &uuid);
    }

    dup = (reply->len == 3 && ngx_strncmp(reply->str, "DUP", 3) == 0);

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"uuid\":");
    ngx_http_fishchat_manager_str(&out, &uuid);
    ngx_http_fishchat_manager_fmt(&out, ",\"to\":");
    ngx_http_fishchat_manager_str(&out, &ctx->id);
    ngx_http_fishchat_manager_fmt(&out, ",\"status\":");

    if (dup) {
        ngx_http_fishchat_manager_fmt(&out, "\"DUPLICATE\"}");
        return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
    }

    ngx_http_fishchat_manager_rstr(&out, reply);
    ngx_http_fishchat_manager_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply)
{
    ngx_str_t                        uuid;
    ngx_http_fishchat_manager_out_t  out;

    if (reply->type == REDIS_REPLY_STRING) {
        /* NOTOPIC: NOTMEMBER does not happen, any sender may post here */
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND",
                                               "no topic \"%V\"",
                                               &ctx->name);
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    uuid.data = ctx->uuid;
    uuid.len = NGX_HTTP_FISHCHAT_MANAGER_UUID_LEN;

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, 1024);

    ngx_http_fishchat_manager_fmt(&out, "{\"uuid\":");
    ngx_http_fishchat_manager_str(&out, &uuid);
    ngx_http_fishchat_manager_fmt(&out, ",\"topic\":");
    ngx_http_fishchat_manager_str(&out, &ctx->name);
    ngx_http_fishchat_manager_fmt(&out, ",\"seq\":%L}",
                                  (int64_t) reply->integer);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


/* the endpoints: nodes */

/* GET /nodes: the live msg servers by node, from their heartbeats */

static ngx_int_t
ngx_http_fishchat_manager_nodes(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t   args[2];

    p = ctx->scratch;

    args[0].data = p;
    p = ngx_sprintf(p, "%V{nodes}:beat", &ctx->fcf->redis_prefix);
    args[0].len = p - args[0].data;

    args[1].data = p;
    p = ngx_sprintf(p, "%V{nodes}:load", &ctx->fcf->redis_prefix);
    args[1].len = p - args[1].data;

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->nodes,
                                       ngx_http_fishchat_manager_nodes_done,
                                       2, 2, args);
}


typedef struct {
    redisReply                     *address;
    redisReply                     *left;
    ngx_str_t                       node;
    int64_t                         sessions;
    ngx_uint_t                      done;
} ngx_http_fishchat_manager_beat_t;


static ngx_int_t
ngx_http_fishchat_manager_nodes_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                             i, k, n, size;
    int64_t                            total;
    json_t                            *root, *v;
    ngx_uint_t                         first;
    redisReply                        *e;
    json_error_t                       jerr;
    ngx_http_fishchat_manager_out_t    out;
    ngx_http_fishchat_manager_beat_t  *beats, *b;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 3) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = reply->elements / 3;

    beats = ngx_pcalloc(ctx->request->pool,
                        (n + 1) * sizeof(ngx_http_fishchat_manager_beat_t));
    if (beats == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 512;

    for (i = 0; i < n; i++) {
        b = &beats[i];

        b->address = reply->element[3 * i];
        b->left = reply->element[3 * i + 1];
        b->sessions = -1;

        e = reply->element[3 * i + 2];

        size += 2 * b->address->len + 256;

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        /* {"node":"<name>","sessions":<n>} */

        root = json_loadb(e->str, e->len, 0, &jerr);

        if (root == NULL) {
            continue;
        }

        v = json_object_get(root, "node");

        if (json_is_string(v)) {
            b->node.len = json_string_length(v);
            b->node.data = ngx_pnalloc(ctx->request->pool, b->node.len + 1);

            if (b->node.data == NULL) {
                json_decref(root);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            ngx_memcpy(b->node.data, json_string_value(v), b->node.len);
            size += 2 * b->node.len;
        }

        v = json_object_get(root, "sessions");

        if (json_is_integer(v)) {
            b->sessions = json_integer_value(v);
        }

        json_decref(root);
    }

    ngx_http_fishchat_manager_out_init(&out, ctx->request->pool, size);

    ngx_http_fishchat_manager_fmt(&out, "{\"nodes\":[");

    /* grouped by node, in the order of their first server */

    first = 1;

    for (i = 0; i < n; i++) {

        if (beats[i].done) {
            continue;
        }

        total = 0;

        for (k = i; k < n; k++) {
            b = &beats[k];

            if (b->node.len == beats[i].node.len
                && ngx_strncmp(b->node.data, beats[i].node.data,
                               b->node.len) == 0
                && b->sessions > 0)
            {
                total += b->sessions;
            }
        }

        ngx_http_fishchat_manager_fmt(&out, "%s{\"node\":",
                                      first ? "" : ",");
        ngx_http_fishchat_manager_str(&out, &beats[i].node);
        ngx_http_fishchat_manager_fmt(&out, ",\"sessions\":%L,\"servers\":[",
                                      total);

        first = 0;

        for (k = i; k < n; k++) {
            b = &beats[k];

            if (b->done || b->node.len != beats[i].node.len
                || ngx_strncmp(b->node.data, beats[i].node.data,
                               b->node.len) != 0)
            {
                continue;
            }

            ngx_http_fishchat_manager_fmt(&out, "%s{\"address\":",
                                          k == i ? "" : ",");
            ngx_http_fishchat_manager_rstr(&out, b->address);

            if (b->sessions >= 0) {
                ngx_http_fishchat_manager_fmt(&out, ",\"sessions\":%L",
                                              b->sessions);

            } else {
                ngx_http_fishchat_manager_fmt(&out, ",\"sessions\":null");
            }

            ngx_http_fishchat_manager_fmt(&out, ",\"expires_in\":");
            ngx_http_fishchat_manager_rnum(&out, b->left);
            ngx_http_fishchat_manager_fmt(&out, "}");

            b->done = 1;
        }

        ngx_http_fishchat_manager_fmt(&out, "]}");
    }

    ngx_http_fishchat_manager_fmt(&out, "]}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* configuration */

static void *
ngx_http_fishchat_manager_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_fishchat_manager_main_conf_t));
}


static void *
ngx_http_fishchat_manager_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fishchat_manager_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_fishchat_manager_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->enabled = 0;
     *     conf->token = { 0, NULL };
     */

    conf->body_max = NGX_CONF_UNSET_SIZE;
    conf->inbox_max = NGX_CONF_UNSET_UINT;
    conf->inbox_ttl = NGX_CONF_UNSET_MSEC;
    conf->topic_history = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_fishchat_manager_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_fishchat_manager_loc_conf_t *prev = parent;
    ngx_http_fishchat_manager_loc_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->token, prev->token, "");
    ngx_conf_merge_size_value(conf->body_max, prev->body_max, 64 * 1024);
    ngx_conf_merge_uint_value(conf->inbox_max, prev->inbox_max, 1000);
    ngx_conf_merge_msec_value(conf->inbox_ttl, prev->inbox_ttl,
                              7 * 24 * 3600 * 1000);
    ngx_conf_merge_uint_value(conf->topic_history, prev->topic_history,
                              1000);

    if (conf->body_max == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_manager_body_max\" must not be 0");
        return NGX_CONF_ERROR;
    }

    if (conf->inbox_max == 0 || conf->inbox_ttl == 0
        || conf->topic_history == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_manager_inbox_max\", "
                           "\"fishchat_manager_inbox_ttl\" and "
                           "\"fishchat_manager_topic_history\" must not "
                           "be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_fishchat_manager(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fishchat_manager_loc_conf_t *mlcf = conf;

    ngx_http_core_loc_conf_t               *clcf;
    ngx_http_fishchat_manager_main_conf_t  *mmcf;

    if (mlcf->enabled) {
        return "is duplicate";
    }

    mlcf->enabled = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_fishchat_manager_handler;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                            ngx_http_fishchat_manager_module);

    if (mmcf->enabled) {
        return NGX_CONF_OK;
    }

    mmcf->enabled = 1;

#define ngx_http_fishchat_manager_script(field, body)                         \
    mmcf->field = ngx_fishchat_redis_script(cf, body);                        \
    if (mmcf->field == NULL) {                                                \
        return NGX_CONF_ERROR;                                                \
    }

    ngx_http_fishchat_manager_script(send,
                                     ngx_http_fishchat_manager_send_lua);
    ngx_http_fishchat_manager_script(ack,
                                     ngx_http_fishchat_manager_ack_lua);
    ngx_http_fishchat_manager_script(topic_create,
                                 ngx_http_fishchat_manager_topic_create_lua);
    ngx_http_fishchat_manager_script(topic_join,
                                 ngx_http_fishchat_manager_topic_join_lua);
    ngx_http_fishchat_manager_script(topic_leave,
                                 ngx_http_fishchat_manager_topic_leave_lua);
    ngx_http_fishchat_manager_script(topic_send,
                                 ngx_http_fishchat_manager_topic_send_lua);

    ngx_http_fishchat_manager_script(client,
                                     ngx_http_fishchat_manager_client_lua);
    ngx_http_fishchat_manager_script(clients,
                                     ngx_http_fishchat_manager_clients_lua);
    ngx_http_fishchat_manager_script(kick,
                                     ngx_http_fishchat_manager_kick_lua);
    ngx_http_fishchat_manager_script(inbox,
                                     ngx_http_fishchat_manager_inbox_lua);
    ngx_http_fishchat_manager_script(topic,
                                     ngx_http_fishchat_manager_topic_lua);
    ngx_http_fishchat_manager_script(topics,
                                     ngx_http_fishchat_manager_topics_lua);
    ngx_http_fishchat_manager_script(topic_delete,
                                 ngx_http_fishchat_manager_topic_delete_lua);
    ngx_http_fishchat_manager_script(members,
                                     ngx_http_fishchat_manager_members_lua);
    ngx_http_fishchat_manager_script(history,
                                     ngx_http_fishchat_manager_history_lua);
    ngx_http_fishchat_manager_script(client_topic,
                                 ngx_http_fishchat_manager_client_topic_lua);
    ngx_http_fishchat_manager_script(nodes,
                                     ngx_http_fishchat_manager_nodes_lua);

#undef ngx_http_fishchat_manager_script

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_fishchat_manager_init_module(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t                    *fcf;
    ngx_http_fishchat_manager_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_fishchat_manager_module);

    if (mmcf == NULL || !mmcf->enabled) {
        return NGX_OK;
    }

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf == NULL || fcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_manager\" needs \"fishchat_redis\"");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fishchat_manager_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fishchat_manager_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_fishchat_manager_module);

    if (mmcf == NULL || !mmcf->enabled) {
        return NGX_OK;
    }

    if (ngx_fishchat_get_random(ngx_http_fishchat_manager_rnd,
                                sizeof(ngx_http_fishchat_manager_rnd),
                                cycle->log)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the worker's Redis link: made once, whichever role asks first */

    return ngx_fishchat_redis_start(cycle);
}
