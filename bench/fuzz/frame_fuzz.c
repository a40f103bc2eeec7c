
/*
 * A differential fuzzer of the frame decoder (libFuzzer): whatever the fast
 * path takes (ngx_fishchat_frame_fast()), jansson must take too
 * (ngx_fishchat_frame_json()), with the same command and the same
 * arguments, byte for byte.  What the fast path declines goes to jansson
 * in nginx, so it has nothing to prove.  bench/fuzz/run.sh builds and runs
 * it.
 */

#include <stdio.h>
#include <stdlib.h>

#include "ngx_config.h"
#include "ngx_core.h"
#include "ngx_fishchat.h"


static int
same(ngx_str_t *a, ngx_str_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                *copy;
    ngx_uint_t             i;
    ngx_str_t              frame;
    ngx_fishchat_frame_t   fast, json;
    u_char                 err[128];

    /* a buffer of its own: the sanitizer sees any read past the frame */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);
    frame.data = copy;
    frame.len = size;

    if (ngx_fishchat_frame_fast(&frame, &fast) == NGX_OK) {

        if (ngx_fishchat_frame_json(&frame, &json, err, sizeof(err))
            != NGX_OK)
        {
            fprintf(stderr, "the fast path took a frame jansson refuses\n");
            abort();
        }

        if (!same(&fast.cmd, &json.cmd) || fast.nargs != json.nargs) {
            fprintf(stderr, "the command or the count of arguments differ\n");
            abort();
        }

        for (i = 0; i < fast.nargs; i++) {
            if (!same(&fast.args[i], &json.args[i])) {
                fprintf(stderr, "argument %lu differs\n",
                        (unsigned long) i + 1);
                abort();
            }
        }

        ngx_fishchat_frame_free(&json);
    }

    free(copy);

    return 0;
}
