package Test::FishChat::Manager;

# Scenario steps for the manager's REST API (t/manager.t), on top of
# Test::FishChat and Test::FishChat::Msg: HTTP requests to the block's HTTP
# port, mixed with the stream clients of the msg server.
#
#   api STATUS METHOD PATH [BODY]     one request on a new connection
#                                     (Connection: close); STATUS is the
#                                     expected status, * for any
#   api_tls on PORT | off             api, api_raw and api_pages over TLS
#                                     to PORT from now on (no certificate
#                                     check)
#   api_raw STATUS BYTES              the same with a request written by
#                                     hand ("\r\n" escapes work in quotes)
#   api_send NAME METHOD PATH [BODY]  connect client NAME to the HTTP port
#                                     and send the request, without waiting
#   api_recv NAME STATUS              read NAME's response to its end
#   api_headers [LINE...]             extra request headers from now on
#                                     ("Authorization: Bearer x"); none
#                                     clears them
#   api_json PATH EXPECTED            a value of the last response's JSON:
#                                     PATH is dotted (messages.0.uuid),
#                                     strings compare as they are, numbers
#                                     as JSON writes them, true, false,
#                                     null; arrays and objects as canonical
#                                     JSON; * for anything present
#   api_count PATH N                  the array at PATH has N elements
#   api_capture VAR PATH              $VAR is that value
#   api_body TEXT                     the whole body (less its final \n)
#   api_like REGEX                    the body matches
#   api_header NAME VALUE             a response header; - for absent
#   api_pages PATH LIST FIELD EXPECTED
#                                     GET PATH page by page (?cursor=),
#                                     collecting FIELD of each element of
#                                     LIST; EXPECTED: the sorted values,
#                                     space-separated; $pages is the count
#   redis2_cmd PORT CMD...            a command to the second redis
#   redis_paused [PORT]               after a request was sent: wait until
#                                     one more command waits in a CLIENT
#                                     PAUSE of the redis (the test's, or
#                                     the one on PORT): a client more is
#                                     blocked on an EVALSHA, or more bytes
#                                     wait behind one

use strict;
use warnings;

use Test::FishChat ();

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Time::HiRes ();

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

sub _http_port { Test::Nginx::Util::server_port() }

sub request_bytes {
    my ($sc, $method, $path, $body) = @_;
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\n";
    $req .= "$_\r\n" for @{ $sc->{api_headers} // [] };
    if (defined $body) {
        $body = Test::FishChat::_bytes($body);
        $req .= "Content-Type: application/json\r\n"
                . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
    } else {
        $req .= "\r\n";
    }
    return Test::FishChat::_bytes($req);
}

# status, headers (lowercase names), body
sub parse_response {
    my ($raw, $head) = @_;
    my ($top, $body) = split /\r\n\r\n/, $raw, 2;
    die "no whole response: " . substr($raw // '', 0, 200) . "\n"
        if !defined $body;
    my ($line, @h) = split /\r\n/, $top;
    my ($status) = $line =~ m{^HTTP/1\.[01] (\d{3})}
        or die "bad status line: $line\n";
    my %h;
    for (@h) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }
    if (defined $h{'content-length'} && !$head) {
        die "body of " . length($body) . " bytes, Content-Length "
            . "$h{'content-length'}\n" if length $body != $h{'content-length'};
    }
    return { status => $status, headers => \%h, body => $body };
}

sub _read_all {
    my ($sc, $sock, $deadline) = @_;
    my $sel = IO::Select->new($sock);
    my $buf = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "no whole response within the timeout, got: "
            . substr($buf, 0, 200) . "\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            last if length $buf;
            die "read: $!\n";
        }
        last if $n == 0;
    }
    return $buf;
}

sub _check {
    my ($sc, $want, $resp) = @_;
    $sc->{api_last} = $resp;
    $sc->{api_json} = undef;
    if ($want ne '*' && $resp->{status} ne $want) {
        die "expected status $want, got $resp->{status}: $resp->{body}\n";
    }
}

sub _json {
    my $sc = shift;
    my $r = $sc->{api_last} or die "no response yet\n";
    return $sc->{api_json} //= eval { $JSON->decode($r->{body}) }
        // die "not JSON: $r->{body}\n";
}

sub _at {
    my ($v, $path) = @_;
    for my $k (split /\./, $path) {
        if (ref $v eq 'ARRAY' && $k =~ /^\d+$/) {
            die "no element $k\n" if $k > $#$v;
            $v = $v->[$k];
        } elsif (ref $v eq 'HASH') {
            die "no key \"$k\"\n" if !exists $v->{$k};
            $v = $v->{$k};
        } else {
            die "\"$k\": not an array or object\n";
        }
    }
    return $v;
}

sub _render {
    my $v = shift;
    return 'null' if !defined $v;
    return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
    return Test::FishChat::_chars($JSON->encode($v)) if ref $v;
    return $v;
}

sub _connect_http {
    my ($sc, $deadline) = @_;
    my $port = _http_port();
    while (1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 1);
        return $s if $s;
        die "cannot connect to the http port $port: $!\n"
            if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
    }
}

# over TLS (after "api_tls on"): blocking, until the server closes
sub _api_request_tls {
    my ($sc, $bytes, $head) = @_;
    require IO::Socket::SSL;
    my $deadline = $sc->deadline;
    my $s;
    while (1) {
        $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $sc->{api_tls},
                                  SSL_verify_mode => 0,
                                  Timeout => $sc->{timeout});
        last if $s;
        die "TLS connect to the http port failed: "
            . IO::Socket::SSL::errstr() . "\n"
            if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
    }
    $s->print($bytes) or die "TLS write failed\n";
    my $raw = '';
    while (1) {
        my $n = $s->sysread(my $buf, 65536);
        die "TLS read failed: " . IO::Socket::SSL::errstr() . "\n"
            if !defined $n;
        last if $n == 0;
        $raw .= $buf;
    }
    $s->close;
    return parse_response($raw, $head);
}

sub api_request {
    my ($sc, $bytes) = @_;
    my $head = $bytes =~ /^HEAD /;
    return _api_request_tls($sc, $bytes, $head) if $sc->{api_tls};
    my $deadline = $sc->deadline;
    my $s = _connect_http($sc, $deadline);
    local $SIG{PIPE} = 'IGNORE';
    $s->blocking(0);
    my $sel = IO::Select->new($s);
    my $off = 0;
    while ($off < length $bytes) {
        die "send timed out\n" if Time::HiRes::time() >= $deadline;
        next if !$sel->can_write(0.5);
        my $n = syswrite($s, $bytes, length($bytes) - $off, $off);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            last;       # the server may answer before reading it all
        }
        $off += $n;
    }
    my $raw = _read_all($sc, $s, $deadline);
    close $s;
    return parse_response($raw, $head);
}

Test::FishChat::add_step(

    api_tls => sub {
        my ($sc, $rest) = @_;
        my ($on, $port) = $sc->tokens($rest);
        die "usage: api_tls on PORT | off\n"
            if !defined $on || $on !~ /^(on|off)\z/
               || ($on eq 'on' && !defined $port);
        $sc->{api_tls} = $on eq 'on' ? $port : undef;
    },

    api => sub {
        my ($sc, $rest) = @_;
        my ($want, $method, $path, @body) = $sc->tokens($rest);
        die "usage: api STATUS METHOD PATH [BODY]\n"
            if !defined $path || @body > 1;
        _check($sc, $want,
               api_request($sc, request_bytes($sc, $method, $path, @body)));
    },

    api_raw => sub {
        my ($sc, $rest) = @_;
        my ($want, $bytes) = $sc->tokens($rest);
        die "usage: api_raw STATUS BYTES\n" if !defined $bytes;
        _check($sc, $want,
               api_request($sc, Test::FishChat::_bytes($bytes)));
    },

    api_send => sub {
        my ($sc, $rest) = @_;
        my ($name, $method, $path, @body) = $sc->tokens($rest);
        die "usage: api_send NAME METHOD PATH [BODY]\n"
            if !defined $path || @body > 1;
        $sc->connect($name, _http_port());
        $sc->send($name, request_bytes($sc, $method, $path, @body));
    },

    api_recv => sub {
        my ($sc, $rest) = @_;
        my ($name, $want) = $sc->tokens($rest);
        die "usage: api_recv NAME STATUS\n" if !defined $want;
        my $c = $sc->client($name);
        my $deadline = $sc->deadline;
        while (!$c->{eof}) {
            my $r = $sc->_fill($c, $deadline);
            die "no whole response within the timeout: $c->{buf}\n"
                if !defined $r;
        }
        _check($sc, $want, parse_response($c->{buf}));
    },

    api_headers => sub {
        my ($sc, $rest) = @_;
        $sc->{api_headers} = [$sc->tokens($rest)];
    },

    api_json => sub {
        my ($sc, $rest) = @_;
        my ($path, $want, @x) = $sc->tokens($rest);
        die "usage: api_json PATH EXPECTED\n" if !defined $want || @x;
        my $got = _render(_at(_json($sc), $path));
        return if $want eq '*';
        die "$path: expected $want, got $got\n    in: "
            . $sc->{api_last}{body} if $got ne $want;
    },

    api_count => sub {
        my ($sc, $rest) = @_;
        my ($path, $want) = $sc->tokens($rest);
        my $v = _at(_json($sc), $path);
        die "$path: not an array\n" if ref $v ne 'ARRAY';
        die "$path: expected $want elements, got " . scalar(@$v)
            . "\n    in: $sc->{api_last}{body}" if @$v != $want;
    },

    api_capture => sub {
        my ($sc, $rest) = @_;
        my ($var, $path) = $sc->tokens($rest);
        die "usage: api_capture VAR PATH\n" if !defined $path;
        $sc->var($var, _render(_at(_json($sc), $path)));
    },

    api_body => sub {
        my ($sc, $rest) = @_;
        my ($want) = $sc->tokens($rest);
        my $got = $sc->{api_last}{body} // die "no response yet\n";
        $got =~ s/\n\z//;
        $got = Test::FishChat::_chars($got);
        die "expected body: $want\n    got:           $got\n"
            if $got ne $want;
    },

    api_like => sub {
        my ($sc, $rest) = @_;
        my $re = Test::FishChat::_chars($rest);
        my $got = $sc->{api_last}{body} // die "no response yet\n";
        die "expected the body to match: $re\n    got: $got\n"
            if Test::FishChat::_chars($got) !~ /$re/;
    },

    api_header => sub {
        my ($sc, $rest) = @_;
        my ($name, $want) = $sc->tokens($rest);
        die "usage: api_header NAME VALUE\n" if !defined $want;
        my $got = $sc->{api_last}{headers}{lc $name};
        if ($want eq '-') {
            die "expected no $name header, got: $got\n" if defined $got;
            return;
        }
        die "expected header $name: $want, got: " . ($got // '(none)')
            . "\n" if !defined $got || $got ne $want;
    },

    api_pages => sub {
        my ($sc, $rest) = @_;
        my ($path, $list, $field, $want) = $sc->tokens($rest);
        die "usage: api_pages PATH LIST FIELD EXPECTED\n"
            if !defined $want;
        my ($cursor, @got, $pages);
        while (1) {
            my $p = $path;
            $p .= ($p =~ /\?/ ? '&' : '?') . "cursor=$cursor"
                if defined $cursor;
            my $resp = api_request($sc, request_bytes($sc, 'GET', $p));
            _check($sc, 200, $resp);
            my $j = _json($sc);
            push @got, map { _render($_->{$field}) } @{ $j->{$list} };
            $pages++;
            $cursor = $j->{cursor};
            last if !defined $cursor;
            die "more than 1000 pages\n" if $pages > 1000;
        }
        $sc->var('pages', $pages);
        my $g = join ' ', sort @got;
        die "expected: $want\n    got: $g\n" if $g ne $want;
    },

    redis2_cmd => sub {
        my ($sc, $rest) = @_;
        my ($port, @cmd) = $sc->tokens($rest);
        local $ENV{TEST_NGINX_REDIS_PORT} = $port;
        Test::FishChat::_redis_drop();
        my $ok = eval { Test::FishChat::redis(@cmd); 1 };
        my $err = $@;
        Test::FishChat::_redis_drop();
        die $err if !$ok;
    },

    redis_paused => sub {
        my ($sc, $rest) = @_;
        my ($port) = $sc->tokens($rest);
        my $key = $port // 'main';
        local $ENV{TEST_NGINX_REDIS_PORT} = $port
            // $ENV{TEST_NGINX_REDIS_PORT};
        Test::FishChat::_redis_drop() if defined $port;
        my $deadline = $sc->deadline;
        my $base = $sc->{paused}{$key} // 0;
        my ($list, $m) = ('', 0);
        while (1) {
            # a command more waits: one more client blocked in the
            # pause, or more bytes behind one
            $list = Test::FishChat::redis('CLIENT', 'LIST');
            $m = 0;
            for (split /\n/, $list) {
                next if !/flags=b\b/ || !/cmd=evalsha/;
                my ($q) = /\bqbuf=(\d+)/;
                $m += 1 + ($q // 0);
            }
            last if $m > $base;
            if (Time::HiRes::time() >= $deadline) {
                Test::FishChat::_redis_drop() if defined $port;
                die "no more commands wait in the pause:\n$list";
            }
            Time::HiRes::sleep(0.02);   # polling Redis, bounded
        }
        $sc->{paused}{$key} = $m;
        Test::FishChat::_redis_drop() if defined $port;
    },
);

1;
