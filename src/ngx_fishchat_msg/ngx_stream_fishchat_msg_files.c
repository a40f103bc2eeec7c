
/*
 * FishChat for nginx: files, from a chat session.
 *
 * FILE_SLOT <name> <size> <content-type> makes an upload slot: a file id
 * of 16 random bytes, its record in Redis (counted against the id's
 * quota), and the answer FILE_SLOT <id> <put url> <get url> <expires>
 * whose PUT URL is signed (ngx_fishchat_files_sig) for that id, size,
 * type and expiry: the slot is made as the manager's POST /files/slots
 * makes it (ngx_fishchat_files.c).  The files location takes the upload
 * (ngx_http_fishchat_files_module.c).  FILE_DELETE <file id> deletes one
 * of the client's files (NGX_FISHCHAT_LUA_FILE_DELETE).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg_private.h"


static ngx_int_t ngx_stream_fishchat_msg_file_args(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    ngx_fishchat_files_slot_t *slot);
static void ngx_stream_fishchat_msg_file_made(redisReply *reply,
    void *data);
static void ngx_stream_fishchat_msg_file_deleted(redisReply *reply,
    void *data);
static void ngx_stream_fishchat_msg_file_answer(
    ngx_stream_fishchat_msg_call_t *call, char *what);


static ngx_str_t  ngx_stream_fishchat_msg_file = ngx_string("FILE_SLOT");
static ngx_str_t  ngx_stream_fishchat_msg_file_del = ngx_string("FILE_DELETE");


/* NGX_FISHCHAT_LUA_FILE_SLOT: 1 made; -1 over the quota; 0 id taken */

char  ngx_stream_fishchat_msg_file_slot_lua[] = NGX_FISHCHAT_LUA_FILE_SLOT;

/* NGX_FISHCHAT_LUA_FILE_DELETE: 1 gone; 0 none; -1 another's; -2 busy */

char  ngx_stream_fishchat_msg_file_delete_lua[] =
    NGX_FISHCHAT_LUA_FILE_DELETE;


/* FILE_SLOT <name> <size> <content-type> */

ngx_int_t
ngx_stream_fishchat_msg_file_slot(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    size_t                             len;
    ngx_int_t                          rc;
    ngx_str_t                          args[4];
    ngx_fishchat_conf_t               *fcf;
    ngx_fishchat_files_slot_t          slot;
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;

    w = ngx_stream_fishchat_msg_worker;
    fcf = w->fcf;

    rc = ngx_stream_fishchat_msg_file_args(sess, m, &slot);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    /*
     * the id and the URLs, then the answer, made now and sent once Redis
     * has the slot: its arguments escaped take 6 times more
     */

    len = ngx_fishchat_files_slot_len(fcf);

    call = ngx_stream_fishchat_msg_call(sess, len + 6 * len + 64);
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    slot.owner = sess->node.str;
    p = w->scratch;

    if (ngx_fishchat_files_slot_make(fcf, &slot, call->data, &p) != NGX_OK) {
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
                                              0, "FILE_SLOT: no slot could "
                                              "be signed");
    }

    call->to = slot.id;

    args[0] = slot.id;
    args[1] = slot.put_url;
    args[2] = slot.get_url;
    args[3] = slot.exp;

    call->ref.data = call->data + len;
    call->ref.len = ngx_fishchat_frame_write(call->ref.data,
                                             &ngx_stream_fishchat_msg_file,
                                             args, 4)
                    - call->ref.data;

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->file_slot,
                                             ngx_stream_fishchat_msg_file_made,
                                             NGX_FISHCHAT_FILES_SLOT_KEYS,
                                             NGX_FISHCHAT_FILES_SLOT_ARGS,
                                             slot.args, "no slot made");
}


/*
 * The arguments of FILE_SLOT, checked by ngx_fishchat_files_slot_check()
 * into "slot".  NGX_DECLINED: go on; otherwise the client was answered.
 */

static ngx_int_t
ngx_stream_fishchat_msg_file_args(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, ngx_fishchat_files_slot_t *slot)
{
    ngx_int_t             rc;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_stream_fishchat_msg_worker->fcf;

    if (fcf->files_url.len == 0 || fcf->auth_secret.len == 0) {
        return ngx_stream_fishchat_msg_needs(sess, "FILE_SLOT",
                                             "\"fishchat_files_url\" and "
                                             "\"fishchat_auth_secret_file\"");
    }

    if (m->nargs != 3) {
        goto bad;
    }

    slot->name = m->args[0];
    slot->size = ngx_atoof(m->args[1].data, m->args[1].len);
    slot->type = m->args[2];

    rc = ngx_fishchat_files_slot_check(fcf, slot);

    if (rc == NGX_ABORT) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_FILE_TOO_LARGE,
                                              0, "%O", fcf->files_max_size);
    }

    if (rc == NGX_OK) {
        return NGX_DECLINED;
    }

bad:

    return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS, 1,
                                          "FILE_SLOT takes a name (no "
                                          "control characters or \"/\"), a "
                                          "size in bytes and a type/subtype");
}


static void
ngx_stream_fishchat_msg_file_made(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        ngx_stream_fishchat_msg_file_answer(call, "has an upload slot for");
        return;
    }

    err = (reply && reply->type == REDIS_REPLY_INTEGER
           && reply->integer == -1)
          ? NGX_FISHCHAT_ERR_QUOTA_EXCEEDED : NGX_FISHCHAT_ERR_REDIS;

    ngx_stream_fishchat_msg_call_done(call);

    (void) ngx_stream_fishchat_msg_refuse(sess, err, 0, "no slot made: %s",
                                          err == NGX_FISHCHAT_ERR_REDIS
                                          ? "Redis is unavailable"
                                          : "the files would pass "
                                            "\"fishchat_files_quota\"");
}


/*
 * FILE_DELETE <file id>: the owner deletes a file (or a slot), answered
 * with FILE_DELETE <file id>; NO_SUCH_FILE, FORBIDDEN (another's file) or
 * FILE_BUSY (an upload of it is under way) otherwise, all non-fatal
 */

ngx_int_t
ngx_stream_fishchat_msg_file_delete(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                            *p;
    ngx_str_t                          args[4];
    ngx_stream_fishchat_msg_call_t    *call;
    ngx_stream_fishchat_msg_worker_t  *w;

    w = ngx_stream_fishchat_msg_worker;

    if (m->nargs != 1 || ngx_fishchat_valid_id(&m->args[0]) != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "FILE_DELETE takes a file "
                                              "id");
    }

    /* the id, then the answer: its argument escaped takes 6 times more */

    call = ngx_stream_fishchat_msg_call_str(sess, &m->args[0], NULL,
                                            6 * m->args[0].len + 64, &p);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->ref.data = p;
    call->ref.len = ngx_fishchat_frame_write(p,
                                             &ngx_stream_fishchat_msg_file_del,
                                             &call->to, 1)
                    - p;

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "file:", &call->to, "");
    args[1] = call->to;
    args[2] = sess->node.str;
    args[3] = w->fcf->redis_prefix;

    return ngx_stream_fishchat_msg_call_eval(call, w->mmcf->file_delete,
                                          ngx_stream_fishchat_msg_file_deleted,
                                          1, 4, args, "no file deleted");
}


static void
ngx_stream_fishchat_msg_file_deleted(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    ngx_int_t                           n;
    ngx_str_t                           id;
    ngx_fishchat_err_e                  err;
    ngx_stream_fishchat_msg_session_t  *sess;
    u_char                              fid[NGX_FISHCHAT_ID_MAX];

    sess = call->sess;

    n = (reply && reply->type == REDIS_REPLY_INTEGER) ? reply->integer : -3;

    if (n == 1) {
        ngx_stream_fishchat_msg_file_answer(call, "deleted");
        return;
    }

    switch (n) {

    case 0:
        err = NGX_FISHCHAT_ERR_NO_SUCH_FILE;
        break;

    case -1:
        err = NGX_FISHCHAT_ERR_FORBIDDEN;
        break;

    case -2:
        err = NGX_FISHCHAT_ERR_FILE_BUSY;
        break;

    default:
        err = NGX_FISHCHAT_ERR_REDIS;
    }

    /* the call goes first: a refusal may close the session */

    id.data = fid;
    id.len = ngx_min(call->to.len, NGX_FISHCHAT_ID_MAX);
    ngx_memcpy(fid, call->to.data, id.len);

    ngx_stream_fishchat_msg_call_done(call);

    (void) ngx_stream_fishchat_msg_refuse(sess, err, 0,
                                          "FILE_DELETE %V: %s", &id,
                                          n == 0 ? "no such file"
                                          : n == -1 ? "not the owner's"
                                          : n == -2 ? "an upload of it is "
                                                      "under way"
                                          : "Redis is unavailable");
}


/* the call's answer (call->ref) goes to its session; "what" is logged */

static void
ngx_stream_fishchat_msg_file_answer(ngx_stream_fishchat_msg_call_t *call,
    char *what)
{
    ngx_stream_fishchat_msg_session_t  *sess;

    sess = call->sess;

    ngx_log_error(NGX_LOG_INFO, sess->c->log, 0,
                  "fishchat msg: \"%V\" %s file %V", &sess->node.str, what,
                  &call->to);

    /* the call is taken off the session: a write may close the session */

    ngx_queue_remove(&call->queue);

    if (ngx_stream_fishchat_msg_write(sess, call->ref.data, call->ref.len)
        == NGX_OK)
    {
        sess->counters->frames_out++;
    }

    ngx_free(call);
}
