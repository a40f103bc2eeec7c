
/*
 * FishChat for nginx: the collector of the files role (docs/files.md,
 * "Lifecycle").
 *
 * Every fishchat_files_collect, each worker of each node tries to take
 * the collector's lock in Redis ({files}:gc); the one that has it makes a
 * pass of at most NGX_HTTP_FISHCHAT_FILES_BATCH files and contents:
 *
 *   - each file whose record expired ({files}:expiry) is judged by one
 *     script: kept on while a message of an inbox or a topic's history
 *     still carries it (file:{<id>}:refs), removed otherwise (its owner's
 *     quota, its content's count); a slot never uploaded is forgotten and
 *     the partial file of a resumable upload removed;
 *   - each content no record names any more ({files}:unlink) is taken off
 *     the disk: renamed aside first, asked once more (an upload of the
 *     same bytes may have counted it meanwhile: then it is put back),
 *     then unlinked with its thumbnail.
 *
 * Redis is asked one thing at a time and nothing waits: the pass is a
 * chain of callbacks on the worker's event loop.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_fishchat.h"
#include "ngx_fishchat_lua.h"
#include "ngx_http_fishchat_files.h"


#define NGX_HTTP_FISHCHAT_FILES_BATCH  100

/*
 * how long a file carried by a live message is kept before it is asked
 * again: fishchat_files_ttl, at most a day
 */
#define NGX_HTTP_FISHCHAT_FILES_KEEP   86400


typedef struct {
    ngx_pool_t                           *pool;
    ngx_http_fishchat_files_loc_conf_t   *flcf;
    redisReply                           *ids;       /* copied: strings */
    ngx_array_t                           work;      /* ngx_str_t */
    ngx_uint_t                            next;
    ngx_uint_t                            nids;      /* the first of work */
    ngx_str_t                             sha;
    ngx_uint_t                            removed;
    ngx_fishchat_redis_req_t             *req;
} ngx_http_fishchat_files_pass_t;


static void ngx_http_fishchat_files_collect_timer(ngx_event_t *ev);
static void ngx_http_fishchat_files_listed(redisReply *reply, void *data);
static void ngx_http_fishchat_files_next(ngx_http_fishchat_files_pass_t *pass);
static void ngx_http_fishchat_files_judged(redisReply *reply, void *data);
static void ngx_http_fishchat_files_taken(redisReply *reply, void *data);
static void ngx_http_fishchat_files_rechecked(redisReply *reply, void *data);
static ngx_int_t ngx_http_fishchat_files_aside(
    ngx_http_fishchat_files_pass_t *pass, ngx_uint_t back, ngx_uint_t drop);
static void ngx_http_fishchat_files_pass_end(
    ngx_http_fishchat_files_pass_t *pass);
static ngx_int_t ngx_http_fishchat_files_pass_eval(
    ngx_http_fishchat_files_pass_t *pass, ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt done, ngx_uint_t nkeys, ngx_uint_t nargs,
    ngx_str_t *args);


/*
 * KEYS: the lock, the expiries, the contents to unlink.  ARGV: this
 * worker's name, the lock's life (ms), now (Unix s), the batch.  nil when
 * another worker collects; otherwise the expired ids and the contents to
 * unlink, in one list, the count of ids first.
 */

char  ngx_http_fishchat_files_list_lua[] =
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
        "return nil "
    "end "
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], "
                           "'LIMIT', 0, ARGV[4]) "
    "local out = { #ids } "
    "for _, id in ipairs(ids) do out[#out + 1] = id end "
    "for _, sha in ipairs(redis.call('SRANDMEMBER', KEYS[3], ARGV[4])) do "
        "out[#out + 1] = sha "
    "end "
    "return out";

/*
 * KEYS: the file.  ARGV: the key prefix, the file id, now, how long to
 * keep a file a live message carries.  "gone" (no record: the partial
 * file of a resumable upload goes), "kept", "wait" (an upload under way,
 * or a slot whose record still lives: asked again when it ends), "slot"
 * (a slot or a partial upload forgotten: its partial file goes),
 * "removed" (as NGX_FISHCHAT_LUA_FILE_DELETE removes a file).
 */

char  ngx_http_fishchat_files_judge_lua[] =
    "local P, K, id = ARGV[1], KEYS[1], ARGV[2] "
    "local due = P .. '{files}:expiry' "
    "local f = redis.call('HMGET', K, 'owner', 'state', 'size', 'sha256', "
                         "'expires') "
    "if not f[1] then "
        "redis.call('ZREM', due, id) "
        "return 'gone' "
    "end "
    "local now = tonumber(ARGV[3]) "
    "if f[2] == 'uploading' and tonumber(f[5]) + 86400 > now then "
        "redis.call('ZADD', due, now + 3600, id) "
        "return 'wait' "
    "end "
    "if f[2] == 'slot' or f[2] == 'partial' then "
        "local ttl = redis.call('TTL', K) "
        "if ttl > 0 then "
            "redis.call('ZADD', due, now + ttl, id) "
            "return 'wait' "
        "end "
    "end "
    "if f[2] == 'ready' then "
        "for _, ref in ipairs(redis.call('SMEMBERS', K .. ':refs')) do "
            "local kind, a, b = string.match(ref, "
                                            "'^(%w+)\\n([^\\n]+)\\n(.+)$') "
            "local live = false "
            "if kind == 'p2p' then "
                "live = redis.call('HEXISTS', P .. 'inbox:{' .. a .. '}:m', "
                                  "b) == 1 "
            "elseif kind == 'topic' then "
                "local t = P .. 'topic:{' .. a .. '}' "
                "local seq = tonumber(redis.call('HGET', t, 'seq') or '0') "
                "live = seq > 0 "
                       "and tonumber(b) > seq - redis.call('LLEN', t .. ':h') "
            "end "
            "if live then "
                "redis.call('ZADD', due, now + ARGV[4], id) "
                "redis.call('HSET', K, 'expires', now + ARGV[4]) "
                "return 'kept' "
            "end "
            "redis.call('SREM', K .. ':refs', ref) "
        "end "
    "end "
    NGX_FISHCHAT_LUA_FILE_DROP
    "if f[2] == 'ready' then return 'removed' end "
    "return 'slot'";

/*
 * KEYS: the content's count, the contents to unlink.  ARGV: the sha256.
 * 1: nothing names it, it may go; 0: counted again, it stays.
 */

char  ngx_http_fishchat_files_take_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then "
        "redis.call('SREM', KEYS[2], ARGV[1]) "
        "return 0 "
    "end "
    "return 1";

/* the same, once the content is aside; 1: it is out of the set too */

char  ngx_http_fishchat_files_recheck_lua[] =
    "redis.call('SREM', KEYS[2], ARGV[1]) "
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
    "return 1";


static ngx_http_fishchat_files_pass_t  *ngx_http_fishchat_files_pass;
static ngx_event_t                      ngx_http_fishchat_files_collector;


/* init_process: the timer, first fired within a period */

ngx_int_t
ngx_http_fishchat_files_collect_init(ngx_cycle_t *cycle,
    ngx_http_fishchat_files_loc_conf_t *flcf)
{
    ngx_event_t          *ev;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf(cycle);

    if (flcf == NULL || flcf->collect == 0 || fcf == NULL
        || fcf->redis == NULL)
    {
        return NGX_OK;
    }

    if (ngx_fishchat_redis_start(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ev = &ngx_http_fishchat_files_collector;

    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_http_fishchat_files_collect_timer;
    ev->data = flcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, 1000 + (ngx_random() % flcf->collect));

    return NGX_OK;
}


void
ngx_http_fishchat_files_collect_exit(void)
{
    ngx_http_fishchat_files_pass_t  *pass;

    pass = ngx_http_fishchat_files_pass;

    if (pass) {
        if (pass->req) {
            ngx_fishchat_redis_cancel(pass->req);
        }

        ngx_destroy_pool(pass->pool);
        ngx_http_fishchat_files_pass = NULL;
    }

    if (ngx_http_fishchat_files_collector.timer_set) {
        ngx_del_timer(&ngx_http_fishchat_files_collector);
    }
}


static void
ngx_http_fishchat_files_collect_timer(ngx_event_t *ev)
{
    u_char                              *p;
    ngx_str_t                            args[7], files;
    ngx_pool_t                          *pool;
    ngx_fishchat_conf_t                 *fcf;
    ngx_http_fishchat_files_pass_t      *pass;
    ngx_http_fishchat_files_loc_conf_t  *flcf;

    flcf = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, flcf->collect);

    if (ngx_http_fishchat_files_pass
        || !ngx_fishchat_redis_up(ngx_fishchat_redis_link()))
    {
        return;
    }

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    pool = ngx_create_pool(4096, ev->log);
    if (pool == NULL) {
        return;
    }

    pass = ngx_pcalloc(pool, sizeof(ngx_http_fishchat_files_pass_t));
    p = ngx_pnalloc(pool, 3 * fcf->redis_prefix.len + 128 + fcf->name.len
                          + 4 * NGX_INT64_LEN);

    if (pass == NULL || p == NULL
        || ngx_array_init(&pass->work, pool, 16, sizeof(ngx_str_t)) != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return;
    }

    pass->pool = pool;
    pass->flcf = flcf;

    ngx_str_set(&files, "files");

    args[0] = ngx_fishchat_key(&p, "", &files, ":gc");
    args[1] = ngx_fishchat_key(&p, "", &files, ":expiry");
    args[2] = ngx_fishchat_key(&p, "", &files, ":unlink");

    args[3].data = p;
    p = ngx_sprintf(p, "%V:%P", &fcf->name, ngx_pid);
    args[3].len = p - args[3].data;

    args[4].data = p;
    p = ngx_sprintf(p, "%M", flcf->collect);
    args[4].len = p - args[4].data;

    args[5].data = p;
    p = ngx_sprintf(p, "%T", ngx_time());
    args[5].len = p - args[5].data;

    args[6].data = p;
    p = ngx_sprintf(p, "%d", NGX_HTTP_FISHCHAT_FILES_BATCH);
    args[6].len = p - args[6].data;

    ngx_http_fishchat_files_pass = pass;

    if (ngx_http_fishchat_files_pass_eval(pass, flcf->list,
                                          ngx_http_fishchat_files_listed, 3, 7,
                                          args)
        != NGX_OK)
    {
        ngx_http_fishchat_files_pass_end(pass);
    }
}


/* the lock and the work, or another worker's turn */

static void
ngx_http_fishchat_files_listed(redisReply *reply, void *data)
{
    ngx_http_fishchat_files_pass_t *pass = data;

    size_t       i;
    ngx_str_t   *s;
    redisReply  *e;

    pass->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        /* nil: another worker collects */
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    pass->nids = (ngx_uint_t) reply->element[0]->integer;

    for (i = 1; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        s = ngx_array_push(&pass->work);
        if (s == NULL) {
            ngx_http_fishchat_files_pass_end(pass);
            return;
        }

        s->len = e->len;
        s->data = ngx_pnalloc(pass->pool, e->len);

        if (s->data == NULL) {
            ngx_http_fishchat_files_pass_end(pass);
            return;
        }

        ngx_memcpy(s->data, e->str, e->len);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fishchat files: collecting %ui expired files, %ui "
                   "contents", pass->nids, pass->work.nelts - pass->nids);

    ngx_http_fishchat_files_next(pass);
}


/* the next expired file, then the next content; the end of the pass */

static void
ngx_http_fishchat_files_next(ngx_http_fishchat_files_pass_t *pass)
{
    u_char                *p;
    ngx_str_t              args[5], files, *w;
    ngx_uint_t             n;
    ngx_fishchat_conf_t   *fcf;
    u_char                 now[NGX_TIME_T_LEN], keep[NGX_INT_T_LEN];

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    n = pass->next++;

    if (n >= pass->work.nelts) {
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    w = pass->work.elts;

    p = ngx_pnalloc(pass->pool, 6 * fcf->redis_prefix.len + 2 * w[n].len
                                + 128);
    if (p == NULL) {
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    ngx_str_set(&files, "files");

    if (n < pass->nids) {
        args[0] = ngx_fishchat_key(&p, "file:", &w[n], "");
        args[1] = fcf->redis_prefix;
        args[2] = w[n];
        args[3].data = now;
        args[3].len = ngx_sprintf(now, "%T", ngx_time()) - now;
        args[4].data = keep;
        args[4].len = ngx_sprintf(keep, "%T",
                                  ngx_min(fcf->files_ttl,
                                          NGX_HTTP_FISHCHAT_FILES_KEEP))
                      - keep;

        if (ngx_http_fishchat_files_pass_eval(pass, pass->flcf->judge,
                                              ngx_http_fishchat_files_judged,
                                              1, 5, args)
            != NGX_OK)
        {
            ngx_http_fishchat_files_pass_end(pass);
        }

        return;
    }

    /* a content: only hex of the right length names a file of the store */

    pass->sha = w[n];

    if (!ngx_http_fishchat_files_is_sha(&pass->sha)) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fishchat files: \"%V\" in the contents to unlink is "
                      "not a sha256: ignored", &pass->sha);
        ngx_http_fishchat_files_next(pass);
        return;
    }

    args[0] = ngx_fishchat_key(&p, "blob:", &pass->sha, "");
    args[1] = ngx_fishchat_key(&p, "", &files, ":unlink");
    args[2] = pass->sha;

    if (ngx_http_fishchat_files_pass_eval(pass, pass->flcf->take,
                                          ngx_http_fishchat_files_taken, 2, 3,
                                          args)
        != NGX_OK)
    {
        ngx_http_fishchat_files_pass_end(pass);
    }
}


static void
ngx_http_fishchat_files_judged(redisReply *reply, void *data)
{
    ngx_http_fishchat_files_pass_t *pass = data;

    ngx_str_t  *w, path;

    pass->req = NULL;

    if (reply == NULL || (reply->type != REDIS_REPLY_STRING
                          && reply->type != REDIS_REPLY_STATUS))
    {
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    w = pass->work.elts;
    w = &w[pass->next - 1];

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fishchat files: expired file %V: %*s", w,
                   reply->len, reply->str);

    if (reply->len == 7 && ngx_strncmp(reply->str, "removed", 7) == 0) {
        pass->removed++;

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat files: file %V expired and no message "
                      "carries it: removed", w);

    } else if (reply->len == 4 && ngx_strncmp(reply->str, "kept", 4) == 0) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat files: file %V is carried by a message: "
                      "kept", w);

    } else if (reply->len == 4
               && (ngx_strncmp(reply->str, "slot", 4) == 0
                   || ngx_strncmp(reply->str, "gone", 4) == 0))
    {

        /* the partial file of a resumable upload, if any */

        path.len = pass->flcf->store.len + w->len + sizeof("/.partial/");
        path.data = ngx_pnalloc(pass->pool, path.len);

        if (path.data) {
            ngx_sprintf(path.data, "%V/.partial/%V%Z", &pass->flcf->store, w);

            if (ngx_delete_file(path.data) != NGX_FILE_ERROR) {
                ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                              "fishchat files: the unfinished upload of "
                              "file %V is past its slot: removed", w);

            } else if (ngx_errno != NGX_ENOENT) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                              ngx_delete_file_n " \"%s\" failed", path.data);
            }
        }
    }

    ngx_http_fishchat_files_next(pass);
}


/* a content nothing names: aside, then asked again */

static void
ngx_http_fishchat_files_taken(redisReply *reply, void *data)
{
    ngx_http_fishchat_files_pass_t *pass = data;

    u_char               *p;
    ngx_str_t             args[3], files;
    ngx_fishchat_conf_t  *fcf;

    pass->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    if (reply->integer == 0) {
        ngx_http_fishchat_files_next(pass);
        return;
    }

    /*
     * aside; a content that is not on this store (gone already) is asked
     * about all the same, so that Redis forgets it
     */

    (void) ngx_http_fishchat_files_aside(pass, 0, 0);

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    p = ngx_pnalloc(pass->pool, 2 * fcf->redis_prefix.len + pass->sha.len
                                + 64);
    if (p == NULL) {
        (void) ngx_http_fishchat_files_aside(pass, 1, 0);
        ngx_http_fishchat_files_pass_end(pass);
        return;
    }

    ngx_str_set(&files, "files");

    args[0] = ngx_fishchat_key(&p, "blob:", &pass->sha, "");
    args[1] = ngx_fishchat_key(&p, "", &files, ":unlink");
    args[2] = pass->sha;

    if (ngx_http_fishchat_files_pass_eval(pass, pass->flcf->recheck,
                                          ngx_http_fishchat_files_rechecked,
                                          2, 3, args)
        != NGX_OK)
    {
        (void) ngx_http_fishchat_files_aside(pass, 1, 0);
        ngx_http_fishchat_files_pass_end(pass);
    }
}


static void
ngx_http_fishchat_files_rechecked(redisReply *reply, void *data)
{
    ngx_http_fishchat_files_pass_t *pass = data;

    pass->req = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer == 0)
    {
        /* counted again meanwhile, or not known: it is put back */
        (void) ngx_http_fishchat_files_aside(pass, 1, 0);

        if (reply == NULL) {
            ngx_http_fishchat_files_pass_end(pass);
            return;
        }

    } else if (ngx_http_fishchat_files_aside(pass, 0, 1) == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fishchat files: content %V is named by no file: "
                      "unlinked", &pass->sha);
    }

    ngx_http_fishchat_files_next(pass);
}


/*
 * <store>/<xx>/<sha> and its thumbnail <sha>.jpg: renamed to
 * <name>.gone, back again ("back"), or the .gone ones unlinked ("drop").
 * NGX_DECLINED: there is no such content on this store.
 */

static ngx_int_t
ngx_http_fishchat_files_aside(ngx_http_fishchat_files_pass_t *pass,
    ngx_uint_t back, ngx_uint_t drop)
{
    u_char      *p, *from, *to;
    ngx_int_t    rc;
    ngx_uint_t   i;
    ngx_str_t   *store;
    u_char       name[NGX_MAX_PATH], gone[NGX_MAX_PATH];

    store = &pass->flcf->store;

    if (store->len + 2 * pass->sha.len + 16 > NGX_MAX_PATH) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    for (i = 0; i < 2; i++) {
        p = ngx_sprintf(name, "%V/%*s/%V%s", store, (size_t) 2,
                        pass->sha.data, &pass->sha, i ? ".jpg" : "");
        ngx_sprintf(gone, "%*s.gone%Z", (size_t) (p - name), name);
        *p = '\0';

        if (drop) {
            if (ngx_delete_file(gone) != NGX_FILE_ERROR) {
                rc = NGX_OK;

            } else if (ngx_errno != NGX_ENOENT) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                              ngx_delete_file_n " \"%s\" failed", gone);
            }

            continue;
        }

        from = back ? gone : name;
        to = back ? name : gone;

        if (ngx_rename_file(from, to) != NGX_FILE_ERROR) {
            rc = NGX_OK;

        } else if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                          ngx_rename_file_n " \"%s\" failed", from);
        }
    }

    return rc;
}


static void
ngx_http_fishchat_files_pass_end(ngx_http_fishchat_files_pass_t *pass)
{
    if (pass->req) {
        ngx_fishchat_redis_cancel(pass->req);
        pass->req = NULL;
    }

    if (pass->removed) {
        ngx_fishchat_files_add(collected, pass->removed);
    }

    /* the lock expires by itself: one pass per period, whoever makes it */

    ngx_destroy_pool(pass->pool);

    if (ngx_http_fishchat_files_pass == pass) {
        ngx_http_fishchat_files_pass = NULL;
    }
}


static ngx_int_t
ngx_http_fishchat_files_pass_eval(ngx_http_fishchat_files_pass_t *pass,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt done,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args)
{
    pass->req = ngx_fishchat_redis_eval(ngx_fishchat_redis_link(), script,
                                        done, pass, nkeys, nargs, args);

    return pass->req ? NGX_OK : NGX_ERROR;
}
