#!/usr/bin/env bash
# Start or stop a Redis for FishChat, with its data under var/.
#
#   util/redis.sh run  HOST PORT   start one unless one answers there
#   util/redis.sh test             start a private one on a free port for the
#                                  test suite; prints the port
#   util/redis.sh stop NAME        stop the one started as NAME (run|test)
#   util/redis.sh restart NAME     stop the one started as NAME with SHUTDOWN
#                                  and start it again on the same port, with
#                                  the data it had
#
# Each Redis keeps its data in the append-only file (appendonly yes,
# appendfsync everysec) under var/redis-NAME: a restart loses nothing that
# was stored more than a second before it (docs/operations.md).  The test
# Redis starts empty: its data from an earlier run is removed first.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
var="$top/var"
mkdir -p "$var"

answers() {
    redis-cli -h "$1" -p "$2" ping 2>/dev/null | grep -q PONG
}

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0, ReuseAddr => 1)
            or die "no free port: $!\n";
        print $s->sockport, "\n";'
}

# start NAME HOST PORT
start() {
    local name=$1 host=$2 port=$3 dir="$var/redis-$1" i
    mkdir -p "$dir"
    redis-server --bind "$host" --port "$port" --dir "$dir" \
        --save '' --appendonly yes --appendfsync everysec --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    # answers once the append-only file is loaded (LOADING until then)
    for i in $(seq 1 200); do
        if answers "$host" "$port"; then
            echo "$port" > "$dir/port"
            echo "$host" > "$dir/host"
            return 0
        fi
        sleep 0.05
    done
    echo "redis: did not start on $host:$port, see $dir/redis.log" >&2
    exit 1
}

case "${1:-}" in
run)
    host=${2:-127.0.0.1} port=${3:-6379}
    if answers "$host" "$port"; then
        echo "redis: using the one that answers on $host:$port"
        rm -f "$var/redis-run/redis.pid"
    else
        start run "$host" "$port"
        echo "redis: started on $host:$port (data in var/redis-run)"
    fi
    ;;
test)
    stop_one() { :; }
    if [ -f "$var/redis-test/redis.pid" ] \
       && kill -0 "$(cat "$var/redis-test/redis.pid")" 2>/dev/null \
       && answers 127.0.0.1 "$(cat "$var/redis-test/port")"
    then
        cat "$var/redis-test/port"
        exit 0
    fi
    port=$(free_port)
    rm -rf "$var/redis-test"
    start test 127.0.0.1 "$port" >&2
    echo "$port"
    ;;
stop)
    # waits for it to be gone: a Redis that exits removes its pid file,
    # which would otherwise be the pid file of the next one started here
    pidf="$var/redis-${2:-run}/redis.pid"
    if [ -f "$pidf" ]; then
        pid=$(cat "$pidf")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            # not gone in 10 s: killed, and waited for again
            kill -KILL "$pid" 2>/dev/null || true
            for i in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
            done
        fi
        rm -f "$pidf"
    fi
    ;;
restart)
    name=${2:-run} dir="$var/redis-${2:-run}"
    if [ ! -f "$dir/redis.pid" ] || [ ! -f "$dir/port" ]; then
        echo "redis: no Redis was started here as \"$name\"" >&2
        exit 1
    fi
    pid=$(cat "$dir/redis.pid") port=$(cat "$dir/port")
    host=$(cat "$dir/host" 2>/dev/null || echo 127.0.0.1)
    redis-cli -h "$host" -p "$port" shutdown >/dev/null 2>&1 || true
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "redis: $name ($pid) did not stop" >&2
        exit 1
    fi
    rm -f "$dir/redis.pid"
    start "$name" "$host" "$port"
    echo "redis: $name restarted on $host:$port" >&2
    ;;
*)
    echo "usage: $0 run [HOST PORT] | test | stop [run|test]" \
         "| restart [run|test]" >&2
    exit 2
    ;;
esac
