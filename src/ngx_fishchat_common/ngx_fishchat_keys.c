
/*
 * FishChat for nginx: the keyspace of docs/keyspace.md, in one place.
 *
 * Ids and topic names, the key builder, the system channels, uuids, the
 * heartbeat keys and the decoder of a heartbeat's load record.  Every role
 * builds its keys here; none writes a key name by hand.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_fishchat.h"


static uint64_t  ngx_fishchat_rnd[2];


char  *ngx_fishchat_sys_names[] = {
    "client-status",
    "topic-status",
    "topic-sync",
    "send",
    "monitor",
    NULL
};


/*
 * Ids and topic names go into key names: 1 to 128 bytes, no white space
 * or control characters, and no braces (they would break the Redis
 * Cluster hash tag).
 */

ngx_int_t
ngx_fishchat_valid_id(ngx_str_t *id)
{
    size_t  i;

    if (id->len == 0 || id->len > NGX_FISHCHAT_ID_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < id->len; i++) {
        if (id->data[i] <= ' ' || id->data[i] == 0x7f
            || id->data[i] == '{' || id->data[i] == '}')
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* <prefix><kind>{<id>}<suffix>, written at *p */

ngx_str_t
ngx_fishchat_key(u_char **p, char *kind, ngx_str_t *id, char *suffix)
{
    ngx_str_t             key;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    key.data = *p;
    *p = ngx_sprintf(*p, "%V%s{%V}%s", &fcf->redis_prefix, kind, id, suffix);
    key.len = *p - key.data;

    return key;
}


/* the SCAN pattern <prefix><kind>{*}, the prefix escaped for MATCH */

ngx_str_t
ngx_fishchat_key_pattern(u_char **p, char *kind)
{
    u_char               *s;
    size_t                i;
    ngx_str_t             pat, *prefix;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);
    prefix = &fcf->redis_prefix;

    s = *p;
    pat.data = s;

    for (i = 0; i < prefix->len; i++) {
        switch (prefix->data[i]) {
        case '*': case '?': case '[': case ']': case '\\':
            *s++ = '\\';
            /* fall through */
        default:
            *s++ = prefix->data[i];
        }
    }

    s = ngx_sprintf(s, "%s{*}", kind);

    pat.len = s - pat.data;
    *p = s;

    return pat;
}


/*
 * The names made once from the prefix, at configuration: the system
 * channels "<prefix>sys:<name>" and the heartbeat keys.
 */

ngx_int_t
ngx_fishchat_keys_init(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf)
{
    u_char      *p;
    ngx_uint_t   i;

    for (i = 0; i < NGX_FISHCHAT_SYS_N; i++) {
        p = ngx_pnalloc(pool, fcf->redis_prefix.len + sizeof("sys:")
                              + ngx_strlen(ngx_fishchat_sys_names[i]));
        if (p == NULL) {
            return NGX_ERROR;
        }

        fcf->sys[i].data = p;
        fcf->sys[i].len = ngx_sprintf(p, "%Vsys:%s", &fcf->redis_prefix,
                                      ngx_fishchat_sys_names[i])
                          - p;
    }

    p = ngx_pnalloc(pool, 2 * (fcf->redis_prefix.len + sizeof("{nodes}:beat")));
    if (p == NULL) {
        return NGX_ERROR;
    }

    fcf->beat_key.data = p;
    p = ngx_sprintf(p, "%V{nodes}:beat", &fcf->redis_prefix);
    fcf->beat_key.len = p - fcf->beat_key.data;

    fcf->load_key.data = p;
    p = ngx_sprintf(p, "%V{nodes}:load", &fcf->redis_prefix);
    fcf->load_key.len = p - fcf->load_key.data;

    p = ngx_pnalloc(pool, fcf->redis_prefix.len + sizeof("t:"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    fcf->topic_channels.data = p;
    fcf->topic_channels.len = ngx_sprintf(p, "%Vt:", &fcf->redis_prefix) - p;

    return NGX_OK;
}


/* the channel of this worker, <prefix>w:<node>:<pid> */

ngx_int_t
ngx_fishchat_worker_channel(ngx_pool_t *pool, ngx_str_t *channel)
{
    u_char               *p;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    p = ngx_pnalloc(pool, fcf->redis_prefix.len + fcf->name.len
                          + sizeof("w::") + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    channel->data = p;
    channel->len = ngx_sprintf(p, "%Vw:%V:%P", &fcf->redis_prefix,
                               &fcf->name, ngx_pid)
                   - p;

    return NGX_OK;
}


/* a version 4 uuid from a per-process xorshift128+ seeded at start */

ngx_int_t
ngx_fishchat_uuid_init(ngx_log_t *log)
{
    return ngx_fishchat_get_random(ngx_fishchat_rnd, sizeof(ngx_fishchat_rnd),
                                   log);
}


static uint64_t
ngx_fishchat_rnd_next(void)
{
    uint64_t  x, y;

    x = ngx_fishchat_rnd[0];
    y = ngx_fishchat_rnd[1];
    ngx_fishchat_rnd[0] = y;
    x ^= x << 23;
    ngx_fishchat_rnd[1] = x ^ y ^ (x >> 17) ^ (y >> 26);

    return ngx_fishchat_rnd[1] + y;
}


void
ngx_fishchat_uuid(u_char *p)
{
    uint64_t        r[2];
    ngx_uint_t      i;
    u_char          b[16];
    static u_char   hex[] = "0123456789abcdef";

    for (i = 0; i < 2; i++) {
        r[i] = ngx_fishchat_rnd_next();
    }

    ngx_memcpy(b, r, 16);

    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }

        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xf];
    }
}


/* 8-4-4-4-12 hex digits, version 4, variant 10xx */

ngx_int_t
ngx_fishchat_uuid_valid(ngx_str_t *uuid)
{
    u_char      c;
    ngx_uint_t  i;

    if (uuid->len != NGX_FISHCHAT_UUID_LEN) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_FISHCHAT_UUID_LEN; i++) {
        c = uuid->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return NGX_DECLINED;
            }

            continue;
        }

        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
              || (c >= 'A' && c <= 'F')))
        {
            return NGX_DECLINED;
        }
    }

    c = uuid->data[19] | 0x20;

    if (uuid->data[14] != '4'
        || (c != '8' && c != '9' && c != 'a' && c != 'b'))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * A heartbeat's load record, {"node":"<name>","sessions":<n>}, with
 * "tls":true for a msg server that listens with TLS (other fields are
 * ignored): what the msg servers write, at most "len" bytes of "buf".
 */

u_char *
ngx_fishchat_load_encode(u_char *buf, size_t len, ngx_str_t *node,
    ngx_atomic_int_t sessions, ngx_uint_t tls)
{
    u_char  *p, *last;

    last = buf + len;

    p = ngx_slprintf(buf, last, "{\"node\":\"");

    if ((size_t) (last - p) > 6 * ngx_min(node->len, 64) + 32) {
        p = (u_char *) ngx_escape_json(p, node->data, ngx_min(node->len, 64));
    }

    return ngx_slprintf(p, last, "\",\"sessions\":%A%s}", sessions,
                        tls ? ",\"tls\":true" : "");
}


/*
 * What the gateway, the manager and the monitor read of it: the sessions,
 * and the node name copied into "pool" when "node" is given.  NGX_DECLINED
 * for a record that is not JSON (the entry is then taken as empty).
 */

ngx_int_t
ngx_fishchat_load_decode(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_str_t *node, ngx_int_t *sessions, ngx_uint_t *tls)
{
    json_t        *root, *v;
    json_error_t   err;

    *sessions = 0;
    *tls = 0;

    if (node) {
        ngx_str_null(node);
    }

    if (len == 0) {
        return NGX_DECLINED;
    }

    root = json_loadb((const char *) data, len, 0, &err);
    if (root == NULL) {
        return NGX_DECLINED;
    }

    v = json_object_get(root, "sessions");

    if (json_is_integer(v)) {
        *sessions = (ngx_int_t) json_integer_value(v);
    }

    *tls = json_is_true(json_object_get(root, "tls"));

    v = json_object_get(root, "node");

    if (node && json_is_string(v)) {
        node->len = json_string_length(v);
        node->data = ngx_pnalloc(pool, node->len + 1);

        if (node->data == NULL) {
            json_decref(root);
            return NGX_ERROR;
        }

        ngx_memcpy(node->data, json_string_value(v), node->len);
    }

    json_decref(root);

    return NGX_OK;
}


/*
 * Entry "i" of the reply of NGX_FISHCHAT_LUA_NODES: {count, address, ms
 * left, load record, ...}.  The address points into the reply; sessions
 * is -1 when the load record is missing or not JSON.
 */

ngx_int_t
ngx_fishchat_nodes_entry(redisReply *reply, ngx_uint_t i, ngx_pool_t *pool,
    ngx_fishchat_beat_t *beat)
{
    redisReply  *e;

    ngx_memzero(beat, sizeof(ngx_fishchat_beat_t));

    if (1 + 3 * i + 2 >= reply->elements) {
        return NGX_DECLINED;
    }

    e = reply->element[1 + 3 * i];

    if (e->type != REDIS_REPLY_STRING || e->len == 0) {
        return NGX_DECLINED;
    }

    beat->address.data = (u_char *) e->str;
    beat->address.len = e->len;

    e = reply->element[2 + 3 * i];
    beat->ttl = (e->type == REDIS_REPLY_INTEGER) ? (ngx_int_t) e->integer : 0;

    e = reply->element[3 + 3 * i];

    beat->sessions = -1;

    if (e->type != REDIS_REPLY_STRING) {
        return NGX_OK;
    }

    switch (ngx_fishchat_load_decode((u_char *) e->str, e->len, pool,
                                     pool ? &beat->node : NULL,
                                     &beat->sessions, &beat->tls))
    {
    case NGX_ERROR:
        return NGX_ERROR;

    case NGX_DECLINED:
        beat->sessions = -1;
        break;
    }

    return NGX_OK;
}


/*
 * The target of a stream: "topic:<name>" (*topic is the name) or
 * "p2p:<id>" (*topic is empty).  NGX_ERROR for anything else.
 */

ngx_int_t
ngx_fishchat_media_target(ngx_str_t *target, ngx_str_t *topic)
{
    ngx_str_t  id;

    if (target->len > 6 && ngx_strncmp(target->data, "topic:", 6) == 0) {
        topic->data = target->data + 6;
        topic->len = target->len - 6;
        return ngx_fishchat_valid_id(topic);
    }

    ngx_str_null(topic);

    if (target->len > 4 && ngx_strncmp(target->data, "p2p:", 4) == 0) {
        id.data = target->data + 4;
        id.len = target->len - 4;
        return ngx_fishchat_valid_id(&id);
    }

    return NGX_ERROR;
}


/* a new stream's name: NGX_FISHCHAT_MEDIA_STREAM_LEN random hex digits */

void
ngx_fishchat_media_stream(u_char *p)
{
    uint64_t  r;

    r = ngx_fishchat_rnd_next();

    ngx_hex_dump(p, (u_char *) &r, sizeof(uint64_t));
}


/*
 * The keys and arguments of NGX_FISHCHAT_LUA_MEDIA_PUBLISH for a new
 * stream of "from" to "target" ("topic" as ngx_fishchat_media_target()
 * has it): the keys are written at *p, the creation time in "now"
 * (NGX_INT64_LEN bytes)
 */

void
ngx_fishchat_media_publish_args(ngx_str_t *args, u_char **p,
    ngx_str_t *topic, ngx_str_t *stream, ngx_str_t *from, ngx_str_t *target,
    u_char *now)
{
    args[0] = ngx_fishchat_key(p, "topic:", topic, "");
    args[1] = ngx_fishchat_key(p, "topic:", topic, ":members");
    args[2] = ngx_fishchat_key(p, "media:", stream, "");
    args[3] = *from;
    args[4] = *target;
    args[5].data = now;
    args[5].len = ngx_sprintf(now, "%M", (ngx_msec_t) (ngx_time() * 1000))
                  - now;
    ngx_str_set(&args[6], NGX_FISHCHAT_MEDIA_KEEP);
}


/*
 * The keys and arguments of NGX_FISHCHAT_LUA_SEND: the delivery "frame"
 * of a message to "to" under "uuid" from "sender", sent by the worker of
 * "channel" (empty from outside a worker), with the inbox limits written
 * in "num" (NGX_FISHCHAT_SEND_NUM bytes); the keys are written at *p
 */

void
ngx_fishchat_send_args(ngx_str_t *args, u_char **p, ngx_fishchat_conf_t *fcf,
    ngx_str_t *to, ngx_str_t *uuid, ngx_str_t *frame, ngx_str_t *sender,
    ngx_str_t *channel, ngx_uint_t inbox_max, ngx_msec_t inbox_ttl,
    u_char *num)
{
    args[0] = ngx_fishchat_key(p, "inbox:", to, "");
    args[1] = ngx_fishchat_key(p, "inbox:", to, ":m");
    args[2] = ngx_fishchat_key(p, "client:", to, "");
    args[3] = *uuid;
    args[4] = *frame;
    args[5].data = num;
    args[5].len = ngx_sprintf(num, "%ui", inbox_max) - num;
    args[6].data = num + args[5].len;
    args[6].len = ngx_sprintf(args[6].data, "%M", inbox_ttl) - args[6].data;
    args[7] = *channel;
    args[8] = *to;
    args[9] = fcf->sys[NGX_FISHCHAT_SYS_SEND];
    args[10] = *sender;
    args[11] = fcf->sys[NGX_FISHCHAT_SYS_CLIENT_STATUS];
}


/*
 * The keys and arguments of NGX_FISHCHAT_LUA_TOPIC_SEND but the last: a
 * message "text" from "from" to the topic "name" under "uuid", with the
 * history cap written in "num" (NGX_FISHCHAT_TOPIC_SEND_NUM bytes); the
 * keys are written at *p
 */

void
ngx_fishchat_topic_send_args(ngx_str_t *args, u_char **p,
    ngx_fishchat_conf_t *fcf, ngx_str_t *name, ngx_str_t *from,
    ngx_str_t *uuid, ngx_str_t *text, ngx_uint_t history, u_char *num)
{
    args[0] = ngx_fishchat_key(p, "topic:", name, "");
    args[1] = ngx_fishchat_key(p, "topic:", name, ":members");
    args[2] = ngx_fishchat_key(p, "topic:", name, ":h");
    args[3] = *from;
    args[4] = *uuid;
    args[5] = *text;
    args[6].data = num;
    args[6].len = ngx_sprintf(num, "%ui", history) - num;
    args[7] = ngx_fishchat_key(p, "t:", name, "");
    args[8] = fcf->sys[NGX_FISHCHAT_SYS_TOPIC_SYNC];
    args[9] = *name;
}
