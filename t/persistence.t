# Nothing accepted is lost (docs/operations.md): messages accepted for an
# offline client survive a restart of Redis (the suite's own, restarted by
# util/redis.sh with its append-only file); a uuid already in an inbox is
# never stored twice nor replaced (ROUTE_MESSAGE_P2P and POST /messages);
# the presence of a worker killed with SIGKILL is offline at once, and a
# message to its client waits for the next login, on the other worker.

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Manager;

use Time::HiRes ();

master_on();
workers(2);
repeat_each(1);
no_shuffle();
no_root_location();

# offline_within ID: poll GET /clients/ID until "online" is false; the
# milliseconds it took are in $offline_ms (printed with TEST_NGINX_FC_VERBOSE)

Test::FishChat::add_step(offline_within => sub {
    my ($sc, $rest) = @_;
    my ($id) = $sc->tokens($rest);
    my $start = Time::HiRes::time();
    my $deadline = $sc->deadline;
    my $body = '';

    while (Time::HiRes::time() < $deadline) {
        my $r = Test::FishChat::Manager::api_request($sc,
                    Test::FishChat::Manager::request_bytes($sc, 'GET',
                                                           "/clients/$id"));
        $body = $r->{body};
        if ($r->{status} == 200 && $body =~ /"online":false/) {
            my $ms = int((Time::HiRes::time() - $start) * 1000);
            $sc->var('offline_ms', $ms);
            Test::More::diag("offline after $ms ms")
                if $ENV{TEST_NGINX_FC_VERBOSE};
            return;
        }
        Time::HiRes::sleep(0.01);       # polling the manager, bounded
    }

    die "\"$id\" still online after $sc->{timeout} s: $body\n";
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: messages accepted for an offline id survive a restart of Redis
--- main_config
    fishchat_node n1;
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 *
send_repeat a 10 SEND_MESSAGE_P2P bob "m$i" alice "r$i"
recv_repeat a 10 ACCEPTED "r$i" *
redis_expect 10 ZCARD ${PREFIX}inbox:{bob}
close a
redis_restart
redis_expect 10 ZCARD ${PREFIX}inbox:{bob}
# at once, while the workers' links may still be reconnecting
connect b
send b SEND_CLIENT_ID bob
recv_repeat b 10 RESP_MESSAGE_P2P "m$i" alice *
no_frame b
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: ROUTE_MESSAGE_P2P again with a uuid the inbox holds: stored once, never replaced
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_router;
    }
--- scenario
set u 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f
connect_worker b any
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 *
connect p $TEST_NGINX_FC_PORT1
send p ROUTE_MESSAGE_P2P bob first alice $u
recv p ROUTED $u
recv b RESP_MESSAGE_P2P first alice $u
# the same message again (a peer that lost the reply): answered, not
# stored or delivered again
send p ROUTE_MESSAGE_P2P bob first alice $u
recv p ROUTED $u
# another text under the same uuid: refused, the first one kept
send p ROUTE_MESSAGE_P2P bob second alice $u
recv p ERROR DUPLICATE_UUID "another message to this recipient has the uuid $u"
# another sender under the same uuid is another message too
send p ROUTE_MESSAGE_P2P bob first carol $u
recv p ERROR DUPLICATE_UUID "another message to this recipient has the uuid $u"
# from peers on either worker
connect p1 $TEST_NGINX_FC_PORT1
connect p2 $TEST_NGINX_FC_PORT1
connect p3 $TEST_NGINX_FC_PORT1
connect p4 $TEST_NGINX_FC_PORT1
send p1 ROUTE_MESSAGE_P2P bob first alice $u
send p2 ROUTE_MESSAGE_P2P bob first alice $u
send p3 ROUTE_MESSAGE_P2P bob second alice $u
send p4 ROUTE_MESSAGE_P2P bob first alice $u
recv p1 ROUTED $u
recv p2 ROUTED $u
recv p3 ERROR DUPLICATE_UUID *
recv p4 ROUTED $u
no_frame b
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
redis_expect 1 HGET ${PREFIX}inbox:{bob}:m #seq
# bob comes back on the other worker: the first message, once
close b
connect_worker b2 other b
send b2 SEND_CLIENT_ID bob
recv b2 LOGIN_OK bob n1 *
recv b2 RESP_MESSAGE_P2P first alice $u
no_frame b2
send b2 P2P_ACK bob $u
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
--- error_log eval
[qr/fishchat router: DUPLICATE_UUID: another message to this recipient/]
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: POST /messages with a uuid of its own: a retry is answered, not stored twice
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- config
    location / {
        fishchat_manager;
    }
--- scenario
set u 0d9e8f7a-6b5c-4d3e-9f2a-1b0c9d8e7f6a
api 201 POST /messages "{\"to\":\"bob\",\"message\":\"hi\",\"from\":\"alice\",\"uuid\":\"$u\"}"
api_body "{\"uuid\":\"$u\",\"to\":\"bob\",\"status\":\"OFFLINE\"}"
api 200 POST /messages "{\"to\":\"bob\",\"message\":\"hi\",\"from\":\"alice\",\"uuid\":\"$u\"}"
api_body "{\"uuid\":\"$u\",\"to\":\"bob\",\"status\":\"DUPLICATE\"}"
api 409 POST /messages "{\"to\":\"bob\",\"message\":\"bye\",\"from\":\"alice\",\"uuid\":\"$u\"}"
api_body "{\"error\":{\"code\":\"DUPLICATE_UUID\",\"message\":\"another message to \\\"bob\\\" has the uuid $u\"}}"
api 400 POST /messages '{"to":"bob","message":"hi","uuid":"not-a-uuid"}'
api_json error.code BAD_REQUEST
api 400 POST /messages "{\"topic\":\"room\",\"message\":\"hi\",\"uuid\":\"$u\"}"
api_json error.code BAD_REQUEST
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
connect b
send b SEND_CLIENT_ID bob
recv b RESP_MESSAGE_P2P hi alice $u
no_frame b
--- error_log eval
[qr/fishchat manager: 409 DUPLICATE_UUID/,
 qr/fishchat manager: 400 BAD_REQUEST: "uuid" is a uuid v4/]
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: a worker killed with SIGKILL: its client is offline at once, a message to it waits for the next login on the other worker
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- config
    location / {
        fishchat_manager;
    }
--- scenario
connect_worker b any
connect_worker a other b
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 *
api 200 GET /clients/bob
api_json online true
kill_worker $pid_b
closed b
offline_within bob
# the message is stored; the presence left by the dead worker is removed
send a SEND_MESSAGE_P2P bob "while away" alice r1
recv a ACCEPTED r1 *
capture a uuid 1
redis_expect 0 EXISTS ${PREFIX}client:{bob}
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
api 200 GET /clients/bob
api_body '{"id":"bob","online":false,"pending":1,"topics":0}'
connect_worker b2 same a
send b2 SEND_CLIENT_ID bob
recv b2 LOGIN_OK bob n1 *
recv b2 RESP_MESSAGE_P2P "while away" alice $uuid
no_frame b2
api 200 GET /clients/bob
api_json online true
--- error_log eval
[qr/worker process \d+ exited on signal 9/]
--- no_error_log
[error]
[emerg]



=== TEST 5: a Redis that keeps nothing on disk: one warning at start
--- main_config
    fishchat_node n1;
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT2;
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 6
--- scenario
redis2 start $TEST_NGINX_FC_PORT2 fresh noaof
wait_log redis \S+ keeps its data in memory only
--- error_log eval
[qr/\[warn\] .*fishchat msg: redis 127\.0\.0\.1:\d+ keeps its data in memory only \(no append-only file, no RDB snapshots\)/]
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: the suite's Redis keeps an append-only file: no warning
--- main_config
    fishchat_node n1;
--- stream_server_config
    fishchat_msg;
--- scenario
wait_log redis \S+ keeps its data in an append-only file
--- no_error_log
memory only
[error]
[alert]
[emerg]
