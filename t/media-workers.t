# Audio and video with more than one worker, and chat while a recording is
# remuxed (issue 14).  Real ffmpeg publishes to the nginx-rtmp-module
# compiled into the same nginx; see t/media.t for the hooks, HLS and
# recordings with one worker.
#
# TEST 1 (worker_processes 2, rtmp_auto_push on): nginx-rtmp's auto-push
# relays a stream from the publisher's worker to the other one over a
# unix socket (rtmp_socket_dir: the servroot's logs/, private to the
# test).  Who handles a connection: error.log (level info) has the worker
# pid in every line, and nginx-rtmp logs each publish and play there;
# every player's URL carries an argument of its own (&try=B.I) to find its
# line.  nginx-rtmp's HLS writer leaves auto-pushed streams alone, so the
# files come from the publisher's worker; the HLS location (a port of its
# own, reuseport) adds the serving worker's pid as X-Worker.
#
# The relay's play on the publisher's worker goes through on_play (and
# on_update) with no token: fishchat_media_hooks lets it through by its
# "addr", the unix socket (nginx-rtmp writes it first in the form, before
# the client's arguments), and counts no viewer for it.
#
# TEST 2 (worker_processes 1): a 60 s FLV, made before anything is
# measured, is remuxed as nginx-rtmp's on_record_done would have it (the
# hook's form POSTed), and SEND_PING round trips of a logged-in client are
# measured during the remux and, in the same test, without one.  The FLV
# is about 2 MB and remuxes in about 10 ms: back to back, a few hundred
# round trips fit in that window.
#
# Local steps:
#   rtmp_publisher VAR STREAM      wait for nginx-rtmp's "publish:" line of
#                                  STREAM from a TCP client (the
#                                  publisher): $VAR is its worker's pid
#   rtmp_relayed VAR STREAM PID    wait for the "publish:" line of STREAM
#                                  on another worker than PID from the
#                                  auto-push unix socket: $VAR is its pid
#   rtmp_play_other URL PID        players (ffprobe, 2 s of the stream
#                                  each) in batches of 4 at a time, at
#                                  most 5 batches, until one is on another
#                                  worker than PID; every player must get
#                                  H.264 and AAC packets.  $other is the
#                                  other worker's pid, $players how many
#                                  ran
#   hls_both_workers URL PID1 PID2 GET the playlist URL and its first
#                                  segment, a new connection each, until
#                                  each worker has served both (at most
#                                  24 rounds)
#   make_flv PATH SECS             ffmpeg makes SECS of testsrc 320x240@25
#                                  (libx264 ultrafast, keyframe every 25
#                                  frames) and a sine (AAC) into the FLV
#                                  PATH (relative to servroot/html)
#   remux_pings NAME CLIENT STREAM FLV
#                                  POST record_done for STREAM with the
#                                  FLV (relative to servroot/html), then
#                                  ping back to back until vod/STREAM.mp4
#                                  is there (the remux renames it into
#                                  place as it ends): the round trips that
#                                  ended before it was seen, in $NAME_*
#                                  as ping_stats; $NAME_secs is the
#                                  window (from the hook's answer to the
#                                  MP4), $NAME_after the round trip that
#                                  straddled the end (not counted)
#   (ping_stats and latency_bound are Test::FishChat::Steps', with the
#   bound's reasons)
#   mp4_duration FILE SECS TOL     ffprobe: the duration of FILE is SECS
#                                  within TOL

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Media;

use IO::Select ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();

repeat_each(1);
no_shuffle();
no_root_location();
master_on();

# info, not debug: every line the event loop writes costs it time (TEST 2
# measures it), and nginx-rtmp logs what TEST 1 needs at info
log_level('info');

# --- fc_workers: N (default 1); set before each block's nginx starts
add_block_preprocessor(sub {
    my $block = shift;
    my $n = $block->fc_workers // 1;
    $n =~ s/\s+//g;
    workers($n);
});

# --------------------------------------------------------------------------
# TEST 1: which worker has what

sub _log_since {
    my $sc = shift;
    return Test::FishChat::_chars($sc->error_log_since_start);
}

sub _wait_log_re {
    my ($sc, $qr, $what) = @_;
    my $deadline = $sc->deadline;
    while (1) {
        my @m = _log_since($sc) =~ $qr;
        return @m if @m;
        die "no error.log line for $what within $sc->{timeout} s\n"
            if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.05);   # polling the log, bounded
    }
}

Test::FishChat::add_step(rtmp_publisher => sub {
    my ($sc, $rest) = @_;
    my ($var, $s) = $sc->tokens($rest);
    die "usage: rtmp_publisher VAR STREAM\n" if !defined $s;
    my ($pid) = _wait_log_re($sc,
        qr/^\S+ \S+ \[info\] (\d+)#\d+: \*\d+ publish: name='\Q$s\E' .*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/m,
        "the publish of $s from 127.0.0.1");
    $sc->var($var, $pid);
});

Test::FishChat::add_step(rtmp_relayed => sub {
    my ($sc, $rest) = @_;
    my ($var, $s, $not) = $sc->tokens($rest);
    die "usage: rtmp_relayed VAR STREAM PID\n" if !defined $not;
    # the auto-push connection comes in on the unix socket: no client
    # address
    my $qr = qr/^\S+ \S+ \[info\] (\d+)#\d+: \*\d+ publish: name='\Q$s\E' .*, client: , server: /m;
    my $deadline = $sc->deadline;
    while (1) {
        my ($pid) = grep { $_ ne $not } _log_since($sc) =~ /$qr/g;
        if (defined $pid) {
            $sc->var($var, $pid);
            return;
        }
        die "no auto-push publish of $s on another worker than $not "
            . "within $sc->{timeout} s\n" if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.05);   # polling the log, bounded
    }
});

# one ffprobe in the background: its pid and output file
sub _probe_start {
    my ($sc, $url, $out, $limit) = @_;
    my $pid = fork() // die "fork: $!\n";
    if (!$pid) {
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        # 2 s of the stream, its packets counted per stream
        exec 'timeout', '-k', '2', $limit, 'ffprobe', '-v', 'error',
             '-read_intervals', '%+2', '-count_packets',
             '-show_entries', 'stream=codec_name,nb_read_packets',
             '-of', 'csv=p=0', $url;
        POSIX::_exit(127);
    }
    return $pid;
}

sub _slurp {
    my $f = shift;
    open my $in, '<', $f or return '';
    local $/;
    my $d = <$in> // '';
    close $in;
    return $d;
}

# "h264 aac" from ffprobe's csv: the codecs of the streams with packets
sub _codecs {
    my $text = shift;
    my (%seen, @c);
    for my $l (split /\r?\n/, $text) {
        my ($codec, $n) = split /,/, $l;
        next if !defined $n || $n !~ /^\d+$/ || $n == 0 || $seen{$codec}++;
        push @c, $codec;
    }
    return join ' ', sort { $b cmp $a } @c;     # "h264 aac"
}

Test::FishChat::add_step(rtmp_play_other => sub {
    my ($sc, $rest) = @_;
    my ($url, $pubpid) = $sc->tokens($rest);
    die "usage: rtmp_play_other URL PID\n" if !defined $pubpid;

    my $limit = 5 + 2 * $sc->timeout;
    my $logdir = $Test::Nginx::Util::LogDir;
    my (@seen, $other);

    for my $batch (1 .. 5) {
        my %p;
        for my $i (1 .. 4) {
            my $id = "$batch.$i";
            my $out = "$logdir/ffprobe-play-$id.log";
            $p{$id} = { out => $out,
                        pid => _probe_start($sc, "$url&try=$id", $out,
                                            $limit) };
        }

        # every one ends by itself (2 s of the stream) or at its limit
        my $until = Time::HiRes::time() + $limit + 3;
        for my $id (sort keys %p) {
            my $pr = $p{$id};
            while (waitpid($pr->{pid}, POSIX::WNOHANG()) == 0) {
                if (Time::HiRes::time() >= $until) {
                    kill 'KILL', -$pr->{pid};
                    waitpid($pr->{pid}, 0);
                    last;
                }
                Time::HiRes::sleep(0.02);   # polling the children, bounded
            }
            $pr->{rc} = $? >> 8;
        }

        my $log = _log_since($sc);
        for my $id (sort keys %p) {
            my $pr = $p{$id};
            my ($wpid) = $log =~ /^\S+ \S+ \[info\] (\d+)#\d+: \*\d+ play: name='[^']*' args='[^']*&try=\Q$id\E'/m;
            my $text = _slurp($pr->{out});
            my $codecs = _codecs($text);
            $wpid //= '?';
            push @seen, "$id: worker $wpid, exit $pr->{rc}, \"$codecs\"";
            die "player $id (worker $wpid, the publisher's is $pubpid) "
                . "did not get H.264 and AAC: exit $pr->{rc}, ffprobe "
                . "said: $text\n    players so far: " . join('; ', @seen)
                . "\n" if $pr->{rc} != 0 || $codecs ne 'h264 aac';
            die "no play line of player $id in error.log\n"
                if $wpid eq '?';
            $other //= $wpid if $wpid ne $pubpid;
        }

        if (defined $other) {
            $sc->var('other', $other);
            $sc->var('players', scalar @seen);
            Test::More::note("players: " . join('; ', @seen));
            return;
        }
    }

    die "20 players, none on another worker than the publisher's "
        . "($pubpid): " . join('; ', @seen) . "\n";
});

Test::FishChat::add_step(hls_both_workers => sub {
    my ($sc, $rest) = @_;
    my ($url, @pids) = $sc->tokens($rest);
    die "usage: hls_both_workers URL PID1 PID2\n" if @pids != 2;
    my %want = map { $_ => 0 } @pids;
    my @seen;
    (my $dir = $url) =~ s{[^/]+\z}{};

    for my $round (1 .. 24) {
        Test::FishChat::Steps::run_steps($sc,
            "http_get m3u8 $url",
            "http_header_var wp X-Worker");
        my $m3u8 = $sc->var('m3u8');
        die "GET $url: " . $sc->var('http_status') . ", body: $m3u8\n"
            if $sc->var('http_status') ne '200' || $m3u8 !~ /\A#EXTM3U\n/;
        my ($seg) = $m3u8 =~ /^([^#\s]\S*\.ts)\s*$/m
            or die "no segment in the playlist: $m3u8\n";
        Test::FishChat::Steps::run_steps($sc,
            "http_get ts $dir$seg",
            "http_header_var ws X-Worker");
        die "GET $dir$seg: " . $sc->var('http_status') . ", "
            . length($sc->var('ts')) . " bytes\n"
            if $sc->var('http_status') ne '200' || !length $sc->var('ts');
        my ($wp, $ws) = ($sc->var('wp'), $sc->var('ws'));
        for ([$wp, 1, 'playlist'], [$ws, 2, 'segment']) {
            my ($w, $bit, $what) = @$_;
            die "$what served by $w, no worker of this nginx (@pids)\n"
                if !exists $want{$w};
            $want{$w} |= $bit;
        }
        push @seen, "$wp/$ws";
        if (!grep { $_ != 3 } values %want) {
            Test::More::note("HLS answers (playlist/segment): "
                             . join(' ', @seen));
            return;
        }
    }

    die "24 rounds, not both workers served the playlist and a segment: "
        . join(' ', @seen) . "\n";
});

# --------------------------------------------------------------------------
# TEST 2: chat round trips while a recording is remuxed

Test::FishChat::add_step(make_flv => sub {
    my ($sc, $rest) = @_;
    my ($path, $secs) = $sc->tokens($rest);
    die "usage: make_flv PATH SECS\n" if !defined $secs;
    $path = $sc->path($path);
    # a 60 s encode at ultrafast takes a few seconds; give it a minute on
    # a loaded box (5 under valgrind: it is no nginx, but the box is busy)
    my $limit = 60 * $Test::FishChat::TimeoutScale;
    my $out = `timeout -k 2 $limit ffmpeg -nostdin -loglevel error -y \\
        -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine=frequency=440 \\
        -t $secs -c:v libx264 -g 25 -preset ultrafast -pix_fmt yuv420p \\
        -c:a aac -f flv '$path' 2>&1`;
    die "ffmpeg could not make $path (exit " . ($? >> 8) . "): $out\n"
        if $? != 0 || !-s $path;
});


Test::FishChat::add_step(remux_pings => sub {
    my ($sc, $rest) = @_;
    my ($name, $cname, $s, $flv) = $sc->tokens($rest);
    die "usage: remux_pings NAME CLIENT STREAM FLV\n" if !defined $flv;
    my $c = $sc->client($cname);
    my $mp4 = $sc->path("vod/$s.mp4");
    my $path = $sc->path($flv);
    die "$mp4 is there before the remux\n" if -e $mp4;

    # the form nginx-rtmp's on_record_done POSTs (notify_method post)
    my $body = "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2F"
               . "127.0.0.1%2Flive&pageurl=&addr=127.0.0.1&clientid=7"
               . "&call=record_done&recorder=&name=$s&path=$path";
    my $port = Test::Nginx::Util::server_port();
    my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => $sc->timeout)
        or die "connect to 127.0.0.1:$port: $!\n";
    my $req = "POST /hook HTTP/1.0\r\nHost: localhost\r\n"
              . "Content-Type: application/x-www-form-urlencoded\r\n"
              . "Content-Length: " . length($body) . "\r\n\r\n$body";
    syswrite($h, $req) == length $req or die "write to /hook: $!\n";
    my ($resp, $sel, $until) = ('', IO::Select->new($h), $sc->deadline);
    while (1) {
        my $left = $until - Time::HiRes::time();
        die "no whole answer from /hook within $sc->{timeout} s: $resp\n"
            if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($h, $resp, 4096, length $resp);
        die "read from /hook: $!\n" if !defined $n;
        last if $n == 0;
    }
    close $h;
    die "record_done: " . substr($resp, 0, 300) . "\n"
        if $resp !~ m{^HTTP/1\.\d 200};

    # the module posted the remux to its thread pool before it answered:
    # from here until the MP4 is renamed into place, the remux runs
    my $start = Time::HiRes::time();
    my $deadline = $sc->deadline;
    my (@in, $after);
    while (1) {
        my $ms = Test::FishChat::Steps::ping_once($sc, $c);
        # the round trip ended before this stat: if the MP4 is not there
        # yet, the whole round trip was within the remux
        if (-e $mp4) {
            $after = $ms;
            last;
        }
        push @in, $ms;
        die "no $mp4 within $sc->{timeout} s (" . scalar(@in)
            . " round trips meanwhile)\n" if Time::HiRes::time() >= $deadline;
    }
    $sc->var("${name}_secs", sprintf '%.3f', Time::HiRes::time() - $start);
    $sc->var("${name}_after", sprintf '%.3f', $after);
    if (@in) {
        Test::FishChat::Steps::ping_figures($sc, $name, @in);
    } else {
        $sc->var("${name}_n", 0);
    }
});


Test::FishChat::add_step(mp4_duration => sub {
    my ($sc, $rest) = @_;
    my ($file, $secs, $tol) = $sc->tokens($rest);
    die "usage: mp4_duration FILE SECS TOL\n" if !defined $tol;
    $file = $sc->path($file);
    my $limit = 5 + 2 * $sc->timeout;
    my $d = `timeout -k 2 $limit ffprobe -v error -show_entries format=duration -of csv=p=0 '$file' 2>&1`;
    chomp $d;
    die "duration of $file is '$d', not $secs within $tol\n"
        if $d !~ /^[\d.]+$/ || abs($d - $secs) > $tol;
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: two workers: publish on one, play on the other (rtmp_auto_push relays it, H.264 + AAC); HLS from the publisher's worker, served by both
--- fc_workers: 2
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_media_rtmp_url rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live;
    fishchat_media_hls_url http://127.0.0.1:$TEST_NGINX_FC_PORT6/hls;
    rtmp_auto_push on;
    rtmp_socket_dir $TEST_NGINX_SERVER_ROOT/logs;
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
--- http_config
    # HLS on a port of its own with reuseport: each new connection goes
    # to either worker (the kernel hashes its address), so both serve some
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT6 reuseport;
        location /hls/ {
            fishchat_media_hls;
            alias $TEST_NGINX_SERVER_ROOT/html/hls/;
            log_not_found off;
            add_header X-Worker $pid always;
        }
    }
--- config
    location = /hook {
        fishchat_media_hooks;
    }
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario_timeout: 8
--- scenario
# alice and bob on different workers: the notices reach both
workers_login
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
capture a u 2
# long enough for up to 5 batches of 2-second players and the HLS rounds
ffmpeg_publish p $u 20
wait_file hls/$s.m3u8
recv a MEDIA_LIVE topic:room $s alice *
recv b MEDIA_LIVE topic:room $s alice *
rtmp_publisher pub $s
rtmp_relayed relay $s $pub
send b MEDIA_PLAY $s
recv b MEDIA_PLAY $s * *
capture b purl 1
capture_re ptok $purl /hls/([^/]+)/
rtmp_play_other rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live/$s?token=$ptok $pub
assert_eq $other $relay
# the relayed stream is no second publish: one MEDIA_LIVE each
no_frame a 0.2
no_frame b 0.1
hls_both_workers $purl $pub $other
ffprobe_like $purl ^h264 aac$
ffmpeg_wait p 0
recv a MEDIA_ENDED topic:room $s alice *
recv b MEDIA_ENDED topic:room $s alice *
--- no_error_log
[error]
[alert]
[emerg]


=== TEST 2: one worker: chat round trips are not slowed while a 60 s recording is remuxed in the thread pool
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_media_rtmp_url rtmp://127.0.0.1:$TEST_NGINX_FC_PORT5/live;
    fishchat_media_hls_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/hls;
    fishchat_media_vod_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod;
--- config
    location = /hook {
        fishchat_media_hooks;
        fishchat_media_record_path $TEST_NGINX_SERVER_ROOT/html/rec;
        fishchat_media_vod_path $TEST_NGINX_SERVER_ROOT/html/vod;
    }
--- stream_server_config
    fishchat_msg;
--- user_files
>>> rec/.keep
>>> vod/.keep
--- scenario_timeout: 10
--- scenario
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send a MEDIA_PUBLISH topic:room
recv a MEDIA_PUBLISH topic:room * * *
capture a s 1
# c pings: no member of the room, so no notice comes between its PONGs
hello_login c carol
# the recording nginx-rtmp would have made (record_path/<stream>.flv),
# before anything is measured
make_flv rec/$s.flv 60
# warm up (the first round trips pay for page faults), then the baseline
ping_stats warm c 50
ping_stats base c 200
remux_pings during c $s rec/$s.flv
latency_bound during base 20
# (wait_log takes no variables; this block remuxes one recording only)
wait_log the recording of stream \w+ is ".*/vod/\w+\.mp4": [\d.]+ s, \d+ bytes
mp4_duration vod/$s.mp4 60 1
ffprobe_like vod/$s.mp4 ^h264 aac$
redis_wait_like ^[0-9]+$ HGET ${PREFIX}media:{$s} recording
recv a MEDIA_RECORDING topic:room $s alice http://127.0.0.1:$TEST_NGINX_SERVER_PORT/vod/$s.mp4 * *
no_frame c 0.1
# and after it, as before
ping_stats after c 200
latency_bound after base 200
--- no_error_log
[error]
[alert]
[emerg]
