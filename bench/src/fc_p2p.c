
/*
 * fc-load p2p: N sessions send SEND_MESSAGE_P2P to random other sessions
 * in a measured run (fc_run.c); the receivers acknowledge every delivery.
 * Every uuid delivered is counted once: duplicates, and ACCEPTED frames
 * whose uuid never came.  The uuid table and the sending of a 1:1 message
 * serve offline mode too.
 */


#include "fc_load.h"


/* the uuids: delivered (p2p), handed out with ACCEPTED (offline) */

static fc_uuid_t  *fc_uuids;
static uint64_t    fc_uuid_mask;
static uint64_t    fc_uuid_count;


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


uint64_t
fc_uuid_hash(uint64_t hi, uint64_t lo)
{
    uint64_t  h;

    h = (hi ^ (lo * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL;

    return h ^ (h >> 29);
}


int
fc_uuid_init(uint64_t want)
{
    uint64_t  size;

    size = 1024;

    while (size < 2 * want) {
        size *= 2;
    }

    fc_uuids = calloc(size, sizeof(fc_uuid_t));
    if (fc_uuids == NULL) {
        return -1;
    }

    fc_uuid_mask = size - 1;
    fc_uuid_count = 0;

    return 0;
}


/* doubles the table when it is half full */

static int
fc_uuid_grow(void)
{
    uint64_t    i, h, mask;
    fc_uuid_t  *old, *u;

    old = fc_uuids;
    mask = fc_uuid_mask;

    if (fc_uuid_init(mask + 1) != 0) {
        fc_uuids = old;
        fc_uuid_mask = mask;
        return -1;
    }

    for (i = 0; i <= mask; i++) {
        if (!old[i].used) {
            continue;
        }

        for (h = fc_uuid_hash(old[i].hi, old[i].lo); ; h++) {
            u = &fc_uuids[h & fc_uuid_mask];

            if (!u->used) {
                *u = old[i];
                fc_uuid_count++;
                break;
            }
        }
    }

    free(old);

    return 0;
}


fc_uuid_t *
fc_uuid_find(const char *s, size_t len, int add)
{
    uint64_t  hi, lo;

    if (fc_uuid_parse(s, len, &hi, &lo) != 0) {
        return NULL;
    }

    return fc_uuid_get(hi, lo, add);
}


/* by its two halves (mqtt: the sender and its sequence number) */

fc_uuid_t *
fc_uuid_get(uint64_t hi, uint64_t lo, int add)
{
    uint64_t    h;
    fc_uuid_t  *u;

    if (add && 2 * (fc_uuid_count + 1) > fc_uuid_mask + 1
        && fc_uuid_grow() != 0)
    {
        return NULL;
    }

    for (h = fc_uuid_hash(hi, lo); ; h++) {
        u = &fc_uuids[h & fc_uuid_mask];

        if (!u->used) {
            if (!add) {
                return NULL;
            }

            u->used = 1;
            u->hi = hi;
            u->lo = lo;
            fc_uuid_count++;
            return u;
        }

        if (u->hi == hi && u->lo == lo) {
            return u;
        }
    }
}


/* SEND_MESSAGE_P2P <to> <text> <from> <ref>; the reference: the send time */

void
fc_p2p_message(fc_conn_t *c, uint32_t peer, int64_t now)
{
    size_t       tlen, slen, rlen;
    const char  *args[4];
    size_t       lens[4];
    char         to[FC_ID_LEN], from[FC_ID_LEN], ref[32];
    char         text[FC_TEXT_SIZE];

    rlen = (size_t) snprintf(ref, sizeof(ref), "%" PRId64, now);
    tlen = fc_stamp(text, c, now, &slen);

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

    fc_sent(c, now);
}


/* to a random other session */

static void
fc_p2p_send(fc_conn_t *c, int64_t now)
{
    uint32_t  peer;

    peer = (uint32_t) (fc_random() % (uint64_t) (fc_conf.n - 1));

    if (peer >= c->idx) {
        peer++;
    }

    fc_p2p_message(c, peer, now);
}


static void
fc_p2p_delivered(fc_msg_t *m, int64_t now)
{
    fc_uuid_t  *u;

    (void) now;

    u = fc_uuid_find(m->arg[2], m->len[2], 1);

    if (u == NULL) {
        fc.st.unknown++;

    } else if (u->seen) {
        fc.st.duplicates++;

    } else {
        u->seen = 1;
        fc.st.unique++;
    }
}


static int
fc_p2p_result(fc_parent_t *p, int rc)
{
    uint64_t  lost, extra;
    double    secs;

    secs = fc_conf.secs;
    lost = fc_undelivered(&extra);

    fc_print_run(secs, "");
    fc_print_cpu(p, secs);
    fc_tls_print(secs, fc_total.w_delivered);

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

    fc_result_run(secs);
    fc_result_cpu(p, secs);
    fc_tls_result(secs, fc_total.w_delivered);
    fc_result_lost(lost, extra);

    return fc_result_end(rc, lost, "accepted");
}


const fc_mode_t  fc_p2p_mode = {
    .name = "p2p",
    .usage =
        "  p2p     -n N       N sessions sending to random online peers for\n"
        "                     -t s after -W s of warm-up, at -r messages/s\n"
        "                     in all (0: flat out, -w in flight a session);\n"
        "                     throughput, latency, errors\n",
    .limit = 120,
    .check = fc_run_check,
    .init = fc_run_init,
    .tick = fc_run_tick,
    .send = fc_p2p_send,
    .delivered = fc_p2p_delivered,
    .run = fc_run_parent,
    .result = fc_p2p_result,
};
