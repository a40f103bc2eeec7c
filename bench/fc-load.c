
/*
 * fc-load: a load generator for the msg server of FishChat for nginx.
 *
 *     fc-load idle    -n N [-t SECS] [-p PIDFILE] [-P PROCS] ...
 *     fc-load p2p     -n N [-r RATE] [-t SECS] [-w WINDOW] ...
 *     fc-load offline -n K [-m M] ...
 *     fc-load topic   -T TOPICS -M MEMBERS [-S SENDERS] [-r RATE] [-t SECS] ...
 *
 * Every client speaks the seed protocol (4-byte big-endian length, then
 * {"CmdName":"X","Args":[...]}\n), opts in with HELLO 1 and logs in with
 * SEND_CLIENT_ID <prefix><n>.  One process holds many non-blocking
 * connections on an epoll loop; -P forks that many processes, each with
 * its share of the connections, to get past the per-process open-files
 * limit.  The parent only coordinates: it starts and stops the phases
 * through a pipe to each child, reads their figures back through another,
 * adds them up and prints a summary and one "RESULT key=value ..." line.
 *
 * Exit codes: 0 all well; 1 usage or set-up; 2 protocol errors, failed
 * logins, closed sessions or the time limit; 3 lost messages.
 *
 * No dependencies beyond libc: cc -O2 -Wall -Wextra -o fc-load fc-load.c
 */


#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>


#define FC_MAX_SERVERS      16
#define FC_MAX_PROCS        64
#define FC_MAX_ARGS         8
#define FC_MAX_WORKERS      64
#define FC_READ_SIZE        (256 * 1024)
#define FC_FRAME_MAX        (16 * 1024 * 1024)
#define FC_EVENTS           1024
#define FC_ID_LEN           160
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


typedef enum {
    FC_IDLE = 0,
    FC_P2P,
    FC_OFFLINE,
    FC_TOPIC
} fc_mode_e;


/* a connection */

enum {
    FC_FREE = 0,
    FC_CONNECTING,
    FC_LOGGING_IN,
    FC_READY,
    FC_CLOSED
};


/* the phases of a child */

enum {
    FC_PH_LOGIN = 0,        /* connecting and logging in */
    FC_PH_WAIT,             /* READY sent, waiting for the parent */
    FC_PH_RUN,              /* p2p: sending */
    FC_PH_DRAIN,            /* p2p: no more sending, waiting for the rest */
    FC_PH_SENDER,           /* offline: the sender logs in */
    FC_PH_STORE,            /* offline: K messages to offline ids */
    FC_PH_INBOX,            /* offline: recipients log in, inboxes drain */
    FC_PH_SETTLE,           /* offline: let the acks reach Redis */
    FC_PH_RELOGIN,          /* offline: again, nothing may come back */
    FC_PH_DONE              /* DRAINED sent, waiting for "S" */
};


static const char  *fc_err_codes[] = {
    "BAD_FRAME",
    "FRAME_TOO_LARGE",
    "UNKNOWN_COMMAND",
    "BAD_ARGS",
    "TIMEOUT",
    "NO_MSG_SERVER",
    "REDIS_UNAVAILABLE",
    "NOT_LOGGED_IN",
    "FORBIDDEN",
    "INBOX_FULL",
    "RATE_LIMITED",
    "KICKED",
    "SLOW_READER",
    "NOT_CONFIRMED",
    "TOPIC_EXISTS",
    "NO_SUCH_TOPIC",
    "NOT_MEMBER",
    "OTHER"
};

#define FC_ERR_N  (sizeof(fc_err_codes) / sizeof(fc_err_codes[0]))
#define FC_ERR_OTHER  (FC_ERR_N - 1)


typedef struct {
    fc_mode_e           mode;
    struct sockaddr_in  servers[FC_MAX_SERVERS];
    char               *server_names[FC_MAX_SERVERS];
    unsigned            nservers;
    long                n;
    long                m;
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

#define fc_field(name, agg)  { #name, offsetof(fc_stats_t, name), agg }

static fc_field_t  fc_fields[] = {
    fc_field(conns, FC_AGG_SUM),
    fc_field(logged_in, FC_AGG_SUM),
    fc_field(login_failed, FC_AGG_SUM),
    fc_field(closed, FC_AGG_SUM),
    fc_field(timeouts, FC_AGG_SUM),
    fc_field(bad_frames, FC_AGG_SUM),
    fc_field(unexpected, FC_AGG_SUM),
    fc_field(sent, FC_AGG_SUM),
    fc_field(accepted, FC_AGG_SUM),
    fc_field(refused, FC_AGG_SUM),
    fc_field(delivered, FC_AGG_SUM),
    fc_field(acked, FC_AGG_SUM),
    fc_field(pings, FC_AGG_SUM),
    fc_field(pongs, FC_AGG_SUM),
    fc_field(w_sent, FC_AGG_SUM),
    fc_field(w_accepted, FC_AGG_SUM),
    fc_field(w_delivered, FC_AGG_SUM),
    fc_field(behind, FC_AGG_SUM),
    fc_field(lat_max, FC_AGG_MAX),
    fc_field(acc_max, FC_AGG_MAX),
    fc_field(login_first, FC_AGG_MIN),
    fc_field(login_last, FC_AGG_MAX),
    fc_field(cpu_ns, FC_AGG_SUM),
    fc_field(wait_ns, FC_AGG_SUM),
    fc_field(store_ns, FC_AGG_MAX),
    fc_field(drain_ns, FC_AGG_MAX),
    fc_field(recip_login_ns, FC_AGG_MAX),
    fc_field(unique, FC_AGG_SUM),
    fc_field(duplicates, FC_AGG_SUM),
    fc_field(unknown, FC_AGG_SUM),
    fc_field(redelivered, FC_AGG_SUM),
    fc_field(late, FC_AGG_SUM),
    fc_field(drain_timeout, FC_AGG_SUM),
    fc_field(joined, FC_AGG_SUM),
    fc_field(topic_exists, FC_AGG_SUM),
    fc_field(gaps, FC_AGG_SUM),
    { NULL, 0, 0 }
};


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
    unsigned            dirty:1;
    unsigned            wait_write:1;
    unsigned            joined:1;     /* topic: LOCATE_TOPIC_MSG_ADDR came */
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


/*
 * topic mode: a message, by its key (sender index << 32 | seq), with the
 * receipts of the members this process holds; the parent merges them
 */

typedef struct {
    uint64_t            key;          /* 0: a free slot; stored as key + 1 */
    int64_t             sent;         /* from the text */
    int64_t             first;        /* the first receipt */
    int64_t             last;         /* the last receipt */
    uint32_t            count;        /* receipts */
    uint32_t            own;          /* sent by this process */
    uint32_t            accepted;     /* ACCEPTED came */
    uint32_t            pad;
} fc_tmsg_t;


typedef struct {
    fc_tmsg_t          *slots;
    uint64_t            mask;
    uint64_t            count;
} fc_ttab_t;


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
    fc_conn_t          *dirty;

    int                 phase;
    int64_t             deadline;
    int64_t             start;        /* p2p: sending starts */
    int64_t             ws;           /* the measured window */
    int64_t             we;
    int64_t             cpu_ws;
    uint64_t            wait_ws;
    int64_t             last_rx;
    int64_t             next_sweep;
    int64_t             until;

    uint64_t            rnd[2];
    uint64_t            rate_sent;
    double              rate;         /* this process's share, per ns */
    uint32_t            rr;

    /* offline */
    uint64_t            store_start;
    uint64_t            drain_start;
    uint64_t            last_delivery;
    fc_uuid_t          *uuids;
    uint64_t            uuid_mask;
    uint64_t            uuid_count;
    unsigned            relogin:1;

    /* the sessions that send: every one in p2p, -S a topic in topic */
    fc_conn_t         **snd;
    uint32_t            nsnd;

    /* topic */
    uint32_t            joining;
    fc_ttab_t           tmsgs;

    fc_stats_t          st;
    unsigned            logs;
    char               *rbuf;
} fc_proc_t;


static fc_conf_t   fc_conf;
static fc_proc_t   fc;
static char        fc_ctl_tag;


static void fc_usage(void);
static int fc_parse_servers(char *list);
static int fc_parent(void);
static void fc_child(unsigned k, int ctl, int res);
static int64_t fc_now(void);


/* time, randomness, numbers */

static int64_t
fc_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * FC_SEC + ts.tv_nsec;
}


static int64_t
fc_cpu_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return (int64_t) ts.tv_sec * FC_SEC + ts.tv_nsec;
}


/* the time a process waited for a CPU while runnable, in ns */

static uint64_t
fc_sched_wait(long pid)
{
    FILE                *f;
    char                 path[64];
    unsigned long long   run, wait;

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/schedstat");

    } else {
        snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
    }

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fscanf(f, "%llu %llu", &run, &wait) != 2) {
        wait = 0;
    }

    fclose(f);

    return wait;
}


static uint64_t
fc_random(void)
{
    uint64_t  x, y;

    x = fc.rnd[0];
    y = fc.rnd[1];
    fc.rnd[0] = y;
    x ^= x << 23;
    fc.rnd[1] = x ^ y ^ (x >> 17) ^ (y >> 26);

    return fc.rnd[1] + y;
}


static uint64_t
fc_atou(const char *p, size_t len)
{
    uint64_t  v;

    v = 0;

    while (len && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t) (*p++ - '0');
        len--;
    }

    return v;
}


static void
fc_log(const char *fmt, ...)
{
    va_list  args;

    if (fc.logs >= 50) {
        return;
    }

    fc.logs++;

    fprintf(stderr, "fc-load[%u]: ", fc.k);

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}


/* the histogram */

static unsigned
fc_hist_idx(uint64_t v)
{
    int       msb, shift;
    unsigned  idx;

    if (v < 256) {
        return (unsigned) v;
    }

    msb = 63 - __builtin_clzll(v);
    shift = msb - 7;
    idx = 256 + (unsigned) (shift - 1) * 128 + (unsigned) ((v >> shift) - 128);

    return idx < FC_HIST_SIZE ? idx : FC_HIST_SIZE - 1;
}


/* the upper edge of a bucket */

static uint64_t
fc_hist_value(unsigned idx)
{
    unsigned  shift;
    uint64_t  m;

    if (idx < 256) {
        return idx;
    }

    shift = (idx - 256) / 128 + 1;
    m = (idx - 256) % 128 + 128;

    return ((m + 1) << shift) - 1;
}


static uint64_t
fc_hist_count(uint64_t *hist)
{
    unsigned  i;
    uint64_t  n;

    n = 0;

    for (i = 0; i < FC_HIST_SIZE; i++) {
        n += hist[i];
    }

    return n;
}


static uint64_t
fc_hist_pct(uint64_t *hist, double q, uint64_t max)
{
    unsigned  i;
    uint64_t  n, want, sum, v;

    n = fc_hist_count(hist);

    if (n == 0) {
        return 0;
    }

    want = (uint64_t) (q * (double) n + 0.999999);
    if (want == 0) {
        want = 1;
    }

    sum = 0;

    for (i = 0; i < FC_HIST_SIZE; i++) {
        sum += hist[i];

        if (sum >= want) {
            v = fc_hist_value(i);
            return v < max ? v : max;
        }
    }

    return max;
}


/* offline mode: the uuids handed out with ACCEPTED */

static int
fc_uuid_parse(const char *s, size_t len, uint64_t *hi, uint64_t *lo)
{
    size_t    i;
    unsigned  n, d;
    uint64_t  v[2];
    char      ch;

    if (len != 36) {
        return -1;
    }

    v[0] = 0;
    v[1] = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        ch = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') {
                return -1;
            }

            continue;
        }

        if (ch >= '0' && ch <= '9') {
            d = (unsigned) (ch - '0');

        } else if (ch >= 'a' && ch <= 'f') {
            d = (unsigned) (ch - 'a' + 10);

        } else if (ch >= 'A' && ch <= 'F') {
            d = (unsigned) (ch - 'A' + 10);

        } else {
            return -1;
        }

        v[n / 16] = (v[n / 16] << 4) | d;
        n++;
    }

    *hi = v[0];
    *lo = v[1];

    return 0;
}


static uint64_t
fc_uuid_hash(uint64_t hi, uint64_t lo)
{
    uint64_t  h;

    h = (hi ^ (lo * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;

    return h ^ (h >> 29);
}


static int
fc_uuid_init(uint64_t want)
{
    uint64_t  size;

    size = 1024;

    while (size < 2 * want) {
        size *= 2;
    }

    fc.uuids = calloc(size, sizeof(fc_uuid_t));
    if (fc.uuids == NULL) {
        return -1;
    }

    fc.uuid_mask = size - 1;
    fc.uuid_count = 0;

    return 0;
}


/* doubles the table when it is half full */

static int
fc_uuid_grow(void)
{
    uint64_t    i, h, mask;
    fc_uuid_t  *old, *u;

    old = fc.uuids;
    mask = fc.uuid_mask;

    if (fc_uuid_init(mask + 1) != 0) {
        fc.uuids = old;
        fc.uuid_mask = mask;
        return -1;
    }

    for (i = 0; i <= mask; i++) {
        if (!old[i].used) {
            continue;
        }

        for (h = fc_uuid_hash(old[i].hi, old[i].lo); ; h++) {
            u = &fc.uuids[h & fc.uuid_mask];

            if (!u->used) {
                *u = old[i];
                fc.uuid_count++;
                break;
            }
        }
    }

    free(old);

    return 0;
}


static fc_uuid_t *
fc_uuid_find(const char *s, size_t len, int add)
{
    uint64_t    hi, lo, h;
    fc_uuid_t  *u;

    if (fc_uuid_parse(s, len, &hi, &lo) != 0) {
        return NULL;
    }

    if (add && 2 * (fc.uuid_count + 1) > fc.uuid_mask + 1
        && fc_uuid_grow() != 0)
    {
        return NULL;
    }

    for (h = fc_uuid_hash(hi, lo); ; h++) {
        u = &fc.uuids[h & fc.uuid_mask];

        if (!u->used) {
            if (!add) {
                return NULL;
            }

            u->used = 1;
            u->hi = hi;
            u->lo = lo;
            fc.uuid_count++;
            return u;
        }

        if (u->hi == hi && u->lo == lo) {
            return u;
        }
    }
}


/* topic mode: messages by key, an open-addressing table that grows */

static int
fc_ttab_init(fc_ttab_t *t, uint64_t want)
{
    uint64_t  size;

    size = 1024;

    while (size < 2 * want) {
        size *= 2;
    }

    t->slots = calloc(size, sizeof(fc_tmsg_t));
    if (t->slots == NULL) {
        return -1;
    }

    t->mask = size - 1;
    t->count = 0;

    return 0;
}


static fc_tmsg_t *
fc_ttab_get(fc_ttab_t *t, uint64_t key)
{
    uint64_t    i, h, stored;
    fc_ttab_t   old;
    fc_tmsg_t  *m;

    stored = key + 1;

    if (2 * (t->count + 1) > t->mask + 1) {
        old = *t;

        if (fc_ttab_init(t, old.mask + 1) != 0) {
            *t = old;
            return NULL;
        }

        for (i = 0; i <= old.mask; i++) {
            if (old.slots[i].key == 0) {
                continue;
            }

            for (h = fc_uuid_hash(old.slots[i].key, 0); ; h++) {
                m = &t->slots[h & t->mask];

                if (m->key == 0) {
                    *m = old.slots[i];
                    t->count++;
                    break;
                }
            }
        }

        free(old.slots);
    }

    for (h = fc_uuid_hash(stored, 0); ; h++) {
        m = &t->slots[h & t->mask];

        if (m->key == stored) {
            return m;
        }

        if (m->key == 0) {
            m->key = stored;
            t->count++;
            return m;
        }
    }
}


/* "<send time>:<sender index>:<seq>..." */

static int
fc_topic_key(const char *p, size_t len, int64_t *sent, uint64_t *key)
{
    const char  *last, *q;
    uint64_t     v[3];
    unsigned     i;

    last = p + len;

    for (i = 0; i < 3; i++) {
        q = p;
        v[i] = 0;

        while (p < last && *p >= '0' && *p <= '9') {
            v[i] = v[i] * 10 + (uint64_t) (*p++ - '0');
        }

        if (p == q || (i < 2 && (p == last || *p++ != ':'))) {
            return -1;
        }
    }

    *sent = (int64_t) v[0];
    *key = (v[1] << 32) | (v[2] & 0xffffffff);

    return 0;
}


/* JSON */

static char *
fc_json_escape(char *d, const char *s, size_t len)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      ch;

    while (len--) {
        ch = (unsigned char) *s++;

        if (ch == '"' || ch == '\\') {
            *d++ = '\\';
            *d++ = (char) ch;

        } else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
            *d++ = '\\';
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[ch >> 4];
            *d++ = hex[ch & 0xf];

        } else {
            *d++ = (char) ch;
        }
    }

    return d;
}


static char *
fc_json_ws(char *p, char *last)
{
    while (p < last && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
    {
        p++;
    }

    return p;
}


static int
fc_json_hex4(char *p, char *last, unsigned *cp)
{
    int       i;
    unsigned  v, d;

    if (last - p < 4) {
        return -1;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            d = (unsigned) (p[i] - '0');

        } else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f') {
            d = (unsigned) ((p[i] | 0x20) - 'a' + 10);

        } else {
            return -1;
        }

        v = (v << 4) | d;
    }

    *cp = v;

    return 0;
}


/* a string at *pp, unescaped in place; the unescaped text never grows */

static int
fc_json_str(char **pp, char *last, char **out, size_t *out_len)
{
    char      *p, *d;
    unsigned   cp, lo;

    p = *pp;

    if (p >= last || *p != '"') {
        return -1;
    }

    p++;
    d = p;
    *out = d;

    while (p < last) {

        if (*p == '"') {
            *out_len = (size_t) (d - *out);
            *pp = p + 1;
            return 0;
        }

        if (*p != '\\') {
            *d++ = *p++;
            continue;
        }

        if (++p >= last) {
            return -1;
        }

        switch (*p) {

        case '"':
        case '\\':
        case '/':
            *d++ = *p++;
            continue;

        case 'b':
            *d++ = '\b';
            p++;
            continue;

        case 'f':
            *d++ = '\f';
            p++;
            continue;

        case 'n':
            *d++ = '\n';
            p++;
            continue;

        case 'r':
            *d++ = '\r';
            p++;
            continue;

        case 't':
            *d++ = '\t';
            p++;
            continue;

        case 'u':
            if (fc_json_hex4(p + 1, last, &cp) != 0) {
                return -1;
            }

            p += 5;

            if (cp >= 0xd800 && cp < 0xdc00
                && last - p >= 6 && p[0] == '\\' && p[1] == 'u'
                && fc_json_hex4(p + 2, last, &lo) == 0
                && lo >= 0xdc00 && lo < 0xe000)
            {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }

            if (cp < 0x80) {
                *d++ = (char) cp;

            } else if (cp < 0x800) {
                *d++ = (char) (0xc0 | (cp >> 6));
                *d++ = (char) (0x80 | (cp & 0x3f));

            } else if (cp < 0x10000) {
                *d++ = (char) (0xe0 | (cp >> 12));
                *d++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char) (0x80 | (cp & 0x3f));

            } else {
                *d++ = (char) (0xf0 | (cp >> 18));
                *d++ = (char) (0x80 | ((cp >> 12) & 0x3f));
                *d++ = (char) (0x80 | ((cp >> 6) & 0x3f));
                *d++ = (char) (0x80 | (cp & 0x3f));
            }

            continue;

        default:
            return -1;
        }
    }

    return -1;
}


/* {"CmdName":"X","Args":["a",...]}, whitespace anywhere, keys any order */

static int
fc_json_msg(char *p, size_t len, fc_msg_t *m)
{
    char    *last, *key, *s;
    size_t   key_len, s_len;

    last = p + len;

    m->cmd = NULL;
    m->cmd_len = 0;
    m->nargs = 0;

    p = fc_json_ws(p, last);

    if (p >= last || *p++ != '{') {
        return -1;
    }

    p = fc_json_ws(p, last);

    if (p < last && *p == '}') {
        return -1;
    }

    for ( ;; ) {
        p = fc_json_ws(p, last);

        if (fc_json_str(&p, last, &key, &key_len) != 0) {
            return -1;
        }

        p = fc_json_ws(p, last);

        if (p >= last || *p++ != ':') {
            return -1;
        }

        p = fc_json_ws(p, last);

        if (key_len == 4 && memcmp(key, "Args", 4) == 0
            && p < last && *p == '[')
        {
            p = fc_json_ws(p + 1, last);

            if (p < last && *p == ']') {
                p++;

            } else {
                for ( ;; ) {
                    if (m->nargs == FC_MAX_ARGS) {
                        return -1;
                    }

                    if (fc_json_str(&p, last, &m->arg[m->nargs],
                                    &m->len[m->nargs])
                        != 0)
                    {
                        return -1;
                    }

                    m->nargs++;

                    p = fc_json_ws(p, last);

                    if (p < last && *p == ',') {
                        p = fc_json_ws(p + 1, last);
                        continue;
                    }

                    if (p < last && *p == ']') {
                        p++;
                        break;
                    }

                    return -1;
                }
            }

        } else if (last - p >= 4 && memcmp(p, "null", 4) == 0) {
            p += 4;

        } else {
            if (fc_json_str(&p, last, &s, &s_len) != 0) {
                return -1;
            }

            if (key_len == 7 && memcmp(key, "CmdName", 7) == 0) {
                m->cmd = s;
                m->cmd_len = s_len;
            }
        }

        p = fc_json_ws(p, last);

        if (p < last && *p == ',') {
            p++;
            continue;
        }

        if (p < last && *p == '}') {
            p++;
            break;
        }

        return -1;
    }

    p = fc_json_ws(p, last);

    if (p != last || m->cmd == NULL) {
        return -1;
    }

    return 0;
}


#define fc_is(m, name)                                                       \
    ((m)->cmd_len == sizeof(name) - 1                                        \
     && memcmp((m)->cmd, name, sizeof(name) - 1) == 0)


/* connections: output */

static void fc_conn_close(fc_conn_t *c);
static void fc_conn_lost(fc_conn_t *c, const char *why, int err);
static void fc_flush(fc_conn_t *c);


static int
fc_epoll(fc_conn_t *c, int op, uint32_t events)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.ptr = c;

    return epoll_ctl(fc.epfd, op, c->fd, &ev);
}


static int
fc_out_reserve(fc_conn_t *c, size_t need)
{
    char    *p;
    size_t   size;

    if (c->out_len + need <= c->out_size) {
        return 0;
    }

    if (c->out_pos) {
        memmove(c->out, c->out + c->out_pos, c->out_len - c->out_pos);
        c->out_len -= c->out_pos;
        c->out_pos = 0;

        if (c->out_len + need <= c->out_size) {
            return 0;
        }
    }

    size = c->out_size ? c->out_size * 2 : 512;

    while (size < c->out_len + need) {
        size *= 2;
    }

    p = realloc(c->out, size);
    if (p == NULL) {
        return -1;
    }

    c->out = p;
    c->out_size = size;

    return 0;
}


static void
fc_dirty(fc_conn_t *c)
{
    if (!c->dirty && !c->wait_write) {
        c->dirty = 1;
        c->next_dirty = fc.dirty;
        fc.dirty = c;
    }
}


/* queues a frame; it is written at the end of the loop iteration */

static int
fc_frame_out(fc_conn_t *c, const char *cmd, unsigned nargs,
    const char **args, const size_t *lens)
{
    char      *start, *p;
    size_t     need, len, cmd_len;
    unsigned   i;

    cmd_len = strlen(cmd);
    need = 4 + sizeof("{\"CmdName\":\"\",\"Args\":[]}\n") + cmd_len;

    for (i = 0; i < nargs; i++) {
        need += 6 * lens[i] + 3;
    }

    if (fc_out_reserve(c, need) != 0) {
        fc_log("out of memory");
        fc_conn_lost(c, "out of memory", 0);
        return -1;
    }

    start = c->out + c->out_len;
    p = start + 4;

    memcpy(p, "{\"CmdName\":\"", 12);
    p = fc_json_escape(p + 12, cmd, cmd_len);
    memcpy(p, "\",\"Args\":[", 10);
    p += 10;

    for (i = 0; i < nargs; i++) {
        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        p = fc_json_escape(p, args[i], lens[i]);
        *p++ = '"';
    }

    memcpy(p, "]}\n", 3);
    p += 3;

    len = (size_t) (p - start) - 4;

    start[0] = (char) (len >> 24);
    start[1] = (char) (len >> 16);
    start[2] = (char) (len >> 8);
    start[3] = (char) len;

    c->out_len += (size_t) (p - start);

    fc_dirty(c);

    return 0;
}


static void
fc_flush(fc_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out_len) {
        n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->wait_write) {
                c->wait_write = 1;
                (void) fc_epoll(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
            }

            return;
        }

        fc_conn_lost(c, "send", errno);
        return;
    }

    c->out_pos = 0;
    c->out_len = 0;

    if (c->wait_write) {
        c->wait_write = 0;
        (void) fc_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
    }
}


static void
fc_flush_dirty(void)
{
    fc_conn_t  *c, *next;

    for (c = fc.dirty; c; c = next) {
        next = c->next_dirty;
        c->dirty = 0;
        c->next_dirty = NULL;

        if (c->fd != -1 && !c->wait_write) {
            fc_flush(c);
        }
    }

    fc.dirty = NULL;
}


/* ids */

static size_t
fc_id(char *buf, uint32_t idx)
{
    int  n;

    if (fc_conf.mode == FC_OFFLINE) {
        n = idx == 0
            ? snprintf(buf, FC_ID_LEN, "%ss", fc_conf.prefix)
            : snprintf(buf, FC_ID_LEN, "%sr%" PRIu32, fc_conf.prefix, idx - 1);

    } else {
        n = snprintf(buf, FC_ID_LEN, "%s%" PRIu32, fc_conf.prefix, idx);
    }

    return (size_t) n;
}


/* connections: set-up and close */

/*
 * With many connections to one address from one source address, the
 * kernel's search for a free ephemeral port in connect() takes most of the
 * time; on loopback the connections are spread over 127.0.0.1 ... N.
 */

static int
fc_connect(fc_conn_t *c)
{
    int                  fd, one, rc;
    struct sockaddr_in  *sin, src;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fc_log("socket() failed: %s", strerror(errno));
        return -1;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (fc_conf.sources > 1) {
        memset(&src, 0, sizeof(struct sockaddr_in));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000001 + c->idx % fc_conf.sources);

        (void) setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                          sizeof(one));

        if (bind(fd, (struct sockaddr *) &src, sizeof(struct sockaddr_in))
            == -1)
        {
            fc_log("bind() failed: %s", strerror(errno));
            close(fd);
            return -1;
        }
    }

    sin = &fc_conf.servers[c->server];

    rc = connect(fd, (struct sockaddr *) sin, sizeof(struct sockaddr_in));

    if (rc == -1 && errno != EINPROGRESS) {
        fc_log("connect() to %s failed: %s",
               fc_conf.server_names[c->server], strerror(errno));
        close(fd);
        return -1;
    }

    c->fd = fd;
    c->state = FC_CONNECTING;
    c->deadline = fc_now() + (int64_t) (fc_conf.conn_timeout * FC_SEC);
    c->wait_write = 1;
    c->inflight = 0;
    c->worker = 0;

    if (fc_epoll(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT) == -1) {
        fc_log("epoll_ctl() failed: %s", strerror(errno));
        close(fd);
        c->fd = -1;
        c->state = FC_CLOSED;
        return -1;
    }

    return 0;
}


static void
fc_login_failed(void)
{
    fc.st.login_failed++;
    fc.connecting--;
}


static void
fc_conn_close(fc_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);      /* also leaves the epoll set */
        c->fd = -1;
    }

    c->state = FC_CLOSED;
    c->wait_write = 0;

    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    c->in_size = 0;

    free(c->out);
    c->out = NULL;
    c->out_pos = 0;
    c->out_len = 0;
    c->out_size = 0;
}


/* the server closed or the socket failed: never expected */

static void
fc_conn_lost(fc_conn_t *c, const char *why, int err)
{
    char  id[FC_ID_LEN];

    (void) fc_id(id, c->idx);

    if (c->state == FC_CONNECTING || c->state == FC_LOGGING_IN) {
        fc_log("%s: login failed: %s%s%s", id, why, err ? ": " : "",
               err ? strerror(err) : "");
        fc_login_failed();

    } else if (c->state == FC_READY) {
        fc_log("%s: session lost: %s%s%s", id, why, err ? ": " : "",
               err ? strerror(err) : "");
        fc.st.closed++;

        if (fc_conf.mode == FC_TOPIC && !c->joined) {
            fc.joining--;
        }
    }

    fc_conn_close(c);
}


static void
fc_worker_count(long pid)
{
    unsigned  i;

    for (i = 0; i < fc.st.nworkers; i++) {
        if (fc.st.worker_pid[i] == pid) {
            fc.st.worker_sessions[i]++;
            return;
        }
    }

    if (fc.st.nworkers < FC_MAX_WORKERS) {
        fc.st.worker_pid[fc.st.nworkers] = pid;
        fc.st.worker_sessions[fc.st.nworkers] = 1;
        fc.st.nworkers++;
    }
}


static void
fc_connected(fc_conn_t *c)
{
    int          err;
    size_t       len;
    socklen_t    sl;
    const char  *args[1];
    size_t       lens[1];
    char         id[FC_ID_LEN];

    err = 0;
    sl = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1) {
        err = errno;
    }

    if (err) {
        fc_conn_lost(c, "connect", err);
        return;
    }

    c->state = FC_LOGGING_IN;

    len = fc_id(id, c->idx);

    args[0] = "1";
    lens[0] = 1;

    if (fc_frame_out(c, "HELLO", 1, args, lens) != 0) {
        return;
    }

    args[0] = id;
    lens[0] = len;

    if (fc_frame_out(c, "SEND_CLIENT_ID", 1, args, lens) != 0) {
        return;
    }

    /* EPOLLOUT is still registered: the flush turns it off */

    c->wait_write = 0;
    (void) fc_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
    fc_dirty(c);
}


static void
fc_connect_more(void)
{
    fc_conn_t  *c;

    while (fc.connecting < fc_conf.conc && fc.conn_next < fc.conn_end) {
        c = &fc.conns[fc.conn_next++];
        fc.connecting++;

        if (fc.st.login_first == 0) {
            fc.st.login_first = (uint64_t) fc_now();
        }

        if (fc_connect(c) != 0) {
            c->state = FC_CLOSED;
            fc_login_failed();
        }
    }
}


/* messages */

static size_t
fc_topic_name(char *buf, long t)
{
    return (size_t) snprintf(buf, FC_ID_LEN, "%st%ld", fc_conf.prefix, t);
}


static void
fc_topic_send(fc_conn_t *c, int64_t now)
{
    size_t       tlen, slen;
    uint64_t     key;
    fc_tmsg_t   *m;
    const char  *args[3];
    size_t       lens[3];
    char         name[FC_ID_LEN];
    char         text[4096];

    key = ((uint64_t) c->idx << 32) | c->seq;

    tlen = (size_t) snprintf(text, sizeof(text), "%" PRId64 ":%" PRIu32
                             ":%" PRIu32, now, c->idx, c->seq++);
    slen = tlen;

    if (fc_conf.msg_size > tlen) {
        memset(text + tlen, 'x', fc_conf.msg_size - tlen);
        tlen = fc_conf.msg_size;
    }

    args[0] = name;
    lens[0] = fc_topic_name(name, (long) c->idx / fc_conf.members);
    args[1] = text;
    lens[1] = tlen;
    args[2] = text;              /* the reference: the same stamp */
    lens[2] = slen;

    if (fc_frame_out(c, "SEND_MESSAGE_TOPIC", 3, args, lens) != 0) {
        return;
    }

    m = fc_ttab_get(&fc.tmsgs, key);

    if (m != NULL) {
        m->sent = now;
        m->own = 1;
    }

    c->inflight++;
    fc.st.sent++;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_sent++;
    }
}


static void
fc_p2p_send(fc_conn_t *c, int64_t now)
{
    uint32_t     peer;
    size_t       tlen, rlen;
    const char  *args[4];
    size_t       lens[4];
    char         to[FC_ID_LEN], from[FC_ID_LEN], ref[32];
    char         text[4096];

    if (fc_conf.mode == FC_TOPIC) {
        fc_topic_send(c, now);
        return;
    }

    if (fc_conf.mode == FC_OFFLINE) {
        peer = 1 + (uint32_t) (fc.st.sent % (uint64_t) fc_conf.m);

    } else {
        peer = (uint32_t) (fc_random() % (uint64_t) (fc_conf.n - 1));

        if (peer >= c->idx) {
            peer++;
        }
    }

    rlen = (size_t) snprintf(ref, sizeof(ref), "%" PRId64, now);

    tlen = (size_t) snprintf(text, sizeof(text), "%" PRId64 ":%" PRIu32
                             ":%" PRIu32, now, c->idx, c->seq++);

    if (fc_conf.msg_size > tlen) {
        memset(text + tlen, 'x', fc_conf.msg_size - tlen);
        tlen = fc_conf.msg_size;
    }

    args[0] = to;
    lens[0] = fc_id(to, peer);
    args[1] = text;
    lens[1] = tlen;
    args[2] = from;
    lens[2] = fc_id(from, c->idx);
    args[3] = ref;
    lens[3] = rlen;

    if (fc_frame_out(c, "SEND_MESSAGE_P2P", 4, args, lens) != 0) {
        return;
    }

    c->inflight++;
    fc.st.sent++;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_sent++;
    }
}


static int
fc_sending(void)
{
    return (fc.phase == FC_PH_RUN && fc_now() >= fc.start)
           || (fc.phase == FC_PH_STORE
               && fc.st.sent < (uint64_t) fc_conf.n);
}


/*
 * A message was answered (ACCEPTED or a refusal): flat out, the next one
 * goes at once, or after a pause when it was a refusal.
 */

static void
fc_answered(fc_conn_t *c, int64_t now, int refused)
{
    if (c->inflight) {
        c->inflight--;
    }

    if (refused) {
        c->hold = now + FC_BACKOFF_NS;
        return;
    }

    if (fc_conf.rate == 0 && fc_sending() && c->inflight < fc_conf.window
        && now >= c->hold && (fc.phase != FC_PH_RUN || now < fc.we))
    {
        fc_p2p_send(c, now);
    }
}


/* flat out: windows that a refusal left short are filled again */

static void
fc_refill(int64_t now)
{
    uint32_t    i;
    fc_conn_t  *c;

    if (fc_conf.rate != 0 || !fc_sending()
        || (fc.phase == FC_PH_RUN && now >= fc.we))
    {
        return;
    }

    for (i = 0; i < fc.nsnd; i++) {
        c = fc.snd[i];

        while (c->state == FC_READY && c->hold && now >= c->hold
               && c->inflight < fc_conf.window && fc_sending())
        {
            fc_p2p_send(c, now);
        }

        if (c->hold && now >= c->hold) {
            c->hold = 0;
        }
    }
}


static void
fc_delivery(fc_conn_t *c, fc_msg_t *m, int64_t now)
{
    int64_t      sent, lat;
    fc_uuid_t   *u;
    const char  *args[2];
    size_t       lens[2];
    char         id[FC_ID_LEN];

    if (m->nargs != 3) {
        fc_log("RESP_MESSAGE_P2P with %u arguments", m->nargs);
        fc.st.bad_frames++;
        return;
    }

    fc.st.delivered++;
    fc.last_rx = now;

    sent = (int64_t) fc_atou(m->arg[0], m->len[0]);
    lat = (now - sent) / 1000;

    if (lat < 0) {
        lat = 0;
    }

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_delivered++;
        fc.st.hist[fc_hist_idx((uint64_t) lat)]++;

        if ((uint64_t) lat > fc.st.lat_max) {
            fc.st.lat_max = (uint64_t) lat;
        }
    }

    if (fc_conf.mode == FC_P2P) {
        u = fc_uuid_find(m->arg[2], m->len[2], 1);

        if (u == NULL) {
            fc.st.unknown++;

        } else if (u->seen) {
            fc.st.duplicates++;

        } else {
            u->seen = 1;
            fc.st.unique++;
        }

    } else if (fc_conf.mode == FC_OFFLINE) {
        fc.last_delivery = (uint64_t) now;

        u = fc_uuid_find(m->arg[2], m->len[2], 0);

        if (u == NULL) {
            fc.st.unknown++;

            if (fc.st.unknown <= FC_LOG_MAX) {
                fc_log("delivery of an unknown uuid %.*s",
                       (int) m->len[2], m->arg[2]);
            }

        } else if (u->seen) {
            if (fc.relogin) {
                fc.st.redelivered++;

            } else {
                fc.st.duplicates++;
            }

        } else {
            u->seen = 1;
            fc.st.unique++;

            if (fc.relogin) {
                fc.st.late++;
            }
        }
    }

    args[0] = id;
    lens[0] = fc_id(id, c->idx);
    args[1] = m->arg[2];
    lens[1] = m->len[2];

    if (fc_frame_out(c, "P2P_ACK", 2, args, lens) == 0) {
        fc.st.acked++;
    }
}


/* RESP_MESSAGE_TOPIC <name> <msg> <from> <uuid>: a receipt */

static void
fc_topic_delivery(fc_msg_t *m, int64_t now)
{
    int64_t     sent;
    uint64_t    key;
    fc_tmsg_t  *t;

    if (m->nargs != 4) {
        fc_log("RESP_MESSAGE_TOPIC with %u arguments", m->nargs);
        fc.st.bad_frames++;
        return;
    }

    fc.st.delivered++;
    fc.last_rx = now;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_delivered++;
    }

    if (fc_topic_key(m->arg[1], m->len[1], &sent, &key) != 0) {
        fc.st.unknown++;

        if (fc.st.unknown <= FC_LOG_MAX) {
            fc_log("topic message with a text not of fc-load: %.*s",
                   (int) (m->len[1] > 60 ? 60 : m->len[1]), m->arg[1]);
        }

        return;
    }

    t = fc_ttab_get(&fc.tmsgs, key);
    if (t == NULL) {
        fc_log("out of memory");
        return;
    }

    t->sent = sent;

    if (t->count == 0 || now < t->first) {
        t->first = now;
    }

    if (now > t->last) {
        t->last = now;
    }

    t->count++;
}


static unsigned
fc_err_idx(const char *code, size_t len)
{
    unsigned  i;

    for (i = 0; i < FC_ERR_OTHER; i++) {
        if (strlen(fc_err_codes[i]) == len
            && memcmp(fc_err_codes[i], code, len) == 0)
        {
            return i;
        }
    }

    return FC_ERR_OTHER;
}


/*
 * topic: every member creates its topic (one wins, the others get
 * TOPIC_EXISTS after it did) and joins it; the session's commands are
 * answered in order, so the join comes after the topic exists
 */

static void
fc_topic_join(fc_conn_t *c)
{
    const char  *args[2];
    size_t       lens[2];
    char         name[FC_ID_LEN], id[FC_ID_LEN];

    args[0] = name;
    lens[0] = fc_topic_name(name, (long) c->idx / fc_conf.members);
    args[1] = id;
    lens[1] = fc_id(id, c->idx);

    fc.joining++;

    if (fc_frame_out(c, "CREATE_TOPIC", 1, args, lens) != 0) {
        return;
    }

    (void) fc_frame_out(c, "JOIN_TOPIC", 2, args, lens);
}


static void
fc_frame_in(fc_conn_t *c, char *p, size_t len)
{
    int64_t    now, sent, lat;
    unsigned   e;
    fc_msg_t   m;
    char       id[FC_ID_LEN];

    if (fc_json_msg(p, len, &m) != 0) {
        fc.st.bad_frames++;
        fc_log("bad frame: %.*s", (int) (len > 200 ? 200 : len), p);
        fc_conn_lost(c, "bad frame", 0);
        return;
    }

    now = fc_now();

    if (fc_is(&m, "RESP_MESSAGE_P2P")) {
        fc_delivery(c, &m, now);
        return;
    }

    if (fc_is(&m, "RESP_MESSAGE_TOPIC")) {
        fc_topic_delivery(&m, now);
        return;
    }

    if (fc_is(&m, "LOCATE_TOPIC_MSG_ADDR")) {
        if (fc_conf.mode != FC_TOPIC || c->joined) {
            fc.st.unexpected++;
            return;
        }

        c->joined = 1;
        fc.joining--;
        fc.st.joined++;
        return;
    }

    if (fc_is(&m, "TOPIC_CREATED")) {
        return;
    }

    if (fc_is(&m, "TOPIC_GAP")) {
        fc.st.gaps++;
        return;
    }

    if (fc_is(&m, "ACCEPTED")) {
        if (m.nargs != 2) {
            fc.st.bad_frames++;
            return;
        }

        fc.st.accepted++;
        fc.last_rx = now;

        if (now >= fc.ws && now < fc.we) {
            fc.st.w_accepted++;

            sent = (int64_t) fc_atou(m.arg[0], m.len[0]);
            lat = (now - sent) / 1000;
            lat = lat < 0 ? 0 : lat;

            fc.st.acc_hist[fc_hist_idx((uint64_t) lat)]++;

            if ((uint64_t) lat > fc.st.acc_max) {
                fc.st.acc_max = (uint64_t) lat;
            }
        }

        if (fc_conf.mode == FC_OFFLINE
            && fc_uuid_find(m.arg[1], m.len[1], 1) == NULL)
        {
            fc.st.bad_frames++;
            fc_log("ACCEPTED with a bad uuid");
        }

        if (fc_conf.mode == FC_TOPIC) {
            uint64_t    key;
            fc_tmsg_t  *t;

            if (fc_topic_key(m.arg[0], m.len[0], &sent, &key) == 0
                && (t = fc_ttab_get(&fc.tmsgs, key)) != NULL)
            {
                t->accepted = 1;

            } else {
                fc.st.bad_frames++;
                fc_log("ACCEPTED with a reference not of fc-load");
            }
        }

        fc_answered(c, now, 0);
        return;
    }

    if (fc_is(&m, "PONG")) {
        fc.st.pongs++;
        return;
    }

    if (fc_is(&m, "ERROR")) {
        e = m.nargs ? fc_err_idx(m.arg[0], m.len[0]) : FC_ERR_OTHER;

        if (fc_conf.mode == FC_TOPIC && fc.phase == FC_PH_LOGIN
            && strcmp(fc_err_codes[e], "TOPIC_EXISTS") == 0)
        {
            /* every member creates its topic: one of them wins */
            fc.st.topic_exists++;
            return;
        }

        fc.st.errors[e]++;

        (void) fc_id(id, c->idx);

        if (fc.st.errors[e] <= FC_LOG_MAX) {
            fc_log("%s: ERROR %.*s %.*s", id,
                   (int) (m.nargs ? m.len[0] : 0), m.nargs ? m.arg[0] : "",
                   (int) (m.nargs > 1 ? m.len[1] : 0),
                   m.nargs > 1 ? m.arg[1] : "");
        }

        if (c->state == FC_READY
            && (strcmp(fc_err_codes[e], "INBOX_FULL") == 0
                || strcmp(fc_err_codes[e], "RATE_LIMITED") == 0
                || strcmp(fc_err_codes[e], "REDIS_UNAVAILABLE") == 0
                || strcmp(fc_err_codes[e], "NOT_CONFIRMED") == 0))
        {
            /* a message was refused, the session goes on */
            fc.st.refused++;
            fc_answered(c, now, 1);
        }

        return;
    }

    if (fc_is(&m, "HELLO")) {
        return;
    }

    if (fc_is(&m, "LOGIN_OK")) {
        if (c->state != FC_LOGGING_IN) {
            fc.st.unexpected++;
            return;
        }

        c->state = FC_READY;
        c->worker = m.nargs >= 3 ? (long) fc_atou(m.arg[2], m.len[2]) : 0;
        /* the first ping somewhere in the first interval: spread out */
        c->next_ping = now + (int64_t) (fc_conf.ping * FC_SEC
                                        * (double) (fc_random() % 1000)
                                        / 1000.0);

        fc.connecting--;
        fc.st.logged_in++;
        fc.st.login_last = (uint64_t) now;

        fc_worker_count(c->worker);

        if (fc_conf.mode == FC_TOPIC) {
            fc_topic_join(c);
        }

        return;
    }

    fc.st.unexpected++;

    if (fc.st.unexpected <= FC_LOG_MAX) {
        fc_log("unexpected frame: %.*s", (int) (len > 200 ? 200 : len), p);
    }
}


/* connections: input */

static void
fc_input(fc_conn_t *c, char *data, size_t len)
{
    char      *p, *last, *q;
    size_t     size, left;
    uint32_t   flen;

    if (c->in_len) {
        if (c->in_len + len > c->in_size) {
            size = c->in_size * 2;

            while (size < c->in_len + len) {
                size *= 2;
            }

            q = realloc(c->in, size);
            if (q == NULL) {
                fc_conn_lost(c, "out of memory", 0);
                return;
            }

            c->in = q;
            c->in_size = size;
        }

        memcpy(c->in + c->in_len, data, len);
        c->in_len += len;

        p = c->in;
        last = c->in + c->in_len;

    } else {
        p = data;
        last = data + len;
    }

    while (last - p >= 4) {
        flen = ((uint32_t) (unsigned char) p[0] << 24)
               | ((uint32_t) (unsigned char) p[1] << 16)
               | ((uint32_t) (unsigned char) p[2] << 8)
               | (uint32_t) (unsigned char) p[3];

        if (flen == 0 || flen > FC_FRAME_MAX) {
            fc.st.bad_frames++;
            fc_conn_lost(c, "bad frame length", 0);
            return;
        }

        if ((size_t) (last - p) - 4 < flen) {
            break;
        }

        fc_frame_in(c, p + 4, flen);

        if (c->fd == -1) {
            return;
        }

        p += 4 + flen;
    }

    left = (size_t) (last - p);

    if (c->in_len) {
        memmove(c->in, p, left);
        c->in_len = left;
        return;
    }

    if (left == 0) {
        return;
    }

    if (c->in_size < left) {
        size = 4096;

        while (size < left) {
            size *= 2;
        }

        q = realloc(c->in, size);
        if (q == NULL) {
            fc_conn_lost(c, "out of memory", 0);
            return;
        }

        c->in = q;
        c->in_size = size;
    }

    memcpy(c->in, p, left);
    c->in_len = left;
}


static void
fc_read(fc_conn_t *c)
{
    ssize_t  n;

    for ( ;; ) {
        n = recv(c->fd, fc.rbuf, FC_READ_SIZE, 0);

        if (n > 0) {
            fc_input(c, fc.rbuf, (size_t) n);

            if (c->fd == -1 || n < FC_READ_SIZE) {
                return;
            }

            continue;
        }

        if (n == 0) {
            fc_conn_lost(c, "closed by the server", 0);
            return;
        }

        if (errno == EINTR) {
            continue;
        }

        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }

        fc_conn_lost(c, "recv", errno);
        return;
    }
}


static void
fc_event(fc_conn_t *c, uint32_t events)
{
    if (c->state == FC_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            fc_connected(c);
        }

        return;
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        fc_read(c);

        if (c->fd == -1) {
            return;
        }
    }

    if ((events & EPOLLOUT) && c->wait_write) {
        c->wait_write = 0;
        fc_flush(c);

        if (c->fd != -1 && c->out_len == 0) {
            (void) fc_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
        }
    }
}


/* timeouts and pings, a few times a second */

static void
fc_sweep(int64_t now)
{
    uint32_t     i;
    fc_conn_t   *c;
    const char  *args[1];
    size_t       lens[1];

    args[0] = "PING";
    lens[0] = 4;

    for (i = 0; i < fc.nconns; i++) {
        c = &fc.conns[i];

        if (c->fd == -1) {
            continue;
        }

        if (c->state == FC_CONNECTING || c->state == FC_LOGGING_IN) {
            if (now >= c->deadline) {
                fc.st.timeouts++;
                fc_conn_lost(c, c->state == FC_CONNECTING
                                ? "connect timed out"
                                : "no LOGIN_OK in time", 0);
            }

            continue;
        }

        if (c->state == FC_READY && fc_conf.mode == FC_TOPIC && !c->joined
            && now >= c->deadline)
        {
            fc.st.timeouts++;
            fc_conn_lost(c, "no LOCATE_TOPIC_MSG_ADDR in time", 0);
            continue;
        }

        if (c->state == FC_READY && fc_conf.ping > 0 && now >= c->next_ping) {
            c->next_ping = now + (int64_t) (fc_conf.ping * FC_SEC);

            if (fc_frame_out(c, "SEND_PING", 1, args, lens) == 0) {
                fc.st.pings++;
            }
        }
    }
}


/* the child's figures, to the parent */

static void
fc_report(void)
{
    unsigned     i;
    uint64_t     j;
    fc_tmsg_t   *t;
    fc_field_t  *f;

    for (f = fc_fields; f->name; f++) {
        fprintf(fc.res, "F %s %" PRIu64 "\n", f->name,
                *(uint64_t *) ((char *) &fc.st + f->off));
    }

    for (i = 0; i < FC_HIST_SIZE; i++) {
        if (fc.st.hist[i]) {
            fprintf(fc.res, "H %u %" PRIu64 "\n", i, fc.st.hist[i]);
        }

        if (fc.st.acc_hist[i]) {
            fprintf(fc.res, "A %u %" PRIu64 "\n", i, fc.st.acc_hist[i]);
        }
    }

    for (i = 0; i < FC_ERR_N; i++) {
        if (fc.st.errors[i]) {
            fprintf(fc.res, "E %s %" PRIu64 "\n", fc_err_codes[i],
                    fc.st.errors[i]);
        }
    }

    for (j = 0; fc.tmsgs.slots && j <= fc.tmsgs.mask; j++) {
        t = &fc.tmsgs.slots[j];

        if (t->key) {
            fprintf(fc.res, "M %" PRIu64 " %" PRId64 " %u %u %u %" PRId64
                    " %" PRId64 "\n", t->key - 1, t->sent, t->own,
                    t->accepted, t->count, t->first, t->last);
        }
    }

    for (i = 0; i < fc.st.nworkers; i++) {
        fprintf(fc.res, "W %ld %" PRIu64 "\n", fc.st.worker_pid[i],
                fc.st.worker_sessions[i]);
    }

    fprintf(fc.res, "END\n");
    fflush(fc.res);
}


static void
fc_child_exit(void)
{
    uint32_t  i;

    fc_report();

    for (i = 0; i < fc.nconns; i++) {
        if (fc.conns[i].fd != -1) {
            close(fc.conns[i].fd);
        }
    }

    fclose(fc.res);
    _exit(0);
}


static void
fc_tell(const char *line)
{
    fprintf(fc.res, "%s\n", line);
    fflush(fc.res);
}


/* "G <start ns>" starts sending (p2p), "S" stops: report and exit */

static void
fc_ctl_read(void)
{
    ssize_t   n;
    char     *nl;

    for ( ;; ) {
        n = read(fc.ctl, fc.ctl_buf + fc.ctl_len,
                 sizeof(fc.ctl_buf) - 1 - fc.ctl_len);

        if (n == 0) {
            /* the parent is gone */
            _exit(FC_EXIT_SETUP);
        }

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return;
        }

        fc.ctl_len += (size_t) n;
        fc.ctl_buf[fc.ctl_len] = '\0';

        while ((nl = strchr(fc.ctl_buf, '\n')) != NULL) {
            *nl = '\0';

            if (fc.ctl_buf[0] == 'S') {
                fc_child_exit();
            }

            if (fc.ctl_buf[0] == 'G' && fc.phase == FC_PH_WAIT) {
                fc.start = strtoll(fc.ctl_buf + 2, NULL, 10);
                fc.ws = fc.start + (int64_t) (fc_conf.warmup * FC_SEC);
                fc.we = fc.ws + (int64_t) (fc_conf.secs * FC_SEC);
                fc.phase = FC_PH_RUN;
                fc.rate_sent = 0;
            }

            fc.ctl_len -= (size_t) (nl + 1 - fc.ctl_buf);
            memmove(fc.ctl_buf, nl + 1, fc.ctl_len + 1);
        }
    }
}


/* p2p: what there is to do now; returns the epoll timeout */

static int
fc_p2p_tick(int64_t now)
{
    uint32_t    i, tries;
    uint64_t    due;
    fc_conn_t  *c;
    char        line[64];

    if (fc.phase == FC_PH_RUN) {
        if (now < fc.start) {
            return (int) ((fc.start - now) / FC_MS) + 1;
        }

        if (fc.cpu_ws == 0 && now >= fc.ws) {
            fc.cpu_ws = fc_cpu_now();
            fc.wait_ws = fc_sched_wait(0);
        }

        if (now >= fc.we) {
            fc.st.cpu_ns = (uint64_t) (fc_cpu_now() - fc.cpu_ws);
            fc.st.wait_ns = fc_sched_wait(0) - fc.wait_ws;
            fc.phase = FC_PH_DRAIN;
            fc.last_rx = now;
            return 1;
        }

        if (fc_conf.rate == 0) {
            if (fc.rate_sent == 0) {
                /* fill every window once; answers keep them full */
                fc.rate_sent = 1;

                for (i = 0; i < fc.nsnd; i++) {
                    c = fc.snd[i];

                    while (c->state == FC_READY
                           && c->inflight < fc_conf.window)
                    {
                        fc_p2p_send(c, now);
                    }
                }
            }

            return (int) ((fc.we - now) / FC_MS) + 1;
        }

        due = (uint64_t) ((double) (now - fc.start) * fc.rate);

        for (tries = 0; fc.rate_sent < due && tries < fc.nsnd; ) {
            c = fc.snd[fc.rr];
            fc.rr = (fc.rr + 1) % fc.nsnd;

            if (c->state != FC_READY || c->inflight >= fc_conf.window) {
                tries++;
                continue;
            }

            tries = 0;
            fc_p2p_send(c, now);
            fc.rate_sent++;
        }

        if (fc.rate_sent < due) {
            /* every window is full: the server is behind */
            fc.st.behind += due - fc.rate_sent;
            fc.rate_sent = due;
        }

        return 1;
    }

    if (fc.phase == FC_PH_DRAIN) {
        for (i = 0; i < fc.nconns; i++) {
            if (fc.conns[i].state == FC_READY && fc.conns[i].inflight) {
                return 10;
            }
        }

        if (now - fc.last_rx >= FC_QUIET_NS) {
            fc.phase = FC_PH_DONE;
            snprintf(line, sizeof(line), "DRAINED");
            fc_tell(line);
            return 100;
        }

        return 10;
    }

    return 100;
}


/* offline: sender, then recipients, then the relogin check */

static int
fc_offline_tick(int64_t now)
{
    uint32_t    i;
    fc_conn_t  *c;

    switch (fc.phase) {

    case FC_PH_SENDER:
        fc_connect_more();

        c = &fc.conns[0];

        if (c->state == FC_READY) {
            fc.phase = FC_PH_STORE;
            fc.store_start = (uint64_t) now;
            fc.ws = now;
            fc.we = INT64_MAX;

            while (c->inflight < fc_conf.window
                   && fc.st.sent < (uint64_t) fc_conf.n)
            {
                fc_p2p_send(c, now);
            }

            return 10;
        }

        if (c->state == FC_CLOSED) {
            fc.phase = FC_PH_DONE;
            fc_tell("DRAINED");
        }

        return 10;

    case FC_PH_STORE:
        c = &fc.conns[0];

        if (c->state == FC_CLOSED) {
            fc.phase = FC_PH_DONE;
            fc_tell("DRAINED");
            return 100;
        }

        if (fc.st.sent < (uint64_t) fc_conf.n || c->inflight) {
            return 10;
        }

        fc.st.store_ns = (uint64_t) now - fc.store_start;

        /* the recipients log in now: time the drain */

        fc.phase = FC_PH_INBOX;
        fc.drain_start = (uint64_t) now;
        fc.last_delivery = (uint64_t) now;
        fc.ws = now;
        fc.we = INT64_MAX;
        fc.conn_next = 1;
        fc.conn_end = fc.nconns;
        fc.until = now + (int64_t) (fc_conf.drain * FC_SEC);
        fc_connect_more();
        return 1;

    case FC_PH_INBOX:
        fc_connect_more();

        if (fc.conn_next == fc.conn_end && fc.connecting == 0
            && fc.st.recip_login_ns == 0)
        {
            fc.st.recip_login_ns = fc.st.login_last - fc.drain_start;
        }

        if (fc.st.unique < fc.st.accepted && now < fc.until) {
            return 10;
        }

        if (fc.conn_next < fc.conn_end || fc.connecting) {
            if (now < fc.until) {
                return 10;
            }
        }

        if (fc.st.unique < fc.st.accepted) {
            fc.st.drain_timeout = 1;
        }

        fc.st.drain_ns = fc.last_delivery - fc.drain_start;
        fc.phase = FC_PH_SETTLE;
        fc.until = now + FC_SEC;
        return 10;

    case FC_PH_SETTLE:
        if (now < fc.until) {
            return (int) ((fc.until - now) / FC_MS) + 1;
        }

        /* log every recipient out and in again: nothing may come back */

        for (i = 1; i < fc.nconns; i++) {
            c = &fc.conns[i];

            if (c->state == FC_CONNECTING || c->state == FC_LOGGING_IN) {
                fc.connecting--;
            }

            fc_conn_close(c);
            c->state = FC_FREE;
        }

        fc.relogin = 1;
        fc.phase = FC_PH_RELOGIN;
        fc.conn_next = 1;
        fc.conn_end = fc.nconns;
        fc.until = 0;
        fc_connect_more();
        return 10;

    case FC_PH_RELOGIN:
        fc_connect_more();

        if (fc.conn_next < fc.conn_end || fc.connecting) {
            return 10;
        }

        if (fc.until == 0) {
            fc.until = now + FC_QUIET_NS;
        }

        if (now < fc.until) {
            return 10;
        }

        fc.phase = FC_PH_DONE;
        fc_tell("DRAINED");
        return 100;
    }

    return 100;
}


static void
fc_child(unsigned k, int ctl, int res)
{
    int                  n, i, timeout;
    int64_t              now;
    uint32_t             j, count;
    struct rlimit        rl;
    fc_conn_t           *c;
    struct epoll_event   ev, events[FC_EVENTS];
    char                 line[128];

    memset(&fc, 0, sizeof(fc));

    fc.k = k;
    fc.ctl = ctl;
    fc.res = fdopen(res, "w");
    fc.rnd[0] = (uint64_t) fc_now() ^ ((uint64_t) getpid() << 32) ^ k;
    fc.rnd[1] = 0x9e3779b97f4a7c15ULL ^ ((uint64_t) k << 17);
    fc.deadline = fc_now() + (int64_t) ((fc_conf.limit + 10) * FC_SEC);

    for (i = 0; i < 16; i++) {
        (void) fc_random();
    }

    if (fc.res == NULL) {
        _exit(FC_EXIT_SETUP);
    }

    if (fc_conf.mode == FC_OFFLINE) {
        fc.base = 0;
        count = (uint32_t) fc_conf.m + 1;

    } else {
        fc.base = (uint32_t) ((uint64_t) k * (uint64_t) fc_conf.n
                              / fc_conf.procs);
        count = (uint32_t) ((uint64_t) (k + 1) * (uint64_t) fc_conf.n
                            / fc_conf.procs)
                - fc.base;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        (void) setrlimit(RLIMIT_NOFILE, &rl);

        if (rl.rlim_cur != RLIM_INFINITY && count + 32 > rl.rlim_cur) {
            fprintf(stderr, "fc-load: %" PRIu32 " connections in a process "
                    "is over its open-files limit of %lu: use -P\n",
                    count, (unsigned long) rl.rlim_cur);
            _exit(FC_EXIT_SETUP);
        }
    }

    fc.nconns = count;
    fc.conns = calloc(count ? count : 1, sizeof(fc_conn_t));
    fc.rbuf = malloc(FC_READ_SIZE);

    if (fc.conns == NULL || fc.rbuf == NULL) {
        fprintf(stderr, "fc-load: out of memory\n");
        _exit(FC_EXIT_SETUP);
    }

    for (j = 0; j < count; j++) {
        c = &fc.conns[j];
        c->fd = -1;
        c->idx = fc.base + j;
        c->server = c->idx % fc_conf.nservers;
    }

    fc.st.conns = count;

    /* the senders: every session in p2p, the first -S of a topic */

    fc.snd = calloc(count ? count : 1, sizeof(fc_conn_t *));
    if (fc.snd == NULL) {
        fprintf(stderr, "fc-load: out of memory\n");
        _exit(FC_EXIT_SETUP);
    }

    for (j = 0; j < count; j++) {
        c = &fc.conns[j];

        if (fc_conf.mode != FC_TOPIC
            || (long) c->idx % fc_conf.members < fc_conf.senders)
        {
            fc.snd[fc.nsnd++] = c;
        }
    }

    if (fc_conf.mode == FC_TOPIC
        && fc_ttab_init(&fc.tmsgs, 65536) != 0)
    {
        fprintf(stderr, "fc-load: out of memory\n");
        _exit(FC_EXIT_SETUP);
    }

    if (fc_conf.mode != FC_IDLE
        && fc_uuid_init(fc_conf.mode == FC_OFFLINE ? (uint64_t) fc_conf.n
                                                   : 65536)
           != 0)
    {
        fprintf(stderr, "fc-load: out of memory\n");
        _exit(FC_EXIT_SETUP);
    }

    if (fc_conf.rate > 0 && fc_conf.mode == FC_TOPIC) {
        /* this process's share: its part of all the senders */
        fc.rate = fc_conf.rate * fc.nsnd
                  / (double) (fc_conf.topics * fc_conf.senders)
                  / (double) FC_SEC;

    } else if (fc_conf.rate > 0) {
        fc.rate = fc_conf.rate / fc_conf.procs / (double) FC_SEC;
    }

    fc.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (fc.epfd == -1) {
        fprintf(stderr, "fc-load: epoll_create1() failed: %s\n",
                strerror(errno));
        _exit(FC_EXIT_SETUP);
    }

    (void) fcntl(ctl, F_SETFL, fcntl(ctl, F_GETFL) | O_NONBLOCK);

    ev.events = EPOLLIN;
    ev.data.ptr = &fc_ctl_tag;

    if (epoll_ctl(fc.epfd, EPOLL_CTL_ADD, ctl, &ev) == -1) {
        _exit(FC_EXIT_SETUP);
    }

    /* no window yet: nothing is counted before "G" */

    fc.ws = INT64_MAX;
    fc.we = INT64_MAX;

    if (fc_conf.mode == FC_OFFLINE) {
        fc.phase = FC_PH_SENDER;
        fc.conn_next = 0;
        fc.conn_end = 1;

    } else {
        fc.phase = FC_PH_LOGIN;
        fc.conn_next = 0;
        fc.conn_end = count;
    }

    for ( ;; ) {
        now = fc_now();

        if (now >= fc.deadline) {
            fc_log("time limit reached");
            fc.st.timeouts++;
            fc_child_exit();
        }

        timeout = 100;

        switch (fc.phase) {

        case FC_PH_LOGIN:
            fc_connect_more();

            if (fc.conn_next == fc.conn_end && fc.connecting == 0
                && fc.joining == 0)
            {
                fc.phase = FC_PH_WAIT;
                snprintf(line, sizeof(line), "READY %" PRIu64 " %" PRIu64
                         " %" PRIu64 " %" PRIu64, fc.st.logged_in,
                         fc.st.login_failed, fc.st.login_first,
                         fc.st.login_last);
                fc_tell(line);
            }

            timeout = 10;
            break;

        case FC_PH_RUN:
        case FC_PH_DRAIN:
            timeout = fc_p2p_tick(now);
            break;

        case FC_PH_SENDER:
        case FC_PH_STORE:
        case FC_PH_INBOX:
        case FC_PH_SETTLE:
        case FC_PH_RELOGIN:
            timeout = fc_offline_tick(now);
            break;

        default:
            break;
        }

        if (now >= fc.next_sweep) {
            fc.next_sweep = now + FC_SWEEP_NS;
            fc_sweep(now);
            fc_refill(now);
        }

        fc_flush_dirty();

        if (timeout > 200) {
            timeout = 200;
        }

        n = epoll_wait(fc.epfd, events, FC_EVENTS, timeout);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            fprintf(stderr, "fc-load: epoll_wait() failed: %s\n",
                    strerror(errno));
            _exit(FC_EXIT_SETUP);
        }

        for (i = 0; i < n; i++) {
            if (events[i].data.ptr == &fc_ctl_tag) {
                fc_ctl_read();
                continue;
            }

            c = events[i].data.ptr;

            if (c->fd != -1) {
                fc_event(c, events[i].events);
            }
        }
    }
}


/* the parent: nginx workers and their memory and CPU, from /proc */

static long
fc_read_pidfile(const char *path)
{
    FILE  *f;
    long   pid;

    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }

    if (fscanf(f, "%ld", &pid) != 1) {
        pid = -1;
    }

    fclose(f);

    return pid;
}


/* the children of the master named in the pid file */

static unsigned
fc_nginx_workers(long *pids, unsigned max)
{
    long            master, ppid;
    unsigned        n;
    char           *p, path[300], buf[512];
    FILE           *f;
    DIR            *d;
    struct dirent  *de;

    if (fc_conf.pidfile == NULL) {
        return 0;
    }

    master = fc_read_pidfile(fc_conf.pidfile);
    if (master <= 0) {
        return 0;
    }

    d = opendir("/proc");
    if (d == NULL) {
        return 0;
    }

    n = 0;

    while (n < max && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);

        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }

        if (fgets(buf, sizeof(buf), f) == NULL) {
            fclose(f);
            continue;
        }

        fclose(f);

        p = strrchr(buf, ')');
        if (p == NULL || sscanf(p + 2, "%*c %ld", &ppid) != 1) {
            continue;
        }

        if (ppid == master) {
            pids[n++] = strtol(de->d_name, NULL, 10);
        }
    }

    closedir(d);

    return n;
}


static uint64_t
fc_proc_rss(long pid)
{
    FILE           *f;
    char            path[64];
    unsigned long   size, resident;

    snprintf(path, sizeof(path), "/proc/%ld/statm", pid);

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }

    fclose(f);

    return (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
}


/* user + system time in ns */

static uint64_t
fc_proc_cpu(long pid)
{
    FILE                *f;
    char                *p, path[64], buf[1024];
    unsigned long long   utime, stime;

    if (pid <= 0) {
        return 0;
    }

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fgets(buf, sizeof(buf), f) == NULL) {
        fclose(f);
        return 0;
    }

    fclose(f);

    p = strrchr(buf, ')');

    if (p == NULL
        || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                  "%llu %llu", &utime, &stime) != 2)
    {
        return 0;
    }

    return (uint64_t) (utime + stime) * (uint64_t) (FC_SEC
                                                    / sysconf(_SC_CLK_TCK));
}


typedef struct {
    pid_t       pid;
    int         ctl;
    int         res;
    char        buf[4096];
    size_t      len;
    unsigned    ready:1;
    unsigned    drained:1;
    unsigned    ended:1;
    unsigned    eof:1;
} fc_child_t;


static fc_child_t   fc_children[FC_MAX_PROCS];
static fc_stats_t   fc_total;
static uint64_t     fc_ready_logged;
static uint64_t     fc_ready_failed;
static uint64_t     fc_ready_first;
static uint64_t     fc_ready_last;
static fc_ttab_t    fc_tall;          /* topic: the messages, merged */


static void
fc_add_worker(long pid, uint64_t n)
{
    unsigned  i;

    for (i = 0; i < fc_total.nworkers; i++) {
        if (fc_total.worker_pid[i] == pid) {
            fc_total.worker_sessions[i] += n;
            return;
        }
    }

    if (fc_total.nworkers < FC_MAX_WORKERS) {
        fc_total.worker_pid[fc_total.nworkers] = pid;
        fc_total.worker_sessions[fc_total.nworkers] = n;
        fc_total.nworkers++;
    }
}


static void
fc_parent_line(fc_child_t *ch, char *line)
{
    char                *name, *sp;
    uint64_t             v, *fv, a[4];
    unsigned             idx;
    fc_field_t          *f;

    if (strncmp(line, "READY ", 6) == 0) {
        ch->ready = 1;

        if (sscanf(line + 6, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
                   &a[0], &a[1], &a[2], &a[3])
            == 4)
        {
            fc_ready_logged += a[0];
            fc_ready_failed += a[1];

            if (a[2] && (fc_ready_first == 0 || a[2] < fc_ready_first)) {
                fc_ready_first = a[2];
            }

            if (a[3] > fc_ready_last) {
                fc_ready_last = a[3];
            }
        }

        return;
    }

    if (strcmp(line, "DRAINED") == 0) {
        ch->drained = 1;
        return;
    }

    if (strcmp(line, "END") == 0) {
        ch->ended = 1;
        return;
    }

    if (line[0] == 'M' && line[1] == ' ') {
        fc_tmsg_t  *t, r;

        if (sscanf(line + 2, "%" SCNu64 " %" SCNd64 " %u %u %u %" SCNd64
                   " %" SCNd64, &r.key, &r.sent, &r.own, &r.accepted,
                   &r.count, &r.first, &r.last)
            != 7)
        {
            return;
        }

        if (fc_tall.slots == NULL && fc_ttab_init(&fc_tall, 65536) != 0) {
            return;
        }

        t = fc_ttab_get(&fc_tall, r.key);
        if (t == NULL) {
            return;
        }

        if (r.sent) {
            t->sent = r.sent;
        }

        t->own |= r.own;
        t->accepted |= r.accepted;

        if (r.count) {
            if (t->count == 0 || r.first < t->first) {
                t->first = r.first;
            }

            if (r.last > t->last) {
                t->last = r.last;
            }

            t->count += r.count;
        }

        return;
    }

    if (line[0] == '\0' || line[1] != ' ') {
        return;
    }

    name = line + 2;
    sp = strchr(name, ' ');

    if (sp == NULL) {
        return;
    }

    *sp = '\0';
    v = strtoull(sp + 1, NULL, 10);

    switch (line[0]) {

    case 'F':
        for (f = fc_fields; f->name; f++) {
            if (strcmp(f->name, name) != 0) {
                continue;
            }

            fv = (uint64_t *) ((char *) &fc_total + f->off);

            switch (f->agg) {

            case FC_AGG_SUM:
                *fv += v;
                break;

            case FC_AGG_MIN:
                if (v && (*fv == 0 || v < *fv)) {
                    *fv = v;
                }

                break;

            default:
                if (v > *fv) {
                    *fv = v;
                }
            }

            break;
        }

        break;

    case 'H':
    case 'A':
        idx = (unsigned) strtoul(name, NULL, 10);

        if (idx < FC_HIST_SIZE) {
            if (line[0] == 'H') {
                fc_total.hist[idx] += v;

            } else {
                fc_total.acc_hist[idx] += v;
            }
        }

        break;

    case 'E':
        fc_total.errors[fc_err_idx(name, strlen(name))] += v;
        break;

    case 'W':
        fc_add_worker(strtol(name, NULL, 10), v);
        break;
    }
}


/* reads the children's lines until every child has "what" or time is up */

enum {
    FC_WANT_READY = 0,
    FC_WANT_DRAINED,
    FC_WANT_END,
    FC_WANT_NOTHING
};


static int
fc_child_has(fc_child_t *ch, int what)
{
    switch (what) {

    case FC_WANT_READY:
        return ch->ready || ch->eof;

    case FC_WANT_DRAINED:
        return ch->drained || ch->eof;

    case FC_WANT_END:
        return ch->ended || ch->eof;
    }

    return 0;
}


static int
fc_parent_wait(int what, int64_t until)
{
    int             n, all, ms;
    ssize_t         r;
    unsigned        i, np;
    int64_t         now;
    char           *nl, *line;
    fc_child_t     *ch;
    struct pollfd   pfd[FC_MAX_PROCS];
    unsigned        map[FC_MAX_PROCS];

    for ( ;; ) {
        all = 1;
        np = 0;

        for (i = 0; i < fc_conf.procs; i++) {
            ch = &fc_children[i];

            if (!fc_child_has(ch, what)) {
                all = 0;
            }

            if (!ch->eof) {
                pfd[np].fd = ch->res;
                pfd[np].events = POLLIN;
                map[np] = i;
                np++;
            }
        }

        if (all && what != FC_WANT_NOTHING) {
            return 0;
        }

        now = fc_now();

        if (now >= until) {
            return what == FC_WANT_NOTHING ? 0 : -1;
        }

        ms = (int) ((until - now) / FC_MS) + 1;

        if (ms > 1000) {
            ms = 1000;
        }

        n = poll(pfd, np, ms);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        for (i = 0; i < np; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }

            ch = &fc_children[map[i]];

            r = read(ch->res, ch->buf + ch->len, sizeof(ch->buf) - 1 - ch->len);

            if (r <= 0) {
                if (r == -1 && errno == EINTR) {
                    continue;
                }

                ch->eof = 1;
                continue;
            }

            ch->len += (size_t) r;
            ch->buf[ch->len] = '\0';

            line = ch->buf;

            while ((nl = strchr(line, '\n')) != NULL) {
                *nl = '\0';
                fc_parent_line(ch, line);
                line = nl + 1;
            }

            ch->len -= (size_t) (line - ch->buf);
            memmove(ch->buf, line, ch->len + 1);
        }
    }
}


static void
fc_parent_tell(const char *line)
{
    unsigned  i;
    size_t    len;

    len = strlen(line);

    for (i = 0; i < fc_conf.procs; i++) {
        if (!fc_children[i].eof) {
            if (write(fc_children[i].ctl, line, len) != (ssize_t) len) {
                fc_children[i].eof = 1;
            }
        }
    }
}


static void
fc_human(char *buf, size_t size, uint64_t us)
{
    if (us < 1000) {
        snprintf(buf, size, "%" PRIu64 " us", us);

    } else if (us < 1000000) {
        snprintf(buf, size, "%.2f ms", (double) us / 1000);

    } else {
        snprintf(buf, size, "%.2f s", (double) us / 1000000);
    }
}


static void
fc_print_lat(const char *what, uint64_t *hist, uint64_t max)
{
    char  b[5][32];

    fc_human(b[0], sizeof(b[0]), fc_hist_pct(hist, 0.50, max));
    fc_human(b[1], sizeof(b[1]), fc_hist_pct(hist, 0.90, max));
    fc_human(b[2], sizeof(b[2]), fc_hist_pct(hist, 0.99, max));
    fc_human(b[3], sizeof(b[3]), fc_hist_pct(hist, 0.999, max));
    fc_human(b[4], sizeof(b[4]), max);

    printf("  %-12s p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n",
           what, b[0], b[1], b[2], b[3], b[4]);
}


static uint64_t
fc_errors_total(void)
{
    unsigned  i;
    uint64_t  n;

    n = 0;

    for (i = 0; i < FC_ERR_N; i++) {
        n += fc_total.errors[i];
    }

    return n;
}


static void
fc_print_errors(void)
{
    unsigned  i, any;

    printf("  %-12s", "errors");

    any = 0;

    for (i = 0; i < FC_ERR_N; i++) {
        if (fc_total.errors[i]) {
            printf(" %s %" PRIu64, fc_err_codes[i], fc_total.errors[i]);
            any = 1;
        }
    }

    printf("%s; failed logins %" PRIu64 ", closed by the server %" PRIu64
           ", bad frames %" PRIu64 ", unexpected frames %" PRIu64
           ", timeouts %" PRIu64 "\n", any ? "" : " none",
           fc_total.login_failed, fc_total.closed, fc_total.bad_frames,
           fc_total.unexpected, fc_total.timeouts);
}


static void
fc_result_errors(void)
{
    unsigned  i;

    printf(" errors=%" PRIu64 " closed=%" PRIu64 " bad_frames=%" PRIu64
           " timeouts=%" PRIu64, fc_errors_total(), fc_total.closed,
           fc_total.bad_frames + fc_total.unexpected, fc_total.timeouts);

    for (i = 0; i < FC_ERR_N; i++) {
        if (fc_total.errors[i]) {
            printf(" err_%s=%" PRIu64, fc_err_codes[i], fc_total.errors[i]);
        }
    }
}


static void
fc_print_workers(void)
{
    unsigned  i;

    if (fc_total.nworkers == 0) {
        return;
    }

    printf("  %-12s", "workers");

    for (i = 0; i < fc_total.nworkers; i++) {
        printf("%s pid %ld: %" PRIu64, i ? "," : "", fc_total.worker_pid[i],
               fc_total.worker_sessions[i]);
    }

    printf(" sessions\n");
}


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


static void
fc_cpu_sample(fc_cpu_t *s)
{
    unsigned  i;

    s->wcpu = 0;
    s->wwait = 0;

    for (i = 0; i < s->nworkers; i++) {
        s->wcpu += fc_proc_cpu(s->workers[i]);
        s->wwait += fc_sched_wait(s->workers[i]);
    }

    s->rcpu = fc_proc_cpu(s->redis);
    s->rwait = s->redis > 0 ? fc_sched_wait(s->redis) : 0;
}


/*
 * topic: every message sent, merged over the processes; latency to the
 * last (and first) member for those sent in the measured window
 */

static uint64_t  fc_first_hist[FC_HIST_SIZE];


static int
fc_topic_result(int rc, int64_t start, fc_cpu_t *cpu0, fc_cpu_t *cpu1,
    unsigned nworkers)
{
    int64_t     ws, we;
    uint64_t    i, msgs, accepted, complete, partial, none, extra, unknown,
                unaccepted, w_msgs, w_partial, lat, lat_max, first_max, members;
    double      secs;
    fc_tmsg_t  *t;

    secs = fc_conf.secs;
    ws = start + (int64_t) (fc_conf.warmup * FC_SEC);
    we = ws + (int64_t) (fc_conf.secs * FC_SEC);
    members = (uint64_t) fc_conf.members;

    msgs = 0;
    accepted = 0;
    complete = 0;
    partial = 0;
    none = 0;
    extra = 0;
    unknown = 0;
    unaccepted = 0;
    w_msgs = 0;
    w_partial = 0;
    lat_max = 0;
    first_max = 0;

    for (i = 0; fc_tall.slots && i <= fc_tall.mask; i++) {
        t = &fc_tall.slots[i];

        if (t->key == 0) {
            continue;
        }

        if (!t->own) {
            unknown++;
            continue;
        }

        msgs++;

        if (t->count > members) {
            extra += t->count - members;
        }

        if (!t->accepted) {
            /* refused (NOT_CONFIRMED, ...) and yet delivered */
            unaccepted += t->count ? 1 : 0;
            continue;
        }

        accepted++;

        if (t->count >= members) {
            complete++;

        } else if (t->count) {
            partial++;

        } else {
            none++;
        }

        if (t->sent < ws || t->sent >= we) {
            continue;
        }

        w_msgs++;

        if (t->count < members) {
            w_partial++;
            continue;
        }

        lat = (uint64_t) (t->last > t->sent ? t->last - t->sent : 0) / 1000;
        fc_total.hist[fc_hist_idx(lat)]++;
        lat_max = lat > lat_max ? lat : lat_max;

        lat = (uint64_t) (t->first > t->sent ? t->first - t->sent : 0)
              / 1000;
        fc_first_hist[fc_hist_idx(lat)]++;
        first_max = lat > first_max ? lat : first_max;
    }

    if (fc_conf.rate > 0) {
        printf("  %-12s %ld topics of %ld members, %ld senders a topic, "
               "%.0f messages/s in all (window %u a sender), %.0f s after "
               "%.0f s of warm-up\n", "target", fc_conf.topics,
               fc_conf.members, fc_conf.senders, fc_conf.rate,
               fc_conf.window, secs, fc_conf.warmup);

    } else {
        printf("  %-12s %ld topics of %ld members, %ld senders a topic, "
               "flat out, window %u a sender, %.0f s after %.0f s of "
               "warm-up\n", "target", fc_conf.topics, fc_conf.members,
               fc_conf.senders, fc_conf.window, secs, fc_conf.warmup);
    }

    printf("  %-12s %.0f messages/s sent, %.0f/s accepted\n", "messages",
           (double) fc_total.w_sent / secs,
           (double) fc_total.w_accepted / secs);
    printf("  %-12s %.0f deliveries/s (receipts by members in the "
           "window)\n", "fan-out", (double) fc_total.w_delivered / secs);

    if (fc_total.behind) {
        printf("  %-12s %" PRIu64 " messages not sent on time: every "
               "window was full\n", "behind", fc_total.behind);
    }

    printf("  %-12s %" PRIu64 " messages sent in the window reached all "
           "%" PRIu64 " members\n", "measured", w_msgs - w_partial,
           members);
    fc_print_lat("last member", fc_total.hist, lat_max);
    fc_print_lat("first member", fc_first_hist, first_max);
    fc_print_lat("accepted in", fc_total.acc_hist, fc_total.acc_max);

    if (nworkers || cpu0->redis > 0) {
        printf("  %-12s nginx workers %.2f, redis %.2f, fc-load %.2f "
               "(cores, over the window)\n", "cpu",
               (double) (cpu1->wcpu - cpu0->wcpu) / FC_SEC / secs,
               (double) (cpu1->rcpu - cpu0->rcpu) / FC_SEC / secs,
               (double) fc_total.cpu_ns / FC_SEC / secs);
        printf("  %-12s nginx workers %.0f ms, redis %.0f ms, fc-load "
               "%.0f ms a second (runnable, waiting for a CPU)\n",
               "cpu wait",
               (double) (cpu1->wwait - cpu0->wwait) / FC_MS / secs,
               (double) (cpu1->rwait - cpu0->rwait) / FC_MS / secs,
               (double) fc_total.wait_ns / FC_MS / secs);
    }

    printf("  %-12s sent %" PRIu64 ", accepted %" PRIu64 ", refused %"
           PRIu64 "; %" PRIu64 " deliveries; after the drain: %" PRIu64
           " reached every member, %" PRIu64 " only some, %" PRIu64
           " none; %" PRIu64 " deliveries more than members\n", "in all",
           fc_total.sent, accepted, fc_total.refused, fc_total.delivered,
           complete, partial, none, extra);

    if (unaccepted) {
        printf("  %-12s %" PRIu64 " messages without ACCEPTED (refused) "
               "were delivered\n", "WARNING", unaccepted);
    }

    if (unknown || fc_total.unknown) {
        printf("  %-12s %" PRIu64 " messages delivered that no sender "
               "sent, %" PRIu64 " texts not of fc-load\n", "WARNING",
               unknown, fc_total.unknown);
    }

    if (fc_total.gaps) {
        printf("  %-12s %" PRIu64 " TOPIC_GAP frames\n", "WARNING",
               fc_total.gaps);
    }

    fc_print_workers();
    fc_print_errors();

    printf("RESULT mode=topic topics=%ld members=%ld senders=%ld "
           "sessions=%ld procs=%u rate=%.0f window=%u secs=%.0f "
           "sent_per_s=%.0f accepted_per_s=%.0f deliveries_per_s=%.0f "
           "messages=%" PRIu64 " p50_us=%" PRIu64 " p90_us=%" PRIu64
           " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64
           " first_p50_us=%" PRIu64 " first_p99_us=%" PRIu64
           " acc_p99_us=%" PRIu64 " nginx_cpu=%.2f redis_cpu=%.2f"
           " load_cpu=%.2f nginx_wait_ms=%.0f redis_wait_ms=%.0f"
           " load_wait_ms=%.0f behind=%" PRIu64 " incomplete=%" PRIu64
           " undelivered=%" PRIu64 " extra=%" PRIu64 " refused=%" PRIu64
           " gaps=%" PRIu64 " delivered_unaccepted=%" PRIu64,
           fc_conf.topics, fc_conf.members, fc_conf.senders, fc_conf.n,
           fc_conf.procs, fc_conf.rate, fc_conf.window, secs,
           (double) fc_total.w_sent / secs,
           (double) fc_total.w_accepted / secs,
           (double) fc_total.w_delivered / secs,
           w_msgs - w_partial,
           fc_hist_pct(fc_total.hist, 0.50, lat_max),
           fc_hist_pct(fc_total.hist, 0.90, lat_max),
           fc_hist_pct(fc_total.hist, 0.99, lat_max),
           fc_hist_pct(fc_total.hist, 0.999, lat_max),
           lat_max,
           fc_hist_pct(fc_first_hist, 0.50, first_max),
           fc_hist_pct(fc_first_hist, 0.99, first_max),
           fc_hist_pct(fc_total.acc_hist, 0.99, fc_total.acc_max),
           (double) (cpu1->wcpu - cpu0->wcpu) / FC_SEC / secs,
           (double) (cpu1->rcpu - cpu0->rcpu) / FC_SEC / secs,
           (double) fc_total.cpu_ns / FC_SEC / secs,
           (double) (cpu1->wwait - cpu0->wwait) / FC_MS / secs,
           (double) (cpu1->rwait - cpu0->rwait) / FC_MS / secs,
           (double) fc_total.wait_ns / FC_MS / secs,
           fc_total.behind, partial, none, extra, fc_total.refused,
           fc_total.gaps, unaccepted);
    fc_result_errors();
    printf("\n");

    if (partial || none) {
        fprintf(stderr, "fc-load: %" PRIu64 " accepted messages did not "
                "reach every member\n", partial + none);
        rc = FC_EXIT_LOST;

    } else if (unknown || fc_total.unknown || extra || fc_total.gaps) {
        rc = rc ? rc : FC_EXIT_ERRORS;
    }

    return rc;
}


static int
fc_parent(void)
{
    int        fds[2][2], rc, status;
    long       workers[FC_MAX_WORKERS];
    pid_t      pid;
    int64_t    now, start, until;
    unsigned   i, j, nworkers;
    uint64_t   rss_before, rss_after, n, lost, extra, lcpu0, lcpu1;
    double     secs, login_secs;
    fc_cpu_t   cpu0, cpu1;
    char       line[64];

    rc = FC_EXIT_OK;
    rss_before = 0;
    rss_after = 0;

    nworkers = fc_nginx_workers(workers, FC_MAX_WORKERS);

    for (i = 0; i < nworkers; i++) {
        rss_before += fc_proc_rss(workers[i]);
    }

    if (fc_conf.pidfile && nworkers == 0) {
        fprintf(stderr, "fc-load: no nginx workers found through %s\n",
                fc_conf.pidfile);
    }

    memset(&cpu0, 0, sizeof(cpu0));
    cpu0.nworkers = nworkers;
    memcpy(cpu0.workers, workers, sizeof(workers));
    cpu0.redis = fc_conf.redis_pidfile
                 ? fc_read_pidfile(fc_conf.redis_pidfile) : 0;
    cpu1 = cpu0;

    fc_cpu_sample(&cpu0);
    lcpu0 = 0;

    fflush(stdout);
    fflush(stderr);

    for (i = 0; i < fc_conf.procs; i++) {
        if (pipe(fds[0]) == -1 || pipe(fds[1]) == -1) {
            fprintf(stderr, "fc-load: pipe() failed: %s\n", strerror(errno));
            return FC_EXIT_SETUP;
        }

        pid = fork();

        if (pid == -1) {
            fprintf(stderr, "fc-load: fork() failed: %s\n", strerror(errno));
            return FC_EXIT_SETUP;
        }

        if (pid == 0) {
            for (j = 0; j < i; j++) {
                close(fc_children[j].ctl);
                close(fc_children[j].res);
            }

            close(fds[0][1]);
            close(fds[1][0]);
            fc_child(i, fds[0][0], fds[1][1]);
            _exit(FC_EXIT_SETUP);
        }

        close(fds[0][0]);
        close(fds[1][1]);

        fc_children[i].pid = pid;
        fc_children[i].ctl = fds[0][1];
        fc_children[i].res = fds[1][0];
    }

    start = fc_now();
    until = start + (int64_t) (fc_conf.limit * FC_SEC);

    switch (fc_conf.mode) {

    case FC_IDLE:
    case FC_P2P:
    case FC_TOPIC:
        if (fc_parent_wait(FC_WANT_READY, until) != 0) {
            fprintf(stderr, "fc-load: not every session logged in within "
                    "the time limit\n");
            rc = FC_EXIT_ERRORS;
            break;
        }

        for (i = 0; i < fc_conf.procs; i++) {
            if (!fc_children[i].ready) {
                fprintf(stderr, "fc-load: process %u ended early\n", i);
                rc = FC_EXIT_ERRORS;
            }
        }

        login_secs = fc_ready_last > fc_ready_first
                     ? (double) (fc_ready_last - fc_ready_first) / FC_SEC
                     : 0;

        printf("fc-load %s: %" PRIu64 " of %ld sessions logged in "
               "(%" PRIu64 " failed) in %.2f s: %.0f logins/s\n",
               fc_conf.mode == FC_IDLE ? "idle"
               : fc_conf.mode == FC_P2P ? "p2p" : "topic",
               fc_ready_logged, fc_conf.n, fc_ready_failed, login_secs,
               login_secs > 0 ? (double) fc_ready_logged / login_secs : 0);

        if (fc_conf.mode == FC_IDLE) {
            fc_cpu_sample(&cpu1);
            lcpu1 = 0;

            for (i = 0; i < fc_conf.procs; i++) {
                lcpu1 += fc_proc_cpu(fc_children[i].pid);
            }

            printf("  %-12s nginx workers %.2f s, redis %.2f s, fc-load "
                   "%.2f s of CPU while logging in\n", "cpu",
                   (double) (cpu1.wcpu - cpu0.wcpu) / FC_SEC,
                   (double) (cpu1.rcpu - cpu0.rcpu) / FC_SEC,
                   (double) (lcpu1 - lcpu0) / FC_SEC);

            for (i = 0; i < nworkers; i++) {
                rss_after += fc_proc_rss(workers[i]);
            }

            if (nworkers) {
                printf("  %-12s %u workers, RSS before %.1f MiB, after "
                       "%.1f MiB: %.0f bytes a session\n", "nginx",
                       nworkers, (double) rss_before / 1048576,
                       (double) rss_after / 1048576,
                       fc_ready_logged
                       ? ((double) rss_after - (double) rss_before)
                         / (double) fc_ready_logged
                       : 0);
            }

            fflush(stdout);

            if (rc == FC_EXIT_OK && fc_ready_logged) {
                (void) fc_parent_wait(FC_WANT_NOTHING,
                                      fc_now() + (int64_t) (fc_conf.secs
                                                            * FC_SEC));
            }

            break;
        }

        if (rc != FC_EXIT_OK || fc_ready_failed) {
            fprintf(stderr, "fc-load: not every session logged in, "
                    "no traffic sent\n");
            rc = FC_EXIT_ERRORS;
            break;
        }

        fflush(stdout);

        now = fc_now();
        start = now + 200 * FC_MS;
        snprintf(line, sizeof(line), "G %" PRId64 "\n", start);
        fc_parent_tell(line);

        (void) fc_parent_wait(FC_WANT_NOTHING,
                              start + (int64_t) (fc_conf.warmup * FC_SEC));
        fc_cpu_sample(&cpu0);

        (void) fc_parent_wait(FC_WANT_NOTHING,
                              start + (int64_t) ((fc_conf.warmup
                                                  + fc_conf.secs) * FC_SEC));
        fc_cpu_sample(&cpu1);

        until = fc_now() + (int64_t) (fc_conf.drain * FC_SEC);

        if (fc_parent_wait(FC_WANT_DRAINED, until) != 0) {
            fprintf(stderr, "fc-load: messages still under way after the "
                    "%.0f s drain\n", fc_conf.drain);
        }

        break;

    case FC_OFFLINE:
        if (fc_parent_wait(FC_WANT_DRAINED, until) != 0) {
            fprintf(stderr, "fc-load: time limit reached\n");
            rc = FC_EXIT_ERRORS;
        }

        break;
    }

    fc_parent_tell("S\n");

    if (fc_parent_wait(FC_WANT_END, fc_now() + 10 * FC_SEC) != 0) {
        fprintf(stderr, "fc-load: a process did not report\n");
        rc = FC_EXIT_ERRORS;
    }

    for (i = 0; i < fc_conf.procs; i++) {
        if (!fc_children[i].ended) {
            kill(fc_children[i].pid, SIGKILL);
            rc = FC_EXIT_ERRORS;
        }

        (void) waitpid(fc_children[i].pid, &status, 0);
    }

    if (fc_total.login_failed || fc_total.closed || fc_total.bad_frames
        || fc_total.unexpected || fc_total.timeouts || fc_errors_total())
    {
        rc = rc ? rc : FC_EXIT_ERRORS;
    }

    switch (fc_conf.mode) {

    case FC_IDLE:
        if (fc_ready_logged) {
            printf("  %-12s %.0f s, %" PRIu64 " pings, %" PRIu64 " pongs\n",
                   "held", fc_conf.secs, fc_total.pings, fc_total.pongs);
        }

        fc_print_workers();
        fc_print_errors();

        login_secs = fc_ready_last > fc_ready_first
                     ? (double) (fc_ready_last - fc_ready_first) / FC_SEC
                     : 0;

        printf("RESULT mode=idle sessions=%" PRIu64 " target=%ld "
               "failed=%" PRIu64 " procs=%u login_s=%.3f login_rate=%.0f "
               "workers=%u rss_before=%" PRIu64 " rss_after=%" PRIu64
               " bytes_per_session=%.0f", fc_ready_logged, fc_conf.n,
               fc_total.login_failed, fc_conf.procs, login_secs,
               login_secs > 0 ? (double) fc_ready_logged / login_secs : 0,
               nworkers, rss_before, rss_after,
               fc_ready_logged && nworkers
               ? ((double) rss_after - (double) rss_before)
                 / (double) fc_ready_logged
               : 0);
        fc_result_errors();
        printf("\n");

        if (fc_ready_logged < (uint64_t) fc_conf.n) {
            rc = rc ? rc : FC_EXIT_ERRORS;
        }

        break;

    case FC_P2P:
        secs = fc_conf.secs;
        lost = fc_total.accepted > fc_total.unique
               ? fc_total.accepted - fc_total.unique : 0;
        extra = fc_total.unique > fc_total.accepted
                ? fc_total.unique - fc_total.accepted : 0;

        if (fc_conf.rate > 0) {
            printf("  %-12s %.0f messages/s, window %u a session, "
                   "%.0f s after %.0f s of warm-up\n", "target",
                   fc_conf.rate, fc_conf.window, secs, fc_conf.warmup);

        } else {
            printf("  %-12s flat out, window %u a session, "
                   "%.0f s after %.0f s of warm-up\n", "target",
                   fc_conf.window, secs, fc_conf.warmup);
        }

        printf("  %-12s %.0f/s\n", "sent", (double) fc_total.w_sent / secs);
        printf("  %-12s %.0f/s\n", "accepted",
               (double) fc_total.w_accepted / secs);
        printf("  %-12s %.0f/s\n", "delivered",
               (double) fc_total.w_delivered / secs);

        if (fc_total.behind) {
            printf("  %-12s %" PRIu64 " messages not sent on time: every "
                   "window was full\n", "behind", fc_total.behind);
        }

        fc_print_lat("latency", fc_total.hist, fc_total.lat_max);
        fc_print_lat("accepted in", fc_total.acc_hist, fc_total.acc_max);

        if (nworkers || cpu0.redis > 0) {
            printf("  %-12s nginx workers %.2f, redis %.2f, fc-load %.2f "
                   "(cores, over the window)\n", "cpu",
                   (double) (cpu1.wcpu - cpu0.wcpu) / FC_SEC / secs,
                   (double) (cpu1.rcpu - cpu0.rcpu) / FC_SEC / secs,
                   (double) fc_total.cpu_ns / FC_SEC / secs);
            printf("  %-12s nginx workers %.0f ms, redis %.0f ms, fc-load "
                   "%.0f ms a second (runnable, waiting for a CPU)\n",
                   "cpu wait",
                   (double) (cpu1.wwait - cpu0.wwait) / FC_MS / secs,
                   (double) (cpu1.rwait - cpu0.rwait) / FC_MS / secs,
                   (double) fc_total.wait_ns / FC_MS / secs);
        }

        printf("  %-12s sent %" PRIu64 ", accepted %" PRIu64 ", refused %"
               PRIu64 "; delivered %" PRIu64 " (%" PRIu64 " uuids, %"
               PRIu64 " delivered again); not delivered %" PRIu64 "\n",
               "in all", fc_total.sent, fc_total.accepted, fc_total.refused,
               fc_total.delivered, fc_total.unique, fc_total.duplicates,
               lost);

        if (extra) {
            printf("  %-12s %" PRIu64 " more uuids delivered than ACCEPTED "
                   "frames: refused messages were stored and delivered\n",
                   "WARNING", extra);
        }

        fc_print_errors();

        printf("RESULT mode=p2p sessions=%ld procs=%u rate=%.0f window=%u "
               "secs=%.0f sent_per_s=%.0f accepted_per_s=%.0f "
               "delivered_per_s=%.0f p50_us=%" PRIu64 " p90_us=%" PRIu64
               " p99_us=%" PRIu64 " p999_us=%" PRIu64 " max_us=%" PRIu64
               " acc_p99_us=%" PRIu64 " nginx_cpu=%.2f redis_cpu=%.2f"
               " load_cpu=%.2f nginx_wait_ms=%.0f redis_wait_ms=%.0f"
               " load_wait_ms=%.0f behind=%" PRIu64 " undelivered=%" PRIu64
               " refused=%" PRIu64 " duplicates=%" PRIu64
               " delivered_unaccepted=%" PRIu64,
               fc_conf.n, fc_conf.procs, fc_conf.rate, fc_conf.window,
               secs, (double) fc_total.w_sent / secs,
               (double) fc_total.w_accepted / secs,
               (double) fc_total.w_delivered / secs,
               fc_hist_pct(fc_total.hist, 0.50, fc_total.lat_max),
               fc_hist_pct(fc_total.hist, 0.90, fc_total.lat_max),
               fc_hist_pct(fc_total.hist, 0.99, fc_total.lat_max),
               fc_hist_pct(fc_total.hist, 0.999, fc_total.lat_max),
               fc_total.lat_max,
               fc_hist_pct(fc_total.acc_hist, 0.99, fc_total.acc_max),
               (double) (cpu1.wcpu - cpu0.wcpu) / FC_SEC / secs,
               (double) (cpu1.rcpu - cpu0.rcpu) / FC_SEC / secs,
               (double) fc_total.cpu_ns / FC_SEC / secs,
               (double) (cpu1.wwait - cpu0.wwait) / FC_MS / secs,
               (double) (cpu1.rwait - cpu0.rwait) / FC_MS / secs,
               (double) fc_total.wait_ns / FC_MS / secs,
               fc_total.behind, lost, fc_total.refused, fc_total.duplicates,
               extra);
        fc_result_errors();
        printf("\n");

        if (lost) {
            fprintf(stderr, "fc-load: %" PRIu64 " accepted messages were "
                    "not delivered\n", lost);
            rc = FC_EXIT_LOST;
        }

        break;

    case FC_TOPIC:
        secs = fc_conf.secs;
        rc = fc_topic_result(rc, start, &cpu0, &cpu1, nworkers);
        break;

    case FC_OFFLINE:
        n = fc_total.accepted;
        lost = n > fc_total.unique ? n - fc_total.unique : 0;

        printf("fc-load offline: %ld messages from one sender to %ld "
               "offline recipients\n", fc_conf.n, fc_conf.m);
        printf("  %-12s %" PRIu64 " accepted, %" PRIu64 " refused in "
               "%.3f s: %.0f/s (window %u)\n", "stored", n, fc_total.refused,
               (double) fc_total.store_ns / FC_SEC,
               fc_total.store_ns
               ? (double) n * FC_SEC / (double) fc_total.store_ns : 0,
               fc_conf.window);
        printf("  %-12s %ld recipients logged in within %.3f s; %" PRIu64
               " messages arrived within %.3f s of the first login: "
               "%.0f/s\n", "drain", fc_conf.m,
               (double) fc_total.recip_login_ns / FC_SEC, fc_total.unique,
               (double) fc_total.drain_ns / FC_SEC,
               fc_total.drain_ns
               ? (double) fc_total.unique * FC_SEC
                 / (double) fc_total.drain_ns
               : 0);
        printf("  %-12s missing %" PRIu64 ", duplicates %" PRIu64
               ", unknown %" PRIu64 "; after ack and a new login: %" PRIu64
               " delivered again, %" PRIu64 " arrived late\n", "verify",
               lost, fc_total.duplicates, fc_total.unknown,
               fc_total.redelivered, fc_total.late);
        fc_print_errors();

        printf("RESULT mode=offline messages=%ld recipients=%ld "
               "accepted=%" PRIu64 " store_s=%.3f store_per_s=%.0f "
               "login_s=%.3f drain_s=%.3f drain_per_s=%.0f missing=%"
               PRIu64 " duplicates=%" PRIu64 " unknown=%" PRIu64
               " redelivered=%" PRIu64 " late=%" PRIu64, fc_conf.n,
               fc_conf.m, n, (double) fc_total.store_ns / FC_SEC,
               fc_total.store_ns
               ? (double) n * FC_SEC / (double) fc_total.store_ns : 0,
               (double) fc_total.recip_login_ns / FC_SEC,
               (double) fc_total.drain_ns / FC_SEC,
               fc_total.drain_ns
               ? (double) fc_total.unique * FC_SEC
                 / (double) fc_total.drain_ns
               : 0,
               lost, fc_total.duplicates, fc_total.unknown,
               fc_total.redelivered, fc_total.late);
        fc_result_errors();
        printf("\n");

        if (lost || fc_total.unknown || fc_total.redelivered
            || fc_total.drain_timeout || n < (uint64_t) fc_conf.n)
        {
            if (lost || fc_total.redelivered || fc_total.unknown) {
                fprintf(stderr, "fc-load: messages lost or acknowledged "
                        "ones delivered again\n");
                rc = FC_EXIT_LOST;

            } else {
                rc = rc ? rc : FC_EXIT_ERRORS;
            }
        }

        break;
    }

    fflush(stdout);

    return rc;
}


/* command line */

static void
fc_usage(void)
{
    fprintf(stderr,
        "usage: fc-load idle|p2p|offline|topic [options]\n"
        "\n"
        "  idle    -n N       N sessions logged in and held for -t s (a\n"
        "                     SEND_PING every -i s); login rate and, with\n"
        "                     -p, the RSS of the nginx workers a session\n"
        "  p2p     -n N       N sessions sending to random online peers for\n"
        "                     -t s after -W s of warm-up, at -r messages/s\n"
        "                     in all (0: flat out, -w in flight a session);\n"
        "                     throughput, latency, errors\n"
        "  offline -n K -m M  K messages to M ids that are not logged in,\n"
        "                     then the recipients log in: drain rate, and\n"
        "                     every message must arrive exactly once\n"
        "  topic   -T T -M M  T topics of M members each (logged in,\n"
        "                     created and joined first); -S members a\n"
        "                     topic send SEND_MESSAGE_TOPIC at -r\n"
        "                     messages/s in all (0: flat out, -w in\n"
        "                     flight a sender); deliveries/s, send to\n"
        "                     last (and first) member's receipt\n"
        "\n"
        "  -s ADDRS     msg servers, host:port[,host:port...] "
        "(127.0.0.1:19000)\n"
        "  -n N         sessions (idle, p2p) or messages (offline)\n"
        "  -m M         offline recipients (100)\n"
        "  -r RATE      p2p messages a second in all, 0 = flat out (0)\n"
        "  -w WINDOW    messages in flight a session (64)\n"
        "  -t SECS      idle: hold; p2p, topic: measure (10)\n"
        "  -W SECS      p2p, topic warm-up, not counted (1)\n"
        "  -P PROCS     processes (1); sessions are split between them\n"
        "  -c CONC      connects + logins under way a process (256)\n"
        "  -b N         source addresses 127.0.0.1 ... N; the default is 16\n"
        "               when every server is on 127.0.0.0/8, else 1\n"
        "  -C SECS      connect + login timeout (15)\n"
        "  -D SECS      drain timeout (p2p, offline) (30)\n"
        "  -T SECS      overall time limit (depends on the mode); in topic\n"
        "               mode: the number of topics\n"
        "  -L SECS      overall time limit, in every mode\n"
        "  -M M         topic: members a topic\n"
        "  -S S         topic: senders a topic, its first S members (4)\n"
        "  -i SECS      ping interval, 0 = none (20)\n"
        "  -l BYTES     message text size (the time stamp, padded)\n"
        "  -x PREFIX    id prefix (fcl<pid>-)\n"
        "  -p PIDFILE   nginx master pid file: RSS and CPU of its workers\n"
        "  -k PIDFILE   redis pid file: its CPU (p2p)\n");
}


static int
fc_parse_servers(char *list)
{
    char                *p, *colon, *save;
    long                 port;
    struct sockaddr_in  *sin;

    fc_conf.nservers = 0;

    for (p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (fc_conf.nservers == FC_MAX_SERVERS) {
            fprintf(stderr, "fc-load: at most %d servers\n", FC_MAX_SERVERS);
            return -1;
        }

        colon = strrchr(p, ':');
        if (colon == NULL) {
            fprintf(stderr, "fc-load: \"%s\" is not host:port\n", p);
            return -1;
        }

        *colon = '\0';
        port = strtol(colon + 1, NULL, 10);

        sin = &fc_conf.servers[fc_conf.nservers];
        memset(sin, 0, sizeof(struct sockaddr_in));
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);

        if (port <= 0 || port > 65535
            || inet_pton(AF_INET, p, &sin->sin_addr) != 1)
        {
            fprintf(stderr, "fc-load: bad address \"%s:%s\" (IPv4 "
                    "host:port)\n", p, colon + 1);
            return -1;
        }

        *colon = ':';
        fc_conf.server_names[fc_conf.nservers] = p;
        fc_conf.nservers++;
    }

    return fc_conf.nservers ? 0 : -1;
}


int
main(int argc, char **argv)
{
    int       ch, limit_set;
    char     *servers, *mode;
    unsigned  i;
    double    v;

    if (argc < 2 || argv[1][0] == '-') {
        fc_usage();
        return FC_EXIT_SETUP;
    }

    mode = argv[1];

    if (strcmp(mode, "idle") == 0) {
        fc_conf.mode = FC_IDLE;

    } else if (strcmp(mode, "p2p") == 0) {
        fc_conf.mode = FC_P2P;

    } else if (strcmp(mode, "offline") == 0) {
        fc_conf.mode = FC_OFFLINE;

    } else if (strcmp(mode, "topic") == 0) {
        fc_conf.mode = FC_TOPIC;

    } else {
        fc_usage();
        return FC_EXIT_SETUP;
    }

    servers = NULL;
    limit_set = 0;

    fc_conf.n = -1;
    fc_conf.m = 100;
    fc_conf.topics = 1;
    fc_conf.members = 0;
    fc_conf.senders = 4;
    fc_conf.window = 64;
    fc_conf.secs = 10;
    fc_conf.warmup = 1;
    fc_conf.procs = 1;
    fc_conf.conc = 256;
    fc_conf.conn_timeout = 15;
    fc_conf.drain = 30;
    fc_conf.ping = 20;
    snprintf(fc_conf.prefix, sizeof(fc_conf.prefix), "fcl%ld-",
             (long) getpid());

    optind = 2;

    while ((ch = getopt(argc, argv,
                        "s:n:m:r:w:t:W:P:c:b:C:D:T:L:M:S:i:l:x:p:k:h"))
           != -1)
    {
        v = optarg ? strtod(optarg, NULL) : 0;

        switch (ch) {

        case 's':
            servers = optarg;
            break;

        case 'n':
            fc_conf.n = (long) v;
            break;

        case 'm':
            fc_conf.m = (long) v;
            break;

        case 'r':
            fc_conf.rate = v;
            break;

        case 'w':
            fc_conf.window = (unsigned) v;
            break;

        case 't':
            fc_conf.secs = v;
            break;

        case 'W':
            fc_conf.warmup = v;
            break;

        case 'P':
            fc_conf.procs = (unsigned) v;
            break;

        case 'c':
            fc_conf.conc = (unsigned) v;
            break;

        case 'b':
            fc_conf.sources = (unsigned) v;
            break;

        case 'C':
            fc_conf.conn_timeout = v;
            break;

        case 'D':
            fc_conf.drain = v;
            break;

        case 'T':
            /* topic mode: topics; the others: the time limit (as -L) */
            if (fc_conf.mode == FC_TOPIC) {
                fc_conf.topics = (long) v;
                break;
            }

            fc_conf.limit = v;
            limit_set = 1;
            break;

        case 'L':
            fc_conf.limit = v;
            limit_set = 1;
            break;

        case 'M':
            fc_conf.members = (long) v;
            break;

        case 'S':
            fc_conf.senders = (long) v;
            break;

        case 'i':
            fc_conf.ping = v;
            break;

        case 'l':
            fc_conf.msg_size = (size_t) v;
            break;

        case 'x':
            snprintf(fc_conf.prefix, sizeof(fc_conf.prefix), "%s", optarg);
            break;

        case 'p':
            fc_conf.pidfile = optarg;
            break;

        case 'k':
            fc_conf.redis_pidfile = optarg;
            break;

        default:
            fc_usage();
            return FC_EXIT_SETUP;
        }
    }

    if (optind != argc) {
        fc_usage();
        return FC_EXIT_SETUP;
    }

    if (servers == NULL) {
        servers = strdup("127.0.0.1:19000");
    }

    if (servers == NULL || fc_parse_servers(servers) != 0) {
        return FC_EXIT_SETUP;
    }

    if (fc_conf.mode == FC_TOPIC) {
        if (fc_conf.topics <= 0 || fc_conf.members <= 0
            || fc_conf.senders <= 0 || fc_conf.topics > 100000
            || fc_conf.members > 1000000
            || fc_conf.topics * fc_conf.members > 10000000)
        {
            fprintf(stderr, "fc-load: topic needs -T TOPICS -M MEMBERS "
                    "(and -S SENDERS > 0)\n");
            return FC_EXIT_SETUP;
        }

        if (fc_conf.senders > fc_conf.members) {
            fc_conf.senders = fc_conf.members;
        }

        fc_conf.n = fc_conf.topics * fc_conf.members;

        if (fc_conf.secs <= 0) {
            fprintf(stderr, "fc-load: topic needs -t > 0\n");
            return FC_EXIT_SETUP;
        }
    }

    if (fc_conf.n <= 0) {
        fprintf(stderr, "fc-load: -n is needed\n");
        return FC_EXIT_SETUP;
    }

    if (fc_conf.sources == 0) {
        fc_conf.sources = 16;

        for (i = 0; i < fc_conf.nservers; i++) {
            if ((ntohl(fc_conf.servers[i].sin_addr.s_addr) >> 24) != 127) {
                fc_conf.sources = 1;
            }
        }
    }

    if (fc_conf.sources > 254) {
        fprintf(stderr, "fc-load: -b is at most 254\n");
        return FC_EXIT_SETUP;
    }

    if (fc_conf.n > 10000000 || fc_conf.m <= 0 || fc_conf.m > 1000000
        || fc_conf.window == 0 || fc_conf.procs == 0
        || fc_conf.procs > FC_MAX_PROCS || fc_conf.conc == 0
        || fc_conf.secs < 0 || fc_conf.warmup < 0 || fc_conf.rate < 0
        || fc_conf.conn_timeout <= 0 || fc_conf.msg_size > 4000)
    {
        fprintf(stderr, "fc-load: an option is out of range\n");
        return FC_EXIT_SETUP;
    }

    if (fc_conf.mode == FC_P2P && fc_conf.n < 2) {
        fprintf(stderr, "fc-load: p2p needs at least 2 sessions\n");
        return FC_EXIT_SETUP;
    }

    if (fc_conf.mode == FC_P2P && fc_conf.secs <= 0) {
        fprintf(stderr, "fc-load: p2p needs -t > 0\n");
        return FC_EXIT_SETUP;
    }

    if (fc_conf.mode == FC_OFFLINE && fc_conf.procs != 1) {
        fprintf(stderr, "fc-load: offline runs in one process (-P 1)\n");
        fc_conf.procs = 1;
    }

    if ((long) fc_conf.procs > fc_conf.n && fc_conf.mode != FC_OFFLINE) {
        fc_conf.procs = (unsigned) fc_conf.n;
    }

    if (!limit_set) {
        switch (fc_conf.mode) {

        case FC_IDLE:
            fc_conf.limit = fc_conf.conn_timeout + 120;
            break;

        case FC_P2P:
        case FC_TOPIC:
            fc_conf.limit = fc_conf.conn_timeout + 120;
            break;

        default:
            fc_conf.limit = fc_conf.conn_timeout + 300;
        }
    }

    /* the time limit is for everything but the idle hold and p2p run */

    if (fc_conf.mode == FC_IDLE) {
        fc_conf.limit += fc_conf.secs;

    } else if (fc_conf.mode == FC_P2P || fc_conf.mode == FC_TOPIC) {
        fc_conf.limit += fc_conf.warmup + fc_conf.secs + fc_conf.drain;
    }

    signal(SIGPIPE, SIG_IGN);

    return fc_parent();
}
