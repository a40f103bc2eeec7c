
/*
 * fc-load: a measured run, for the modes that send messages (p2p, mqtt,
 * topic).  The parent starts it with "G <start>" once every session is
 * in; the children send at -r messages/s in all or flat out with -w in
 * flight a sender, count what falls into the window (-W s of warm-up,
 * then -t s) and wait for the answers and deliveries (the drain).
 */


#include "fc_load.h"


/*
 * the text of a message: "<send time>:<sender index>:<seq>", padded to
 * -l bytes; returns its length, the stamp's in *stamp_len
 */

size_t
fc_stamp(char *text, fc_conn_t *c, int64_t now, size_t *stamp_len)
{
    size_t  tlen;

    tlen = (size_t) snprintf(text, FC_TEXT_SIZE, "%" PRId64 ":%" PRIu32
                             ":%" PRIu32, now, c->idx, c->seq++);
    *stamp_len = tlen;

    if (fc_conf.msg_size > tlen) {
        memset(text + tlen, 'x', fc_conf.msg_size - tlen);
        tlen = fc_conf.msg_size;
    }

    return tlen;
}


/*
 * A mode of 1:1 messages in a measured run (p2p, mqtt): its checks of the
 * options and the time limit ...
 */

int
fc_run_check(void)
{
    const char  *name;

    name = fc_conf.mode->name;

    if (fc_conf.n < 2) {
        fprintf(stderr, "fc-load: %s needs at least 2 sessions\n", name);
        return -1;
    }

    if (fc_conf.secs <= 0) {
        fprintf(stderr, "fc-load: %s needs -t > 0\n", name);
        return -1;
    }

    /* the time limit is for everything but the run */

    fc_conf.limit += fc_conf.warmup + fc_conf.secs + fc_conf.drain;

    return 0;
}


/* ... and a child's set-up: the table of the messages, its share of -r */

int
fc_run_init(void)
{
    if (fc_uuid_init(65536) != 0) {
        fprintf(stderr, "fc-load: out of memory\n");
        return -1;
    }

    if (fc_conf.rate > 0) {
        fc.rate = fc_conf.rate / fc_conf.procs / (double) FC_SEC;
    }

    return 0;
}


/* a message went out */

void
fc_sent(fc_conn_t *c, int64_t now)
{
    c->inflight++;
    fc.st.sent++;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_sent++;
    }
}


/* in a measured run, or in a phase of the mode's own (offline: the store) */

static int
fc_sending(void)
{
    return (fc.phase == FC_PH_RUN && fc_now() >= fc.start)
           || (fc_conf.mode->sending && fc_conf.mode->sending());
}


/*
 * A message was answered (ACCEPTED or a refusal): flat out, the next one
 * goes at once, or after a pause when it was a refusal.
 */

void
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
        fc_conf.mode->send(c, now);
    }
}


/* flat out: windows that a refusal left short are filled again */

void
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
            fc_conf.mode->send(c, now);
        }

        if (c->hold && now >= c->hold) {
            c->hold = 0;
        }
    }
}


/* a child's run: what there is to do now; returns the epoll timeout */

int
fc_run_tick(int64_t now)
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
                        fc_conf.mode->send(c, now);
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
            fc_conf.mode->send(c, now);
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


/* the parent: every session logged in, then the run and the drain */

int
fc_run_parent(fc_parent_t *p)
{
    int      rc;
    int64_t  until;
    char     line[64];

    rc = fc_login_wait(p);

    if (rc == -1) {
        return FC_EXIT_ERRORS;
    }

    if (rc != FC_EXIT_OK || fc_ready_failed) {
        fprintf(stderr, "fc-load: not every session logged in, "
                "no traffic sent\n");
        return FC_EXIT_ERRORS;
    }

    fflush(stdout);

    p->start = fc_now() + 200 * FC_MS;
    snprintf(line, sizeof(line), "G %" PRId64 "\n", p->start);
    fc_parent_tell(line);

    (void) fc_parent_wait(FC_WANT_NOTHING,
                          p->start + (int64_t) (fc_conf.warmup * FC_SEC));
    fc_cpu_sample(&p->cpu0);

    (void) fc_parent_wait(FC_WANT_NOTHING,
                          p->start + (int64_t) ((fc_conf.warmup
                                                 + fc_conf.secs) * FC_SEC));
    fc_cpu_sample(&p->cpu1);

    until = fc_now() + (int64_t) (fc_conf.drain * FC_SEC);

    if (fc_parent_wait(FC_WANT_DRAINED, until) != 0) {
        fprintf(stderr, "fc-load: messages still under way after the "
                "%.0f s drain\n", fc_conf.drain);
    }

    return FC_EXIT_OK;
}
