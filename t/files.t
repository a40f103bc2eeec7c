# Files (issue 15), first slice (docs/files.md): FILE_SLOT on the msg
# server, the signed PUT to the files location (fishchat_files), the
# content-addressed store, downloads by nginx's static module with the
# safety headers, GET /files/<id>/info, and the refusals.
#
# Blocks get, unless they say otherwise, the main config, the msg server,
# the files location (client_max_body_size 200m) and the store of
# files_blocks() in Test::FishChat::Files.
#
# The hashing thread pool is nginx's "default" one, which exists as soon as
# a module asks for it (as for the media remux, t/media.t TEST 6).
#
# Steps of Test::FishChat::Files used here: files_login (alice and bob
# log in, $files) and files_put (a FILE_SLOT and its PUT).

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;

repeat_each(1);
no_shuffle();
no_root_location();

files_blocks();

# make_media PATH KIND: ffmpeg makes at PATH (relative to servroot/html),
# under a time limit: png a 640x480 PNG, opus 3 s of an Opus voice note (a
# sine), mp4 2 s of a 640x360 H.264 + AAC MP4; from those, mp4rot the MP4
# turned 90 degrees by its display matrix, mp3cover 2 s of MP3 with the
# PNG as its cover picture; pnga a 64x48 PNG, half transparent red
my %media_args = (
    png  => '-f lavfi -i testsrc=size=640x480:rate=1 -frames:v 1',
    opus => '-f lavfi -i sine=frequency=440:duration=3 -c:a libopus',
    mp4  => '-f lavfi -i testsrc=size=640x360:rate=25:duration=2 '
            . '-f lavfi -i sine=duration=2 -c:v libx264 -preset '
            . 'ultrafast -pix_fmt yuv420p -c:a aac -shortest',
    pnga => '-f lavfi -i color=c=red\@0.5:size=64x48,format=rgba '
            . '-frames:v 1',
);

# the kinds made from another one (SRC)
my %media_from = (
    mp4rot   => ['mp4', '-i SRC -c copy -metadata:s:v:0 rotate=90'],
    mp3cover => ['png', '-f lavfi -i sine=duration=2 -i SRC -map 0:a '
                        . '-map 1:v -c:a libmp3lame -c:v png '
                        . '-disposition:v:0 attached_pic'],
);

sub make_media {
    my ($path, $kind) = @_;
    my $args = $media_args{$kind};
    if (my $from = $media_from{$kind}) {
        my $src = "$path-src.$from->[0]";
        make_media($src, $from->[0]);
        ($args = $from->[1]) =~ s/SRC/'$src'/;
    }
    die "usage: make_media PATH png|opus|mp4|mp4rot|mp3cover|pnga\n"
        if !defined $args;
    my $rc = system("timeout 30 ffmpeg -nostdin -hide_banner -loglevel error "
                    . "-y $args '$path'");
    die "ffmpeg could not make $path ($rc)\n" if $rc != 0 || !-s $path;
}

Test::FishChat::add_step(make_media => sub {
    my ($sc, $rest) = @_;
    my ($path, $kind) = $sc->tokens($rest);
    die "usage: make_media PATH KIND\n" if !defined $kind;
    make_media("$Test::Nginx::Util::ServRoot/html/$path", $kind);
});

# resp_jpeg W H: the last response is a JPEG of W x H pixels (its frame
# header)
Test::FishChat::add_step(resp_jpeg => sub {
    my ($sc, $rest) = @_;
    my ($w, $h) = $sc->tokens($rest);
    my $b = Test::FishChat::Files::_last($sc)->{body};
    die "not a JPEG\n" if substr($b, 0, 2) ne "\xff\xd8";
    my $i = 2;
    while ($i + 9 < length $b) {
        my ($m, $len) = unpack 'x C n', substr($b, $i, 4);
        if ($m >= 0xc0 && $m <= 0xc3) {
            my ($gh, $gw) = unpack 'n n', substr($b, $i + 5, 4);
            die "a JPEG of ${gw}x$gh, not ${w}x$h\n"
                if $gw != $w || $gh != $h;
            return;
        }
        $i += 2 + $len;
    }
    die "no frame header in the JPEG\n";
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: FILE_SLOT: an id, a signed PUT URL, a GET URL, the expiry (10 min); over fishchat_files_max_size FILE_TOO_LARGE (non-fatal); bad name, size or type BAD_ARGS (fatal); seed clients UNKNOWN_COMMAND
--- scenario
files_login
send a FILE_SLOT photo.png 48213 image/png
recv_like a ^FILE_SLOT [0-9a-f]{32} http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}\?exp=\d+&sig=[A-Za-z0-9_-]{43}=? http://127\.0\.0\.1:\d+/files/[0-9a-f]{32} \d+$
capture a id 0
capture a put 1
capture a get 2
capture a exp 3
capture_re sig $put [?&]sig=([^&]+)$
assert_eq $put $files/$id?exp=$exp&sig=$sig
assert_eq $get $files/$id
# fishchat_files_slot_ttl: 10m by default
assert_near $exp $NOW+600 5
# the slot is in Redis, owned by alice
redis_expect alice HGET ${PREFIX}file:{$id} owner
redis_expect slot HGET ${PREFIX}file:{$id} state
redis_expect 48213 HGET ${PREFIX}file:{$id} size
redis_expect image/png HGET ${PREFIX}file:{$id} type
# another slot: another id, another signature
send a FILE_SLOT photo.png 48213 image/png
recv a FILE_SLOT * * * *
capture a id2 0
capture a put2 1
capture_re sig2 $put2 [?&]sig=([^&]+)$
assert_ne $id $id2
assert_ne $sig $sig2
# sizes 1 and exactly the maximum (100m) are fine; one more is too large,
# and the session goes on
send b FILE_SLOT a.bin 1 application/octet-stream
recv b FILE_SLOT * * * *
send b FILE_SLOT a.bin 104857600 application/octet-stream
recv b FILE_SLOT * * * *
send b FILE_SLOT a.bin 104857601 application/octet-stream
recv b ERROR FILE_TOO_LARGE 104857600
send b SEND_PING PING
recv b PONG
# the type is lower-cased; a name with spaces and UTF-8 is fine
send b FILE_SLOT "r\u{e9}sum\u{e9} v2.PDF" 10 Application/PDF
recv b FILE_SLOT * * * *
capture b id3 0
redis_expect application/pdf HGET ${PREFIX}file:{$id3} type
redis_expect "r\u{e9}sum\u{e9} v2.PDF" HGET ${PREFIX}file:{$id3} name
# BAD_ARGS, each closing the session: size 0, not a number, negative,
# a name with '/', an empty name, a name of 256 bytes, a control
# character, a type without '/', a type with a space, a missing type
send b FILE_SLOT a.txt 0 text/plain
recv b ERROR BAD_ARGS *
closed b
hello_login b2 bob
send b2 FILE_SLOT a.txt 12a text/plain
recv b2 ERROR BAD_ARGS *
closed b2
hello_login b3 bob
send b3 FILE_SLOT a.txt -1 text/plain
recv b3 ERROR BAD_ARGS *
closed b3
hello_login b4 bob
send b4 FILE_SLOT ../etc/passwd 10 text/plain
recv b4 ERROR BAD_ARGS *
closed b4
hello_login b5 bob
send b5 FILE_SLOT "" 10 text/plain
recv b5 ERROR BAD_ARGS *
closed b5
set_repeat long x 256
hello_login b6 bob
send b6 FILE_SLOT $long 10 text/plain
recv b6 ERROR BAD_ARGS *
closed b6
hello_login b7 bob
send b7 FILE_SLOT "a\tb.txt" 10 text/plain
recv b7 ERROR BAD_ARGS *
closed b7
hello_login b8 bob
send b8 FILE_SLOT a.txt 10 textplain
recv b8 ERROR BAD_ARGS *
closed b8
hello_login b9 bob
send b9 FILE_SLOT a.txt 10 "text/pl ain"
recv b9 ERROR BAD_ARGS *
closed b9
hello_login b10 bob
send b10 FILE_SLOT a.txt 10
recv b10 ERROR BAD_ARGS *
closed b10
# a name of exactly 255 bytes is fine
set_repeat long x 255
hello_login b11 bob
send b11 FILE_SLOT $long 10 text/plain
recv b11 FILE_SLOT * * * *
# seed clients: an unknown command, the close
connect s
send s SEND_CLIENT_ID sam
send s FILE_SLOT a.txt 10 text/plain
closed s
send a SEND_PING PING
recv a PONG
--- error_log
fishchat msg: UNKNOWN_COMMAND: unknown command "FILE_SLOT"
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 2: the round trip: PUT the bytes (201, the SHA-256), stored under <sha[0..1]>/<sha>; GET with the safety headers, ETag/If-None-Match, If-Modified-Since, Range, HEAD; images and video get no Content-Disposition, HTML does; a 3 MB file
--- scenario
files_login
body t 5000
files_put id t text/plain name=notes.txt
resp_json id $id
resp_json sha256 $t_sha256
resp_json size 5000
resp_json type text/plain
resp_json url $id_get
capture_re d $t_sha256 ^(..)
file_sha store/$d/$t_sha256 $t_sha256
tree_count store 1
redis_wait ready HGET ${PREFIX}file:{$id} state
redis_wait $t_sha256 HGET ${PREFIX}file:{$id} sha256
# the download
http GET $id_get 200
resp_body t
resp_len 5000
resp_header Content-Type text/plain
resp_header X-Content-Type-Options nosniff
resp_header Content-Security-Policy "sandbox; default-src 'none'"
resp_header Content-Disposition "attachment; filename*=UTF-8''notes.txt"
resp_disposition notes.txt
resp_header_var etag ETag
resp_header_var lm Last-Modified
http GET $id_get 304 "h=If-None-Match:$etag"
resp_header ETag $etag
http GET $id_get 200 "h=If-None-Match:\"0-0\""
resp_len 5000
http GET $id_get 304 "h=If-Modified-Since:$lm"
# a range
http GET $id_get 206 h=Range:bytes=0-99
resp_len 100
resp_body t 0 100
resp_header Content-Range "bytes 0-99/5000"
resp_header X-Content-Type-Options nosniff
http GET $id_get 206 h=Range:bytes=4990-
resp_body t 4990 10
# HEAD: the headers, no body
http HEAD $id_get 200
resp_len 0
resp_header Content-Length 5000
resp_header X-Content-Type-Options nosniff
# an image: no Content-Disposition, the slot's type
body p 3000 binary
files_put pid p image/png client=b name=cat.png
resp_json sha256 $p_sha256
http GET $pid_get 200
resp_body p
resp_header Content-Type image/png
resp_header Content-Disposition -
resp_header X-Content-Type-Options nosniff
resp_header Content-Security-Policy "sandbox; default-src 'none'"
capture_re pd $p_sha256 ^(..)
file_sha store/$pd/$p_sha256 $p_sha256
tree_count store 2
# audio and video are shown inline too; anything else is an attachment
body v 100 binary
files_put vid v video/webm client=b name=clip.webm
http GET $vid_get 200
resp_header Content-Disposition -
body h 200
files_put hid h text/html client=b name=page.html
http GET $hid_get 200
resp_header Content-Type text/html
resp_header Content-Disposition "attachment; filename*=UTF-8''page.html"
resp_header Content-Security-Policy "sandbox; default-src 'none'"
# a larger file: written to a temporary file, hashed in the thread pool,
# sent with sendfile
body m 3000000 binary
files_put mid m application/octet-stream name=big.bin
resp_json sha256 $m_sha256
resp_json size 3000000
http GET $mid_get 200
resp_body m
resp_header Content-Length 3000000
http GET $mid_get 206 h=Range:bytes=1000000-1000999
resp_body m 1000000 1000
capture_re md $m_sha256 ^(..)
file_sha store/$md/$m_sha256 $m_sha256
tree_count store 5
tree_wait_empty store/.tmp
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: GET /files/<id>/info: id, name, type (lower-cased), size, sha256, created, expires (30 days); the name percent-encoded in Content-Disposition
--- scenario
files_login
body r 3000 binary
send b FILE_SLOT "r\u{e9}sum\u{e9} v2.pdf" 3000 Application/PDF
recv b FILE_SLOT * * * *
capture b id 0
capture b put 1
capture b get 2
http PUT $put 201 body=r h=Content-Type:application/pdf
resp_json type application/pdf
http GET $get/info 200
resp_json id $id
resp_json name "r\u{e9}sum\u{e9} v2.pdf"
resp_json type application/pdf
resp_json size 3000
resp_json sha256 $r_sha256
resp_json_var created created
assert_like $created ^\d+$
resp_json_var expires expires
# fishchat_files_ttl: 30d by default
assert_near $expires $NOW+2592000 60
http GET $get 200
resp_body r
resp_header Content-Type application/pdf
resp_disposition "r\u{e9}sum\u{e9} v2.pdf"
# no such id
http GET $files/0123456789abcdef0123456789abcdef/info 404
resp_json error.code NO_SUCH_FILE
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 4: PUT refusals (each with a JSON body): no signature, another size, another type, a wrong or foreign signature, a changed expiry, an expired URL, a used slot; GET of an unknown id, of a slot not uploaded, of what is no id (the store itself, the temporary files); other methods 405; nothing partial left in the store
--- scenario
files_login
body t 5000
body t2 4999
send a FILE_SLOT notes.txt 5000 text/plain
recv a FILE_SLOT * * * *
capture a id 0
capture a put 1
capture a get 2
capture a exp 3
capture_re sig $put [?&]sig=([^&]+)$
send a FILE_SLOT other.txt 5000 text/plain
recv a FILE_SLOT * * * *
capture a oid 0
capture a oput 1
capture a oexp 3
capture_re osig $oput [?&]sig=([^&]+)$
# no exp and sig
http PUT $get 400 body=t h=Content-Type:text/plain
resp_json error.code BAD_REQUEST
resp_json error *
# another size: a shorter body, or a longer one
http PUT $put 400 body=t2 h=Content-Type:text/plain
resp_json error.code BAD_REQUEST
body t3 5001
http PUT $put 400 body=t3 h=Content-Type:text/plain
resp_json error.code BAD_REQUEST
# another type
http PUT $put 400 body=t h=Content-Type:image/png
resp_json error.code BAD_REQUEST
# a wrong signature, the other slot's, and a changed expiry
flip bad $sig
http PUT $files/$id?exp=$exp&sig=$bad 403 body=t h=Content-Type:text/plain
resp_json error.code FORBIDDEN
http PUT $files/$id?exp=$oexp&sig=$osig 403 body=t h=Content-Type:text/plain
resp_json error.code FORBIDDEN
http PUT $files/$id?exp=$exp+60&sig=$sig 403 body=t h=Content-Type:text/plain
resp_json error.code FORBIDDEN
# an expired URL (the signature does not match either: the expiry first)
http PUT $files/$id?exp=1000000000&sig=$sig 403 body=t h=Content-Type:text/plain
resp_json error.code SLOT_EXPIRED
# a slot not uploaded yet: 404 on GET
http GET $get 404
resp_json error.code NO_SUCH_FILE
# none of these took the slot or stored anything
redis_wait slot HGET ${PREFIX}file:{$id} state
tree_count store 0
# the good PUT, then a second one
http PUT $put 201 body=t h=Content-Type:text/plain
resp_json sha256 $t_sha256
http PUT $put 409 body=t h=Content-Type:text/plain
resp_json error.code SLOT_USED
# the other slot, the URL of the first: another id, another signature
http PUT $files/$oid?exp=$exp&sig=$sig 403 body=t h=Content-Type:text/plain
resp_json error.code FORBIDDEN
# GETs of what is not there
http GET $files/0123456789abcdef0123456789abcdef 404
resp_json error.code NO_SUCH_FILE
http GET $files/xx/whatever 404
resp_json error.code *
http GET $files/ 404
resp_json error.code *
http GET $files/$id/other 404
resp_json error.code *
# the store is reached through ids only: not by the hash, not the
# temporary files
capture_re d $t_sha256 ^(..)
http GET $files/$d/$t_sha256 404
resp_json error.code *
http GET $files/.tmp/ 404
http GET $files/.keep 404
# other methods
http DELETE $get 405
resp_json error.code METHOD_NOT_ALLOWED
http POST $put 405 body=t h=Content-Type:text/plain
resp_json error.code METHOD_NOT_ALLOWED
http DELETE $put 405
resp_json error.code METHOD_NOT_ALLOWED
# the file is served still; nothing else is in the store
http GET $get 200
resp_body t
tree_count store 1
file_sha store/$d/$t_sha256 $t_sha256
tree_wait_empty store/.tmp
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 5: fishchat_files_max_size 1k: FILE_SLOT over it FILE_TOO_LARGE 1024 (non-fatal); a PUT with a Content-Length over it 413 (checked before the slot's size)
--- main_config
    fishchat_files_max_size 1k;
--- scenario
files_login
send a FILE_SLOT big.bin 1025 application/octet-stream
recv a ERROR FILE_TOO_LARGE 1024
send a SEND_PING PING
recv a PONG
send a FILE_SLOT max.bin 1024 application/octet-stream
recv a FILE_SLOT * * * *
send a FILE_SLOT a.bin 1000 application/octet-stream
recv a FILE_SLOT * * * *
capture a put 1
capture a get 2
body big 2000 binary
body ok 1000 binary
http PUT $put 413 body=big h=Content-Type:application/octet-stream
resp_json error.code FILE_TOO_LARGE
# a Content-Length over the maximum with a shorter body: refused as soon
# as the headers are read
http PUT $put 413 body=ok length=1048577 h=Content-Type:application/octet-stream
resp_json error.code FILE_TOO_LARGE
http PUT $put 201 body=ok h=Content-Type:application/octet-stream
resp_json size 1000
http GET $get 200
resp_body ok
tree_count store 1
tree_wait_empty store/.tmp
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: fishchat_files_quota 10k: slots are counted against the stored files only; once 8k are stored, a 4k slot is QUOTA_EXCEEDED (non-fatal), a 2000-byte one is fine; another id has its own quota
--- main_config
    fishchat_files_quota 10k;
--- scenario
files_login
# nothing stored yet: slots of 8k and 4k are both fine
send a FILE_SLOT a.bin 8192 application/octet-stream
recv a FILE_SLOT * * * *
capture a put 1
send a FILE_SLOT b.bin 4096 application/octet-stream
recv a FILE_SLOT * * * *
send a FILE_SLOT c.bin 10240 application/octet-stream
recv a FILE_SLOT * * * *
body a8 8192 binary
http PUT $put 201 body=a8 h=Content-Type:application/octet-stream
redis_wait 8192 HGET ${PREFIX}files:{alice} used
send a FILE_SLOT d.bin 4096 application/octet-stream
recv a ERROR QUOTA_EXCEEDED *
send a SEND_PING PING
recv a PONG
send a FILE_SLOT e.bin 2000 application/octet-stream
recv a FILE_SLOT * * * *
# bob stored nothing
send b FILE_SLOT d.bin 4096 application/octet-stream
recv b FILE_SLOT * * * *
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 7: the same bytes twice (two ids, two owners): both 201 with the same SHA-256, one file in the store, both GET URLs serve it with their own names
--- scenario
files_login
body s 3000
send a FILE_SLOT one.txt 3000 text/plain
recv a FILE_SLOT * * * *
capture a id1 0
capture a put1 1
capture a get1 2
send b FILE_SLOT two.txt 3000 text/plain
recv b FILE_SLOT * * * *
capture b id2 0
capture b put2 1
capture b get2 2
http PUT $put1 201 body=s h=Content-Type:text/plain
resp_json sha256 $s_sha256
resp_json id $id1
http PUT $put2 201 body=s h=Content-Type:text/plain
resp_json sha256 $s_sha256
resp_json id $id2
tree_count store 1
capture_re d $s_sha256 ^(..)
file_sha store/$d/$s_sha256 $s_sha256
tree_wait_empty store/.tmp
http GET $get1 200
resp_body s
resp_disposition one.txt
http GET $get2 200
resp_body s
resp_disposition two.txt
http GET $get2/info 200
resp_json sha256 $s_sha256
resp_json name two.txt
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 8: an upload under way makes a second PUT 409 SLOT_USED; abandoned by its client, it frees the slot: the next PUT is 201, and no temporary file is left
--- scenario_timeout: 5
--- scenario
files_login
body big 100000 binary
send a FILE_SLOT big.bin 100000 application/octet-stream
recv a FILE_SLOT * * * *
capture a id 0
capture a put 1
capture a get 2
# the headers and 1000 bytes of the body, and the client stops there
http_open u PUT $put part=1000 body=big h=Content-Type:application/octet-stream
redis_wait uploading HGET ${PREFIX}file:{$id} state
http PUT $put 409 body=big h=Content-Type:application/octet-stream
resp_json error.code SLOT_USED
http GET $get 404
http_close u
# the server notices the close, drops the temporary file, frees the slot
http_retry PUT $put 201 body=big h=Content-Type:application/octet-stream
resp_json sha256 $big_sha256
resp_json size 100000
http GET $get 200
resp_body big
tree_count store 1
tree_wait_empty store/.tmp
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 9: chat goes on: a file's GET URL sent as a message, received, acknowledged and downloaded
--- scenario
files_login
body t 777
files_put id t text/plain name=hello.txt
send a SEND_MESSAGE_P2P bob $id_get alice r1
recv a ACCEPTED r1 *
recv b RESP_MESSAGE_P2P $id_get alice *
capture b u 2
send b P2P_ACK bob $u
http GET $id_get 200
resp_body t
send b SEND_MESSAGE_P2P alice thanks bob r2
recv b ACCEPTED r2 *
recv a RESP_MESSAGE_P2P thanks bob *
no_frame a
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 10: without fishchat_files_url, FILE_SLOT is UNKNOWN_COMMAND and not fatal
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
--- config
--- scenario
hello_login a alice
send a FILE_SLOT a.txt 10 text/plain
recv a ERROR UNKNOWN_COMMAND *
send a SEND_PING PING
recv a PONG
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 11: probing: a PNG, an Opus voice note and an MP4 are described (duration, container, codecs, size, a waveform of 64 values), their thumbnails served as JPEGs of at most 320 px; garbage, an HLS playlist and a concat list naming /etc/passwd, all labelled video/mp4, are kept as plain files
--- user_files
>>> store/.keep
>>> list.m3u8
#EXTM3U
#EXT-X-TARGETDURATION:1
#EXTINF:1,
file:///etc/passwd
#EXT-X-ENDLIST
>>> list.ffconcat
ffconcat version 1.0
file '/etc/passwd'
file 'file:/etc/passwd'
--- scenario_timeout: 20
--- scenario
files_login
make_media img.png png
make_media voice.ogg opus
make_media clip.mp4 mp4
body_file png img.png
body_file ogg voice.ogg
body_file mp4 clip.mp4
body_file m3u list.m3u8
body_file cat list.ffconcat
body junk 3000 binary
# the image
files_put id png image/png name=img.png
http GET $id_get/info 200
resp_json container png_pipe
resp_json width 640
resp_json height 480
resp_like "codecs":\["png"\]
resp_json waveform -
resp_json probe_error -
http GET $id_get/thumb 200
resp_header Content-Type image/jpeg
resp_header X-Content-Type-Options nosniff
resp_jpeg 320 240
# the voice note
files_put id ogg audio/ogg name=voice.ogg
http GET $id_get/info 200
resp_json container ogg
resp_like "codecs":\["opus"\]
resp_like "duration":3\.0\d*,
resp_like "waveform":\[(?:\d+,){63}\d+\]
resp_like "waveform":\[(?:(?:[89]\d\d|10[0-2]\d),){63}
resp_json width -
http GET $id_get/thumb 404
resp_json error.code NO_SUCH_FILE
# the video
files_put id mp4 video/mp4 name=clip.mp4
http GET $id_get/info 200
resp_like "container":"mov,mp4,m4a,3gp,3g2,mj2"
resp_like "codecs":\["h264","aac"\]
resp_like "duration":2\.\d+,
resp_json width 640
resp_json height 360
resp_like "bitrate":\d+
http GET $id_get/thumb 200
resp_jpeg 320 180
# hostile or broken files labelled video/mp4: plain files, said so
files_put id m3u video/mp4 name=list.mp4
http GET $id_get/info 200
resp_like "probe_error":"[^"]+"
resp_json duration -
resp_json container -
http GET $id_get 200
resp_body m3u
files_put id cat video/mp4 name=cat.mp4
http GET $id_get/info 200
resp_like "probe_error":"[^"]+"
resp_json duration -
resp_json container -
http GET $id_get/thumb 404
files_put id junk video/mp4 name=junk.mp4
http GET $id_get/info 200
resp_like "probe_error":"[^"]+"
http GET $id_get/thumb 404
send b SEND_PING
recv b PONG
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 12: probing: a video turned by its display matrix is described and thumbnailed as displayed (360 x 640, a 180 x 320 JPEG); an MP3's cover picture is its thumbnail, and the MP3 has a waveform and no size; a PNG with transparency is thumbnailed
--- user_files
>>> store/.keep
--- scenario_timeout: 20
--- scenario
files_login
make_media rot.mp4 mp4rot
make_media song.mp3 mp3cover
make_media alpha.png pnga
body_file rot rot.mp4
body_file mp3 song.mp3
body_file pnga alpha.png
# the turned video
files_put id rot video/mp4 name=rot.mp4
http GET $id_get/info 200
resp_like "codecs":\["h264","aac"\]
resp_json width 360
resp_json height 640
http GET $id_get/thumb 200
resp_jpeg 180 320
# the song and its cover
files_put id mp3 audio/mpeg name=song.mp3
http GET $id_get/info 200
resp_json container mp3
resp_like "codecs":\["mp3","png"\]
resp_like "waveform":\[(?:\d+,){63}\d+\]
resp_json width -
http GET $id_get/thumb 200
resp_jpeg 320 240
# the picture with an alpha channel
files_put id pnga image/png name=alpha.png
http GET $id_get/info 200
resp_json width 64
resp_json height 48
http GET $id_get/thumb 200
resp_jpeg 64 48
send b SEND_PING
recv b PONG
--- no_error_log
[error]
[alert]
[emerg]
