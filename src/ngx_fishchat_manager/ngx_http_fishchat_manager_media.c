
/*
 * FishChat for nginx: the manager's endpoint of the media role.
 *
 * POST /media/streams makes a stream for a conversation as MEDIA_PUBLISH
 * does from a chat session, for a backend: the answer carries the RTMP
 * URL with the publish token of the member it names.
 */


#include "ngx_http_fishchat_manager.h"


static ngx_int_t ngx_http_fishchat_manager_stream_made(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


char  ngx_http_fishchat_manager_media_publish_lua[] =
    NGX_FISHCHAT_LUA_MEDIA_PUBLISH;


/* POST /media/streams {"target":"topic:room","from":"alice"} */

ngx_int_t
ngx_http_fishchat_manager_stream(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char              *p;
    ngx_str_t            target;
    ngx_str_t            args[NGX_FISHCHAT_MEDIA_PUBLISH_ARGS];
    ngx_http_request_t  *r;
    u_char               now[NGX_INT64_LEN];

    r = ctx->request;

    if (ngx_http_fishchat_manager_field(ctx, "target", &target) != NGX_OK
        || ngx_fishchat_media_target(&target, &ctx->name) != NGX_OK)
    {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"target\" is "
                                               "\"topic:<name>\" or "
                                               "\"p2p:<id>\"");
    }

    if (ngx_http_fishchat_manager_field(ctx, "from", &ctx->id) != NGX_OK
        || ngx_fishchat_valid_id(&ctx->id) != NGX_OK)
    {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"from\" is the client id "
                                               "of the publisher");
    }

    if (ctx->fcf->auth_secret.len == 0) {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_CONFLICT,
                                               "NO_SIGNING_KEY",
                                               "media tokens are signed with "
                                               "\"fishchat_auth_secret_file\"");
    }

    /* the stream's name, and the target, kept for the answer */

    ctx->param[0].len = NGX_FISHCHAT_MEDIA_STREAM_LEN;
    ctx->param[0].data = ctx->uuid;
    ngx_fishchat_media_stream(ctx->uuid);

    ctx->param[1].data = ngx_pstrdup(r->pool, &target);
    if (ctx->param[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->param[1].len = target.len;

    p = ctx->scratch;

    ngx_fishchat_media_publish_args(args, &p, &ctx->name, &ctx->param[0],
                                    &ctx->id, &ctx->param[1], now);

    return ngx_http_fishchat_manager_store(ctx, ctx->main->media_publish,
                                     ngx_http_fishchat_manager_stream_made,
                                     NGX_FISHCHAT_MEDIA_PUBLISH_KEYS,
                                     NGX_FISHCHAT_MEDIA_PUBLISH_ARGS, args);
}


static ngx_int_t
ngx_http_fishchat_manager_stream_made(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    time_t               expires;
    ngx_int_t            rc;
    ngx_str_t            url;
    ngx_fishchat_json_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer == -1) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND", "no topic \"%V\"",
                                               &ctx->name);
    }

    if (reply->integer == -2) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_FORBIDDEN,
                                               "FORBIDDEN", "\"%V\" is not a "
                                               "member of topic \"%V\"",
                                               &ctx->id, &ctx->name);
    }

    rc = ngx_fishchat_media_url(ctx->request->pool, ctx->fcf, &ctx->id,
                                &ctx->param[0], "publish", &url, &expires);

    if (rc == NGX_ABORT) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST", "\"%V\" is too "
                                               "long for an RTMP URL's token",
                                               &ctx->id);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_open(ctx, &out, url.len + 512, "stream",
                                   &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"target\":");
    ngx_fishchat_json_str(&out, &ctx->param[1]);
    ngx_fishchat_json_fmt(&out, ",\"from\":");
    ngx_fishchat_json_str(&out, &ctx->id);
    ngx_fishchat_json_fmt(&out, ",\"rtmp_url\":");
    ngx_fishchat_json_str(&out, &url);
    ngx_fishchat_json_fmt(&out, ",\"expires\":%T}", expires);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}
