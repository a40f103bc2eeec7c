#!/usr/bin/env bash
# Media (docs/media.md): how many concurrent publishers, and how many
# concurrent viewers of one stream (RTMP players, HLS viewers), one node
# serves, with the CPU of nginx for each.
#
#   bench/media.sh              ~8 minutes; needs build/nginx (make build)
#   WORKERS=1 HLS_STEPS= bench/media.sh     publishers and RTMP players
#                                           with one worker, ~6 minutes
#   PUB_STEPS="1 10" RTMP_STEPS= HLS_STEPS="10 100" bench/media.sh
#
# Starts a private Redis (redis-server on a free port, no persistence) and
# nginx (a copy of build/nginx/sbin/nginx in /tmp/fc-bench-nginx, so that a
# rebuild does not pull it away) with a configuration of its own in
# var/bench/media-<date>/: WORKERS (2) workers, rtmp_auto_push on (its
# sockets in that directory), a msg server, the HTTP server with the hooks
# (fishchat_media_hooks) and /hls/ (fishchat_media_hls), an rtmp {} block
# as conf/fishchat.conf's (live, HLS with 1 s fragments and a 6 s
# playlist, every hook on 127.0.0.1, on_update every 30 s), recording off
# unless RECORD=1, tokens for 1h.  Everything is on 127.0.0.1.  The
# stream URLs and tokens come from the msg server (MEDIA_PUBLISH,
# MEDIA_PLAY: bench/media_client.py urls), as a client gets them.
#
# One FLV (testsrc 320x240 25 fps, a keyframe a second, H.264 ultrafast
# ~500 kb/s + AAC 64 kb/s, 20 s) is encoded once (var/bench/) and pushed
# by every publisher with "ffmpeg -re -stream_loop -1 -c copy": nothing is
# encoded while measuring.
#
#   publishers  PUB_STEPS (1 10 50 100 200 300 400): N publishers, each
#               to its own stream, added step by step; each measured for
#               WINDOW s after WARMUP s.  A step works when every publisher
#               is still connected and pushing at ~1x (its ffmpeg's media
#               time over the window / the window >= 0.9) and every
#               stream's HLS playlist got a new segment every 2 s at
#               least; the steps stop at the first that fails.
#   rtmp        one publisher, then RTMP_STEPS (1 10 50 100 200 400 800)
#               players of its stream ("ffmpeg -i rtmp://...?token=<play
#               token> -c copy -f null -"), added step by step; a step
#               works when every player is still there and reads at ~1x
#               (>= 0.9).  Players that never get any media do not stop
#               the steps (with several workers, those on another worker
#               than the publisher's: see bench/README.md); a player that
#               fell behind or went away does.
#   hls         the same publisher, then HLS_STEPS (10 100 1000 2000 4000
#               6000 8000) HLS viewers (bench/media_client.py hls:
#               asyncio, one keep-alive connection a viewer, the playlist
#               every second and each new segment, with the play token in
#               the path), a fresh set a step, HLS_PER_PROC (500) viewers a
#               Python process; a step works when there was no 403, 404,
#               other status or error, and no viewer missed a segment or
#               fell behind.
#
# CPU: utime + stime of nginx's workers and its cache manager (nginx-rtmp's
# HLS clean-up) from /proc/<pid>/stat over the window, in cores; for
# viewers also less the publisher alone (measured first): the CPU a
# viewer.  The load generators (ffmpeg, Python) run on the same cores:
# their CPU is reported too, and the box's (/proc/stat).  Bytes: what
# nginx's sockets on the RTMP port sent and received (ss bytes_acked /
# bytes_received of the established connections, before and after the
# window); HLS: the bytes the viewers received in their window.
#
# Knobs (environment): PUB_STEPS, RTMP_STEPS, HLS_STEPS (a step list; empty
# leaves that part out), WINDOW (10), WARMUP (3), WORKERS (2),
# HLS_PER_PROC (500), RECORD=1 (record all and the remux, as
# conf/fishchat.conf), LOG_LEVEL (notice; info shows nginx-rtmp's
# connections and the hooks' answers), NGINX (build/nginx/sbin/nginx),
# KEEP=1 (leave everything running, and the files).  The whole run holds
# "flock /tmp/fishchat-cpu.lock" (waiting up to LOCK_WAIT s, 1800), so
# that it never measures while builds or tests run.
#
# Output: a line a step, a table, and one "RESULT kind=... key=value ..."
# line a step (var/bench/media-<date>/results.txt).  Exit status 0 when
# every step worked, 1 for set-up errors, 2 when a step failed (the largest
# that worked is in the summary) or the error log has
# [alert]/[crit]/[emerg].

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/bench/lib.sh"

# the whole run holds the CPU lock
bench_lock FC_MEDIA_LOCKED "$0" "$@"

PUB_STEPS=${PUB_STEPS-"1 10 50 100 200 300 400"}
RTMP_STEPS=${RTMP_STEPS-"1 10 50 100 200 400 800"}
HLS_STEPS=${HLS_STEPS-"10 100 1000 2000 4000 6000 8000"}
WINDOW=${WINDOW:-10}
WARMUP=${WARMUP:-3}
HLS_PER_PROC=${HLS_PER_PROC:-500}
RECORD=${RECORD:-}
NGINX_SRC=${NGINX:-$top/build/nginx/sbin/nginx}
unset NGINX    # nginx would take it for inherited sockets and not daemonize
KEEP=${KEEP:-}
LOG_LEVEL=${LOG_LEVEL:-notice}
WORKERS=${WORKERS:-2}

nginx=/tmp/fc-bench-nginx
client="$top/bench/media_client.py"
sample="$top/var/bench/media-testsrc-320x240.flv"
dir="$top/var/bench/media-$(date +%Y%m%d-%H%M%S)"
pidfile="$dir/logs/nginx.pid"
results="$dir/results.txt"
log="$dir/bench.log"
hls="$dir/hls"
maxt=1200          # no ffmpeg pushes or plays longer than this (s)
failed=0

redis_pid=
pub_pids=()        # publisher i's ffmpeg (stream i of $dir/streams)
view_pids=()       # RTMP players
hls_pids=()        # HLS viewer processes

need ffmpeg python3 redis-server redis-cli ss flock
[ -x "$NGINX_SRC" ] || die "$NGINX_SRC is missing: make build"

mkdir -p "$dir/logs" "$dir/prog" "$hls" "$dir/rec" "$dir/vod" "$dir/sock"
# the workers' user (nobody when started as root) writes there
chmod 1777 "$dir/sock" "$dir/rec" "$dir/vod"
: > "$results"

# a copy: a rebuild may replace build/ while this runs
copy_nginx "$NGINX_SRC" "$nginx"

# four free ports on 127.0.0.1: Redis, msg, HTTP, RTMP
read -r redis_port msg_port http_port rtmp_port < <(free_ports 4)

# --- clean-up: only what this script started, by pid ------------------------

cleanup() {
    trap - EXIT INT TERM
    set +e

    if [ -n "$KEEP" ]; then
        echo "media.sh: KEEP=1: nginx ($pidfile), Redis (port $redis_port)" \
             "and the load generators are still running; files in $dir"
        return
    fi

    stop_pids ${pub_pids[@]+"${pub_pids[@]}"} \
              ${view_pids[@]+"${view_pids[@]}"} \
              ${hls_pids[@]+"${hls_pids[@]}"}
    nginx_stop
    [ -n "$redis_pid" ] && stop_pids "$redis_pid"
    # the segments and recordings are many and big; the logs stay
    rm -rf "$hls" "$dir/rec" "$dir/vod"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# --- Redis, nginx --------------------------------------------------------

redis_start "$redis_port" "$dir"
make_secret "$dir/auth.secret"

if [ -n "$RECORD" ]; then
    rtmp_record="record all;
            record_path  $dir/rec;
            on_record_done   http://127.0.0.1:$http_port/media/hook;"
    hook_record="fishchat_media_record_path  $dir/rec;
            fishchat_media_vod_path     $dir/vod;"
else
    rtmp_record="# recording off (RECORD=1 turns it on)"
    hook_record=
fi

conf_head fcmb: > "$dir/nginx.conf"
cat >> "$dir/nginx.conf" <<EOF

fishchat_media_rtmp_url    rtmp://127.0.0.1:$rtmp_port/live;
fishchat_media_hls_url     http://127.0.0.1:$http_port/hls;
fishchat_media_vod_url     http://127.0.0.1:$http_port/vod;
fishchat_media_token_ttl   1h;     # the run outlasts 10m

events {
    worker_connections  16384;
}

rtmp_auto_push  on;
# the auto-push sockets are named after the worker's slot only: in /tmp
# (the default) they would be another nginx's on this host
rtmp_socket_dir  $dir/sock;

rtmp {
    server {
        listen  127.0.0.1:$rtmp_port;
        access_log  off;

        application live {
            live  on;

            hls                  on;
            hls_path             $hls;
            hls_fragment         1s;
            hls_playlist_length  6s;

            $rtmp_record

            notify_method    post;
            on_publish       http://127.0.0.1:$http_port/media/hook;
            on_play          http://127.0.0.1:$http_port/media/hook;
            on_publish_done  http://127.0.0.1:$http_port/media/hook;
            on_play_done     http://127.0.0.1:$http_port/media/hook;
            on_update        http://127.0.0.1:$http_port/media/hook;
            notify_update_timeout  30s;
        }
    }
}

$(conf_msg)

http {
    access_log  off;

    server {
        listen  127.0.0.1:$http_port;

        types {
            application/vnd.apple.mpegurl  m3u8;
            video/mp2t                     ts;
            video/mp4                      mp4;
        }

        location = /media/hook {
            allow  127.0.0.1;
            deny   all;
            fishchat_media_hooks;
            $hook_record
        }

        location /hls/ {
            fishchat_media_hls;
            alias  $hls/;
        }

        location /vod/ {
            fishchat_media_hls;
            alias  $dir/vod/;
        }
    }
}
EOF

# the daemon keeps its standard output: not this script's
env -u NGINX "$nginx" -p "$dir/" -c "$dir/nginx.conf" \
    >> "$dir/logs/nginx.out" 2>&1 \
    || die "nginx did not start ($dir/logs/error.log)"

nginx_wait "$WORKERS" "$msg_port" \
    || die "nginx did not start ($dir/logs/error.log)"
sleep 0.5                       # the workers' Redis links
# the workers, then the cache manager (nginx-rtmp's HLS clean-up): all
# of nginx's CPU but the master's
workers=
others=
for p in $(pgrep -P "$(cat "$pidfile")"); do
    if tr '\0' ' ' < "/proc/$p/cmdline" | grep -q 'worker process'; then
        workers="$workers $p"
    else
        others="$others $p"
    fi
done
workers="${workers# }$others"

# --- the sample and the streams ------------------------------------------

if [ ! -s "$sample" ]; then
    say "encoding the sample FLV once: $sample"
    timeout 120 ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i testsrc=size=320x240:rate=25 \
        -f lavfi -i sine=frequency=440:sample_rate=44100 -t 20 \
        -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 \
        -keyint_min 25 -sc_threshold 0 -b:v 500k -maxrate 500k \
        -bufsize 1000k -c:a aac -b:a 64k -f flv "$sample.tmp" \
        && mv "$sample.tmp" "$sample" || die "could not encode $sample"
fi
sample_kbps=$(stat -c %s "$sample" | awk '{ printf "%d", $1 * 8 / 20 / 1000 }')

max_pub=1
for n in $PUB_STEPS; do
    [ "$n" -gt "$max_pub" ] && max_pub=$n
done

# the publishers' streams, then one for the viewers (with its HLS URL)
timeout 60 python3 "$client" urls --server "127.0.0.1:$msg_port" \
    --id benchpub --topic benchroom -n "$max_pub" > "$dir/streams" \
    || die "MEDIA_PUBLISH failed"
timeout 60 python3 "$client" urls --server "127.0.0.1:$msg_port" \
    --id benchpub --topic benchroom -n 1 --play > "$dir/view-stream" \
    || die "MEDIA_PLAY failed"
read -r view_stream view_rtmp view_hls < "$dir/view-stream"
play_token=${view_hls#*/hls/}
play_token=${play_token%%/*}
view_play="rtmp://127.0.0.1:$rtmp_port/live/$view_stream?token=$play_token"

say "media.sh: $(nproc) cores, $(uname -r), nginx $("$nginx" -v 2>&1 \
    | sed 's/.*nginx\///') (a copy of $NGINX_SRC), Redis port $redis_port," \
    "RTMP $rtmp_port, HTTP $http_port; main at" \
    "$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "sample ${sample_kbps} kb/s; $WORKERS workers;" \
    "recording $([ -n "$RECORD" ] && echo on || echo off); in $dir"

# --- measuring -----------------------------------------------------------

# publish I URL: publisher I pushes the sample in a loop
publish() {
    : > "$dir/prog/pub-$1"
    ffmpeg -nostdin -hide_banner -loglevel warning \
        -progress "$dir/prog/pub-$1" -stats_period 0.5 \
        -re -stream_loop -1 -i "$sample" -c copy -t "$maxt" \
        -f flv "$2" < /dev/null > /dev/null 2>> "$dir/logs/pub-$1.log" &
    pub_pids[$1]=$!
}

# play I URL: RTMP player I
play() {
    : > "$dir/prog/view-$1"
    ffmpeg -nostdin -hide_banner -loglevel warning \
        -progress "$dir/prog/view-$1" -stats_period 0.5 \
        -i "$2" -c copy -t "$maxt" -f null - < /dev/null > /dev/null \
        2>> "$dir/logs/view-$1.log" &
    view_pids[$1]=$!
}

# ticks PID...: utime + stime of the processes (clock ticks)
# (one cat for all: quick, and of one moment; mawk's print and %d lose
# digits of big numbers, hence %.0f)
ticks() {
    local p files=()
    for p in "$@"; do
        files+=("/proc/$p/stat")
    done
    [ ${#files[@]} = 0 ] && { echo 0; return; }
    { cat "${files[@]}" 2>/dev/null || true; } | sed 's/.*) //' \
        | awk '{ t += $12 + $13 } END { printf "%.0f\n", t }'
}

# run-queue wait of the processes (ns)
waits() {
    local p files=()
    for p in "$@"; do
        files+=("/proc/$p/schedstat")
    done
    [ ${#files[@]} = 0 ] && { echo 0; return; }
    { cat "${files[@]}" 2>/dev/null || true; } \
        | awk '{ w += $2 } END { printf "%.0f\n", w }'
}

# sockbytes PORT: bytes sent (acked) and received on the established
# sockets of 127.0.0.1:PORT (nginx's side)
sockbytes() {
    ss -tinH state established "( sport = :$1 )" 2>/dev/null \
        | tr ' ' '\n' | awk -F: '$1 == "bytes_acked" { s += $2 }
                                 $1 == "bytes_received" { r += $2 }
                                 END { printf "%.0f %.0f\n", s, r }'
}

# the children of the load generators (HLS viewer processes)
loadgen_pids() {
    echo ${pub_pids[@]+"${pub_pids[@]}"} ${view_pids[@]+"${view_pids[@]}"} \
         ${hls_pids[@]+"${hls_pids[@]}"}
}

# snapshot VAR: the figures at this moment, as "key=value ..." in $VAR
snapshot() {
    local t nt nw lt busy total rs rr hs hr w ntw=
    t=$(date +%s.%N)
    nt=$(ticks $workers)
    for w in $workers; do
        ntw="$ntw${ntw:+,}$(ticks "$w")"
    done
    nw=$(waits $workers)
    lt=$(ticks $(loadgen_pids))
    read -r busy total < <(awk '$1 == "cpu" { b = $2 + $3 + $4 + $7 + $8 + $9
                                         print b, b + $5 + $6; exit }' \
                           /proc/stat)
    read -r rs rr < <(sockbytes "$rtmp_port")
    read -r hs hr < <(sockbytes "$http_port")
    printf -v "$1" 't=%s nt=%s ntw=%s nw=%s lt=%s busy=%s total=%s rs=%s \
rr=%s hs=%s hr=%s' "$t" "$nt" "$ntw" "$nw" "$lt" "$busy" "$total" "$rs" "$rr" \
        "$hs" "$hr"
}

# delta A B: the window's figures from two snapshots, "key=value ..."
delta() {
    awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" \
        -v nwk="$WORKERS" '
        function get(s, k,    n, i, kv, x) {
            n = split(s, kv, " ")
            for (i = 1; i <= n; i++) {
                split(kv[i], x, "=")
                if (x[1] == k) return x[2]
            }
            return 0
        }
        BEGIN {
            w = get(b, "t") - get(a, "t")
            n = split(get(a, "ntw"), wa, ",")
            split(get(b, "ntw"), wb, ",")
            for (i = 1; i <= n; i++) {
                per = per (i > 1 ? "/" : "") \
                      sprintf("%.3f", (wb[i] - wa[i]) / hz / w)
                if (i <= nwk) wk += (wb[i] - wa[i]) / hz / w
            }
            printf "secs=%.2f nginx_cpu=%.3f workers_cpu=%s " \
                   "workers_only_cpu=%.4f " \
                   "nginx_wait_ms=%.0f " \
                   "loadgen_cpu=%.2f box_cpu=%.2f " \
                   "rtmp_out_kbps=%.0f rtmp_in_kbps=%.0f " \
                   "http_out_kbps=%.0f\n",
                w, (get(b, "nt") - get(a, "nt")) / hz / w, per, wk,
                (get(b, "nw") - get(a, "nw")) / 1e6 / w,
                (get(b, "lt") - get(a, "lt")) / hz / w,
                cores * (get(b, "busy") - get(a, "busy")) \
                    / (get(b, "total") - get(a, "total") + 1e-9),
                (get(b, "rs") - get(a, "rs")) * 8 / 1000 / w,
                (get(b, "rr") - get(a, "rr")) * 8 / 1000 / w,
                (get(b, "hs") - get(a, "hs")) * 8 / 1000 / w
        }'
}

# conns_of PORT: the established connections of each nginx process on
# 127.0.0.1:PORT ("a/b/c", in the order of $workers)
conns_of() {
    local p out= list
    list=$(ss -tnpH state established "( sport = :$1 )" 2>/dev/null \
           | grep -o 'pid=[0-9]*' || true)
    for p in $workers; do
        out="$out${out:+/}$(grep -c "^pid=$p\$" <<< "$list" || true)"
    done
    echo "$out"
}

# kv KEY LINE: a value out of "key=value ..."
kv() {
    echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

# seqs STREAM...: the number of the newest segment in each one's playlist
# (-1 when there is none), a line each; one process for all
seqs() {
    local s files=()
    for s in "$@"; do
        files+=("$hls/$s.m3u8")
    done
    awk 'BEGIN {
        for (i = 1; i < ARGC; i++) {
            q = 0; n = 0
            while ((getline l < ARGV[i]) > 0) {
                if (l ~ /^#EXT-X-MEDIA-SEQUENCE:/) {
                    sub(/.*:/, "", l); q = l + 0
                } else if (l ~ /^[^#]/) {
                    n++
                }
            }
            close(ARGV[i])
            print (n ? q + n - 1 : -1)
        }
        exit }' "${files[@]}"
}

# wait_playlists STREAM...: until each has a playlist (30 s at most)
wait_playlists() {
    local i s missing
    for i in $(seq 1 300); do
        missing=0
        for s in "$@"; do
            [ -s "$hls/$s.m3u8" ] || { missing=1; break; }
        done
        [ $missing = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# speeds T0 T1 SECS: the min and mean media speed of the ffmpegs over
# SECS (T0/T1: files of their out_time at its start and end); how many are
# below 0.9 (slow, those without any media included), how many got media
# in the window (moving), and of those the slowest and how many were
# below 0.9 (behind)
speeds() {
    paste "$1" "$2" | awk -v w="$3" '
        { s = ($2 - $1) / 1e6 / w; sum += s
          if (NR == 1 || s < min) min = s
          if (s < 0.9) slow++
          if ($2 > $1) {
              if (!moving++ || s < mmin) mmin = s
              if (s < 0.9) behind++
          } }
        END { printf "speed_min=%.2f speed_mean=%.2f slow=%d moving=%d " \
                     "moving_speed_min=%.2f behind=%d\n",
                     min, (NR ? sum / NR : 0), slow, moving, mmin, behind }'
}

# out_times PREFIX N: the media time (us, from -progress) that ffmpegs
# PREFIX-0..N-1 have reached, a line each (0 before any); one tail and one
# awk for all, so that the figures are of one moment
out_times() {
    local i files=()
    for i in $(seq 0 $(($2 - 1))); do
        files+=("$dir/prog/$1-$i")
    done
    tail -v -c 1500 "${files[@]}" 2>/dev/null | awk -v n="$2" '
        /^==> .* <==$/ { f = $2; sub(/.*-/, "", f); next }
        /^out_time_us=[0-9]+$/ { v[f] = substr($0, 13) }
        END { for (i = 0; i < n; i++) print v[i] + 0 }'
}

# mid T0 T1: the middle of two $EPOCHREALTIMEs
mid() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a + b) / 2 }'
}

# alive PIDS...: how many of them are running
alive() {
    local p n=0
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null && n=$((n + 1))
    done
    echo $n
}

result() {
    echo "RESULT $*" >> "$results"
    echo "RESULT $*"
}

# --- publishers ----------------------------------------------------------

pub_ok=0
if [ -n "$PUB_STEPS" ]; then
    say ""
    say "=== publishers (each its own stream; ${WARMUP} s warm-up," \
        "${WINDOW} s measured)"
fi

n_now=0
for n in $PUB_STEPS; do
    mapfile -t lines < <(head -n "$n" "$dir/streams")
    streams=()
    for i in $(seq 0 $((n - 1))); do
        read -r s u <<< "${lines[$i]}"
        streams+=("$s")
        if [ "$i" -ge "$n_now" ]; then
            publish "$i" "$u"
            sleep 0.02
        fi
    done
    n_now=$n

    if ! wait_playlists "${streams[@]}"; then
        say "publishers $n: not every stream got a playlist within 30 s"
    fi
    sleep "$WARMUP"

    e0=$EPOCHREALTIME
    seqs "${streams[@]}" > "$dir/seq0"
    out_times pub "$n" > "$dir/t0"
    e1=$EPOCHREALTIME
    snapshot a
    sleep "$WINDOW"
    snapshot b
    e2=$EPOCHREALTIME
    out_times pub "$n" > "$dir/t1"
    seqs "${streams[@]}" > "$dir/seq1"
    e3=$EPOCHREALTIME

    d=$(delta "$a" "$b")
    span=$(awk -v a="$(mid "$e0" "$e1")" -v b="$(mid "$e2" "$e3")" \
           'BEGIN { printf "%.2f", b - a }')
    sp=$(speeds "$dir/t0" "$dir/t1" "$span")
    segs=$(paste "$dir/seq0" "$dir/seq1" | awk '
        { g = ($1 < 0 || $2 < 0) ? 0 : $2 - $1
          if (NR == 1 || g < min) min = g; sum += g }
        END { printf "segs_min=%d segs_mean=%.1f", min, sum / NR }')
    up=$(alive "${pub_pids[@]:0:$n}")
    ok=1
    [ "$up" -eq "$n" ] || ok=0
    [ "$(kv slow "$sp")" -eq 0 ] || ok=0
    # 1 s fragments: at least one new segment every 2 s of each stream
    [ "$(kv segs_min "$segs")" -ge $((WINDOW / 2)) ] || ok=0
    nc=$(kv nginx_cpu "$d")
    per=$(awk -v c="$nc" -v n="$n" 'BEGIN { printf "%.3f", c * 1000 / n }')

    result "kind=publishers n=$n ok=$ok connected=$up" \
        "nginx_ms_per=$per $d span=$span $sp $segs"
    if [ $ok = 1 ]; then
        pub_ok=$n
    else
        say "publishers $n: FAILED (connected $up, $sp, $segs)"
        failed=2
        break
    fi
done

stop_pids ${pub_pids[@]+"${pub_pids[@]}"}
pub_pids=()

# --- viewers of one stream ------------------------------------------------

rtmp_ok=0
rtmp_kept=0        # the largest step where every player that got media
rtmp_kept_got=0    # kept up, and how many got it
hls_ok=0
base_cpu=0

if [ -n "$RTMP_STEPS$HLS_STEPS" ]; then
    say ""
    say "=== viewers of one stream ($view_stream, one publisher)"
    sleep 2                         # the publishers' done hooks
    publish 0 "$view_rtmp"
    pub_pids=("${pub_pids[0]}")
    wait_playlists "$view_stream" || die "no playlist for $view_stream"
    sleep "$WARMUP"

    # the publisher alone
    snapshot a
    sleep "$WINDOW"
    snapshot b
    d=$(delta "$a" "$b")
    # the workers only: the cache manager's clean-up of HLS files comes in
    # bursts, and after the publishers' steps it has many to delete
    base_cpu=$(kv workers_only_cpu "$d")
    result "kind=viewers_base viewers=0 ok=1 $d"
fi

m_now=0
for m in $RTMP_STEPS; do
    for i in $(seq "$m_now" $((m - 1))); do
        play "$i" "$view_play"
        sleep 0.02
    done
    m_now=$m

    # until every player has media, or none more for 3 s (20 s at most)
    last=-1
    since=0
    for i in $(seq 1 100); do
        started=$(out_times view "$m" \
                  | awk '$1 > 0 { n++ } END { print n + 0 }')
        [ "$started" -ge "$m" ] && break
        if [ "$started" = "$last" ]; then
            since=$((since + 1))
            [ "$since" -ge 15 ] && break
        else
            last=$started
            since=0
        fi
        sleep 0.2
    done
    sleep "$WARMUP"

    e0=$EPOCHREALTIME
    out_times view "$m" > "$dir/t0"
    e1=$EPOCHREALTIME
    snapshot a
    sleep "$WINDOW"
    snapshot b
    e2=$EPOCHREALTIME
    out_times view "$m" > "$dir/t1"
    e3=$EPOCHREALTIME

    d=$(delta "$a" "$b")
    span=$(awk -v a="$(mid "$e0" "$e1")" -v b="$(mid "$e2" "$e3")" \
           'BEGIN { printf "%.2f", b - a }')
    sp=$(speeds "$dir/t0" "$dir/t1" "$span")
    up=$(alive "${view_pids[@]:0:$m}")
    ok=1
    [ "$up" -eq "$m" ] || ok=0
    [ "$(kv slow "$sp")" -eq 0 ] || ok=0
    per=$(awk -v c="$(kv workers_only_cpu "$d")" -v b="$base_cpu" -v m="$m" \
          'BEGIN { printf "%.3f", (c - b) * 1000 / m }')

    result "kind=rtmp_viewers viewers=$m ok=$ok connected=$up" \
        "nginx_ms_per=$per $d span=$span $sp" \
        "rtmp_conns=$(conns_of "$rtmp_port")"
    if [ "$up" -eq "$m" ] && [ "$(kv behind "$sp")" -eq 0 ]; then
        rtmp_kept=$m
        rtmp_kept_got=$(kv moving "$sp")
    fi
    if [ $ok = 1 ]; then
        rtmp_ok=$m
    else
        say "rtmp viewers $m: FAILED (connected $up, $sp)"
        failed=2
        # players that never got media (see "RTMP players on the other
        # worker" in bench/README.md) do not stop the steps; a player that
        # got media and fell behind, or a gone one, does
        if [ "$up" -ne "$m" ] || [ "$(kv behind "$sp")" -ne 0 ]; then
            break
        fi
    fi
done

stop_pids ${view_pids[@]+"${view_pids[@]}"}
view_pids=()

for v in $HLS_STEPS; do
    procs=$(( (v + HLS_PER_PROC - 1) / HLS_PER_PROC ))
    hls_pids=()
    # the viewers start 1 s from now (Python's start-up), all processes
    # and this script on the same clock; they go on 2 s after the window
    # so that they are still there for the last snapshot
    at=$(awk -v t="$EPOCHREALTIME" 'BEGIN { printf "%.3f", t + 1 }')
    for p in $(seq 0 $((procs - 1))); do
        share=$(( v / procs + (p < v % procs ? 1 : 0) ))
        # no timeout(1) in between: its pid would hide Python's CPU; the
        # viewers end by WARMUP + WINDOW + 20 s on their own
        python3 "$client" hls \
            --url "$view_hls" -v "$share" --at "$at" --warmup "$WARMUP" \
            --window "$WINDOW" > "$dir/hls-$v-$p.out" \
            2>> "$dir/logs/hls.log" &
        hls_pids+=($!)
    done

    sleep "$(awk -v a="$at" -v w="$WARMUP" -v t="$EPOCHREALTIME" \
             'BEGIN { d = a + w - t; printf "%.3f", (d > 0 ? d : 0) }')"
    seq0=$(seqs "$view_stream")
    snapshot a
    sleep "$WINDOW"
    snapshot b
    seq1=$(seqs "$view_stream")
    wait "${hls_pids[@]}" || true
    hls_pids=()

    d=$(delta "$a" "$b")
    h=$(cat "$dir"/hls-"$v"-*.out | awk '
        $1 == "HLS" { for (i = 2; i <= NF; i++) {
                          split($i, x, "=")
                          if (x[1] == "produced") {
                              if (x[2] > prod) prod = x[2]
                          } else if (x[1] == "max_lag") {
                              if (x[2] > lag) lag = x[2]
                          } else if (x[1] != "window") {
                              s[x[1]] += x[2]
                          }
                      } }
        END { printf "reported=%d playlists=%d segments=%d " \
                     "segs_per_viewer=%.1f seen=%d bytes=%.0f " \
                     "s403=%d s404=%d sother=%d errors=%d missed=%d " \
                     "behind=%d max_lag=%d",
                     s["viewers"], s["playlists"], s["segments"],
                     (s["viewers"] ? s["segments"] / s["viewers"] : 0),
                     prod, s["bytes"], s["s403"], s["s404"], s["sother"],
                     s["errors"], s["missed"], s["behind"], lag }')
    # the bytes as the viewers counted them in their window (ss's count of
    # nginx's side, http_out_kbps, is off when many connections come and go)
    h="$h produced=$((seq1 - seq0)) hls_kbps=$(awk -v b="$(kv bytes "$h")" \
        -v w="$WINDOW" 'BEGIN { printf "%.0f", b * 8 / 1000 / w }')"
    ok=1
    [ "$(kv reported "$h")" -eq "$v" ] || ok=0
    for k in s403 s404 sother errors missed behind; do
        [ "$(kv "$k" "$h")" -eq 0 ] || ok=0
    done
    per=$(awk -v c="$(kv workers_only_cpu "$d")" -v b="$base_cpu" -v v="$v" \
          'BEGIN { printf "%.3f", (c - b) * 1000 / v }')

    result "kind=hls_viewers viewers=$v ok=$ok nginx_ms_per=$per $d $h"
    if [ $ok = 1 ]; then
        hls_ok=$v
    else
        say "hls viewers $v: FAILED ($h)"
        failed=2
        break
    fi
done

if [ -z "$KEEP" ]; then
    stop_pids ${pub_pids[@]+"${pub_pids[@]}"}
    pub_pids=()
    sleep 1                         # the done hooks
    nginx_stop
fi

# --- the summary ---------------------------------------------------------

errors=$(grep -cE '\[(error|alert|crit|emerg)\]' "$dir/logs/error.log" \
         || true)
crashes=$(grep -cE '\[(alert|crit|emerg)\]' "$dir/logs/error.log" || true)

say ""
say "=== media: $(nproc) cores, loopback; the load generators (ffmpeg," \
    "Python) share the cores with nginx"
say ""
say "| step | ok | nginx CPU, cores (each worker) | a publisher / viewer" \
    "| nginx in / out" \
    "| load generators (cores) | box busy (cores) | keeping up |"
say "|---|---|---|---|---|---|---|---|"
while read -r line; do
    r=${line#RESULT }
    kind=$(kv kind "$r")
    case $kind in
    publishers)
        step="$(kv n "$r") publishers"
        per="$(kv nginx_ms_per "$r") ms/s"
        out="in $(kv rtmp_in_kbps "$r") kb/s"
        keep="speed min $(kv speed_min "$r"), segments min $(kv segs_min "$r")"
        ;;
    viewers_base)
        step="1 publisher, no viewer"
        per="-"
        out="in $(kv rtmp_in_kbps "$r") kb/s"
        keep="-"
        ;;
    rtmp_viewers)
        step="$(kv viewers "$r") RTMP players"
        per="$(kv nginx_ms_per "$r") ms/s"
        out="$(kv rtmp_out_kbps "$r") kb/s"
        keep="$(kv moving "$r") got media, at speed >="
        keep="$keep $(kv moving_speed_min "$r")"
        keep="$keep (RTMP connections a worker: $(kv rtmp_conns "$r"))"
        ;;
    hls_viewers)
        step="$(kv viewers "$r") HLS viewers"
        per="$(kv nginx_ms_per "$r") ms/s"
        out="$(kv hls_kbps "$r") kb/s"
        keep="$(kv segs_per_viewer "$r")/$(kv produced "$r") segments,"
        keep="$keep behind $(kv behind "$r"), 403/404/err"
        keep="$keep $(kv s403 "$r")/$(kv s404 "$r")/$(kv errors "$r")"
        ;;
    esac
    say "| $step | $(kv ok "$r") | $(kv nginx_cpu "$r")" \
        "($(kv workers_cpu "$r")) | $per | $out" \
        "| $(kv loadgen_cpu "$r") | $(kv box_cpu "$r") | $keep |"
done < "$results"

say ""
say "largest that worked: $pub_ok publishers; one stream: $rtmp_ok RTMP" \
    "players, $hls_ok HLS viewers"
if [ "$rtmp_kept" -gt "$rtmp_ok" ] && [ "$rtmp_kept_got" -gt 0 ]; then
    say "RTMP players that got media all kept up up to $rtmp_kept players" \
        "($rtmp_kept_got of them got media: the others, on another worker" \
        "than the publisher's, got nothing)"
fi
say "error.log: $errors [error] or worse, $crashes [alert]/[crit]/[emerg]"
if [ "$errors" != 0 ]; then
    grep -E '\[(error|alert|crit|emerg)\]' "$dir/logs/error.log" \
        | sed 's/^[0-9/: ]*\[/[/; s/[0-9]*#[0-9]*: \*[0-9]* //' \
        | sort | uniq -c | sort -rn | head -5 | tee -a "$log"
fi
[ "$crashes" = 0 ] || failed=2
say "RESULT lines: $results"

exit $failed
