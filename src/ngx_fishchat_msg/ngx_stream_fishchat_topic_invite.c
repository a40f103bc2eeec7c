
/*
 * FishChat for nginx: members added and removed by a topic's creator.
 *
 * TOPIC_INVITE <name> <id> and TOPIC_REMOVE <name> <id> (opt-in clients)
 * do what the manager's PUT and DELETE /topics/{name}/members/{id} do:
 * the member's topic list and its live session follow at once.  They are
 * how a private topic (CREATE_TOPIC <name> private) gets its members.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg_private.h"
#include "ngx_stream_fishchat_topic.h"


static void ngx_stream_fishchat_topic_invited(redisReply *reply, void *data);


ngx_int_t
ngx_stream_fishchat_topic_invite(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, ngx_uint_t invite)
{
    u_char                             *p;
    ngx_int_t                           rc;
    ngx_str_t                           args[6];
    ngx_stream_fishchat_msg_call_t     *call;
    ngx_stream_fishchat_msg_worker_t   *w;
    ngx_stream_fishchat_topic_conf_t   *tcf;
    char                               *cmd;

    cmd = invite ? "TOPIC_INVITE" : "TOPIC_REMOVE";

    if (m->nargs == 2 && ngx_fishchat_valid_id(&m->args[1]) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "%s takes a topic and a "
                                              "client id", cmd);
    }

    rc = ngx_stream_fishchat_topic_start(sess, m, cmd, 2, 2, 0, &call, args);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the member's id after the topic's name, in the call */

    p = ngx_alloc(call->to.len + m->args[1].len, sess->c->log);
    if (p == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    ngx_memcpy(p, call->to.data, call->to.len);
    ngx_memcpy(p + call->to.len, m->args[1].data, m->args[1].len);

    call->frame.data = p;
    call->frame.len = call->to.len + m->args[1].len;
    call->ref.data = p + call->to.len;
    call->ref.len = m->args[1].len;
    call->resync = invite;

    w = ngx_stream_fishchat_msg_worker;
    tcf = w->topics->conf;

    args[2] = call->ref;
    args[3] = w->fcf->sys[NGX_FISHCHAT_SYS_TOPIC_STATUS];
    args[4] = call->to;
    args[5] = sess->node.str;       /* must be the creator */

    return ngx_stream_fishchat_topic_call(call,
                                          invite ? tcf->join : tcf->leave,
                                          ngx_stream_fishchat_topic_invited,
                                          2, 6, args, NULL);
}


static void
ngx_stream_fishchat_topic_invited(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    u_char                             *p;
    ngx_str_t                           args[6];
    ngx_uint_t                          invite;
    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_worker_t   *w;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;
    invite = call->resync;
    w = ngx_stream_fishchat_msg_worker;

    /* the call is taken off the session: a write may close the session */

    ngx_queue_remove(&call->queue);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 0,
                                              "members of \"%V\" not "
                                              "changed: Redis is "
                                              "unavailable", &call->to);
        goto done;
    }

    if (reply->integer != 1) {
        switch (reply->integer) {

        case -1:
            err = NGX_FISHCHAT_ERR_NO_SUCH_TOPIC;
            break;

        case -3:
            err = NGX_FISHCHAT_ERR_FORBIDDEN;
            break;

        default:
            err = NGX_FISHCHAT_ERR_NOT_MEMBER;
            break;
        }

        (void) ngx_stream_fishchat_msg_refuse(sess, err, 0,
                                              "members of \"%V\" not "
                                              "changed: %s", &call->to,
                                              err == NGX_FISHCHAT_ERR_FORBIDDEN
                                              ? "only the topic's creator "
                                                "adds and removes members"
                                              : err
                                                == NGX_FISHCHAT_ERR_NOT_MEMBER
                                              ? "not a member"
                                              : "no such topic");
        goto done;
    }

    /* the member's topic list, and its session wherever it is */

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "client:", &call->ref, "");
    args[1] = ngx_fishchat_key(&p, "client:", &call->ref, ":topics");
    ngx_str_set(&args[2], "SADD");
    args[3] = call->to;
    ngx_str_set(&args[4], "J");
    args[5] = call->ref;

    if (!invite) {
        ngx_str_set(&args[2], "SREM");
        ngx_str_set(&args[4], "L");
    }

    (void) ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                   w->topics->conf->client_topic, NULL, NULL,
                                   2, 6, args);

    args[0] = call->to;
    args[1] = call->ref;

    (void) ngx_stream_fishchat_msg_reply(sess,
                                         invite ? "TOPIC_INVITED"
                                                : "TOPIC_REMOVED",
                                         args, 2);

done:

    ngx_free(call->frame.data);
    ngx_free(call);
}
