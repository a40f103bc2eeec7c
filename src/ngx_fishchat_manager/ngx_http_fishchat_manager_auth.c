
/*
 * FishChat for nginx: the manager's endpoints of login tokens.
 *
 * POST /tokens mints a token for a backend without a JWT library;
 * POST /clients/{id}/revoke refuses every token of an id issued until
 * now (the login script checks it) and closes the id's live session.
 */


#include "ngx_http_fishchat_manager.h"


#define NGX_HTTP_FISHCHAT_MANAGER_TTL      3600
#define NGX_HTTP_FISHCHAT_MANAGER_TTL_MAX  (30 * 24 * 3600)


static ngx_int_t ngx_http_fishchat_manager_revoked(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


/*
 * KEYS: presence, the id's revocation.  ARGV: id, the system channel of
 * client events, the first second a token may be issued at.  Then as
 * DELETE /clients/{id}/session.
 */

char  ngx_http_fishchat_manager_revoke_lua[] =
    "redis.call('SET', KEYS[2], ARGV[3]) "
    NGX_HTTP_FISHCHAT_MANAGER_KICK_LUA;


/* POST /tokens {"id":"alice","ttl":3600} */

ngx_int_t
ngx_http_fishchat_manager_token(ngx_http_fishchat_manager_ctx_t *ctx)
{
    time_t                expires;
    json_t               *v;
    ngx_int_t             rc;
    ngx_str_t             token;
    json_int_t            ttl;
    ngx_http_request_t   *r;
    ngx_fishchat_json_t   out;
    ngx_fishchat_token_t  t;

    r = ctx->request;

    if (ngx_http_fishchat_manager_id_field(ctx, "id", &ctx->id,
                                           "\"id\" is a client id of 1 to "
                                           "128 bytes without white space, "
                                           "control characters or braces",
                                           &rc)
        != NGX_OK)
    {
        return rc;
    }

    ttl = NGX_HTTP_FISHCHAT_MANAGER_TTL;

    v = json_object_get(ctx->json, "ttl");

    if (v && !json_is_null(v)) {
        ttl = json_is_integer(v) ? json_integer_value(v) : 0;

        if (ttl < 1 || ttl > NGX_HTTP_FISHCHAT_MANAGER_TTL_MAX) {
            return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                             "BAD_REQUEST",
                                             "\"ttl\" is a number of "
                                             "seconds from 1 to %d",
                                             NGX_HTTP_FISHCHAT_MANAGER_TTL_MAX);
        }
    }

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));

    rc = ngx_fishchat_token_mint(r->pool, ctx->fcf, &ctx->id, (time_t) ttl,
                                 &t, &token);
    expires = t.exp;

    if (rc == NGX_DECLINED) {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_CONFLICT,
                                               "NO_SIGNING_KEY",
                                               "tokens are checked with a "
                                               "public key here: they are "
                                               "signed by their issuer, not "
                                               "by this server");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat manager: a token for \"%V\" until %T",
                  &ctx->id, expires);

    ngx_http_fishchat_manager_open(ctx, &out, token.len + 64, "token",
                                   &token);
    ngx_fishchat_json_fmt(&out, ",\"expires\":%T}", expires);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* POST /clients/{id}/revoke */

ngx_int_t
ngx_http_fishchat_manager_revoke(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[5];

    static char  *keys[] = { "client:", "", "revoked:", "", NULL };

    /* tokens issued in this second or before it are refused */

    ctx->count = (ngx_uint_t) ngx_time() + 1;

    ngx_http_fishchat_manager_keys(ctx, args, keys);
    args[2] = ctx->param[0];
    args[3] = ctx->fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];
    args[4].data = ctx->count_text;
    args[4].len = ngx_sprintf(ctx->count_text, "%ui", ctx->count)
                  - ctx->count_text;

    return ngx_http_fishchat_manager_store(ctx, ctx->main->revoke,
                                        ngx_http_fishchat_manager_revoked,
                                        2, 5, args);
}


static ngx_int_t
ngx_http_fishchat_manager_revoked(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_fishchat_json_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "fishchat manager: the tokens of \"%V\" are revoked",
                  &ctx->param[0]);

    ngx_http_fishchat_manager_open(ctx, &out, 512, "id", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"revoked_before\":%ui,\"kicked\":%s}",
                          ctx->count,
                          reply->integer == 1 ? "true" : "false");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}
