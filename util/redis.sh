#!/usr/bin/env bash
# Start or stop a Redis for FishChat, with its data under var/.
#
#   util/redis.sh run  HOST PORT   start one unless one answers there
#   util/redis.sh test             start a private one on a free port for the
#                                  test suite; prints the port
#   util/redis.sh stop NAME        stop the one started as NAME (run|test)

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
        --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
    for i in $(seq 1 100); do
        answers "$host" "$port" && { echo "$port" > "$dir/port"; return 0; }
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
    start test 127.0.0.1 "$port" >&2
    echo "$port"
    ;;
stop)
    pidf="$var/redis-${2:-run}/redis.pid"
    if [ -f "$pidf" ]; then
        kill "$(cat "$pidf")" 2>/dev/null || true
        rm -f "$pidf"
    fi
    ;;
*)
    echo "usage: $0 run [HOST PORT] | test | stop [run|test]" >&2
    exit 2
    ;;
esac
