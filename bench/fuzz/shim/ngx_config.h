
/*
 * bench/fuzz: what ngx_fishchat_frame_decode.c takes from nginx, outside
 * nginx (the fuzzer builds that one file with these headers).
 */

#ifndef _NGX_CONFIG_H_INCLUDED_
#define _NGX_CONFIG_H_INCLUDED_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef intptr_t   ngx_int_t;
typedef uintptr_t  ngx_uint_t;

#endif
