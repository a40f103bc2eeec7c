
/*
 * FishChat for nginx: file messages, from a chat session.
 *
 * SEND_FILE_P2P <to> <file id> <from> [<ref>] and SEND_FILE_TOPIC <name>
 * <file id> [<ref>] send a stored file of the sender's (a FILE_SLOT that
 * was uploaded) as a message: a script on the file's keys checks that the
 * sender owns it and that it is ready, notes the recipient as a reader
 * (and a 1:1 message's reference) and answers with the file's record;
 * then the message goes through the very scripts and paths of
 * SEND_MESSAGE_P2P and SEND_MESSAGE_TOPIC, from "{file}" (no client id
 * has braces: no client can forge one), its text
 *
 *     FILE\n<file id>\n<from>\n<name>\n<type>\n<size>\n<info json>
 *
 * Each client gets its own frame of it when it is written (live, from the
 * inbox, at a topic's catch-up): RESP_FILE_P2P or RESP_FILE_TOPIC with a
 * download URL made then (ngx_fishchat_files_get_url(): signed, with
 * fishchat_files_access token, for fishchat_files_link_ttl from then), or
 * for seed clients a RESP_MESSAGE_P2P or RESP_MESSAGE_TOPIC of the sender
 * whose text names the file and its URL.
 *
 * FILE_URL <file id> gives the owner and the readers fresh URLs.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg_private.h"


/* the fields of a file message's text, after "FILE\n" */

#define NGX_STREAM_FISHCHAT_FILE_ID        0
#define NGX_STREAM_FISHCHAT_FILE_SENDER    1
#define NGX_STREAM_FISHCHAT_FILE_NAME      2
#define NGX_STREAM_FISHCHAT_FILE_TYPE      3
#define NGX_STREAM_FISHCHAT_FILE_SIZE      4
#define NGX_STREAM_FISHCHAT_FILE_INFO      5
#define NGX_STREAM_FISHCHAT_FILE_FIELDS    6

/* what the check script answers: name, type, size, sha256, created... */

#define NGX_STREAM_FISHCHAT_FILE_RECORD    7


static ngx_int_t ngx_stream_fishchat_msg_file_check(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    char *cmd, ngx_uint_t min, ngx_uint_t max, ngx_str_t *id);
static void ngx_stream_fishchat_msg_file_checked(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_msg_file_text(ngx_str_t *id,
    ngx_str_t *sender, redisReply *reply, ngx_str_t *text, ngx_log_t *log);
static void ngx_stream_fishchat_msg_file_allowed(redisReply *reply,
    void *data);
static void ngx_stream_fishchat_msg_file_refused(
    ngx_stream_fishchat_msg_call_t *call, redisReply *reply, char *what);
static ngx_int_t ngx_stream_fishchat_msg_file_split(ngx_str_t *text,
    ngx_str_t *field);
static void ngx_stream_fishchat_msg_file_noted(redisReply *reply,
    void *data);


static ngx_str_t  ngx_stream_fishchat_msg_file_resp_p2p =
    ngx_string("RESP_FILE_P2P");
static ngx_str_t  ngx_stream_fishchat_msg_file_resp_topic =
    ngx_string("RESP_FILE_TOPIC");
static ngx_str_t  ngx_stream_fishchat_msg_file_seed_p2p =
    ngx_string("RESP_MESSAGE_P2P");
static ngx_str_t  ngx_stream_fishchat_msg_file_seed_topic =
    ngx_string("RESP_MESSAGE_TOPIC");
static ngx_str_t  ngx_stream_fishchat_msg_file_from_str =
    ngx_string(NGX_STREAM_FISHCHAT_MSG_FILE_FROM);


/*
 * Before a file message is sent.  KEYS: the file, its readers, its
 * references.  ARGV: the sender, the reader to note (the recipient, or
 * "topic:<name>"), the reference to note ("" for none).  -1 no such file
 * (or not uploaded), -2 not the sender's; otherwise the file's name, type,
 * size, sha256, created (Unix ms), expires (Unix s), the probe's fields.
 *
 * The reader is noted before the message is stored, so that a recipient
 * that has the message may always ask FILE_URL; a message that is then
 * refused (a full inbox, not a member) leaves a reader the owner meant to
 * share the file with anyway.  A 1:1 message's reference is noted here too
 * (its uuid is the server's, made before): a reference is alive only while
 * its uuid is in the inbox, so one whose message was refused is dead from
 * the start, while one noted after the send could be lost with the link.
 * A topic message's reference needs its sequence number: it is noted once
 * the message is stored (ngx_stream_fishchat_msg_file_ref_lua: not for a
 * file gone meanwhile).  Both sets go with the file's record (the files
 * role's collector, FILE_DELETE).
 */

char  ngx_stream_fishchat_msg_file_send_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'owner', 'state', 'name', "
                         "'type', 'size', 'sha256', 'created', 'expires', "
                         "'probe') "
    "if not f[1] then return -1 end "
    "if f[1] ~= ARGV[1] then return -2 end "
    "if f[2] ~= 'ready' or not f[6] then return -1 end "
    "redis.call('SADD', KEYS[2], ARGV[2]) "
    "if ARGV[3] ~= '' then redis.call('SADD', KEYS[3], ARGV[3]) end "
    "return {f[3] or '', f[4] or '', f[5] or '0', f[6], f[7] or '0', "
            "f[8] or '0', f[9] or ''}";

/*
 * After a topic's file message is stored.  KEYS: the file's references,
 * the file.  ARGV: the reference.
 */

char  ngx_stream_fishchat_msg_file_ref_lua[] =
    "if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end "
    "redis.call('SADD', KEYS[1], ARGV[1]) "
    "return 1";

/*
 * FILE_URL.  KEYS: the file, its readers.  ARGV: who asks, the key prefix.
 * 1 the owner, a reader, or a member of a topic that is a reader; -1 no
 * such file (or not uploaded); -2 none of them.
 */

char  ngx_stream_fishchat_msg_file_url_lua[] =
    "local f = redis.call('HMGET', KEYS[1], 'owner', 'state') "
    "if not f[1] or f[2] ~= 'ready' then return -1 end "
    "if f[1] == ARGV[1] "
       "or redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 "
    "then "
        "return 1 "
    "end "
    "for _, r in ipairs(redis.call('SMEMBERS', KEYS[2])) do "
        "if string.sub(r, 1, 6) == 'topic:' "
           "and redis.call('HEXISTS', ARGV[2] .. 'topic:{' "
                          ".. string.sub(r, 7) .. '}:members', ARGV[1]) == 1 "
        "then "
            "return 1 "
        "end "
    "end "
    "return -2";

char  ngx_stream_fishchat_msg_file_topic_lua[] = NGX_FISHCHAT_LUA_TOPIC_FILE;


/*
 * SEND_FILE_P2P <to> <file id> <from> [<ref>]
 * SEND_FILE_TOPIC <name> <file id> [<ref>]
 *
 * The arguments are those of SEND_MESSAGE_P2P and SEND_MESSAGE_TOPIC, a
 * file id for the text; the message counts against fishchat_msg_rate.
 * The call keeps the recipient (call->to), the reference (call->ref), the
 * file id after them and, in call->resync, 1 for a topic.
 */

ngx_int_t
ngx_stream_fishchat_msg_file_send(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    size_t                             size;
    ngx_int_t                          rc;
    ngx_str_t                          args[6], *to, *ref, id, uuid;
    ngx_uint_t                         topic;
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;

    w = ngx_stream_fishchat_msg_worker;
    topic = ngx_fishchat_frame_is(m, "SEND_FILE_TOPIC");

    if (topic) {
        rc = ngx_stream_fishchat_msg_file_check(sess, m, "SEND_FILE_TOPIC",
                                                2, 3, &id);
        ref = (m->nargs == 3) ? &m->args[2] : NULL;

    } else {
        rc = ngx_stream_fishchat_msg_file_check(sess, m, "SEND_FILE_P2P",
                                                3, 4, &id);
        ref = (m->nargs == 4) ? &m->args[3] : NULL;
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    to = &m->args[0];

    if (ngx_fishchat_valid_id(to) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, topic
                                              ? "a topic name is 1 to 128 "
                                                "bytes without white space, "
                                                "control characters or "
                                                "braces"
                                              : "invalid recipient id");
    }

    if (!topic
        && (m->args[2].len != sess->node.str.len
            || ngx_strncmp(m->args[2].data, sess->node.str.data,
                           m->args[2].len) != 0))
    {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_FORBIDDEN,
                                              1, "\"from\" is not the "
                                              "logged-in id");
    }

    rc = ngx_stream_fishchat_msg_send_check(sess, ref);
    if (rc != NGX_OK) {
        return (rc == NGX_DECLINED) ? NGX_OK : rc;
    }

    /* to, ref, the file id, then the reader and the reference to note */

    size = id.len + sizeof("topic:") - 1 + sizeof("topic\n\n") + to->len
           + NGX_FISHCHAT_UUID_LEN;

    call = ngx_stream_fishchat_msg_call_str(sess, to, ref, size, &p);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->resync = topic;

    p = ngx_cpymem(p, id.data, id.len);

    ngx_fishchat_uuid(call->uuid);
    uuid.data = call->uuid;
    uuid.len = NGX_FISHCHAT_UUID_LEN;

    /* a topic's reference is noted once the message has its number */

    args[4].data = p;

    if (topic) {
        p = ngx_sprintf(p, "topic:%V", to);
        args[4].len = p - args[4].data;
        ngx_str_set(&args[5], "");

    } else {
        p = ngx_cpymem(p, to->data, to->len);
        args[4].len = p - args[4].data;

        args[5].data = p;
        p = ngx_sprintf(p, "p2p\n%V\n%V", to, &uuid);
        args[5].len = p - args[5].data;
    }

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "file:", &id, "");
    args[1] = ngx_fishchat_key(&p, "file:", &id, ":readers");
    args[2] = ngx_fishchat_key(&p, "file:", &id, ":refs");
    args[3] = sess->node.str;

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->file_send,
               ngx_stream_fishchat_msg_file_checked,
               3, 6, args, "message not accepted");
}


/* FILE_URL <file id> */

ngx_int_t
ngx_stream_fishchat_msg_file_url(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_str_t                          args[4], id;
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;

    rc = ngx_stream_fishchat_msg_file_check(sess, m, "FILE_URL", 1, 1, &id);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    w = ngx_stream_fishchat_msg_worker;

    call = ngx_stream_fishchat_msg_call_str(sess, &id, NULL, 0, NULL);
    if (call == NULL) {
        return NGX_ERROR;
    }

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "file:", &id, "");
    args[1] = ngx_fishchat_key(&p, "file:", &id, ":readers");
    args[2] = sess->node.str;
    args[3] = w->fcf->redis_prefix;

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->file_url,
               ngx_stream_fishchat_msg_file_allowed,
               2, 4, args, "file not looked up");
}


/*
 * What the three commands need besides an opt-in client logged in (the
 * session's dispatcher checked that): "min" to "max" arguments, a files
 * location, and a file id (32 hex digits) in the second argument (the
 * first for FILE_URL), in "id".  NGX_DECLINED: go on.
 */

static ngx_int_t
ngx_stream_fishchat_msg_file_check(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, char *cmd, ngx_uint_t min, ngx_uint_t max,
    ngx_str_t *id)
{
    u_char                c;
    size_t                i;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_stream_fishchat_msg_worker->fcf;

    if (fcf->files_url.len == 0) {
        return ngx_stream_fishchat_msg_needs(sess, cmd,
                                             "\"fishchat_files_url\"");
    }

    if (m->nargs < min || m->nargs > max) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "%s takes %ui to %ui "
                                              "arguments", cmd, min, max);
    }

    *id = m->args[min == 1 ? 0 : 1];

    if (id->len != NGX_FISHCHAT_FILE_ID_LEN) {
        goto bad;
    }

    for (i = 0; i < id->len; i++) {
        c = id->data[i];

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            goto bad;
        }
    }

    return NGX_DECLINED;

bad:

    return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                          "%s: a file id is 32 hex digits",
                                          cmd);
}


/* the file is the sender's and ready: the message goes as any other */

static void
ngx_stream_fishchat_msg_file_checked(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                           id, text, from;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != NGX_STREAM_FISHCHAT_FILE_RECORD)
    {
        ngx_stream_fishchat_msg_file_refused(call, reply,
                                             "file message not accepted");
        return;
    }

    id.data = call->to.data + call->to.len + call->ref.len;
    id.len = NGX_FISHCHAT_FILE_ID_LEN;

    /* the call is taken off the session: the send may close the session */

    ngx_queue_remove(&call->queue);

    if (ngx_stream_fishchat_msg_file_text(&id, &sess->node.str, reply, &text,
                                          sess->c->log)
        != NGX_OK)
    {
        ngx_free(call);
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                   "fishchat msg: file %V from \"%V\" to \"%V\"",
                   &id, &sess->node.str, &call->to);

    if (call->resync) {
        (void) ngx_stream_fishchat_topic_post(sess, &call->to, &text,
                                              call->ref.len ? &call->ref
                                                            : NULL,
                                              &id);

    } else {
        from = ngx_stream_fishchat_msg_file_from_str;

        (void) ngx_stream_fishchat_msg_p2p_send(sess, &call->to, &text, &from,
                                                call->ref.len ? &call->ref
                                                              : NULL,
                                                call->uuid);
    }

    ngx_free(text.data);
    ngx_free(call);
}


/*
 * The stored text of a file message (allocated, the caller frees it):
 * FILE\n<id>\n<sender>\n<name>\n<type>\n<size>\n<info json>, where the
 * info is the file's as GET <files url>/<id>/info has it when the message
 * is sent
 */

static ngx_int_t
ngx_stream_fishchat_msg_file_text(ngx_str_t *id, ngx_str_t *sender,
    redisReply *reply, ngx_str_t *text, ngx_log_t *log)
{
    u_char     *p;
    size_t      size, i;
    ngx_str_t   v[NGX_STREAM_FISHCHAT_FILE_RECORD];

    for (i = 0; i < NGX_STREAM_FISHCHAT_FILE_RECORD; i++) {
        (void) ngx_fishchat_redis_str(reply->element[i], &v[i]);
    }

    /* name, type, size, sha256, created (ms), expires, the probe's fields */

    size = sizeof("FILE\n\n\n\n\n\n") + id->len + sender->len + v[0].len
           + v[1].len + NGX_OFF_T_LEN
           + sizeof("{\"id\":\"\",\"name\":\"\",\"type\":\"\",\"size\":,"
                    "\"sha256\":\"\",\"created\":,\"expires\":}")
           + id->len + ngx_fishchat_json_escape_len(&v[0])
           + ngx_fishchat_json_escape_len(&v[1]) + NGX_OFF_T_LEN + v[3].len
           + 2 * NGX_TIME_T_LEN + v[6].len;

    p = ngx_alloc(size, log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    text->data = p;

    p = ngx_sprintf(p, "FILE\n%V\n%V\n%V\n%V\n%O\n", id, sender, &v[0],
                    &v[1], ngx_atoof(v[2].data, v[2].len));

    p = ngx_sprintf(p, "{\"id\":\"%V\",\"name\":\"", id);
    p = ngx_fishchat_json_escape(p, &v[0]);
    p = ngx_cpymem(p, "\",\"type\":\"", sizeof("\",\"type\":\"") - 1);
    p = ngx_fishchat_json_escape(p, &v[1]);
    p = ngx_sprintf(p, "\",\"size\":%O,\"sha256\":\"%V\",\"created\":%T,"
                    "\"expires\":%T%V}",
                    ngx_atoof(v[2].data, v[2].len), &v[3],
                    ngx_atotm(v[4].data, v[4].len) / 1000,
                    ngx_atotm(v[5].data, v[5].len), &v[6]);

    text->len = p - text->data;

    return NGX_OK;
}


/*
 * After a topic's file message (the answer of the topic's send script, a
 * sequence number when stored): the message's reference goes to the
 * file's record, whatever became of its sender
 */

void
ngx_stream_fishchat_msg_file_sent(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply)
{
    u_char                            *p;
    ngx_str_t                          args[3];
    ngx_stream_fishchat_msg_worker_t  *w;
    u_char                             ref[sizeof("topic\n\n")
                                           + NGX_FISHCHAT_ID_MAX
                                           + NGX_INT64_LEN];

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || call->to.len > NGX_FISHCHAT_ID_MAX)
    {
        return;
    }

    w = ngx_stream_fishchat_msg_worker;
    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "file:", &call->file, ":refs");
    args[1] = ngx_fishchat_key(&p, "file:", &call->file, "");
    args[2].data = ref;
    args[2].len = ngx_sprintf(ref, "topic\n%V\n%L", &call->to,
                              (int64_t) reply->integer)
                  - ref;

    if (ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), w->mmcf->file_ref,
                                ngx_stream_fishchat_msg_file_noted, NULL, 2,
                                3, args)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fishchat msg: file %V does not know of message %L of "
                      "topic \"%V\": Redis is unavailable", &call->file,
                      (int64_t) reply->integer, &call->to);
    }
}


static void
ngx_stream_fishchat_msg_file_noted(redisReply *reply, void *data)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fishchat msg: a topic message's reference was not "
                      "noted in its file's record: %s",
                      reply ? "script failed" : "Redis is unavailable");
    }
}


/* FILE_URL <file id> <get url> <info url> <thumb url> */

static void
ngx_stream_fishchat_msg_file_allowed(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_str_t                           args[4];
    ngx_uint_t                          i;
    ngx_pool_t                         *pool;
    ngx_stream_fishchat_msg_session_t  *sess;

    static char  *suffix[] = { "", "/info", "/thumb" };

    sess = call->sess;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 1)
    {
        ngx_stream_fishchat_msg_file_refused(call, reply, "no file URL");
        return;
    }

    ngx_queue_remove(&call->queue);

    pool = ngx_create_pool(1024, sess->c->log);
    if (pool == NULL) {
        goto failed;
    }

    args[0] = call->to;

    for (i = 0; i < 3; i++) {
        if (ngx_fishchat_files_get_url(pool, ngx_stream_fishchat_msg_worker
                                                 ->fcf,
                                       &call->to, suffix[i], &args[i + 1])
            != NGX_OK)
        {
            ngx_destroy_pool(pool);
            goto failed;
        }
    }

    (void) ngx_stream_fishchat_msg_reply(sess, "FILE_URL", args, 4);

    ngx_destroy_pool(pool);
    ngx_free(call);
    return;

failed:

    ngx_free(call);
    ngx_stream_fishchat_msg_close(sess);
}


/*
 * The check of a file said no, or Redis did not answer: the client is
 * told (non-fatal), the call is freed
 */

static void
ngx_stream_fishchat_msg_file_refused(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply, char *what)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, call->sess->c->log, 0,
                      "fishchat msg: file script failed: %*s",
                      (size_t) reply->len, reply->str);
    }

    ngx_stream_fishchat_msg_call_refused(call, reply, what,
                                         NGX_FISHCHAT_ERR_NO_SUCH_FILE,
                                         "the file is not the client's to "
                                         "share",
                                         "no such file, or not uploaded");
}


/*
 * A file message's frame for one client, its URL made now in *pool
 * (created here when NULL; the caller destroys it once the frame is
 * written).  "topic" is NULL for a 1:1 message.  Opt-in clients get
 *
 *     RESP_FILE_P2P <file id> <from> <uuid> <name> <type> <size> <url>
 *         <info>
 *     RESP_FILE_TOPIC <topic> <file id> <from> <uuid> <name> <type>
 *         <size> <url> <info>
 *
 * seed clients a message of the sender:
 *
 *     RESP_MESSAGE_P2P "<from> sent a file: <name> (<type>, <size>
 *         bytes) <url>" <from> <uuid>
 *     RESP_MESSAGE_TOPIC <topic> "<from> sent a file: ..." <from>
 *
 * The number of arguments in "args" (NGX_STREAM_FISHCHAT_MSG_ARGS at
 * most); 0 when "text" is not a file message's, or no URL could be made
 * (the message then goes as it was stored).
 */

ngx_uint_t
ngx_stream_fishchat_msg_file_frame(ngx_str_t *topic, ngx_str_t *uuid,
    ngx_str_t *text, ngx_uint_t optin, ngx_pool_t **pool, ngx_str_t **cmd,
    ngx_str_t *args)
{
    u_char     *p;
    size_t      size;
    ngx_str_t   url, seed, f[NGX_STREAM_FISHCHAT_FILE_FIELDS];
    ngx_uint_t  n;

    if (ngx_stream_fishchat_msg_file_split(text, f) != NGX_OK) {
        return 0;
    }

    if (*pool == NULL) {
        *pool = ngx_create_pool(1024, ngx_cycle->log);
        if (*pool == NULL) {
            return 0;
        }
    }

    if (ngx_fishchat_files_get_url(*pool, ngx_stream_fishchat_msg_worker->fcf,
                                   &f[NGX_STREAM_FISHCHAT_FILE_ID], "", &url)
        != NGX_OK)
    {
        return 0;
    }

    n = 0;

    if (optin) {
        if (topic) {
            *cmd = &ngx_stream_fishchat_msg_file_resp_topic;
            args[n++] = *topic;

        } else {
            *cmd = &ngx_stream_fishchat_msg_file_resp_p2p;
        }

        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_ID];
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_SENDER];
        args[n++] = *uuid;
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_NAME];
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_TYPE];
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_SIZE];
        args[n++] = url;
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_INFO];

        return n;
    }

    size = f[NGX_STREAM_FISHCHAT_FILE_SENDER].len
           + f[NGX_STREAM_FISHCHAT_FILE_NAME].len
           + f[NGX_STREAM_FISHCHAT_FILE_TYPE].len
           + f[NGX_STREAM_FISHCHAT_FILE_SIZE].len + url.len
           + sizeof(" sent a file:  (,  bytes) ");

    p = ngx_pnalloc(*pool, size);
    if (p == NULL) {
        return 0;
    }

    seed.data = p;
    seed.len = ngx_sprintf(p, "%V sent a file: %V (%V, %V bytes) %V",
                           &f[NGX_STREAM_FISHCHAT_FILE_SENDER],
                           &f[NGX_STREAM_FISHCHAT_FILE_NAME],
                           &f[NGX_STREAM_FISHCHAT_FILE_TYPE],
                           &f[NGX_STREAM_FISHCHAT_FILE_SIZE], &url)
               - p;

    if (topic) {
        *cmd = &ngx_stream_fishchat_msg_file_seed_topic;
        args[n++] = *topic;
        args[n++] = seed;
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_SENDER];

    } else {
        *cmd = &ngx_stream_fishchat_msg_file_seed_p2p;
        args[n++] = seed;
        args[n++] = f[NGX_STREAM_FISHCHAT_FILE_SENDER];
        args[n++] = *uuid;
    }

    return n;
}


/*
 * A 1:1 file message, a RESP_MESSAGE_P2P of "{file}" as the inbox has it,
 * becomes this session's own frame (ngx_stream_fishchat_msg_file_frame()).
 * Any other frame is told apart by its first bytes, before any decoding.
 * 1 when *frame is now an allocated frame the caller frees, 0 when the
 * frame goes as it is.
 */

ngx_uint_t
ngx_stream_fishchat_msg_file_own(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *frame)
{
    ngx_str_t             *cmd;
    ngx_str_t              args[NGX_STREAM_FISHCHAT_MSG_ARGS];
    ngx_uint_t             n, own;
    ngx_pool_t            *pool;
    ngx_fishchat_frame_t   m;

    static u_char  head[] = "{\"CmdName\":\"RESP_MESSAGE_P2P\","
                            "\"Args\":[\"FILE\\n";

    if (ngx_fishchat_frame_stored(frame, head, sizeof(head) - 1, &m)
        != NGX_OK)
    {
        return 0;
    }

    own = 0;
    pool = NULL;

    if (m.nargs != 3 || !ngx_stream_fishchat_msg_file_from(&m.args[1])) {
        goto done;
    }

    n = ngx_stream_fishchat_msg_file_frame(NULL, &m.args[2], &m.args[0],
                                           sess->optin, &pool, &cmd, args);
    if (n == 0) {
        goto done;
    }

    /* without memory, the message as it was stored is still a frame */

    own = (ngx_fishchat_frame_alloc(frame, cmd, args, n, sess->c->log)
           == NGX_OK);

done:

    if (pool) {
        ngx_destroy_pool(pool);
    }

    ngx_fishchat_frame_free(&m);

    return own;
}


/* "FILE\n" and the fields of a file message's text; NGX_ERROR: not one */

static ngx_int_t
ngx_stream_fishchat_msg_file_split(ngx_str_t *text, ngx_str_t *field)
{
    u_char      *p, *last, *nl;
    ngx_uint_t   i;

    if (text->len < sizeof("FILE\n") - 1
        || ngx_strncmp(text->data, "FILE\n", sizeof("FILE\n") - 1) != 0)
    {
        return NGX_ERROR;
    }

    p = text->data + sizeof("FILE\n") - 1;
    last = text->data + text->len;

    for (i = 0; i < NGX_STREAM_FISHCHAT_FILE_INFO; i++) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            return NGX_ERROR;
        }

        field[i].data = p;
        field[i].len = nl - p;

        p = nl + 1;
    }

    field[i].data = p;
    field[i].len = last - p;

    if (field[NGX_STREAM_FISHCHAT_FILE_ID].len != NGX_FISHCHAT_FILE_ID_LEN) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
