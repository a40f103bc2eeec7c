package Test::FishChat::Media;

# Scenario steps for audio and video (issue 14): real ffmpeg publishing to
# the nginx-rtmp-module compiled into the same nginx, HLS files and HTTP
# fetches.  Loading the module adds the steps and $TEST_NGINX_FC_PORT5 ..
# $TEST_NGINX_FC_PORT8; nothing else changes.
#
#   ffmpeg_publish NAME URL [SECS] [audio_only]
#                                  start in the background, under a hard
#                                  time limit, ffmpeg -re publishing SECS
#                                  (default 3) of testsrc 320x240@25 (H.264,
#                                  keyframe every 25 frames = 1 s) and a
#                                  440 Hz sine (AAC) as FLV to URL;
#                                  audio_only: the sine alone
#   ffmpeg_play NAME URL [SECS]    ffmpeg reads SECS (default 1) of URL
#                                  (rtmp:// or an HLS http:// playlist) and
#                                  discards it (-f null)
#   ffmpeg_wait NAME EXIT          wait for ffmpeg NAME to end; EXIT is 0
#                                  (allowed), N (that status) or nonzero
#                                  (refused: any failure but the hard time
#                                  limit).  Sets $ffmpeg_NAME_rc and
#                                  $ffmpeg_NAME_secs (how long it ran)
#   ffmpeg_running NAME            ffmpeg NAME has not ended (yet)
#   http_get VAR URL               GET URL (http://127.x.x.x:PORT/...):
#                                  the body into $VAR, the status into
#                                  $http_status
#   http_status URL STATUS         GET URL, the status must be STATUS
#   http_wait URL STATUS           GET URL every 50 ms until the status is
#                                  STATUS (bounded by the step timeout)
#   http_header NAME VALUE         a header of the last response: VALUE
#                                  exactly, - for absent, * for present
#   http_like REGEX                the last response's body matches
#                                  (REGEX as written, no variables)
#   wait_file PATH                 wait until a non-empty file matches PATH
#                                  (a glob; relative to servroot/html
#                                  unless absolute); $file is the first
#                                  match, sorted
#   no_file PATH                   no file matches PATH now
#   ffprobe_like FILE REGEX        ffprobe -v error -show_entries
#                                  stream=codec_name -of csv=p=0 FILE: the
#                                  codec names, blank lines and repeats
#                                  dropped, joined by one space ("h264
#                                  aac"), must match REGEX (as written, no
#                                  variables).  FILE: a path or glob as for
#                                  wait_file (then with -count_packets,
#                                  and streams without packets are left
#                                  out: nginx-rtmp's MPEG-TS always
#                                  declares an H.264 and an AAC stream),
#                                  or a URL (an HLS playlist over HTTP).
#                                  $ffprobe is the text matched
#   capture_re VAR TEXT REGEX      $VAR is the first group of REGEX (as
#                                  written) in TEXT (one word, variables
#                                  expanded): the token out of a URL
#   jwt_claim TOKEN NAME VALUE     the payload of the compact JWT TOKEN
#                                  (not verified) has claim NAME = VALUE
#                                  (numbers as JSON writes them; * for
#                                  present, - for absent)
#
# Time limits: ffmpeg runs under timeout(1) with SECS + 5 + the step timeout
# (status 124 when it hits it, which never counts as "nonzero");
# ffmpeg_wait waits until that limit has passed and 3 s more; ffprobe gets
# 5 s + twice the step timeout.  A ffmpeg still running when the scenario
# ends is killed (its process group: timeout(1) and ffmpeg).  What ffmpeg
# printed (-loglevel error) is in servroot/logs/ffmpeg-NAME.log and in the
# failure message.
#
# Perl: Test::FishChat::Media::have_rtmp() is true when the nginx binary
# was built with nginx-rtmp-module (for --- skip_eval).

use strict;
use warnings;

use Test::FishChat ();
use Test::FishChat::Steps ();

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Spec ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

# --------------------------------------------------------------------------
# four more ports: $TEST_NGINX_FC_PORT5..8

Test::FishChat::pick_ports(5, 4);

my $HaveRtmp;

sub have_rtmp {
    return $HaveRtmp if defined $HaveRtmp;
    my $bin = $Test::Nginx::Util::NginxBinary || 'nginx';
    my $v = `$bin -V 2>&1`;
    $v .= ' ' . ($ENV{TEST_NGINX_LOAD_MODULES} // '');
    return $HaveRtmp = ($v =~ /rtmp/ ? 1 : 0);
}

# --------------------------------------------------------------------------
# ffmpeg processes

my %Procs;      # name => { pid, start, limit, log, rc, secs }

sub _log_path {
    my $name = shift;
    (my $safe = $name) =~ s/[^\w.-]/_/g;
    return File::Spec->catfile($Test::Nginx::Util::LogDir,
                               "ffmpeg-$safe.log");
}

sub _tail {
    my ($file, $max) = @_;
    open my $in, '<', $file or return '';
    local $/;
    my $d = <$in> // '';
    close $in;
    $d = '...' . substr($d, -($max // 2000)) if length $d > ($max // 2000);
    $d =~ s/\s+\z//;
    return $d;
}

sub _start {
    my ($sc, $name, $secs, @cmd) = @_;

    die "ffmpeg \"$name\" is already running\n"
        if $Procs{$name} && !defined $Procs{$name}{rc};

    my $limit = $secs + 5 + $sc->timeout;
    my $log = _log_path($name);

    my $pid = fork();
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        # a process group of its own: timeout(1) and ffmpeg are killed
        # together
        POSIX::setsid();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec 'timeout', '-k', '2', sprintf('%.1f', $limit), @cmd;
        POSIX::_exit(127);
    }

    $Procs{$name} = { pid => $pid, owner => $$,
                      start => Time::HiRes::time(),
                      limit => $limit, log => $log, cmd => "@cmd" };
}

sub _reap {
    my ($p, $block) = @_;
    return 1 if defined $p->{rc};
    my $r = waitpid($p->{pid}, $block ? 0 : POSIX::WNOHANG());
    return 0 if $r == 0;
    my $st = $?;
    $p->{secs} = sprintf '%.2f', Time::HiRes::time() - $p->{start};
    if ($r < 0) {
        $p->{rc} = -1;
    } elsif ($st & 127) {
        $p->{rc} = 128 + ($st & 127);       # as a shell shows it
    } else {
        $p->{rc} = $st >> 8;
    }
    return 1;
}

sub _kill {
    my $p = shift;
    # a forked copy of the test process must not kill its parent's ffmpeg
    return if defined $p->{rc} || $p->{owner} != $$;
    kill 'TERM', -$p->{pid};
    my $until = Time::HiRes::time() + 2;
    while (!_reap($p) && Time::HiRes::time() < $until) {
        Time::HiRes::sleep(0.02);
    }
    if (!defined $p->{rc}) {
        kill 'KILL', -$p->{pid};
        _reap($p, 1);
    }
}

sub kill_all {
    _kill($_) for values %Procs;
    %Procs = ();
}

{
    no warnings 'redefine';
    my $finish = \&Test::FishChat::Scenario::finish;
    *Test::FishChat::Scenario::finish = sub {
        kill_all();
        $finish->(@_);
    };
}

END { kill_all() }

sub _num {
    my ($v, $what) = @_;
    die "bad $what \"$v\"\n" if $v !~ /^\d+(?:\.\d+)?$/;
    return $v;
}

Test::FishChat::add_step(
    ffmpeg_publish => sub {
        my ($sc, $rest) = @_;
        my ($name, $url, @more) = $sc->tokens($rest);
        die "usage: ffmpeg_publish NAME URL [SECS] [audio_only]\n"
            if !defined $url;
        my ($secs, $audio) = (3, 0);
        for my $w (@more) {
            if ($w eq 'audio_only') {
                $audio = 1;
            } else {
                $secs = _num($w, 'SECS');
            }
        }
        my @in = $audio
            ? ('-re', '-f', 'lavfi', '-i', 'sine=frequency=440')
            : ('-re', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=25',
               '-f', 'lavfi', '-i', 'sine=frequency=440');
        my @enc = $audio
            ? ('-c:a', 'aac')
            : ('-c:v', 'libx264', '-g', '25', '-preset', 'ultrafast',
               '-pix_fmt', 'yuv420p', '-c:a', 'aac');
        _start($sc, $name, $secs, 'ffmpeg', '-nostdin', '-loglevel', 'error',
               @in, '-t', $secs, @enc, '-f', 'flv', $url);
    },

    ffmpeg_play => sub {
        my ($sc, $rest) = @_;
        my ($name, $url, $secs, @x) = $sc->tokens($rest);
        die "usage: ffmpeg_play NAME URL [SECS]\n" if !defined $url || @x;
        $secs = _num($secs // 1, 'SECS');
        _start($sc, $name, $secs, 'ffmpeg', '-nostdin', '-loglevel', 'error',
               '-i', $url, '-t', $secs, '-f', 'null', '-');
    },

    ffmpeg_wait => sub {
        my ($sc, $rest) = @_;
        my ($name, $want, @x) = $sc->tokens($rest);
        die "usage: ffmpeg_wait NAME 0|N|nonzero\n"
            if !defined $want || @x || $want !~ /^(?:\d+|nonzero)$/;
        my $p = $Procs{$name} or die "no ffmpeg \"$name\" was started\n";
        my $until = $p->{start} + $p->{limit} + 3;
        while (!_reap($p)) {
            if (Time::HiRes::time() >= $until) {
                _kill($p);
                die "ffmpeg $name did not end within "
                    . sprintf('%.0f', $p->{limit} + 3) . " s\n";
            }
            Time::HiRes::sleep(0.02);
        }
        $sc->var("ffmpeg_${name}_rc", $p->{rc});
        $sc->var("ffmpeg_${name}_secs", $p->{secs});
        my $rc = $p->{rc};
        my $ok = $want eq 'nonzero'
                 ? $rc != 0 && $rc != 124 && $rc != 137 && $rc != 127
                 : $rc == $want;
        return if $ok;
        my $why = $rc == 124 || $rc == 137
                  ? " (killed at the hard limit of $p->{limit} s)"
                  : $rc == 127 ? ' (could not run ffmpeg)' : '';
        die "ffmpeg $name exited with $rc$why after $p->{secs} s, "
            . "expected $want\n    $p->{cmd}\n    its output: "
            . (_tail($p->{log}) || '(none)') . "\n";
    },

    ffmpeg_running => sub {
        my ($sc, $rest) = @_;
        my ($name) = $sc->tokens($rest);
        my $p = $Procs{$name // ''} or die "no ffmpeg \"$name\" was started\n";
        die "ffmpeg $name has ended with $p->{rc}: "
            . (_tail($p->{log}) || '(no output)') . "\n" if _reap($p);
    },
);

# --------------------------------------------------------------------------
# plain HTTP/1.1 GET, Connection: close, loopback only

sub _http_get {
    my ($sc, $url, $deadline) = @_;

    my ($host, $port, $path) =
        $url =~ m{^http://(127\.\d+\.\d+\.\d+|localhost)(?::(\d+))?(/[^#]*)?$}
        or die "bad URL \"$url\" (http://127.x.x.x:PORT/path only)\n";
    $port //= 80;
    $path //= '/';
    $deadline //= $sc->deadline;

    my $sock = Test::FishChat::Steps::tcp_connect($host, $port, $deadline);

    # a fresh socket's buffer takes the few bytes of the request at once
    my $req = "GET $path HTTP/1.1\r\nHost: $host:$port\r\n"
              . "User-Agent: Test::FishChat::Media\r\n"
              . "Connection: close\r\n\r\n";
    syswrite($sock, $req) == length $req or die "write to $url: $!\n";

    my $sel = IO::Select->new($sock);
    my $raw = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "no whole response from $url within the timeout, got: "
            . substr($raw, 0, 200) . "\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($sock, $raw, 65536, length $raw);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            last if length $raw;
            die "read from $url: $!\n";
        }
        last if $n == 0;
    }
    close $sock;

    my ($top, $body) = split /\r\n\r\n/, $raw, 2;
    die "no whole response from $url: " . substr($raw, 0, 200) . "\n"
        if !defined $body;
    my ($line, @h) = split /\r\n/, $top;
    my ($status) = $line =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line from $url: $line\n";
    my %h;
    for (@h) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $h{lc $k} = exists $h{lc $k} ? "$h{lc $k}, $v" : $v;
    }

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/\A([0-9A-Fa-f]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            die "truncated chunk from $url\n" if length $body < $n + 2;
            $out .= substr($body, 0, $n);
            substr($body, 0, $n + 2, '');
        }
        $body = $out;
    } elsif (defined $h{'content-length'}) {
        die "body of " . length($body) . " bytes from $url, Content-Length "
            . "$h{'content-length'}\n" if length $body != $h{'content-length'};
    }

    return $sc->{media_http} = { status => $status, headers => \%h,
                                 body => $body, url => $url };
}

sub _show {
    my $r = shift;
    my $b = substr($r->{body}, 0, 300);
    $b =~ s/([\x00-\x08\x0b-\x1f\x7f-\xff])/sprintf('\x%02x', ord $1)/ge;
    return "$r->{status}, body: $b";
}

sub _last_http {
    my $sc = shift;
    return $sc->{media_http} || die "no HTTP response yet\n";
}

Test::FishChat::add_step(
    http_get => sub {
        my ($sc, $rest) = @_;
        my ($var, $url, @x) = $sc->tokens($rest);
        die "usage: http_get VAR URL\n"
            if !defined $url || @x || $var !~ /^\w+$/;
        my $r = _http_get($sc, $url);
        $sc->var($var, $r->{body});
        $sc->var('http_status', $r->{status});
    },

    http_status => sub {
        my ($sc, $rest) = @_;
        my ($url, $want, @x) = $sc->tokens($rest);
        die "usage: http_status URL STATUS\n"
            if !defined $want || @x || $want !~ /^\d{3}$/;
        my $r = _http_get($sc, $url);
        $sc->var('http_status', $r->{status});
        die "GET $url: expected $want, got " . _show($r) . "\n"
            if $r->{status} ne $want;
    },

    http_wait => sub {
        my ($sc, $rest) = @_;
        my ($url, $want, @x) = $sc->tokens($rest);
        die "usage: http_wait URL STATUS\n"
            if !defined $want || @x || $want !~ /^\d{3}$/;
        my $deadline = $sc->deadline;
        my $r;
        while (1) {
            $r = _http_get($sc, $url, $deadline);
            last if $r->{status} eq $want;
            die "GET $url: not $want within $sc->{timeout} s, last: "
                . _show($r) . "\n" if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.05);   # polling, bounded
        }
        $sc->var('http_status', $r->{status});
    },

    http_header => sub {
        my ($sc, $rest) = @_;
        my ($name, $want, @x) = $sc->tokens($rest);
        die "usage: http_header NAME VALUE|-|*\n" if !defined $want || @x;
        my $r = _last_http($sc);
        my $got = $r->{headers}{lc $name};
        return if $want eq '-' && !defined $got;
        return if $want eq '*' && defined $got;
        return if defined $got && $got eq $want;
        die "GET $r->{url}: header $name is "
            . (defined $got ? "\"$got\"" : 'absent') . ", expected $want\n";
    },

    http_like => sub {
        my ($sc, $rest) = @_;
        my $re = Test::FishChat::_strip_comment(Test::FishChat::_chars($rest));
        my $qr = eval { qr/$re/ } or die "bad regex $re: $@";
        my $r = _last_http($sc);
        die "GET $r->{url}: the body does not match $re\n    got: "
            . _show($r) . "\n" if $r->{body} !~ $qr;
    },
);

# --------------------------------------------------------------------------
# files and ffprobe

sub _glob {
    my ($sc, $pat) = @_;
    my $p = $sc->path($pat);
    my @f = grep { -f $_ && -s _ } glob(_glob_quote_dirs($p));
    return sort @f;
}

# spaces in the directory part would split the glob: escape them
sub _glob_quote_dirs {
    my $p = shift;
    $p =~ s/ /\\ /g;
    return $p;
}

Test::FishChat::add_step(
    wait_file => sub {
        my ($sc, $rest) = @_;
        my ($pat, @x) = $sc->tokens($rest);
        die "usage: wait_file PATH\n" if !defined $pat || @x;
        my $deadline = $sc->deadline;
        while (1) {
            my @f = _glob($sc, $pat);
            if (@f) {
                $sc->var('file', $f[0]);
                return;
            }
            die "no file " . $sc->path($pat) . " within $sc->{timeout} s\n"
                if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.05);   # polling the directory, bounded
        }
    },

    no_file => sub {
        my ($sc, $rest) = @_;
        my ($pat, @x) = $sc->tokens($rest);
        die "usage: no_file PATH\n" if !defined $pat || @x;
        my @f = grep { -e $_ } glob(_glob_quote_dirs($sc->path($pat)));
        die "expected no file, found: @f\n" if @f;
    },

    ffprobe_like => sub {
        my ($sc, $rest) = @_;
        my ($what, $re) = $rest =~ /^\s*(\S+)\s+(.*)$/s
            or die "usage: ffprobe_like FILE REGEX\n";
        ($what) = $sc->tokens($what);
        $re = Test::FishChat::_strip_comment(Test::FishChat::_chars($re));
        my $qr = eval { qr/$re/ } or die "bad regex $re: $@";

        my $target = $what;
        my $file = $what !~ m{^\w+://};
        if ($file) {
            my @f = _glob($sc, $what)
                or die "no file " . $sc->path($what) . "\n";
            $target = $f[0];
        }

        my $limit = 5 + 2 * $sc->timeout;
        my $pid = open(my $out, '-|') // die "fork: $!\n";
        if (!$pid) {
            open STDIN, '<', '/dev/null';
            open STDERR, '>&', \*STDOUT;
            no warnings 'exec';
            # a file: count the packets too, to leave out streams that
            # have none (nginx-rtmp's MPEG-TS always declares H.264 video
            # and AAC audio, even when one never comes)
            exec 'timeout', '-k', '2', $limit, 'ffprobe', '-v', 'error',
                 ($file ? ('-count_packets', '-show_entries',
                           'stream=codec_name,nb_read_packets')
                        : ('-show_entries', 'stream=codec_name')),
                 '-of', 'csv=p=0', $target;
            POSIX::_exit(127);
        }
        local $/;
        my $text = <$out> // '';
        close $out;
        my $rc = $? >> 8;

        my (%seen, @names);
        for my $l (split /\r?\n/, $text) {
            $l =~ s/^\s+|[\s,]+$//g;
            if ($file) {
                my ($codec, $packets) = split /,/, $l;
                next if !defined $packets || $packets !~ /^\d+$/
                        || $packets == 0;
                $l = $codec;
            }
            next if $l eq '' || $seen{$l}++;
            push @names, $l;
        }
        my $got = join ' ', @names;

        die "ffprobe $target exited with $rc: $text\n" if $rc;
        die "ffprobe $target: \"$got\" does not match $re\n" if $got !~ $qr;
        $sc->var('ffprobe', $got);
    },
);

# --------------------------------------------------------------------------
# URLs and tokens

sub _b64url_decode {
    my $s = shift;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    require MIME::Base64;
    return MIME::Base64::decode_base64($s);
}

Test::FishChat::add_step(
    capture_re => sub {
        my ($sc, $rest) = @_;
        my ($var, $text, $re) = $rest =~ /^\s*(\w+)\s+(\S+)\s+(.*)$/s
            or die "usage: capture_re VAR TEXT REGEX\n";
        ($text) = $sc->tokens($text);
        $re = Test::FishChat::_strip_comment(Test::FishChat::_chars($re));
        my $qr = eval { qr/$re/ } or die "bad regex $re: $@";
        my @m = $text =~ $qr or die "\"$text\" does not match $re\n";
        die "$re has no group\n" if !defined $1;
        $sc->var($var, $1);
    },

    jwt_claim => sub {
        my ($sc, $rest) = @_;
        my ($tok, $name, $want, @x) = $sc->tokens($rest);
        die "usage: jwt_claim TOKEN NAME VALUE\n" if !defined $want || @x;
        my @p = split /\./, $tok, -1;
        die "not a compact JWT: $tok\n" if @p != 3;
        my $c = eval { JSON::PP->new->utf8->decode(_b64url_decode($p[1])) };
        die "the payload of $tok is no JSON object\n" if ref $c ne 'HASH';
        my $v = $c->{$name};
        my $got = !exists $c->{$name} ? undef
                  : ref $v ? JSON::PP->new->canonical->allow_nonref->encode($v)
                  : $v;
        return if $want eq '-' && !defined $got;
        return if $want eq '*' && defined $got;
        return if defined $got && $got eq $want;
        die "claim $name is " . (defined $got ? "\"$got\"" : 'absent')
            . ", expected $want; claims: "
            . JSON::PP->new->canonical->encode($c) . "\n";
    },
);

# http_header_var VAR NAME: $VAR is header NAME of the last response (die
# when it has none); t/media-workers.t reads the serving worker's pid so
Test::FishChat::add_step(http_header_var => sub {
    my ($sc, $rest) = @_;
    my ($var, $name, @x) = $sc->tokens($rest);
    die "usage: http_header_var VAR NAME\n"
        if !defined $name || @x || $var !~ /^\w+$/;
    my $r = _last_http($sc);
    my $v = $r->{headers}{lc $name};
    die "GET $r->{url}: no header $name\n" if !defined $v;
    $sc->var($var, $v);
});

1;
