
/*
 * FishChat for nginx: the manager role, the endpoints of clients:
 * presence, the online clients, kicks, inboxes (docs/manager.md).
 */


#include "ngx_http_fishchat_manager.h"


static void ngx_http_fishchat_manager_presence(
    ngx_fishchat_json_t *out, redisReply **p);
static ngx_int_t ngx_http_fishchat_manager_client_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static void ngx_http_fishchat_manager_client_item(ngx_fishchat_json_t *out,
    redisReply *e);
static ngx_int_t ngx_http_fishchat_manager_kick_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_inbox_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_inbox_deleted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


/*
 * KEYS: presence, inbox order, topics of the client.
 * 0 for a client Redis knows nothing of; otherwise {presence (node, ch,
 * addr, srv, sid, since; nil when offline), pending, topics, stale}.
 * A presence is stale when no worker listens on its channel: the worker
 * that wrote it is gone (a crash) and the next login replaces it.
 */

char  ngx_http_fishchat_manager_client_lua[] =
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

char  ngx_http_fishchat_manager_clients_lua[] =
    NGX_HTTP_FISHCHAT_MANAGER_LUA_SCAN
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

/* DELETE /clients/{id}/session: see ngx_http_fishchat_manager.h */

char  ngx_http_fishchat_manager_kick_lua[] =
    NGX_HTTP_FISHCHAT_MANAGER_KICK_LUA;

/*
 * KEYS: presence, inbox order, inbox messages, topics of the client.
 * ARGV: the last seq seen, count.
 * -1 for an unknown client; otherwise {total, more, seq, uuid, frame...}.
 */

char  ngx_http_fishchat_manager_inbox_lua[] =
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
 * The keys of the client of the path: presence, inbox order, inbox
 * messages, topics of the client
 */

static char  *ngx_http_fishchat_manager_client_keys[] = {
    "client:", "", "inbox:", "", "inbox:", ":m", "client:", ":topics", NULL
};


/* the fields of a presence after its node: ch, addr, srv, sid, since */

static char  *ngx_http_fishchat_manager_presence_names[] = {
    "channel", "address", "server", "session", "#since"
};


/* GET /clients: SCAN for "client:" keys, a list of entries of 8 fields */

static ngx_http_fishchat_manager_scan_t
    ngx_http_fishchat_manager_clients_scan =
{
    "client:", "clients", 8, ngx_http_fishchat_manager_client_item
};


/*
 * The presence fields (node, ch, addr, srv, sid, since) after "online":
 * the worker is the pid at the end of the channel's name
 */

static void
ngx_http_fishchat_manager_presence(ngx_fishchat_json_t *out,
    redisReply **p)
{
    u_char      *s, *last;
    ngx_int_t    pid;

    if (p[1]->type != REDIS_REPLY_STRING) {
        ngx_fishchat_json_fmt(out, "false");
        return;
    }

    ngx_fishchat_json_fmt(out, "true,\"node\":");
    ngx_fishchat_json_rstr(out, p[0]);

    s = (u_char *) p[1]->str;
    last = s + p[1]->len;

    while (last > s && last[-1] >= '0' && last[-1] <= '9') {
        last--;
    }

    pid = ngx_atoi(last, (u_char *) p[1]->str + p[1]->len - last);

    if (pid > 0) {
        ngx_fishchat_json_fmt(out, ",\"worker\":%i", pid);

    } else {
        ngx_fishchat_json_fmt(out, ",\"worker\":null");
    }

    ngx_http_fishchat_manager_fields(out, &p[1],
                                     ngx_http_fishchat_manager_presence_names,
                                     5);
}


/* the endpoints: clients */

/* GET /clients/{id} */

ngx_int_t
ngx_http_fishchat_manager_client(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[4];

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_client_keys);

    args[2] = args[3];

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->client,
                                      ngx_http_fishchat_manager_client_done,
                                      3, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_client_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    redisReply          *p;
    ngx_fishchat_json_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "client");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_ARRAY
        || reply->element[0]->elements != 6)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = reply->element[0];

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "id", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"online\":");
    ngx_http_fishchat_manager_presence(&out, p->element);
    ngx_fishchat_json_fmt(&out, ",\"pending\":");
    ngx_fishchat_json_rnum(&out, reply->element[1]);
    ngx_fishchat_json_fmt(&out, ",\"topics\":");
    ngx_fishchat_json_rnum(&out, reply->element[2]);

    if (reply->element[3]->type == REDIS_REPLY_INTEGER
        && reply->element[3]->integer)
    {
        ngx_fishchat_json_fmt(&out, ",\"stale\":true");
    }

    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /clients?cursor=&count=: the online clients, SCAN by SCAN */

ngx_int_t
ngx_http_fishchat_manager_clients(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_scan(ctx, ctx->main->clients,
                                    &ngx_http_fishchat_manager_clients_scan,
                                    NULL);
}


/* {id, node, ch, addr, srv, sid, since, pending} */

static void
ngx_http_fishchat_manager_client_item(ngx_fishchat_json_t *out,
    redisReply *e)
{
    ngx_fishchat_json_fmt(out, "{\"id\":");
    ngx_fishchat_json_rstr(out, e->element[0]);
    ngx_fishchat_json_fmt(out, ",\"online\":");
    ngx_http_fishchat_manager_presence(out, &e->element[1]);
    ngx_fishchat_json_fmt(out, ",\"pending\":");
    ngx_fishchat_json_rnum(out, e->element[7]);
    ngx_fishchat_json_fmt(out, "}");
}


/* DELETE /clients/{id}/session */

ngx_int_t
ngx_http_fishchat_manager_kick(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[3];

    args[0] = ngx_http_fishchat_manager_key(ctx, "client:", "");
    args[1] = ctx->param[0];
    args[2] = ctx->fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];

    return ngx_http_fishchat_manager_store(ctx, ctx->main->kick,
                                        ngx_http_fishchat_manager_kick_done,
                                        1, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_kick_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_int_t            rc;
    ngx_fishchat_json_t  out;

    if (ngx_http_fishchat_manager_counted(ctx, reply, &rc,
                                          "client \"%V\" is not online",
                                          &ctx->param[0], NULL)
        != NGX_OK)
    {
        return rc;
    }

    ngx_http_fishchat_manager_open(ctx, &out, 512, "id", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"kicked\":true,\"stale\":%s}",
                          reply->integer == 2 ? "true" : "false");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /clients/{id}/inbox?cursor=&count= */

ngx_int_t
ngx_http_fishchat_manager_inbox(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  args[6];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_client_keys);
    ngx_http_fishchat_manager_page_args(ctx, &args[4]);

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->inbox,
                                       ngx_http_fishchat_manager_inbox_done,
                                       4, 6, args);
}


static ngx_int_t
ngx_http_fishchat_manager_inbox_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                i;
    ngx_str_t             frame;
    redisReply           *e;
    ngx_fishchat_frame_t  m;
    ngx_fishchat_json_t   out;
    u_char                err[128];

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "client");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || (reply->elements - 2) % 3)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_messages(ctx, &out, reply, 2, "id", "total");

    for (i = 2; i < reply->elements; i += 3) {
        e = reply->element[i + 2];

        ngx_fishchat_json_fmt(&out, "%s{\"seq\":", i > 2 ? "," : "");
        ngx_fishchat_json_rnum(&out, reply->element[i]);
        ngx_fishchat_json_fmt(&out, ",\"uuid\":");
        ngx_fishchat_json_rstr(&out, reply->element[i + 1]);

        /* the stored RESP_MESSAGE_P2P frame: <msg> <from> <uuid> */

        m.root = NULL;
        m.nargs = 0;

        if (e->type == REDIS_REPLY_STRING && e->len > 4) {
            frame.data = (u_char *) e->str + 4;
            frame.len = e->len - 4;

            if (ngx_fishchat_frame_decode(&frame, &m, err, sizeof(err))
                != NGX_OK)
            {
                m.nargs = 0;
            }
        }

        if (m.nargs >= 2) {
            ngx_fishchat_json_fmt(&out, ",\"from\":");
            ngx_fishchat_json_str(&out, &m.args[1]);
            ngx_fishchat_json_fmt(&out, ",\"message\":");
            ngx_fishchat_json_str(&out, &m.args[0]);

        } else {
            ngx_fishchat_json_fmt(&out, ",\"from\":null,"
                                  "\"message\":null");
        }

        ngx_fishchat_frame_free(&m);

        ngx_fishchat_json_fmt(&out, "}");
    }

    ngx_fishchat_json_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out,
                                    reply->elements > 2
                                    ? reply->element[reply->elements - 3]
                                    : NULL,
                                    reply->element[1]->type
                                        == REDIS_REPLY_INTEGER
                                    && reply->element[1]->integer);
    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* DELETE /clients/{id}/inbox/{uuid}: as the client's P2P_ACK */

ngx_int_t
ngx_http_fishchat_manager_inbox_delete(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[4];

    /* the inbox order and messages, the uuid */

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_client_keys);

    args[3] = ctx->param[1];

    return ngx_http_fishchat_manager_store(ctx, ctx->main->ack,
                                    ngx_http_fishchat_manager_inbox_deleted,
                                    2, 3, &args[1]);
}


static ngx_int_t
ngx_http_fishchat_manager_inbox_deleted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_int_t            rc;
    ngx_fishchat_json_t  out;

    if (ngx_http_fishchat_manager_counted(ctx, reply, &rc,
                                          "no message \"%V\" in the "
                                          "inbox of \"%V\"",
                                          &ctx->param[1], &ctx->param[0])
        != NGX_OK)
    {
        return rc;
    }

    ngx_http_fishchat_manager_open(ctx, &out, 512, "id", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"uuid\":");
    ngx_fishchat_json_str(&out, &ctx->param[1]);
    ngx_fishchat_json_fmt(&out, ",\"deleted\":true}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}
