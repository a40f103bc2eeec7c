# Files (issue 15): the lifecycle (docs/files.md): what the store counts
# (blob:{<sha>}, {files}:stats, {files}:expiry), quarantine at upload and
# at download, downloads by signed link only (fishchat_files_access
# token), and the collector (fishchat_files_collect): expired files that
# no message carries are removed with their content, files a message in an
# inbox or a history carries are kept, slots never uploaded are forgotten.
#
# Blocks get, unless they say otherwise, what t/files.t's get
# (files_blocks() of Test::FishChat::Files: the HS256 test secret,
# fishchat_files_url, fishchat_msg, the files location on
# servroot/html/store, with a block's --- files_location directives).
# files_login and files_put are Test::FishChat::Files' steps.
#
# Local steps:
#   files_link VAR ID EXP      $VAR is the "sig" of a download link of
#                              file ID until EXP (HMAC-SHA256 of
#                              "get\nID\nEXP" with the test secret)
#   redis_var VAR COMMAND...   $VAR is Redis' answer to COMMAND
#   wait_log_of WORDS...       wait_log with the variables of WORDS
#                              replaced
#   body_slice NEW NAME OFF LEN
#                              body NEW is LEN bytes of body NAME from OFF
#   put_sig VAR ID SIZE TYPE EXP
#                              $VAR is the "sig" of a PUT URL of that slot
#                              until EXP

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;

use Digest::SHA ();
use MIME::Base64 ();

repeat_each(1);
no_shuffle();
no_root_location();

files_blocks();

# the base64url HMAC-SHA256 of DATA with the test secret
sub _sig {
    my ($data) = @_;
    open my $in, '<', "$ENV{TEST_NGINX_FC_KEYS}/hs.secret" or die "$!\n";
    local $/;
    (my $secret = <$in>) =~ s/\r?\n\z//;
    close $in;
    return MIME::Base64::encode_base64url(
               Digest::SHA::hmac_sha256($data, $secret));
}

Test::FishChat::add_step(files_link => sub {
    my ($sc, $rest) = @_;
    my ($var, $id, $exp) = $sc->tokens($rest);
    die "usage: files_link VAR ID EXP\n" if !defined $exp;
    $sc->var($var, _sig("get\n$id\n$exp"));
});

Test::FishChat::add_step(redis_var => sub {
    my ($sc, $rest) = @_;
    my ($var, @cmd) = $sc->tokens($rest);
    die "usage: redis_var VAR COMMAND...\n" if !@cmd;
    $sc->var($var, Test::FishChat::redis(@cmd) // '');
});

Test::FishChat::add_step(wait_log_of => sub {
    my ($sc, $rest) = @_;
    Test::FishChat::Steps::run_steps($sc,
        'wait_log ' . join(' ', $sc->tokens($rest)));
});

Test::FishChat::add_step(body_slice => sub {
    my ($sc, $rest) = @_;
    my ($new, $name, $off, $len) = $sc->tokens($rest);
    die "usage: body_slice NEW NAME OFFSET LEN\n" if !defined $len;
    Test::FishChat::Files::_set_body($sc, $new,
        substr(Test::FishChat::Files::_body($sc, $name), $off, $len));
});

Test::FishChat::add_step(put_sig => sub {
    my ($sc, $rest) = @_;
    my ($var, $id, $size, $type, $exp) = $sc->tokens($rest);
    die "usage: put_sig VAR ID SIZE TYPE EXP\n" if !defined $exp;
    $sc->var($var, _sig("put\n$id\n$size\n$type\n$exp"));
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: what the store counts: the same content twice is one blob counted twice and its bytes once; each file's expiry is in {files}:expiry; no TTL on a stored record
--- scenario
files_login
body t 3000
files_put x t text/plain
files_put y t text/plain
redis_expect 2 GET ${PREFIX}blob:{$t_sha256}
redis_expect 2 HGET ${PREFIX}{files}:stats files
redis_expect 3000 HGET ${PREFIX}{files}:stats bytes
redis_expect 6000 HGET ${PREFIX}files:{alice} used
redis_expect -1 TTL ${PREFIX}file:{$x}
redis_var ex HGET ${PREFIX}file:{$x} expires
redis_expect $ex ZSCORE ${PREFIX}{files}:expiry $x
assert_near $ex $NOW+2592000 5
redis_expect 1 SISMEMBER ${PREFIX}files:{alice}:ids $y
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: quarantine: a stored content is refused at download (410, info too) and at upload (403: the slot is free again, nothing counted)
--- scenario
files_login
body q 2000 binary
files_put x q application/octet-stream
http GET $files/$x 200
redis SADD ${PREFIX}{files}:quarantine $q_sha256
http GET $files/$x 410
resp_json error.code QUARANTINED
http GET $files/$x/info 410
http HEAD $files/$x 410
send a FILE_SLOT again.bin 2000 application/octet-stream
recv a FILE_SLOT * * * *
capture a z 0
capture a zput 1
http PUT $zput 403 body=q h=Content-Type:application/octet-stream
resp_json error.code QUARANTINED
redis_wait slot HGET ${PREFIX}file:{$z} state
redis_expect 1 GET ${PREFIX}blob:{$q_sha256}
redis_expect 2000 HGET ${PREFIX}files:{alice} used
tree_count store 1
# out of quarantine, it is served again
redis SREM ${PREFIX}{files}:quarantine $q_sha256
http GET $files/$x 200
resp_body q
--- error_log eval
[qr/\[info\] .*QUARANTINED: file [0-9a-f]{32}: its content is quarantined/,
 qr/\[info\] .*QUARANTINED: file [0-9a-f]{32}: its content \(sha256 [0-9a-f]{64}\) is quarantined/]
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: fishchat_files_access token: the 201 gives a signed link; a download, its info and its thumbnail need one for that id, not expired; the unsigned URL is refused
--- main_config
    fishchat_files_access token;
    fishchat_files_link_ttl 2h;
--- scenario
files_login
body t 1200
files_put x t text/plain
resp_json_var url url
assert_like $url ^http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]{43}$
capture_re exp $url [?&]exp=(\d+)
assert_near $exp $NOW+7200 5
http GET $url 200
resp_body t
http GET $files/$x 403
resp_json error.code FORBIDDEN
# another file's link does not open this one
body u 10
files_put y u text/plain
resp_json_var url2 url
capture_re q2 $url2 \?(.*)$
http GET $files/$x?$q2 403
# a link of this id that expired long ago
set past 1700000000
files_link old $x $past
http GET $files/$x?exp=$past&sig=$old 403
resp_json error.code LINK_EXPIRED
# a tampered expiry
set later $exp
files_link good $x $later
http GET $files/$x?exp=$later&sig=$good 200
http GET $files/$x?exp=9$later&sig=$good 403
http GET $files/$x/info?exp=$later&sig=$good 200
resp_json id $x
http GET $files/$x/thumb?exp=$later&sig=$good 404
http GET $files/$x/thumb 403
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: the collector: an expired file no message carries goes with its content; one a live inbox message or a topic's history carries stays until that message is gone; a slot never uploaded is forgotten
--- main_config
    fishchat_files_slot_ttl 1s;
--- files_location
        fishchat_files_collect 1s;
--- scenario_timeout: 15
--- scenario
files_login
body a 100
body b 200
body c 300
files_put xa a text/plain
files_put xb b text/plain
files_put xc c text/plain
# b is in bob's inbox, c in the history of topic room (message 5 of 5)
redis HSET ${PREFIX}inbox:{bob}:m u-1 frame
redis SADD ${PREFIX}file:{$xb}:refs "p2p\nbob\nu-1"
redis HSET ${PREFIX}topic:{room} seq 5
redis RPUSH ${PREFIX}topic:{room}:h m1 m2 m3 m4 m5
redis SADD ${PREFIX}file:{$xc}:refs "topic\nroom\n5"
# the three expire now (as after fishchat_files_ttl)
redis ZADD ${PREFIX}{files}:expiry 0 $xa 0 $xb 0 $xc
# a slot never uploaded
send a FILE_SLOT never.bin 10 text/plain
recv a FILE_SLOT * * * *
capture a xs 0
# a is removed, with its content
redis_wait 0 EXISTS ${PREFIX}file:{$xa}
redis_wait 0 EXISTS ${PREFIX}blob:{$a_sha256}
redis_wait 0 SISMEMBER ${PREFIX}{files}:unlink $a_sha256
capture_re da $a_sha256 ^(..)
wait_log_of content $a_sha256 is named by no file: unlinked
tree_count store 2
redis_expect 500 HGET ${PREFIX}files:{alice} used
redis_expect 0 SISMEMBER ${PREFIX}files:{alice}:ids $xa
redis_wait (nil) ZSCORE ${PREFIX}{files}:expiry $xs
# b and c are kept while carried
wait_log_of file $xb is carried by a message: kept
redis_expect ready HGET ${PREFIX}file:{$xb} state
redis_expect ready HGET ${PREFIX}file:{$xc} state
http GET $files/$xb 200
# the inbox message is acknowledged, the history moves on by 5 messages
redis HDEL ${PREFIX}inbox:{bob}:m u-1
redis HSET ${PREFIX}topic:{room} seq 10
# kept files are asked again after fishchat_files_ttl (at most a day): now
redis ZADD ${PREFIX}{files}:expiry 0 $xb 0 $xc
redis_wait 0 EXISTS ${PREFIX}file:{$xb}
redis_wait 0 EXISTS ${PREFIX}file:{$xc}
wait_log_of content $b_sha256 is named by no file: unlinked
wait_log_of content $c_sha256 is named by no file: unlinked
redis_expect 0 SCARD ${PREFIX}{files}:unlink
tree_count store 0
redis_expect 0 HGET ${PREFIX}{files}:stats files
redis_expect 0 HGET ${PREFIX}{files}:stats bytes
redis_expect 0 HGET ${PREFIX}files:{alice} used
# a content listed to unlink that is on no store: forgotten all the same
set gone 00000000000000000000000000000000000000000000000000000000000000aa
redis SADD ${PREFIX}{files}:unlink $gone
redis_wait 0 SISMEMBER ${PREFIX}{files}:unlink $gone
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: a resumable upload: chunks with Content-Range (202 and the bytes received); "bytes */N" asks; a chunk elsewhere is 409 WRONG_OFFSET; a chunk broken off is sent again; the last one stores the whole (201); a chunk may continue a partial upload past the URL's expiry, not start one
--- scenario
files_login
body big 300000 binary
body_slice c1 big 0 100000
body_slice c2 big 100000 100000
body_slice c3 big 200000 100000
send a FILE_SLOT big.bin 300000 application/octet-stream
recv a FILE_SLOT * * * *
capture a id 0
capture a put 1
set ct h=Content-Type:application/octet-stream
# an expired URL of the same slot (signed as the server would)
set past 1700000000
put_sig old $id 300000 application/octet-stream $past
http PUT $files/$id?exp=$past&sig=$old 403 body=c1 "h=Content-Range:bytes 0-99999/300000" $ct
resp_json error.code SLOT_EXPIRED
http PUT $put 202 body=c1 "h=Content-Range:bytes 0-99999/300000" $ct
resp_json id $id
resp_json received 100000
resp_json size 300000
redis_expect partial HGET ${PREFIX}file:{$id} state
redis_expect 100000 HGET ${PREFIX}file:{$id} received
http GET $files/$id 404
http PUT $put 202 "h=Content-Range:bytes */300000" length=0
resp_json received 100000
# elsewhere than the bytes received; a whole PUT of a partial upload
http PUT $put 409 body=c3 "h=Content-Range:bytes 200000-299999/300000" $ct
resp_json error.code WRONG_OFFSET
http PUT $put 409 body=big $ct
resp_json error.code SLOT_USED
# bad ranges: another size, last before first, past the end, a body
# of another length, no "bytes"
http PUT $put 400 body=c2 "h=Content-Range:bytes 100000-199999/300001" $ct
http PUT $put 400 body=c2 "h=Content-Range:bytes 199999-100000/300000" $ct
http PUT $put 400 body=c2 "h=Content-Range:bytes 100000-300000/300000" $ct
http PUT $put 400 body=c1 "h=Content-Range:bytes 100000-199998/300000" $ct
http PUT $put 400 body=c2 "h=Content-Range:100000-199999/300000" $ct
# the second chunk breaks off after 5000 bytes: nothing of it counts
http_open k PUT $put part=5000 body=c2 "h=Content-Range:bytes 100000-199999/300000" $ct
redis_wait uploading HGET ${PREFIX}file:{$id} state
http_close k
redis_wait partial HGET ${PREFIX}file:{$id} state
redis_expect 100000 HGET ${PREFIX}file:{$id} received
# sent again whole, with the expired URL: the upload is partial already
http PUT $files/$id?exp=$past&sig=$old 202 body=c2 "h=Content-Range:bytes 100000-199999/300000" $ct
resp_json received 200000
http PUT $put 201 body=c3 "h=Content-Range:bytes 200000-299999/300000" $ct
resp_json sha256 $big_sha256
resp_json size 300000
redis_wait ready HGET ${PREFIX}file:{$id} state
http GET $files/$id 200
resp_body big
tree_count store 1
http PUT $put 409 body=c1 "h=Content-Range:bytes 0-99999/300000" $ct
resp_json error.code SLOT_USED
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: the collector removes the partial file of an upload whose slot is gone, and keeps one still under way
--- files_location
        fishchat_files_collect 1s;
--- scenario
files_login
body big 20000 binary
body_slice c1 big 0 5000
send a FILE_SLOT big.bin 20000 application/octet-stream
recv a FILE_SLOT * * * *
capture a id 0
capture a put 1
http PUT $put 202 body=c1 "h=Content-Range:bytes 0-4999/20000" h=Content-Type:application/octet-stream
file_sha store/.partial/$id $c1_sha256
send a FILE_SLOT other.bin 20000 application/octet-stream
recv a FILE_SLOT * * * *
capture a id2 0
capture a put2 1
http PUT $put2 202 body=c1 "h=Content-Range:bytes 0-4999/20000" h=Content-Type:application/octet-stream
# the first one's slot is gone (its life ended), both are due: the
# other one first (the lower score), so it is judged when the first goes
redis DEL ${PREFIX}file:{$id}
redis ZADD ${PREFIX}{files}:expiry 1 $id 0 $id2
wait_log_of the unfinished upload of file $id is past its slot: removed
redis_wait (nil) ZSCORE ${PREFIX}{files}:expiry $id
# the other is asked again when its record's life ends (10 min)
redis_var due ZSCORE ${PREFIX}{files}:expiry $id2
assert_near $due $NOW+600 10
redis_expect partial HGET ${PREFIX}file:{$id2} state
file_sha store/.partial/$id2 $c1_sha256
--- no_error_log
[error]
[alert]
[emerg]
