
/*
 * FishChat for nginx: the uploads of the files location (docs/files.md).
 *
 * PUT /<location>/<id>?exp=&sig= takes the upload of a slot made by
 * FILE_SLOT: the signature, the size and the type of the slot are
 * checked, the slot is claimed in Redis (one upload at a time), the body
 * goes to a temporary file, its SHA-256 is computed in a thread, the
 * content is counted in Redis (or refused, quarantined), and the file is
 * renamed into the store as <sha256[0..1]>/<sha256>: a file of the store
 * is always whole, and the same bytes are stored once.  Audio, video and
 * images are probed in a thread before the record says "ready".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_http_fishchat_files.h"

#if (NGX_OPENSSL)
#include <openssl/evp.h>
#endif


static ngx_int_t ngx_http_fishchat_files_range(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_chunk_checks(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_received_answer(
    ngx_http_request_t *r, ngx_http_fishchat_files_ctx_t *ctx, off_t n);
static void ngx_http_fishchat_files_claimed(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_files_progress(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_progressed(redisReply *reply,
    void *data);
static void ngx_http_fishchat_files_body(ngx_http_request_t *r);
#if (NGX_THREADS && NGX_OPENSSL)
static void ngx_http_fishchat_files_sha256(void *data, ngx_log_t *log);
static void ngx_http_fishchat_files_append(ngx_http_fishchat_files_hash_t *h);
static void ngx_http_fishchat_files_hashed(ngx_event_t *ev);
#endif
static void ngx_http_fishchat_files_reserved(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_files_store(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_keep(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_probe_post(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx, ngx_str_t *path);
#if (NGX_THREADS)
static void ngx_http_fishchat_files_probed(ngx_event_t *ev);
#endif
static void ngx_http_fishchat_files_stored(redisReply *reply, void *data);
static void ngx_http_fishchat_files_refused(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx, char *what);


/*
 * KEYS: the file.  ARGV: the first byte of a chunk, -1 for a whole PUT.
 * 1 when its slot was free (or, for a chunk, its upload was partial and
 * the chunk starts where it stopped) and is now being uploaded: the
 * record lives on however long the upload takes; 0 when it is used,
 * -1 when the chunk starts elsewhere.
 */

char  ngx_http_fishchat_files_claim_lua[] =
    "local st = redis.call('HGET', KEYS[1], 'state') "
    "if ARGV[1] == '-1' then "
        "if st ~= 'slot' then return 0 end "
    "else "
        "if st ~= 'slot' and st ~= 'partial' then return 0 end "
        "local got = redis.call('HGET', KEYS[1], 'received') or '0' "
        "if tonumber(got) ~= tonumber(ARGV[1]) then return -1 end "
    "end "
    "redis.call('HSET', KEYS[1], 'state', 'uploading') "
    "redis.call('PERSIST', KEYS[1]) "
    "return 1";

/*
 * KEYS: the file, the content's count (blob:{<sha>}), the contents to
 * unlink.  ARGV: "1" when the content was counted for this upload, the
 * sha256, the slot's life (s).  An upload that did not end: the slot is
 * free again until its URL expires (a resumable upload with bytes
 * received: partial, for the slot's life), the content is counted out.
 */

char  ngx_http_fishchat_files_release_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') == 'uploading' then "
        "if tonumber(redis.call('HGET', KEYS[1], 'received') or '0') > 0 "
        "then "
            "redis.call('HSET', KEYS[1], 'state', 'partial') "
            "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
        "else "
            "redis.call('HSET', KEYS[1], 'state', 'slot') "
            "redis.call('EXPIREAT', KEYS[1], "
                       "redis.call('HGET', KEYS[1], 'expires')) "
        "end "
    "end "
    "if ARGV[1] == '1' and redis.call('DECR', KEYS[2]) <= 0 then "
        "redis.call('DEL', KEYS[2]) "
        "redis.call('SADD', KEYS[3], ARGV[2]) "
    "end";

/*
 * KEYS: the file, the content's count, the quarantine.  ARGV: the
 * sha256.  Before the content goes into the store it is counted (the
 * collector never unlinks a counted content): the count, 0 when the slot
 * is not being uploaded, -1 when the content is quarantined.
 */

char  ngx_http_fishchat_files_reserve_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'uploading' then "
        "return 0 "
    "end "
    "if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return -1 end "
    "return redis.call('INCR', KEYS[2])";

/*
 * KEYS: the file, the expiries.  ARGV: the bytes received, the slot's
 * life (s), the file id, now.  A chunk of a resumable upload is in: the
 * upload is partial, and lives the slot's life from now.
 */

char  ngx_http_fishchat_files_progress_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'uploading' then "
        "return 0 "
    "end "
    "redis.call('HSET', KEYS[1], 'state', 'partial', 'received', ARGV[1]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[2]) "
    "redis.call('ZADD', KEYS[2], ARGV[4] + ARGV[2], ARGV[3]) "
    "return 1";

/*
 * KEYS: the file, the owner's files, the expiries, the files' figures.
 * ARGV: the sha256, the size, when it expires (Unix s), the probe's
 * fields, "1" for a thumbnail, the file id, "1" for a content new to the
 * store.  The file is ready until the collector finds it expired; the
 * owner's stored bytes grow.
 */

char  ngx_http_fishchat_files_stored_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'uploading' then "
        "return 0 "
    "end "
    "redis.call('HSET', KEYS[1], 'state', 'ready', 'sha256', ARGV[1], "
               "'expires', ARGV[3], 'probe', ARGV[4], 'thumb', ARGV[5]) "
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6]) "
    "redis.call('HINCRBY', KEYS[2], 'used', ARGV[2]) "
    "redis.call('HINCRBY', KEYS[4], 'files', 1) "
    "if ARGV[7] == '1' then "
        "redis.call('HINCRBY', KEYS[4], 'bytes', ARGV[2]) "
    "end "
    "return 1";


/*
 * exp and sig of a PUT URL, and its Content-Length: required, and not
 * over fishchat_files_max_size.  NGX_DECLINED: go on; otherwise what to
 * finalize the request with.
 */

ngx_int_t
ngx_http_fishchat_files_put_args(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    ngx_str_t             exp;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    if (ngx_http_arg(r, (u_char *) "exp", 3, &exp) != NGX_OK
        || ngx_http_arg(r, (u_char *) "sig", 3, &ctx->sig) != NGX_OK
        || (ctx->exp = ngx_atotm(exp.data, exp.len)) == NGX_ERROR
        || ctx->sig.len == 0)
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "a PUT URL has \"exp\" "
                                       "and \"sig\": the one of FILE_SLOT");
    }

    switch (ngx_http_fishchat_files_range(r, ctx)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        break;

    default:
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "a Content-Range of a "
                                       "PUT is \"bytes <first>-<last>/<size>\" "
                                       "or \"bytes */<size>\"");
    }

    /* a chunk that continues a partial upload may come after exp */

    if (!ctx->ranged && ctx->exp < ngx_time()) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "SLOT_EXPIRED", "the slot of file %V "
                                       "expired at %T", &ctx->id, ctx->exp);
    }

    if (ctx->query && r->headers_in.content_length_n <= 0) {
        return NGX_DECLINED;
    }

    if (r->headers_in.content_length_n < 0) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "a PUT needs a "
                                       "Content-Length");
    }

    if (r->headers_in.content_length_n > fcf->files_max_size) {
        return ngx_fishchat_http_error(r, "files",
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "FILE_TOO_LARGE", "%O bytes, over "
                                       "\"fishchat_files_max_size\" (%O)",
                                       r->headers_in.content_length_n,
                                       fcf->files_max_size);
    }

    return NGX_DECLINED;
}


/*
 * Content-Range: "bytes <first>-<last>/<size>", a chunk of a resumable
 * upload, or "bytes *" and "/<size>", how much of it the server has.
 * NGX_OK: ctx->ranged (and ctx->query); NGX_DECLINED: none; NGX_ERROR:
 * bad.
 */

static ngx_int_t
ngx_http_fishchat_files_range(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char           *p, *last, *dash, *slash;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;
    ngx_list_part_t  *part;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_DECLINED;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Content-Range") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Range",
                               sizeof("Content-Range") - 1)
               == 0)
        {
            break;
        }
    }

    p = h[i].value.data;
    last = p + h[i].value.len;

    if (h[i].value.len < sizeof("bytes */1") - 1
        || ngx_strncmp(p, "bytes ", 6) != 0)
    {
        return NGX_ERROR;
    }

    p += 6;

    slash = ngx_strlchr(p, last, '/');
    if (slash == NULL) {
        return NGX_ERROR;
    }

    ctx->range_size = ngx_atoof(slash + 1, last - slash - 1);
    ctx->ranged = 1;

    if (ctx->range_size <= 0) {
        return NGX_ERROR;
    }

    if (slash - p == 1 && *p == '*') {
        ctx->query = 1;
        return NGX_OK;
    }

    dash = ngx_strlchr(p, slash, '-');
    if (dash == NULL) {
        return NGX_ERROR;
    }

    ctx->first = ngx_atoof(p, dash - p);
    ctx->last = ngx_atoof(dash + 1, slash - dash - 1);

    if (ctx->first < 0 || ctx->last < ctx->first
        || ctx->last >= ctx->range_size)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A PUT whose URL is the slot's (signature of its id, size, type and
 * expiry), with its size and type, to a slot not used yet: the slot is
 * claimed before the body is read
 */

ngx_int_t
ngx_http_fishchat_files_put(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *last;
    ngx_int_t                            rc;
    ngx_str_t                            type, first, args[2], *have, *state;
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_loc_conf_t  *flcf;
    u_char                               fbuf[NGX_OFF_T_LEN];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    type = *ngx_http_fishchat_files_type(ctx);

    if (ngx_http_fishchat_files_sig_differs(fcf, ctx, &type)) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "the PUT URL of file %V "
                                       "is not its slot's", &ctx->id);
    }

    state = ngx_http_fishchat_files_state(ctx);

    if (!((state->len == 4 && ngx_strncmp(state->data, "slot", 4) == 0)
          || (ctx->ranged && state->len == 7
              && ngx_strncmp(state->data, "partial", 7) == 0)))
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_CONFLICT,
                                       "SLOT_USED", "file %V is uploaded "
                                       "or being uploaded", &ctx->id);
    }

    if (ctx->ranged) {
        rc = ngx_http_fishchat_files_chunk_checks(r, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }

    } else if (r->headers_in.content_length_n != ctx->size) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "file %V is %O bytes, "
                                       "not %O", &ctx->id, ctx->size,
                                       r->headers_in.content_length_n);
    }

    /* the type without parameters, as FILE_SLOT lower-cased it */

    if (r->headers_in.content_type && !ctx->query) {
        have = &r->headers_in.content_type->value;
        last = ngx_strlchr(have->data, have->data + have->len, ';');
        if (last == NULL) {
            last = have->data + have->len;
        }

        while (last > have->data && last[-1] == ' ') {
            last--;
        }

        if ((size_t) (last - have->data) != type.len
            || ngx_strncasecmp(have->data, type.data, type.len) != 0)
        {
            return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                           "BAD_REQUEST", "file %V is "
                                           "\"%V\", not \"%V\"", &ctx->id,
                                           &type, have);
        }
    }

    if (state->len == 4 && ctx->exp < ngx_time()) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "SLOT_EXPIRED", "the slot of file %V "
                                       "expired at %T", &ctx->id, ctx->exp);
    }

    if (ctx->query) {
        return ngx_http_fishchat_files_received_answer(r, ctx,
                   ngx_atoof(ngx_http_fishchat_files_received(ctx)->data,
                             ngx_http_fishchat_files_received(ctx)->len));
    }

    first.data = fbuf;
    first.len = ctx->ranged ? (size_t) (ngx_sprintf(fbuf, "%O", ctx->first)
                                        - fbuf)
                            : 2;

    if (!ctx->ranged) {
        ngx_memcpy(fbuf, "-1", 2);
    }

    args[0] = ctx->key;
    args[1] = first;

    return ngx_http_fishchat_files_eval(r, flcf->claim,
                                        ngx_http_fishchat_files_claimed, 1, 2,
                                        args);
}


/*
 * A chunk: of the slot's size, its Content-Length the chunk's, at the
 * bytes received so far, with a store for the partial file.
 * NGX_DECLINED: go on.
 */

static ngx_int_t
ngx_http_fishchat_files_chunk_checks(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *p;
    off_t                                got;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    if (ctx->range_size != ctx->size) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "file %V is %O bytes, "
                                       "not %O", &ctx->id, ctx->size,
                                       ctx->range_size);
    }

    if (ctx->query) {
        return NGX_DECLINED;
    }

    if (r->headers_in.content_length_n != ctx->last - ctx->first + 1) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "the chunk %O-%O of "
                                       "file %V is not %O bytes", ctx->first,
                                       ctx->last, &ctx->id,
                                       r->headers_in.content_length_n);
    }

    got = ngx_atoof(ngx_http_fishchat_files_received(ctx)->data,
                    ngx_http_fishchat_files_received(ctx)->len);
    if (got < 0) {
        got = 0;
    }

    if (ctx->first != got) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_CONFLICT,
                                       "WRONG_OFFSET", "file %V has %O "
                                       "bytes: a chunk starts there, not at "
                                       "%O", &ctx->id, got, ctx->first);
    }

    if (flcf->store.len == 0
        || flcf->store.len + ctx->id.len + sizeof("/.partial/")
           > NGX_MAX_PATH)
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "resumable uploads need "
                                       "a store without variables");
    }

    p = ngx_pnalloc(r->pool, flcf->store.len + ctx->id.len
                             + sizeof("/.partial/"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->part.data = p;
    ctx->part.len = ngx_sprintf(p, "%V/.partial/%V%Z", &flcf->store,
                                &ctx->id)
                    - p - 1;

    return NGX_DECLINED;
}


/* 202: how much of a resumable upload the server has */

static ngx_int_t
ngx_http_fishchat_files_received_answer(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx, off_t n)
{
    ngx_fishchat_json_t  out;

    if (n < 0) {
        n = 0;
    }

    ngx_fishchat_json_init(&out, r->pool, 128);
    ngx_fishchat_json_fmt(&out, "{\"id\":\"%V\",\"received\":%O,"
                          "\"size\":%O}" CRLF, &ctx->id, n, ctx->size);

    return ngx_fishchat_http_send(r, NGX_HTTP_ACCEPTED, "application/json",
                                  &out);
}


/* the slot is ours, or was taken meanwhile: the body is read to a file */

static void
ngx_http_fishchat_files_claimed(redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_int_t                       rc;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "REDIS_UNAVAILABLE", "Redis is "
                                    "unavailable"));
        return;
    }

    if (reply->integer != 1) {
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_CONFLICT,
                                    reply->integer == -1 ? "WRONG_OFFSET"
                                                         : "SLOT_USED",
                                    "file %V %s", &ctx->id,
                                    reply->integer == -1
                                    ? "has another count of bytes received"
                                    : "is uploaded or being uploaded"));
        return;
    }

    ctx->claimed = 1;

    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_log_level = 0;

    /*
     * nginx reads the body as it does for a content handler: the wait of
     * the access phase ends here, the body's own reference takes over
     */

    r->main->count--;

    rc = ngx_http_read_client_request_body(r, ngx_http_fishchat_files_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(r->connection);
        return;
    }

    /* as a content handler's NGX_DONE: the body's reference */

    ngx_http_finalize_request(r, NGX_DONE);
    ngx_http_run_posted_requests(r->connection);
}


/* the whole body is in a temporary file: its SHA-256, in a thread */

static void
ngx_http_fishchat_files_body(ngx_http_request_t *r)
{
#if (NGX_THREADS && NGX_OPENSSL)
    off_t                                want;
    ngx_pool_t                          *pool;
    ngx_temp_file_t                     *tf;
    ngx_thread_task_t                   *task;
    ngx_http_fishchat_files_ctx_t       *ctx;
    ngx_http_fishchat_files_hash_t      *h;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    tf = r->request_body ? r->request_body->temp_file : NULL;

    want = ctx->ranged ? ctx->last - ctx->first + 1 : ctx->size;

    if (tf == NULL || tf->file.name.len >= NGX_MAX_PATH
        || tf->file.offset != want)
    {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_finalize_request(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                    "BAD_REQUEST", "file %V: the body is "
                                    "not the %O bytes announced", &ctx->id,
                                    want));
        return;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        goto failed;
    }

    task = ngx_thread_task_alloc(pool, sizeof(ngx_http_fishchat_files_hash_t));
    if (task == NULL) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    h = task->ctx;
    h->pool = pool;
    h->request = r;

    if (ctx->ranged) {
        /* appended to the partial file, which is hashed once whole */
        ngx_cpystrn(h->from, tf->file.name.data, tf->file.name.len + 1);
        ngx_cpystrn(h->path, ctx->part.data, ctx->part.len + 1);
        h->first = ctx->first;
        h->chunk = 1;
        h->whole = (ctx->last + 1 == ctx->size);

    } else {
        ngx_cpystrn(h->path, tf->file.name.data, tf->file.name.len + 1);
    }

    task->handler = ngx_http_fishchat_files_sha256;
    ngx_fishchat_event_init(&task->event, ngx_http_fishchat_files_hashed,
                            h, ngx_cycle->log);

    if (ngx_thread_task_post(flcf->pool, task) != NGX_OK) {
        ngx_destroy_pool(pool);
        goto failed;
    }

    ctx->hash = h;

    /* the request waits for the thread, and then for Redis */

    r->main->count++;

    return;

failed:

    ngx_http_fishchat_files_release(r, ctx);
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

#else

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

#endif
}


#if (NGX_THREADS && NGX_OPENSSL)

/*
 * the thread's work: the SHA-256 of the temporary file, in hex; for a
 * chunk, the chunk appended to the partial file first, which is hashed
 * once it is whole
 */

static void
ngx_http_fishchat_files_sha256(void *data, ngx_log_t *log)
{
    ngx_http_fishchat_files_hash_t *h = data;

    int            n;
    ngx_fd_t       fd;
    EVP_MD_CTX    *md;
    unsigned int   len;
    u_char         buf[65536];
    u_char         sum[EVP_MAX_MD_SIZE];

    h->rc = NGX_ERROR;
    h->bytes = 0;

    if (h->chunk) {
        ngx_http_fishchat_files_append(h);

        if (h->rc != NGX_OK || !h->whole) {
            return;
        }

        h->rc = NGX_ERROR;
        h->bytes = 0;
    }

    fd = ngx_open_file(h->path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        h->err = ngx_errno;
        return;
    }

    md = EVP_MD_CTX_new();

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        goto done;
    }

    for ( ;; ) {
        n = read(fd, buf, sizeof(buf));

        if (n == 0) {
            break;
        }

        if (n < 0) {
            h->err = ngx_errno;
            goto done;
        }

        if (EVP_DigestUpdate(md, buf, n) != 1) {
            goto done;
        }

        h->bytes += n;
    }

    if (EVP_DigestFinal_ex(md, sum, &len) != 1 || len != 32) {
        goto done;
    }

    ngx_hex_dump(h->sha, sum, 32);
    h->rc = NGX_OK;

done:

    if (md) {
        EVP_MD_CTX_free(md);
    }

    (void) ngx_close_file(fd);
}


/*
 * A chunk onto <store>/.partial/<id>: cut back to the chunk's first byte
 * (what an earlier chunk that broke off may have left after it), then
 * the chunk's temporary file copied after it; h->bytes the bytes copied
 */

static void
ngx_http_fishchat_files_append(ngx_http_fishchat_files_hash_t *h)
{
    u_char     *slash;
    ssize_t     n;
    ngx_fd_t    in, out;
    u_char      buf[65536];

    h->rc = NGX_ERROR;
    h->bytes = 0;

    out = ngx_open_file(h->path, NGX_FILE_WRONLY, NGX_FILE_CREATE_OR_OPEN,
                        0644);

    if (out == NGX_INVALID_FILE && ngx_errno == NGX_ENOENT) {
        slash = (u_char *) strrchr((char *) h->path, '/');
        *slash = '\0';

        if (ngx_create_dir(h->path, 0755) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST)
        {
            h->err = ngx_errno;
            *slash = '/';
            return;
        }

        *slash = '/';
        out = ngx_open_file(h->path, NGX_FILE_WRONLY,
                            NGX_FILE_CREATE_OR_OPEN, 0644);
    }

    if (out == NGX_INVALID_FILE) {
        h->err = ngx_errno;
        return;
    }

    in = ngx_open_file(h->from, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (in == NGX_INVALID_FILE
        || ftruncate(out, h->first) == -1
        || lseek(out, h->first, SEEK_SET) == -1)
    {
        h->err = ngx_errno;
        goto done;
    }

    for ( ;; ) {
        n = read(in, buf, sizeof(buf));

        if (n == 0) {
            h->rc = NGX_OK;
            break;
        }

        if (n < 0 || write(out, buf, n) != n) {
            h->err = ngx_errno;
            break;
        }

        h->bytes += n;
    }

done:

    if (in != NGX_INVALID_FILE) {
        (void) ngx_close_file(in);
    }

    (void) ngx_close_file(out);
}


/* back on the event loop: into the store */

static void
ngx_http_fishchat_files_hashed(ngx_event_t *ev)
{
    ngx_http_fishchat_files_hash_t *h = ev->data;

    u_char                              *p;
    ngx_int_t                            rc;
    ngx_str_t                            args[4], sha;
    ngx_http_request_t                  *r;
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_ctx_t       *ctx;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    r = h->request;

    if (r == NULL) {
        /* the request went meanwhile (its cleanup freed the slot) */
        ngx_destroy_pool(h->pool);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->hash = NULL;

    if (h->chunk && !h->whole && h->rc == NGX_OK
        && h->bytes == ctx->last - ctx->first + 1)
    {
        ngx_destroy_pool(h->pool);

        rc = ngx_http_fishchat_files_progress(r, ctx);

        if (rc != NGX_DONE) {
            ngx_http_fishchat_files_release(r, ctx);
            ngx_http_fishchat_files_finish(r, rc);
        }

        return;
    }

    if (h->rc != NGX_OK || h->bytes != ctx->size) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, h->err,
                      "fishchat files: file %V: the upload \"%s\" could "
                      "not be hashed (%O bytes)", &ctx->id, h->path,
                      h->bytes);
        ngx_destroy_pool(h->pool);
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(ctx->sha, h->sha, NGX_HTTP_FISHCHAT_FILES_SHA);
    ngx_destroy_pool(h->pool);

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    p = ngx_pnalloc(r->pool, 2 * fcf->redis_prefix.len
                             + NGX_HTTP_FISHCHAT_FILES_KEYS);
    if (p == NULL) {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    sha.data = ctx->sha;
    sha.len = NGX_HTTP_FISHCHAT_FILES_SHA;

    args[0] = ctx->key;
    args[1] = ngx_fishchat_key(&p, "blob:", &sha, "");
    args[2] = ngx_http_fishchat_files_key(&p, ":quarantine");
    args[3] = sha;

    rc = ngx_http_fishchat_files_eval(r, flcf->reserve,
                                      ngx_http_fishchat_files_reserved, 3, 4,
                                      args);
    if (rc != NGX_DONE) {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r, rc);
    }
}

#endif


/* a chunk is in, the upload is not whole: Redis counts the bytes */

static ngx_int_t
ngx_http_fishchat_files_progress(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *p;
    ngx_str_t                            args[6];
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    p = ngx_pnalloc(r->pool, fcf->redis_prefix.len + NGX_OFF_T_LEN
                             + 2 * NGX_TIME_T_LEN
                             + NGX_HTTP_FISHCHAT_FILES_KEYS);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->key;
    args[1] = ngx_http_fishchat_files_key(&p, ":expiry");

    args[2].data = p;
    p = ngx_sprintf(p, "%O", ctx->last + 1);
    args[2].len = p - args[2].data;

    args[3].data = p;
    p = ngx_sprintf(p, "%T", fcf->files_slot_ttl);
    args[3].len = p - args[3].data;

    args[4] = ctx->id;

    args[5].data = p;
    p = ngx_sprintf(p, "%T", ngx_time());
    args[5].len = p - args[5].data;

    return ngx_http_fishchat_files_eval(r, flcf->progress,
                                        ngx_http_fishchat_files_progressed,
                                        2, 6, args);
}


static void
ngx_http_fishchat_files_progressed(redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 1)
    {
        ngx_http_fishchat_files_refused(r, ctx, "the chunk");
        return;
    }

    /* the slot is not released: the upload is partial */
    ctx->claimed = 0;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat files: file %V: %O of %O bytes received",
                  &ctx->id, ctx->last + 1, ctx->size);

    ngx_http_fishchat_files_finish(r,
        ngx_http_fishchat_files_received_answer(r, ctx, ctx->last + 1));
}


/* the content is counted, or quarantined: into the store, or refused */

static void
ngx_http_fishchat_files_reserved(redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_int_t                       rc;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer == 0)
    {
        rc = ngx_fishchat_http_error(r, "files", NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "REDIS_UNAVAILABLE", "file %V: Redis "
                                     "did not take it", &ctx->id);

    } else if (reply->integer < 0) {
        rc = ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                     "QUARANTINED", "file %V: its content "
                                     "(sha256 %*s) is quarantined", &ctx->id,
                                     (size_t) NGX_HTTP_FISHCHAT_FILES_SHA,
                                     ctx->sha);

    } else {
        ctx->reserved = 1;
        ctx->fresh = (reply->integer == 1);

        rc = ngx_http_fishchat_files_store(r, ctx);

        if (rc == NGX_DONE) {
            return;
        }
    }

    ngx_http_fishchat_files_release(r, ctx);
    ngx_http_fishchat_files_finish(r, rc);
}


/*
 * The temporary file becomes <store>/<sha[0..1]>/<sha>, unless the same
 * bytes are there already; then the record says so
 */

static ngx_int_t
ngx_http_fishchat_files_store(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char           *p;
    ngx_int_t         rc;
    ngx_str_t         path, *from;
    ngx_file_info_t   fi;

    /* the temporary file of the body, or the partial file of the chunks */

    from = ctx->ranged ? &ctx->part : &r->request_body->temp_file->file.name;

    if (ngx_http_fishchat_files_path(r, ctx->sha, &path) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_file_info(path.data, &fi) == NGX_FILE_ERROR) {

        /* <store>/<sha[0..1]> */

        p = path.data + path.len - NGX_HTTP_FISHCHAT_FILES_SHA - 1;
        *p = '\0';

        if (ngx_create_dir(path.data, 0755) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                          ngx_create_dir_n " \"%s\" failed", path.data);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *p = '/';

        if (ngx_rename_file(from->data, path.data) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                          ngx_rename_file_n " \"%V\" to \"%s\" failed "
                          "(client_body_temp_path must be on the file "
                          "system of the store)", from, path.data);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) ngx_change_file_access(path.data, 0644);

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fishchat files: \"%s\" is stored already", path.data);

        if (ctx->ranged && ngx_delete_file(from->data) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                          ngx_delete_file_n " \"%V\" failed", from);
        }
    }

    /* audio, video and images are described first, in a thread */

    rc = ngx_http_fishchat_files_probe_post(r, ctx, &path);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_fishchat_files_keep(r, ctx);
}


/* the record of a stored file: ready, with what the probe found */

static ngx_int_t
ngx_http_fishchat_files_keep(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *p;
    ngx_str_t                            args[11];
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_loc_conf_t  *flcf;
    u_char                               size[NGX_OFF_T_LEN];
    u_char                               expires[NGX_TIME_T_LEN];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    p = ngx_pnalloc(r->pool, 3 * fcf->redis_prefix.len
                             + ngx_http_fishchat_files_owner(ctx)->len
                             + NGX_HTTP_FISHCHAT_FILES_KEYS);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->key;
    args[1] = ngx_fishchat_key(&p, "files:", ngx_http_fishchat_files_owner(ctx),
                               "");
    args[2] = ngx_http_fishchat_files_key(&p, ":expiry");
    args[3] = ngx_http_fishchat_files_key(&p, ":stats");
    args[4].data = ctx->sha;
    args[4].len = NGX_HTTP_FISHCHAT_FILES_SHA;
    args[5].data = size;
    args[5].len = ngx_sprintf(size, "%O", ctx->size) - size;
    args[6].data = expires;
    args[6].len = ngx_sprintf(expires, "%T", ngx_time() + fcf->files_ttl)
                  - expires;
    args[7] = ctx->probed;
    args[8].data = (u_char *) (ctx->thumb ? "1" : "0");
    args[8].len = 1;
    args[9] = ctx->id;
    args[10].data = (u_char *) (ctx->fresh ? "1" : "0");
    args[10].len = 1;

    return ngx_http_fishchat_files_eval(r, flcf->stored,
                                        ngx_http_fishchat_files_stored, 4, 11,
                                        args);
}


/*
 * An audio, video or image file is probed in a thread
 * (ngx_http_fishchat_files_probe.c), its thumbnail written next to it as
 * <sha>.jpg.  NGX_DONE: under way; NGX_DECLINED: not probed.
 */

static ngx_int_t
ngx_http_fishchat_files_probe_post(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx, ngx_str_t *path)
{
#if (NGX_THREADS)
    ngx_str_t                           *type;
    ngx_pool_t                          *pool;
    ngx_thread_task_t                   *task;
    ngx_http_fishchat_files_job_t       *job;
    ngx_http_fishchat_files_probe_t     *pr;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);
    type = ngx_http_fishchat_files_type(ctx);

    if (!(ngx_strncmp(type->data, "image/", 6) == 0
          || ngx_strncmp(type->data, "audio/", 6) == 0
          || ngx_strncmp(type->data, "video/", 6) == 0)
        || path->len + sizeof(".jpg") > NGX_MAX_PATH)
    {
        return NGX_DECLINED;
    }

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_DECLINED;
    }

    task = ngx_thread_task_alloc(pool,
                                 sizeof(ngx_http_fishchat_files_probe_t));
    job = ngx_palloc(pool, sizeof(ngx_http_fishchat_files_job_t));

    if (task == NULL || job == NULL) {
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    pr = task->ctx;
    ngx_cpystrn(pr->path, path->data, path->len + 1);
    ngx_sprintf(pr->thumb, "%V.jpg%Z", path);
    pr->deadline = (uint64_t) ngx_time() * 1000 + flcf->probe_timeout;

    job->pool = pool;
    job->request = r;
    job->probe = pr;

    task->handler = ngx_http_fishchat_files_probe;
    ngx_fishchat_event_init(&task->event, ngx_http_fishchat_files_probed,
                            job, ngx_cycle->log);

    if (ngx_thread_task_post(flcf->pool, task) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    ngx_fishchat_files_add(probes, 1);
    ngx_fishchat_files_add(probe_queue, 1);
    ctx->job = job;

    return NGX_DONE;

#else

    return NGX_DECLINED;

#endif
}


#if (NGX_THREADS)

/*
 * back on the event loop: the probe's results become the info's fields
 * (a file that could not be probed is kept as a plain file, and says so)
 */

static void
ngx_http_fishchat_files_probed(ngx_event_t *ev)
{
    ngx_http_fishchat_files_job_t *job = ev->data;

    ngx_int_t                         rc;
    ngx_str_t                         v;
    ngx_uint_t                        i;
    ngx_http_request_t               *r;
    ngx_fishchat_json_t               out;
    ngx_http_fishchat_files_ctx_t    *ctx;
    ngx_http_fishchat_files_probe_t  *pr;

    ngx_fishchat_files_add(probe_queue, -1);

    r = job->request;
    pr = job->probe;

    if (r == NULL) {
        ngx_destroy_pool(job->pool);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->job = NULL;

    ngx_fishchat_json_init(&out, r->pool, 1024);

    if (pr->rc != NGX_OK) {
        ngx_fishchat_files_add(probe_failures, 1);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fishchat files: file %V is kept as a plain file: %s",
                      &ctx->id, pr->err);

        v.data = pr->err;
        v.len = ngx_strlen(pr->err);

        ngx_fishchat_json_fmt(&out, ",\"probe_error\":");
        ngx_fishchat_json_str(&out, &v);

        goto done;
    }

    if (pr->duration >= 0) {
        ngx_fishchat_json_fmt(&out, ",\"duration\":%.3f", pr->duration);
    }

    v.data = (u_char *) pr->container;
    v.len = ngx_strlen(pr->container);

    ngx_fishchat_json_fmt(&out, ",\"container\":");
    ngx_fishchat_json_str(&out, &v);
    ngx_fishchat_json_fmt(&out, ",\"codecs\":[");

    for (i = 0; i < pr->ncodecs && i < NGX_HTTP_FISHCHAT_FILES_CODECS; i++) {
        v.data = (u_char *) pr->codecs[i];
        v.len = ngx_strlen(pr->codecs[i]);

        ngx_fishchat_json_fmt(&out, i ? "," : "");
        ngx_fishchat_json_str(&out, &v);
    }

    ngx_fishchat_json_fmt(&out, "]");

    if (pr->width && pr->height) {
        ngx_fishchat_json_fmt(&out, ",\"width\":%i,\"height\":%i",
                              pr->width, pr->height);
    }

    if (pr->bitrate > 0) {
        ngx_fishchat_json_fmt(&out, ",\"bitrate\":%L", pr->bitrate);
    }

    if (pr->has_waveform) {
        ngx_fishchat_json_fmt(&out, ",\"waveform\":[");

        for (i = 0; i < NGX_HTTP_FISHCHAT_FILES_WAVEFORM; i++) {
            ngx_fishchat_json_fmt(&out, i ? ",%ui" : "%ui",
                                  (ngx_uint_t) pr->waveform[i]);
        }

        ngx_fishchat_json_fmt(&out, "]");
    }

    ctx->thumb = pr->has_thumb;

    if (pr->err[0]) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fishchat files: file %V: %s", &ctx->id, pr->err);
    }

done:

    ngx_destroy_pool(job->pool);

    if (ngx_fishchat_json_flatten(&out, &ctx->probed) != NGX_OK) {
        ngx_str_null(&ctx->probed);
    }

    rc = ngx_http_fishchat_files_keep(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r, rc);
    }
}

#endif


static void
ngx_http_fishchat_files_stored(redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    ngx_str_t                       url;
    ngx_fishchat_conf_t            *fcf;
    ngx_fishchat_json_t             out;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 1)
    {
        ngx_http_fishchat_files_refused(r, ctx, "it");
        return;
    }

    ctx->stored = 1;
    ngx_fishchat_files_add(uploads, 1);
    ngx_fishchat_files_add(upload_bytes, ctx->size);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat files: file %V of \"%V\" stored: %O bytes, "
                  "sha256 %*s", &ctx->id, ngx_http_fishchat_files_owner(ctx),
                  ctx->size, (size_t) NGX_HTTP_FISHCHAT_FILES_SHA, ctx->sha);

    ngx_fishchat_json_init(&out, r->pool, 512);
    ngx_fishchat_json_fmt(&out, "{\"id\":\"%V\",\"sha256\":\"%*s\","
                          "\"size\":%O,\"type\":", &ctx->id,
                          (size_t) NGX_HTTP_FISHCHAT_FILES_SHA, ctx->sha,
                          ctx->size);
    ngx_fishchat_json_str(&out, ngx_http_fishchat_files_type(ctx));

    /* the owner's own link to it */

    if (ngx_fishchat_files_get_url(r->pool, fcf, &ctx->id, "", &url)
        != NGX_OK)
    {
        ngx_str_null(&url);
    }

    ngx_fishchat_json_fmt(&out, ",\"url\":");
    ngx_fishchat_json_str(&out, &url);
    ngx_fishchat_json_fmt(&out, "}" CRLF);

    ngx_http_fishchat_files_finish(r, ngx_fishchat_http_send(r,
                                                      NGX_HTTP_CREATED,
                                                      "application/json",
                                                      &out));
}


/* an upload that did not end frees its slot for another try */

void
ngx_http_fishchat_files_release(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *p;
    ngx_str_t                            args[6];
    ngx_fishchat_conf_t                 *fcf;
    ngx_fishchat_redis_t                *link;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    if (!ctx->claimed || ctx->stored) {
        return;
    }

    ctx->claimed = 0;
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);
    link = ngx_fishchat_redis_link();

    if (link == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat files: the upload of file %V did not end: its "
                  "slot is free again", &ctx->id);

    p = ngx_pnalloc(r->pool, 2 * fcf->redis_prefix.len + NGX_TIME_T_LEN
                             + NGX_HTTP_FISHCHAT_FILES_KEYS);
    if (p == NULL) {
        return;
    }

    args[5].data = p;
    p = ngx_sprintf(p, "%T", fcf->files_slot_ttl);
    args[5].len = p - args[5].data;

    args[0] = ctx->key;
    args[4].data = ctx->sha;
    args[4].len = ctx->reserved ? NGX_HTTP_FISHCHAT_FILES_SHA : 0;
    args[1] = ngx_fishchat_key(&p, "blob:", &args[4], "");
    args[2] = ngx_http_fishchat_files_key(&p, ":unlink");
    args[3].data = (u_char *) (ctx->reserved ? "1" : "0");
    args[3].len = 1;

    (void) ngx_fishchat_redis_eval(link, flcf->release, NULL, NULL, 3, 6,
                                   args);
}


/* Redis did not take a step of the upload: it ends, the slot is freed */

static void
ngx_http_fishchat_files_refused(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx, char *what)
{
    ngx_http_fishchat_files_release(r, ctx);
    ngx_http_fishchat_files_finish(r,
        ngx_fishchat_http_error(r, "files", NGX_HTTP_SERVICE_UNAVAILABLE,
                                "REDIS_UNAVAILABLE", "file %V: Redis did not "
                                "take %s", &ctx->id, what));
}
