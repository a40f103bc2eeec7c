# Two nginx nodes on one Redis: the Test::Nginx nginx is node1 (msg server
# on the stream port, gateway on $TEST_NGINX_FC_PORT1); node2 is a second
# nginx started and stopped by the steps node2_start and node2_stop
# (Test::FishChat::Steps), with its msg server on $TEST_NGINX_FC_PORT2.

use Test::FishChat;
use Test::FishChat::Steps;

use Time::HiRes ();

repeat_each(1);
no_shuffle();

# gateway_only PORT ADDR N: ask the gateway until it answered ADDR N times
# in a row (it refreshes its heartbeats on a timer)
Test::FishChat::add_step(gateway_only => sub {
    my ($sc, $rest) = @_;
    my ($port, $addr, $n) = $sc->tokens($rest);
    my $deadline = $sc->deadline;
    my ($row, $last) = (0, '');

    while ($row < $n) {
        die "the gateway still answers \"$last\"\n"
            if Time::HiRes::time() > $deadline;

        $sc->connect('_gw', $port);
        $sc->send('_gw', frame('REQ_MSG_SERVER'));
        my $f = $sc->recv('_gw');
        delete $sc->{clients}{_gw};

        $last = $f->{text};
        if ($f->{cmd} eq 'SELECT_MSG_SERVER_FOR_CLIENT'
            && $f->{args}[0] eq $addr)
        {
            $row++;
        } else {
            $row = 0;
            Time::HiRes::sleep(0.02);
        }
    }
});

plan tests => repeat_each() * (3 * blocks());

run_tests();

__DATA__

=== TEST 1: a message each way between clients on two nodes, and a client moving
--- stream_config
    fishchat_msg_heartbeat 100ms;
--- stream_server_config
    fishchat_msg;
--- main_config
    fishchat_node node1;
--- scenario
node2_start
connect alice
send alice HELLO 1
recv alice HELLO 1 node1 *
send alice SEND_CLIENT_ID alice
recv alice LOGIN_OK alice node1 *
connect bob $TEST_NGINX_FC_PORT2
send bob HELLO 1
recv bob HELLO 1 node2 *
send bob SEND_CLIENT_ID bob
recv bob LOGIN_OK bob node2 *
send alice SEND_MESSAGE_P2P bob "hi from node1" alice m1
recv alice ACCEPTED m1 *
capture alice u1 1
recv bob RESP_MESSAGE_P2P "hi from node1" alice $u1
send bob SEND_MESSAGE_P2P alice "hi from node2" bob m2
recv bob ACCEPTED m2 *
capture bob u2 1
recv alice RESP_MESSAGE_P2P "hi from node2" bob $u2
send alice P2P_ACK alice $u2
redis_wait 0 ZCARD ${PREFIX}inbox:{alice}
# bob moves to node1 without acking: node2 closes his old session and
# the message comes again
connect bob2
send bob2 HELLO 1
recv bob2 HELLO 1 node1 *
send bob2 SEND_CLIENT_ID bob
recv bob2 LOGIN_OK bob node1 *
recv bob2 RESP_MESSAGE_P2P "hi from node1" alice $u1
recv bob ERROR KICKED "logged in elsewhere"
closed bob
send alice SEND_MESSAGE_P2P bob "now on node1" alice m3
recv alice ACCEPTED m3 *
recv bob2 RESP_MESSAGE_P2P "now on node1" alice *
node2_stop
--- no_error_log
[error]
[alert]



=== TEST 2: a stopped node leaves the gateway, its clients reconnect and get what they missed
--- stream_config
    fishchat_msg_heartbeat 100ms;
    fishchat_gateway_refresh 50ms;

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_policy round_robin;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_advertise 127.0.0.1:$TEST_NGINX_STREAM_PORT;
--- main_config
    fishchat_node node1;
--- scenario_timeout: 5
--- scenario
node2_start
redis_wait '{"node":"node2","sessions":0}' HGET ${PREFIX}{nodes}:load 127.0.0.1:$TEST_NGINX_FC_PORT2
connect bob $TEST_NGINX_FC_PORT2
send bob SEND_CLIENT_ID bob
connect alice
send alice HELLO 1
send alice SEND_CLIENT_ID alice
recv alice HELLO 1 node1 *
recv alice LOGIN_OK alice node1 *
redis_wait node2 HGET ${PREFIX}client:{bob} node
node2_stop
closed bob
gateway_only $TEST_NGINX_FC_PORT1 127.0.0.1:$TEST_NGINX_STREAM_PORT 5
send alice SEND_MESSAGE_P2P bob "while you were away" alice m1
recv alice ACCEPTED m1 *
capture alice u1 1
connect bob2
send bob2 SEND_CLIENT_ID bob
recv bob2 RESP_MESSAGE_P2P "while you were away" alice $u1
--- no_error_log
[error]
[alert]



=== TEST 3: topics: a member's node stops, it reconnects to the other node and catches up
--- stream_config
    fishchat_msg_heartbeat 100ms;
    fishchat_gateway_refresh 50ms;

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_policy round_robin;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_advertise 127.0.0.1:$TEST_NGINX_STREAM_PORT;
--- main_config
    fishchat_node node1;
--- scenario_timeout: 10
--- scenario
node2_start
redis_wait '{"node":"node2","sessions":0}' HGET ${PREFIX}{nodes}:load 127.0.0.1:$TEST_NGINX_FC_PORT2
# alice is a seed client: her own messages come back to her, no ACCEPTED
connect alice
send alice SEND_CLIENT_ID alice
send alice CREATE_TOPIC room
redis_wait alice HGET ${PREFIX}topic:{room} creator
connect bob $TEST_NGINX_FC_PORT2
send bob HELLO 1
recv bob HELLO 1 node2 *
send bob SEND_CLIENT_ID bob
recv bob LOGIN_OK bob node2 *
send bob JOIN_TOPIC room bob
recv bob LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_FC_PORT2 room
send alice SEND_MESSAGE_TOPIC room "before the stop"
recv alice RESP_MESSAGE_TOPIC room "before the stop" alice
recv bob RESP_MESSAGE_TOPIC room "before the stop" alice *
# node2 goes away: the gateway hands out node1 only
node2_stop
closed bob
gateway_only $TEST_NGINX_FC_PORT1 127.0.0.1:$TEST_NGINX_STREAM_PORT 5
send alice SEND_MESSAGE_TOPIC room "missed 1"
recv alice RESP_MESSAGE_TOPIC room "missed 1" alice
send alice SEND_MESSAGE_TOPIC room "missed 2"
recv alice RESP_MESSAGE_TOPIC room "missed 2" alice
# bob on node1: what he missed, in order, nothing twice, then live ones
connect bob2
send bob2 HELLO 1
recv bob2 HELLO 1 node1 *
send bob2 SEND_CLIENT_ID bob
recv bob2 LOGIN_OK bob node1 *
recv bob2 RESP_MESSAGE_TOPIC room "missed 1" alice *
recv bob2 RESP_MESSAGE_TOPIC room "missed 2" alice *
send alice SEND_MESSAGE_TOPIC room "live on node1"
recv alice RESP_MESSAGE_TOPIC room "live on node1" alice
recv bob2 RESP_MESSAGE_TOPIC room "live on node1" alice *
no_frame bob2
--- no_error_log
[error]
[alert]
