
/*
 * FishChat for nginx: the monitor role (first part).
 *
 * "fishchat_monitor;" in a location answers with the counters of this
 * node as JSON, read from the shared zone: every live worker and, in each,
 * every server block of the suite.  No Redis round trip is needed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"


static ngx_int_t ngx_http_fishchat_monitor_handler(ngx_http_request_t *r);
static u_char *ngx_http_fishchat_monitor_json(u_char *p,
    ngx_fishchat_conf_t *fcf);
static char *ngx_http_fishchat_monitor(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_fishchat_monitor_commands[] = {

    { ngx_string("fishchat_monitor"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fishchat_monitor,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fishchat_monitor_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_fishchat_monitor_module = {
    NGX_MODULE_V1,
    &ngx_http_fishchat_monitor_module_ctx, /* module context */
    ngx_http_fishchat_monitor_commands,    /* module directives */
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
    "not_confirmed"
};


#define NGX_HTTP_FISHCHAT_MONITOR_SERVER_LEN                                 \
    (sizeof("{\"server\":\"\",\"active\":,\"accepted\":,\"sessions\":,"    \
            "\"messages\":,\"frames_in\":,"                                  \
            "\"frames_out\":,\"bytes_in\":,\"bytes_out\":,\"errors\":,"      \
            "\"error\":{}},") - 1                                            \
     + 10 * NGX_ATOMIC_T_LEN                                                 \
     + NGX_FISHCHAT_ERR_LAST * (sizeof("\"\":,") + 20 + NGX_ATOMIC_T_LEN))

#define NGX_HTTP_FISHCHAT_MONITOR_WORKER_LEN                                 \
    (sizeof("{\"slot\":,\"pid\":,\"started\":,\"servers\":[]},") - 1           \
     + 3 * NGX_ATOMIC_T_LEN)


static ngx_int_t
ngx_http_fishchat_monitor_handler(ngx_http_request_t *r)
{
    size_t                size, labels;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_str_t            *label;
    ngx_uint_t            i, n;
    ngx_chain_t           out;
    ngx_fishchat_conf_t  *fcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    n = fcf->servers.nelts;
    label = fcf->servers.elts;
    labels = 0;

    for (i = 0; i < n; i++) {
        labels += 6 * label[i].len;
    }

    size = sizeof("{\"version\":\"\",\"nginx\":\"\",\"node\":\"\","
                  "\"pid\":,\"time\":,\"workers\":[]}\n") - 1
           + sizeof(NGX_FISHCHAT_VERSION) + sizeof(NGINX_VERSION)
           + 6 * fcf->name.len + 2 * NGX_ATOMIC_T_LEN;

    if (fcf->zone) {
        size += NGX_MAX_PROCESSES * NGX_HTTP_FISHCHAT_MONITOR_WORKER_LEN;

        /* only live workers get a server list, but we can't know how many */
        size += NGX_MAX_PROCESSES / 16
                * (n * NGX_HTTP_FISHCHAT_MONITOR_SERVER_LEN + labels);
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_fishchat_monitor_json(b->pos, fcf);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_fishchat_monitor_json(u_char *p, ngx_fishchat_conf_t *fcf)
{
    u_char                   *counters, *workers;
    ngx_str_t                *label;
    ngx_uint_t                i, k, e, live;
    ngx_fishchat_slot_t      *slot;
    ngx_fishchat_counters_t  *c;

    p = ngx_sprintf(p, "{\"version\":\"%s\",\"nginx\":\"%s\",\"node\":\"",
                    NGX_FISHCHAT_VERSION, NGINX_VERSION);
    p = (u_char *) ngx_escape_json(p, fcf->name.data, fcf->name.len);
    p = ngx_sprintf(p, "\",\"pid\":%P,\"time\":%T,\"workers\":[",
                    ngx_pid, ngx_time());

    workers = p;
    live = 0;
    label = fcf->servers.elts;

    for (i = 0; fcf->zone && i < NGX_MAX_PROCESSES; i++) {

        counters = ngx_fishchat_zone_slot(fcf->zone, i, &slot);

        if (counters == NULL || slot->pid == 0) {
            continue;
        }

        if (live++ == NGX_MAX_PROCESSES / 16) {
            break;
        }

        p = ngx_sprintf(p, "{\"slot\":%ui,\"pid\":%P,\"started\":%T,"
                        "\"servers\":[", i, slot->pid, slot->started);

        for (k = 0; k < fcf->servers.nelts; k++) {
            c = (ngx_fishchat_counters_t *) counters + k;

            p = ngx_sprintf(p, "{\"server\":\"");
            p = (u_char *) ngx_escape_json(p, label[k].data, label[k].len);
            p = ngx_sprintf(p, "\",\"active\":%A,\"accepted\":%A,"
                            "\"sessions\":%A,\"messages\":%A,"
                            "\"frames_in\":%A,\"frames_out\":%A,"
                            "\"bytes_in\":%A,\"bytes_out\":%A,"
                            "\"errors\":%A,\"error\":{",
                            c->active, c->accepted, c->sessions,
                            c->messages, c->frames_in,
                            c->frames_out, c->bytes_in, c->bytes_out,
                            c->errors);

            for (e = 0; e < NGX_FISHCHAT_ERR_LAST; e++) {
                p = ngx_sprintf(p, "\"%s\":%A,",
                                ngx_http_fishchat_monitor_errors[e],
                                c->error[e]);
            }

            p[-1] = '}';
            p = ngx_sprintf(p, "},");
        }

        if (fcf->servers.nelts) {
            p--;
        }

        p = ngx_sprintf(p, "]},");
    }

    if (p != workers) {
        p--;
    }

    return ngx_sprintf(p, "]}\n");
}


static char *
ngx_http_fishchat_monitor(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_fishchat_monitor_handler;

    return NGX_CONF_OK;
}
