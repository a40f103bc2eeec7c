
/*
 * fc-load: main, the options and the modes; the parent, which forks the
 * children and coordinates them through pipes; a child's event loop.
 */


#include "fc_load.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>


/*
 * the modes, "fc-load <name>": a new one is a file fc_<name>.c with its
 * fc_<name>_mode, declared in fc_load.h, and a line here
 */

static const fc_mode_t  *fc_modes[] = {
    &fc_idle_mode,
    &fc_p2p_mode,
    &fc_offline_mode,
    &fc_topic_mode,
    &fc_mqtt_mode,
    &fc_mqtt_idle_mode,
    NULL
};


fc_conf_t          fc_conf;
fc_proc_t          fc;
static char        fc_ctl_tag;


static void fc_usage(void);
static int fc_parse_servers(char *list);
static int fc_parent(void);
static void fc_child(unsigned k, int ctl, int res);


/* randomness, numbers, messages */

uint64_t
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


uint64_t
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


void
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


/* the child's figures, to the parent */

static void
fc_report(void)
{
    unsigned     i;
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

    if (fc_conf.mode->report) {
        fc_conf.mode->report(fc.res);
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


void
fc_tell(const char *line)
{
    fprintf(fc.res, "%s\n", line);
    fflush(fc.res);
}


/* "G <start ns>" starts a measured run, "S" stops: report and exit */

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

    fc.base = (uint32_t) ((uint64_t) k * (uint64_t) fc_conf.sessions
                          / fc_conf.procs);
    count = (uint32_t) ((uint64_t) (k + 1) * (uint64_t) fc_conf.sessions
                        / fc_conf.procs)
            - fc.base;

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

    /* the senders: every session, or those the mode says */

    fc.snd = calloc(count ? count : 1, sizeof(fc_conn_t *));
    if (fc.snd == NULL) {
        fprintf(stderr, "fc-load: out of memory\n");
        _exit(FC_EXIT_SETUP);
    }

    for (j = 0; j < count; j++) {
        c = &fc.conns[j];

        if (fc_conf.mode->sender == NULL || fc_conf.mode->sender(c)) {
            fc.snd[fc.nsnd++] = c;
        }
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

    fc.phase = FC_PH_LOGIN;
    fc.conn_next = 0;
    fc.conn_end = count;

    /* the mode's tables, its share of the rate, perhaps a phase of its own */

    if (fc_conf.mode->init && fc_conf.mode->init() != 0) {
        _exit(FC_EXIT_SETUP);
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
                && fc.setting_up == 0)
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

        case FC_PH_WAIT:
        case FC_PH_DONE:
            break;

        default:
            if (fc_conf.mode->tick) {
                timeout = fc_conf.mode->tick(now);
            }

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


/* the parent */


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
fc_stats_t          fc_total;
uint64_t            fc_ready_logged;
uint64_t            fc_ready_failed;
uint64_t            fc_ready_first;
uint64_t            fc_ready_last;


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

    if (fc_conf.mode->line && fc_conf.mode->line(line)) {
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
        fc_stats_worker(&fc_total, strtol(name, NULL, 10), v);
        break;
    }
}


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


/* reads the children's lines until every child has "what" or time is up */

int
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


void
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


/* the CPU time of the children so far, in ns */

uint64_t
fc_children_cpu(void)
{
    unsigned  i;
    uint64_t  ns;

    ns = 0;

    for (i = 0; i < fc_conf.procs; i++) {
        ns += fc_proc_cpu(fc_children[i].pid);
    }

    return ns;
}


/* from the first connect to the last LOGIN_OK, over every process */

double
fc_login_secs(void)
{
    return fc_ready_last > fc_ready_first
           ? (double) (fc_ready_last - fc_ready_first) / FC_SEC
           : 0;
}


/*
 * Waits until every process has its sessions logged in (READY) and says
 * how fast that went.  Returns -1 at the time limit (nothing said), else
 * FC_EXIT_OK, or FC_EXIT_ERRORS when a process ended early.
 */

int
fc_login_wait(fc_parent_t *p)
{
    int       rc;
    unsigned  i;
    double    login_secs;

    if (fc_parent_wait(FC_WANT_READY, p->until) != 0) {
        fprintf(stderr, "fc-load: not every session logged in within "
                "the time limit\n");
        return -1;
    }

    rc = FC_EXIT_OK;

    for (i = 0; i < fc_conf.procs; i++) {
        if (!fc_children[i].ready) {
            fprintf(stderr, "fc-load: process %u ended early\n", i);
            rc = FC_EXIT_ERRORS;
        }
    }

    login_secs = fc_login_secs();

    printf("fc-load %s: %" PRIu64 " of %ld sessions logged in "
           "(%" PRIu64 " failed) in %.2f s: %.0f logins/s\n",
           fc_conf.mode->name, fc_ready_logged, fc_conf.n, fc_ready_failed,
           login_secs,
           login_secs > 0 ? (double) fc_ready_logged / login_secs : 0);

    return rc;
}


static int
fc_parent(void)
{
    int           fds[2][2], rc, status;
    pid_t         pid;
    unsigned      i, j;
    fc_parent_t   par, *p;

    memset(&par, 0, sizeof(fc_parent_t));
    p = &par;

    p->nworkers = fc_nginx_workers(p->cpu0.workers, FC_MAX_WORKERS);

    for (i = 0; i < p->nworkers; i++) {
        p->rss_before += fc_proc_rss(p->cpu0.workers[i]);
    }

    if (fc_conf.pidfile && p->nworkers == 0) {
        fprintf(stderr, "fc-load: no nginx workers found through %s\n",
                fc_conf.pidfile);
    }

    p->cpu0.nworkers = p->nworkers;
    p->cpu0.redis = fc_conf.redis_pidfile
                    ? fc_read_pidfile(fc_conf.redis_pidfile) : 0;
    p->cpu1 = p->cpu0;

    fc_cpu_sample(&p->cpu0);

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

    p->start = fc_now();
    p->until = p->start + (int64_t) (fc_conf.limit * FC_SEC);

    rc = fc_conf.mode->run(p);

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

    rc = fc_conf.mode->result(p, rc);

    fflush(stdout);

    return rc;
}


/* command line */

static void
fc_usage(void)
{
    unsigned  i;

    fprintf(stderr, "usage: fc-load ");

    for (i = 0; fc_modes[i]; i++) {
        fprintf(stderr, "%s%s", i ? "|" : "", fc_modes[i]->name);
    }

    fprintf(stderr, " [options]\n\n");

    for (i = 0; fc_modes[i]; i++) {
        fputs(fc_modes[i]->usage, stderr);
    }

    fprintf(stderr,
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
        "               (mqtt, mqtt-idle: of the process itself)\n"
        "  -k PIDFILE   redis pid file: its CPU (p2p)\n"
        "  -E[1.2]      TLS to every server, 1.3 (or -E1.2), no certificate\n"
        "               check; p2p and topic count the records received\n");
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

    for (i = 0; fc_modes[i]; i++) {
        if (strcmp(mode, fc_modes[i]->name) == 0) {
            fc_conf.mode = fc_modes[i];
            break;
        }
    }

    if (fc_conf.mode == NULL) {
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
                        "s:n:m:r:w:t:W:P:c:b:C:D:T:L:M:S:i:l:x:p:k:E::h"))
           != -1)
    {
        v = optarg ? strtod(optarg, NULL) : 0;

        if (fc_conf.mode->option && fc_conf.mode->option(ch, v) == 0) {
            continue;
        }

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
            /* the time limit (as -L), unless the mode takes it (topic) */
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

        case 'E':
            /* -E: TLS 1.3; -E1.2 (attached): TLS 1.2 */
            if (optarg == NULL || strcmp(optarg, "1.3") == 0) {
                fc_conf.tls = 13;

            } else if (strcmp(optarg, "1.2") == 0) {
                fc_conf.tls = 12;

            } else {
                fprintf(stderr, "fc-load: -E takes 1.2 or 1.3\n");
                return FC_EXIT_SETUP;
            }

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

    /* the mode's own (topic: -n is -T x -M) */

    if (fc_conf.mode->conf && fc_conf.mode->conf() != 0) {
        return FC_EXIT_SETUP;
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
        || fc_conf.window == 0 || fc_conf.window > 65535
        || fc_conf.procs == 0
        || fc_conf.procs > FC_MAX_PROCS || fc_conf.conc == 0
        || fc_conf.secs < 0 || fc_conf.warmup < 0 || fc_conf.rate < 0
        || fc_conf.conn_timeout <= 0 || fc_conf.msg_size > 4000)
    {
        fprintf(stderr, "fc-load: an option is out of range\n");
        return FC_EXIT_SETUP;
    }

    fc_conf.sessions = fc_conf.n;

    if (!limit_set) {
        fc_conf.limit = fc_conf.conn_timeout + fc_conf.mode->limit;
    }

    /* the mode's own checks; it adds the time of its run to the limit */

    if (fc_conf.mode->check && fc_conf.mode->check() != 0) {
        return FC_EXIT_SETUP;
    }

    if ((long) fc_conf.procs > fc_conf.sessions) {
        fc_conf.procs = (unsigned) fc_conf.sessions;
    }

    if (fc_conf.tls && fc_tls_init() != 0) {
        return FC_EXIT_SETUP;
    }

    signal(SIGPIPE, SIG_IGN);

    return fc_parent();
}
