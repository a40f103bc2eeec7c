
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


#define NGX_HTTP_FISHCHAT_FILES_SHA    64          /* hex */


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

    /* the collector's */
    ngx_fishchat_redis_script_t  *list;
    ngx_fishchat_redis_script_t  *judge;
    ngx_fishchat_redis_script_t  *take;
    ngx_fishchat_redis_script_t  *recheck;
} ngx_http_fishchat_files_loc_conf_t;


/* ngx_http_fishchat_files_module.c */
ngx_uint_t ngx_http_fishchat_files_is_sha(ngx_str_t *s);

/* ngx_http_fishchat_files_collect.c */
extern char  ngx_http_fishchat_files_list_lua[];
extern char  ngx_http_fishchat_files_judge_lua[];
extern char  ngx_http_fishchat_files_take_lua[];
extern char  ngx_http_fishchat_files_recheck_lua[];

ngx_int_t ngx_http_fishchat_files_collect_init(ngx_cycle_t *cycle,
    ngx_http_fishchat_files_loc_conf_t *flcf);
void ngx_http_fishchat_files_collect_exit(void);


#endif /* _NGX_HTTP_FISHCHAT_FILES_H_INCLUDED_ */
