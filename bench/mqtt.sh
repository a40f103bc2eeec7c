#!/usr/bin/env bash
# FishChat's 1:1 messages next to MQTT 3.1.1 with Mosquitto 2.0 (Debian
# 12's mosquitto), in the same run, on the same box, with the same load
# generator (bench/fc-load: p2p for ours, mqtt for Mosquitto).
#
#   bench/mqtt.sh                    ~5 minutes with the defaults (more
#                                    when others hold the CPU lock)
#   RUNS=1 MQTT_SECS=5 bench/mqtt.sh
#   NGINX=/tmp/nginx-mqtt bench/mqtt.sh
#
# Installs mosquitto with util/deps.sh when it is missing (its service is
# not used: the package's own one is left alone).  MOSQUITTO names the
# binary (/usr/sbin/mosquitto: not on a user's PATH).  Starts, in the background,
# and stops on exit (Ctrl-C included), only what it started, by pid:
#
#   - a private Redis on a free port with the append-only file as ours
#     runs in production (appendonly yes, appendfsync everysec: every
#     message is in Redis before ACCEPTED, on disk within a second);
#   - nginx (a copy of NGINX in /tmp/fc-bench-mqtt-nginx) with WORKERS (2)
#     workers and two msg servers on free ports with reuseport, as
#     bench/run.sh, no rate limit;
#   - mosquitto with the configuration written to
#     var/bench/mqtt-<date>/mosquitto.conf (below).
#
# Then RUNS (3) times, alternating ours and Mosquitto's:
#
#   max    flat out: P2P_N (1,000) sessions, window P2P_WINDOW (4): fc-load
#          p2p against nginx, fc-load mqtt against mosquitto
#   rate   at MQTT_RATE (20,000) messages/s in all, the same sessions
#   idle   IDLE_N (10,000) sessions held IDLE_HOLD (5) s, each server
#          started afresh first: the RSS of the nginx workers (and the
#          growth of Redis's used_memory) or of mosquitto, a session
#
# Each run of fc-load holds "flock -o /tmp/fishchat-cpu.lock" (waiting up
# to LOCK_WAIT s, 1800): the lock is taken for each run, not for the
# whole script, so that others can build between the runs.  Measured
# runs last MQTT_SECS (10) s after 1 s of warm-up.
#
# The table: the medians of the runs; lost and duplicated messages, and
# errors, summed over all of them.  RESULT lines, logs and the
# configurations in var/bench/mqtt-<date>/.
#
# Knobs: RUNS, P2P_N, P2P_WINDOW, MQTT_RATE, MQTT_SECS, IDLE_N, IDLE_HOLD,
# WORKERS, NGINX (build/nginx/sbin/nginx), LOG_LEVEL (notice), KEEP=1
# (leave the servers running).  Exit status 0; 1 for set-up errors; 2
# when a run failed (fc-load's exit status) or nginx's error log has an
# [alert], [crit] or [emerg].

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"

RUNS=${RUNS:-3}
P2P_N=${P2P_N:-1000}
P2P_WINDOW=${P2P_WINDOW:-4}
MQTT_RATE=${MQTT_RATE:-20000}
MQTT_SECS=${MQTT_SECS:-10}
IDLE_N=${IDLE_N:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
WORKERS=${WORKERS:-2}
NGINX_SRC=${NGINX:-$top/build/nginx/sbin/nginx}
# nginx itself reads NGINX (the sockets of a binary upgrade)
unset NGINX
LOG_LEVEL=${LOG_LEVEL:-notice}
KEEP=${KEEP:-}
LOCK_WAIT=${LOCK_WAIT:-1800}

nginx=/tmp/fc-bench-mqtt-nginx
fcload="$top/bench/fc-load"
dir="$top/var/bench/mqtt-$(date +%Y%m%d-%H%M%S)"
pidfile="$dir/logs/nginx.pid"
mosq_pidfile="$dir/mosquitto.pid"
results="$dir/results.txt"
log="$dir/bench.log"
failed=0
redis_pid=
mosq_pid=

MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}

# --- Mosquitto (and python3, for free ports): installed when missing ------

if [ ! -x "$MOSQUITTO" ] || ! command -v python3 >/dev/null; then
    "$top/util/deps.sh" mosquitto python3
fi

need redis-server redis-cli flock python3 make
[ -x "$NGINX_SRC" ] || die "$NGINX_SRC is missing: make build"
[ -x "$MOSQUITTO" ] || die "$MOSQUITTO is missing"

make -s -C "$top/bench" fc-load

mkdir -p "$dir/logs" "$dir/mosquitto"
# mosquitto started as root runs as the user mosquitto: it writes there
chmod 1777 "$dir/mosquitto"
: > "$results"

copy_nginx "$NGINX_SRC" "$nginx"

# 10,000 idle sessions: as many sockets in mosquitto and in fc-load
ulimit -n "$(ulimit -Hn)"

read -r redis_port msg_port1 msg_port2 mqtt_port < <(free_ports 4)
servers="127.0.0.1:$msg_port1,127.0.0.1:$msg_port2"

# --- clean-up: only what this script started, by pid ----------------------

cleanup() {
    trap - EXIT INT TERM
    set +e

    if [ -n "$KEEP" ]; then
        echo "mqtt.sh: KEEP=1: nginx ($pidfile), Redis (port $redis_port)" \
             "and mosquitto (port $mqtt_port, pid $mosq_pid) are still" \
             "running"
        return
    fi

    nginx_stop
    [ -n "$mosq_pid" ] && stop_pids "$mosq_pid"
    [ -n "$redis_pid" ] && stop_pids "$redis_pid"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# --- our server: Redis and nginx -------------------------------------------

redis_start "$redis_port" "$dir" --appendonly yes --appendfsync everysec
make_secret "$dir/auth.secret"

conf_head "fcmq$(date +%s):" > "$dir/nginx.conf"
cat >> "$dir/nginx.conf" <<EOF

events {
    worker_connections  20000;
}

stream {
    fishchat_msg_rate  0;           # no rate limit

    # two servers with reuseport: the sessions go to both workers
    server {
        listen  127.0.0.1:$msg_port1 reuseport backlog=4096;
        fishchat_msg;
    }

    server {
        listen  127.0.0.1:$msg_port2 reuseport backlog=4096;
        fishchat_msg;
    }
}
EOF

nginx_start() {
    nginx_stop
    "$nginx" -p "$dir/" -c "$dir/nginx.conf"

    if ! nginx_wait "$WORKERS" "$msg_port2"; then
        die "nginx did not start, see $dir/logs/error.log"
    fi

    sleep 0.5      # the workers' Redis links (as bench/run.sh)
}

# --- Mosquitto ------------------------------------------------------------

cat > "$dir/mosquitto.conf" <<EOF
# generated by bench/mqtt.sh: Mosquitto for a comparison on loopback

# one listener, on loopback only, on a free port; MQTT clients without a
# user name or password
listener $mqtt_port 127.0.0.1
allow_anonymous true

# Persistence on, as a server that keeps messages would run.  Mosquitto
# writes its in-memory state to mosquitto.db as a snapshot every
# autosave_interval seconds (1800, the default, written out) and on
# exit, not a write per message: a crash loses what came since the last
# snapshot.  (Ours stores every message in Redis before ACCEPTED.)  The
# sessions of this bench are clean sessions, which the snapshot does not
# keep anyway.
persistence true
persistence_location $dir/mosquitto/
autosave_interval 1800

# QoS 1 messages that can be on their way to a client at once (20 by
# default; beyond that they are queued), and messages queued for a
# client (1,000 by default; beyond that they are dropped): raised so
# that neither throttles nor drops in the bench.  Ours has no such
# limit to a session beyond the inbox (fishchat_msg_inbox_max).
max_inflight_messages 1000
max_queued_messages 100000

# no Nagle: a packet goes out when it is written, as nginx's sockets
# (tcp_nodelay on); Mosquitto's default is off
set_tcp_nodelay true

# errors and warnings only, to the log file: a line a connection would
# cost CPU that ours does not spend
log_dest stderr
log_type error
log_type warning
connection_messages false
EOF

mosq_start() {
    local i

    if [ -n "$mosq_pid" ]; then
        stop_pids "$mosq_pid"
        mosq_pid=
    fi

    "$MOSQUITTO" -c "$dir/mosquitto.conf" 2>>"$dir/logs/mosquitto.log" &
    mosq_pid=$!
    echo "$mosq_pid" > "$mosq_pidfile"

    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$mosq_pid" 2>/dev/null || break
        sleep 0.1
    done
    die "mosquitto did not start, see $dir/logs/mosquitto.log"
}

# --- the runs ---------------------------------------------------------------

redis_mem() {
    redis-cli -p "$redis_port" info memory \
        | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'
}

# lines of fc-load as they come; after the RSS line of an idle run (the
# sessions are in and held) Redis's used_memory, into $dir/redis-held
watch_idle() {
    local line

    while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
        *"RSS before"*) redis_mem > "$dir/redis-held" ;;
        esac
    done
}

# run TAG MODE ARGS...: one run of fc-load under the CPU lock; its RESULT
# line goes to $results as "TAG ..." with the CPU a delivered message of
# the server (srv_us: nginx's workers, or mosquitto), and for ours
# Redis's (redis_us) and both (total_us); an idle run of ours: Redis's
# used_memory before and while the sessions are held, a session
run() {
    local tag=$1 mode=$2 out rc extra='' r0=''
    shift 2

    say "--- $tag: fc-load $mode $* (load average" \
        "$(cut -d' ' -f1-3 /proc/loadavg))"

    rm -f "$dir/redis-held"
    [ "$mode" = idle ] && r0=$(redis_mem)

    out=$(flock -o -w "$LOCK_WAIT" "$LOCK" "$fcload" "$mode" "$@" \
              2>>"$dir/fc-load.stderr" | watch_idle; \
          exit "${PIPESTATUS[0]}") && rc=0 || rc=$?
    fcload_done mqtt.sh "$rc" "$out"

    if [ -n "$r0" ] && [ -s "$dir/redis-held" ]; then
        extra="redis_before=$r0 redis_held=$(cat "$dir/redis-held")"
    fi

    echo "$out" | grep '^RESULT ' | sed "s/^RESULT /$tag /" \
        | awk -v extra="$extra" '
              { c = 0; r = 0; d = 0; n = 0; s = -1
                for (i = 1; i <= NF; i++) {
                    split($i, kv, "=")
                    if (kv[1] == "nginx_cpu") c = kv[2]
                    if (kv[1] == "server_us") s = kv[2]
                    if (kv[1] == "redis_cpu") r = kv[2]
                    if (kv[1] == "delivered_per_s") d = kv[2]
                    if (kv[1] == "sessions") n = kv[2]
                }
                line = $0
                # mqtt says it more precisely: server_us
                if (d > 0 && s < 0)
                    s = c * 1e6 / d
                if (d > 0)
                    line = sprintf("%s srv_us=%.2f redis_us=%.2f" \
                                   " total_us=%.2f", line, s, r * 1e6 / d,
                                   s + r * 1e6 / d)
                if (extra != "") {
                    split(extra, e, /[ =]/)
                    line = sprintf("%s %s redis_bytes_per_session=%.0f",
                                   line, extra,
                                   n > 0 ? (e[4] - e[2]) / n : 0)
                }
                print line }' >> "$results" || true
}

ours=(-s "$servers" -p "$pidfile" -k "$dir/redis.pid")
# mosquitto listens with a backlog of 100: connects under way beyond that
# are dropped and retried by the kernel a second later, so fc-load keeps
# 64 under way (-c) instead of 256
theirs=(-s "127.0.0.1:$mqtt_port" -p "$mosq_pidfile" -c 64)

nginx_start
mosq_start

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo "?")
say "mqtt.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "at the start; at $commit; nginx $("$nginx" -v 2>&1 \
    | sed 's/.*nginx\///') ($NGINX_SRC), Redis $(redis-server --version \
    | sed 's/.*v=\([^ ]*\).*/\1/'), $("$MOSQUITTO" -h 2>&1 | head -1); in $dir"

for i in $(seq 1 "$RUNS"); do
    {
        run ours-max p2p -n "$P2P_N" -w "$P2P_WINDOW" -t "$MQTT_SECS" \
            "${ours[@]}"
        run mosq-max mqtt -n "$P2P_N" -w "$P2P_WINDOW" -t "$MQTT_SECS" \
            "${theirs[@]}"
        run ours-rate p2p -n "$P2P_N" -r "$MQTT_RATE" -t "$MQTT_SECS" \
            "${ours[@]}"
        run mosq-rate mqtt -n "$P2P_N" -r "$MQTT_RATE" -t "$MQTT_SECS" \
            "${theirs[@]}"

        # memory: each server fresh, so that "RSS before" is a process
        # that never held sessions
        nginx_start
        run ours-idle idle -n "$IDLE_N" -t "$IDLE_HOLD" "${ours[@]}"
        mosq_start
        run mosq-idle mqtt-idle -n "$IDLE_N" -t "$IDLE_HOLD" "${theirs[@]}"
    }
done

# --- the table ----------------------------------------------------------------

# sum TAGPREFIX KEY: KEY summed over every run whose tag starts so
sum() {
    grep "^$1" "$results" | tr ' ' '\n' | sed -n "s/^$2=//p" \
        | awk '{ s += $1 } END { print s + 0 }'
}

ms() {
    awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.2f", v / 1000 }'
}

crashes=$(grep -cE '\[(alert|crit|emerg)\]' "$dir/logs/error.log" || true)
[ "$crashes" != 0 ] && failed=1

say ""
say "=== medians of $RUNS runs; lost, duplicates and errors: in all runs"
say ""
say "| figure | FishChat (nginx, $WORKERS workers, + Redis) | Mosquitto |"
say "|---|---|---|"
say "| delivered/s flat out ($P2P_N sessions, window $P2P_WINDOW) |" \
    "$(med ours-max delivered_per_s) | $(med mosq-max delivered_per_s) |"
say "| p50 / p99 at $MQTT_RATE messages/s (ms) |" \
    "$(ms "$(med ours-rate p50_us)") / $(ms "$(med ours-rate p99_us)") |" \
    "$(ms "$(med mosq-rate p50_us)") / $(ms "$(med mosq-rate p99_us)") |"
say "| server CPU a delivered message at $MQTT_RATE/s (µs) |" \
    "$(med ours-rate total_us) (nginx $(med ours-rate srv_us) + Redis" \
    "$(med ours-rate redis_us)) | $(med mosq-rate srv_us) |"
say "| server CPU a delivered message flat out (µs) |" \
    "$(med ours-max total_us) (nginx $(med ours-max srv_us) + Redis" \
    "$(med ours-max redis_us)) | $(med mosq-max srv_us) |"
say "| server cores flat out |" \
    "nginx $(med ours-max nginx_cpu) + Redis $(med ours-max redis_cpu) |" \
    "$(med mosq-max nginx_cpu) |"
say "| memory a session ($IDLE_N idle sessions, bytes) |" \
    "$(med ours-idle bytes_per_session) (nginx RSS; Redis used_memory" \
    "+$(med ours-idle redis_bytes_per_session)) |" \
    "$(med mosq-idle bytes_per_session) (RSS) |"
say "| lost / duplicates |" \
    "$(sum ours undelivered) / $(sum ours duplicates) |" \
    "$(sum mosq undelivered) / $(sum mosq duplicates) |"
say "| errors, bad frames, closed sessions, timeouts |" \
    "$(sum ours errors) / $(sum ours bad_frames) / $(sum ours closed) /" \
    "$(sum ours timeouts) |" \
    "$(sum mosq errors) / $(sum mosq bad_frames) / $(sum mosq closed) /" \
    "$(sum mosq timeouts) |"
say ""
say "nginx [alert]/[crit]/[emerg] lines: $crashes; runs that failed:" \
    "$(grep -c 'fc-load exited' "$log" || true)"
say "RESULT lines: $results"

exit $((failed ? 2 : 0))
