# The gateway role (ngx_stream_fishchat_gateway_module) and the core module
# it stands on: the seed's REQ_MSG_SERVER exchange, the policies, the
# heartbeat cache, every error a client can cause, split and joined
# frames, configuration errors and the counters the monitor shows.
#
# Custom scenario steps (defined below):
#
#   ask [PORT] "REQUEST" "EXPECTED" [VAR]
#       one connection: send REQUEST (frame line syntax), the reply must
#       match EXPECTED (recv syntax), then the gateway must close; with VAR
#       the first argument of the reply is stored in $VAR
#   await_reply [PORT] "REQUEST" "EXPECTED"
#   await_reply_like [PORT] "REQUEST" REGEX
#       ask again every 20 ms until the reply matches (the heartbeat cache
#       has picked up what the block wrote to Redis), bounded by the step
#       timeout
#   asks N [PORT] "REQUEST" REGEX
#       N connections; the addresses handed out, joined by spaces, must
#       match REGEX
#   rotation N [PORT] "REQUEST" "A B C"
#       N connections; every answer is in the list and each one follows
#       the previous one in the list's cyclic order
#   ask_set N [PORT] "REQUEST" "A B C"
#       N connections; every answer is in the set and each one appears
#   hash_map NAME N [PORT]
#       ask for REQ_MSG_SERVER client-1 .. client-N, remember id -> address
#   hash_map_from NAME N [PORT]
#       ask for REQ_MSG_SERVER without an id from 127.0.0.2 .. 127.0.0.N+1
#   map_same NAME1 NAME2 / map_spread NAME "A B C" / map_pick NAME ADDR VAR
#   map_moved BEFORE AFTER GONE
#       only the ids that BEFORE mapped to GONE have another address in AFTER
#   split_each [PORT] "REQUEST" "EXPECTED"
#       for every split position: a connection sends the request in two
#       packets there
#   bytewise [PORT] "REQUEST" "EXPECTED"
#       one connection sends the request one byte per packet
#   beat ADDR TTL_MS SESSIONS [NODE]
#       write a heartbeat by Redis's clock, as docs/keyspace.md shows
#   beat_db DB ADDR TTL_MS SESSIONS [NODE] / redis_db DB CMD ARGS...
#       the same, a command, in another Redis database
#   fresh_cache PORT MARKER
#       wait until the heartbeat cache holds what Redis has now: the
#       gateway on PORT serves only MARKER, which is removed, awaited
#       gone, written again and awaited
#   redis_proxy cut|freeze|up
#       the Redis proxy on $TEST_NGINX_FC_PORT3: drop every connection and
#       stop listening / stop forwarding / listen and forward again
#   status LABEL_REGEX key=N|key+=N ...
#   await_status LABEL_REGEX key=N|key+=N ...
#   status_mark LABEL_REGEX
#       GET /status?format=json (fishchat_monitor) on the http port: the
#       counters of the server block whose label matches, in the worker
#       that answered, are N, or grew by N since status_mark (N may be a
#       sum: 3+$x)
#   log_has REGEX
#       a line of the whole error.log of this nginx matches REGEX (not
#       only the lines since the scenario started, as wait_log)
#   body_is CLIENT 'BODY'
#       the last frame's body is BODY followed by "\n", byte for byte
#   frame_len CLIENT VAR
#       $VAR is the size of the last frame, length prefix included
#
# "--- workers: N" runs the block with a master and N workers; blocks
# without it run in one process (or a master and one worker with
# TEST_NGINX_USE_HUP).

use Test::FishChat;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Socket ();
use Time::HiRes ();

repeat_each(2);

default_no_error_log('[error]', '[alert]', '[emerg]');

# a block that expects log lines still must not log errors
add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->error_log && !defined $block->no_error_log
        && !defined $block->must_die)
    {
        $block->set_value('no_error_log', "[error]\n[alert]\n[emerg]");
    }
});

# "--- workers: N": N workers under a master; otherwise one process
my $DefaultMaster = $Test::Nginx::Util::MasterProcessEnabled;

add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->workers) {
        workers($block->workers);
        master_on();

    } else {
        workers(1);
        master_process_enabled($DefaultMaster eq 'on');
    }
});

# --------------------------------------------------------------------------
# a port where nothing listens, for "Redis is down": bound (without
# SO_REUSEADDR) and never listening, so connections are refused and no
# other process can take the port while this file runs

my $ClosedPort;
{
    socket($ClosedPort, Socket::PF_INET(), Socket::SOCK_STREAM(), 0)
        or die "socket: $!\n";
    bind($ClosedPort, Socket::pack_sockaddr_in(0,
                                               Socket::inet_aton('127.0.0.1')))
        or die "bind: $!\n";
    ($ENV{TEST_NGINX_FC_CLOSED_PORT}) =
        Socket::unpack_sockaddr_in(getsockname($ClosedPort));
}

# --------------------------------------------------------------------------
# a Redis proxy on $TEST_NGINX_FC_PORT3 that steps can cut off, freeze and
# bring back; it takes one-letter commands on a pipe and acknowledges each
# when done:
#   c  reset every connection and stop listening (Redis is down); the
#      port stays bound meanwhile, so that nothing else takes it
#   f  stop forwarding, keep the connections (Redis hangs)
#   u  listen and forward again

my $ProxyPort = $ENV{TEST_NGINX_FC_PORT3};
my ($ProxyPid, $ProxyCtl, $ProxyAck);

sub proxy_main {
    my ($ctl, $ack) = @_;
    my $rport = $ENV{TEST_NGINX_REDIS_PORT};
    my ($ls, $hold, $frozen);
    my $sel = IO::Select->new($ctl);
    my (%peer, %sock);

    $SIG{PIPE} = 'IGNORE';

    my $listen = sub {
        $ls = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                    LocalPort => $ProxyPort, ReuseAddr => 1)
            or die "proxy: cannot listen on $ProxyPort: $!\n";
        $sel->add($ls);
    };

    my $drop = sub {
        my @socks = @_;     # copies: the hashes below hold the originals
        for my $s (@socks) {
            next if !$s || !$sock{$s};
            $sel->remove($s);
            delete $sock{$s};
            delete $peer{$s};
            close $s;
        }
    };

    $listen->();
    syswrite $ack, 'u';

    while (1) {
        for my $s ($sel->can_read(1)) {
            if ($s == $ctl) {
                my $n = sysread($ctl, my $cmd, 1);
                return if !$n;      # the test is over

                if ($cmd eq 'c') {
                    # resets: no TIME_WAIT left on the port
                    setsockopt($_, Socket::SOL_SOCKET(), Socket::SO_LINGER(),
                               pack('ii', 1, 0)) for values %sock;
                    $drop->(values %sock);
                    if ($ls) {
                        $sel->remove($ls);
                        close $ls;
                        undef $ls;
                    }
                    # hold the port, refusing connections, till "u"
                    socket($hold, Socket::PF_INET(), Socket::SOCK_STREAM(), 0)
                        && bind($hold, Socket::pack_sockaddr_in($ProxyPort,
                                           Socket::inet_aton('127.0.0.1')))
                        or do {
                            warn "redis proxy: cannot hold port $ProxyPort: "
                                 . "$!\n";
                            undef $hold;
                        };
                    $frozen = 0;

                } elsif ($cmd eq 'f') {
                    $sel->remove(values %sock);
                    $frozen = 1;

                } elsif ($cmd eq 'u') {
                    if ($hold) {
                        close $hold;
                        undef $hold;
                    }
                    $listen->() if !$ls;
                    $sel->add(values %sock) if $frozen;
                    $frozen = 0;
                }

                syswrite $ack, $cmd;
                last;
            }

            if ($ls && $s == $ls) {
                my $c = $ls->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $rport)
                    or do { close $c; next };
                $sock{$c} = $c;
                $sock{$u} = $u;
                $peer{$c} = $u;
                $peer{$u} = $c;
                $sel->add($c, $u) if !$frozen;
                next;
            }

            next if !$sock{$s};

            my $n = sysread($s, my $buf, 65536);
            if (!$n) {
                $drop->($s, $peer{$s});
                next;
            }

            my $to = $peer{$s};
            my $off = 0;
            while ($off < length $buf) {
                my $w = syswrite($to, $buf, length($buf) - $off, $off);
                last if !$w;
                $off += $w;
            }
        }
    }
}

sub proxy_start {
    return if $ProxyPid;

    pipe(my $cr, my $cw) or die "pipe: $!\n";
    pipe(my $ar, my $aw) or die "pipe: $!\n";
    my $pid = fork();
    die "fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        close $cw;
        close $ar;
        eval { proxy_main($cr, $aw) };
        warn "redis proxy: $@" if $@;
        POSIX::_exit(0);
    }

    close $cr;
    close $aw;
    $cw->autoflush(1);
    ($ProxyPid, $ProxyCtl, $ProxyAck) = ($pid, $cw, $ar);
    proxy_wait('u', 5);
}

sub proxy_cmd {
    my ($cmd, $timeout) = @_;
    proxy_start();
    syswrite($ProxyCtl, $cmd) or die "the redis proxy is gone: $!\n";
    proxy_wait($cmd, $timeout);
}

sub proxy_wait {
    my ($want, $timeout) = @_;
    my $sel = IO::Select->new($ProxyAck);
    my $deadline = Time::HiRes::time() + $timeout;

    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "the redis proxy did not answer within $timeout s\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($ProxyAck, my $got, 1);
        die "the redis proxy is gone\n" if !$n;
        return if $got eq $want;
    }
}

add_cleanup_handler(sub {
    if ($ProxyPid) {
        close $ProxyCtl;
        waitpid $ProxyPid, 0;
        undef $ProxyPid;
    }
});

# --------------------------------------------------------------------------
# steps

my $Seq = 0;

# [PORT] and the rest of the tokens
sub port_and {
    my ($sc, $rest) = @_;
    my @t = $sc->tokens($rest);
    my $port;
    $port = shift @t if @t && $t[0] =~ /^(?:127\.\d+\.\d+\.\d+:)?\d+$/;
    return ($port, @t);
}

# one exchange on a new connection: the reply frame, and the gateway must
# close after it with nothing more
sub exchange {
    my ($sc, $port, $line, $deadline, $from) = @_;
    my $name = '__ask' . ++$Seq;
    my ($f, $ok);

    $deadline //= $sc->deadline;

    if (defined $from) {
        connect_from($sc, $name, $port, $from);
    } else {
        $sc->connect($name, $port);
    }

    my $c = $sc->client($name);

    $ok = eval {
        $sc->send($c, $sc->frame_bytes($line));
        $f = $sc->recv($c, $deadline);

        while (!$c->{eof} && !length $c->{buf}) {
            last if !defined $sc->_fill($c, $deadline);
        }

        die "after \"$f->{text}\" the gateway sent more: "
            . render_frames($c->{buf}) if length $c->{buf};
        die "the gateway did not close after \"$f->{text}\"\n"
            if !$c->{eof};
        1;
    };

    my $err = $@;
    close $c->{sock};
    delete $sc->{clients}{$name};
    die $err if !$ok;

    return $f;
}

# a scenario client connected from another loopback address
sub connect_from {
    my ($sc, $name, $port, $from) = @_;
    $port //= $sc->port;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port, LocalAddr => $from,
                                     Proto => 'tcp', Timeout => $sc->timeout)
        or die "cannot connect from $from to 127.0.0.1:$port: $!\n";
    $sock->blocking(0);
    setsockopt($sock, Socket::IPPROTO_TCP(), Socket::TCP_NODELAY(), 1);
    $sc->{clients}{$name} = {
        name => $name, sock => $sock, buf => '', eof => 0, err => undef,
        frames => [], last => undef, addr => "127.0.0.1:$port from $from",
    };
}

# the address of a SELECT_MSG_SERVER_FOR_CLIENT reply
sub selected {
    my $f = shift;
    die "expected SELECT_MSG_SERVER_FOR_CLIENT <addr>, got: $f->{text}\n"
        if !defined $f->{cmd} || $f->{cmd} ne 'SELECT_MSG_SERVER_FOR_CLIENT'
           || @{ $f->{args} } != 1;
    return $f->{args}[0];
}

# ask until the reply matches EXPECTED (recv syntax) or the regex
sub await_frame {
    my ($sc, $port, $line, $exp, $like) = @_;
    my $re = $like ? qr/$exp/ : undef;
    my $deadline = $sc->deadline;
    my $got;

    while (1) {
        my $f = eval { exchange($sc, $port, $line, $deadline) };
        if ($f) {
            $got = $f->{text};
            return if $like ? $got =~ $re
                            : !Test::FishChat::frame_line_mismatch($exp, $f);
        } else {
            $got = $@;
            chomp $got;
        }
        last if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);   # polling the gateway, bounded
    }

    die "no matching reply within " . $sc->timeout . " s: $exp\n"
        . "    last got: $got\n";
}

sub await_reply {
    my ($sc, $rest, $like) = @_;
    my ($port, $line, $exp, @x) = port_and($sc, $rest);
    die "usage: await_reply [PORT] REQUEST EXPECTED\n"
        if !defined $exp || @x;
    await_frame($sc, $port, $line, $exp, $like);
}

# a heartbeat written by Redis's clock, as docs/keyspace.md shows; in
# database DB if given
sub beat {
    my ($addr, $ttl, $sessions, $node, $db) = @_;
    # short heartbeats last longer under valgrind, like the waits
    $ttl *= $Test::FishChat::TimeoutScale if $ttl > 0;
    my $load = encode_json({ node => $node // 'n1',
                             sessions => 0 + $sessions });
    my @cmd = ('EVAL', <<'_EOS_', 2, redis_key_of('{nodes}:beat'),
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
_EOS_
               redis_key_of('{nodes}:load'), $addr, $ttl, $load);
    return defined $db ? redis_in_db($db, @cmd) : redis(@cmd);
}

# a command in another database, on a connection of its own (the
# harness's connection stays on database 0)
sub redis_in_db {
    my ($db, @cmd) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_REDIS_PORT},
                                  Timeout => 3)
        or die "redis: $!\n";
    my $req = '';
    for my $c (['SELECT', $db], \@cmd) {
        $req .= '*' . @$c . "\r\n"
                . join('', map { '$' . length($_) . "\r\n$_\r\n" } @$c);
    }
    print $s $req;
    my @r = map { resp_reply($s) } 1 .. 2;
    close $s;
    for (@r) {
        die "redis: $$_\n" if ref $_ eq 'SCALAR';
    }
    return $r[1];
}

# one reply, blocking; an error reply as a scalar reference
sub resp_reply {
    my $s = shift;
    local $/ = "\r\n";
    my $line = <$s> // die "redis: connection closed\n";
    chomp $line;
    my ($t, $v) = (substr($line, 0, 1), substr($line, 1));
    return \$v if $t eq '-';
    return $v if $t eq '+' || $t eq ':';
    if ($t eq '$') {
        return undef if $v < 0;
        read($s, my $data, $v + 2) == $v + 2 or die "redis: short read\n";
        return substr($data, 0, $v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { resp_reply($s) } 1 .. $v];
    }
    die "redis: unexpected reply $line\n";
}

# a body as a "hex:" frame line (for bytes that are not UTF-8)
sub hex_frame {
    return 'hex: ' . unpack('H*', frame_raw(shift));
}

{
    no warnings 'once';
    *Test::Base::Filter::hex_frame = \&hex_frame;
}

sub answers {
    my ($sc, $n, $port, $line) = @_;
    die "a count is needed\n" if !defined $n || $n !~ /^\d+$/;
    return map { selected(exchange($sc, $port, $line)) } 1 .. $n;
}

sub redis_key_of { fc_prefix() . shift }

Test::FishChat::add_step(
    ask => sub {
        my ($sc, $rest) = @_;
        my ($port, $line, $exp, $var, @x) = port_and($sc, $rest);
        die "usage: ask [PORT] REQUEST EXPECTED [VAR]\n"
            if !defined $exp || @x;
        my $f = exchange($sc, $port, $line);
        my $why = Test::FishChat::frame_line_mismatch($exp, $f);
        die "expected: $exp\n    $why\n" if $why;
        if (defined $var) {
            die "no argument to capture in $f->{text}\n"
                if !$f->{args} || !@{ $f->{args} };
            $sc->var($var, $f->{args}[0]);
        }
    },

    await_reply => sub { await_reply(@_[0, 1], 0) },
    await_reply_like => sub { await_reply(@_[0, 1], 1) },

    asks => sub {
        my ($sc, $rest) = @_;
        my ($n, @t) = $sc->tokens($rest);
        my ($port, $line, $re);
        ($port, $line, $re) = @t == 3 ? @t : (undef, @t);
        die "usage: asks N [PORT] REQUEST REGEX\n" if !defined $re;
        my $got = join ' ', answers($sc, $n, $port, $line);
        die "expected to match: $re\n    got: $got\n" if $got !~ /$re/;
    },

    rotation => sub {
        my ($sc, $rest) = @_;
        my ($n, @t) = $sc->tokens($rest);
        my ($port, $line, $list) = @t == 3 ? @t : (undef, @t);
        die "usage: rotation N [PORT] REQUEST LIST\n" if !defined $list;
        my @list = split ' ', $list;
        my %pos = map { $list[$_] => $_ } 0 .. $#list;
        my @got = answers($sc, $n, $port, $line);
        for my $i (0 .. $#got) {
            die "answer $i \"$got[$i]\" is not in the list: @got\n"
                if !exists $pos{$got[$i]};
            next if !$i;
            my $want = $list[($pos{$got[$i - 1]} + 1) % @list];
            die "answer $i is $got[$i], not $want: @got\n"
                if $got[$i] ne $want;
        }
    },

    ask_set => sub {
        my ($sc, $rest) = @_;
        my ($n, @t) = $sc->tokens($rest);
        my ($port, $line, $list) = @t == 3 ? @t : (undef, @t);
        die "usage: ask_set N [PORT] REQUEST LIST\n" if !defined $list;
        my %want = map { $_ => 0 } split ' ', $list;
        my @got = answers($sc, $n, $port, $line);
        for (@got) {
            die "\"$_\" is not in the set: @got\n" if !exists $want{$_};
            $want{$_}++;
        }
        my @missing = grep { !$want{$_} } sort keys %want;
        die "never handed out: @missing (got @got)\n" if @missing;
    },

    hash_map => sub {
        my ($sc, $rest) = @_;
        my ($name, $n, $port, @x) = $sc->tokens($rest);
        die "usage: hash_map NAME N [PORT]\n"
            if !defined $n || $n !~ /^\d+$/ || @x;
        my %m;
        for my $i (1 .. $n) {
            $m{"client-$i"} = selected(exchange($sc, $port,
                                                "REQ_MSG_SERVER client-$i"));
        }
        $sc->{maps}{$name} = \%m;
    },

    hash_map_from => sub {
        my ($sc, $rest) = @_;
        my ($name, $n, $port, @x) = $sc->tokens($rest);
        die "usage: hash_map_from NAME N [PORT]\n"
            if !defined $n || $n !~ /^\d+$/ || $n > 250 || @x;
        my %m;
        for my $i (2 .. $n + 1) {
            $m{"127.0.0.$i"} = selected(exchange($sc, $port, 'REQ_MSG_SERVER',
                                                 undef, "127.0.0.$i"));
        }
        $sc->{maps}{$name} = \%m;
    },

    map_same => sub {
        my ($sc, $rest) = @_;
        my ($a, $b) = map { $sc->{maps}{$_} || die "no map $_\n" }
                      $sc->tokens($rest);
        for my $id (sort keys %$a) {
            die "$id: $a->{$id}, then $b->{$id}\n" if $a->{$id} ne $b->{$id};
        }
    },

    map_spread => sub {
        my ($sc, $rest) = @_;
        my ($name, $list) = $sc->tokens($rest);
        my $m = $sc->{maps}{$name} or die "no map $name\n";
        my %got = map { $_ => 1 } values %$m;
        my $got = join ' ', sort keys %got;
        my $want = join ' ', sort split ' ', $list;
        die "addresses handed out: $got, expected: $want\n" if $got ne $want;
    },

    map_pick => sub {
        my ($sc, $rest) = @_;
        my ($name, $addr, $var) = $sc->tokens($rest);
        my $m = $sc->{maps}{$name} or die "no map $name\n";
        my ($id) = grep { $m->{$_} eq $addr } sort keys %$m;
        die "no id of $name went to $addr\n" if !defined $id;
        $sc->var($var, $id);
    },

    map_moved => sub {
        my ($sc, $rest) = @_;
        my ($bn, $an, $gone) = $sc->tokens($rest);
        my ($b, $a) = map { $sc->{maps}{$_} || die "no map $_\n" } $bn, $an;
        my $moved = 0;
        for my $id (sort keys %$b) {
            if ($b->{$id} eq $gone) {
                die "$id still goes to $gone\n" if $a->{$id} eq $gone;
                $moved++;
            } elsif ($a->{$id} ne $b->{$id}) {
                die "$id moved from $b->{$id} to $a->{$id}, but only the "
                    . "clients of $gone should move\n";
            }
        }
        die "no id went to $gone before\n" if !$moved;
    },

    split_each => sub {
        my ($sc, $rest) = @_;
        my ($port, $line, $exp, @x) = port_and($sc, $rest);
        die "usage: split_each [PORT] REQUEST EXPECTED\n"
            if !defined $exp || @x;
        my $bytes = $sc->frame_bytes($line);

        for my $k (1 .. length($bytes) - 1) {
            my $name = '__split' . ++$Seq;
            $sc->connect($name, $port);
            $sc->send($name, substr($bytes, 0, $k));
            Time::HiRes::sleep(0.005);   # two packets, not a wait for news
            $sc->send($name, substr($bytes, $k));
            my $f = $sc->recv($name);
            my $why = Test::FishChat::frame_line_mismatch($exp, $f);
            die "split after byte $k: expected: $exp\n    $why\n" if $why;
            $Test::FishChat::Steps{closed}->($sc, $name);
            $Test::FishChat::Steps{close}->($sc, $name);
        }
    },

    bytewise => sub {
        my ($sc, $rest) = @_;
        my ($port, $line, $exp, @x) = port_and($sc, $rest);
        die "usage: bytewise [PORT] REQUEST EXPECTED\n"
            if !defined $exp || @x;
        my $bytes = $sc->frame_bytes($line);
        my $name = '__bytes' . ++$Seq;
        $sc->connect($name, $port);
        for my $i (0 .. length($bytes) - 1) {
            Time::HiRes::sleep(0.002) if $i;   # one byte per packet
            $sc->send($name, substr($bytes, $i, 1));
        }
        my $f = $sc->recv($name);
        my $why = Test::FishChat::frame_line_mismatch($exp, $f);
        die "expected: $exp\n    $why\n" if $why;
        $Test::FishChat::Steps{closed}->($sc, $name);
        $Test::FishChat::Steps{close}->($sc, $name);
    },

    beat => sub {
        my ($sc, $rest) = @_;
        my ($addr, $ttl, $sessions, $node, @x) = $sc->tokens($rest);
        die "usage: beat ADDR TTL_MS SESSIONS [NODE]\n"
            if !defined $sessions || @x;
        beat($addr, $ttl, $sessions, $node);
    },

    beat_db => sub {
        my ($sc, $rest) = @_;
        my ($db, $addr, $ttl, $sessions, $node, @x) = $sc->tokens($rest);
        die "usage: beat_db DB ADDR TTL_MS SESSIONS [NODE]\n"
            if !defined $sessions || @x;
        beat($addr, $ttl, $sessions, $node, $db);
    },

    redis_db => sub {
        my ($sc, $rest) = @_;
        my ($db, @cmd) = $sc->tokens($rest);
        die "usage: redis_db DB CMD ARGS...\n" if !@cmd;
        redis_in_db($db, @cmd);
    },

    # the gateway on PORT serves only MARKER: remove it and wait until the
    # gateway has no live node, then write it anew and wait until it is
    # handed out: the cache then holds what Redis had at that time
    fresh_cache => sub {
        my ($sc, $rest) = @_;
        my ($port, $marker, @x) = $sc->tokens($rest);
        die "usage: fresh_cache PORT MARKER\n" if !defined $marker || @x;
        redis('ZREM', redis_key_of('{nodes}:beat'), $marker);
        await_frame($sc, $port, 'REQ_MSG_SERVER', 'ERROR NO_MSG_SERVER *');
        beat($marker, 600000, 0, 'marker');
        await_frame($sc, $port, 'REQ_MSG_SERVER',
                    "SELECT_MSG_SERVER_FOR_CLIENT $marker");
    },

    status_mark => sub {
        my ($sc, $rest) = @_;
        my ($label, @x) = $sc->tokens($rest);
        die "usage: status_mark LABEL_REGEX\n" if !defined $label || @x;
        $sc->{status_base}{$label} = server_counters($sc, $label);
    },

    redis_proxy => sub {
        my ($sc, $rest) = @_;
        my ($what, @x) = $sc->tokens($rest);
        my %cmd = (cut => 'c', freeze => 'f', up => 'u');
        die "usage: redis_proxy cut|freeze|up\n"
            if !defined $what || !$cmd{$what} || @x;
        proxy_cmd($cmd{$what}, $sc->timeout);
    },

    status => sub {
        my ($sc, $rest) = @_;
        my $why = status_mismatch($sc, $rest);
        die "$why\n" if $why;
    },

    await_status => sub {
        my ($sc, $rest) = @_;
        my $deadline = $sc->deadline;
        my $why;
        while (1) {
            $why = status_mismatch($sc, $rest);
            return if !$why;
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);   # polling the monitor, bounded
        }
        die "not within " . $sc->timeout . " s: $why\n";
    },

    body_is => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        my ($want, @x) = $sc->tokens($more);
        die "usage: body_is CLIENT BODY\n" if !defined $want || @x;
        my $f = $c->{last} or die "client $c->{name} has no frame yet\n";
        utf8::encode($want) if utf8::is_utf8($want);
        my $got = $f->{body};
        die "body differs:\n    got:      $got    expected: $want\\n\n"
            if $got ne $want . "\n";
    },

    frame_len => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        my ($var, @x) = $sc->tokens($more);
        die "usage: frame_len CLIENT VAR\n" if !defined $var || @x;
        my $f = $c->{last} or die "client $c->{name} has no frame yet\n";
        $sc->var($var, length $f->{raw});
    },

    log_has => sub {
        my ($sc, $rest) = @_;
        (my $re = $rest) =~ s/\s+#(?:\s.*)?\z//s;
        my $deadline = $sc->deadline;
        while (1) {
            my $log = '';
            if (open my $in, '<', $Test::Nginx::Util::ErrLogFile) {
                $log = do { local $/; <$in> } // '';
            }
            return if $log =~ /$re/m;
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);   # polling the log, bounded
        }
        die "no line of error.log matched $re within " . $sc->timeout
            . " s\n";
    },
);

# GET /status from the http server of the block
sub http_status {
    my $sc = shift;
    my $port = server_port();
    my $deadline = $sc->deadline;
    my $s;

    while (1) {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                   Timeout => $sc->timeout);
        last if $s;
        die "cannot connect to 127.0.0.1:$port: $!\n"
            if $! != Errno::ECONNREFUSED() || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
    }

    syswrite $s, "GET /status?format=json HTTP/1.0\r\nHost: localhost\r\n\r\n";

    my $sel = IO::Select->new($s);
    my $resp = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "GET /status timed out\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            die "GET /status: $!\n";
        }
        last if !$n;
    }
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    die "GET /status: $head\n" if $head !~ m{\AHTTP/1\.\d 200 };
    die "GET /status: not JSON: $head\n"
        if $head !~ m{^Content-Type: application/json}mi;
    return decode_json($body);
}

# the counters of the server labelled /LABEL/ in the worker that answered
sub server_counters {
    my ($sc, $label) = @_;
    my $j = http_status($sc);

    my ($w) = grep { $_->{pid} == $j->{pid} } @{ $j->{workers} };
    die "the worker $j->{pid} that answered is not in the list\n" if !$w;

    my @s = grep { $_->{server} =~ /$label/ } @{ $w->{servers} };
    die "not one server labelled /$label/ but " . scalar(@s) . "\n"
        if @s != 1;

    return $s[0];
}

# key=N: the counter is N; key+=N: it grew by N since status_mark
sub status_mismatch {
    my ($sc, $rest) = @_;
    my ($label, @kv) = $sc->tokens($rest);
    my $s = server_counters($sc, $label);
    my $base = $sc->{status_base}{$label};
    my @bad;

    for my $kv (@kv) {
        my ($k, $delta, $want) = $kv =~ /^([\w.]+)(\+?)=(\d+(?:\+\d+)*)$/
            or die "bad key=value: $kv\n";
        $want = eval $want;     # digits and +
        die "$kv: no status_mark for /$label/\n" if $delta && !$base;
        my ($v, $b) = ($s, $base);
        for my $part (split /\./, $k) {
            $v = ref $v eq 'HASH' ? $v->{$part} : undef;
            $b = ref $b eq 'HASH' ? $b->{$part} : undef;
        }
        if (!defined $v) {
            push @bad, "$k is missing";
        } elsif ($delta ? $v - $b != $want : $v != $want) {
            push @bad, $delta ? "$k grew by " . ($v - $b) . ", not $want"
                              : "$k is $v, not $want";
        }
    }

    return @bad ? join('; ', @bad) . "\n    in: "
                  . JSON::PP->new->canonical->encode($s)
                : '';
}

# --------------------------------------------------------------------------
# the plan: 2 tests for a raw request, 1 for a scenario or must_die, plus
# one per log pattern

sub log_lines {
    my $v = shift;
    return 0 if !defined $v;
    return scalar grep { defined } @$v if ref $v eq 'ARRAY';
    return 1 if ref $v;
    chomp $v;
    return scalar grep { length } split /\n+/, $v;
}

my $tests = 0;
for my $b (blocks()) {
    my $n = (defined $b->scenario || defined $b->must_die) ? 1 : 2;
    my ($el, $nel) = (log_lines($b->error_log), log_lines($b->no_error_log));
    if (!defined $b->error_log && !defined $b->no_error_log) {
        $nel = 3;
    } elsif (defined $b->error_log && !defined $b->no_error_log
             && !defined $b->must_die)
    {
        $nel = 3;
    }
    $tests += $n + $el + $nel;
}

plan tests => repeat_each() * $tests;

run_tests();

__DATA__

=== TEST 1: the seed's exchange, byte for byte (wire-transcripts.md)
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19001;
--- raw_request eval
pack('H8', '00000027') . '{"CmdName":"REQ_MSG_SERVER","Args":[]}' . "\n"
--- response_body eval
pack('H8', '00000046')
. '{"CmdName":"SELECT_MSG_SERVER_FOR_CLIENT","Args":["127.0.0.1:19001"]}'
. "\n"



=== TEST 2: REQ_MSG_SERVER as the seed's client sends it (with "\n")
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
REQ_MSG_SERVER
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 3: a body without the trailing "\n"
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
nonl: REQ_MSG_SERVER
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 4: Args absent, Args null, unknown fields, whitespace around
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
ask 'json: {"CmdName":"REQ_MSG_SERVER"}' "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
ask 'nonl: REQ_MSG_SERVER' "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
ask 'json: {"CmdName":"REQ_MSG_SERVER","Args":null}' "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
ask 'json: {"Version":2,"CmdName":"REQ_MSG_SERVER","Extra":{"a":[1,null]},"Args":[],"z":true}' "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
ask "hex: 00 00 00 22 20 0d 0a 09 7b 22 43 6d 64 4e 61 6d 65 22 20 3a 20 22 52 45 51 5f 4d 53 47 5f 53 45 52 56 45 52 22 7d 20 0a" "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"



=== TEST 5: a frame larger than the read buffer (1024 bytes)
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- raw_request eval
frame_raw('{"CmdName":"REQ_MSG_SERVER","Args":[],"pad":"' . ('x' x 5000)
          . "\"}\n")
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 6: client ids: empty counts as absent, 256 bytes is the limit
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario eval
"ask 'REQ_MSG_SERVER \"\"' 'SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000'
ask 'REQ_MSG_SERVER " . ('i' x 256) . "' 'SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000'
ask 'REQ_MSG_SERVER " . ("\x{e9}" x 128) . "' 'SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000'
"



=== TEST 7: round_robin over a static list rotates, per worker
--- workers: 1
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001;
    fishchat_gateway_servers 127.0.0.1:19002;
    fishchat_gateway_policy round_robin;
--- scenario
rotation 7 REQ_MSG_SERVER "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"
rotation 4 "REQ_MSG_SERVER some-id" "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"



=== TEST 8: round_robin with two workers: every server, nothing else
--- workers: 2
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
    fishchat_gateway_policy round_robin;
--- scenario
ask_set 12 REQ_MSG_SERVER "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"



=== TEST 9: least_conn (the default) without heartbeats is a rotation
--- workers: 1
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
--- scenario
rotation 7 REQ_MSG_SERVER "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"



=== TEST 10: servers and policy inherited from the stream level, IPv6
--- workers: 1
--- stream_config
    fishchat_gateway_servers [::1]:19000 msg.example.com:19001;
    fishchat_gateway_policy round_robin;
--- stream_server_config
    fishchat_gateway;
--- scenario
rotation 4 REQ_MSG_SERVER "[::1]:19000 msg.example.com:19001"



=== TEST 11: hash with a client id: the same id, the same server; ids spread
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
    fishchat_gateway_policy hash;
--- scenario
hash_map first 30
hash_map again 30
map_same first again
map_spread first "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"
ask "REQ_MSG_SERVER alice" "SELECT_MSG_SERVER_FOR_CLIENT *" a
asks 5 "REQ_MSG_SERVER alice" "^($a ){4}$a$"



=== TEST 12: hash without an id: by the client's address, stable
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
    fishchat_gateway_policy hash;
--- scenario
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT *" a
asks 5 REQ_MSG_SERVER "^($a ){4}$a$"
asks 3 'REQ_MSG_SERVER ""' "^($a ){2}$a$"
asks 3 'json: {"CmdName":"REQ_MSG_SERVER","Args":null}' "^($a ){2}$a$"
# clients from 127.0.0.2 .. 127.0.0.31
hash_map_from first 30
hash_map_from again 30
map_same first again
map_spread first "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"



=== TEST 13: least_conn with heartbeats picks the lowest load
--- workers: 1
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":10}' 127.0.0.1:19001 '{"node":"n2","sessions":0,"topics":7}' 127.0.0.1:19002 '{"node":"n3","sessions":10}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001 $NOW_MS+60000 127.0.0.1:19002
--- scenario
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
asks 5 REQ_MSG_SERVER '^(127\.0\.0\.1:19001 ){4}127\.0\.0\.1:19001$'
redis HSET ${PREFIX}{nodes}:load 127.0.0.1:19002 '{"node":"n3","sessions":-50}'
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19002"



=== TEST 14: least_conn: equal loads take turns (settings from the stream level)
--- workers: 1
--- stream_config
    fishchat_gateway_refresh 50ms;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_policy least_conn;
--- stream_server_config
    fishchat_gateway;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":5}' 127.0.0.1:19001 '{"node":"n2","sessions":5}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001
--- scenario
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT *"
rotation 6 REQ_MSG_SERVER "127.0.0.1:19000 127.0.0.1:19001"



=== TEST 15: a stale heartbeat is never handed out
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":0}' 127.0.0.1:19001 '{"node":"n2","sessions":50}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS-5000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001
--- scenario
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
asks 5 REQ_MSG_SERVER '^(127\.0\.0\.1:19001 ){4}127\.0\.0\.1:19001$'



=== TEST 16: a heartbeat that expires while cached stops being handed out
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19001 '{"node":"n2","sessions":1000000}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19001
--- scenario
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
beat 127.0.0.1:19000 600 0 n1
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
asks 3 REQ_MSG_SERVER '^(127\.0\.0\.1:19001 ){2}127\.0\.0\.1:19001$'



=== TEST 17: with heartbeats, the static list restricts the live nodes
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":50}' 127.0.0.1:19001 '{"node":"n2","sessions":30}' 127.0.0.1:19002 '{"node":"n3","sessions":0}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001 $NOW_MS+60000 127.0.0.1:19002
--- scenario
# the unrestricted gateway sees the least loaded node: the cache is filled
await_reply $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19002"
asks 4 REQ_MSG_SERVER '^(127\.0\.0\.1:19001 ){3}127\.0\.0\.1:19001$'



=== TEST 18: no live msg server: ERROR NO_MSG_SERVER, then the close
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19001 '{"node":"n2","sessions":0}' 127.0.0.1:19002 '{"node":"n3","sessions":0}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS-1 127.0.0.1:19001 $NOW_MS+60000 127.0.0.1:19002
--- scenario
await_reply $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19002"
connect a
send a REQ_MSG_SERVER
recv a ERROR NO_MSG_SERVER "no live msg server"
closed a
--- error_log eval
qr/\[info\] .*fishchat gateway: NO_MSG_SERVER: no live msg server.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 19: hash with heartbeats: only the clients of a node that goes move
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_servers 127.0.0.1:19009;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
    fishchat_gateway_policy hash;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":1}' 127.0.0.1:19001 '{"node":"n2","sessions":1}' 127.0.0.1:19002 '{"node":"n3","sessions":1}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001 $NOW_MS+60000 127.0.0.1:19002
--- scenario
fresh_cache $TEST_NGINX_FC_PORT1 127.0.0.1:19009
hash_map before 40
hash_map again 40
map_same before again
map_spread before "127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002"
map_pick before 127.0.0.1:19001 victim
redis ZREM ${PREFIX}{nodes}:beat 127.0.0.1:19001
await_reply_like "REQ_MSG_SERVER $victim" '^SELECT_MSG_SERVER_FOR_CLIENT 127\.0\.0\.1:1900[02]$'
hash_map after 40
map_moved before after 127.0.0.1:19001
map_spread after "127.0.0.1:19000 127.0.0.1:19002"



=== TEST 20: heartbeats with Redis down: NO_MSG_SERVER; a static gateway works
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_CLOSED_PORT;
--- no_redis
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_servers 127.0.0.1:19005;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
log_has \[warn\] .*fishchat: redis 127\.0\.0\.1:\d+ is unavailable
ask REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
ask $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19005"
ask $TEST_NGINX_FC_PORT1 "REQ_MSG_SERVER x" "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19005"
ask REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'



=== TEST 21: a static-only gateway needs no Redis at all
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_CLOSED_PORT;
--- no_redis
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
REQ_MSG_SERVER
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
--- no_error_log
[error]
[alert]
[emerg]
is unavailable



=== TEST 22: Redis goes away: the cache keeps serving, expires on time, recovers
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_servers 127.0.0.1:19009;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001 127.0.0.1:19002;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19001 '{"node":"n2","sessions":1000000}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19001
--- scenario
redis_proxy up
# 19000: the least loaded, for one second; 19009: a marker for port 1
beat 127.0.0.1:19000 1000 0 n1
fresh_cache $TEST_NGINX_FC_PORT1 127.0.0.1:19009
redis_proxy cut
wait_log \[warn\] .*fishchat: redis 127\.0\.0\.1:\d+ is unavailable
# no refresh can succeed now: what follows comes from the cache
redis ZREM ${PREFIX}{nodes}:beat 127.0.0.1:19009
beat 127.0.0.1:19002 60000 0 n3
ask $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19009"
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
asks 3 REQ_MSG_SERVER '^(127\.0\.0\.1:19001 ){2}127\.0\.0\.1:19001$'
ask $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19009"
# Redis is back: what was written meanwhile is seen
redis_proxy up
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19002"
await_reply $TEST_NGINX_FC_PORT1 REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
wait_log \[notice\] .*fishchat: redis 127\.0\.0\.1:\d+ is up



=== TEST 23: least_conn counts each client handed out until the next refresh
--- workers: 1
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
--- stream_config
    fishchat_gateway_refresh 50ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_servers 127.0.0.1:19009;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001;
    fishchat_gateway_policy least_conn;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19000 '{"node":"n1","sessions":0}' 127.0.0.1:19001 '{"node":"n2","sessions":2}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000 $NOW_MS+60000 127.0.0.1:19001
--- scenario
redis_proxy up
fresh_cache $TEST_NGINX_FC_PORT1 127.0.0.1:19009
redis_proxy cut
wait_log \[warn\] .*fishchat: redis 127\.0\.0\.1:\d+ is unavailable
# loads 0 and 2 frozen in the cache: twice 19000, then they take turns
asks 6 REQ_MSG_SERVER '^127\.0\.0\.1:19000 127\.0\.0\.1:19000 (127\.0\.0\.1:19000 127\.0\.0\.1:19001|127\.0\.0\.1:19001 127\.0\.0\.1:19000) (127\.0\.0\.1:19000 127\.0\.0\.1:19001|127\.0\.0\.1:19001 127\.0\.0\.1:19000)$'
redis_proxy up



=== TEST 24: a Redis that stops answering: commands time out, the link is made anew
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
    fishchat_redis_timeout 500ms;
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
HSET ${PREFIX}{nodes}:load 127.0.0.1:19001 '{"node":"n2","sessions":1000000}'
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19001
--- scenario
redis_proxy up
beat 127.0.0.1:19000 60000 0 n1
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
redis_proxy freeze
wait_log \[warn\] .*fishchat: redis command timed out after 500 ms, Redis answered nothing meanwhile, reconnecting
# the gateway cannot see this while Redis hangs
redis ZREM ${PREFIX}{nodes}:beat 127.0.0.1:19000
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
redis_proxy up
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19001"
wait_log \[notice\] .*fishchat: redis 127\.0\.0\.1:\d+ is up



=== TEST 25: fishchat_redis_db: heartbeats are read from that database
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
    fishchat_redis_db 9;
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- scenario
redis_db 9 DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
# the least loaded node is in database 0, where the gateway does not look
beat 127.0.0.1:19000 60000 0 n0
beat_db 9 127.0.0.1:19009 60000 5 n9
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19009"
asks 3 REQ_MSG_SERVER '^(127\.0\.0\.1:19009 ){2}127\.0\.0\.1:19009$'
redis_db 9 DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
await_reply REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'



=== TEST 26: a password Redis refuses: logged, retried; no live msg server
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
    fishchat_redis_password not-the-password;
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 127.0.0.1:19000
--- scenario
redis_proxy up
log_has \[error\] .*fishchat: redis 127\.0\.0\.1:\d+ refused the handshake: .*AUTH
log_has fishchat: redis 127\.0\.0\.1:\d+ is unavailable
ask REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
# no more refusals (at error level) after the block
redis_proxy cut
--- no_error_log
[alert]
[emerg]



=== TEST 27: a heartbeat key of the wrong type: logged, no live server, recovers
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
SET ${PREFIX}{nodes}:beat not-a-sorted-set
--- scenario
wait_log \[error\] .*fishchat gateway: reading heartbeats failed: .*WRONGTYPE
# what the cache had from an earlier round expires
await_reply REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
redis DEL ${PREFIX}{nodes}:beat
beat 127.0.0.1:19000 1000 0 n1
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
--- no_error_log
[alert]
[emerg]



=== TEST 28: addresses are escaped as Go's json.Encoder does
--- stream_config
    fishchat_gateway_refresh 50ms;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
ZADD ${PREFIX}{nodes}:beat $NOW_MS+60000 "a&b<c>\"\\\u{2028}:1"
--- scenario
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT *"
connect a
send a REQ_MSG_SERVER
recv a SELECT_MSG_SERVER_FOR_CLIENT "a&b<c>\"\\\u{2028}:1"
body_is a '{"CmdName":"SELECT_MSG_SERVER_FOR_CLIENT","Args":["a\u0026b\u003cc\u003e\"\\\u2028:1"]}'
closed a



=== TEST 29: TIMEOUT: the client sends nothing
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 200ms;
--- request_frames
--- response_frames
ERROR TIMEOUT "no request in time"
--- error_log eval
qr/\[info\] .*fishchat gateway: TIMEOUT: no request in time.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 30: TIMEOUT: half a frame
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 200ms;
--- request_frames
hex: 00 00 00 27
raw: {"CmdName":"REQ_MSG_
--- response_frames
ERROR TIMEOUT "no request in time"
--- error_log eval
qr/\[info\] .*fishchat gateway: TIMEOUT: no request in time.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 31: TIMEOUT: half a length prefix; the timeout is for the whole request
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 300ms;
--- scenario
connect a
send a hex: 00
no_frame a 0.1
send a hex: 00
recv a ERROR TIMEOUT "no request in time"
closed a
--- error_log eval
qr/\[info\] .*fishchat gateway: TIMEOUT: no request in time.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 32: UNKNOWN_COMMAND
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
SEND_CLIENT_ID bob
--- response_frames
ERROR UNKNOWN_COMMAND "unknown command \"SEND_CLIENT_ID\""
--- error_log eval
qr/\[info\] .*fishchat gateway: UNKNOWN_COMMAND: unknown command "SEND_CLIENT_ID".*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 33: UNKNOWN_COMMAND: a long name is cut, on a character boundary
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
connect a
send a "X\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"
recv_like a ^ERROR UNKNOWN_COMMAND "unknown command \\"X\x{e9}{31}\\""$
closed a
connect b
send b "<&>\u{2028}"
recv b ERROR UNKNOWN_COMMAND "unknown command \"<&>\u{2028}\""
body_is b '{"CmdName":"ERROR","Args":["UNKNOWN_COMMAND","unknown command \"\u003c\u0026\u003e\u2028\""]}'
closed b
--- error_log
fishchat gateway: UNKNOWN_COMMAND: unknown command "X



=== TEST 34: BAD_ARGS: two arguments, an id over 256 bytes
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario eval
"ask 'REQ_MSG_SERVER alice extra' 'ERROR BAD_ARGS \"REQ_MSG_SERVER takes an optional client id of up to 256 bytes\"'
ask 'REQ_MSG_SERVER " . ('i' x 257) . "' 'ERROR BAD_ARGS \"REQ_MSG_SERVER takes an optional client id of up to 256 bytes\"'
ask 'REQ_MSG_SERVER " . ("\x{e9}" x 129) . "' 'ERROR BAD_ARGS \"REQ_MSG_SERVER takes an optional client id of up to 256 bytes\"'
"
--- error_log eval
qr/\[info\] .*fishchat gateway: BAD_ARGS: REQ_MSG_SERVER takes an optional client id of up to 256 bytes.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 35: BAD_FRAME: what the JSON decoder refuses
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario eval
"# not JSON, truncated, trailing garbage, not an object or array
ask 'json: hello' 'ERROR BAD_FRAME *'
ask 'json: {\"CmdName\":\"REQ_MSG_SERVER\",' 'ERROR BAD_FRAME *'
ask 'json: {\"CmdName\":\"REQ_MSG_SERVER\"} {}' 'ERROR BAD_FRAME *'
ask 'json: \"REQ_MSG_SERVER\"' 'ERROR BAD_FRAME *'
# invalid UTF-8: a lone continuation byte, an overlong \"/\", a surrogate
ask '" . hex_frame(qq/{"CmdName":"REQ_MSG_SERVER","Args":["\x80"]}/) . "' 'ERROR BAD_FRAME *'
ask '" . hex_frame(qq/{"CmdName":"REQ_MSG_SERVER","Args":["\xc0\xaf"]}\n/) . "' 'ERROR BAD_FRAME *'
ask '" . hex_frame(qq/{"CmdName":"REQ_\xed\xa0\x80"}/) . "' 'ERROR BAD_FRAME *'
# \\u0000 in a string
ask 'json: {\"CmdName\":\"REQ_MSG_SERVER\",\"Args\":[\"a\\u0000b\"]}' 'ERROR BAD_FRAME *'
ask 'json: {\"CmdName\":\"REQ_MSG_SERVER\\u0000\"}' 'ERROR BAD_FRAME *'
"
--- error_log eval
[qr/\[info\] .*fishchat gateway: BAD_FRAME: invalid JSON: .*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/,
 qr/fishchat gateway: BAD_FRAME: invalid JSON: .*0x80/,
 qr/fishchat gateway: BAD_FRAME: invalid JSON: .*\\u0000/]



=== TEST 36: BAD_FRAME: valid JSON of the wrong shape
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
ask 'json: ["REQ_MSG_SERVER"]' 'ERROR BAD_FRAME "a JSON object expected"'
ask 'json: {"Args":[]}' 'ERROR BAD_FRAME "\"CmdName\" must be a non-empty string"'
ask 'json: {"CmdName":1,"Args":[]}' 'ERROR BAD_FRAME "\"CmdName\" must be a non-empty string"'
ask 'json: {"CmdName":null}' 'ERROR BAD_FRAME "\"CmdName\" must be a non-empty string"'
ask 'json: {"CmdName":"","Args":[]}' 'ERROR BAD_FRAME "\"CmdName\" must be a non-empty string"'
ask 'json: {"CmdName":"REQ_MSG_SERVER","Args":"alice"}' 'ERROR BAD_FRAME "\"Args\" must be an array"'
ask 'json: {"CmdName":"REQ_MSG_SERVER","Args":{}}' 'ERROR BAD_FRAME "\"Args\" must be an array"'
ask 'json: {"CmdName":"REQ_MSG_SERVER","Args":[1]}' 'ERROR BAD_FRAME "argument 1 is not a string"'
ask 'json: {"CmdName":"REQ_MSG_SERVER","Args":["a",null]}' 'ERROR BAD_FRAME "argument 2 is not a string"'
ask 'REQ_MSG_SERVER 1 2 3 4 5 6 7 8 9' 'ERROR BAD_FRAME "more than 8 arguments"'
--- error_log eval
[qr/\[info\] .*fishchat gateway: BAD_FRAME: a JSON object expected.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/,
 qr/\[info\] .*fishchat gateway: BAD_FRAME: "CmdName" must be a non-empty string/,
 qr/\[info\] .*fishchat gateway: BAD_FRAME: "Args" must be an array/,
 qr/\[info\] .*fishchat gateway: BAD_FRAME: argument 2 is not a string/,
 qr/\[info\] .*fishchat gateway: BAD_FRAME: more than 8 arguments/]



=== TEST 37: eight arguments are a frame, just not a REQ_MSG_SERVER
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
REQ_MSG_SERVER 1 2 3 4 5 6 7 8
--- response_frames
ERROR BAD_ARGS "REQ_MSG_SERVER takes an optional client id of up to 256 bytes"
--- error_log
fishchat gateway: BAD_ARGS:



=== TEST 38: BAD_FRAME: a zero-length frame
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
hex: 00 00 00 00
--- response_frames
ERROR BAD_FRAME "empty frame"
--- error_log eval
qr/\[info\] .*fishchat gateway: BAD_FRAME: empty frame.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 39: FRAME_TOO_LARGE: an HTTP request is a 1.1 GB length prefix
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- raw_request eval
"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
--- response_frames
ERROR FRAME_TOO_LARGE "frame of 1195725856 bytes is over the maximum of 65536"
--- error_log eval
qr/\[info\] .*fishchat gateway: FRAME_TOO_LARGE: frame of 1195725856 bytes is over the maximum of 65536.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 40: FRAME_TOO_LARGE: a 4 GB prefix is refused at once
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 60s;
--- request_frames
hex: ff ff ff ff 7b 22 43
--- response_frames
ERROR FRAME_TOO_LARGE "frame of 4294967295 bytes is over the maximum of 65536"
--- timeout: 3
--- error_log
fishchat gateway: FRAME_TOO_LARGE: frame of 4294967295 bytes



=== TEST 41: fishchat_frame_max: one byte over is refused, exactly the max works
--- main_config
    fishchat_frame_max 128;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario eval
my $head = '{"CmdName":"REQ_MSG_SERVER","Args":[],"pad":"';
my $pad = 128 - length($head) - length("\"}\n");
"ask 'json: $head" . ('x' x $pad) . "\"}' 'SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000'
ask 'json: $head" . ('x' x ($pad + 1)) . "\"}' 'ERROR FRAME_TOO_LARGE \"frame of 129 bytes is over the maximum of 128\"'
ask 'hex: 00 00 00 81' 'ERROR FRAME_TOO_LARGE \"frame of 129 bytes is over the maximum of 128\"'
"
--- error_log
fishchat gateway: FRAME_TOO_LARGE: frame of 129 bytes is over the maximum of 128



=== TEST 42: a request split at every byte position, and one byte per packet
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
split_each REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
split_each "REQ_MSG_SERVER some-client" "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
bytewise REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
split_each "hex: ff ff ff ff" 'ERROR FRAME_TOO_LARGE "frame of 4294967295 bytes is over the maximum of 65536"'
split_each "hex: 00 00 00 00" 'ERROR BAD_FRAME "empty frame"'
--- error_log eval
qr/recv: fd:\d+ 1 of \d+/



=== TEST 43: split packets in a raw request
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
hex: 00
split:
hex: 00 00
split:
hex: 27
split:
raw: {"CmdName":"REQ_MSG_SERVER",
split:
raw: "Args":[]}
split:
hex: 0a
--- raw_request_middle_delay: 0.01
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 44: two requests in one packet: one reply, then the close
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1:19001;
    fishchat_gateway_policy round_robin;
--- request_frames
REQ_MSG_SERVER
REQ_MSG_SERVER
--- response_frames_like: ^SELECT_MSG_SERVER_FOR_CLIENT 127\.0\.0\.1:1900[01]\n\z



=== TEST 45: a request and garbage in one packet: the request is answered
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
REQ_MSG_SERVER
raw: GET / HTTP/1.0
hex: ff ff ff ff 00 00
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 46: what follows the reply is dropped, not answered
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
connect a
send a REQ_MSG_SERVER
recv a SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
send a REQ_MSG_SERVER
send a json: {bad
send a hex: ff ff ff ff
closed a
--- no_error_log
[error]
[alert]
[emerg]
fishchat gateway: BAD_FRAME
fishchat gateway: FRAME_TOO_LARGE



=== TEST 47: a client that holds half a frame does not hold up others
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
connect a
send a hex: 00 00 00 27
send a raw: {"CmdName":"REQ_
connect b
send b REQ_MSG_SERVER
recv b SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
closed b
connect c
send c hex: 00 00
no_frame a 0.05
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
send a raw: MSG_SERVER","Args":[]}
send a hex: 0a
recv a SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
closed a
send c hex: 00 27
send c raw: {"CmdName":"REQ_MSG_SERVER","Args":[]}
send c hex: 0a
recv c SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
closed c



=== TEST 48: a client that half-closes after its request gets the reply
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
connect a
send a REQ_MSG_SERVER
shutdown a
recv a SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
closed a



=== TEST 49: a client that goes away mid-frame: logged, nothing else
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- scenario
connect a
send a hex: 00 00 00 27 7b
shutdown a
closed a
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
--- error_log eval
qr/\[info\] .*fishchat gateway: client closed the connection before its request.*, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/



=== TEST 50: counters: a good request, a bad frame, a timeout, a large frame
--- workers: 1
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 200ms;
--- config
    location = /status {
        fishchat_monitor;
    }
--- scenario
await_status '^gateway ' active=0
status_mark '^gateway '
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
connect b
send b json: {"CmdName":
recv b ERROR BAD_FRAME *
frame_len b bad
closed b
close b
# 43 + 16 bytes in, 74 + the error frame out
await_status '^gateway ' active=0 accepted+=2 frames_in+=2 frames_out+=2 bytes_in+=59 bytes_out+=$bad+74 errors+=1 error.bad_frame+=1 error.timeout+=0 error.frame_too_large+=0
connect t
recv t ERROR TIMEOUT "no request in time"
frame_len t to
closed t
close t
await_status '^gateway ' active=0 accepted+=3 frames_in+=2 frames_out+=3 bytes_in+=59 bytes_out+=$bad+74+$to errors+=2 error.bad_frame+=1 error.timeout+=1 error.unknown_command+=0 error.bad_args+=0 error.no_msg_server+=0 error.redis_unavailable+=0
connect f
send f hex: 00 01 00 01
recv f ERROR FRAME_TOO_LARGE *
closed f
close f
await_status '^gateway ' active=0 accepted+=4 frames_in+=2 frames_out+=4 bytes_in+=63 errors+=3 error.frame_too_large+=1



=== TEST 51: the gateway lingers after every reply until the client closes
--- workers: 1
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_timeout 200ms;
--- config
    location = /status {
        fishchat_monitor;
    }
--- scenario
await_status '^gateway ' active=0
status_mark '^gateway '
connect a
send a REQ_MSG_SERVER
recv a SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000
closed a
connect b
send b json: []
recv b ERROR BAD_FRAME "a JSON object expected"
closed b
connect c
recv c ERROR TIMEOUT "no request in time"
closed c
# a, b and c got their reply and the end of it, and are still open
status '^gateway ' active=3 accepted+=3
send c REQ_MSG_SERVER
send b REQ_MSG_SERVER
status '^gateway ' active=3 accepted+=3 frames_in+=2
close a
close b
close c
await_status '^gateway ' active=0 accepted+=3



=== TEST 52: config: fishchat_gateway without servers or heartbeats
--- stream_server_config
    fishchat_gateway;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_gateway" needs "fishchat_gateway_servers" or "fishchat_gateway_heartbeat on"



=== TEST 53: config: heartbeats without fishchat_redis
--- no_redis
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_gateway_heartbeat on" needs "fishchat_redis"



=== TEST 54: config: heartbeats at the stream level without fishchat_redis
--- no_redis
--- stream_config
    fishchat_gateway_heartbeat on;
--- stream_server_config
    fishchat_gateway;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_gateway_heartbeat on" needs "fishchat_redis"



=== TEST 55: config: a msg server without a port
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000 127.0.0.1;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid msg server "127.0.0.1": "host:port" expected



=== TEST 56: config: a unix socket is no msg server address
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers unix:/tmp/fishchat.sock;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid msg server "unix:/tmp/fishchat.sock": "host:port" expected



=== TEST 57: config: a msg server without a host
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers :19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid msg server ":19000": "host:port" expected



=== TEST 58: config: fishchat_node with a space
--- main_config
    fishchat_node "node 1";
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid node name "node 1": printable ASCII without spaces or ":" expected



=== TEST 59: config: fishchat_node with a colon
--- main_config
    fishchat_node node:1;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid node name "node:1": printable ASCII without spaces or ":" expected



=== TEST 60: config: fishchat_node not ASCII
--- main_config
    fishchat_node nœud;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
printable ASCII without spaces or ":" expected



=== TEST 61: config: fishchat_node empty
--- main_config
    fishchat_node "";
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid node name "": 1 to 64 characters expected



=== TEST 62: config: fishchat_node of 65 characters
--- main_config eval
"fishchat_node " . ('n' x 65) . ";"
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log eval
["[emerg]", "invalid node name \"" . ('n' x 65) . "\": 1 to 64 characters expected"]



=== TEST 63: config: fishchat_node with an empty advertise=
--- main_config
    fishchat_node node1 advertise=;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid parameter "advertise="



=== TEST 64: config: a valid fishchat_node of 64 characters, with advertise=
--- main_config eval
"fishchat_node " . ('n' x 63) . "~ advertise=chat.example.com;"
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- request_frames
REQ_MSG_SERVER
--- response_frames
SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000



=== TEST 65: config: fishchat_frame_max 10 is too small
--- main_config
    fishchat_frame_max 10;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_frame_max" must be between 64 and 64m



=== TEST 66: config: fishchat_frame_max 65m is too large
--- main_config
    fishchat_frame_max 65m;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_frame_max" must be between 64 and 64m



=== TEST 67: config: an unknown policy
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
    fishchat_gateway_policy random;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid value "random"



=== TEST 68: config: fishchat_gateway_refresh 0
--- stream_config
    fishchat_gateway_refresh 0;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_gateway_refresh" must not be 0



=== TEST 69: config: fishchat_gateway twice in a server
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway;
    fishchat_gateway_servers 127.0.0.1:19000;
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_gateway" directive is duplicate



=== TEST 70: an empty cache is refreshed for the request: a msg server that just started is handed out
--- stream_config
    fishchat_gateway_refresh 1h;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_heartbeat on;
        fishchat_gateway_policy hash;
    }
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
--- scenario
ask REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
ask $TEST_NGINX_FC_PORT1 "REQ_MSG_SERVER alice" 'ERROR NO_MSG_SERVER "no live msg server"'
# the next scheduled refresh is an hour away
beat 127.0.0.1:19000 1000 0 n1
ask REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
ask $TEST_NGINX_FC_PORT1 "REQ_MSG_SERVER alice" "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
# the heartbeat expires: the repetition starts from an empty cache
await_reply REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
await_reply $TEST_NGINX_FC_PORT1 "REQ_MSG_SERVER alice" 'ERROR NO_MSG_SERVER "no live msg server"'
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 71: a request waiting for a refresh from a Redis that hangs: bounded by the timeout; a client that goes costs nothing
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix $TEST_NGINX_FC_PREFIX;
    fishchat_redis_timeout 10s;
--- stream_config
    fishchat_gateway_refresh 1h;
--- stream_server_config
    fishchat_gateway;
    fishchat_gateway_heartbeat on;
    fishchat_gateway_timeout 300ms;
--- redis_setup
DEL ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load
--- scenario
redis_proxy up
# the link is up and the cache empty: a short heartbeat seen, then gone
beat 127.0.0.1:19009 1000 0 marker
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19009"
await_reply REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
redis_proxy freeze
connect a
send a REQ_MSG_SERVER
close a
wait_log \[info\] .*fishchat gateway: client closed the connection before the reply
connect b
send b REQ_MSG_SERVER
recv b ERROR NO_MSG_SERVER "no live msg server"
closed b
redis_proxy up
beat 127.0.0.1:19000 1000 0 n1
await_reply REQ_MSG_SERVER "SELECT_MSG_SERVER_FOR_CLIENT 127.0.0.1:19000"
await_reply REQ_MSG_SERVER 'ERROR NO_MSG_SERVER "no live msg server"'
--- no_error_log
[error]
[alert]
[emerg]
