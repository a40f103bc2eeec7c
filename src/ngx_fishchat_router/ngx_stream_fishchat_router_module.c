
/*
 * FishChat for nginx: the router's peer interface.
 *
 * A peer (a backend, the manager, a device gateway) connects to a
 * "fishchat_router" server and
 *
 *     SUBSCRIBE_CHANNEL <channel> <uuid>    gets the system events of the
 *                                           whole cluster for the channel
 *     ROUTE_MESSAGE_P2P <to> <msg> <from> <uuid>
 *                                           pushes a 1:1 message, stored
 *                                           and delivered as any other
 *
 * The msg module publishes the events on the Redis channels
 * "<prefix>sys:<name>" from inside its scripts; a worker subscribes to a
 * channel while it has peers for it and writes each event to them.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_stream.h"
#include "ngx_stream_fishchat_msg.h"


#define NGX_STREAM_FISHCHAT_ROUTER_READ_SIZE  16384


typedef struct {
    ngx_flag_t                      enabled;
    ngx_str_t                       secret;
    size_t                          send_buffer;
    ngx_uint_t                      counters;
} ngx_stream_fishchat_router_srv_conf_t;


typedef struct {
    ngx_uint_t                      servers;
} ngx_stream_fishchat_router_main_conf_t;




typedef struct {
    ngx_stream_session_t           *s;
    ngx_connection_t               *c;
    ngx_stream_fishchat_router_srv_conf_t  *conf;
    ngx_fishchat_counters_t        *counters;
    ngx_fishchat_parser_t           parser;

    ngx_fishchat_outq_t             out;

    ngx_queue_t                     link[NGX_FISHCHAT_SYS_N];
    ngx_uint_t                      channels;     /* bits: subscribed */
    ngx_uint_t                      confirmed;    /* bits: told so */

    ngx_queue_t                     routes;

    unsigned                        authed:1;
    unsigned                        closed:1;
    unsigned                        cut:1;        /* slow: to be closed */
} ngx_stream_fishchat_router_peer_t;


/* a ROUTE_MESSAGE_P2P under way */

typedef struct {
    ngx_queue_t                     queue;
    ngx_stream_fishchat_router_peer_t  *peer;   /* NULL: the peer left */
    u_char                          uuid[NGX_FISHCHAT_UUID_LEN];
} ngx_stream_fishchat_router_route_t;


/* a system channel in this worker */

typedef struct {
    ngx_uint_t                      index;
    ngx_uint_t                      peers;
    ngx_queue_t                     queue;
    unsigned                        ready:1;
} ngx_stream_fishchat_router_chan_t;


static void ngx_stream_fishchat_router_handler(ngx_stream_session_t *s);
static void ngx_stream_fishchat_router_cleanup(void *data);
static void ngx_stream_fishchat_router_close(
    ngx_stream_fishchat_router_peer_t *peer);
static void ngx_stream_fishchat_router_read_handler(ngx_event_t *rev);
static void ngx_stream_fishchat_router_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_stream_fishchat_router_frame(
    ngx_stream_fishchat_router_peer_t *peer, ngx_str_t *frame);
static ngx_int_t ngx_stream_fishchat_router_subscribe(
    ngx_stream_fishchat_router_peer_t *peer, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_router_route(
    ngx_stream_fishchat_router_peer_t *peer, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_router_routed(ngx_int_t rc,
    ngx_fishchat_err_e err, void *data);
static void ngx_stream_fishchat_router_event(ngx_str_t *payload,
    void *data);
static void ngx_stream_fishchat_router_ready(void *data);
static ngx_stream_fishchat_router_peer_t *ngx_stream_fishchat_router_peer(
    ngx_queue_t *q, ngx_uint_t index);
static ngx_int_t ngx_stream_fishchat_router_refuse(
    ngx_stream_fishchat_router_peer_t *peer, ngx_fishchat_err_e err,
    ngx_uint_t fatal, const char *fmt, ...);
static ngx_int_t ngx_stream_fishchat_router_reply(
    ngx_stream_fishchat_router_peer_t *peer, char *cmd, ngx_str_t *args,
    ngx_uint_t nargs);
static ngx_int_t ngx_stream_fishchat_router_write(
    ngx_stream_fishchat_router_peer_t *peer, u_char *data, size_t len);

static void *ngx_stream_fishchat_router_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_fishchat_router_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_fishchat_router_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_stream_fishchat_router(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_stream_fishchat_router_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_fishchat_router_init_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_stream_fishchat_router_commands[] = {

    { ngx_string("fishchat_router"),
      NGX_STREAM_SRV_CONF|NGX_CONF_NOARGS,
      ngx_stream_fishchat_router,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fishchat_router_secret"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_router_srv_conf_t, secret),
      NULL },

    { ngx_string("fishchat_router_send_buffer"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_fishchat_router_srv_conf_t, send_buffer),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_fishchat_router_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_fishchat_stream_log_init,          /* postconfiguration */

    ngx_stream_fishchat_router_create_main_conf,
                                           /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_fishchat_router_create_srv_conf,
                                           /* create server configuration */
    ngx_stream_fishchat_router_merge_srv_conf
                                           /* merge server configuration */
};


ngx_module_t  ngx_stream_fishchat_router_module = {
    NGX_MODULE_V1,
    &ngx_stream_fishchat_router_module_ctx, /* module context */
    ngx_stream_fishchat_router_commands,   /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_fishchat_router_init_module, /* init module */
    ngx_stream_fishchat_router_init_process, /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_stream_fishchat_router_event_cmd =
    ngx_string("SYSCTRL_EVENT");

static ngx_str_t  ngx_stream_fishchat_router_channels[] = {
    ngx_string("/sysctrl/client-status"),
    ngx_string("/sysctrl/topic-status"),
    ngx_string("/sysctrl/topic-sync"),
    ngx_string("/sysctrl/send"),
    ngx_string("/sysctrl/monitor")
};


static ngx_stream_fishchat_router_chan_t
    ngx_stream_fishchat_router_chans[NGX_FISHCHAT_SYS_N];

static u_char  ngx_stream_fishchat_router_buf[
                   NGX_STREAM_FISHCHAT_ROUTER_READ_SIZE];


static void
ngx_stream_fishchat_router_handler(ngx_stream_session_t *s)
{
    ngx_uint_t                              i;
    ngx_connection_t                       *c;
    ngx_fishchat_counters_t                *counters;
    ngx_stream_fishchat_router_peer_t      *peer;
    ngx_stream_fishchat_router_srv_conf_t  *rscf;

    c = s->connection;
    c->log->action = "serving fishchat router peer";

    rscf = ngx_stream_get_module_srv_conf(s,
                                          ngx_stream_fishchat_router_module);

    if (!ngx_stream_fishchat_msg_ready()) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    peer = ngx_fishchat_stream_init(s, &ngx_stream_fishchat_router_module,
                                    sizeof(ngx_stream_fishchat_router_peer_t),
                                    ngx_stream_fishchat_router_cleanup,
                                    rscf->counters, &counters);
    if (peer == NULL) {
        return;
    }

    peer->s = s;
    peer->c = c;
    peer->conf = rscf;
    peer->counters = counters;
    peer->authed = (rscf->secret.len == 0);

    for (i = 0; i < NGX_FISHCHAT_SYS_N; i++) {
        ngx_queue_init(&peer->link[i]);
    }

    ngx_queue_init(&peer->routes);
    ngx_fishchat_parser_init(&peer->parser,
                             ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle)
                             ->frame_max);

    c->read->handler = ngx_stream_fishchat_router_read_handler;
    c->write->handler = ngx_stream_fishchat_router_write_handler;

    ngx_stream_fishchat_router_read_handler(c->read);
}


static void
ngx_stream_fishchat_router_cleanup(void *data)
{
    ngx_stream_fishchat_router_peer_t *peer = data;

    ngx_uint_t                           i;
    ngx_queue_t                         *q;
    ngx_fishchat_conf_t                 *fcf;
    ngx_stream_fishchat_router_chan_t   *ch;
    ngx_stream_fishchat_router_route_t  *rt;

    peer->closed = 1;
    peer->counters->active--;

    for (i = 0; i < NGX_FISHCHAT_SYS_N; i++) {
        if (!(peer->channels & (1 << i))) {
            continue;
        }

        ngx_queue_remove(&peer->link[i]);

        ch = &ngx_stream_fishchat_router_chans[i];

        if (--ch->peers == 0) {
            ch->ready = 0;

            if (ngx_stream_fishchat_msg_ready()) {
                fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
                ngx_fishchat_redis_unsubscribe(&fcf->sys[i]);
            }
        }
    }

    peer->channels = 0;

    /* routes under way complete without it */

    while (!ngx_queue_empty(&peer->routes)) {
        q = ngx_queue_head(&peer->routes);
        ngx_queue_remove(q);

        rt = ngx_queue_data(q, ngx_stream_fishchat_router_route_t, queue);
        rt->peer = NULL;
    }

    ngx_fishchat_out_free(&peer->out);

    ngx_fishchat_parser_free(&peer->parser);
}


static void
ngx_stream_fishchat_router_close(ngx_stream_fishchat_router_peer_t *peer)
{
    if (peer->closed) {
        return;
    }

    peer->closed = 1;

    ngx_stream_finalize_session(peer->s, NGX_STREAM_OK);
}


static void
ngx_stream_fishchat_router_read_handler(ngx_event_t *rev)
{
    ssize_t                             n;
    ngx_int_t                           rc;
    ngx_buf_t                           b;
    ngx_str_t                           frame;
    ngx_connection_t                   *c;
    ngx_stream_fishchat_router_peer_t  *peer;

    c = rev->data;
    peer = ngx_fishchat_stream_ctx(rev, ngx_stream_fishchat_router_module);

    if (c->close || peer->cut) {
        ngx_stream_fishchat_router_close(peer);
        return;
    }

    for ( ;; ) {

        n = c->recv(c, ngx_stream_fishchat_router_buf,
                    NGX_STREAM_FISHCHAT_ROUTER_READ_SIZE);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "fishchat router: peer closed the connection");
            ngx_stream_fishchat_router_close(peer);
            return;
        }

        peer->counters->bytes_in += n;

        ngx_memzero(&b, sizeof(ngx_buf_t));
        b.pos = ngx_stream_fishchat_router_buf;
        b.last = b.pos + n;

        for ( ;; ) {
            rc = ngx_fishchat_parse_frame(&peer->parser, &b, &frame, c->log);

            if (rc == NGX_AGAIN) {
                break;
            }

            if (rc == NGX_FISHCHAT_FRAME_EMPTY) {
                (void) ngx_stream_fishchat_router_refuse(peer,
                                                NGX_FISHCHAT_ERR_BAD_FRAME, 1,
                                                "empty frame");
                return;
            }

            if (rc == NGX_FISHCHAT_FRAME_TOO_LARGE) {
                (void) ngx_stream_fishchat_router_refuse(peer,
                                            NGX_FISHCHAT_ERR_FRAME_TOO_LARGE,
                                            1, "frame of %uD bytes is over "
                                            "the maximum of %uz",
                                            peer->parser.length,
                                            peer->parser.max);
                return;
            }

            if (rc != NGX_OK) {
                ngx_stream_fishchat_router_close(peer);
                return;
            }

            peer->counters->frames_in++;

            if (ngx_stream_fishchat_router_frame(peer, &frame) != NGX_OK) {
                return;
            }
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_fishchat_router_close(peer);
    }
}


static ngx_int_t
ngx_stream_fishchat_router_frame(ngx_stream_fishchat_router_peer_t *peer,
    ngx_str_t *frame)
{
    ngx_int_t             rc;
    ngx_fishchat_frame_t  m;
    u_char                err[128];

    if (ngx_fishchat_frame_decode(frame, &m, err, sizeof(err)) != NGX_OK) {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_BAD_FRAME,
                                                 1, "%s", err);
    }

    if (ngx_fishchat_frame_is(&m, "AUTH")) {
        if (m.nargs != 1
            || (peer->conf->secret.len
                && (m.args[0].len != peer->conf->secret.len
                    || ngx_strncmp(m.args[0].data, peer->conf->secret.data,
                                   m.args[0].len) != 0)))
        {
            rc = ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_FORBIDDEN,
                                                 1, "wrong secret");
            goto done;
        }

        peer->authed = 1;
        rc = ngx_stream_fishchat_router_reply(peer, "AUTH_OK", NULL, 0);
        goto done;
    }

    if (!peer->authed) {
        rc = ngx_stream_fishchat_router_refuse(peer,
                                               NGX_FISHCHAT_ERR_FORBIDDEN, 1,
                                               "AUTH <secret> must come "
                                               "first");
        goto done;
    }

    if (ngx_fishchat_frame_is(&m, "SUBSCRIBE_CHANNEL")) {
        rc = ngx_stream_fishchat_router_subscribe(peer, &m);

    } else if (ngx_fishchat_frame_is(&m, "ROUTE_MESSAGE_P2P")) {
        rc = ngx_stream_fishchat_router_route(peer, &m);

    } else {
        rc = ngx_stream_fishchat_router_refuse(peer,
                                             NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                             1, "unknown command \"%V\"",
                                             &m.cmd);
    }

done:

    ngx_fishchat_frame_free(&m);

    return rc;
}


static ngx_int_t
ngx_stream_fishchat_router_subscribe(ngx_stream_fishchat_router_peer_t *peer,
    ngx_fishchat_frame_t *m)
{
    ngx_uint_t                          i;
    ngx_stream_fishchat_router_chan_t  *ch;

    if (m->nargs != 2 && m->nargs != 1) {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                                 "SUBSCRIBE_CHANNEL takes a "
                                                 "channel and a uuid");
    }

    for (i = 0; i < NGX_FISHCHAT_SYS_N; i++) {
        if (m->args[0].len == ngx_stream_fishchat_router_channels[i].len
            && ngx_strncmp(m->args[0].data,
                           ngx_stream_fishchat_router_channels[i].data,
                           m->args[0].len) == 0)
        {
            break;
        }
    }

    if (i == NGX_FISHCHAT_SYS_N) {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                                 "unknown channel \"%V\"",
                                                 &m->args[0]);
    }

    if (peer->channels & (1 << i)) {
        /* subscribed already */
        return NGX_OK;
    }

    ch = &ngx_stream_fishchat_router_chans[i];

    if (ch->peers == 0) {
        if (ngx_fishchat_redis_subscribe_ready((ngx_cycle_t *) ngx_cycle,
                                      &ngx_fishchat_get_conf(
                                          (ngx_cycle_t *) ngx_cycle)->sys[i],
                                      ngx_stream_fishchat_router_event,
                                      ngx_stream_fishchat_router_ready, ch)
            != NGX_OK)
        {
            return ngx_stream_fishchat_router_refuse(peer,
                                                     NGX_FISHCHAT_ERR_REDIS,
                                                     1, "can't subscribe");
        }
    }

    ch->peers++;
    peer->channels |= 1 << i;
    ngx_queue_insert_tail(&ch->queue, &peer->link[i]);

    if (ch->ready) {
        peer->confirmed |= 1 << i;

        return ngx_stream_fishchat_router_reply(peer, "SUBSCRIBED",
                                                &m->args[0], 1);
    }

    return NGX_OK;
}


/* the peer of a link in the queue of the channel "index" */

static ngx_stream_fishchat_router_peer_t *
ngx_stream_fishchat_router_peer(ngx_queue_t *q, ngx_uint_t index)
{
    return (ngx_stream_fishchat_router_peer_t *)
               ((u_char *) (q - index)
                - offsetof(ngx_stream_fishchat_router_peer_t, link));
}


/* Redis confirmed a subscription: the peers that wait are told */

static void
ngx_stream_fishchat_router_ready(void *data)
{
    ngx_stream_fishchat_router_chan_t *ch = data;

    ngx_queue_t                        *q, *next;
    ngx_stream_fishchat_router_peer_t  *peer;

    ch->ready = 1;

    for (q = ngx_queue_head(&ch->queue);
         q != ngx_queue_sentinel(&ch->queue);
         q = next)
    {
        next = ngx_queue_next(q);

        peer = ngx_stream_fishchat_router_peer(q, ch->index);

        if (peer->cut || (peer->confirmed & (1 << ch->index))) {
            continue;
        }

        peer->confirmed |= 1 << ch->index;

        (void) ngx_stream_fishchat_router_reply(peer, "SUBSCRIBED",
                      &ngx_stream_fishchat_router_channels[ch->index], 1);
    }
}


/*
 * An event: "<event>\n<field>\n..." on "<prefix>sys:<name>", written to
 * every peer of the channel as
 *     SYSCTRL_EVENT <channel> <event> <field>...
 */

static void
ngx_stream_fishchat_router_event(ngx_str_t *payload, void *data)
{
    ngx_stream_fishchat_router_chan_t *ch = data;

    u_char                             *p, *last, *nl;
    ngx_str_t                           args[NGX_FISHCHAT_MAX_ARGS], frame;
    ngx_uint_t                          n;
    ngx_queue_t                        *q, *next;
    ngx_stream_fishchat_router_peer_t  *peer;

    if (ngx_queue_empty(&ch->queue)) {
        return;
    }

    args[0] = ngx_stream_fishchat_router_channels[ch->index];
    n = 1;

    p = payload->data;
    last = payload->data + payload->len;

    while (n < NGX_FISHCHAT_MAX_ARGS) {
        nl = ngx_strlchr(p, last, '\n');

        args[n].data = p;
        args[n].len = (nl ? nl : last) - p;
        n++;

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    if (ngx_fishchat_frame_alloc(&frame,
                                 &ngx_stream_fishchat_router_event_cmd,
                                 args, n, ngx_cycle->log)
        != NGX_OK)
    {
        return;
    }

    for (q = ngx_queue_head(&ch->queue);
         q != ngx_queue_sentinel(&ch->queue);
         q = next)
    {
        next = ngx_queue_next(q);

        peer = ngx_stream_fishchat_router_peer(q, ch->index);

        if (peer->cut || !(peer->confirmed & (1 << ch->index))) {
            continue;
        }

        if (ngx_stream_fishchat_router_write(peer, frame.data, frame.len)
            == NGX_OK)
        {
            peer->counters->frames_out++;
        }
    }

    ngx_free(frame.data);
}


static ngx_int_t
ngx_stream_fishchat_router_route(ngx_stream_fishchat_router_peer_t *peer,
    ngx_fishchat_frame_t *m)
{
    ngx_int_t                            rc;
    ngx_stream_fishchat_router_route_t  *rt;

    if (m->nargs != 4) {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                                 "ROUTE_MESSAGE_P2P takes to, "
                                                 "message, from and uuid");
    }

    if (ngx_fishchat_valid_id(&m->args[0]) != NGX_OK
        || ngx_fishchat_valid_id(&m->args[2]) != NGX_OK)
    {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                                 "invalid \"to\" or \"from\" "
                                                 "id");
    }

    rt = ngx_alloc(sizeof(ngx_stream_fishchat_router_route_t), peer->c->log);
    if (rt == NULL) {
        ngx_stream_fishchat_router_close(peer);
        return NGX_ERROR;
    }

    rt->peer = peer;

    if (ngx_fishchat_uuid_valid(&m->args[3]) == NGX_OK) {
        ngx_memcpy(rt->uuid, m->args[3].data, NGX_FISHCHAT_UUID_LEN);

    } else {
        ngx_fishchat_uuid(rt->uuid);
    }

    rc = ngx_stream_fishchat_msg_route(&m->args[0], &m->args[1], &m->args[2],
                                       rt->uuid,
                                       ngx_stream_fishchat_router_routed, rt,
                                       ngx_cycle->log);

    if (rc == NGX_OK) {
        ngx_queue_insert_tail(&peer->routes, &rt->queue);
        return NGX_OK;
    }

    ngx_free(rt);

    if (rc == NGX_DECLINED) {
        return ngx_stream_fishchat_router_refuse(peer,
                                                 NGX_FISHCHAT_ERR_REDIS, 0,
                                                 "message not accepted: "
                                                 "Redis is unavailable");
    }

    ngx_stream_fishchat_router_close(peer);
    return NGX_ERROR;
}


static void
ngx_stream_fishchat_router_routed(ngx_int_t rc, ngx_fishchat_err_e err,
    void *data)
{
    ngx_stream_fishchat_router_route_t *rt = data;

    ngx_str_t                           uuid;
    ngx_stream_fishchat_router_peer_t  *peer;

    peer = rt->peer;

    if (peer == NULL) {
        ngx_free(rt);
        return;
    }

    ngx_queue_remove(&rt->queue);

    uuid.data = rt->uuid;
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    if (rc == NGX_OK) {
        peer->counters->messages++;
        (void) ngx_stream_fishchat_router_reply(peer, "ROUTED", &uuid, 1);

    } else if (err == NGX_FISHCHAT_ERR_INBOX_FULL) {
        (void) ngx_stream_fishchat_router_refuse(peer, err, 0,
                                                 "the inbox of the recipient "
                                                 "is full: %V", &uuid);

    } else if (err == NGX_FISHCHAT_ERR_DUPLICATE_UUID) {
        (void) ngx_stream_fishchat_router_refuse(peer, err, 0,
                                                 "another message to this "
                                                 "recipient has the uuid %V",
                                                 &uuid);

    } else if (err == NGX_FISHCHAT_ERR_NOT_CONFIRMED) {
        (void) ngx_stream_fishchat_router_refuse(peer, err, 0,
                                                 "Redis did not answer: the "
                                                 "message may have been "
                                                 "stored: %V", &uuid);

    } else {
        (void) ngx_stream_fishchat_router_refuse(peer, err, 0,
                                                 "message not accepted: "
                                                 "Redis is unavailable: %V",
                                                 &uuid);
    }

    ngx_free(rt);
}


static ngx_int_t
ngx_stream_fishchat_router_refuse(ngx_stream_fishchat_router_peer_t *peer,
    ngx_fishchat_err_e err, ngx_uint_t fatal, const char *fmt, ...)
{
    va_list     args;
    ngx_str_t   text, eargs[2];
    u_char      buf[256];

    va_start(args, fmt);
    text = ngx_fishchat_refusal(peer->c->log, "router", peer->counters, err,
                                fatal, buf, sizeof(buf), fmt, args);
    va_end(args);

    eargs[0] = *ngx_fishchat_err_code(err);
    eargs[1] = text;

    if (ngx_stream_fishchat_router_reply(peer, "ERROR", eargs, 2) != NGX_OK) {
        return NGX_ERROR;
    }

    if (fatal) {
        ngx_stream_fishchat_router_close(peer);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_fishchat_router_reply(ngx_stream_fishchat_router_peer_t *peer,
    char *cmd, ngx_str_t *args, ngx_uint_t nargs)
{
    ngx_int_t  rc;
    ngx_str_t  name, frame;

    name.data = (u_char *) cmd;
    name.len = ngx_strlen(cmd);

    if (ngx_fishchat_frame_alloc(&frame, &name, args, nargs, peer->c->log)
        != NGX_OK)
    {
        ngx_stream_fishchat_router_close(peer);
        return NGX_ERROR;
    }

    rc = ngx_stream_fishchat_router_write(peer, frame.data, frame.len);

    ngx_free(frame.data);

    if (rc == NGX_OK) {
        peer->counters->frames_out++;
    }

    return rc;
}


/*
 * Writes what it can now and queues the rest, up to
 * fishchat_router_send_buffer; past it the peer is cut off (closed from
 * a posted event, so that an event being written to many peers never
 * sees one go away under it).
 */

static ngx_int_t
ngx_stream_fishchat_router_write(ngx_stream_fishchat_router_peer_t *peer,
    u_char *data, size_t len)
{
    ngx_int_t  rc;

    if (peer->closed || peer->cut) {
        return NGX_ERROR;
    }

    rc = ngx_fishchat_out_write(peer->c, &peer->out, data, len,
                                peer->conf->send_buffer, peer->counters);

    if (rc == NGX_OK) {
        return NGX_OK;
    }

    if (rc == NGX_DECLINED) {
        peer->counters->errors++;
        peer->counters->error[NGX_FISHCHAT_ERR_SLOW_READER]++;

        ngx_log_error(NGX_LOG_INFO, peer->c->log, 0,
                      "fishchat router: SLOW_READER: over %uz bytes waiting "
                      "to be sent, closing", peer->conf->send_buffer);
    }

    /* closed from the write handler, not from under the caller */
    peer->cut = 1;
    ngx_post_event(peer->c->write, &ngx_posted_events);

    return NGX_ERROR;
}


static void
ngx_stream_fishchat_router_write_handler(ngx_event_t *wev)
{
    ngx_connection_t                   *c;
    ngx_stream_fishchat_router_peer_t  *peer;

    c = wev->data;
    peer = ngx_fishchat_stream_ctx(wev, ngx_stream_fishchat_router_module);

    if (peer == NULL || peer->closed) {
        return;
    }

    if (peer->cut) {
        ngx_stream_fishchat_router_close(peer);
        return;
    }

    if (ngx_fishchat_out_flush(c, &peer->out, peer->counters) == NGX_ERROR) {
        ngx_stream_fishchat_router_close(peer);
    }
}


/* configuration */

static void *
ngx_stream_fishchat_router_create_main_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool,
                       sizeof(ngx_stream_fishchat_router_main_conf_t));
}


static void *
ngx_stream_fishchat_router_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_fishchat_router_srv_conf_t  *rscf;

    rscf = ngx_pcalloc(cf->pool,
                       sizeof(ngx_stream_fishchat_router_srv_conf_t));
    if (rscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rscf->enabled = 0;
     *     rscf->secret = { 0, NULL };
     */

    rscf->send_buffer = NGX_CONF_UNSET_SIZE;

    return rscf;
}


static char *
ngx_stream_fishchat_router_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_fishchat_router_srv_conf_t *prev = parent;
    ngx_stream_fishchat_router_srv_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->secret, prev->secret, "");

    ngx_conf_merge_size_value(conf->send_buffer, prev->send_buffer,
                              1024 * 1024);

    return NGX_CONF_OK;
}


static char *
ngx_stream_fishchat_router(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_fishchat_router_srv_conf_t *rscf = conf;

    char                                    *rv;
    ngx_stream_fishchat_router_main_conf_t  *rmcf;

    rv = ngx_fishchat_stream_role(cf, "router", &rscf->enabled,
                                  &rscf->counters,
                                  ngx_stream_fishchat_router_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rmcf = ngx_stream_conf_get_module_main_conf(cf,
                                           ngx_stream_fishchat_router_module);
    rmcf->servers++;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_stream_fishchat_router_init_module(ngx_cycle_t *cycle)
{
    ngx_stream_fishchat_router_main_conf_t  *rmcf;

    rmcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                           ngx_stream_fishchat_router_module);

    if (rmcf == NULL || rmcf->servers == 0) {
        return NGX_OK;
    }

    if (ngx_stream_fishchat_msg_servers(cycle) == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_router\" needs a \"fishchat_msg\" server "
                      "in the same \"stream\" block");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_fishchat_router_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_FISHCHAT_SYS_N; i++) {
        ngx_stream_fishchat_router_chans[i].index = i;
        ngx_stream_fishchat_router_chans[i].peers = 0;
        ngx_stream_fishchat_router_chans[i].ready = 0;
        ngx_queue_init(&ngx_stream_fishchat_router_chans[i].queue);
    }

    return NGX_OK;
}
