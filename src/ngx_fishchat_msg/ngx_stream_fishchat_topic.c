
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
#include "ngx_stream_fishchat_msg_private.h"
#include "ngx_stream_fishchat_topic.h"


static ngx_int_t ngx_stream_fishchat_topic_check(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    const char *name, ngx_uint_t min, ngx_uint_t max, ngx_uint_t id_arg);
static ngx_int_t ngx_stream_fishchat_topic_create(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_topic_answer(
    ngx_stream_fishchat_msg_call_t *call, redisReply *reply, char *what);
static void ngx_stream_fishchat_topic_created(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_membership(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m, char *cmd,
    ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt handler,
    ngx_stream_fishchat_msg_call_t **callp);
static ngx_int_t ngx_stream_fishchat_topic_join(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_topic_joined(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_leave(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_topic_left(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_members(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static ngx_int_t ngx_stream_fishchat_topic_mine(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_topic_list(redisReply *reply, void *data);
static ngx_int_t ngx_stream_fishchat_topic_send(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
static void ngx_stream_fishchat_topic_sent(redisReply *reply, void *data);
static ngx_stream_fishchat_msg_session_t *ngx_stream_fishchat_topic_taken(
    ngx_stream_fishchat_msg_call_t *call);
static void ngx_stream_fishchat_topic_refused(
    ngx_stream_fishchat_msg_call_t *call, ngx_fishchat_err_e err,
    ngx_uint_t fatal, const char *fmt);
static void ngx_stream_fishchat_topic_logged_in(redisReply *reply,
    void *data);
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

static char  ngx_stream_fishchat_topic_client_lua[] =
    NGX_FISHCHAT_LUA_CLIENT_TOPIC;

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


static ngx_fishchat_redis_script_slot_t
    ngx_stream_fishchat_topic_scripts[] =
{
    { ngx_stream_fishchat_topic_create_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, create) },
    { ngx_stream_fishchat_topic_join_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, join) },
    { ngx_stream_fishchat_topic_leave_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, leave) },
    { ngx_stream_fishchat_topic_members_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, members) },
    { ngx_stream_fishchat_topic_send_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, send) },
    { ngx_stream_fishchat_topic_catchup_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, catchup) },
    { ngx_stream_fishchat_topic_save_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, save) },
    { ngx_stream_fishchat_topic_client_lua,
      offsetof(ngx_stream_fishchat_topic_conf_t, client_topic) },
    { NULL, 0 }
};


/*
 * The topic commands; NGX_DECLINED for a command that is not one of them.
 * Otherwise as the msg module's: NGX_OK while the session goes on.
 */

ngx_int_t
ngx_stream_fishchat_topic_command(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    if (ngx_fishchat_frame_is(m, "SEND_MESSAGE_TOPIC")) {
        return ngx_stream_fishchat_topic_send(sess, m);
    }

    if (ngx_fishchat_frame_is(m, "JOIN_TOPIC")) {
        return ngx_stream_fishchat_topic_join(sess, m);
    }

    if (ngx_fishchat_frame_is(m, "CREATE_TOPIC")) {
        return ngx_stream_fishchat_topic_create(sess, m);
    }

    if (ngx_fishchat_frame_is(m, "LEAVE_TOPIC")) {
        return ngx_stream_fishchat_topic_leave(sess, m);
    }

    /* replies seed clients would not understand: opt-in commands */

    if (sess->optin && ngx_fishchat_frame_is(m, "TOPIC_MEMBERS")) {
        return ngx_stream_fishchat_topic_members(sess, m);
    }

    if (sess->optin && ngx_fishchat_frame_is(m, "MY_TOPICS")) {
        return ngx_stream_fishchat_topic_mine(sess, m);
    }

    if (sess->optin && ngx_fishchat_frame_is(m, "TOPIC_INVITE")) {
        return ngx_stream_fishchat_topic_invite(sess, m, 1);
    }

    if (sess->optin && ngx_fishchat_frame_is(m, "TOPIC_REMOVE")) {
        return ngx_stream_fishchat_topic_invite(sess, m, 0);
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
    ngx_fishchat_frame_t *m, const char *name, ngx_uint_t min, ngx_uint_t max,
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

    if (min && ngx_fishchat_valid_id(&m->args[0]) != NGX_OK) {
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


/*
 * What a command on one topic begins with: the checks, the call named
 * after the topic, and the topic's keys in args[0] and args[1] (at the
 * start of the worker's scratch).  NGX_OK, or what the command returns.
 */

ngx_int_t
ngx_stream_fishchat_topic_start(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, char *cmd, ngx_uint_t min, ngx_uint_t max,
    ngx_uint_t id_arg, ngx_stream_fishchat_msg_call_t **call, ngx_str_t *args)
{
    u_char     *p;
    ngx_int_t   rc;

    rc = ngx_stream_fishchat_topic_check(sess, m, cmd, min, max, id_arg);
    if (rc != NGX_OK) {
        return rc;
    }

    *call = ngx_stream_fishchat_msg_call_str(sess, &m->args[0], NULL, 0,
                                             NULL);
    if (*call == NULL) {
        return NGX_ERROR;
    }

    p = ngx_stream_fishchat_msg_worker->scratch;

    args[0] = ngx_fishchat_key(&p, "topic:", &m->args[0], "");
    args[1] = ngx_fishchat_key(&p, "topic:", &m->args[0], ":members");

    return NGX_OK;
}


/*
 * The answer to a change of a topic (create, join, leave): the call is
 * taken off the session (a write may close the session); without an
 * integer from Redis the client is told "<what>: Redis is unavailable" and
 * the call is freed.  NGX_OK: the answer is an integer.
 */

static ngx_int_t
ngx_stream_fishchat_topic_answer(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply, char *what)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = ngx_stream_fishchat_topic_taken(call);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS,
                                              !sess->optin,
                                              "%s: Redis is unavailable",
                                              what);
        ngx_free(call);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* CREATE_TOPIC <name> [open|private] */

static ngx_int_t
ngx_stream_fishchat_topic_create(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    ngx_int_t                           rc;
    ngx_str_t                           args[7];
    ngx_uint_t                          private;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;
    u_char                              now[NGX_INT64_LEN];

    private = 0;

    if (m->nargs == 2) {
        if (m->args[1].len == 7
            && ngx_strncmp(m->args[1].data, "private", 7) == 0)
        {
            private = 1;

        } else if (m->args[1].len != 4
                   || ngx_strncmp(m->args[1].data, "open", 4) != 0)
        {
            return ngx_stream_fishchat_msg_refuse(sess,
                                                  NGX_FISHCHAT_ERR_BAD_ARGS,
                                                  1, "a topic is \"open\" "
                                                  "or \"private\"");
        }
    }

    rc = ngx_stream_fishchat_topic_start(sess, m, "CREATE_TOPIC", 1, 2, 0,
                                         &call, args);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;

    args[2] = sess->node.str;
    args[3].data = now;
    args[3].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    args[4] = w->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[5] = call->to;

    if (private) {
        ngx_str_set(&args[6], "1");

    } else {
        ngx_str_null(&args[6]);
    }

    return ngx_stream_fishchat_topic_call(call, w->topics->conf->create,
                                          ngx_stream_fishchat_topic_created,
                                          2, 7, args, NULL);
}


static void
ngx_stream_fishchat_topic_created(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    if (ngx_stream_fishchat_topic_answer(call, reply, "topic not created")
        != NGX_OK)
    {
        return;
    }

    if (reply->integer == 0) {
        /* the seed sent nothing back: seed clients get nothing either */
        ngx_stream_fishchat_topic_refused(call,
                                          NGX_FISHCHAT_ERR_TOPIC_EXISTS, 0,
                                          "topic \"%V\" exists");
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
    ngx_fishchat_frame_t *m, char *cmd, ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt handler,
    ngx_stream_fishchat_msg_call_t **callp)
{
    ngx_int_t                           rc;
    ngx_str_t                           args[6];
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;

    *callp = NULL;

    rc = ngx_stream_fishchat_topic_start(sess, m, cmd, 2, 2, 1, &call, args);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;
    args[2] = sess->node.str;
    args[3] = w->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[4] = call->to;
    ngx_str_null(&args[5]);     /* the member itself */

    return ngx_stream_fishchat_topic_call(call, script, handler, 2, 6, args,
                                          callp);
}


/* JOIN_TOPIC <name> <id> */

static ngx_int_t
ngx_stream_fishchat_topic_join(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
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

    if (ngx_stream_fishchat_topic_answer(call, reply, "not joined") != NGX_OK)
    {
        return;
    }

    if (reply->integer == -2) {
        ngx_stream_fishchat_topic_refused(call, NGX_FISHCHAT_ERR_FORBIDDEN,
                                          !sess->optin,
                                          "topic \"%V\" is private: only "
                                          "its creator adds members");
        return;
    }

    if (reply->integer < 0) {
        ngx_stream_fishchat_topic_refused(call,
                                          NGX_FISHCHAT_ERR_NO_SUCH_TOPIC,
                                          !sess->optin, "no topic \"%V\"");
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
    ngx_fishchat_frame_t *m)
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

    if (ngx_stream_fishchat_topic_answer(call, reply, "not left") != NGX_OK) {
        return;
    }

    mb = ngx_stream_fishchat_topic_mine_find(sess, &call->to);

    if (mb) {
        ngx_stream_fishchat_topic_detach(mb);
    }

    if (reply->integer <= 0) {
        /* nothing to leave: harmless, but said to opt-in clients */
        ngx_stream_fishchat_topic_refused(call,
                                          reply->integer < 0
                                          ? NGX_FISHCHAT_ERR_NO_SUCH_TOPIC
                                          : NGX_FISHCHAT_ERR_NOT_MEMBER,
                                          0, "not a member of \"%V\"");
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
    ngx_fishchat_frame_t *m)
{
    ngx_int_t                           rc;
    ngx_str_t                           args[2];
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;

    rc = ngx_stream_fishchat_topic_start(sess, m, "TOPIC_MEMBERS", 1, 1, 0,
                                         &call, args);
    if (rc != NGX_OK) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;

    return ngx_stream_fishchat_topic_call(call, w->topics->conf->members,
                                          ngx_stream_fishchat_topic_list,
                                          2, 2, args, NULL);
}


/* MY_TOPICS (opt-in) */

static ngx_int_t
ngx_stream_fishchat_topic_mine(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
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
    ngx_stream_fishchat_msg_session_t   *sess;

    sess = ngx_stream_fishchat_topic_taken(call);

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
        ngx_stream_fishchat_topic_refused(call,
                                          NGX_FISHCHAT_ERR_NO_SUCH_TOPIC, 0,
                                          "no topic \"%V\"");
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
        if (ngx_fishchat_redis_str(reply->element[i], &args[n]) == NGX_OK) {
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
    ngx_fishchat_frame_t *m)
{
    ngx_int_t  rc;

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

    return ngx_stream_fishchat_topic_post(sess, &m->args[0], &m->args[1],
                                          m->nargs == 3 ? &m->args[2] : NULL,
                                          NULL);
}


/*
 * A checked message of the session to topic "name" ("ref": NULL or the
 * client's reference).  A file message ("file": its id) comes from
 * "{file}" through NGX_FISHCHAT_LUA_TOPIC_FILE, which checks that the
 * session is a member; once stored, its reference goes to the file's
 * record (ngx_stream_fishchat_msg_file_sent()).
 */

ngx_int_t
ngx_stream_fishchat_topic_post(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *name, ngx_str_t *text, ngx_str_t *ref, ngx_str_t *file)
{
    u_char                             *p;
    ngx_str_t                           args[NGX_FISHCHAT_TOPIC_SEND_ARGS + 2];
    ngx_str_t                           uuid;
    ngx_uint_t                          nargs;
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;
    ngx_fishchat_redis_script_t        *script;
    u_char                              num[NGX_FISHCHAT_TOPIC_SEND_NUM];

    w = ngx_stream_fishchat_msg_worker;

    call = ngx_stream_fishchat_msg_call_str(sess, name, ref,
                                            file ? file->len : 0, &p);
    if (call == NULL) {
        return NGX_ERROR;
    }

    if (file) {
        call->file.data = p;
        call->file.len = file->len;
        ngx_memcpy(p, file->data, file->len);
    }

    ngx_fishchat_uuid(call->uuid);
    uuid.data = call->uuid;
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    p = w->scratch;

    ngx_fishchat_topic_send_args(args, &p, w->fcf, &call->to,
                                 &sess->node.str, &uuid, text,
                                 sess->conf->topic_history, num);

    script = w->topics->conf->send;
    nargs = NGX_FISHCHAT_TOPIC_SEND_ARGS;

    if (file) {
        ngx_str_set(&args[3], NGX_STREAM_FISHCHAT_MSG_FILE_FROM);
        ngx_str_set(&args[NGX_FISHCHAT_TOPIC_SEND_ARGS], "1");
        args[NGX_FISHCHAT_TOPIC_SEND_ARGS + 1] = sess->node.str;

        script = w->mmcf->file_topic;
        nargs = NGX_FISHCHAT_TOPIC_SEND_ARGS + 2;
    }

    return ngx_stream_fishchat_topic_call(call, script,
                                          ngx_stream_fishchat_topic_sent,
                                          NGX_FISHCHAT_TOPIC_SEND_KEYS, nargs,
                                          args, NULL);
}


static void
ngx_stream_fishchat_topic_sent(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                           args[2];
    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_session_t  *sess;

    if (call->file.len) {
        /*
         * a file message: its file learns of it, whatever became of the
         * sender (which then left the call)
         */
        ngx_stream_fishchat_msg_file_sent(call, reply);

        if (call->sess == NULL) {
            ngx_free(call);
            return;
        }
    }

    sess = ngx_stream_fishchat_topic_taken(call);

    if (reply == NULL
        || (reply->type != REDIS_REPLY_INTEGER
            && reply->type != REDIS_REPLY_STRING))
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, sess->c->log, 0,
                          "fishchat msg: topic send script failed: %*s",
                          (size_t) reply->len, reply->str);
        }

        (void) ngx_stream_fishchat_msg_not_stored(sess, reply);

        ngx_free(call);
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        err = (reply->len == sizeof("NOTOPIC") - 1)
              ? NGX_FISHCHAT_ERR_NO_SUCH_TOPIC : NGX_FISHCHAT_ERR_NOT_MEMBER;

        ngx_stream_fishchat_topic_refused(call, err, !sess->optin,
                                          "message to \"%V\" not accepted");
        return;
    }

    sess->counters->messages++;

    if (sess->optin) {
        args[0] = call->ref;
        args[1].data = call->uuid;
        args[1].len = NGX_FISHCHAT_UUID_LEN;

        (void) ngx_stream_fishchat_msg_reply(sess, "ACCEPTED", args, 2);
    }

    ngx_free(call);
}


/* runs a script for a session's call; NGX_OK while the session goes on */

/*
 * The script of a call; "callp" (if any) gets the call when it is under
 * way: otherwise the call is gone, and the caller must not look at it
 */

ngx_int_t
ngx_stream_fishchat_topic_call(ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args,
    ngx_stream_fishchat_msg_call_t **callp)
{
    ngx_int_t  rc;

    rc = ngx_stream_fishchat_msg_call_eval(call, script, handler, nkeys,
                                           nargs, args, "topic");
    if (rc != NGX_OK) {
        return rc;
    }

    if (callp) {
        *callp = call;
    }

    return NGX_OK;
}


/*
 * A call answered is taken off its session first: a write may close the
 * session
 */

static ngx_stream_fishchat_msg_session_t *
ngx_stream_fishchat_topic_taken(ngx_stream_fishchat_msg_call_t *call)
{
    ngx_queue_remove(&call->queue);

    return call->sess;
}


/* the command of a call on the topic call->to is refused; the call goes */

static void
ngx_stream_fishchat_topic_refused(ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_err_e err, ngx_uint_t fatal, const char *fmt)
{
    (void) ngx_stream_fishchat_msg_refuse(call->sess, err, fatal, fmt,
                                          &call->to);
    ngx_free(call);
}


/*
 * The topics of a client, "P client:{id}:topics": SADD / SREM a name, or
 * SORT (ALPHA) them all.
 */

ngx_int_t
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
    key = ngx_fishchat_key(&p, "client:", id, ":topics");

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
        if (ngx_fishchat_redis_str(reply->element[i], &name) != NGX_OK
            || ngx_fishchat_valid_id(&name) != NGX_OK)
        {
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
        || ngx_fishchat_valid_id(name) != NGX_OK)
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

    if (ngx_fishchat_redis_scripts(cf, tc, ngx_stream_fishchat_topic_scripts)
        != NGX_OK)
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

    ngx_fishchat_event_init(&tw->save, ngx_stream_fishchat_topic_save_handler,
                            tw, cycle->log);
    tw->save.cancelable = 1;

    ngx_fishchat_event_init(&tw->deliver,
                            ngx_stream_fishchat_topic_deliver_handler, tw,
                            cycle->log);

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
