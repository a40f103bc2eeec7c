
/*
 * fc-load: time and the figures.  The latency histogram, CPU and memory
 * of this process, the nginx workers and Redis (from /proc), the fields a
 * child reports to the parent, and the parts of the summaries that the
 * modes share.
 */


#include "fc_load.h"

#include <dirent.h>
#include <time.h>
#include <unistd.h>


const char  *fc_err_codes[] = {
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

_Static_assert(sizeof(fc_err_codes) / sizeof(fc_err_codes[0]) == FC_ERR_N,
               "FC_ERR_N is the number of fc_err_codes");


/* the figures a child reports, and how the parent adds them up */

#define fc_field(name, agg)  { #name, offsetof(fc_stats_t, name), agg }

fc_field_t  fc_fields[] = {
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
    fc_field(w_frames, FC_AGG_SUM),
    fc_field(tls_records, FC_AGG_SUM),
    fc_field(tls_bytes, FC_AGG_SUM),
    fc_field(w_tls_records, FC_AGG_SUM),
    fc_field(w_tls_bytes, FC_AGG_SUM),
    { NULL, 0, 0 }
};


/* time, and the CPU of this process, in ns */

static int64_t
fc_clock(clockid_t clock)
{
    struct timespec  ts;

    clock_gettime(clock, &ts);

    return (int64_t) ts.tv_sec * FC_SEC + ts.tv_nsec;
}


int64_t
fc_now(void)
{
    return fc_clock(CLOCK_MONOTONIC);
}


int64_t
fc_cpu_now(void)
{
    return fc_clock(CLOCK_PROCESS_CPUTIME_ID);
}


/* the second of the two numbers a /proc file starts with; 0 if none */

static uint64_t
fc_proc_second(const char *path)
{
    FILE                *f;
    unsigned long long   first, second;

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    if (fscanf(f, "%llu %llu", &first, &second) != 2) {
        second = 0;
    }

    fclose(f);

    return second;
}


/* the time a process waited for a CPU while runnable, in ns */

uint64_t
fc_sched_wait(long pid)
{
    char  path[64];

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/schedstat");

    } else {
        snprintf(path, sizeof(path), "/proc/%ld/schedstat", pid);
    }

    return fc_proc_second(path);
}


/* the histogram */

unsigned
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


/* the time from sent to now, in us */

void
fc_hist_add(uint64_t *hist, uint64_t *max, int64_t sent, int64_t now)
{
    int64_t  lat;

    lat = (now - sent) / 1000;

    if (lat < 0) {
        lat = 0;
    }

    hist[fc_hist_idx((uint64_t) lat)]++;

    if ((uint64_t) lat > *max) {
        *max = (uint64_t) lat;
    }
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


uint64_t
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


unsigned
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


/* the sessions of each nginx worker, by the pid in LOGIN_OK */

void
fc_stats_worker(fc_stats_t *st, long pid, uint64_t n)
{
    unsigned  i;

    for (i = 0; i < st->nworkers; i++) {
        if (st->worker_pid[i] == pid) {
            st->worker_sessions[i] += n;
            return;
        }
    }

    if (st->nworkers < FC_MAX_WORKERS) {
        st->worker_pid[st->nworkers] = pid;
        st->worker_sessions[st->nworkers] = n;
        st->nworkers++;
    }
}


/* the parent: nginx workers and their memory and CPU, from /proc */

long
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


/*
 * the children of the master named in the pid file; or the process itself
 * (fc_conf.server_self)
 */

unsigned
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

    if (fc_conf.server_self) {
        /* the server is that process (mqtt: mosquitto) */
        pids[0] = master;
        return max ? 1 : 0;
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


uint64_t
fc_proc_rss(long pid)
{
    char  path[64];

    snprintf(path, sizeof(path), "/proc/%ld/statm", pid);

    return fc_proc_second(path) * (uint64_t) sysconf(_SC_PAGESIZE);
}


/* user + system time in ns */

uint64_t
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


void
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


/* the summaries: the lines, and the parts of the RESULT line, of every mode */

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


void
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


uint64_t
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


/* the ERROR frames by code, then the other errors; a mode that speaks
   another protocol (mqtt: input) has no ERROR frames, and packets */

void
fc_print_errors(void)
{
    unsigned     i, any;
    const char  *what;

    printf("  %-12s", "errors");

    what = "packets";

    if (fc_conf.mode->input == NULL) {
        what = "frames";
        any = 0;

        for (i = 0; i < FC_ERR_N; i++) {
            if (fc_total.errors[i]) {
                printf(" %s %" PRIu64, fc_err_codes[i], fc_total.errors[i]);
                any = 1;
            }
        }

        printf("%s;", any ? "" : " none");
    }

    printf(" failed logins %" PRIu64 ", closed by the server %" PRIu64
           ", bad %s %" PRIu64 ", unexpected %s %" PRIu64
           ", timeouts %" PRIu64 "\n", fc_total.login_failed,
           fc_total.closed, what, fc_total.bad_frames, what,
           fc_total.unexpected, fc_total.timeouts);
}


void
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


/* the nginx workers of the sessions, from LOGIN_OK: none in a mode that
   speaks another protocol (mqtt: input) */

void
fc_print_workers(void)
{
    unsigned  i;

    if (fc_total.nworkers == 0 || fc_conf.mode->input) {
        return;
    }

    printf("  %-12s", "workers");

    for (i = 0; i < fc_total.nworkers; i++) {
        printf("%s pid %ld: %" PRIu64, i ? "," : "", fc_total.worker_pid[i],
               fc_total.worker_sessions[i]);
    }

    printf(" sessions\n");
}


void
fc_print_behind(void)
{
    if (fc_total.behind) {
        printf("  %-12s %" PRIu64 " messages not sent on time: every "
               "window was full\n", "behind", fc_total.behind);
    }
}


/* CPU and CPU wait over the measured window of secs */

void
fc_print_cpu(fc_parent_t *p, double secs)
{
    fc_cpu_t  *cpu0, *cpu1;

    cpu0 = &p->cpu0;
    cpu1 = &p->cpu1;

    if (p->nworkers || cpu0->redis > 0) {
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
}


void
fc_result_lat(uint64_t *hist, uint64_t max)
{
    printf(" p50_us=%" PRIu64 " p90_us=%" PRIu64 " p99_us=%" PRIu64
           " p999_us=%" PRIu64 " max_us=%" PRIu64,
           fc_hist_pct(hist, 0.50, max),
           fc_hist_pct(hist, 0.90, max),
           fc_hist_pct(hist, 0.99, max),
           fc_hist_pct(hist, 0.999, max),
           max);
}


void
fc_result_cpu(fc_parent_t *p, double secs)
{
    fc_cpu_t  *cpu0, *cpu1;

    cpu0 = &p->cpu0;
    cpu1 = &p->cpu1;

    printf(" nginx_cpu=%.2f redis_cpu=%.2f load_cpu=%.2f nginx_wait_ms=%.0f"
           " redis_wait_ms=%.0f load_wait_ms=%.0f",
           (double) (cpu1->wcpu - cpu0->wcpu) / FC_SEC / secs,
           (double) (cpu1->rcpu - cpu0->rcpu) / FC_SEC / secs,
           (double) fc_total.cpu_ns / FC_SEC / secs,
           (double) (cpu1->wwait - cpu0->wwait) / FC_MS / secs,
           (double) (cpu1->rwait - cpu0->rwait) / FC_MS / secs,
           (double) fc_total.wait_ns / FC_MS / secs);
}


/*
 * A measured run of 1:1 messages (p2p, mqtt): the accepted messages that
 * were never delivered; in *extra, the messages delivered beyond those
 * accepted
 */

uint64_t
fc_undelivered(uint64_t *extra)
{
    *extra = fc_total.unique > fc_total.accepted
             ? fc_total.unique - fc_total.accepted : 0;

    return fc_total.accepted > fc_total.unique
           ? fc_total.accepted - fc_total.unique : 0;
}


/* its first lines: the target, the rates and the latencies; acked: what
   acknowledges a message, after "accepted" ("" or " (PUBACK)") */

void
fc_print_run(double secs, const char *acked)
{
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
    printf("  %-12s %.0f/s%s\n", "accepted",
           (double) fc_total.w_accepted / secs, acked);
    printf("  %-12s %.0f/s\n", "delivered",
           (double) fc_total.w_delivered / secs);

    fc_print_behind();
    fc_print_lat("latency", fc_total.hist, fc_total.lat_max);
    fc_print_lat("accepted in", fc_total.acc_hist, fc_total.acc_max);
}


/* the start of its RESULT line: the mode, the load, rates and latencies */

void
fc_result_run(double secs)
{
    printf("RESULT mode=%s sessions=%ld procs=%u rate=%.0f window=%u "
           "secs=%.0f sent_per_s=%.0f accepted_per_s=%.0f "
           "delivered_per_s=%.0f", fc_conf.mode->name,
           fc_conf.n, fc_conf.procs, fc_conf.rate, fc_conf.window,
           secs, (double) fc_total.w_sent / secs,
           (double) fc_total.w_accepted / secs,
           (double) fc_total.w_delivered / secs);
    fc_result_lat(fc_total.hist, fc_total.lat_max);
    printf(" acc_p99_us=%" PRIu64,
           fc_hist_pct(fc_total.acc_hist, 0.99, fc_total.acc_max));
}


/* its fields of the messages lost (fc_undelivered()) */

void
fc_result_lost(uint64_t lost, uint64_t extra)
{
    printf(" behind=%" PRIu64 " undelivered=%" PRIu64 " refused=%" PRIu64
           " duplicates=%" PRIu64 " delivered_unaccepted=%" PRIu64,
           fc_total.behind, lost, fc_total.refused, fc_total.duplicates,
           extra);
}


/* the end of its RESULT line; rc, or FC_EXIT_LOST when lost (the accepted
   messages, "accepted" or "PUBACKed", never delivered) */

int
fc_result_end(int rc, uint64_t lost, const char *accepted)
{
    fc_result_errors();
    printf("\n");

    if (lost) {
        fprintf(stderr, "fc-load: %" PRIu64 " %s messages were "
                "not delivered\n", lost, accepted);
        rc = FC_EXIT_LOST;
    }

    return rc;
}
