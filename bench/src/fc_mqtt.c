
/*
 * fc-load mqtt, mqtt-idle: p2p and idle over MQTT 3.1.1, to measure
 * another server (Mosquitto, bench/mqtt.sh) the way p2p and idle measure
 * ours.  Each session connects (CONNECT: clean session, client id
 * <prefix><n>, keep-alive twice -i), waits for CONNACK, subscribes to its
 * own topic <prefix><n> with QoS 1 and counts as logged in on SUBACK.
 *
 * mqtt: in a measured run (fc_run.c, as p2p) every session PUBLISHes with
 * QoS 1 to random other sessions' topics; the payload is "<send time>:
 * <sender>:<seq>" (CLOCK_MONOTONIC ns, as p2p's text).  PUBACK is the
 * server's ACCEPTED (send -> PUBACK latency); a PUBLISH received is a
 * delivery (send -> delivery latency), answered with PUBACK.  Packet ids
 * are a connection's, so a message is known by its sender and seq from
 * the payload: duplicates, and the PUBACKed messages never delivered.
 *
 * mqtt-idle: N sessions subscribed and held for -t s, a PINGREQ every -i
 * s; with -p the RSS of the server process before and after.
 *
 * -p names the server process itself (mosquitto's pid file), not an nginx
 * master: its CPU and RSS are reported where p2p reports the nginx
 * workers' (nginx_cpu= in the RESULT line).
 */


#include "fc_load.h"


#define FC_MQTT_CONNECT     0x10
#define FC_MQTT_CONNACK     2
#define FC_MQTT_PUBLISH     3
#define FC_MQTT_PUBACK      4
#define FC_MQTT_SUBSCRIBE   0x82
#define FC_MQTT_SUBACK      9
#define FC_MQTT_PINGREQ     0xc0
#define FC_MQTT_PINGRESP    13


/* a PUBLISH without PUBACK: its packet id and send time */

typedef struct {
    int64_t     sent;
    uint16_t    pid;
    uint16_t    used;
} fc_mqtt_slot_t;


static fc_mqtt_slot_t  *fc_mqtt_slots;     /* -w a connection */
static uint16_t        *fc_mqtt_pids;      /* the last packet id of each */


/* the remaining length: 1 to 4 bytes, 7 bits each */

static size_t
fc_mqtt_varlen(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}


static unsigned char *
fc_mqtt_header(unsigned char *p, unsigned type, size_t rl)
{
    *p++ = (unsigned char) type;

    do {
        *p = (unsigned char) (rl & 127);
        rl >>= 7;

        if (rl) {
            *p |= 128;
        }

        p++;
    } while (rl);

    return p;
}


static unsigned char *
fc_mqtt_str(unsigned char *p, const char *s, size_t len)
{
    *p++ = (unsigned char) (len >> 8);
    *p++ = (unsigned char) len;
    memcpy(p, s, len);

    return p + len;
}


/* CONNECT: MQTT 3.1.1, clean session, keep-alive twice the ping interval */

static int
fc_mqtt_start(fc_conn_t *c)
{
    size_t          len, rl;
    unsigned        ka;
    unsigned char  *p;
    char            id[FC_ID_LEN];

    len = fc_id(id, c->idx);
    rl = 10 + 2 + len;

    ka = fc_conf.ping > 0 ? (unsigned) (fc_conf.ping * 2 + 0.5) : 0;

    if (ka > 65535) {
        ka = 65535;
    }

    p = (unsigned char *) fc_out_alloc(c, 1 + fc_mqtt_varlen(rl) + rl);
    if (p == NULL) {
        return -1;
    }

    p = fc_mqtt_header(p, FC_MQTT_CONNECT, rl);
    p = fc_mqtt_str(p, "MQTT", 4);
    *p++ = 4;               /* protocol level: 3.1.1 */
    *p++ = 0x02;            /* clean session */
    *p++ = (unsigned char) (ka >> 8);
    *p++ = (unsigned char) ka;
    (void) fc_mqtt_str(p, id, len);

    return 0;
}


/* SUBSCRIBE to <prefix><n>, QoS 1, packet id 1 */

static int
fc_mqtt_subscribe(fc_conn_t *c)
{
    size_t          len, rl;
    unsigned char  *p;
    char            id[FC_ID_LEN];

    len = fc_id(id, c->idx);
    rl = 2 + 2 + len + 1;

    p = (unsigned char *) fc_out_alloc(c, 1 + fc_mqtt_varlen(rl) + rl);
    if (p == NULL) {
        return -1;
    }

    p = fc_mqtt_header(p, FC_MQTT_SUBSCRIBE, rl);
    *p++ = 0;
    *p++ = 1;
    p = fc_mqtt_str(p, id, len);
    *p = 1;

    return 0;
}


static int
fc_mqtt_ping(fc_conn_t *c)
{
    unsigned char  *p;

    p = (unsigned char *) fc_out_alloc(c, 2);
    if (p == NULL) {
        return -1;
    }

    p[0] = FC_MQTT_PINGREQ;
    p[1] = 0;

    return 0;
}


/* PUBLISH, QoS 1, to a random other session's topic */

static void
fc_mqtt_send(fc_conn_t *c, int64_t now)
{
    size_t           tlen, plen, slen, rl;
    uint32_t         peer, ci;
    uint16_t         pid;
    unsigned char   *p;
    fc_mqtt_slot_t  *s;
    char             topic[FC_ID_LEN], text[FC_TEXT_SIZE];

    peer = (uint32_t) (fc_random() % (uint64_t) (fc_conf.n - 1));

    if (peer >= c->idx) {
        peer++;
    }

    tlen = fc_id(topic, peer);
    plen = fc_stamp(text, c, now, &slen);
    rl = 2 + tlen + 2 + plen;

    p = (unsigned char *) fc_out_alloc(c, 1 + fc_mqtt_varlen(rl) + rl);
    if (p == NULL) {
        return;
    }

    ci = (uint32_t) (c - fc.conns);

    /*
     * packet ids go from 1 to a multiple of -w, so that they take the
     * slots in turn across the wrap too: in flight are at most -w,
     * answered in order, so the slot is free
     */

    pid = (uint16_t) (fc_mqtt_pids[ci] >= 65535 - 65535 % fc_conf.window
                      ? 1 : fc_mqtt_pids[ci] + 1);
    fc_mqtt_pids[ci] = pid;

    s = &fc_mqtt_slots[(size_t) ci * fc_conf.window + pid % fc_conf.window];
    s->sent = now;
    s->pid = pid;
    s->used = 1;

    p = fc_mqtt_header(p, FC_MQTT_PUBLISH << 4 | 1 << 1, rl);
    p = fc_mqtt_str(p, topic, tlen);
    *p++ = (unsigned char) (pid >> 8);
    *p++ = (unsigned char) pid;
    memcpy(p, text, plen);

    fc_sent(c, now);
}


/* PUBACK of our PUBLISH: as ACCEPTED */

static void
fc_mqtt_puback(fc_conn_t *c, uint16_t pid, int64_t now)
{
    uint32_t         ci;
    fc_mqtt_slot_t  *s;

    ci = (uint32_t) (c - fc.conns);

    if (fc_mqtt_slots == NULL) {
        fc.st.unexpected++;
        return;
    }

    s = &fc_mqtt_slots[(size_t) ci * fc_conf.window + pid % fc_conf.window];

    if (!s->used || s->pid != pid) {
        fc.st.unexpected++;

        if (fc.st.unexpected <= FC_LOG_MAX) {
            fc_log("PUBACK of packet id %u, not in flight", pid);
        }

        return;
    }

    s->used = 0;

    fc.st.accepted++;
    fc.last_rx = now;

    if (now >= fc.ws && now < fc.we) {
        fc.st.w_accepted++;
        fc_hist_add(fc.st.acc_hist, &fc.st.acc_max, s->sent, now);
    }

    fc_answered(c, now, 0);
}


/* a PUBLISH to our topic: a delivery, answered with PUBACK */

static int
fc_mqtt_delivery(fc_conn_t *c, unsigned flags, unsigned char *b, size_t rl,
    int64_t now)
{
    size_t          tlen, len, idlen;
    unsigned        qos;
    uint16_t        pid;
    uint64_t        sender, seq;
    fc_uuid_t      *u;
    unsigned char  *p, *last, *colon, *out;
    char            id[FC_ID_LEN];

    qos = (flags >> 1) & 3;
    last = b + rl;

    if (rl < 2) {
        return -1;
    }

    tlen = (size_t) b[0] << 8 | b[1];
    p = b + 2;

    if (tlen > (size_t) (last - p) || qos > 1
        || (qos && last - (p + tlen) < 2))
    {
        return -1;
    }

    idlen = fc_id(id, c->idx);

    if (tlen != idlen || memcmp(p, id, idlen) != 0) {
        fc.st.unexpected++;

        if (fc.st.unexpected <= FC_LOG_MAX) {
            fc_log("%s: PUBLISH to %.*s", id, (int) tlen, p);
        }
    }

    p += tlen;
    pid = 0;

    if (qos) {
        pid = (uint16_t) (p[0] << 8 | p[1]);
        p += 2;
    }

    /* the payload: <send time>:<sender>:<seq>[padding] */

    len = (size_t) (last - p);

    if (fc_received(now)) {
        fc_hist_add(fc.st.hist, &fc.st.lat_max,
                    (int64_t) fc_atou((char *) p, len), now);
    }

    colon = memchr(p, ':', len);
    u = NULL;

    if (fc_mqtt_slots == NULL) {
        /* mqtt-idle: nobody sends, and there is no table */
        fc.st.unexpected++;
        colon = NULL;
    }

    if (colon) {
        sender = fc_atou((char *) colon + 1, (size_t) (last - colon - 1));
        colon = memchr(colon + 1, ':', (size_t) (last - colon - 1));

        if (colon) {
            seq = fc_atou((char *) colon + 1, (size_t) (last - colon - 1));
            u = fc_uuid_get(sender, seq, 1);
        }
    }

    if (u == NULL) {
        fc.st.unknown += fc_mqtt_slots != NULL;

    } else if (u->seen) {
        fc.st.duplicates++;

    } else {
        u->seen = 1;
        fc.st.unique++;
    }

    if (qos) {
        out = (unsigned char *) fc_out_alloc(c, 4);
        if (out == NULL) {
            return 1;
        }

        out[0] = FC_MQTT_PUBACK << 4;
        out[1] = 2;
        out[2] = (unsigned char) (pid >> 8);
        out[3] = (unsigned char) pid;

        fc.st.acked++;
    }

    return 0;
}


/* a packet at p, if all of it is there */

static long
fc_mqtt_input(fc_conn_t *c, char *data, size_t len)
{
    size_t          rl, hl, i;
    unsigned        type;
    int64_t         now;
    unsigned char  *p, *b;

    p = (unsigned char *) data;

    if (len < 2) {
        return 0;
    }

    rl = 0;

    for (i = 1; ; i++) {
        if (i > 4) {
            goto bad;
        }

        if (i >= len) {
            return 0;
        }

        rl |= (size_t) (p[i] & 127) << (7 * (i - 1));

        if (!(p[i] & 128)) {
            break;
        }
    }

    hl = i + 1;

    if (rl > FC_FRAME_MAX) {
        goto bad;
    }

    if (len - hl < rl) {
        return 0;
    }

    b = p + hl;
    type = p[0] >> 4;
    now = fc_now();

    switch (type) {

    case FC_MQTT_PUBLISH:
        if (c->state != FC_READY) {
            goto bad;
        }

        if (fc_mqtt_delivery(c, p[0] & 15, b, rl, now) != 0) {
            if (c->fd == -1) {
                return -1;
            }

            goto bad;
        }

        break;

    case FC_MQTT_PUBACK:
        if (rl != 2 || c->state != FC_READY) {
            goto bad;
        }

        fc_mqtt_puback(c, (uint16_t) (b[0] << 8 | b[1]), now);
        break;

    case FC_MQTT_CONNACK:
        if (rl != 2 || c->state != FC_LOGGING_IN) {
            goto bad;
        }

        if (b[1] != 0) {
            fc_conn_lost(c, b[1] == 2 ? "CONNACK: identifier rejected"
                            : b[1] == 5 ? "CONNACK: not authorized"
                            : "CONNACK: refused", 0);
            return -1;
        }

        if (fc_mqtt_subscribe(c) != 0) {
            return -1;
        }

        break;

    case FC_MQTT_SUBACK:
        if (rl != 3 || c->state != FC_LOGGING_IN) {
            goto bad;
        }

        if (b[2] == 0x80) {
            fc_conn_lost(c, "SUBACK: refused", 0);
            return -1;
        }

        fc_logged_in(c, 0, now);
        break;

    case FC_MQTT_PINGRESP:
        fc.st.pongs++;
        break;

    default:
        fc.st.unexpected++;

        if (fc.st.unexpected <= FC_LOG_MAX) {
            fc_log("unexpected MQTT packet of type %u", type);
        }
    }

    if (c->fd == -1) {
        return -1;
    }

    return (long) (hl + rl);

bad:

    fc.st.bad_frames++;
    fc_log("bad MQTT packet: type %u, %zu bytes", p[0] >> 4, len);
    fc_conn_lost(c, "bad packet", 0);

    return -1;
}


/* both modes: -p names the server process itself */

static int
fc_mqtt_conf(void)
{
    fc_conf.server_self = 1;

    return 0;
}


static int
fc_mqtt_init(void)
{
    if (fc_run_init() != 0) {
        return -1;
    }

    fc_mqtt_slots = calloc((size_t) (fc.nconns ? fc.nconns : 1)
                           * fc_conf.window, sizeof(fc_mqtt_slot_t));
    fc_mqtt_pids = calloc(fc.nconns ? fc.nconns : 1, sizeof(uint16_t));

    if (fc_mqtt_slots == NULL || fc_mqtt_pids == NULL) {
        fprintf(stderr, "fc-load: out of memory\n");
        return -1;
    }

    return 0;
}


/* the server's CPU (-p) over the window, a line and RESULT fields */

static double
fc_mqtt_server_cpu(fc_parent_t *p)
{
    return (double) (p->cpu1.wcpu - p->cpu0.wcpu) / FC_SEC;
}


static int
fc_mqtt_result(fc_parent_t *p, int rc)
{
    uint64_t  lost, extra;
    double    secs, cpu;

    secs = fc_conf.secs;
    lost = fc_undelivered(&extra);
    cpu = fc_mqtt_server_cpu(p);

    fc_print_run(secs, " (PUBACK)");

    if (p->nworkers) {
        printf("  %-12s server %.2f, fc-load %.2f (cores, over the window);"
               " server %.1f us a delivered message; waited for a CPU: "
               "server %.0f ms, fc-load %.0f ms a second\n", "cpu",
               cpu / secs, (double) fc_total.cpu_ns / FC_SEC / secs,
               fc_total.w_delivered
               ? cpu * 1e6 / (double) fc_total.w_delivered : 0,
               (double) (p->cpu1.wwait - p->cpu0.wwait) / FC_MS / secs,
               (double) fc_total.wait_ns / FC_MS / secs);
    }

    printf("  %-12s sent %" PRIu64 ", PUBACKed %" PRIu64 "; delivered %"
           PRIu64 " (%" PRIu64 " messages, %" PRIu64 " delivered again, %"
           PRIu64 " unknown); not delivered %" PRIu64 "; deliveries "
           "acknowledged %" PRIu64 "\n", "in all", fc_total.sent,
           fc_total.accepted, fc_total.delivered, fc_total.unique,
           fc_total.duplicates, fc_total.unknown, lost, fc_total.acked);

    if (extra) {
        printf("  %-12s %" PRIu64 " more messages delivered than "
               "PUBACKs\n", "WARNING", extra);
    }

    fc_print_errors();

    fc_result_run(secs);
    fc_result_cpu(p, secs);
    printf(" server_us=%.2f", fc_total.w_delivered
           ? cpu * 1e6 / (double) fc_total.w_delivered : 0);
    /* refused=0: MQTT has no refusals, fc_total.refused stays 0 */
    fc_result_lost(lost, extra);
    printf(" unknown=%" PRIu64, fc_total.unknown);

    return fc_result_end(rc, lost, "PUBACKed");
}


const fc_mode_t  fc_mqtt_mode = {
    .name = "mqtt",
    .usage =
        "  mqtt    -n N       p2p over MQTT 3.1.1 (another server): N\n"
        "                     sessions, each subscribed to its own topic\n"
        "                     with QoS 1, PUBLISH QoS 1 to random others'\n"
        "                     topics for -t s after -W s, at -r messages/s\n"
        "                     (0: flat out, -w in flight a session);\n"
        "                     -p: the server's pid file (its own CPU)\n",
    .limit = 120,
    .conf = fc_mqtt_conf,
    .check = fc_run_check,
    .start = fc_mqtt_start,
    .input = fc_mqtt_input,
    .ping = fc_mqtt_ping,
    .init = fc_mqtt_init,
    .tick = fc_run_tick,
    .send = fc_mqtt_send,
    .run = fc_run_parent,
    .result = fc_mqtt_result,
};


const fc_mode_t  fc_mqtt_idle_mode = {
    .name = "mqtt-idle",
    .usage =
        "  mqtt-idle -n N     N MQTT sessions subscribed and held for -t s\n"
        "                     (a PINGREQ every -i s); with -p, the RSS of\n"
        "                     the server process a session\n",
    .limit = 120,
    .conf = fc_mqtt_conf,
    .check = fc_idle_check,
    .start = fc_mqtt_start,
    .input = fc_mqtt_input,
    .ping = fc_mqtt_ping,
    .run = fc_idle_run,
    .result = fc_idle_result,
};
