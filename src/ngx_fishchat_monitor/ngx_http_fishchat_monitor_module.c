
/*
 * FishChat for nginx: the monitor role.
 *
 * "fishchat_monitor;" in a location serves the status of this node and of
 * the cluster (see docs/monitor.md):
 *
 *     <location>/              the dashboard (HTML, refreshes itself)
 *     <location>/status.json   this node: every worker and server block
 *     <location>/cluster       the live msg servers of every node
 *     <location>/metrics       this node in the Prometheus text format
 *
 * or the view that "?format=" or the directive's parameter names.
 *
 * This node's figures come from the counters zone, without a Redis round
 * trip: each worker writes its gauges (Redis links and round trip,
 * subscriptions, output queues) into its slot every second.  Only the
 * cluster view asks Redis, and the request waits for the reply without
 * blocking the worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <jansson.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_http.h"
#include "ngx_fishchat_lua.h"
#include "ngx_http_fishchat_monitor.h"

/* the page, made into a C string from dashboard.html (see config.make) */
#include "ngx_http_fishchat_monitor_dashboard.h"


#define NGX_HTTP_FISHCHAT_MONITOR_AUTO        0
#define NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD   1
#define NGX_HTTP_FISHCHAT_MONITOR_STATUS      2
#define NGX_HTTP_FISHCHAT_MONITOR_CLUSTER     3
#define NGX_HTTP_FISHCHAT_MONITOR_METRICS     4

#define NGX_HTTP_FISHCHAT_MONITOR_BUF         16384

/* how often each worker publishes its gauges and pings Redis */
#define NGX_HTTP_FISHCHAT_MONITOR_PERIOD      1000

/* the most msg servers the cluster view lists */
#define NGX_HTTP_FISHCHAT_MONITOR_CLUSTER_MAX 1000


typedef struct {
    ngx_flag_t                      enabled;
    ngx_fishchat_redis_script_t    *cluster;
} ngx_http_fishchat_monitor_main_conf_t;


typedef struct {
    ngx_uint_t                      view;
} ngx_http_fishchat_monitor_loc_conf_t;




/* a live worker of this node, as read from the zone */

typedef struct {
    ngx_uint_t                      n;
    ngx_fishchat_slot_t            *slot;
    ngx_fishchat_counters_t        *servers;
    ngx_fishchat_counters_t         sum;
} ngx_http_fishchat_monitor_live_t;


/* a request waiting for the cluster view */

typedef struct {
    ngx_http_request_t             *request;
    ngx_fishchat_redis_req_t       *req;
    unsigned                        waiting:1;
} ngx_http_fishchat_monitor_ctx_t;


typedef struct {
    ngx_str_t                       node;
    ngx_str_t                       address;
    ngx_int_t                       sessions;
    ngx_int_t                       ttl;
} ngx_http_fishchat_monitor_server_t;


/* the state of this worker */

typedef struct {
    ngx_event_t                     timer;
    ngx_str_t                       topics;      /* "<prefix>t:" */
    uint64_t                        ping_sent;   /* us */
    ngx_atomic_t                    rtt;         /* us */
    ngx_uint_t                      pinging;
} ngx_http_fishchat_monitor_worker_t;


static ngx_int_t ngx_http_fishchat_monitor_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_monitor_view(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_monitor_send(ngx_http_request_t *r,
    ngx_uint_t status, char *type, ngx_fishchat_json_t *out);
static ngx_int_t ngx_http_fishchat_monitor_error(ngx_http_request_t *r,
    ngx_uint_t status, char *text);
static ngx_int_t ngx_http_fishchat_monitor_header(ngx_http_request_t *r,
    char *key, char *value);
static ngx_int_t ngx_http_fishchat_monitor_dashboard_page(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_monitor_status(ngx_http_request_t *r);
static void ngx_http_fishchat_monitor_node(ngx_fishchat_json_t *out,
    ngx_str_t *node);
static void ngx_http_fishchat_monitor_figures(ngx_fishchat_json_t *out,
    ngx_str_t *node, char *key, ngx_http_fishchat_monitor_metric_t *metrics,
    void *stats);
static void ngx_http_fishchat_monitor_metrics_workers(
    ngx_fishchat_json_t *out, ngx_str_t *node,
    ngx_http_fishchat_monitor_live_t *live, ngx_uint_t nlive);
static void ngx_http_fishchat_monitor_metrics_servers(
    ngx_fishchat_json_t *out, ngx_fishchat_conf_t *fcf, ngx_str_t *node,
    ngx_str_t **labels, ngx_http_fishchat_monitor_live_t *live,
    ngx_uint_t nlive);
static void ngx_http_fishchat_monitor_status_workers(
    ngx_fishchat_json_t *out, ngx_fishchat_conf_t *fcf, ngx_str_t **labels,
    ngx_http_fishchat_monitor_live_t *live, ngx_uint_t nlive);
static ngx_int_t ngx_http_fishchat_monitor_metrics(ngx_http_request_t *r);
static ngx_int_t ngx_http_fishchat_monitor_cluster(ngx_http_request_t *r);
static void ngx_http_fishchat_monitor_cluster_reply(redisReply *reply,
    void *data);
static ngx_int_t ngx_http_fishchat_monitor_cluster_send(
    ngx_http_request_t *r, redisReply *reply);
static ngx_int_t ngx_http_fishchat_monitor_cluster_error(
    ngx_http_request_t *r, char *redis, char *text, size_t len);
static void ngx_http_fishchat_monitor_cluster_cleanup(void *data);
static ngx_http_fishchat_monitor_server_t *
    ngx_http_fishchat_monitor_cluster_servers(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t n);
static ngx_int_t ngx_http_fishchat_monitor_cluster_nodes(
    ngx_http_request_t *r, ngx_fishchat_json_t *out,
    ngx_http_fishchat_monitor_server_t *servers, ngx_uint_t n,
    ngx_fishchat_conf_t *fcf);
static ngx_int_t ngx_http_fishchat_monitor_cluster_node(
    ngx_http_request_t *r, ngx_fishchat_json_t *out,
    ngx_http_fishchat_monitor_server_t *servers, ngx_uint_t i, ngx_uint_t n);
static int ngx_libc_cdecl ngx_http_fishchat_monitor_cmp_servers(
    const void *one, const void *two);

static ngx_str_t *ngx_http_fishchat_monitor_json_str(ngx_pool_t *pool,
    ngx_str_t *s);
static ngx_str_t *ngx_http_fishchat_monitor_label_str(ngx_pool_t *pool,
    ngx_str_t *s);
static ngx_http_fishchat_monitor_live_t *ngx_http_fishchat_monitor_live(
    ngx_pool_t *pool, ngx_fishchat_conf_t *fcf, ngx_uint_t *n);
static void ngx_http_fishchat_monitor_json_counters(
    ngx_fishchat_json_t *out, ngx_fishchat_counters_t *c);
static char *ngx_http_fishchat_monitor_link_name(ngx_atomic_t state);

static void ngx_http_fishchat_monitor_publish(ngx_event_t *ev);
static void ngx_http_fishchat_monitor_pong(redisReply *reply, void *data);
static uint64_t ngx_http_fishchat_monitor_usec(void);

static void *ngx_http_fishchat_monitor_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_fishchat_monitor_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fishchat_monitor_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_fishchat_monitor(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_fishchat_monitor_init_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_fishchat_monitor_commands[] = {

    { ngx_string("fishchat_monitor"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fishchat_monitor,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_monitor_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_fishchat_monitor_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fishchat_monitor_create_loc_conf, /* create location config */
    ngx_http_fishchat_monitor_merge_loc_conf   /* merge location config */
};


ngx_module_t  ngx_http_fishchat_monitor_module = {
    NGX_MODULE_V1,
    &ngx_http_fishchat_monitor_module_ctx, /* module context */
    ngx_http_fishchat_monitor_commands,    /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_fishchat_monitor_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* the names of ngx_fishchat_err_e, in its order */

static char *ngx_http_fishchat_monitor_errors[] = {
    "bad_frame",
    "frame_too_large",
    "unknown_command",
    "bad_args",
    "timeout",
    "no_msg_server",
    "redis_unavailable",
    "not_logged_in",
    "forbidden",
    "inbox_full",
    "rate_limited",
    "kicked",
    "slow_reader",
    "topic_exists",
    "no_such_topic",
    "not_member",
    "not_confirmed",
    "duplicate_uuid",
    "auth_failed",
    "token_expired",
    "no_such_stream",
    "file_too_large",
    "quota_exceeded",
    "no_such_file",
    "file_busy"
};


/* the views by name: the directive's parameter and "?format=" */

static ngx_conf_enum_t  ngx_http_fishchat_monitor_views[] = {
    { ngx_string("dashboard"), NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD },
    { ngx_string("html"), NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD },
    { ngx_string("status"), NGX_HTTP_FISHCHAT_MONITOR_STATUS },
    { ngx_string("json"), NGX_HTTP_FISHCHAT_MONITOR_STATUS },
    { ngx_string("cluster"), NGX_HTTP_FISHCHAT_MONITOR_CLUSTER },
    { ngx_string("metrics"), NGX_HTTP_FISHCHAT_MONITOR_METRICS },
    { ngx_string("prometheus"), NGX_HTTP_FISHCHAT_MONITOR_METRICS },
    { ngx_null_string, 0 }
};


/* the views by the rest of the URI after the location */

static ngx_conf_enum_t  ngx_http_fishchat_monitor_paths[] = {
    { ngx_string(""), NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD },
    { ngx_string("index.html"), NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD },
    { ngx_string("status.json"), NGX_HTTP_FISHCHAT_MONITOR_STATUS },
    { ngx_string("cluster"), NGX_HTTP_FISHCHAT_MONITOR_CLUSTER },
    { ngx_string("cluster.json"), NGX_HTTP_FISHCHAT_MONITOR_CLUSTER },
    { ngx_string("metrics"), NGX_HTTP_FISHCHAT_MONITOR_METRICS },
    { ngx_null_string, 0 }
};


/*
 * KEYS: heartbeats, loads, {files}:stats.  ARGV: the most entries.  The
 * live msg servers (NGX_FISHCHAT_LUA_NODES), their count made
 * {count, bytes stored, files stored} of the files role
 */

static char  ngx_http_fishchat_monitor_cluster_lua[] =
    "local function nodes(KEYS, ARGV) "
        NGX_FISHCHAT_LUA_NODES
    " end "
    "local r = nodes(KEYS, ARGV) "
    "local f = redis.call('HMGET', KEYS[3], 'bytes', 'files') "
    "r[1] = {r[1], tonumber(f[1]) or 0, tonumber(f[2]) or 0} "
    "return r";


static ngx_http_fishchat_monitor_worker_t  ngx_http_fishchat_monitor_worker;


static ngx_int_t
ngx_http_fishchat_monitor_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_fishchat_monitor_header(r, "Allow", "GET, HEAD")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fishchat_monitor_error(r, NGX_HTTP_NOT_ALLOWED,
                                               "method not allowed, "
                                               "only GET and HEAD");
    }

    switch (ngx_http_fishchat_monitor_view(r)) {

    case NGX_HTTP_FISHCHAT_MONITOR_DASHBOARD:
        return ngx_http_fishchat_monitor_dashboard_page(r);

    case NGX_HTTP_FISHCHAT_MONITOR_STATUS:
        return ngx_http_fishchat_monitor_status(r);

    case NGX_HTTP_FISHCHAT_MONITOR_CLUSTER:
        return ngx_http_fishchat_monitor_cluster(r);

    case NGX_HTTP_FISHCHAT_MONITOR_METRICS:
        return ngx_http_fishchat_monitor_metrics(r);

    case NGX_ERROR:
        return ngx_http_fishchat_monitor_error(r, NGX_HTTP_BAD_REQUEST,
                                               "unknown format, one of "
                                               "html, json, cluster, "
                                               "prometheus expected");

    default: /* NGX_DECLINED */
        return ngx_http_fishchat_monitor_error(r, NGX_HTTP_NOT_FOUND,
                                               "not found: the monitor serves "
                                               "its location, status.json, "
                                               "cluster and metrics");
    }
}


/*
 * "?format=", else the directive's parameter, else the rest of the URI
 * after the location's name (after the last "/" for a regex location).
 * NGX_ERROR: an unknown format, NGX_DECLINED: an unknown path.
 */

static ngx_int_t
ngx_http_fishchat_monitor_view(ngx_http_request_t *r)
{
    u_char                                *p;
    ngx_str_t                              value, rest;
    ngx_uint_t                             i, regex;
    ngx_conf_enum_t                       *e;
    ngx_http_core_loc_conf_t              *clcf;
    ngx_http_fishchat_monitor_loc_conf_t  *mlcf;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {
        e = ngx_http_fishchat_monitor_views;

        for (i = 0; e[i].name.len; i++) {
            if (e[i].name.len == value.len
                && ngx_strncmp(e[i].name.data, value.data, value.len) == 0)
            {
                return e[i].value;
            }
        }

        return NGX_ERROR;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_fishchat_monitor_module);

    if (mlcf->view != NGX_HTTP_FISHCHAT_MONITOR_AUTO) {
        return mlcf->view;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    regex = 0;

#if (NGX_PCRE)
    regex = (clcf->regex != NULL);
#endif

    if (!regex && !clcf->named
        && r->uri.len >= clcf->name.len
        && ngx_strncmp(r->uri.data, clcf->name.data, clcf->name.len) == 0)
    {
        rest.data = r->uri.data + clcf->name.len;
        rest.len = r->uri.len - clcf->name.len;

    } else {
        p = r->uri.data + r->uri.len;

        while (p > r->uri.data && p[-1] != '/') {
            p--;
        }

        rest.data = p;
        rest.len = r->uri.data + r->uri.len - p;
    }

    if (rest.len && rest.data[0] == '/') {
        rest.data++;
        rest.len--;
    }

    e = ngx_http_fishchat_monitor_paths;

    for (i = 0; e[i].name.data; i++) {
        if (e[i].name.len == rest.len
            && ngx_strncmp(e[i].name.data, rest.data, rest.len) == 0)
        {
            return e[i].value;
        }
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_fishchat_monitor_header(ngx_http_request_t *r, char *key,
    char *value)
{
    ngx_str_t  v;

    v.data = (u_char *) value;
    v.len = ngx_strlen(value);

    return ngx_fishchat_http_header(r, key, &v);
}


/* sends the response, or its header only (HEAD); for a content handler */

static ngx_int_t
ngx_http_fishchat_monitor_send(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_fishchat_json_t *out)
{
    if (ngx_http_fishchat_monitor_header(r, "Cache-Control", "no-store")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_fishchat_http_send(r, status, type, out);
}


/*
 * An error as JSON, {"status":<n>,"error":"<text>"} (the monitor's shape
 * since its first version; "text" is put in a JSON string as it is), and
 * a line at info.
 */

static ngx_int_t
ngx_http_fishchat_monitor_error(ngx_http_request_t *r, ngx_uint_t status,
    char *text)
{
    ngx_fishchat_json_t  out;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fishchat monitor: %ui: %s", status, text);

    ngx_fishchat_json_init(&out, r->pool, 256);

    ngx_fishchat_json_fmt(&out, "{\"status\":%ui,\"error\":\"%s\"}" CRLF,
                          status, text);

    return ngx_http_fishchat_monitor_send(r, status, "application/json",
                                          &out);
}


static ngx_int_t
ngx_http_fishchat_monitor_dashboard_page(ngx_http_request_t *r)
{
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_fishchat_json_t  out;

    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (b == NULL || cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = ngx_http_fishchat_monitor_dashboard;
    b->last = b->pos + sizeof(ngx_http_fishchat_monitor_dashboard) - 1;
    b->memory = 1;

    cl->buf = b;
    cl->next = NULL;

    ngx_fishchat_json_init(&out, r->pool, 0);

    out.first = cl;
    out.last = cl;
    out.size = b->last - b->pos;

    /* everything is in the page: nothing else may be loaded */

    if (ngx_http_fishchat_monitor_header(r, "Content-Security-Policy",
                                         "default-src 'none'; "
                                         "script-src 'unsafe-inline'; "
                                         "style-src 'unsafe-inline'; "
                                         "connect-src 'self'; "
                                         "img-src data:; "
                                         "base-uri 'none'; "
                                         "form-action 'none'")
           != NGX_OK
        || ngx_http_fishchat_monitor_header(r, "X-Content-Type-Options",
                                            "nosniff")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fishchat_monitor_send(r, NGX_HTTP_OK,
                                          "text/html; charset=utf-8", &out);
}


/* this node as JSON */

static ngx_int_t
ngx_http_fishchat_monitor_status(ngx_http_request_t *r)
{
    time_t                             started;
    uint64_t                           msec;
    ngx_str_t                         *node, **labels, *address;
    ngx_uint_t                         i, k, n, nlive;
    ngx_time_t                        *tp;
    ngx_atomic_t                       connections, topics, queued, queues;
    ngx_atomic_t                       backlog, stalled;
    ngx_atomic_t                      *src, *dst;
    ngx_fishchat_conf_t               *fcf;
    ngx_fishchat_counters_t            totals;
    ngx_fishchat_json_t                out;
    ngx_http_fishchat_monitor_live_t  *live;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    live = ngx_http_fishchat_monitor_live(r->pool, fcf, &nlive);
    node = ngx_http_fishchat_monitor_json_str(r->pool, &fcf->name);

    labels = ngx_palloc(r->pool, (fcf->servers.nelts + 1)
                                 * sizeof(ngx_str_t *));

    if (live == NULL || node == NULL || labels == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (k = 0; k < fcf->servers.nelts; k++) {
        labels[k] = ngx_http_fishchat_monitor_json_str(r->pool,
                                        (ngx_str_t *) fcf->servers.elts + k);
        if (labels[k] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    address = NULL;

    if (fcf->redis) {
        address = ngx_http_fishchat_monitor_json_str(r->pool,
                                                     &fcf->redis->url);
        if (address == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    tp = ngx_timeofday();
    msec = (uint64_t) tp->sec * 1000 + tp->msec;

    started = fcf->zone ? ngx_fishchat_zone_started(fcf->zone) : 0;

    if (started == 0) {
        started = tp->sec;
    }

    /* the sums over every worker */

    ngx_memzero(&totals, sizeof(ngx_fishchat_counters_t));
    connections = 0;
    topics = 0;
    queued = 0;
    queues = 0;
    backlog = 0;
    stalled = 0;

    n = sizeof(ngx_fishchat_counters_t) / sizeof(ngx_atomic_t);

    for (i = 0; i < nlive; i++) {
        src = (ngx_atomic_t *) &live[i].sum;
        dst = (ngx_atomic_t *) &totals;

        for (k = 0; k < n; k++) {
            dst[k] += src[k];
        }

        connections += live[i].slot->connections;
        topics += live[i].slot->topics;
        queued += live[i].slot->queued;
        queues += live[i].slot->queues;
        backlog += live[i].slot->backlog;
        stalled += live[i].slot->stalled;
    }

    ngx_fishchat_json_init(&out, r->pool, NGX_HTTP_FISHCHAT_MONITOR_BUF);

    ngx_fishchat_json_fmt(&out,
        "{\"version\":\"%s\",\"nginx\":\"%s\",\"node\":\"%V\","
        "\"pid\":%P,\"time\":%T,\"msec\":%uL,\"started\":%T,\"uptime\":%T,",
        NGX_FISHCHAT_VERSION, NGINX_VERSION, node, ngx_pid, tp->sec, msec,
        started, tp->sec - started);

    if (address) {
        ngx_fishchat_json_fmt(&out, "\"redis\":\"%V\",", address);

    } else {
        ngx_fishchat_json_fmt(&out, "\"redis\":null,");
    }

    ngx_fishchat_json_fmt(&out,
        "\"totals\":{\"workers\":%ui,\"connections\":%uA,",
        nlive, connections);

    ngx_http_fishchat_monitor_json_counters(&out, &totals);

    ngx_fishchat_json_fmt(&out,
        ",\"topics\":%uA,\"queued_bytes\":%uA,\"queued_sessions\":%uA,"
        "\"topic_backlog\":%uA,\"stalled_sessions\":%uA},",
        topics, queued, queues, backlog, stalled);

    ngx_http_fishchat_monitor_node(&out, NULL);

    ngx_fishchat_json_fmt(&out, ",\"workers\":[");

    ngx_http_fishchat_monitor_status_workers(&out, fcf, labels, live, nlive);

    ngx_fishchat_json_fmt(&out, "]}" CRLF);

    return ngx_http_fishchat_monitor_send(r, NGX_HTTP_OK, "application/json",
                                          &out);
}


/* "workers" of the status: each worker's gauges, counters and servers */

static void
ngx_http_fishchat_monitor_status_workers(ngx_fishchat_json_t *out,
    ngx_fishchat_conf_t *fcf, ngx_str_t **labels,
    ngx_http_fishchat_monitor_live_t *live, ngx_uint_t nlive)
{
    ngx_uint_t            i, k;
    ngx_fishchat_slot_t  *slot;
    u_char                rtt[NGX_ATOMIC_T_LEN];

    for (i = 0; i < nlive; i++) {
        slot = live[i].slot;

        if (slot->redis_rtt) {
            *ngx_sprintf(rtt, "%uA", slot->redis_rtt) = '\0';

        } else {
            ngx_cpystrn(rtt, (u_char *) "null", sizeof("null"));
        }

        ngx_fishchat_json_fmt(out,
            "%s{\"slot\":%ui,\"pid\":%P,\"started\":%T,\"updated\":%uA,"
            "\"connections\":%uA,",
            i ? "," : "", live[i].n, slot->pid, slot->started,
            slot->updated, slot->connections);

        ngx_http_fishchat_monitor_json_counters(out, &live[i].sum);

        ngx_fishchat_json_fmt(out,
            ",\"topics\":%uA,\"queued_bytes\":%uA,\"queued_sessions\":%uA,"
            "\"topic_backlog\":%uA,\"stalled_sessions\":%uA,"
            "\"redis\":{\"link\":\"%s\",\"subscriber\":\"%s\","
            "\"rtt_us\":%s,\"waiting\":%uA,\"channels\":%uA},"
            "\"servers\":[",
            slot->topics, slot->queued, slot->queues, slot->backlog,
            slot->stalled,
            ngx_http_fishchat_monitor_link_name(slot->redis),
            ngx_http_fishchat_monitor_link_name(slot->redis_sub),
            rtt, slot->redis_waiting, slot->channels);

        for (k = 0; k < fcf->servers.nelts; k++) {
            ngx_fishchat_json_fmt(out, "%s{\"server\":\"%V\",",
                                  k ? "," : "", labels[k]);

            ngx_http_fishchat_monitor_json_counters(out, &live[i].servers[k]);

            ngx_fishchat_json_fmt(out, "}");
        }

        ngx_fishchat_json_fmt(out, "]}");
    }
}


static void
ngx_http_fishchat_monitor_json_counters(ngx_fishchat_json_t *out,
    ngx_fishchat_counters_t *c)
{
    ngx_uint_t  e;

    ngx_fishchat_json_fmt(out,
        "\"active\":%uA,\"accepted\":%uA,\"sessions\":%uA,\"messages\":%uA,"
        "\"frames_in\":%uA,\"frames_out\":%uA,\"bytes_in\":%uA,"
        "\"bytes_out\":%uA,\"errors\":%uA,\"error\":{",
        c->active, c->accepted, c->sessions, c->messages, c->frames_in,
        c->frames_out, c->bytes_in, c->bytes_out, c->errors);

    for (e = 0; e < NGX_FISHCHAT_ERR_LAST; e++) {
        ngx_fishchat_json_fmt(out, "%s\"%s\":%uA", e ? "," : "",
                              ngx_http_fishchat_monitor_errors[e],
                              c->error[e]);
    }

    ngx_fishchat_json_fmt(out, "}");
}


static char *
ngx_http_fishchat_monitor_link_name(ngx_atomic_t state)
{
    switch (state) {

    case NGX_FISHCHAT_REDIS_LINK_UP:
        return "up";

    case NGX_FISHCHAT_REDIS_LINK_CONNECTING:
        return "connecting";

    case NGX_FISHCHAT_REDIS_LINK_DOWN:
        return "down";

    default:
        return "none";
    }
}


/* the live workers of this node, with the sums over their server blocks */

static ngx_http_fishchat_monitor_live_t *
ngx_http_fishchat_monitor_live(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_uint_t *nlive)
{
    u_char                            *counters;
    ngx_uint_t                         i, k, f, n, fields;
    ngx_atomic_t                      *src, *dst;
    ngx_fishchat_slot_t               *slot;
    ngx_http_fishchat_monitor_live_t  *live;

    *nlive = 0;

    n = 0;

    for (i = 0; fcf->zone && i < NGX_MAX_PROCESSES; i++) {
        if (ngx_fishchat_zone_slot(fcf->zone, i, &slot) && slot->pid) {
            n++;
        }
    }

    live = ngx_pcalloc(pool, (n + 1)
                             * sizeof(ngx_http_fishchat_monitor_live_t));
    if (live == NULL) {
        return NULL;
    }

    fields = sizeof(ngx_fishchat_counters_t) / sizeof(ngx_atomic_t);

    for (i = 0; fcf->zone && i < NGX_MAX_PROCESSES && *nlive < n; i++) {

        counters = ngx_fishchat_zone_slot(fcf->zone, i, &slot);

        if (counters == NULL || slot->pid == 0) {
            continue;
        }

        live[*nlive].n = i;
        live[*nlive].slot = slot;
        live[*nlive].servers = (ngx_fishchat_counters_t *) counters;

        dst = (ngx_atomic_t *) &live[*nlive].sum;

        for (k = 0; k < fcf->servers.nelts; k++) {
            src = (ngx_atomic_t *) ((ngx_fishchat_counters_t *) counters + k);

            for (f = 0; f < fields; f++) {
                dst[f] += src[f];
            }
        }

        (*nlive)++;
    }

    return live;
}


/*
 * This node in the Prometheus text format 0.0.4: families of the node,
 * of each worker (label pid) and of each server block of each worker
 * (labels role and server).
 */


static ngx_http_fishchat_monitor_metric_t
    ngx_http_fishchat_monitor_server_metrics[] = {

    { "fishchat_connections", "gauge",
      "Open client connections of the server block.",
      offsetof(ngx_fishchat_counters_t, active) },

    { "fishchat_connections_accepted_total", "counter",
      "Client connections accepted by the server block.",
      offsetof(ngx_fishchat_counters_t, accepted) },

    { "fishchat_sessions", "gauge",
      "Logged-in client sessions (msg servers).",
      offsetof(ngx_fishchat_counters_t, sessions) },

    { "fishchat_messages_total", "counter",
      "Messages accepted from clients and peers (msg servers).",
      offsetof(ngx_fishchat_counters_t, messages) },

    { "fishchat_frames_received_total", "counter",
      "Frames received from clients.",
      offsetof(ngx_fishchat_counters_t, frames_in) },

    { "fishchat_frames_sent_total", "counter",
      "Frames sent to clients.",
      offsetof(ngx_fishchat_counters_t, frames_out) },

    { "fishchat_bytes_received_total", "counter",
      "Bytes received from clients.",
      offsetof(ngx_fishchat_counters_t, bytes_in) },

    { "fishchat_bytes_sent_total", "counter",
      "Bytes sent to clients.",
      offsetof(ngx_fishchat_counters_t, bytes_out) },

    { NULL, NULL, NULL, 0 }
};


static ngx_http_fishchat_monitor_metric_t
    ngx_http_fishchat_monitor_worker_metrics[] = {

    { "fishchat_worker_connections", "gauge",
      "Connections of the nginx worker in use, of every kind.",
      offsetof(ngx_fishchat_slot_t, connections) },

    { "fishchat_topics_subscribed", "gauge",
      "Topic channels the worker is subscribed to in Redis.",
      offsetof(ngx_fishchat_slot_t, topics) },

    { "fishchat_redis_channels_subscribed", "gauge",
      "Redis channels the worker is subscribed to.",
      offsetof(ngx_fishchat_slot_t, channels) },

    { "fishchat_redis_queued_commands", "gauge",
      "Redis commands waiting for the link to come up.",
      offsetof(ngx_fishchat_slot_t, redis_waiting) },

    { "fishchat_output_queue_bytes", "gauge",
      "Bytes waiting in the output queues of logged-in sessions.",
      offsetof(ngx_fishchat_slot_t, queued) },

    { "fishchat_output_queue_sessions", "gauge",
      "Logged-in sessions with bytes waiting in their output queue.",
      offsetof(ngx_fishchat_slot_t, queues) },

    { "fishchat_topic_backlog_messages", "gauge",
      "Topic messages received but not yet written to every local member.",
      offsetof(ngx_fishchat_slot_t, backlog) },

    { "fishchat_stalled_sessions", "gauge",
      "Sessions not read while the topic backlog is over its limit.",
      offsetof(ngx_fishchat_slot_t, stalled) },

    { NULL, NULL, NULL, 0 }
};


/*
 * The node's audio and video (ngx_fishchat_media_stats_t): in status.json
 * under "media", named as here without "fishchat_media_" and "_total"
 */

static ngx_http_fishchat_monitor_metric_t
    ngx_http_fishchat_monitor_media_metrics[] = {

    { "fishchat_media_streams", "gauge",
      "Live streams published to this node over RTMP.",
      offsetof(ngx_fishchat_media_stats_t, streams) },

    { "fishchat_media_viewers", "gauge",
      "RTMP players of this node's streams.",
      offsetof(ngx_fishchat_media_stats_t, viewers) },

    { "fishchat_media_publishes_total", "counter",
      "Publishes the media hooks allowed.",
      offsetof(ngx_fishchat_media_stats_t, publishes) },

    { "fishchat_media_plays_total", "counter",
      "RTMP plays the media hooks allowed.",
      offsetof(ngx_fishchat_media_stats_t, plays) },

    { "fishchat_media_refused_total", "counter",
      "Publishes, plays and updates the media hooks refused.",
      offsetof(ngx_fishchat_media_stats_t, refused) },

    { "fishchat_media_hls_requests_total", "counter",
      "HLS and recording files requested with a good play token.",
      offsetof(ngx_fishchat_media_stats_t, hls) },

    { "fishchat_media_hls_denied_total", "counter",
      "HLS and recording requests refused (403).",
      offsetof(ngx_fishchat_media_stats_t, hls_denied) },

    { "fishchat_media_recordings_total", "counter",
      "Recordings remuxed into MP4.",
      offsetof(ngx_fishchat_media_stats_t, recordings) },

    { "fishchat_media_recordings_failed_total", "counter",
      "Recordings that could not be remuxed (the FLV is kept).",
      offsetof(ngx_fishchat_media_stats_t, recordings_failed) },

    { NULL, NULL, NULL, 0 }
};


#define ngx_http_fishchat_monitor_family(out, name, type, help)             \
    ngx_fishchat_json_fmt(out, "# HELP %s %s\n# TYPE %s %s\n",   \
                          name, help, name, type)


static ngx_int_t
ngx_http_fishchat_monitor_metrics(ngx_http_request_t *r)
{
    u_char                              *p;
    time_t                               started;
    ngx_str_t                           *node, **labels, role;
    ngx_uint_t                           k, nlive;
    ngx_fishchat_conf_t                 *fcf;
    ngx_fishchat_json_t                  out;
    ngx_http_fishchat_monitor_live_t    *live;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    live = ngx_http_fishchat_monitor_live(r->pool, fcf, &nlive);
    node = ngx_http_fishchat_monitor_label_str(r->pool, &fcf->name);

    labels = ngx_palloc(r->pool, 2 * (fcf->servers.nelts + 1)
                                 * sizeof(ngx_str_t *));

    if (live == NULL || node == NULL || labels == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* labels[2k]: the role, labels[2k + 1]: the whole label */

    for (k = 0; k < fcf->servers.nelts; k++) {
        role = ((ngx_str_t *) fcf->servers.elts)[k];

        p = ngx_strlchr(role.data, role.data + role.len, ' ');

        if (p) {
            role.len = p - role.data;
        }

        labels[2 * k] = ngx_http_fishchat_monitor_label_str(r->pool, &role);
        labels[2 * k + 1] = ngx_http_fishchat_monitor_label_str(r->pool,
                                        (ngx_str_t *) fcf->servers.elts + k);

        if (labels[2 * k] == NULL || labels[2 * k + 1] == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    started = fcf->zone ? ngx_fishchat_zone_started(fcf->zone) : 0;

    if (started == 0) {
        started = ngx_time();
    }

    ngx_fishchat_json_init(&out, r->pool, NGX_HTTP_FISHCHAT_MONITOR_BUF);

    /* the node */

    ngx_http_fishchat_monitor_family(&out, "fishchat_info", "gauge",
                                     "Versions of this node, always 1.");
    ngx_fishchat_json_fmt(&out,
        "fishchat_info{node=\"%V\",version=\"%s\",nginx_version=\"%s\"} 1\n",
        node, NGX_FISHCHAT_VERSION, NGINX_VERSION);

    ngx_http_fishchat_monitor_family(&out, "fishchat_start_time_seconds",
                                     "gauge",
                                     "When nginx started, in Unix seconds.");
    ngx_fishchat_json_fmt(&out,
        "fishchat_start_time_seconds{node=\"%V\"} %T\n", node, started);

    ngx_http_fishchat_monitor_node(&out, node);
    ngx_http_fishchat_monitor_metrics_workers(&out, node, live, nlive);
    ngx_http_fishchat_monitor_metrics_servers(&out, fcf, node, labels, live,
                                              nlive);

    return ngx_http_fishchat_monitor_send(r, NGX_HTTP_OK,
                                          "text/plain; version=0.0.4; "
                                          "charset=utf-8", &out);
}


/*
 * The node's files and media figures: the families of Prometheus for the
 * node "node", or the "files" and "media" objects of status.json without
 * one
 */

static void
ngx_http_fishchat_monitor_node(ngx_fishchat_json_t *out, ngx_str_t *node)
{
    ngx_http_fishchat_monitor_figures(out, node, "files",
                                      ngx_http_fishchat_monitor_files_metrics,
                                      ngx_fishchat_files_stats());

    if (node == NULL) {
        ngx_fishchat_json_fmt(out, ",");
    }

    ngx_http_fishchat_monitor_figures(out, node, "media",
                                      ngx_http_fishchat_monitor_media_metrics,
                                      ngx_fishchat_media_stats());
}


/*
 * The figures of a block of the zone ("stats", NULL: all 0) named
 * fishchat_<key>_*: families of Prometheus, or an object "<key>" of
 * status.json whose names have neither "fishchat_<key>_" nor "_total"
 */

static void
ngx_http_fishchat_monitor_figures(ngx_fishchat_json_t *out, ngx_str_t *node,
    char *key, ngx_http_fishchat_monitor_metric_t *metrics, void *stats)
{
    size_t                               len, skip;
    ngx_atomic_t                         v;
    ngx_http_fishchat_monitor_metric_t  *m;

    skip = sizeof("fishchat__") - 1 + ngx_strlen(key);

    if (node == NULL) {
        ngx_fishchat_json_fmt(out, "\"%s\":{", key);
    }

    for (m = metrics; m->name; m++) {
        v = stats ? *(ngx_atomic_t *) ((u_char *) stats + m->offset) : 0;

        if (node) {
            ngx_http_fishchat_monitor_family(out, m->name, m->type, m->help);
            ngx_fishchat_json_fmt(out, "%s{node=\"%V\"} %uA\n", m->name,
                                  node, v);
            continue;
        }

        len = ngx_strlen(m->name) - skip;

        if (m->type[0] == 'c') {
            len -= sizeof("_total") - 1;
        }

        ngx_fishchat_json_fmt(out, "%s\"%*s\":%uA", m == metrics ? "" : ",",
                              len, m->name + skip, v);
    }

    if (node == NULL) {
        ngx_fishchat_json_fmt(out, "}");
    }
}


/* the metrics of each worker: its start, its gauges, its Redis links */

static void
ngx_http_fishchat_monitor_metrics_workers(ngx_fishchat_json_t *out,
    ngx_str_t *node, ngx_http_fishchat_monitor_live_t *live, ngx_uint_t nlive)
{
    ngx_uint_t                           i, link;
    ngx_atomic_t                         v, state;
    ngx_fishchat_slot_t                 *slot;
    ngx_http_fishchat_monitor_metric_t  *m;

    ngx_http_fishchat_monitor_family(out,
                                     "fishchat_worker_start_time_seconds",
                                     "gauge",
                                     "When the worker started, in Unix "
                                     "seconds.");

    for (i = 0; i < nlive; i++) {
        ngx_fishchat_json_fmt(out,
            "fishchat_worker_start_time_seconds{node=\"%V\",pid=\"%P\"} %T\n",
            node, live[i].slot->pid, live[i].slot->started);
    }

    for (m = ngx_http_fishchat_monitor_worker_metrics; m->name; m++) {
        ngx_http_fishchat_monitor_family(out, m->name, m->type, m->help);

        for (i = 0; i < nlive; i++) {
            v = *(ngx_atomic_t *) ((u_char *) live[i].slot + m->offset);

            ngx_fishchat_json_fmt(out,
                "%s{node=\"%V\",pid=\"%P\"} %uA\n",
                m->name, node, live[i].slot->pid, v);
        }
    }

    ngx_http_fishchat_monitor_family(out, "fishchat_redis_up", "gauge",
                                     "Whether the worker's Redis link is "
                                     "up (1) or not (0), by link.");

    for (i = 0; i < nlive; i++) {
        slot = live[i].slot;

        for (link = 0; link < 2; link++) {
            state = link ? slot->redis_sub : slot->redis;

            if (state == NGX_FISHCHAT_REDIS_LINK_NONE) {
                continue;
            }

            ngx_fishchat_json_fmt(out,
                "fishchat_redis_up{node=\"%V\",pid=\"%P\",link=\"%s\"} %d\n",
                node, slot->pid, link ? "subscriber" : "command",
                state == NGX_FISHCHAT_REDIS_LINK_UP);
        }
    }

    ngx_http_fishchat_monitor_family(out, "fishchat_redis_rtt_seconds",
                                     "gauge",
                                     "Round trip of the last PING on the "
                                     "worker's Redis command link (absent "
                                     "while the link is down).");

    for (i = 0; i < nlive; i++) {
        slot = live[i].slot;

        if (slot->redis_rtt == 0) {
            continue;
        }

        ngx_fishchat_json_fmt(out,
            "fishchat_redis_rtt_seconds{node=\"%V\",pid=\"%P\"} %uA.%06uA\n",
            node, slot->pid, slot->redis_rtt / 1000000,
            slot->redis_rtt % 1000000);
    }
}


/* the counters of the server blocks of each worker, errors by code */

static void
ngx_http_fishchat_monitor_metrics_servers(ngx_fishchat_json_t *out,
    ngx_fishchat_conf_t *fcf, ngx_str_t *node, ngx_str_t **labels,
    ngx_http_fishchat_monitor_live_t *live, ngx_uint_t nlive)
{
    ngx_uint_t                           i, k, e;
    ngx_atomic_t                         v;
    ngx_fishchat_counters_t             *c;
    ngx_http_fishchat_monitor_metric_t  *m;

    for (m = ngx_http_fishchat_monitor_server_metrics; m->name; m++) {
        ngx_http_fishchat_monitor_family(out, m->name, m->type, m->help);

        for (i = 0; i < nlive; i++) {
            for (k = 0; k < fcf->servers.nelts; k++) {
                v = *(ngx_atomic_t *) ((u_char *) &live[i].servers[k]
                                       + m->offset);

                ngx_fishchat_json_fmt(out,
                    "%s{node=\"%V\",pid=\"%P\",role=\"%V\",server=\"%V\"} "
                    "%uA\n",
                    m->name, node, live[i].slot->pid, labels[2 * k],
                    labels[2 * k + 1], v);
            }
        }
    }

    ngx_http_fishchat_monitor_family(out, "fishchat_errors_total",
                                     "counter",
                                     "Errors clients and peers caused, "
                                     "by code (docs/protocol.md).");

    for (i = 0; i < nlive; i++) {
        for (k = 0; k < fcf->servers.nelts; k++) {
            c = &live[i].servers[k];

            for (e = 0; e < NGX_FISHCHAT_ERR_LAST; e++) {
                ngx_fishchat_json_fmt(out,
                    "fishchat_errors_total{node=\"%V\",pid=\"%P\","
                    "role=\"%V\",server=\"%V\",code=\"%s\"} %uA\n",
                    node, live[i].slot->pid, labels[2 * k],
                    labels[2 * k + 1], ngx_http_fishchat_monitor_errors[e],
                    c->error[e]);
            }
        }
    }
}


/*
 * The cluster: every live msg server in the heartbeats, by node.  One
 * EVAL; the request waits for it (the worker does not).  A request that
 * goes away meanwhile cancels the command; a link that goes down answers
 * it with 503.
 */

static ngx_int_t
ngx_http_fishchat_monitor_cluster(ngx_http_request_t *r)
{
    u_char                                 *p;
    ngx_str_t                               args[4];
    ngx_fishchat_conf_t                    *fcf;
    ngx_http_cleanup_t                     *cln;
    ngx_fishchat_redis_t                   *link;
    ngx_fishchat_redis_req_t               *req;
    ngx_http_fishchat_monitor_ctx_t        *ctx;
    ngx_http_fishchat_monitor_main_conf_t  *mmcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_fishchat_monitor_module);

    if (fcf->redis == NULL) {
        return ngx_http_fishchat_monitor_cluster_error(r, "none",
                                       "no fishchat_redis is configured", 0);
    }

    link = ngx_fishchat_redis_link();

    if (!ngx_fishchat_redis_up(link)) {
        /* the queue would hold the request up to fishchat_redis_timeout */
        return ngx_http_fishchat_monitor_cluster_error(r, "down",
                                       "Redis is unavailable", 0);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fishchat_monitor_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN + fcf->redis_prefix.len
                             + sizeof("{files}:stats"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    args[0] = fcf->beat_key;
    args[1] = fcf->load_key;

    args[2].data = p;
    p = ngx_sprintf(p, "%V{files}:stats", &fcf->redis_prefix);
    args[2].len = p - args[2].data;

    args[3].data = p;
    args[3].len = ngx_sprintf(p, "%d", NGX_HTTP_FISHCHAT_MONITOR_CLUSTER_MAX)
                  - p;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fishchat_monitor_cluster_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->waiting = 1;

    /* a client that closes meanwhile ends the request (and the command) */

    if (!r->discard_body) {
        r->read_event_handler = ngx_http_test_reading;
    }

    r->main->count++;

    req = ngx_fishchat_redis_eval(link, mmcf->cluster,
                                  ngx_http_fishchat_monitor_cluster_reply,
                                  ctx, 3, 4, args);

    if (req == NULL) {
        r->main->count--;
        ctx->waiting = 0;

        return ngx_http_fishchat_monitor_cluster_error(r, "down",
                                       "Redis is unavailable", 0);
    }

    if (ctx->waiting) {
        /* not answered at once (a failed send calls the handler at once) */
        ctx->req = req;
    }

    return NGX_DONE;
}


static void
ngx_http_fishchat_monitor_cluster_cleanup(void *data)
{
    ngx_http_fishchat_monitor_ctx_t *ctx = data;

    if (ctx->waiting && ctx->req) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                       "fishchat monitor: request gone, cluster query "
                       "cancelled");

        ngx_fishchat_redis_cancel(ctx->req);
    }

    ctx->waiting = 0;
    ctx->req = NULL;
}


static void
ngx_http_fishchat_monitor_cluster_reply(redisReply *reply, void *data)
{
    ngx_http_fishchat_monitor_ctx_t *ctx = data;

    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    ctx->waiting = 0;
    ctx->req = NULL;

    r = ctx->request;
    c = r->connection;

    rc = ngx_http_fishchat_monitor_cluster_send(r, reply);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_fishchat_monitor_cluster_send(ngx_http_request_t *r,
    redisReply *reply)
{
    ngx_str_t                           *node;
    ngx_int_t                            total;
    ngx_uint_t                           n;
    redisReply                          *head;
    ngx_fishchat_conf_t                 *fcf;
    ngx_fishchat_json_t                  out;
    ngx_http_fishchat_monitor_server_t  *servers;

    if (reply == NULL) {
        return ngx_http_fishchat_monitor_cluster_error(r, "down",
                                       "Redis did not answer", 0);
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fishchat monitor: the cluster query failed: %*s",
                      (size_t) reply->len, reply->str);

        return ngx_http_fishchat_monitor_cluster_error(r, "error", reply->str,
                                                       reply->len);
    }

    head = (reply->type == REDIS_REPLY_ARRAY && reply->elements % 3 == 1)
           ? reply->element[0] : NULL;

    if (head == NULL || head->type != REDIS_REPLY_ARRAY
        || head->elements != 3
        || head->element[0]->type != REDIS_REPLY_INTEGER
        || head->element[1]->type != REDIS_REPLY_INTEGER
        || head->element[2]->type != REDIS_REPLY_INTEGER)
    {
        return ngx_http_fishchat_monitor_cluster_error(r, "error",
                                       "unexpected reply from Redis", 0);
    }

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    total = (ngx_int_t) head->element[0]->integer;
    n = reply->elements / 3;

    servers = ngx_http_fishchat_monitor_cluster_servers(r, reply, n);
    if (servers == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    node = ngx_http_fishchat_monitor_json_str(r->pool, &fcf->name);
    if (node == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_fishchat_json_init(&out, r->pool, NGX_HTTP_FISHCHAT_MONITOR_BUF);

    ngx_fishchat_json_fmt(&out,
        "{\"node\":\"%V\",\"time\":%T,\"redis\":\"up\",\"servers\":%i,"
        "\"truncated\":%s,\"files\":{\"bytes_stored\":%L,"
        "\"files_stored\":%L},\"nodes\":[",
        node, ngx_time(), total, total > (ngx_int_t) n ? "true" : "false",
        (int64_t) head->element[1]->integer,
        (int64_t) head->element[2]->integer);

    if (ngx_http_fishchat_monitor_cluster_nodes(r, &out, servers, n, fcf)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_fishchat_json_fmt(&out, "]}" CRLF);

    return ngx_http_fishchat_monitor_send(r, NGX_HTTP_OK, "application/json",
                                          &out);
}


/* one entry per node, its servers in it; servers are sorted by node */

static ngx_int_t
ngx_http_fishchat_monitor_cluster_nodes(ngx_http_request_t *r,
    ngx_fishchat_json_t *out, ngx_http_fishchat_monitor_server_t *servers,
    ngx_uint_t n, ngx_fishchat_conf_t *fcf)
{
    ngx_str_t                           *name, prev;
    ngx_int_t                            sessions;
    ngx_uint_t                           i, k, first;
    ngx_http_fishchat_monitor_server_t  *s;

    ngx_str_null(&prev);
    first = 1;

    for (i = 0; i < n; i++) {
        s = &servers[i];

        if (s->address.data == NULL) {
            continue;
        }

        if (!first
            && prev.len == s->node.len
            && ngx_strncmp(prev.data, s->node.data, prev.len) == 0)
        {
            continue;
        }

        prev = s->node;

        sessions = 0;

        for (k = i; k < n; k++) {
            if (servers[k].node.len != s->node.len
                || ngx_strncmp(servers[k].node.data, s->node.data,
                               s->node.len) != 0)
            {
                break;
            }

            sessions += servers[k].sessions;
        }

        name = ngx_http_fishchat_monitor_json_str(r->pool, &s->node);
        if (name == NULL) {
            return NGX_ERROR;
        }

        ngx_fishchat_json_fmt(out,
            "%s{\"node\":\"%V\",\"self\":%s,\"sessions\":%i,\"servers\":[",
            first ? "" : ",", name,
            (s->node.len == fcf->name.len
             && ngx_strncmp(s->node.data, fcf->name.data, s->node.len) == 0)
            ? "true" : "false",
            sessions);

        first = 0;

        if (ngx_http_fishchat_monitor_cluster_node(r, out, servers, i, n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_fishchat_json_fmt(out, "]}");
    }

    return NGX_OK;
}


/* the servers of the node of servers[i], which come one after the other */

static ngx_int_t
ngx_http_fishchat_monitor_cluster_node(ngx_http_request_t *r,
    ngx_fishchat_json_t *out, ngx_http_fishchat_monitor_server_t *servers,
    ngx_uint_t i, ngx_uint_t n)
{
    ngx_str_t                           *addr;
    ngx_uint_t                           k;
    ngx_http_fishchat_monitor_server_t  *s;

    s = &servers[i];

    for (k = i; k < n; k++) {
        if (servers[k].node.len != s->node.len
            || ngx_strncmp(servers[k].node.data, s->node.data,
                           s->node.len) != 0)
        {
            break;
        }

        addr = ngx_http_fishchat_monitor_json_str(r->pool,
                                                  &servers[k].address);
        if (addr == NULL) {
            return NGX_ERROR;
        }

        ngx_fishchat_json_fmt(out,
            "%s{\"address\":\"%V\",\"sessions\":%i,\"expires_in_ms\":%i}",
            k == i ? "" : ",", addr, servers[k].sessions, servers[k].ttl);
    }

    return NGX_OK;
}


/* the live msg servers of the reply, sorted by node and address */

static ngx_http_fishchat_monitor_server_t *
ngx_http_fishchat_monitor_cluster_servers(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t n)
{
    ngx_uint_t                           i;
    ngx_fishchat_beat_t                  beat;
    ngx_http_fishchat_monitor_server_t  *servers, *s;

    servers = ngx_pcalloc(r->pool,
                          (n + 1) * sizeof(ngx_http_fishchat_monitor_server_t));
    if (servers == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        s = &servers[i];

        switch (ngx_fishchat_nodes_entry(reply, i, r->pool, &beat)) {

        case NGX_ERROR:
            return NULL;

        case NGX_DECLINED:
            continue;
        }

        /* the address points into the reply, which goes after this */

        s->address.data = ngx_pstrdup(r->pool, &beat.address);
        if (s->address.data == NULL) {
            return NULL;
        }

        s->address.len = beat.address.len;
        s->ttl = beat.ttl;
        s->node = beat.node;
        s->sessions = ngx_max(beat.sessions, 0);
    }

    ngx_qsort(servers, n, sizeof(ngx_http_fishchat_monitor_server_t),
              ngx_http_fishchat_monitor_cmp_servers);

    return servers;
}


/* by node, then by address */

static int ngx_libc_cdecl
ngx_http_fishchat_monitor_cmp_servers(const void *one, const void *two)
{
    ngx_int_t                            rc;
    ngx_http_fishchat_monitor_server_t  *a, *b;

    a = (ngx_http_fishchat_monitor_server_t *) one;
    b = (ngx_http_fishchat_monitor_server_t *) two;

    rc = ngx_memn2cmp(a->node.data, b->node.data, a->node.len, b->node.len);

    if (rc == 0) {
        rc = ngx_memn2cmp(a->address.data, b->address.data, a->address.len,
                          b->address.len);
    }

    return (rc > 0) - (rc < 0);
}


/* 503 with what is known: "redis" is none, down or error */

static ngx_int_t
ngx_http_fishchat_monitor_cluster_error(ngx_http_request_t *r, char *redis,
    char *text, size_t len)
{
    ngx_str_t            *node, *msg, s;
    ngx_fishchat_conf_t  *fcf;
    ngx_fishchat_json_t   out;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    s.data = (u_char *) text;
    s.len = len ? len : ngx_strlen(text);

    node = ngx_http_fishchat_monitor_json_str(r->pool, &fcf->name);
    msg = ngx_http_fishchat_monitor_json_str(r->pool, &s);

    if (node == NULL || msg == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_fishchat_json_init(&out, r->pool, NGX_HTTP_FISHCHAT_MONITOR_BUF);

    ngx_fishchat_json_fmt(&out,
        "{\"status\":503,\"node\":\"%V\",\"time\":%T,\"redis\":\"%s\","
        "\"error\":\"%V\",\"nodes\":[]}" CRLF,
        node, ngx_time(), redis, msg);

    return ngx_http_fishchat_monitor_send(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "application/json", &out);
}


static ngx_str_t *
ngx_http_fishchat_monitor_json_str(ngx_pool_t *pool, ngx_str_t *s)
{
    size_t      len;
    ngx_str_t  *e;

    len = s->len + ngx_escape_json(NULL, s->data, s->len);

    e = ngx_palloc(pool, sizeof(ngx_str_t) + len);
    if (e == NULL) {
        return NULL;
    }

    e->data = (u_char *) e + sizeof(ngx_str_t);
    e->len = (u_char *) ngx_escape_json(e->data, s->data, s->len) - e->data;

    return e;
}


/* a label value of the Prometheus text format: \\, \" and \n escaped */

static ngx_str_t *
ngx_http_fishchat_monitor_label_str(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char     *p;
    ngx_str_t  *e;
    ngx_uint_t  i;

    e = ngx_palloc(pool, sizeof(ngx_str_t) + 2 * s->len);
    if (e == NULL) {
        return NULL;
    }

    e->data = (u_char *) e + sizeof(ngx_str_t);
    p = e->data;

    for (i = 0; i < s->len; i++) {
        switch (s->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s->data[i];
        }
    }

    e->len = p - e->data;

    return e;
}


/*
 * Each worker publishes its gauges into its slot every second, and pings
 * Redis on its command link to know the round trip.
 */

static void
ngx_http_fishchat_monitor_publish(ngx_event_t *ev)
{
    ngx_time_t                          *tp;
    const char                          *argv[1];
    size_t                               argvlen[1];
    ngx_fishchat_slot_t                 *slot, gauges;
    ngx_fishchat_redis_t                *link;
    ngx_fishchat_redis_stats_t           st;
    ngx_http_fishchat_monitor_worker_t  *w;

    w = ev->data;

    slot = ngx_fishchat_worker_slot();
    link = ngx_fishchat_redis_link();

    if (slot) {
        ngx_memzero(&gauges, sizeof(ngx_fishchat_slot_t));

        ngx_fishchat_redis_stats(&st, &w->topics);
        ngx_fishchat_stats_collect(&gauges);

        tp = ngx_timeofday();

        slot->connections = ngx_cycle->connection_n
                            - ngx_cycle->free_connection_n;
        slot->redis = st.command;
        slot->redis_sub = st.subscriber;
        slot->redis_waiting = st.waiting;
        slot->redis_rtt = (st.command == NGX_FISHCHAT_REDIS_LINK_UP)
                          ? w->rtt : 0;
        slot->channels = st.channels;
        slot->topics = st.matched;
        slot->queued = gauges.queued;
        slot->queues = gauges.queues;
        slot->backlog = gauges.backlog;
        slot->stalled = gauges.stalled;
        slot->updated = (ngx_atomic_t) tp->sec * 1000 + tp->msec;
    }

    if (!w->pinging && ngx_fishchat_redis_up(link)) {
        argv[0] = "PING";
        argvlen[0] = sizeof("PING") - 1;

        w->pinging = 1;
        w->ping_sent = ngx_http_fishchat_monitor_usec();

        if (ngx_fishchat_redis_command(link, ngx_http_fishchat_monitor_pong,
                                       w, 1, argv, argvlen)
            == NULL)
        {
            w->pinging = 0;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_FISHCHAT_MONITOR_PERIOD);
}


static void
ngx_http_fishchat_monitor_pong(redisReply *reply, void *data)
{
    ngx_http_fishchat_monitor_worker_t *w = data;

    uint64_t              rtt;
    ngx_fishchat_slot_t  *slot;

    w->pinging = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        w->rtt = 0;
        return;
    }

    rtt = ngx_http_fishchat_monitor_usec() - w->ping_sent;

    /* 0 means "unknown" */
    w->rtt = rtt ? (ngx_atomic_t) rtt : 1;

    slot = ngx_fishchat_worker_slot();

    if (slot) {
        slot->redis_rtt = w->rtt;
    }
}


static uint64_t
ngx_http_fishchat_monitor_usec(void)
{
#if (NGX_HAVE_CLOCK_MONOTONIC)
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
#else
    struct timeval   tv;

    ngx_gettimeofday(&tv);

    return (uint64_t) tv.tv_sec * 1000000 + tv.tv_usec;
#endif
}


/* configuration */

static void *
ngx_http_fishchat_monitor_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_fishchat_monitor_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_http_fishchat_monitor_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->enabled = 0;
     *     mmcf->cluster = NULL;
     */

    return mmcf;
}


static void *
ngx_http_fishchat_monitor_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fishchat_monitor_loc_conf_t  *mlcf;

    mlcf = ngx_palloc(cf->pool, sizeof(ngx_http_fishchat_monitor_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    mlcf->view = NGX_CONF_UNSET_UINT;

    return mlcf;
}


static char *
ngx_http_fishchat_monitor_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_fishchat_monitor_loc_conf_t *prev = parent;
    ngx_http_fishchat_monitor_loc_conf_t *conf = child;

    ngx_conf_merge_uint_value(conf->view, prev->view,
                              NGX_HTTP_FISHCHAT_MONITOR_AUTO);

    return NGX_CONF_OK;
}


static char *
ngx_http_fishchat_monitor(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fishchat_monitor_loc_conf_t *mlcf = conf;

    ngx_str_t                              *value;
    ngx_uint_t                              i;
    ngx_conf_enum_t                        *e;
    ngx_http_core_loc_conf_t               *clcf;
    ngx_http_fishchat_monitor_main_conf_t  *mmcf;

    if (mlcf->view != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    mlcf->view = NGX_HTTP_FISHCHAT_MONITOR_AUTO;

    if (cf->args->nelts == 2) {
        value = cf->args->elts;
        e = ngx_http_fishchat_monitor_views;

        for (i = 0; e[i].name.len; i++) {
            if (e[i].name.len == value[1].len
                && ngx_strcmp(e[i].name.data, value[1].data) == 0)
            {
                mlcf->view = e[i].value;
                break;
            }
        }

        if (mlcf->view == NGX_HTTP_FISHCHAT_MONITOR_AUTO) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid view \"%V\": dashboard, status, "
                               "cluster or metrics expected", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_fishchat_monitor_handler;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_fishchat_monitor_module);

    if (!mmcf->enabled) {
        mmcf->enabled = 1;

        /* the workers publish their gauges in the zone */

        if (ngx_fishchat_zone_add(cf) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        mmcf->cluster = ngx_fishchat_redis_script(cf,
                                     ngx_http_fishchat_monitor_cluster_lua);
        if (mmcf->cluster == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_fishchat_monitor_init_process(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t                    *fcf;
    ngx_http_fishchat_monitor_worker_t     *w;
    ngx_http_fishchat_monitor_main_conf_t  *mmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    mmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                             ngx_http_fishchat_monitor_module);

    if (mmcf == NULL || !mmcf->enabled) {
        return NGX_OK;
    }

    fcf = ngx_fishchat_get_conf(cycle);
    w = &ngx_http_fishchat_monitor_worker;

    ngx_memzero(w, sizeof(ngx_http_fishchat_monitor_worker_t));

    w->topics = fcf->topic_channels;

    /* the cluster view and the round trip need the link */

    if (ngx_fishchat_redis_start(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_fishchat_event_init(&w->timer, ngx_http_fishchat_monitor_publish,
                            w, cycle->log);
    w->timer.cancelable = 1;

    ngx_http_fishchat_monitor_publish(&w->timer);

    return NGX_OK;
}
