#!/usr/bin/env bash
# Run nginx in the foreground with a FishChat configuration.
#   util/run.sh NGINX CONF PREFIX
# Ctrl-C stops nginx and the Redis that `make run` started (if it did).

set -euo pipefail

nginx=$1 conf=$2 prefix=$3
top=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$prefix/logs"

"$nginx" -p "$prefix/" -c "$conf" -t -q

echo "FishChat for nginx: $conf"
grep -E '^[[:space:]]*listen[[:space:]]' "$conf" \
    | sed -E 's/^[[:space:]]*listen[[:space:]]+([^ ;]+).*#[[:space:]]*(.*)$/  \1  \2/;
              s/^[[:space:]]*listen[[:space:]]+([^ ;]+)[^#]*$/  \1/'
echo "logs: $prefix/logs/error.log; Ctrl-C (or make stop) to stop"

stop() {
    trap - INT TERM
    if [ -f "$prefix/logs/nginx.pid" ]; then
        kill -QUIT "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    "$top/util/redis.sh" stop run
}

trap stop INT TERM

"$nginx" -p "$prefix/" -c "$conf" -g 'daemon off;' &
wait $! || true
stop
