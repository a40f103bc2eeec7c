
/*
 * FishChat for nginx: the output queue of a client connection.
 *
 * What the socket takes is written at once, several pieces with one
 * writev(); the rest waits in a list of heap entries (never the
 * connection's pool, which would grow with every message) and is written,
 * again several entries a writev(), as the socket drains.  A piece that
 * lives in a shared, reference-counted chunk (a topic message written to
 * many members) waits as a reference to it; any other is copied.  The
 * caller bounds the queue: a reader slower than that is the caller's to
 * disconnect.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_fishchat.h"


/* the most a TLS record holds */
#define NGX_FISHCHAT_OUT_RECORD  16384


/* pieces or entries a system call */
#define NGX_FISHCHAT_OUT_IOVS  64


static ngx_int_t ngx_fishchat_out_add(ngx_fishchat_outq_t *q, u_char *data,
    size_t len, ngx_fishchat_chunk_t *chunk, ngx_log_t *log);
#if (NGX_SSL)
static ssize_t ngx_fishchat_out_send_ssl(ngx_connection_t *c,
    struct iovec *iov, ngx_uint_t n);
#endif
static ssize_t ngx_fishchat_out_send(ngx_connection_t *c, struct iovec *iov,
    ngx_uint_t n, size_t size);
static void ngx_fishchat_out_free_entry(ngx_fishchat_out_t *out);


void
ngx_fishchat_chunk_release(ngx_fishchat_chunk_t *chunk)
{
    if (--chunk->refs == 0) {
        ngx_free(chunk);
    }
}


/* a copy of data at the end of the list */

ngx_int_t
ngx_fishchat_out_append(ngx_fishchat_outq_t *q, u_char *data, size_t len,
    ngx_log_t *log)
{
    return ngx_fishchat_out_add(q, data, len, NULL, log);
}


/* at the end of the list: a copy, or a reference into "chunk" */

static ngx_int_t
ngx_fishchat_out_add(ngx_fishchat_outq_t *q, u_char *data, size_t len,
    ngx_fishchat_chunk_t *chunk, ngx_log_t *log)
{
    ngx_fishchat_out_t  *out;

    if (chunk) {
        out = ngx_alloc(offsetof(ngx_fishchat_out_t, data), log);
        if (out == NULL) {
            return NGX_ERROR;
        }

        chunk->refs++;
        out->pos = data;
        out->last = data + len;

    } else {
        out = ngx_alloc(offsetof(ngx_fishchat_out_t, data) + len, log);
        if (out == NULL) {
            return NGX_ERROR;
        }

        out->pos = out->data;
        out->last = ngx_cpymem(out->data, data, len);
    }

    out->next = NULL;
    out->chunk = chunk;

    if (q->last) {
        q->last->next = out;

    } else {
        q->head = out;
    }

    q->last = out;
    q->bytes += len;

    return NGX_OK;
}


/*
 * NGX_OK: written, or queued behind what waits; NGX_DECLINED: the queue
 * would pass "max" (nothing was queued); NGX_ERROR: the connection failed
 * or memory ran out.
 */

ngx_int_t
ngx_fishchat_out_write(ngx_connection_t *c, ngx_fishchat_outq_t *q,
    u_char *data, size_t len, size_t max, ngx_fishchat_counters_t *counters)
{
    ngx_fishchat_out_piece_t  piece;

    piece.data = data;
    piece.len = len;
    piece.chunk = NULL;

    return ngx_fishchat_out_writev(c, q, &piece, 1, max, counters);
}


/*
 * The pieces, in order, as ngx_fishchat_out_write() writes one: what the
 * socket takes now, with as few system calls as it takes, and the rest
 * behind what waits (pieces in a chunk by reference, the others copied).
 */

ngx_int_t
ngx_fishchat_out_writev(ngx_connection_t *c, ngx_fishchat_outq_t *q,
    ngx_fishchat_out_piece_t *pieces, ngx_uint_t n, size_t max,
    ngx_fishchat_counters_t *counters)
{
    size_t        size, rest, off, left, shared;
    ssize_t       sent;
    ngx_uint_t    i, j, k;
    struct iovec  iov[NGX_FISHCHAT_OUT_IOVS];

    /* pieces[i] + off: the first byte not written */

    i = 0;
    off = 0;

    while (i < n && q->head == NULL) {
        size = 0;

        for (j = i, k = 0; j < n && k < NGX_FISHCHAT_OUT_IOVS; j++) {
            if (pieces[j].len == 0) {
                continue;
            }

            iov[k].iov_base = pieces[j].data + (j == i ? off : 0);
            iov[k].iov_len = pieces[j].len - (j == i ? off : 0);
            size += iov[k].iov_len;
            k++;
        }

        if (k == 0) {
            i = n;
            break;
        }

        sent = ngx_fishchat_out_send(c, iov, k, size);

        if (sent == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (sent == NGX_AGAIN) {
            break;
        }

        counters->bytes_out += sent;
        left = sent;

        while (left && i < n) {
            if (left >= pieces[i].len - off) {
                left -= pieces[i].len - off;
                i++;
                off = 0;

            } else {
                off += left;
                left = 0;
            }
        }

        while (i < n && pieces[i].len == 0) {
            i++;
        }

        if ((size_t) sent < size) {
            /* the socket is full */
            break;
        }
    }

    if (i == n) {
        return NGX_OK;
    }

    rest = pieces[i].len - off;
    shared = pieces[i].chunk ? rest : 0;

    for (j = i + 1; j < n; j++) {
        rest += pieces[j].len;
        shared += pieces[j].chunk ? pieces[j].len : 0;
    }

    if (q->bytes + rest > max) {
        return NGX_DECLINED;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, c->log, 0,
                   "fishchat out: %uz bytes queued, %uz by reference, "
                   "%uz waiting", rest, shared, q->bytes + rest);

    for ( /* void */ ; i < n; i++, off = 0) {
        if (pieces[i].len == off) {
            continue;
        }

        if (ngx_fishchat_out_add(q, pieces[i].data + off, pieces[i].len - off,
                                 pieces[i].chunk, c->log)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* NGX_OK: the queue is empty; NGX_AGAIN: more waits; NGX_ERROR */

ngx_int_t
ngx_fishchat_out_flush(ngx_connection_t *c, ngx_fishchat_outq_t *q,
    ngx_fishchat_counters_t *counters)
{
    size_t               size, left;
    ssize_t              sent;
    ngx_uint_t           k;
    struct iovec         iov[NGX_FISHCHAT_OUT_IOVS];
    ngx_fishchat_out_t  *out;

    while (q->head) {
        size = 0;

        for (out = q->head, k = 0;
             out && k < NGX_FISHCHAT_OUT_IOVS;
             out = out->next, k++)
        {
            iov[k].iov_base = out->pos;
            iov[k].iov_len = out->last - out->pos;
            size += iov[k].iov_len;
        }

        sent = ngx_fishchat_out_send(c, iov, k, size);

        if (sent == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (sent != NGX_AGAIN) {
            counters->bytes_out += sent;
            q->bytes -= sent;

            for (left = sent; left; /* void */) {
                out = q->head;

                if (left < (size_t) (out->last - out->pos)) {
                    out->pos += left;
                    break;
                }

                left -= out->last - out->pos;

                q->head = out->next;

                if (q->head == NULL) {
                    q->last = NULL;
                }

                ngx_fishchat_out_free_entry(out);
            }
        }

        if (sent == NGX_AGAIN || (size_t) sent < size) {
            /* the socket is full */

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }
    }

    return NGX_OK;
}


void
ngx_fishchat_out_free(ngx_fishchat_outq_t *q)
{
    ngx_fishchat_out_t  *out, *next;

    for (out = q->head; out; out = next) {
        next = out->next;
        ngx_fishchat_out_free_entry(out);
    }

    q->head = NULL;
    q->last = NULL;
    q->bytes = 0;
}


static void
ngx_fishchat_out_free_entry(ngx_fishchat_out_t *out)
{
    if (out->chunk) {
        ngx_fishchat_chunk_release(out->chunk);
    }

    ngx_free(out);
}


/*
 * Bytes written, NGX_AGAIN (nothing) or NGX_ERROR.  Less than "size" means
 * the socket is full: the write event is not ready any more.
 */

static ssize_t
ngx_fishchat_out_send(ngx_connection_t *c, struct iovec *iov, ngx_uint_t n,
    size_t size)
{
    ssize_t      sent;
    ngx_iovec_t  vec;

#if (NGX_SSL)

    if (c->ssl) {
        return ngx_fishchat_out_send_ssl(c, iov, n);
    }

#endif

    if (n == 1) {
        /* ngx_unix_send() keeps the write event's state itself */
        return c->send(c, iov[0].iov_base, iov[0].iov_len);
    }

    vec.iovs = iov;
    vec.count = n;
    vec.size = size;
    vec.nalloc = n;

    sent = ngx_writev(c, &vec);

    if (sent == NGX_AGAIN || (sent >= 0 && (size_t) sent < size)) {
        c->write->ready = 0;
    }

    return sent;
}


#if (NGX_SSL)

/*
 * TLS: the pieces go out as few records as they fit in.  Small frames are
 * copied together, up to a whole record (16k), and written at once: one
 * SSL_write() and one record for many frames, not one each.  A piece of a
 * record or more is written from where it is.  A write that waits is
 * tried again with the same bytes first (the queue is only ever added
 * to), from wherever they are then (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
 * ngx_fishchat_stream.c).
 */

static ssize_t
ngx_fishchat_out_send_ssl(ngx_connection_t *c, struct iovec *iov,
    ngx_uint_t n)
{
    u_char      *p;
    size_t       len, take, off;
    ssize_t      sent, total;
    ngx_uint_t   i, k;

    static u_char  record[NGX_FISHCHAT_OUT_RECORD];

    total = 0;
    i = 0;
    off = 0;

    while (i < n) {

        if (off == 0 && iov[i].iov_len >= NGX_FISHCHAT_OUT_RECORD) {
            p = iov[i].iov_base;
            len = iov[i].iov_len;
            i++;

        } else {
            p = record;
            len = 0;

            for (k = i; k < n && len < NGX_FISHCHAT_OUT_RECORD; /* void */) {
                take = ngx_min(iov[k].iov_len - off,
                               NGX_FISHCHAT_OUT_RECORD - len);

                ngx_memcpy(record + len, (u_char *) iov[k].iov_base + off,
                           take);

                len += take;
                off += take;

                if (off == iov[k].iov_len) {
                    k++;
                    off = 0;
                }
            }

            i = k;
        }

        sent = c->send(c, p, len);

        if (sent == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (sent == NGX_AGAIN) {
            break;
        }

        total += sent;

        if ((size_t) sent < len) {
            break;
        }
    }

    if (total == 0) {
        return NGX_AGAIN;
    }

    return total;
}

#endif
