package Test::FishChat::Files;

# Scenario steps for the files location (docs/files.md): HTTP requests with
# any method, headers and body, checks of the response (status, headers,
# JSON fields, bytes, SHA-256), and of the store on disk.  Loading the
# module adds the steps; nothing else changes.
#
# Request bodies are named (they may be binary, so they are kept apart from
# the scenario's variables):
#
#   body NAME N [text|binary] [seed=S]
#                                  body NAME is N bytes, the same for the
#                                  same N, kind and seed: "text" (default)
#                                  is lines of lower-case letters, "binary"
#                                  any bytes; $NAME_sha256 is their SHA-256
#                                  (hex) and $NAME_len their length
#   body_file NAME PATH            body NAME is the content of PATH
#                                  (relative to servroot/html unless
#                                  absolute)
#
# Requests: HTTP/1.1, Connection: close, to 127.x.x.x only.  URL is a whole
# http://127.x.x.x:PORT/... URL or a path (/files/...) on the HTTP port.
# OPTIONs:
#   body=NAME          send body NAME, with its Content-Length
#   h=Name:Value       a request header (repeat it; quote the word when
#                      the value has spaces: "h=Range:bytes=0-99")
#   length=N           send this Content-Length instead of the body's
#   no_length          send no Content-Length at all
#
#   http METHOD URL STATUS [OPTION...]
#                                  the response's status must be STATUS
#                                  (* for any); it is kept for the resp_*
#                                  steps, and $http_status is set
#   http_retry METHOD URL STATUS [OPTION...]
#                                  the request again every 50 ms until the
#                                  status is STATUS (bounded by the step
#                                  timeout)
#   http_open CONN METHOD URL part=N [OPTION...]
#                                  send the request line, the headers and
#                                  the first N bytes of the body, read
#                                  nothing, keep the connection open
#   http_close CONN                close it (an abandoned upload)
#
# The last response:
#   resp_header NAME VALUE         header NAME is VALUE exactly; - absent,
#                                  * present
#   resp_header_like NAME REGEX    header NAME is present and matches
#   resp_header_var VAR NAME       $VAR is header NAME (which must be there)
#   resp_like REGEX                the body matches (REGEX as written)
#   resp_len N                     the body has N bytes
#   resp_body NAME [OFFSET LEN]    the body is body NAME (or LEN bytes of it
#                                  from OFFSET)
#   resp_sha VAR                   $VAR is the SHA-256 (hex) of the body
#   resp_json KEY VALUE            the body is a JSON object and KEY is
#                                  VALUE (numbers, true, false and null as
#                                  JSON writes them; * present, - absent);
#                                  a dotted KEY goes into objects
#                                  (error.code)
#   resp_json_var VAR KEY          $VAR is the JSON field KEY (dotted too)
#   resp_disposition NAME          Content-Disposition is attachment with
#                                  filename*=UTF-8''<NAME percent-encoded>
#                                  (RFC 5987 attr-chars; decoded, it is NAME
#                                  as UTF-8)
#
# Files on disk (paths relative to servroot/html unless absolute):
#   tree_count DIR N               DIR holds N regular files, searched
#                                  recursively; names starting with a dot,
#                                  and everything under such a directory,
#                                  are left out (.keep, .tmp/)
#   tree_wait_empty DIR            wait until DIR holds no regular file
#                                  (recursively, dot files too)
#   file_sha PATH SHA              PATH is a regular file whose SHA-256 is
#                                  SHA
#
# Values:
#   flip VAR TEXT                  $VAR is TEXT with its first character
#                                  changed (another base64url character)
#   assert_like TEXT REGEX         TEXT (one word) matches REGEX
#   assert_near A B TOL            |A - B| <= TOL
#   capture_re VAR TEXT REGEX      $VAR is the first group of REGEX in TEXT
#                                  (one word)
#   (these two unless a module loaded first has them: Media's capture_re
#   is the same)
#
# Load (t/files-load.t): chat round trips while many uploads run
#   ping_stats NAME CLIENT N       N SEND_PING -> PONG round trips back to
#                                  back: $NAME_n, $NAME_median, $NAME_p90,
#                                  $NAME_max (ms)
#   upload_pings NAME PINGER N SIZE TYPE CLIENT...
#                                  N slots (FILE_SLOT x SIZE TYPE, asked
#                                  by the CLIENTs in turn), N bodies of
#                                  SIZE random bytes (a 64 KB block from
#                                  /dev/urandom per upload, each 64 KB
#                                  chunk numbered: no two alike; their
#                                  SHA-256 computed before anything is
#                                  measured); N forked children PUT them
#                                  at once (released together by closing
#                                  one pipe, each streaming its body,
#                                  bounded by the step timeout), while
#                                  PINGER pings back to back until every
#                                  child has read its answer: the round
#                                  trips that ended before, in $NAME_* as
#                                  ping_stats; $NAME_secs the window (from
#                                  the release to the last answer),
#                                  $NAME_after the round trip that
#                                  straddled its end (not counted).  Every
#                                  PUT must answer 201 with its id, size,
#                                  type and SHA-256; $NAME_id_I is the
#                                  id of upload I (1..N), $NAME_get_I its
#                                  GET URL, $NAME_sha_I its SHA-256
#   uploads_get NAME N SIZE        GET $NAME_get_1 .. _N one after the
#                                  other: 200, SIZE bytes, $NAME_sha_I
#   latency_bound DURING BASE MIN  at least MIN round trips in DURING, its
#                                  median at most max(5 x BASE's median,
#                                  BASE's median + 20 ms); no bound under
#                                  valgrind (MIN 1)
#   (ping_stats and latency_bound are Test::FishChat::Steps')
#
# Set-up shared by the files tests (t/files*.t):
#   files_login                    alice (a) and bob (b) log in (opt-in);
#                                  $files is the files URL
#   files_put VAR BODY TYPE [client=C] [name=NAME]
#                                  client C (a) asks a FILE_SLOT for body
#                                  BODY (named NAME, BODY.bin by default,
#                                  of $BODY_len bytes, of type TYPE) and
#                                  PUTs it there (201, the last response):
#                                  $VAR is the file id, $VAR_put and
#                                  $VAR_get its PUT and GET URLs
#
#   files_blocks(OPTION => VALUE, ...)
#       (exported) adds the block preprocessor of the files tests: blocks
#       get, unless they say otherwise,
#         main_config           fishchat_node n1; the HS256 test secret
#                               (it signs the PUT URLs); fishchat_files_url
#                               on the HTTP port; then main => TEXT.  A
#                               block's own --- main_config is added after
#                               these lines, unless it has a fishchat_node
#                               line (then it is the whole of it)
#         stream_server_config  fishchat_msg; (unless the block has a
#                               --- stream_config)
#         config                location /files/ { fishchat_files; the
#                               store in servroot/html/store, the
#                               temporary files in store/.tmp (the same
#                               file system), client_max_body_size
#                               body_max => SIZE (200m), then the block's
#                               own --- files_location directives };
#                               then locations => TEXT (more locations
#                               of the server)
#         user_files            store/.keep (the store exists; nginx makes
#                               client_body_temp_path itself at start)

use strict;
use warnings;

use Test::FishChat ();
use Test::FishChat::Steps ();

use Digest::SHA ();
use Errno qw(EAGAIN EWOULDBLOCK EINTR ECONNRESET EPIPE);
use File::Find ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

use Exporter 'import';
our @EXPORT = qw(files_blocks);

# --------------------------------------------------------------------------
# the blocks and the set-up of the files tests

my $MAIN = <<'_EOC_';
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_files_url http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files;
_EOC_

my $LOC = <<'_EOC_';
        fishchat_files;
        alias $TEST_NGINX_SERVER_ROOT/html/store/;
        client_body_temp_path $TEST_NGINX_SERVER_ROOT/html/store/.tmp;
_EOC_

sub files_blocks {
    my %o = (body_max => '200m', main => '', locations => '', @_);
    my $main = $MAIN . $o{main};

    Test::Nginx::Util::add_block_preprocessor(sub {
        my $block = shift;

        if (!defined $block->main_config) {
            $block->set_value('main_config', $main);
        } elsif ($block->main_config !~ /\bfishchat_node\s/) {
            $block->set_value('main_config', $main . $block->main_config);
        }

        if (!defined $block->stream_server_config
            && !defined $block->stream_config)
        {
            $block->set_value('stream_server_config', "    fishchat_msg;\n");
        }

        if (!defined $block->config) {
            $block->set_value('config', "    location /files/ {\n$LOC"
                . "        client_max_body_size $o{body_max};\n"
                . ($block->files_location // '') . "    }\n"
                . $o{locations});
        }

        $block->set_value('user_files', ">>> store/.keep\n")
            if !defined $block->user_files;
    });
}

Test::FishChat::Steps::add_macro(files_login => <<'_EOS_');
hello_login a alice
hello_login b bob
set files http://127.0.0.1:$TEST_NGINX_SERVER_PORT/files
_EOS_

Test::FishChat::add_step(files_put => sub {
    my ($sc, $rest) = @_;
    my ($var, $body, $type, @opt) = $sc->tokens($rest);
    die "usage: files_put VAR BODY TYPE [client=C] [name=NAME]\n"
        if !defined $type;
    my %o = (client => 'a', name => "$body.bin");
    for my $opt (@opt) {
        my ($k, $v) = $opt =~ /^(client|name)=([\w.-]+)$/
            or die "files_put: not an option: $opt\n";
        $o{$k} = $v;
    }
    my $c = $o{client};
    Test::FishChat::Steps::run_steps($sc,
        "send $c FILE_SLOT $o{name} \$${body}_len $type",
        "recv $c FILE_SLOT * * * *",
        "capture $c $var 0",
        "capture $c ${var}_put 1",
        "capture $c ${var}_get 2",
        "http PUT \$${var}_put 201 body=$body h=Content-Type:$type");
});

# --------------------------------------------------------------------------
# bodies

sub _gen {
    my ($n, $kind, $seed) = @_;
    my $out = '';
    my $i = 0;
    while (length $out < $n) {
        $out .= Digest::SHA::sha256("$kind:$seed:$n:" . $i++);
    }
    $out = substr $out, 0, $n;
    if ($kind eq 'text') {
        $out =~ s/(.)/chr(97 + ord($1) % 26)/ges;
        # a newline every 64 bytes
        for (my $p = 63; $p < $n; $p += 64) {
            substr($out, $p, 1, "\n");
        }
    }
    return $out;
}

sub _set_body {
    my ($sc, $name, $bytes) = @_;
    $sc->{files_bodies}{$name} = $bytes;
    $sc->var("${name}_sha256", Digest::SHA::sha256_hex($bytes));
    $sc->var("${name}_len", length $bytes);
}

sub _body {
    my ($sc, $name) = @_;
    my $b = $sc->{files_bodies}{$name};
    die "no body \"$name\" (make it with body or body_file)\n"
        if !defined $b;
    return $b;
}

# --------------------------------------------------------------------------
# HTTP/1.1 requests, Connection: close

sub _target {
    my ($url) = @_;
    if ($url =~ m{^/}) {
        return ('127.0.0.1', Test::Nginx::Util::server_port(), $url);
    }
    my ($host, $port, $path) =
        $url =~ m{^http://(127\.\d+\.\d+\.\d+|localhost)(?::(\d+))?(/[^#]*)?$}
        or die "bad URL \"$url\" (http://127.x.x.x:PORT/path or /path)\n";
    return ($host, $port // 80, $path // '/');
}

# METHOD URL OPTION...: a request hash
sub _parse_request {
    my ($sc, $method, $url, @opt) = @_;
    die "no METHOD and URL\n" if !defined $url;
    my %r = (method => uc $method, url => $url, headers => [],
             body => '', length => undef, part => undef, send_length => 1);
    for my $o (@opt) {
        if ($o =~ /^body=(.+)$/s) {
            $r{body} = _body($sc, $1);
            $r{body_name} = $1;
        } elsif ($o =~ /^h=([^:\s]+):\s*(.*)$/s) {
            push @{ $r{headers} }, [$1, $2];
        } elsif ($o =~ /^length=(\d+)$/) {
            $r{length} = $1;
        } elsif ($o eq 'no_length') {
            $r{send_length} = 0;
        } elsif ($o =~ /^part=(\d+)$/) {
            $r{part} = $1;
        } else {
            die "bad option \"$o\" (body=NAME, h=Name:Value, length=N, "
                . "no_length, part=N)\n";
        }
    }
    return \%r;
}


sub _head_bytes {
    my ($r, $host, $port, $path) = @_;
    my $h = "$r->{method} $path HTTP/1.1\r\nHost: $host:$port\r\n"
            . "User-Agent: Test::FishChat::Files\r\n"
            . "Connection: close\r\n";
    my %have = map { lc $_->[0] => 1 } @{ $r->{headers} };
    if ($r->{send_length} && !$have{'content-length'}
        && ($r->{method} eq 'PUT' || $r->{method} eq 'POST'
            || length $r->{body} || defined $r->{length}))
    {
        $h .= "Content-Length: " . ($r->{length} // length $r->{body})
              . "\r\n";
    }
    for my $hd (@{ $r->{headers} }) {
        my $v = Test::FishChat::_bytes($hd->[1]);
        $h .= "$hd->[0]: $v\r\n";
    }
    return "$h\r\n";
}

# write all of $data unless the server closes or answers first; returns the
# bytes written (the server may refuse before reading a body: that is no
# failure, its answer is read next)
sub _write {
    my ($sock, $data, $deadline, $url) = @_;
    my $off = 0;
    my $w = IO::Select->new($sock);
    while ($off < length $data) {
        my $left = $deadline - Time::HiRes::time();
        die "could not send the request to $url within the timeout "
            . "($off of " . length($data) . " bytes sent)\n" if $left <= 0;
        next if !$w->can_write($left);
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            last if $! == EPIPE || $! == ECONNRESET;
            die "write to $url: $!\n";
        }
        $off += $n;
    }
    return $off;
}

# is $raw a whole response?  (nginx keeps a connection open for a while
# when it refused a body it did not read, lingering_close: the response's
# own length tells where it ends, not the close)
sub _whole {
    my ($raw, $method) = @_;
    my $end = index $raw, "\r\n\r\n";
    return 0 if $end < 0;
    my $top = substr $raw, 0, $end;
    my $blen = length($raw) - $end - 4;
    my ($status) = $top =~ m{^HTTP/1\.[01] (\d{3})};
    return 0 if !defined $status;
    return 1 if $method eq 'HEAD' || $status =~ /^(?:1\d\d|204|304)$/;
    if ($top =~ /^Transfer-Encoding:[^\r\n]*chunked/mi) {
        return substr($raw, $end) =~ /\r\n0[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n\z/
               ? 1 : 0;
    }
    if ($top =~ /^Content-Length:\s*(\d+)/mi) {
        return $blen >= $1 ? 1 : 0;
    }
    return 0;
}

sub _read_all {
    my ($sock, $deadline, $url, $method) = @_;
    my $sel = IO::Select->new($sock);
    my $raw = '';
    while (!_whole($raw, $method)) {
        my $left = $deadline - Time::HiRes::time();
        die "no whole response from $url within the timeout, got: "
            . _esc(substr($raw, 0, 300)) . "\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($sock, $raw, 65536, length $raw);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            # a reset after the answer (the server did not read all of
            # a body it refused): keep what came
            last if $! == ECONNRESET && length $raw;
            die "read from $url: $!\n";
        }
        last if $n == 0;
    }
    return $raw;
}

sub _parse_response {
    my ($r, $raw) = @_;
    my $url = "$r->{method} $r->{url}";
    my ($top, $body) = split /\r\n\r\n/, $raw, 2;
    die "no whole response to $url: " . _esc(substr($raw, 0, 300)) . "\n"
        if !defined $body;
    my ($line, @h) = split /\r\n/, $top;
    my ($status) = $line =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line from $url: " . _esc($line) . "\n";
    my %h;
    for (@h) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $h{lc $k} = exists $h{lc $k} ? "$h{lc $k}, $v" : $v;
    }

    my $no_body = $r->{method} eq 'HEAD' || $status =~ /^(?:1\d\d|204|304)$/;
    if ($no_body) {
        die "$url: $status with a body of " . length($body) . " bytes\n"
            if length $body;
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
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
        die "$url: a body of " . length($body) . " bytes, Content-Length "
            . "$h{'content-length'}\n" if length $body != $h{'content-length'};
    }

    return { status => $status, headers => \%h, body => $body,
             what => $url, status_line => $line };
}

sub request {
    my ($sc, $r, $deadline) = @_;
    $deadline //= $sc->deadline;
    my ($host, $port, $path) = _target($r->{url});
    my $sock = Test::FishChat::Steps::tcp_connect($host, $port, $deadline);
    _write($sock, _head_bytes($r, $host, $port, $path) . $r->{body},
           $deadline, $r->{url});
    my $raw = _read_all($sock, $deadline, $r->{url}, $r->{method});
    close $sock;
    my $resp = _parse_response($r, $raw);
    $sc->var('http_status', $resp->{status});
    return $sc->{files_http} = $resp;
}

sub _esc {
    my $b = shift;
    $b =~ s/([\x00-\x08\x0b-\x1f\x7f-\xff])/sprintf('\x%02x', ord $1)/ge;
    return $b;
}

sub _show {
    my $r = shift;
    my $hs = join '', map { "\n        $_: $r->{headers}{$_}" }
                      sort keys %{ $r->{headers} };
    return "$r->{status}, headers:$hs\n    body: "
           . _esc(substr($r->{body}, 0, 300))
           . (length $r->{body} > 300 ? '...' : '');
}

sub _last {
    my $sc = shift;
    return $sc->{files_http} || die "no HTTP response yet\n";
}

sub _json {
    my $r = shift;
    my $j = eval { JSON::PP->new->utf8->decode($r->{body}) };
    die "$r->{what}: the body is no JSON object: "
        . _esc(substr($r->{body}, 0, 300)) . "\n" if ref $j ne 'HASH';
    return $j;
}

# KEY, or a dotted KEY into objects (error.code): (found, value)
sub _json_path {
    my ($j, $key) = @_;
    my $v = $j;
    for my $k (split /\./, $key, -1) {
        return (0) if ref $v ne 'HASH' || !exists $v->{$k};
        $v = $v->{$k};
    }
    return (1, $v);
}

sub _json_text {
    my $v = shift;
    return 'null' if !defined $v;
    return JSON::PP->new->canonical->allow_nonref->encode($v) if ref $v;
    return $v;
}

sub _regex_arg {
    my $re = Test::FishChat::_strip_comment(Test::FishChat::_chars(shift));
    my $qr = eval { qr/$re/ } or die "bad regex $re: $@";
    return ($re, $qr);
}

# --------------------------------------------------------------------------
# steps

Test::FishChat::add_step(
    body => sub {
        my ($sc, $rest) = @_;
        my ($name, $n, @more) = $sc->tokens($rest);
        die "usage: body NAME N [text|binary] [seed=S]\n"
            if !defined $n || $n !~ /^\d+$/ || $name !~ /^\w+$/;
        my ($kind, $seed) = ('text', '');
        for (@more) {
            if (/^(text|binary)$/) { $kind = $1 }
            elsif (/^seed=(.*)$/s) { $seed = $1 }
            else { die "bad argument \"$_\"\n" }
        }
        _set_body($sc, $name, _gen($n, $kind, $seed));
    },

    body_file => sub {
        my ($sc, $rest) = @_;
        my ($name, $path, @x) = $sc->tokens($rest);
        die "usage: body_file NAME PATH\n" if !defined $path || @x;
        my $f = $sc->path($path);
        open my $in, '<:raw', $f or die "$f: $!\n";
        local $/;
        my $d = <$in> // '';
        close $in;
        _set_body($sc, $name, $d);
    },

    http => sub {
        my ($sc, $rest) = @_;
        my ($method, $url, $want, @opt) = $sc->tokens($rest);
        die "usage: http METHOD URL STATUS [OPTION...]\n"
            if !defined $want || $want !~ /^(?:\d{3}|\*)$/;
        my $r = request($sc, _parse_request($sc, $method, $url, @opt));
        die "$method $url: expected $want, got " . _show($r) . "\n"
            if $want ne '*' && $r->{status} ne $want;
    },

    http_retry => sub {
        my ($sc, $rest) = @_;
        my ($method, $url, $want, @opt) = $sc->tokens($rest);
        die "usage: http_retry METHOD URL STATUS [OPTION...]\n"
            if !defined $want || $want !~ /^\d{3}$/;
        my $req = _parse_request($sc, $method, $url, @opt);
        my $deadline = $sc->deadline;
        my ($r, @seen);
        while (1) {
            $r = request($sc, $req, $deadline);
            return if $r->{status} eq $want;
            push @seen, $r->{status};
            die "$method $url: not $want within $sc->{timeout} s (got "
                . join(' ', @seen) . "), last: " . _show($r) . "\n"
                if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.05);   # polling, bounded
        }
    },

    http_open => sub {
        my ($sc, $rest) = @_;
        my ($conn, $method, $url, @opt) = $sc->tokens($rest);
        die "usage: http_open CONN METHOD URL part=N [OPTION...]\n"
            if !defined $url || $conn !~ /^\w+$/;
        die "connection \"$conn\" is open already\n"
            if $sc->{files_conns}{$conn};
        my $r = _parse_request($sc, $method, $url, @opt);
        die "http_open needs part=N\n" if !defined $r->{part};
        my $deadline = $sc->deadline;
        my ($host, $port, $path) = _target($url);
        my $sock = Test::FishChat::Steps::tcp_connect($host, $port, $deadline);
        my $data = _head_bytes($r, $host, $port, $path)
                   . substr($r->{body}, 0, $r->{part});
        my $n = _write($sock, $data, $deadline, $url);
        die "$url: the server closed after $n of " . length($data)
            . " bytes\n" if $n != length $data;
        $sc->{files_conns}{$conn} = $sock;
    },

    http_close => sub {
        my ($sc, $rest) = @_;
        my ($conn) = $sc->tokens($rest);
        my $sock = delete $sc->{files_conns}{$conn // ''}
            or die "no open connection \"" . ($conn // '') . "\"\n";
        close $sock;
    },

    resp_header => sub {
        my ($sc, $rest) = @_;
        my ($name, $want, @x) = $sc->tokens($rest);
        die "usage: resp_header NAME VALUE|-|*\n" if !defined $want || @x;
        my $r = _last($sc);
        my $got = $r->{headers}{lc $name};
        return if $want eq '-' && !defined $got;
        return if $want eq '*' && defined $got;
        return if defined $got && $got eq $want;
        die "$r->{what}: header $name is "
            . (defined $got ? "\"$got\"" : 'absent') . ", expected "
            . ($want eq '-' ? 'none' : "\"$want\"") . "\n    response: "
            . _show($r) . "\n";
    },

    resp_header_like => sub {
        my ($sc, $rest) = @_;
        my ($name, $re) = $rest =~ /^\s*(\S+)\s+(.+?)\s*$/s
            or die "usage: resp_header_like NAME REGEX\n";
        my $qr;
        ($re, $qr) = _regex_arg($re);
        my $r = _last($sc);
        my $got = $r->{headers}{lc $name};
        die "$r->{what}: header $name is "
            . (defined $got ? "\"$got\"" : 'absent') . ", expected to "
            . "match $re\n" if !defined $got || $got !~ $qr;
    },

    resp_header_var => sub {
        my ($sc, $rest) = @_;
        my ($var, $name, @x) = $sc->tokens($rest);
        die "usage: resp_header_var VAR NAME\n"
            if !defined $name || @x || $var !~ /^\w+$/;
        my $r = _last($sc);
        my $v = $r->{headers}{lc $name};
        die "$r->{what}: no header $name\n    response: " . _show($r) . "\n"
            if !defined $v;
        $sc->var($var, $v);
    },

    resp_like => sub {
        my ($sc, $rest) = @_;
        my ($re, $qr) = _regex_arg($rest);
        my $r = _last($sc);
        die "$r->{what}: the body does not match $re\n    got: "
            . _show($r) . "\n" if $r->{body} !~ $qr;
    },

    resp_len => sub {
        my ($sc, $rest) = @_;
        my ($n, @x) = $sc->tokens($rest);
        die "usage: resp_len N\n" if !defined $n || @x || $n !~ /^\d+$/;
        my $r = _last($sc);
        die "$r->{what}: a body of " . length($r->{body})
            . " bytes, expected $n\n" if length $r->{body} != $n;
    },

    resp_body => sub {
        my ($sc, $rest) = @_;
        my ($name, $off, $len, @x) = $sc->tokens($rest);
        die "usage: resp_body NAME [OFFSET LEN]\n"
            if !defined $name || @x || (defined $off && !defined $len);
        my $want = _body($sc, $name);
        $want = substr($want, $off, $len) if defined $off;
        my $r = _last($sc);
        return if $r->{body} eq $want;
        my $i = 0;
        $i++ while $i < length $want && $i < length $r->{body}
                   && substr($want, $i, 1) eq substr($r->{body}, $i, 1);
        die "$r->{what}: the body (" . length($r->{body}) . " bytes) is "
            . "not body $name" . (defined $off ? " [$off, +$len]" : '')
            . " (" . length($want) . " bytes): they differ from byte $i\n";
    },

    resp_sha => sub {
        my ($sc, $rest) = @_;
        my ($var, @x) = $sc->tokens($rest);
        die "usage: resp_sha VAR\n" if !defined $var || @x;
        $sc->var($var, Digest::SHA::sha256_hex(_last($sc)->{body}));
    },

    resp_json => sub {
        my ($sc, $rest) = @_;
        my ($key, $want, @x) = $sc->tokens($rest);
        die "usage: resp_json KEY VALUE|*|-\n" if !defined $want || @x;
        my $r = _last($sc);
        my $j = _json($r);
        my ($found, $v) = _json_path($j, $key);
        # a field that is there with a null value is "null", not absent
        my $got = $found ? _json_text($v) : undef;
        return if $want eq '-' && !defined $got;
        return if $want eq '*' && defined $got;
        return if defined $got && $got eq $want;
        die "$r->{what}: JSON field $key is "
            . (defined $got ? "\"$got\"" : 'absent')
            . ", expected $want\n    body: " . _esc($r->{body}) . "\n";
    },

    resp_json_var => sub {
        my ($sc, $rest) = @_;
        my ($var, $key, @x) = $sc->tokens($rest);
        die "usage: resp_json_var VAR KEY\n"
            if !defined $key || @x || $var !~ /^\w+$/;
        my $r = _last($sc);
        my ($found, $v) = _json_path(_json($r), $key);
        die "$r->{what}: no JSON field $key: " . _esc($r->{body}) . "\n"
            if !$found || !defined $v;
        $sc->var($var, _json_text($v));
    },

    resp_disposition => sub {
        my ($sc, $rest) = @_;
        my ($name, @x) = $sc->tokens($rest);
        die "usage: resp_disposition NAME\n" if !defined $name || @x;
        my $r = _last($sc);
        my $got = $r->{headers}{'content-disposition'};
        die "$r->{what}: no Content-Disposition\n" if !defined $got;
        my ($enc) = $got =~ m{^attachment;\s*filename\*=UTF-8''
                              ([A-Za-z0-9!#\$&+\-.^_`|~%]+)$}x
            or die "$r->{what}: Content-Disposition is \"$got\", expected "
                   . "attachment; filename*=UTF-8''<RFC 5987 value>\n";
        (my $dec = $enc) =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
        # the scenario's words are characters: NAME as UTF-8
        my $want = $name;
        utf8::upgrade($want);
        utf8::encode($want);
        die "$r->{what}: Content-Disposition \"$got\" names \""
            . _esc($dec) . "\", expected \"" . _esc($want) . "\"\n"
            if $dec ne $want;
    },

    tree_count => sub {
        my ($sc, $rest) = @_;
        my ($dir, $n, @x) = $sc->tokens($rest);
        die "usage: tree_count DIR N\n"
            if !defined $n || @x || $n !~ /^\d+$/;
        my $root = $sc->path($dir);
        die "no directory $root\n" if !-d $root;
        my @f;
        File::Find::find({ no_chdir => 1, wanted => sub {
            my $base = (split m{/}, $_)[-1];
            if ($_ ne $root && $base =~ /^\./) {
                $File::Find::prune = 1 if -d $_;
                return;
            }
            push @f, substr($_, length($root) + 1) if -f $_;
        } }, $root);
        die "$root holds " . scalar(@f) . " files, expected $n: "
            . join(' ', sort @f) . "\n" if @f != $n;
    },

    tree_wait_empty => sub {
        my ($sc, $rest) = @_;
        my ($dir, @x) = $sc->tokens($rest);
        die "usage: tree_wait_empty DIR\n" if !defined $dir || @x;
        my $root = $sc->path($dir);
        my $deadline = $sc->deadline;
        my @f;
        while (1) {
            @f = ();
            File::Find::find({ no_chdir => 1, wanted => sub {
                push @f, $_ if -f $_;
            } }, $root) if -d $root;
            return if !@f;
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.05);   # polling the directory, bounded
        }
        die "$root still holds, after $sc->{timeout} s: @f\n";
    },

    file_sha => sub {
        my ($sc, $rest) = @_;
        my ($path, $want, @x) = $sc->tokens($rest);
        die "usage: file_sha PATH SHA\n" if !defined $want || @x;
        my $f = $sc->path($path);
        die "no regular file $f\n" if !-f $f;
        my $got = Digest::SHA->new(256)->addfile($f, 'b')->hexdigest;
        die "$f: SHA-256 $got, expected $want\n" if $got ne lc $want;
    },

    flip => sub {
        my ($sc, $rest) = @_;
        my ($var, $text, @x) = $sc->tokens($rest);
        die "usage: flip VAR TEXT\n"
            if !defined $text || @x || !length $text || $var !~ /^\w+$/;
        my $c = substr($text, 0, 1);
        substr($text, 0, 1, $c eq 'A' ? 'B' : 'A');
        $sc->var($var, $text);
    },

    assert_like => sub {
        my ($sc, $rest) = @_;
        my ($text, $re) = $rest =~ /^\s*(\S+)\s+(.+?)\s*$/s
            or die "usage: assert_like TEXT REGEX\n";
        ($text) = $sc->tokens($text);
        my $qr;
        ($re, $qr) = _regex_arg($re);
        die "\"$text\" does not match $re\n" if $text !~ $qr;
    },
);

Test::FishChat::add_step(assert_near => sub {
    my ($sc, $rest) = @_;
    my ($a, $b, $tol) = $sc->tokens($rest);
    die "usage: assert_near A B TOL\n" if !defined $tol;
    die "$a and $b differ by more than $tol\n" if abs($a - $b) > $tol;
}) if !$Test::FishChat::Steps{assert_near};

# the same as Test::FishChat::Media's, for files that do not load it
Test::FishChat::add_step(capture_re => sub {
    my ($sc, $rest) = @_;
    my ($var, $text, $re) = $rest =~ /^\s*(\w+)\s+(\S+)\s+(.*)$/s
        or die "usage: capture_re VAR TEXT REGEX\n";
    ($text) = $sc->tokens($text);
    my $qr;
    ($re, $qr) = _regex_arg($re);
    my @m = $text =~ $qr or die "\"$text\" does not match $re\n";
    die "$re has no group\n" if !defined $1;
    $sc->var($var, $1);
}) if !$Test::FishChat::Steps{capture_re};

# --------------------------------------------------------------------------
# load: chat round trips while uploads run


# chunk J (from 0) of an upload: its 64 KB block with the upload's and
# the chunk's numbers in the first 8 bytes (LEN bytes: the last one may be
# short)
my $CHUNK = 65536;

sub _chunk {
    my ($block, $i, $j, $len) = @_;
    return substr(pack('NN', $i, $j) . substr($block, 8), 0, $len);
}

sub _chunks_sha {
    my ($block, $i, $size) = @_;
    my $d = Digest::SHA->new(256);
    for (my ($j, $off) = (0, 0); $off < $size; $j++, $off += $CHUNK) {
        my $len = $size - $off < $CHUNK ? $size - $off : $CHUNK;
        $d->add(_chunk($block, $i, $j, $len));
    }
    return $d->hexdigest;
}

# in a child: PUT upload I to URL once GO reads end of file, streaming its
# chunks; the answer (or why there is none) goes to OUT
sub _upload_child {
    my ($go, $out, $url, $type, $block, $i, $size, $deadline) = @_;
    my $res = eval {
        my $buf;
        # released: the parent closed its end
        IO::Select->new($go)->can_read($deadline - Time::HiRes::time())
            or die "not released within the timeout\n";
        sysread($go, $buf, 1);
        my $t0 = Time::HiRes::time();
        my ($host, $port, $path) = _target($url);
        my $r = { method => 'PUT', url => $url, body => '', length => $size,
                  send_length => 1, part => undef,
                  headers => [['Content-Type', $type]] };
        my $sock = Test::FishChat::Steps::tcp_connect($host, $port, $deadline);
        my $head = _head_bytes($r, $host, $port, $path);
        my $sent = _write($sock, $head, $deadline, $url);
        for (my ($j, $off) = (0, 0);
             $sent == length $head && $off < $size; $j++)
        {
            my $len = $size - $off < $CHUNK ? $size - $off : $CHUNK;
            my $n = _write($sock, _chunk($block, $i, $j, $len), $deadline,
                           $url);
            $off += $n;
            last if $n != $len;     # the server answered early
        }
        my $raw = _read_all($sock, $deadline, $url, 'PUT');
        close $sock;
        my $resp = _parse_response($r, $raw);
        JSON::PP->new->canonical->encode({
            status => $resp->{status}, body => $resp->{body},
            start => $t0, end => Time::HiRes::time() });
    };
    $res = JSON::PP->new->encode({ error => $@ || 'unknown' }) if !defined $res;
    syswrite($out, $res . "\n");
    close $out;
}

sub _read_pipe {
    my $fh = shift;
    local $/;
    my $d = <$fh> // '';
    close $fh;
    return $d;
}


Test::FishChat::add_step(upload_pings => sub {
    my ($sc, $rest) = @_;
    my ($name, $pname, $n, $size, $type, @cnames) = $sc->tokens($rest);
    die "usage: upload_pings NAME PINGER N SIZE TYPE CLIENT...\n"
        if !@cnames || $n !~ /^\d+$/ || $size !~ /^\d+$/ || $n < 1;
    my $pinger = $sc->client($pname);
    my @c = map { $sc->client($_) } @cnames;

    # the slots, the bodies and their SHA-256, before anything is timed
    open my $rnd, '<:raw', '/dev/urandom' or die "/dev/urandom: $!\n";
    my (@up);
    for my $i (1 .. $n) {
        my $c = $c[($i - 1) % @c];
        $sc->send($c, Test::FishChat::frame('FILE_SLOT', "load-$i.bin",
                                            $size, $type));
        my $f = $sc->recv($c);
        die "FILE_SLOT $i from $c->{name}: $f->{text}\n"
            if ($f->{cmd} // '') ne 'FILE_SLOT' || @{ $f->{args} } != 4;
        my ($id, $put, $get) = @{ $f->{args} };
        my $block = '';
        read($rnd, $block, $CHUNK) == $CHUNK or die "/dev/urandom: $!\n";
        push @up, { i => $i, id => $id, put => $put, get => $get,
                    block => $block, sha => _chunks_sha($block, $i, $size) };
    }
    close $rnd;

    # the children, waiting for the release
    my $deadline = $sc->deadline;
    pipe(my $go_r, my $go_w) or die "pipe: $!\n";
    my %kids;
    for my $u (@up) {
        pipe(my $r, my $w) or die "pipe: $!\n";
        my $pid = fork() // die "fork: $!\n";
        if (!$pid) {
            close $go_w;
            close $r;
            _upload_child($go_r, $w, $u->{put}, $type, $u->{block},
                          $u->{i}, $size, $deadline);
            POSIX::_exit(0);    # no END blocks, no Test::More output
        }
        close $w;
        $u->{pid} = $pid;
        $u->{out} = $r;
        $kids{$pid} = $u;
    }
    close $go_r;

    my $kill = sub {
        kill 'KILL', keys %kids;
        waitpid($_, 0) for keys %kids;
    };

    # go: every child sees the end of file at once
    my $start = Time::HiRes::time();
    close $go_w;

    my (@in, $after);
    my $ok = eval {
        while (1) {
            my $ms = Test::FishChat::Steps::ping_once($sc, $pinger);
            # (only our children: nginx may be a child of this process)
            for my $pid (keys %kids) {
                delete $kids{$pid}
                    if waitpid($pid, POSIX::WNOHANG()) == $pid;
            }
            # the round trip ended before this check: with a child left,
            # it was within the uploads
            if (!%kids) {
                $after = $ms;
                last;
            }
            push @in, $ms;
            die "uploads not done within $sc->{timeout} s ("
                . scalar(keys %kids) . " of $n left, " . scalar(@in)
                . " round trips meanwhile)\n"
                if Time::HiRes::time() >= $deadline;
        }
        1;
    };
    if (!$ok) {
        my $err = $@;
        $kill->();
        die $err;
    }
    my $end = Time::HiRes::time();

    $sc->var("${name}_secs", sprintf '%.3f', $end - $start);
    $sc->var("${name}_after", sprintf '%.3f', $after);
    if (@in) {
        Test::FishChat::Steps::ping_figures($sc, $name, @in);
    } else {
        $sc->var("${name}_n", 0);
    }

    # every answer: 201, the slot's id, size and type, the SHA-256
    my @bad;
    my ($first, $last);
    for my $u (@up) {
        my $text = _read_pipe($u->{out});
        my $res = eval { JSON::PP->new->decode($text) } // {};
        if (defined $res->{error} || !defined $res->{status}) {
            push @bad, "upload $u->{i}: " . ($res->{error} // _esc($text));
            next;
        }
        my $j = eval { JSON::PP->new->utf8->decode($res->{body}) } // {};
        if ($res->{status} ne '201' || ($j->{sha256} // '') ne $u->{sha}
            || ($j->{id} // '') ne $u->{id} || ($j->{size} // '') ne $size
            || ($j->{type} // '') ne $type || ($j->{url} // '') ne $u->{get})
        {
            push @bad, "upload $u->{i} ($u->{id}, SHA-256 $u->{sha}): "
                . "$res->{status} " . _esc($res->{body});
        }
        $first = $res->{end} if !defined $first || $res->{end} < $first;
        $last = $res->{end} if !defined $last || $res->{end} > $last;
        $sc->var("${name}_id_$u->{i}", $u->{id});
        $sc->var("${name}_get_$u->{i}", $u->{get});
        $sc->var("${name}_sha_$u->{i}", $u->{sha});
    }
    die scalar(@bad) . " of $n uploads went wrong:\n    "
        . join("\n    ", @bad) . "\n" if @bad;
    Test::More::note(sprintf "%d uploads of %d bytes: the first done after "
        . "%.3f s, the last after %.3f s", $n, $size, $first - $start,
        $last - $start);
});

Test::FishChat::add_step(uploads_get => sub {
    my ($sc, $rest) = @_;
    my ($name, $n, $size) = $sc->tokens($rest);
    die "usage: uploads_get NAME N SIZE\n"
        if !defined $size || $n !~ /^\d+$/ || $size !~ /^\d+$/;
    for my $i (1 .. $n) {
        my $url = $sc->var("${name}_get_$i")
            // die "no \$${name}_get_$i (upload_pings first)\n";
        my $r = request($sc, _parse_request($sc, 'GET', $url));
        die "GET $url: expected 200 with $size bytes, got $r->{status} "
            . "with " . length($r->{body}) . " bytes\n"
            if $r->{status} ne '200' || length $r->{body} != $size;
        my $sha = Digest::SHA::sha256_hex($r->{body});
        my $want = $sc->var("${name}_sha_$i");
        die "GET $url: SHA-256 $sha, uploaded $want\n" if $sha ne $want;
        delete $r->{body};      # 20 MB each: keep one at a time
    }
});

# The bound on the median round trip during the load:
#
#     max(5 x the baseline median, the baseline median + 20 ms)
#

# connections left open by http_open are closed with the scenario
{
    no warnings 'redefine';
    my $finish = \&Test::FishChat::Scenario::finish;
    *Test::FishChat::Scenario::finish = sub {
        my $sc = $_[0];
        close $_ for values %{ $sc->{files_conns} || {} };
        delete $sc->{files_conns};
        $finish->(@_);
    };
}

1;
