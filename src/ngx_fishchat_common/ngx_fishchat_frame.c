
/*
 * FishChat for nginx: the frame codec of the seed's wire protocol.
 *
 * A frame is a 4-byte big-endian length N and N bytes of JSON:
 *
 *     {"CmdName":"SEND_MESSAGE_P2P","Args":["bob","hello","alice"]}\n
 *
 * The parser is incremental: it keeps at most the 3 bytes of a split
 * length in its state, returns whole frames in place from the read buffer,
 * and copies a frame into memory of its own only while the frame is split
 * across reads, so an idle session holds no buffer at all.
 *
 * Frames are decoded in ngx_fishchat_frame_decode.c.  Replies have one
 * fixed shape and are encoded here directly, escaped as Go's json.Encoder
 * of the seed does (HTML characters and U+2028/U+2029 included, invalid
 * UTF-8 replaced).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


enum {
    sw_len0 = 0,
    sw_len1,
    sw_len2,
    sw_len3,
    sw_payload
};


static ngx_str_t  ngx_fishchat_err_codes[] = {
    ngx_string("BAD_FRAME"),
    ngx_string("FRAME_TOO_LARGE"),
    ngx_string("UNKNOWN_COMMAND"),
    ngx_string("BAD_ARGS"),
    ngx_string("TIMEOUT"),
    ngx_string("NO_MSG_SERVER"),
    ngx_string("REDIS_UNAVAILABLE"),
    ngx_string("NOT_LOGGED_IN"),
    ngx_string("FORBIDDEN"),
    ngx_string("INBOX_FULL"),
    ngx_string("RATE_LIMITED"),
    ngx_string("KICKED"),
    ngx_string("SLOW_READER"),
    ngx_string("TOPIC_EXISTS"),
    ngx_string("NO_SUCH_TOPIC"),
    ngx_string("NOT_MEMBER"),
    ngx_string("NOT_CONFIRMED"),
    ngx_string("DUPLICATE_UUID"),
    ngx_string("AUTH_FAILED"),
    ngx_string("TOKEN_EXPIRED"),
    ngx_string("NO_SUCH_STREAM"),
    ngx_string("FILE_TOO_LARGE"),
    ngx_string("QUOTA_EXCEEDED"),
    ngx_string("NO_SUCH_FILE"),
    ngx_string("FILE_BUSY")
};


static ngx_str_t  ngx_fishchat_error_cmd = ngx_string("ERROR");


void
ngx_fishchat_parser_init(ngx_fishchat_parser_t *p, size_t max)
{
    ngx_memzero(p, sizeof(ngx_fishchat_parser_t));
    p->max = max;
}


void
ngx_fishchat_parser_free(ngx_fishchat_parser_t *p)
{
    if (p->buf) {
        ngx_free(p->buf);
        p->buf = NULL;
    }

    p->owned = 0;
    p->have = 0;
    p->state = sw_len0;
}


/*
 * Returns NGX_OK with the next whole frame in "frame", NGX_AGAIN when the
 * buffer is used up, NGX_FISHCHAT_FRAME_EMPTY or NGX_FISHCHAT_FRAME_TOO_LARGE
 * for a length the protocol does not allow, NGX_ERROR when out of memory.
 * A frame returned from the parser's own memory stays valid until the next
 * call.
 */

ngx_int_t
ngx_fishchat_parse_frame(ngx_fishchat_parser_t *p, ngx_buf_t *b,
    ngx_str_t *frame, ngx_log_t *log)
{
    size_t   n;
    u_char  *pos;

    if (p->owned) {
        ngx_free(p->buf);
        p->buf = NULL;
        p->owned = 0;
    }

    pos = b->pos;

    while (p->state < sw_payload) {

        if (pos == b->last) {
            b->pos = pos;
            return NGX_AGAIN;
        }

        p->length = (p->length << 8) | *pos++;
        p->state++;
    }

    b->pos = pos;

    if (p->length == 0) {
        return NGX_FISHCHAT_FRAME_EMPTY;
    }

    if (p->length > p->max) {
        return NGX_FISHCHAT_FRAME_TOO_LARGE;
    }

    if (p->buf == NULL && (size_t) (b->last - pos) >= p->length) {

        /* the whole frame is in the read buffer */

        frame->data = pos;
        frame->len = p->length;
        b->pos = pos + p->length;

        p->state = sw_len0;
        p->length = 0;

        return NGX_OK;
    }

    if (p->buf == NULL) {
        p->buf = ngx_alloc(p->length, log);
        if (p->buf == NULL) {
            return NGX_ERROR;
        }

        p->have = 0;
    }

    n = ngx_min((size_t) (b->last - pos), p->length - p->have);

    ngx_memcpy(p->buf + p->have, pos, n);
    p->have += n;
    b->pos = pos + n;

    if (p->have < p->length) {
        return NGX_AGAIN;
    }

    frame->data = p->buf;
    frame->len = p->length;

    p->owned = 1;
    p->state = sw_len0;
    p->length = 0;
    p->have = 0;

    return NGX_OK;
}


/*
 * Escaped as Go's json.Encoder does: besides '"', '\' and control
 * characters, '<', '>', '&', U+2028 and U+2029; a byte that is not part of
 * valid UTF-8 becomes U+FFFD, so that a reply is always valid JSON.
 */

size_t
ngx_fishchat_json_escape_len(ngx_str_t *s)
{
    u_char  *p, *last;
    size_t   n, len;

    n = 0;
    last = s->data + s->len;

    for (p = s->data; p < last; p++) {

        if (*p >= 0x80) {
            len = ngx_fishchat_utf8_len(p, last);

            if (len == 0) {
                n += sizeof("\\ufffd") - 1;
                continue;
            }

            /* U+2028, U+2029 */
            n += (len == 3 && p[0] == 0xe2 && p[1] == 0x80
                  && (p[2] & 0xfe) == 0xa8)
                 ? sizeof("\\u2028") - 1 : len;
            p += len - 1;
            continue;
        }

        switch (*p) {

        case '"': case '\\': case '\n': case '\r': case '\t':
            n += 2;
            break;

        case '<': case '>': case '&':
            n += 6;
            break;

        default:
            n += (*p < 0x20) ? 6 : 1;
        }
    }

    return n;
}


u_char *
ngx_fishchat_json_escape(u_char *dst, ngx_str_t *s)
{
    u_char         *p, *last;
    size_t          len;
    static u_char   hex[] = "0123456789abcdef";

    last = s->data + s->len;

    for (p = s->data; p < last; p++) {

        if (*p >= 0x80) {
            len = ngx_fishchat_utf8_len(p, last);

            if (len == 0) {
                dst = ngx_cpymem(dst, "\\ufffd", sizeof("\\ufffd") - 1);
                continue;
            }

            if (len == 3 && p[0] == 0xe2 && p[1] == 0x80
                && (p[2] & 0xfe) == 0xa8)
            {
                dst = ngx_cpymem(dst, "\\u202", sizeof("\\u202") - 1);
                *dst++ = (p[2] == 0xa8) ? '8' : '9';

            } else {
                dst = ngx_cpymem(dst, p, len);
            }

            p += len - 1;
            continue;
        }

        switch (*p) {

        case '"': case '\\':
            *dst++ = '\\';
            *dst++ = *p;
            break;

        case '\n':
            *dst++ = '\\'; *dst++ = 'n';
            break;

        case '\r':
            *dst++ = '\\'; *dst++ = 'r';
            break;

        case '\t':
            *dst++ = '\\'; *dst++ = 't';
            break;

        case '<': case '>': case '&':
            dst = ngx_cpymem(dst, "\\u00", 4);
            *dst++ = hex[*p >> 4];
            *dst++ = hex[*p & 0xf];
            break;

        default:
            if (*p < 0x20) {
                dst = ngx_cpymem(dst, "\\u00", 4);
                *dst++ = hex[*p >> 4];
                *dst++ = hex[*p & 0xf];
                break;
            }

            *dst++ = *p;
        }
    }

    return dst;
}


/* the size of the whole frame, the 4 bytes of its length included */

size_t
ngx_fishchat_frame_size(ngx_str_t *cmd, ngx_str_t *args, ngx_uint_t nargs)
{
    size_t      n;
    ngx_uint_t  i;

    n = 4 + sizeof("{\"CmdName\":\"\",\"Args\":[]}\n") - 1
        + ngx_fishchat_json_escape_len(cmd);

    for (i = 0; i < nargs; i++) {
        n += sizeof("\"\",") - 1 + ngx_fishchat_json_escape_len(&args[i]);
    }

    if (nargs) {
        n--;
    }

    return n;
}


u_char *
ngx_fishchat_frame_write(u_char *p, ngx_str_t *cmd, ngx_str_t *args,
    ngx_uint_t nargs)
{
    u_char      *start;
    uint32_t     len;
    ngx_uint_t   i;

    start = p;
    p += 4;

    p = ngx_cpymem(p, "{\"CmdName\":\"", sizeof("{\"CmdName\":\"") - 1);
    p = ngx_fishchat_json_escape(p, cmd);
    p = ngx_cpymem(p, "\",\"Args\":[", sizeof("\",\"Args\":[") - 1);

    for (i = 0; i < nargs; i++) {
        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        p = ngx_fishchat_json_escape(p, &args[i]);
        *p++ = '"';
    }

    p = ngx_cpymem(p, "]}\n", 3);

    len = (uint32_t) (p - start - 4);

    start[0] = (u_char) (len >> 24);
    start[1] = (u_char) (len >> 16);
    start[2] = (u_char) (len >> 8);
    start[3] = (u_char) len;

    return p;
}


ngx_buf_t *
ngx_fishchat_frame_buf(ngx_pool_t *pool, ngx_str_t *cmd, ngx_str_t *args,
    ngx_uint_t nargs)
{
    ngx_buf_t  *b;

    b = ngx_create_temp_buf(pool, ngx_fishchat_frame_size(cmd, args, nargs));
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_fishchat_frame_write(b->pos, cmd, args, nargs);

    return b;
}


/* the frame in memory of its own (ngx_alloc()): the caller frees it */

ngx_int_t
ngx_fishchat_frame_alloc(ngx_str_t *frame, ngx_str_t *cmd, ngx_str_t *args,
    ngx_uint_t nargs, ngx_log_t *log)
{
    u_char  *p;

    p = ngx_alloc(ngx_fishchat_frame_size(cmd, args, nargs), log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    frame->len = ngx_fishchat_frame_write(p, cmd, args, nargs) - p;
    frame->data = p;

    return NGX_OK;
}


/*
 * A refusal of a stream role: its text, formatted into "buf", counted in
 * the server block's counters and logged at info ("fishchat <role>:
 * <CODE>: <text>").
 */

ngx_str_t
ngx_fishchat_refusal(ngx_log_t *log, char *role,
    ngx_fishchat_counters_t *counters, ngx_fishchat_err_e err,
    ngx_uint_t fatal, u_char *buf, size_t size, const char *fmt,
    va_list args)
{
    ngx_str_t  text;

    text.data = buf;
    text.len = ngx_vslprintf(buf, buf + size, fmt, args) - buf;

    counters->errors++;
    counters->error[err]++;

    ngx_log_error(NGX_LOG_INFO, log, 0, "fishchat %s: %V: %V%s", role,
                  ngx_fishchat_err_code(err), &text,
                  fatal ? ", closing" : "");

    return text;
}


ngx_str_t *
ngx_fishchat_err_code(ngx_fishchat_err_e err)
{
    return &ngx_fishchat_err_codes[err];
}


/* ERROR <code> <text> */

ngx_buf_t *
ngx_fishchat_error_buf(ngx_pool_t *pool, ngx_fishchat_err_e err,
    ngx_str_t *text)
{
    ngx_str_t  args[2];

    args[0] = ngx_fishchat_err_codes[err];
    args[1] = *text;

    return ngx_fishchat_frame_buf(pool, &ngx_fishchat_error_cmd, args, 2);
}
