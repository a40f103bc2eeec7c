
/*
 * fc-load idle: N sessions log in and are held for -t s, with a SEND_PING
 * every -i s.  The login rate, the CPU of logging in and, with -p, the RSS
 * of the nginx workers a session.  mqtt-idle (fc_mqtt.c) is this mode over
 * MQTT: its -p names the server process itself (fc_conf.server_self).
 */


#include "fc_load.h"


int
fc_idle_check(void)
{
    /* the time limit is for everything but the hold */

    fc_conf.limit += fc_conf.secs;

    return 0;
}


/* the server's RSS a session logged in: 0 without -p or sessions */

static double
fc_idle_rss(fc_parent_t *p)
{
    return fc_ready_logged && p->nworkers
           ? ((double) p->rss_after - (double) p->rss_before)
             / (double) fc_ready_logged
           : 0;
}


/* -p names the server process itself (mosquitto): its CPU and RSS */

static void
fc_idle_server(fc_parent_t *p)
{
    if (p->nworkers == 0) {
        return;
    }

    p->rss_after = fc_proc_rss(p->cpu0.workers[0]);

    printf("  %-12s server %.2f s, fc-load %.2f s of CPU while "
           "logging in\n", "cpu",
           (double) (p->cpu1.wcpu - p->cpu0.wcpu) / FC_SEC,
           (double) fc_children_cpu() / FC_SEC);
    printf("  %-12s pid %ld, RSS before %.1f MiB, after %.1f MiB: "
           "%.0f bytes a session\n", "server", p->cpu0.workers[0],
           (double) p->rss_before / 1048576,
           (double) p->rss_after / 1048576, fc_idle_rss(p));
}


/* an nginx master: its workers' CPU and RSS, and Redis's CPU */

static void
fc_idle_nginx(fc_parent_t *p)
{
    unsigned  i;
    uint64_t  lcpu;

    lcpu = fc_children_cpu();

    printf("  %-12s nginx workers %.2f s, redis %.2f s, fc-load "
           "%.2f s of CPU while logging in\n", "cpu",
           (double) (p->cpu1.wcpu - p->cpu0.wcpu) / FC_SEC,
           (double) (p->cpu1.rcpu - p->cpu0.rcpu) / FC_SEC,
           (double) lcpu / FC_SEC);

    for (i = 0; i < p->nworkers; i++) {
        p->rss_after += fc_proc_rss(p->cpu0.workers[i]);
    }

    if (p->nworkers) {
        printf("  %-12s %u workers, RSS before %.1f MiB, after "
               "%.1f MiB: %.0f bytes a session\n", "nginx",
               p->nworkers, (double) p->rss_before / 1048576,
               (double) p->rss_after / 1048576, fc_idle_rss(p));
    }
}


int
fc_idle_run(fc_parent_t *p)
{
    int  rc;

    rc = fc_login_wait(p);

    if (rc == -1) {
        return FC_EXIT_ERRORS;
    }

    fc_cpu_sample(&p->cpu1);

    if (fc_conf.server_self) {
        fc_idle_server(p);

    } else {
        fc_idle_nginx(p);
    }

    fflush(stdout);

    if (rc == FC_EXIT_OK && fc_ready_logged) {
        (void) fc_parent_wait(FC_WANT_NOTHING,
                              fc_now() + (int64_t) (fc_conf.secs * FC_SEC));
    }

    return rc;
}


int
fc_idle_result(fc_parent_t *p, int rc)
{
    double  login_secs;

    if (fc_ready_logged) {
        printf("  %-12s %.0f s, %" PRIu64 " pings, %" PRIu64 " pongs\n",
               "held", fc_conf.secs, fc_total.pings, fc_total.pongs);
    }

    fc_print_workers();
    fc_print_errors();

    login_secs = fc_login_secs();

    printf("RESULT mode=%s sessions=%" PRIu64 " target=%ld "
           "failed=%" PRIu64 " procs=%u login_s=%.3f login_rate=%.0f "
           "workers=%u rss_before=%" PRIu64 " rss_after=%" PRIu64
           " bytes_per_session=%.0f", fc_conf.mode->name, fc_ready_logged,
           fc_conf.n, fc_total.login_failed, fc_conf.procs, login_secs,
           login_secs > 0 ? (double) fc_ready_logged / login_secs : 0,
           p->nworkers, p->rss_before, p->rss_after, fc_idle_rss(p));
    fc_result_errors();
    printf("\n");

    if (fc_ready_logged < (uint64_t) fc_conf.n) {
        rc = rc ? rc : FC_EXIT_ERRORS;
    }

    return rc;
}


const fc_mode_t  fc_idle_mode = {
    .name = "idle",
    .usage =
        "  idle    -n N       N sessions logged in and held for -t s (a\n"
        "                     SEND_PING every -i s); login rate and, with\n"
        "                     -p, the RSS of the nginx workers a session\n",
    .limit = 120,
    .check = fc_idle_check,
    .run = fc_idle_run,
    .result = fc_idle_result,
};
