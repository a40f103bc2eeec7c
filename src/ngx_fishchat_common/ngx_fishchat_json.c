
/*
 * FishChat for nginx: the JSON writer of the HTTP roles (manager, monitor).
 *
 * A body is written into a chain of pool buffers that grows as needed
 * (never copied); strings are escaped as the frame encoder escapes them,
 * so that any bytes make valid JSON.  Running out of memory, or past
 * NGX_FISHCHAT_JSON_MAX, sets "failed": the caller answers 500.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


#define NGX_FISHCHAT_JSON_MAX  (16 * 1024 * 1024)


static u_char *ngx_fishchat_json_reserve(ngx_fishchat_json_t *j,
    size_t size);
static void ngx_fishchat_json_wrote(ngx_fishchat_json_t *j, u_char *p);


void
ngx_fishchat_json_init(ngx_fishchat_json_t *j, ngx_pool_t *pool, size_t size)
{
    j->pool = pool;
    j->first = NULL;
    j->last = NULL;
    j->size = 0;
    j->chunk = ngx_max(size, 256);
    j->failed = 0;
}


/*
 * At least "size" bytes free at the end of the last buffer: a new buffer
 * when they are not there.
 */

static u_char *
ngx_fishchat_json_reserve(ngx_fishchat_json_t *j, size_t size)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (j->failed) {
        return NULL;
    }

    if (j->last && (size_t) (j->last->buf->end - j->last->buf->last) >= size)
    {
        return j->last->buf->last;
    }

    if (size > NGX_FISHCHAT_JSON_MAX) {
        j->failed = 1;
        return NULL;
    }

    b = ngx_create_temp_buf(j->pool, ngx_max(size, j->chunk));
    if (b == NULL) {
        j->failed = 1;
        return NULL;
    }

    if (j->last && j->last->buf->last == j->last->buf->pos) {
        /* an empty buffer is replaced, never sent */
        j->last->buf = b;
        return b->last;
    }

    cl = ngx_alloc_chain_link(j->pool);
    if (cl == NULL) {
        j->failed = 1;
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    if (j->last) {
        j->last->next = cl;

    } else {
        j->first = cl;
    }

    j->last = cl;

    return b->last;
}


/* the bytes written at the end of the last buffer, up to "p" */

static void
ngx_fishchat_json_wrote(ngx_fishchat_json_t *j, u_char *p)
{
    j->size += p - j->last->buf->last;
    j->last->buf->last = p;
}


/*
 * Formatted text (punctuation, names, numbers, strings escaped already):
 * what does not fit where it is written is written again in a buffer four
 * times as large.
 */

void ngx_cdecl
ngx_fishchat_json_fmt(ngx_fishchat_json_t *j, const char *fmt, ...)
{
    u_char     *p, *end;
    size_t      size;
    va_list     args;
    ngx_buf_t  *b;

    size = 256;

    for ( ;; ) {
        p = ngx_fishchat_json_reserve(j, size);
        if (p == NULL) {
            return;
        }

        b = j->last->buf;
        end = b->end;

        va_start(args, fmt);
        p = ngx_vslprintf(p, end, fmt, args);
        va_end(args);

        /* a full buffer may mean a cut */

        if (p < end) {
            ngx_fishchat_json_wrote(j, p);
            return;
        }

        size = 4 * (size_t) (end - b->start);
    }
}


/* a JSON string of any bytes */

void
ngx_fishchat_json_str(ngx_fishchat_json_t *j, ngx_str_t *s)
{
    u_char  *p;

    p = ngx_fishchat_json_reserve(j, ngx_fishchat_json_escape_len(s) + 2);
    if (p == NULL) {
        return;
    }

    *p++ = '"';
    p = ngx_fishchat_json_escape(p, s);
    *p++ = '"';

    ngx_fishchat_json_wrote(j, p);
}


/* a string of a Redis reply, or null */

void
ngx_fishchat_json_rstr(ngx_fishchat_json_t *j, redisReply *e)
{
    ngx_str_t  s;

    if (e == NULL || ngx_fishchat_redis_str(e, &s) != NGX_OK) {
        ngx_fishchat_json_fmt(j, "null");
        return;
    }

    ngx_fishchat_json_str(j, &s);
}


/* a number of a Redis reply (an integer, or a string of digits), or null */

void
ngx_fishchat_json_rnum(ngx_fishchat_json_t *j, redisReply *e)
{
    size_t  i;

    if (e && e->type == REDIS_REPLY_INTEGER) {
        ngx_fishchat_json_fmt(j, "%L", (int64_t) e->integer);
        return;
    }

    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len == 0
        || e->len > NGX_INT64_LEN)
    {
        ngx_fishchat_json_fmt(j, "null");
        return;
    }

    for (i = 0; i < e->len; i++) {
        if (e->str[i] < '0' || e->str[i] > '9') {
            ngx_fishchat_json_fmt(j, "null");
            return;
        }
    }

    ngx_fishchat_json_fmt(j, "%*s", (size_t) e->len, e->str);
}


/* what was written, as one string of the pool (a field to keep) */

ngx_int_t
ngx_fishchat_json_flatten(ngx_fishchat_json_t *j, ngx_str_t *s)
{
    u_char       *p;
    ngx_chain_t  *cl;

    if (j->failed) {
        return NGX_ERROR;
    }

    s->len = (size_t) j->size;
    s->data = ngx_pnalloc(j->pool, s->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    p = s->data;

    for (cl = j->first; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    *p = '\0';

    return NGX_OK;
}
