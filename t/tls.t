# TLS on the stream roles (issue 13): nginx's own "listen ... ssl" in front
# of a msg server and a gateway; frames split and joined across TLS
# records, plaintext to a TLS port, a stalled handshake, renegotiation,
# and the gateway handing TLS clients the address of a TLS msg server.
#
# Blocks get, unless they say otherwise, a plaintext msg server on the
# stream port and a TLS msg server on $TEST_NGINX_FC_PORT1 (the test CA's
# server certificate, $TEST_NGINX_FC_KEYS), in one nginx.

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Manager;

repeat_each(1);
no_shuffle();

my $TLS_MSG = <<'_EOC_';
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_handshake_timeout 1s;
        fishchat_msg;
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->main_config) {
        $block->set_value('main_config', "    fishchat_node n1;\n");
    }
    if (!defined $block->stream_config) {
        $block->set_value('stream_config', $TLS_MSG);
    }
    if (!defined $block->stream_server_config) {
        $block->set_value('stream_server_config', "    fishchat_msg;\n");
    }
});

# ask_gw NAME PORT tls|plain EXPECTED_ADDR: ask the gateway on PORT (over
# TLS or not) until it answers EXPECTED_ADDR (its heartbeat cache fills on
# a timer), bounded by the step timeout
Test::FishChat::add_step(ask_gw => sub {
    my ($sc, $rest) = @_;
    my ($name, $port, $how, $want) = $sc->tokens($rest);
    my $deadline = $sc->deadline;
    my $last = '';
    while (1) {
        my $c = $how eq 'tls'
            ? $sc->connect($name, $port, tls => 1,
                           ca => "$ENV{TEST_NGINX_FC_KEYS}/ca.pem")
            : $sc->connect($name, $port);
        $sc->send($c, frame('REQ_MSG_SERVER'));
        my $f = eval { $sc->recv($c) };
        $last = $f ? $f->{text} : $@;
        Test::FishChat::Steps::drop_client($sc, $c);
        return if $f && ($f->{cmd} // '') eq 'SELECT_MSG_SERVER_FOR_CLIENT'
                  && $f->{args}[0] eq $want;
        die "the gateway on $port ($how) answers: $last\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);   # polling the gateway, bounded
    }
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: a TLS client and a plaintext client: login and messages both ways
--- scenario
connect_tls t $TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/ca.pem
send t HELLO 1
recv t HELLO 1 n1 *
send t SEND_CLIENT_ID alice
recv t LOGIN_OK alice n1 *
hello_login p bob
send t SEND_MESSAGE_P2P bob "from TLS" alice r1
recv t ACCEPTED r1 *
recv p RESP_MESSAGE_P2P "from TLS" alice *
capture p u1 2
send p P2P_ACK bob $u1
send p SEND_MESSAGE_P2P alice "to TLS" bob r2
recv p ACCEPTED r2 *
recv t RESP_MESSAGE_P2P "to TLS" bob *
# a seed client over TLS 1.2
connect_tls s $TEST_NGINX_FC_PORT1 version=TLSv1_2
send s SEND_CLIENT_ID carol
redis_wait_like "w:n1:" HGET ${PREFIX}client:{carol} ch
send p SEND_MESSAGE_P2P carol "to seed TLS" bob r3
recv p ACCEPTED r3 *
recv s RESP_MESSAGE_P2P "to seed TLS" bob *



=== TEST 2: many frames in one write, a frame one byte at a time, a large frame over several records
--- scenario
connect_tls t $TEST_NGINX_FC_PORT1
send t HELLO 1
recv t HELLO 1 n1 *
send t SEND_CLIENT_ID alice
recv t LOGIN_OK alice n1 *
hello_login p bob
send_repeat t 50 SEND_MESSAGE_P2P bob "m$i" alice "r$i"
recv_repeat t 50 ACCEPTED "r$i" *
recv_repeat p 50 RESP_MESSAGE_P2P "m$i" alice *
send_bytewise t SEND_MESSAGE_P2P bob "bytewise" alice rb
recv t ACCEPTED rb *
recv p RESP_MESSAGE_P2P bytewise alice *
set_repeat big x 40000
send p SEND_MESSAGE_P2P alice $big bob rbig
recv p ACCEPTED rbig *
recv t RESP_MESSAGE_P2P $big bob *
send_repeat p 30 SEND_MESSAGE_P2P alice "back$i" bob "s$i"
recv_repeat t 30 RESP_MESSAGE_P2P "back$i" bob *



=== TEST 3: plaintext to the TLS port: the close, an info line; the other clients go on
--- scenario
hello_login p bob
connect_tls t $TEST_NGINX_FC_PORT1
send t HELLO 1
recv t HELLO 1 n1 *
connect_raw x $TEST_NGINX_FC_PORT1
send x HELLO 1
closed x
connect_raw y $TEST_NGINX_FC_PORT1
send y raw: GET / HTTP/1.0\r\n\r\n
closed y
wait_log \[info\].*SSL
send t SEND_CLIENT_ID alice
recv t LOGIN_OK alice n1 *
send p SEND_PING PING
recv p PONG
--- no_error_log
[error]
[alert]
[emerg]
[crit]



=== TEST 4: a stalled handshake is closed after ssl_handshake_timeout; renegotiation is refused
--- scenario_timeout: 4
--- scenario
connect_raw stall $TEST_NGINX_FC_PORT1
connect_tls r $TEST_NGINX_FC_PORT1 version=TLSv1_2
send r HELLO 1
recv r HELLO 1 n1 *
send r SEND_CLIENT_ID alice
recv r LOGIN_OK alice n1 *
tls_renegotiate r
closed r
redis_wait 0 EXISTS ${PREFIX}client:{alice}
closed stall
hello_login p bob
--- no_error_log
[error]
[alert]
[emerg]
[crit]
--- error_log
fishchat: closed before the end of its TLS handshake (timed out, or not TLS)



=== TEST 5: the gateway over TLS hands out the TLS msg server, over plaintext the plaintext one
--- stream_config
    fishchat_msg_heartbeat 100ms;
    fishchat_gateway_refresh 50ms;

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        fishchat_msg;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT2;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT3 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 5
--- scenario
ask_gw g1 $TEST_NGINX_FC_PORT3 tls 127.0.0.1:$TEST_NGINX_FC_PORT1
ask_gw g2 $TEST_NGINX_FC_PORT2 plain 127.0.0.1:$TEST_NGINX_STREAM_PORT
# several times each: never the other kind
ask_gw g3 $TEST_NGINX_FC_PORT3 tls 127.0.0.1:$TEST_NGINX_FC_PORT1
ask_gw g4 $TEST_NGINX_FC_PORT3 tls 127.0.0.1:$TEST_NGINX_FC_PORT1
ask_gw g5 $TEST_NGINX_FC_PORT2 plain 127.0.0.1:$TEST_NGINX_STREAM_PORT
ask_gw g6 $TEST_NGINX_FC_PORT2 plain 127.0.0.1:$TEST_NGINX_STREAM_PORT



=== TEST 6: the manager and the monitor on listen ... ssl: a minted token, a TLS login
--- http_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT4 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        location / {
            fishchat_manager;
        }
        location = /s {
            fishchat_monitor status;
        }
    }
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
--- stream_server_config
    listen 127.0.0.1:$TEST_NGINX_FC_PORT1 ssl;
    ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
    ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
    fishchat_msg;
    fishchat_msg_auth token;
--- scenario
api_tls on $TEST_NGINX_FC_PORT4
api 200 POST /tokens '{"id":"alice","ttl":60}'
api_capture t token
api 404 GET /clients/alice
connect_tls a $TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/ca.pem
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice $t
recv a LOGIN_OK alice n1 *
api 200 GET /clients/alice
api_json online true
api 200 GET /s?format=json
api_json node n1
--- no_error_log
[error]
[alert]
[emerg]
