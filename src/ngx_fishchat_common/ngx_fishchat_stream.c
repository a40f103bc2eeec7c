
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


/*
 * A new session is set up: its own handlers take its events over, with a
 * timer on reading, and what has come already is read now
 */

void
ngx_fishchat_stream_start(ngx_connection_t *c, ngx_event_handler_pt read,
    ngx_event_handler_pt write, ngx_msec_t timeout)
{
    c->read->handler = read;
    c->write->handler = write;

    ngx_add_timer(c->read, timeout);

    read(c->read);
}


/*
 * The directive of a stream role ("fishchat_gateway", "fishchat_msg",
 * "fishchat_router") in a server block: once a block, with counters of
 * its own; "handler" takes the block's sessions
 */

char *
ngx_fishchat_stream_role(ngx_conf_t *cf, char *role, ngx_flag_t *enabled,
    ngx_uint_t *counters, ngx_stream_content_handler_pt handler)
{
    void                        **srv;
    ngx_stream_core_srv_conf_t   *cscf;

    if (*enabled) {
        return "is duplicate";
    }

    if (ngx_fishchat_counters_add(cf, role, counters) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    *enabled = 1;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = handler;

    /* for ngx_fishchat_stream_log() */

    srv = ngx_array_push(&ngx_fishchat_conf(cf)->stream_servers);
    if (srv == NULL) {
        return NGX_CONF_ERROR;
    }

    *srv = cscf;

    return NGX_CONF_OK;
}


/*
 * The log phase of the stream roles (each role's postconfiguration adds
 * it, once): a TLS client that never finished its handshake (it stalled
 * past ssl_handshake_timeout, or sent no TLS at all) is said at "info",
 * as every other refusal is, though no role ever saw it.
 */

ngx_int_t
ngx_fishchat_stream_log_init(ngx_conf_t *cf)
{
    ngx_uint_t                    i;
    ngx_stream_handler_pt        *h;
    ngx_stream_core_main_conf_t  *cmcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    h = cmcf->phases[NGX_STREAM_LOG_PHASE].handlers.elts;

    for (i = 0; i < cmcf->phases[NGX_STREAM_LOG_PHASE].handlers.nelts; i++) {
        if (h[i] == ngx_fishchat_stream_log) {
            return NGX_OK;
        }
    }

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_fishchat_stream_log;

    return NGX_OK;
}


ngx_int_t
ngx_fishchat_stream_log(ngx_stream_session_t *s)
{
#if (NGX_STREAM_SSL)

    void                        **srv;
    ngx_uint_t                    i;
    ngx_connection_t             *c;
    ngx_fishchat_conf_t          *fcf;
    ngx_stream_core_srv_conf_t   *cscf;

    c = s->connection;

    if (c->ssl == NULL || c->ssl->handshaked) {
        return NGX_OK;
    }

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    srv = fcf->stream_servers.elts;

    for (i = 0; i < fcf->stream_servers.nelts; i++) {
        if (srv[i] == cscf) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "fishchat: closed before the end of its TLS "
                          "handshake (timed out, or not TLS)");
            break;
        }
    }

#endif

    return NGX_OK;
}
