#!/usr/bin/env bash
# Files (docs/files.md): upload and download throughput of the files
# location, and the time the probe (libavformat, in the thread pool) adds
# to an upload of each media kind, with nginx's CPU.
#
#   bench/files.sh                      under a minute; needs build/nginx
#   NGINX=/tmp/nginx-base RUNS=9 bench/files.sh
#
# Starts a private Redis (redis-server on a free port, no persistence) and
# nginx (a copy of NGINX in /tmp/fc-bench-files-nginx, so that a rebuild
# does not pull it away) with a configuration of its own in
# var/bench/files-<date>/: WORKERS (2) workers, a msg server (FILE_SLOT)
# and the files location (fishchat_files, the store and its temporary
# files in that directory, client_max_body_size 100m, no quota, sendfile
# on, keep-alive), no access log.  Everything is on 127.0.0.1.  The load
# generator is bench/files_client.py (Python, one thread a connection):
# it asks its slots over the chat protocol as a client does, then PUTs
# and GETs over plain HTTP/1.1.
#
#   upload    N uploads of SIZE random bytes (os.urandom, made and hashed
#             before the clock starts; fresh bytes every run, so nothing
#             is deduplicated), each PUT on a new connection, C at a time;
#             each must answer 201 with its SHA-256.  1 MB x 64 and 50 MB
#             x 4 one at a time, 1 MB x 64 and 50 MB x 8 8 at a time.
#             MB/s and files/s over the whole batch, the PUT's time (from
#             the connect to the 201) p50 and p90.  The files go to the
#             page cache (nginx does not fsync): before each run's clock
#             starts, sync(2) writes back what the runs before left
#             (SYNC=0: not; then the later runs pay for the writeback of
#             the GBs the earlier ones wrote, see bench/README.md).
#   download  GETs of a stored file of 50 MB and of 1 MB over keep-alive
#             connections, one connection and 8, each body read whole;
#             and Range requests (4 KB at random offsets of the 50 MB
#             file), one connection and 8: MB/s, requests/s.
#   probe     PROBE_FILES (5) distinct files of each kind, made by ffmpeg
#             before anything is measured: a PNG (640x480 testsrc), an
#             Opus voice note (10 s, a sine: the waveform is decoded) and
#             an MP4 (2 s of 640x360 H.264 + AAC); each is uploaded right
#             after an upload of as many random bytes as
#             application/octet-stream (hashed and stored the same way,
#             not probed), one at a time on an idle server.  The probe's
#             time is the difference of the two PUTs (connect to 201:
#             nginx probes after the hash and before the 201), the median
#             of the files; the info of each must have the probe's
#             fields.
#
# Every figure is the median of RUNS (5) runs.  CPU: the time on a CPU of
# nginx's workers, every thread (the thread pool's are theirs), from
# /proc/<pid>/task/*/schedstat (ns; utime + stime of /proc/<pid>/stat
# where there is none) around each run, per MB; the client's own CPU is
# printed too: the box has 2 cores, shared by nginx and the load
# generator (and by whatever else runs: see the box's load in the log).
#
# Knobs (environment): RUNS (5), WORKERS (2), PROBE_FILES (5), SYNC (1),
# NGINX (build/nginx/sbin/nginx), LOG_LEVEL (notice), KEEP=1 (leave nginx and
# Redis running, and the files).  The whole run holds "flock
# /tmp/fishchat-cpu.lock" (waiting up to LOCK_WAIT s, 1800), so that it
# never measures while builds or tests run.
#
# Output: the RUN and RESULT lines of bench/files_client.py
# (var/bench/files-<date>/results.txt) and a table.  Exit status 0 when
# everything worked, 1 for set-up errors, 2 when a measure failed or the
# error log has [error]/[alert]/[crit]/[emerg].

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"

# the whole run holds the CPU lock
bench_lock FC_FILES_LOCKED "$0" "$@"

RUNS=${RUNS:-5}
WORKERS=${WORKERS:-2}
PROBE_FILES=${PROBE_FILES:-5}
SYNC=${SYNC:-1}
NGINX_SRC=${NGINX:-$top/build/nginx/sbin/nginx}
# nginx itself reads NGINX (the sockets of a binary upgrade)
unset NGINX
LOG_LEVEL=${LOG_LEVEL:-notice}
KEEP=${KEEP:-}

nginx=/tmp/fc-bench-files-nginx
client="$top/bench/files_client.py"
dir="$top/var/bench/files-$(date +%Y%m%d-%H%M%S)"
pidfile="$dir/logs/nginx.pid"
results="$dir/results.txt"
log="$dir/bench.log"
failed=0
redis_pid=

need ffmpeg python3 redis-server redis-cli flock timeout
[ -x "$NGINX_SRC" ] || die "$NGINX_SRC is missing: make build"

mkdir -p "$dir/logs" "$dir/store/.tmp" "$dir/media"
# the workers' user (nobody when started as root) writes there
chmod 1777 "$dir/store" "$dir/store/.tmp"
: > "$results"

copy_nginx "$NGINX_SRC" "$nginx"

# three free ports on 127.0.0.1: Redis, msg, HTTP
read -r redis_port msg_port http_port < <(free_ports 3)

# --- clean-up: only what this script started, by pid ------------------------

cleanup() {
    trap - EXIT INT TERM
    set +e

    if [ -n "$KEEP" ]; then
        echo "files.sh: KEEP=1: nginx ($pidfile) and Redis (port" \
             "$redis_port) are still running; files in $dir"
        return
    fi

    nginx_stop
    [ -n "$redis_pid" ] && stop_pids "$redis_pid"
    # the store is big; the logs and results stay
    rm -rf "$dir/store" "$dir/media"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Redis, nginx --------------------------------------------------------

redis_start "$redis_port" "$dir"
make_secret "$dir/auth.secret"

conf_head fcfb: > "$dir/nginx.conf"
cat >> "$dir/nginx.conf" <<EOF

fishchat_files_url       http://127.0.0.1:$http_port/files;
fishchat_files_quota     0;        # the run stores a few GB from one id
fishchat_files_slot_ttl  1h;

events {
    worker_connections  4096;
}

$(conf_msg)

http {
    access_log  off;
    sendfile    on;
    keepalive_requests  100000;

    server {
        listen  127.0.0.1:$http_port;

        location /files/ {
            fishchat_files;
            alias                  $dir/store/;
            client_body_temp_path  $dir/store/.tmp;
            client_max_body_size   100m;
        }
    }
}
EOF

"$nginx" -p "$dir" -c "$dir/nginx.conf" -t > "$dir/logs/conf-test.log" 2>&1 \
    || die "nginx -t: $(cat "$dir/logs/conf-test.log")"
"$nginx" -p "$dir" -c "$dir/nginx.conf"

# its workers, and the msg server accepts
nginx_wait "$WORKERS" "$msg_port" \
    || die "nginx did not start ($dir/logs/error.log)"
workers=$(ps --ppid "$(cat "$pidfile")" -o pid=,args= \
          | awk '/worker process/ { printf "%s%s", s, $1; s = "," }')

say "files bench: nginx $("$nginx" -v 2>&1 | sed 's/.*: //'), $WORKERS" \
    "workers (pids $workers), $RUNS runs a figure, $(nproc) cores shared" \
    "with the load generator; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
say "(results and logs in $dir)"

client_run() {
    local out rc=0

    out=$(timeout -k 5 "${LIMIT:-120}" python3 "$client" "$@" \
          --pids "$workers" 2>&1) || rc=$?
    echo "$out" | tee -a "$results" >> "$log"
    if [ "$rc" != 0 ]; then
        say "FAILED ($rc): files_client.py $*: $(echo "$out" | tail -3)"
        failed=1
        return 1
    fi
    echo "$out" | grep '^RESULT' || true
}

ms="127.0.0.1:$msg_port"
MB=1000000

# --- uploads -------------------------------------------------------------

say ""
say "uploads (PUT, new connection each, 201 with the SHA-256 checked)"
client_run upload --kind put-1MB-seq --msg "$ms" --id bench1 \
    --sync "$SYNC" --size $MB -n 64 -c 1 --runs "$RUNS" \
    --keep "$dir/keep-1MB" || true
client_run upload --kind put-1MB-c8 --msg "$ms" --id bench1 \
    --sync "$SYNC" --size $MB -n 64 -c 8 --runs "$RUNS" || true
client_run upload --kind put-50MB-seq --msg "$ms" --id bench1 \
    --sync "$SYNC" --size $((50 * MB)) -n 4 -c 1 --runs "$RUNS" \
    --keep "$dir/keep-50MB" || true
client_run upload --kind put-50MB-c8 --msg "$ms" --id bench1 \
    --sync "$SYNC" --size $((50 * MB)) -n 8 -c 8 --runs "$RUNS" || true

# --- downloads -----------------------------------------------------------

say ""
say "downloads (GET over keep-alive connections, sendfile)"
if [ -s "$dir/keep-50MB" ] && [ -s "$dir/keep-1MB" ]; then
    big=$(head -1 "$dir/keep-50MB" | cut -d' ' -f1)
    small=$(head -1 "$dir/keep-1MB" | cut -d' ' -f1)
    # the same bytes come back
    sum=$(curl -sf "$big" | sha256sum | cut -d' ' -f1)
    [ "$sum" = "$(head -1 "$dir/keep-50MB" | cut -d' ' -f3)" ] \
        || { say "FAILED: GET $big: SHA-256 $sum"; failed=1; }
    client_run get --kind get-50MB-seq --url "$big" --size $((50 * MB)) \
        -n 10 -c 1 --runs "$RUNS" || true
    client_run get --kind get-50MB-c8 --url "$big" --size $((50 * MB)) \
        -n 40 -c 8 --runs "$RUNS" || true
    client_run get --kind get-1MB-seq --url "$small" --size $MB \
        -n 300 -c 1 --runs "$RUNS" || true
    client_run get --kind get-1MB-c8 --url "$small" --size $MB \
        -n 800 -c 8 --runs "$RUNS" || true
    client_run get --kind range-4KB-seq --url "$big" --size $((50 * MB)) \
        --range 4096 -n 3000 -c 1 --runs "$RUNS" || true
    client_run get --kind range-4KB-c8 --url "$big" --size $((50 * MB)) \
        --range 4096 -n 8000 -c 8 --runs "$RUNS" || true
else
    say "FAILED: no stored file to download"
    failed=1
fi

# --- the probe -----------------------------------------------------------

say ""
say "probe (PUT of a media file less the PUT of as many plain bytes)"
png=() opus=() mp4=()
for i in $(seq 1 "$PROBE_FILES"); do
    # distinct files: another instant of testsrc, another tone
    f="$dir/media/p$i.png"
    timeout 30 ffmpeg -nostdin -loglevel error -y -f lavfi \
        -i "testsrc=size=640x480:rate=25:duration=$((i + 1))" \
        -ss "$i" -frames:v 1 "$f"
    png+=("$f")
    f="$dir/media/v$i.opus"
    timeout 30 ffmpeg -nostdin -loglevel error -y -f lavfi \
        -i "sine=frequency=$((300 + 40 * i)):duration=10" -c:a libopus "$f"
    opus+=("$f")
    f="$dir/media/m$i.mp4"
    timeout 60 ffmpeg -nostdin -loglevel error -y \
        -f lavfi -i "testsrc=size=640x360:rate=25:duration=2" \
        -f lavfi -i "sine=frequency=$((300 + 40 * i)):duration=2" \
        -vf "hue=h=$((i * 60))" -c:v libx264 -preset ultrafast \
        -pix_fmt yuv420p -c:a aac -shortest "$f"
    mp4+=("$f")
done
client_run probe --kind probe-png --msg "$ms" --id bench2 --type image/png \
    "${png[@]}" || true
client_run probe --kind probe-opus --msg "$ms" --id bench2 \
    --type audio/ogg "${opus[@]}" || true
client_run probe --kind probe-mp4 --msg "$ms" --id bench2 --type video/mp4 \
    "${mp4[@]}" || true

# --- summary -------------------------------------------------------------

say ""
say "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo ""
    printf '%-14s %5s %4s %9s %9s %9s %9s %11s\n' \
        kind n c MB/s 'req/s' p50_ms p90_ms 'cpu_ms/MB'
    awk '/^RESULT kind=(put|get|range)/ {
            delete f
            for (i = 2; i <= NF; i++) {
                split($i, kvp, "="); f[kvp[1]] = kvp[2]
            }
            rate = f["files_s"] != "" ? f["files_s"] : f["req_s"]
            p50 = f["put_ms_p50"] != "" ? f["put_ms_p50"] : f["ms_p50"]
            p90 = f["put_ms_p90"] != "" ? f["put_ms_p90"] : f["ms_p90"]
            printf "%-14s %5s %4s %9s %9s %9s %9s %11s\n", f["kind"], f["n"],
                   f["c"], f["mb_s"], rate, p50, p90, f["nginx_cpu_ms_mb"]
         }' "$results"
    echo ""
    printf '%-11s %9s %10s %10s %10s %12s %12s\n' kind bytes plain_ms \
        media_ms probe_ms cpu_ms_plain cpu_ms_media
    awk '/^RESULT kind=probe/ {
            delete f
            for (i = 2; i <= NF; i++) {
                split($i, kvp, "="); f[kvp[1]] = kvp[2]
            }
            printf "%-11s %9s %10s %10s %10s %12s %12s\n", f["kind"],
                   f["size"], f["plain_ms_p50"], f["media_ms_p50"],
                   f["probe_ms_p50"], f["nginx_cpu_ms_plain"],
                   f["nginx_cpu_ms_media"]
         }' "$results"
} | tee -a "$log"

if grep -E '\[(error|alert|crit|emerg)\]' "$dir/logs/error.log"; then
    say "files.sh: see $dir/logs/error.log"
    failed=1
fi

[ "$failed" = 0 ] || exit 2
exit 0
