
/*
 * fc-load topic: T topics of M members each; every member creates its
 * topic (one wins, TOPIC_EXISTS for the others) and joins it, and is in
 * on LOCATE_TOPIC_MSG_ADDR.  The first -S members of each topic send
 * SEND_MESSAGE_TOPIC in a measured run (fc_run.c).  Every member records
 * each receipt per message (sender, seq); the processes send their tables
 * to the parent, which merges them: the time from send to the last (and
 * the first) member's receipt, and the messages that did not reach every
 * member.
 */


#include "fc_load.h"


/*
 * a message, by its key (sender index << 32 | seq), with the
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


static fc_ttab_t  fc_tmsgs;         /* a child: the messages it saw */
static fc_ttab_t  fc_tall;          /* the parent: the messages, merged */
static uint64_t   fc_first_hist[FC_HIST_SIZE];


/* messages by key, an open-addressing table that grows */

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
    char         text[FC_TEXT_SIZE];

    key = ((uint64_t) c->idx << 32) | c->seq;

    tlen = fc_stamp(text, c, now, &slen);

    args[0] = name;
    lens[0] = fc_topic_name(name, (long) c->idx / fc_conf.members);
    args[1] = text;
    lens[1] = tlen;
    args[2] = text;              /* the reference: the same stamp */
    lens[2] = slen;

    if (fc_frame_out(c, "SEND_MESSAGE_TOPIC", 3, args, lens) != 0) {
        return;
    }

    m = fc_ttab_get(&fc_tmsgs, key);

    if (m != NULL) {
        m->sent = now;
        m->own = 1;
    }

    fc_sent(c, now);
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

    (void) fc_received(now);

    if (fc_topic_key(m->arg[1], m->len[1], &sent, &key) != 0) {
        fc.st.unknown++;

        if (fc.st.unknown <= FC_LOG_MAX) {
            fc_log("topic message with a text not of fc-load: %.*s",
                   (int) (m->len[1] > 60 ? 60 : m->len[1]), m->arg[1]);
        }

        return;
    }

    t = fc_ttab_get(&fc_tmsgs, key);
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


/*
 * LOGIN_OK: every member creates its topic (one wins, the others get
 * TOPIC_EXISTS after it did) and joins it; the session's commands are
 * answered in order, so the join comes after the topic exists
 */

static void
fc_topic_login(fc_conn_t *c)
{
    const char  *args[2];
    size_t       lens[2];
    char         name[FC_ID_LEN], id[FC_ID_LEN];

    args[0] = name;
    lens[0] = fc_topic_name(name, (long) c->idx / fc_conf.members);
    args[1] = id;
    lens[1] = fc_id(id, c->idx);

    c->setup = 1;
    fc.setting_up++;

    if (fc_frame_out(c, "CREATE_TOPIC", 1, args, lens) != 0) {
        return;
    }

    (void) fc_frame_out(c, "JOIN_TOPIC", 2, args, lens);
}


/* the frames of topic mode */

static int
fc_topic_frame(fc_conn_t *c, fc_msg_t *m, int64_t now)
{
    if (fc_is(m, "RESP_MESSAGE_TOPIC")) {
        fc_topic_delivery(m, now);
        return 1;
    }

    if (fc_is(m, "LOCATE_TOPIC_MSG_ADDR")) {
        if (!c->setup) {
            fc.st.unexpected++;
            return 1;
        }

        /* joined */

        c->setup = 0;
        fc.setting_up--;
        fc.st.joined++;
        return 1;
    }

    if (fc_is(m, "TOPIC_CREATED")) {
        return 1;
    }

    if (fc_is(m, "TOPIC_GAP")) {
        fc.st.gaps++;
        return 1;
    }

    if (fc_is(m, "ERROR") && fc.phase == FC_PH_LOGIN && m->nargs
        && m->len[0] == sizeof("TOPIC_EXISTS") - 1
        && memcmp(m->arg[0], "TOPIC_EXISTS", sizeof("TOPIC_EXISTS") - 1)
           == 0)
    {
        /* every member creates its topic: one of them wins */
        fc.st.topic_exists++;
        return 1;
    }

    return 0;
}


/* ACCEPTED: the reference is the stamp of the text */

static void
fc_topic_accepted(fc_msg_t *m)
{
    int64_t     sent;
    uint64_t    key;
    fc_tmsg_t  *t;

    if (fc_topic_key(m->arg[0], m->len[0], &sent, &key) == 0
        && (t = fc_ttab_get(&fc_tmsgs, key)) != NULL)
    {
        t->accepted = 1;

    } else {
        fc.st.bad_frames++;
        fc_log("ACCEPTED with a reference not of fc-load");
    }
}


/* the first -S members of a topic send */

static int
fc_topic_sender(fc_conn_t *c)
{
    return (long) c->idx % fc_conf.members < fc_conf.senders;
}


/* -T is the number of topics, not the time limit */

static int
fc_topic_option(int ch, double v)
{
    if (ch != 'T') {
        return -1;
    }

    fc_conf.topics = (long) v;

    return 0;
}


static int
fc_topic_conf(void)
{
    if (fc_conf.topics <= 0 || fc_conf.members <= 0
        || fc_conf.senders <= 0 || fc_conf.topics > 100000
        || fc_conf.members > 1000000
        || fc_conf.topics * fc_conf.members > 10000000)
    {
        fprintf(stderr, "fc-load: topic needs -T TOPICS -M MEMBERS "
                "(and -S SENDERS > 0)\n");
        return -1;
    }

    if (fc_conf.senders > fc_conf.members) {
        fc_conf.senders = fc_conf.members;
    }

    fc_conf.n = fc_conf.topics * fc_conf.members;

    if (fc_conf.secs <= 0) {
        fprintf(stderr, "fc-load: topic needs -t > 0\n");
        return -1;
    }

    return 0;
}


static int
fc_topic_check(void)
{
    /* the time limit is for everything but the run */

    fc_conf.limit += fc_conf.warmup + fc_conf.secs + fc_conf.drain;

    return 0;
}


static int
fc_topic_init(void)
{
    if (fc_ttab_init(&fc_tmsgs, 65536) != 0) {
        fprintf(stderr, "fc-load: out of memory\n");
        return -1;
    }

    if (fc_conf.rate > 0) {
        /* this process's share: its part of all the senders */
        fc.rate = fc_conf.rate * fc.nsnd
                  / (double) (fc_conf.topics * fc_conf.senders)
                  / (double) FC_SEC;
    }

    return 0;
}


/* a child: its table to the parent */

static void
fc_topic_report(FILE *f)
{
    uint64_t    j;
    fc_tmsg_t  *t;

    for (j = 0; fc_tmsgs.slots && j <= fc_tmsgs.mask; j++) {
        t = &fc_tmsgs.slots[j];

        if (t->key) {
            fprintf(f, "M %" PRIu64 " %" PRId64 " %u %u %u %" PRId64
                    " %" PRId64 "\n", t->key - 1, t->sent, t->own,
                    t->accepted, t->count, t->first, t->last);
        }
    }
}


/* the parent: a child's table, merged */

static int
fc_topic_line(char *line)
{
    fc_tmsg_t  *t, r;

    if (line[0] != 'M' || line[1] != ' ') {
        return 0;
    }

    if (sscanf(line + 2, "%" SCNu64 " %" SCNd64 " %u %u %u %" SCNd64
               " %" SCNd64, &r.key, &r.sent, &r.own, &r.accepted,
               &r.count, &r.first, &r.last)
        != 7)
    {
        return 1;
    }

    if (fc_tall.slots == NULL && fc_ttab_init(&fc_tall, 65536) != 0) {
        return 1;
    }

    t = fc_ttab_get(&fc_tall, r.key);
    if (t == NULL) {
        return 1;
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

    return 1;
}


/*
 * every message sent, merged over the processes; latency to the last
 * (and first) member for those sent in the measured window
 */

static int
fc_topic_result(fc_parent_t *p, int rc)
{
    int64_t     ws, we;
    uint64_t    i, msgs, accepted, complete, partial, none, extra, unknown,
                unaccepted, w_msgs, w_partial, lat, lat_max, first_max, members;
    double      secs;
    fc_tmsg_t  *t;

    secs = fc_conf.secs;
    ws = p->start + (int64_t) (fc_conf.warmup * FC_SEC);
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

    fc_print_behind();

    printf("  %-12s %" PRIu64 " messages sent in the window reached all "
           "%" PRIu64 " members\n", "measured", w_msgs - w_partial,
           members);
    fc_print_lat("last member", fc_total.hist, lat_max);
    fc_print_lat("first member", fc_first_hist, first_max);
    fc_print_lat("accepted in", fc_total.acc_hist, fc_total.acc_max);

    fc_print_cpu(p, secs);
    fc_tls_print(secs, fc_total.w_delivered);

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
           "messages=%" PRIu64,
           fc_conf.topics, fc_conf.members, fc_conf.senders, fc_conf.n,
           fc_conf.procs, fc_conf.rate, fc_conf.window, secs,
           (double) fc_total.w_sent / secs,
           (double) fc_total.w_accepted / secs,
           (double) fc_total.w_delivered / secs,
           w_msgs - w_partial);
    fc_result_lat(fc_total.hist, lat_max);
    printf(" first_p50_us=%" PRIu64 " first_p99_us=%" PRIu64
           " acc_p99_us=%" PRIu64,
           fc_hist_pct(fc_first_hist, 0.50, first_max),
           fc_hist_pct(fc_first_hist, 0.99, first_max),
           fc_hist_pct(fc_total.acc_hist, 0.99, fc_total.acc_max));
    fc_result_cpu(p, secs);
    fc_tls_result(secs, fc_total.w_delivered);
    printf(" behind=%" PRIu64 " incomplete=%" PRIu64 " undelivered=%" PRIu64
           " extra=%" PRIu64 " refused=%" PRIu64 " gaps=%" PRIu64
           " delivered_unaccepted=%" PRIu64,
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


const fc_mode_t  fc_topic_mode = {
    .name = "topic",
    .usage =
        "  topic   -T T -M M  T topics of M members each (logged in,\n"
        "                     created and joined first); -S members a\n"
        "                     topic send SEND_MESSAGE_TOPIC at -r\n"
        "                     messages/s in all (0: flat out, -w in\n"
        "                     flight a sender); deliveries/s, send to\n"
        "                     last (and first) member's receipt\n",
    .limit = 120,
    .setup_timeout = "no LOCATE_TOPIC_MSG_ADDR in time",
    .option = fc_topic_option,
    .conf = fc_topic_conf,
    .check = fc_topic_check,
    .sender = fc_topic_sender,
    .init = fc_topic_init,
    .tick = fc_run_tick,
    .send = fc_topic_send,
    .login = fc_topic_login,
    .frame = fc_topic_frame,
    .accepted = fc_topic_accepted,
    .report = fc_topic_report,
    .line = fc_topic_line,
    .run = fc_run_parent,
    .result = fc_topic_result,
};
