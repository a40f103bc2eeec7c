
/*
 * FishChat for nginx: the gateway role.
 *
 * A client sends REQ_MSG_SERVER [id] and gets SELECT_MSG_SERVER_FOR_CLIENT
 * <host:port>, then the gateway closes: the seed's exchange.  The address
 * comes from a static list or from the heartbeats that msg nodes keep in
 * Redis; the heartbeats are read by every worker on a timer, never per
 * request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include <jansson.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_fishchat_stream.h"


#define NGX_STREAM_FISHCHAT_GW_LEAST_CONN   0
#define NGX_STREAM_FISHCHAT_GW_ROUND_ROBIN  1
#define NGX_STREAM_FISHCHAT_GW_HASH         2

#define NGX_STREAM_FISHCHAT_GW_BUFFER       1024
#define NGX_STREAM_FISHCHAT_GW_LINGER       5000
#define NGX_STREAM_FISHCHAT_GW_MAX_NODES    1024


typedef struct {
    ngx_str_t                       addr;
    ngx_msec_t                      expires;
    ngx_int_t                       load;
    ngx_uint_t                      tls;
} ngx_stream_fishchat_gw_node_t;


typedef struct {
    ngx_msec_t                      refresh;
    ngx_flag_t                      heartbeat;    /* any server uses them */
} ngx_stream_fishchat_gw_main_conf_t;


typedef struct {
    ngx_flag_t                      enabled;
    ngx_array_t                    *servers;      /* ngx_str_t */
    ngx_uint_t                      policy;
    ngx_flag_t                      heartbeat;
    ngx_msec_t                      timeout;
    ngx_uint_t                      counters;
    ngx_uint_t                      rr;           /* per worker */
} ngx_stream_fishchat_gw_srv_conf_t;


typedef struct {
    ngx_stream_session_t           *session;
    ngx_connection_t               *c;
    ngx_stream_fishchat_gw_srv_conf_t  *conf;
    ngx_fishchat_parser_t           parser;
    ngx_buf_t                      *in;
    ngx_buf_t                      *out;
    ngx_fishchat_counters_t        *counters;
    ngx_uint_t                      frames_out;

    /* a request that waits for a refresh of the heartbeat cache */
    ngx_queue_t                     queue;
    ngx_str_t                       id;
    unsigned                        has_id:1;
    unsigned                        waiting:1;
    unsigned                        waited:1;
} ngx_stream_fishchat_gw_ctx_t;


/* the heartbeat cache of this worker */

typedef struct {
    ngx_pool_t                     *pool;
    ngx_stream_fishchat_gw_node_t  *nodes;
    ngx_uint_t                      nnodes;
    ngx_event_t                     timer;
    ngx_msec_t                      refresh;
    ngx_fishchat_redis_req_t       *req;
    ngx_str_t                       beat_key;
    ngx_str_t                       load_key;
    ngx_queue_t                     waiting;      /* gw_ctx_t */
} ngx_stream_fishchat_gw_cache_t;


static void ngx_stream_fishchat_gw_handler(ngx_stream_session_t *s);
static void ngx_stream_fishchat_gw_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_stream_fishchat_gw_process(
    ngx_stream_fishchat_gw_ctx_t *ctx);
static ngx_int_t ngx_stream_fishchat_gw_request(
    ngx_stream_fishchat_gw_ctx_t *ctx, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_gw_answer(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_str_t *id);
static ngx_int_t ngx_stream_fishchat_gw_wait(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_str_t *id);
static void ngx_stream_fishchat_gw_wait_handler(ngx_event_t *rev);
static void ngx_stream_fishchat_gw_drain(ngx_stream_fishchat_gw_ctx_t *ctx,
    char *closed);
static void ngx_stream_fishchat_gw_wake(ngx_stream_fishchat_gw_cache_t *cache);
static ngx_int_t ngx_stream_fishchat_gw_choose(ngx_connection_t *c,
    ngx_stream_fishchat_gw_srv_conf_t *gscf, ngx_str_t *id, ngx_str_t *addr);
static void ngx_stream_fishchat_gw_error(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_fishchat_err_e err, const char *fmt, ...);
static void ngx_stream_fishchat_gw_reply(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_buf_t *b);
static void ngx_stream_fishchat_gw_write_handler(ngx_event_t *wev);
static void ngx_stream_fishchat_gw_linger_handler(ngx_event_t *rev);
static void ngx_stream_fishchat_gw_cleanup(void *data);

static void ngx_stream_fishchat_gw_refresh(ngx_event_t *ev);
static void ngx_stream_fishchat_gw_refreshed(redisReply *reply, void *data);
static void ngx_stream_fishchat_gw_update(
    ngx_stream_fishchat_gw_cache_t *cache, redisReply *reply);

static void *ngx_stream_fishchat_gw_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_fishchat_gw_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_stream_fishchat_gw_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_fishchat_gw_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_stream_fishchat_gateway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_fishchat_gw_servers(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_stream_fishchat_gw_main_conf_t *ngx_stream_fishchat_gw_heartbeats(
    ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_fishchat_gw_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_fishchat_gw_init_process(ngx_cycle_t *cycle);
static void ngx_stream_fishchat_gw_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_stream_fishchat_gw_policies[] = {
    { ngx_string("least_conn"), NGX_STREAM_FISHCHAT_GW_LEAST_CONN },
    { ngx_string("round_robin"), NGX_STREAM_FISHCHAT_GW_ROUND_ROBIN },
    { ngx_string("hash"), NGX_STREAM_FISHCHAT_GW_HASH },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_stream_fishchat_gateway_commands[] = {

    { ngx_string("fishchat_gateway"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_fishchat_gateway,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_gateway_servers"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_fishchat_gw_servers,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_gateway_policy"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_gw_srv_conf_t, policy),
      &ngx_stream_fishchat_gw_policies },

    { ngx_string("fishchat_gateway_heartbeat"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_gw_srv_conf_t, heartbeat),
      NULL },

    { ngx_string("fishchat_gateway_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_gw_srv_conf_t, timeout),
      NULL },

    { ngx_string("fishchat_gateway_refresh"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_gw_main_conf_t, refresh),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_fishchat_gateway_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_fishchat_stream_log_init,          /* postconfiguration */

    ngx_stream_fishchat_gw_create_main_conf, /* create main configuration */
    ngx_stream_fishchat_gw_init_main_conf, /* init main configuration */

    ngx_stream_fishchat_gw_create_srv_conf, /* create server configuration */
    ngx_stream_fishchat_gw_merge_srv_conf  /* merge server configuration */
};


ngx_module_t  ngx_stream_fishchat_gateway_module = {
    NGX_MODULE_V1,
    &ngx_stream_fishchat_gateway_module_ctx, /* module context */
    ngx_stream_fishchat_gateway_commands,  /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_fishchat_gw_init_module,    /* init module */
    ngx_stream_fishchat_gw_init_process,   /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_stream_fishchat_gw_exit_process,   /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_stream_fishchat_gw_req_cmd =
    ngx_string("REQ_MSG_SERVER");
static ngx_str_t  ngx_stream_fishchat_gw_select_cmd =
    ngx_string("SELECT_MSG_SERVER_FOR_CLIENT");


static char  ngx_stream_fishchat_gw_script[] = NGX_FISHCHAT_LUA_NODES;


static ngx_stream_fishchat_gw_cache_t  ngx_stream_fishchat_gw_cache;


static void
ngx_stream_fishchat_gw_handler(ngx_stream_session_t *s)
{
    ngx_connection_t                   *c;
    ngx_fishchat_conf_t                *fcf;
    ngx_fishchat_counters_t            *ctx_counters;
    ngx_stream_fishchat_gw_ctx_t       *ctx;
    ngx_stream_fishchat_gw_srv_conf_t  *gscf;

    c = s->connection;
    c->log->action = "reading gateway request";

    gscf = ngx_stream_get_module_srv_conf(s,
                                          ngx_stream_fishchat_gateway_module);
    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    ctx = ngx_fishchat_stream_init(s, &ngx_stream_fishchat_gateway_module,
                                   sizeof(ngx_stream_fishchat_gw_ctx_t),
                                   ngx_stream_fishchat_gw_cleanup,
                                   gscf->counters, &ctx_counters);
    if (ctx == NULL) {
        return;
    }

    ctx->session = s;
    ctx->c = c;
    ctx->conf = gscf;
    ctx->counters = ctx_counters;

    ngx_fishchat_parser_init(&ctx->parser, fcf->frame_max);

    ctx->in = ngx_create_temp_buf(c->pool, NGX_STREAM_FISHCHAT_GW_BUFFER);
    if (ctx->in == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_fishchat_stream_start(c, ngx_stream_fishchat_gw_read_handler,
                              ngx_stream_fishchat_gw_write_handler,
                              gscf->timeout);
}


static void
ngx_stream_fishchat_gw_cleanup(void *data)
{
    ngx_stream_fishchat_gw_ctx_t  *ctx = data;

    if (ctx->waiting) {
        ngx_queue_remove(&ctx->queue);
        ctx->waiting = 0;
    }

    ctx->counters->active--;
    ngx_fishchat_parser_free(&ctx->parser);
}


static void
ngx_stream_fishchat_gw_read_handler(ngx_event_t *rev)
{
    ssize_t                        n;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_connection_t              *c;
    ngx_stream_fishchat_gw_ctx_t  *ctx;

    c = rev->data;
    ctx = ngx_fishchat_stream_ctx(rev, ngx_stream_fishchat_gateway_module);

    if (rev->timedout) {
        /* the lingering close after the reply uses this event again */
        rev->timedout = 0;

        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_TIMEOUT,
                                     "no request in time");
        return;
    }

    b = ctx->in;

    for ( ;; ) {

        b->pos = b->start;
        b->last = b->start;

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "fishchat gateway: client closed the connection "
                          "before its request");
            ngx_stream_finalize_session(ctx->session, NGX_STREAM_OK);
            return;
        }

        b->last += n;
        ctx->counters->bytes_in += n;

        rc = ngx_stream_fishchat_gw_process(ctx);

        if (rc != NGX_AGAIN) {
            /* answered, or finalized */
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_finalize_session(ctx->session,
                                    NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}


static ngx_int_t
ngx_stream_fishchat_gw_process(ngx_stream_fishchat_gw_ctx_t *ctx)
{
    ngx_int_t             rc;
    ngx_str_t             frame;
    ngx_fishchat_frame_t  m;
    u_char                err[128];

    rc = ngx_fishchat_parse_frame(&ctx->parser, ctx->in, &frame, ctx->c->log);

    switch (rc) {

    case NGX_AGAIN:
        return NGX_AGAIN;

    case NGX_FISHCHAT_FRAME_EMPTY:
        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_BAD_FRAME,
                                     "empty frame");
        return NGX_DONE;

    case NGX_FISHCHAT_FRAME_TOO_LARGE:
        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_FRAME_TOO_LARGE,
                                     "frame of %uD bytes is over the "
                                     "maximum of %uz",
                                     ctx->parser.length, ctx->parser.max);
        return NGX_DONE;

    case NGX_OK:
        break;

    default:
        ngx_stream_finalize_session(ctx->session,
                                    NGX_STREAM_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    ctx->counters->frames_in++;

    if (ngx_fishchat_frame_decode(&frame, &m, err, sizeof(err)) != NGX_OK) {
        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_BAD_FRAME,
                                     "%s", err);
        return NGX_DONE;
    }

    rc = ngx_stream_fishchat_gw_request(ctx, &m);

    ngx_fishchat_frame_free(&m);

    return rc;
}


static ngx_int_t
ngx_stream_fishchat_gw_request(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_fishchat_frame_t *m)
{
    size_t      len;
    ngx_str_t  *id;

    if (m->cmd.len != ngx_stream_fishchat_gw_req_cmd.len
        || ngx_strncmp(m->cmd.data, ngx_stream_fishchat_gw_req_cmd.data,
                       m->cmd.len) != 0)
    {
        /* cut a long name on a character boundary: replies are UTF-8 */

        len = ngx_min(m->cmd.len, 64);

        while (len < m->cmd.len && (m->cmd.data[len] & 0xc0) == 0x80) {
            len--;
        }

        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                     "unknown command \"%*s\"",
                                     len, m->cmd.data);
        return NGX_DONE;
    }

    if (m->nargs > 1 || (m->nargs == 1 && m->args[0].len > 256)) {
        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_BAD_ARGS,
                                     "REQ_MSG_SERVER takes an optional "
                                     "client id of up to 256 bytes");
        return NGX_DONE;
    }

    id = (m->nargs == 1 && m->args[0].len) ? &m->args[0] : NULL;

    ngx_stream_fishchat_gw_answer(ctx, id);

    return NGX_DONE;
}


static void
ngx_stream_fishchat_gw_answer(ngx_stream_fishchat_gw_ctx_t *ctx, ngx_str_t *id)
{
    ngx_buf_t  *b;
    ngx_str_t   addr;

    if (ngx_stream_fishchat_gw_choose(ctx->c, ctx->conf, id, &addr)
        != NGX_OK)
    {
        if (ctx->conf->heartbeat && !ctx->waited
            && ngx_stream_fishchat_gw_wait(ctx, id) == NGX_OK)
        {
            return;
        }

        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_NO_MSG_SERVER,
                                     "no live msg server");
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ctx->c->log, 0,
                   "fishchat gateway: selected %V", &addr);

    b = ngx_fishchat_frame_buf(ctx->c->pool,
                               &ngx_stream_fishchat_gw_select_cmd, &addr, 1);

    ngx_stream_fishchat_gw_reply(ctx, b);
}


/*
 * The heartbeat cache has no live msg server for this request: it may be
 * older than the heartbeats in Redis (the first refresh at start-up may
 * run before any msg server's first heartbeat).  The request waits for one
 * refresh, made now unless one is on its way, and is answered from it.
 * Without a working Redis link there is nothing to wait for.
 */

static ngx_int_t
ngx_stream_fishchat_gw_wait(ngx_stream_fishchat_gw_ctx_t *ctx, ngx_str_t *id)
{
    ngx_connection_t                *c;
    ngx_stream_fishchat_gw_cache_t  *cache;

    cache = &ngx_stream_fishchat_gw_cache;

    if (cache->beat_key.len == 0
        || !ngx_fishchat_redis_up(ngx_fishchat_redis_link()))
    {
        return NGX_DECLINED;
    }

    c = ctx->c;

    if (id) {
        ctx->id.data = ngx_pnalloc(c->pool, id->len);
        if (ctx->id.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->id.data, id->data, id->len);
        ctx->id.len = id->len;
        ctx->has_id = 1;
    }

    if (cache->req == NULL) {
        if (cache->timer.timer_set) {
            ngx_del_timer(&cache->timer);
        }

        ngx_stream_fishchat_gw_refresh(&cache->timer);

        if (cache->req == NULL) {
            return NGX_DECLINED;
        }
    }

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "fishchat gateway: waiting for a refresh");

    ctx->waited = 1;
    ctx->waiting = 1;
    ngx_queue_insert_tail(&cache->waiting, &ctx->queue);

    c->log->action = "waiting for heartbeats";
    c->read->handler = ngx_stream_fishchat_gw_wait_handler;

    /*
     * the read timer of the request still runs: the wait is bounded;
     * a close that came with the request has been signalled already
     */

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_stream_fishchat_gw_wait_handler(ngx_event_t *rev)
{
    ngx_stream_fishchat_gw_ctx_t  *ctx;

    ctx = ngx_fishchat_stream_ctx(rev, ngx_stream_fishchat_gateway_module);

    if (rev->timedout) {
        rev->timedout = 0;

        ngx_queue_remove(&ctx->queue);
        ctx->waiting = 0;

        ngx_stream_fishchat_gw_error(ctx, NGX_FISHCHAT_ERR_NO_MSG_SERVER,
                                     "no live msg server");
        return;
    }

    /* whatever follows the request is dropped; a close ends the wait */

    ngx_stream_fishchat_gw_drain(ctx, "fishchat gateway: client closed "
                                 "the connection before the reply");
}


/*
 * What the client sends is read and dropped; when it closes, "closed" (if
 * any) is logged and the session ends
 */

static void
ngx_stream_fishchat_gw_drain(ngx_stream_fishchat_gw_ctx_t *ctx, char *closed)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = ctx->c;

    do {
        n = c->recv(c, ctx->in->start, ctx->in->end - ctx->in->start);

        if (n == NGX_ERROR || n == 0) {
            if (closed) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0, "%s", closed);
            }

            ngx_stream_finalize_session(ctx->session, NGX_STREAM_OK);
            return;
        }

    } while (n > 0);

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_stream_finalize_session(ctx->session,
                                    NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}


/* a refresh ended, well or not: the waiting requests get their answer */

static void
ngx_stream_fishchat_gw_wake(ngx_stream_fishchat_gw_cache_t *cache)
{
    ngx_queue_t                   *q;
    ngx_stream_fishchat_gw_ctx_t  *ctx;

    while (!ngx_queue_empty(&cache->waiting)) {
        q = ngx_queue_head(&cache->waiting);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_stream_fishchat_gw_ctx_t, queue);
        ctx->waiting = 0;

        ctx->session->connection->log->action = "reading gateway request";

        ngx_stream_fishchat_gw_answer(ctx, ctx->has_id ? &ctx->id : NULL);
    }
}


static ngx_uint_t
ngx_stream_fishchat_gw_listed(ngx_stream_fishchat_gw_srv_conf_t *gscf,
    ngx_str_t *addr)
{
    ngx_str_t   *server;
    ngx_uint_t   i;

    if (gscf->servers == NULL) {
        return 1;
    }

    server = gscf->servers->elts;

    for (i = 0; i < gscf->servers->nelts; i++) {
        if (server[i].len == addr->len
            && ngx_strncmp(server[i].data, addr->data, addr->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The candidates are the live nodes of the heartbeat cache (restricted to
 * the static list if there is one), or the static list when heartbeats are
 * off.  A client that came over TLS is given msg servers that listen with
 * TLS, a plaintext client plaintext ones (heartbeats say which is which).
 * least_conn takes the smallest load and rotates among equals;
 * hash uses rendezvous hashing, so that a key moves only when its node
 * goes away.
 */

static ngx_int_t
ngx_stream_fishchat_gw_choose(ngx_connection_t *c,
    ngx_stream_fishchat_gw_srv_conf_t *gscf, ngx_str_t *id, ngx_str_t *addr)
{
    uint32_t                        hash, best_hash;
    ngx_int_t                       best_load;
    ngx_str_t                      *key, *server;
    ngx_uint_t                      i, n, k, best, start, tls;
    ngx_stream_fishchat_gw_node_t  *node;
    ngx_stream_fishchat_gw_node_t  *cand[NGX_STREAM_FISHCHAT_GW_MAX_NODES];
    ngx_stream_fishchat_gw_node_t   statics[NGX_STREAM_FISHCHAT_GW_MAX_NODES];

    n = 0;
    tls = (c->ssl != NULL);

    if (gscf->heartbeat) {
        node = ngx_stream_fishchat_gw_cache.nodes;

        for (i = 0; i < ngx_stream_fishchat_gw_cache.nnodes; i++) {
            if ((ngx_msec_int_t) (node[i].expires - ngx_current_msec) > 0
                && node[i].tls == tls
                && ngx_stream_fishchat_gw_listed(gscf, &node[i].addr))
            {
                cand[n++] = &node[i];
            }
        }

    } else if (gscf->servers) {
        server = gscf->servers->elts;

        for (i = 0; i < gscf->servers->nelts; i++) {
            statics[n].addr = server[i];
            statics[n].load = 0;
            cand[n] = &statics[n];
            n++;
        }
    }

    if (n == 0) {
        return NGX_DECLINED;
    }

    start = gscf->rr++ % n;

    switch (gscf->policy) {

    case NGX_STREAM_FISHCHAT_GW_ROUND_ROBIN:
        best = start;
        break;

    case NGX_STREAM_FISHCHAT_GW_HASH:
        key = id ? id : &c->addr_text;
        best = 0;
        best_hash = 0;

        for (i = 0; i < n; i++) {
            ngx_crc32_init(hash);
            ngx_crc32_update(&hash, key->data, key->len);
            ngx_crc32_update(&hash, (u_char *) "\0", 1);
            ngx_crc32_update(&hash, cand[i]->addr.data, cand[i]->addr.len);
            ngx_crc32_final(hash);

            if (i == 0 || hash > best_hash) {
                best = i;
                best_hash = hash;
            }
        }

        break;

    default: /* NGX_STREAM_FISHCHAT_GW_LEAST_CONN */
        best = start;
        best_load = cand[start]->load;

        for (i = 1; i < n; i++) {
            k = (start + i) % n;

            if (cand[k]->load < best_load) {
                best = k;
                best_load = cand[k]->load;
            }
        }

        /* until the next heartbeat, count the client we send there */
        cand[best]->load++;
    }

    *addr = cand[best]->addr;

    return NGX_OK;
}


static void
ngx_stream_fishchat_gw_error(ngx_stream_fishchat_gw_ctx_t *ctx,
    ngx_fishchat_err_e err, const char *fmt, ...)
{
    va_list     args;
    ngx_buf_t  *b;
    ngx_str_t   text;
    u_char      buf[256];

    /* the gateway closes after any answer: not said in the log */

    va_start(args, fmt);
    text = ngx_fishchat_refusal(ctx->c->log, "gateway", ctx->counters,
                                err, 0, buf, sizeof(buf), fmt, args);
    va_end(args);

    b = ngx_fishchat_error_buf(ctx->c->pool, err, &text);

    ngx_stream_fishchat_gw_reply(ctx, b);
}


/* send one frame, then close gracefully; no frame (no memory): close */

static void
ngx_stream_fishchat_gw_reply(ngx_stream_fishchat_gw_ctx_t *ctx, ngx_buf_t *b)
{
    ngx_connection_t  *c;

    if (b == NULL) {
        ngx_stream_finalize_session(ctx->session,
                                    NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    c = ctx->c;
    c->log->action = "sending gateway reply";

    ctx->out = b;

    /* whatever else the client sends is read and dropped from now on */
    c->read->handler = ngx_stream_fishchat_gw_linger_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->write->handler = ngx_stream_fishchat_gw_write_handler;

    ngx_add_timer(c->write, ctx->conf->timeout);

    ngx_stream_fishchat_gw_write_handler(c->write);
}


static void
ngx_stream_fishchat_gw_write_handler(ngx_event_t *wev)
{
    ssize_t                        n;
    ngx_buf_t                     *b;
    ngx_connection_t              *c;
    ngx_stream_session_t          *s;
    ngx_stream_fishchat_gw_ctx_t  *ctx;

    c = wev->data;
    ctx = ngx_fishchat_stream_ctx(wev, ngx_stream_fishchat_gateway_module);

    if (ctx == NULL || ctx->out == NULL) {
        return;
    }

    s = ctx->session;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "fishchat gateway: client timed out reading the reply");
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    b = ctx->out;

    while (b->pos < b->last) {
        n = c->send(c, b->pos, b->last - b->pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_stream_finalize_session(s,
                                            NGX_STREAM_INTERNAL_SERVER_ERROR);
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        b->pos += n;
        ctx->counters->bytes_out += n;
    }

    ctx->counters->frames_out++;
    ctx->out = NULL;

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    /*
     * Lingering close: shut the write side down and drop what the client
     * still sends until it closes, so that unread input never turns the
     * close into a reset that could destroy the reply in flight.
     */

    if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    ngx_add_timer(c->read, NGX_STREAM_FISHCHAT_GW_LINGER);

    ngx_stream_fishchat_gw_linger_handler(c->read);
}


static void
ngx_stream_fishchat_gw_linger_handler(ngx_event_t *rev)
{
    ngx_stream_fishchat_gw_ctx_t  *ctx;

    ctx = ngx_fishchat_stream_ctx(rev, ngx_stream_fishchat_gateway_module);

    if (ctx->out) {
        /* the reply is not out yet: lingering starts after it */
        return;
    }

    if (rev->timedout) {
        ngx_stream_finalize_session(ctx->session, NGX_STREAM_OK);
        return;
    }

    ngx_stream_fishchat_gw_drain(ctx, NULL);
}


/* the heartbeat cache */

static void
ngx_stream_fishchat_gw_refresh(ngx_event_t *ev)
{
    ngx_stream_fishchat_gw_cache_t  *cache;
    const char                      *argv[6];
    size_t                           argvlen[6];

    cache = &ngx_stream_fishchat_gw_cache;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (cache->req == NULL) {
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = ngx_stream_fishchat_gw_script;
        argvlen[1] = sizeof(ngx_stream_fishchat_gw_script) - 1;
        argv[2] = "2";
        argvlen[2] = 1;
        argv[3] = (const char *) cache->beat_key.data;
        argvlen[3] = cache->beat_key.len;
        argv[4] = (const char *) cache->load_key.data;
        argvlen[4] = cache->load_key.len;
        argv[5] = "1024";
        argvlen[5] = 4;

        cache->req = ngx_fishchat_redis_command(
                                         ngx_fishchat_redis_link(),
                                         ngx_stream_fishchat_gw_refreshed,
                                         cache, 6, argv, argvlen);
    }

    ngx_add_timer(ev, cache->refresh);
}


static void
ngx_stream_fishchat_gw_refreshed(redisReply *reply, void *data)
{
    ngx_stream_fishchat_gw_cache_t *cache = data;

    cache->req = NULL;

    ngx_stream_fishchat_gw_update(cache, reply);

    ngx_stream_fishchat_gw_wake(cache);
}


static void
ngx_stream_fishchat_gw_update(ngx_stream_fishchat_gw_cache_t *cache,
    redisReply *reply)
{

    size_t                          i, n;
    ngx_pool_t                     *pool;
    ngx_fishchat_beat_t             beat;
    ngx_stream_fishchat_gw_node_t  *nodes;

    if (reply == NULL) {
        /* the link says why; the cached heartbeats expire on their own */
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fishchat gateway: reading heartbeats failed: %*s",
                      reply->type == REDIS_REPLY_ERROR ? (size_t) reply->len
                                                       : (size_t) 0,
                      reply->str);
        return;
    }

    n = reply->elements / 3;

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    nodes = ngx_palloc(pool, (n ? n : 1)
                             * sizeof(ngx_stream_fishchat_gw_node_t));
    if (nodes == NULL) {
        ngx_destroy_pool(pool);
        return;
    }

    for (i = 0; i < n; i++) {
        if (ngx_fishchat_nodes_entry(reply, i, NULL, &beat) != NGX_OK) {
            ngx_destroy_pool(pool);
            return;
        }

        nodes[i].addr.len = beat.address.len;
        nodes[i].addr.data = ngx_pstrdup(pool, &beat.address);
        if (nodes[i].addr.data == NULL) {
            ngx_destroy_pool(pool);
            return;
        }

        nodes[i].expires = ngx_current_msec + ngx_max(beat.ttl, 0);
        nodes[i].load = ngx_max(beat.sessions, 0);
        nodes[i].tls = beat.tls;
    }

    if (cache->pool) {
        ngx_destroy_pool(cache->pool);
    }

    cache->pool = pool;
    cache->nodes = nodes;
    cache->nnodes = ngx_min(n, NGX_STREAM_FISHCHAT_GW_MAX_NODES);
}


/* configuration */

static void *
ngx_stream_fishchat_gw_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_fishchat_gw_main_conf_t  *gmcf;

    gmcf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_fishchat_gw_main_conf_t));
    if (gmcf == NULL) {
        return NULL;
    }

    gmcf->refresh = NGX_CONF_UNSET_MSEC;

    return gmcf;
}


static char *
ngx_stream_fishchat_gw_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_fishchat_gw_main_conf_t  *gmcf = conf;

    ngx_conf_init_msec_value(gmcf->refresh, 1000);

    if (gmcf->refresh == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_gateway_refresh\" must not be 0");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_stream_fishchat_gw_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_fishchat_gw_srv_conf_t  *gscf;

    gscf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_fishchat_gw_srv_conf_t));
    if (gscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     gscf->enabled = 0;
     *     gscf->rr = 0;
     */

    gscf->servers = NGX_CONF_UNSET_PTR;
    gscf->policy = NGX_CONF_UNSET_UINT;
    gscf->heartbeat = NGX_CONF_UNSET;
    gscf->timeout = NGX_CONF_UNSET_MSEC;

    return gscf;
}


static char *
ngx_stream_fishchat_gw_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_fishchat_gw_srv_conf_t *prev = parent;
    ngx_stream_fishchat_gw_srv_conf_t *conf = child;

    ngx_stream_fishchat_gw_main_conf_t  *gmcf;

    ngx_conf_merge_ptr_value(conf->servers, prev->servers, NULL);
    ngx_conf_merge_uint_value(conf->policy, prev->policy,
                              NGX_STREAM_FISHCHAT_GW_LEAST_CONN);
    ngx_conf_merge_value(conf->heartbeat, prev->heartbeat, 0);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 10000);

    if (!conf->enabled) {
        return NGX_CONF_OK;
    }

    if (!conf->heartbeat && conf->servers == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fishchat_gateway\" needs "
                           "\"fishchat_gateway_servers\" or "
                           "\"fishchat_gateway_heartbeat on\"");
        return NGX_CONF_ERROR;
    }

    if (conf->heartbeat) {
        gmcf = ngx_stream_conf_get_module_main_conf(cf,
                                          ngx_stream_fishchat_gateway_module);
        gmcf->heartbeat = 1;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_fishchat_gateway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_fishchat_gw_srv_conf_t *gscf = conf;

    return ngx_fishchat_stream_role(cf, "gateway", &gscf->enabled,
                                    &gscf->counters,
                                    ngx_stream_fishchat_gw_handler);
}


static char *
ngx_stream_fishchat_gw_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_fishchat_gw_srv_conf_t *gscf = conf;

    ngx_str_t   *value, *server;
    ngx_url_t    u;
    ngx_uint_t   i;

    if (gscf->servers == NGX_CONF_UNSET_PTR) {
        gscf->servers = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (gscf->servers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[i];
        u.no_resolve = 1;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.no_port
            || u.host.len == 0 || u.family == AF_UNIX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid msg server \"%V\": "
                               "\"host:port\" expected", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (gscf->servers->nelts >= NGX_STREAM_FISHCHAT_GW_MAX_NODES) {
            return "has too many servers";
        }

        server = ngx_array_push(gscf->servers);
        if (server == NULL) {
            return NGX_CONF_ERROR;
        }

        *server = value[i];
    }

    return NGX_CONF_OK;
}


/* the main conf where a server block has heartbeats on; NULL otherwise */

static ngx_stream_fishchat_gw_main_conf_t *
ngx_stream_fishchat_gw_heartbeats(ngx_cycle_t *cycle)
{
    ngx_stream_fishchat_gw_main_conf_t  *gmcf;

    gmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                          ngx_stream_fishchat_gateway_module);

    return (gmcf && gmcf->heartbeat) ? gmcf : NULL;
}


static ngx_int_t
ngx_stream_fishchat_gw_init_module(ngx_cycle_t *cycle)
{
    if (ngx_stream_fishchat_gw_heartbeats(cycle) == NULL) {
        return NGX_OK;
    }

    return ngx_fishchat_redis_needed(cycle, "fishchat_gateway_heartbeat on");
}


static ngx_int_t
ngx_stream_fishchat_gw_init_process(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t                 *fcf;
    ngx_stream_fishchat_gw_cache_t      *cache;
    ngx_stream_fishchat_gw_main_conf_t  *gmcf;

    gmcf = ngx_stream_fishchat_gw_heartbeats(cycle);

    if (gmcf == NULL) {
        return NGX_OK;
    }

    if (ngx_fishchat_redis_start(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    fcf = ngx_fishchat_get_conf(cycle);
    cache = &ngx_stream_fishchat_gw_cache;

    ngx_memzero(cache, sizeof(ngx_stream_fishchat_gw_cache_t));
    ngx_queue_init(&cache->waiting);

    cache->beat_key = fcf->beat_key;
    cache->load_key = fcf->load_key;

    cache->timer.handler = ngx_stream_fishchat_gw_refresh;
    cache->timer.data = cache;
    cache->refresh = gmcf->refresh;
    cache->timer.log = cycle->log;
    cache->timer.cancelable = 1;

    ngx_stream_fishchat_gw_refresh(&cache->timer);

    return NGX_OK;
}


static void
ngx_stream_fishchat_gw_exit_process(ngx_cycle_t *cycle)
{
    ngx_stream_fishchat_gw_cache_t  *cache;

    cache = &ngx_stream_fishchat_gw_cache;

    /* the Redis link may be gone already, and its requests with it */

    if (cache->req && ngx_fishchat_redis_link()) {
        ngx_fishchat_redis_cancel(cache->req);
        cache->req = NULL;
    }

    if (cache->timer.timer_set) {
        ngx_del_timer(&cache->timer);
    }

    if (cache->pool) {
        ngx_destroy_pool(cache->pool);
        cache->pool = NULL;
    }
}
