
/*
 * fc-load offline: one sender sends K messages round robin to M ids that
 * are not logged in, then the M recipients log in and acknowledge every
 * delivery; one second after the last one they log out and in again.
 * Every uuid from ACCEPTED must arrive exactly once, and an acknowledged
 * one never again.  The sender is session 0 ("<prefix>s"), the recipients
 * 1 ... M ("<prefix>r0" ...); it runs in one process.
 */


#include "fc_load.h"


/* the phases */

enum {
    FC_PH_SENDER = FC_PH_MODE,  /* the sender logs in */
    FC_PH_STORE,                /* K messages to offline ids */
    FC_PH_INBOX,                /* recipients log in, inboxes drain */
    FC_PH_SETTLE,               /* let the acks reach Redis */
    FC_PH_RELOGIN               /* again, nothing may come back */
};


static uint64_t  fc_store_start;
static uint64_t  fc_drain_start;
static uint64_t  fc_last_delivery;
static int64_t   fc_until;
static unsigned  fc_relogin;


static size_t
fc_offline_id(char *buf, uint32_t idx)
{
    int  n;

    n = idx == 0
        ? snprintf(buf, FC_ID_LEN, "%ss", fc_conf.prefix)
        : snprintf(buf, FC_ID_LEN, "%sr%" PRIu32, fc_conf.prefix, idx - 1);

    return (size_t) n;
}


/* the recipients in turn */

static void
fc_offline_send(fc_conn_t *c, int64_t now)
{
    fc_p2p_message(c, 1 + (uint32_t) (fc.st.sent % (uint64_t) fc_conf.m),
                   now);
}


static int
fc_offline_sending(void)
{
    return fc.phase == FC_PH_STORE && fc.st.sent < (uint64_t) fc_conf.n;
}


static void
fc_offline_accepted(fc_msg_t *m)
{
    if (fc_uuid_find(m->arg[1], m->len[1], 1) == NULL) {
        fc.st.bad_frames++;
        fc_log("ACCEPTED with a bad uuid");
    }
}


static void
fc_offline_delivered(fc_msg_t *m, int64_t now)
{
    fc_uuid_t  *u;

    fc_last_delivery = (uint64_t) now;

    u = fc_uuid_find(m->arg[2], m->len[2], 0);

    if (u == NULL) {
        fc.st.unknown++;

        if (fc.st.unknown <= FC_LOG_MAX) {
            fc_log("delivery of an unknown uuid %.*s",
                   (int) m->len[2], m->arg[2]);
        }

    } else if (u->seen) {
        if (fc_relogin) {
            fc.st.redelivered++;

        } else {
            fc.st.duplicates++;
        }

    } else {
        u->seen = 1;
        fc.st.unique++;

        if (fc_relogin) {
            fc.st.late++;
        }
    }
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
            fc_store_start = (uint64_t) now;
            fc.ws = now;
            fc.we = INT64_MAX;

            while (c->inflight < fc_conf.window
                   && fc.st.sent < (uint64_t) fc_conf.n)
            {
                fc_offline_send(c, now);
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

        fc.st.store_ns = (uint64_t) now - fc_store_start;

        /* the recipients log in now: time the drain */

        fc.phase = FC_PH_INBOX;
        fc_drain_start = (uint64_t) now;
        fc_last_delivery = (uint64_t) now;
        fc.ws = now;
        fc.we = INT64_MAX;
        fc.conn_next = 1;
        fc.conn_end = fc.nconns;
        fc_until = now + (int64_t) (fc_conf.drain * FC_SEC);
        fc_connect_more();
        return 1;

    case FC_PH_INBOX:
        fc_connect_more();

        if (fc.conn_next == fc.conn_end && fc.connecting == 0
            && fc.st.recip_login_ns == 0)
        {
            fc.st.recip_login_ns = fc.st.login_last - fc_drain_start;
        }

        if (fc.st.unique < fc.st.accepted && now < fc_until) {
            return 10;
        }

        if (fc.conn_next < fc.conn_end || fc.connecting) {
            if (now < fc_until) {
                return 10;
            }
        }

        if (fc.st.unique < fc.st.accepted) {
            fc.st.drain_timeout = 1;
        }

        fc.st.drain_ns = fc_last_delivery - fc_drain_start;
        fc.phase = FC_PH_SETTLE;
        fc_until = now + FC_SEC;
        return 10;

    case FC_PH_SETTLE:
        if (now < fc_until) {
            return (int) ((fc_until - now) / FC_MS) + 1;
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

        fc_relogin = 1;
        fc.phase = FC_PH_RELOGIN;
        fc.conn_next = 1;
        fc.conn_end = fc.nconns;
        fc_until = 0;
        fc_connect_more();
        return 10;

    case FC_PH_RELOGIN:
        fc_connect_more();

        if (fc.conn_next < fc.conn_end || fc.connecting) {
            return 10;
        }

        if (fc_until == 0) {
            fc_until = now + FC_QUIET_NS;
        }

        if (now < fc_until) {
            return 10;
        }

        fc.phase = FC_PH_DONE;
        fc_tell("DRAINED");
        return 100;
    }

    return 100;
}


static int
fc_offline_check(void)
{
    if (fc_conf.procs != 1) {
        fprintf(stderr, "fc-load: offline runs in one process (-P 1)\n");
        fc_conf.procs = 1;
    }

    fc_conf.sessions = fc_conf.m + 1;

    return 0;
}


static int
fc_offline_init(void)
{
    if (fc_uuid_init((uint64_t) fc_conf.n) != 0) {
        fprintf(stderr, "fc-load: out of memory\n");
        return -1;
    }

    /* the sender logs in first, alone */

    fc.phase = FC_PH_SENDER;
    fc.conn_next = 0;
    fc.conn_end = 1;

    return 0;
}


static int
fc_offline_run(fc_parent_t *p)
{
    if (fc_parent_wait(FC_WANT_DRAINED, p->until) != 0) {
        fprintf(stderr, "fc-load: time limit reached\n");
        return FC_EXIT_ERRORS;
    }

    return FC_EXIT_OK;
}


static int
fc_offline_result(fc_parent_t *p, int rc)
{
    uint64_t  n, lost;

    (void) p;

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

    return rc;
}


const fc_mode_t  fc_offline_mode = {
    .name = "offline",
    .usage =
        "  offline -n K -m M  K messages to M ids that are not logged in,\n"
        "                     then the recipients log in: drain rate, and\n"
        "                     every message must arrive exactly once\n",
    .limit = 300,
    .check = fc_offline_check,
    .id = fc_offline_id,
    .init = fc_offline_init,
    .tick = fc_offline_tick,
    .sending = fc_offline_sending,
    .send = fc_offline_send,
    .accepted = fc_offline_accepted,
    .delivered = fc_offline_delivered,
    .run = fc_offline_run,
    .result = fc_offline_result,
};
