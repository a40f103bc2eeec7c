
/*
 * fc-load: a load generator for the msg server of FishChat for nginx.
 *
 *     fc-load idle    -n N [-t SECS] [-p PIDFILE] [-P PROCS] ...
 *     fc-load p2p     -n N [-r RATE] [-t SECS] [-w WINDOW] ...
 *     fc-load offline -n K [-m M] ...
 *     fc-load topic   -T TOPICS -M MEMBERS [-S SENDERS] [-r RATE] [-t SECS] ...
 *     fc-load mqtt    -n N [-r RATE] [-t SECS] [-w WINDOW] ...
 *     fc-load mqtt-idle -n N [-t SECS] [-p PIDFILE] ...
 *
 * Every client speaks the seed protocol (4-byte big-endian length, then
 * {"CmdName":"X","Args":[...]}\n), opts in with HELLO 1 and logs in with
 * SEND_CLIENT_ID <prefix><n>; but the mqtt modes speak MQTT 3.1.1 (to
 * another server, for comparison) through the hooks start, input and
 * ping of their fc_mode_t.  One process holds many non-blocking
 * connections on an epoll loop; -P forks that many processes, each with
 * its share of the connections, to get past the per-process open-files
 * limit.  The parent only coordinates: it starts and stops the phases
 * through a pipe to each child, reads their figures back through another,
 * adds them up and prints a summary and one "RESULT key=value ..." line.
 *
 * Exit codes: 0 all well; 1 usage or set-up; 2 protocol errors, failed
 * logins, closed sessions or the time limit; 3 lost messages.
 *
 * Dependencies: libc, and OpenSSL for -E (TLS).  The files:
 *
 *     fc_core.c     main, the options, the table of modes; the parent and
 *                   its children (fork, the pipes), a child's event loop
 *     fc_conn.c     connections: connect, log in, read, write, and the
 *                   frames of every mode (ACCEPTED, ERROR, LOGIN_OK, ...)
 *     fc_frame.c    the frame codec: the length prefix and JSON
 *     fc_stats.c    time, the histogram, CPU and memory from /proc, the
 *                   figures a child reports, the summaries' shared parts
 *     fc_run.c      a measured run (warm-up, window, drain; at a rate or
 *                   flat out), for the modes that send (p2p, mqtt, topic)
 *     fc_tls.c      TLS (-E): the handshake on the epoll loop, SSL_read
 *                   and SSL_write, the records received
 *     fc_idle.c, fc_p2p.c, fc_offline.c, fc_topic.c: a mode each, with its
 *                   fc_mode_t (below), listed in fc_modes[] (fc_core.c)
 *     fc_mqtt.c     mqtt and mqtt-idle: p2p and idle over MQTT 3.1.1
 */


#ifndef FC_LOAD_H
#define FC_LOAD_H


#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <sys/types.h>


#define FC_MAX_SERVERS      16
#define FC_MAX_PROCS        64
#define FC_MAX_ARGS         8
#define FC_MAX_WORKERS      64
#define FC_READ_SIZE        (256 * 1024)
#define FC_FRAME_MAX        (16 * 1024 * 1024)
#define FC_EVENTS           1024
#define FC_ID_LEN           160
#define FC_TEXT_SIZE        4096
#define FC_SWEEP_NS         (200 * FC_MS)
#define FC_QUIET_NS         (500 * FC_MS)
#define FC_LOG_MAX          5
#define FC_BACKOFF_NS       (100 * FC_MS)

/* latency histogram: exact below 256 us, then 128 steps per power of 2 */
#define FC_HIST_SIZE        (256 + 40 * 128)

#define FC_MS               1000000LL
#define FC_SEC              1000000000LL

#define FC_EXIT_OK          0
#define FC_EXIT_SETUP       1
#define FC_EXIT_ERRORS      2
#define FC_EXIT_LOST        3


/* a connection */

enum {
    FC_FREE = 0,
    FC_CONNECTING,
    FC_LOGGING_IN,
    FC_READY,
    FC_CLOSED
};


/* the phases of a child; a mode's own ones count from FC_PH_MODE */

enum {
    FC_PH_LOGIN = 0,        /* connecting and logging in */
    FC_PH_WAIT,             /* READY sent, waiting for the parent */
    FC_PH_RUN,              /* a measured run: sending */
    FC_PH_DRAIN,            /* no more sending, waiting for the rest */
    FC_PH_DONE,             /* DRAINED sent, waiting for "S" */
    FC_PH_MODE
};


/* the codes of ERROR frames, counted apart (fc_stats.c), the last "OTHER" */

extern const char  *fc_err_codes[];

#define FC_ERR_N  18
#define FC_ERR_OTHER  (FC_ERR_N - 1)


typedef struct fc_mode_s  fc_mode_t;

typedef struct {
    const fc_mode_t    *mode;
    struct sockaddr_in  servers[FC_MAX_SERVERS];
    char               *server_names[FC_MAX_SERVERS];
    unsigned            nservers;
    long                n;
    long                m;
    long                sessions;     /* in all, shared by the processes */
    long                topics;       /* topic: -T */
    long                members;      /* topic: -M, a topic */
    long                senders;      /* topic: -S, a topic */
    double              rate;
    unsigned            window;
    double              secs;
    double              warmup;
    unsigned            procs;
    unsigned            conc;
    unsigned            sources;
    double              conn_timeout;
    double              limit;
    double              drain;
    double              ping;
    size_t              msg_size;
    char               *pidfile;
    char               *redis_pidfile;
    char                prefix[64];
    int                 quiet;
    int                 tls;          /* -E: 13 (TLS 1.3) or 12; 0: none */
    int                 server_self;  /* -p names the server process itself
                                         (mqtt: mosquitto), not a master
                                         whose children are the workers */
} fc_conf_t;


/* figures of a child, added up by the parent */

typedef struct {
    uint64_t            conns;
    uint64_t            logged_in;
    uint64_t            login_failed;
    uint64_t            closed;
    uint64_t            timeouts;
    uint64_t            bad_frames;
    uint64_t            unexpected;
    uint64_t            sent;
    uint64_t            accepted;
    uint64_t            refused;
    uint64_t            delivered;
    uint64_t            acked;
    uint64_t            pings;
    uint64_t            pongs;
    uint64_t            w_sent;
    uint64_t            w_accepted;
    uint64_t            w_delivered;
    uint64_t            behind;
    uint64_t            lat_max;
    uint64_t            acc_max;
    uint64_t            login_first;
    uint64_t            login_last;
    uint64_t            cpu_ns;
    uint64_t            wait_ns;
    uint64_t            store_ns;
    uint64_t            drain_ns;
    uint64_t            recip_login_ns;
    uint64_t            unique;
    uint64_t            duplicates;
    uint64_t            unknown;
    uint64_t            redelivered;
    uint64_t            late;
    uint64_t            drain_timeout;
    uint64_t            joined;
    uint64_t            topic_exists;
    uint64_t            gaps;
    uint64_t            w_frames;     /* frames received in the window */
    uint64_t            tls_records;  /* application-data records in */
    uint64_t            tls_bytes;
    uint64_t            w_tls_records;
    uint64_t            w_tls_bytes;
    uint64_t            errors[FC_ERR_N];
    uint64_t            hist[FC_HIST_SIZE];
    uint64_t            acc_hist[FC_HIST_SIZE];
    unsigned            nworkers;
    long                worker_pid[FC_MAX_WORKERS];
    uint64_t            worker_sessions[FC_MAX_WORKERS];
} fc_stats_t;


enum {
    FC_AGG_SUM = 0,
    FC_AGG_MIN,
    FC_AGG_MAX
};

typedef struct {
    const char         *name;
    size_t              off;
    int                 agg;
} fc_field_t;

extern fc_field_t  fc_fields[];


typedef struct fc_conn_s  fc_conn_t;

struct fc_conn_s {
    int                 fd;
    int                 state;
    uint32_t            idx;          /* the id: <prefix><idx> */
    uint32_t            inflight;     /* messages without ACCEPTED */
    uint32_t            seq;
    uint32_t            server;
    long                worker;       /* pid from LOGIN_OK */
    int64_t             deadline;     /* of the connect and login */
    int64_t             next_ping;
    int64_t             hold;         /* no sending before, after a refusal */
    char               *in;
    size_t              in_len;
    size_t              in_size;
    char               *out;
    size_t              out_pos;
    size_t              out_len;
    size_t              out_size;
    fc_conn_t          *next_dirty;
    struct ssl_st      *ssl;          /* -E */
    unsigned            dirty:1;
    unsigned            wait_write:1;
    unsigned            setup:1;      /* the mode's set-up after LOGIN_OK
                                         is under way (topic: the join) */
};


typedef struct {
    const char         *cmd;
    size_t              cmd_len;
    unsigned            nargs;
    char               *arg[FC_MAX_ARGS];
    size_t              len[FC_MAX_ARGS];
} fc_msg_t;


typedef struct {
    uint64_t            hi;
    uint64_t            lo;
    uint32_t            used;
    uint32_t            seen;
} fc_uuid_t;


#define fc_is(m, name)                                                       \
    ((m)->cmd_len == sizeof(name) - 1                                        \
     && memcmp((m)->cmd, name, sizeof(name) - 1) == 0)


/* the state of a child */

typedef struct {
    unsigned            k;
    int                 epfd;
    int                 ctl;
    FILE               *res;
    char                ctl_buf[256];
    size_t              ctl_len;

    fc_conn_t          *conns;
    uint32_t            nconns;
    uint32_t            base;         /* global index of conns[0] */
    uint32_t            conn_next;    /* the next one to connect */
    uint32_t            conn_end;
    uint32_t            connecting;
    uint32_t            setting_up;   /* logged in, the mode's set-up not
                                         done yet (topic: joining) */
    fc_conn_t          *dirty;

    int                 phase;
    int64_t             deadline;
    int64_t             start;        /* a measured run: sending starts */
    int64_t             ws;           /* the measured window */
    int64_t             we;
    int64_t             cpu_ws;
    uint64_t            wait_ws;
    int64_t             last_rx;
    int64_t             next_sweep;

    uint64_t            rnd[2];
    uint64_t            rate_sent;
    double              rate;         /* this process's share, per ns */
    uint32_t            rr;

    /* the sessions that send: every one in p2p, -S a topic in topic */
    fc_conn_t         **snd;
    uint32_t            nsnd;

    fc_stats_t          st;
    unsigned            logs;
    char               *rbuf;
} fc_proc_t;


/* server CPU over the measured window: nginx workers, Redis */

typedef struct {
    unsigned    nworkers;
    long        workers[FC_MAX_WORKERS];
    long        redis;
    uint64_t    wcpu;
    uint64_t    rcpu;
    uint64_t    wwait;
    uint64_t    rwait;
} fc_cpu_t;


/* the parent during a run: nginx workers, CPU samples, times */

typedef struct {
    unsigned    nworkers;     /* nginx workers, in cpu0.workers */
    uint64_t    rss_before;
    uint64_t    rss_after;    /* idle */
    int64_t     start;        /* the processes started; a measured run:
                                 sending started ("G") */
    int64_t     until;        /* the time limit */
    fc_cpu_t    cpu0;         /* at the start of the measured window */
    fc_cpu_t    cpu1;         /* at its end */
} fc_parent_t;


/*
 * A mode: "fc-load <name> ..." picks it from fc_modes[] (fc_core.c).  Each
 * hook but run and result may be NULL; the hooks that return int return
 * 0 when all is well, unless said otherwise.
 */

struct fc_mode_s {
    const char   *name;
    const char   *usage;          /* its lines in the usage text */
    double        limit;          /* the default time limit beyond -C, s */
    const char   *setup_timeout;  /* why a session is lost whose set-up
                                     after LOGIN_OK (c->setup) is not done
                                     within -C of its connect */

    /* main(): the options; a failed check has said why (exit 1) */
    int         (*option)(int ch, double v);  /* 0: the mode took it */
    int         (*conf)(void);    /* before the checks of every mode */
    int         (*check)(void);   /* after them; adds to the time limit */

    /* a child */
    size_t      (*id)(char *buf, uint32_t idx);   /* NULL: <prefix><idx> */

    /*
     * A mode with a framing of its own (mqtt): start, connected (and the
     * TLS handshake done), queues its login in place of HELLO and
     * SEND_CLIENT_ID (0, or -1 when it closed the connection) and calls
     * fc_logged_in() when it is done; input takes the bytes received in
     * place of the frame codec: it handles the packet at p if all of it
     * is there and returns its length, 0 when it is not (the bytes wait
     * for more), -1 when it closed the connection; ping queues a ping in
     * place of SEND_PING (0: queued).
     */
    int         (*start)(fc_conn_t *c);
    long        (*input)(fc_conn_t *c, char *p, size_t len);
    int         (*ping)(fc_conn_t *c);

    int         (*sender)(fc_conn_t *c);  /* 1: it sends; NULL: every one */
    int         (*init)(void);    /* the sessions are set up: its tables,
                                     its share of -r, perhaps its phase */
    int         (*tick)(int64_t now);  /* every phase but LOGIN, WAIT and
                                          DONE; returns the epoll timeout */
    int         (*sending)(void); /* 1: sending besides a measured run */
    void        (*send)(fc_conn_t *c, int64_t now);   /* one message */
    void        (*login)(fc_conn_t *c);               /* LOGIN_OK came */
    int         (*frame)(fc_conn_t *c, fc_msg_t *m, int64_t now);
                                  /* any frame, first; 1: it took it */
    void        (*accepted)(fc_msg_t *m);         /* ACCEPTED, counted */
    void        (*delivered)(fc_msg_t *m, int64_t now);
                                  /* RESP_MESSAGE_P2P, counted, not acked */
    void        (*report)(FILE *f);   /* lines of its own to the parent */

    /* the parent */
    int         (*line)(char *line);  /* 1: a line of its own */
    int         (*run)(fc_parent_t *p);   /* the phases; an exit code */
    int         (*result)(fc_parent_t *p, int rc);  /* summary, RESULT */
};


extern const fc_mode_t  fc_idle_mode;
extern const fc_mode_t  fc_p2p_mode;
extern const fc_mode_t  fc_offline_mode;
extern const fc_mode_t  fc_topic_mode;
extern const fc_mode_t  fc_mqtt_mode;
extern const fc_mode_t  fc_mqtt_idle_mode;


extern fc_conf_t    fc_conf;
extern fc_proc_t    fc;

/* the parent: the children's figures, added up */
extern fc_stats_t   fc_total;
extern uint64_t     fc_ready_logged;
extern uint64_t     fc_ready_failed;
extern uint64_t     fc_ready_first;
extern uint64_t     fc_ready_last;


/* fc_core.c */

uint64_t fc_random(void);
uint64_t fc_atou(const char *p, size_t len);
void fc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fc_tell(const char *line);

/* what the parent waits for from every child */

enum {
    FC_WANT_READY = 0,
    FC_WANT_DRAINED,
    FC_WANT_END,
    FC_WANT_NOTHING
};

int fc_parent_wait(int what, int64_t until);
void fc_parent_tell(const char *line);
uint64_t fc_children_cpu(void);
double fc_login_secs(void);
int fc_login_wait(fc_parent_t *p);

/* fc_conn.c */

void fc_dirty(fc_conn_t *c);
void fc_flush_dirty(void);
size_t fc_id(char *buf, uint32_t idx);
void fc_conn_close(fc_conn_t *c);
void fc_conn_lost(fc_conn_t *c, const char *why, int err);
void fc_login_start(fc_conn_t *c);
void fc_logged_in(fc_conn_t *c, long worker, int64_t now);
void fc_connect_more(void);
int fc_received(int64_t now);
void fc_frame_in(fc_conn_t *c, char *p, size_t len);
void fc_event(fc_conn_t *c, uint32_t events);
void fc_sweep(int64_t now);

/* fc_frame.c */

int fc_frame_out(fc_conn_t *c, const char *cmd, unsigned nargs,
    const char **args, const size_t *lens);
char *fc_out_alloc(fc_conn_t *c, size_t len);
int fc_json_msg(char *p, size_t len, fc_msg_t *m);
void fc_input(fc_conn_t *c, char *data, size_t len);

/* fc_stats.c */

int64_t fc_now(void);
int64_t fc_cpu_now(void);
uint64_t fc_sched_wait(long pid);
unsigned fc_hist_idx(uint64_t v);
void fc_hist_add(uint64_t *hist, uint64_t *max, int64_t sent, int64_t now);
uint64_t fc_hist_pct(uint64_t *hist, double q, uint64_t max);
unsigned fc_err_idx(const char *code, size_t len);
void fc_stats_worker(fc_stats_t *st, long pid, uint64_t n);
long fc_read_pidfile(const char *path);
unsigned fc_nginx_workers(long *pids, unsigned max);
uint64_t fc_proc_rss(long pid);
uint64_t fc_proc_cpu(long pid);
void fc_cpu_sample(fc_cpu_t *s);
void fc_print_lat(const char *what, uint64_t *hist, uint64_t max);
uint64_t fc_errors_total(void);
void fc_print_errors(void);
void fc_print_workers(void);
void fc_print_behind(void);
void fc_print_cpu(fc_parent_t *p, double secs);
void fc_result_lat(uint64_t *hist, uint64_t max);
void fc_result_cpu(fc_parent_t *p, double secs);
void fc_result_errors(void);
uint64_t fc_undelivered(uint64_t *extra);
void fc_print_run(double secs, const char *acked);
void fc_result_run(double secs);
void fc_result_lost(uint64_t lost, uint64_t extra);
int fc_result_end(int rc, uint64_t lost, const char *accepted);

/* fc_run.c */

size_t fc_stamp(char *text, fc_conn_t *c, int64_t now, size_t *stamp_len);
void fc_sent(fc_conn_t *c, int64_t now);
void fc_answered(fc_conn_t *c, int64_t now, int refused);
void fc_refill(int64_t now);
int fc_run_tick(int64_t now);
int fc_run_parent(fc_parent_t *p);
int fc_run_check(void);       /* the modes of 1:1 messages (p2p, mqtt) */
int fc_run_init(void);

/* fc_tls.c */

int fc_tls_init(void);
int fc_tls_start(fc_conn_t *c);
void fc_tls_handshake(fc_conn_t *c);
ssize_t fc_tls_send(fc_conn_t *c, const char *p, size_t len);
void fc_tls_read(fc_conn_t *c);
void fc_tls_free(fc_conn_t *c);
void fc_tls_print(double secs, uint64_t delivered);
void fc_tls_result(double secs, uint64_t delivered);

/* fc_idle.c: sessions held, also for mqtt-idle */

int fc_idle_check(void);
int fc_idle_run(fc_parent_t *p);
int fc_idle_result(fc_parent_t *p, int rc);

/* fc_p2p.c: 1:1 messages, also for offline */

uint64_t fc_uuid_hash(uint64_t hi, uint64_t lo);
int fc_uuid_init(uint64_t want);
fc_uuid_t *fc_uuid_find(const char *s, size_t len, int add);
fc_uuid_t *fc_uuid_get(uint64_t hi, uint64_t lo, int add);
void fc_p2p_message(fc_conn_t *c, uint32_t peer, int64_t now);


#endif /* FC_LOAD_H */
