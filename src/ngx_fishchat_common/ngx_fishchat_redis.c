
/*
 * FishChat for nginx: Redis on nginx's event loop.
 *
 * Each worker keeps one hiredis async context for commands, attached to an
 * nginx connection so that its socket is watched by the worker's event
 * module (level-triggered: hiredis reads at most one buffer per call).
 * Written against the async API that hiredis 0.14 (Debian 12) and 1.x both
 * have: the connect timeout, the per-command timeout and the queue kept
 * while Redis is down are done here.
 *
 * A command is written as RESP at once, straight into hiredis' output
 * buffer when the link is up; while it is not, it waits in a bounded queue
 * (a copy on the heap) and is sent on reconnect.  Every command has a
 * deadline; a link has one timer, for the earliest: all commands get the
 * same timeout and are answered in order, so the oldest of each queue is
 * the one to look at.  On expiry the handler of a command that never left
 * gets NULL; an oldest sent command with no answer from Redis meanwhile
 * marks the link as stuck, so the link is dropped (every command sent on
 * it gets NULL) and made anew.  The handler of
 * a command is called exactly once (reply, or NULL on any failure) unless
 * the command was cancelled; hiredis always calls back every command it
 * took, so a request is freed only then.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_sha1.h>
#include <sys/ioctl.h>
#include <hiredis/sds.h>
#include "ngx_fishchat.h"


#define NGX_FISHCHAT_REDIS_DOWN        0
#define NGX_FISHCHAT_REDIS_CONNECTING  1
#define NGX_FISHCHAT_REDIS_UP          2

#define NGX_FISHCHAT_REDIS_BACKOFF_MIN  100
#define NGX_FISHCHAT_REDIS_BACKOFF_MAX  5000

#define NGX_FISHCHAT_REDIS_FREE_MAX     256

/* commands held back (fishchat_redis_flush_delay) are written at this */
#define NGX_FISHCHAT_REDIS_FLUSH_SIZE   16384

/*
 * the arguments of ngx_fishchat_redis_command() kept on the stack (its
 * callers send a handful; a script with many goes through
 * ngx_fishchat_redis_eval())
 */
#define NGX_FISHCHAT_REDIS_STACK_ARGS   16

/* a channel on the subscriber link */
#define NGX_FISHCHAT_REDIS_SUB_IDLE     0   /* not sent on this connection */
#define NGX_FISHCHAT_REDIS_SUB_SENT     1   /* SUBSCRIBE sent */
#define NGX_FISHCHAT_REDIS_SUB_LEAVING  2   /* UNSUBSCRIBE sent, unconfirmed */


struct ngx_fishchat_redis_req_s {
    ngx_queue_t                     queue;
    ngx_fishchat_redis_t           *link;
    ngx_fishchat_redis_handler_pt   handler;
    void                           *data;
    u_char                         *cmd;       /* while waiting */
    size_t                          len;
    ngx_msec_t                      deadline;
    unsigned                        sent:1;
    unsigned                        done:1;
};


/*
 * A channel stays allocated until Redis confirmed its UNSUBSCRIBE: hiredis
 * keeps a pointer to it (the privdata of its callback) until then.  Its
 * handlers are cleared at once, so that the caller may free its data.
 */

typedef struct {
    ngx_str_node_t                  node;      /* node.str: the name */
    ngx_queue_t                     queue;
    ngx_fishchat_redis_t           *link;
    ngx_fishchat_redis_message_pt   handler;
    ngx_fishchat_redis_resync_pt    ready;
    void                           *data;
    ngx_uint_t                      state;
    unsigned                        every:1;      /* ready at each confirm */
    unsigned                        confirmed:1;
    unsigned                        again:1;      /* wanted while leaving */
    u_char                          name[1];
} ngx_fishchat_redis_channel_t;


struct ngx_fishchat_redis_s {
    redisAsyncContext              *ac;
    ngx_connection_t               *conn;
    ngx_fishchat_conf_t            *conf;
    ngx_log_t                      *log;

    ngx_event_t                     retry;
    ngx_event_t                     timer;     /* the earliest deadline */
    ngx_event_t                     flush;     /* fishchat_redis_flush_delay */
    ngx_msec_t                      backoff;
    ngx_msec_t                      connect_start;
    ngx_uint_t                      state;
    ngx_uint_t                      handshake;

    ngx_queue_t                     waiting;
    ngx_uint_t                      nwaiting;
    ngx_queue_t                     sent;
    ngx_queue_t                     free;
    ngx_uint_t                      nfree;

    ngx_msec_t                      rtt;
    ngx_msec_t                      last_read;

    /* the subscriber link */
    ngx_rbtree_t                    channels;
    ngx_rbtree_node_t               channels_sentinel;
    ngx_queue_t                     channel_list;

    unsigned                        subscriber:1;
    unsigned                        flushing:1;
    unsigned                        failed:1;
    unsigned                        exiting:1;
};


static void ngx_fishchat_redis_connect(ngx_fishchat_redis_t *link);
static void ngx_fishchat_redis_retry_handler(ngx_event_t *ev);
static void ngx_fishchat_redis_schedule(ngx_fishchat_redis_t *link,
    const char *why);
static void ngx_fishchat_redis_read_handler(ngx_event_t *ev);
static void ngx_fishchat_redis_write_handler(ngx_event_t *ev);
static void ngx_fishchat_redis_flush_handler(ngx_event_t *ev);
static void ngx_fishchat_redis_add_read(void *privdata);
static void ngx_fishchat_redis_del_read(void *privdata);
static void ngx_fishchat_redis_add_write(void *privdata);
static void ngx_fishchat_redis_del_write(void *privdata);
static void ngx_fishchat_redis_cleanup(void *privdata);
static void ngx_fishchat_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_fishchat_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_fishchat_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_fishchat_redis_flush(ngx_fishchat_redis_t *link);
static ngx_int_t ngx_fishchat_redis_send(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_req_t *req, u_char *cmd, size_t len);
static void ngx_fishchat_redis_arm(ngx_fishchat_redis_t *link);
static void ngx_fishchat_redis_idle(ngx_fishchat_redis_t *link);
static u_char *ngx_fishchat_redis_resp(u_char *cmd, ngx_str_t *head,
    ngx_uint_t nhead, ngx_str_t *args, ngx_uint_t nargs);
static ngx_fishchat_redis_req_t *ngx_fishchat_redis_request(
    ngx_fishchat_redis_t *link, ngx_fishchat_redis_handler_pt handler,
    void *data, ngx_str_t *head, ngx_uint_t nhead, ngx_str_t *args,
    ngx_uint_t nargs);
static void ngx_fishchat_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_fishchat_redis_timeout(ngx_event_t *ev);
static void ngx_fishchat_redis_free_req(ngx_fishchat_redis_req_t *req);
static ngx_fishchat_redis_t *ngx_fishchat_redis_create(ngx_cycle_t *cycle,
    ngx_uint_t subscriber);
static void ngx_fishchat_redis_close(ngx_fishchat_redis_t *link);
static void ngx_fishchat_redis_message(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_fishchat_redis_send_subscribe(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_channel_t *ch);
static ngx_int_t ngx_fishchat_redis_sub_add(ngx_cycle_t *cycle,
    ngx_str_t *channel, ngx_fishchat_redis_message_pt handler,
    ngx_fishchat_redis_resync_pt ready, void *data, ngx_uint_t every);
static ngx_fishchat_redis_channel_t *ngx_fishchat_redis_sub_find(
    ngx_fishchat_redis_t *link, ngx_str_t *name);
static void ngx_fishchat_redis_sub_free(ngx_fishchat_redis_channel_t *ch);
static void ngx_fishchat_redis_sub_reset(ngx_fishchat_redis_t *link);


static ngx_uint_t             ngx_fishchat_redis_unknown_outcome;
static ngx_uint_t             ngx_fishchat_redis_reading;
static ngx_fishchat_redis_t  *ngx_fishchat_redis_main;
static ngx_fishchat_redis_t  *ngx_fishchat_redis_sub;
static ngx_uint_t             ngx_fishchat_redis_sub_paused;


ngx_fishchat_redis_t *
ngx_fishchat_redis_link(void)
{
    return ngx_fishchat_redis_main;
}


ngx_uint_t
ngx_fishchat_redis_up(ngx_fishchat_redis_t *link)
{
    return link && link->state == NGX_FISHCHAT_REDIS_UP;
}


/*
 * Called from the init_process of every role that needs Redis (after the
 * event module has set up the worker); the first call makes the link.
 */

ngx_int_t
ngx_fishchat_redis_start(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf(cycle);

    if (ngx_fishchat_redis_main || fcf == NULL || fcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_fishchat_redis_main = ngx_fishchat_redis_create(cycle, 0);

    return ngx_fishchat_redis_main ? NGX_OK : NGX_ERROR;
}


/*
 * Subscribes this worker to a channel on its subscriber link (a link in
 * subscribe mode can't send commands, so it is a link of its own).  When
 * the subscription is confirmed again after the link was down, "resync"
 * is called: messages published meanwhile were lost.
 */

ngx_int_t
ngx_fishchat_redis_subscribe(ngx_cycle_t *cycle, ngx_str_t *channel,
    ngx_fishchat_redis_message_pt handler, ngx_fishchat_redis_resync_pt resync,
    void *data)
{
    return ngx_fishchat_redis_sub_add(cycle, channel, handler, resync, data,
                                      0);
}


/*
 * The same, for channels that come and go while the worker runs: "ready"
 * is called each time Redis confirms the subscription, the first time
 * included.  Every message published after that arrives (until the link
 * goes down, and then "ready" comes again); what was published before
 * must be read some other way.  A channel is subscribed once however often
 * this is called: callers count their own references.
 */

ngx_int_t
ngx_fishchat_redis_subscribe_ready(ngx_cycle_t *cycle, ngx_str_t *channel,
    ngx_fishchat_redis_message_pt handler, ngx_fishchat_redis_resync_pt ready,
    void *data)
{
    return ngx_fishchat_redis_sub_add(cycle, channel, handler, ready, data, 1);
}


static ngx_int_t
ngx_fishchat_redis_sub_add(ngx_cycle_t *cycle, ngx_str_t *channel,
    ngx_fishchat_redis_message_pt handler, ngx_fishchat_redis_resync_pt ready,
    void *data, ngx_uint_t every)
{
    ngx_fishchat_conf_t           *fcf;
    ngx_fishchat_redis_t          *link;
    ngx_fishchat_redis_channel_t  *ch;

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf == NULL || fcf->redis == NULL) {
        return NGX_DECLINED;
    }

    link = ngx_fishchat_redis_sub;

    if (link == NULL) {
        link = ngx_fishchat_redis_create(cycle, 1);
        if (link == NULL) {
            return NGX_ERROR;
        }

        ngx_fishchat_redis_sub = link;
    }

    ch = ngx_fishchat_redis_sub_find(link, channel);

    if (ch) {
        ch->handler = handler;
        ch->ready = ready;
        ch->data = data;
        ch->every = every;

        if (ch->state == NGX_FISHCHAT_REDIS_SUB_LEAVING) {
            /* subscribed again when Redis confirmed the UNSUBSCRIBE */
            ch->again = 1;
            ch->confirmed = 0;
        }

        return NGX_OK;
    }

    ch = ngx_alloc(sizeof(ngx_fishchat_redis_channel_t) + channel->len,
                   cycle->log);
    if (ch == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(ch, sizeof(ngx_fishchat_redis_channel_t));

    ngx_memcpy(ch->name, channel->data, channel->len);
    ch->node.str.data = ch->name;
    ch->node.str.len = channel->len;
    ch->node.node.key = ngx_crc32_short(ch->name, channel->len);

    ch->link = link;
    ch->handler = handler;
    ch->ready = ready;
    ch->data = data;
    ch->every = every;
    ch->state = NGX_FISHCHAT_REDIS_SUB_IDLE;

    ngx_rbtree_insert(&link->channels, &ch->node.node);
    ngx_queue_insert_tail(&link->channel_list, &ch->queue);

    if (link->state == NGX_FISHCHAT_REDIS_UP) {
        ngx_fishchat_redis_send_subscribe(link, ch);
    }

    return NGX_OK;
}


/*
 * Nothing published to the channel reaches its handler any more; Redis is
 * told with UNSUBSCRIBE.
 */

void
ngx_fishchat_redis_unsubscribe(ngx_str_t *channel)
{
    ngx_fishchat_redis_t          *link;
    ngx_fishchat_redis_channel_t  *ch;

    link = ngx_fishchat_redis_sub;

    if (link == NULL) {
        return;
    }

    ch = ngx_fishchat_redis_sub_find(link, channel);

    if (ch == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "fishchat: redis unsubscribe \"%V\"", channel);

    ch->handler = NULL;
    ch->ready = NULL;
    ch->data = NULL;

    if (ch->state == NGX_FISHCHAT_REDIS_SUB_LEAVING) {
        ch->again = 0;
        return;
    }

    if (ch->state == NGX_FISHCHAT_REDIS_SUB_SENT
        && link->ac && link->state == NGX_FISHCHAT_REDIS_UP
        && redisAsyncCommand(link->ac, NULL, NULL, "UNSUBSCRIBE %b",
                             ch->name, ch->node.str.len)
           == REDIS_OK)
    {
        ch->state = NGX_FISHCHAT_REDIS_SUB_LEAVING;
        return;
    }

    /* never subscribed on this connection */

    ngx_fishchat_redis_sub_free(ch);
}


static ngx_fishchat_redis_channel_t *
ngx_fishchat_redis_sub_find(ngx_fishchat_redis_t *link, ngx_str_t *name)
{
    return (ngx_fishchat_redis_channel_t *)
               ngx_str_rbtree_lookup(&link->channels, name,
                                     ngx_crc32_short(name->data, name->len));
}


static void
ngx_fishchat_redis_sub_free(ngx_fishchat_redis_channel_t *ch)
{
    ngx_rbtree_delete(&ch->link->channels, &ch->node.node);
    ngx_queue_remove(&ch->queue);
    ngx_free(ch);
}


/*
 * The subscriber connection is gone (hiredis has called back every
 * channel with NULL already): nothing is subscribed any more, and the
 * channels that were leaving are gone.
 */

static void
ngx_fishchat_redis_sub_reset(ngx_fishchat_redis_t *link)
{
    ngx_queue_t                   *q, *next;
    ngx_fishchat_redis_channel_t  *ch;

    for (q = ngx_queue_head(&link->channel_list);
         q != ngx_queue_sentinel(&link->channel_list);
         q = next)
    {
        next = ngx_queue_next(q);
        ch = ngx_queue_data(q, ngx_fishchat_redis_channel_t, queue);

        if (ch->state == NGX_FISHCHAT_REDIS_SUB_LEAVING && !ch->again) {
            ngx_fishchat_redis_sub_free(ch);
            continue;
        }

        ch->state = NGX_FISHCHAT_REDIS_SUB_IDLE;
        ch->again = 0;
    }
}


static ngx_fishchat_redis_t *
ngx_fishchat_redis_create(ngx_cycle_t *cycle, ngx_uint_t subscriber)
{
    ngx_fishchat_redis_t  *link;

    link = ngx_pcalloc(cycle->pool, sizeof(ngx_fishchat_redis_t));
    if (link == NULL) {
        return NULL;
    }

    link->conf = ngx_fishchat_get_conf(cycle);
    link->log = cycle->log;
    link->subscriber = subscriber;

    ngx_rbtree_init(&link->channels, &link->channels_sentinel,
                    ngx_str_rbtree_insert_value);
    ngx_queue_init(&link->channel_list);

    ngx_queue_init(&link->waiting);
    ngx_queue_init(&link->sent);
    ngx_queue_init(&link->free);

    ngx_fishchat_event_init(&link->retry, ngx_fishchat_redis_retry_handler,
                            link, cycle->log);
    link->retry.cancelable = 1;

    ngx_fishchat_event_init(&link->timer, ngx_fishchat_redis_timeout,
                            link, cycle->log);
    link->timer.cancelable = 1;

    /* not cancelable: what it holds back may be a closing session's last */
    ngx_fishchat_event_init(&link->flush, ngx_fishchat_redis_flush_handler,
                            link, cycle->log);

    link->backoff = NGX_FISHCHAT_REDIS_BACKOFF_MIN;

    ngx_fishchat_redis_connect(link);

    return link;
}


ngx_msec_t
ngx_fishchat_redis_rtt(ngx_fishchat_redis_t *link)
{
    return link ? link->rtt : 0;
}


static ngx_uint_t
ngx_fishchat_redis_link_state(ngx_fishchat_redis_t *link)
{
    if (link == NULL) {
        return NGX_FISHCHAT_REDIS_LINK_NONE;
    }

    switch (link->state) {

    case NGX_FISHCHAT_REDIS_UP:
        return NGX_FISHCHAT_REDIS_LINK_UP;

    case NGX_FISHCHAT_REDIS_CONNECTING:
        return NGX_FISHCHAT_REDIS_LINK_CONNECTING;

    default:
        return NGX_FISHCHAT_REDIS_LINK_DOWN;
    }
}


/*
 * The state of this worker's links, for the monitor; "matched" counts the
 * channels subscribed whose name starts with "prefix" (topic channels).
 */

void
ngx_fishchat_redis_stats(ngx_fishchat_redis_stats_t *st, ngx_str_t *prefix)
{
    ngx_queue_t                   *q;
    ngx_fishchat_redis_t          *link;
    ngx_fishchat_redis_channel_t  *ch;

    ngx_memzero(st, sizeof(ngx_fishchat_redis_stats_t));

    st->command = ngx_fishchat_redis_link_state(ngx_fishchat_redis_main);
    st->subscriber = ngx_fishchat_redis_link_state(ngx_fishchat_redis_sub);

    if (ngx_fishchat_redis_main) {
        st->waiting = ngx_fishchat_redis_main->nwaiting;
    }

    link = ngx_fishchat_redis_sub;

    if (link == NULL || link->state != NGX_FISHCHAT_REDIS_UP) {
        return;
    }

    for (q = ngx_queue_head(&link->channel_list);
         q != ngx_queue_sentinel(&link->channel_list);
         q = ngx_queue_next(q))
    {
        ch = ngx_queue_data(q, ngx_fishchat_redis_channel_t, queue);

        if (ch->state != NGX_FISHCHAT_REDIS_SUB_SENT || !ch->confirmed) {
            continue;
        }

        st->channels++;

        if (prefix && ch->node.str.len >= prefix->len
            && ngx_strncmp(ch->name, prefix->data, prefix->len) == 0)
        {
            st->matched++;
        }
    }
}


void
ngx_fishchat_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_fishchat_redis_sub) {
        ngx_fishchat_redis_close(ngx_fishchat_redis_sub);
        ngx_fishchat_redis_sub = NULL;
    }

    if (ngx_fishchat_redis_main) {
        ngx_fishchat_redis_close(ngx_fishchat_redis_main);
        ngx_fishchat_redis_main = NULL;
    }
}


static void
ngx_fishchat_redis_close(ngx_fishchat_redis_t *link)
{
    ngx_queue_t               *q;
    ngx_fishchat_redis_req_t  *req;

    link->exiting = 1;

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    if (link->timer.timer_set) {
        ngx_del_timer(&link->timer);
    }

    if (link->flush.timer_set) {
        ngx_del_timer(&link->flush);
    }

    /* nobody is waiting for the answers any more */

    for (q = ngx_queue_head(&link->sent);
         q != ngx_queue_sentinel(&link->sent);
         q = ngx_queue_next(q))
    {
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);
        req->handler = NULL;
    }

    while (!ngx_queue_empty(&link->waiting)) {
        q = ngx_queue_head(&link->waiting);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);
        req->handler = NULL;
        ngx_queue_remove(q);
        ngx_fishchat_redis_free_req(req);
    }

    link->nwaiting = 0;

    if (link->ac) {
        redisAsyncFree(link->ac);
        link->ac = NULL;
    }

    /* hiredis has called back every channel: they can go */

    while (!ngx_queue_empty(&link->channel_list)) {
        q = ngx_queue_head(&link->channel_list);
        ngx_fishchat_redis_sub_free(
                      ngx_queue_data(q, ngx_fishchat_redis_channel_t, queue));
    }

    while (!ngx_queue_empty(&link->free)) {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_fishchat_redis_req_t, queue));
    }
}


static void
ngx_fishchat_redis_connect(ngx_fishchat_redis_t *link)
{
    int                            n;
    ngx_url_t                     *u;
    ngx_uint_t                     i;
    ngx_connection_t              *c;
    redisAsyncContext             *ac;
    ngx_fishchat_conf_t           *fcf;
    ngx_fishchat_redis_script_t  **script;
    u_char                         host[NGX_SOCKADDR_STRLEN + 1];

    fcf = link->conf;
    u = fcf->redis;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "fishchat: redis %V: connecting the %s link", &u->url,
                   link->subscriber ? "subscriber" : "command");

    if (u->family == AF_UNIX) {
        n = ngx_min(u->host.len, NGX_SOCKADDR_STRLEN);
        ngx_cpystrn(host, u->host.data, n + 1);
        ac = redisAsyncConnectUnix((char *) host);

    } else {
        n = ngx_min(u->host.len, NGX_SOCKADDR_STRLEN);
        ngx_cpystrn(host, u->host.data, n + 1);
        ac = redisAsyncConnect((char *) host, u->port);
    }

    if (ac == NULL) {
        ngx_fishchat_redis_schedule(link, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_fishchat_redis_schedule(link, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    c = ngx_get_connection(ac->c.fd, link->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_fishchat_redis_schedule(link, "no free connection");
        return;
    }

    c->data = link;
    c->read->handler = ngx_fishchat_redis_read_handler;
    c->write->handler = ngx_fishchat_redis_write_handler;
    c->read->log = link->log;
    c->write->log = link->log;
    c->log = link->log;

    link->ac = ac;
    link->conn = c;
    link->state = NGX_FISHCHAT_REDIS_CONNECTING;
    link->connect_start = ngx_current_msec;

    ac->data = link;
    ac->ev.data = link;
    ac->ev.addRead = ngx_fishchat_redis_add_read;
    ac->ev.delRead = ngx_fishchat_redis_del_read;
    ac->ev.addWrite = ngx_fishchat_redis_add_write;
    ac->ev.delWrite = ngx_fishchat_redis_del_write;
    ac->ev.cleanup = ngx_fishchat_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_fishchat_redis_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_fishchat_redis_disconnected);

    /* the handshake; its last reply tells the link is up */

    link->handshake = 0;

    if (fcf->redis_password.len) {
        redisAsyncCommand(ac, ngx_fishchat_redis_handshake, link, "AUTH %b",
                          fcf->redis_password.data,
                          fcf->redis_password.len);
        link->handshake++;
    }

    if (fcf->redis_db) {
        redisAsyncCommand(ac, ngx_fishchat_redis_handshake, link,
                          "SELECT %d", (int) fcf->redis_db);
        link->handshake++;
    }

    if (!link->subscriber) {
        script = fcf->scripts.elts;

        for (i = 0; i < fcf->scripts.nelts; i++) {
            redisAsyncCommand(ac, ngx_fishchat_redis_handshake, link,
                              "SCRIPT LOAD %b", script[i]->body.data,
                              script[i]->body.len);
            link->handshake++;
        }
    }

    redisAsyncCommand(ac, ngx_fishchat_redis_handshake, link, "PING");
    link->handshake++;

    /* the connect timeout */
    ngx_add_timer(&link->retry, fcf->redis_timeout);
}


static void
ngx_fishchat_redis_schedule(ngx_fishchat_redis_t *link, const char *why)
{
    ngx_url_t   *u;
    ngx_uint_t   level;

    link->state = NGX_FISHCHAT_REDIS_DOWN;

    if (link->exiting) {
        return;
    }

    if (link->subscriber) {
        ngx_fishchat_redis_sub_reset(link);
    }

    u = link->conf->redis;

    /* one warning when the link goes down, quieter retries after it */

    level = link->failed ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, link->log, 0,
                  "fishchat: redis %V is unavailable (%s link): %s, "
                  "retrying in %M ms", &u->url,
                  link->subscriber ? "subscriber" : "command",
                  why ? why : "connection closed", link->backoff);

    link->failed = 1;

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    ngx_add_timer(&link->retry, link->backoff);

    link->backoff = ngx_min(link->backoff * 2, NGX_FISHCHAT_REDIS_BACKOFF_MAX);
}


static void
ngx_fishchat_redis_retry_handler(ngx_event_t *ev)
{
    ngx_fishchat_redis_t  *link;
    redisAsyncContext     *ac;

    link = ev->data;

    if (link->exiting) {
        return;
    }

    if (link->state == NGX_FISHCHAT_REDIS_CONNECTING && link->ac) {

        /* connect or handshake took too long */

        ac = link->ac;
        link->ac = NULL;

        /* the retry is scheduled here, not by the disconnect callback */
        ac->onDisconnect = NULL;
        redisAsyncFree(ac);

        ngx_fishchat_redis_schedule(link, "connect timed out");
        return;
    }

    if (link->state == NGX_FISHCHAT_REDIS_DOWN) {
        ngx_fishchat_redis_connect(link);
    }
}


/*
 * hiredis reads at most 16k a call: read on while the socket has more, so
 * that a busy channel does not fall behind by one buffer per pass of the
 * event loop, but for at most a few milliseconds of work, so that the
 * worker's other events are not starved.  The subscriber link reads
 * nothing while it is paused (ngx_fishchat_redis_sub_pause()): the socket
 * is level-triggered, the event comes back at each pass of the loop, and
 * what waits stays in the socket and in Redis.
 */

#define NGX_FISHCHAT_REDIS_READS     64
#define NGX_FISHCHAT_REDIS_READ_MS   5

static ngx_msec_t
ngx_fishchat_redis_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);

    return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static void
ngx_fishchat_redis_read_handler(ngx_event_t *ev)
{
    int                    n;
    ngx_uint_t             i;
    ngx_msec_t             start;
    ngx_connection_t      *c;
    ngx_fishchat_redis_t  *link;

    c = ev->data;
    link = c->data;

    if (link->subscriber && ngx_fishchat_redis_sub_paused) {
        return;
    }

    link->last_read = ngx_current_msec;
    start = ngx_fishchat_redis_clock();

    ngx_fishchat_redis_reading = 1;

    for (i = 0; i < NGX_FISHCHAT_REDIS_READS && link->ac; i++) {
        redisAsyncHandleRead(link->ac);

        if (link->ac == NULL
            || (link->subscriber && ngx_fishchat_redis_sub_paused)
            || ioctl(link->ac->c.fd, FIONREAD, &n) == -1
            || n <= 0
            || ngx_fishchat_redis_clock() - start
               >= NGX_FISHCHAT_REDIS_READ_MS)
        {
            break;
        }
    }

    ngx_fishchat_redis_reading = 0;
}


/*
 * The messages of the subscriber link come faster than this worker hands
 * them on: it stops reading them (1) until it has caught up (0)
 */

void
ngx_fishchat_redis_sub_pause(ngx_uint_t pause)
{
    ngx_fishchat_redis_t  *link;

    if (ngx_fishchat_redis_sub_paused == pause) {
        return;
    }

    ngx_fishchat_redis_sub_paused = pause;

    link = ngx_fishchat_redis_sub;

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                   "fishchat: redis subscriber link %s",
                   pause ? "paused" : "resumed");

    if (!pause && link && link->conn && link->conn->read->active
        && !link->conn->read->posted)
    {
        /* what waits in the socket is read in this pass of the loop */
        ngx_post_event(link->conn->read, &ngx_posted_events);
    }
}


static void
ngx_fishchat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t      *c;
    ngx_fishchat_redis_t  *link;

    c = ev->data;
    link = c->data;

    if (link->ac) {
        redisAsyncHandleWrite(link->ac);
    }
}


/* the delay is over: what the socket takes is written now, the rest later */

static void
ngx_fishchat_redis_flush_handler(ngx_event_t *ev)
{
    ngx_fishchat_redis_t  *link;

    link = ev->data;

    if (link->ac == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "fishchat: redis: %uz bytes written after the delay",
                   sdslen(link->ac->c.obuf));

    link->flushing = 1;
    redisAsyncHandleWrite(link->ac);
    link->flushing = 0;
}


static void
ngx_fishchat_redis_add_read(void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    if (link->conn && !link->conn->read->active) {
        if (ngx_add_event(link->conn->read, NGX_READ_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, link->log, 0,
                          "fishchat: redis read event failed");
        }
    }
}


static void
ngx_fishchat_redis_del_read(void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    if (link->conn && link->conn->read->active) {
        (void) ngx_del_event(link->conn->read, NGX_READ_EVENT, 0);
    }
}


/*
 * hiredis has commands to write.  With fishchat_redis_flush_delay, the
 * commands of the command link are held that long first, so that those of
 * several passes of the event loop go in one write and Redis wakes up
 * once for them; the first one starts the delay.  Once they fill 16k they
 * are written without waiting for it.
 */

static void
ngx_fishchat_redis_add_write(void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    if (link->conf->redis_flush_delay
        && !link->subscriber
        && !link->flushing
        && link->state == NGX_FISHCHAT_REDIS_UP
        && link->conn && !link->conn->write->active
        && link->ac)
    {
        if (sdslen(link->ac->c.obuf) < NGX_FISHCHAT_REDIS_FLUSH_SIZE) {

            if (!link->flush.timer_set) {
                ngx_add_timer(&link->flush, link->conf->redis_flush_delay);
            }

            return;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_EVENT, link->log, 0,
                       "fishchat: redis: %uz bytes waiting, written at once",
                       sdslen(link->ac->c.obuf));
    }

    if (link->conn && !link->conn->write->active) {
        if (ngx_add_event(link->conn->write, NGX_WRITE_EVENT, 0) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, link->log, 0,
                          "fishchat: redis write event failed");
        }
    }
}


static void
ngx_fishchat_redis_del_write(void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    if (link->conn && link->conn->write->active) {
        (void) ngx_del_event(link->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis frees its context and is about to close the socket */

static void
ngx_fishchat_redis_cleanup(void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    ngx_connection_t  *c;

    c = link->conn;

    if (link->flush.timer_set) {
        ngx_del_timer(&link->flush);
    }

    if (c == NULL) {
        return;
    }

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    link->conn = NULL;
}


static void
ngx_fishchat_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_fishchat_redis_t  *link = ac->data;

    if (status == REDIS_OK) {
        return;
    }

    /* hiredis frees the context after this */

    link->ac = NULL;

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    ngx_fishchat_redis_schedule(link, ac->errstr);
}


static void
ngx_fishchat_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_fishchat_redis_t  *link = ac->data;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "fishchat: redis %s link dropped, status %d: %s",
                   link->subscriber ? "subscriber" : "command", status,
                   ac->err ? ac->errstr : "closed");

    link->ac = NULL;

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    ngx_fishchat_redis_schedule(link, ac->err ? ac->errstr : NULL);
}


static void
ngx_fishchat_redis_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_fishchat_redis_t  *link = privdata;

    ngx_uint_t                     level;
    ngx_queue_t                   *q;
    redisReply                    *reply = r;
    ngx_fishchat_redis_channel_t  *ch;

    if (reply == NULL || link->exiting) {
        /* the context is going away; the callbacks above say why */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /*
         * a Redis that restarts answers LOADING while it reads its data
         * back: it is on its way, not misconfigured
         */

        level = (reply->len >= 7 && ngx_strncmp(reply->str, "LOADING", 7) == 0)
                ? NGX_LOG_WARN : NGX_LOG_ERR;

        ngx_log_error(level, link->log, 0,
                      "fishchat: redis %V refused the handshake: %*s",
                      &link->conf->redis->url, (size_t) reply->len,
                      reply->str);

        /* retried after the backoff: the password may be fixed meanwhile */
        redisAsyncDisconnect(ac);
        return;
    }

    if (--link->handshake) {
        return;
    }

    if (link->retry.timer_set) {
        ngx_del_timer(&link->retry);
    }

    link->state = NGX_FISHCHAT_REDIS_UP;
    link->rtt = ngx_current_msec - link->connect_start;
    link->backoff = NGX_FISHCHAT_REDIS_BACKOFF_MIN;

    level = link->failed ? NGX_LOG_NOTICE : NGX_LOG_INFO;

    ngx_log_error(level, link->log, 0,
                  "fishchat: redis %V is up (%s link)",
                  &link->conf->redis->url,
                  link->subscriber ? "subscriber" : "command");

    link->failed = 0;

    if (!link->subscriber) {
        ngx_fishchat_redis_flush(link);
        return;
    }

    for (q = ngx_queue_head(&link->channel_list);
         q != ngx_queue_sentinel(&link->channel_list);
         q = ngx_queue_next(q))
    {
        ch = ngx_queue_data(q, ngx_fishchat_redis_channel_t, queue);

        if (ch->state == NGX_FISHCHAT_REDIS_SUB_IDLE) {
            ngx_fishchat_redis_send_subscribe(link, ch);
        }
    }
}


static void
ngx_fishchat_redis_send_subscribe(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_channel_t *ch)
{
    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, link->log, 0,
                   "fishchat: redis subscribe \"%V\"", &ch->node.str);

    if (redisAsyncCommand(link->ac, ngx_fishchat_redis_message, ch,
                          "SUBSCRIBE %b", ch->name, ch->node.str.len)
        == REDIS_OK)
    {
        ch->state = NGX_FISHCHAT_REDIS_SUB_SENT;
    }

    /* otherwise the context is going away: sent again on reconnect */
}


#define ngx_fishchat_redis_is(e, name)                                       \
    ((e)->len == sizeof(name) - 1                                            \
     && ngx_strncasecmp((u_char *) (e)->str, (u_char *) name,               \
                        sizeof(name) - 1) == 0)


/*
 * Everything hiredis hands over for a channel: its messages, and the
 * confirmations of SUBSCRIBE and UNSUBSCRIBE (NULL when the link goes).
 */

static void
ngx_fishchat_redis_message(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_fishchat_redis_channel_t *ch = privdata;

    ngx_str_t              payload;
    redisReply            *reply = r, *type;
    ngx_fishchat_redis_t  *link;

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    type = reply->element[0];

    if (ngx_fishchat_redis_is(type, "message")) {

        if (ch->handler == NULL
            || ngx_fishchat_redis_str(reply->element[2], &payload) != NGX_OK)
        {
            /* left, or leaving */
            return;
        }

        ch->handler(&payload, ch->data);
        return;
    }

    if (ngx_fishchat_redis_is(type, "subscribe")) {

        if (ch->state != NGX_FISHCHAT_REDIS_SUB_SENT) {
            return;
        }

        if (ch->ready && (ch->every || ch->confirmed)) {
            ch->confirmed = 1;
            ch->ready(ch->data);
            return;
        }

        ch->confirmed = 1;
        return;
    }

    if (ngx_fishchat_redis_is(type, "unsubscribe")) {

        if (ch->state != NGX_FISHCHAT_REDIS_SUB_LEAVING) {
            return;
        }

        link = ch->link;

        if (ch->again) {
            ch->again = 0;
            ch->state = NGX_FISHCHAT_REDIS_SUB_IDLE;

            if (link->ac && link->state == NGX_FISHCHAT_REDIS_UP) {
                ngx_fishchat_redis_send_subscribe(link, ch);
            }

            return;
        }

        ngx_fishchat_redis_sub_free(ch);
    }
}


static void
ngx_fishchat_redis_flush(ngx_fishchat_redis_t *link)
{
    ngx_queue_t               *q;
    ngx_fishchat_redis_req_t  *req;

    while (!ngx_queue_empty(&link->waiting)
           && link->state == NGX_FISHCHAT_REDIS_UP)
    {
        q = ngx_queue_head(&link->waiting);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);

        ngx_queue_remove(q);
        link->nwaiting--;

        if (ngx_fishchat_redis_send(link, req, req->cmd, req->len) == NGX_OK) {
            ngx_free(req->cmd);
            req->cmd = NULL;
            continue;
        }

        /* the context is disconnecting */

        req->done = 1;

        if (req->handler) {
            req->handler(NULL, req->data);
        }

        ngx_fishchat_redis_free_req(req);
    }
}


/* NGX_ERROR: the context is disconnecting, the request is not taken */

static ngx_int_t
ngx_fishchat_redis_send(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_req_t *req, u_char *cmd, size_t len)
{
    /* hiredis copies the command into its output buffer */

    if (redisAsyncFormattedCommand(link->ac, ngx_fishchat_redis_reply, req,
                                   (char *) cmd, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    req->sent = 1;

    ngx_queue_insert_tail(&link->sent, &req->queue);

    return NGX_OK;
}


/*
 * Sends a command, or queues it while the link is not up.  Returns NULL
 * when the command can't be taken (no Redis configured, queue full, out of
 * memory): the handler is not called then.  Otherwise the handler is
 * called once, later, with the reply or NULL; the request pointer must be
 * forgotten from then on, or passed to ngx_fishchat_redis_cancel() before.
 */

ngx_fishchat_redis_req_t *
ngx_fishchat_redis_command(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    int                        i;
    ngx_str_t                 *args;
    ngx_fishchat_redis_req_t  *req;
    ngx_str_t                  stack[NGX_FISHCHAT_REDIS_STACK_ARGS];

    if (argc <= NGX_FISHCHAT_REDIS_STACK_ARGS) {
        args = stack;

    } else {
        args = ngx_alloc(argc * sizeof(ngx_str_t), ngx_cycle->log);
        if (args == NULL) {
            return NULL;
        }
    }

    for (i = 0; i < argc; i++) {
        args[i].data = (u_char *) argv[i];
        args[i].len = argvlen[i];
    }

    req = ngx_fishchat_redis_request(link, handler, data, args, argc, NULL,
                                     0);

    if (args != stack) {
        ngx_free(args);
    }

    return req;
}


/* a decimal number, as RESP writes lengths and counts */

static u_char *
ngx_fishchat_redis_num(u_char *p, size_t n)
{
    u_char  *q, digits[NGX_SIZE_T_LEN];

    q = digits + NGX_SIZE_T_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, digits + NGX_SIZE_T_LEN - q);
}


/*
 * The command as RESP at "cmd": the count, then each argument, the "head"
 * ones first; returns its end, where a null byte follows.  hiredis looks
 * at the byte after a command's name to tell whether it has arguments:
 * that of a command of its name alone (PING) must not be whatever the
 * buffer held there.
 */

static u_char *
ngx_fishchat_redis_resp(u_char *cmd, ngx_str_t *head, ngx_uint_t nhead,
    ngx_str_t *args, ngx_uint_t nargs)
{
    u_char      *p;
    ngx_str_t   *a;
    ngx_uint_t   i;

    p = cmd;
    *p++ = '*';
    p = ngx_fishchat_redis_num(p, nhead + nargs);
    *p++ = CR; *p++ = LF;

    for (i = 0; i < nhead + nargs; i++) {
        a = (i < nhead) ? &head[i] : &args[i - nhead];

        *p++ = '$';
        p = ngx_fishchat_redis_num(p, a->len);
        *p++ = CR; *p++ = LF;
        p = ngx_cpymem(p, a->data, a->len);
        *p++ = CR; *p++ = LF;
    }

    *p = '\0';

    return p;
}


/*
 * The RESP of a command is "*<count>\r\n", then "$<length>\r\n<bytes>\r\n"
 * for each of the "head" arguments and then of "args": written here into
 * the stack (or the heap, for a large one) and copied by hiredis into its
 * output buffer, or kept on the heap while the command waits for the link
 */

#define NGX_FISHCHAT_REDIS_STACK  4096

static ngx_fishchat_redis_req_t *
ngx_fishchat_redis_request(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_handler_pt handler, void *data, ngx_str_t *head,
    ngx_uint_t nhead, ngx_str_t *args, ngx_uint_t nargs)
{
    u_char                    *cmd, *p;
    size_t                     size;
    ngx_uint_t                 i;
    ngx_str_t                 *a;
    ngx_queue_t               *q;
    ngx_fishchat_redis_req_t  *req;
    u_char                     stack[NGX_FISHCHAT_REDIS_STACK];

    if (link == NULL || link->exiting || link->subscriber) {
        return NULL;
    }

    if (link->state != NGX_FISHCHAT_REDIS_UP
        && link->nwaiting >= link->conf->redis_queue)
    {
        ngx_log_error(NGX_LOG_INFO, link->log, 0,
                      "fishchat: redis queue is full (%ui commands)",
                      link->nwaiting);
        return NULL;
    }

    /* the count, the arguments, and a null byte after them */

    size = 1 + NGX_SIZE_T_LEN + 2 + 1;

    for (i = 0; i < nhead + nargs; i++) {
        a = (i < nhead) ? &head[i] : &args[i - nhead];
        size += 1 + NGX_SIZE_T_LEN + 2 + a->len + 2;
    }

    if (size <= NGX_FISHCHAT_REDIS_STACK) {
        cmd = stack;

    } else {
        cmd = ngx_alloc(size, link->log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    p = ngx_fishchat_redis_resp(cmd, head, nhead, args, nargs);

    if (!ngx_queue_empty(&link->free)) {
        q = ngx_queue_head(&link->free);
        ngx_queue_remove(q);
        link->nfree--;
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);

    } else {
        req = ngx_alloc(sizeof(ngx_fishchat_redis_req_t), link->log);
        if (req == NULL) {
            if (cmd != stack) {
                ngx_free(cmd);
            }

            return NULL;
        }
    }

    ngx_memzero(req, sizeof(ngx_fishchat_redis_req_t));

    req->link = link;
    req->handler = handler;
    req->data = data;
    req->deadline = ngx_current_msec + link->conf->redis_timeout;

    /*
     * A worker that is shutting down waits (at most the command timeout)
     * for what its closing sessions write last, such as topic positions
     * and the logout, if the link is up; nothing else keeps it
     */
    if (ngx_exiting && link->state == NGX_FISHCHAT_REDIS_UP) {
        link->timer.cancelable = 0;
    }

    /*
     * A handler that runs while hiredis calls back the commands of a
     * context it frees (a timed-out link, a disconnect) may send a command
     * too: the link is still up, but its context takes none any more (or
     * is gone): the command waits for the next connection
     */

    if (link->state == NGX_FISHCHAT_REDIS_UP && link->ac
        && ngx_fishchat_redis_send(link, req, cmd, p - cmd) == NGX_OK)
    {
        if (cmd != stack) {
            ngx_free(cmd);
        }

        ngx_fishchat_redis_arm(link);

        return req;
    }

    req->len = p - cmd;

    if (cmd == stack) {
        cmd = ngx_alloc(req->len + 1, link->log);
        if (cmd == NULL) {
            ngx_fishchat_redis_free_req(req);
            return NULL;
        }

        ngx_memcpy(cmd, stack, req->len + 1);
    }

    req->cmd = cmd;

    ngx_queue_insert_tail(&link->waiting, &req->queue);
    link->nwaiting++;

    ngx_fishchat_redis_arm(link);

    return req;
}


/*
 * The link's timer is set for the earliest deadline of its commands, or
 * earlier: a command answered since leaves it early, and it is set again
 * then.  With no command left it goes.
 */

static void
ngx_fishchat_redis_arm(ngx_fishchat_redis_t *link)
{
    ngx_msec_t                 deadline;
    ngx_queue_t               *q;
    ngx_fishchat_redis_req_t  *req;

    if (link->timer.timer_set) {
        return;
    }

    if (ngx_queue_empty(&link->waiting) && ngx_queue_empty(&link->sent)) {
        link->timer.cancelable = 1;
        return;
    }

    deadline = ngx_current_msec + link->conf->redis_timeout;

    if (!ngx_queue_empty(&link->waiting)) {
        q = ngx_queue_head(&link->waiting);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);
        deadline = req->deadline;
    }

    if (!ngx_queue_empty(&link->sent)) {
        q = ngx_queue_head(&link->sent);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);

        if ((ngx_msec_int_t) (req->deadline - deadline) < 0) {
            deadline = req->deadline;
        }
    }

    if ((ngx_msec_int_t) (deadline - ngx_current_msec) <= 0) {
        deadline = ngx_current_msec + 1;
    }

    ngx_add_timer(&link->timer, deadline - ngx_current_msec);
}


/* a link with no command left needs no timer, nor keeps a worker alive */

static void
ngx_fishchat_redis_idle(ngx_fishchat_redis_t *link)
{
    if (ngx_queue_empty(&link->waiting) && ngx_queue_empty(&link->sent)) {

        if (link->timer.timer_set) {
            ngx_del_timer(&link->timer);
        }

        link->timer.cancelable = 1;
    }
}


void
ngx_fishchat_redis_cancel(ngx_fishchat_redis_req_t *req)
{
    ngx_fishchat_redis_t  *link;

    link = req->link;

    req->handler = NULL;
    req->data = NULL;

    if (!req->sent) {
        ngx_queue_remove(&req->queue);
        link->nwaiting--;
        ngx_fishchat_redis_free_req(req);
        ngx_fishchat_redis_idle(link);
        return;
    }

    /* hiredis calls back later; the request is freed then */
    req->done = 1;
}


static void
ngx_fishchat_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_fishchat_redis_req_t  *req = privdata;

    ngx_fishchat_redis_t  *link;

    link = req->link;

    ngx_queue_remove(&req->queue);

    if (!req->done) {
        req->done = 1;

        if (req->handler) {
            /* no reply to a command that was sent: it may have run */
            ngx_fishchat_redis_unknown_outcome = (r == NULL);
            req->handler(r, req->data);
            ngx_fishchat_redis_unknown_outcome = 0;
        }
    }

    ngx_fishchat_redis_free_req(req);
    ngx_fishchat_redis_idle(link);
}


/*
 * 1 while the replies and messages of a read of a Redis link are handed
 * out: many of them in one pass of the event loop
 */

ngx_uint_t
ngx_fishchat_redis_replying(void)
{
    return ngx_fishchat_redis_reading;
}


/*
 * In a handler called with no reply: 1 when the command had been sent (it
 * may have run), 0 when it never left this worker (it did not run).
 */

ngx_uint_t
ngx_fishchat_redis_unknown(void)
{
    return ngx_fishchat_redis_unknown_outcome;
}


static void
ngx_fishchat_redis_timeout(ngx_event_t *ev)
{
    int                        n;
    ngx_msec_t                 timeout;
    ngx_queue_t               *q;
    ngx_fishchat_redis_t      *link;
    redisAsyncContext         *ac;
    ngx_fishchat_redis_req_t  *req;

    link = ev->data;
    timeout = link->conf->redis_timeout;

    /* the commands that never left this worker, each one on its own */

    while (!ngx_queue_empty(&link->waiting)) {
        q = ngx_queue_head(&link->waiting);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);

        if ((ngx_msec_int_t) (req->deadline - ngx_current_msec) > 0) {
            break;
        }

        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "fishchat: redis command timed out after %M ms "
                      "in the queue", timeout);

        ngx_queue_remove(q);
        link->nwaiting--;

        req->done = 1;

        if (req->handler) {
            req->handler(NULL, req->data);
        }

        ngx_fishchat_redis_free_req(req);
    }

    /* the oldest command sent: Redis answers it next */

    if (!ngx_queue_empty(&link->sent)) {
        q = ngx_queue_head(&link->sent);
        req = ngx_queue_data(q, ngx_fishchat_redis_req_t, queue);

        if ((ngx_msec_int_t) (req->deadline - ngx_current_msec) > 0) {
            goto done;
        }

        if (ngx_current_msec - link->last_read < timeout) {
            /*
             * Redis is answering, only slowly (a backlog of commands): a
             * command that was sent waits for its reply as long as the
             * link is alive
             */
            req->deadline = link->last_read + timeout;
            goto done;
        }

        if (link->ac && ioctl(link->ac->c.fd, FIONREAD, &n) == 0 && n > 0) {
            /* answers wait unread: this worker was busy, Redis was not */
            req->deadline = ngx_current_msec + timeout;
            goto done;
        }

        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "fishchat: redis command timed out after %M ms, "
                      "Redis answered nothing meanwhile, reconnecting",
                      timeout);

        if (link->ac && link->state == NGX_FISHCHAT_REDIS_UP) {

            /*
             * the link is stuck: hiredis calls back every command sent on
             * it with no reply
             */

            ac = link->ac;
            link->ac = NULL;
            ac->onDisconnect = NULL;
            redisAsyncFree(ac);
            ngx_fishchat_redis_schedule(link, "command timed out");

        } else if (!req->done) {
            /* no context to drop: this one is answered now, NULL */

            req->done = 1;

            if (req->handler) {
                ngx_fishchat_redis_unknown_outcome = 1;
                req->handler(NULL, req->data);
                ngx_fishchat_redis_unknown_outcome = 0;
                req->handler = NULL;
            }

            req->deadline = ngx_current_msec + timeout;
        }
    }

done:

    ngx_fishchat_redis_arm(link);
}


static void
ngx_fishchat_redis_free_req(ngx_fishchat_redis_req_t *req)
{
    ngx_fishchat_redis_t  *link;

    link = req->link;

    if (req->cmd) {
        ngx_free(req->cmd);
        req->cmd = NULL;
    }

    if (link->exiting || link->nfree >= NGX_FISHCHAT_REDIS_FREE_MAX) {
        ngx_free(req);
        return;
    }

    ngx_queue_insert_head(&link->free, &req->queue);
    link->nfree++;
}


/*
 * A Lua script, loaded at every connect and run with EVALSHA; a body that
 * several roles register (ngx_fishchat_lua.h) is loaded once.
 */

ngx_fishchat_redis_script_t *
ngx_fishchat_redis_script(ngx_conf_t *cf, char *body)
{
    u_char                        digest[20], sha[40];
    ngx_uint_t                    i;
    ngx_sha1_t                    sha1;
    ngx_fishchat_conf_t          *fcf;
    ngx_fishchat_redis_script_t  *script, **p;

    fcf = ngx_fishchat_conf(cf);

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, body, ngx_strlen(body));
    ngx_sha1_final(digest, &sha1);

    ngx_hex_dump(sha, digest, 20);

    p = fcf->scripts.elts;

    for (i = 0; i < fcf->scripts.nelts; i++) {
        if (ngx_memcmp(p[i]->sha, sha, 40) == 0) {
            return p[i];
        }
    }

    script = ngx_palloc(cf->pool, sizeof(ngx_fishchat_redis_script_t));
    if (script == NULL) {
        return NULL;
    }

    script->body.data = (u_char *) body;
    script->body.len = ngx_strlen(body);
    ngx_memcpy(script->sha, sha, 40);

    p = ngx_array_push(&fcf->scripts);
    if (p == NULL) {
        return NULL;
    }

    *p = script;

    return script;
}


/*
 * The scripts of a role: each one of "slots" (up to a NULL body) is
 * registered and kept in "conf" at its offset
 */

ngx_int_t
ngx_fishchat_redis_scripts(ngx_conf_t *cf, void *conf,
    ngx_fishchat_redis_script_slot_t *slots)
{
    ngx_fishchat_redis_script_t  *script;

    for ( /* void */ ; slots->body; slots++) {
        script = ngx_fishchat_redis_script(cf, slots->body);
        if (script == NULL) {
            return NGX_ERROR;
        }

        *(ngx_fishchat_redis_script_t **) ((u_char *) conf + slots->offset)
            = script;
    }

    return NGX_OK;
}


ngx_fishchat_redis_req_t *
ngx_fishchat_redis_eval(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    void *data, ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args)
{
    u_char     nk[NGX_INT_T_LEN];
    ngx_str_t  head[3];

    ngx_str_set(&head[0], "EVALSHA");
    head[1].data = script->sha;
    head[1].len = 40;
    head[2].data = nk;
    head[2].len = ngx_fishchat_redis_num(nk, nkeys) - nk;

    return ngx_fishchat_redis_request(link, handler, data, head, 3, args,
                                      nargs);
}


/*
 * An element of a reply as an ngx_str_t: NGX_OK for a string; otherwise
 * NGX_DECLINED, and "s" is empty
 */

ngx_int_t
ngx_fishchat_redis_str(redisReply *e, ngx_str_t *s)
{
    if (e->type != REDIS_REPLY_STRING) {
        ngx_str_null(s);
        return NGX_DECLINED;
    }

    s->data = (u_char *) e->str;
    s->len = e->len;

    return NGX_OK;
}
