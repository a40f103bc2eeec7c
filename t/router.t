# The router's peer interface: SUBSCRIBE_CHANNEL (the system events of the
# cluster), ROUTE_MESSAGE_P2P, the shared secret and allow/deny.  The msg
# server is on the stream port, the router on $TEST_NGINX_FC_PORT1; two
# workers, so that peers and clients may be on either.

use Test::FishChat;
use Test::FishChat::Steps;

master_on();
workers(2);
repeat_each(1);
no_shuffle();

# route_many PEER N: N ROUTE_MESSAGE_P2P in one write, with long ids (the
# events are about 350 bytes each)
Test::FishChat::add_step(route_many => sub {
    my ($sc, $rest) = @_;
    my ($peer, $n) = $sc->tokens($rest);
    my ($to, $from) = ('c' x 120, 'b' x 120);

    $sc->send($peer, join '', map { frame('ROUTE_MESSAGE_P2P', $to, "m$_",
                                          $from, 'x') } 1 .. $n);
});

# recv_count NAME N CMD: the next N frames of NAME are all CMD
Test::FishChat::add_step(recv_count => sub {
    my ($sc, $rest) = @_;
    my ($name, $n, $cmd) = $sc->tokens($rest);

    for my $i (1 .. $n) {
        my $f = $sc->recv($name);
        die "frame $i: expected $cmd, got: $f->{text}\n"
            if ($f->{cmd} // '') ne $cmd;
    }
});

# a scenario and two log lines, except blocks 8, 9, 10 (one log line)
plan tests => repeat_each() * (3 * blocks() - 3);

run_tests();

__DATA__

=== TEST 1: client-status: login, kicked, logout
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- main_config
    fishchat_node n1;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/client-status 9a6a1d52-0c55-4c4e-9d1d-6e4f3b1c2a01
recv p SUBSCRIBED /sysctrl/client-status
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 *
recv p SYSCTRL_EVENT /sysctrl/client-status LOGIN alice n1 127.0.0.1:$TEST_NGINX_STREAM_PORT *
connect a2
send a2 HELLO 1
recv a2 HELLO 1 n1 *
send a2 SEND_CLIENT_ID alice
recv a2 LOGIN_OK alice n1 *
recv a ERROR KICKED "logged in elsewhere"
recv p SYSCTRL_EVENT /sysctrl/client-status KICKED alice n1 127.0.0.1:$TEST_NGINX_STREAM_PORT
recv p SYSCTRL_EVENT /sysctrl/client-status LOGIN alice n1 127.0.0.1:$TEST_NGINX_STREAM_PORT *
close a2
recv p SYSCTRL_EVENT /sysctrl/client-status LOGOUT alice n1 127.0.0.1:$TEST_NGINX_STREAM_PORT
no_frame p
--- no_error_log
[error]
[alert]



=== TEST 2: topic-status and topic-sync: create, join, a message, leave
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/topic-status u1
recv p SUBSCRIBED /sysctrl/topic-status
send p SUBSCRIBE_CHANNEL /sysctrl/topic-sync u1
recv p SUBSCRIBED /sysctrl/topic-sync
hello_login a alice
hello_login b bob
send a CREATE_TOPIC room1
recv a TOPIC_CREATED room1
recv p SYSCTRL_EVENT /sysctrl/topic-status CREATE room1 alice
send b JOIN_TOPIC room1 bob
recv b LOCATE_TOPIC_MSG_ADDR * room1
recv p SYSCTRL_EVENT /sysctrl/topic-status JOIN room1 bob
send b JOIN_TOPIC room1 bob
recv b LOCATE_TOPIC_MSG_ADDR * room1
send a SEND_MESSAGE_TOPIC room1 hello r1
recv p SYSCTRL_EVENT /sysctrl/topic-sync MESSAGE room1 alice * 1
capture p uuid 4
recv b RESP_MESSAGE_TOPIC room1 hello alice $uuid
send b LEAVE_TOPIC room1 bob
recv b TOPIC_LEFT room1
recv p SYSCTRL_EVENT /sysctrl/topic-status LEAVE room1 bob
no_frame p
--- no_error_log
[error]
[alert]



=== TEST 3: send: 1:1 messages to an online and an offline client
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/send u1
recv p SUBSCRIBED /sysctrl/send
hello_login a alice
hello_login b bob
send a SEND_MESSAGE_P2P bob hi alice m1
recv a ACCEPTED m1 *
capture a u1 1
recv_like p ^SYSCTRL_EVENT /sysctrl/send P2P bob alice [0-9a-f-]{36} (LOCAL|ROUTED)$
capture p got 4
recv b RESP_MESSAGE_P2P hi alice $got
send a SEND_MESSAGE_P2P carol hi alice m2
recv a ACCEPTED m2 *
capture a u2 1
recv p SYSCTRL_EVENT /sysctrl/send P2P carol alice $u2 OFFLINE
# a second peer on the same channel; the channel is left with the last one
connect p2 $TEST_NGINX_FC_PORT1
send p2 SUBSCRIBE_CHANNEL /sysctrl/send u2
recv p2 SUBSCRIBED /sysctrl/send
send a SEND_MESSAGE_P2P carol again alice m3
recv a ACCEPTED m3 *
capture a u3 1
recv p SYSCTRL_EVENT /sysctrl/send P2P carol alice $u3 OFFLINE
recv p2 SYSCTRL_EVENT /sysctrl/send P2P carol alice $u3 OFFLINE
close p
close p2
redis_wait "${PREFIX}sys:send 0" PUBSUB NUMSUB ${PREFIX}sys:send
--- no_error_log
[error]
[alert]



=== TEST 4: monitor: the beats of the node
--- stream_config
    fishchat_msg_heartbeat 100ms;

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- main_config
    fishchat_node n1;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/monitor u1
recv p SUBSCRIBED /sysctrl/monitor
recv p SYSCTRL_EVENT /sysctrl/monitor BEAT n1 127.0.0.1:$TEST_NGINX_STREAM_PORT 0
--- no_error_log
[error]
[alert]



=== TEST 5: ROUTE_MESSAGE_P2P to an online client with the peer's uuid, ack
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login b bob
connect p $TEST_NGINX_FC_PORT1
send p ROUTE_MESSAGE_P2P bob "pushed by a backend" backend 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f11
recv p ROUTED 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f11
recv b RESP_MESSAGE_P2P "pushed by a backend" backend 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f11
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
send b P2P_ACK bob 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f11
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
--- no_error_log
[error]
[alert]



=== TEST 6: ROUTE_MESSAGE_P2P to an offline client: delivered at its login; a bad uuid is replaced
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p ROUTE_MESSAGE_P2P carol "while away" backend 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f12
recv p ROUTED 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f12
send p ROUTE_MESSAGE_P2P carol second backend not-a-uuid
recv_like p ^ROUTED [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
capture p u2 0
connect c
send c SEND_CLIENT_ID carol
recv c RESP_MESSAGE_P2P "while away" backend 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f12
recv c RESP_MESSAGE_P2P second backend $u2
send c P2P_ACK carol 1b4e28ba-2fa1-4d2b-a3b4-8e2a9c1d0f12
send c P2P_ACK carol $u2
redis_wait 0 ZCARD ${PREFIX}inbox:{carol}
--- no_error_log
[error]
[alert]



=== TEST 7: ROUTE_MESSAGE_P2P to a full inbox; bad arguments close
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_inbox_max 1;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p ROUTE_MESSAGE_P2P dave one backend x
recv p ROUTED *
send p ROUTE_MESSAGE_P2P dave two backend x
recv p ERROR INBOX_FULL *
send p ROUTE_MESSAGE_P2P "bad id" two backend x
recv p ERROR BAD_ARGS *
closed p
--- error_log
fishchat router: INBOX_FULL
fishchat router: BAD_ARGS



=== TEST 8: the shared secret: required, wrong, accepted
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
        fishchat_router_secret s3cret;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/send u1
recv p ERROR FORBIDDEN *
closed p
connect q $TEST_NGINX_FC_PORT1
send q AUTH wrong
recv q ERROR FORBIDDEN *
closed q
connect r $TEST_NGINX_FC_PORT1
send r AUTH s3cret
recv r AUTH_OK
send r SUBSCRIBE_CHANNEL /sysctrl/send u1
recv r SUBSCRIBED /sysctrl/send
--- error_log
fishchat router: FORBIDDEN



=== TEST 9: deny all: the peer is closed at once
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        deny all;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/send u1
closed p
--- error_log
access forbidden by rule



=== TEST 10: an unknown channel, an unknown command
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
connect p $TEST_NGINX_FC_PORT1
send p SUBSCRIBE_CHANNEL /sysctrl/nothing u1
recv p ERROR BAD_ARGS "unknown channel \"/sysctrl/nothing\""
closed p
connect q $TEST_NGINX_FC_PORT1
send q SEND_MESSAGE_P2P a b c
recv q ERROR UNKNOWN_COMMAND *
closed q
--- error_log
fishchat router: BAD_ARGS



=== TEST 11: a slow subscriber is cut off, another keeps receiving
--- stream_config
    fishchat_msg_inbox_max 100000;

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=4k;
        fishchat_router;
        fishchat_router_send_buffer 4k;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT2;
        fishchat_router;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
connect slow $TEST_NGINX_FC_PORT1
send slow SUBSCRIBE_CHANNEL /sysctrl/send u1
recv slow SUBSCRIBED /sysctrl/send
connect good $TEST_NGINX_FC_PORT2
send good SUBSCRIBE_CHANNEL /sysctrl/send u2
recv good SUBSCRIBED /sysctrl/send
connect pusher $TEST_NGINX_FC_PORT2
route_many pusher 2000
wait_log fishchat router: SLOW_READER
recv_count good 2000 SYSCTRL_EVENT
recv_count pusher 2000 ROUTED
--- error_log
fishchat router: SLOW_READER
--- no_error_log
[error]
