
/*
 * fc-load: TLS (-E).  Every connection becomes a TLS client once its TCP
 * connect is done: a non-blocking SSL_connect on the epoll loop (WANT_READ
 * and WANT_WRITE turn EPOLLOUT off and on), then SSL_read and SSL_write in
 * place of recv and send.  No certificate check (a benchmark on
 * loopback); TLS 1.3 unless -E1.2.
 *
 * A message callback counts the application-data records received: with
 * the frames received it gives frames a record and records a delivered
 * message, which is what the server's output path changes when it writes
 * several frames into one record.
 */


#include "fc_load.h"

#include <unistd.h>
#include <sys/epoll.h>

#include <openssl/err.h>
#include <openssl/ssl.h>


static SSL_CTX  *fc_tls_ctx;
static int64_t   fc_tls_now;      /* for the records' window */
static int       fc_tls_in_window;


static int
fc_tls_epoll(fc_conn_t *c, uint32_t events)
{
    struct epoll_event  ev;

    ev.events = events;
    ev.data.ptr = c;

    return epoll_ctl(fc.epfd, EPOLL_CTL_MOD, c->fd, &ev);
}


/* the first error on OpenSSL's queue, for the log; the queue is cleared */

static const char *
fc_tls_error(char *buf, size_t size)
{
    unsigned long  e;

    e = ERR_get_error();

    if (e == 0) {
        snprintf(buf, size, "%s", errno ? strerror(errno) : "unexpected EOF");

    } else {
        ERR_error_string_n(e, buf, size);
    }

    ERR_clear_error();

    return buf;
}


/*
 * Records received: every record header of type application data (in TLS
 * 1.3 every encrypted record has it), less those whose inner type is not
 * data (the handshake's encrypted messages, tickets, alerts).
 */

static void
fc_tls_msg(int write_p, int version, int content_type, const void *buf,
    size_t len, SSL *ssl, void *arg)
{
    const unsigned char  *p;

    (void) version;
    (void) ssl;
    (void) arg;

    if (write_p) {
        return;
    }

    p = buf;

    if (content_type == SSL3_RT_HEADER && len >= 5
        && p[0] == SSL3_RT_APPLICATION_DATA)
    {
        fc.st.tls_records++;
        fc.st.tls_bytes += 5 + (((uint64_t) p[3] << 8) | p[4]);

        fc_tls_in_window = (fc_tls_now >= fc.ws && fc_tls_now < fc.we);

        if (fc_tls_in_window) {
            fc.st.w_tls_records++;
            fc.st.w_tls_bytes += 5 + (((uint64_t) p[3] << 8) | p[4]);
        }

        return;
    }

    if (content_type == SSL3_RT_INNER_CONTENT_TYPE && len == 1
        && p[0] != SSL3_RT_APPLICATION_DATA && fc.st.tls_records)
    {
        fc.st.tls_records--;

        if (fc_tls_in_window && fc.st.w_tls_records) {
            fc.st.w_tls_records--;
        }
    }
}


int
fc_tls_init(void)
{
    int  version;

    version = fc_conf.tls == 12 ? TLS1_2_VERSION : TLS1_3_VERSION;

    fc_tls_ctx = SSL_CTX_new(TLS_client_method());

    if (fc_tls_ctx == NULL
        || SSL_CTX_set_min_proto_version(fc_tls_ctx, version) != 1
        || SSL_CTX_set_max_proto_version(fc_tls_ctx, version) != 1)
    {
        fprintf(stderr, "fc-load: SSL_CTX_new() failed\n");
        return -1;
    }

    SSL_CTX_set_verify(fc_tls_ctx, SSL_VERIFY_NONE, NULL);

    /*
     * partial writes: the output buffer is written as far as it goes, and
     * it may have grown and moved before the next try; read-ahead: one
     * recv for many records, not two (header, body) for each
     */

    SSL_CTX_set_mode(fc_tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                                 | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                 | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(fc_tls_ctx, 1);
    SSL_CTX_set_session_cache_mode(fc_tls_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_msg_callback(fc_tls_ctx, fc_tls_msg);

    return 0;
}


/* the TCP connect is done: the handshake starts */

int
fc_tls_start(fc_conn_t *c)
{
    SSL  *ssl;

    ssl = SSL_new(fc_tls_ctx);

    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }

    SSL_set_connect_state(ssl);
    c->ssl = ssl;

    return 0;
}


void
fc_tls_handshake(fc_conn_t *c)
{
    int    rc, err;
    char   buf[256];

    fc_tls_now = fc_now();

    ERR_clear_error();
    errno = 0;

    rc = SSL_connect(c->ssl);

    if (rc == 1) {
        fc_login_start(c);
        return;
    }

    err = SSL_get_error(c->ssl, rc);

    if (err == SSL_ERROR_WANT_READ) {
        (void) fc_tls_epoll(c, EPOLLIN);
        return;
    }

    if (err == SSL_ERROR_WANT_WRITE) {
        (void) fc_tls_epoll(c, EPOLLIN | EPOLLOUT);
        return;
    }

    fc_log("TLS handshake: %s", fc_tls_error(buf, sizeof(buf)));
    fc_conn_lost(c, "TLS handshake failed", 0);
}


/* as send(): -1 with EAGAIN when it would block, another errno on error */

ssize_t
fc_tls_send(fc_conn_t *c, const char *p, size_t len)
{
    int   n, err;
    char  buf[256];

    ERR_clear_error();
    errno = 0;

    n = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX : (int) len);

    if (n > 0) {
        return n;
    }

    err = SSL_get_error(c->ssl, n);

    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        errno = EAGAIN;
        return -1;
    }

    fc_log("SSL_write: %s", fc_tls_error(buf, sizeof(buf)));
    errno = EIO;

    return -1;
}


/*
 * Read until OpenSSL wants more from the socket: records it has read
 * ahead are in its buffer, and no epoll event would come for them.  The
 * plain text goes to fc_input a buffer at a time.
 */

void
fc_tls_read(fc_conn_t *c)
{
    int      n, err;
    size_t   len;
    char     buf[256];

    fc_tls_now = fc_now();

    for ( ;; ) {
        len = 0;
        err = SSL_ERROR_NONE;

        while (len < FC_READ_SIZE) {
            ERR_clear_error();
            errno = 0;

            n = SSL_read(c->ssl, fc.rbuf + len, (int) (FC_READ_SIZE - len));

            if (n > 0) {
                len += (size_t) n;
                continue;
            }

            err = SSL_get_error(c->ssl, n);
            break;
        }

        if (len) {
            fc_input(c, fc.rbuf, len);

            if (c->fd == -1) {
                return;
            }
        }

        switch (err) {

        case SSL_ERROR_NONE:
            continue;          /* the buffer is full: more to read */

        case SSL_ERROR_WANT_READ:
            return;

        case SSL_ERROR_WANT_WRITE:
            /* a key update: the write side wants the socket */
            c->wait_write = 1;
            (void) fc_tls_epoll(c, EPOLLIN | EPOLLOUT);
            return;

        case SSL_ERROR_ZERO_RETURN:
            fc_conn_lost(c, "closed by the server (TLS close_notify)", 0);
            return;

        case SSL_ERROR_SYSCALL:
            if (errno == 0) {
                fc_conn_lost(c, "closed by the server", 0);

            } else {
                fc_conn_lost(c, "SSL_read", errno);
            }

            ERR_clear_error();
            return;

        default:
            fc_log("SSL_read: %s", fc_tls_error(buf, sizeof(buf)));
            fc_conn_lost(c, "TLS error", 0);
            return;
        }
    }
}


void
fc_tls_free(fc_conn_t *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
}


/* p2p, topic: the records received in the measured window */

void
fc_tls_print(double secs, uint64_t delivered)
{
    if (!fc_conf.tls) {
        return;
    }

    printf("  %-12s TLS 1.%d: %.0f records/s received, %.2f frames a "
           "record, %.0f bytes a record, %.3f records a delivered message\n",
           "records", fc_conf.tls == 12 ? 2 : 3,
           (double) fc_total.w_tls_records / secs,
           fc_total.w_tls_records
           ? (double) fc_total.w_frames / fc_total.w_tls_records : 0,
           fc_total.w_tls_records
           ? (double) fc_total.w_tls_bytes / fc_total.w_tls_records : 0,
           delivered ? (double) fc_total.w_tls_records / delivered : 0);
}


void
fc_tls_result(double secs, uint64_t delivered)
{
    printf(" tls=%d", fc_conf.tls ? (fc_conf.tls == 12 ? 12 : 13) : 0);

    if (!fc_conf.tls) {
        return;
    }

    printf(" records_per_s=%.0f frames_per_record=%.3f bytes_per_record=%.0f"
           " records_per_delivered=%.3f",
           (double) fc_total.w_tls_records / secs,
           fc_total.w_tls_records
           ? (double) fc_total.w_frames / fc_total.w_tls_records : 0,
           fc_total.w_tls_records
           ? (double) fc_total.w_tls_bytes / fc_total.w_tls_records : 0,
           delivered ? (double) fc_total.w_tls_records / delivered : 0);
}
