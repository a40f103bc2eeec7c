
/*
 * FishChat for nginx: topics of the msg server role, delivery.
 *
 * The members of a topic on this worker, the messages of the topic's
 * channel made into frames once and written to every member by the
 * delivery event, the catch-up of a member from the history, and the
 * positions written back to Redis (see ngx_stream_fishchat_topic.c for
 * the whole picture).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_stream_fishchat_msg_private.h"
#include "ngx_stream_fishchat_topic.h"


static void ngx_stream_fishchat_topic_release(ngx_stream_fishchat_topic_t *t);
static void ngx_stream_fishchat_topic_ready(void *data);
static void ngx_stream_fishchat_topic_message(ngx_str_t *payload, void *data);
static void ngx_stream_fishchat_topic_schedule(
    ngx_stream_fishchat_topic_t *t);
static uint64_t ngx_stream_fishchat_topic_usec(void);
static ngx_int_t ngx_stream_fishchat_topic_write(
    ngx_stream_fishchat_topic_member_t *mb);
static void ngx_stream_fishchat_topic_trim(ngx_stream_fishchat_topic_t *t,
    ngx_uint_t all);
static void ngx_stream_fishchat_topic_catch_up(
    ngx_stream_fishchat_topic_member_t *mb);
static ngx_int_t ngx_stream_fishchat_topic_page_check(
    ngx_stream_fishchat_topic_member_t *mb, redisReply *reply);
static ngx_int_t ngx_stream_fishchat_topic_gap(
    ngx_stream_fishchat_topic_member_t *mb, uint64_t from);
static ngx_int_t ngx_stream_fishchat_topic_render(
    ngx_stream_fishchat_topic_member_t *mb, redisReply *reply, uint64_t from,
    uint64_t *written, ngx_uint_t *frames, u_char **lastp);
static void ngx_stream_fishchat_topic_caught_up(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_topic_flush_held(
    ngx_stream_fishchat_topic_member_t *mb);
static ngx_int_t ngx_stream_fishchat_topic_hold(
    ngx_stream_fishchat_topic_member_t *mb,
    ngx_stream_fishchat_topic_msg_t *msg);
static void ngx_stream_fishchat_topic_drop_held(
    ngx_stream_fishchat_topic_member_t *mb);
static ngx_int_t ngx_stream_fishchat_topic_deliver(
    ngx_stream_fishchat_topic_member_t *mb, uint64_t seq,
    ngx_fishchat_out_piece_t *pieces, ngx_uint_t n, ngx_uint_t frames);
static ngx_int_t ngx_stream_fishchat_topic_parse(ngx_str_t *payload,
    uint64_t *seq, ngx_str_t *uuid, ngx_str_t *from, ngx_str_t *text);
static ngx_uint_t ngx_stream_fishchat_topic_frame(ngx_str_t *name,
    ngx_str_t *uuid, ngx_str_t *from, ngx_str_t *text, ngx_uint_t optin,
    ngx_pool_t **pool, ngx_str_t **cmd, ngx_str_t *word, ngx_str_t *args);
static ngx_stream_fishchat_topic_msg_t *ngx_stream_fishchat_topic_msg(
    ngx_str_t *name, uint64_t seq, ngx_str_t *uuid, ngx_str_t *from,
    ngx_str_t *text);
static void ngx_stream_fishchat_topic_msg_release(
    ngx_stream_fishchat_topic_msg_t *msg);
static void ngx_stream_fishchat_topic_dirty(ngx_stream_fishchat_topic_t *t);
static ngx_uint_t ngx_stream_fishchat_topic_moved(
    ngx_stream_fishchat_topic_member_t *mb,
    ngx_stream_fishchat_topic_member_t *only);


static ngx_str_t  ngx_stream_fishchat_topic_resp =
    ngx_string("RESP_MESSAGE_TOPIC");


/* a membership of this session: the topic is subscribed, caught up */

ngx_stream_fishchat_topic_member_t *
ngx_stream_fishchat_topic_attach(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *name)
{
    u_char                               *p;
    uint32_t                              hash;
    ngx_stream_fishchat_topic_t          *t;
    ngx_stream_fishchat_topic_worker_t   *tw;
    ngx_stream_fishchat_topic_member_t   *mb;

    mb = ngx_stream_fishchat_topic_mine_find(sess, name);

    if (mb) {
        return mb;
    }

    tw = ngx_stream_fishchat_msg_worker->topics;

    hash = ngx_crc32_short(name->data, name->len);
    t = (ngx_stream_fishchat_topic_t *)
            ngx_str_rbtree_lookup(&tw->topics, name, hash);

    if (t == NULL) {
        t = ngx_alloc(sizeof(ngx_stream_fishchat_topic_t) + 2 * name->len
                      + ngx_stream_fishchat_msg_worker->fcf->redis_prefix.len
                      + sizeof("t:{}"), sess->c->log);
        if (t == NULL) {
            return NULL;
        }

        ngx_memzero(t, sizeof(ngx_stream_fishchat_topic_t));

        p = ngx_cpymem(t->data, name->data, name->len);
        t->node.str.data = t->data;
        t->node.str.len = name->len;
        t->node.node.key = hash;

        t->channel = ngx_fishchat_key(&p, "t:", name, "");

        ngx_queue_init(&t->members);
        ngx_queue_init(&t->msgs);

        if (ngx_fishchat_redis_subscribe_ready(tw->cycle, &t->channel,
                                          ngx_stream_fishchat_topic_message,
                                          ngx_stream_fishchat_topic_ready, t)
            != NGX_OK)
        {
            ngx_free(t);
            return NULL;
        }

        ngx_rbtree_insert(&tw->topics, &t->node.node);

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                       "fishchat msg: subscribing to topic \"%V\"", name);
    }

    mb = ngx_alloc(sizeof(ngx_stream_fishchat_topic_member_t), sess->c->log);
    if (mb == NULL) {
        if (t->nmembers == 0) {
            ngx_stream_fishchat_topic_release(t);
        }

        return NULL;
    }

    ngx_memzero(mb, sizeof(ngx_stream_fishchat_topic_member_t));

    mb->topic = t;
    mb->sess = sess;

    ngx_queue_insert_tail(&t->members, &mb->in_topic);
    ngx_queue_insert_tail(&sess->topics, &mb->in_sess);
    t->nmembers++;
    t->nwaiting++;

    if (t->ready) {
        ngx_stream_fishchat_topic_catch_up(mb);
    }

    /* otherwise when the subscription is confirmed */

    return mb;
}


void
ngx_stream_fishchat_topic_detach(ngx_stream_fishchat_topic_member_t *mb)
{
    ngx_stream_fishchat_topic_t  *t;

    t = mb->topic;

    if (mb->req) {
        /* after exit_process closed the link, it has forgotten them */
        if (ngx_fishchat_redis_link()) {
            ngx_fishchat_redis_cancel(mb->req);
        }

        mb->req = NULL;
    }

    ngx_stream_fishchat_topic_drop_held(mb);

    if (t->cursor == &mb->in_topic) {
        /* a pass of the delivery event goes on with the next member */
        t->cursor = ngx_queue_next(&mb->in_topic);
    }

    if (!mb->live) {
        t->nwaiting--;
    }

    ngx_queue_remove(&mb->in_topic);
    ngx_queue_remove(&mb->in_sess);

    ngx_free(mb);

    if (--t->nmembers == 0) {
        ngx_stream_fishchat_topic_release(t);
    }
}


ngx_stream_fishchat_topic_member_t *
ngx_stream_fishchat_topic_mine_find(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *name)
{
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_member_t  *mb;

    for (q = ngx_queue_head(&sess->topics);
         q != ngx_queue_sentinel(&sess->topics);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_sess);

        if (mb->topic->node.str.len == name->len
            && ngx_strncmp(mb->topic->node.str.data, name->data, name->len)
               == 0)
        {
            return mb;
        }
    }

    return NULL;
}


/* the last local member is gone: UNSUBSCRIBE, and the topic goes */

static void
ngx_stream_fishchat_topic_release(ngx_stream_fishchat_topic_t *t)
{
    ngx_stream_fishchat_topic_worker_t  *tw;

    tw = ngx_stream_fishchat_msg_worker->topics;

    if (!t->gone) {
        t->gone = 1;

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ngx_cycle->log, 0,
                       "fishchat msg: unsubscribing from topic \"%V\"",
                       &t->node.str);

        ngx_fishchat_redis_unsubscribe(&t->channel);
        ngx_rbtree_delete(&tw->topics, &t->node.node);

        if (t->in_dirty) {
            ngx_queue_remove(&t->dirty);
            t->in_dirty = 0;
        }

        if (t->in_pending) {
            ngx_queue_remove(&t->pending);
            t->in_pending = 0;
        }

        ngx_stream_fishchat_topic_trim(t, 1);
    }

    if (t->busy == 0) {
        ngx_free(t);
    }
}


/* the subscription is confirmed (again): every member catches up */

static void
ngx_stream_fishchat_topic_ready(void *data)
{
    ngx_stream_fishchat_topic_t *t = data;

    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_member_t  *mb;

    if (t->ready) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: topic \"%V\" subscribed again, its "
                      "members catch up", &t->node.str);
    }

    t->ready = 1;
    t->seq = 0;

    for (q = ngx_queue_head(&t->members);
         q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);
        ngx_stream_fishchat_topic_catch_up(mb);
    }

    /* no member is live now: the catch-ups read what the list had */
    ngx_stream_fishchat_topic_trim(t, 1);
}


/*
 * A live message: its frames are made once, members that catch up hold
 * it, and it goes on the topic's list for the delivery event to write to
 * the live ones.
 */

static void
ngx_stream_fishchat_topic_message(ngx_str_t *payload, void *data)
{
    ngx_stream_fishchat_topic_t *t = data;

    uint64_t                             seq;
    ngx_str_t                            uuid, from, text;
    ngx_uint_t                           jump;
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_msg_t     *msg;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_topic_member_t  *mb;

    if (!t->ready) {
        /* published before the subscription: the catch-up reads it */
        return;
    }

    if (ngx_stream_fishchat_topic_parse(payload, &seq, &uuid, &from, &text)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fishchat msg: invalid message on the channel of "
                      "topic \"%V\"", &t->node.str);
        return;
    }

    if (t->seq && seq <= t->seq) {
        return;
    }

    jump = (t->seq && seq != t->seq + 1);

    if (jump) {
        /* should not happen on one connection: read the gap */
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: topic \"%V\" jumped from message %uL "
                      "to %uL, its members catch up", &t->node.str, t->seq,
                      seq);
    }

    t->seq = seq;

    msg = ngx_stream_fishchat_topic_msg(&t->node.str, seq, &uuid, &from,
                                        &text);
    if (msg == NULL) {
        return;
    }

    /* the members are looked at only when some catch up, or must */

    q = (t->nwaiting || jump) ? ngx_queue_head(&t->members)
                              : ngx_queue_sentinel(&t->members);

    for ( /* void */ ; q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);

        if (!mb->live) {
            (void) ngx_stream_fishchat_topic_hold(mb, msg);
            continue;
        }

        if (jump && seq > mb->pos) {
            /* what the list has for it is in the history too */
            (void) ngx_stream_fishchat_topic_hold(mb, msg);
            ngx_stream_fishchat_topic_catch_up(mb);
        }
    }

    /* the list takes the first reference */

    tw = ngx_stream_fishchat_msg_worker->topics;

    ngx_queue_insert_tail(&t->msgs, &msg->queue);
    t->nmsgs++;
    tw->nmsgs++;

    ngx_stream_fishchat_topic_schedule(t);

    if (tw->nmsgs >= (ngx_uint_t)
                     ngx_stream_fishchat_msg_worker->mmcf->topic_backlog)
    {
        /*
         * more than the members are written: Redis keeps the rest, and
         * the senders here wait
         */
        ngx_fishchat_redis_sub_pause(1);
        ngx_stream_fishchat_msg_overload(1);
    }
}


/* the topic has messages to write: the delivery event runs */

static void
ngx_stream_fishchat_topic_schedule(ngx_stream_fishchat_topic_t *t)
{
    ngx_stream_fishchat_topic_worker_t  *tw;

    tw = ngx_stream_fishchat_msg_worker->topics;

    if (!t->in_pending) {
        ngx_queue_insert_tail(&tw->pending, &t->pending);
        t->in_pending = 1;
    }

    if (!tw->deliver.posted) {
        ngx_post_event(&tw->deliver, &ngx_posted_events);
    }
}


/*
 * The delivery event: a pass over the members of each topic with
 * messages on its list, each live member written what it has not had,
 * at most NGX_STREAM_FISHCHAT_TOPIC_SLICE writes or SLICE_US of them;
 * then the worker's other events have their turn and the pass goes on
 * where it was.  At the end of a pass, what every live member has leaves
 * the list; a topic whose list got more meanwhile has another pass, after
 * the other topics.
 */

void
ngx_stream_fishchat_topic_deliver_handler(ngx_event_t *ev)
{
    uint64_t                             start;
    ngx_uint_t                           budget, wrote;
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_t         *t;
    ngx_stream_fishchat_topic_msg_t     *last;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_topic_member_t  *mb;

    tw = ev->data;
    budget = NGX_STREAM_FISHCHAT_TOPIC_SLICE;
    start = ngx_stream_fishchat_topic_usec();

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, ev->log, 0,
                   "fishchat msg: topic delivery pass, %ui messages listed",
                   tw->nmsgs);

    while (!ngx_queue_empty(&tw->pending)) {

        if (budget == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_STREAM, ev->log, 0,
                           "fishchat msg: topic delivery goes on after "
                           "the other events");

            ngx_post_event(ev, &ngx_posted_next_events);
            return;
        }

        q = ngx_queue_head(&tw->pending);
        t = ngx_queue_data(q, ngx_stream_fishchat_topic_t, pending);

        if (t->cursor == NULL) {
            t->cursor = ngx_queue_head(&t->members);
        }

        wrote = 0;
        t->busy++;

        while (budget
               && !t->gone
               && t->cursor != ngx_queue_sentinel(&t->members)
               && !ngx_queue_empty(&t->msgs))
        {
            mb = ngx_queue_data(t->cursor, ngx_stream_fishchat_topic_member_t,
                                in_topic);

            /* a write may close a session: the cursor moves past it */
            t->cursor = ngx_queue_next(t->cursor);

            last = ngx_queue_data(ngx_queue_last(&t->msgs),
                                  ngx_stream_fishchat_topic_msg_t, queue);

            if (!mb->live || last->seq <= mb->pos) {
                continue;
            }

            budget--;
            wrote = 1;

            (void) ngx_stream_fishchat_topic_write(mb);

            if (ngx_stream_fishchat_topic_usec() - start
                >= NGX_STREAM_FISHCHAT_TOPIC_SLICE_US)
            {
                budget = 0;
            }
        }

        t->busy--;

        if (t->gone) {
            /* its last member went: off the list already */
            ngx_stream_fishchat_topic_release(t);
            continue;
        }

        if (wrote) {
            ngx_stream_fishchat_topic_dirty(t);
        }

        if (budget == 0
            && t->cursor != ngx_queue_sentinel(&t->members)
            && !ngx_queue_empty(&t->msgs))
        {
            /* the pass goes on from t->cursor */
            continue;
        }

        /* the pass is over */

        t->cursor = NULL;

        ngx_queue_remove(&t->pending);
        t->in_pending = 0;

        ngx_stream_fishchat_topic_trim(t, 0);

        if (!ngx_queue_empty(&t->msgs)) {
            /* more came during the pass */
            ngx_stream_fishchat_topic_schedule(t);
        }
    }
}


/* a monotonic clock in microseconds, for the time of a pass */

static uint64_t
ngx_stream_fishchat_topic_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/*
 * Writes to a live member what the topic's list has after its position,
 * NGX_STREAM_FISHCHAT_TOPIC_PIECES frames a write.  NGX_ERROR when the
 * session was closed by it: the membership is gone then.
 */

static ngx_int_t
ngx_stream_fishchat_topic_write(ngx_stream_fishchat_topic_member_t *mb)
{
    uint64_t                            seq;
    ngx_str_t                          *frame;
    ngx_uint_t                          n, gap;
    ngx_queue_t                        *q, *sentinel;
    ngx_fishchat_out_piece_t           *pieces;
    ngx_stream_fishchat_topic_msg_t    *msg;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = mb->sess;
    pieces = ngx_stream_fishchat_msg_worker->topics->pieces;
    sentinel = ngx_queue_sentinel(&mb->topic->msgs);

    for (q = ngx_queue_head(&mb->topic->msgs);
         q != sentinel;
         q = ngx_queue_next(q))
    {
        msg = ngx_queue_data(q, ngx_stream_fishchat_topic_msg_t, queue);

        if (msg->seq > mb->pos) {
            break;
        }
    }

    gap = 0;

    while (q != sentinel && !gap) {
        n = 0;
        seq = mb->pos;

        for ( /* void */ ;
             q != sentinel && n < NGX_STREAM_FISHCHAT_TOPIC_PIECES;
             q = ngx_queue_next(q))
        {
            msg = ngx_queue_data(q, ngx_stream_fishchat_topic_msg_t, queue);

            if (msg->seq != seq + 1) {
                gap = 1;
                break;
            }

            frame = sess->optin ? &msg->optin : &msg->legacy;

            pieces[n].data = frame->data;
            pieces[n].len = frame->len;
            pieces[n].chunk = &msg->chunk;
            n++;

            seq = msg->seq;
        }

        if (n == 0) {
            break;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                       "fishchat msg: %ui frames of topic \"%V\" to \"%V\"",
                       n, &mb->topic->node.str, &sess->node.str);

        if (ngx_stream_fishchat_topic_deliver(mb, seq, pieces, n, n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (gap) {
        /* should not happen: the list skips what this member needs */
        ngx_stream_fishchat_topic_catch_up(mb);
    }

    return NGX_OK;
}


/*
 * The messages of the list that every live member has (all: every one)
 * leave it; a worker that had paused its subscriber link reads it again
 * when the lists are short
 */

static void
ngx_stream_fishchat_topic_trim(ngx_stream_fishchat_topic_t *t,
    ngx_uint_t all)
{
    uint64_t                             min;
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_msg_t     *msg;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_topic_member_t  *mb;

    tw = ngx_stream_fishchat_msg_worker->topics;

    min = (uint64_t) -1;

    if (!all) {
        for (q = ngx_queue_head(&t->members);
             q != ngx_queue_sentinel(&t->members);
             q = ngx_queue_next(q))
        {
            mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t,
                                in_topic);

            if (mb->live && mb->pos < min) {
                min = mb->pos;
            }
        }
    }

    while (!ngx_queue_empty(&t->msgs)) {
        q = ngx_queue_head(&t->msgs);
        msg = ngx_queue_data(q, ngx_stream_fishchat_topic_msg_t, queue);

        if (msg->seq > min) {
            break;
        }

        ngx_queue_remove(q);
        t->nmsgs--;
        tw->nmsgs--;

        ngx_stream_fishchat_topic_msg_release(msg);
    }

    if (tw->nmsgs < (ngx_uint_t)
                    ngx_stream_fishchat_msg_worker->mmcf->topic_backlog / 2)
    {
        ngx_fishchat_redis_sub_pause(0);
        ngx_stream_fishchat_msg_overload(0);
    }
}


/*
 * Reads what the member missed, a page at a time; live messages are held
 * meanwhile.  A page is read only while the session's output queue is
 * empty, and is at most half of fishchat_msg_send_buffer: a long catch-up
 * goes at the pace of the client, not over its buffer.
 */

static void
ngx_stream_fishchat_topic_catch_up(ngx_stream_fishchat_topic_member_t *mb)
{
    u_char                              *p;
    ngx_str_t                            args[6], *name;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_msg_session_t   *sess;
    u_char                               pos[NGX_INT64_LEN + 1];
    u_char                               budget[NGX_SIZE_T_LEN];

    sess = mb->sess;

    if (mb->live) {
        mb->live = 0;
        mb->topic->nwaiting++;
    }

    if (mb->req) {
        mb->again = 1;
        return;
    }

    mb->again = 0;

    if (sess->out.head) {
        /* when the queue is out: ngx_stream_fishchat_topic_drained() */
        mb->paused = 1;
        return;
    }

    mb->paused = 0;

    w = ngx_stream_fishchat_msg_worker;
    name = &mb->topic->node.str;

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "topic:", name, "");
    args[1] = ngx_fishchat_key(&p, "topic:", name, ":members");
    args[2] = ngx_fishchat_key(&p, "topic:", name, ":h");
    args[3] = sess->node.str;
    args[4].data = pos;

    if (mb->known) {
        args[4].len = ngx_sprintf(pos, "%uL", mb->pos) - pos;

    } else {
        args[4].len = 2;
        pos[0] = '-';
        pos[1] = '1';
    }

    args[5].data = budget;
    args[5].len = ngx_sprintf(budget, "%uz",
                              ngx_max(sess->conf->send_buffer / 2, 1))
                  - budget;

    mb->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                      w->topics->conf->catchup,
                                      ngx_stream_fishchat_topic_caught_up,
                                      mb, 3, 6, args);
    if (mb->req == NULL) {
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: \"%V\" can't catch up with topic "
                      "\"%V\" now: Redis is unavailable, retrying",
                      &sess->node.str, name);

        mb->topic->retry = 1;
        ngx_stream_fishchat_topic_dirty(mb->topic);
    }
}


/* the output queue of a session is out: paused catch-ups go on */

void
ngx_stream_fishchat_topic_drained(ngx_stream_fishchat_msg_session_t *sess)
{
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_member_t  *mb;

    for (q = ngx_queue_head(&sess->topics);
         q != ngx_queue_sentinel(&sess->topics);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_sess);

        if (mb->paused) {
            ngx_stream_fishchat_topic_catch_up(mb);
        }
    }
}


static void
ngx_stream_fishchat_topic_caught_up(redisReply *reply, void *data)
{
    ngx_stream_fishchat_topic_member_t *mb = data;

    u_char                              *last;
    uint64_t                             pos, seq, from, written;
    ngx_uint_t                           frames;
    ngx_fishchat_out_piece_t             piece;
    ngx_stream_fishchat_topic_t         *t;
    ngx_stream_fishchat_topic_worker_t  *tw;

    mb->req = NULL;

    t = mb->topic;
    tw = ngx_stream_fishchat_msg_worker->topics;

    if (ngx_stream_fishchat_topic_page_check(mb, reply) != NGX_OK) {
        return;
    }

    pos = (uint64_t) reply->element[0]->integer;
    seq = (uint64_t) reply->element[1]->integer;
    from = (uint64_t) reply->element[2]->integer;

    if (!mb->known || pos < mb->pos) {
        /* the first catch-up, or Redis lost what it had */
        mb->pos = pos;
        mb->sent = pos;
        mb->saved = pos;
        mb->known = 1;
    }

    if (from > mb->pos + 1
        && ngx_stream_fishchat_topic_gap(mb, from) != NGX_OK)
    {
        return;
    }

    switch (ngx_stream_fishchat_topic_render(mb, reply, from, &written,
                                             &frames, &last))
    {
    case NGX_ERROR:
        return;

    case NGX_OK:
        piece.data = tw->buf;
        piece.len = last - tw->buf;
        piece.chunk = NULL;

        if (ngx_stream_fishchat_topic_deliver(mb, written, &piece, 1, frames)
            != NGX_OK)
        {
            return;
        }

        break;

    default: /* NGX_DECLINED: nothing new in the page */
        break;
    }

    if (tw->buf_size > NGX_STREAM_FISHCHAT_TOPIC_BUF_KEEP) {
        /* a large page is not kept for the next one */
        ngx_free(tw->buf);
        tw->buf = NULL;
        tw->buf_size = 0;
    }

    if (reply->elements > 3 && mb->pos < from + reply->elements - 4) {
        /* entries that could not be read are skipped */
        mb->pos = from + reply->elements - 4;
    }

    ngx_stream_fishchat_topic_dirty(t);

    if (mb->pos < seq && reply->elements > 3) {
        /* a page of many: the next one when the client has read this */
        ngx_stream_fishchat_topic_catch_up(mb);
        return;
    }

    if (seq > mb->pos) {
        mb->pos = seq;
    }

    /* then what came live meanwhile */

    if (ngx_stream_fishchat_topic_flush_held(mb) != NGX_OK) {
        return;
    }

    if (mb->again) {
        ngx_stream_fishchat_topic_catch_up(mb);
    }
}


/*
 * A catch-up page is {position, seq, from, entry...}: NGX_DECLINED for
 * anything else (tried again at the next save), and when the session is
 * no member any more (the membership is let go).
 */

static ngx_int_t
ngx_stream_fishchat_topic_page_check(ngx_stream_fishchat_topic_member_t *mb,
    redisReply *reply)
{
    ngx_str_t                          *name;
    ngx_stream_fishchat_topic_t        *t;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = mb->sess;
    t = mb->topic;
    name = &t->node.str;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sess->c->log, 0,
                          "fishchat msg: topic catch-up script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        t->retry = 1;
        ngx_stream_fishchat_topic_dirty(t);
        return NGX_DECLINED;
    }

    if (reply->element[0]->integer < 0) {
        /* not a member any more (left from another session) */
        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                       "fishchat msg: \"%V\" is no member of \"%V\"",
                       &sess->node.str, name);

        (void) ngx_stream_fishchat_topic_client_set("SREM", &sess->node.str,
                                                    name, NULL, NULL, NULL);
        ngx_stream_fishchat_topic_detach(mb);
        return NGX_DECLINED;
    }

    if (reply->elements < 3
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_INTEGER)
    {
        t->retry = 1;
        ngx_stream_fishchat_topic_dirty(t);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the history is capped: messages before "from" are lost to this member */

static ngx_int_t
ngx_stream_fishchat_topic_gap(ngx_stream_fishchat_topic_member_t *mb,
    uint64_t from)
{
    ngx_str_t                           args[2];
    ngx_stream_fishchat_msg_session_t  *sess;
    u_char                              missed[NGX_INT64_LEN];

    sess = mb->sess;

    ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                  "fishchat msg: \"%V\" missed %uL messages of topic "
                  "\"%V\" (over the history)", &sess->node.str,
                  from - mb->pos - 1, &mb->topic->node.str);

    if (sess->optin) {
        args[0] = mb->topic->node.str;
        args[1].data = missed;
        args[1].len = ngx_sprintf(missed, "%uL", from - mb->pos - 1) - missed;

        if (ngx_stream_fishchat_msg_reply(sess, "TOPIC_GAP", args, 2)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    mb->pos = from - 1;

    return NGX_OK;
}


/*
 * A catch-up page made into frames, one after the other in tw->buf for
 * one write: the first pass counts the bytes, the second writes them.
 * NGX_OK with "frames" up to "last", the last one message "written";
 * NGX_DECLINED: nothing after the member's position; NGX_ERROR: no memory
 * (the session is closed).
 */

static ngx_int_t
ngx_stream_fishchat_topic_render(ngx_stream_fishchat_topic_member_t *mb,
    redisReply *reply, uint64_t from, uint64_t *written, ngx_uint_t *frames,
    u_char **lastp)
{
    size_t                               i, size;
    u_char                              *last;
    uint64_t                             s;
    ngx_str_t                            payload, uuid, sender, text, *cmd;
    ngx_str_t                            args[NGX_STREAM_FISHCHAT_MSG_ARGS];
    ngx_str_t                            word[NGX_STREAM_FISHCHAT_MEDIA_WORDS];
    ngx_uint_t                           nargs, pass;
    ngx_pool_t                          *pool;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_msg_session_t   *sess;

    sess = mb->sess;
    tw = ngx_stream_fishchat_msg_worker->topics;

    size = 0;
    last = NULL;
    pool = NULL;
    *written = mb->pos;
    *frames = 0;

    for (pass = 0; pass < 2; pass++) {
        s = from;

        for (i = 3; i < reply->elements; i++) {
            if (ngx_fishchat_redis_str(reply->element[i], &payload) != NGX_OK) {
                continue;
            }

            if (ngx_stream_fishchat_topic_parse(&payload, &s, &uuid, &sender,
                                                &text)
                != NGX_OK
                || s <= mb->pos)
            {
                continue;
            }

            nargs = ngx_stream_fishchat_topic_frame(&mb->topic->node.str,
                                                    &uuid, &sender, &text,
                                                    sess->optin, &pool, &cmd,
                                                    word, args);

            if (pass == 0) {
                size += ngx_fishchat_frame_size(cmd, args, nargs);
                continue;
            }

            last = ngx_fishchat_frame_write(last, cmd, args, nargs);
            *written = s;
            (*frames)++;
        }

        if (pass == 0) {
            if (size == 0) {
                goto declined;
            }

            if (size > tw->buf_size) {
                if (tw->buf) {
                    ngx_free(tw->buf);
                }

                tw->buf_size = 0;

                tw->buf = ngx_alloc(ngx_max(size, 4096), sess->c->log);
                if (tw->buf == NULL) {
                    if (pool) {
                        ngx_destroy_pool(pool);
                    }

                    ngx_stream_fishchat_msg_close(sess);
                    return NGX_ERROR;
                }

                tw->buf_size = ngx_max(size, 4096);
            }

            last = tw->buf;
        }
    }

    *lastp = last;

    if (*frames) {
        if (pool) {
            ngx_destroy_pool(pool);
        }

        return NGX_OK;
    }

declined:

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return NGX_DECLINED;
}


/*
 * After a catch-up: the held live messages, as long as the session's
 * queue stays under the page size (the rest is read from the history
 * later).  NGX_ERROR when the membership is gone.
 */

static ngx_int_t
ngx_stream_fishchat_topic_flush_held(ngx_stream_fishchat_topic_member_t *mb)
{
    ngx_str_t                          *frame;
    ngx_queue_t                        *q;
    ngx_fishchat_out_piece_t            piece;
    ngx_stream_fishchat_topic_t        *t;
    ngx_stream_fishchat_topic_msg_t    *msg;
    ngx_stream_fishchat_topic_held_t   *h;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = mb->sess;

    while (mb->held) {
        h = mb->held;
        msg = h->msg;

        if (msg->seq > mb->pos + 1
            || (sess->out.head
                && sess->out.bytes > sess->conf->send_buffer / 2))
        {
            /* a gap, or a busy client: the rest from the history */
            ngx_stream_fishchat_topic_drop_held(mb);
            mb->again = 1;
            return NGX_OK;
        }

        mb->held = h->next;
        mb->nheld--;

        if (mb->held == NULL) {
            mb->held_last = NULL;
        }

        ngx_free(h);

        if (msg->seq <= mb->pos) {
            ngx_stream_fishchat_topic_msg_release(msg);
            continue;
        }

        frame = sess->optin ? &msg->optin : &msg->legacy;

        piece.data = frame->data;
        piece.len = frame->len;
        piece.chunk = &msg->chunk;

        if (ngx_stream_fishchat_topic_deliver(mb, msg->seq, &piece, 1, 1)
            != NGX_OK)
        {
            ngx_stream_fishchat_topic_msg_release(msg);
            return NGX_ERROR;
        }

        ngx_stream_fishchat_topic_msg_release(msg);
    }

    t = mb->topic;

    if (!mb->live) {
        mb->live = 1;
        t->nwaiting--;
    }

    /* from now on from the topic's list */

    if (!ngx_queue_empty(&t->msgs)) {
        q = ngx_queue_last(&t->msgs);
        msg = ngx_queue_data(q, ngx_stream_fishchat_topic_msg_t, queue);

        if (msg->seq > mb->pos) {
            ngx_stream_fishchat_topic_schedule(t);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_fishchat_topic_hold(ngx_stream_fishchat_topic_member_t *mb,
    ngx_stream_fishchat_topic_msg_t *msg)
{
    ngx_stream_fishchat_topic_held_t  *h;

    if (mb->nheld >= NGX_STREAM_FISHCHAT_TOPIC_HELD_MAX) {
        /* too many: the history has them, read again after this catch-up */
        ngx_stream_fishchat_topic_drop_held(mb);
        mb->again = 1;
        return NGX_OK;
    }

    h = ngx_alloc(sizeof(ngx_stream_fishchat_topic_held_t),
                  mb->sess->c->log);
    if (h == NULL) {
        mb->again = 1;
        return NGX_ERROR;
    }

    h->next = NULL;
    h->msg = msg;
    msg->chunk.refs++;

    if (mb->held_last) {
        mb->held_last->next = h;

    } else {
        mb->held = h;
    }

    mb->held_last = h;
    mb->nheld++;

    return NGX_OK;
}


static void
ngx_stream_fishchat_topic_drop_held(ngx_stream_fishchat_topic_member_t *mb)
{
    ngx_stream_fishchat_topic_held_t  *h, *next;

    for (h = mb->held; h; h = next) {
        next = h->next;
        ngx_stream_fishchat_topic_msg_release(h->msg);
        ngx_free(h);
    }

    mb->held = NULL;
    mb->held_last = NULL;
    mb->nheld = 0;
}


/*
 * Writes "frames" frames, the last one message "seq", to a member.
 * NGX_ERROR when the session was closed by it: the membership is gone
 * then.
 */

static ngx_int_t
ngx_stream_fishchat_topic_deliver(ngx_stream_fishchat_topic_member_t *mb,
    uint64_t seq, ngx_fishchat_out_piece_t *pieces, ngx_uint_t n,
    ngx_uint_t frames)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = mb->sess;

    if (ngx_stream_fishchat_msg_writev(sess, pieces, n) != NGX_OK) {
        return NGX_ERROR;
    }

    sess->counters->frames_out += frames;

    mb->pos = seq;

    if (sess->out.head == NULL) {
        /* everything written so far has left the queue */
        mb->sent = seq;
    }

    return NGX_OK;
}


/* <seq>\n<uuid>\n<from>\n<message> */

static ngx_int_t
ngx_stream_fishchat_topic_parse(ngx_str_t *payload, uint64_t *seq,
    ngx_str_t *uuid, ngx_str_t *from, ngx_str_t *text)
{
    u_char    *p, *last, *nl;
    uint64_t   n;

    p = payload->data;
    last = p + payload->len;

    for (n = 0; p < last && *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
    }

    if (p == last || *p != '\n' || n == 0) {
        return NGX_ERROR;
    }

    *seq = n;
    p++;

    if (last - p < NGX_FISHCHAT_UUID_LEN + 1
        || p[NGX_FISHCHAT_UUID_LEN] != '\n')
    {
        return NGX_ERROR;
    }

    uuid->data = p;
    uuid->len = NGX_FISHCHAT_UUID_LEN;
    p += NGX_FISHCHAT_UUID_LEN + 1;

    nl = ngx_strlchr(p, last, '\n');
    if (nl == NULL) {
        return NGX_ERROR;
    }

    from->data = p;
    from->len = nl - p;

    text->data = nl + 1;
    text->len = last - nl - 1;

    return NGX_OK;
}


/*
 * The frame of a topic message for a client: RESP_MESSAGE_TOPIC <name>
 * <text> <from> [<uuid>].  A live notice of the media role comes from
 * "{media}" with the text "<CMD> <target> <stream> <from> <word>...\n
 * <text>" (ngx_stream_fishchat_msg_media_words): opt-in clients get CMD
 * and its words (MEDIA_LIVE, MEDIA_ENDED, MEDIA_RECORDING), seed clients
 * the text as a RESP_MESSAGE_TOPIC of the publisher.  A file message
 * comes from "{file}" (ngx_stream_fishchat_msg_file_frame(): its URL is
 * made in *pool, created then, which the caller destroys once the frame
 * is written).  The number of arguments; *cmd is the command, in "word"
 * for a notice.
 */

static ngx_uint_t
ngx_stream_fishchat_topic_frame(ngx_str_t *name, ngx_str_t *uuid,
    ngx_str_t *from, ngx_str_t *text, ngx_uint_t optin, ngx_pool_t **pool,
    ngx_str_t **cmd, ngx_str_t *word, ngx_str_t *args)
{
    ngx_str_t   rest;
    ngx_uint_t  i, n;

    if (ngx_stream_fishchat_msg_file_from(from)) {
        n = ngx_stream_fishchat_msg_file_frame(name, uuid, text, optin, pool,
                                               cmd, args);
        if (n) {
            return n;
        }
    }

    *cmd = &ngx_stream_fishchat_topic_resp;

    args[0] = *name;
    args[1] = *text;
    args[2] = *from;
    args[3] = *uuid;

    if (!ngx_stream_fishchat_msg_media_from(from)) {
        return optin ? 4 : 3;
    }

    n = ngx_stream_fishchat_msg_media_words(text, word, &rest);

    if (n == 0) {
        return optin ? 4 : 3;
    }

    if (optin) {
        *cmd = &word[0];

        for (i = 1; i < n; i++) {
            args[i - 1] = word[i];
        }

        return n - 1;
    }

    args[1] = rest;
    args[2] = word[3];

    return 3;
}


/* both frames of a message, made once for all members of this worker */

static ngx_stream_fishchat_topic_msg_t *
ngx_stream_fishchat_topic_msg(ngx_str_t *name, uint64_t seq, ngx_str_t *uuid,
    ngx_str_t *from, ngx_str_t *text)
{
    size_t                            legacy, optin;
    ngx_str_t                        *cmd, *ocmd;
    ngx_str_t                         args[NGX_STREAM_FISHCHAT_MSG_ARGS];
    ngx_str_t                         oargs[NGX_STREAM_FISHCHAT_MSG_ARGS];
    ngx_str_t                         word[NGX_STREAM_FISHCHAT_MEDIA_WORDS];
    ngx_str_t                         oword[NGX_STREAM_FISHCHAT_MEDIA_WORDS];
    ngx_uint_t                        n, on;
    ngx_pool_t                       *pool;
    ngx_stream_fishchat_topic_msg_t  *msg;

    pool = NULL;

    n = ngx_stream_fishchat_topic_frame(name, uuid, from, text, 0, &pool,
                                        &cmd, word, args);
    on = ngx_stream_fishchat_topic_frame(name, uuid, from, text, 1, &pool,
                                         &ocmd, oword, oargs);

    legacy = ngx_fishchat_frame_size(cmd, args, n);
    optin = ngx_fishchat_frame_size(ocmd, oargs, on);

    msg = ngx_alloc(sizeof(ngx_stream_fishchat_topic_msg_t) + legacy + optin,
                    ngx_cycle->log);
    if (msg == NULL) {
        if (pool) {
            ngx_destroy_pool(pool);
        }

        return NULL;
    }

    msg->chunk.refs = 1;
    msg->seq = seq;

    msg->legacy.data = msg->data;
    msg->legacy.len = ngx_fishchat_frame_write(msg->data, cmd, args, n)
                      - msg->data;

    msg->optin.data = msg->legacy.data + msg->legacy.len;
    msg->optin.len = ngx_fishchat_frame_write(msg->optin.data, ocmd, oargs,
                                              on)
                     - msg->optin.data;

    if (pool) {
        ngx_destroy_pool(pool);
    }

    return msg;
}


static void
ngx_stream_fishchat_topic_msg_release(ngx_stream_fishchat_topic_msg_t *msg)
{
    ngx_fishchat_chunk_release(&msg->chunk);
}


/* the topic had deliveries: its positions are saved with the next batch */

static void
ngx_stream_fishchat_topic_dirty(ngx_stream_fishchat_topic_t *t)
{
    ngx_stream_fishchat_topic_worker_t  *tw;

    tw = ngx_stream_fishchat_msg_worker->topics;

    if (t->gone) {
        return;
    }

    if (!t->in_dirty) {
        ngx_queue_insert_tail(&tw->dirty, &t->dirty);
        t->in_dirty = 1;
    }

    if (!tw->save.timer_set) {
        ngx_add_timer(&tw->save, NGX_STREAM_FISHCHAT_TOPIC_SAVE);
    }
}


/*
 * Writes the positions that moved, of every member of the topic here or
 * of "only": one script, no reply awaited.
 */

void
ngx_stream_fishchat_topic_save(ngx_stream_fishchat_topic_t *t,
    ngx_stream_fishchat_topic_member_t *only)
{
    u_char                              *p, *nums;
    ngx_str_t                           *args;
    ngx_uint_t                           n, nargs;
    ngx_queue_t                         *q;
    ngx_fishchat_redis_req_t            *req;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_topic_member_t  *mb;

    w = ngx_stream_fishchat_msg_worker;

    n = 0;

    for (q = ngx_queue_head(&t->members);
         q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);

        if (only && mb != only) {
            continue;
        }

        /* what still waits in the session's queue does not count */
        mb->saving = mb->sess->out.head ? mb->sent : mb->pos;

        if (ngx_stream_fishchat_topic_moved(mb, only)) {
            n++;
        }
    }

    if (n == 0) {
        return;
    }

    /* the members' key, then each member and its position */

    nargs = 1 + 2 * n;

    args = ngx_alloc(nargs * sizeof(ngx_str_t) + n * NGX_INT64_LEN,
                     ngx_cycle->log);
    if (args == NULL) {
        return;
    }

    nums = (u_char *) (args + nargs);

    p = w->scratch;
    args[0] = ngx_fishchat_key(&p, "topic:", &t->node.str, ":members");

    nargs = 1;

    for (q = ngx_queue_head(&t->members);
         q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);

        if (!ngx_stream_fishchat_topic_moved(mb, only)) {
            continue;
        }

        args[nargs++] = mb->sess->node.str;

        args[nargs].data = nums;
        args[nargs].len = ngx_sprintf(nums, "%uL", mb->saving) - nums;
        nums += args[nargs].len;
        nargs++;
    }

    req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                  w->topics->conf->save, NULL, NULL, 1, nargs,
                                  args);

    ngx_free(args);

    if (req == NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat msg: positions in topic \"%V\" not saved: "
                      "Redis is unavailable", &t->node.str);
        return;
    }

    for (q = ngx_queue_head(&t->members);
         q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);

        if (ngx_stream_fishchat_topic_moved(mb, only)) {
            mb->saved = mb->saving;
        }
    }
}


/* a position to save: of "only" (of any member if NULL), known, moved */

static ngx_uint_t
ngx_stream_fishchat_topic_moved(ngx_stream_fishchat_topic_member_t *mb,
    ngx_stream_fishchat_topic_member_t *only)
{
    return (only == NULL || mb == only) && mb->known
           && mb->saving > mb->saved;
}


void
ngx_stream_fishchat_topic_save_handler(ngx_event_t *ev)
{
    ngx_queue_t                         *q, *mq;
    ngx_stream_fishchat_topic_t         *t;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_topic_member_t  *mb;

    tw = ev->data;

    while (!ngx_queue_empty(&tw->dirty)) {
        q = ngx_queue_head(&tw->dirty);
        t = ngx_queue_data(q, ngx_stream_fishchat_topic_t, dirty);

        ngx_queue_remove(q);
        t->in_dirty = 0;

        ngx_stream_fishchat_topic_save(t, NULL);

        if (!t->retry) {
            continue;
        }

        t->retry = 0;

        for (mq = ngx_queue_head(&t->members);
             mq != ngx_queue_sentinel(&t->members);
             mq = ngx_queue_next(mq))
        {
            mb = ngx_queue_data(mq, ngx_stream_fishchat_topic_member_t,
                                in_topic);

            if (!mb->live && mb->req == NULL) {
                ngx_stream_fishchat_topic_catch_up(mb);
            }
        }
    }
}
