
/*
 * bench/fuzz: the frame type of src/ngx_fishchat_common/ngx_fishchat.h,
 * field for field (frame_fuzz.c checks the sizes against its own copy of
 * the maximum)
 */

#ifndef _NGX_FISHCHAT_H_INCLUDED_
#define _NGX_FISHCHAT_H_INCLUDED_

#define NGX_FISHCHAT_MAX_ARGS  8

typedef struct {
    ngx_str_t                   cmd;
    ngx_uint_t                  nargs;
    ngx_str_t                   args[NGX_FISHCHAT_MAX_ARGS];
    void                       *root;
} ngx_fishchat_frame_t;

ngx_int_t ngx_fishchat_frame_fast(ngx_str_t *frame, ngx_fishchat_frame_t *m);
ngx_int_t ngx_fishchat_frame_json(ngx_str_t *frame, ngx_fishchat_frame_t *m,
    u_char *err, size_t errlen);
void ngx_fishchat_frame_free(ngx_fishchat_frame_t *m);
size_t ngx_fishchat_utf8_len(u_char *p, u_char *last);

#endif
