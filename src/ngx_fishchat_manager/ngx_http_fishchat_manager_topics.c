
/*
 * FishChat for nginx: the manager role, the endpoints of topics: topics,
 * members, history (docs/manager.md).
 */


#include "ngx_http_fishchat_manager.h"


static void ngx_http_fishchat_manager_topic_item(ngx_fishchat_json_t *out,
    redisReply *e);
static ngx_int_t ngx_http_fishchat_manager_topic_created(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_creator(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_deleted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_topic_page(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_uint_t key,
    ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done);
static ngx_int_t ngx_http_fishchat_manager_members_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
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
static ngx_int_t ngx_http_fishchat_manager_history_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static void ngx_http_fishchat_manager_line(u_char **pos, u_char *last,
    ngx_str_t *line);


/*
 * KEYS: topic, members, history.
 * 0 for no topic; otherwise {creator, created, seq, members, history}.
 */

char  ngx_http_fishchat_manager_topic_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
    "local t = redis.call('HMGET', KEYS[1], 'creator', 'created', 'seq') "
    "return {t[1] or '', t[2] or '', t[3] or '0', "
            "redis.call('HLEN', KEYS[2]), redis.call('LLEN', KEYS[3])}";

/*
 * ARGV: the MATCH pattern of topic keys, cursor, count, the prefix.
 * {cursor, {name, creator, created, seq, members}...}.
 */

char  ngx_http_fishchat_manager_topics_lua[] =
    NGX_HTTP_FISHCHAT_MANAGER_LUA_SCAN
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

char  ngx_http_fishchat_manager_topic_delete_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local ids = redis.call('HKEYS', KEYS[2]) "
    "redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) "
    "redis.call('PUBLISH', ARGV[1], 'DELETE\\n' .. ARGV[2]) "
    "return ids";

/*
 * KEYS: topic, members.  ARGV: cursor, count.
 * -1 for no topic; otherwise {cursor, {id, position...}, members}.
 */

char  ngx_http_fishchat_manager_members_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local r = redis.call('HSCAN', KEYS[2], ARGV[1], 'COUNT', ARGV[2]) "
    "return {r[1], r[2], redis.call('HLEN', KEYS[2])}";

/*
 * KEYS: topic, history.  ARGV: the first seq not wanted (0: none), count.
 * -1 for no topic; otherwise {seq, first seq kept, first seq returned,
 * entry...}: the last "count" messages before the one given, oldest first.
 */

char  ngx_http_fishchat_manager_history_lua[] =
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

/* the topic list of a client, and its live session: see ngx_fishchat_lua.h */

char  ngx_http_fishchat_manager_client_topic_lua[] =
    NGX_FISHCHAT_LUA_CLIENT_TOPIC;

/* the keys of the topic of the path: topic, members, history */

static char  *ngx_http_fishchat_manager_topic_keys[] = {
    "topic:", "", "topic:", ":members", "topic:", ":h", NULL
};


/* the fields of a topic the scripts answer, after its name */

static char  *ngx_http_fishchat_manager_topic_names[] = {
    "creator", "#created", "#messages", "#members", "#history"
};


/* GET /topics: SCAN for "topic:" keys, a list of entries of 5 fields */

static ngx_http_fishchat_manager_scan_t
    ngx_http_fishchat_manager_topics_scan =
{
    "topic:", "topics", 5, ngx_http_fishchat_manager_topic_item
};


/* the endpoints: topics */

/* GET /topics?cursor=&count= */

ngx_int_t
ngx_http_fishchat_manager_topics(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_scan(ctx, ctx->main->topics,
                                    &ngx_http_fishchat_manager_topics_scan,
                                    NULL);
}


/* {name, creator, created, seq, members} */

static void
ngx_http_fishchat_manager_topic_item(ngx_fishchat_json_t *out, redisReply *e)
{
    ngx_fishchat_json_fmt(out, "{\"name\":");
    ngx_fishchat_json_rstr(out, e->element[0]);
    ngx_http_fishchat_manager_fields(out, &e->element[1],
                                     ngx_http_fishchat_manager_topic_names, 4);
    ngx_fishchat_json_fmt(out, "}");
}


/*
 * POST /topics {"name": ..., "creator": ..., "private": false}: as
 * CREATE_TOPIC
 */

ngx_int_t
ngx_http_fishchat_manager_topic_create(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char     *p;
    json_t     *v;
    ngx_int_t   rc;
    ngx_str_t   args[7];
    u_char      now[NGX_INT64_LEN];

    v = json_object_get(ctx->json, "private");

    if (v && !json_is_boolean(v) && !json_is_null(v)) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "\"private\": true or false");
    }

    if (ngx_http_fishchat_manager_id_field(ctx, "name", &ctx->name,
                                           "\"name\": a topic name of 1 to "
                                           "128 bytes without white space, "
                                           "control characters or braces",
                                           &rc)
        != NGX_OK)
    {
        return rc;
    }

    if (ngx_http_fishchat_manager_id_field(ctx, "creator", &ctx->id,
                                           "\"creator\": a client id of 1 "
                                           "to 128 bytes without white "
                                           "space, control characters or "
                                           "braces", &rc)
        != NGX_OK)
    {
        return rc;
    }

    p = ctx->scratch;

    args[0] = ngx_fishchat_key(&p, "topic:", &ctx->name, "");
    args[1] = ngx_fishchat_key(&p, "topic:", &ctx->name, ":members");
    args[2] = ctx->id;
    args[3].data = now;
    args[3].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[4] = ctx->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[5] = ctx->name;

    if (v && json_is_true(v)) {
        ngx_str_set(&args[6], "1");

    } else {
        ngx_str_null(&args[6]);
    }

    return ngx_http_fishchat_manager_store(ctx, ctx->main->topic_create,
                                    ngx_http_fishchat_manager_topic_created,
                                    2, 7, args);
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
    u_char                    *p;
    size_t                     len;
    ngx_str_t                  location;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;
    ngx_fishchat_json_t        out;

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

    if (ngx_fishchat_http_header(r, "Location", &location)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "name", &ctx->name);
    ngx_fishchat_json_fmt(&out, ",\"creator\":");
    ngx_fishchat_json_str(&out, &ctx->id);
    ngx_fishchat_json_fmt(&out, ",\"created\":true}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


/* GET /topics/{name} */

ngx_int_t
ngx_http_fishchat_manager_topic(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[3];

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_topic_keys);

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->topic,
                                       ngx_http_fishchat_manager_topic_done,
                                       3, 3, args);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_fishchat_json_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "topic");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "name", &ctx->param[0]);
    ngx_http_fishchat_manager_fields(&out, reply->element,
                                     ngx_http_fishchat_manager_topic_names, 5);
    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * DELETE /topics/{name}: the topic's keys go; each member's topic list
 * loses it and its session, where it is online, lets it go (as removed)
 */

ngx_int_t
ngx_http_fishchat_manager_topic_delete(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[5];

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_topic_keys);

    args[3] = ctx->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[4] = ctx->param[0];

    return ngx_http_fishchat_manager_store(ctx, ctx->main->topic_delete,
                                    ngx_http_fishchat_manager_topic_deleted,
                                    3, 5, args);
}


static ngx_int_t
ngx_http_fishchat_manager_topic_deleted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    u_char              *p;
    size_t               i;
    ngx_str_t            args[6], id, *name;
    ngx_uint_t           failed;
    ngx_fishchat_json_t  out;

    name = &ctx->param[0];

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "topic");
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
        if (ngx_fishchat_redis_str(reply->element[i], &id) != NGX_OK
            || ngx_fishchat_valid_id(&id) != NGX_OK)
        {
            continue;
        }

        p = ctx->scratch;

        args[0] = ngx_fishchat_key(&p, "client:", &id, "");
        args[1] = ngx_fishchat_key(&p, "client:", &id, ":topics");
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

    ngx_http_fishchat_manager_open(ctx, &out, 512, "name", name);
    ngx_fishchat_json_fmt(&out, ",\"deleted\":true,\"members\":%uz}",
                          reply->elements);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /topics/{name}/members?cursor=&count= */

ngx_int_t
ngx_http_fishchat_manager_members(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_topic_page(ctx, 1,
                                      ctx->main->members,
                                      ngx_http_fishchat_manager_members_done);
}


/*
 * A page of one of the topic's keys (1: members, 2: history): the topic,
 * the key, cursor, count
 */

static ngx_int_t
ngx_http_fishchat_manager_topic_page(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_uint_t key, ngx_fishchat_redis_script_t *script,
    ngx_http_fishchat_manager_done_pt done)
{
    ngx_int_t  rc;
    ngx_str_t  args[4];

    if (ngx_http_fishchat_manager_page(ctx, &rc) != NGX_OK) {
        return rc;
    }

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_topic_keys);

    args[1] = args[key];
    ngx_http_fishchat_manager_page_args(ctx, &args[2]);

    return ngx_http_fishchat_manager_eval(ctx, script, done, 2, 4, args);
}


static ngx_int_t
ngx_http_fishchat_manager_members_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t               i;
    redisReply          *list;
    ngx_fishchat_json_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "topic");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    list = reply->element[1];

    ngx_http_fishchat_manager_open(ctx, &out, 512 + 320 * list->elements,
                                   "name", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"total\":");
    ngx_fishchat_json_rnum(&out, reply->element[2]);
    ngx_fishchat_json_fmt(&out, ",\"members\":[");

    for (i = 0; i + 1 < list->elements; i += 2) {
        ngx_fishchat_json_fmt(&out, "%s{\"id\":", i ? "," : "");
        ngx_fishchat_json_rstr(&out, list->element[i]);
        ngx_fishchat_json_fmt(&out, ",\"position\":");
        ngx_fishchat_json_rnum(&out, list->element[i + 1]);
        ngx_fishchat_json_fmt(&out, "}");
    }

    ngx_fishchat_json_fmt(&out, "]");
    ngx_http_fishchat_manager_cursor(&out, reply->element[0], 1);
    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * PUT /topics/{name}/members/{id}: as JOIN_TOPIC;
 * DELETE /topics/{name}/members/{id}: as LEAVE_TOPIC
 */

ngx_int_t
ngx_http_fishchat_manager_member_add(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_member(ctx, ctx->main->topic_join);
}


ngx_int_t
ngx_http_fishchat_manager_member_remove(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_member(ctx, ctx->main->topic_leave);
}


static ngx_int_t
ngx_http_fishchat_manager_member(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_fishchat_redis_script_t *script)
{
    ngx_str_t  args[6];

    ngx_http_fishchat_manager_keys(ctx, args,
                                   ngx_http_fishchat_manager_topic_keys);

    args[2] = ctx->param[1];
    args[3] = ctx->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[4] = ctx->param[0];
    ngx_str_set(&args[5], "*");     /* the manager: private topics too */

    return ngx_http_fishchat_manager_store(ctx, script,
                                    ngx_http_fishchat_manager_member_changed,
                                    2, 6, args);
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
        return ngx_http_fishchat_manager_not_found(ctx, "topic");
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
    ngx_fishchat_json_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_open(ctx, &out, 1024, "name", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"id\":");
    ngx_fishchat_json_str(&out, &ctx->param[1]);
    ngx_fishchat_json_fmt(&out, ",\"member\":%s,\"online\":%s}",
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

    args[0] = ngx_fishchat_key(&p, "client:", id, "");
    args[1] = ngx_fishchat_key(&p, "client:", id, ":topics");

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

ngx_int_t
ngx_http_fishchat_manager_history(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_topic_page(ctx, 2,
                                      ctx->main->history,
                                      ngx_http_fishchat_manager_history_done);
}


static ngx_int_t
ngx_http_fishchat_manager_history_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    u_char              *s, *last;
    size_t               i;
    ngx_str_t            v;
    ngx_uint_t           n;
    redisReply          *e;
    ngx_fishchat_json_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "topic");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fishchat_manager_messages(ctx, &out, reply, 3, "name", "last");

    n = 0;

    for (i = 3; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        /* <seq>\n<uuid>\n<from>\n<message> */

        s = (u_char *) e->str;
        last = s + e->len;

        ngx_fishchat_json_fmt(&out, "%s{", n++ ? "," : "");

        ngx_http_fishchat_manager_line(&s, last, &v);
        ngx_fishchat_json_fmt(&out, "\"seq\":%L",
                              (int64_t) ngx_atoof(v.data, v.len));

        ngx_http_fishchat_manager_line(&s, last, &v);
        ngx_fishchat_json_fmt(&out, ",\"uuid\":");
        ngx_fishchat_json_str(&out, &v);

        ngx_http_fishchat_manager_line(&s, last, &v);
        ngx_fishchat_json_fmt(&out, ",\"from\":");
        ngx_fishchat_json_str(&out, &v);

        v.data = s;
        v.len = last - s;

        ngx_fishchat_json_fmt(&out, ",\"message\":");
        ngx_fishchat_json_str(&out, &v);
        ngx_fishchat_json_fmt(&out, "}");
    }

    /* older messages are left while the first returned is not the first */

    if (reply->element[2]->integer > reply->element[1]->integer
        && n)
    {
        ngx_fishchat_json_fmt(&out, "],\"cursor\":\"%L\"}",
                              (int64_t) reply->element[2]->integer);

    } else {
        ngx_fishchat_json_fmt(&out, "],\"cursor\":null}");
    }

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* the line at "pos" (up to "last", without its "\n"); "pos" goes past it */

static void
ngx_http_fishchat_manager_line(u_char **pos, u_char *last, ngx_str_t *line)
{
    u_char  *nl;

    nl = ngx_strlchr(*pos, last, '\n');

    line->data = *pos;
    line->len = (nl ? nl : last) - *pos;

    *pos = nl ? nl + 1 : last;
}
