# Private topics (issue 13): CREATE_TOPIC <name> private, TOPIC_INVITE and
# TOPIC_REMOVE by the creator, JOIN_TOPIC of a private topic refused
# without an invitation.

use Test::FishChat;
use Test::FishChat::Msg;

repeat_each(1);
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->stream_server_config) {
        $block->set_value('stream_server_config', "    fishchat_msg;\n");
    }
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: a non-member's JOIN_TOPIC is FORBIDDEN (opt-in: non-fatal; seed: the close); open topics as before
--- scenario
hello_login a alice
send a CREATE_TOPIC club private
recv a TOPIC_CREATED club
hello_login b bob
send b JOIN_TOPIC club bob
recv b ERROR FORBIDDEN *
send b SEND_MESSAGE_TOPIC club "let me in"
recv b ERROR NOT_MEMBER *
send b SEND_PING PING
recv b PONG
connect s
send s SEND_CLIENT_ID carol
send s JOIN_TOPIC club carol
closed s
send a CREATE_TOPIC lobby open
recv a TOPIC_CREATED lobby
send b JOIN_TOPIC lobby bob
recv b LOCATE_TOPIC_MSG_ADDR * lobby
send a CREATE_TOPIC hall
recv a TOPIC_CREATED hall
send b JOIN_TOPIC hall bob
recv b LOCATE_TOPIC_MSG_ADDR * hall
send a SEND_MESSAGE_TOPIC club "members only" r1
recv_any a ACCEPTED r1 * | RESP_MESSAGE_TOPIC club "members only" alice *
no_frame b



=== TEST 2: only the creator invites and removes; an invited member joins and receives, a removed one stops receiving
--- scenario
hello_login a alice
hello_login b bob
hello_login c carol
send a CREATE_TOPIC club private
recv a TOPIC_CREATED club
send b TOPIC_INVITE club carol
recv b ERROR FORBIDDEN *
send b SEND_PING PING
recv b PONG
send a TOPIC_INVITE club bob
recv a TOPIC_INVITED club bob
send b JOIN_TOPIC club bob
recv b LOCATE_TOPIC_MSG_ADDR * club
send a SEND_MESSAGE_TOPIC club "hello members" r1
recv_any a ACCEPTED r1 * | RESP_MESSAGE_TOPIC club "hello members" alice *
recv b RESP_MESSAGE_TOPIC club "hello members" alice *
send c JOIN_TOPIC club carol
recv c ERROR FORBIDDEN *
send b TOPIC_REMOVE club alice
recv b ERROR FORBIDDEN *
send a TOPIC_REMOVE club bob
recv a TOPIC_REMOVED club bob
send a SEND_MESSAGE_TOPIC club "after the removal" r2
recv_any a ACCEPTED r2 * | RESP_MESSAGE_TOPIC club "after the removal" alice *
no_frame b 0.5
send b SEND_MESSAGE_TOPIC club "still here?" r3
recv b ERROR NOT_MEMBER *
send b JOIN_TOPIC club bob
recv b ERROR FORBIDDEN *



=== TEST 3: an invited member receives in the live session it already has, without a JOIN_TOPIC
--- scenario
hello_login a alice
hello_login b bob
send a CREATE_TOPIC club private
recv a TOPIC_CREATED club
send a TOPIC_INVITE club bob
recv a TOPIC_INVITED club bob
redis_wait 1 HEXISTS ${PREFIX}topic:{club}:members bob
send a SEND_MESSAGE_TOPIC club "you are in" r1
recv_any a ACCEPTED r1 * | RESP_MESSAGE_TOPIC club "you are in" alice *
recv b RESP_MESSAGE_TOPIC club "you are in" alice *
send b SEND_MESSAGE_TOPIC club "thanks" r2
recv_any b ACCEPTED r2 * | RESP_MESSAGE_TOPIC club thanks bob *
recv a RESP_MESSAGE_TOPIC club thanks bob *
send a TOPIC_REMOVE club bob
recv a TOPIC_REMOVED club bob
send a SEND_MESSAGE_TOPIC club "gone" r3
recv_any a ACCEPTED r3 * | RESP_MESSAGE_TOPIC club gone alice *
no_frame b 0.5
