package Test::FishChat::Msg;

# Scenario steps for the msg server's tests (t/msg.t, t/msg-workers.t), on
# top of Test::FishChat.  Loading the module adds the steps; see the list
# below and t/README.md for the built-in ones.  It loads
# Test::FishChat::Steps too: hello_login, recv_any, connect_worker,
# assert_eq, assert_ne, node2_start and node2_stop are there.
#
#   send_frames NAME LINE || LINE ...    several frames in one write
#   send_repeat NAME N LINE              N frames in one write; $i is 1..N
#   send_bytewise NAME LINE              one byte a write, 1 ms apart
#   ping_for SECS INTERVAL NAME...       SEND_PING every INTERVAL for SECS
#                                        from each (pacing, not waiting);
#                                        sets $pings to the count
#   recv_repeat NAME N LINE              N frames, each like LINE with $i
#   recv_any_order NAME LINE || LINE ... as many frames, in any order
#   last_body_like NAME REGEX            the last frame's raw JSON body
#   last_len NAME HEX8                   the length prefix of the last frame
#   drain_closed NAME                    frames may come, then the close
#   ack_all NAME ID                      P2P_ACK every delivery received so
#                                        far, in one write
#   connect_tiny NAME [PORT]             a client with a 2k receive buffer
#   set_repeat VAR TEXT N                $VAR is TEXT repeated N times
#   redis_capture VAR CMD...             $VAR is the rendered reply
#   redis_wait_like REGEX CMD...         poll until the reply matches
#   pid_file VAR                         $VAR is the pid in nginx.pid
#   log_mark                             wait_log looks after this point
#   received_bytes VAR / sent_bytes VAR  bytes of whole frames every client
#                                        received / bytes the clients sent
#   monitor_wait KEY=VALUE ...           poll GET /s?format=json (the JSON
#                                        of fishchat_monitor) until the sums
#                                        over the "msg" servers of every
#                                        worker match (less the sums at
#                                        monitor_mark, if any)
#   monitor_mark                         remember the sums now
#   redis2 start|kill PORT [fresh] [noaof]
#                                        a second private redis-server in
#                                        servroot/html (AOF on, so a
#                                        restart keeps the data; "fresh"
#                                        starts with none, "noaof" keeps
#                                        nothing on disk)
#   redis2_wait PORT EXPECTED CMD...     poll that one until the reply is
#                                        EXPECTED
#   redis_restart                        restart the suite's own Redis with
#                                        util/redis.sh restart test (SHUTDOWN,
#                                        then the same port and data)
#   kill_worker PID                      kill -9 an nginx worker, wait until
#                                        it is gone
#
# Also: blocks without --- redis_setup get one that deletes every key under
# the file's prefix (before each repetition too); blocks without log
# sections check that error.log has no [error], [alert] or [emerg]; with
# TEST_NGINX_FC_KEEP_LOGS=DIR the error.log of a failed scenario is copied
# to DIR.  msg_plan() counts the tests of the file's blocks for plan().

use strict;
use warnings;

# Test::FishChat is loaded by the test file (it reads the blocks there)
use Test::FishChat ();
use Test::FishChat::Steps ();

use File::Copy ();
use File::Path ();
use File::Spec ();
use Errno qw(ECONNREFUSED);
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_RCVBUF
              pack_sockaddr_in inet_aton);
use Time::HiRes ();

use Exporter 'import';
our @EXPORT = qw(msg_plan);

# every block starts from an empty keyspace under the prefix, also on its
# repetitions (the harness cleans before each block only)

my $CLEAN = q{EVAL "local n = 0 }
    . q{for _, k in ipairs(redis.call('KEYS', ARGV[1])) do }
    . q{redis.call('DEL', k) n = n + 1 end return n" 0 "${PREFIX}*"};

Test::Nginx::Util::add_block_preprocessor(sub {
    my $block = shift;
    if (!defined $block->redis_setup && !defined $block->must_die) {
        $block->set_value('redis_setup', $CLEAN);
    }
});

sub _lines {
    my $v = shift;
    return 0 if !defined $v;
    my @l = ref $v eq 'ARRAY' ? @$v : split /\n/, $v;
    return scalar grep { defined && /\S/ } @l;
}

# tests per block: the scenario (or must_die) test and one per log line;
# blocks without log sections get the three default_no_error_log lines
sub msg_plan {
    my $n = 0;
    for my $b (Test::Base::blocks()) {
        my $logs = _lines($b->error_log) + _lines($b->no_error_log);
        $logs = 3 if !defined $b->error_log && !defined $b->no_error_log;
        $n += 1 + $logs;
    }
    return $n * Test::Nginx::Util::repeat_each();
}

Test::FishChat::default_no_error_log('[error]', '[alert]', '[emerg]');

# count what the clients send, for sent_bytes

{
    no warnings 'redefine';
    my $send = \&Test::FishChat::Scenario::send;
    *Test::FishChat::Scenario::send = sub {
        my ($sc, $name, $bytes) = @_;
        $send->(@_);
        $sc->{msg_sent} += length $bytes;
    };
}

sub _split_frames {
    my ($sc, $lines) = @_;
    return join '', map { $sc->frame_bytes($_) } split /\s+\|\|\s+/, $lines;
}

# "N LINE" with $i set for each frame
sub _repeat_bytes {
    my ($sc, $n, $line) = @_;
    my $bytes = '';
    for my $i (1 .. $n) {
        $sc->var('i', $i);
        $bytes .= $sc->frame_bytes($line);
    }
    return $bytes;
}

sub _count {
    my ($sc, $rest) = @_;
    my ($c, $more) = $sc->client_arg($rest);
    my ($n, $line) = $more =~ /^(\S+)\s+(.*)$/s
        or die "usage: NAME COUNT LINE\n";
    ($n) = $sc->tokens($n);
    die "bad count \"$n\"\n" if $n !~ /^\d+$/;
    return ($c, $n, $line);
}

sub _new_client {
    my ($sc, $name, $sock, $addr) = @_;
    $sock->blocking(0);
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    return $sc->{clients}{$name} = {
        name => $name, sock => $sock, buf => '', eof => 0, err => undef,
        frames => [], last => undef, addr => $addr,
    };
}

sub _http_get {
    my ($path, $timeout) = @_;
    my $port = Test::Nginx::Util::server_port();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => $timeout)
        or die "cannot connect to the http port $port: $!\n";
    print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my $sel = IO::Select->new($s);
    my $resp = '';
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "GET $path timed out\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        die "GET $path: $!\n" if !defined $n;
        last if $n == 0;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    die "GET $path: $head\n" if $head !~ m{^HTTP/1\.\d 200};
    return $body;
}

# the monitor's counters summed over the msg servers of every worker
sub _monitor_sums {
    my $timeout = shift;
    my $j = JSON::PP->new->decode(_http_get('/s?format=json', $timeout));
    my %sum;
    for my $w (@{ $j->{workers} }) {
        for my $s (@{ $w->{servers} }) {
            next if $s->{server} !~ /^msg /;
            for my $k (keys %$s) {
                next if $k eq 'server';
                if ($k eq 'error') {
                    $sum{"error.$_"} += $s->{error}{$_}
                        for keys %{ $s->{error} };
                } else {
                    $sum{$k} += $s->{$k};
                }
            }
        }
    }
    return \%sum;
}

# --------------------------------------------------------------------------
# a second redis-server, owned by the test

my %Redis2;     # port => { pid, dir }

sub _redis2_pidfile { "$_[0]/redis.pid" }

sub _redis2_ping {
    my $port = shift;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 0.5)
        or return 0;
    print $s "PING\r\n";
    my $sel = IO::Select->new($s);
    my $r = '';
    sysread($s, $r, 100) if $sel->can_read(0.5);
    close $s;
    return $r =~ /^\+PONG/;
}

sub _redis2_start {
    my ($sc, $port, $fresh, $aof) = @_;
    # under html/: Test::Nginx removes that one between blocks
    my $dir = "$Test::Nginx::Util::HtmlDir/redis2-$port";
    File::Path::remove_tree($dir) if $fresh;
    mkdir $dir if !-d $dir;
    die "redis2: something answers on $port already\n"
        if _redis2_ping($port);
    system('redis-server', '--bind', '127.0.0.1', '--port', $port,
           '--dir', $dir, '--save', '', '--appendonly', $aof ? 'yes' : 'no',
           '--appendfsync', 'always', '--daemonize', 'yes',
           '--pidfile', _redis2_pidfile($dir),
           '--logfile', "$dir/redis.log") == 0
        or die "redis2: redis-server failed: $?\n";
    my $deadline = $sc->deadline;
    while (!_redis2_ping($port)) {
        die "redis2: no answer on $port, see $dir/redis.log\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);   # polling for the server to come up
    }
    open my $in, '<', _redis2_pidfile($dir) or die "redis2: pid: $!\n";
    my $pid = <$in>;
    chomp $pid;
    $Redis2{$port} = { pid => $pid, dir => $dir };
}

sub _redis2_kill {
    my ($port, $deadline) = @_;
    my $r = delete $Redis2{$port} or return;
    kill 'KILL', $r->{pid};
    while (kill 0, $r->{pid}) {
        last if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.01);   # polling for the process to be gone
    }
    unlink _redis2_pidfile($r->{dir});
}

# gone at the end of every scenario, failed or not, and at exit

sub _redis2_kill_all {
    _redis2_kill($_, Time::HiRes::time() + 3) for keys %Redis2;
}

{
    no warnings 'redefine';
    my $finish = \&Test::FishChat::Scenario::finish;
    *Test::FishChat::Scenario::finish = sub {
        _redis2_kill_all();
        $finish->(@_);
    };
}

Test::Nginx::Util::add_cleanup_handler(\&_redis2_kill_all);

# TEST_NGINX_FC_KEEP_LOGS=DIR: a failed scenario's error.log is copied there

if (my $dir = $ENV{TEST_NGINX_FC_KEEP_LOGS}) {
    no warnings 'redefine';
    my $report = \&Test::FishChat::Scenario::report;
    *Test::FishChat::Scenario::report = sub {
        my $sc = shift;
        my $name = $sc->block ? $sc->block->name : 'scenario';
        $name =~ s/[^\w.-]+/_/g;
        File::Copy::copy($Test::Nginx::Util::ErrLogFile,
                         "$dir/" . substr($name, 0, 60) . ".$$."
                         . time . ".log");
        return $report->($sc, @_);
    };
}

# --------------------------------------------------------------------------

Test::FishChat::add_step(

    send_frames => sub {
        my ($sc, $rest) = @_;
        my ($c, $lines) = $sc->client_arg($rest);
        $sc->send($c, _split_frames($sc, $lines));
    },

    send_repeat => sub {
        my ($sc, $rest) = @_;
        my ($c, $n, $line) = _count($sc, $rest);
        $sc->send($c, _repeat_bytes($sc, $n, $line));
    },

    send_bytewise => sub {
        my ($sc, $rest) = @_;
        my ($c, $line) = $sc->client_arg($rest);
        my $bytes = $sc->frame_bytes($line);
        for my $i (0 .. length($bytes) - 1) {
            $sc->send($c, substr($bytes, $i, 1));
            Time::HiRes::sleep(0.001);      # pacing: one byte a segment
        }
    },

    ping_for => sub {
        my ($sc, $rest) = @_;
        my ($secs, $every, @names) = $sc->tokens($rest);
        die "usage: ping_for SECS INTERVAL NAME...\n"
            if !@names || !$every || $every <= 0;
        my @c = map { $sc->client($_) } @names;
        my $n = int($secs / $every + 0.5);
        for (1 .. $n) {
            $sc->send($_, Test::FishChat::frame('SEND_PING', 'PING'))
                for @c;
            Time::HiRes::sleep($every);     # pacing the pings
        }
        $sc->var('pings', $n);
    },

    recv_repeat => sub {
        my ($sc, $rest) = @_;
        my ($c, $n, $line) = _count($sc, $rest);
        for my $i (1 .. $n) {
            $sc->var('i', $i);
            my $f = eval { $sc->recv($c) };
            die "frame $i of $n: $@" if !$f;
            my $why = Test::FishChat::frame_line_mismatch($line, $f,
                                                          $sc->{vars});
            die "frame $i of $n: expected: $line\n    $why\n" if $why;
        }
    },

    recv_any_order => sub {
        my ($sc, $rest) = @_;
        my ($c, $lines) = $sc->client_arg($rest);
        Test::FishChat::Steps::recv_any_of($sc, $c, ' || ', 0,
                                           split /\s+\|\|\s+/, $lines);
    },

    last_body_like => sub {
        my ($sc, $rest) = @_;
        my ($c, $re) = $sc->client_arg($rest);
        my $f = $c->{last} or die "no frame yet\n";
        die "expected the body to match: $re\n    got: $f->{body}\n"
            if $f->{body} !~ /$re/;
    },

    last_len => sub {
        my ($sc, $rest) = @_;
        my ($c, $hex) = $sc->client_arg($rest);
        my $f = $c->{last} or die "no frame yet\n";
        my $got = unpack 'H8', $f->{raw};
        die "length prefix $got, expected $hex\n" if $got ne lc $hex;
    },

    drain_closed => sub {
        my ($sc, $rest) = @_;
        my ($c) = $sc->client_arg($rest);
        my $deadline = $sc->deadline;
        while (1) {
            1 while $sc->_take_frame($c);
            if ($c->{eof}) {
                $sc->var('drained', scalar @{ $c->{frames} });
                return;
            }
            my $r = $sc->_fill($c, $deadline);
            die "the server did not close within $sc->{timeout} s\n"
                if !defined $r;
        }
    },

    ack_all => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        my ($id) = $sc->tokens($more);
        my $bytes = join '',
            map { Test::FishChat::frame('P2P_ACK', $id, $_->{args}[2]) }
            grep { ($_->{cmd} // '') eq 'RESP_MESSAGE_P2P' }
            @{ $c->{frames} };
        die "no deliveries to acknowledge\n" if !length $bytes;
        $sc->send($c, $bytes);
    },

    connect_tiny => sub {
        my ($sc, $rest) = @_;
        my ($name, $port) = $sc->tokens($rest);
        die "client \"$name\" is already connected\n"
            if $sc->{clients}{$name};
        $port //= $sc->port;
        my $deadline = $sc->deadline;
        while (1) {
            my $s = IO::Socket::INET->new(Proto => 'tcp')
                or die "socket: $!\n";
            setsockopt($s, SOL_SOCKET, SO_RCVBUF, 2048)
                or die "SO_RCVBUF: $!\n";
            if ($s->connect(pack_sockaddr_in($port,
                                             inet_aton('127.0.0.1'))))
            {
                _new_client($sc, $name, $s, "127.0.0.1:$port");
                return;
            }
            die "cannot connect to 127.0.0.1:$port: $!\n"
                if $! != ECONNREFUSED || Time::HiRes::time() >= $deadline;
            close $s;
            Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
        }
    },

    set_repeat => sub {
        my ($sc, $rest) = @_;
        my ($var, $text, $n) = $sc->tokens($rest);
        die "usage: set_repeat VAR TEXT N\n"
            if !defined $n || $n !~ /^\d+$/;
        $sc->var($var, $text x $n);
    },

    redis_capture => sub {
        my ($sc, $rest) = @_;
        my ($var, @cmd) = $sc->tokens($rest);
        $sc->var($var, Test::FishChat::render_redis(
                           Test::FishChat::redis(@cmd)));
    },

    redis_wait_like => sub {
        my ($sc, $rest) = @_;
        my ($re, @cmd) = $sc->tokens($rest);
        my $deadline = $sc->deadline;
        my $got;
        while (1) {
            $got = Test::FishChat::render_redis(
                       Test::FishChat::redis_try(@cmd));
            return if $got =~ /$re/;
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);       # polling Redis, bounded
        }
        die "expected within $sc->{timeout} s to match: $re\n"
            . "    got: $got\n";
    },

    pid_file => sub {
        my ($sc, $rest) = @_;
        my ($var) = $sc->tokens($rest);
        my $file = $Test::Nginx::Util::PidFile;
        my $deadline = $sc->deadline;
        my $pid;
        while (1) {
            if (open my $in, '<', $file) {
                $pid = <$in>;
                last if defined $pid && $pid =~ /^\d+\n/;
            }
            die "no pid in $file\n" if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);   # nginx not started yet: retry
        }
        chomp $pid;

        # with a master process (TEST_NGINX_USE_HUP), its only worker
        my @kids;
        while (Time::HiRes::time() < $deadline) {
            @kids = ();
            for my $stat (glob '/proc/[0-9]*/stat') {
                open my $in, '<', $stat or next;
                my $line = <$in> // next;
                push @kids, $1 if $line =~ /^(\d+) \(.*\) \S (\d+) /
                                  && $2 == $pid;
            }
            last if !$Test::Nginx::Util::UseHup || @kids;
            Time::HiRes::sleep(0.02);
        }
        $pid = $kids[0] if @kids == 1;

        $sc->var($var, $pid);
    },

    log_mark => sub {
        my ($sc) = @_;
        $sc->{log_pos} = -s $Test::Nginx::Util::ErrLogFile;
    },

    received_bytes => sub {
        my ($sc, $rest) = @_;
        my ($var) = $sc->tokens($rest);
        my $n = 0;
        for my $c (values %{ $sc->{clients} }) {
            $n += length $_->{raw} for @{ $c->{frames} };
        }
        $sc->var($var, $n);
    },

    sent_bytes => sub {
        my ($sc, $rest) = @_;
        my ($var) = $sc->tokens($rest);
        $sc->var($var, $sc->{msg_sent} // 0);
    },

    monitor_wait => sub {
        my ($sc, $rest) = @_;
        my %want = map { /^([\w.]+)=(\d+)$/
                         or die "usage: monitor_wait KEY=NUMBER ...\n";
                         ($1, $2) } $sc->tokens($rest);
        my $deadline = $sc->deadline;
        my $got;
        while (1) {
            $got = eval { _monitor_sums(2) };
            if (!$got) {
                # nginx not listening yet (valgrind starts it slowly)
                die $@ if Time::HiRes::time() >= $deadline;
                Time::HiRes::sleep(0.02);
                next;
            }
            for my $k (keys %$got) {
                $got->{$k} -= $sc->{monitor_base}{$k} // 0;
            }
            my @bad = grep { ($got->{$_} // 'none') ne $want{$_} }
                      sort keys %want;
            return if !@bad;
            if (Time::HiRes::time() >= $deadline) {
                die "monitor: " . join(', ', map {
                        "$_=" . ($got->{$_} // 'none')
                        . " (expected $want{$_})" } @bad) . "\n";
            }
            Time::HiRes::sleep(0.02);       # polling the counters, bounded
        }
    },

    monitor_mark => sub {
        my ($sc) = @_;
        $sc->{monitor_base} = _monitor_sums($sc->timeout);
    },

    redis2 => sub {
        my ($sc, $rest) = @_;
        my ($what, $port, @opt) = $sc->tokens($rest);
        die "usage: redis2 start|kill PORT [fresh] [noaof]\n"
            if !$port || !$what || $what !~ /^(?:start|kill)$/
               || grep { !/^(?:fresh|noaof)$/ } @opt;
        if ($what eq 'start') {
            _redis2_start($sc, $port, (grep { $_ eq 'fresh' } @opt) ? 1 : 0,
                          (grep { $_ eq 'noaof' } @opt) ? 0 : 1);
        } else {
            die "redis2: not running on $port\n" if !$Redis2{$port};
            _redis2_kill($port, $sc->deadline);
        }
    },

    redis_restart => sub {
        my ($sc, $rest) = @_;
        my $top = File::Spec->rel2abs(__FILE__) =~ s{/t/lib/.*\z}{}r;
        my $dir = "$top/var/redis-test";
        open my $in, '<', "$dir/port"
            or die "redis_restart: the suite's Redis was not started by "
                   . "util/redis.sh test ($dir/port: $!)\n";
        my $port = <$in>;
        chomp $port;
        die "redis_restart: util/redis.sh's test Redis is on $port, the "
            . "suite's on $ENV{TEST_NGINX_REDIS_PORT}\n"
            if $port ne ($ENV{TEST_NGINX_REDIS_PORT} // '');
        Test::FishChat::_redis_drop();
        my $out = `'$top/util/redis.sh' restart test 2>&1`;
        die "redis_restart: util/redis.sh restart test failed: $out\n"
            if $? != 0;
    },

    kill_worker => sub {
        my ($sc, $rest) = @_;
        my ($pid) = $sc->tokens($rest);
        die "usage: kill_worker PID\n" if !$pid || $pid !~ /^\d+$/;
        kill 'KILL', $pid or die "kill_worker: $pid: $!\n";
        my $deadline = $sc->deadline;
        while (kill 0, $pid) {
            die "kill_worker: $pid still there\n"
                if Time::HiRes::time() > $deadline;
            Time::HiRes::sleep(0.01);   # polling for the process to go
        }
    },

    redis2_wait => sub {
        my ($sc, $rest) = @_;
        my ($port, $exp, @cmd) = $sc->tokens($rest);
        my $deadline = $sc->deadline;
        my $got;
        local $ENV{TEST_NGINX_REDIS_PORT} = $port;
        Test::FishChat::_redis_drop();
        while (1) {
            $got = eval {
                Test::FishChat::render_redis(
                    Test::FishChat::redis_try(@cmd));
            };
            if (!defined $got) {
                my $err = $@;
                Test::FishChat::_redis_drop();
                die $err;
            }
            last if $got eq $exp || Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);       # polling Redis, bounded
        }
        Test::FishChat::_redis_drop();
        die "expected within $sc->{timeout} s: $exp\n    got: $got\n"
            if $got ne $exp;
    },
);

1;
