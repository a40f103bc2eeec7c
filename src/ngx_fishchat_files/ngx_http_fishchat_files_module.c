
/*
 * FishChat for nginx: the files location (fishchat_files, docs/files.md).
 *
 * PUT /<location>/<id>?exp=&sig= takes the upload of a slot made by
 * FILE_SLOT: the signature, the size and the type of the slot are
 * checked, the slot is claimed in Redis (one upload at a time), the body
 * goes to a temporary file, its SHA-256 is computed in a thread, and the
 * file is renamed into the store as <sha256[0..1]>/<sha256>: a file of
 * the store is always whole, and the same bytes are stored once.
 * GET and HEAD /<location>/<id> look the id up and hand the stored file
 * to nginx's static module (Range, ETag, sendfile) with the safety
 * headers; /<location>/<id>/info is its record as JSON.  All of it runs
 * in the access phase, so that the static module of the same location
 * serves the file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_http_fishchat_files_probe.h"

#if (NGX_OPENSSL)
#include <openssl/evp.h>
#endif


#define NGX_HTTP_FISHCHAT_FILES_GET    0
#define NGX_HTTP_FISHCHAT_FILES_INFO   1
#define NGX_HTTP_FISHCHAT_FILES_PUT    2
#define NGX_HTTP_FISHCHAT_FILES_JPEG   3

#define NGX_HTTP_FISHCHAT_FILES_SHA    64          /* hex */

/* the fields of ngx_http_fishchat_files_get_lua, in its order */
#define NGX_HTTP_FISHCHAT_FILES_FIELDS 10


typedef struct {
    ngx_flag_t                    enabled;
    ngx_str_t                     pool_name;
    ngx_msec_t                    probe_timeout;
#if (NGX_THREADS)
    ngx_thread_pool_t            *pool;
#endif
    ngx_fishchat_redis_script_t  *get;
    ngx_fishchat_redis_script_t  *claim;
    ngx_fishchat_redis_script_t  *stored;
    ngx_fishchat_redis_script_t  *release;
} ngx_http_fishchat_files_loc_conf_t;


/* a hash computed in a thread: its own pool, it may outlive the request */

typedef struct {
    ngx_pool_t                   *pool;
    ngx_http_request_t           *request;    /* NULL: the request is gone */
    u_char                        path[NGX_MAX_PATH];
    u_char                        sha[NGX_HTTP_FISHCHAT_FILES_SHA];
    off_t                         bytes;
    ngx_int_t                     rc;
    ngx_err_t                     err;
} ngx_http_fishchat_files_hash_t;


/* a probe in a thread: the task's own pool, it may outlive the request */

typedef struct {
    ngx_pool_t                   *pool;
    ngx_http_request_t           *request;    /* NULL: the request is gone */
    ngx_http_fishchat_files_probe_t  *probe;
} ngx_http_fishchat_files_job_t;


typedef struct {
    ngx_str_t                     id;
    ngx_str_t                     key;        /* P file:{<id>} */
    ngx_uint_t                    what;
    ngx_uint_t                    serve;      /* GET: to the static module */
    ngx_uint_t                    claimed;    /* PUT: released on failure */
    ngx_uint_t                    stored;
    time_t                        exp;
    ngx_str_t                     sig;
    ngx_fishchat_redis_req_t     *req;
    ngx_http_fishchat_files_hash_t  *hash;
    ngx_http_fishchat_files_job_t   *job;
    ngx_str_t                     probed;     /* the info's probe fields */
    ngx_uint_t                    thumb;

    /* the record */
    ngx_str_t                     field[NGX_HTTP_FISHCHAT_FILES_FIELDS];
    off_t                         size;
    u_char                        sha[NGX_HTTP_FISHCHAT_FILES_SHA];
} ngx_http_fishchat_files_ctx_t;

#define ngx_http_fishchat_files_owner(ctx)    (&(ctx)->field[0])
#define ngx_http_fishchat_files_name(ctx)     (&(ctx)->field[1])
#define ngx_http_fishchat_files_type(ctx)     (&(ctx)->field[2])
#define ngx_http_fishchat_files_state(ctx)    (&(ctx)->field[6])
#define ngx_http_fishchat_files_sha(ctx)      (&(ctx)->field[7])
#define ngx_http_fishchat_files_fields(ctx)   (&(ctx)->field[8])
#define ngx_http_fishchat_files_thumbed(ctx)  (&(ctx)->field[9])


static ngx_int_t ngx_http_fishchat_files_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_files_access(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_files_start(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_put_args(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_eval(ngx_http_request_t *r,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt done,
    ngx_uint_t nargs, ngx_str_t *args);
static void ngx_http_fishchat_files_record(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_files_get(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_info(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_put(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_claimed(redisReply *reply, void *data);
static void ngx_http_fishchat_files_body(ngx_http_request_t *r);
#if (NGX_THREADS && NGX_OPENSSL)
static void ngx_http_fishchat_files_sha256(void *data, ngx_log_t *log);
static void ngx_http_fishchat_files_hashed(ngx_event_t *ev);
#endif
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
static void ngx_http_fishchat_files_release(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_cleanup(void *data);
static void ngx_http_fishchat_files_finish(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_fishchat_files_path(ngx_http_request_t *r,
    u_char *sha, ngx_str_t *path);

static char *ngx_http_fishchat_files(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_fishchat_files_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fishchat_files_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_fishchat_files_init(ngx_conf_t *cf);


static ngx_command_t  ngx_http_fishchat_files_commands[] = {

    { ngx_string("fishchat_files"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fishchat_files,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_files_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_files_loc_conf_t, pool_name),
      NULL },

    { ngx_string("fishchat_files_probe_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_files_loc_conf_t, probe_timeout),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_files_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_fishchat_files_init,          /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fishchat_files_create_loc_conf, /* create location configuration */
    ngx_http_fishchat_files_merge_loc_conf /* merge location configuration */
};


ngx_module_t  ngx_http_fishchat_files_module = {
    NGX_MODULE_V1,
    &ngx_http_fishchat_files_module_ctx,   /* module context */
    ngx_http_fishchat_files_commands,      /* module directives */
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


/*
 * KEYS: the file.  Its owner, name, type, size, created, expires, state,
 * sha256, probe (the info's fields of the probe) and thumb ("1": it has
 * one); nil for a missing field, all nil: no such file.
 */

static char  ngx_http_fishchat_files_get_lua[] =
    "return redis.call('HMGET', KEYS[1], 'owner', 'name', 'type', 'size', "
                      "'created', 'expires', 'state', 'sha256', 'probe', "
                      "'thumb')";

/* KEYS: the file.  1 when its slot was free and is now being uploaded */

static char  ngx_http_fishchat_files_claim_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'slot' then return 0 end "
    "redis.call('HSET', KEYS[1], 'state', 'uploading') "
    "return 1";

/* KEYS: the file.  An upload that did not end: the slot is free again */

static char  ngx_http_fishchat_files_release_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') == 'uploading' then "
        "redis.call('HSET', KEYS[1], 'state', 'slot') "
    "end";

/*
 * KEYS: the file, the owner's files.  ARGV: the sha256, the size, when it
 * expires (Unix s), its life (s), the probe's fields, "1" for a
 * thumbnail.  The file is ready; the owner's stored bytes grow.
 */

static char  ngx_http_fishchat_files_stored_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= 'uploading' then "
        "return 0 "
    "end "
    "redis.call('HSET', KEYS[1], 'state', 'ready', 'sha256', ARGV[1], "
               "'expires', ARGV[3], 'probe', ARGV[5], 'thumb', ARGV[6]) "
    "redis.call('EXPIRE', KEYS[1], ARGV[4]) "
    "redis.call('HINCRBY', KEYS[2], 'used', ARGV[2]) "
    "return 1";


/*
 * The access phase of a files location: the first pass starts the work
 * and waits (NGX_DONE); a GET comes back once its file is known, and goes
 * on to the static module with the stored file's URI (NGX_DECLINED).  An
 * answer made at once ends the phases here.
 */

static ngx_int_t
ngx_http_fishchat_files_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_fishchat_files_access(r);

    if (rc == NGX_DONE || rc == NGX_DECLINED) {
        return rc;
    }

    ngx_fishchat_files_answered(r, rc);
    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_fishchat_files_access(ngx_http_request_t *r)
{
    u_char                              *slash;
    ngx_str_t                            rest;
    ngx_uint_t                           i;
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_fishchat_files_ctx_t       *ctx;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    if (!flcf->enabled) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);

    if (ctx) {
        /* the second pass of a GET: the static module serves the file */
        return ctx->serve ? NGX_DECLINED : NGX_DONE;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fishchat_files_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_fishchat_files_module);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->uri.len <= clcf->name.len) {
        goto not_found;
    }

    /* <id> or <id>/info */

    rest.data = r->uri.data + clcf->name.len;
    rest.len = r->uri.len - clcf->name.len;

    slash = ngx_strlchr(rest.data, rest.data + rest.len, '/');

    ctx->id.data = rest.data;
    ctx->id.len = slash ? (size_t) (slash - rest.data) : rest.len;

    if (ctx->id.len != NGX_FISHCHAT_FILE_ID_LEN) {
        goto not_found;
    }

    for (i = 0; i < ctx->id.len; i++) {
        if (!((ctx->id.data[i] >= '0' && ctx->id.data[i] <= '9')
              || (ctx->id.data[i] >= 'a' && ctx->id.data[i] <= 'f')))
        {
            goto not_found;
        }
    }

    if (slash == NULL) {
        ctx->what = (r->method == NGX_HTTP_PUT) ? NGX_HTTP_FISHCHAT_FILES_PUT
                                                : NGX_HTTP_FISHCHAT_FILES_GET;

    } else if (rest.data + rest.len - slash == sizeof("/info") - 1
               && ngx_strncmp(slash, "/info", sizeof("/info") - 1) == 0)
    {
        ctx->what = NGX_HTTP_FISHCHAT_FILES_INFO;

    } else if (rest.data + rest.len - slash == sizeof("/thumb") - 1
               && ngx_strncmp(slash, "/thumb", sizeof("/thumb") - 1) == 0)
    {
        ctx->what = NGX_HTTP_FISHCHAT_FILES_JPEG;

    } else {
        goto not_found;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
        && !(r->method == NGX_HTTP_PUT
             && ctx->what == NGX_HTTP_FISHCHAT_FILES_PUT))
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_ALLOWED,
                                       "METHOD_NOT_ALLOWED", "%V of a file",
                                       &r->method_name);
    }

    return ngx_http_fishchat_files_start(r, ctx);

not_found:

    return ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_FOUND,
                                   "NO_SUCH_FILE", "no file at \"%V\"",
                                   &r->uri);
}


/* the file's record is asked of Redis; the request waits for it */

static ngx_int_t
ngx_http_fishchat_files_start(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *p;
    ngx_int_t                            rc;
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_cleanup_t                  *cln;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    if (ctx->what == NGX_HTTP_FISHCHAT_FILES_PUT) {
        rc = ngx_http_fishchat_files_put_args(r, ctx);
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fishchat_files_cleanup;
    cln->data = r;

    p = ngx_pnalloc(r->pool, fcf->redis_prefix.len + ctx->id.len + 16);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->key = ngx_fishchat_key(&p, "file:", &ctx->id, "");

    rc = ngx_http_fishchat_files_eval(r, flcf->get,
                                      ngx_http_fishchat_files_record, 1,
                                      &ctx->key);
    if (rc != NGX_DONE) {
        return rc;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * exp and sig of a PUT URL, and its Content-Length: required, and not
 * over fishchat_files_max_size.  NGX_DECLINED: go on; otherwise what to
 * finalize the request with.
 */

static ngx_int_t
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

    if (ctx->exp < ngx_time()) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "SLOT_EXPIRED", "the slot of file %V "
                                       "expired at %T", &ctx->id, ctx->exp);
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
 * A script for the request; the cleanup cancels it if the request goes.
 * NGX_DONE: under way; otherwise what to finalize the request with.
 */

static ngx_int_t
ngx_http_fishchat_files_eval(ngx_http_request_t *r,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt done,
    ngx_uint_t nargs, ngx_str_t *args)
{
    ngx_fishchat_redis_req_t       *req;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script, done, r,
                                  nargs > 1 ? 2 : 1, nargs, args);
    if (req == NULL) {
        return ngx_fishchat_http_error(r, "files",
                                       NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "REDIS_UNAVAILABLE",
                                       "Redis is unavailable");
    }

    ctx->req = req;

    if (!r->reading_body && r->headers_in.content_length_n <= 0) {
        /* a client that goes away is noticed */
        r->read_event_handler = ngx_http_test_reading;
    }

    return NGX_DONE;
}


static void
ngx_http_fishchat_files_record(redisReply *reply, void *data)
{
    ngx_http_request_t *r = data;

    size_t                          i;
    ngx_int_t                       rc;
    redisReply                     *e;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_HTTP_FISHCHAT_FILES_FIELDS)
    {
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "REDIS_UNAVAILABLE", "Redis is "
                                    "unavailable"));
        return;
    }

    for (i = 0; i < NGX_HTTP_FISHCHAT_FILES_FIELDS; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        ctx->field[i].data = ngx_pnalloc(r->pool, e->len + 1);
        if (ctx->field[i].data == NULL) {
            ngx_http_fishchat_files_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_memcpy(ctx->field[i].data, e->str, e->len);
        ctx->field[i].len = e->len;
    }

    ctx->size = ngx_atoof(ctx->field[3].data, ctx->field[3].len);

    if (ngx_http_fishchat_files_owner(ctx)->len == 0 || ctx->size <= 0) {
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_FOUND,
                                    "NO_SUCH_FILE", "no file %V", &ctx->id));
        return;
    }

    switch (ctx->what) {

    case NGX_HTTP_FISHCHAT_FILES_PUT:
        rc = ngx_http_fishchat_files_put(r, ctx);
        break;

    case NGX_HTTP_FISHCHAT_FILES_INFO:
        rc = ngx_http_fishchat_files_info(r, ctx);
        break;

    default:
        rc = ngx_http_fishchat_files_get(r, ctx);
    }

    if (rc != NGX_DONE) {
        ngx_http_fishchat_files_finish(r, rc);
    }
}


/*
 * A stored file goes to the static module, with its type, the headers
 * that keep a browser from running it, and an attachment's name but for
 * images, audio and video
 */

static ngx_int_t
ngx_http_fishchat_files_get(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                    *p;
    ngx_str_t                  v, *type, *name, *sha;
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    static ngx_str_t  jpeg = ngx_string("image/jpeg");

    type = ngx_http_fishchat_files_type(ctx);
    name = ngx_http_fishchat_files_name(ctx);
    sha = ngx_http_fishchat_files_sha(ctx);

    if (ngx_http_fishchat_files_state(ctx)->len != 5
        || ngx_strncmp(ngx_http_fishchat_files_state(ctx)->data, "ready", 5)
           != 0
        || sha->len != NGX_HTTP_FISHCHAT_FILES_SHA)
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_FOUND,
                                       "NO_SUCH_FILE", "file %V is not "
                                       "uploaded", &ctx->id);
    }

    if (ctx->what == NGX_HTTP_FISHCHAT_FILES_JPEG) {
        if (ngx_http_fishchat_files_thumbed(ctx)->len != 1
            || ngx_http_fishchat_files_thumbed(ctx)->data[0] != '1')
        {
            return ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_FOUND,
                                           "NO_SUCH_FILE", "file %V has no "
                                           "thumbnail", &ctx->id);
        }

        type = &jpeg;
    }

    ngx_str_set(&v, "nosniff");

    if (ngx_fishchat_http_header(r, "X-Content-Type-Options", &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&v, "sandbox; default-src 'none'");

    if (ngx_fishchat_http_header(r, "Content-Security-Policy", &v)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(ngx_strncmp(type->data, "image/", 6) == 0
          || ngx_strncmp(type->data, "audio/", 6) == 0
          || ngx_strncmp(type->data, "video/", 6) == 0))
    {
        /* RFC 6266: filename*=UTF-8''<percent-encoded> */

        v.data = ngx_pnalloc(r->pool, sizeof("attachment; filename*=UTF-8''")
                                      + 3 * name->len);
        if (v.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p = ngx_cpymem(v.data, "attachment; filename*=UTF-8''",
                       sizeof("attachment; filename*=UTF-8''") - 1);
        p = (u_char *) ngx_escape_uri(p, name->data, name->len,
                                      NGX_ESCAPE_ARGS);
        v.len = p - v.data;

        if (ngx_fishchat_http_header(r, "Content-Disposition", &v)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;

    /* the static module serves <location>/<sha[0..1]>/<sha> */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    v.data = ngx_pnalloc(r->pool, clcf->name.len + 3 + sha->len
                                  + sizeof(".jpg"));
    if (v.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%V%*s/%V%s", &clcf->name, (size_t) 2,
                        sha->data, sha,
                        ctx->what == NGX_HTTP_FISHCHAT_FILES_JPEG
                        ? ".jpg" : "")
            - v.data;

    r->uri = v;
    r->exten.len = 0;
    ctx->serve = 1;
    ngx_fishchat_files_add(downloads, 1);

    /* the wait is over: the phases go on */

    c = r->connection;

    r->main->count--;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);

    return NGX_DONE;
}


/* GET <id>/info: the record of a stored file */

static ngx_int_t
ngx_http_fishchat_files_info(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    ngx_fishchat_json_t  out;

    if (ngx_http_fishchat_files_sha(ctx)->len != NGX_HTTP_FISHCHAT_FILES_SHA)
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_NOT_FOUND,
                                       "NO_SUCH_FILE", "file %V is not "
                                       "uploaded", &ctx->id);
    }

    ngx_fishchat_json_init(&out, r->pool, 1024);

    ngx_fishchat_json_fmt(&out, "{\"id\":\"%V\",\"name\":", &ctx->id);
    ngx_fishchat_json_str(&out, ngx_http_fishchat_files_name(ctx));
    ngx_fishchat_json_fmt(&out, ",\"type\":");
    ngx_fishchat_json_str(&out, ngx_http_fishchat_files_type(ctx));
    ngx_fishchat_json_fmt(&out, ",\"size\":%O,\"sha256\":\"%V\","
                          "\"created\":%T,\"expires\":%T%V}" CRLF,
                          ctx->size, ngx_http_fishchat_files_sha(ctx),
                          ngx_atotm(ctx->field[4].data, ctx->field[4].len)
                          / 1000,
                          ngx_atotm(ctx->field[5].data, ctx->field[5].len),
                          ngx_http_fishchat_files_fields(ctx));

    return ngx_fishchat_http_send(r, NGX_HTTP_OK, "application/json", &out);
}


/*
 * A PUT whose URL is the slot's (signature of its id, size, type and
 * expiry), with its size and type, to a slot not used yet: the slot is
 * claimed before the body is read
 */

static ngx_int_t
ngx_http_fishchat_files_put(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    u_char                              *last;
    ngx_uint_t                           i, diff;
    ngx_str_t                            sig, type, *have;
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_loc_conf_t  *flcf;
    u_char                               sbuf[64];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    type = *ngx_http_fishchat_files_type(ctx);
    sig.data = sbuf;

    if (ngx_fishchat_files_sig(fcf, &ctx->id, ctx->size, &type, ctx->exp,
                               &sig)
        != NGX_OK
        || sig.len != ctx->sig.len)
    {
        diff = 1;

    } else {
        /* in constant time */

        diff = 0;

        for (i = 0; i < sig.len; i++) {
            diff |= sig.data[i] ^ ctx->sig.data[i];
        }
    }

    if (diff) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "the PUT URL of file %V "
                                       "is not its slot's", &ctx->id);
    }

    if (r->headers_in.content_length_n != ctx->size) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                       "BAD_REQUEST", "file %V is %O bytes, "
                                       "not %O", &ctx->id, ctx->size,
                                       r->headers_in.content_length_n);
    }

    /* the type without parameters, as FILE_SLOT lower-cased it */

    if (r->headers_in.content_type) {
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

    if (ngx_http_fishchat_files_state(ctx)->len != 4) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_CONFLICT,
                                       "SLOT_USED", "file %V is uploaded "
                                       "or being uploaded", &ctx->id);
    }

    return ngx_http_fishchat_files_eval(r, flcf->claim,
                                        ngx_http_fishchat_files_claimed, 1,
                                        &ctx->key);
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
                                    "SLOT_USED", "file %V is uploaded or "
                                    "being uploaded", &ctx->id));
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
    ngx_pool_t                          *pool;
    ngx_temp_file_t                     *tf;
    ngx_thread_task_t                   *task;
    ngx_http_fishchat_files_ctx_t       *ctx;
    ngx_http_fishchat_files_hash_t      *h;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    tf = r->request_body ? r->request_body->temp_file : NULL;

    if (tf == NULL || tf->file.name.len >= NGX_MAX_PATH
        || tf->file.offset != ctx->size)
    {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_finalize_request(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_BAD_REQUEST,
                                    "BAD_REQUEST", "file %V: the body is "
                                    "not the slot's %O bytes", &ctx->id,
                                    ctx->size));
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
    ngx_cpystrn(h->path, tf->file.name.data, tf->file.name.len + 1);

    task->handler = ngx_http_fishchat_files_sha256;
    task->event.handler = ngx_http_fishchat_files_hashed;
    task->event.data = h;
    task->event.log = ngx_cycle->log;

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

/* the thread's work: the SHA-256 of the temporary file, in hex */

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


/* back on the event loop: into the store */

static void
ngx_http_fishchat_files_hashed(ngx_event_t *ev)
{
    ngx_http_fishchat_files_hash_t *h = ev->data;

    ngx_int_t                       rc;
    ngx_http_request_t             *r;
    ngx_http_fishchat_files_ctx_t  *ctx;

    r = h->request;

    if (r == NULL) {
        /* the request went meanwhile (its cleanup freed the slot) */
        ngx_destroy_pool(h->pool);
        return;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->hash = NULL;

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

    rc = ngx_http_fishchat_files_store(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r, rc);
    }
}

#endif


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
    ngx_str_t         path;
    ngx_file_info_t   fi;
    ngx_temp_file_t  *tf;

    tf = r->request_body->temp_file;

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

        if (ngx_rename_file(tf->file.name.data, path.data) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                          ngx_rename_file_n " \"%V\" to \"%s\" failed "
                          "(client_body_temp_path must be on the file "
                          "system of the store)", &tf->file.name, path.data);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        (void) ngx_change_file_access(path.data, 0644);

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fishchat files: \"%s\" is stored already", path.data);
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
    ngx_str_t                            args[8];
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_loc_conf_t  *flcf;
    u_char                               size[NGX_OFF_T_LEN];
    u_char                               expires[NGX_TIME_T_LEN];
    u_char                               ttl[NGX_TIME_T_LEN];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    p = ngx_pnalloc(r->pool, fcf->redis_prefix.len
                             + ngx_http_fishchat_files_owner(ctx)->len + 16);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = ctx->key;
    args[1] = ngx_fishchat_key(&p, "files:", ngx_http_fishchat_files_owner(ctx),
                               "");
    args[2].data = ctx->sha;
    args[2].len = NGX_HTTP_FISHCHAT_FILES_SHA;
    args[3].data = size;
    args[3].len = ngx_sprintf(size, "%O", ctx->size) - size;
    args[4].data = expires;
    args[4].len = ngx_sprintf(expires, "%T", ngx_time() + fcf->files_ttl)
                  - expires;
    args[5].data = ttl;
    args[5].len = ngx_sprintf(ttl, "%T", fcf->files_ttl) - ttl;
    args[6] = ctx->probed;
    args[7].data = (u_char *) (ctx->thumb ? "1" : "0");
    args[7].len = 1;

    return ngx_http_fishchat_files_eval(r, flcf->stored,
                                        ngx_http_fishchat_files_stored, 8,
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
    task->event.handler = ngx_http_fishchat_files_probed;
    task->event.data = job;
    task->event.log = ngx_cycle->log;

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

    ngx_fishchat_conf_t            *fcf;
    ngx_fishchat_json_t             out;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);
    ctx->req = NULL;
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 1)
    {
        ngx_http_fishchat_files_release(r, ctx);
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "REDIS_UNAVAILABLE", "file %V: Redis did "
                                    "not take it", &ctx->id));
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
    ngx_fishchat_json_fmt(&out, ",\"url\":\"%V/%V\"}" CRLF, &fcf->files_url,
                          &ctx->id);

    ngx_http_fishchat_files_finish(r, ngx_fishchat_http_send(r,
                                                      NGX_HTTP_CREATED,
                                                      "application/json",
                                                      &out));
}


/* an upload that did not end frees its slot for another try */

static void
ngx_http_fishchat_files_release(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    ngx_fishchat_redis_t                *link;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    if (!ctx->claimed || ctx->stored) {
        return;
    }

    ctx->claimed = 0;

    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);
    link = ngx_fishchat_redis_link();

    if (link == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat files: the upload of file %V did not end: its "
                  "slot is free again", &ctx->id);

    (void) ngx_fishchat_redis_eval(link, flcf->release, NULL, NULL, 1, 1,
                                   &ctx->key);
}


/* the request ends, maybe early: what it waits for is let go */

static void
ngx_http_fishchat_files_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);

    if (ctx == NULL) {
        return;
    }

    if (ctx->req) {
        ngx_fishchat_redis_cancel(ctx->req);
        ctx->req = NULL;
    }

    if (ctx->hash) {
        ctx->hash->request = NULL;
        ctx->hash = NULL;
    }

    if (ctx->job) {
        ctx->job->request = NULL;
        ctx->job = NULL;
    }

    ngx_http_fishchat_files_release(r, ctx);
}


/* the end of a wait: the answer "rc" is the request's last */

static void
ngx_http_fishchat_files_finish(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_fishchat_files_answered(r, rc);
    r->main->count--;
    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the stored file of "sha": the location's root or alias and <xx>/<sha> */

static ngx_int_t
ngx_http_fishchat_files_path(ngx_http_request_t *r, u_char *sha,
    ngx_str_t *path)
{
    size_t                     root;
    ngx_str_t                  uri;
    u_char                    *last;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    uri = r->uri;

    r->uri.len = clcf->name.len + 3 + NGX_HTTP_FISHCHAT_FILES_SHA;
    r->uri.data = ngx_pnalloc(r->pool, r->uri.len);
    if (r->uri.data == NULL) {
        r->uri = uri;
        return NGX_ERROR;
    }

    ngx_sprintf(r->uri.data, "%V%*s/%*s", &clcf->name, (size_t) 2, sha,
                (size_t) NGX_HTTP_FISHCHAT_FILES_SHA, sha);

    last = ngx_http_map_uri_to_path(r, path, &root, 0);

    r->uri = uri;

    if (last == NULL) {
        return NGX_ERROR;
    }

    path->len = last - path->data;

    return NGX_OK;
}


static char *
ngx_http_fishchat_files(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fishchat_files_loc_conf_t *flcf = conf;

    if (flcf->enabled != NGX_CONF_UNSET) {
        return "is duplicate";
    }

#if !(NGX_THREADS && NGX_OPENSSL)

    return "needs nginx built --with-threads and with OpenSSL: uploads are "
           "hashed in a thread pool";

#else

    flcf->enabled = 1;

    flcf->get = ngx_fishchat_redis_script(cf,
                                          ngx_http_fishchat_files_get_lua);
    flcf->claim = ngx_fishchat_redis_script(cf,
                                          ngx_http_fishchat_files_claim_lua);
    flcf->stored = ngx_fishchat_redis_script(cf,
                                          ngx_http_fishchat_files_stored_lua);
    flcf->release = ngx_fishchat_redis_script(cf,
                                        ngx_http_fishchat_files_release_lua);

    if (flcf->get == NULL || flcf->claim == NULL || flcf->stored == NULL
        || flcf->release == NULL)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#endif
}


static void *
ngx_http_fishchat_files_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fishchat_files_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fishchat_files_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->pool_name = { 0, NULL };
     *     conf->get = NULL; ...
     */

    conf->enabled = NGX_CONF_UNSET;
    conf->probe_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_fishchat_files_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_fishchat_files_loc_conf_t *prev = parent;
    ngx_http_fishchat_files_loc_conf_t *conf = child;

    ngx_path_t                *path;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_str_value(conf->pool_name, prev->pool_name, "default");
    ngx_conf_merge_msec_value(conf->probe_timeout, prev->probe_timeout,
                              10000);

    if (conf->enabled != 1) {
        conf->enabled = 0;
        return NGX_CONF_OK;
    }

#if (NGX_THREADS)

    conf->pool = ngx_thread_pool_add(cf, &conf->pool_name);
    if (conf->pool == NULL) {
        return NGX_CONF_ERROR;
    }

#endif

    /* the store is made at start, for the workers' user, like temp paths */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->root.len && clcf->root_lengths == NULL) {
        path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
        if (path == NULL) {
            return NGX_CONF_ERROR;
        }

        path->name = clcf->root;

        if (path->name.len > 1 && path->name.data[path->name.len - 1] == '/')
        {
            path->name.len--;
        }

        path->conf_file = cf->conf_file->file.name.data;
        path->line = cf->conf_file->line;

        if (ngx_add_path(cf, &path) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_fishchat_files_init(ngx_conf_t *cf)
{
    ngx_http_fishchat_files_probe_init();

    return ngx_fishchat_http_access(cf, ngx_http_fishchat_files_handler);
}
