# Self-tests of t/lib/Test/FishChat.pm against a real nginx (stream core
# modules only: return, proxy_pass) and a small relay server forked here.

use Test::FishChat;
use Test::FishChat::Steps;
use Test::FishChat::Media;

use File::Spec;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Time::HiRes ();

repeat_each(2);
no_shuffle();

# --------------------------------------------------------------------------
# the relay: a toy chat server speaking the seed wire protocol
#
#   SEND_CLIENT_ID id [ack]      register; with "ack" reply LOGGED_IN id
#   SEND_MESSAGE_P2P to msg from deliver RESP_MESSAGE_P2P msg from uuid to "to"
#   ECHO args...                 reply ECHO args...
#   RAWBODY text                 reply a frame whose body is text verbatim
#   PARTIAL                      reply a frame header and 3 bytes, then close
#   BYE                          close

my $relay_sock = IO::Socket::INET->new(Listen => 32, LocalAddr => '127.0.0.1',
                                       LocalPort => 0, ReuseAddr => 1)
    or die "relay: cannot listen: $!\n";
$ENV{TEST_NGINX_RELAY_PORT} = $relay_sock->sockport;

my $relay_pid = fork();
die "fork: $!\n" if !defined $relay_pid;

if ($relay_pid == 0) {
    eval { relay($relay_sock) };
    POSIX::_exit(0);
}

close $relay_sock;

add_cleanup_handler(sub {
    if ($relay_pid) {
        kill 'TERM', $relay_pid;
        waitpid $relay_pid, 0;
        undef $relay_pid;
    }
    eval { redis('DEL', $ENV{TEST_NGINX_FC_OUTSIDE_KEY}) }
        if $ENV{TEST_NGINX_REDIS_PORT};
});

sub relay {
    my $ls = shift;
    my $sel = IO::Select->new($ls);
    my (%buf, %id, %by_id, $n);
    my $json = JSON::PP->new->utf8;
    my $start = time;
    my $parent = getppid();

    my $drop = sub {
        my $s = shift;
        $sel->remove($s);
        my $id = delete $id{$s};
        delete $by_id{$id} if defined $id && $by_id{$id} && $by_id{$id} == $s;
        delete $buf{$s};
        close $s;
    };

    while (time - $start < 600 && getppid() == $parent) {
        for my $s ($sel->can_read(0.5)) {
            if ($s == $ls) {
                my $c = $ls->accept or next;
                $sel->add($c);
                $buf{$c} = '';
                next;
            }

            my $r = sysread($s, $buf{$s}, 65536, length $buf{$s});
            if (!$r) {
                $drop->($s);
                next;
            }

            while (length $buf{$s} >= 4) {
                my $len = unpack 'N', $buf{$s};
                last if length($buf{$s}) < 4 + $len;
                my $body = substr($buf{$s}, 0, 4 + $len, '');
                my $m = eval { $json->decode(substr $body, 4) } or next;
                my ($cmd, @a) = ($m->{CmdName}, @{ $m->{Args} || [] });

                if ($cmd eq 'SEND_CLIENT_ID') {
                    $id{$s} = $a[0];
                    $by_id{$a[0]} = $s;
                    syswrite $s, frame('LOGGED_IN', $a[0])
                        if ($a[1] // '') eq 'ack';

                } elsif ($cmd eq 'SEND_MESSAGE_P2P') {
                    my $to = $by_id{$a[0]} or next;
                    my $uuid = sprintf '%08x-0000-4000-8000-%012x', $$, ++$n;
                    syswrite $to, frame('RESP_MESSAGE_P2P', $a[1], $a[2],
                                        $uuid);

                } elsif ($cmd eq 'ECHO') {
                    syswrite $s, frame('ECHO', @a);

                } elsif ($cmd eq 'RAWBODY') {
                    syswrite $s, frame_raw($a[0]);

                } elsif ($cmd eq 'PARTIAL') {
                    syswrite $s, pack('N', 100) . 'abc';
                    $drop->($s);
                    last;

                } elsif ($cmd eq 'BYE') {
                    $drop->($s);
                    last;
                }
            }
        }
    }
}

# --------------------------------------------------------------------------
# unit tests of the helpers, run without nginx

$ENV{TEST_NGINX_FC_OUTSIDE_KEY} = "fct-outside:$$";

my $unit_tests = 42;
plan tests => $unit_tests + repeat_each() * 40;

# lengths from /work/shared/seed/wire-transcripts.md
is(unpack('H8', frame('REQ_MSG_SERVER')), '00000027', 'REQ_MSG_SERVER length');
is(unpack('H8', frame('SEND_CLIENT_ID', 'bob')), '0000002c',
   'SEND_CLIENT_ID length');
is(frame('RESP_MESSAGE_P2P', 'hello_bob', 'alice',
         '3082b924-3426-4c9f-a2c5-ca278e31749c'),
   pack('H8', '00000063') . '{"CmdName":"RESP_MESSAGE_P2P","Args":'
   . '["hello_bob","alice","3082b924-3426-4c9f-a2c5-ca278e31749c"]}' . "\n",
   'RESP_MESSAGE_P2P bytes');

is(frames(qq{SEND_MESSAGE_P2P bob "hi \\"there\\"\\n" 'a\\b' # comment}),
   frame('SEND_MESSAGE_P2P', 'bob', qq{hi "there"\n}, 'a\\b'),
   'quoting and escapes');
is(frames("json: {\"CmdName\": \"X\"}"),
   pack('N', 17) . qq[{"CmdName": "X"}\n], 'json: line');
is(frames("nonl: X a"), pack('N', 28) . '{"CmdName":"X","Args":["a"]}',
   'nonl: line');
is(frames("hex: 00 00 00 05 41 # comment", "raw: BCD\"E "), "\0\0\0\x05ABCD\"E ",
   'hex: and raw: lines');
is(frames("# only a comment", "", "X \"\"  \"*\""),
   frame('X', '', '*'), 'blank and comment lines, empty argument');
is(frames('X $TEST_NGINX_FC_PREFIX ${PREFIX}k $nosuchvar \$PREFIX'),
   frame('X', fc_prefix(), fc_prefix() . 'k', '$nosuchvar', '$PREFIX'),
   'variables');
is(fc_prefix(), 'fct:000-harness:', 'prefix from the file name');

{
    # the clock is read before and after each expansion: exact bounds
    my $before = int(Time::HiRes::time() * 1000);
    my ($t) = Test::FishChat::_tokens('$NOW_MS+10000');
    my $after = int(Time::HiRes::time() * 1000);
    ok($t >= $before + 10000 && $t <= $after + 10000, '$NOW_MS+10000');

    $before = int(Time::HiRes::time() * 1000);
    ($t) = Test::FishChat::_tokens('$NOW_MS-5000+1');
    $after = int(Time::HiRes::time() * 1000);
    ok($t >= $before - 4999 && $t <= $after - 4999, '$NOW_MS-5000+1');
}

is(render_frames(frame('A', 'x y', '', '*', '#', "t\tn\n", 'q"b\\', '$v',
                       "\x{e9}t\x{e9}", '#tag')),
   qq{A "x y" "" "*" "#" "t\\tn\\n" "q\\"b\\\\" "\\\$v" \xc3\xa9t\xc3\xa9 #tag\n},
   'rendering quotes what needs quoting');
is(render_frames(frame_raw(qq/{"CmdName": "A","Args":[]}\n/)
                 . frame_raw('{"CmdName":"A","Args":[]}')
                 . frame_raw(qq/{"CmdName":"A","Args":[1]}\n/)
                 . frame_raw(qq/{"Args":[],"CmdName":"A"}\n/)
                 . frame_raw('')
                 . frame('B', "\x{263a}")
                 . "\0\0\0\x09{\"Cm"),
   join('', qq/!BADFRAME {"CmdName": "A","Args":[]}\\n\n/,
            qq/!BADFRAME {"CmdName":"A","Args":[]}\n/,
            qq/!BADFRAME {"CmdName":"A","Args":[1]}\\n\n/,
            qq/!BADFRAME {"Args":[],"CmdName":"A"}\\n\n/,
            "!BADFRAME\n",
            "B \xe2\x98\xba\n",
            "!PARTIAL 8 bytes\n"),
   'non-canonical frames and a partial one');
is(render_frames(frame_raw(qq|{"CmdName":"A","Args":["\\u00e9\\/"]}\n|)),
   "A \xc3\xa9/\n", 'JSON escapes decode');

# a wrong expectation must be reported
my $f = frame('RESP_MESSAGE_P2P', 'hello', 'alice', 'u-1');
is(Test::FishChat::frame_line_mismatch('RESP_MESSAGE_P2P hello alice *', $f),
   '', 'recv line matches with a wildcard');
like(Test::FishChat::frame_line_mismatch('RESP_MESSAGE_P2P hello bob *', $f),
     qr/^got: RESP_MESSAGE_P2P hello alice u-1 \(argument 1 differs\)/,
     'wrong argument detected');
like(Test::FishChat::frame_line_mismatch('RESP_MESSAGE_P2P hello alice', $f),
     qr/3 words, expected 4|4 words, expected 3/, 'missing argument detected');
like(Test::FishChat::frame_line_mismatch('RESP_MESSAGE_P2P hello alice "*"',
                                         $f),
     qr/argument 2 differs/, 'a quoted * is no wildcard');
like(Test::FishChat::frame_line_mismatch('X', frame_raw('{}')),
     qr/^got: !BADFRAME \{\}/, 'bad frame never matches a command');
is(Test::FishChat::frame_line_mismatch('!BADFRAME {}', frame_raw('{}')), '',
   '!BADFRAME expectation');
isnt(render_frames($f), "RESP_MESSAGE_P2P hello alice u-2\n",
     'a wrong response_frames text differs');

# scenarios straight against the relay
my $port = $ENV{TEST_NGINX_RELAY_PORT};

my ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port, text => <<'_EOS_');
connect a
send a ECHO one "two words"
recv a ECHO one "two words"
send a ECHO x
recv a ECHO y
send a ECHO never-reached
_EOS_
ok(!$ok, 'failing recv fails the scenario');
like($msg, qr/^scenario line 5: recv a ECHO y\n.*got: ECHO x/s,
     'failure names line and what was received') or diag $msg;
like($msg, qr/client a \(127\.0\.0\.1:\d+\) received 2 frame\(s\):\n\s+ECHO one "two words"\n\s+ECHO x\n/,
     'failure lists the frames received') or diag $msg;

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                           timeout => 0.5, text => <<'_EOS_');
connect a
send a ECHO 1
no_frame a 0.3
_EOS_
like($msg, qr/^scenario line 3: no_frame a 0\.3\n\s+expected no frame within 0.3 s, got: ECHO 1\n/,
     'no_frame detects a frame') or diag $msg;

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                           timeout => 0.3, text => <<'_EOS_');
connect a
closed a
_EOS_
like($msg, qr/did not close within [\d.]+ s/, 'closed detects an open connection');

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port, text => <<'_EOS_');
connect a
send a ECHO z
send a BYE
closed a
_EOS_
like($msg, qr/expected the server to close, got: ECHO z/,
     'closed detects a frame first');

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port, text => <<'_EOS_');
connect a
send a PARTIAL
recv a X
_EOS_
like($msg, qr/connection closed by the server; 7 bytes of an incomplete frame pending \(announced length 100\)/,
     'recv reports a partial frame');

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port, text => <<'_EOS_');
bogus_step a
_EOS_
like($msg, qr/unknown step "bogus_step"/, 'unknown step');

($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port, text => <<'_EOS_');
connect a
send a SEND_CLIENT_ID u1 ack
recv_like a ^LOGGED_IN u\d$       # a comment
capture a who 0
send a ECHO "$who" ${who}x
recv a ECHO u1 u1x
set v "a b"
send a ECHO $v
recv a ECHO "a b"
_EOS_
ok($ok, 'recv_like, capture, set') or diag $msg;

# tokens (Test::FishChat::Token): the step and its Perl function
{
    require Test::FishChat::Token;
    my $keys = $ENV{TEST_NGINX_FC_KEYS};
    is(Test::FishChat::Token::mint(alg => 'HS256', key => "$keys/hs.secret",
                                   claims => { sub => 'alice',
                                               exp => 2000000000 }),
       'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjIwMDAwMDAwMDAsInN1Y'
       . 'iI6ImFsaWNlIn0.gYzRM_FAMkQ2rfQTxdbfbnxi0nDqhF3_Ad-wzMu6Qvg',
       'HS256 token, secret without its newline');
    is(Test::FishChat::Token::mint(alg => 'none', claims => { sub => 'a' }),
       'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIn0.',
       'alg none: an empty signature');

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => <<'_EOS_');
token t key=$TEST_NGINX_FC_KEYS/ec.key alg=ES256 sub=bob exp=-10 nbf=+60 aud=chat claim=n:5 claim=s:x
connect a
send a ECHO $t
recv_like a ^ECHO eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9\.eyJ[\w-]+\.[\w-]{86}$
_EOS_
    ok($ok, 'token step: ES256, r||s of 64 bytes') or diag $msg;
}

is(Test::FishChat::render_redis([ 'a b', 1, undef, [ 'c' ], '' ]),
   '"a b" 1 (nil) [c] ""', 'render_redis');

# media steps (Test::FishChat::Media) that need no nginx
{
    my $me = File::Spec->rel2abs($0);
    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => <<"_EOS_");
wait_file $me
set me $me
assert_eq \$file \$me
_EOS_
    ok($ok, 'wait_file finds a file, $file names it') or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               timeout => 0.3, text => <<"_EOS_");
wait_file $me.nothing*
_EOS_
    like($msg, qr/no file \S+\.nothing\* within 0\.3 s/, 'wait_file times out')
        or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => "no_file $me");
    like($msg, qr/expected no file, found: \Q$me\E/, 'no_file fails on a file')
        or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => 'http_get v http://example.com/');
    like($msg, qr/bad URL "http:\/\/example.com\/" \(http:\/\/127/,
         'http_get: loopback only') or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => 'ffmpeg_wait x 0');
    like($msg, qr/no ffmpeg "x" was started/, 'ffmpeg_wait: unknown name')
        or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => <<'_EOS_');
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=al exp=2000000000 claim=stream:s-1 claim=n:5
capture_re tok rtmp://127.0.0.1/live/s-1?token=$t [?&]token=([^&]+)
assert_eq $tok $t
jwt_claim $tok stream s-1
jwt_claim $tok exp 2000000000
jwt_claim $tok n 5
jwt_claim $tok iat *
jwt_claim $tok aud -
_EOS_
    ok($ok, 'capture_re, jwt_claim') or diag $msg;

    ($ok, $msg) = Test::FishChat::run_scenario(undef, port => $port,
                                               text => <<'_EOS_');
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=al claim=act:play
jwt_claim $t act publish
_EOS_
    like($msg, qr/claim act is "play", expected publish; claims: \{"act":"play",/,
         'jwt_claim: a wrong claim') or diag $msg;
}

# --------------------------------------------------------------------------
# a custom step: the nginx.conf written for the block contains a line

Test::FishChat::add_step(conf_has => sub {
    my ($sc, $rest) = @_;
    my ($want) = $sc->tokens($rest);
    open my $in, '<', $Test::Nginx::Util::ConfFile or die "conf: $!\n";
    my $conf = do { local $/; <$in> };
    die "nginx.conf lacks \"$want\"\n" if index($conf, $want) < 0;
});

Test::FishChat::add_step(near_now_ms => sub {
    my ($sc, $rest) = @_;
    my ($key, $delta) = $sc->tokens($rest);
    my $v = redis('GET', $key) // die "no $key\n";
    my $want = int(Time::HiRes::time() * 1000) + $delta;
    die "$key is $v, not about $want\n" if abs($v - $want) > 2000;
});

# set_big VAR N: $VAR is N characters; read_size N: scenario clients read
# at most N bytes at once (65536 again at the end of the block)
Test::FishChat::add_step(set_big => sub {
    my ($sc, $rest) = @_;
    my ($var, $n) = $sc->tokens($rest);
    $sc->var($var, join '', map { chr(65 + $_ % 26) } 0 .. $n - 1);
});

Test::FishChat::add_step(read_size => sub {
    my ($sc, $rest) = @_;
    ($Test::FishChat::ReadSize) = $sc->tokens($rest);
});

# send_joined NAME LINE || LINE ...: the frames in one write
Test::FishChat::add_step(send_joined => sub {
    my ($sc, $rest) = @_;
    my ($c, $lines) = $sc->client_arg($rest);
    $sc->send($c, join '', map { $sc->frame_bytes($_) }
                           split /\s+\|\|\s+/, $lines);
});

# step_fails REGEX LINE: the step LINE must fail with a message matching
# REGEX (one word)
Test::FishChat::add_step(step_fails => sub {
    my ($sc, $rest) = @_;
    my ($re, $line) = $rest =~ /^(\S+)\s+(.*)$/s
        or die "usage: step_fails REGEX LINE\n";
    my ($kw, $args) = $line =~ /^(\S+)\s*(.*)$/s;
    my $step = $Test::FishChat::Steps{$kw} or die "unknown step $kw\n";
    my $ok = eval { $step->($sc, $args); 1 };
    die "\"$line\" did not fail\n" if $ok;
    die "\"$line\" failed with: $@" if $@ !~ /$re/;
});

{
    no warnings 'redefine';
    my $finish = \&Test::FishChat::Scenario::finish;
    *Test::FishChat::Scenario::finish = sub {
        $Test::FishChat::ReadSize = 65536;
        $finish->(@_);
    };
}

# is the fishchat_redis directive there (a static build) or loaded?
my $have_fc = ($ENV{TEST_NGINX_LOAD_MODULES} // '') =~ /fishchat/;
if (!$have_fc && open my $bin, '<:raw', $Test::Nginx::Util::NginxBinary) {
    local $/ = \(1 << 20);
    my $prev = '';
    while (my $chunk = <$bin>) {
        if (index($prev . $chunk, "\0fishchat_redis\0") >= 0) {
            $have_fc = 1;
            last;
        }
        $prev = substr($chunk, -64);
    }
}
$ENV{TEST_NGINX_FC_HAVE_MODULE} = $have_fc ? 1 : 0;
$ENV{TEST_NGINX_FC_HAVE_RTMP} = Test::FishChat::Media::have_rtmp();

run_tests();

__DATA__

=== TEST 1: stream return of a frame built by the harness
--- stream_server_config eval
"return " . ngx_quote(frame('SELECT_MSG_SERVER_FOR_CLIENT', '127.0.0.1:19001')) . ";"
--- request_frames
# nothing to send: return answers at once and closes
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001
--- no_error_log
[error]
--- no_redis



=== TEST 2: canonical, non-canonical and partial frames in one reply
--- stream_server_config eval
"return " . ngx_quote(frame('A', 'x y', '')
                      . frame_raw('{"CmdName": "B","Args":[]}')
                      . "\0\0\0\x10{\"CmdName\"") . ";"
--- request_frames
--- response_frames
A "x y" ""
!BADFRAME {"CmdName": "B","Args":[]}
!PARTIAL 14 bytes
--- no_error_log
[error]
--- no_redis



=== TEST 3: response_frames_like, a second port from stream_config
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT2;
        return "unused";
    }
--- stream_server_config eval
"return " . ngx_quote(frame('SELECT_MSG_SERVER_FOR_CLIENT',
                            "127.0.0.1:$ENV{TEST_NGINX_FC_PORT1}")) . ";"
--- request_frames
--- response_frames_like: ^SELECT_MSG_SERVER_FOR_CLIENT 127\.0\.0\.1:$TEST_NGINX_FC_PORT1\n\z
--- no_error_log
[error]
--- no_redis



=== TEST 4: request_frames syntax through nginx to the relay
--- stream_server_config
    proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
--- request_frames
ECHO plain "two words" "" "quote\"d" 'single $quoted'
json: {"CmdName":"ECHO","Args":["from json"]}
nonl: ECHO "no newline"
split:
hex: 00 00 00 1f
raw: {"CmdName":"ECHO","Args":["h"]}
ECHO $TEST_NGINX_FC_PREFIX
BYE
--- response_frames
ECHO plain "two words" "" "quote\"d" "single \$quoted"
ECHO "from json"
ECHO "no newline"
ECHO h
ECHO fct:000-harness:
--- error_log eval
"connected to 127.0.0.1:$ENV{TEST_NGINX_RELAY_PORT}"
--- no_error_log
[error]
--- no_redis



=== TEST 5: a connection the server keeps open: --- timeout and --- abort
--- stream_server_config
    proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
--- request_frames
SEND_CLIENT_ID zed ack
--- response_frames
LOGGED_IN zed
--- timeout: 0.3
--- abort
--- no_error_log
[error]
--- no_redis



=== TEST 6: two clients on two ports
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
    }
--- stream_server_config
    proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
--- scenario
connect a                      # the block's stream port
connect b $TEST_NGINX_FC_PORT1
send a SEND_CLIENT_ID alice ack
recv a LOGGED_IN alice
send b SEND_CLIENT_ID bob ack
recv b LOGGED_IN bob
send a SEND_MESSAGE_P2P bob "hello bob" alice
recv b RESP_MESSAGE_P2P "hello bob" alice *
capture b uuid 2
send b SEND_MESSAGE_P2P alice "got $uuid" bob
recv_like a ^RESP_MESSAGE_P2P "got [0-9a-f-]{36}" bob [0-9a-f-]{36}$
no_frame a 0.2
send a ECHO $uuid
recv a ECHO $uuid
send b RAWBODY {}
recv b !BADFRAME {}
send b nonl: ECHO x
recv b ECHO x
wait_log proxy 127\.0\.0\.1:\d+ connected to 127\.0\.0\.1:\d+
send a BYE
closed a
close b
--- error_log eval
"connected to 127.0.0.1:$ENV{TEST_NGINX_RELAY_PORT}"
--- no_error_log
[error]
[alert]
--- no_redis



=== TEST 7: redis_setup, redis steps and a custom step
--- redis_setup
SET ${PREFIX}greeting "hello world"
SET ${PREFIX}deadline $NOW_MS+10000
DEL ${PREFIX}list
RPUSH ${PREFIX}list a "b c"
SET $TEST_NGINX_FC_OUTSIDE_KEY yes
--- scenario
redis_expect "hello world" GET ${PREFIX}greeting
redis_expect "a \"b c\"" LRANGE ${PREFIX}list 0 -1
redis_expect (nil) GET ${PREFIX}missing
redis_expect * GET ${PREFIX}deadline
near_now_ms ${PREFIX}deadline 10000
redis SET ${PREFIX}left-over 1
redis_wait 1 EXISTS ${PREFIX}left-over
redis_expect "(error) ERR wrong number of arguments for 'get' command" GET
--- no_redis



=== TEST 8: keys under the prefix are gone, others stay
--- scenario
redis_expect 0 EXISTS ${PREFIX}left-over
redis_expect 0 EXISTS ${PREFIX}greeting
redis_expect yes GET $TEST_NGINX_FC_OUTSIDE_KEY
--- no_redis



=== TEST 9: fishchat_redis and its prefix are injected
--- skip_eval: 3: !$ENV{TEST_NGINX_FC_HAVE_MODULE}
--- scenario
conf_has "fishchat_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;"
conf_has "fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;"
--- no_error_log
[alert]
[emerg]



=== TEST 10: TLS clients and a plaintext one, through a stream ssl listener
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
    }
--- stream_server_config
    proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
--- scenario
connect_tls a $TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/ca.pem
connect b
send a SEND_CLIENT_ID alice ack
recv a LOGGED_IN alice
send b SEND_CLIENT_ID bob ack
recv b LOGGED_IN bob
send a SEND_MESSAGE_P2P bob "over TLS" alice
recv b RESP_MESSAGE_P2P "over TLS" alice *
send b SEND_MESSAGE_P2P alice "to TLS" bob
recv a RESP_MESSAGE_P2P "to TLS" bob *
no_frame a 0.2
# many frames in one write, one frame in many writes
send_joined a ECHO 1 || ECHO 2 || hex: 00 00
send a hex: 00 1f 7b 22
send a raw: CmdName":"ECHO","Args":["3"]}
recv a ECHO 1
recv a ECHO 2
recv a ECHO 3
# a frame over several TLS records, read 7 bytes at a time: the bytes
# already inside the TLS library are read without select
set_big big 20000
read_size 7
send a ECHO $big x
recv a ECHO $big x
send a ECHO y
send a ECHO z
recv a ECHO y
recv a ECHO z
read_size 65536
send a ECHO $tls_a
recv a ECHO TLSv1_3
connect_tls c $TEST_NGINX_FC_PORT1 version=TLSv1_2 sni=localhost
send c ECHO $tls_c
recv c ECHO TLSv1_2
connect_tls d localhost:$TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/ca.pem sni=localhost
send d ECHO ok
recv d ECHO ok
step_fails certificate connect_tls e $TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/other-ca.pem
step_fails hostname connect_tls e $TEST_NGINX_FC_PORT1 ca=$TEST_NGINX_FC_KEYS/ca.pem sni=example.com
step_fails not.a.TLS.client tls_renegotiate b
send a BYE
closed a
send b ECHO still
recv b ECHO still
--- error_log eval
"connected to 127.0.0.1:$ENV{TEST_NGINX_RELAY_PORT}"
--- no_error_log
[error]
[alert]
--- no_redis



=== TEST 11: TLS: renegotiation, plaintext to the TLS port, a stalled handshake
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 ssl;
        ssl_certificate $TEST_NGINX_FC_KEYS/server.pem;
        ssl_certificate_key $TEST_NGINX_FC_KEYS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_handshake_timeout 1s;
        proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
    }
--- stream_server_config
    proxy_pass 127.0.0.1:$TEST_NGINX_RELAY_PORT;
--- scenario_timeout: 3
--- scenario
connect_raw s $TEST_NGINX_FC_PORT1
connect_tls r $TEST_NGINX_FC_PORT1 version=TLSv1_2
send r ECHO before
recv r ECHO before
tls_renegotiate r
closed r
connect_raw p $TEST_NGINX_FC_PORT1
send p ECHO plaintext
closed p
connect_tls ok $TEST_NGINX_FC_PORT1
send ok ECHO fine
recv ok ECHO fine
closed s
wait_log SSL_do_handshake\(\) failed
--- no_error_log
[error]
[alert]
--- no_redis



=== TEST 12: media steps: ffmpeg publishes H.264 + AAC to nginx-rtmp (no hooks), HLS on disk and over HTTP
--- skip_eval: 4: !$ENV{TEST_NGINX_FC_HAVE_RTMP}
--- main_config
    rtmp {
        server {
            listen 127.0.0.1:$TEST_NGINX_FC_PORT5;
            application live {
                live on;
                hls on;
                hls_path $TEST_NGINX_SERVER_ROOT/html/hls;
                hls_fragment 1s;
                hls_playlist_length 4s;
            }
        }
    }
--- config
    location /hls/ {
        alias $TEST_NGINX_SERVER_ROOT/html/hls/;
        log_not_found off;
    }
--- scenario_timeout: 5
--- scenario
set s v$NOW_MS
set hls http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls
ffmpeg_publish p rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live/$s 3
ffmpeg_running p
wait_file hls/$s.m3u8
assert_eq $file $TEST_NGINX_SERVER_ROOT/html/hls/$s.m3u8
http_get pl $hls/$s.m3u8
assert_eq $http_status 200
http_like \A#EXTM3U\n(?s:.*)\nv\d+-0\.ts\n
http_header Content-Length *
ffprobe_like hls/$s-0.ts ^h264 aac$
wait_file hls/$s-*.ts
ffprobe_like $file h264
ffprobe_like $hls/$s.m3u8 ^h264 aac$     # ffmpeg's HLS demuxer, over HTTP
http_status $hls/$s-nothing.m3u8 404
step_fails expected.200,.got.404 http_status $hls/$s-nothing.m3u8 200
step_fails does.not.match ffprobe_like hls/$s-0.ts ^vp9
ffmpeg_wait p 0
step_fails exited.with.0.*expected.nonzero ffmpeg_wait p nonzero
step_fails has.ended ffmpeg_running p
--- no_error_log
[error]
[alert]
[emerg]
--- no_redis



=== TEST 13: media steps: audio only; a publish refused by an on_publish 403 or an unknown application exits non-zero at once, writes nothing
--- skip_eval: 4: !$ENV{TEST_NGINX_FC_HAVE_RTMP}
--- main_config
    rtmp {
        server {
            listen 127.0.0.1:$TEST_NGINX_FC_PORT5;
            application live {
                live on;
                hls on;
                hls_path $TEST_NGINX_SERVER_ROOT/html/hls;
                hls_fragment 1s;
                hls_playlist_length 4s;
            }
            application deny {
                live on;
                hls on;
                hls_path $TEST_NGINX_SERVER_ROOT/html/hls-deny;
                on_publish http://127.0.0.1:$TEST_NGINX_SERVER_PORT/deny;
                notify_method post;
            }
        }
    }
--- config
    location = /deny {
        return 403;
    }
--- scenario_timeout: 5
--- scenario
set s a$NOW_MS
ffmpeg_publish a rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live/$s 2 audio_only
ffmpeg_publish r rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/deny/$s-r?token=x 2
ffmpeg_publish n rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/nosuchapp/$s-n 2
ffmpeg_wait r nonzero
ffmpeg_wait n nonzero
step_fails exited.with.1.after.*expected.0(?s:.*)Input/output.error ffmpeg_wait r 0
wait_file hls/$s.m3u8
ffprobe_like hls/$s-0.ts ^aac$
ffmpeg_wait a 0
no_file hls-deny/$s-r*
no_file hls/$s-n*
wait_log notify: publish '127.0.0.1:\d+/deny'
--- no_error_log
[error]
[alert]
[emerg]
--- no_redis
