
/*
 * FishChat for nginx: going live and watching, from a chat session.
 *
 * MEDIA_PUBLISH <target> makes a stream for a conversation (a topic the
 * sender is a member of, or a peer) and answers with the RTMP URL to push
 * to, carrying a short-lived publish token; MEDIA_PLAY <stream> answers a
 * member of the conversation with the HLS URL of the stream, carrying a
 * play token.  The tokens are JWTs of ngx_fishchat_auth.c with "stream"
 * and "act"; nginx-rtmp's hooks and the HLS location check them
 * (ngx_http_fishchat_media_module.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg_private.h"


static ngx_int_t ngx_stream_fishchat_msg_media_check(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    char *cmd);
static void ngx_stream_fishchat_msg_media_answered(redisReply *reply,
    void *data);
static ngx_int_t ngx_stream_fishchat_msg_media_answer(
    ngx_stream_fishchat_msg_call_t *call, redisReply *reply);
static void ngx_stream_fishchat_msg_media_reply(
    ngx_stream_fishchat_msg_session_t *sess, char *cmd, ngx_str_t *target,
    ngx_str_t *stream, char *act);


/* see ngx_fishchat_lua.h */

char  ngx_stream_fishchat_msg_media_publish_lua[] =
    NGX_FISHCHAT_LUA_MEDIA_PUBLISH;

/*
 * KEYS: the stream.  ARGV: who asks, the key prefix.  1 when it may watch
 * the live stream, 2 its recording (a member of the topic, or either
 * peer); -1 no such stream; -2 not a party to it.
 */

char  ngx_stream_fishchat_msg_media_play_lua[] =
    "local m = redis.call('HMGET', KEYS[1], 'target', 'from', 'recording') "
    "if not m[1] then return -1 end "
    "if string.sub(m[1], 1, 6) == 'topic:' then "
        "local k = ARGV[2] .. 'topic:{' .. string.sub(m[1], 7) .. "
                  "'}:members' "
        "if redis.call('HEXISTS', k, ARGV[1]) == 0 then return -2 end "
    "elseif ARGV[1] ~= m[2] and ARGV[1] ~= string.sub(m[1], 5) then "
        "return -2 "
    "end "
    "if m[3] then return 2 end "
    "return 1";


/* MEDIA_PUBLISH topic:<name> | p2p:<id> */

ngx_int_t
ngx_stream_fishchat_msg_media_publish(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_str_t                          name, *target, stream;
    ngx_str_t                          args[NGX_FISHCHAT_MEDIA_PUBLISH_ARGS];
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;
    u_char                             now[NGX_INT64_LEN];

    rc = ngx_stream_fishchat_msg_media_check(sess, m, "MEDIA_PUBLISH");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    target = &m->args[0];

    if (ngx_fishchat_media_target(target, &name) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "MEDIA_PUBLISH takes "
                                              "topic:<name> or p2p:<id>");
    }

    call = ngx_stream_fishchat_msg_call_str(sess, target, NULL,
                                            NGX_FISHCHAT_MEDIA_STREAM_LEN, &p);
    if (call == NULL) {
        return NGX_ERROR;
    }

    /* the stream's name is the server's, never client text */

    call->ref.data = p;
    call->ref.len = NGX_FISHCHAT_MEDIA_STREAM_LEN;
    ngx_fishchat_media_stream(p);

    stream = call->ref;

    w = ngx_stream_fishchat_msg_worker;
    p = w->scratch;

    ngx_fishchat_media_publish_args(args, &p, &name, &stream, &sess->node.str,
                                    &call->to, now);

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->media_publish,
               ngx_stream_fishchat_msg_media_answered,
               NGX_FISHCHAT_MEDIA_PUBLISH_KEYS,
               NGX_FISHCHAT_MEDIA_PUBLISH_ARGS, args, "no stream made");
}


/* MEDIA_PLAY <stream> */

ngx_int_t
ngx_stream_fishchat_msg_media_play(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    ngx_int_t                          rc;
    ngx_str_t                          args[3];
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;

    rc = ngx_stream_fishchat_msg_media_check(sess, m, "MEDIA_PLAY");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_fishchat_valid_id(&m->args[0]) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "MEDIA_PLAY takes a "
                                              "stream");
    }

    call = ngx_stream_fishchat_msg_call_str(sess, &m->args[0], NULL, 0,
                                            NULL);
    if (call == NULL) {
        return NGX_ERROR;
    }

    /* the stream in call->ref; call->to stays empty: NO_SUCH_STREAM */

    call->ref = call->to;
    ngx_str_null(&call->to);

    w = ngx_stream_fishchat_msg_worker;
    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "media:", &call->ref, "");
    args[1] = sess->node.str;
    args[2] = w->fcf->redis_prefix;

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->media_play,
               ngx_stream_fishchat_msg_media_answered,
               1, 3, args, "stream not looked up");
}


/*
 * What both commands need besides an opt-in client logged in (the
 * session's dispatcher checked that): one argument, and a secret to sign
 * tokens with.  NGX_DECLINED: go on.
 */

static ngx_int_t
ngx_stream_fishchat_msg_media_check(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, char *cmd)
{
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_stream_fishchat_msg_worker->fcf;

    if (m->nargs != 1) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "%s takes one argument",
                                              cmd);
    }

    if (fcf->auth_secret.len == 0) {
        return ngx_stream_fishchat_msg_needs(sess, cmd,
                                             "\"fishchat_auth_secret_file\"");
    }

    return NGX_DECLINED;
}


/*
 * The script's answer to both commands: MEDIA_PUBLISH keeps its target in
 * call->to, MEDIA_PLAY none
 */

static void
ngx_stream_fishchat_msg_media_answered(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    if (ngx_stream_fishchat_msg_media_answer(call, reply) != NGX_OK) {
        return;
    }

    /* the call is taken off the session: a write may close the session */

    ngx_queue_remove(&call->queue);

    if (call->to.len) {
        ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                      "fishchat msg: \"%V\" may go live on stream %V for %V",
                      &sess->node.str, &call->ref, &call->to);

        ngx_stream_fishchat_msg_media_reply(sess, "MEDIA_PUBLISH", &call->to,
                                            &call->ref, "publish");

    } else {
        /* the live stream's HLS, or, once it has one, its recording */

        ngx_stream_fishchat_msg_media_reply(sess, "MEDIA_PLAY", NULL,
                                            &call->ref,
                                            reply->integer == 2 ? "vod"
                                                                : "play");
    }

    ngx_free(call);
}


/* NGX_OK: the script said yes; otherwise the client is told, the call freed */

static ngx_int_t
ngx_stream_fishchat_msg_media_answer(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply)
{
    char                *what;
    ngx_fishchat_err_e   none;

    if (reply && reply->type == REDIS_REPLY_INTEGER
        && (reply->integer == 1 || reply->integer == 2))
    {
        return NGX_OK;
    }

    if (call->to.len) {
        what = "no stream made";
        none = NGX_FISHCHAT_ERR_NO_SUCH_TOPIC;

    } else {
        what = "no stream to play";
        none = NGX_FISHCHAT_ERR_NO_SUCH_STREAM;
    }

    ngx_stream_fishchat_msg_call_refused(call, reply, what, none,
                                         "not a member of the conversation",
                                         "it does not exist");
    return NGX_ERROR;
}


/*
 * MEDIA_PUBLISH <target> <stream> <rtmp url>/<stream>?token=<t> <expires>
 * MEDIA_PLAY <stream> <hls url>/<t>/<stream>.m3u8 <expires>, or
 * MEDIA_PLAY <stream> <vod url>/<t>/<stream>.mp4 <expires> ("vod": once
 * the stream's recording is ready)
 */

static void
ngx_stream_fishchat_msg_media_reply(ngx_stream_fishchat_msg_session_t *sess,
    char *cmd, ngx_str_t *target, ngx_str_t *stream, char *act)
{
    time_t                exp;
    ngx_str_t             args[4], url;
    ngx_uint_t            n;
    ngx_pool_t           *pool;
    ngx_fishchat_conf_t  *fcf;
    u_char                expires[NGX_TIME_T_LEN];

    fcf = ngx_stream_fishchat_msg_worker->fcf;

    pool = ngx_create_pool(1024, sess->c->log);
    if (pool == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return;
    }

    switch (ngx_fishchat_media_url(pool, fcf, &sess->node.str, stream, act,
                                   &url, &exp))
    {
    case NGX_OK:
        break;

    case NGX_ABORT:
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              0, "%s: the id is too long "
                                              "for an RTMP URL's token "
                                              "(nginx-rtmp passes 255 bytes)",
                                              cmd);
        goto done;

    case NGX_DECLINED:
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                              0, "%s: no token could be "
                                              "signed", cmd);
        goto done;

    default:
        ngx_stream_fishchat_msg_close(sess);
        goto done;
    }

    n = 0;

    if (target) {
        args[n++] = *target;
    }

    args[n++] = *stream;
    args[n++] = url;

    args[n].data = expires;
    args[n].len = ngx_sprintf(expires, "%T", exp) - expires;
    n++;

    (void) ngx_stream_fishchat_msg_reply(sess, cmd, args, n);

done:

    ngx_destroy_pool(pool);
}


/*
 * The first line of a live notice's text, "<CMD> <target> <stream> <from>
 * <url or seconds>" (MEDIA_LIVE, MEDIA_ENDED) or "MEDIA_RECORDING <target>
 * <stream> <from> <url> <seconds> <bytes>", split into "word"; "rest" is
 * what follows the newline: the text for seed clients.  The number of
 * words, or 0 for a text of another shape.
 */

ngx_uint_t
ngx_stream_fishchat_msg_media_words(ngx_str_t *text, ngx_str_t *word,
    ngx_str_t *rest)
{
    u_char      *p, *nl, *last;
    ngx_uint_t   n;

    nl = ngx_strlchr(text->data, text->data + text->len, '\n');
    if (nl == NULL) {
        return 0;
    }

    p = text->data;
    n = 0;

    while (p < nl && n < NGX_STREAM_FISHCHAT_MEDIA_WORDS) {
        last = ngx_strlchr(p, nl, ' ');
        if (last == NULL) {
            last = nl;
        }

        word[n].data = p;
        word[n].len = last - p;
        n++;

        p = last + 1;
    }

    if (p < nl || (n != 5 && n != NGX_STREAM_FISHCHAT_MEDIA_WORDS)) {
        return 0;
    }

    rest->data = nl + 1;
    rest->len = text->data + text->len - (nl + 1);

    return n;
}


/*
 * A 1:1 live notice, a RESP_MESSAGE_P2P of "{media}" that the media
 * role's hooks stored in the inbox, becomes this session's own frame: the
 * notice's words and then the uuid to acknowledge (P2P_ACK) for opt-in
 * clients; the text as a message of the publisher for seed clients.  The
 * common frame is told apart by its first bytes, before any decoding.
 * A file message is the business of ngx_stream_fishchat_msg_file_own().
 * 1 when *frame is now an allocated frame the caller frees, 0 when the
 * frame goes as it is.
 */

ngx_uint_t
ngx_stream_fishchat_msg_media_own(ngx_stream_fishchat_msg_session_t *sess,
    ngx_str_t *frame)
{
    ngx_int_t              rc;
    ngx_str_t              rest, *cmd;
    ngx_str_t              args[NGX_STREAM_FISHCHAT_MEDIA_WORDS];
    ngx_str_t              word[NGX_STREAM_FISHCHAT_MEDIA_WORDS];
    ngx_uint_t             i, n, own;
    ngx_fishchat_frame_t   m;

    static u_char     head[] = "{\"CmdName\":\"RESP_MESSAGE_P2P\","
                               "\"Args\":[\"MEDIA_";
    static ngx_str_t  resp = ngx_string("RESP_MESSAGE_P2P");

    rc = ngx_fishchat_frame_stored(frame, head, sizeof(head) - 1, &m);

    if (rc == NGX_DECLINED) {
        return ngx_stream_fishchat_msg_file_own(sess, frame);
    }

    if (rc != NGX_OK) {
        return 0;
    }

    own = 0;

    if (m.nargs != 3 || !ngx_stream_fishchat_msg_media_from(&m.args[1])) {
        goto done;
    }

    n = ngx_stream_fishchat_msg_media_words(&m.args[0], word, &rest);
    if (n == 0) {
        goto done;
    }

    if (sess->optin) {
        cmd = &word[0];

        for (i = 1; i < n; i++) {
            args[i - 1] = word[i];
        }

        args[n - 1] = m.args[2];

    } else {
        cmd = &resp;
        args[0] = rest;
        args[1] = word[3];
        args[2] = m.args[2];
        n = 3;
    }

    /* without memory, the notice as it was stored is still a frame */

    own = (ngx_fishchat_frame_alloc(frame, cmd, args, n, sess->c->log)
           == NGX_OK);

done:

    ngx_fishchat_frame_free(&m);

    return own;
}
