
/*
 * FishChat for nginx: the manager role, the endpoint of nodes: the live
 * msg servers by node (docs/manager.md).
 */


#include "ngx_http_fishchat_manager.h"


static ngx_int_t ngx_http_fishchat_manager_nodes_done(
    ngx_http_fishchat_manager_ctx_t *ctx, redisReply *reply);


char  ngx_http_fishchat_manager_nodes_lua[] = NGX_FISHCHAT_LUA_NODES;


/* the endpoints: nodes */

/* GET /nodes: the live msg servers by node, from their heartbeats */

ngx_int_t
ngx_http_fishchat_manager_nodes(ngx_http_fishchat_manager_ctx_t *ctx)
{
    ngx_str_t  args[3];

    args[0] = ctx->fcf->beat_key;
    args[1] = ctx->fcf->load_key;
    ngx_str_set(&args[2], "100000");

    return ngx_http_fishchat_manager_eval(ctx, ctx->main->nodes,
                                       ngx_http_fishchat_manager_nodes_done,
                                       2, 3, args);
}


typedef struct {
    ngx_fishchat_beat_t             beat;
    ngx_uint_t                      done;
} ngx_http_fishchat_manager_beat_t;


static ngx_int_t
ngx_http_fishchat_manager_nodes_done(ngx_http_fishchat_manager_ctx_t *ctx,
    redisReply *reply)
{
    size_t                             i, k, n, size;
    int64_t                            total;
    ngx_uint_t                         first;
    ngx_fishchat_json_t                out;
    ngx_http_fishchat_manager_beat_t  *beats, *b;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || (reply->elements - 1) % 3)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = reply->elements / 3;

    beats = ngx_pcalloc(ctx->request->pool,
                        (n + 1) * sizeof(ngx_http_fishchat_manager_beat_t));
    if (beats == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 512;

    for (i = 0; i < n; i++) {
        if (ngx_fishchat_nodes_entry(reply, i, ctx->request->pool,
                                     &beats[i].beat)
            == NGX_ERROR)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        size += 2 * beats[i].beat.address.len + 2 * beats[i].beat.node.len
                + 256;
    }

    ngx_fishchat_json_init(&out, ctx->request->pool, size);

    ngx_fishchat_json_fmt(&out, "{\"nodes\":[");

    /* grouped by node, in the order of their first server */

    first = 1;

    for (i = 0; i < n; i++) {

        if (beats[i].done) {
            continue;
        }

        total = 0;

        for (k = i; k < n; k++) {
            b = &beats[k];

            if (b->beat.node.len == beats[i].beat.node.len
                && ngx_strncmp(b->beat.node.data, beats[i].beat.node.data,
                               b->beat.node.len) == 0
                && b->beat.sessions > 0)
            {
                total += b->beat.sessions;
            }
        }

        ngx_fishchat_json_fmt(&out, "%s{\"node\":",
                              first ? "" : ",");
        ngx_fishchat_json_str(&out, &beats[i].beat.node);
        ngx_fishchat_json_fmt(&out, ",\"sessions\":%L,\"servers\":[",
                              total);

        first = 0;

        for (k = i; k < n; k++) {
            b = &beats[k];

            if (b->done || b->beat.node.len != beats[i].beat.node.len
                || ngx_strncmp(b->beat.node.data, beats[i].beat.node.data,
                               b->beat.node.len) != 0)
            {
                continue;
            }

            ngx_fishchat_json_fmt(&out, "%s{\"address\":",
                                  k == i ? "" : ",");
            ngx_fishchat_json_str(&out, &b->beat.address);

            if (b->beat.sessions >= 0) {
                ngx_fishchat_json_fmt(&out, ",\"sessions\":%L",
                                      b->beat.sessions);

            } else {
                ngx_fishchat_json_fmt(&out, ",\"sessions\":null");
            }

            ngx_fishchat_json_fmt(&out, ",\"tls\":%s,\"expires_in\":%i}",
                                  b->beat.tls ? "true" : "false",
                                  b->beat.ttl);

            b->done = 1;
        }

        ngx_fishchat_json_fmt(&out, "]}");
    }

    ngx_fishchat_json_fmt(&out, "]}");

    return ngx_http_fishchat_manager_send(ctx, NGX_HTTP_OK, &out);
}
