
/* bench/fuzz: see ngx_config.h */

#ifndef _NGX_CORE_H_INCLUDED_
#define _NGX_CORE_H_INCLUDED_

typedef unsigned char  u_char;

typedef struct {
    size_t      len;
    u_char     *data;
} ngx_str_t;

#define NGX_OK          0
#define NGX_ERROR      -1
#define NGX_DECLINED   -5

#define ngx_memcmp(a, b, n)  memcmp(a, b, n)

/* the error texts are not compared: nothing is written */
static inline u_char *
ngx_snprintf(u_char *buf, size_t max, const char *fmt, ...)
{
    (void) max;
    (void) fmt;
    return buf;
}

#endif
