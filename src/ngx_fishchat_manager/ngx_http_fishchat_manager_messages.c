
/*
 * FishChat for nginx: the manager role, the endpoint of messages:
 * POST /messages to a client or a topic (docs/manager.md).
 */


#include "ngx_http_fishchat_manager.h"


static ngx_int_t ngx_http_fishchat_manager_to_topic(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *from, ngx_str_t *msg,
    ngx_str_t *uuid);
static ngx_int_t ngx_http_fishchat_manager_to_client(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *from, ngx_str_t *msg,
    ngx_str_t *uuid);
static ngx_int_t ngx_http_fishchat_manager_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


static ngx_str_t  ngx_http_fishchat_manager_resp_p2p =
    ngx_string("RESP_MESSAGE_P2P");

static ngx_str_t  ngx_http_fishchat_manager_system = ngx_string("system");


/* the endpoints: messages */

/*
 * POST /messages {"to": id | "topic": name, "message": ..., "from": id}:
 * stored and delivered by the script of SEND_MESSAGE_P2P or
 * SEND_MESSAGE_TOPIC
 */

ngx_int_t
ngx_http_fishchat_manager_message(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_int_t            rc, rt;
    ngx_str_t            from, msg, uuid;
    ngx_http_request_t  *r;

    r = ctx->request;

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

    if ((rc == NGX_OK && ngx_fishchat_valid_id(&ctx->id) != NGX_OK)
        || (rt == NGX_OK && ngx_fishchat_valid_id(&ctx->name) != NGX_OK))
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
        if (ngx_fishchat_valid_id(&from) == NGX_OK) {
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
        ngx_fishchat_uuid(ctx->uuid);
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
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    ctx->stores = 1;

    if (rt == NGX_OK) {
        return ngx_http_fishchat_manager_to_topic(ctx, &from, &msg, &uuid);
    }

    return ngx_http_fishchat_manager_to_client(ctx, &from, &msg, &uuid);
}


/* as SEND_MESSAGE_TOPIC, but the sender need not be a member */

static ngx_int_t
ngx_http_fishchat_manager_to_topic(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *from, ngx_str_t *msg, ngx_str_t *uuid)
{
    u_char     *p;
    ngx_str_t   args[NGX_FISHCHAT_TOPIC_SEND_ARGS + 1];
    u_char      num[NGX_FISHCHAT_TOPIC_SEND_NUM];

    p = ctx->scratch;

    ngx_fishchat_topic_send_args(args, &p, ctx->fcf, &ctx->name, from, uuid,
                                 msg, ctx->conf->topic_history, num);

    /* the sender need not be a member */
    ngx_str_set(&args[NGX_FISHCHAT_TOPIC_SEND_ARGS], "1");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic_send,
                                ngx_http_fishchat_manager_topic_message_sent,
                                NGX_FISHCHAT_TOPIC_SEND_KEYS,
                                NGX_FISHCHAT_TOPIC_SEND_ARGS + 1, args);
}


/* as SEND_MESSAGE_P2P: the delivery frame made as the msg server makes it */

static ngx_int_t
ngx_http_fishchat_manager_to_client(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *from, ngx_str_t *msg, ngx_str_t *uuid)
{
    u_char     *p;
    size_t      size;
    ngx_str_t   args[NGX_FISHCHAT_SEND_ARGS], dargs[3], frame, channel;
    u_char      num[NGX_FISHCHAT_SEND_NUM];

    dargs[0] = *msg;
    dargs[1] = *from;
    dargs[2] = *uuid;

    size = ngx_fishchat_frame_size(&ngx_http_fishchat_manager_resp_p2p,
                                   dargs, 3);

    frame.data = ngx_pnalloc(ctx->request->pool, size);
    if (frame.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    frame.len = ngx_fishchat_frame_write(frame.data,
                                         &ngx_http_fishchat_manager_resp_p2p,
                                         dargs, 3)
                - frame.data;

    p = ctx->scratch;

    /* no worker channel: from outside a worker */
    ngx_str_null(&channel);

    ngx_fishchat_send_args(args, &p, ctx->fcf, &ctx->id, uuid, &frame, from,
                           &channel, ctx->conf->inbox_max,
                           ctx->conf->inbox_ttl, num);

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->send,
                                     ngx_http_fishchat_manager_message_sent,
                                     NGX_FISHCHAT_SEND_KEYS,
                                     NGX_FISHCHAT_SEND_ARGS, args);
}


static ngx_int_t
ngx_http_fishchat_manager_message_sent(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_str_t            uuid;
    ngx_uint_t           dup;
    ngx_fishchat_json_t  out;

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
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    if (reply->len == 8 && ngx_strncmp(reply->str, "CONFLICT", 8) == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_CONFLICT,
                                               "DUPLICATE_UUID",
                                               "another message to \"%V\" "
                                               "has the uuid %V",
                                               &ctx->id, &uuid);
    }

    dup = (reply->len == 3 && ngx_strncmp(reply->str, "DUP", 3) == 0);

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "uuid", &uuid);
    ngx_fishchat_json_fmt(&out, ",\"to\":");
    ngx_fishchat_json_str(&out, &ctx->id);
    ngx_fishchat_json_fmt(&out, ",\"status\":");

    if (dup) {
        ngx_fishchat_json_fmt(&out, "\"DUPLICATE\"}");
        return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
    }

    ngx_fishchat_json_rstr(&out, reply);
    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_message_sent(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply)
{
    ngx_str_t            uuid;
    ngx_fishchat_json_t  out;

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
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "uuid", &uuid);
    ngx_fishchat_json_fmt(&out, ",\"topic\":");
    ngx_fishchat_json_str(&out, &ctx->name);
    ngx_fishchat_json_fmt(&out, ",\"seq\":%L}",
                          (int64_t) reply->integer);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}
