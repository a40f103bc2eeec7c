
/*
 * fc-load: the frame codec.  A frame is a 4-byte big-endian length, then
 * {"CmdName":"X","Args":["a",...]}\n; frames out are queued on the
 * connection, frames in are cut from what recv() gave and decoded in
 * place.
 */


#include "fc_load.h"


/* JSON */

static char *
fc_json_escape(char *d, const char *s, size_t len)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      ch;

    while (len--) {
        ch = (unsigned char) *s++;

        if (ch == '"' || ch == '\\') {
            *d++ = '\\';
            *d++ = (char) ch;

        } else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
            *d++ = '\\';
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[ch >> 4];
            *d++ = hex[ch & 0xf];

        } else {
            *d++ = (char) ch;
        }
    }

    return d;
}


static char *
fc_json_ws(char *p, char *last)
{
    while (p < last && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


static int
fc_json_hex4(char *p, char *last, unsigned *cp)
{
    int       i;
    unsigned  v, d;

    if (last - p < 4) {
        return -1;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            d = (unsigned) (p[i] - '0');

        } else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f') {
            d = (unsigned) ((p[i] | 0x20) - 'a' + 10);

        } else {
            return -1;
        }

        v = (v << 4) | d;
    }

    *cp = v;

    return 0;
}


/* a string at *pp, unescaped in place; the unescaped text never grows */

static int
fc_json_str(char **pp, char *last, char **out, size_t *out_len)
{
    char      *p, *d;
    unsigned   cp, lo;

    p = *pp;

    if (p >= last || *p != '"') {
        return -1;
    }

    p++;
    d = p;
    *out = d;

    while (p < last) {

        if (*p == '"') {
            *out_len = (size_t) (d - *out);
            *pp = p + 1;
            return 0;
        }

        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        if (++p >= last) {
            return -1;
        }

        switch (*p) {

        case '"':
        case '\\':
        case '/':
            *d++ = *p++;
            continue;

        case 'b':
            *d++ = '\b';
            p++;
            continue;

        case 'f':
            *d++ = '\f';
            p++;
            continue;

        case 'n':
            *d++ = '\n';
            p++;
            continue;

        case 'r':
            *d++ = '\r';
            p++;
            continue;

        case 't':
            *d++ = '\t';
            p++;
            continue;

        case 'u':
            if (fc_json_hex4(p + 1, last, &cp) != 0) {
                return -1;
            }

            p += 5;

            if (cp >= 0xd800 && cp < 0xdc00
                && last - p >= 6 && p[0] == '\\' && p[1] == 'u'
                && fc_json_hex4(p + 2, last, &lo) == 0
                && lo >= 0xdc00 && lo < 0xe000)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }

            if (cp < 0x80) {
                *d++ = (char) cp;

            } else if (cp < 0x800) {
                *d++ = (char) (0xc0 | (cp >> 6));
                *d++ = (char) (0x80 | (cp & 0x3f));

            } else if (cp < 0x10000) {
                *d++ = (char) (0xe0 | (cp >> 12));
                *d++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char) (0x80 | (cp & 0x3f));

            } else {
                *d++ = (char) (0xf0 | (cp >> 18));
                *d++ = (char) (0x80 | ((cp >> 12) & 0x3f));
                *d++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char) (0x80 | (cp & 0x3f));
            }

            continue;

        default:
            return -1;
        }
    }

    return -1;
}


/* {"CmdName":"X","Args":["a",...]}, whitespace anywhere, keys any order */

int
fc_json_msg(char *p, size_t len, fc_msg_t *m)
{
    char    *last, *key, *s;
    size_t   key_len, s_len;

    last = p + len;

    m->cmd = NULL;
    m->cmd_len = 0;
    m->nargs = 0;

    p = fc_json_ws(p, last);

    if (p >= last || *p++ != '{') {
        return -1;
    }

    p = fc_json_ws(p, last);

    if (p < last && *p == '}') {
        return -1;
    }

    for ( ;; ) {
        p = fc_json_ws(p, last);

        if (fc_json_str(&p, last, &key, &key_len) != 0) {
            return -1;
        }

        p = fc_json_ws(p, last);

        if (p >= last || *p++ != ':') {
            return -1;
        }

        p = fc_json_ws(p, last);

        if (key_len == 4 && memcmp(key, "Args", 4) == 0
            && p < last && *p == '[')
        {
            p = fc_json_ws(p + 1, last);

            if (p < last && *p == ']') {
                p++;

            } else {
                for ( ;; ) {
                    if (m->nargs == FC_MAX_ARGS) {
                        return -1;
                    }

                    if (fc_json_str(&p, last, &m->arg[m->nargs],
                                    &m->len[m->nargs])
                        != 0)
                    {
                        return -1;
                    }

                    m->nargs++;

                    p = fc_json_ws(p, last);

                    if (p < last && *p == ',') {
                        p = fc_json_ws(p + 1, last);
                        continue;
                    }

                    if (p < last && *p == ']') {
                        p++;
                        break;
                    }

                    return -1;
                }
            }

        } else if (last - p >= 4 && memcmp(p, "null", 4) == 0) {
            p += 4;

        } else {
            if (fc_json_str(&p, last, &s, &s_len) != 0) {
                return -1;
            }

            if (key_len == 7 && memcmp(key, "CmdName", 7) == 0) {
                m->cmd = s;
                m->cmd_len = s_len;
            }
        }

        p = fc_json_ws(p, last);

        if (p < last && *p == ',') {
            p++;
            continue;
        }

        if (p < last && *p == '}') {
            p++;
            break;
        }

        return -1;
    }

    p = fc_json_ws(p, last);

    if (p != last || m->cmd == NULL) {
        return -1;
    }

    return 0;
}


/* frames out */

static int
fc_out_reserve(fc_conn_t *c, size_t need)
{
    char    *p;
    size_t   size;

    if (c->out_len + need <= c->out_size) {
        return 0;
    }

    if (c->out_pos) {
        memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
        c->out_len -= c->out_pos;
        c->out_pos = 0;

        if (c->out_len + need <= c->out_size) {
            return 0;
        }
    }

    size = c->out_size ? c->out_size * 2 : 512;

    while (size < c->out_len + need) {
        size *= 2;
    }

    p = realloc(c->out, size);
    if (p == NULL) {
        return -1;
    }

    c->out = p;
    c->out_size = size;

    return 0;
}


/* queues a frame; it is written at the end of the loop iteration */

int
fc_frame_out(fc_conn_t *c, const char *cmd, unsigned nargs,
    const char **args, const size_t *lens)
{
    char      *start, *p;
    size_t     need, len, cmd_len;
    unsigned   i;

    cmd_len = strlen(cmd);
    need = 4 + sizeof("{\"CmdName\":\"\",\"Args\":[]}\n") + cmd_len;

    for (i = 0; i < nargs; i++) {
        need += 6 * lens[i] + 3;
    }

    if (fc_out_reserve(c, need) != 0) {
        fc_log("out of memory");
        fc_conn_lost(c, "out of memory", 0);
        return -1;
    }

    start = c->out + c->out_len;
    p = start + 4;

    memcpy(p, "{\"CmdName\":\"", 12);
    p = fc_json_escape(p + 12, cmd, cmd_len);
    memcpy(p, "\",\"Args\":[", 10);
    p += 10;

    for (i = 0; i < nargs; i++) {
        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        p = fc_json_escape(p, args[i], lens[i]);
        *p++ = '"';
    }

    memcpy(p, "]}\n", 3);
    p += 3;

    len = (size_t) (p - start) - 4;

    start[0] = (char) (len >> 24);
    start[1] = (char) (len >> 16);
    start[2] = (char) (len >> 8);
    start[3] = (char) len;

    c->out_len += (size_t) (p - start);

    fc_dirty(c);

    return 0;
}


/*
 * len bytes at the end of the output of c, for a mode with a framing of
 * its own (mqtt) to fill; NULL (the connection closed) when out of memory
 */

char *
fc_out_alloc(fc_conn_t *c, size_t len)
{
    char  *p;

    if (fc_out_reserve(c, len) != 0) {
        fc_log("out of memory");
        fc_conn_lost(c, "out of memory", 0);
        return NULL;
    }

    p = c->out + c->out_len;
    c->out_len += len;

    fc_dirty(c);

    return p;
}


/*
 * frames in: what recv() gave, cut into frames (or into the packets of the
 * mode's input hook); the rest waits in c->in
 */

static int
fc_in_reserve(fc_conn_t *c, size_t need)
{
    char    *q;
    size_t   size;

    if (need <= c->in_size) {
        return 0;
    }

    size = c->in_size ? c->in_size * 2 : 4096;

    while (size < need) {
        size *= 2;
    }

    q = realloc(c->in, size);
    if (q == NULL) {
        fc_conn_lost(c, "out of memory", 0);
        return -1;
    }

    c->in = q;
    c->in_size = size;

    return 0;
}


void
fc_input(fc_conn_t *c, char *data, size_t len)
{
    long       n;
    char      *p, *last;
    size_t     left;
    uint32_t   flen;

    if (c->in_len) {
        if (fc_in_reserve(c, c->in_len + len) != 0) {
            return;
        }

        memcpy(c->in + c->in_len, data, len);
        c->in_len += len;

        p = c->in;
        last = c->in + c->in_len;

    } else {
        p = data;
        last = data + len;
    }

    for ( ;; ) {
        if (fc_conf.mode->input) {
            n = fc_conf.mode->input(c, p, (size_t) (last - p));

            if (n < 0 || c->fd == -1) {
                return;
            }

            if (n == 0) {
                break;
            }

            p += n;
            continue;
        }

        if (last - p < 4) {
            break;
        }

        flen = ((uint32_t) (unsigned char) p[0] << 24)
               | ((uint32_t) (unsigned char) p[1] << 16)
               | ((uint32_t) (unsigned char) p[2] << 8)
               | (uint32_t) (unsigned char) p[3];

        if (flen == 0 || flen > FC_FRAME_MAX) {
            fc.st.bad_frames++;
            fc_conn_lost(c, "bad frame length", 0);
            return;
        }

        if ((size_t) (last - p) - 4 < flen) {
            break;
        }

        fc_frame_in(c, p + 4, flen);

        if (c->fd == -1) {
            return;
        }

        p += 4 + flen;
    }

    left = (size_t) (last - p);

    if (c->in_len) {
        memmove(c->in, p, left);
        c->in_len = left;
        return;
    }

    if (left == 0) {
        return;
    }

    if (fc_in_reserve(c, left) != 0) {
        return;
    }

    memcpy(c->in, p, left);
    c->in_len = left;
}
