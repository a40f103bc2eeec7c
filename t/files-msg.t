# Files (issue 15): file messages (docs/files.md, "File messages"):
# SEND_FILE_P2P and SEND_FILE_TOPIC of an uploaded file, each recipient's
# own frame (RESP_FILE_P2P / RESP_FILE_TOPIC for opt-in clients, a text
# naming the file and its URL for seed clients) live, from the inbox and
# from a topic's history, the file's readers and references in Redis, and
# FILE_URL.
#
# Blocks get, unless they say otherwise, files_blocks() of
# Test::FishChat::Files (as t/files.t) with client_max_body_size 10m.
#
# Local macros:
#   files_up               files_login (Test::FishChat::Files), and
#                          carol (c) logs in (opt-in); alice uploads
#                          notes.txt (500 bytes of text/plain, files_put):
#                          $id, its sha256 $t_sha256

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;

repeat_each(1);
no_shuffle();
no_root_location();

files_blocks(body_max => '10m');

Test::FishChat::Steps::add_macro(files_up => <<'_EOS_');
files_login
hello_login c carol
body t 500
files_put id t text/plain name=notes.txt
resp_json sha256 $t_sha256
_EOS_

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: SEND_FILE_P2P to an opt-in client: ACCEPTED with the ref, RESP_FILE_P2P with the file's fields, its URL and its info; the reader and the reference in Redis; P2P_ACK takes it from the inbox; a seed client gets a text; an offline one gets it at its login
--- scenario
files_up
send a SEND_FILE_P2P bob $id alice r1
recv a ACCEPTED r1 *
capture a uuid 1
recv b RESP_FILE_P2P $id alice $uuid notes.txt text/plain 500 $files/$id *
capture b info 7
capture_re cr $info "created":(\d+)
capture_re ex $info "expires":(\d+)
assert_eq $info "{\"id\":\"$id\",\"name\":\"notes.txt\",\"type\":\"text/plain\",\"size\":500,\"sha256\":\"$t_sha256\",\"created\":$cr,\"expires\":$ex}"
# the info is the files location's
http GET $files/$id/info 200
resp_json id $id
resp_json sha256 $t_sha256
resp_json created $cr
resp_json expires $ex
# the URL serves the file
http GET $files/$id 200
resp_body t
# Redis: the reader, the reference, the message in bob's inbox (from
# "{file}"), until bob acknowledges it
redis_expect 1 SISMEMBER ${PREFIX}file:{$id}:readers bob
redis_expect 1 SISMEMBER ${PREFIX}file:{$id}:refs "p2p\nbob\n$uuid"
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}
send b P2P_ACK bob $uuid
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}
# a seed client: a message of alice naming the file and its URL
connect s
send s SEND_CLIENT_ID sam
redis_wait 1 EXISTS ${PREFIX}client:{sam}
send a SEND_FILE_P2P sam $id alice
recv a ACCEPTED "" *
capture a uuid2 1
recv s RESP_MESSAGE_P2P "alice sent a file: notes.txt (text/plain, 500 bytes) $files/$id" alice $uuid2
send s P2P_ACK sam $uuid2
redis_wait 0 EXISTS ${PREFIX}inbox:{sam}
# eve is offline: the file waits in her inbox, and comes at her login,
# and again at the next one until acknowledged
send a SEND_FILE_P2P eve $id alice r3
recv a ACCEPTED r3 *
capture a uuid3 1
redis_expect 1 ZCARD ${PREFIX}inbox:{eve}
hello_login e eve
recv e RESP_FILE_P2P $id alice $uuid3 notes.txt text/plain 500 $files/$id $info
close e
redis_wait 0 EXISTS ${PREFIX}client:{eve}
hello_login e2 eve
recv e2 RESP_FILE_P2P $id alice $uuid3 notes.txt text/plain 500 $files/$id $info
send e2 P2P_ACK eve $uuid3
redis_wait 0 EXISTS ${PREFIX}inbox:{eve}
# carol got nothing
no_frame c
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: refusals: someone else's file FORBIDDEN, an unknown id and a slot not uploaded NO_SUCH_FILE (all non-fatal, nothing sent); a bad file id or "from" (fatal); seed senders UNKNOWN_COMMAND
--- scenario
files_up
send b SEND_FILE_P2P carol $id bob r1
recv b ERROR FORBIDDEN *
send b SEND_FILE_P2P carol 0123456789abcdef0123456789abcdef bob r2
recv b ERROR NO_SUCH_FILE *
send b FILE_SLOT later.bin 10 application/octet-stream
recv b FILE_SLOT * * * *
capture b slot 0
send b SEND_FILE_P2P carol $slot bob r3
recv b ERROR NO_SUCH_FILE *
send b CREATE_TOPIC room
recv b TOPIC_CREATED room
send b SEND_FILE_TOPIC room $slot r4
recv b ERROR NO_SUCH_FILE *
send b SEND_FILE_TOPIC room $id r5
recv b ERROR FORBIDDEN *
# nothing was sent, nobody became a reader
send b SEND_PING PING
recv b PONG
no_frame c
redis_expect 0 EXISTS ${PREFIX}file:{$id}:readers
redis_expect 0 EXISTS ${PREFIX}inbox:{carol}
# a topic alice is no member of: NOT_MEMBER, as SEND_MESSAGE_TOPIC
send a SEND_FILE_TOPIC room $id r6
recv a ERROR NOT_MEMBER *
send a SEND_FILE_TOPIC nosuch $id r7
recv a ERROR NO_SUCH_TOPIC *
# fatal: a file id that is not 32 hex digits, another "from", too few
# arguments
send a SEND_FILE_P2P bob 0123 alice
recv a ERROR BAD_ARGS *
closed a
hello_login a2 alice
send a2 SEND_FILE_P2P bob $id bob
recv a2 ERROR FORBIDDEN *
closed a2
hello_login a3 alice
send a3 SEND_FILE_TOPIC room
recv a3 ERROR BAD_ARGS *
closed a3
# seed clients: unknown commands, the close
connect s
send s SEND_CLIENT_ID sam
send s SEND_FILE_P2P bob $id sam
closed s
connect s2
send s2 SEND_CLIENT_ID sam
send s2 FILE_URL $id
closed s2
--- error_log
fishchat msg: UNKNOWN_COMMAND: unknown command "SEND_FILE_P2P"
fishchat msg: UNKNOWN_COMMAND: unknown command "FILE_URL"
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: SEND_FILE_TOPIC: opt-in members get RESP_FILE_TOPIC, seed members a text, the sender its ACCEPTED and its own copy; the reader and the reference (sequence number) in Redis; offline members find it in the history at their login
--- scenario
files_up
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
connect s
send s SEND_CLIENT_ID sam
send s JOIN_TOPIC room sam
recv s LOCATE_TOPIC_MSG_ADDR * room
# eve (opt-in) and erin (seed) are members, offline while it happens
room_offline
send a SEND_FILE_TOPIC room $id t1
recv_any a ACCEPTED t1 * | RESP_FILE_TOPIC room $id alice * notes.txt text/plain 500 $files/$id *
recv b RESP_FILE_TOPIC room $id alice * notes.txt text/plain 500 $files/$id *
capture b uuid 3
capture b info 8
assert_like $info ^\{"id":"[0-9a-f]{32}","name":"notes\.txt","type":"text/plain","size":500,"sha256":"[0-9a-f]{64}","created":\d+,"expires":\d+\}$
recv s RESP_MESSAGE_TOPIC room "alice sent a file: notes.txt (text/plain, 500 bytes) $files/$id" alice
no_frame c
redis_expect 1 SISMEMBER ${PREFIX}file:{$id}:readers topic:room
redis_wait 1 SISMEMBER ${PREFIX}file:{$id}:refs "topic\nroom\n1"
# an ordinary message after it
send a SEND_MESSAGE_TOPIC room hello
recv_any a ACCEPTED "" * | RESP_MESSAGE_TOPIC room hello alice *
recv b RESP_MESSAGE_TOPIC room hello alice *
recv s RESP_MESSAGE_TOPIC room hello alice
# the offline members catch up from the history
hello_login e2 eve
recv e2 RESP_FILE_TOPIC room $id alice $uuid notes.txt text/plain 500 $files/$id $info
recv e2 RESP_MESSAGE_TOPIC room hello alice *
connect se2
send se2 SEND_CLIENT_ID erin
recv se2 RESP_MESSAGE_TOPIC room "alice sent a file: notes.txt (text/plain, 500 bytes) $files/$id" alice
recv se2 RESP_MESSAGE_TOPIC room hello alice
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: FILE_URL: the owner, a reader and a member of a topic that is a reader get the URLs; a stranger FORBIDDEN, an unknown file NO_SUCH_FILE (non-fatal); FILE_SLOT's get URL
--- scenario
files_up
send a FILE_URL $id
recv a FILE_URL $id $files/$id $files/$id/info $files/$id/thumb
# bob is no reader yet
send b FILE_URL $id
recv b ERROR FORBIDDEN *
send a SEND_FILE_P2P bob $id alice
recv a ACCEPTED "" *
recv b RESP_FILE_P2P $id alice * * * * * *
send b FILE_URL $id
recv b FILE_URL $id $files/$id $files/$id/info $files/$id/thumb
# carol, through a topic
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send c FILE_URL $id
recv c ERROR FORBIDDEN *
send c JOIN_TOPIC room carol
recv c LOCATE_TOPIC_MSG_ADDR * room
send a SEND_FILE_TOPIC room $id
recv_any a ACCEPTED "" * | RESP_FILE_TOPIC room $id alice * * * * * *
recv c RESP_FILE_TOPIC room $id alice * * * * * *
send c FILE_URL $id
recv c FILE_URL $id $files/$id $files/$id/info $files/$id/thumb
# carol leaves: no more
send c LEAVE_TOPIC room carol
recv c TOPIC_LEFT room
send c FILE_URL $id
recv c ERROR FORBIDDEN *
# a stranger, an unknown id
hello_login d dave
send d FILE_URL $id
recv d ERROR FORBIDDEN *
send d FILE_URL 0123456789abcdef0123456789abcdef
recv d ERROR NO_SUCH_FILE *
send d SEND_PING PING
recv d PONG
http GET $files/$id/info 200
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: fishchat_files_access token: the URLs of FILE_SLOT, the delivered messages (opt-in and seed, 1:1 and topic, live and from the inbox) and FILE_URL carry exp and sig, made when the frame is written
--- main_config
    fishchat_files_access token;
    fishchat_files_link_ttl 600;
--- scenario
files_login
body t 500
send a FILE_SLOT notes.txt 500 text/plain
recv_like a ^FILE_SLOT [0-9a-f]{32} \S+ http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]+=* \d+$
capture a id 0
capture a put 1
http PUT $put 201 body=t h=Content-Type:text/plain
send a SEND_FILE_P2P bob $id alice
recv a ACCEPTED "" *
recv_like b ^RESP_FILE_P2P [0-9a-f]{32} alice \S+ notes\.txt text/plain 500 http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]+=* "\{
capture b url 6
capture_re exp $url [?&]exp=(\d+)
assert_near $exp $NOW+600 5
http GET $url 200
resp_body t
# the files location asks for the link: the bare URL is refused
http GET $files/$id 403
resp_json error.code FORBIDDEN
# a seed client, from the inbox
send a SEND_FILE_P2P sam $id alice
recv a ACCEPTED "" *
connect s
send s SEND_CLIENT_ID sam
recv_like s ^RESP_MESSAGE_P2P "alice sent a file: notes\.txt \(text/plain, 500 bytes\) http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]+=*" alice \S+$
# a topic
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send a SEND_FILE_TOPIC room $id
recv_any a ACCEPTED "" * | RESP_FILE_TOPIC room $id alice * * * * * *
recv_like b ^RESP_FILE_TOPIC room [0-9a-f]{32} alice \S+ notes\.txt text/plain 500 http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]+=* "\{
# FILE_URL
send b FILE_URL $id
recv_like b ^FILE_URL [0-9a-f]{32} http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]+=* http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}/info\?exp=\d+&sig=\S+ http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}/thumb\?exp=\d+&sig=\S+$
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: a file message counts against fishchat_msg_rate and fills an inbox like any other message: RATE_LIMITED, INBOX_FULL (non-fatal); the reference of the refused one is noted but dead (its uuid is in no inbox)
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 3 burst=3;
    fishchat_msg_inbox_max 2;
--- scenario
files_up
send a SEND_MESSAGE_P2P bob m1 alice r1
send a SEND_FILE_P2P bob $id alice r2
send a SEND_FILE_P2P bob $id alice r3
send a SEND_FILE_P2P bob $id alice r4
recv_any a ACCEPTED r1 * | ACCEPTED r2 * | ERROR INBOX_FULL * | ERROR RATE_LIMITED *
recv b RESP_MESSAGE_P2P m1 alice *
recv b RESP_FILE_P2P $id alice * notes.txt text/plain 500 $files/$id *
send a SEND_PING PING
recv a PONG
no_frame b
redis_expect 2 ZCARD ${PREFIX}inbox:{bob}
redis_expect 2 SCARD ${PREFIX}file:{$id}:refs
--- error_log
fishchat msg: RATE_LIMITED: over 3 messages a second while
fishchat msg: INBOX_FULL
--- no_error_log
[error]
[alert]
[emerg]
