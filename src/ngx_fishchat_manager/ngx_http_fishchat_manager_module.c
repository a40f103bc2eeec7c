
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


#include "ngx_http_fishchat_manager.h"


static ngx_int_t ngx_http_fishchat_manager_handler(ngx_http_request_t *r);
static ngx_http_fishchat_manager_ctx_t *ngx_http_fishchat_manager_create_ctx(
    ngx_http_request_t *r, ngx_http_fishchat_manager_loc_conf_t *mlcf);
static ngx_http_fishchat_manager_start_pt ngx_http_fishchat_manager_method(
    ngx_http_request_t *r, ngx_http_fishchat_manager_route_t *route);
static ngx_int_t ngx_http_fishchat_manager_post(ngx_http_request_t *r,
    ngx_http_fishchat_manager_loc_conf_t *mlcf);
static void ngx_http_fishchat_manager_body_handler(ngx_http_request_t *r);
static void ngx_http_fishchat_manager_run(
    ngx_http_fishchat_manager_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_manager_auth(ngx_http_request_t *r,
    ngx_str_t *token);
static ngx_int_t ngx_http_fishchat_manager_route(
    ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_http_fishchat_manager_route_t **route);
static ngx_int_t ngx_http_fishchat_manager_match(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *seg, ngx_uint_t n,
    ngx_http_fishchat_manager_route_t **route);
static ngx_int_t ngx_http_fishchat_manager_allow(ngx_http_request_t *r,
    ngx_http_fishchat_manager_route_t *route);
static ngx_int_t ngx_http_fishchat_manager_read_body(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_int_t *rc);
static void ngx_http_fishchat_manager_cleanup(void *data);
static void ngx_http_fishchat_manager_json_cleanup(void *data);
static void ngx_http_fishchat_manager_reply(redisReply *reply, void *data);
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

    { 3, { "clients", NULL, "revoke" },
      NULL, ngx_http_fishchat_manager_revoke, NULL, NULL },

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

    { 1, { "tokens" },
      NULL, ngx_http_fishchat_manager_token, NULL, NULL },

    { 2, { "media", "streams" },
      NULL, ngx_http_fishchat_manager_stream, NULL, NULL },

    { 1, { "nodes" },
      ngx_http_fishchat_manager_nodes, NULL, NULL, NULL },

    { 3, { "clients", NULL, "files" },
      ngx_http_fishchat_manager_files, NULL, NULL, NULL },

    { 2, { "files", "slots" },
      NULL, ngx_http_fishchat_manager_file_slot, NULL, NULL },

    { 2, { "files", "quarantine" },
      ngx_http_fishchat_manager_quarantine,
      ngx_http_fishchat_manager_quarantine_add, NULL, NULL },

    { 3, { "files", "quarantine", NULL },
      NULL, NULL, NULL, ngx_http_fishchat_manager_quarantine_remove },

    { 2, { "files", NULL },
      ngx_http_fishchat_manager_file, NULL, NULL,
      ngx_http_fishchat_manager_file_delete },

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


static ngx_fishchat_redis_script_slot_t
    ngx_http_fishchat_manager_scripts[] =
{
    { ngx_http_fishchat_manager_send_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, send) },
    { ngx_http_fishchat_manager_ack_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, ack) },
    { ngx_http_fishchat_manager_topic_create_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic_create) },
    { ngx_http_fishchat_manager_topic_join_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic_join) },
    { ngx_http_fishchat_manager_topic_leave_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic_leave) },
    { ngx_http_fishchat_manager_topic_send_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic_send) },
    { ngx_http_fishchat_manager_client_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, client) },
    { ngx_http_fishchat_manager_clients_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, clients) },
    { ngx_http_fishchat_manager_kick_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, kick) },
    { ngx_http_fishchat_manager_revoke_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, revoke) },
    { ngx_http_fishchat_manager_media_publish_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, media_publish) },
    { ngx_http_fishchat_manager_inbox_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, inbox) },
    { ngx_http_fishchat_manager_topic_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic) },
    { ngx_http_fishchat_manager_topics_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topics) },
    { ngx_http_fishchat_manager_topic_delete_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, topic_delete) },
    { ngx_http_fishchat_manager_members_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, members) },
    { ngx_http_fishchat_manager_history_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, history) },
    { ngx_http_fishchat_manager_client_topic_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, client_topic) },
    { ngx_http_fishchat_manager_nodes_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, nodes) },
    { ngx_http_fishchat_manager_file_slot_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, file_slot) },
    { ngx_http_fishchat_manager_file_delete_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, file_delete) },
    { ngx_http_fishchat_manager_files_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, files) },
    { ngx_http_fishchat_manager_file_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, file) },
    { ngx_http_fishchat_manager_quarantine_lua,
      offsetof(ngx_http_fishchat_manager_main_conf_t, quarantine) },
    { NULL, 0 }
};


/* requests */

static ngx_int_t
ngx_http_fishchat_manager_handler(ngx_http_request_t *r)
{
    ngx_int_t                               rc;
    ngx_uint_t                              i;
    ngx_http_fishchat_manager_ctx_t        *ctx;
    ngx_http_fishchat_manager_route_t      *route;
    ngx_http_fishchat_manager_start_pt      start;
    ngx_http_fishchat_manager_loc_conf_t   *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_manager_module);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fishchat manager: %V \"%V\"", &r->method_name, &r->uri);

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

    ctx = ngx_http_fishchat_manager_create_ctx(r, mlcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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

    start = ngx_http_fishchat_manager_method(r, route);

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
            && ngx_fishchat_valid_id(&ctx->param[i]) != NGX_OK)
        {
            break;
        }
    }

    if (i < NGX_HTTP_FISHCHAT_MANAGER_PARAMS) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "an id or name in the path is "
                                               "1 to 128 bytes without white "
                                               "space, control characters or "
                                               "braces");
    }

    ctx->start = start;

    /* a revocation needs no body */

    if (r->method == NGX_HTTP_POST
        && start != ngx_http_fishchat_manager_revoke)
    {
        return ngx_http_fishchat_manager_post(r, mlcf);
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


/* a POST: its body is read, at most fishchat_manager_body_max bytes */

static ngx_int_t
ngx_http_fishchat_manager_post(ngx_http_request_t *r,
    ngx_http_fishchat_manager_loc_conf_t *mlcf)
{
    ngx_int_t  rc;

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


/* the state of a request, freed (and its command forgotten) with it */

static ngx_http_fishchat_manager_ctx_t *
ngx_http_fishchat_manager_create_ctx(ngx_http_request_t *r,
    ngx_http_fishchat_manager_loc_conf_t *mlcf)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_fishchat_manager_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fishchat_manager_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->conf = mlcf;
    ctx->main = ngx_http_get_module_main_conf(r,
                                            ngx_http_fishchat_manager_module);
    ctx->fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    ctx->scratch = ngx_pnalloc(r->pool,
                               8 * (ctx->fcf->redis_prefix.len
                                    + 2 * NGX_FISHCHAT_ID_MAX
                                    + 64));
    if (ctx->scratch == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_fishchat_manager_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_fishchat_manager_module);

    return ctx;
}


/* the endpoint of the request's method on a route, NULL for none */

static ngx_http_fishchat_manager_start_pt
ngx_http_fishchat_manager_method(ngx_http_request_t *r,
    ngx_http_fishchat_manager_route_t *route)
{
    switch (r->method) {

    case NGX_HTTP_GET:
    case NGX_HTTP_HEAD:
        return route->get;

    case NGX_HTTP_POST:
        return route->post;

    case NGX_HTTP_PUT:
        return route->put;

    case NGX_HTTP_DELETE:
        return route->del;

    default:
        return NULL;
    }
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
    u_char                    *p, *last, *end, *dst, *src;
    size_t                     skip;
    ngx_str_t                  seg[NGX_HTTP_FISHCHAT_MANAGER_SEGS];
    ngx_uint_t                 n;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

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

    return ngx_http_fishchat_manager_match(ctx, seg, n, route);
}


/* the route of the segments, its parameters in ctx->param */

static ngx_int_t
ngx_http_fishchat_manager_match(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *seg, ngx_uint_t n, ngx_http_fishchat_manager_route_t **route)
{
    ngx_uint_t                          i, k;
    ngx_http_fishchat_manager_route_t  *rt;

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

    return ngx_fishchat_http_header(r, "Allow", &allow);
}


/*
 * ?cursor=&count= of a page: the cursor is digits (empty when absent),
 * count is 1 to 1000 (100 when absent).  NGX_OK, or NGX_DONE when a 400
 * was sent (*rc: what to finalize the request with).
 */

ngx_int_t
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
 * A page of a SCAN walk, {cursor, {entry...}}, as
 * {"<name>":[item...],"cursor":...}: an entry that is not an array of
 * "fields" elements is left out.
 */

ngx_int_t
ngx_http_fishchat_manager_scan_page(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                             i;
    ngx_uint_t                         n;
    redisReply                        *list, *e;
    ngx_fishchat_json_t                out;
    ngx_http_fishchat_manager_scan_t  *scan;

    scan = ctx->scan;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = reply->element[1];

    ngx_fishchat_json_init(&out, ctx->request->pool,
                           512 + 256 * list->elements);

    ngx_fishchat_json_fmt(&out, "{\"%s\":[", scan->name);

    n = 0;

    for (i = 0; i < list->elements; i++) {
        e = list->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != scan->fields) {
            continue;
        }

        if (n++) {
            ngx_fishchat_json_fmt(&out, ",");
        }

        scan->item(&out, e);
    }

    ngx_fishchat_json_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out, reply->element[0], 1);
    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* the cursor ("0" for the first page) and the count of a page, at "args" */

void
ngx_http_fishchat_manager_page_args(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *args)
{
    args[0] = ctx->cursor;

    if (args[0].len == 0) {
        ngx_str_set(&args[0], "0");
    }

    args[1].data = ctx->count_text;
    args[1].len = ngx_sprintf(ctx->count_text, "%ui", ctx->count)
                  - ctx->count_text;
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

ngx_int_t
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


/*
 * A string field of the body that is an id or a topic name (key-safe, see
 * ngx_fishchat_valid_id()): NGX_OK, or NGX_DONE when a 400 saying "text"
 * was sent (*rc: what to finalize the request with)
 */

ngx_int_t
ngx_http_fishchat_manager_id_field(ngx_http_fishchat_manager_ctx_t *ctx,
    char *name, ngx_str_t *value, char *text, ngx_int_t *rc)
{
    if (ngx_http_fishchat_manager_field(ctx, name, value) == NGX_OK
        && ngx_fishchat_valid_id(value) == NGX_OK)
    {
        return NGX_OK;
    }

    *rc = ngx_http_fishchat_manager_error(ctx->request, NGX_HTTP_BAD_REQUEST,
                                          "BAD_REQUEST", "%s", text);
    return NGX_DONE;
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

ngx_int_t
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

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "fishchat manager: \"%V\" done: %i", &r->uri, rc);

    ngx_http_finalize_request(r, rc);

    if (!starting) {
        ngx_http_run_posted_requests(c);
    }
}


ngx_int_t
ngx_http_fishchat_manager_send(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_uint_t status, ngx_fishchat_json_t *out)
{
    ngx_fishchat_json_fmt(out, "\n");

    return ngx_fishchat_http_send(ctx->request, status, "application/json",
                                  out);
}


/*
 * The start of the JSON object of a reply: {"<key>":<value>, with "size"
 * bytes for the first buffer
 */

void
ngx_http_fishchat_manager_open(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_json_t *out, size_t size, char *key, ngx_str_t *value)
{
    ngx_fishchat_json_init(out, ctx->request->pool, size);

    ngx_fishchat_json_fmt(out, "{\"%s\":", key);
    ngx_fishchat_json_str(out, value);
}


/*
 * ,"<name>":<value> of "n" consecutive elements of a reply, named by
 * "names": a string, or a number where the name starts with '#'
 */

void
ngx_http_fishchat_manager_fields(ngx_fishchat_json_t *out, redisReply **f,
    char **names, ngx_uint_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < n; i++) {
        if (names[i][0] == '#') {
            ngx_fishchat_json_fmt(out, ",\"%s\":", names[i] + 1);
            ngx_fishchat_json_rnum(out, f[i]);

        } else {
            ngx_fishchat_json_fmt(out, ",\"%s\":", names[i]);
            ngx_fishchat_json_rstr(out, f[i]);
        }
    }
}


/*
 * The head of a page of messages: {"<key>":<the first parameter>,
 * "<count>":<the first element>,"messages":[, with room for the elements
 * from "first" on
 */

void
ngx_http_fishchat_manager_messages(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_json_t *out, redisReply *reply, size_t first, char *key,
    char *count)
{
    size_t  i, size;

    size = 512;

    for (i = first; i < reply->elements; i++) {
        size += 2 * reply->element[i]->len + 64;
    }

    ngx_http_fishchat_manager_open(ctx, out, size, key, &ctx->param[0]);

    ngx_fishchat_json_fmt(out, ",\"%s\":", count);
    ngx_fishchat_json_rnum(out, reply->element[0]);
    ngx_fishchat_json_fmt(out, ",\"messages\":[");
}


/* one key of the path's first parameter (a client, a file) */

ngx_str_t
ngx_http_fishchat_manager_key(ngx_http_fishchat_manager_ctx_t *ctx,
    char *prefix, char *suffix)
{
    char       *parts[3];
    ngx_str_t   key;

    parts[0] = prefix;
    parts[1] = suffix;
    parts[2] = NULL;

    ngx_http_fishchat_manager_keys(ctx, &key, parts);

    return key;
}


/*
 * The keys of the path's first parameter (a client, a topic): one of
 * each prefix and suffix in "parts", up to a NULL, in ctx->scratch
 */

void
ngx_http_fishchat_manager_keys(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *keys, char **parts)
{
    u_char  *p;

    p = ctx->scratch;

    while (*parts) {
        *keys++ = ngx_fishchat_key(&p, parts[0], &ctx->param[0], parts[1]);
        parts += 2;
    }
}


/* NOT_FOUND: no <what> "<the first parameter of the path>" */

ngx_int_t
ngx_http_fishchat_manager_not_found(ngx_http_fishchat_manager_ctx_t *ctx,
    char *what)
{
    return ngx_http_fishchat_manager_error(ctx->request, NGX_HTTP_NOT_FOUND,
                                           "NOT_FOUND", "no %s \"%V\"",
                                           what, &ctx->param[0]);
}


/*
 * The integer answer of a script that writes: 0 (nothing there) is
 * NOT_FOUND with the message given, of "a" and "b"; NGX_OK to go on,
 * otherwise *rc is the answer to return
 */

ngx_int_t
ngx_http_fishchat_manager_counted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply, ngx_int_t *rc, char *fmt, ngx_str_t *a, ngx_str_t *b)
{
    if (reply->type != REDIS_REPLY_INTEGER) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_ERROR;
    }

    if (reply->integer == 0) {
        *rc = ngx_http_fishchat_manager_error(ctx->request,
                                              NGX_HTTP_NOT_FOUND,
                                              "NOT_FOUND", fmt, a, b);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* EVALSHA of a script that writes */

ngx_int_t
ngx_http_fishchat_manager_store(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done, ngx_uint_t nkeys,
    ngx_uint_t nargs, ngx_str_t *args)
{
    ctx->stores = 1;

    return ngx_http_fishchat_manager_eval(ctx, script, done, nkeys, nargs,
                                          args);
}


/* ,"cursor":"<n>" for the next page, or null after the last */

void
ngx_http_fishchat_manager_cursor(ngx_fishchat_json_t *out,
    redisReply *e, ngx_uint_t more)
{
    if (!more || e == NULL || e->type != REDIS_REPLY_STRING
        || (e->len == 1 && e->str[0] == '0'))
    {
        ngx_fishchat_json_fmt(out, ",\"cursor\":null");
        return;
    }

    ngx_fishchat_json_fmt(out, ",\"cursor\":");
    ngx_fishchat_json_rstr(out, e);
}


/*
 * A page of a SCAN over the keys of one kind ("client:", "topic:"): the
 * script gets the MATCH pattern, the cursor, the page size and the prefix;
 * or, with "set", a page of the members of that key: KEYS[1] is the set,
 * the script gets the cursor, the page size and the prefix
 */

ngx_int_t
ngx_http_fishchat_manager_scan(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_scan_t *scan, ngx_str_t *set)
{
    u_char     *p;
    ngx_int_t   rc;
    ngx_str_t   args[4];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    p = ctx->scratch;

    args[0] = set ? *set : ngx_fishchat_key_pattern(&p, scan->kind);
    ngx_http_fishchat_manager_page_args(ctx, &args[1]);
    args[3] = ctx->fcf->redis_prefix;

    ctx->scan = scan;

    return ngx_http_fishchat_manager_eval(ctx, script,
                                        ngx_http_fishchat_manager_scan_page,
                                        set ? 1 : 0, 4, args);
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

    if (ngx_fishchat_redis_scripts(cf, mmcf,
                                   ngx_http_fishchat_manager_scripts)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_fishchat_manager_init_module(ngx_cycle_t *cycle)
{
    ngx_http_fishchat_manager_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                            ngx_http_fishchat_manager_module);

    if (mmcf == NULL || !mmcf->enabled) {
        return NGX_OK;
    }

    return ngx_fishchat_redis_needed(cycle, "fishchat_manager");
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

    /* the worker's Redis link: made once, whichever role asks first */

    return ngx_fishchat_redis_start(cycle);
}
