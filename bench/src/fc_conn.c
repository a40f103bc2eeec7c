
/*
 * fc-load: connections.  Connect (from 127.0.0.1 ... N on loopback), log
 * in, read and write on the epoll loop of a child, and the frames that
 * every mode gets; a mode's own frames go to its hooks.
 */


#include "fc_load.h"

#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>


/* connections: output */

static void fc_flush(fc_conn_t *c);


static int
fc_epoll(fc_conn_t *c, int op, uint32_t events)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.ptr = c;

    return epoll_ctl(fc.epfd, op, c->fd, &ev);
}


void
fc_dirty(fc_conn_t *c)
{
    if (!c->dirty && !c->wait_write) {
        c->dirty = 1;
        c->next_dirty = fc.dirty;
        fc.dirty = c;
    }
}


static void
fc_flush(fc_conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out_len) {
        if (c->ssl) {
            n = fc_tls_send(c, c->out + c->out_pos, c->out_len - c->out_pos);

        } else {
            n = send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
                     MSG_NOSIGNAL);
        }

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


void
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

size_t
fc_id(char *buf, uint32_t idx)
{
    if (fc_conf.mode->id) {
        return fc_conf.mode->id(buf, idx);
    }

    return (size_t) snprintf(buf, FC_ID_LEN, "%s%" PRIu32, fc_conf.prefix,
                             idx);
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


void
fc_conn_close(fc_conn_t *c)
{
    if (c->fd != -1) {
        close(c->fd);      /* also leaves the epoll set */
        c->fd = -1;
    }

    if (c->ssl) {
        fc_tls_free(c);
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

void
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

        if (c->setup) {
            c->setup = 0;
            fc.setting_up--;
        }
    }

    fc_conn_close(c);
}


static void
fc_connected(fc_conn_t *c)
{
    int        err;
    socklen_t  sl;

    err = 0;
    sl = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1) {
        err = errno;
    }

    if (err) {
        fc_conn_lost(c, "connect", err);
        return;
    }

    if (fc_conf.tls) {
        /* the handshake, then fc_login_start(); still FC_CONNECTING */

        if (fc_tls_start(c) != 0) {
            fc_conn_lost(c, "SSL_new", 0);
            return;
        }

        fc_tls_handshake(c);
        return;
    }

    fc_login_start(c);
}


/*
 * connected (and the TLS handshake done): HELLO 1, SEND_CLIENT_ID, or the
 * mode's own login
 */

void
fc_login_start(fc_conn_t *c)
{
    size_t       len;
    const char  *args[1];
    size_t       lens[1];
    char         id[FC_ID_LEN];

    c->state = FC_LOGGING_IN;

    if (fc_conf.mode->start) {
        /* a framing of its own (mqtt: CONNECT) */

        if (fc_conf.mode->start(c) != 0) {
            return;
        }

    } else {
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
    }

    /* EPOLLOUT is still registered: the flush turns it off */

    c->wait_write = 0;
    (void) fc_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
    fc_dirty(c);
}


void
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


/* a message delivered: counted, and in the measured window as well */

int
fc_received(int64_t now)
{
    fc.st.delivered++;
    fc.last_rx = now;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_delivered++;
        return 1;
    }

    return 0;
}


/* RESP_MESSAGE_P2P <text> <from> <uuid>: acknowledged with P2P_ACK */

static void
fc_delivery(fc_conn_t *c, fc_msg_t *m, int64_t now)
{
    const char  *args[2];
    size_t       lens[2];
    char         id[FC_ID_LEN];

    if (m->nargs != 3) {
        fc_log("RESP_MESSAGE_P2P with %u arguments", m->nargs);
        fc.st.bad_frames++;
        return;
    }

    /* the text starts with the send time */

    if (fc_received(now)) {
        fc_hist_add(fc.st.hist, &fc.st.lat_max,
                    (int64_t) fc_atou(m->arg[0], m->len[0]), now);
    }

    if (fc_conf.mode->delivered) {
        fc_conf.mode->delivered(m, now);
    }

    args[0] = id;
    lens[0] = fc_id(id, c->idx);
    args[1] = m->arg[2];
    lens[1] = m->len[2];

    if (fc_frame_out(c, "P2P_ACK", 2, args, lens) == 0) {
        fc.st.acked++;
    }
}


/* LOGIN_OK (or the mode's own login) came: worker is the pid, or 0 */

void
fc_logged_in(fc_conn_t *c, long worker, int64_t now)
{
    c->state = FC_READY;
    c->worker = worker;
    /* the first ping somewhere in the first interval: spread out */
    c->next_ping = now + (int64_t) (fc_conf.ping * FC_SEC
                                    * (double) (fc_random() % 1000)
                                    / 1000.0);

    fc.connecting--;
    fc.st.logged_in++;
    fc.st.login_last = (uint64_t) now;

    fc_stats_worker(&fc.st, c->worker, 1);

    if (fc_conf.mode->login) {
        fc_conf.mode->login(c);
    }
}


void
fc_frame_in(fc_conn_t *c, char *p, size_t len)
{
    int64_t    now;
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

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_frames++;
    }

    if (fc_conf.mode->frame && fc_conf.mode->frame(c, &m, now)) {
        return;
    }

    if (fc_is(&m, "RESP_MESSAGE_P2P")) {
        fc_delivery(c, &m, now);
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

            /* the reference starts with the send time */

            fc_hist_add(fc.st.acc_hist, &fc.st.acc_max,
                        (int64_t) fc_atou(m.arg[0], m.len[0]), now);
        }

        if (fc_conf.mode->accepted) {
            fc_conf.mode->accepted(&m);
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

        fc_logged_in(c, m.nargs >= 3 ? (long) fc_atou(m.arg[2], m.len[2])
                                     : 0, now);
        return;
    }

    fc.st.unexpected++;

    if (fc.st.unexpected <= FC_LOG_MAX) {
        fc_log("unexpected frame: %.*s", (int) (len > 200 ? 200 : len), p);
    }
}


static void
fc_read(fc_conn_t *c)
{
    ssize_t  n;

    if (c->ssl) {
        fc_tls_read(c);
        return;
    }

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


void
fc_event(fc_conn_t *c, uint32_t events)
{
    if (c->state == FC_CONNECTING) {
        if (c->ssl) {
            fc_tls_handshake(c);

        } else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
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

void
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
                fc_conn_lost(c, c->state == FC_LOGGING_IN
                                ? "no LOGIN_OK in time"
                                : c->ssl ? "TLS handshake timed out"
                                : "connect timed out", 0);
            }

            continue;
        }

        if (c->state == FC_READY && c->setup && now >= c->deadline) {
            fc.st.timeouts++;
            fc_conn_lost(c, fc_conf.mode->setup_timeout, 0);
            continue;
        }

        if (c->state == FC_READY && fc_conf.ping > 0 && now >= c->next_ping) {
            c->next_ping = now + (int64_t) (fc_conf.ping * FC_SEC);

            if (fc_conf.mode->ping ? fc_conf.mode->ping(c) == 0
                : fc_frame_out(c, "SEND_PING", 1, args, lens) == 0)
            {
                fc.st.pings++;
            }
        }
    }
}
