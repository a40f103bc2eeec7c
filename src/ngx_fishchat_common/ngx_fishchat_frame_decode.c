
/*
 * FishChat for nginx: the decoding of a frame's JSON.
 *
 * The seed's clients, and ours, write every frame in one shape, with no
 * white space and plain strings:
 *
 *     {"CmdName":"SEND_MESSAGE_P2P","Args":["bob","hello","alice"]}\n
 *
 * That shape is decoded here in one pass over the bytes, the strings left
 * where they are (ngx_fishchat_frame_fast()).  Anything else (a string
 * with an escape or a control character, invalid UTF-8, white space,
 * other fields, another order, an error) goes to jansson, as every frame
 * did before (ngx_fishchat_frame_json()): it validates UTF-8, rejects NUL
 * characters in strings and trailing garbage, and decodes from a buffer
 * that is not NUL-terminated (json_loadb).  So the answer to any frame is
 * jansson's; the fast path only gets there sooner.  bench/fuzz checks
 * that, byte for byte, on whatever libFuzzer makes of the frames of t/.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_fishchat.h"


static ngx_int_t ngx_fishchat_frame_string(u_char **pp, u_char *last,
    ngx_str_t *s);


/*
 * The seed's shape: an object with a string "CmdName" and an array of
 * strings "Args" (absent or null means none); other fields are ignored.
 * Strings point into the frame, or into m->root; valid until
 * ngx_fishchat_frame_free().
 */

ngx_int_t
ngx_fishchat_frame_decode(ngx_str_t *frame, ngx_fishchat_frame_t *m,
    u_char *err, size_t errlen)
{
    if (ngx_fishchat_frame_fast(frame, m) == NGX_OK) {
        return NGX_OK;
    }

    return ngx_fishchat_frame_json(frame, m, err, errlen);
}


/*
 * {"CmdName":"<s>","Args":[<s>,...]} with optional JSON white space after
 * it, <s> a non-empty command and plain strings (no escape, no control
 * character, valid UTF-8), at most NGX_FISHCHAT_MAX_ARGS of them.
 * NGX_DECLINED: not that shape; jansson decides.
 */

ngx_int_t
ngx_fishchat_frame_fast(ngx_str_t *frame, ngx_fishchat_frame_t *m)
{
    u_char      *p, *last;
    ngx_uint_t   n;

    static u_char  head[] = "{\"CmdName\":";
    static u_char  args[] = ",\"Args\":[";

    m->root = NULL;
    m->nargs = 0;

    p = frame->data;
    last = p + frame->len;

    if ((size_t) (last - p) < sizeof(head) - 1
        || ngx_memcmp(p, head, sizeof(head) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof(head) - 1;

    if (ngx_fishchat_frame_string(&p, last, &m->cmd) != NGX_OK
        || m->cmd.len == 0
        || (size_t) (last - p) < sizeof(args) - 1
        || ngx_memcmp(p, args, sizeof(args) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof(args) - 1;
    n = 0;

    if (p < last && *p == ']') {
        p++;

    } else {
        for ( ;; ) {
            if (n == NGX_FISHCHAT_MAX_ARGS
                || ngx_fishchat_frame_string(&p, last, &m->args[n])
                   != NGX_OK)
            {
                return NGX_DECLINED;
            }

            n++;

            if (p < last && *p == ',') {
                p++;
                continue;
            }

            if (p < last && *p == ']') {
                p++;
                break;
            }

            return NGX_DECLINED;
        }
    }

    if (p == last || *p++ != '}') {
        return NGX_DECLINED;
    }

    while (p < last) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            return NGX_DECLINED;
        }

        p++;
    }

    m->nargs = n;

    return NGX_OK;
}


/* "...": a plain string at *pp, *pp past it; NGX_DECLINED otherwise */

static ngx_int_t
ngx_fishchat_frame_string(u_char **pp, u_char *last, ngx_str_t *s)
{
    u_char  *p;
    size_t   len;

    p = *pp;

    if (p == last || *p++ != '"') {
        return NGX_DECLINED;
    }

    s->data = p;

    while (p < last) {

        if (*p == '"') {
            s->len = p - s->data;
            *pp = p + 1;
            return NGX_OK;
        }

        if (*p < 0x20 || *p == '\\') {
            return NGX_DECLINED;
        }

        if (*p < 0x80) {
            p++;
            continue;
        }

        len = ngx_fishchat_utf8_len(p, last);

        if (len == 0) {
            return NGX_DECLINED;
        }

        p += len;
    }

    return NGX_DECLINED;
}


/* any other frame, by jansson */

ngx_int_t
ngx_fishchat_frame_json(ngx_str_t *frame, ngx_fishchat_frame_t *m,
    u_char *err, size_t errlen)
{
    size_t        i, n;
    json_t       *root, *cmd, *args, *arg;
    json_error_t  jerr;

    m->root = NULL;
    m->nargs = 0;

    root = json_loadb((const char *) frame->data, frame->len, 0, &jerr);

    if (root == NULL) {
        ngx_snprintf(err, errlen, "invalid JSON: %s at offset %d%Z",
                     jerr.text, jerr.position);
        return NGX_ERROR;
    }

    if (!json_is_object(root)) {
        ngx_snprintf(err, errlen, "a JSON object expected%Z");
        goto failed;
    }

    cmd = json_object_get(root, "CmdName");

    if (!json_is_string(cmd) || json_string_length(cmd) == 0) {
        ngx_snprintf(err, errlen, "\"CmdName\" must be a non-empty string%Z");
        goto failed;
    }

    m->cmd.data = (u_char *) json_string_value(cmd);
    m->cmd.len = json_string_length(cmd);

    args = json_object_get(root, "Args");

    if (args != NULL && !json_is_null(args)) {

        if (!json_is_array(args)) {
            ngx_snprintf(err, errlen, "\"Args\" must be an array%Z");
            goto failed;
        }

        n = json_array_size(args);

        if (n > NGX_FISHCHAT_MAX_ARGS) {
            ngx_snprintf(err, errlen, "more than %d arguments%Z",
                         NGX_FISHCHAT_MAX_ARGS);
            goto failed;
        }

        for (i = 0; i < n; i++) {
            arg = json_array_get(args, i);

            if (!json_is_string(arg)) {
                ngx_snprintf(err, errlen, "argument %uz is not a string%Z",
                             i + 1);
                goto failed;
            }

            m->args[i].data = (u_char *) json_string_value(arg);
            m->args[i].len = json_string_length(arg);
        }

        m->nargs = n;
    }

    m->root = root;

    return NGX_OK;

failed:

    json_decref(root);

    return NGX_ERROR;
}


/*
 * A whole frame, its 4 bytes of length included (as an inbox keeps it),
 * decoded if its JSON starts with the "len" bytes of "head": NGX_OK (then
 * ngx_fishchat_frame_free()), NGX_DECLINED for another frame, NGX_ERROR
 * for one that does not decode.
 */

ngx_int_t
ngx_fishchat_frame_stored(ngx_str_t *frame, u_char *head, size_t len,
    ngx_fishchat_frame_t *m)
{
    ngx_str_t  json;
    u_char     err[80];

    if (frame->len < 4 + len || ngx_memcmp(frame->data + 4, head, len) != 0) {
        return NGX_DECLINED;
    }

    json.data = frame->data + 4;
    json.len = frame->len - 4;

    if (ngx_fishchat_frame_decode(&json, m, err, sizeof(err)) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_fishchat_frame_free(ngx_fishchat_frame_t *m)
{
    if (m->root) {
        json_decref(m->root);
        m->root = NULL;
    }
}


/*
 * The length of the valid UTF-8 sequence of 2 to 4 bytes at p, or 0: no
 * overlong forms, no surrogates, nothing past U+10FFFF.
 */

size_t
ngx_fishchat_utf8_len(u_char *p, u_char *last)
{
    size_t    len, i;
    uint32_t  u, min;

    if (*p >= 0xc2 && *p <= 0xdf) {
        len = 2;
        u = *p & 0x1f;
        min = 0x80;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        len = 3;
        u = *p & 0x0f;
        min = 0x800;

    } else if (*p >= 0xf0 && *p <= 0xf4) {
        len = 4;
        u = *p & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if ((size_t) (last - p) < len) {
        return 0;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return 0;
    }

    return len;
}
