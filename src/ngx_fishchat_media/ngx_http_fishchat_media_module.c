
/*
 * FishChat for nginx: the media role's HTTP side.
 *
 * fishchat_media_hooks answers nginx-rtmp's notifications (on_publish,
 * on_play, on_update, on_*_done): a publisher or a player is let in only
 * with a media token of ngx_fishchat_auth.c for that stream and that
 * action, checked by its signature alone (nothing blocks, nothing waits).
 * fishchat_media_hls guards the HLS files: /hls/<play token>/<file> is
 * served as /hls/<file> by nginx's static module once the token is good
 * for the file's stream, so that the playlist's relative segment URLs
 * carry the token too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_fishchat_lua.h"
#include "ngx_http_fishchat_media.h"


/*
 * where a notice is kept: the defaults of fishchat_topic_history for a
 * topic, of fishchat_msg_inbox_max and fishchat_msg_inbox_ttl (ms) for a
 * peer
 */
#define NGX_HTTP_FISHCHAT_MEDIA_HISTORY    "1000"
#define NGX_HTTP_FISHCHAT_MEDIA_INBOX_MAX  1000
#define NGX_HTTP_FISHCHAT_MEDIA_INBOX_TTL  (7 * 24 * 3600 * 1000)


typedef struct {
    ngx_flag_t                  hls;
    ngx_fishchat_redis_script_t  *notice;     /* the hooks' location */
    ngx_fishchat_redis_script_t  *revoked;

    /* recordings (the hooks' location) */
    ngx_str_t                   record_path;  /* real path, no final "/" */
    ngx_str_t                   vod_path;
    ngx_str_t                   pool_name;
    off_t                       max_size;
    time_t                      max_duration;
    ngx_msec_t                  remux_timeout;
#if (NGX_THREADS)
    ngx_thread_pool_t          *pool;
#endif
} ngx_http_fishchat_media_loc_conf_t;


/* a publish or a play whose token is good, while Redis says if revoked */

typedef struct {
    ngx_http_request_t         *request;
    ngx_fishchat_redis_req_t   *req;
    ngx_str_t                   call;
    ngx_str_t                   name;
    time_t                      exp;
} ngx_http_fishchat_media_ctx_t;


static ngx_int_t ngx_http_fishchat_media_hook_handler(ngx_http_request_t *r);
static void ngx_http_fishchat_media_hook_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_media_hook(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_media_done(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *call,
    ngx_str_t *body);
static ngx_int_t ngx_http_fishchat_media_field(ngx_str_t *body, char *name,
    ngx_str_t *value, ngx_pool_t *pool);
static ngx_uint_t ngx_http_fishchat_media_relay(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_fishchat_media_record(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_fishchat_media_record_file(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *path,
    ngx_str_t *name, ngx_http_fishchat_media_remux_t *rx);
#if (NGX_THREADS)
static void ngx_http_fishchat_media_recorded(
    ngx_http_fishchat_media_remux_t *rx);
static void ngx_http_fishchat_media_remuxed(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_fishchat_media_revocation(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *call,
    ngx_str_t *name, ngx_fishchat_token_t *t);
static void ngx_http_fishchat_media_revoked(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_media_verdict(
    ngx_http_fishchat_media_ctx_t *ctx, redisReply *reply);
static void ngx_http_fishchat_media_cleanup(void *data);
static ngx_int_t ngx_http_fishchat_media_allowed(ngx_http_request_t *r,
    ngx_str_t *call, ngx_str_t *name, time_t exp);
static ngx_int_t ngx_http_fishchat_media_ok(ngx_http_request_t *r);
static void ngx_http_fishchat_media_notice(ngx_pool_t *pool,
    ngx_fishchat_redis_script_t *script, ngx_str_t *name, char *kind,
    ngx_str_t *rec);
static ngx_int_t ngx_http_fishchat_media_hls_access(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_media_stream(ngx_str_t *file,
    ngx_str_t *stream, ngx_uint_t *playlist);
static char *ngx_http_fishchat_media_hooks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fishchat_media_hls(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fishchat_media_record_path(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_fishchat_media_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fishchat_media_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_fishchat_media_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_fishchat_media_commands[] = {

    { ngx_string("fishchat_media_hooks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fishchat_media_hooks,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_media_hls"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fishchat_media_hls,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_media_record_path"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fishchat_media_record_path,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, record_path),
      NULL },

    { ngx_string("fishchat_media_vod_path"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fishchat_media_record_path,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, vod_path),
      NULL },

    { ngx_string("fishchat_media_thread_pool"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, pool_name),
      NULL },

    { ngx_string("fishchat_media_record_max_size"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, max_size),
      NULL },

    { ngx_string("fishchat_media_record_max_duration"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, max_duration),
      NULL },

    { ngx_string("fishchat_media_remux_timeout"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_media_loc_conf_t, remux_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_media_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_fishchat_media_init,          /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fishchat_media_create_loc_conf, /* create location configuration */
    ngx_http_fishchat_media_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_fishchat_media_module = {
    NGX_MODULE_V1,
    &ngx_http_fishchat_media_module_ctx,   /* module context */
    ngx_http_fishchat_media_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* nginx-rtmp's notifications: a form in a POST body */

static ngx_int_t
ngx_http_fishchat_media_hook_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_NOT_ALLOWED,
                                       "METHOD_NOT_ALLOWED",
                                       "nginx-rtmp's notifications are "
                                       "POSTs");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                        ngx_http_fishchat_media_hook_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_fishchat_media_hook_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_fishchat_media_hook(r));
}


/*
 * publish, play and their updates: 200 with a token for that action on
 * that stream, 403 otherwise; the ends of both are taken as they come
 */

static ngx_int_t
ngx_http_fishchat_media_hook(ngx_http_request_t *r)
{
    char                 *reason;
    ngx_int_t             rc;
    ngx_str_t             body, call, name, token;
    ngx_buf_t            *b;
    ngx_fishchat_token_t  t;

    ngx_http_fishchat_media_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_media_module);

    if (r->request_body == NULL || r->request_body->bufs == NULL
        || r->request_body->bufs->buf->in_file
        || r->request_body->bufs->next)
    {
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "no notification in "
                                       "the body");
    }

    b = r->request_body->bufs->buf;
    body.data = b->pos;
    body.len = b->last - b->pos;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fishchat media: notification \"%V\"", &body);

    if (ngx_http_fishchat_media_field(&body, "call", &call, r->pool) != NGX_OK)
    {
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "no \"call\"");
    }

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));

    if ((call.len == 7 && ngx_strncmp(call.data, "publish", 7) == 0)
        || (call.len == 14
            && ngx_strncmp(call.data, "update_publish", 14) == 0))
    {
        t.act = "publish";

    } else if ((call.len == 4 && ngx_strncmp(call.data, "play", 4) == 0)
               || (call.len == 11
                   && ngx_strncmp(call.data, "update_play", 11) == 0))
    {
        t.act = "play";

    } else {
        return ngx_http_fishchat_media_done(r, mlcf, &call, &body);
    }

    if (ngx_http_fishchat_media_field(&body, "name", &name, r->pool) != NGX_OK
        || ngx_fishchat_valid_id(&name) != NGX_OK)
    {
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "%V: no valid stream "
                                       "name", &call);
    }

    if (ngx_strcmp(t.act, "play") == 0
        && ngx_http_fishchat_media_relay(r, &body))
    {
        /*
         * rtmp_auto_push: the publisher's worker plays the stream to the
         * other workers over its unix sockets, as a player with no token
         */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fishchat media: %V of a relay to a worker", &call);

        return ngx_http_fishchat_media_ok(r);
    }

    if (ngx_http_fishchat_media_field(&body, "token", &token, r->pool)
        != NGX_OK)
    {
        ngx_str_null(&token);
    }

    t.stream = name;

    rc = ngx_fishchat_token_verify(ngx_fishchat_get_conf(
                                       (ngx_cycle_t *) ngx_cycle),
                                   &token, NULL, &t, &reason);

    if (rc != NGX_OK) {
        ngx_fishchat_media_add(refused, 1);

        return ngx_fishchat_http_error(r, "media", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "%V of stream %V "
                                       "refused: %s", &call, &name, reason);
    }

    return ngx_http_fishchat_media_revocation(r, mlcf, &call, &name, &t);
}


/* the notifications that need no token: what ended, and the others */

static ngx_int_t
ngx_http_fishchat_media_done(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *call,
    ngx_str_t *body)
{
    ngx_str_t  name;

    if (call->len == 11 && ngx_strncmp(call->data, "record_done", 11) == 0) {
        return ngx_http_fishchat_media_record(r, body);
    }

    if (call->len == 12 && ngx_strncmp(call->data, "publish_done", 12) == 0) {
        ngx_fishchat_media_add(streams, -1);

        if (ngx_http_fishchat_media_field(body, "name", &name, r->pool)
            == NGX_OK
            && ngx_fishchat_valid_id(&name) == NGX_OK)
        {
            ngx_http_fishchat_media_notice(r->pool, mlcf->notice, &name,
                                           "ENDED", NULL);
        }

        return ngx_http_fishchat_media_ok(r);
    }

    if (call->len == 9 && ngx_strncmp(call->data, "play_done", 9) == 0) {
        if (!ngx_http_fishchat_media_relay(r, body)) {
            ngx_fishchat_media_add(viewers, -1);
        }

        return ngx_http_fishchat_media_ok(r);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fishchat media: \"%V\" noted", call);

    return ngx_http_fishchat_media_ok(r);
}


/*
 * A good token may have been revoked since (POST /clients/{id}/revoke):
 * Redis is asked (NGX_FISHCHAT_LUA_REVOKED) about its issue time, "iat"
 * or, for a media token which has none (nginx-rtmp's 255 bytes of
 * arguments), its "exp" less fishchat_media_token_ttl.  NGX_DONE: under
 * way.  Without Redis a new publish or play is refused (503) and an
 * update let go on: a blip of Redis does not cut a live stream.
 */

static ngx_int_t
ngx_http_fishchat_media_revocation(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *call,
    ngx_str_t *name, ngx_fishchat_token_t *t)
{
    u_char                         *p;
    time_t                          iat;
    ngx_str_t                       args[2], sub;
    ngx_fishchat_conf_t            *fcf;
    ngx_http_cleanup_t             *cln;
    ngx_http_fishchat_media_ctx_t  *ctx;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    sub.data = t->sub;
    sub.len = t->sub_len;

    iat = t->iat ? t->iat : t->exp - fcf->media_token_ttl;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fishchat_media_ctx_t));
    p = ngx_pnalloc(r->pool, fcf->redis_prefix.len + sub.len + 16
                             + NGX_TIME_T_LEN);
    cln = ngx_http_cleanup_add(r, 0);

    if (ctx == NULL || p == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->call = *call;
    ctx->name = *name;
    ctx->exp = t->exp;

    args[0] = ngx_fishchat_key(&p, "revoked:", &sub, "");
    args[1].data = p;
    args[1].len = ngx_sprintf(p, "%T", iat) - p;

    if (fcf->redis && mlcf->revoked) {
        ctx->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                           mlcf->revoked,
                                           ngx_http_fishchat_media_revoked,
                                           ctx, 1, 2, args);
    }

    if (ctx->req == NULL) {
        return ngx_http_fishchat_media_verdict(ctx, NULL);
    }

    cln->handler = ngx_http_fishchat_media_cleanup;
    cln->data = ctx;

    /* as a content handler's NGX_DONE: the body handler's finalization */
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_fishchat_media_revoked(redisReply *reply, void *data)
{
    ngx_http_fishchat_media_ctx_t *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;
    ctx->req = NULL;

    ngx_http_finalize_request(r, ngx_http_fishchat_media_verdict(ctx, reply));
    ngx_http_run_posted_requests(c);
}


/* Redis' answer, NULL when there is none: the answer to nginx-rtmp */

static ngx_int_t
ngx_http_fishchat_media_verdict(ngx_http_fishchat_media_ctx_t *ctx,
    redisReply *reply)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        ngx_fishchat_media_add(refused, 1);

        return ngx_fishchat_http_error(r, "media", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "%V of stream %V "
                                       "refused: the token is revoked",
                                       &ctx->call, &ctx->name);
    }

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_media_allowed(r, &ctx->call, &ctx->name,
                                               ctx->exp);
    }

    if (ctx->call.len > 7 && ngx_strncmp(ctx->call.data, "update_", 7) == 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fishchat media: %V of stream %V let go on: Redis is "
                      "unavailable to tell a revocation", &ctx->call,
                      &ctx->name);

        return ngx_http_fishchat_media_ok(r);
    }

    return ngx_fishchat_http_error(r, "media", NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "REDIS_UNAVAILABLE", "%V of stream %V "
                                   "refused: Redis is unavailable to tell a "
                                   "revocation", &ctx->call, &ctx->name);
}


static void
ngx_http_fishchat_media_cleanup(void *data)
{
    ngx_http_fishchat_media_ctx_t *ctx = data;

    if (ctx->req) {
        ngx_fishchat_redis_cancel(ctx->req);
        ctx->req = NULL;
    }
}


static ngx_int_t
ngx_http_fishchat_media_allowed(ngx_http_request_t *r, ngx_str_t *call,
    ngx_str_t *name, time_t exp)
{
    ngx_http_fishchat_media_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_media_module);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat media: %V of stream %V allowed until %T",
                  call, name, exp);

    if (call->len == 7 && ngx_strncmp(call->data, "publish", 7) == 0) {
        ngx_fishchat_media_add(streams, 1);
        ngx_fishchat_media_add(publishes, 1);

        ngx_http_fishchat_media_notice(r->pool, mlcf->notice, name, "LIVE",
                                       NULL);

    } else if (call->len == 4) {
        ngx_fishchat_media_add(viewers, 1);
        ngx_fishchat_media_add(plays, 1);
    }

    return ngx_http_fishchat_media_ok(r);
}


/*
 * The stream's conversation is told it went live, ended, or was recorded
 * (NGX_FISHCHAT_LUA_MEDIA_NOTICE): a topic message or a 1:1 message of
 * "{media}", made into MEDIA_LIVE, MEDIA_ENDED or MEDIA_RECORDING for
 * opt-in clients and a text for seed ones by the msg servers.  "rec" is a
 * recording's bytes and seconds.  Nothing waits for it.
 */

static void
ngx_http_fishchat_media_notice(ngx_pool_t *pool,
    ngx_fishchat_redis_script_t *script, ngx_str_t *name, char *kind,
    ngx_str_t *rec)
{
    u_char                *p;
    ngx_str_t              args[14], *url;
    ngx_fishchat_conf_t   *fcf;
    ngx_fishchat_redis_t  *link;
    u_char                 uuid[NGX_FISHCHAT_UUID_LEN];
    u_char                 max[NGX_INT_T_LEN], ttl[NGX_INT_T_LEN];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    link = ngx_fishchat_redis_link();

    if (script == NULL || fcf->redis == NULL || link == NULL) {
        return;
    }

    url = rec ? &fcf->media_vod_url : &fcf->media_hls_url;

    p = ngx_pnalloc(pool, fcf->redis_prefix.len + name->len + 16
                          + url->len + name->len + 8);
    if (p == NULL) {
        return;
    }

    args[0] = ngx_fishchat_key(&p, "media:", name, "");
    args[1] = fcf->redis_prefix;

    ngx_fishchat_uuid(uuid);
    args[2].data = uuid;
    args[2].len = NGX_FISHCHAT_UUID_LEN;

    ngx_str_set(&args[3], NGX_HTTP_FISHCHAT_MEDIA_HISTORY);
    args[4] = fcf->sys[NGX_FISHCHAT_SYS_TOPIC_SYNC];
    args[5].data = (u_char *) kind;
    args[5].len = ngx_strlen(kind);
    args[6] = *name;

    /* the URL without a token: members ask MEDIA_PLAY for their own */

    args[7].data = p;
    args[7].len = ngx_sprintf(p, "%V/%V.%s", url, name,
                              rec ? "mp4" : "m3u8")
                  - p;

    args[8].data = max;
    args[8].len = ngx_sprintf(max, "%d", NGX_HTTP_FISHCHAT_MEDIA_INBOX_MAX)
                  - max;
    args[9].data = ttl;
    args[9].len = ngx_sprintf(ttl, "%d", NGX_HTTP_FISHCHAT_MEDIA_INBOX_TTL)
                  - ttl;
    args[10] = fcf->sys[NGX_FISHCHAT_SYS_SEND];
    args[11] = fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];

    if (rec) {
        args[12] = rec[0];
        args[13] = rec[1];

    } else {
        ngx_str_null(&args[12]);
        ngx_str_null(&args[13]);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fishchat media: stream %V: notice %s", name, kind);

    (void) ngx_fishchat_redis_eval(link, script, NULL, NULL, 1, 14, args);
}


/*
 * A play of nginx-rtmp's own relay between workers (rtmp_auto_push): its
 * "addr" is a unix socket.  nginx-rtmp writes "addr" before the client's
 * URL arguments, so the first one is its own; only local processes reach
 * rtmp_socket_dir (keep it private).
 */

static ngx_uint_t
ngx_http_fishchat_media_relay(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_str_t  addr;

    return ngx_http_fishchat_media_field(body, "addr", &addr, r->pool)
           == NGX_OK
           && addr.len >= 5 && ngx_strncmp(addr.data, "unix:", 5) == 0;
}


static ngx_int_t
ngx_http_fishchat_media_ok(ngx_http_request_t *r)
{
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


/*
 * record_done: the FLV nginx-rtmp recorded is remuxed into
 * <fishchat_media_vod_path>/<stream>.mp4 in a thread; nginx-rtmp is
 * answered at once
 */

static ngx_int_t
ngx_http_fishchat_media_record(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_str_t                            name, path;
    ngx_pool_t                          *pool;
    ngx_http_fishchat_media_remux_t     *rx;
    ngx_http_fishchat_media_loc_conf_t  *mlcf;
#if (NGX_THREADS)
    ngx_thread_task_t                   *task;
#endif

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_media_module);

    if (mlcf->record_path.len == 0 || mlcf->vod_path.len == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fishchat media: a recording is not remuxed: no "
                      "\"fishchat_media_record_path\" and "
                      "\"fishchat_media_vod_path\" here");
        return ngx_http_fishchat_media_ok(r);
    }

    if (ngx_http_fishchat_media_field(body, "name", &name, r->pool) != NGX_OK
        || ngx_fishchat_valid_id(&name) != NGX_OK
        || ngx_http_fishchat_media_field(body, "path", &path, r->pool)
           != NGX_OK)
    {
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "record_done: no "
                                       "valid \"name\" and \"path\"");
    }

#if (NGX_THREADS)

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task = ngx_thread_task_alloc(pool, sizeof(ngx_http_fishchat_media_remux_t));
    if (task == NULL) {
        ngx_destroy_pool(pool);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rx = task->ctx;
    rx->pool = pool;

    if (ngx_http_fishchat_media_record_file(r, mlcf, &path, &name, rx)
        != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return ngx_fishchat_http_error(r, "media", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "record_done: not an "
                                       "FLV in \"%V\"", &mlcf->record_path);
    }

    task->handler = ngx_http_fishchat_media_remux;
    ngx_fishchat_event_init(&task->event, ngx_http_fishchat_media_remuxed,
                            rx, ngx_cycle->log);

    if (ngx_thread_task_post(mlcf->pool, task) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat media: the recording of stream %V is being "
                  "remuxed into \"%s\"", &name, rx->out);

#else

    (void) pool;
    (void) rx;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "fishchat media: recordings are remuxed in a thread pool: "
                  "nginx was built without threads");

#endif

    return ngx_http_fishchat_media_ok(r);
}


/*
 * The FLV must be a file of fishchat_media_record_path, really (after
 * symbolic links), and end in ".flv"; the MP4 is named after the stream.
 */

static ngx_int_t
ngx_http_fishchat_media_record_file(ngx_http_request_t *r,
    ngx_http_fishchat_media_loc_conf_t *mlcf, ngx_str_t *path,
    ngx_str_t *name, ngx_http_fishchat_media_remux_t *rx)
{
    u_char  file[NGX_MAX_PATH];

    if (path->len < 5 || path->len >= NGX_MAX_PATH
        || ngx_strncmp(path->data + path->len - 4, ".flv", 4) != 0
        || mlcf->vod_path.len + name->len + 64 >= NGX_MAX_PATH)
    {
        return NGX_DECLINED;
    }

    ngx_cpystrn(file, path->data, path->len + 1);

    if (ngx_realpath(file, rx->in) == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_strncmp(rx->in, mlcf->record_path.data, mlcf->record_path.len)
        != 0
        || rx->in[mlcf->record_path.len] != '/')
    {
        return NGX_DECLINED;
    }

    rx->stream.data = ngx_pstrdup(rx->pool, name);
    if (rx->stream.data == NULL) {
        return NGX_ERROR;
    }

    rx->stream.len = name->len;

    ngx_sprintf(rx->out, "%V/%V.mp4%Z", &mlcf->vod_path, name);
    ngx_sprintf(rx->tmp, "%V/.%V.%P.mp4.tmp%Z", &mlcf->vod_path, name,
                ngx_pid);

    rx->notice = mlcf->notice;
    rx->max_size = mlcf->max_size;
    rx->max_duration = mlcf->max_duration;
    rx->deadline = (uint64_t) ngx_time() * 1000 + mlcf->remux_timeout;

    (void) r;

    return NGX_OK;
}


#if (NGX_THREADS)

/*
 * The stream's record in Redis learns of its recording (MEDIA_PLAY hands
 * out the MP4 from now on), and its conversation gets MEDIA_RECORDING
 */

static void
ngx_http_fishchat_media_recorded(ngx_http_fishchat_media_remux_t *rx)
{
    ngx_str_t  rec[2];
    u_char     bytes[NGX_OFF_T_LEN], secs[32];

    rec[0].data = bytes;
    rec[0].len = ngx_sprintf(bytes, "%O", rx->bytes) - bytes;
    rec[1].data = secs;
    rec[1].len = ngx_sprintf(secs, "%.1f", rx->duration) - secs;

    ngx_http_fishchat_media_notice(rx->pool, rx->notice, &rx->stream,
                                   "RECORDING", rec);
}


/* back on the event loop: what became of the recording */

static void
ngx_http_fishchat_media_remuxed(ngx_event_t *ev)
{
    ngx_http_fishchat_media_remux_t *rx = ev->data;

    if (rx->rc == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat media: the recording of stream %V is "
                      "\"%s\": %.1f s, %O bytes", &rx->stream, rx->out,
                      rx->duration, rx->bytes);

        ngx_fishchat_media_add(recordings, 1);
        ngx_http_fishchat_media_recorded(rx);

    } else {
        ngx_fishchat_media_add(recordings_failed, 1);

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fishchat media: the recording of stream %V was not "
                      "remuxed (%s); the FLV is kept: \"%s\"",
                      &rx->stream, rx->err, rx->in);
    }

    ngx_destroy_pool(rx->pool);
}

#endif


/* the URL-decoded value of "name" in an x-www-form-urlencoded body */

static ngx_int_t
ngx_http_fishchat_media_field(ngx_str_t *body, char *name, ngx_str_t *value,
    ngx_pool_t *pool)
{
    u_char  *p, *last, *end, *dst, *src;
    size_t   len;

    len = ngx_strlen(name);
    p = body->data;
    last = body->data + body->len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) > len && p[len] == '='
            && ngx_strncmp(p, name, len) == 0)
        {
            p += len + 1;

            dst = ngx_pnalloc(pool, end - p);
            if (dst == NULL) {
                return NGX_ERROR;
            }

            value->data = dst;
            src = p;
            ngx_unescape_uri(&dst, &src, end - p, NGX_UNESCAPE_URI);
            value->len = dst - value->data;

            return NGX_OK;
        }

        p = end + 1;
    }

    return NGX_DECLINED;
}


/*
 * /hls/<token>/<stream>.m3u8 and /hls/<token>/<stream>-<n>.ts: the play
 * token must name the stream; the request goes on as /hls/<file>
 */

static ngx_int_t
ngx_http_fishchat_media_hls_access(ngx_http_request_t *r)
{
    u_char                              *p, *slash;
    char                                *reason;
    ngx_str_t                            rest, token, file, uri, v;
    ngx_uint_t                           playlist;
    ngx_fishchat_token_t                 t;
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_fishchat_media_loc_conf_t  *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_media_module);

    if (!mlcf->hls || r->internal) {
        return NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->uri.len <= clcf->name.len) {
        goto forbidden;
    }

    rest.data = r->uri.data + clcf->name.len;
    rest.len = r->uri.len - clcf->name.len;

    slash = ngx_strlchr(rest.data, rest.data + rest.len, '/');
    if (slash == NULL) {
        goto forbidden;
    }

    token.data = rest.data;
    token.len = slash - rest.data;
    file.data = slash + 1;
    file.len = rest.data + rest.len - file.data;

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));
    t.act = "play";

    if (ngx_http_fishchat_media_stream(&file, &t.stream, &playlist) != NGX_OK)
    {
        goto forbidden;
    }

    if (ngx_fishchat_token_verify(ngx_fishchat_get_conf(
                                      (ngx_cycle_t *) ngx_cycle),
                                  &token, NULL, &t, &reason)
        != NGX_OK)
    {
        ngx_fishchat_media_add(hls_denied, 1);

        ngx_http_finalize_request(r,
                   ngx_fishchat_http_error(r, "media", NGX_HTTP_FORBIDDEN,
                                           "FORBIDDEN", "HLS of stream %V "
                                           "refused: %s", &t.stream,
                                           reason));
        return NGX_DONE;
    }

    /* served by the static module from the location's root or alias */

    uri.len = clcf->name.len + file.len;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(uri.data, clcf->name.data, clcf->name.len);
    ngx_memcpy(p, file.data, file.len);

    r->uri = uri;
    ngx_http_set_exten(r);

    ngx_fishchat_media_add(hls, 1);

    /* browser players fetch from other origins; playlists change */

    ngx_str_set(&v, "*");

    if (ngx_fishchat_http_header(r, "Access-Control-Allow-Origin", &v)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (playlist) {
        ngx_str_set(&v, "no-cache");

        if (ngx_fishchat_http_header(r, "Cache-Control", &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return NGX_DECLINED;

forbidden:

    ngx_fishchat_media_add(hls_denied, 1);

    /* the answer is sent here: the phases stop (NGX_DONE) */

    ngx_http_finalize_request(r,
                   ngx_fishchat_http_error(r, "media", NGX_HTTP_FORBIDDEN,
                                           "FORBIDDEN", "an HLS URL is "
                                           "%V<play token>/<stream>.m3u8 "
                                           "or <stream>-<n>.ts",
                                           &clcf->name));
    return NGX_DONE;
}


/* the stream of an HLS file: "<stream>.m3u8" or "<stream>-<n>.ts" */

static ngx_int_t
ngx_http_fishchat_media_stream(ngx_str_t *file, ngx_str_t *stream,
    ngx_uint_t *playlist)
{
    u_char  *p, *dash;

    if (file->len > 5
        && ngx_strncmp(file->data + file->len - 5, ".m3u8", 5) == 0)
    {
        stream->data = file->data;
        stream->len = file->len - 5;
        *playlist = 1;

        return ngx_fishchat_valid_id(stream);
    }

    if (file->len > 4
        && ngx_strncmp(file->data + file->len - 4, ".mp4", 4) == 0)
    {
        /* a recording */
        stream->data = file->data;
        stream->len = file->len - 4;
        *playlist = 0;

        return ngx_fishchat_valid_id(stream);
    }

    if (file->len < 5
        || ngx_strncmp(file->data + file->len - 3, ".ts", 3) != 0)
    {
        return NGX_DECLINED;
    }

    dash = NULL;

    for (p = file->data; p < file->data + file->len - 3; p++) {
        if (*p == '-') {
            dash = p;
        }
    }

    if (dash == NULL || dash == file->data) {
        return NGX_DECLINED;
    }

    for (p = dash + 1; p < file->data + file->len - 3; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_DECLINED;
        }
    }

    stream->data = file->data;
    stream->len = dash - file->data;
    *playlist = 0;

    return ngx_fishchat_valid_id(stream);
}


static char  ngx_http_fishchat_media_notice_lua[] =
    NGX_FISHCHAT_LUA_MEDIA_NOTICE;
static char  ngx_http_fishchat_media_revoked_lua[] = NGX_FISHCHAT_LUA_REVOKED;

static char *
ngx_http_fishchat_media_hooks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fishchat_media_loc_conf_t *mlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    mlcf->notice = ngx_fishchat_redis_script(cf,
                                        ngx_http_fishchat_media_notice_lua);
    mlcf->revoked = ngx_fishchat_redis_script(cf,
                                        ngx_http_fishchat_media_revoked_lua);
    if (mlcf->notice == NULL || mlcf->revoked == NULL
        || ngx_fishchat_zone_add(cf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_fishchat_media_hook_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_fishchat_media_hls(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fishchat_media_loc_conf_t *mlcf = conf;

    if (mlcf->hls != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    mlcf->hls = 1;

    if (ngx_fishchat_zone_add(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_fishchat_media_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fishchat_media_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fishchat_media_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->record_path = { 0, NULL };
     *     conf->vod_path = { 0, NULL };
     *     conf->pool_name = { 0, NULL };
     */

    conf->hls = NGX_CONF_UNSET;
    conf->max_size = NGX_CONF_UNSET;
    conf->max_duration = NGX_CONF_UNSET;
    conf->remux_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_fishchat_media_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_fishchat_media_loc_conf_t *prev = parent;
    ngx_http_fishchat_media_loc_conf_t *conf = child;

    ngx_conf_merge_value(conf->hls, prev->hls, 0);
    ngx_conf_merge_str_value(conf->record_path, prev->record_path, "");
    ngx_conf_merge_str_value(conf->vod_path, prev->vod_path, "");
    ngx_conf_merge_str_value(conf->pool_name, prev->pool_name, "default");
    ngx_conf_merge_off_value(conf->max_size, prev->max_size,
                             2LL * 1024 * 1024 * 1024);
    ngx_conf_merge_sec_value(conf->max_duration, prev->max_duration,
                             4 * 3600);
    ngx_conf_merge_msec_value(conf->remux_timeout, prev->remux_timeout,
                              300000);

    if (conf->record_path.len == 0 || conf->vod_path.len == 0) {
        return NGX_CONF_OK;
    }

#if (NGX_THREADS)

    conf->pool = ngx_thread_pool_add(cf, &conf->pool_name);
    if (conf->pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"fishchat_media_record_path\" needs nginx built "
                       "--with-threads: recordings are remuxed in a thread "
                       "pool");
    return NGX_CONF_ERROR;

#endif
}


/*
 * A directory, by its real path (no symbolic link, no final "/"); made if
 * missing, and given to the workers' user at start (nginx-rtmp writes the
 * recordings there as that user, the remux the MP4s)
 */

static char *
ngx_http_fishchat_media_record_path(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t   *value, *path;
    ngx_err_t    err;
    ngx_path_t  *dir;
    u_char       real[NGX_MAX_PATH];

    path = (ngx_str_t *) ((char *) conf + cmd->offset);

    if (path->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_create_dir(value[1].data, 0700) == NGX_FILE_ERROR) {
        err = ngx_errno;

        if (err != NGX_EEXIST) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               ngx_create_dir_n " \"%V\" failed",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_realpath(value[1].data, real) == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_realpath_n " \"%V\" failed", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* with its "\0": ngx_create_paths() makes it with mkdir() */

    path->len = ngx_strlen(real);
    path->data = ngx_pnalloc(cf->pool, path->len + 1);
    if (path->data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(path->data, real, path->len + 1);

    dir = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (dir == NULL) {
        return NGX_CONF_ERROR;
    }

    dir->name = *path;
    dir->conf_file = cf->conf_file->file.name.data;
    dir->line = cf->conf_file->line;

    if (ngx_add_path(cf, &dir) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_fishchat_media_init(ngx_conf_t *cf)
{
    ngx_http_fishchat_media_remux_init();

    return ngx_fishchat_http_access(cf, ngx_http_fishchat_media_hls_access);
}
