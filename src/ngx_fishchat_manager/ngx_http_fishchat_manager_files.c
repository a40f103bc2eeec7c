
/*
 * FishChat for nginx: the manager's endpoints of the files role.
 *
 * POST /files/slots makes an upload slot for a backend as FILE_SLOT does
 * from a chat session (ngx_fishchat_files.c makes both); GET
 * /clients/{id}/files lists an id's files, GET /files/{id} is one record
 * and DELETE /files/{id} deletes it with the script FILE_DELETE runs
 * (NGX_FISHCHAT_LUA_FILE_DELETE), without the owner's check.  The
 * quarantine ({files}:quarantine) holds contents by SHA-256 that the files
 * location never serves again and refuses at upload.
 */


#include "ngx_http_fishchat_manager.h"


#define NGX_HTTP_FISHCHAT_MANAGER_SHA256  64


static ngx_int_t ngx_http_fishchat_manager_slot_made(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static void ngx_http_fishchat_manager_file_item(ngx_fishchat_json_t *out,
    redisReply *e);
static void ngx_http_fishchat_manager_file_fields(ngx_fishchat_json_t *out,
    redisReply **f);
static ngx_int_t ngx_http_fishchat_manager_file_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_file_deleted(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_sha256(
    ngx_http_fishchat_manager_ctx_t *ctx, ngx_str_t *sha);
static ngx_int_t ngx_http_fishchat_manager_quarantine_run(
    ngx_http_fishchat_manager_ctx_t *ctx, char *op,
    ngx_http_fishchat_manager_done_pt done);
static ngx_int_t ngx_http_fishchat_manager_quarantine_list_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);
static ngx_int_t ngx_http_fishchat_manager_quarantine_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


char  ngx_http_fishchat_manager_file_slot_lua[] = NGX_FISHCHAT_LUA_FILE_SLOT;

char  ngx_http_fishchat_manager_file_delete_lua[] =
    NGX_FISHCHAT_LUA_FILE_DELETE;


/*
 * The fields of a file's record the manager shows, "created" in Unix
 * seconds (as GET /files/<id>/info has it); "f" is HMGET's answer
 */

#define NGX_HTTP_FISHCHAT_MANAGER_FILE_LUA                                   \
    "local function file(k) "                                                \
        "local f = redis.call('HMGET', k, 'name', 'type', 'size', 'state', " \
                             "'sha256', 'created', 'expires', 'owner', "     \
                             "'probe', 'thumb') "                            \
        "if not f[4] then return nil end "                                   \
        "if f[6] then f[6] = math.floor(tonumber(f[6]) / 1000) end "         \
        "return f "                                                          \
    "end "


/*
 * KEYS: the owner's file ids.  ARGV: cursor, count, the prefix.  SSCAN
 * until about "count" ids or the end (at most 16 calls); an id whose
 * record is gone is dropped from the set.  {cursor, {id, name, type,
 * size, state, sha256, created, expires}...}
 */

char  ngx_http_fishchat_manager_files_lua[] =
    NGX_HTTP_FISHCHAT_MANAGER_FILE_LUA
    "local cursor = ARGV[1] "
    "local want = tonumber(ARGV[2]) "
    "local r = {} "
    "local i = 0 "
    "repeat "
        "local s = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', want) "
        "cursor = s[1] "
        "for _, id in ipairs(s[2]) do "
            "local f = file(ARGV[3] .. 'file:{' .. id .. '}') "
            "if f then "
                "r[#r + 1] = {id, f[1], f[2], f[3], f[4], f[5], f[6], f[7]} "
            "else "
                "redis.call('SREM', KEYS[1], id) "
            "end "
        "end "
        "i = i + 1 "
    "until cursor == '0' or #r >= want or i == 16 "
    "return {cursor, r}";


/*
 * KEYS: the file.  Its name, type, size, state, sha256, created (s),
 * expires, owner, probe (the info's fields) and thumb; 0 for none
 */

char  ngx_http_fishchat_manager_file_lua[] =
    NGX_HTTP_FISHCHAT_MANAGER_FILE_LUA
    "return file(KEYS[1]) or 0";


/*
 * KEYS: {files}:quarantine.  ARGV: "list", or SADD / SREM and a sha256.
 * The sorted members, or SADD's and SREM's count.
 */

char  ngx_http_fishchat_manager_quarantine_lua[] =
    "if ARGV[1] == 'list' then "
        "local m = redis.call('SMEMBERS', KEYS[1]) "
        "table.sort(m) "
        "return m "
    "end "
    "return redis.call(ARGV[1], KEYS[1], ARGV[2])";


static ngx_str_t  ngx_http_fishchat_manager_files_tag = ngx_string("files");


/* the fields of a record the scripts answer, in their order */

static char  *ngx_http_fishchat_manager_file_names[] = {
    "name", "type", "#size", "state", "sha256", "#created", "#expires"
};


static ngx_http_fishchat_manager_scan_t  ngx_http_fishchat_manager_files_scan =
{
    NULL, "files", 8, ngx_http_fishchat_manager_file_item
};


/* POST /files/slots {"owner":"alice","name":"a.png","size":123,"type":...} */

ngx_int_t
ngx_http_fishchat_manager_file_slot(ngx_http_fishchat_manager_ctx_t *ctx)
{
    u_char                     *p, *keys;
    json_t                     *size;
    ngx_int_t                   rc;
    ngx_http_request_t         *r;
    ngx_fishchat_conf_t        *fcf;
    ngx_fishchat_files_slot_t  *slot;

    r = ctx->request;
    fcf = ctx->fcf;

    slot = ngx_pcalloc(r->pool, sizeof(ngx_fishchat_files_slot_t));
    if (slot == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_fishchat_manager_id_field(ctx, "owner", &slot->owner,
                                           "\"owner\" is the client id "
                                           "the file will belong to", &rc)
        != NGX_OK)
    {
        return rc;
    }

    size = json_object_get(ctx->json, "size");

    if (ngx_http_fishchat_manager_field(ctx, "name", &slot->name) != NGX_OK
        || ngx_http_fishchat_manager_field(ctx, "type", &slot->type)
           != NGX_OK
        || size == NULL || !json_is_integer(size))
    {
        goto bad;
    }

    slot->size = (off_t) json_integer_value(size);

    rc = ngx_fishchat_files_slot_check(fcf, slot);

    if (rc == NGX_ABORT) {
        return ngx_http_fishchat_manager_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "FILE_TOO_LARGE",
                                           "a file is at most %O bytes "
                                           "(fishchat_files_max_size)",
                                           fcf->files_max_size);
    }

    if (rc != NGX_OK) {
        goto bad;
    }

    if (fcf->files_url.len == 0 || fcf->auth_secret.len == 0) {
        return ngx_http_fishchat_manager_error(r, NGX_HTTP_CONFLICT,
                                               "NOT_CONFIGURED",
                                               "slots need "
                                               "\"fishchat_files_url\" and "
                                               "\"fishchat_auth_secret_file\"");
    }

    p = ngx_pnalloc(r->pool, ngx_fishchat_files_slot_len(fcf));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    keys = ctx->scratch;

    if (ngx_fishchat_files_slot_make(fcf, slot, p, &keys) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->data = slot;

    return ngx_http_fishchat_manager_store(ctx, ctx->main->file_slot,
                                       ngx_http_fishchat_manager_slot_made,
                                       NGX_FISHCHAT_FILES_SLOT_KEYS,
                                       NGX_FISHCHAT_FILES_SLOT_ARGS,
                                       slot->args);

bad:

    return ngx_http_fishchat_manager_error(r, NGX_HTTP_BAD_REQUEST,
                                           "BAD_REQUEST",
                                           "\"name\" is 1 to 255 bytes "
                                           "without control characters or "
                                           "\"/\", \"size\" a number of "
                                           "bytes, \"type\" a type/subtype");
}


static ngx_int_t
ngx_http_fishchat_manager_slot_made(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_fishchat_json_t         out;
    ngx_fishchat_files_slot_t  *slot;

    slot = ctx->data;

    if (reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (reply->integer == -1) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_FORBIDDEN,
                                               "QUOTA_EXCEEDED",
                                               "the files of \"%V\" would "
                                               "pass \"fishchat_files_quota\"",
                                               &slot->owner);
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "fishchat manager: \"%V\" has an upload slot for file %V",
                  &slot->owner, &slot->id);

    ngx_http_fishchat_manager_open(ctx, &out,
                                   2 * (slot->put_url.len + slot->get_url.len)
                                   + 256,
                                   "id", &slot->id);
    ngx_fishchat_json_fmt(&out, ",\"put_url\":");
    ngx_fishchat_json_str(&out, &slot->put_url);
    ngx_fishchat_json_fmt(&out, ",\"get_url\":");
    ngx_fishchat_json_str(&out, &slot->get_url);
    ngx_fishchat_json_fmt(&out, ",\"expires\":%T}", slot->expires);

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_CREATED, &out);
}


/* GET /clients/{id}/files: a page of the id's files */

ngx_int_t
ngx_http_fishchat_manager_files(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  set;

    set = ngx_http_fishchat_manager_key(ctx, "files:", ":ids");

    return ngx_http_fishchat_manager_scan(ctx, ctx->main->files,
                                          &ngx_http_fishchat_manager_files_scan,
                                          &set);
}


/* an element of the list: {"id":...,<the fields>} */

static void
ngx_http_fishchat_manager_file_item(ngx_fishchat_json_t *out, redisReply *e)
{
    ngx_fishchat_json_fmt(out, "{\"id\":");
    ngx_fishchat_json_rstr(out, e->element[0]);
    ngx_http_fishchat_manager_file_fields(out, &e->element[1]);
    ngx_fishchat_json_fmt(out, "}");
}


/* ,"name":...,"expires":... of the fields of a record, in the scripts' order */

static void
ngx_http_fishchat_manager_file_fields(ngx_fishchat_json_t *out,
    redisReply **f)
{
    ngx_http_fishchat_manager_fields(out, f,
                                     ngx_http_fishchat_manager_file_names,
                                     7);
}


/* GET /files/{id}: the record, with the probe's fields */

ngx_int_t
ngx_http_fishchat_manager_file(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  key;

    key = ngx_http_fishchat_manager_key(ctx, "file:", "");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->file,
                                          ngx_http_fishchat_manager_file_done,
                                          1, 1, &key);
}


static ngx_int_t
ngx_http_fishchat_manager_file_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    redisReply          *probe, *thumb;
    ngx_fishchat_json_t  out;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return ngx_http_fishchat_manager_not_found(ctx, "file");
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 10) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    probe = reply->element[8];
    thumb = reply->element[9];

    ngx_http_fishchat_manager_open(ctx, &out,
                                   1024 + (probe->type == REDIS_REPLY_STRING
                                           ? probe->len : 0),
                                   "id", &ctx->param[0]);

    ngx_fishchat_json_fmt(&out, ",\"owner\":");
    ngx_fishchat_json_rstr(&out, reply->element[7]);
    ngx_http_fishchat_manager_file_fields(&out, reply->element);
    ngx_fishchat_json_fmt(&out, ",\"thumb\":%s",
                          thumb->type == REDIS_REPLY_STRING && thumb->len == 1
                          && thumb->str[0] == '1' ? "true" : "false");

    /* the probe's fields, as the files location wrote them: ,"k":v... */

    if (probe->type == REDIS_REPLY_STRING && probe->len
        && probe->str[0] == ',')
    {
        ngx_fishchat_json_fmt(&out, "%*s", (size_t) probe->len, probe->str);
    }

    ngx_fishchat_json_fmt(&out, "}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* DELETE /files/{id}: as the owner's FILE_DELETE, whoever owns it */

ngx_int_t
ngx_http_fishchat_manager_file_delete(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[4];

    args[0] = ngx_http_fishchat_manager_key(ctx, "file:", "");
    args[1] = ctx->param[0];
    ngx_str_set(&args[2], "");
    args[3] = ctx->fcf->redis_prefix;

    return ngx_http_fishchat_manager_store(ctx, ctx->main->file_delete,
                                       ngx_http_fishchat_manager_file_deleted,
                                       1, 4, args);
}


static ngx_int_t
ngx_http_fishchat_manager_file_deleted(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    ngx_int_t            rc;
    ngx_fishchat_json_t  out;

    if (ngx_http_fishchat_manager_counted(ctx, reply, &rc, "no file \"%V\"",
                                          &ctx->param[0], NULL)
        != NGX_OK)
    {
        return rc;
    }

    if (reply->integer == -2) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_CONFLICT,
                                               "FILE_BUSY",
                                               "file \"%V\" is being "
                                               "uploaded: try again",
                                               &ctx->param[0]);
    }

    if (reply->integer != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "fishchat manager: file %V deleted", &ctx->param[0]);

    ngx_http_fishchat_manager_open(ctx, &out, 256, "id", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"deleted\":true}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/* GET /files/quarantine: the quarantined contents, sorted */

ngx_int_t
ngx_http_fishchat_manager_quarantine(ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_quarantine_run(ctx, "list",
                                ngx_http_fishchat_manager_quarantine_list_done);
}


/* POST /files/quarantine {"sha256":"<64 hex digits>"} */

ngx_int_t
ngx_http_fishchat_manager_quarantine_add(ngx_http_fishchat_manager_ctx_t *ctx)
{
    if (ngx_http_fishchat_manager_field(ctx, "sha256", &ctx->param[0])
        != NGX_OK)
    {
        ngx_str_null(&ctx->param[0]);
    }

    return ngx_http_fishchat_manager_quarantine_run(ctx, "SADD",
                                     ngx_http_fishchat_manager_quarantine_done);
}


/* DELETE /files/quarantine/{sha256} */

ngx_int_t
ngx_http_fishchat_manager_quarantine_remove(
    ngx_http_fishchat_manager_ctx_t *ctx)
{
    return ngx_http_fishchat_manager_quarantine_run(ctx, "SREM",
                                     ngx_http_fishchat_manager_quarantine_done);
}


/*
 * The quarantine script: "list", or SADD and SREM of the SHA-256 in
 * ctx->param[0] (checked, lower-cased)
 */

static ngx_int_t
ngx_http_fishchat_manager_quarantine_run(ngx_http_fishchat_manager_ctx_t *ctx,
    char *op, ngx_http_fishchat_manager_done_pt done)
{
    u_char     *p;
    ngx_str_t   args[3];

    if (op[0] != 'l'
        && ngx_http_fishchat_manager_sha256(ctx, &ctx->param[0]) != NGX_OK)
    {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_BAD_REQUEST,
                                               "BAD_REQUEST",
                                               "a SHA-256 is 64 hex digits");
    }

    p = ctx->scratch;

    args[0] = ngx_fishchat_key(&p, "", &ngx_http_fishchat_manager_files_tag,
                               ":quarantine");
    args[1].data = (u_char *) op;
    args[1].len = ngx_strlen(op);
    args[2] = ctx->param[0];

    if (op[0] == 'l') {
        return ngx_http_fishchat_manager_eval(ctx, ctx->main->quarantine,
                                              done, 1, 2, args);
    }

    return ngx_http_fishchat_manager_store(ctx, ctx->main->quarantine, done,
                                           1, 3, args);
}


/* a SHA-256 in hex, lower-cased in a copy of the pool */

static ngx_int_t
ngx_http_fishchat_manager_sha256(ngx_http_fishchat_manager_ctx_t *ctx,
    ngx_str_t *sha)
{
    u_char  c, *p;
    size_t  i;

    if (sha->len != NGX_HTTP_FISHCHAT_MANAGER_SHA256) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(ctx->request->pool, sha->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < sha->len; i++) {
        c = ngx_tolower(sha->data[i]);

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return NGX_DECLINED;
        }

        p[i] = c;
    }

    sha->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fishchat_manager_quarantine_list_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply)
{
    size_t               i;
    ngx_fishchat_json_t  out;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_fishchat_json_init(&out, ctx->request->pool,
                           64 + 72 * reply->elements);

    ngx_fishchat_json_fmt(&out, "{\"quarantine\":[");

    for (i = 0; i < reply->elements; i++) {
        if (i) {
            ngx_fishchat_json_fmt(&out, ",");
        }

        ngx_fishchat_json_rstr(&out, reply->element[i]);
    }

    ngx_fishchat_json_fmt(&out, "]}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}


/*
 * SADD: 201 when the content is quarantined now, 200 when it was already;
 * SREM: 200, or 404 when it was not quarantined
 */

static ngx_int_t
ngx_http_fishchat_manager_quarantine_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply)
{
    ngx_uint_t           add;
    ngx_fishchat_json_t  out;

    if (reply->type != REDIS_REPLY_INTEGER) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    add = (ctx->request->method == NGX_HTTP_POST);

    if (!add && reply->integer == 0) {
        return ngx_http_fishchat_manager_error(ctx->request,
                                               NGX_HTTP_NOT_FOUND,
                                               "NOT_FOUND", "%V is not "
                                               "quarantined", &ctx->param[0]);
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "fishchat manager: content %V %s", &ctx->param[0],
                  add ? (reply->integer ? "quarantined"
                                        : "was quarantined already")
                      : "no longer quarantined");

    ngx_http_fishchat_manager_open(ctx, &out, 256, "sha256", &ctx->param[0]);
    ngx_fishchat_json_fmt(&out, ",\"quarantined\":%s}",
                          add ? "true" : "false");

    return ngx_http_fishchat_manager_send(ctx,
                                          add && reply->integer
                                          ? NGX_HTTP_CREATED : NGX_HTTP_OK,
                                          &out);
}
