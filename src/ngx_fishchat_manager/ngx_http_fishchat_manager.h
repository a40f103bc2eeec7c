
/*
 * FishChat for nginx: the manager role, private to its files.
 *
 * ngx_http_fishchat_manager_module.c: directives, configuration, routing,
 * access, body reading and the Redis plumbing of a request; one file per
 * group of endpoints: _clients.c, _topics.c, _messages.c, _nodes.c,
 * _auth.c, _media.c, _files.c.
 */


#ifndef _NGX_HTTP_FISHCHAT_MANAGER_H_INCLUDED_
#define _NGX_HTTP_FISHCHAT_MANAGER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_fishchat_lua.h"


#define NGX_HTTP_FISHCHAT_MANAGER_PAGE       100
#define NGX_HTTP_FISHCHAT_MANAGER_PAGE_MAX   1000
#define NGX_HTTP_FISHCHAT_MANAGER_SEGS       4
#define NGX_HTTP_FISHCHAT_MANAGER_PARAMS     2
#define NGX_HTTP_FISHCHAT_MANAGER_CURSOR_MAX 20


/*
 * The start of the scripts of the SCAN walks (ARGV: the MATCH pattern,
 * cursor, count): SCAN until about "count" keys or the end, at most 16
 * calls; the rest of the script goes on with "keys" and "cursor"
 */
#define NGX_HTTP_FISHCHAT_MANAGER_LUA_SCAN                                    \
    "local cursor = ARGV[2] "                                                 \
    "local want = tonumber(ARGV[3]) "                                         \
    "local keys = {} "                                                        \
    "local i = 0 "                                                            \
    "repeat "                                                                 \
        "local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], "             \
                             "'COUNT', want) "                                \
        "cursor = r[1] "                                                      \
        "for _, k in ipairs(r[2]) do keys[#keys + 1] = k end "                \
        "i = i + 1 "                                                          \
    "until cursor == '0' or #keys >= want or i == 16 "


/* an error response, {"error":{"code":...,"message":...}}, logged */
#define ngx_http_fishchat_manager_error(r, status, code, ...)                 \
    ngx_fishchat_http_error(r, "manager", status, code, __VA_ARGS__)


/*
 * KEYS[1]: presence.  ARGV: id, the system channel of client events.
 * The worker of the session closes it (K<id>\n0: no session is number
 * 0): 1; 0 when offline; 2 when no worker listens on the channel any more
 * (presence left by a crash): the presence is removed.
 */

#define NGX_HTTP_FISHCHAT_MANAGER_KICK_LUA                                   \
    "local p = redis.call('HMGET', KEYS[1], 'ch', 'node', 'srv') "           \
    "if not p[1] then return 0 end "                                         \
    "if redis.call('PUBLISH', p[1], 'K' .. ARGV[1] .. '\\n0') > 0 then "     \
        "return 1 "                                                          \
    "end "                                                                   \
    "redis.call('DEL', KEYS[1]) "                                            \
    "redis.call('PUBLISH', ARGV[2], 'KICKED\\n' .. ARGV[1] .. '\\n' "        \
               ".. (p[2] or '') .. '\\n' .. (p[3] or '')) "                  \
    "return 2"


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
    ngx_fishchat_redis_script_t    *revoke;
    ngx_fishchat_redis_script_t    *media_publish;
    ngx_fishchat_redis_script_t    *inbox;
    ngx_fishchat_redis_script_t    *topic;
    ngx_fishchat_redis_script_t    *topics;
    ngx_fishchat_redis_script_t    *topic_delete;
    ngx_fishchat_redis_script_t    *members;
    ngx_fishchat_redis_script_t    *history;
    ngx_fishchat_redis_script_t    *client_topic;
    ngx_fishchat_redis_script_t    *nodes;
    ngx_fishchat_redis_script_t    *file_slot;
    ngx_fishchat_redis_script_t    *file_delete;
    ngx_fishchat_redis_script_t    *files;
    ngx_fishchat_redis_script_t    *file;
    ngx_fishchat_redis_script_t    *quarantine;
} ngx_http_fishchat_manager_main_conf_t;




typedef struct ngx_http_fishchat_manager_ctx_s
    ngx_http_fishchat_manager_ctx_t;

/* a reply arrived: NGX_DONE when another command is under way */
typedef ngx_int_t (*ngx_http_fishchat_manager_done_pt)(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);

/* an element of a list page, from one entry of the reply */
typedef void (*ngx_http_fishchat_manager_item_pt)(ngx_fishchat_json_t *out,
    redisReply *e);

/* a SCAN over the keys of one kind, answered as a page of a list */
typedef struct {
    char                               *kind;     /* "client:", "topic:" */
    char                               *name;     /* the list's */
    size_t                              fields;   /* of an entry */
    ngx_http_fishchat_manager_item_pt   item;
} ngx_http_fishchat_manager_scan_t;

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
    ngx_http_fishchat_manager_scan_t   *scan;

    ngx_str_t                       param[NGX_HTTP_FISHCHAT_MANAGER_PARAMS];
    ngx_str_t                       cursor;
    ngx_uint_t                      count;
    u_char                          count_text[NGX_INT_T_LEN];

    json_t                         *json;
    ngx_str_t                       name;      /* of a body's topic */
    ngx_str_t                       id;        /* of a body's client */

    u_char                         *scratch;   /* key names */
    void                           *data;      /* of the endpoint */
    u_char                          uuid[NGX_FISHCHAT_UUID_LEN];

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


extern ngx_module_t  ngx_http_fishchat_manager_module;

/* the scripts of the endpoints, registered by the module */
extern char  ngx_http_fishchat_manager_client_lua[];
extern char  ngx_http_fishchat_manager_clients_lua[];
extern char  ngx_http_fishchat_manager_kick_lua[];
extern char  ngx_http_fishchat_manager_revoke_lua[];
extern char  ngx_http_fishchat_manager_media_publish_lua[];
extern char  ngx_http_fishchat_manager_inbox_lua[];
extern char  ngx_http_fishchat_manager_topic_lua[];
extern char  ngx_http_fishchat_manager_topics_lua[];
extern char  ngx_http_fishchat_manager_topic_delete_lua[];
extern char  ngx_http_fishchat_manager_members_lua[];
extern char  ngx_http_fishchat_manager_history_lua[];
extern char  ngx_http_fishchat_manager_client_topic_lua[];
extern char  ngx_http_fishchat_manager_nodes_lua[];
extern char  ngx_http_fishchat_manager_file_slot_lua[];
extern char  ngx_http_fishchat_manager_file_delete_lua[];
extern char  ngx_http_fishchat_manager_files_lua[];
extern char  ngx_http_fishchat_manager_file_lua[];
extern char  ngx_http_fishchat_manager_quarantine_lua[];

/* ngx_http_fishchat_manager_module.c */

void ngx_http_fishchat_manager_page_args(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *args);
ngx_int_t ngx_http_fishchat_manager_page(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_int_t *rc);
ngx_int_t ngx_http_fishchat_manager_id_field(
    ngx_http_fishchat_manager_ctx_t *ctx, char *name, ngx_str_t *value,
    char *text, ngx_int_t *rc);
ngx_int_t ngx_http_fishchat_manager_field(
    ngx_http_fishchat_manager_ctx_t *ctx, char *name, ngx_str_t *value);
ngx_int_t ngx_http_fishchat_manager_eval(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done, ngx_uint_t nkeys,
    ngx_uint_t nargs, ngx_str_t *args);
ngx_int_t ngx_http_fishchat_manager_send(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_uint_t status,
    ngx_fishchat_json_t *out);
void ngx_http_fishchat_manager_open(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_json_t *out, size_t size, char *key, ngx_str_t *value);
void ngx_http_fishchat_manager_fields(ngx_fishchat_json_t *out,
    redisReply **f, char **names, ngx_uint_t n);
void ngx_http_fishchat_manager_messages(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_fishchat_json_t *out,
    redisReply *reply, size_t first, char *key, char *count);
ngx_str_t ngx_http_fishchat_manager_key(ngx_http_fishchat_manager_ctx_t *ctx,
    char *prefix, char *suffix);
void ngx_http_fishchat_manager_keys(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *keys, char **parts);
ngx_int_t ngx_http_fishchat_manager_not_found(
    ngx_http_fishchat_manager_ctx_t *ctx, char *what);
ngx_int_t ngx_http_fishchat_manager_counted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply, ngx_int_t *rc,
    char *fmt, ngx_str_t *a, ngx_str_t *b);
ngx_int_t ngx_http_fishchat_manager_store(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done, ngx_uint_t nkeys,
    ngx_uint_t nargs, ngx_str_t *args);
void ngx_http_fishchat_manager_cursor(
    ngx_fishchat_json_t *out, redisReply *e, ngx_uint_t more);
ngx_int_t ngx_http_fishchat_manager_scan(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_scan_t *scan, ngx_str_t *set);
ngx_int_t ngx_http_fishchat_manager_scan_page(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);

/* ngx_http_fishchat_manager_clients.c */

ngx_int_t ngx_http_fishchat_manager_client(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_clients(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_kick(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_inbox(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_inbox_delete(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_auth.c */

ngx_int_t ngx_http_fishchat_manager_token(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_revoke(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_files.c */

ngx_int_t ngx_http_fishchat_manager_file_slot(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_files(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_file(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_file_delete(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_quarantine(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_quarantine_add(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_quarantine_remove(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_media.c */

ngx_int_t ngx_http_fishchat_manager_stream(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_topics.c */

ngx_int_t ngx_http_fishchat_manager_topics(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_topic_create(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_topic(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_topic_delete(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_members(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_member_add(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_member_remove(
    ngx_http_fishchat_manager_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_manager_history(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_messages.c */

ngx_int_t ngx_http_fishchat_manager_message(
    ngx_http_fishchat_manager_ctx_t *ctx);

/* ngx_http_fishchat_manager_nodes.c */

ngx_int_t ngx_http_fishchat_manager_nodes(
    ngx_http_fishchat_manager_ctx_t *ctx);


#endif /* _NGX_HTTP_FISHCHAT_MANAGER_H_INCLUDED_ */
