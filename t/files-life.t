# Files (issue 15): the lifecycle (docs/files.md): what the store counts
# (blob:{<sha>}, {files}:stats, {files}:expiry), quarantine at upload and
# at download, downloads by signed link only (fishchat_files_access
# token), and the collector (fishchat_files_collect): expired files that
# no message carries are removed with their content, files a message in an
# inbox or a history carries are kept, slots never uploaded are forgotten.
#
# Blocks get, unless they say otherwise, what t/files.t's get: the HS256
# test secret, fishchat_files_url, fishchat_msg, the files location on
# servroot/html/store.
#
# Local steps:
#   files_link VAR ID EXP      $VAR is the "sig" of a download link of
#                              file ID until EXP (HMAC-SHA256 of
#                              "get\nID\nEXP" with the test secret)
#   redis_var VAR COMMAND...   $VAR is Redis' answer to COMMAND
#   wait_log_of WORDS...       wait_log with the variables of WORDS
#                              replaced
#   files_put VAR NAME TYPE    a FILE_SLOT of client a for body NAME, the
#                              PUT (201): $VAR is the file id

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;

use Digest::SHA ();
use MIME::Base64 ();

repeat_each(1);
no_shuffle();
no_root_location();

my $MAIN = <<'_EOC_';
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_files_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files;
_EOC_

my $LOC = <<'_EOC_';
        fishchat_files;
        alias $TEST_NGINX_SERVER_ROOT/html/store/;
        client_body_temp_path $TEST_NGINX_SERVER_ROOT/html/store/.tmp;
        client_max_body_size 200m;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->main_config) {
        $block->set_value('main_config', $MAIN);
    } elsif ($block->main_config !~ /\bfishchat_node\s/) {
        $block->set_value('main_config', $MAIN . $block->main_config);
    }

    if (!defined $block->stream_server_config) {
        $block->set_value('stream_server_config', "    fishchat_msg;\n");
    }

    # --- files_location: more directives of the files location
    my $more = $block->files_location // '';
    $block->set_value('config', "    location /files/ {\n$LOC$more    }\n")
        if !defined $block->config;

    $block->set_value('user_files', ">>> store/.keep\n")
        if !defined $block->user_files;
});

Test::FishChat::Steps::add_macro(files_login => <<'_EOS_');
hello_login a alice
hello_login b bob
set files http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files
_EOS_

Test::FishChat::add_step(files_link => sub {
    my ($sc, $rest) = @_;
    my ($var, $id, $exp) = $sc->tokens($rest);
    die "usage: files_link VAR ID EXP\n" if !defined $exp;
    open my $in, '<', "$ENV{TEST_NGINX_FC_KEYS}/hs.secret" or die "$!\n";
    local $/;
    (my $secret = <$in>) =~ s/\r?\n\z//;
    close $in;
    my $sig = MIME::Base64::encode_base64url(
                  Digest::SHA::hmac_sha256("get\n$id\n$exp", $secret));
    $sc->var($var, $sig);
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

Test::FishChat::add_step(files_put => sub {
    my ($sc, $rest) = @_;
    my ($var, $name, $type) = $sc->tokens($rest);
    die "usage: files_put VAR NAME TYPE\n" if !defined $type;
    Test::FishChat::Steps::run_steps($sc,
        "send a FILE_SLOT $name.bin \$${name}_len $type",
        "recv a FILE_SLOT * * * *",
        "capture a $var 0",
        "capture a ${var}_put 1",
        "http PUT \$${var}_put 201 body=$name h=Content-Type:$type");
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
--- no_error_log
[error]
[alert]
[emerg]
