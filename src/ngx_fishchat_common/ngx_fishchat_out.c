
/*
 * FishChat for nginx: the output queue of a client connection.
 *
 * What the socket takes is written at once; the rest is copied into a
 * list of heap buffers (never the connection's pool, which would grow with
 * every message) and written as the socket drains.  The caller bounds the
 * queue: a reader slower than that is the caller's to disconnect.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_fishchat.h"


/* a copy of data at the end of the list */

ngx_int_t
ngx_fishchat_out_append(ngx_fishchat_outq_t *q, u_char *data, size_t len,
    ngx_log_t *log)
{
    ngx_fishchat_out_t  *out;

    out = ngx_alloc(sizeof(ngx_fishchat_out_t) + len, log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    out->next = NULL;
    out->pos = out->data;
    out->last = ngx_cpymem(out->data, data, len);

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
    ssize_t  n;

    if (q->head == NULL) {
        while (len) {
            n = c->send(c, data, len);

            if (n == NGX_AGAIN) {
                break;
            }

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            counters->bytes_out += n;
            data += n;
            len -= n;
        }

        if (len == 0) {
            return NGX_OK;
        }
    }

    if (q->bytes + len > max) {
        return NGX_DECLINED;
    }

    if (ngx_fishchat_out_append(q, data, len, c->log) != NGX_OK) {
        return NGX_ERROR;
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
    ssize_t              n;
    ngx_fishchat_out_t  *out;

    while (q->head) {
        out = q->head;

        n = c->send(c, out->pos, out->last - out->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        counters->bytes_out += n;
        q->bytes -= n;
        out->pos += n;

        if (out->pos == out->last) {
            q->head = out->next;

            if (q->head == NULL) {
                q->last = NULL;
            }

            ngx_free(out);
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
        ngx_free(out);
    }

    q->head = NULL;
    q->last = NULL;
    q->bytes = 0;
}
