
/*
 * FishChat for nginx: who may log in to a msg server.
 *
 * The login rate of each client address (fishchat_msg_login_rate),
 * counted before anything else is asked; the login token of a server with
 * "fishchat_msg_auth token", checked by the core (ngx_fishchat_auth.c);
 * the end of a session when its token expires, unless REFRESH_TOKEN
 * brought a newer one; and the revocation check of a refresh.  The
 * revocation check of a login is in the login script.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_stream_fishchat_msg_private.h"


static ngx_int_t ngx_stream_fishchat_msg_login_allowed(
    ngx_stream_fishchat_msg_session_t *sess);
static ngx_stream_fishchat_msg_login_t *ngx_stream_fishchat_msg_login_entry(
    ngx_stream_fishchat_msg_limiter_t *lim, u_char *addr, size_t len);
static ngx_msec_t ngx_stream_fishchat_msg_expiry(time_t exp);
static void ngx_stream_fishchat_msg_expire(
    ngx_stream_fishchat_msg_session_t *sess, time_t exp);
static void ngx_stream_fishchat_msg_expired(ngx_event_t *ev);
static void ngx_stream_fishchat_msg_refreshed(redisReply *reply, void *data);


/* NGX_FISHCHAT_LUA_REVOKED: 1 unless the token was revoked */

char  ngx_stream_fishchat_msg_revoked_lua[] = NGX_FISHCHAT_LUA_REVOKED;


/* fishchat_msg_login_rate off | <n>r/s | <n>r/m [burst=<n>] */

char *
ngx_stream_fishchat_msg_login_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_fishchat_msg_srv_conf_t *mscf = conf;

    size_t      len;
    ngx_int_t   n, scale;
    ngx_str_t  *value;

    if (mscf->login_rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        mscf->login_rate = 0;
        mscf->login_burst = 0;
        return NGX_CONF_OK;
    }

    len = value[1].len;

    if (len > 3 && ngx_strcmp(value[1].data + len - 3, "r/s") == 0) {
        scale = 60;

    } else if (len > 3 && ngx_strcmp(value[1].data + len - 3, "r/m") == 0) {
        scale = 1;

    } else {
        return "invalid rate: \"<n>r/s\" or \"<n>r/m\" expected";
    }

    n = ngx_atoi(value[1].data, len - 3);
    if (n == NGX_ERROR || n == 0 || n > 1000000) {
        return "invalid rate";
    }

    mscf->login_rate = n * scale;
    mscf->login_burst = 1;

    return ngx_stream_fishchat_msg_burst(cf, &mscf->login_burst);
}


ngx_int_t
ngx_stream_fishchat_msg_limiter_init(ngx_stream_fishchat_msg_worker_t *w,
    ngx_log_t *log)
{
    ngx_stream_fishchat_msg_limiter_t  *lim;

    lim = ngx_pcalloc(ngx_cycle->pool,
                      sizeof(ngx_stream_fishchat_msg_limiter_t));
    if (lim == NULL) {
        return NGX_ERROR;
    }

    lim->logins = ngx_pcalloc(ngx_cycle->pool,
                              NGX_STREAM_FISHCHAT_MSG_LIMITER_SIZE
                              * sizeof(ngx_stream_fishchat_msg_login_t));
    if (lim->logins == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&lim->tree, &lim->sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&lim->lru);

    w->logins = lim;

    return NGX_OK;
}


/*
 * Before a login is tried: the rate of its address, then its token.
 * NGX_OK: go on; NGX_ERROR: refused, the session is closed.  *iat is the
 * token's "iat" for the revocation check of the login script ("" when
 * tokens are off).
 */

ngx_int_t
ngx_stream_fishchat_msg_auth_login(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m, ngx_str_t *iat)
{
    char                  *reason;
    ngx_int_t              rc;
    ngx_str_t              token;
    ngx_fishchat_token_t   t;

    iat->len = 0;

    if (sess->conf->login_rate
        && ngx_stream_fishchat_msg_login_allowed(sess) != NGX_OK)
    {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_RATE_LIMITED,
                                              1, "login of \"%V\" refused: "
                                              "too many logins from %V",
                                              &m->args[0],
                                              &sess->c->addr_text);
    }

    if (sess->conf->auth != NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN) {
        return NGX_OK;
    }

    if (m->nargs > 1) {
        token = m->args[1];

    } else {
        ngx_str_null(&token);
    }

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));

    rc = ngx_fishchat_token_verify(ngx_stream_fishchat_msg_worker->fcf,
                                   &token, &m->args[0], &t, &reason);

    if (rc != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                      rc == NGX_FISHCHAT_TOKEN_EXPIRED
                                      ? NGX_FISHCHAT_ERR_TOKEN_EXPIRED
                                      : NGX_FISHCHAT_ERR_AUTH_FAILED,
                                      1, "login of \"%V\" refused: %s",
                                      &m->args[0], reason);
    }

    iat->len = ngx_sprintf(iat->data, "%T", t.iat) - iat->data;

    ngx_stream_fishchat_msg_expire(sess, t.exp);

    if (sess->closed) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a leaky bucket an address: login_rate a minute, login_burst at once */

static ngx_int_t
ngx_stream_fishchat_msg_login_allowed(ngx_stream_fishchat_msg_session_t *sess)
{
    u_char                              *addr;
    size_t                               len;
    ngx_msec_t                           now;
    ngx_uint_t                           drained, excess;
    ngx_connection_t                    *c;
    ngx_stream_fishchat_msg_login_t     *e;
    ngx_stream_fishchat_msg_limiter_t   *lim;

    c = sess->c;
    lim = ngx_stream_fishchat_msg_worker->logins;

    switch (c->sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        addr = ((struct sockaddr_in6 *) c->sockaddr)->sin6_addr.s6_addr;
        len = 16;
        break;
#endif

    case AF_INET:
        addr = (u_char *) &((struct sockaddr_in *) c->sockaddr)->sin_addr;
        len = 4;
        break;

    default:
        /* every local (unix socket) client shares one address */
        addr = NULL;
        len = 0;
        break;
    }

    e = ngx_stream_fishchat_msg_login_entry(lim, addr, len);

    now = ngx_current_msec;

    drained = (ngx_uint_t) (now - e->last) * sess->conf->login_rate / 60;
    excess = e->excess > drained ? e->excess - drained : 0;

    e->last = now;

    if (excess + 1000 > sess->conf->login_burst * 1000) {
        e->excess = excess;
        return NGX_DECLINED;
    }

    e->excess = excess + 1000;

    return NGX_OK;
}


/* the entry of an address, made anew (the least recent one) if needed */

static ngx_stream_fishchat_msg_login_t *
ngx_stream_fishchat_msg_login_entry(ngx_stream_fishchat_msg_limiter_t *lim,
    u_char *addr, size_t len)
{
    uint32_t                          hash;
    ngx_queue_t                      *q;
    ngx_rbtree_node_t                *node, *sentinel;
    ngx_stream_fishchat_msg_login_t  *e;

    hash = ngx_crc32_short(addr ? addr : (u_char *) "", len);

    node = lim->tree.root;
    sentinel = lim->tree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        e = (ngx_stream_fishchat_msg_login_t *) node;

        if (e->len == len && ngx_memcmp(e->addr, addr, len) == 0) {
            ngx_queue_remove(&e->queue);
            ngx_queue_insert_tail(&lim->lru, &e->queue);
            return e;
        }

        node = node->right;
    }

    if (lim->used < NGX_STREAM_FISHCHAT_MSG_LIMITER_SIZE) {
        e = &lim->logins[lim->used++];

    } else {
        q = ngx_queue_head(&lim->lru);
        e = ngx_queue_data(q, ngx_stream_fishchat_msg_login_t, queue);

        ngx_queue_remove(q);
        ngx_rbtree_delete(&lim->tree, &e->node);
    }

    e->node.key = hash;
    e->len = (u_char) len;
    e->excess = 0;
    e->last = ngx_current_msec;

    if (len) {
        ngx_memcpy(e->addr, addr, len);
    }

    ngx_rbtree_insert(&lim->tree, &e->node);
    ngx_queue_insert_tail(&lim->lru, &e->queue);

    return e;
}


/* the session ends with its token, fishchat_auth_leeway after "exp" */

static ngx_msec_t
ngx_stream_fishchat_msg_expiry(time_t exp)
{
    time_t  left;

    left = exp + ngx_stream_fishchat_msg_worker->fcf->auth_leeway
           - ngx_time();

    if (left < 0) {
        left = 0;
    }

    /* timers count in ngx_msec_t: a token for years is cut to a month */

    if (left > 30 * 24 * 3600) {
        left = 30 * 24 * 3600;
    }

    return (ngx_msec_t) left * 1000;
}


static void
ngx_stream_fishchat_msg_expire(ngx_stream_fishchat_msg_session_t *sess,
    time_t exp)
{
    ngx_event_t  *ev;

    ev = sess->expiry;

    if (ev == NULL) {
        ev = ngx_pcalloc(sess->c->pool, sizeof(ngx_event_t));
        if (ev == NULL) {
            ngx_stream_fishchat_msg_close(sess);
            return;
        }

        ev->handler = ngx_stream_fishchat_msg_expired;
        ev->data = sess;
        ev->log = sess->c->log;
        ev->cancelable = 1;

        sess->expiry = ev;
    }

    ngx_add_timer(ev, ngx_stream_fishchat_msg_expiry(exp));
}


static void
ngx_stream_fishchat_msg_expired(ngx_event_t *ev)
{
    ngx_stream_fishchat_msg_session_t *sess = ev->data;

    if (sess->closed) {
        return;
    }

    (void) ngx_stream_fishchat_msg_refuse(sess,
                                          NGX_FISHCHAT_ERR_TOKEN_EXPIRED, 1,
                                          "the token of \"%V\" expired",
                                          &sess->node.str);
}


void
ngx_stream_fishchat_msg_auth_cleanup(ngx_stream_fishchat_msg_session_t *sess)
{
    if (sess->expiry && sess->expiry->timer_set) {
        ngx_del_timer(sess->expiry);
    }
}


/*
 * REFRESH_TOKEN <token>: a newer token for the same id keeps the session
 * past the old one's end, unless the id's tokens were revoked since.
 */

ngx_int_t
ngx_stream_fishchat_msg_refresh(ngx_stream_fishchat_msg_session_t *sess,
    ngx_fishchat_frame_t *m)
{
    u_char                           *p;
    char                             *reason;
    ngx_int_t                         rc;
    ngx_str_t                         args[2];
    ngx_fishchat_token_t              t;
    ngx_stream_fishchat_msg_call_t   *call;
    ngx_stream_fishchat_msg_worker_t *w;
    u_char                            iat[NGX_TIME_T_LEN];

    w = ngx_stream_fishchat_msg_worker;

    if (m->nargs != 1) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              1, "REFRESH_TOKEN takes a "
                                              "token");
    }

    if (sess->conf->auth != NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN) {
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_BAD_ARGS,
                                              0, "this server takes no "
                                              "tokens");
    }

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));

    rc = ngx_fishchat_token_verify(w->fcf, &m->args[0], &sess->node.str, &t,
                                   &reason);

    if (rc != NGX_OK) {
        return ngx_stream_fishchat_msg_refuse(sess,
                                      rc == NGX_FISHCHAT_TOKEN_EXPIRED
                                      ? NGX_FISHCHAT_ERR_TOKEN_EXPIRED
                                      : NGX_FISHCHAT_ERR_AUTH_FAILED,
                                      0, "refresh of \"%V\" refused: %s",
                                      &sess->node.str, reason);
    }

    /* a newer token only: the session never ends sooner by a refresh */

    if (sess->expiry && sess->expiry->timer_set
        && (ngx_msec_int_t) (ngx_current_msec
                             + ngx_stream_fishchat_msg_expiry(t.exp)
                             - sess->expiry->timer.key)
           < 0)
    {
        return ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_AUTH_FAILED, 0,
                                              "refresh of \"%V\" refused: "
                                              "the token ends before the "
                                              "session's", &sess->node.str);
    }

    call = ngx_stream_fishchat_msg_call(sess, sizeof(time_t));
    if (call == NULL) {
        ngx_stream_fishchat_msg_close(sess);
        return NGX_ERROR;
    }

    ngx_memcpy(call->data, &t.exp, sizeof(time_t));

    p = w->scratch;

    args[0] = ngx_fishchat_key(&p, "revoked:", &sess->node.str, "");
    args[1].data = iat;
    args[1].len = ngx_sprintf(iat, "%T", t.iat) - iat;

    call->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(),
                                        w->mmcf->revoked,
                                        ngx_stream_fishchat_msg_refreshed,
                                        call, 1, 2, args);
    if (call->req == NULL) {
        ngx_stream_fishchat_msg_call_done(call);
        return ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 0,
                                              "refresh of \"%V\" not done: "
                                              "Redis is unavailable",
                                              &sess->node.str);
    }

    return NGX_OK;
}


static void
ngx_stream_fishchat_msg_refreshed(redisReply *reply, void *data)
{
    ngx_stream_fishchat_msg_call_t *call = data;

    time_t                              exp;
    ngx_str_t                           arg;
    ngx_stream_fishchat_msg_session_t  *sess;
    u_char                              text[NGX_TIME_T_LEN];

    sess = call->sess;
    ngx_memcpy(&exp, call->data, sizeof(time_t));

    ngx_stream_fishchat_msg_call_done(call);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        (void) ngx_stream_fishchat_msg_refuse(sess, NGX_FISHCHAT_ERR_REDIS, 0,
                                              "refresh of \"%V\" not done: "
                                              "Redis is unavailable",
                                              &sess->node.str);
        return;
    }

    if (reply->integer == 0) {
        (void) ngx_stream_fishchat_msg_refuse(sess,
                                              NGX_FISHCHAT_ERR_AUTH_FAILED, 0,
                                              "refresh of \"%V\" refused: "
                                              "revoked", &sess->node.str);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, sess->c->log, 0,
                   "fishchat msg: the token of \"%V\" refreshed until %T",
                   &sess->node.str, exp);

    ngx_stream_fishchat_msg_expire(sess, exp);

    if (sess->closed) {
        return;
    }

    arg.data = text;
    arg.len = ngx_sprintf(text, "%T", exp) - text;

    (void) ngx_stream_fishchat_msg_reply(sess, "TOKEN_REFRESHED", &arg, 1);
}
