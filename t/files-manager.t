# Files (issue 15), the management side (docs/files.md): FILE_DELETE on the
# msg server and the delete script every role shares
# (NGX_FISHCHAT_LUA_FILE_DELETE), the manager's endpoints of the files
# role (slots, an id's files, a file, deletion, quarantine) and the
# monitor's figures of the files location.
#
# Blocks get, unless they say otherwise, files_blocks() of
# Test::FishChat::Files (as t/files.t), and location /api/ (the manager)
# and location /mon/ (the monitor).
#
# The files location does not count contents in blob:{<sha256>} nor the
# node's stored bytes in {files}:stats yet (another part of issue 15): the
# blocks set them with the values the contract (docs/keyspace.md) gives
# after their uploads, so that the delete script's arithmetic is checked.
#
# files_login and files_put are Test::FishChat::Files' steps.

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;
use Test::FishChat::Manager;

repeat_each(1);
no_shuffle();
no_root_location();

files_blocks(locations => <<'_EOC_');
    location /api/ {
        fishchat_manager;
    }
    location /mon/ {
        fishchat_monitor;
    }
_EOC_

# sorted VAR WORD...: $VAR is the words sorted, joined by one space
Test::FishChat::add_step(sorted => sub {
    my ($sc, $rest) = @_;
    my ($var, @w) = $sc->tokens($rest);
    $sc->var($var, join ' ', sort @w);
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: FILE_DELETE by the owner: the record, its refs and readers, its id in the owner's list and in the expiries are gone, GET is 404, the quota and the content's count go down, the last count puts the content in {files}:unlink; a stranger FORBIDDEN, an unknown id NO_SUCH_FILE (non-fatal)
--- scenario
files_login
body t 5000
files_put id t text/plain name=notes.txt
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
http GET $id_get 404
resp_json error.code NO_SUCH_FILE
http GET $id_get/info 404
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
files_put id1 t application/octet-stream name=one.bin
files_put id2 t application/octet-stream client=b name=two.bin
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
http GET $id1_get 404
http GET $id2_get 200
resp_body t
send b FILE_DELETE $id2
recv b FILE_DELETE $id2
redis_expect 0 EXISTS ${PREFIX}blob:{$t_sha256}
redis_expect $t_sha256 SMEMBERS ${PREFIX}{files}:unlink
redis_expect "0 0" HMGET ${PREFIX}{files}:stats bytes files
redis_expect 0 HGET ${PREFIX}files:{bob} used
http GET $id2_get 404
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: POST /files/slots: a slot for a backend, as FILE_SLOT makes it (the PUT URL takes the upload); bad owner, name, size, type, body: 400; over fishchat_files_max_size 413 FILE_TOO_LARGE
--- scenario
files_login
api 201 POST /api/files/slots '{"owner":"alice","name":"report.pdf","size":5000,"type":"Application/PDF"}'
api_capture id id
api_capture put put_url
api_capture get get_url
api_capture exp expires
assert_like $id ^[0-9a-f]{32}$
assert_eq $get $files/$id
capture_re sig $put [?&]sig=([^&]+)$
assert_eq $put $files/$id?exp=$exp&sig=$sig
assert_near $exp $NOW+600 5
redis_expect alice HGET ${PREFIX}file:{$id} owner
redis_expect slot HGET ${PREFIX}file:{$id} state
redis_expect application/pdf HGET ${PREFIX}file:{$id} type
redis_expect report.pdf HGET ${PREFIX}file:{$id} name
redis_expect 5000 HGET ${PREFIX}file:{$id} size
redis_expect 1 SISMEMBER ${PREFIX}files:{alice}:ids $id
redis_expect $exp ZSCORE ${PREFIX}{files}:expiry $id
wait_log fishchat manager: "alice" has an upload slot for file [0-9a-f]{32}
# the upload, as with FILE_SLOT's URL; alice may delete it
body t 5000
http PUT $put 201 body=t h=Content-Type:application/pdf
resp_json id $id
redis_wait ready HGET ${PREFIX}file:{$id} state
send a FILE_DELETE $id
recv a FILE_DELETE $id
# bad input
api 400 POST /api/files/slots '{"name":"a","size":1,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api_like owner
api 400 POST /api/files/slots '{"owner":"a b","name":"a","size":1,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"../a","size":1,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","size":1,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":"10","type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":0,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":-5,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":1.5,"type":"text/plain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":1,"type":"textplain"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots '{"owner":"alice","name":"a","size":1}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/slots 'not json'
api_json error.code BAD_REQUEST
api 413 POST /api/files/slots '{"owner":"alice","name":"a","size":104857601,"type":"text/plain"}'
api_json error.code FILE_TOO_LARGE
api_like 104857600
# exactly the maximum is fine
api 201 POST /api/files/slots '{"owner":"alice","name":"a","size":104857600,"type":"text/plain"}'
api 405 GET /api/files/slots
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: POST /files/slots with fishchat_files_quota 10k: over the quota 403 QUOTA_EXCEEDED (the stored bytes and the new slot counted), up to the quota 201
--- main_config
    fishchat_files_quota 10k;
--- scenario
api 201 POST /api/files/slots '{"owner":"carol","name":"a","size":10240,"type":"text/plain"}'
api 403 POST /api/files/slots '{"owner":"carol","name":"a","size":10241,"type":"text/plain"}'
api_json error.code QUOTA_EXCEEDED
redis HSET ${PREFIX}files:{carol} used 10000
api 403 POST /api/files/slots '{"owner":"carol","name":"a","size":241,"type":"text/plain"}'
api_json error.code QUOTA_EXCEEDED
api 201 POST /api/files/slots '{"owner":"carol","name":"a","size":240,"type":"text/plain"}'
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: POST /files/slots on a node without fishchat_files_url: 409 NOT_CONFIGURED
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
--- scenario
api 409 POST /api/files/slots '{"owner":"carol","name":"a","size":10,"type":"text/plain"}'
api_json error.code NOT_CONFIGURED
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 7: GET /clients/{id}/files (the owner's files and slots, page by page; an id whose record is gone is skipped and dropped), GET /files/{id} (the record), DELETE /files/{id} (any owner's; busy 409; unknown 404)
--- scenario
files_login
body t 5000
files_put id1 t text/plain name=notes.txt
redis_wait ready HGET ${PREFIX}file:{$id1} state
api 200 GET /api/clients/alice/files
api_count files 1
api_json files.0.id $id1
api_json files.0.name notes.txt
api_json files.0.type text/plain
api_json files.0.size 5000
api_json files.0.state ready
api_json files.0.sha256 $t_sha256
api_json files.0.created *
api_json files.0.expires *
api_json cursor null
api_capture created files.0.created
assert_near $created $NOW 60
# the record
api 200 GET /api/files/$id1
api_json id $id1
api_json owner alice
api_json name notes.txt
api_json type text/plain
api_json size 5000
api_json state ready
api_json sha256 $t_sha256
api_json created $created
api_json thumb false
api_capture expires expires
assert_near $expires $NOW+2592000 60
# a slot, and an id whose record is gone
send a FILE_SLOT "b c.txt" 10 text/plain
recv a FILE_SLOT * * * *
capture a id2 0
redis SADD ${PREFIX}files:{alice}:ids 0123456789abcdef0123456789abcdef
api 200 GET /api/files/$id2
api_json state slot
api_json sha256 null
api_json name "b c.txt"
sorted both $id1 $id2
api_pages /api/clients/alice/files?count=1 files id $both
redis_expect 0 SISMEMBER ${PREFIX}files:{alice}:ids 0123456789abcdef0123456789abcdef
api 200 GET /api/clients/alice/files
api_count files 2
# nobody's files
api 200 GET /api/clients/nobody/files
api_count files 0
api 400 GET /api/clients/alice/files?count=0
api_json error.code BAD_REQUEST
api 404 GET /api/files/0123456789abcdef0123456789abcdef
api_json error.code NOT_FOUND
api 400 GET /api/files/a%7Bb
api_json error.code BAD_REQUEST
# an upload under way is not deleted
redis HSET ${PREFIX}file:{$id2} state uploading
api 409 DELETE /api/files/$id2
api_json error.code FILE_BUSY
redis HSET ${PREFIX}file:{$id2} state slot
# the manager deletes alice's file
redis SET ${PREFIX}blob:{$t_sha256} 1
api 200 DELETE /api/files/$id1
api_json id $id1
api_json deleted true
wait_log fishchat manager: file [0-9a-f]{32} deleted
redis_expect 0 EXISTS ${PREFIX}file:{$id1}
redis_expect 0 HGET ${PREFIX}files:{alice} used
redis_expect $t_sha256 SMEMBERS ${PREFIX}{files}:unlink
http GET $id1_get 404
api 404 GET /api/files/$id1
api 404 DELETE /api/files/$id1
api_json error.code NOT_FOUND
api 200 DELETE /api/files/$id2
api 200 GET /api/clients/alice/files
api_count files 0
api 405 PUT /api/files/$id2
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 8: the quarantine: POST /files/quarantine (201, then 200 when it is there already; the SHA-256 lower-cased), GET the list, DELETE /files/quarantine/{sha256} (404 when not there); bad SHA-256s 400
--- scenario
set sha 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef
set low 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
set sha2 ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
api 200 GET /api/files/quarantine
api_body '{"quarantine":[]}'
api 201 POST /api/files/quarantine "{\"sha256\":\"$sha\"}"
api_json sha256 $low
api_json quarantined true
wait_log fishchat manager: content 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef quarantined
redis_expect 1 SISMEMBER ${PREFIX}{files}:quarantine $low
api 200 POST /api/files/quarantine "{\"sha256\":\"$low\"}"
api_json quarantined true
api 201 POST /api/files/quarantine "{\"sha256\":\"$sha2\"}"
api 200 GET /api/files/quarantine
api_json quarantine "[\"$low\",\"$sha2\"]"
# bad ones
api 400 POST /api/files/quarantine '{"sha256":"0123"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/quarantine '{"sha256":"g123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/quarantine '{"sha256":1}'
api_json error.code BAD_REQUEST
api 400 POST /api/files/quarantine '{}'
api_json error.code BAD_REQUEST
api 400 DELETE /api/files/quarantine/0123
api_json error.code BAD_REQUEST
# out of the quarantine
api 200 DELETE /api/files/quarantine/$sha
api_json sha256 $low
api_json quarantined false
redis_expect 0 SISMEMBER ${PREFIX}{files}:quarantine $low
api 404 DELETE /api/files/quarantine/$low
api_json error.code NOT_FOUND
api 200 GET /api/files/quarantine
api_json quarantine "[\"$sha2\"]"
api 405 PUT /api/files/quarantine
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 9: the monitor's figures of the files location: status.json "files" (uploads, bytes, refusals, downloads, probes, failures, the probe queue, collected), the fishchat_files_* families of /metrics, the stored bytes and files of {files}:stats in the cluster view; the counts go up by what the block did (a reload may keep the zone)
--- scenario
files_login
http GET /mon/status.json 200
resp_json files.probe_queue 0
resp_json files.collected *
resp_json_var u0 files.uploads
resp_json_var b0 files.upload_bytes
resp_json_var r0 files.uploads_refused
resp_json_var d0 files.downloads
resp_json_var p0 files.probes
resp_json_var f0 files.probe_failures
# a text file (no probe), then garbage labelled image/png (probed: fails)
body t 5000
files_put id t text/plain name=notes.txt
body g 700 binary seed=7
files_put gid g image/png name=cat.png
http GET $gid_get/info 200
resp_json probe_error *
# two downloads (a HEAD too), two refusals: a used slot, a wrong size
http GET $id_get 200
http HEAD $gid_get 200
http PUT $id_put 409 body=t h=Content-Type:text/plain
body t2 10
send a FILE_SLOT other.txt 5000 text/plain
recv a FILE_SLOT * * * *
capture a oput 1
http PUT $oput 400 body=t2 h=Content-Type:text/plain
http GET /mon/status.json 200
resp_json files.uploads $u0+2
resp_json files.upload_bytes $b0+5700
resp_json files.uploads_refused $r0+2
resp_json files.downloads $d0+2
resp_json files.probes $p0+1
resp_json files.probe_failures $f0+1
resp_json files.probe_queue 0
resp_json media.streams *
http GET /mon/metrics 200
resp_like (?m)^# TYPE fishchat_files_uploads_total counter$
resp_like (?m)^# HELP fishchat_files_uploads_total \S
resp_like (?m)^fishchat_files_uploads_total\{node="n1"\} [1-9]\d*$
resp_like (?m)^# TYPE fishchat_files_upload_bytes_total counter$
resp_like (?m)^# TYPE fishchat_files_uploads_refused_total counter$
resp_like (?m)^# TYPE fishchat_files_downloads_total counter$
resp_like (?m)^# TYPE fishchat_files_probes_total counter$
resp_like (?m)^# TYPE fishchat_files_probe_failures_total counter$
resp_like (?m)^fishchat_files_probe_failures_total\{node="n1"\} [1-9]\d*$
resp_like (?m)^# TYPE fishchat_files_probe_queue gauge$
resp_like (?m)^fishchat_files_probe_queue\{node="n1"\} 0$
resp_like (?m)^# TYPE fishchat_files_collected_total counter$
# the cluster view: the stored bytes and files of every node ({files}:stats)
redis DEL ${PREFIX}{files}:stats
http GET /mon/cluster 200
resp_json redis up
resp_json files.bytes_stored 0
resp_json files.files_stored 0
redis HSET ${PREFIX}{files}:stats bytes 12345 files 3
http GET /mon/cluster 200
resp_json files.bytes_stored 12345
resp_json files.files_stored 3
# the dashboard has the card
http GET /mon/ 200
resp_like id="files-uploads"
--- no_error_log
[error]
[alert]
[emerg]
