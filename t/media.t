# Audio and video (issue 14), first slice: MEDIA_PUBLISH and MEDIA_PLAY on
# the msg server, the nginx-rtmp hooks (fishchat_media_hooks) that let a
# publish or a play through only with a token of the right kind for the
# right stream, and the play token checked on the HLS files
# (fishchat_media_hls).  Real ffmpeg publishes to the nginx-rtmp-module
# compiled into the same nginx.
#
# Blocks get, unless they say otherwise:
#   main_config            fishchat_node n1; the HS256 test secret; the
#                          media URLs (RTMP on $TEST_NGINX_FC_PORT5, HLS on
#                          the HTTP port); an rtmp {} block whose hooks
#                          (publish, play, update every second, and the
#                          done calls) go to /hook, with HLS under
#                          servroot/html/hls (1 s fragments, 4 s playlist)
#   stream_server_config   fishchat_msg;
#   config                 location = /hook { fishchat_media_hooks; }
#                          location /hls/ { fishchat_media_hls; alias ...; }
#
# Local steps:
#   room                   alice creates "room", bob joins; carol logs in
#                          too and is no member (clients a, b, c)
#   access_log_mark        access_log_wait looks after this point
#   access_log_wait REGEX  wait until a line of access.log (HTTP and
#                          nginx-rtmp share it) matches REGEX
#   assert_near A B TOL    |A - B| <= TOL
#
# ffmpeg runs are 2 to 4 s; the refusals run in parallel.  nginx-rtmp
# logs a refused publish or play at [info] only ("notify: publish
# '127.0.0.1:PORT/hook'", then "disconnect"), a publisher cut by on_update
# with "[info] notify: update failed": no block expects an [error].

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Token;
use Test::FishChat::Media;
use Test::FishChat::Manager;

use IO::Socket::INET ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_root_location();

my $RTMP = <<'_EOC_';
    rtmp {
        server {
            listen 127.0.0.1:$TEST_NGINX_FC_PORT5;
            application live {
                live on;
                hls on;
                hls_path $TEST_NGINX_SERVER_ROOT/html/hls;
                hls_fragment 1s;
                hls_playlist_length 4s;
                on_publish http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                on_play http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                on_update http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                on_publish_done http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                on_play_done http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                notify_update_timeout 1s;
                notify_method post;
            }
        }
    }
_EOC_

my $MAIN = <<'_EOC_';
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_media_rtmp_url rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live;
    fishchat_media_hls_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls;
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->main_config) {
        $block->set_value('main_config', $MAIN . $RTMP);
    } elsif ($block->main_config !~ /\brtmp\s*\{/) {
        $block->set_value('main_config', $block->main_config . $RTMP);
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
    location = /hook {
        fishchat_media_hooks;
    }
    location /hls/ {
        fishchat_media_hls;
        alias $TEST_NGINX_SERVER_ROOT/html/hls/;
        log_not_found off;
    }
_EOC_
    }
});

Test::FishChat::Steps::add_macro(room => <<'_EOS_');
hello_login a alice
hello_login b bob
hello_login c carol
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
set hls http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls
set live rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live
_EOS_

my $AccPos = 0;

sub _access_log {
    open my $in, '<', $Test::Nginx::Util::AccLogFile or return '';
    local $/;
    my $d = <$in> // '';
    close $in;
    return $d;
}

Test::FishChat::add_step(access_log_mark => sub {
    $AccPos = length _access_log();
});

Test::FishChat::add_step(access_log_wait => sub {
    my ($sc, $rest) = @_;
    my $re = Test::FishChat::_strip_comment($rest);
    my $qr = eval { qr/$re/m } or die "bad regex $re: $@";
    my $deadline = $sc->deadline;
    while (1) {
        my $log = _access_log();
        return if length($log) >= $AccPos && substr($log, $AccPos) =~ $qr;
        die "no access.log line matched within $sc->{timeout} s:\n"
            . substr($log, $AccPos) . "\n" if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.05);   # polling the log, bounded
    }
});

Test::FishChat::add_step(assert_near => sub {
    my ($sc, $rest) = @_;
    my ($a, $b, $tol) = $sc->tokens($rest);
    die "usage: assert_near A B TOL\n" if !defined $tol;
    die "$a and $b differ by more than $tol\n" if abs($a - $b) > $tol;
});

# mp4_check FILE SECS TOL: the top-level boxes of FILE have "moov" before
# "mdat" (faststart), and its duration is SECS within TOL
Test::FishChat::add_step(mp4_check => sub {
    my ($sc, $rest) = @_;
    my ($file, $secs, $tol) = $sc->tokens($rest);
    die "usage: mp4_check FILE SECS TOL\n" if !defined $tol;
    $file = "$Test::Nginx::Util::ServRoot/html/$file" if $file !~ m{^/};
    open my $in, '<:raw', $file or die "$file: $!\n";
    my (@boxes, $off);
    $off = 0;
    while (@boxes < 64 && read($in, my $h, 8) == 8) {
        my ($size, $type) = unpack 'Na4', $h;
        push @boxes, $type;
        last if $size < 8;
        $off += $size;
        seek $in, $off, 0 or last;
    }
    close $in;
    my ($moov) = grep { $boxes[$_] eq 'moov' } 0 .. $#boxes;
    my ($mdat) = grep { $boxes[$_] eq 'mdat' } 0 .. $#boxes;
    die "no moov before mdat in $file: @boxes\n"
        if !defined $moov || !defined $mdat || $moov > $mdat;
    my $d = `ffprobe -v error -show_entries format=duration -of csv=p=0 '$file'`;
    chomp $d;
    die "duration of $file is '$d', not $secs within $tol\n"
        if $d !~ /^[\d.]+$/ || abs($d - $secs) > $tol;
});

# http_post_form STATUS PATH BODY: a form POSTed to the HTTP port
Test::FishChat::add_step(http_post_form => sub {
    my ($sc, $rest) = @_;
    my ($want, $path, $body) = $sc->tokens($rest);
    die "usage: http_post_form STATUS PATH BODY\n" if !defined $body;
    my $port = Test::Nginx::Util::server_port();
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => $sc->{timeout})
        or die "connect: $!\n";
    print $s "POST $path HTTP/1.0\r\nHost: localhost\r\n"
             . "Content-Type: application/x-www-form-urlencoded\r\n"
             . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d+)};
    die "expected $want, got: " . substr($resp, 0, 300) . "\n"
        if ($status // '') ne $want;
});

# truncate_copy SRC DST BYTES: DST (relative to servroot/html) is the first
# BYTES of SRC
Test::FishChat::add_step(truncate_copy => sub {
    my ($sc, $rest) = @_;
    my ($src, $dst, $n) = $sc->tokens($rest);
    die "usage: truncate_copy SRC DST BYTES\n" if !defined $n;
    $dst = "$Test::Nginx::Util::ServRoot/html/$dst";
    open my $in, '<:raw', $src or die "$src: $!\n";
    read($in, my $d, $n) == $n or die "$src: shorter than $n bytes\n";
    close $in;
    open my $out, '>:raw', $dst or die "$dst: $!\n";
    print $out $d;
    close $out or die "$dst: $!\n";
});

# http_wait_like URL REGEX: GET URL every 50 ms until its body matches
# REGEX (as written), bounded by the step timeout
Test::FishChat::add_step(http_wait_like => sub {
    my ($sc, $rest) = @_;
    my ($url, $re) = $rest =~ /^\s*(\S+)\s+(.+?)\s*$/
        or die "usage: http_wait_like URL REGEX\n";
    ($url) = $sc->tokens($url);
    my $qr = eval { qr/$re/ } or die "bad regex $re: $@";
    my $deadline = $sc->deadline;
    my $body = '';
    while (1) {
        my $r = Test::FishChat::Media::_http_get($sc, $url, $deadline);
        $body = $r->{body} // '';
        return if $body =~ $qr;
        die "$url did not match $re within $sc->{timeout} s:\n$body\n"
            if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.05);   # polling the figures, bounded
    }
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: MEDIA_PUBLISH: a member of a topic and a p2p caller get a stream and an RTMP URL with a publish token; non-member FORBIDDEN; unknown topic; bad targets BAD_ARGS (fatal); seed clients UNKNOWN_COMMAND
--- scenario
room
send a MEDIA_PUBLISH topic:room
recv_like a ^MEDIA_PUBLISH topic:room [A-Za-z0-9_-]+ rtmp://127\.0\.0\.1:\d+/live/[A-Za-z0-9_-]+\?token=[\w-]+\.[\w-]+\.[\w-]+ \d+$
capture a s1 1
capture a u1 2
capture a exp1 3
capture_re st1 $u1 ^rtmp://127\.0\.0\.1:\d+/live/([^?]+)\?
assert_eq $st1 $s1
capture_re t1 $u1 [?&]token=([^&]+)$
assert_eq $u1 $live/$s1?token=$t1
jwt_claim $t1 sub alice
jwt_claim $t1 stream $s1
jwt_claim $t1 act publish
jwt_claim $t1 exp $exp1
# fishchat_media_token_ttl: 10m by default
assert_near $exp1 $NOW+600 5
# a p2p call: another stream
send a MEDIA_PUBLISH p2p:bob
recv_like a ^MEDIA_PUBLISH p2p:bob [A-Za-z0-9_-]+ rtmp://127\.0\.0\.1:\d+/live/\S+\?token=\S+ \d+$
capture a s2 1
assert_ne $s1 $s2
# bob may publish to the topic too
send b MEDIA_PUBLISH topic:room
recv b MEDIA_PUBLISH topic:room * * *
capture b u3 2
capture_re t3 $u3 [?&]token=([^&]+)$
jwt_claim $t3 sub bob
# a non-member: FORBIDDEN, and the session goes on
send c MEDIA_PUBLISH topic:room
recv c ERROR FORBIDDEN *
send c SEND_PING PING
recv c PONG
# an unknown topic (non-fatal, like the other topic commands)
send c MEDIA_PUBLISH topic:nosuch
recv c ERROR NO_SUCH_TOPIC *
send c SEND_PING PING
recv c PONG
# bad targets: BAD_ARGS and the close
send c MEDIA_PUBLISH room
recv c ERROR BAD_ARGS *
closed c
hello_login c2 carol
send c2 MEDIA_PUBLISH p2p:
recv c2 ERROR BAD_ARGS *
closed c2
hello_login c3 carol
send c3 MEDIA_PUBLISH
recv c3 ERROR BAD_ARGS *
closed c3
# seed clients: unknown commands, the close
connect s
send s SEND_CLIENT_ID sam
send s MEDIA_PUBLISH topic:room
closed s
connect s2
send s2 SEND_CLIENT_ID sam
send s2 MEDIA_PLAY $s1
closed s2
send a SEND_PING PING
recv a PONG
--- error_log
fishchat msg: UNKNOWN_COMMAND: unknown command "MEDIA_PUBLISH"
fishchat msg: UNKNOWN_COMMAND: unknown command "MEDIA_PLAY"
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: publish with the token: allowed, HLS written (H.264 + AAC); MEDIA_PLAY for members; the play token in the HLS path is checked on the playlist and the segments; RTMP play with the play token; done calls answered 200
--- scenario_timeout: 5
--- scenario
room
access_log_mark
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
capture_re pubtok $u [?&]token=([^&]+)$
# a second stream, never published: its play token is for another stream
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a other 1
ffmpeg_publish p $u 4
wait_file hls/$s.m3u8
ffprobe_like hls/$s-0.ts ^h264 aac$
# the members are told it is live (TEST 8)
recv a MEDIA_LIVE topic:room $s alice *
recv b MEDIA_LIVE topic:room $s alice *
# a member asks to watch
send b MEDIA_PLAY $s
recv_like b ^MEDIA_PLAY [A-Za-z0-9_-]+ http://127\.0\.0\.1:\d+/hls/[\w-]+\.[\w-]+\.[\w-]+/[A-Za-z0-9_-]+\.m3u8 \d+$
capture b purl 1
capture b pexp 2
capture_re ptok $purl /hls/([^/]+)/
assert_eq $purl $hls/$ptok/$s.m3u8
jwt_claim $ptok sub bob
jwt_claim $ptok stream $s
jwt_claim $ptok act play
jwt_claim $ptok exp $pexp
# RTMP play with the play token (on_play): allowed while live
ffmpeg_play v $live/$s?token=$ptok 1
ffmpeg_play w $live/$s?token=$pubtok 1
ffmpeg_play x $live/$s 1
http_wait $purl 200
http_like \A#EXTM3U\n
http_status $hls/$ptok/$s-0.ts 200
# a player follows the playlist's relative segment URLs: they keep the token
ffprobe_like $purl ^h264 aac$
# the publisher, a member too, may watch
send a MEDIA_PLAY $s
recv a MEDIA_PLAY $s * *
# no token, a token for another stream, a publish token, garbage, an
# expired play token: 403 with a JSON body
http_status $hls/$s.m3u8 403
http_like \A\s*\{
http_status $hls/$s-0.ts 403
send b MEDIA_PLAY $other
recv b MEDIA_PLAY $other * *
capture b ourl 1
capture_re otok $ourl /hls/([^/]+)/
http_status $hls/$otok/$s.m3u8 403
http_like \A\s*\{
http_status $hls/$otok/$s-0.ts 403
http_status $hls/$pubtok/$s.m3u8 403
http_status $hls/$pubtok/$s-0.ts 403
http_status $hls/garbage/$s.m3u8 403
token old key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob exp=-60 claim=stream:$s claim=act:play
http_status $hls/$old/$s.m3u8 403
token bad key=$TEST_NGINX_FC_KEYS/hs-wrong.secret alg=HS256 sub=bob claim=stream:$s claim=act:play
http_status $hls/$bad/$s.m3u8 403
# a non-member, an unknown stream: non-fatal
send c MEDIA_PLAY $s
recv c ERROR FORBIDDEN *
send c MEDIA_PLAY nosuchstream
recv c ERROR NO_SUCH_STREAM *
send c SEND_PING PING
recv c PONG
ffmpeg_wait w nonzero
ffmpeg_wait x nonzero
ffmpeg_wait v 0
ffmpeg_wait p 0
# on_update every second let the publisher go on (it would have been cut
# otherwise); the hooks answered 2xx (publish, play, update, done), and
# 403 to the refused players
access_log_wait "POST /hook HTTP/1\.[01]" 20\d
access_log_wait "POST /hook HTTP/1\.[01]" 403
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: refused publishes: no token, an expired one, a play token, a token for someone else's stream, a wrong key: ffmpeg fails at once, nothing written; the right token then works
--- scenario_timeout: 5
--- scenario
room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a sa 1
capture a ua 2
capture_re ta $ua [?&]token=([^&]+)$
send b MEDIA_PUBLISH topic:room
recv b MEDIA_PUBLISH topic:room * * *
capture b sb 1
capture b ub 2
send b MEDIA_PLAY $sa
recv b MEDIA_PLAY $sa * *
capture b purl 1
capture_re ptok $purl /hls/([^/]+)/
token expired key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=-60 claim=stream:$sa claim=act:publish
token wrongkey key=$TEST_NGINX_FC_KEYS/hs-wrong.secret alg=HS256 sub=alice claim=stream:$sa claim=act:publish
token noact key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice claim=stream:$sa
token none alg=none sub=alice claim=stream:$sa claim=act:publish
ffmpeg_publish r1 $live/$sa 2
ffmpeg_publish r2 $live/$sa?token=$expired 2
ffmpeg_publish r3 $live/$sa?token=$ptok 2
# alice's token on bob's stream
ffmpeg_publish r4 $live/$sb?token=$ta 2
ffmpeg_publish r5 $live/$sa?token=$wrongkey 2
ffmpeg_publish r6 $live/$sa?token=$noact 2
ffmpeg_publish r7 $live/$sa?token=$none 2
ffmpeg_wait r1 nonzero
ffmpeg_wait r2 nonzero
ffmpeg_wait r3 nonzero
ffmpeg_wait r4 nonzero
ffmpeg_wait r5 nonzero
ffmpeg_wait r6 nonzero
ffmpeg_wait r7 nonzero
no_file hls/$sa*
no_file hls/$sb*
wait_log notify: publish '127\.0\.0\.1:\d+/hook'
# the same stream with its own token
ffmpeg_publish ok $ub 2
wait_file hls/$sb.m3u8
ffmpeg_wait ok 0
no_file hls/$sa*
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: p2p: the peer may watch, a third may not; an audio-only publish works
--- scenario_timeout: 5
--- scenario
room
send a MEDIA_PUBLISH p2p:bob
recv a MEDIA_PUBLISH p2p:bob * * *
capture a s 1
capture a u 2
ffmpeg_publish p $u 3 audio_only
send b MEDIA_PLAY $s
recv b MEDIA_PLAY $s * *
capture b purl 1
send a MEDIA_PLAY $s
recv a MEDIA_PLAY $s * *
send c MEDIA_PLAY $s
recv c ERROR FORBIDDEN *
wait_file hls/$s.m3u8
ffprobe_like hls/$s-0.ts ^aac$
http_wait $purl 200
http_like \A#EXTM3U\n
ffmpeg_wait p 0
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: on_update cuts a publisher whose token expires (no leeway)
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_auth_leeway 0s;
    fishchat_media_rtmp_url rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live;
    fishchat_media_hls_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls;
--- scenario_timeout: 5
--- scenario
room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
token short key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+2 claim=stream:$s claim=act:publish
ffmpeg_publish p $live/$s?token=$short 4
ffmpeg_wait p nonzero
wait_log notify: update failed
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: a recording becomes an MP4 (moov before mdat, the published duration) in a thread; a play token serves it; garbage is refused cleanly
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_media_rtmp_url rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live;
    fishchat_media_hls_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls;
    fishchat_media_vod_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod;
    rtmp {
        server {
            listen 127.0.0.1:$TEST_NGINX_FC_PORT5;
            application live {
                live on;
                record all;
                record_path $TEST_NGINX_SERVER_ROOT/html/rec;
                on_publish http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                on_record_done http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hook;
                notify_method post;
            }
        }
    }
--- config
    location = /hook {
        fishchat_media_hooks;
        fishchat_media_record_path $TEST_NGINX_SERVER_ROOT/html/rec;
        fishchat_media_vod_path $TEST_NGINX_SERVER_ROOT/html/vod;
    }
    location /vod/ {
        fishchat_media_hls;
        alias $TEST_NGINX_SERVER_ROOT/html/vod/;
        log_not_found off;
    }
--- user_files
>>> rec/.keep
>>> vod/.keep
>>> rec/garbage.flv
FLV this is not
>>> other/elsewhere.flv
FLV
--- scenario_timeout: 15
--- scenario
room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
ffmpeg_publish p $u 3
ffmpeg_wait p 0
wait_file vod/$s.mp4
wait_log the recording of stream \w+ is ".*\.mp4": [\d.]+ s, \d+ bytes
ffprobe_like vod/$s.mp4 ^h264 aac$
mp4_check vod/$s.mp4 3 0.5
token v key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob claim=stream:$s claim=act:play
http_status http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod/$v/$s.mp4 200
http_status http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod/x$v/$s.mp4 403
# MEDIA_PLAY hands out the recording once it is ready
redis_wait_like ^[0-9]+$ HGET ${PREFIX}media:{$s} recording
recv b MEDIA_LIVE topic:room $s alice *
recv b MEDIA_RECORDING topic:room $s alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod/$s.mp4 * *
capture b rsecs 4
capture b rbytes 5
assert_near $rsecs 3 0.5
redis_wait $rbytes HGET ${PREFIX}media:{$s} recording
send b MEDIA_PLAY $s
recv b MEDIA_PLAY $s * *
capture b vurl 1
capture_re vpath $vurl ^http://127\.0\.0\.1:\d+(/vod/[^/]+/\w+\.mp4)$
http_status $vurl 200
# a truncated FLV (the recording cut in its middle): remuxed as far as it
# goes, or refused with a reason, and nothing else happens
wait_file rec/$s*.flv
truncate_copy $file rec/cut.flv 30000
http_post_form 200 /hook call=record_done&name=cut&path=$TEST_NGINX_SERVER_ROOT/html/rec/cut.flv
wait_log the recording of stream cut (is ".*\.mp4": [\d.]+ s, \d+ bytes|was not remuxed \(.+\); the FLV is kept)
# a garbage FLV: the remux fails, the FLV is kept, nothing else happens
http_post_form 200 /hook call=record_done&name=junk&path=$TEST_NGINX_SERVER_ROOT/html/rec/garbage.flv
wait_log the recording of stream junk was not remuxed \(.+\); the FLV is kept
no_file vod/junk.mp4
wait_file rec/garbage.flv
# a file outside fishchat_media_record_path is not touched
http_post_form 400 /hook call=record_done&name=out&path=$TEST_NGINX_SERVER_ROOT/html/other/elsewhere.flv
http_post_form 400 /hook call=record_done&name=out&path=$TEST_NGINX_SERVER_ROOT/html/rec/../other/elsewhere.flv
send b SEND_PING
recv b PONG
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 7: POST /media/streams: a stream for a backend, as MEDIA_PUBLISH; its URL publishes
--- config
    location = /hook {
        fishchat_media_hooks;
    }
    location /hls/ {
        fishchat_media_hls;
        alias $TEST_NGINX_SERVER_ROOT/html/hls/;
        log_not_found off;
    }
    location /m/ {
        fishchat_manager;
    }
--- scenario_timeout: 8
--- scenario
room
api 201 POST /m/media/streams '{"target":"topic:room","from":"bob"}'
api_capture s stream
api_capture u rtmp_url
api_json target topic:room
api_json from bob
api_like "expires":\d{10}\}
ffmpeg_publish p $u 2
ffmpeg_wait p 0
wait_file hls/$s.m3u8
recv a MEDIA_LIVE topic:room $s bob *
recv a MEDIA_ENDED topic:room $s bob *
send a MEDIA_PLAY $s
recv a MEDIA_PLAY $s * *
api 403 POST /m/media/streams '{"target":"topic:room","from":"carol"}'
api_like "code":"FORBIDDEN"
api 404 POST /m/media/streams '{"target":"topic:nowhere","from":"bob"}'
api 400 POST /m/media/streams '{"target":"room","from":"bob"}'
api 400 POST /m/media/streams '{"target":"p2p:alice"}'
api 201 POST /m/media/streams '{"target":"p2p:alice","from":"carol"}'
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 8: live notices: members get MEDIA_LIVE then MEDIA_ENDED (opt-in) or a text (seed), live and from the history
--- scenario_timeout: 8
--- scenario
room
connect sd
send sd SEND_CLIENT_ID dan
send sd JOIN_TOPIC room dan
recv sd LOCATE_TOPIC_MSG_ADDR * room
# eve (opt-in) and erin (seed) are members, offline while it happens
room_offline
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
ffmpeg_publish p $u 2
recv b MEDIA_LIVE topic:room $s alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s.m3u8
recv sd RESP_MESSAGE_TOPIC room "alice is live: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s.m3u8" alice
recv a MEDIA_LIVE topic:room $s alice *
ffmpeg_wait p 0
recv b MEDIA_ENDED topic:room $s alice *
capture b secs 3
assert_near $secs 2 2
recv sd RESP_MESSAGE_TOPIC room * alice
recv a MEDIA_ENDED topic:room $s alice *
# carol is no member: nothing
no_frame c
# the offline members find both in the history at their next login
hello_login e2 eve
recv e2 MEDIA_LIVE topic:room $s alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s.m3u8
recv e2 MEDIA_ENDED topic:room $s alice *
connect se2
send se2 SEND_CLIENT_ID erin
recv se2 RESP_MESSAGE_TOPIC room "alice is live: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s.m3u8" alice
recv se2 RESP_MESSAGE_TOPIC room * alice
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 9: 1:1 live notices: both peers get MEDIA_LIVE and MEDIA_ENDED with the uuid to acknowledge (opt-in) or a text from the publisher (seed), live and from the inbox
--- scenario_timeout: 10
--- scenario
room
connect sd
send sd SEND_CLIENT_ID dan
redis_wait 1 EXISTS ${PREFIX}client:{dan}
hello_login e eve
close e
redis_wait 0 EXISTS ${PREFIX}client:{eve}
send a MEDIA_PUBLISH p2p:bob
recv a MEDIA_PUBLISH p2p:bob * * *
capture a s 1
capture a u 2
send a MEDIA_PUBLISH p2p:dan
recv a MEDIA_PUBLISH p2p:dan * * *
capture a s2 1
capture a u2 2
send a MEDIA_PUBLISH p2p:eve
recv a MEDIA_PUBLISH p2p:eve * * *
capture a s3 1
capture a u3 2
ffmpeg_publish p $u 2
ffmpeg_publish q $u2 2
ffmpeg_publish r $u3 2
recv b MEDIA_LIVE p2p:bob $s alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s.m3u8 *
capture b k1 4
send b P2P_ACK bob $k1
recv sd RESP_MESSAGE_P2P "alice is live: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s2.m3u8" alice *
capture sd k2 2
send sd P2P_ACK dan $k2
ffmpeg_wait p 0
ffmpeg_wait q 0
ffmpeg_wait r 0
recv b MEDIA_ENDED p2p:bob $s alice * *
capture b secs 3
assert_near $secs 2 2
capture b k3 4
send b P2P_ACK bob $k3
recv_like sd ^RESP_MESSAGE_P2P "alice is no longer live \(\d+ s\)" alice \S+$
capture sd k4 2
send sd P2P_ACK dan $k4
# carol is no party: nothing
no_frame c
# acknowledged, the peers' notices leave their inboxes; the publisher's
# six wait in its own
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}
redis_wait 0 EXISTS ${PREFIX}inbox:{dan}
redis_wait 6 ZCARD ${PREFIX}inbox:{alice}
# eve was offline: both come from the inbox at her login
hello_login e2 eve
recv e2 MEDIA_LIVE p2p:eve $s3 alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls/$s3.m3u8 *
recv e2 MEDIA_ENDED p2p:eve $s3 alice * *
capture e2 k5 4
send e2 P2P_ACK eve $k5
no_frame e2
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 10: the monitor counts the node's live streams, RTMP viewers, HLS requests, refusals and recordings (status.json, metrics)
--- config
    location = /hook {
        fishchat_media_hooks;
    }
    location /hls/ {
        fishchat_media_hls;
        alias $TEST_NGINX_SERVER_ROOT/html/hls/;
        log_not_found off;
    }
    location /monitor/ {
        fishchat_monitor;
    }
    location = /metrics {
        fishchat_monitor metrics;
    }
--- scenario_timeout: 8
--- scenario
room
set status http://127.0.0.1:$TEST_NGINX_SERVER_PORT/monitor/status.json
http_wait_like $status "media":\{"streams":0,"viewers":0,"publishes":0,"plays":0,"refused":0,"hls_requests":0,"hls_denied":0,"recordings":0,"recordings_failed":0\},"workers":\[
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
ffmpeg_publish p $u 4
ffmpeg_publish q $live/$s 1
ffmpeg_wait q nonzero
wait_file hls/$s.m3u8
recv b MEDIA_LIVE topic:room $s alice *
send b MEDIA_PLAY $s
recv b MEDIA_PLAY $s * *
capture b purl 1
capture_re ptok $purl /hls/([^/]+)/
ffmpeg_play v $live/$s?token=$ptok 2
http_wait_like $status "media":\{"streams":1,"viewers":1,"publishes":1,"plays":1,"refused":1,
http_status $purl 200
http_status $hls/$s.m3u8 403
ffmpeg_wait v 0
ffmpeg_wait p 0
http_wait_like $status "media":\{"streams":0,"viewers":0,"publishes":1,"plays":1,"refused":1,"hls_requests":1,"hls_denied":1,"recordings":0,"recordings_failed":0\}
http_get m http://127.0.0.1:$TEST_NGINX_SERVER_PORT/metrics
http_like \n# TYPE fishchat_media_streams gauge\nfishchat_media_streams\{node="n1"\} 0\n
http_like \nfishchat_media_publishes_total\{node="n1"\} 1\n
http_like \nfishchat_media_plays_total\{node="n1"\} 1\n
http_like \nfishchat_media_refused_total\{node="n1"\} 1\n
http_like \nfishchat_media_hls_requests_total\{node="n1"\} 1\n
http_like \nfishchat_media_hls_denied_total\{node="n1"\} 1\n
http_like \n# TYPE fishchat_media_recordings_total counter\n
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 11: on_update cuts a publisher whose tokens are revoked (a token of a media URL has no "iat": exp less fishchat_media_token_ttl); a new publish with the old URL is refused
--- scenario_timeout: 10
--- scenario
room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
ffmpeg_publish p $u 8
wait_log fishchat media: publish of stream \S+ allowed until
redis SET ${PREFIX}revoked:{alice} 4102444800
wait_log fishchat media: 403 FORBIDDEN: update_publish of stream \S+ refused: the token is revoked
ffmpeg_wait p nonzero
ffmpeg_publish q $u 2
ffmpeg_wait q nonzero
wait_log fishchat media: 403 FORBIDDEN: publish of stream \S+ refused: the token is revoked
--- no_error_log
[error]
[alert]
[emerg]
