# Files (issue 15), the management side (docs/files.md): FILE_DELETE on the
# msg server and the delete script every role shares
# (NGX_FISHCHAT_LUA_FILE_DELETE), the manager's endpoints of the files
# role (slots, an id's files, a file, deletion, quarantine) and the
# monitor's figures of the files location.
#
# Blocks get, unless they say otherwise:
#   main_config            fishchat_node n1; the HS256 test secret (it signs
#                          the PUT URLs); fishchat_files_url on the HTTP
#                          port
#   stream_server_config   fishchat_msg;
#   config                 location /files/ (the store in
#                          servroot/html/store), location /api/ (the
#                          manager), location /status (the monitor)
#   user_files             store/.keep
#
# The files location does not count contents in blob:{<sha256>} nor the
# node's stored bytes in {files}:stats yet (another part of issue 15): the
# blocks set them with the values the contract (docs/keyspace.md) gives
# after their uploads, so that the delete script's arithmetic is checked.
#
# Local macros:
#   files_login            alice (a) and bob (b) log in (opt-in); $files
#                          is the files URL

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;
use Test::FishChat::Manager;

repeat_each(1);
no_shuffle();
no_root_location();

my $MAIN = <<'_EOC_';
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_files_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->main_config) {
        $block->set_value('main_config', $MAIN);
    } elsif ($block->main_config !~ /\bfishchat_node\s/) {
        $block->set_value('main_config', $MAIN . $block->main_config);
    }

    if (!defined $block->stream_server_config
        && !defined $block->stream_config)
    {
        $block->set_value('stream_server_config', <<'_EOC_');
    fishchat_msg;
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location /files/ {
        fishchat_files;
        alias $TEST_NGINX_SERVER_ROOT/html/store/;
        client_body_temp_path $TEST_NGINX_SERVER_ROOT/html/store/.tmp;
        client_max_body_size 200m;
    }
    location /api/ {
        fishchat_manager;
    }
    location = /status {
        fishchat_monitor;
    }
_EOC_
    }

    if (!defined $block->user_files) {
        $block->set_value('user_files', <<'_EOC_');
>>> store/.keep
_EOC_
    }
});

Test::FishChat::Steps::add_macro(files_login => <<'_EOS_');
hello_login a alice
hello_login b bob
set files http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files
_EOS_

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: FILE_DELETE by the owner: the record, its refs and readers, its id in the owner's list and in the expiries are gone, GET is 404, the quota and the content's count go down, the last count puts the content in {files}:unlink; a stranger FORBIDDEN, an unknown id NO_SUCH_FILE (non-fatal)
--- scenario
files_login
body t 5000
send a FILE_SLOT notes.txt 5000 text/plain
recv a FILE_SLOT * * * *
capture a id 0
capture a put 1
capture a get 2
http PUT $put 201 body=t h=Content-Type:text/plain
redis_wait ready HGET ${PREFIX}file:{$id} state
redis_expect 5000 HGET ${PREFIX}files:{alice} used
redis_expect 1 SISMEMBER ${PREFIX}files:{alice}:ids $id
redis_expect * ZSCORE ${PREFIX}{files}:expiry $id
# the counts of the files location (see the top of this file)
redis SET ${PREFIX}blob:{$t_sha256} 1
redis HSET ${PREFIX}{files}:stats bytes 5000 files 1
# the keys of the file messages
redis SADD ${PREFIX}file:{$id}:readers bob
redis SADD ${PREFIX}file:{$id}:refs "p2p\nbob\nu1"
# bob is not the owner: refused, nothing changes, the session goes on
send b FILE_DELETE $id
recv b ERROR FORBIDDEN *
redis_expect ready HGET ${PREFIX}file:{$id} state
send b SEND_PING PING
recv b PONG
# the owner
send a FILE_DELETE $id
recv a FILE_DELETE $id
redis_expect 0 EXISTS ${PREFIX}file:{$id}
redis_expect 0 EXISTS ${PREFIX}file:{$id}:readers
redis_expect 0 EXISTS ${PREFIX}file:{$id}:refs
redis_expect 0 SISMEMBER ${PREFIX}files:{alice}:ids $id
redis_expect (nil) ZSCORE ${PREFIX}{files}:expiry $id
redis_expect 0 HGET ${PREFIX}files:{alice} used
redis_expect 0 EXISTS ${PREFIX}blob:{$t_sha256}
redis_expect $t_sha256 SMEMBERS ${PREFIX}{files}:unlink
redis_expect "0 0" HMGET ${PREFIX}{files}:stats bytes files
http GET $get 404
resp_json error.code NO_SUCH_FILE
http GET $get/info 404
# again, and an id that never was: NO_SUCH_FILE, non-fatal
send a FILE_DELETE $id
recv a ERROR NO_SUCH_FILE *
send a FILE_DELETE 0123456789abcdef0123456789abcdef
recv a ERROR NO_SUCH_FILE *
send a SEND_PING PING
recv a PONG
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: FILE_DELETE of a slot (never uploaded): dropped, the quota untouched; of an upload under way: FILE_BUSY (non-fatal), nothing changes; no id or a bad one: BAD_ARGS (fatal); before login NOT_LOGGED_IN; seed clients UNKNOWN_COMMAND
--- scenario
files_login
redis HSET ${PREFIX}files:{alice} used 700
send a FILE_SLOT a.txt 10 text/plain
recv a FILE_SLOT * * * *
capture a id 0
capture a get 2
send a FILE_DELETE $id
recv a FILE_DELETE $id
redis_expect 0 EXISTS ${PREFIX}file:{$id}
redis_expect 0 SISMEMBER ${PREFIX}files:{alice}:ids $id
redis_expect (nil) ZSCORE ${PREFIX}{files}:expiry $id
redis_expect 700 HGET ${PREFIX}files:{alice} used
redis_expect 0 EXISTS ${PREFIX}{files}:unlink
# an upload under way
send a FILE_SLOT b.txt 10 text/plain
recv a FILE_SLOT * * * *
capture a bid 0
redis HSET ${PREFIX}file:{$bid} state uploading
send a FILE_DELETE $bid
recv a ERROR FILE_BUSY *
redis_expect uploading HGET ${PREFIX}file:{$bid} state
redis_expect 1 SISMEMBER ${PREFIX}files:{alice}:ids $bid
send a SEND_PING PING
recv a PONG
# bad arguments
send a FILE_DELETE
recv a ERROR BAD_ARGS *
closed a
hello_login a2 alice
send a2 FILE_DELETE "a b"
recv a2 ERROR BAD_ARGS *
closed a2
hello_login a3 alice
send a3 FILE_DELETE x y
recv a3 ERROR BAD_ARGS *
closed a3
# before login
connect c
send c HELLO 1
recv c HELLO 1 * *
send c FILE_DELETE $bid
recv c ERROR NOT_LOGGED_IN *
closed c
# seed clients
connect s
send s SEND_CLIENT_ID sam
send s FILE_DELETE $bid
closed s
redis_expect uploading HGET ${PREFIX}file:{$bid} state
--- error_log
fishchat msg: UNKNOWN_COMMAND: unknown command "FILE_DELETE"
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: the same content uploaded by two ids, stored once: deleting one leaves the content served for the other and out of {files}:unlink; deleting the other puts it there
--- scenario
files_login
body t 3000 binary
send a FILE_SLOT one.bin 3000 application/octet-stream
recv a FILE_SLOT * * * *
capture a id1 0
capture a put1 1
capture a get1 2
http PUT $put1 201 body=t h=Content-Type:application/octet-stream
send b FILE_SLOT two.bin 3000 application/octet-stream
recv b FILE_SLOT * * * *
capture b id2 0
capture b put2 1
capture b get2 2
http PUT $put2 201 body=t h=Content-Type:application/octet-stream
redis_wait ready HGET ${PREFIX}file:{$id2} state
tree_count store 1
# the counts of the files location (see the top of this file)
redis SET ${PREFIX}blob:{$t_sha256} 2
redis HSET ${PREFIX}{files}:stats bytes 3000 files 2
send a FILE_DELETE $id1
recv a FILE_DELETE $id1
redis_expect 1 GET ${PREFIX}blob:{$t_sha256}
redis_expect 0 EXISTS ${PREFIX}{files}:unlink
redis_expect "3000 1" HMGET ${PREFIX}{files}:stats bytes files
redis_expect 0 HGET ${PREFIX}files:{alice} used
redis_expect 3000 HGET ${PREFIX}files:{bob} used
http GET $get1 404
http GET $get2 200
resp_body t
send b FILE_DELETE $id2
recv b FILE_DELETE $id2
redis_expect 0 EXISTS ${PREFIX}blob:{$t_sha256}
redis_expect $t_sha256 SMEMBERS ${PREFIX}{files}:unlink
redis_expect "0 0" HMGET ${PREFIX}{files}:stats bytes files
redis_expect 0 HGET ${PREFIX}files:{bob} used
http GET $get2 404
--- no_error_log
[error]
[alert]
[emerg]
