
/*
 * FishChat for nginx: the shared core of the suite.
 *
 * The core module (ngx_fishchat_module) owns what every role shares:
 * the node's identity, the Redis link of each worker, the counters zone
 * and the frame codec of the seed's wire protocol.
 */


#ifndef _NGX_FISHCHAT_H_INCLUDED_
#define _NGX_FISHCHAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_FISHCHAT_VERSION        "0.1.0"

#define NGX_FISHCHAT_MAX_ARGS       8
#define NGX_FISHCHAT_UUID_LEN       36
#define NGX_FISHCHAT_ID_MAX         128
#define NGX_FISHCHAT_FILE_ID_LEN    32

/* fishchat_files_access: who may download a file */
#define NGX_FISHCHAT_FILES_URL      0     /* who holds its URL */
#define NGX_FISHCHAT_FILES_TOKEN    1     /* with a signed link of its id */

/* an upload slot's name and content type, at most */
#define NGX_FISHCHAT_FILES_NAME_MAX  255
#define NGX_FISHCHAT_FILES_TYPE_MAX  127

/* the keys and arguments of NGX_FISHCHAT_LUA_FILE_SLOT */
#define NGX_FISHCHAT_FILES_SLOT_KEYS  4
#define NGX_FISHCHAT_FILES_SLOT_ARGS  13

/* a stream of the media role: 16 hex digits made by the server */
#define NGX_FISHCHAT_MEDIA_STREAM_LEN  16

/* the keys and arguments of NGX_FISHCHAT_LUA_MEDIA_PUBLISH */
#define NGX_FISHCHAT_MEDIA_PUBLISH_KEYS  3
#define NGX_FISHCHAT_MEDIA_PUBLISH_ARGS  7

/* how long a stream's record is kept (s) */
#define NGX_FISHCHAT_MEDIA_KEEP  "86400"

/*
 * the keys and arguments of NGX_FISHCHAT_LUA_SEND, and the room for the
 * text of its inbox limits
 */
#define NGX_FISHCHAT_SEND_KEYS  3
#define NGX_FISHCHAT_SEND_ARGS  12
#define NGX_FISHCHAT_SEND_NUM   (NGX_INT_T_LEN + NGX_INT64_LEN)

/*
 * the keys and arguments of NGX_FISHCHAT_LUA_TOPIC_SEND that every sender
 * gives (ARGV[8], "1" for a sender that need not be a member, is one more,
 * the caller's), and the room for the text of the history cap
 */
#define NGX_FISHCHAT_TOPIC_SEND_KEYS  3
#define NGX_FISHCHAT_TOPIC_SEND_ARGS  10
#define NGX_FISHCHAT_TOPIC_SEND_NUM   NGX_INT_T_LEN


/* the system channels, "<prefix>sys:<name>" (see docs/keyspace.md) */

typedef enum {
    NGX_FISHCHAT_SYS_CLIENT_STATUS = 0,
    NGX_FISHCHAT_SYS_TOPIC_STATUS,
    NGX_FISHCHAT_SYS_TOPIC_SYNC,
    NGX_FISHCHAT_SYS_SEND,
    NGX_FISHCHAT_SYS_MONITOR,
    NGX_FISHCHAT_SYS_N
} ngx_fishchat_sys_e;


/* errors a client can cause; stable codes, see docs/protocol.md */

typedef enum {
    NGX_FISHCHAT_ERR_BAD_FRAME = 0,
    NGX_FISHCHAT_ERR_FRAME_TOO_LARGE,
    NGX_FISHCHAT_ERR_UNKNOWN_COMMAND,
    NGX_FISHCHAT_ERR_BAD_ARGS,
    NGX_FISHCHAT_ERR_TIMEOUT,
    NGX_FISHCHAT_ERR_NO_MSG_SERVER,
    NGX_FISHCHAT_ERR_REDIS,
    NGX_FISHCHAT_ERR_NOT_LOGGED_IN,
    NGX_FISHCHAT_ERR_FORBIDDEN,
    NGX_FISHCHAT_ERR_INBOX_FULL,
    NGX_FISHCHAT_ERR_RATE_LIMITED,
    NGX_FISHCHAT_ERR_KICKED,
    NGX_FISHCHAT_ERR_SLOW_READER,
    NGX_FISHCHAT_ERR_TOPIC_EXISTS,
    NGX_FISHCHAT_ERR_NO_SUCH_TOPIC,
    NGX_FISHCHAT_ERR_NOT_MEMBER,
    NGX_FISHCHAT_ERR_NOT_CONFIRMED,
    NGX_FISHCHAT_ERR_DUPLICATE_UUID,
    NGX_FISHCHAT_ERR_AUTH_FAILED,
    NGX_FISHCHAT_ERR_TOKEN_EXPIRED,
    NGX_FISHCHAT_ERR_NO_SUCH_STREAM,
    NGX_FISHCHAT_ERR_FILE_TOO_LARGE,
    NGX_FISHCHAT_ERR_QUOTA_EXCEEDED,
    NGX_FISHCHAT_ERR_NO_SUCH_FILE,
    NGX_FISHCHAT_ERR_FILE_BUSY,
    NGX_FISHCHAT_ERR_LAST
} ngx_fishchat_err_e;


/* frame parser */

typedef struct {
    ngx_uint_t                  state;
    uint32_t                    length;
    size_t                      max;
    size_t                      have;
    u_char                     *buf;
    unsigned                    owned:1;
} ngx_fishchat_parser_t;


/* ngx_fishchat_parse_frame() results besides NGX_OK, NGX_AGAIN, NGX_ERROR */
#define NGX_FISHCHAT_FRAME_EMPTY      -10
#define NGX_FISHCHAT_FRAME_TOO_LARGE  -11


/* a decoded frame: CmdName and Args point into root */

typedef struct {
    ngx_str_t                   cmd;
    ngx_uint_t                  nargs;
    ngx_str_t                   args[NGX_FISHCHAT_MAX_ARGS];
    void                       *root;
} ngx_fishchat_frame_t;


/* an event's handler, its data and its log */
#define ngx_fishchat_event_init(ev, h, d, l)                                 \
    (ev)->handler = h;                                                       \
    (ev)->data = d;                                                          \
    (ev)->log = l


/* the command of a decoded frame is "name", a string literal (sizeof) */
#define ngx_fishchat_frame_is(m, name)                                       \
    ((m)->cmd.len == sizeof(name) - 1                                        \
     && ngx_strncmp((m)->cmd.data, name, sizeof(name) - 1) == 0)


/* counters of one server block in one worker, in the shared zone */

typedef struct {
    ngx_atomic_t                active;
    ngx_atomic_t                accepted;
    ngx_atomic_t                sessions;
    ngx_atomic_t                messages;
    ngx_atomic_t                frames_in;
    ngx_atomic_t                frames_out;
    ngx_atomic_t                bytes_in;
    ngx_atomic_t                bytes_out;
    ngx_atomic_t                errors;
    ngx_atomic_t                error[NGX_FISHCHAT_ERR_LAST];
} ngx_fishchat_counters_t;


typedef struct {
    ngx_pid_t                   pid;
    time_t                      started;

    /* gauges of the worker, published by the monitor each second */
    ngx_atomic_t                updated;      /* Unix ms; 0: never */
    ngx_atomic_t                connections;  /* nginx connections in use */
    ngx_atomic_t                redis;        /* NGX_FISHCHAT_REDIS_LINK_* */
    ngx_atomic_t                redis_sub;
    ngx_atomic_t                redis_rtt;    /* us, last PING; 0: unknown */
    ngx_atomic_t                redis_waiting;
    ngx_atomic_t                channels;     /* Redis channels subscribed */
    ngx_atomic_t                topics;       /* of them, topic channels */
    ngx_atomic_t                queued;       /* bytes in output queues */
    ngx_atomic_t                queues;       /* sessions with some queued */
    ngx_atomic_t                backlog;      /* topic messages not written
                                                 to every member yet */
    ngx_atomic_t                stalled;      /* sessions not read: over
                                                 fishchat_topic_backlog */
} ngx_fishchat_slot_t;


/*
 * The node's audio and video, in the counters zone: counted by the media
 * role's hooks (nginx-rtmp's notifications reach this node whichever
 * worker holds the RTMP connection), read by the monitor
 */

typedef struct {
    ngx_atomic_t                streams;      /* gauge: live publishers */
    ngx_atomic_t                viewers;      /* gauge: RTMP players */
    ngx_atomic_t                publishes;    /* publishes allowed */
    ngx_atomic_t                plays;        /* plays allowed */
    ngx_atomic_t                refused;      /* publishes, plays, updates */
    ngx_atomic_t                hls;          /* HLS and MP4 files allowed */
    ngx_atomic_t                hls_denied;
    ngx_atomic_t                recordings;   /* remuxed into MP4 */
    ngx_atomic_t                recordings_failed;
} ngx_fishchat_media_stats_t;

/* a figure of the node's media goes up or down by n, as one line */
#define ngx_fishchat_media_add(field, n)                                     \
    ngx_fishchat_media_count(offsetof(ngx_fishchat_media_stats_t, field), n)


/*
 * The node's files, in the counters zone next to the media: counted by
 * the files location (and its collector), read by the monitor
 */

typedef struct {
    ngx_atomic_t                uploads;      /* stored (201) */
    ngx_atomic_t                upload_bytes; /* their bytes */
    ngx_atomic_t                uploads_refused;  /* PUTs answered >= 400 */
    ngx_atomic_t                downloads;    /* files and thumbnails */
    ngx_atomic_t                probes;       /* posted to the threads */
    ngx_atomic_t                probe_failures;   /* kept as plain files */
    ngx_atomic_t                probe_queue;  /* gauge: posted, not done */
    ngx_atomic_t                collected;    /* removed by the collector */
} ngx_fishchat_files_stats_t;


/* a figure of the node's files goes up or down by n, as one line */
#define ngx_fishchat_files_add(field, n)                                     \
    ngx_fishchat_files_count(offsetof(ngx_fishchat_files_stats_t, field), n)


/*
 * An upload slot in the making (FILE_SLOT, POST /files/slots), see
 * ngx_fishchat_files.c: the caller sets owner, name, size and type
 */

typedef struct {
    ngx_str_t                   owner;
    ngx_str_t                   name;
    ngx_str_t                   type;       /* checked: lower-cased */
    off_t                       size;

    time_t                      expires;
    ngx_str_t                   exp;        /* expires, as text */
    ngx_str_t                   id;
    ngx_str_t                   sig;
    ngx_str_t                   put_url;
    ngx_str_t                   get_url;
    ngx_str_t                   args[NGX_FISHCHAT_FILES_SLOT_ARGS];

    u_char                      tbuf[NGX_FISHCHAT_FILES_TYPE_MAX];
    u_char                      sbuf[64];
    u_char                      num[5][NGX_INT64_LEN];
} ngx_fishchat_files_slot_t;


/* a role adds what it knows of its worker (queued bytes) to the gauges */
typedef void (*ngx_fishchat_stats_pt)(ngx_fishchat_slot_t *slot);


/*
 * A block of heap memory (ngx_alloc) shared by reference: it starts with
 * this header and is freed with its last reference
 */

typedef struct {
    ngx_uint_t                  refs;
} ngx_fishchat_chunk_t;


/* the output queue of a connection */

typedef struct ngx_fishchat_out_s  ngx_fishchat_out_t;

struct ngx_fishchat_out_s {
    ngx_fishchat_out_t         *next;
    u_char                     *pos;
    u_char                     *last;
    ngx_fishchat_chunk_t       *chunk;      /* NULL: a copy, in data */
    u_char                      data[1];
};


/* data to write: in a chunk (queued by reference) or not (copied) */

typedef struct {
    u_char                     *data;
    size_t                      len;
    ngx_fishchat_chunk_t       *chunk;
} ngx_fishchat_out_piece_t;


typedef struct {
    ngx_fishchat_out_t         *head;
    ngx_fishchat_out_t         *last;
    size_t                      bytes;
} ngx_fishchat_outq_t;


/* a JSON body being written (ngx_fishchat_json.c) */

typedef struct {
    ngx_pool_t                 *pool;
    ngx_chain_t                *first;
    ngx_chain_t                *last;
    off_t                       size;
    size_t                      chunk;
    ngx_uint_t                  failed;
} ngx_fishchat_json_t;


/* Redis */

typedef struct ngx_fishchat_redis_s  ngx_fishchat_redis_t;
typedef struct ngx_fishchat_redis_req_s  ngx_fishchat_redis_req_t;

/* reply is NULL when the command failed: Redis down, timeout, queue full */
typedef void (*ngx_fishchat_redis_handler_pt)(redisReply *reply, void *data);

/* a message on a subscribed channel */
typedef void (*ngx_fishchat_redis_message_pt)(ngx_str_t *payload,
    void *data);

/*
 * A subscription is confirmed: again after the link was down (messages
 * were lost meanwhile), or each time (ngx_fishchat_redis_subscribe_ready)
 */
typedef void (*ngx_fishchat_redis_resync_pt)(void *data);


typedef struct {
    ngx_str_t                   body;
    u_char                      sha[40];
} ngx_fishchat_redis_script_t;


/* a script of a role and where its conf keeps it */
typedef struct {
    char                       *body;
    size_t                      offset;
} ngx_fishchat_redis_script_slot_t;


#define NGX_FISHCHAT_REDIS_LINK_NONE        0   /* not configured, not made */
#define NGX_FISHCHAT_REDIS_LINK_DOWN        1
#define NGX_FISHCHAT_REDIS_LINK_CONNECTING  2
#define NGX_FISHCHAT_REDIS_LINK_UP          3

typedef struct {
    ngx_uint_t                  command;      /* NGX_FISHCHAT_REDIS_LINK_* */
    ngx_uint_t                  subscriber;
    ngx_uint_t                  waiting;      /* commands held while down */
    ngx_uint_t                  channels;     /* subscriptions confirmed */
    ngx_uint_t                  matched;      /* of them, with the prefix */
} ngx_fishchat_redis_stats_t;


typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   advertise;

    ngx_url_t                  *redis;
    ngx_str_t                   redis_password;
    ngx_int_t                   redis_db;
    ngx_str_t                   redis_prefix;
    ngx_msec_t                  redis_timeout;
    ngx_uint_t                  redis_queue;
    ngx_msec_t                  redis_flush_delay;

    size_t                      frame_max;

    ngx_array_t                 scripts;      /* redis_script_t * */
    ngx_array_t                 servers;      /* ngx_str_t: counters labels */
    ngx_array_t                 stream_servers;   /* the stream roles' srv
                                                     confs (void *) */
    ngx_shm_zone_t             *zone;
    size_t                      slot_size;

    /* login tokens (ngx_fishchat_auth.c) */
    ngx_str_t                   auth_secret;      /* HS*: the key */
    ngx_str_t                   auth_public_key;  /* RS*, ES*: PEM */
    ngx_uint_t                  auth_alg;         /* jwt_alg_t */
    time_t                      auth_leeway;
    ngx_str_t                   auth_audience;
    ngx_uint_t                  auth_required;    /* a server wants tokens */

    /* audio and video: the URLs handed out, the life of media tokens */
    ngx_str_t                   media_rtmp_url;
    ngx_str_t                   media_hls_url;
    ngx_str_t                   media_vod_url;
    time_t                      media_token_ttl;

    /* files: the URL handed out, the limits of uploads */
    ngx_str_t                   files_url;
    off_t                       files_max_size;
    off_t                       files_quota;      /* 0: none */
    time_t                      files_slot_ttl;
    time_t                      files_ttl;
    ngx_uint_t                  files_access;     /* NGX_FISHCHAT_FILES_* */
    time_t                      files_link_ttl;

    ngx_str_t                   sys[NGX_FISHCHAT_SYS_N];
    ngx_str_t                   beat_key;     /* P{nodes}:beat */
    ngx_str_t                   load_key;     /* P{nodes}:load */
    ngx_str_t                   topic_channels;   /* Pt: */
} ngx_fishchat_conf_t;


/*
 * A token's claims beyond "sub": "stream" and "act" are what the caller
 * expects of a token (ngx_fishchat_token_verify()) or puts in one
 * (ngx_fishchat_token_mint()): a login token has neither, a media token
 * both; "exp", "iat" and "sub" are what the token says.
 */

typedef struct {
    ngx_str_t                   stream;       /* empty: none */
    char                       *act;          /* NULL: none */
    time_t                      exp;
    time_t                      iat;          /* 0: not in the token */
    size_t                      sub_len;      /* what the token says */
    u_char                      sub[NGX_FISHCHAT_ID_MAX];
} ngx_fishchat_token_t;

/* ngx_fishchat_token_verify() besides NGX_OK and NGX_DECLINED (bad) */
#define NGX_FISHCHAT_TOKEN_EXPIRED    -20


/* a live msg server, from NGX_FISHCHAT_LUA_NODES */

typedef struct {
    ngx_str_t                   address;
    ngx_int_t                   ttl;          /* ms left */
    ngx_str_t                   node;
    ngx_int_t                   sessions;
    ngx_uint_t                  tls;          /* listens with TLS */
} ngx_fishchat_beat_t;


extern ngx_module_t  ngx_fishchat_module;


/* ngx_fishchat_module.c: configuration, counters, random seeds */
ngx_fishchat_conf_t *ngx_fishchat_get_conf(ngx_cycle_t *cycle);
ngx_int_t ngx_fishchat_redis_needed(ngx_cycle_t *cycle, char *directive);
ngx_fishchat_conf_t *ngx_fishchat_conf(ngx_conf_t *cf);
ngx_int_t ngx_fishchat_get_random(void *buf, size_t len, ngx_log_t *log);
ngx_int_t ngx_fishchat_counters_add(ngx_conf_t *cf, char *role,
    ngx_uint_t *index);
ngx_fishchat_counters_t *ngx_fishchat_counters(ngx_uint_t index);
u_char *ngx_fishchat_zone_slot(ngx_shm_zone_t *zone, ngx_uint_t n,
    ngx_fishchat_slot_t **slot);
ngx_int_t ngx_fishchat_zone_add(ngx_conf_t *cf);
time_t ngx_fishchat_zone_started(ngx_shm_zone_t *zone);
ngx_fishchat_media_stats_t *ngx_fishchat_media_stats(void);
void ngx_fishchat_media_count(size_t field, ngx_int_t n);
ngx_fishchat_files_stats_t *ngx_fishchat_files_stats(void);
void ngx_fishchat_files_count(size_t field, ngx_int_t n);
ngx_int_t ngx_fishchat_stats_handler(ngx_fishchat_stats_pt handler);
ngx_fishchat_slot_t *ngx_fishchat_worker_slot(void);
void ngx_fishchat_stats_collect(ngx_fishchat_slot_t *slot);

/* ngx_fishchat_frame.c: frames, errors, JSON escaping */
void ngx_fishchat_parser_init(ngx_fishchat_parser_t *p, size_t max);
ngx_int_t ngx_fishchat_parse_frame(ngx_fishchat_parser_t *p, ngx_buf_t *b,
    ngx_str_t *frame, ngx_log_t *log);
void ngx_fishchat_parser_free(ngx_fishchat_parser_t *p);

/* ngx_fishchat_frame_decode.c: a frame's JSON */
ngx_int_t ngx_fishchat_frame_decode(ngx_str_t *frame,
    ngx_fishchat_frame_t *m, u_char *err, size_t errlen);
ngx_int_t ngx_fishchat_frame_fast(ngx_str_t *frame, ngx_fishchat_frame_t *m);
ngx_int_t ngx_fishchat_frame_json(ngx_str_t *frame, ngx_fishchat_frame_t *m,
    u_char *err, size_t errlen);
ngx_int_t ngx_fishchat_frame_stored(ngx_str_t *frame, u_char *head,
    size_t len, ngx_fishchat_frame_t *m);
void ngx_fishchat_frame_free(ngx_fishchat_frame_t *m);
size_t ngx_fishchat_utf8_len(u_char *p, u_char *last);

size_t ngx_fishchat_frame_size(ngx_str_t *cmd, ngx_str_t *args,
    ngx_uint_t nargs);
u_char *ngx_fishchat_frame_write(u_char *p, ngx_str_t *cmd, ngx_str_t *args,
    ngx_uint_t nargs);
ngx_buf_t *ngx_fishchat_frame_buf(ngx_pool_t *pool, ngx_str_t *cmd,
    ngx_str_t *args, ngx_uint_t nargs);
ngx_int_t ngx_fishchat_frame_alloc(ngx_str_t *frame, ngx_str_t *cmd,
    ngx_str_t *args, ngx_uint_t nargs, ngx_log_t *log);
ngx_buf_t *ngx_fishchat_error_buf(ngx_pool_t *pool, ngx_fishchat_err_e err,
    ngx_str_t *text);
ngx_str_t *ngx_fishchat_err_code(ngx_fishchat_err_e err);
ngx_str_t ngx_fishchat_refusal(ngx_log_t *log, char *role,
    ngx_fishchat_counters_t *counters, ngx_fishchat_err_e err,
    ngx_uint_t fatal, u_char *buf, size_t size, const char *fmt,
    va_list args);
size_t ngx_fishchat_json_escape_len(ngx_str_t *s);
u_char *ngx_fishchat_json_escape(u_char *dst, ngx_str_t *s);

/* ngx_fishchat_json.c: JSON bodies of the HTTP roles */
void ngx_fishchat_json_init(ngx_fishchat_json_t *j, ngx_pool_t *pool,
    size_t size);
void ngx_cdecl ngx_fishchat_json_fmt(ngx_fishchat_json_t *j,
    const char *fmt, ...);
void ngx_fishchat_json_str(ngx_fishchat_json_t *j, ngx_str_t *s);
void ngx_fishchat_json_rstr(ngx_fishchat_json_t *j, redisReply *e);
void ngx_fishchat_json_rnum(ngx_fishchat_json_t *j, redisReply *e);
ngx_int_t ngx_fishchat_json_flatten(ngx_fishchat_json_t *j, ngx_str_t *s);

/* ngx_fishchat_keys.c: the keyspace (docs/keyspace.md) */
extern char  *ngx_fishchat_sys_names[];
ngx_int_t ngx_fishchat_valid_id(ngx_str_t *id);
ngx_str_t ngx_fishchat_key(u_char **p, char *kind, ngx_str_t *id,
    char *suffix);
ngx_str_t ngx_fishchat_key_pattern(u_char **p, char *kind);
ngx_int_t ngx_fishchat_keys_init(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf);
ngx_int_t ngx_fishchat_worker_channel(ngx_pool_t *pool, ngx_str_t *channel);
ngx_int_t ngx_fishchat_uuid_init(ngx_log_t *log);
void ngx_fishchat_uuid(u_char *p);
ngx_int_t ngx_fishchat_uuid_valid(ngx_str_t *uuid);
u_char *ngx_fishchat_load_encode(u_char *buf, size_t len, ngx_str_t *node,
    ngx_atomic_int_t sessions, ngx_uint_t tls);
ngx_int_t ngx_fishchat_load_decode(u_char *data, size_t len, ngx_pool_t *pool,
    ngx_str_t *node, ngx_int_t *sessions, ngx_uint_t *tls);
ngx_int_t ngx_fishchat_nodes_entry(redisReply *reply, ngx_uint_t i,
    ngx_pool_t *pool, ngx_fishchat_beat_t *beat);
ngx_int_t ngx_fishchat_media_target(ngx_str_t *target, ngx_str_t *topic);
void ngx_fishchat_media_stream(u_char *p);
void ngx_fishchat_media_publish_args(ngx_str_t *args, u_char **p,
    ngx_str_t *topic, ngx_str_t *stream, ngx_str_t *from, ngx_str_t *target,
    u_char *now);
void ngx_fishchat_send_args(ngx_str_t *args, u_char **p,
    ngx_fishchat_conf_t *fcf, ngx_str_t *to, ngx_str_t *uuid,
    ngx_str_t *frame, ngx_str_t *sender, ngx_str_t *channel,
    ngx_uint_t inbox_max, ngx_msec_t inbox_ttl, u_char *num);
void ngx_fishchat_topic_send_args(ngx_str_t *args, u_char **p,
    ngx_fishchat_conf_t *fcf, ngx_str_t *name, ngx_str_t *from,
    ngx_str_t *uuid, ngx_str_t *text, ngx_uint_t history, u_char *num);

/* ngx_fishchat_auth.c: login tokens */
char *ngx_fishchat_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_fishchat_auth_alg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_fishchat_auth_init_conf(ngx_cycle_t *cycle,
    ngx_fishchat_conf_t *fcf);
ngx_uint_t ngx_fishchat_auth_enabled(ngx_fishchat_conf_t *fcf);
ngx_int_t ngx_fishchat_token_verify(ngx_fishchat_conf_t *fcf,
    ngx_str_t *token, ngx_str_t *sub, ngx_fishchat_token_t *t,
    char **reason);
ngx_int_t ngx_fishchat_token_mint(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_str_t *id, time_t ttl, ngx_fishchat_token_t *t, ngx_str_t *token);
ngx_int_t ngx_fishchat_files_id(u_char *p);
ngx_int_t ngx_fishchat_files_get_sig(ngx_fishchat_conf_t *fcf, ngx_str_t *id,
    time_t exp, ngx_str_t *sig);
ngx_int_t ngx_fishchat_files_get_url(ngx_pool_t *pool,
    ngx_fishchat_conf_t *fcf, ngx_str_t *id, char *suffix, ngx_str_t *url);
size_t ngx_fishchat_files_link_len(ngx_fishchat_conf_t *fcf, size_t id,
    char *suffix);
u_char *ngx_fishchat_files_link(u_char *p, ngx_fishchat_conf_t *fcf,
    ngx_str_t *id, char *suffix);
ngx_int_t ngx_fishchat_files_sig(ngx_fishchat_conf_t *fcf, ngx_str_t *id,
    off_t size, ngx_str_t *type, time_t exp, ngx_str_t *sig);
ngx_int_t ngx_fishchat_media_url(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_str_t *sub, ngx_str_t *stream, char *act, ngx_str_t *url,
    time_t *expires);

/* ngx_fishchat_files.c: upload slots */
ngx_int_t ngx_fishchat_files_slot_check(ngx_fishchat_conf_t *fcf,
    ngx_fishchat_files_slot_t *s);
size_t ngx_fishchat_files_slot_len(ngx_fishchat_conf_t *fcf);
ngx_int_t ngx_fishchat_files_slot_make(ngx_fishchat_conf_t *fcf,
    ngx_fishchat_files_slot_t *s, u_char *urls, u_char **keys);

/* ngx_fishchat_out.c: output queues */
void ngx_fishchat_chunk_release(ngx_fishchat_chunk_t *chunk);
ngx_int_t ngx_fishchat_out_append(ngx_fishchat_outq_t *q, u_char *data,
    size_t len, ngx_log_t *log);
ngx_int_t ngx_fishchat_out_write(ngx_connection_t *c, ngx_fishchat_outq_t *q,
    u_char *data, size_t len, size_t max, ngx_fishchat_counters_t *counters);
ngx_int_t ngx_fishchat_out_writev(ngx_connection_t *c,
    ngx_fishchat_outq_t *q, ngx_fishchat_out_piece_t *pieces, ngx_uint_t n,
    size_t max, ngx_fishchat_counters_t *counters);
ngx_int_t ngx_fishchat_out_flush(ngx_connection_t *c, ngx_fishchat_outq_t *q,
    ngx_fishchat_counters_t *counters);
void ngx_fishchat_out_free(ngx_fishchat_outq_t *q);

/* ngx_fishchat_redis.c: the Redis links of each worker */
ngx_fishchat_redis_t *ngx_fishchat_redis_link(void);
ngx_fishchat_redis_req_t *ngx_fishchat_redis_command(
    ngx_fishchat_redis_t *link, ngx_fishchat_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen);
void ngx_fishchat_redis_cancel(ngx_fishchat_redis_req_t *req);
ngx_uint_t ngx_fishchat_redis_up(ngx_fishchat_redis_t *link);
ngx_int_t ngx_fishchat_redis_start(ngx_cycle_t *cycle);
ngx_fishchat_redis_script_t *ngx_fishchat_redis_script(ngx_conf_t *cf,
    char *body);
ngx_int_t ngx_fishchat_redis_scripts(ngx_conf_t *cf, void *conf,
    ngx_fishchat_redis_script_slot_t *slots);
ngx_fishchat_redis_req_t *ngx_fishchat_redis_eval(ngx_fishchat_redis_t *link,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    void *data, ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args);
ngx_int_t ngx_fishchat_redis_str(redisReply *e, ngx_str_t *s);
ngx_int_t ngx_fishchat_redis_subscribe(ngx_cycle_t *cycle,
    ngx_str_t *channel, ngx_fishchat_redis_message_pt handler,
    ngx_fishchat_redis_resync_pt resync, void *data);
ngx_int_t ngx_fishchat_redis_subscribe_ready(ngx_cycle_t *cycle,
    ngx_str_t *channel, ngx_fishchat_redis_message_pt handler,
    ngx_fishchat_redis_resync_pt ready, void *data);
void ngx_fishchat_redis_unsubscribe(ngx_str_t *channel);
void ngx_fishchat_redis_sub_pause(ngx_uint_t pause);
ngx_msec_t ngx_fishchat_redis_rtt(ngx_fishchat_redis_t *link);
void ngx_fishchat_redis_stats(ngx_fishchat_redis_stats_t *st,
    ngx_str_t *prefix);
ngx_uint_t ngx_fishchat_redis_unknown(void);
ngx_uint_t ngx_fishchat_redis_replying(void);
void ngx_fishchat_redis_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_FISHCHAT_H_INCLUDED_ */
