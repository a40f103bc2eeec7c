
/*
 * FishChat for nginx: the monitor role, private to its files.
 *
 * ngx_http_fishchat_monitor_module.c: the views (dashboard, status.json,
 * cluster, metrics); ngx_http_fishchat_monitor_files.c: the figures of the
 * files role.
 */


#ifndef _NGX_HTTP_FISHCHAT_MONITOR_H_INCLUDED_
#define _NGX_HTTP_FISHCHAT_MONITOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


/*
 * A family of Prometheus: one figure at "offset" of a block of the
 * counters zone (a worker's slot, a server block's counters, the node's
 * media or files)
 */

typedef struct {
    char                           *name;
    char                           *type;
    char                           *help;
    size_t                          offset;
} ngx_http_fishchat_monitor_metric_t;


/* ngx_http_fishchat_monitor_files.c */

extern ngx_http_fishchat_monitor_metric_t
    ngx_http_fishchat_monitor_files_metrics[];


#endif /* _NGX_HTTP_FISHCHAT_MONITOR_H_INCLUDED_ */
