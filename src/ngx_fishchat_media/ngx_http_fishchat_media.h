
/*
 * FishChat for nginx: the media role, private to its files.
 *
 * ngx_http_fishchat_media_module.c: directives, nginx-rtmp's hooks, the
 * HLS and recording locations; ngx_http_fishchat_media_remux.c: a
 * recording remuxed into MP4 with libavformat, in a thread.
 */


#ifndef _NGX_HTTP_FISHCHAT_MEDIA_H_INCLUDED_
#define _NGX_HTTP_FISHCHAT_MEDIA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


/* a recording to remux: set on the event loop, done in a thread */

typedef struct {
    ngx_pool_t                 *pool;       /* the task's, freed with it */
    ngx_str_t                   stream;
    u_char                      in[NGX_MAX_PATH];
    u_char                      out[NGX_MAX_PATH];
    u_char                      tmp[NGX_MAX_PATH];
    off_t                       max_size;
    time_t                      max_duration;
    uint64_t                    deadline;   /* Unix ms */
    ngx_fishchat_redis_script_t  *notice;   /* tells the conversation */

    /* the results */
    ngx_int_t                   rc;
    double                      duration;   /* s */
    off_t                       bytes;
    u_char                      err[128];
} ngx_http_fishchat_media_remux_t;


/* ngx_http_fishchat_media_remux.c */

void ngx_http_fishchat_media_remux_init(void);
void ngx_http_fishchat_media_remux(void *data, ngx_log_t *log);


#endif /* _NGX_HTTP_FISHCHAT_MEDIA_H_INCLUDED_ */
