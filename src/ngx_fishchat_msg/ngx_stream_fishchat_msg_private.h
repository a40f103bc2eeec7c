
/*
 * FishChat for nginx: what the files of the msg server role share (the
 * session, the worker, and the helpers of ngx_stream_fishchat_msg_module.c
 * that ngx_stream_fishchat_topic.c uses).  Private to the role: other
 * modules include ngx_stream_fishchat_msg.h.
 */


#ifndef _NGX_STREAM_FISHCHAT_MSG_PRIVATE_H_INCLUDED_
#define _NGX_STREAM_FISHCHAT_MSG_PRIVATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_stream_fishchat_msg.h"


#define NGX_STREAM_FISHCHAT_MSG_READ_SIZE   16384
#define NGX_STREAM_FISHCHAT_MSG_SNI_ROOM    64
#define NGX_STREAM_FISHCHAT_MSG_VERSION     "1"


/*
 * Live notices of the media role come from "{media}" (no client id has
 * braces); their first line has at most this many words (MEDIA_RECORDING)
 */
#define NGX_STREAM_FISHCHAT_MEDIA_WORDS     7

#define ngx_stream_fishchat_msg_media_from(s)                                \
    ((s)->len == sizeof("{media}") - 1                                       \
     && ngx_strncmp((s)->data, "{media}", sizeof("{media}") - 1) == 0)

/*
 * File messages (SEND_FILE_P2P, SEND_FILE_TOPIC) are stored as messages
 * from "{file}" too; a frame made of one has at most this many arguments
 * (RESP_FILE_TOPIC)
 */
#define NGX_STREAM_FISHCHAT_MSG_FILE_FROM   "{file}"
#define NGX_STREAM_FISHCHAT_MSG_ARGS        9

#define ngx_stream_fishchat_msg_file_from(s)                                 \
    ((s)->len == sizeof(NGX_STREAM_FISHCHAT_MSG_FILE_FROM) - 1               \
     && ngx_strncmp((s)->data, NGX_STREAM_FISHCHAT_MSG_FILE_FROM,            \
                    sizeof(NGX_STREAM_FISHCHAT_MSG_FILE_FROM) - 1) == 0)


typedef struct ngx_stream_fishchat_topic_conf_s
    ngx_stream_fishchat_topic_conf_t;
typedef struct ngx_stream_fishchat_topic_worker_s
    ngx_stream_fishchat_topic_worker_t;


typedef struct {
    ngx_flag_t                      enabled;
    ngx_str_t                       advertise;
    ngx_msec_t                      keepalive;
    ngx_uint_t                      inbox_max;
    ngx_msec_t                      inbox_ttl;
    ngx_uint_t                      rate;
    ngx_uint_t                      burst;
    size_t                          send_buffer;
    ngx_uint_t                      topic_history;
    ngx_uint_t                      counters;
    ngx_uint_t                      auth;         /* fishchat_msg_auth */
    ngx_uint_t                      login_rate;   /* a minute, 0: off */
    ngx_uint_t                      login_burst;
    ngx_uint_t                      ssl;          /* listen ... ssl */
    ngx_stream_core_srv_conf_t     *cscf;
} ngx_stream_fishchat_msg_srv_conf_t;


#define NGX_STREAM_FISHCHAT_MSG_AUTH_OFF     0
#define NGX_STREAM_FISHCHAT_MSG_AUTH_TOKEN   1


typedef struct {
    ngx_msec_t                      heartbeat;
    ngx_int_t                       topic_backlog;
    ngx_array_t                     servers;  /* msg_srv_conf_t * */
    ngx_fishchat_redis_script_t    *login;
    ngx_fishchat_redis_script_t    *send;
    ngx_fishchat_redis_script_t    *ack;
    ngx_fishchat_redis_script_t    *logout;
    ngx_fishchat_redis_script_t    *beat;
    ngx_fishchat_redis_script_t    *fetch;
    ngx_fishchat_redis_script_t    *revoked;
    ngx_fishchat_redis_script_t    *media_publish;
    ngx_fishchat_redis_script_t    *media_play;
    ngx_fishchat_redis_script_t    *file_slot;
    ngx_fishchat_redis_script_t    *file_send;
    ngx_fishchat_redis_script_t    *file_ref;
    ngx_fishchat_redis_script_t    *file_url;
    ngx_fishchat_redis_script_t    *file_topic;
    ngx_fishchat_redis_script_t    *file_delete;
    ngx_stream_fishchat_topic_conf_t  *topic;
} ngx_stream_fishchat_msg_main_conf_t;




/*
 * A session: in its connection's pool, with what nginx allocates for the
 * connection (see ngx_stream_fishchat_msg_pool_size()); its id is
 * allocated at login, of its own length.  The fields are ordered to leave
 * no padding between them: an idle session costs what it holds.
 */

typedef struct {
    ngx_str_node_t                  node;       /* node.str: the id, or 0 */
    ngx_stream_session_t           *s;
    ngx_connection_t               *c;
    ngx_stream_fishchat_msg_srv_conf_t  *conf;
    ngx_fishchat_counters_t        *counters;
    ngx_fishchat_parser_t           parser;

    uint64_t                        sid;

    ngx_fishchat_outq_t             out;
    ngx_fishchat_outq_t             held;       /* arrived during login */

    ngx_queue_t                     reqs;
    ngx_queue_t                     topics;     /* topic memberships */
    ngx_queue_t                     stalled;    /* in the worker's list */

    ngx_event_t                    *expiry;     /* the token's end */

    u_char                         *stash;      /* read during login */
    size_t                          stash_len;

    ngx_msec_t                      rate_last;
    ngx_uint_t                      rate_tokens;   /* thousandths */
    ngx_uint_t                      rate_strikes;

    u_char                          inbox_after[NGX_INT64_LEN];
    u_char                          inbox_gen[13];
    u_char                          inbox_after_len;
    u_char                          inbox_gen_len;

    unsigned                        optin:1;
    unsigned                        logging_in:1;
    unsigned                        logged_in:1;
    unsigned                        in_table:1;
    unsigned                        eof:1;
    unsigned                        inbox_more:1;
    unsigned                        inbox_missed:1;
    unsigned                        inbox_fetching:1;
    unsigned                        closed:1;
    unsigned                        kicked:1;
    unsigned                        is_stalled:1;
    unsigned                        acks_queued:1;
} ngx_stream_fishchat_msg_session_t;


/* a Redis command under way for a session */

typedef struct {
    ngx_queue_t                     queue;
    ngx_stream_fishchat_msg_session_t  *sess;   /* NULL: the sender left */
    ngx_fishchat_counters_t        *counters;
    ngx_fishchat_redis_req_t       *req;
    ngx_str_t                       ref;
    ngx_str_t                       to;
    ngx_str_t                       frame;
    ngx_str_t                       file;       /* of a file message */
    ngx_uint_t                      resync;
    u_char                          uuid[NGX_FISHCHAT_UUID_LEN];
    u_char                          data[1];
} ngx_stream_fishchat_msg_call_t;


/* whether Redis keeps what it is told: asked once it answers */

#define NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASK      0
#define NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_ASKING   1
#define NGX_STREAM_FISHCHAT_MSG_PERSISTENCE_KNOWN    2


/* the logins of recent client addresses (fishchat_msg_login_rate) */

#define NGX_STREAM_FISHCHAT_MSG_LIMITER_SIZE  4096

typedef struct {
    ngx_rbtree_node_t               node;       /* key: crc32 of addr */
    ngx_queue_t                     queue;      /* least recent first */
    ngx_msec_t                      last;
    ngx_uint_t                      excess;     /* thousandths of a login */
    u_char                          len;
    u_char                          addr[16];
} ngx_stream_fishchat_msg_login_t;


typedef struct {
    ngx_rbtree_t                    tree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     lru;
    ngx_uint_t                      used;
    ngx_stream_fishchat_msg_login_t  *logins;   /* LIMITER_SIZE of them */
} ngx_stream_fishchat_msg_limiter_t;


/* the state of this worker */

typedef struct {
    ngx_rbtree_t                    sessions;
    ngx_rbtree_node_t               sentinel;
    ngx_str_t                       channel;
    ngx_event_t                     beat;
    uint64_t                        serial;
    ngx_stream_fishchat_msg_main_conf_t  *mmcf;
    ngx_fishchat_conf_t            *fcf;
    u_char                         *scratch;
    size_t                          scratch_size;
    ngx_stream_fishchat_topic_worker_t  *topics;
    ngx_queue_t                     stalled;    /* sessions not read */
    ngx_uint_t                      overloaded;
    ngx_uint_t                      persistence;  /* PERSISTENCE_* below */
    ngx_stream_fishchat_msg_limiter_t  *logins;   /* login rates */
    u_char                          read[NGX_STREAM_FISHCHAT_MSG_READ_SIZE];
} ngx_stream_fishchat_msg_worker_t;


extern ngx_module_t  ngx_stream_fishchat_msg_module;
extern ngx_stream_fishchat_msg_worker_t  *ngx_stream_fishchat_msg_worker;


/* ngx_stream_fishchat_msg_session.c */

ngx_int_t ngx_stream_fishchat_msg_refuse(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_err_e err,
    ngx_uint_t fatal, const char *fmt, ...);
ngx_int_t ngx_stream_fishchat_msg_needs(
    ngx_stream_fishchat_msg_session_t *sess, char *cmd, char *directives);
ngx_int_t ngx_stream_fishchat_msg_not_stored(
    ngx_stream_fishchat_msg_session_t *sess, redisReply *reply);
ngx_int_t ngx_stream_fishchat_msg_reply(
    ngx_stream_fishchat_msg_session_t *sess, char *cmd, ngx_str_t *args,
    ngx_uint_t nargs);
ngx_int_t ngx_stream_fishchat_msg_accepted(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *args);
ngx_int_t ngx_stream_fishchat_msg_write(
    ngx_stream_fishchat_msg_session_t *sess, u_char *data, size_t len);
ngx_int_t ngx_stream_fishchat_msg_writev(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_out_piece_t *pieces,
    ngx_uint_t n);
void ngx_stream_fishchat_msg_close(ngx_stream_fishchat_msg_session_t *sess);
ngx_stream_fishchat_msg_call_t *ngx_stream_fishchat_msg_call(
    ngx_stream_fishchat_msg_session_t *sess, size_t size);
ngx_stream_fishchat_msg_call_t *ngx_stream_fishchat_msg_call_str(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *to, ngx_str_t *ref,
    size_t more, u_char **last);
void ngx_stream_fishchat_msg_call_done(ngx_stream_fishchat_msg_call_t *call);
ngx_int_t ngx_stream_fishchat_msg_call_eval(
    ngx_stream_fishchat_msg_call_t *call, ngx_fishchat_redis_script_t *script,
    ngx_fishchat_redis_handler_pt handler, ngx_uint_t nkeys, ngx_uint_t nargs,
    ngx_str_t *args, char *what);
void ngx_stream_fishchat_msg_call_refused(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply, char *what, ngx_fishchat_err_e none, char *forbidden,
    char *missing);
ngx_int_t ngx_stream_fishchat_msg_send_check(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *ref);


/* ngx_stream_fishchat_msg_session.c */

void ngx_stream_fishchat_msg_handler(ngx_stream_session_t *s);
void ngx_stream_fishchat_msg_resync(void *data);
ngx_int_t ngx_stream_fishchat_msg_deliver(
    ngx_stream_fishchat_msg_session_t *sess, u_char *frame, size_t len);
ngx_stream_fishchat_msg_session_t *ngx_stream_fishchat_msg_find(
    ngx_str_t *id);
void ngx_stream_fishchat_msg_channel(ngx_str_t *payload, void *data);

/* ngx_stream_fishchat_msg_module.c */

char *ngx_stream_fishchat_msg_burst(ngx_conf_t *cf, ngx_uint_t *burst);

/* ngx_stream_fishchat_msg_auth.c */

extern char  ngx_stream_fishchat_msg_revoked_lua[];
char *ngx_stream_fishchat_msg_login_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_stream_fishchat_msg_limiter_init(
    ngx_stream_fishchat_msg_worker_t *w, ngx_log_t *log);
ngx_int_t ngx_stream_fishchat_msg_auth_login(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    ngx_str_t *iat);
void ngx_stream_fishchat_msg_auth_cleanup(
    ngx_stream_fishchat_msg_session_t *sess);
ngx_int_t ngx_stream_fishchat_msg_refresh(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);

/* ngx_stream_fishchat_msg_media.c */

extern char  ngx_stream_fishchat_msg_media_publish_lua[];
extern char  ngx_stream_fishchat_msg_media_play_lua[];
ngx_int_t ngx_stream_fishchat_msg_media_publish(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_int_t ngx_stream_fishchat_msg_media_play(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_uint_t ngx_stream_fishchat_msg_media_words(ngx_str_t *text,
    ngx_str_t *word, ngx_str_t *rest);
ngx_uint_t ngx_stream_fishchat_msg_media_own(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *frame);

/* ngx_stream_fishchat_msg_files.c */

extern char  ngx_stream_fishchat_msg_file_slot_lua[];
extern char  ngx_stream_fishchat_msg_file_delete_lua[];
ngx_int_t ngx_stream_fishchat_msg_file_slot(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_int_t ngx_stream_fishchat_msg_file_delete(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);

/* ngx_stream_fishchat_msg_file_msg.c */

extern char  ngx_stream_fishchat_msg_file_send_lua[];
extern char  ngx_stream_fishchat_msg_file_ref_lua[];
extern char  ngx_stream_fishchat_msg_file_url_lua[];
extern char  ngx_stream_fishchat_msg_file_topic_lua[];
ngx_int_t ngx_stream_fishchat_msg_file_send(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_int_t ngx_stream_fishchat_msg_file_url(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
void ngx_stream_fishchat_msg_file_sent(ngx_stream_fishchat_msg_call_t *call,
    redisReply *reply);
ngx_uint_t ngx_stream_fishchat_msg_file_frame(ngx_str_t *topic,
    ngx_str_t *uuid, ngx_str_t *text, ngx_uint_t optin, ngx_pool_t **pool,
    ngx_str_t **cmd, ngx_str_t *args);
ngx_uint_t ngx_stream_fishchat_msg_file_own(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *frame);

/* ngx_stream_fishchat_msg_p2p.c */

ngx_int_t ngx_stream_fishchat_msg_p2p(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_int_t ngx_stream_fishchat_msg_p2p_send(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *to, ngx_str_t *text,
    ngx_str_t *from, ngx_str_t *ref, u_char *uuid);
ngx_int_t ngx_stream_fishchat_msg_acks_init(ngx_cycle_t *cycle,
    ngx_fishchat_conf_t *fcf);
void ngx_stream_fishchat_msg_acks_flush(void);
ngx_int_t ngx_stream_fishchat_msg_ack(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);


/* ngx_stream_fishchat_topic.c */

ngx_int_t ngx_stream_fishchat_topic_command(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m);
ngx_int_t ngx_stream_fishchat_topic_post(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name,
    ngx_str_t *text, ngx_str_t *ref, ngx_str_t *file);
void ngx_stream_fishchat_topic_login(ngx_stream_fishchat_msg_session_t *sess);
void ngx_stream_fishchat_topic_cleanup(
    ngx_stream_fishchat_msg_session_t *sess);
void ngx_stream_fishchat_topic_drained(
    ngx_stream_fishchat_msg_session_t *sess);
void ngx_stream_fishchat_msg_overload(ngx_uint_t on);
ngx_uint_t ngx_stream_fishchat_topic_backlog(void);
void ngx_stream_fishchat_topic_control(
    ngx_stream_fishchat_msg_session_t *sess, u_char op, ngx_str_t *name);
char *ngx_stream_fishchat_topic_conf(ngx_conf_t *cf,
    ngx_stream_fishchat_msg_main_conf_t *mmcf);
ngx_int_t ngx_stream_fishchat_topic_init_worker(ngx_cycle_t *cycle,
    ngx_stream_fishchat_msg_worker_t *w);
void ngx_stream_fishchat_topic_exit_worker(
    ngx_stream_fishchat_msg_worker_t *w);


#endif /* _NGX_STREAM_FISHCHAT_MSG_PRIVATE_H_INCLUDED_ */
