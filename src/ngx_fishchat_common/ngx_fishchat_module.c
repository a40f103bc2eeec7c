
/*
 * FishChat for nginx: the core module.
 *
 * Main-context directives shared by every role: the node's identity, the
 * Redis server, the maximum frame size; the counters zone that the roles
 * register their server blocks in; the Redis link of each worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


#define NGX_FISHCHAT_ZONE_SLACK  16
#define NGX_FISHCHAT_STATS_MAX   8


typedef struct {
    ngx_uint_t                  nservers;
    size_t                      slot_size;
    u_char                     *slots;
    time_t                      started;     /* the node, kept on reload */
    ngx_fishchat_media_stats_t  media;       /* kept on reload too */
    ngx_fishchat_files_stats_t  files;       /* and these */
} ngx_fishchat_zone_t;


static void *ngx_fishchat_create_conf(ngx_cycle_t *cycle);
static char *ngx_fishchat_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_fishchat_node(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_fishchat_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_fishchat_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_fishchat_zone_t *ngx_fishchat_zone(void);
static void ngx_fishchat_stats_add(ngx_atomic_t *a, ngx_int_t n);
static ngx_int_t ngx_fishchat_init_process(ngx_cycle_t *cycle);
static void ngx_fishchat_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_fishchat_files_access[] = {
    { ngx_string("url"), NGX_FISHCHAT_FILES_URL },
    { ngx_string("token"), NGX_FISHCHAT_FILES_TOKEN },
    { ngx_null_string, 0 }
};


static ngx_conf_num_bounds_t  ngx_fishchat_db_bounds = {
    ngx_conf_check_num_bounds, 0, 65535
};


static ngx_command_t  ngx_fishchat_commands[] = {

    { ngx_string("fishchat_node"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE12,
      ngx_fishchat_node,
      0,
      0,
      NULL },

    { ngx_string("fishchat_redis"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_fishchat_redis,
      0,
      0,
      NULL },

    { ngx_string("fishchat_redis_password"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_password),
      NULL },

    { ngx_string("fishchat_redis_db"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_db),
      &ngx_fishchat_db_bounds },

    { ngx_string("fishchat_redis_prefix"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_prefix),
      NULL },

    { ngx_string("fishchat_redis_timeout"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_timeout),
      NULL },

    { ngx_string("fishchat_redis_queue"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_queue),
      NULL },

    { ngx_string("fishchat_redis_flush_delay"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, redis_flush_delay),
      NULL },

    { ngx_string("fishchat_auth_secret_file"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_fishchat_auth_key_file,
      0,
      offsetof(ngx_fishchat_conf_t, auth_secret),
      NULL },

    { ngx_string("fishchat_auth_public_key_file"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_fishchat_auth_key_file,
      0,
      offsetof(ngx_fishchat_conf_t, auth_public_key),
      NULL },

    { ngx_string("fishchat_auth_alg"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_fishchat_auth_alg,
      0,
      0,
      NULL },

    { ngx_string("fishchat_auth_leeway"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, auth_leeway),
      NULL },

    { ngx_string("fishchat_auth_audience"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, auth_audience),
      NULL },

    { ngx_string("fishchat_media_rtmp_url"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, media_rtmp_url),
      NULL },

    { ngx_string("fishchat_media_hls_url"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, media_hls_url),
      NULL },

    { ngx_string("fishchat_media_vod_url"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, media_vod_url),
      NULL },

    { ngx_string("fishchat_media_token_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, media_token_ttl),
      NULL },

    { ngx_string("fishchat_files_url"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_url),
      NULL },

    { ngx_string("fishchat_files_max_size"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_max_size),
      NULL },

    { ngx_string("fishchat_files_quota"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_quota),
      NULL },

    { ngx_string("fishchat_files_slot_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_slot_ttl),
      NULL },

    { ngx_string("fishchat_files_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_ttl),
      NULL },

    { ngx_string("fishchat_files_access"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_access),
      &ngx_fishchat_files_access },

    { ngx_string("fishchat_files_link_ttl"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      0,
      offsetof(ngx_fishchat_conf_t, files_link_ttl),
      NULL },

    { ngx_string("fishchat_frame_max"),
      NGX_MAIN_CONF|NGX_DIRECT_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      0,
      offsetof(ngx_fishchat_conf_t, frame_max),
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_fishchat_module_ctx = {
    ngx_string("fishchat"),
    ngx_fishchat_create_conf,
    ngx_fishchat_init_conf
};


ngx_module_t  ngx_fishchat_module = {
    NGX_MODULE_V1,
    &ngx_fishchat_module_ctx,              /* module context */
    ngx_fishchat_commands,                 /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_fishchat_init_process,             /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_fishchat_exit_process,             /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_fishchat_zone_name = ngx_string("fishchat_counters");


ngx_fishchat_conf_t *
ngx_fishchat_get_conf(ngx_cycle_t *cycle)
{
    return (ngx_fishchat_conf_t *) ngx_get_conf(cycle->conf_ctx,
                                                ngx_fishchat_module);
}


/*
 * A role in use that talks to Redis: without "fishchat_redis" it cannot
 * start; NGX_ERROR, and "directive" is named in the log
 */

ngx_int_t
ngx_fishchat_redis_needed(ngx_cycle_t *cycle, char *directive)
{
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf == NULL || fcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"%s\" needs \"fishchat_redis\"", directive);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_fishchat_conf_t *
ngx_fishchat_conf(ngx_conf_t *cf)
{
    return ngx_fishchat_get_conf(cf->cycle);
}


static void *
ngx_fishchat_create_conf(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_pcalloc(cycle->pool, sizeof(ngx_fishchat_conf_t));
    if (fcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     fcf->name = { 0, NULL };
     *     fcf->advertise = { 0, NULL };
     *     fcf->redis = NULL;
     *     fcf->redis_password = { 0, NULL };
     *     fcf->redis_prefix = { 0, NULL };
     *     fcf->zone = NULL;
     */

    fcf->redis_db = NGX_CONF_UNSET;
    fcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    fcf->redis_queue = NGX_CONF_UNSET_UINT;
    fcf->redis_flush_delay = NGX_CONF_UNSET_MSEC;
    fcf->frame_max = NGX_CONF_UNSET_SIZE;
    fcf->auth_alg = NGX_CONF_UNSET_UINT;
    fcf->auth_leeway = NGX_CONF_UNSET;
    fcf->media_token_ttl = NGX_CONF_UNSET;
    fcf->files_max_size = NGX_CONF_UNSET;
    fcf->files_quota = NGX_CONF_UNSET;
    fcf->files_slot_ttl = NGX_CONF_UNSET;
    fcf->files_ttl = NGX_CONF_UNSET;
    fcf->files_access = NGX_CONF_UNSET_UINT;
    fcf->files_link_ttl = NGX_CONF_UNSET;

    if (ngx_array_init(&fcf->servers, cycle->pool, 4, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&fcf->stream_servers, cycle->pool, 4, sizeof(void *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&fcf->scripts, cycle->pool, 4,
                       sizeof(ngx_fishchat_redis_script_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return fcf;
}


static char *
ngx_fishchat_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_fishchat_conf_t *fcf = conf;

    size_t  size;

    if (fcf->name.len == 0) {
        fcf->name = cycle->hostname;
    }

    ngx_conf_init_value(fcf->redis_db, 0);
    ngx_conf_init_msec_value(fcf->redis_timeout, 3000);
    ngx_conf_init_uint_value(fcf->redis_queue, 1024);
    ngx_conf_init_msec_value(fcf->redis_flush_delay, 0);
    ngx_conf_init_size_value(fcf->frame_max, 65536);

    if (fcf->redis_prefix.data == NULL) {
        ngx_str_set(&fcf->redis_prefix, "fc:");
    }

    if (fcf->media_rtmp_url.data == NULL) {
        ngx_str_set(&fcf->media_rtmp_url, "rtmp://127.0.0.1:1935/live");
    }

    if (fcf->media_hls_url.data == NULL) {
        ngx_str_set(&fcf->media_hls_url, "http://127.0.0.1:22000/hls");
    }

    if (fcf->media_vod_url.data == NULL) {
        ngx_str_set(&fcf->media_vod_url, "http://127.0.0.1:22000/vod");
    }

    if (fcf->media_token_ttl == NGX_CONF_UNSET) {
        fcf->media_token_ttl = 600;
    }

    ngx_conf_init_value(fcf->files_max_size, 100 * 1024 * 1024);
    ngx_conf_init_value(fcf->files_quota, 1024 * 1024 * 1024);
    ngx_conf_init_value(fcf->files_slot_ttl, 600);
    ngx_conf_init_value(fcf->files_ttl, 30 * 86400);
    ngx_conf_init_uint_value(fcf->files_access, NGX_FISHCHAT_FILES_URL);
    ngx_conf_init_value(fcf->files_link_ttl, 3600);

    if (fcf->files_max_size <= 0 || fcf->files_slot_ttl <= 0
        || fcf->files_ttl <= 0 || fcf->files_link_ttl <= 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_files_max_size\", "
                      "\"fishchat_files_slot_ttl\", \"fishchat_files_ttl\" "
                      "and \"fishchat_files_link_ttl\" must be more than 0");
        return NGX_CONF_ERROR;
    }

    if (fcf->frame_max < 64 || fcf->frame_max > 64 * 1024 * 1024) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_frame_max\" must be between 64 and 64m");
        return NGX_CONF_ERROR;
    }

    if (ngx_fishchat_auth_init_conf(cycle, fcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_fishchat_keys_init(cycle->pool, fcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (fcf->zone == NULL) {
        return NGX_CONF_OK;
    }

    /* every server block is known now: size the counters zone */

    fcf->slot_size = ngx_align(sizeof(ngx_fishchat_slot_t)
                               + fcf->servers.nelts
                                 * sizeof(ngx_fishchat_counters_t),
                               NGX_ALIGNMENT);

    size = sizeof(ngx_fishchat_zone_t) + NGX_MAX_PROCESSES * fcf->slot_size;

    fcf->zone->shm.size = ngx_align(size, ngx_pagesize)
                          + NGX_FISHCHAT_ZONE_SLACK * ngx_pagesize;
    fcf->zone->init = ngx_fishchat_init_zone;
    fcf->zone->data = fcf;

    return NGX_CONF_OK;
}


static char *
ngx_fishchat_node(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_fishchat_conf_t *fcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (fcf->name.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] <= ' ' || value[1].data[i] == ':'
            || value[1].data[i] >= 0x7f)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid node name \"%V\": printable ASCII "
                               "without spaces or \":\" expected", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 0 || value[1].len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid node name \"%V\": 1 to 64 characters "
                           "expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    fcf->name = value[1];

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "advertise=", 10) != 0
            || value[2].len == 10)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        fcf->advertise.data = value[2].data + 10;
        fcf->advertise.len = value[2].len - 10;
    }

    return NGX_CONF_OK;
}


static char *
ngx_fishchat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_fishchat_conf_t *fcf = conf;

    ngx_str_t  *value;
    ngx_url_t  *u;

    if (fcf->redis) {
        return "is duplicate";
    }

    value = cf->args->elts;

    u = ngx_pcalloc(cf->pool, sizeof(ngx_url_t));
    if (u == NULL) {
        return NGX_CONF_ERROR;
    }

    u->url = value[1];
    u->default_port = 6379;
    u->no_resolve = 1;

    if (ngx_parse_url(cf->pool, u) != NGX_OK) {
        if (u->err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"fishchat_redis %V\"", u->err, &u->url);
        }

        return NGX_CONF_ERROR;
    }

    if (u->family != AF_UNIX && u->host.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no host in \"fishchat_redis %V\"", &u->url);
        return NGX_CONF_ERROR;
    }

    fcf->redis = u;

    return NGX_CONF_OK;
}


/*
 * A server block of a role registers itself for counters; the label is
 * the role and where the block is in the configuration.
 */

ngx_int_t
ngx_fishchat_counters_add(ngx_conf_t *cf, char *role, ngx_uint_t *index)
{
    ngx_str_t            *label;
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_conf(cf);

    if (ngx_fishchat_zone_add(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    label = ngx_array_push(&fcf->servers);
    if (label == NULL) {
        return NGX_ERROR;
    }

    label->len = ngx_strlen(role) + sizeof(" :4294967295") - 1
                 + cf->conf_file->file.name.len;
    label->data = ngx_pnalloc(cf->pool, label->len);
    if (label->data == NULL) {
        return NGX_ERROR;
    }

    label->len = ngx_sprintf(label->data, "%s %V:%ui", role,
                             &cf->conf_file->file.name,
                             cf->conf_file->line)
                 - label->data;

    *index = fcf->servers.nelts - 1;

    return NGX_OK;
}


/* the counters zone, also without counters (the monitor's worker gauges) */

ngx_int_t
ngx_fishchat_zone_add(ngx_conf_t *cf)
{
    ngx_fishchat_conf_t  *fcf;

    fcf = ngx_fishchat_conf(cf);

    if (fcf->zone == NULL) {
        fcf->zone = ngx_shared_memory_add(cf, &ngx_fishchat_zone_name, 0,
                                          &ngx_fishchat_module);
        if (fcf->zone == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_fishchat_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_fishchat_conf_t  *fcf = shm_zone->data;

    size_t                      size;
    time_t                      started;
    ngx_slab_pool_t            *shpool;
    ngx_fishchat_zone_t        *zone;
    ngx_fishchat_media_stats_t  media;
    ngx_fishchat_files_stats_t  files;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    started = ngx_time();
    ngx_memzero(&media, sizeof(ngx_fishchat_media_stats_t));
    ngx_memzero(&files, sizeof(ngx_fishchat_files_stats_t));

    if (data) {
        /* a reload kept the zone (same size, so the same layout) */
        zone = data;

        if (zone->nservers == fcf->servers.nelts) {
            shm_zone->data = zone;
            return NGX_OK;
        }

        started = zone->started;
        media = zone->media;
        files = zone->files;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    size = sizeof(ngx_fishchat_zone_t) + NGX_MAX_PROCESSES * fcf->slot_size;

    zone = ngx_slab_calloc(shpool, size);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->nservers = fcf->servers.nelts;
    zone->slot_size = fcf->slot_size;
    zone->slots = (u_char *) zone + sizeof(ngx_fishchat_zone_t);
    zone->started = started;
    zone->media = media;
    zone->files = files;

    shpool->data = zone;
    shm_zone->data = zone;

    return NGX_OK;
}


/*
 * Slot n of the zone: the header of one worker process (by its process
 * slot) followed by the counters of every server block.
 */

u_char *
ngx_fishchat_zone_slot(ngx_shm_zone_t *shm_zone, ngx_uint_t n,
    ngx_fishchat_slot_t **slot)
{
    ngx_fishchat_zone_t  *zone;

    zone = shm_zone->data;

    if (zone == NULL || n >= NGX_MAX_PROCESSES) {
        return NULL;
    }

    *slot = (ngx_fishchat_slot_t *) (zone->slots + n * zone->slot_size);

    return (u_char *) *slot + sizeof(ngx_fishchat_slot_t);
}


/* when nginx started: the zone outlives reloads */

time_t
ngx_fishchat_zone_started(ngx_shm_zone_t *shm_zone)
{
    ngx_fishchat_zone_t  *zone;

    zone = shm_zone->data;

    return zone ? zone->started : 0;
}


/* the zone, NULL before it is made */

static ngx_fishchat_zone_t *
ngx_fishchat_zone(void)
{
    ngx_fishchat_conf_t  *fcf;
    ngx_fishchat_zone_t  *zone;

    fcf = ngx_fishchat_get_conf((ngx_cycle_t *) ngx_cycle);

    if (fcf == NULL || fcf->zone == NULL) {
        return NULL;
    }

    zone = fcf->zone->data;

    return (zone && zone != (void *) fcf) ? zone : NULL;
}


/* the node's media figures; NULL without the counters zone */

ngx_fishchat_media_stats_t *
ngx_fishchat_media_stats(void)
{
    ngx_fishchat_zone_t  *zone;

    zone = ngx_fishchat_zone();

    return zone ? &zone->media : NULL;
}


/* the node's files figures; NULL without the counters zone */

ngx_fishchat_files_stats_t *
ngx_fishchat_files_stats(void)
{
    ngx_fishchat_zone_t  *zone;

    zone = ngx_fishchat_zone();

    return zone ? &zone->files : NULL;
}


/*
 * A figure of the node's media (at "field" of ngx_fishchat_media_stats_t)
 * goes up (n = 1) or down (n = -1)
 */

void
ngx_fishchat_media_count(size_t field, ngx_int_t n)
{
    ngx_fishchat_media_stats_t  *media;

    media = ngx_fishchat_media_stats();

    if (media) {
        ngx_fishchat_stats_add((ngx_atomic_t *) ((u_char *) media + field), n);
    }
}


/*
 * A figure of the node's files (at "field" of ngx_fishchat_files_stats_t)
 * goes up or down by n
 */

void
ngx_fishchat_files_count(size_t field, ngx_int_t n)
{
    ngx_fishchat_files_stats_t  *files;

    files = ngx_fishchat_files_stats();

    if (files) {
        ngx_fishchat_stats_add((ngx_atomic_t *) ((u_char *) files + field), n);
    }
}


/*
 * n is added to a figure of the zone; it never goes below 0: a gauge
 * counted down after the zone was made anew
 */

static void
ngx_fishchat_stats_add(ngx_atomic_t *a, ngx_int_t n)
{
    ngx_atomic_uint_t  v;

    if (n >= 0) {
        (void) ngx_atomic_fetch_add(a, n);
        return;
    }

    do {
        v = *a;

        if (v == 0) {
            return;
        }

    } while (!ngx_atomic_cmp_set(a, v,
                                 v > (ngx_atomic_uint_t) -n ? v + n : 0));
}


static ngx_fishchat_counters_t  *ngx_fishchat_worker_counters;
static ngx_fishchat_counters_t   ngx_fishchat_dummy_counters;
static ngx_uint_t                ngx_fishchat_nservers;
static ngx_fishchat_slot_t      *ngx_fishchat_worker_slot_p;
static ngx_fishchat_stats_pt     ngx_fishchat_stats[NGX_FISHCHAT_STATS_MAX];
static ngx_uint_t                ngx_fishchat_nstats;


ngx_fishchat_counters_t *
ngx_fishchat_counters(ngx_uint_t index)
{
    if (ngx_fishchat_worker_counters == NULL
        || index >= ngx_fishchat_nservers)
    {
        /* not a worker (e.g. nginx -t), or the zone was not reused */
        return &ngx_fishchat_dummy_counters;
    }

    return &ngx_fishchat_worker_counters[index];
}


/* the slot of this worker in the zone, NULL if it has none */

ngx_fishchat_slot_t *
ngx_fishchat_worker_slot(void)
{
    return ngx_fishchat_worker_slot_p;
}


/*
 * A role that knows gauges of its worker (bytes in output queues) adds a
 * handler, from its init_process; the monitor calls them every second.
 */

ngx_int_t
ngx_fishchat_stats_handler(ngx_fishchat_stats_pt handler)
{
    if (ngx_fishchat_nstats == NGX_FISHCHAT_STATS_MAX) {
        return NGX_ERROR;
    }

    ngx_fishchat_stats[ngx_fishchat_nstats++] = handler;

    return NGX_OK;
}


void
ngx_fishchat_stats_collect(ngx_fishchat_slot_t *slot)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_fishchat_nstats; i++) {
        ngx_fishchat_stats[i](slot);
    }
}


static ngx_int_t
ngx_fishchat_init_process(ngx_cycle_t *cycle)
{
    u_char               *p;
    ngx_fishchat_conf_t  *fcf;
    ngx_fishchat_slot_t  *slot;
    ngx_fishchat_zone_t  *zone;

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf == NULL) {
        return NGX_OK;
    }

    if (ngx_fishchat_uuid_init(cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (fcf->zone && fcf->zone->data) {
        zone = fcf->zone->data;

        p = ngx_fishchat_zone_slot(fcf->zone, ngx_process_slot, &slot);

        if (p && zone->nservers == fcf->servers.nelts) {
            ngx_memzero(slot, zone->slot_size);

            slot->pid = ngx_pid;
            slot->started = ngx_time();

            ngx_fishchat_worker_counters = (ngx_fishchat_counters_t *) p;
            ngx_fishchat_nservers = zone->nservers;
            ngx_fishchat_worker_slot_p = slot;
        }
    }

    /*
     * The Redis link is started by the roles that need it, from their own
     * init_process: the event module is not set up yet at this point.
     */

    return NGX_OK;
}


static void
ngx_fishchat_exit_process(ngx_cycle_t *cycle)
{
    ngx_fishchat_conf_t  *fcf;
    ngx_fishchat_slot_t  *slot;

    ngx_fishchat_redis_exit_process(cycle);

    fcf = ngx_fishchat_get_conf(cycle);

    if (fcf && fcf->zone && ngx_fishchat_worker_counters) {
        if (ngx_fishchat_zone_slot(fcf->zone, ngx_process_slot, &slot)) {
            slot->pid = 0;
        }
    }

    ngx_fishchat_worker_counters = NULL;
    ngx_fishchat_worker_slot_p = NULL;
    ngx_fishchat_nstats = 0;
}


/* random bytes from the kernel, for seeds */

ngx_int_t
ngx_fishchat_get_random(void *buf, size_t len, ngx_log_t *log)
{
    ssize_t       n;
    ngx_fd_t      fd;

    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_open_file_n " \"/dev/urandom\" failed");
        return NGX_ERROR;
    }

    n = read(fd, buf, len);

    ngx_close_file(fd);

    if (n != (ssize_t) len) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      "read(\"/dev/urandom\") failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}
