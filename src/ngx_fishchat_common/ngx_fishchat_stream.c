
/*
 * FishChat for nginx: what the stream roles (gateway, msg, router) share.
 *
 * Part of the core module when nginx has the stream module (see config).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_stream.h"


/*
 * The state of a new session of a stream role: "size" bytes, zeroed, the
 * session's context of "module", given to "cleanup" when the connection's
 * pool goes; the counters of the server block count it as accepted and
 * active.  NULL: no memory, and the session is finalized.
 */

void *
ngx_fishchat_stream_init(ngx_stream_session_t *s, ngx_module_t *module,
    size_t size, ngx_pool_cleanup_pt cleanup, ngx_uint_t counters,
    ngx_fishchat_counters_t **cp)
{
    void                *ctx;
    ngx_pool_cleanup_t  *cln;

    ctx = ngx_pcalloc(s->connection->pool, size);
    cln = ctx ? ngx_pool_cleanup_add(s->connection->pool, 0) : NULL;

    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NULL;
    }

    cln->handler = cleanup;
    cln->data = ctx;

#if (NGX_STREAM_SSL)

    if (s->connection->ssl) {
        /*
         * a write that waited (NGX_AGAIN) is tried again from the output
         * queue's copy of the bytes, with more after them
         * (ngx_fishchat_out.c)
         */
        SSL_set_mode(s->connection->ssl->connection,
                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }

#endif

    *cp = ngx_fishchat_counters(counters);
    (*cp)->accepted++;
    (*cp)->active++;

    s->ctx[module->ctx_index] = ctx;

    return ctx;
}
