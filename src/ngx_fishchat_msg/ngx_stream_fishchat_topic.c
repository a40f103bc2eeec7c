
/*
 * FishChat for nginx: topics (group chat) of the msg server role.
 *
 * A topic lives in Redis (docs/keyspace.md): a hash (creator, creation
 * time, the sequence number of its last message), its members with their
 * positions (the last message each one got), a capped history, and a
 * channel.  A message costs its sender one script: the next sequence
 * number, the history, one PUBLISH.
 *
 * Each worker subscribes to the channel of a topic while it has logged-in
 * members of it (counted here; UNSUBSCRIBE when the last one goes).  A
 * message that arrives on the channel is only made into its frames, once
 * per worker, in one reference-counted chunk, and put on the topic's list;
 * the delivery event then writes to each member everything of the list
 * after its position with one writev() (several messages a system call
 * when they come fast), NGX_STREAM_FISHCHAT_TOPIC_SLICE members a pass,
 * and goes on from ngx_posted_next_events after the worker's other events
 * had their turn.  What a member's socket does not take waits in its
 * output queue as references into the chunks, bounded by
 * fishchat_msg_send_buffer; a message leaves the list once every member
 * has it.  Past fishchat_topic_backlog messages on the lists, the worker
 * stops reading its subscriber link and its clients until it is down to
 * half of that: senders wait instead of piling messages up in Redis.
 *
 * A member that comes (login, join, or the subscription again after the
 * subscriber link was down) first catches up from the history, from its
 * position on; live messages that arrive meanwhile are held (references
 * again) and then written unless the catch-up already had them: sequence
 * numbers keep each member's stream in order, without gaps and without
 * repeats.
 *
 * Positions are written to Redis in batches, not per delivery: every
 * NGX_STREAM_FISHCHAT_TOPIC_SAVE ms for the topics that had deliveries
 * (one script per topic and worker, for all its members there), and at
 * the end of a session.  A position only counts what has left the
 * session's output queue: a slow reader that is disconnected gets again,
 * at its next login, what it had not been sent.  After a worker crash a
 * member may get again what came in the last period (at least once).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg.h"


/* how often positions are written to Redis, ms */
#define NGX_STREAM_FISHCHAT_TOPIC_SAVE       5000

/* live messages a member may hold while it catches up */
#define NGX_STREAM_FISHCHAT_TOPIC_HELD_MAX   1000

/* member writes a pass of the delivery event, and its time (us) */
#define NGX_STREAM_FISHCHAT_TOPIC_SLICE      64
#define NGX_STREAM_FISHCHAT_TOPIC_SLICE_US   1000

/* frames a write to a member */
#define NGX_STREAM_FISHCHAT_TOPIC_PIECES     64

/* messages on this worker's lists: past it, the subscriber link pauses */

/* the buffer of the catch-up pages is kept up to this size */
#define NGX_STREAM_FISHCHAT_TOPIC_BUF_KEEP   65536


struct ngx_stream_fishchat_topic_conf_s {
    ngx_fishchat_redis_script_t    *create;
    ngx_fishchat_redis_script_t    *join;
    ngx_fishchat_redis_script_t    *leave;
    ngx_fishchat_redis_script_t    *members;
    ngx_fishchat_redis_script_t    *send;
    ngx_fishchat_redis_script_t    *catchup;
    ngx_fishchat_redis_script_t    *save;
};


/*
 * A message as this worker writes it, shared by the members: the topic's
 * list, held lists and output queues hold references to it
 */

typedef struct {
    ngx_fishchat_chunk_t            chunk;     /* first: freed with it */
    ngx_queue_t                     queue;     /* in the topic's list */
    uint64_t                        seq;
    ngx_str_t                       legacy;    /* RESP_MESSAGE_TOPIC, 3 args */
    ngx_str_t                       optin;     /* the same with the uuid */
    u_char                          data[1];
} ngx_stream_fishchat_topic_msg_t;


typedef struct ngx_stream_fishchat_topic_held_s
    ngx_stream_fishchat_topic_held_t;

struct ngx_stream_fishchat_topic_held_s {
    ngx_stream_fishchat_topic_held_t  *next;
    ngx_stream_fishchat_topic_msg_t   *msg;
};


/* a topic with members logged in on this worker */

typedef struct {
    ngx_str_node_t                  node;       /* node.str: the name */
    ngx_queue_t                     members;
    ngx_uint_t                      nmembers;
    ngx_uint_t                      nwaiting;   /* members not live */
    ngx_uint_t                      busy;       /* a fan-out is under way */
    uint64_t                        seq;        /* last live one, 0: none */
    ngx_queue_t                     msgs;       /* not written to all yet */
    ngx_uint_t                      nmsgs;
    ngx_queue_t                     pending;    /* in the worker's list */
    ngx_queue_t                    *cursor;     /* next member of a pass */
    ngx_queue_t                     dirty;
    ngx_str_t                       channel;
    unsigned                        ready:1;    /* subscription confirmed */
    unsigned                        in_pending:1;
    unsigned                        in_dirty:1;
    unsigned                        retry:1;    /* a catch-up failed */
    unsigned                        gone:1;     /* freed when not busy */
    u_char                          data[1];    /* name, channel */
} ngx_stream_fishchat_topic_t;


/* a session's membership of a topic */

typedef struct {
    ngx_queue_t                     in_topic;
    ngx_queue_t                     in_sess;
    ngx_stream_fishchat_topic_t    *topic;
    ngx_stream_fishchat_msg_session_t  *sess;
    ngx_fishchat_redis_req_t       *req;        /* catch-up under way */
    uint64_t                        pos;        /* last one written */
    uint64_t                        sent;       /* last one out of the queue */
    uint64_t                        saved;      /* last one in Redis */
    uint64_t                        saving;
    ngx_stream_fishchat_topic_held_t  *held;
    ngx_stream_fishchat_topic_held_t  *held_last;
    ngx_uint_t                      nheld;
    unsigned                        live:1;     /* caught up: from the list */
    unsigned                        known:1;    /* pos is known */
    unsigned                        again:1;    /* catch up once more */
    unsigned                        paused:1;   /* until the queue is out */
} ngx_stream_fishchat_topic_member_t;


struct ngx_stream_fishchat_topic_worker_s {
    ngx_rbtree_t                    topics;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     dirty;
    ngx_event_t                     save;
    ngx_queue_t                     pending;    /* topics with output */
    ngx_event_t                     deliver;
    ngx_uint_t                      nmsgs;      /* on the topics' lists */
    ngx_cycle_t                    *cycle;
    ngx_stream_fishchat_topic_conf_t  *conf;
    u_char                         *buf;        /* frames of a catch-up */
    size_t                          buf_size;
    ngx_fishchat_out_piece_t        pieces[NGX_STREAM_FISHCHAT_TOPIC_PIECES];
};


static ngx_int_t ngx_stream_fishchat_topic_check(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m,
    const char *name, ngx_uint_t min, ngx_uint_t max, ngx_uint_t id_arg);
static ngx_int_t ngx_stream_fishchat_topic_create(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_topic_created(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_membership(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m, char *cmd,
    ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt handler,
    ngx_stream_fishchat_msg_call_t **callp);
static ngx_int_t ngx_stream_fishchat_topic_join(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_topic_joined(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_leave(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_topic_left(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_members(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static ngx_int_t ngx_stream_fishchat_topic_mine(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_topic_list(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_send(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_msg_t *m);
static void ngx_stream_fishchat_topic_sent(redisReply *reply, void *data);
static void ngx_stream_fishchat_topic_logged_in(redisReply *reply,
    void *data);
static ngx_stream_fishchat_msg_call_t *ngx_stream_fishchat_topic_name_call(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name);
static ngx_int_t ngx_stream_fishchat_topic_call(
    ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args);
static ngx_int_t ngx_stream_fishchat_topic_client_set(char *cmd,
    ngx_str_t *id, ngx_str_t *name, ngx_fishchat_redis_handler_pt handler,
    void *data, ngx_fishchat_redis_req_t **req);
static ngx_stream_fishchat_topic_member_t *ngx_stream_fishchat_topic_attach(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name);
static void ngx_stream_fishchat_topic_detach(
    ngx_stream_fishchat_topic_member_t *mb);
static ngx_stream_fishchat_topic_member_t *ngx_stream_fishchat_topic_mine_find(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name);
static void ngx_stream_fishchat_topic_release(ngx_stream_fishchat_topic_t *t);
static void ngx_stream_fishchat_topic_ready(void *data);
static void ngx_stream_fishchat_topic_message(ngx_str_t *payload, void *data);
static void ngx_stream_fishchat_topic_catch_up(
    ngx_stream_fishchat_topic_member_t *mb);
static void ngx_stream_fishchat_topic_caught_up(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_topic_flush_held(
    ngx_stream_fishchat_topic_member_t *mb);
static ngx_int_t ngx_stream_fishchat_topic_hold(
    ngx_stream_fishchat_topic_member_t *mb,
    ngx_stream_fishchat_topic_msg_t *msg);
static void ngx_stream_fishchat_topic_drop_held(
    ngx_stream_fishchat_topic_member_t *mb);
static void ngx_stream_fishchat_topic_schedule(
    ngx_stream_fishchat_topic_t *t);
static void ngx_stream_fishchat_topic_deliver_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_fishchat_topic_write(
    ngx_stream_fishchat_topic_member_t *mb);
static void ngx_stream_fishchat_topic_trim(ngx_stream_fishchat_topic_t *t,
    ngx_uint_t all);
static uint64_t ngx_stream_fishchat_topic_usec(void);
static ngx_int_t ngx_stream_fishchat_topic_deliver(
    ngx_stream_fishchat_topic_member_t *mb, uint64_t seq,
    ngx_fishchat_out_piece_t *pieces, ngx_uint_t n, ngx_uint_t frames);
static ngx_int_t ngx_stream_fishchat_topic_parse(ngx_str_t *payload,
    uint64_t *seq, ngx_str_t *uuid, ngx_str_t *from, ngx_str_t *text);
static ngx_stream_fishchat_topic_msg_t *ngx_stream_fishchat_topic_msg(
    ngx_str_t *name, uint64_t seq, ngx_str_t *uuid, ngx_str_t *from,
    ngx_str_t *text);
static void ngx_stream_fishchat_topic_msg_release(
    ngx_stream_fishchat_topic_msg_t *msg);
static void ngx_stream_fishchat_topic_dirty(ngx_stream_fishchat_topic_t *t);
static void ngx_stream_fishchat_topic_save(ngx_stream_fishchat_topic_t *t,
    ngx_stream_fishchat_topic_member_t *only);
static void ngx_stream_fishchat_topic_save_handler(ngx_event_t *ev);
static ngx_int_t ngx_stream_fishchat_topic_is_id(ngx_str_t *arg,
    ngx_str_t *id);


/*
 * create, join, leave, send: shared with the manager (see
 * ngx_fishchat_lua.h)
 */

static char  ngx_stream_fishchat_topic_create_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_CREATE;

static char  ngx_stream_fishchat_topic_join_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_JOIN;

static char  ngx_stream_fishchat_topic_leave_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_LEAVE;

static char  ngx_stream_fishchat_topic_send_lua[] =
    NGX_FISHCHAT_LUA_TOPIC_SEND;

/* KEYS: topic, members.  The member ids, sorted; -1: no such topic */

static char  ngx_stream_fishchat_topic_members_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "
    "local ids = redis.call('HKEYS', KEYS[2]) "
    "table.sort(ids) "
    "return ids";

/*
 * KEYS: topic, members, history.  ARGV: id, the position this worker
 * knows (-1: none), a size in bytes.  {-1} when not a member; otherwise
 * {position, last sequence number, sequence number of the first entry,
 * entries...}: the entries after the position that the history still
 * has, at most 100 and about the size given (at least one).
 */

static char  ngx_stream_fishchat_topic_catchup_lua[] =
    "local stored = redis.call('HGET', KEYS[2], ARGV[1]) "
    "if not stored then return {-1} end "
    "local pos = tonumber(stored) "
    "local mine = tonumber(ARGV[2]) "
    "if mine > pos then pos = mine end "
    "local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or 0) "
    "if pos > seq then pos = seq end "
    "if pos == seq then return {pos, seq, seq + 1} end "
    "local len = redis.call('LLEN', KEYS[3]) "
    "local first = seq - len + 1 "
    "local from = pos + 1 "
    "if from < first then from = first end "
    "local out = {pos, seq, from} "
    "local budget = tonumber(ARGV[3]) "
    "for i, v in ipairs(redis.call('LRANGE', KEYS[3], from - first, "
                                  "from - first + 99)) do "
        "if i > 1 then "
            "budget = budget - #v "
            "if budget < 0 then break end "
        "end "
        "out[i + 3] = v "
    "end "
    "return out";

/* KEYS: members.  ARGV: id, position, ...: positions only move forward */

static char  ngx_stream_fishchat_topic_save_lua[] =
    "for i = 1, #ARGV, 2 do "
        "local cur = redis.call('HGET', KEYS[1], ARGV[i]) "
        "if cur and tonumber(cur) < tonumber(ARGV[i + 1]) then "
            "redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) "
        "end "
    "end "
    "return 1";


static ngx_str_t  ngx_stream_fishchat_topic_resp =
    ngx_string("RESP_MESSAGE_TOPIC");


#define ngx_stream_fishchat_topic_is(m, name)                                \
    ((m)->cmd.len == sizeof(name) - 1                                        \
     && ngx_strncmp((m)->cmd.data, name, sizeof(name) - 1) == 0)


/*
 * The topic commands; NGX_DECLINED for a command that is not one of them.
 * Otherwise as the msg module's: NGX_OK while the session goes on.
 */

ngx_int_t
ngx_stream_fishchat_topic_command(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    if (ngx_stream_fishchat_topic_is(m, "SEND_MESSAGE_TOPIC")) {
        return ngx_stream_fishchat_topic_send(sess, m);
    }

    if (ngx_stream_fishchat_topic_is(m, "JOIN_TOPIC")) {
        return ngx_stream_fishchat_topic_join(sess, m);
    }

    if (ngx_stream_fishchat_topic_is(m, "CREATE_TOPIC")) {
        return ngx_stream_fishchat_topic_create(sess, m);
    }

    if (ngx_stream_fishchat_topic_is(m, "LEAVE_TOPIC")) {
        return ngx_stream_fishchat_topic_leave(sess, m);
    }

    /* replies seed clients would not understand: opt-in commands */

    if (sess->optin && ngx_stream_fishchat_topic_is(m, "TOPIC_MEMBERS")) {
        return ngx_stream_fishchat_topic_members(sess, m);
    }

    if (sess->optin && ngx_stream_fishchat_topic_is(m, "MY_TOPICS")) {
        return ngx_stream_fishchat_topic_mine(sess, m);
    }

    return NGX_DECLINED;
}


/*
 * Login, the number of arguments, a valid topic name in the first one,
 * and the logged-in id in argument "id_arg" (when not 0).  NGX_OK or the
 * result of the refusal.
 */

static ngx_int_t
ngx_stream_fishchat_topic_check(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m, const char *name, ngx_uint_t min, ngx_uint_t max,
    ngx_uint_t id_arg)
{
    if (!sess->logged_in) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
                                              1, "%s before login", name);
    }

    if (m->nargs < min || m->nargs > max) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "%s takes %ui to %ui "
                                              "arguments", name, min, max);
    }

    if (min && ngx_stream_fishchat_msg_valid_id(&m->args[0]) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "a topic name is 1 to 128 "
                                              "bytes without white space, "
                                              "control characters or "
                                              "braces");
    }

    if (id_arg
        && ngx_stream_fishchat_topic_is_id(&m->args[id_arg], &sess->node.str)
           != NGX_OK)
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_FORBIDDEN,
                                              1, "%s for another id", name);
    }

    return NGX_OK;
}


/* CREATE_TOPIC <name> */

static ngx_int_t
ngx_stream_fishchat_topic_create(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           args[6], *name;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;
    u_char                              now[NGX_INT64_LEN];

    rc = ngx_stream_fishchat_topic_check(sess, m, "CREATE_TOPIC", 1, 1, 0);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;
    name = &m->args[0];

    call = ngx_stream_fishchat_topic_name_call(sess, name);
    if (call == NULL) {
        return NGX_ERROR;
    }

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "topic:", name, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":members");
    args[2] = sess->node.str;
    args[3].data = now;
    args[3].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[4] = w->sys[NGX_STREAM_FISHCHAT_SYS_TOPIC_STATUS];
    args[5] = call->to;

    return ngx_stream_fishchat_topic_call(call, w->topics->conf->create,
                                          ngx_stream_fishchat_topic_created,
                                          2, 6, args);
}


static void
ngx_stream_fishchat_topic_created(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    /* the call is taken off the session: a write may close the session */

    ngx_queue_remove(&call->queue);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "topic not created: Redis is "
                                              "unavailable");
        ngx_free(call);
        return;
    }

    if (reply->integer == 0) {
        /* the seed sent nothing back: seed clients get nothing either */
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_TOPIC_EXISTS,
                                              0, "topic \"%V\" exists",
                                              &call->to);
        ngx_free(call);
        return;
    }

    (void) ngx_stream_fishchat_topic_client_set("SADD", &sess->node.str,
                                                &call->to, NULL, NULL, NULL);

    if (ngx_stream_fishchat_topic_attach(sess, &call->to) == NULL) {
        ngx_free(call);
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    if (sess->optin) {
        (void) ngx_stream_fishchat_msg_reply(sess, "TOPIC_CREATED",
                                             &call->to, 1);
    }

    ngx_free(call);
}


/*
 * JOIN_TOPIC and LEAVE_TOPIC <name> <id>: one script on the topic's
 * members, with the topic-status channel for the event.  NGX_OK with
 * *callp set when the script is under way.
 */

static ngx_int_t
ngx_stream_fishchat_topic_membership(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m, char *cmd, ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt handler,
    ngx_stream_fishchat_msg_call_t **callp)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           args[5], *name;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;

    *callp = NULL;

    rc = ngx_stream_fishchat_topic_check(sess, m, cmd, 2, 2, 1);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;
    name = &m->args[0];

    call = ngx_stream_fishchat_topic_name_call(sess, name);
    if (call == NULL) {
        return NGX_ERROR;
    }

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "topic:", name, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":members");
    args[2] = sess->node.str;
    args[3] = w->sys[NGX_STREAM_FISHCHAT_SYS_TOPIC_STATUS];
    args[4] = call->to;

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script,
                                        handler, call, 2, 5, args);
    if (call->req == NULL) {
        /* the call is gone: the caller must not look at it */
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "Redis is unavailable");
    }

    *callp = call;

    return NGX_OK;
}


/* JOIN_TOPIC <name> <id> */

static ngx_int_t
ngx_stream_fishchat_topic_join(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_topic_conf_t  *tcf;

    tcf = ngx_stream_fishchat_msg_worker->topics->conf;

    return ngx_stream_fishchat_topic_membership(sess, m, "JOIN_TOPIC",
                                           tcf->join,
                                           ngx_stream_fishchat_topic_joined,
                                           &call);
}


static void
ngx_stream_fishchat_topic_joined(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                           args[2];
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    ngx_queue_remove(&call->queue);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "not joined: Redis is "
                                              "unavailable");
        ngx_free(call);
        return;
    }

    if (reply->integer < 0) {
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NO_SUCH_TOPIC,
                                              !sess->optin,
                                              "no topic \"%V\"", &call->to);
        ngx_free(call);
        return;
    }

    (void) ngx_stream_fishchat_topic_client_set("SADD", &sess->node.str,
                                                &call->to, NULL, NULL, NULL);

    /* the seed's answer, to seed clients too: this very server */

    args[0] = sess->conf->advertise;
    args[1] = call->to;

    if (ngx_stream_fishchat_msg_reply(sess, "LOCATE_TOPIC_MSG_ADDR", args, 2)
        != NGX_OK)
    {
        ngx_free(call);
        return;
    }

    if (ngx_stream_fishchat_topic_attach(sess, &call->to) == NULL) {
        ngx_stream_fishchat_msg_close(sess);
    }

    ngx_free(call);
}


/* LEAVE_TOPIC <name> <id> */

static ngx_int_t
ngx_stream_fishchat_topic_leave(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    ngx_int_t                          rc;
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_topic_conf_t  *tcf;

    tcf = ngx_stream_fishchat_msg_worker->topics->conf;

    rc = ngx_stream_fishchat_topic_membership(sess, m, "LEAVE_TOPIC",
                                              tcf->leave,
                                              ngx_stream_fishchat_topic_left,
                                              &call);
    if (rc != NGX_OK || call == NULL) {
        return rc;
    }

    /* right after it on the same link, so in this order */

    (void) ngx_stream_fishchat_topic_client_set("SREM", &sess->node.str,
                                                &m->args[0], NULL, NULL,
                                                NULL);

    return NGX_OK;
}


static void
ngx_stream_fishchat_topic_left(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_stream_fishchat_msg_session_t   *sess;
    ngx_stream_fishchat_topic_member_t  *mb;

    sess = call->sess;

    ngx_queue_remove(&call->queue);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "not left: Redis is "
                                              "unavailable");
        ngx_free(call);
        return;
    }

    mb = ngx_stream_fishchat_topic_mine_find(sess, &call->to);

    if (mb) {
        ngx_stream_fishchat_topic_detach(mb);
    }

    if (reply->integer <= 0) {
        /* nothing to leave: harmless, but said to opt-in clients */
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              reply->integer < 0
                                              ? NGX_FISHCHAT_ERR_NO_SUCH_TOPIC
                                              : NGX_FISHCHAT_ERR_NOT_MEMBER,
                                              0, "not a member of \"%V\"",
                                              &call->to);
        ngx_free(call);
        return;
    }

    if (sess->optin) {
        (void) ngx_stream_fishchat_msg_reply(sess, "TOPIC_LEFT", &call->to,
                                             1);
    }

    ngx_free(call);
}


/* TOPIC_MEMBERS <name> (opt-in) */

static ngx_int_t
ngx_stream_fishchat_topic_members(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           args[2], *name;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;

    rc = ngx_stream_fishchat_topic_check(sess, m, "TOPIC_MEMBERS", 1, 1, 0);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;
    name = &m->args[0];

    call = ngx_stream_fishchat_topic_name_call(sess, name);
    if (call == NULL) {
        return NGX_ERROR;
    }

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "topic:", name, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":members");

    return ngx_stream_fishchat_topic_call(call, w->topics->conf->members,
                                          ngx_stream_fishchat_topic_list,
                                          2, 2, args);
}


/* MY_TOPICS (opt-in) */

static ngx_int_t
ngx_stream_fishchat_topic_mine(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    ngx_int_t                        rc;
    ngx_stream_fishchat_msg_call_t  *call;

    rc = ngx_stream_fishchat_topic_check(sess, m, "MY_TOPICS", 0, 0, 0);
    if (rc != NGX_OK) {
        return rc;
    }

    call = ngx_stream_fishchat_msg_call(sess, 0);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    /* call->to stays empty: the reply is MY_TOPICS */

    if (ngx_stream_fishchat_topic_client_set("SORT", &sess->node.str, NULL,
                                             ngx_stream_fishchat_topic_list,
                                             call, &call->req)
        != NGX_OK)
    {
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 0,
                                              "no list: Redis is "
                                              "unavailable");
    }

    return NGX_OK;
}


/* TOPIC_MEMBERS <name> <id>... or MY_TOPICS <name>... */

static void
ngx_stream_fishchat_topic_list(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    size_t                               i, n;
    ngx_str_t                           *args;
    redisReply                          *e;
    ngx_stream_fishchat_msg_session_t   *sess;

    sess = call->sess;

    ngx_queue_remove(&call->queue);

    if (reply == NULL
        || (reply->type != REDIS_REPLY_ARRAY
            && reply->type != REDIS_REPLY_INTEGER))
    {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 0,
                                              "no list: Redis is "
                                              "unavailable");
        ngx_free(call);
        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_NO_SUCH_TOPIC,
                                              0, "no topic \"%V\"",
                                              &call->to);
        ngx_free(call);
        return;
    }

    args = ngx_alloc((reply->elements + 1) * sizeof(ngx_str_t),
                     sess->c->log);
    if (args == NULL) {
        ngx_free(call);
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    n = 0;

    if (call->to.len) {
        args[n++] = call->to;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            args[n].data = (u_char *) e->str;
            args[n].len = e->len;
            n++;
        }
    }

    (void) ngx_stream_fishchat_msg_reply(sess, call->to.len ? "TOPIC_MEMBERS"
                                                            : "MY_TOPICS",
                                         args, n);
    ngx_free(args);
    ngx_free(call);
}


/* SEND_MESSAGE_TOPIC <name> <message> [<ref>] */

static ngx_int_t
ngx_stream_fishchat_topic_send(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_msg_t *m)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           args[10], *name, uuid;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;
    u_char                              max[NGX_INT_T_LEN];

    rc = ngx_stream_fishchat_topic_check(sess, m, "SEND_MESSAGE_TOPIC", 2, 3,
                                         0);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_stream_fishchat_msg_send_check(sess,
                                            m->nargs == 3 ? &m->args[2]
                                                          : NULL);
    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? NGX_OK : rc;
    }

    w = ngx_stream_fishchat_msg_worker;
    name = &m->args[0];

    call = ngx_stream_fishchat_msg_call(sess, name->len
                                              + (m->nargs == 3
                                                 ? m->args[2].len : 0));
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    call->to.data = call->data;
    call->to.len = name->len;
    p = ngx_cpymem(call->data, name->data, name->len);

    if (m->nargs == 3) {
        call->ref.data = p;
        call->ref.len = m->args[2].len;
        ngx_memcpy(p, m->args[2].data, m->args[2].len);
    }

    ngx_stream_fishchat_msg_uuid(call->uuid);
    uuid.data = call->uuid;
    uuid.len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;

    p = w->scratch;

    args[0] = ngx_stream_fishchat_msg_key(&p, "topic:", name, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":members");
    args[2] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":h");
    args[3] = sess->node.str;
    args[4] = uuid;
    args[5] = m->args[1];
    args[6].data = max;
    args[6].len = ngx_sprintf(max, "%ui", sess->conf->topic_history) - max;
    args[7] = ngx_stream_fishchat_msg_key(&p, "t:", name, "");
    args[8] = w->sys[NGX_STREAM_FISHCHAT_SYS_TOPIC_SYNC];
    args[9] = call->to;

    return ngx_stream_fishchat_topic_call(call, w->topics->conf->send,
                                          ngx_stream_fishchat_topic_sent,
                                          3, 10, args);
}


static void
ngx_stream_fishchat_topic_sent(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                           args[2];
    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    ngx_queue_remove(&call->queue);

    if (reply == NULL
        || (reply->type != REDIS_REPLY_INTEGER
            && reply->type != REDIS_REPLY_STRING))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sess->c->log, 0,
                          "fishchat msg: topic send script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        if (reply == NULL && ngx_fishchat_redis_unknown()) {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                             NGX_FISHCHAT_ERR_NOT_CONFIRMED,
                                             !sess->optin,
                                             "Redis did not answer: the "
                                             "message may have been stored");

        } else {
            (void) ngx_stream_fishchat_msg_refuse(sess,
                                                  NGX_FISHCHAT_ERR_REDIS,
                                                  !sess->optin,
                                                  "message not accepted: "
                                                  "Redis is unavailable");
        }

        ngx_free(call);
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        err = (reply->len == sizeof("NOTOPIC") - 1)
              ? NGX_FISHCHAT_ERR_NO_SUCH_TOPIC : NGX_FISHCHAT_ERR_NOT_MEMBER;

        (void) ngx_stream_fishchat_msg_refuse(sess, err, !sess->optin,
                                              "message to \"%V\" not "
                                              "accepted", &call->to);
        ngx_free(call);
        return;
    }

    sess->counters->messages++;

    if (sess->optin) {
        args[0] = call->ref;
        args[1].data = call->uuid;
        args[1].len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;

        (void) ngx_stream_fishchat_msg_reply(sess, "ACCEPTED", args, 2);
    }

    ngx_free(call);
}


/* runs a script for a session's call; NGX_OK while the session goes on */

/*
 * A call of the session that keeps the topic's name (in call->to) for its
 * handler; NULL when memory ran out and the session was closed.
 */

static ngx_stream_fishchat_msg_call_t *
ngx_stream_fishchat_topic_name_call(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *name)
{
    ngx_stream_fishchat_msg_call_t  *call;

    call = ngx_stream_fishchat_msg_call(sess, name->len);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NULL;
    }

    call->to.data = call->data;
    call->to.len = name->len;
    ngx_memcpy(call->data, name->data, name->len);

    return call;
}


static ngx_int_t
ngx_stream_fishchat_topic_call(ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script,
                                        handler, call, nkeys, nargs, args);
    if (call->req == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "Redis is unavailable");
    }

    return NGX_OK;
}


/*
 * The topics of a client, "P client:{id}:topics": SADD / SREM a name, or
 * SORT (ALPHA) them all.
 */

static ngx_int_t
ngx_stream_fishchat_topic_client_set(char *cmd, ngx_str_t *id,
    ngx_str_t *name, ngx_fishchat_redis_handler_pt handler, void *data,
    ngx_fishchat_redis_req_t **req)
{
    u_char                             *p;
    size_t                              argvlen[3];
    ngx_str_t                           key;
    const char                         *argv[3];
    ngx_fishchat_redis_req_t           *r;
    ngx_stream_fishchat_msg_worker_t   *w;

    w = ngx_stream_fishchat_msg_worker;

    p = w->scratch;
    key = ngx_stream_fishchat_msg_key(&p, "client:", id, ":topics");

    argv[0] = cmd;
    argvlen[0] = ngx_strlen(cmd);
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;

    if (name) {
        argv[2] = (const char *) name->data;
        argvlen[2] = name->len;

    } else {
        argv[2] = "ALPHA";
        argvlen[2] = sizeof("ALPHA") - 1;
    }

    r = ngx_fishchat_redis_command(ngx_fishchat_redis_link(), handler, data,
                                   3, argv, argvlen);
    if (req) {
        *req = r;
    }

    return r ? NGX_OK : NGX_ERROR;
}


/* login: the topics of the client, each caught up and then live */

void
ngx_stream_fishchat_topic_login(ngx_stream_fishchat_msg_session_t *sess)
{
    ngx_int_t                        rc;
    ngx_stream_fishchat_msg_call_t  *call;

    if (sess->closed || !sess->logged_in) {
        return;
    }

    call = ngx_stream_fishchat_msg_call(sess, 0);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    rc = ngx_stream_fishchat_topic_client_set("SORT", &sess->node.str, NULL,
                                        ngx_stream_fishchat_topic_logged_in,
                                        call, &call->req);
    if (rc != NGX_OK) {
        ngx_stream_fishchat_msg_call_done(call);
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: the topics of \"%V\" are not served "
                      "in this session: Redis is unavailable",
                      &sess->node.str);
    }
}


static void
ngx_stream_fishchat_topic_logged_in(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    size_t                               i;
    ngx_str_t                            name;
    redisReply                          *e;
    ngx_stream_fishchat_msg_session_t   *sess;

    sess = call->sess;

    ngx_stream_fishchat_msg_call_done(call);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: the topics of \"%V\" are not served "
                      "in this session: Redis is unavailable",
                      &sess->node.str);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        name.data = (u_char *) e->str;
        name.len = e->len;

        if (ngx_stream_fishchat_msg_valid_id(&name) != NGX_OK) {
            continue;
        }

        if (ngx_stream_fishchat_topic_attach(sess, &name) == NULL) {
            ngx_stream_fishchat_msg_close(sess);
            return;
        }
    }
}


/*
 * The manager made the client a member of a topic ('J') or no member any
 * more ('L', also when it deleted the topic): the session takes the topic
 * up as after JOIN_TOPIC (a catch-up from the position of the join, then
 * live messages) or lets it go as after LEAVE_TOPIC, without a frame to
 * the client.  A session still logging in reads its topics afterwards.
 */

void
ngx_stream_fishchat_topic_control(ngx_stream_fishchat_msg_session_t *sess,
    u_char op, ngx_str_t *name)
{
    ngx_stream_fishchat_topic_member_t  *mb;

    if (sess->closed || !sess->logged_in
        || ngx_stream_fishchat_msg_valid_id(name) != NGX_OK)
    {
        return;
    }

    if (op == 'J') {
        if (ngx_stream_fishchat_topic_attach(sess, name) == NULL) {
            ngx_stream_fishchat_msg_close(sess);
        }

        return;
    }

    mb = ngx_stream_fishchat_topic_mine_find(sess, name);

    if (mb) {
        ngx_stream_fishchat_topic_detach(mb);
    }
}


/* the messages on the topics' lists of this worker, for the monitor */

ngx_uint_t
ngx_stream_fishchat_topic_backlog(void)
{
    ngx_stream_fishchat_msg_worker_t  *w;

    w = ngx_stream_fishchat_msg_worker;

    return (w && w->topics) ? w->topics->nmsgs : 0;
}


/* session cleanup: positions are saved, memberships let go */

void
ngx_stream_fishchat_topic_cleanup(ngx_stream_fishchat_msg_session_t *sess)
{
    ngx_queue_t                         *q;
    ngx_stream_fishchat_topic_member_t  *mb;

    if (ngx_stream_fishchat_msg_worker == NULL
        || ngx_stream_fishchat_msg_worker->topics == NULL
        || sess->topics.next == NULL)
    {
        return;
    }

    while (!ngx_queue_empty(&sess->topics)) {
        q = ngx_queue_head(&sess->topics);
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_sess);

        ngx_stream_fishchat_topic_save(mb->topic, mb);
        ngx_stream_fishchat_topic_detach(mb);
    }
}


/* a membership of this session: the topic is subscribed, caught up */

static ngx_stream_fishchat_topic_member_t *
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

        t->channel.data = p;
        t->channel.len = ngx_sprintf(p, "%Vt:{%V}",
                          &ngx_stream_fishchat_msg_worker->fcf->redis_prefix,
                          name)
                         - p;

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


static void
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


static ngx_stream_fishchat_topic_member_t *
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

static void
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

    args[0] = ngx_stream_fishchat_msg_key(&p, "topic:", name, "");
    args[1] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":members");
    args[2] = ngx_stream_fishchat_msg_key(&p, "topic:", name, ":h");
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

    size_t                               i, size;
    u_char                              *last;
    uint64_t                             pos, seq, from, s, written;
    ngx_str_t                            args[4], payload, uuid, sender, text;
    ngx_str_t                           *name;
    ngx_uint_t                           nargs, pass, frames;
    redisReply                          *e;
    ngx_fishchat_out_piece_t             piece;
    ngx_stream_fishchat_topic_t         *t;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_msg_session_t   *sess;
    u_char                               missed[NGX_INT64_LEN];

    mb->req = NULL;

    sess = mb->sess;
    t = mb->topic;
    name = &t->node.str;
    tw = ngx_stream_fishchat_msg_worker->topics;

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
        return;
    }

    if (reply->element[0]->integer < 0) {
        /* not a member any more (left from another session) */
        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                       "fishchat msg: \"%V\" is no member of \"%V\"",
                       &sess->node.str, name);

        (void) ngx_stream_fishchat_topic_client_set("SREM", &sess->node.str,
                                                    name, NULL, NULL, NULL);
        ngx_stream_fishchat_topic_detach(mb);
        return;
    }

    if (reply->elements < 3
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_INTEGER)
    {
        t->retry = 1;
        ngx_stream_fishchat_topic_dirty(t);
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

    if (from > mb->pos + 1) {
        /* the history is capped: some are lost to this member */

        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: \"%V\" missed %uL messages of topic "
                      "\"%V\" (over the history)", &sess->node.str,
                      from - mb->pos - 1, name);

        if (sess->optin) {
            args[0] = *name;
            args[1].data = missed;
            args[1].len = ngx_sprintf(missed, "%uL", from - mb->pos - 1)
                          - missed;

            if (ngx_stream_fishchat_msg_reply(sess, "TOPIC_GAP", args, 2)
                != NGX_OK)
            {
                return;
            }
        }

        mb->pos = from - 1;
    }

    /*
     * the page's frames, one after the other in tw->buf, one write: the
     * first pass counts the bytes, the second writes them
     */

    nargs = sess->optin ? 4 : 3;
    size = 0;
    last = NULL;
    written = mb->pos;
    frames = 0;

    for (pass = 0; pass < 2; pass++) {
        s = from;

        for (i = 3; i < reply->elements; i++) {
            e = reply->element[i];

            if (e->type != REDIS_REPLY_STRING) {
                continue;
            }

            payload.data = (u_char *) e->str;
            payload.len = e->len;

            if (ngx_stream_fishchat_topic_parse(&payload, &s, &uuid, &sender,
                                                &text)
                != NGX_OK
                || s <= mb->pos)
            {
                continue;
            }

            args[0] = *name;
            args[1] = text;
            args[2] = sender;
            args[3] = uuid;

            if (pass == 0) {
                size += ngx_fishchat_frame_size(
                                      &ngx_stream_fishchat_topic_resp, args,
                                      nargs);
                continue;
            }

            last = ngx_fishchat_frame_write(last,
                                            &ngx_stream_fishchat_topic_resp,
                                            args, nargs);
            written = s;
            frames++;
        }

        if (pass == 0) {
            if (size == 0) {
                break;
            }

            if (size > tw->buf_size) {
                if (tw->buf) {
                    ngx_free(tw->buf);
                }

                tw->buf_size = 0;

                tw->buf = ngx_alloc(ngx_max(size, 4096), sess->c->log);
                if (tw->buf == NULL) {
                    ngx_stream_fishchat_msg_close(sess);
                    return;
                }

                tw->buf_size = ngx_max(size, 4096);
            }

            last = tw->buf;
        }
    }

    if (frames) {
        piece.data = tw->buf;
        piece.len = last - tw->buf;
        piece.chunk = NULL;

        if (ngx_stream_fishchat_topic_deliver(mb, written, &piece, 1, frames)
            != NGX_OK)
        {
            return;
        }
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

    if (last - p < NGX_STREAM_FISHCHAT_MSG_UUID_LEN + 1
        || p[NGX_STREAM_FISHCHAT_MSG_UUID_LEN] != '\n')
    {
        return NGX_ERROR;
    }

    uuid->data = p;
    uuid->len = NGX_STREAM_FISHCHAT_MSG_UUID_LEN;
    p += NGX_STREAM_FISHCHAT_MSG_UUID_LEN + 1;

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


/* both frames of a message, made once for all members of this worker */

static ngx_stream_fishchat_topic_msg_t *
ngx_stream_fishchat_topic_msg(ngx_str_t *name, uint64_t seq, ngx_str_t *uuid,
    ngx_str_t *from, ngx_str_t *text)
{
    size_t                            legacy, optin;
    ngx_str_t                         args[4];
    ngx_stream_fishchat_topic_msg_t  *msg;

    args[0] = *name;
    args[1] = *text;
    args[2] = *from;
    args[3] = *uuid;

    legacy = ngx_fishchat_frame_size(&ngx_stream_fishchat_topic_resp, args,
                                     3);
    optin = ngx_fishchat_frame_size(&ngx_stream_fishchat_topic_resp, args, 4);

    msg = ngx_alloc(sizeof(ngx_stream_fishchat_topic_msg_t) + legacy + optin,
                    ngx_cycle->log);
    if (msg == NULL) {
        return NULL;
    }

    msg->chunk.refs = 1;
    msg->seq = seq;

    msg->legacy.data = msg->data;
    msg->legacy.len = ngx_fishchat_frame_write(msg->data,
                                               &ngx_stream_fishchat_topic_resp,
                                               args, 3)
                      - msg->data;

    msg->optin.data = msg->legacy.data + msg->legacy.len;
    msg->optin.len = ngx_fishchat_frame_write(msg->optin.data,
                                              &ngx_stream_fishchat_topic_resp,
                                              args, 4)
                     - msg->optin.data;

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

static void
ngx_stream_fishchat_topic_save(ngx_stream_fishchat_topic_t *t,
    ngx_stream_fishchat_topic_member_t *only)
{
    u_char                              *p, *nums;
    size_t                              *argvlen;
    ngx_str_t                            key;
    ngx_uint_t                           n, argc;
    const char                         **argv;
    ngx_queue_t                         *q;
    ngx_fishchat_redis_req_t            *req;
    ngx_stream_fishchat_msg_worker_t    *w;
    ngx_stream_fishchat_topic_member_t  *mb;
    u_char                               nk[] = "1";

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

        if (mb->known && mb->saving > mb->saved) {
            n++;
        }
    }

    if (n == 0) {
        return;
    }

    argc = 4 + 2 * n;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                     + n * NGX_INT64_LEN, ngx_cycle->log);
    if (argv == NULL) {
        return;
    }

    argvlen = (size_t *) (argv + argc);
    nums = (u_char *) (argvlen + argc);

    p = w->scratch;
    key = ngx_stream_fishchat_msg_key(&p, "topic:", &t->node.str, ":members");

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = (const char *) w->topics->conf->save->sha;
    argvlen[1] = 40;
    argv[2] = (const char *) nk;
    argvlen[2] = 1;
    argv[3] = (const char *) key.data;
    argvlen[3] = key.len;

    argc = 4;

    for (q = ngx_queue_head(&t->members);
         q != ngx_queue_sentinel(&t->members);
         q = ngx_queue_next(q))
    {
        mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t, in_topic);

        if ((only && mb != only) || !mb->known || mb->saving <= mb->saved) {
            continue;
        }

        argv[argc] = (const char *) mb->sess->node.str.data;
        argvlen[argc] = mb->sess->node.str.len;
        argc++;

        argv[argc] = (const char *) nums;
        argvlen[argc] = ngx_sprintf(nums, "%uL", mb->saving) - nums;
        nums += argvlen[argc];
        argc++;
    }

    req = ngx_fishchat_redis_command(ngx_fishchat_redis_link(), NULL, NULL,
                                     argc, argv, argvlen);

    ngx_free(argv);

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

        if ((only && mb != only) || !mb->known || mb->saving <= mb->saved) {
            continue;
        }

        mb->saved = mb->saving;
    }
}


static void
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


/* "id" is the logged-in id */

static ngx_int_t
ngx_stream_fishchat_topic_is_id(ngx_str_t *arg, ngx_str_t *id)
{
    if (arg->len == id->len && ngx_strncmp(arg->data, id->data, id->len) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* configuration: the scripts, with the msg module's */

char *
ngx_stream_fishchat_topic_conf(ngx_conf_t *cf,
    ngx_stream_fishchat_msg_main_conf_t *mmcf)
{
    ngx_stream_fishchat_topic_conf_t  *tc;

    tc = ngx_pcalloc(cf->pool, sizeof(ngx_stream_fishchat_topic_conf_t));
    if (tc == NULL) {
        return NGX_CONF_ERROR;
    }

    tc->create = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_create_lua);
    tc->join = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_join_lua);
    tc->leave = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_leave_lua);
    tc->members = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_members_lua);
    tc->send = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_send_lua);
    tc->catchup = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_catchup_lua);
    tc->save = ngx_fishchat_redis_script(cf,
                                        ngx_stream_fishchat_topic_save_lua);

    if (tc->create == NULL || tc->join == NULL || tc->leave == NULL
        || tc->members == NULL || tc->send == NULL || tc->catchup == NULL
        || tc->save == NULL)
    {
        return NGX_CONF_ERROR;
    }

    mmcf->topic = tc;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_stream_fishchat_topic_init_worker(ngx_cycle_t *cycle,
    ngx_stream_fishchat_msg_worker_t *w)
{
    ngx_stream_fishchat_topic_worker_t  *tw;

    tw = ngx_pcalloc(cycle->pool, sizeof(ngx_stream_fishchat_topic_worker_t));
    if (tw == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&tw->topics, &tw->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&tw->dirty);
    ngx_queue_init(&tw->pending);

    tw->cycle = cycle;
    tw->conf = w->mmcf->topic;

    tw->save.handler = ngx_stream_fishchat_topic_save_handler;
    tw->save.data = tw;
    tw->save.log = cycle->log;
    tw->save.cancelable = 1;

    tw->deliver.handler = ngx_stream_fishchat_topic_deliver_handler;
    tw->deliver.data = tw;
    tw->deliver.log = cycle->log;

    w->topics = tw;

    return NGX_OK;
}


/*
 * The worker exits: sessions are not cleaned up any more, so what the
 * topics hold is freed here.
 */

void
ngx_stream_fishchat_topic_exit_worker(ngx_stream_fishchat_msg_worker_t *w)
{
    ngx_queue_t                         *q;
    ngx_rbtree_node_t                   *node;
    ngx_stream_fishchat_topic_t         *t;
    ngx_stream_fishchat_topic_worker_t  *tw;
    ngx_stream_fishchat_topic_member_t  *mb;

    tw = w->topics;

    if (tw == NULL) {
        return;
    }

    if (tw->save.timer_set) {
        ngx_del_timer(&tw->save);
    }

    if (tw->deliver.posted) {
        ngx_delete_posted_event(&tw->deliver);
    }

    while (tw->topics.root != tw->topics.sentinel) {
        node = ngx_rbtree_min(tw->topics.root, tw->topics.sentinel);
        t = (ngx_stream_fishchat_topic_t *) node;

        while (!ngx_queue_empty(&t->members)) {
            q = ngx_queue_head(&t->members);
            mb = ngx_queue_data(q, ngx_stream_fishchat_topic_member_t,
                                in_topic);

            /* the session may still be open: its list is emptied too */
            ngx_stream_fishchat_topic_detach(mb);
        }
    }

    if (tw->buf) {
        ngx_free(tw->buf);
        tw->buf = NULL;
    }

    w->topics = NULL;
}
