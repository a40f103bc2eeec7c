#!/usr/bin/env bash
# API requests per second of the manager (ngx_http_fishchat_manager_module)
# with wrk.
#
#   bench/manager.sh             every endpoint below, SECS each
#   SECS=5 CONNS=32 bench/manager.sh
#
# Starts a private Redis (util/redis.sh test) and nginx (build/nginx) with a
# configuration of its own: 2 workers, a msg server on 127.0.0.1:19200 (for
# its heartbeats) and the manager on 127.0.0.1:18100, no access log.  Each
# endpoint is driven by "wrk -t THREADS -c CONNS -d SECS --latency" on
# keep-alive connections; the summary has requests/s and latency
# percentiles.  Logs and wrk's output: var/bench/manager-<date>/.
#
# Knobs (environment): SECS (10), CONNS (64), THREADS (1), NGINX
# (build/nginx/sbin/nginx), KEEP=1 leaves nginx and Redis running.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

SECS=${SECS:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
NGINX=${NGINX:-$top/build/nginx/sbin/nginx}
KEEP=${KEEP:-}

api=http://127.0.0.1:18100
dir="$top/var/bench/manager-$(date +%Y%m%d-%H%M%S)"
pidfile="$dir/logs/nginx.pid"
redis_started=

command -v wrk >/dev/null || { echo "manager.sh: wrk is missing (make deps)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "manager.sh: no $NGINX (make build)" >&2; exit 1; }

mkdir -p "$dir/logs"

cleanup() {
    [ -n "$KEEP" ] && return
    if [ -f "$pidfile" ]; then
        kill -QUIT "$(cat "$pidfile")" 2>/dev/null || true
    fi
    if [ -n "$redis_started" ]; then
        "$top/util/redis.sh" stop test
    fi
}
trap cleanup EXIT

if [ -f "$top/var/redis-test/redis.pid" ] \
   && kill -0 "$(cat "$top/var/redis-test/redis.pid")" 2>/dev/null
then
    port=$(cat "$top/var/redis-test/port")
else
    port=$("$top/util/redis.sh" test)
    redis_started=1
fi

prefix="fcbm$$:"

cat > "$dir/nginx.conf" <<EOF
worker_processes  2;
worker_rlimit_nofile  20000;
error_log  logs/error.log  warn;
pid        logs/nginx.pid;

fishchat_node   bench;
fishchat_redis  127.0.0.1:$port;
fishchat_redis_prefix  $prefix;

events {
    worker_connections  4096;
}

stream {
    server {
        listen  127.0.0.1:19200 reuseport;
        fishchat_msg;
    }
}

http {
    access_log  off;

    server {
        listen  127.0.0.1:18100;

        location / {
            fishchat_manager;
            fishchat_manager_inbox_max  1000000;
        }
    }
}
EOF

"$NGINX" -p "$dir" -c "$dir/nginx.conf"

for _ in $(seq 1 100); do
    curl -sf "$api/nodes" | grep -q 127.0.0.1:19200 && break
    sleep 0.05
done

curl -sf -X POST -d '{"name":"room","creator":"alice"}' "$api/topics" >/dev/null
curl -sf -X POST -d '{"to":"bob","message":"hello"}' "$api/messages" >/dev/null

# POST /messages to 1,000 recipients in turn, each body its own
cat > "$dir/post.lua" <<'EOF'
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
    n = n + 1
    return wrk.format(nil, "/messages",
        nil, '{"to":"r' .. (n % 1000) .. '","message":"bench ' .. n .. '"}')
end
EOF

cat > "$dir/topic.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"room","message":"bench"}'
EOF

run() {
    local name=$1; shift
    local out="$dir/$name.txt"
    wrk -t "$THREADS" -c "$CONNS" -d "${SECS}s" --latency "$@" > "$out" 2>&1
    awk -v name="$name" '
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "50%" { p50 = $2 } $1 == "90%" { p90 = $2 }
        $1 == "99%" { p99 = $2 }
        /Non-2xx or 3xx responses/ { non2xx = $NF }
        END { printf "%-24s %10s req/s   p50 %-9s p90 %-9s p99 %-9s%s\n",
                     name, rps, p50, p90, p99,
                     non2xx ? "   non-2xx " non2xx : "" }' "$out"
}

echo "manager bench: $THREADS wrk thread(s), $CONNS connections, ${SECS}s each"
echo "(results and logs in $dir)"

run get-client       "$api/clients/bob"
run get-client-404   "$api/clients/nobody"
run get-nodes        "$api/nodes"
run get-topic        "$api/topics/room"
run get-clients      "$api/clients?count=100"
run get-inbox        "$api/clients/bob/inbox"
run post-message     -s "$dir/post.lua" "$api"
run post-topic       -s "$dir/topic.lua" "$api/messages"

if grep -E '\[(alert|emerg|crit)\]' "$dir/logs/error.log"; then
    echo "manager.sh: see $dir/logs/error.log" >&2
    exit 2
fi
