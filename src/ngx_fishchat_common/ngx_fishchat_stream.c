
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
    ngx_stream_core_srv_conf_t  *cscf;

    if (*enabled) {
        return "is duplicate";
    }

    if (ngx_fishchat_counters_add(cf, role, counters) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    *enabled = 1;

    cscf = ngx_stream_conf_get_module_srv_conf(cf, ngx_stream_core_module);
    cscf->handler = handler;

    return NGX_CONF_OK;
}
