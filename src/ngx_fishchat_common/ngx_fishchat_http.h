
/*
 * FishChat for nginx: what the HTTP roles (manager, monitor, and those to
 * come) share: a JSON response and the JSON error of every role.
 */


#ifndef _NGX_FISHCHAT_HTTP_H_INCLUDED_
#define _NGX_FISHCHAT_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"


ngx_int_t ngx_fishchat_http_access(ngx_conf_t *cf, ngx_http_handler_pt h);
ngx_int_t ngx_fishchat_http_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);
ngx_int_t ngx_fishchat_http_send(ngx_http_request_t *r, ngx_uint_t status,
    char *type, ngx_fishchat_json_t *j);
ngx_int_t ngx_cdecl ngx_fishchat_http_error(ngx_http_request_t *r,
    char *role, ngx_uint_t status, char *code, const char *fmt, ...);
void ngx_fishchat_files_answered(ngx_http_request_t *r, ngx_int_t rc);


#endif /* _NGX_FISHCHAT_HTTP_H_INCLUDED_ */
