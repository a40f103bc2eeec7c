
/*
 * FishChat for nginx: topics of the msg server role, private to
 * ngx_stream_fishchat_topic.c (the commands, membership, configuration)
 * and ngx_stream_fishchat_topic_fanout.c (delivery to the members: the
 * messages of a topic's channel, catch-ups from the history, positions).
 */


#ifndef _NGX_STREAM_FISHCHAT_TOPIC_H_INCLUDED_
#define _NGX_STREAM_FISHCHAT_TOPIC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>
#include "ngx_fishchat.h"
#include "ngx_stream_fishchat_msg_private.h"


/* how often positions are written to Redis, ms */
#define NGX_STREAM_FISHCHAT_TOPIC_SAVE       5000

/* live messages a member may hold while it catches up */
#define NGX_STREAM_FISHCHAT_TOPIC_HELD_MAX   1000

/* member writes a pass of the delivery event, and its time (us) */
#define NGX_STREAM_FISHCHAT_TOPIC_SLICE      64
#define NGX_STREAM_FISHCHAT_TOPIC_SLICE_US   1000

/* frames a write to a member */
#define NGX_STREAM_FISHCHAT_TOPIC_PIECES     64

/* messages on this worker's lists: past it, the subscriber link pauses */

/* the buffer of the catch-up pages is kept up to this size */
#define NGX_STREAM_FISHCHAT_TOPIC_BUF_KEEP   65536


struct ngx_stream_fishchat_topic_conf_s {
    ngx_fishchat_redis_script_t    *create;
    ngx_fishchat_redis_script_t    *join;
    ngx_fishchat_redis_script_t    *leave;
    ngx_fishchat_redis_script_t    *members;
    ngx_fishchat_redis_script_t    *send;
    ngx_fishchat_redis_script_t    *catchup;
    ngx_fishchat_redis_script_t    *save;
    ngx_fishchat_redis_script_t    *client_topic;
};


/*
 * A message as this worker writes it, shared by the members: the topic's
 * list, held lists and output queues hold references to it
 */

typedef struct {
    ngx_fishchat_chunk_t            chunk;     /* first: freed with it */
    ngx_queue_t                     queue;     /* in the topic's list */
    uint64_t                        seq;
    ngx_str_t                       legacy;    /* RESP_MESSAGE_TOPIC, 3 args */
    ngx_str_t                       optin;     /* the same with the uuid */
    u_char                          data[1];
} ngx_stream_fishchat_topic_msg_t;


typedef struct ngx_stream_fishchat_topic_held_s
    ngx_stream_fishchat_topic_held_t;

struct ngx_stream_fishchat_topic_held_s {
    ngx_stream_fishchat_topic_held_t  *next;
    ngx_stream_fishchat_topic_msg_t   *msg;
};


/* a topic with members logged in on this worker */

typedef struct {
    ngx_str_node_t                  node;       /* node.str: the name */
    ngx_queue_t                     members;
    ngx_uint_t                      nmembers;
    ngx_uint_t                      nwaiting;   /* members not live */
    ngx_uint_t                      busy;       /* a fan-out is under way */
    uint64_t                        seq;        /* last live one, 0: none */
    ngx_queue_t                     msgs;       /* not written to all yet */
    ngx_uint_t                      nmsgs;
    ngx_queue_t                     pending;    /* in the worker's list */
    ngx_queue_t                    *cursor;     /* next member of a pass */
    ngx_queue_t                     dirty;
    ngx_str_t                       channel;
    unsigned                        ready:1;    /* subscription confirmed */
    unsigned                        in_pending:1;
    unsigned                        in_dirty:1;
    unsigned                        retry:1;    /* a catch-up failed */
    unsigned                        gone:1;     /* freed when not busy */
    u_char                          data[1];    /* name, channel */
} ngx_stream_fishchat_topic_t;


/* a session's membership of a topic */

typedef struct {
    ngx_queue_t                     in_topic;
    ngx_queue_t                     in_sess;
    ngx_stream_fishchat_topic_t    *topic;
    ngx_stream_fishchat_msg_session_t  *sess;
    ngx_fishchat_redis_req_t       *req;        /* catch-up under way */
    uint64_t                        pos;        /* last one written */
    uint64_t                        sent;       /* last one out of the queue */
    uint64_t                        saved;      /* last one in Redis */
    uint64_t                        saving;
    ngx_stream_fishchat_topic_held_t  *held;
    ngx_stream_fishchat_topic_held_t  *held_last;
    ngx_uint_t                      nheld;
    unsigned                        live:1;     /* caught up: from the list */
    unsigned                        known:1;    /* pos is known */
    unsigned                        again:1;    /* catch up once more */
    unsigned                        paused:1;   /* until the queue is out */
} ngx_stream_fishchat_topic_member_t;


struct ngx_stream_fishchat_topic_worker_s {
    ngx_rbtree_t                    topics;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     dirty;
    ngx_event_t                     save;
    ngx_queue_t                     pending;    /* topics with output */
    ngx_event_t                     deliver;
    ngx_uint_t                      nmsgs;      /* on the topics' lists */
    ngx_cycle_t                    *cycle;
    ngx_stream_fishchat_topic_conf_t  *conf;
    u_char                         *buf;        /* frames of a catch-up */
    size_t                          buf_size;
    ngx_fishchat_out_piece_t        pieces[NGX_STREAM_FISHCHAT_TOPIC_PIECES];
};


/* ngx_stream_fishchat_topic.c */

ngx_int_t ngx_stream_fishchat_topic_start(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    char *cmd, ngx_uint_t min, ngx_uint_t max, ngx_uint_t id_arg,
    ngx_stream_fishchat_msg_call_t **call, ngx_str_t *args);
ngx_int_t ngx_stream_fishchat_topic_call(ngx_stream_fishchat_msg_call_t *call,
    ngx_fishchat_redis_script_t *script, ngx_fishchat_redis_handler_pt handler,
    ngx_uint_t nkeys, ngx_uint_t nargs, ngx_str_t *args,
    ngx_stream_fishchat_msg_call_t **callp);
ngx_int_t ngx_stream_fishchat_topic_client_set(char *cmd,
    ngx_str_t *id, ngx_str_t *name, ngx_fishchat_redis_handler_pt handler,
    void *data, ngx_fishchat_redis_req_t **req);

/* ngx_stream_fishchat_topic_invite.c */

ngx_int_t ngx_stream_fishchat_topic_invite(
    ngx_stream_fishchat_msg_session_t *sess, ngx_fishchat_frame_t *m,
    ngx_uint_t invite);

/* ngx_stream_fishchat_topic_fanout.c */

ngx_stream_fishchat_topic_member_t *ngx_stream_fishchat_topic_attach(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name);
void ngx_stream_fishchat_topic_detach(
    ngx_stream_fishchat_topic_member_t *mb);
ngx_stream_fishchat_topic_member_t *ngx_stream_fishchat_topic_mine_find(
    ngx_stream_fishchat_msg_session_t *sess, ngx_str_t *name);
void ngx_stream_fishchat_topic_deliver_handler(ngx_event_t *ev);
void ngx_stream_fishchat_topic_save(ngx_stream_fishchat_topic_t *t,
    ngx_stream_fishchat_topic_member_t *only);
void ngx_stream_fishchat_topic_save_handler(ngx_event_t *ev);


#endif /* _NGX_STREAM_FISHCHAT_TOPIC_H_INCLUDED_ */
