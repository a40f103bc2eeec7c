
/*
 * FishChat for nginx: the files role's own declarations, shared by the
 * files location (ngx_http_fishchat_files_module.c) and its collector
 * (ngx_http_fishchat_files_collect.c).
 */


#ifndef _NGX_HTTP_FISHCHAT_FILES_H_INCLUDED_
#define _NGX_HTTP_FISHCHAT_FILES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_http_fishchat_files_probe.h"


#define NGX_HTTP_FISHCHAT_FILES_SHA    64          /* hex */

/* the fields of ngx_http_fishchat_files_get_lua, in its order */
#define NGX_HTTP_FISHCHAT_FILES_FIELDS 11

/* the room for the keys of a request: <prefix>{files}:<name>, blob */
#define NGX_HTTP_FISHCHAT_FILES_KEYS   (4 * 32 + NGX_HTTP_FISHCHAT_FILES_SHA)


/* a hash computed in a thread: its own pool, it may outlive the request */

typedef struct {
    ngx_pool_t                   *pool;
    ngx_http_request_t           *request;    /* NULL: the request is gone */
    u_char                        path[NGX_MAX_PATH];
    u_char                        sha[NGX_HTTP_FISHCHAT_FILES_SHA];
    off_t                         bytes;
    ngx_int_t                     rc;
    ngx_err_t                     err;

    /* a chunk of a resumable upload: appended to "path" first */
    u_char                        from[NGX_MAX_PATH];
    off_t                         first;
    ngx_uint_t                    chunk;
    ngx_uint_t                    whole;     /* the last chunk: hashed */
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
    ngx_uint_t                    reserved;   /* PUT: the content counted */
    ngx_uint_t                    fresh;      /* PUT: new to the store */
    ngx_uint_t                    stored;
    time_t                        exp;
    ngx_str_t                     sig;
    ngx_fishchat_redis_req_t     *req;
    ngx_http_fishchat_files_hash_t  *hash;
    ngx_http_fishchat_files_job_t   *job;
    ngx_str_t                     probed;     /* the info's probe fields */
    ngx_uint_t                    thumb;

    /* a PUT with Content-Range: bytes <first>-<last>/<size> or * /<size> */
    ngx_uint_t                    ranged;
    ngx_uint_t                    query;      /* bytes * /<size> */
    off_t                         first;
    off_t                         last;
    off_t                         range_size;
    ngx_str_t                     part;       /* <store>/.partial/<id> */

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
#define ngx_http_fishchat_files_received(ctx) (&(ctx)->field[10])


typedef struct {
    ngx_flag_t                    enabled;
    ngx_str_t                     pool_name;
    ngx_msec_t                    probe_timeout;
    ngx_msec_t                    collect;      /* 0: off */
    ngx_str_t                     store;        /* no final "/" */
#if (NGX_THREADS)
    ngx_thread_pool_t            *pool;
#endif
    ngx_fishchat_redis_script_t  *get;
    ngx_fishchat_redis_script_t  *claim;
    ngx_fishchat_redis_script_t  *reserve;
    ngx_fishchat_redis_script_t  *stored;
    ngx_fishchat_redis_script_t  *release;
    ngx_fishchat_redis_script_t  *progress;

    /* the collector's */
    ngx_fishchat_redis_script_t  *list;
    ngx_fishchat_redis_script_t  *judge;
    ngx_fishchat_redis_script_t  *take;
    ngx_fishchat_redis_script_t  *recheck;
} ngx_http_fishchat_files_loc_conf_t;


/* ngx_http_fishchat_files_module.c */
extern ngx_module_t  ngx_http_fishchat_files_module;

ngx_uint_t ngx_http_fishchat_files_is_sha(ngx_str_t *s);
ngx_int_t ngx_http_fishchat_files_eval(ngx_http_request_t *r,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt done,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args);
ngx_str_t ngx_http_fishchat_files_key(u_char **p, char *suffix);
ngx_uint_t ngx_http_fishchat_files_sig_differs(ngx_fishchat_conf_t *fcf,
    ngx_http_fishchat_files_ctx_t *ctx, ngx_str_t *type);
void ngx_http_fishchat_files_finish(ngx_http_request_t *r, ngx_int_t rc);
ngx_int_t ngx_http_fishchat_files_path(ngx_http_request_t *r, u_char *sha,
    ngx_str_t *path);

/* ngx_http_fishchat_files_upload.c */
extern char  ngx_http_fishchat_files_claim_lua[];
extern char  ngx_http_fishchat_files_release_lua[];
extern char  ngx_http_fishchat_files_reserve_lua[];
extern char  ngx_http_fishchat_files_stored_lua[];
extern char  ngx_http_fishchat_files_progress_lua[];

ngx_int_t ngx_http_fishchat_files_put_args(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
ngx_int_t ngx_http_fishchat_files_put(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);
void ngx_http_fishchat_files_release(ngx_http_request_t *r,
    ngx_http_fishchat_files_ctx_t *ctx);

/* ngx_http_fishchat_files_collect.c */
extern char  ngx_http_fishchat_files_list_lua[];
extern char  ngx_http_fishchat_files_judge_lua[];
extern char  ngx_http_fishchat_files_take_lua[];
extern char  ngx_http_fishchat_files_recheck_lua[];

ngx_int_t ngx_http_fishchat_files_collect_init(ngx_cycle_t *cycle,
    ngx_http_fishchat_files_loc_conf_t *flcf);
void ngx_http_fishchat_files_collect_exit(void);


#endif /* _NGX_HTTP_FISHCHAT_FILES_H_INCLUDED_ */
