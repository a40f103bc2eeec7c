
/*
 * FishChat for nginx: the JSON responses of the HTTP roles.
 *
 * Part of the core module when nginx has HTTP (see config).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat_http.h"


ngx_int_t
ngx_fishchat_http_header(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->next = NULL;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;

    return NGX_OK;
}


/* a handler of the access phase (the media and files locations) */

ngx_int_t
ngx_fishchat_http_access(ngx_conf_t *cf, ngx_http_handler_pt h)
{
    ngx_http_handler_pt        *ph;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    ph = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (ph == NULL) {
        return NGX_ERROR;
    }

    *ph = h;

    return NGX_OK;
}


/* the response, or its header only (HEAD); for a content handler */

ngx_int_t
ngx_fishchat_http_send(ngx_http_request_t *r, ngx_uint_t status, char *type,
    ngx_fishchat_json_t *j)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    if (j->failed || j->first == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (cl = j->first; cl; cl = cl->next) {
        cl->buf->last_buf = 0;
        cl->buf->last_in_chain = 0;
    }

    j->last->buf->last_buf = (r == r->main) ? 1 : 0;
    j->last->buf->last_in_chain = 1;

    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = status;
    r->headers_out.content_length_n = j->size;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, j->first);
}


/*
 * {"error":{"code":"<CODE>","message":"<text>"}} and one line in the log,
 * "fishchat <role>: <status> <CODE>: <text>" (info; error for a 500).
 * A 503 says when to try again, a 401 how to authenticate.  Returns what
 * to finalize the request with.
 */

ngx_int_t ngx_cdecl
ngx_fishchat_http_error(ngx_http_request_t *r, char *role, ngx_uint_t status,
    char *code, const char *fmt, ...)
{
    u_char              *p;
    va_list              args;
    ngx_str_t            text, v;
    ngx_uint_t           level;
    ngx_fishchat_json_t  j;
    u_char               buf[256];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    text.data = buf;
    text.len = p - buf;

    level = (status == NGX_HTTP_INTERNAL_SERVER_ERROR) ? NGX_LOG_ERR
                                                        : NGX_LOG_INFO;

    ngx_log_error(level, r->connection->log, 0,
                  "fishchat %s: %ui %s: %V", role, status, code, &text);

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ngx_str_set(&v, "1");

        if (ngx_fishchat_http_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (status == NGX_HTTP_UNAUTHORIZED) {
        ngx_str_set(&v, "Bearer realm=\"fishchat\"");

        if (ngx_fishchat_http_header(r, "WWW-Authenticate", &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_fishchat_json_init(&j, r->pool, 128 + 6 * text.len);

    ngx_fishchat_json_fmt(&j, "{\"error\":{\"code\":\"%s\",\"message\":",
                          code);
    ngx_fishchat_json_str(&j, &text);
    ngx_fishchat_json_fmt(&j, "}}\n");

    return ngx_fishchat_http_send(r, status, "application/json", &j);
}


/*
 * The files location finalizes a request with "rc": an upload (PUT)
 * refused, answered 400 or more, is counted (ngx_fishchat_files_stats_t)
 */

void
ngx_fishchat_files_answered(ngx_http_request_t *r, ngx_int_t rc)
{
    if (r->method == NGX_HTTP_PUT
        && (rc >= NGX_HTTP_BAD_REQUEST
            || r->headers_out.status >= NGX_HTTP_BAD_REQUEST))
    {
        ngx_fishchat_files_add(uploads_refused, 1);
    }
}
