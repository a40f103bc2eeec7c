# A large inbox goes out page by page, as the client reads it: never more
# than half of fishchat_msg_send_buffer at once, so a client whose inbox is
# larger than its send buffer is never closed as a slow reader for it.

use Test::FishChat;
use Test::FishChat::Msg;

repeat_each(2);

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: 200 messages of 1k to an offline client with a 4k send buffer
The recipient's socket buffers are small (sndbuf=4k on the listen, a 2k
receive buffer on the client), so without paging the inbox would overflow
the send buffer at login and close the session as a slow reader. All
arrive, in order, none twice; the session stays open; acked, the inbox is
empty.
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=4k;
        fishchat_msg;
        fishchat_msg_send_buffer 4k;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 0;
--- scenario_timeout: 10
--- scenario
set_repeat k x 1000
connect a
send a HELLO 1
recv a HELLO 1 * *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send_repeat a 200 SEND_MESSAGE_P2P bob "$i $k" alice r$i
redis_wait 200 ZCARD ${PREFIX}inbox:{bob}
connect_tiny b $TEST_NGINX_FC_PORT1
send b SEND_CLIENT_ID bob
recv_repeat b 200 RESP_MESSAGE_P2P "$i $k" alice *
no_frame b 0.3
ack_all b bob
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}
send b SEND_PING
send a SEND_MESSAGE_P2P bob "after the inbox" alice z
recv b RESP_MESSAGE_P2P "after the inbox" alice *



=== TEST 2: messages sent while the inbox is still paging come after it, once each
--- stream_server_config
    fishchat_msg;
    fishchat_msg_send_buffer 4k;
    fishchat_msg_rate 0;
--- scenario_timeout: 10
--- scenario
set_repeat k y 1000
connect a
send a HELLO 1
recv a HELLO 1 * *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send_repeat a 30 SEND_MESSAGE_P2P bob "$i $k" alice r$i
redis_wait 30 ZCARD ${PREFIX}inbox:{bob}
connect b
send b SEND_CLIENT_ID bob
send_repeat a 5 SEND_MESSAGE_P2P bob "live $i" alice l$i
recv_repeat b 30 RESP_MESSAGE_P2P "$i $k" alice *
recv_repeat b 5 RESP_MESSAGE_P2P "live $i" alice *
no_frame b 0.3
