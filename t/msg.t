# The msg server (fishchat_msg), one worker, against the private Redis:
# the seed's exchange byte for byte, the opt-in replies, at-least-once
# delivery, limits, refusals, the seed's crash cases, keepalive, Redis
# going away, heartbeats, configuration errors and counters.
#
# Custom steps: t/lib/Test/FishChat/Msg.pm and Steps.pm.  Every block starts
# with no keys under the file's prefix, repetitions included.

use Test::FishChat;
use Test::FishChat::Msg;

repeat_each(2);

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: the seed's exchange, byte for byte (no HELLO)
Pings get no reply, the sender gets nothing back, the delivery has the
seed's shape and length, P2P_ACK empties the inbox.
--- stream_server_config
    fishchat_msg;
--- scenario
connect b
send b SEND_CLIENT_ID bob
send b SEND_PING PING
connect a
send a SEND_CLIENT_ID alice
send a SEND_PING PING
send a SEND_MESSAGE_P2P bob hello_bob alice
recv_like b ^RESP_MESSAGE_P2P hello_bob alice [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
last_len b 00000063
capture b uuid 2
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
redis_expect $uuid ZRANGE ${PREFIX}inbox:{bob} 0 -1
send b P2P_ACK bob $uuid
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
redis_expect 0 EXISTS ${PREFIX}inbox:{bob}:m
no_frame a
no_frame b



=== TEST 2: a seed client sends its login and messages without waiting
A seed client gets no reply to SEND_CLIENT_ID, so it can't wait for the
login: what follows it in the same packet must be served after the login.
--- stream_server_config
    fishchat_msg;
--- scenario
connect b
send b SEND_CLIENT_ID bob
connect a
send_frames a SEND_CLIENT_ID alice || SEND_PING PING || SEND_MESSAGE_P2P bob one alice || SEND_MESSAGE_P2P bob two alice
recv b RESP_MESSAGE_P2P one alice *
recv b RESP_MESSAGE_P2P two alice *
no_frame a
no_frame b



=== TEST 3: opt-in: HELLO, LOGIN_OK, PONG, ACCEPTED with the uuid delivered
--- main_config
    fishchat_node n1;
--- stream_server_config
    fishchat_msg;
--- scenario
pid_file pid
connect a
send a HELLO 1
recv a HELLO 1 n1 $pid
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 $pid
send a SEND_PING
recv a PONG
send a SEND_PING PING
recv a PONG
connect b
send b HELLO 1
recv b HELLO 1 n1 $pid
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 $pid
send a SEND_MESSAGE_P2P bob "hi <bob> & \"you\"" alice ref-1
recv_like a ^ACCEPTED ref-1 [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
capture a uuid 1
recv b RESP_MESSAGE_P2P "hi <bob> & \"you\"" alice $uuid
last_body_like b ^\{"CmdName":"RESP_MESSAGE_P2P","Args":\["hi \\u003cbob\\u003e \\u0026 \\"you\\"","alice","[0-9a-f-]{36}"\]\}\n\z
send a SEND_MESSAGE_P2P bob second alice
recv a ACCEPTED "" *
capture a uuid2 1
recv b RESP_MESSAGE_P2P second alice $uuid2
assert_ne $uuid $uuid2
send b P2P_ACK bob $uuid
send b P2P_ACK bob $uuid2
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
no_frame a
no_frame b



=== TEST 4: HELLO with a version other than 1: ERROR BAD_ARGS and the close
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a HELLO 2
recv a ERROR BAD_ARGS *
closed a
connect b
send b HELLO
recv b ERROR BAD_ARGS *
closed b
connect c
send c HELLO 1 1
recv c ERROR BAD_ARGS *
closed c
connect d
send d HELLO 1
recv d HELLO 1 * *
--- error_log
fishchat msg: BAD_ARGS: HELLO takes the protocol version
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: at least once: unacknowledged messages come again, oldest first
m1 is delivered and not acknowledged before bob leaves; m2..m4 wait while
he is offline; every login delivers what is not acknowledged, in order,
with the uuids of the first delivery.
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login a alice
hello_login b bob
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_MESSAGE_P2P m1 alice $u1
close b
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
capture a u2 1
send a SEND_MESSAGE_P2P bob m3 alice r3
recv a ACCEPTED r3 *
capture a u3 1
send a SEND_MESSAGE_P2P bob m4 alice r4
recv a ACCEPTED r4 *
capture a u4 1
redis_wait 0 EXISTS ${PREFIX}client:{bob}
redis_expect 4 ZCARD ${PREFIX}inbox:{bob}
connect b2
send b2 SEND_CLIENT_ID bob
recv b2 RESP_MESSAGE_P2P m1 alice $u1
recv b2 RESP_MESSAGE_P2P m2 alice $u2
recv b2 RESP_MESSAGE_P2P m3 alice $u3
recv b2 RESP_MESSAGE_P2P m4 alice $u4
no_frame b2
send b2 P2P_ACK bob $u1
send b2 P2P_ACK bob $u3
redis_wait 2 ZCARD ${PREFIX}inbox:{bob}
close b2
hello_login b3 bob
recv b3 RESP_MESSAGE_P2P m2 alice $u2
recv b3 RESP_MESSAGE_P2P m4 alice $u4
no_frame b3
send b3 P2P_ACK bob $u2
send b3 P2P_ACK bob $u4
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}:m
no_frame a 0.1



=== TEST 6: a message to a recipient that just disconnected waits for him
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login a alice
hello_login b bob
close b
send a SEND_MESSAGE_P2P bob late alice r1
recv a ACCEPTED r1 *
capture a u1 1
connect b2
send b2 SEND_CLIENT_ID bob
recv b2 RESP_MESSAGE_P2P late alice $u1
no_frame b2



=== TEST 7: a full inbox refuses, never drops; opt-in senders stay
--- stream_server_config
    fishchat_msg;
    fishchat_msg_inbox_max 2;
--- scenario
hello_login a alice
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
capture a u2 1
send a SEND_MESSAGE_P2P bob m3 alice r3
recv a ERROR INBOX_FULL *
send a SEND_PING
recv a PONG
send a SEND_MESSAGE_P2P carol c1 alice r4
recv a ACCEPTED r4 *
redis_expect 2 ZCARD ${PREFIX}inbox:{bob}
connect l
send l SEND_CLIENT_ID lee
send l SEND_MESSAGE_P2P bob m4 lee
closed l
redis_expect 2 ZCARD ${PREFIX}inbox:{bob}
connect b
send b SEND_CLIENT_ID bob
recv b RESP_MESSAGE_P2P m1 alice $u1
recv b RESP_MESSAGE_P2P m2 alice $u2
no_frame b
--- error_log
fishchat msg: INBOX_FULL: the inbox of the recipient is full while
fishchat msg: INBOX_FULL: the inbox of the recipient is full, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 8: "from" must be the logged-in id, P2P_ACK too: FORBIDDEN
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login a alice
send a SEND_MESSAGE_P2P bob hi mallory
recv a ERROR FORBIDDEN *
closed a
hello_login a2 alice
send a2 P2P_ACK bob 3082b924-3426-4c9f-a2c5-ca278e31749c
recv a2 ERROR FORBIDDEN *
closed a2
connect l
send l SEND_CLIENT_ID lee
send l SEND_MESSAGE_P2P bob hi mallory
closed l
connect l2
send l2 SEND_CLIENT_ID lee
send l2 P2P_ACK bob 3082b924-3426-4c9f-a2c5-ca278e31749c
closed l2
redis_expect 0 EXISTS ${PREFIX}inbox:{bob}
--- error_log
fishchat msg: FORBIDDEN: "from" is not the logged-in id, closing
fishchat msg: FORBIDDEN: P2P_ACK for another id, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 9: before login only HELLO, SEND_PING and SEND_CLIENT_ID
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 * *
send a SEND_MESSAGE_P2P bob hi alice
recv a ERROR NOT_LOGGED_IN *
closed a
connect b
send b HELLO 1
recv b HELLO 1 * *
send b P2P_ACK bob 3082b924-3426-4c9f-a2c5-ca278e31749c
recv b ERROR NOT_LOGGED_IN *
closed b
connect c
send c HELLO 1
recv c HELLO 1 * *
send c JOIN_TOPIC room1 c
recv c ERROR NOT_LOGGED_IN *
closed c
connect d
send d HELLO 1
recv d HELLO 1 * *
send d SEND_PING
recv d PONG
send d SEND_CLIENT_ID dave
recv d LOGIN_OK dave * *
connect l
send l SEND_MESSAGE_P2P bob hi alice
closed l
connect l2
send l2 P2P_ACK bob 3082b924-3426-4c9f-a2c5-ca278e31749c
closed l2
redis_expect 0 EXISTS ${PREFIX}inbox:{bob}
send d SEND_PING
recv d PONG
--- error_log
fishchat msg: NOT_LOGGED_IN: SEND_MESSAGE_P2P before login, closing
fishchat msg: NOT_LOGGED_IN: P2P_ACK before login, closing
fishchat msg: NOT_LOGGED_IN: JOIN_TOPIC before login, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 10: the frames that crashed the seed get an error, others go on
SEND_CLIENT_ID without args, SEND_MESSAGE_P2P without args, P2P_ACK with
one, SEND_PING and CREATE_TOPIC before login; opt-in and seed clients; the
session w must keep working after each.
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login w watcher
connect c1
send c1 HELLO 1
recv c1 HELLO 1 * *
send c1 SEND_CLIENT_ID
recv c1 ERROR BAD_ARGS *
closed c1
connect l1
send l1 SEND_CLIENT_ID
closed l1
send w SEND_PING
recv w PONG
hello_login c2 u2
send c2 SEND_MESSAGE_P2P
recv c2 ERROR BAD_ARGS *
closed c2
connect l2
send l2 SEND_CLIENT_ID lu2
send l2 SEND_MESSAGE_P2P
closed l2
connect c2b
send c2b HELLO 1
recv c2b HELLO 1 * *
send c2b SEND_MESSAGE_P2P
recv c2b ERROR NOT_LOGGED_IN *
closed c2b
send w SEND_PING
recv w PONG
hello_login c3 u3
send c3 P2P_ACK u3
recv c3 ERROR BAD_ARGS *
closed c3
connect l3
send l3 SEND_CLIENT_ID lu3
send l3 P2P_ACK lu3
closed l3
send w SEND_PING
recv w PONG
connect l4
send l4 SEND_PING PING
no_frame l4
send l4 SEND_CLIENT_ID lu4
send w SEND_MESSAGE_P2P lu4 "still here" watcher
recv w ACCEPTED "" *
recv l4 RESP_MESSAGE_P2P "still here" watcher *
connect c5
send c5 HELLO 1
recv c5 HELLO 1 * *
send c5 CREATE_TOPIC room1
recv c5 ERROR NOT_LOGGED_IN *
closed c5
connect l5
send l5 CREATE_TOPIC room1
closed l5
hello_login c6 u6
send c6 CREATE_TOPIC room1
recv c6 TOPIC_CREATED room1
send c6 NO_SUCH_COMMAND
recv c6 ERROR UNKNOWN_COMMAND *
closed c6
send w SEND_PING
recv w PONG
--- error_log
fishchat msg: BAD_ARGS: SEND_CLIENT_ID takes an id
fishchat msg: BAD_ARGS: SEND_MESSAGE_P2P takes to, message, from
fishchat msg: BAD_ARGS: P2P_ACK takes the id and a uuid
fishchat msg: UNKNOWN_COMMAND: unknown command "NO_SUCH_COMMAND", closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 11: bad frames: too large, garbage, bad JSON, bad arguments
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login w watcher
connect c1
send c1 HELLO 1
recv c1 HELLO 1 * *
send c1 hex: ff ff ff ff
recv c1 ERROR FRAME_TOO_LARGE *
closed c1
connect l1
send l1 hex: ff ff ff ff
closed l1
connect c2
send c2 HELLO 1
recv c2 HELLO 1 * *
send c2 raw: GET / HTTP/1.0\r\n\r\n
recv c2 ERROR FRAME_TOO_LARGE *
closed c2
connect c3
send c3 HELLO 1
recv c3 HELLO 1 * *
send c3 hex: 00 00 00 05 7b 7b 7b 7b 7b
recv c3 ERROR BAD_FRAME *
closed c3
connect c4
send c4 HELLO 1
recv c4 HELLO 1 * *
send c4 hex: 00 00 00 00
recv c4 ERROR BAD_FRAME *
closed c4
connect c5
send c5 HELLO 1
recv c5 HELLO 1 * *
send c5 json: {"CmdName":"SEND_PING","Args":["1","2","3","4","5","6","7","8","9"]}
recv c5 ERROR BAD_FRAME *
closed c5
connect c6
send c6 HELLO 1
recv c6 HELLO 1 * *
send c6 json: {"CmdName":"SEND_PING","Args":[1]}
recv c6 ERROR BAD_FRAME *
closed c6
connect c7
send c7 HELLO 1
recv c7 HELLO 1 * *
send c7 json: ["SEND_PING"]
recv c7 ERROR BAD_FRAME *
closed c7
connect c8
send c8 HELLO 1
recv c8 HELLO 1 * *
send c8 json: {"CmdName":"SEND_PING","Args":["\u0000"]}
recv c8 ERROR BAD_FRAME *
closed c8
connect c9
send c9 HELLO 1
recv c9 HELLO 1 * *
send c9 hex: 00000026 7b22436d644e616d65223a2253454e445f50494e47222c2241726773223a5b22fffe225d7d0a
recv c9 ERROR BAD_FRAME *
closed c9
connect c10
send c10 HELLO 1
recv c10 HELLO 1 * *
send c10 json: {"CmdName":"","Args":[]}
recv c10 ERROR BAD_FRAME *
closed c10
connect l10
send l10 json: {"CmdName":"SEND_PING"
closed l10
send w SEND_PING
recv w PONG
--- error_log
fishchat msg: FRAME_TOO_LARGE: frame of 4294967295 bytes is over the maximum of 65536, closing
fishchat msg: BAD_FRAME: empty frame, closing
fishchat msg: BAD_FRAME: invalid JSON
fishchat msg: BAD_FRAME: more than 8 arguments, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 12: ids: 1 to 128 bytes, no white space, control characters, braces
--- stream_server_config
    fishchat_msg;
--- scenario
set_repeat id128 x 128
set_repeat id129 x 129
connect c1
send c1 HELLO 1
recv c1 HELLO 1 * *
send c1 SEND_CLIENT_ID "a b"
recv c1 ERROR BAD_ARGS *
closed c1
connect c2
send c2 HELLO 1
recv c2 HELLO 1 * *
send c2 SEND_CLIENT_ID a{b
recv c2 ERROR BAD_ARGS *
closed c2
connect c3
send c3 HELLO 1
recv c3 HELLO 1 * *
send c3 SEND_CLIENT_ID a}b
recv c3 ERROR BAD_ARGS *
closed c3
connect c4
send c4 HELLO 1
recv c4 HELLO 1 * *
send c4 SEND_CLIENT_ID $id129
recv c4 ERROR BAD_ARGS *
closed c4
connect c5
send c5 HELLO 1
recv c5 HELLO 1 * *
send c5 SEND_CLIENT_ID ""
recv c5 ERROR BAD_ARGS *
closed c5
connect c6
send c6 HELLO 1
recv c6 HELLO 1 * *
send c6 SEND_CLIENT_ID "a\tb"
recv c6 ERROR BAD_ARGS *
closed c6
connect l1
send l1 SEND_CLIENT_ID "a b"
closed l1
hello_login ok $id128
send ok SEND_MESSAGE_P2P "b b" hi $id128
recv ok ERROR BAD_ARGS *
closed ok
hello_login ok2 "é☺"
send ok2 SEND_MESSAGE_P2P "é☺" "to myself" "é☺" r1
recv_any_order ok2 ACCEPTED r1 * || RESP_MESSAGE_P2P "to myself" "é☺" *
redis_expect 1 ZCARD "${PREFIX}inbox:{é☺}"
--- error_log
fishchat msg: BAD_ARGS: invalid recipient id, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 13: a second login of an id closes the first session, loses nothing
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login b1 bob
redis_capture sid1 HGET ${PREFIX}client:{bob} sid
hello_login a alice
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b1 RESP_MESSAGE_P2P m1 alice $u1
connect b2
send b2 HELLO 1
recv b2 HELLO 1 * *
send b2 SEND_CLIENT_ID bob
recv b1 ERROR KICKED *
closed b1
recv b2 LOGIN_OK bob * *
recv b2 RESP_MESSAGE_P2P m1 alice $u1
redis_capture sid2 HGET ${PREFIX}client:{bob} sid
assert_ne $sid1 $sid2
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
capture a u2 1
recv b2 RESP_MESSAGE_P2P m2 alice $u2
redis_expect $sid2 HGET ${PREFIX}client:{bob} sid
connect b3
send b3 SEND_CLIENT_ID bob
recv b2 ERROR KICKED *
closed b2
recv b3 RESP_MESSAGE_P2P m1 alice $u1
recv b3 RESP_MESSAGE_P2P m2 alice $u2
connect b4
send b4 SEND_CLIENT_ID bob
closed b3
recv b4 RESP_MESSAGE_P2P m1 alice $u1
recv b4 RESP_MESSAGE_P2P m2 alice $u2
send a SEND_MESSAGE_P2P bob m3 alice r3
recv a ACCEPTED r3 *
recv b4 RESP_MESSAGE_P2P m3 alice *
redis_expect 3 ZCARD ${PREFIX}inbox:{bob}
--- error_log
fishchat msg: "bob" logged in again, closing this session
fishchat msg: KICKED: logged in elsewhere, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 14: keepalive: a silent session is closed and its presence goes
--- stream_server_config
    fishchat_msg;
    fishchat_msg_keepalive_timeout 300ms;
--- scenario_timeout: 5
--- scenario
hello_login s sleepy
redis_expect 1 EXISTS ${PREFIX}client:{sleepy}
closed s
redis_wait 0 EXISTS ${PREFIX}client:{sleepy}
connect l
send l SEND_CLIENT_ID lazy
closed l
redis_wait 0 EXISTS ${PREFIX}client:{lazy}
connect t
send t HELLO 1
recv t HELLO 1 * *
closed t
--- error_log
fishchat msg: no frame for 300 ms, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 15: keepalive: pings keep a session past the timeout
Pings every 100 ms for 600 ms with a 300 ms timeout, opt-in and seed.
--- stream_server_config
    fishchat_msg;
    fishchat_msg_keepalive_timeout 300ms;
--- scenario_timeout: 5
--- scenario
hello_login p pinger
connect q
send q SEND_CLIENT_ID quiet
ping_for 0.6 0.1 p q
recv_repeat p $pings PONG
send p SEND_MESSAGE_P2P quiet "alive?" pinger r1
recv p ACCEPTED r1 *
recv q RESP_MESSAGE_P2P "alive?" pinger *
redis_expect 1 EXISTS ${PREFIX}client:{pinger}
redis_expect 1 EXISTS ${PREFIX}client:{quiet}



=== TEST 16: rate: the 6th message of a burst is refused, opt-in stays
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 5 burst=5;
--- scenario
hello_login b bob
hello_login a alice
send_repeat a 6 SEND_MESSAGE_P2P bob "m$i" alice "r$i"
recv a ERROR RATE_LIMITED *
recv_repeat a 5 ACCEPTED "r$i" *
recv_repeat b 5 RESP_MESSAGE_P2P "m$i" alice *
send a SEND_PING
recv a PONG
no_frame b 0.1
connect l
send l SEND_CLIENT_ID lee
send_repeat l 6 SEND_MESSAGE_P2P bob "l$i" lee
closed l
recv_repeat b 5 RESP_MESSAGE_P2P "l$i" lee *
no_frame b
redis_expect 10 ZCARD ${PREFIX}inbox:{bob}
--- error_log
fishchat msg: RATE_LIMITED: over 5 messages a second while
fishchat msg: RATE_LIMITED: over 5 messages a second, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 17: rate: more than "burst" refusals in a row close an opt-in client
The 5 messages it sent before are stored, and bob, connected here, gets
them although their sender is gone when Redis answers.
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 5 burst=5;
--- scenario
hello_login b bob
hello_login a alice
send_repeat a 12 SEND_MESSAGE_P2P bob "m$i" alice "r$i"
recv_repeat a 6 ERROR RATE_LIMITED *
closed a
recv_repeat b 5 RESP_MESSAGE_P2P "m$i" alice *
redis_expect 5 ZCARD ${PREFIX}inbox:{bob}
no_frame b
--- error_log
fishchat msg: RATE_LIMITED: over 5 messages a second, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 18: a reader slower than the send buffer is closed, keeps its inbox
bob is on a server with a small send buffer (and a socket buffer without
autotuning, so that it fills quickly), alice on one with the defaults.
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=4k;
        fishchat_msg;
        fishchat_msg_send_buffer 4k;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 0;
--- scenario_timeout: 5
--- scenario
set_repeat kb x 1000
connect_tiny b $TEST_NGINX_FC_PORT1
send b HELLO 1
recv b HELLO 1 * *
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * *
hello_login a alice
send_repeat a 200 SEND_MESSAGE_P2P bob "$i $kb" alice "r$i"
recv_repeat a 200 ACCEPTED "r$i" *
drain_closed b
wait_log SLOW_READER
redis_expect 200 ZCARD ${PREFIX}inbox:{bob}
send a SEND_PING
recv a PONG
redis_wait 0 EXISTS ${PREFIX}client:{bob}
--- error_log
fishchat msg: SLOW_READER: over 4096 bytes waiting to be sent, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 19: a slow reader that sends to itself
The delivery that overflows the buffer is the session's own message.
--- stream_config
    server {
        # no autotuning of the socket's buffer: the queue fills quickly
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT sndbuf=4k;
        fishchat_msg;
        fishchat_msg_send_buffer 4k;
        fishchat_msg_rate 0;
    }
--- scenario_timeout: 5
--- scenario
set_repeat kb x 1000
connect w
send w HELLO 1
recv w HELLO 1 * *
connect_tiny s
send s HELLO 1
recv s HELLO 1 * *
send s SEND_CLIENT_ID self
recv s LOGIN_OK self * *
connect_tiny l
send l SEND_CLIENT_ID lself
send_repeat s 200 SEND_MESSAGE_P2P self "$i $kb" self "r$i"
send_repeat l 200 SEND_MESSAGE_P2P lself "$i $kb" lself
wait_log SLOW_READER[^\n]*\n(?s:.*)SLOW_READER
drain_closed s
drain_closed l
send w SEND_PING
recv w PONG
connect w2
send w2 HELLO 1
recv w2 HELLO 1 * *
redis_wait 0 EXISTS ${PREFIX}client:{self}
redis_wait 0 EXISTS ${PREFIX}client:{lself}
--- error_log
fishchat msg: SLOW_READER
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 20: frames split at every byte
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 5
--- scenario
connect b
send b SEND_CLIENT_ID bob
connect a
send_bytewise a HELLO 1
recv a HELLO 1 * *
send_bytewise a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send_bytewise a SEND_MESSAGE_P2P bob "héllo ☺ \"<>\"" alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_MESSAGE_P2P "héllo ☺ \"<>\"" alice $u1
send_bytewise b P2P_ACK bob $u1
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
send_bytewise a nonl: SEND_PING
recv a PONG



=== TEST 21: 10000 pings in one write, 10000 PONGs
(2000 under valgrind)
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario eval
my $n = $ENV{TEST_NGINX_USE_VALGRIND} ? 2000 : 10000;
<<"_EOS_"
connect a
send a HELLO 1
recv a HELLO 1 * *
send_repeat a $n SEND_PING PING
recv_repeat a $n PONG
no_frame a 0.1
_EOS_



=== TEST 22: 2000 messages in one write, delivered in order, acked in one
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 0;
    fishchat_msg_inbox_max 5000;
--- scenario_timeout: 10
--- scenario
hello_login b bob
hello_login a alice
send_repeat a 2000 SEND_MESSAGE_P2P bob "m$i" alice "r$i"
recv_repeat a 2000 ACCEPTED "r$i" *
recv_repeat b 2000 RESP_MESSAGE_P2P "m$i" alice *
redis_expect 2000 ZCARD ${PREFIX}inbox:{bob}
ack_all b bob
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
no_frame b 0.1



=== TEST 23: several frames in one packet, opt-in, in order
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login b bob
connect a
send_frames a HELLO 1 || SEND_CLIENT_ID alice || SEND_PING || SEND_MESSAGE_P2P bob one alice r1 || SEND_PING || SEND_MESSAGE_P2P bob two alice r2
recv a HELLO 1 * *
recv a LOGIN_OK alice * *
recv a PONG
recv a PONG
recv a ACCEPTED r1 *
recv a ACCEPTED r2 *
recv b RESP_MESSAGE_P2P one alice *
recv b RESP_MESSAGE_P2P two alice *
no_frame a 0.1



=== TEST 24: frames without the final newline, other JSON spellings
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a nonl: HELLO 1
recv a HELLO 1 * *
send a nonl: SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send a nonl: SEND_PING PING
recv a PONG
send a json: { "Args" : null , "CmdName" : "SEND_PING", "Extra": {"x": [1]} }
recv a PONG
send a json: {"CmdName":"SEND_PING"}
recv a PONG
send a nonl: SEND_MESSAGE_P2P alice "no newline" alice r1
recv_any_order a ACCEPTED r1 * || RESP_MESSAGE_P2P "no newline" alice *
send a json: {"CmdName":"SEND_MESSAGE_P2P","Args":["alice","\u00e9\n\/","alice","r2"]}
recv_any_order a ACCEPTED r2 * || RESP_MESSAGE_P2P "é\n/" alice *
connect l
send l nonl: SEND_CLIENT_ID lee
send l nonl: SEND_MESSAGE_P2P alice "from lee" lee
recv a RESP_MESSAGE_P2P "from lee" lee *
no_frame l



=== TEST 25: a client that half-closes after sending is answered, then closed
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login b bob
connect h
send_frames h HELLO 1 || SEND_CLIENT_ID hal || SEND_MESSAGE_P2P bob bye hal r1
shutdown h
recv h HELLO 1 * *
recv h LOGIN_OK hal * *
recv h ACCEPTED r1 *
capture h u1 1
closed h
recv b RESP_MESSAGE_P2P bye hal $u1
connect l
send_frames l SEND_CLIENT_ID lee || SEND_MESSAGE_P2P bob "bye too" lee
shutdown l
closed l
recv b RESP_MESSAGE_P2P "bye too" lee *
redis_wait 0 EXISTS ${PREFIX}client:{hal}
redis_wait 0 EXISTS ${PREFIX}client:{lee}
no_frame b 0.1



=== TEST 26: Redis unreachable: logins refused, pings answered
--- no_redis
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_timeout 300ms;
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 * *
send a SEND_PING
recv a PONG
send a SEND_CLIENT_ID alice
recv a ERROR REDIS_UNAVAILABLE *
closed a
connect l
send l SEND_PING PING
no_frame l 0.1
send l SEND_CLIENT_ID lee
closed l
--- error_log
fishchat msg: REDIS_UNAVAILABLE: can't log in: Redis is unavailable, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 27: Redis goes away and comes back in the middle of sessions
A private redis-server with AOF: killed, a message is refused (never
ACCEPTED, nothing stored), restarted on the same port with its data, the
unacknowledged message comes again, then messages flow again.
--- no_redis
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix fct:msg2:;
    fishchat_redis_timeout 1s;
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
redis2 start $TEST_NGINX_FC_PORT3 fresh
wait_log fishchat: redis \S+ is up \(command link\)
wait_log fishchat: redis \S+ is up \(subscriber link\)
hello_login a alice
hello_login b bob
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_MESSAGE_P2P m1 alice $u1
redis2 kill $TEST_NGINX_FC_PORT3
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ERROR REDIS_UNAVAILABLE *
send a SEND_PING
recv a PONG
log_mark
redis2 start $TEST_NGINX_FC_PORT3
redis2_wait $TEST_NGINX_FC_PORT3 $u1 ZRANGE "fct:msg2:inbox:{bob}" 0 -1
wait_log fishchat: redis \S+ is up \(command link\)
# the subscriber link is back: the worker delivers its sessions' inboxes
# again (at least once: bob has not acknowledged m1)
wait_log subscriptions were down, delivering the inboxes
recv b RESP_MESSAGE_P2P m1 alice $u1
send a SEND_MESSAGE_P2P bob m3 alice r3
recv a ACCEPTED r3 *
capture a u3 1
recv b RESP_MESSAGE_P2P m3 alice $u3
redis2_wait $TEST_NGINX_FC_PORT3 "$u1 $u3" ZRANGE "fct:msg2:inbox:{bob}" 0 -1
send b P2P_ACK bob $u1
send b P2P_ACK bob $u3
redis2_wait $TEST_NGINX_FC_PORT3 0 EXISTS "fct:msg2:inbox:{bob}"
no_frame a 0.1
no_frame b 0.1
redis2 kill $TEST_NGINX_FC_PORT3
--- error_log
fishchat msg: REDIS_UNAVAILABLE: message not accepted
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 28: heartbeat: the advertised address and the logged-in sessions
--- main_config
    fishchat_node hb1;
--- stream_config
    fishchat_msg_heartbeat 100ms;
--- stream_server_config
    fishchat_msg;
    fishchat_msg_advertise msg.example.com:19001;
--- scenario
redis_wait_like '^\d+$' ZSCORE ${PREFIX}{nodes}:beat msg.example.com:19001
redis_wait 1 EVAL "local t = redis.call('TIME') local s = redis.call('ZSCORE', KEYS[1], ARGV[1]) if tonumber(s) > t[1] * 1000 then return 1 end return 0" 1 ${PREFIX}{nodes}:beat msg.example.com:19001
redis_wait '{"node":"hb1","sessions":0}' HGET ${PREFIX}{nodes}:load msg.example.com:19001
connect a
send a SEND_CLIENT_ID alice
hello_login b bob
connect c
send c HELLO 1
recv c HELLO 1 * *
redis_wait '{"node":"hb1","sessions":2}' HGET ${PREFIX}{nodes}:load msg.example.com:19001
close a
redis_wait '{"node":"hb1","sessions":1}' HGET ${PREFIX}{nodes}:load msg.example.com:19001



=== TEST 29: heartbeat: the listen address is advertised by default
--- stream_config
    fishchat_msg_heartbeat 100ms;
--- stream_server_config
    fishchat_msg;
--- scenario
redis_wait_like '^\d+$' ZSCORE ${PREFIX}{nodes}:beat 127.0.0.1:$TEST_NGINX_STREAM_PORT
redis_wait_like '^\{"node":"[^"]+","sessions":0\}$' HGET ${PREFIX}{nodes}:load 127.0.0.1:$TEST_NGINX_STREAM_PORT



=== TEST 30: fishchat_msg needs fishchat_redis
--- no_redis
--- stream_server_config
    fishchat_msg;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_msg" needs "fishchat_redis"
--- no_error_log
[alert]
[error]



=== TEST 31: fishchat_msg_inbox_max 0
--- stream_server_config
    fishchat_msg;
    fishchat_msg_inbox_max 0;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_msg_inbox_max" and "fishchat_msg_inbox_ttl" must not be 0
--- no_error_log
[alert]
[error]



=== TEST 32: a bad rate
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate fast;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid rate in
--- no_error_log
[alert]
[error]



=== TEST 33: a bad burst
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 5 burst=0;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid burst in
--- no_error_log
[alert]
[error]



=== TEST 34: a bad rate parameter
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 5 bust=5;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid parameter in
--- no_error_log
[alert]
[error]



=== TEST 35: a heartbeat under 10ms
--- stream_config
    fishchat_msg_heartbeat 5ms;
--- stream_server_config
    fishchat_msg;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_msg_heartbeat" must be at least 10ms
--- no_error_log
[alert]
[error]



=== TEST 36: counters in the monitor after a scenario
--- config
    location = /s {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
monitor_wait active=0 sessions=0
monitor_mark
hello_login a alice
connect b
send b SEND_CLIENT_ID bob
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
recv b RESP_MESSAGE_P2P m1 alice *
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
recv b RESP_MESSAGE_P2P m2 alice *
send a SEND_MESSAGE_P2P bob m3 alice r3
recv a ACCEPTED r3 *
recv b RESP_MESSAGE_P2P m3 alice *
send a SEND_PING
recv a PONG
connect c
send c HELLO 1
recv c HELLO 1 * *
send c SEND_MESSAGE_P2P bob x carol
recv c ERROR NOT_LOGGED_IN *
closed c
received_bytes rx
sent_bytes tx
monitor_wait active=2 accepted=3 sessions=2 messages=3 frames_in=9 frames_out=11 bytes_in=$tx bytes_out=$rx errors=1 error.not_logged_in=1
close b
monitor_wait active=1 sessions=1 messages=3



=== TEST 37: fishchat_redis_flush_delay: commands wait for it and go together, 16k waiting go at once
Messages, acks and the inbox behave as without the delay. The debug log
shows the writes made when the delay is over, and a message of 20k
written without waiting for it.
--- main_config
    fishchat_redis_flush_delay 20ms;
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 0;
--- scenario
connect b
send b HELLO 1
recv b HELLO 1 * *
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * *
connect a
send a HELLO 1
recv a HELLO 1 * *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send_repeat a 5 SEND_MESSAGE_P2P bob "m$i" alice r$i
recv_repeat b 5 RESP_MESSAGE_P2P "m$i" alice *
ack_all b bob
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}
wait_log fishchat: redis: \d+ bytes written after the delay
set_repeat k x 20000
send a SEND_MESSAGE_P2P bob "$k" alice big
recv b RESP_MESSAGE_P2P "$k" alice *
wait_log fishchat: redis: \d+ bytes waiting, written at once
