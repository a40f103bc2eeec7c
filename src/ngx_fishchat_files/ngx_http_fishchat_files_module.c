
/*
 * FishChat for nginx: the files location (fishchat_files, docs/files.md).
 *
 * Every request names a file id; its record is read from Redis first.
 * A PUT is an upload (ngx_http_fishchat_files_upload.c).  GET and HEAD
 * /<location>/<id> hand the stored file to nginx's static module (Range,
 * ETag, sendfile) with the safety headers; /<location>/<id>/info is its
 * record as JSON and /<location>/<id>/thumb its thumbnail.  All of it
 * runs in the access phase, so that the static module of the same
 * location serves the file.  The directives, the signed links of
 * fishchat_files_access token, and the collector's start
 * (ngx_http_fishchat_files_collect.c) are here too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_http_fishchat_files.h"

#define NGX_HTTP_FISHCHAT_FILES_GET    0
#define NGX_HTTP_FISHCHAT_FILES_INFO   1
#define NGX_HTTP_FISHCHAT_FILES_PUT    2
#define NGX_HTTP_FISHCHAT_FILES_JPEG   3

#define NGX_HTTP_FISHCHAT_FILES_GONE   410         /* nginx names none */


static ngx_int_t ngx_http_fishchat_files_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_files_access(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_files_start(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_link(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_record(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_files_get(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static ngx_int_t ngx_http_fishchat_files_info(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
static void ngx_http_fishchat_files_cleanup(void *data);

static char *ngx_http_fishchat_files(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fishchat_files_collect(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_fishchat_files_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_fishchat_files_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fishchat_files_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_fishchat_files_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_fishchat_files_init_process(ngx_cycle_t *cycle);
static void ngx_http_fishchat_files_exit_process(ngx_cycle_t *cycle);


/* the files location whose store the collector keeps */

typedef struct {
    ngx_http_fishchat_files_loc_conf_t  *collector;
} ngx_http_fishchat_files_main_conf_t;


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

    { ngx_string("fishchat_files_collect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fishchat_files_collect,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fishchat_files_loc_conf_t, collect),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_files_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_fishchat_files_init,          /* postconfiguration */

    ngx_http_fishchat_files_create_main_conf, /* create main configuration */
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
    ngx_http_fishchat_files_init_process,  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_fishchat_files_exit_process,  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/*
 * KEYS: the file, the quarantine.  Its owner, name, type, size, created,
 * expires, state, sha256, probe (the info's fields of the probe), thumb
 * ("1": it has one), received (the bytes of a resumable upload so far),
 * and 1 when its content is quarantined; nil for a missing field, all
 * nil: no such file.
 */

static char  ngx_http_fishchat_files_get_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'owner', 'name', 'type', "
                         "'size', 'created', 'expires', 'state', 'sha256', "
                         "'probe', 'thumb', 'received') "
    "f[12] = 0 "
    "if f[8] and redis.call('SISMEMBER', KEYS[2], f[8]) == 1 then "
        "f[12] = 1 "
    "end "
    "return f";


/* the scripts of a files location, its uploads and its collector */

static ngx_fishchat_redis_script_slot_t  ngx_http_fishchat_files_scripts[] = {
    { ngx_http_fishchat_files_get_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, get) },
    { ngx_http_fishchat_files_claim_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, claim) },
    { ngx_http_fishchat_files_reserve_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, reserve) },
    { ngx_http_fishchat_files_stored_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, stored) },
    { ngx_http_fishchat_files_release_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, release) },
    { ngx_http_fishchat_files_progress_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, progress) },
    { ngx_http_fishchat_files_list_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, list) },
    { ngx_http_fishchat_files_judge_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, judge) },
    { ngx_http_fishchat_files_take_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, take) },
    { ngx_http_fishchat_files_recheck_lua,
      offsetof(ngx_http_fishchat_files_loc_conf_t, recheck) },
    { NULL, 0 }
};


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
    ngx_str_t                            args[2];
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_cleanup_t                  *cln;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    rc = (ctx->what == NGX_HTTP_FISHCHAT_FILES_PUT)
         ? ngx_http_fishchat_files_put_args(r, ctx)
         : ngx_http_fishchat_files_link(r, ctx);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    flcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_files_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fishchat_files_cleanup;
    cln->data = r;

    p = ngx_pnalloc(r->pool, 2 * fcf->redis_prefix.len + ctx->id.len
                             + NGX_HTTP_FISHCHAT_FILES_KEYS);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->key = ngx_fishchat_key(&p, "file:", &ctx->id, "");

    args[0] = ctx->key;
    args[1] = ngx_http_fishchat_files_key(&p, ":quarantine");

    rc = ngx_http_fishchat_files_eval(r, flcf->get,
                                      ngx_http_fishchat_files_record, 2, 2,
                                      args);
    if (rc != NGX_DONE) {
        return rc;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * With fishchat_files_access token, a download, its info and its
 * thumbnail need the signed link of the file's id
 * (ngx_fishchat_files_get_url()): "exp" not past and "sig" its
 * signature.  NGX_DECLINED: go on.
 */

static ngx_int_t
ngx_http_fishchat_files_link(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx)
{
    ngx_str_t             exp;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    if (fcf->files_access != NGX_FISHCHAT_FILES_TOKEN) {
        return NGX_DECLINED;
    }

    if (ngx_http_arg(r, (u_char *) "exp", 3, &exp) != NGX_OK
        || ngx_http_arg(r, (u_char *) "sig", 3, &ctx->sig) != NGX_OK
        || (ctx->exp = ngx_atotm(exp.data, exp.len)) == NGX_ERROR)
    {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "file %V is read with "
                                       "a signed link only", &ctx->id);
    }

    if (ngx_http_fishchat_files_sig_differs(fcf, ctx, NULL)) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "FORBIDDEN", "the link of file %V "
                                       "is not signed for it", &ctx->id);
    }

    if (ctx->exp < ngx_time()) {
        return ngx_fishchat_http_error(r, "files", NGX_HTTP_FORBIDDEN,
                                       "LINK_EXPIRED", "the link of file %V "
                                       "expired at %T", &ctx->id, ctx->exp);
    }

    return NGX_DECLINED;
}


/*
 * ctx->sig is not the signature of ctx->id and ctx->exp: of a download
 * link, or with "type" of the slot's PUT URL (compared in constant time)
 */

ngx_uint_t
ngx_http_fishchat_files_sig_differs(ngx_fishchat_conf_t *fcf,
    ngx_http_fishchat_files_ctx_t *ctx, ngx_str_t *type)
{
    ngx_int_t   rc;
    ngx_str_t   sig;
    ngx_uint_t  i, diff;
    u_char      sbuf[64];

    sig.data = sbuf;

    rc = type ? ngx_fishchat_files_sig(fcf, &ctx->id, ctx->size, type,
                                       ctx->exp, &sig)
              : ngx_fishchat_files_get_sig(fcf, &ctx->id, ctx->exp, &sig);

    if (rc != NGX_OK || sig.len != ctx->sig.len) {
        return 1;
    }

    diff = 0;

    for (i = 0; i < sig.len; i++) {
        diff |= sig.data[i] ^ ctx->sig.data[i];
    }

    return diff;
}


/* <prefix>{files}<suffix>: the keys of all files */

ngx_str_t
ngx_http_fishchat_files_key(u_char **p, char *suffix)
{
    static ngx_str_t  files = ngx_string("files");

    return ngx_fishchat_key(p, "", &files, suffix);
}


/*
 * A script for the request; the cleanup cancels it if the request goes.
 * NGX_DONE: under way; otherwise what to finalize the request with.
 */

ngx_int_t
ngx_http_fishchat_files_eval(ngx_http_request_t *r,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt done,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args)
{
    ngx_fishchat_redis_req_t       *req;
    ngx_http_fishchat_files_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fishchat_files_module);

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script, done, r,
                                  nkeys, nargs, args);
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
        || reply->elements != NGX_HTTP_FISHCHAT_FILES_FIELDS + 1)
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

    e = reply->element[NGX_HTTP_FISHCHAT_FILES_FIELDS];

    if (e->type == REDIS_REPLY_INTEGER && e->integer == 1) {
        ngx_http_fishchat_files_finish(r,
            ngx_fishchat_http_error(r, "files", NGX_HTTP_FISHCHAT_FILES_GONE,
                                    "QUARANTINED", "file %V: its content "
                                    "is quarantined", &ctx->id));
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

void
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

ngx_int_t
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

    if (ngx_fishchat_redis_scripts(cf, flcf, ngx_http_fishchat_files_scripts)
        != NGX_OK)
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
    conf->collect = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_fishchat_files_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_fishchat_files_loc_conf_t *prev = parent;
    ngx_http_fishchat_files_loc_conf_t *conf = child;

    u_char                               *p;
    ngx_path_t                           *path;
    ngx_http_core_loc_conf_t             *clcf;
    ngx_http_fishchat_files_main_conf_t  *fmcf;

    ngx_conf_merge_str_value(conf->pool_name, prev->pool_name, "default");
    ngx_conf_merge_msec_value(conf->probe_timeout, prev->probe_timeout,
                              10000);
    ngx_conf_merge_msec_value(conf->collect, prev->collect, 60000);

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

        /* the store: an alias, or the root and the location's name */

        conf->store.len = path->name.len + (clcf->alias ? 0 : clcf->name.len);
        conf->store.data = ngx_pnalloc(cf->pool, conf->store.len);
        if (conf->store.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(conf->store.data, path->name.data, path->name.len);

        if (!clcf->alias) {
            p = ngx_cpymem(p, clcf->name.data, clcf->name.len);
        }

        while (p > conf->store.data && p[-1] == '/') {
            p--;
        }

        conf->store.len = p - conf->store.data;
    }

    fmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_fishchat_files_module);

    if (conf->collect && conf->store.len && fmcf->collector == NULL) {
        fmcf->collector = conf;
    }

    return NGX_CONF_OK;
}


/* fishchat_files_collect <period> | off */

static char *
ngx_http_fishchat_files_collect(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_fishchat_files_loc_conf_t *flcf = conf;

    ngx_str_t  *value;

    if (flcf->collect != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        flcf->collect = 0;
        return NGX_CONF_OK;
    }

    flcf->collect = ngx_parse_time(&value[1], 0);

    if (flcf->collect == (ngx_msec_t) NGX_ERROR || flcf->collect < 1000) {
        return "takes a period of 1s or more, or \"off\"";
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_fishchat_files_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_fishchat_files_main_conf_t));
}


/* 64 lower-case hex digits: a content's name in the store */

ngx_uint_t
ngx_http_fishchat_files_is_sha(ngx_str_t *s)
{
    size_t  i;

    if (s->len != NGX_HTTP_FISHCHAT_FILES_SHA) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        if (!((s->data[i] >= '0' && s->data[i] <= '9')
              || (s->data[i] >= 'a' && s->data[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_fishchat_files_init(ngx_conf_t *cf)
{
    ngx_http_fishchat_files_probe_init();

    return ngx_fishchat_http_access(cf, ngx_http_fishchat_files_handler);
}


static ngx_int_t
ngx_http_fishchat_files_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fishchat_files_main_conf_t  *fmcf;

    fmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_fishchat_files_module);

    if (fmcf == NULL || fmcf->collector == NULL) {
        return NGX_OK;
    }

    return ngx_http_fishchat_files_collect_init(cycle, fmcf->collector);
}


static void
ngx_http_fishchat_files_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_fishchat_files_collect_exit();
}
