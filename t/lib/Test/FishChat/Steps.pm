package Test::FishChat::Steps;

# Scenario steps that several test files use, on top of Test::FishChat.
# Loading the module adds the steps and nothing else: no block
# preprocessor, no default log checks, no plan helper (those come with
# Test::FishChat::Msg, which loads this module too).
#
#   hello_login NAME ID [PORT]           the opt-in login, the same as
#                                          connect NAME [PORT]
#                                          send NAME HELLO 1
#                                          recv NAME HELLO 1 * *
#                                          send NAME SEND_CLIENT_ID ID
#                                          recv NAME LOGIN_OK ID * *
#                                        (ID is one word as written in
#                                        those lines: "a b", $id and
#                                        "\u{263a}" work)
#   recv_any NAME LINE | LINE ...        the next frames of NAME are these,
#                                        in any order; the arguments of each
#                                        are kept as $NAME_CMD_i (i from 0)
#   connect_worker NAME any|same|other [OTHER] [PORT]
#                                        connect and HELLO 1 until the
#                                        worker pid (in $pid_NAME) differs
#                                        from / equals $pid_OTHER (OTHER
#                                        may be a pid or a channel too)
#   workers_login                        alice (a) on a worker and bob (b)
#                                        on another log in (SEND_CLIENT_ID,
#                                        LOGIN_OK): $pid_a, $pid_b
#   room_offline                         eve (e, opt-in) and erin (se,
#                                        seed) join the topic "room", then
#                                        close: two members offline
#   assert_eq A B / assert_ne A B        two values are equal / differ
#   node2_start                          a second nginx, "node2" (one
#                                        worker, msg server on
#                                        $TEST_NGINX_FC_PORT2, heartbeat
#                                        100ms), sharing the Redis and the
#                                        key prefix; in servroot/html/node2
#   node2_stop                           stop it gracefully (QUIT, KILL
#                                        after 10 s); its error.log must
#                                        have no [error], [alert], [emerg]
#                                        or [crit]
#
# node2 is also stopped when the test file ends.
#
# Perl helpers for steps written elsewhere:
#   add_macro(NAME => TEXT)              a step NAME (no arguments) that
#                                        runs the lines of TEXT, scenario
#                                        syntax, in order: for a set-up
#                                        several blocks of a file share
#   run_steps($sc, LINE...)              run scenario lines as steps; a
#                                        failure names the line
#   recv_any_of($sc, $c, $sep, $capture, LINE...)
#                                        recv_any's loop; $sep joins the
#                                        lines in the message, $capture
#                                        keeps the arguments
#   drop_client($sc, $c)                 close a client and forget it
#   tcp_connect(HOST, PORT, DEADLINE)    a non-blocking socket, connecting
#                                        again while refused, until DEADLINE
#   ping_once($sc, $c)                   one SEND_PING -> PONG: its ms
#   ping_figures($sc, NAME, MS...)       $NAME_n, $NAME_median, $NAME_p90,
#                                        $NAME_max of these round trips
#
# Steps for the event loop while a thread works (a remux, uploads):
#   ping_stats NAME CLIENT N             N SEND_PING -> PONG round trips
#                                        back to back: $NAME_n,
#                                        $NAME_median, $NAME_p90,
#                                        $NAME_max (ms)
#   latency_bound DURING BASE MIN        at least MIN round trips in
#                                        DURING, and its median within
#                                        max(5 x BASE's, BASE's + 20 ms)

use strict;
use warnings;

# Test::FishChat is loaded by the test file (it reads the blocks there)
use Test::FishChat ();

use File::Path ();
use Time::HiRes ();

sub run_steps {
    my ($sc, @lines) = @_;
    for my $l (@lines) {
        my ($kw, $rest) = $l =~ /^(\S+)\s*(.*)$/s;
        my $step = $Test::FishChat::Steps{$kw}
            or die "unknown step \"$kw\"\n";
        eval { $step->($sc, $rest); 1 } or die "$l: $@";
    }
}

# words as written, quotes kept: "a b" is one word
sub _raw_words {
    my ($text) = @_;
    my @w;
    while ($text =~ /\G\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"']+)+)/gc) {
        push @w, $1;
    }
    die "cannot split into words: $text\n"
        if (pos($text) // 0) < length($text) && $text =~ /\G\s*\S/gc;
    return @w;
}

sub add_macro {
    my ($name, $text) = @_;
    my @lines = grep { $_ ne '' && !/^#/ }
                map { s/^\s+|\s+$//gr } split /\n/, $text;
    die "add_macro: $name has no steps\n" if !@lines;
    Test::FishChat::add_step($name => sub {
        my ($sc, $rest) = @_;
        die "$name takes no arguments\n" if $rest =~ /\S/;
        run_steps($sc, @lines);
    });
}

sub recv_any_of {
    my ($sc, $c, $sep, $capture, @want) = @_;
    my @lines = @want;

    while (@want) {
        my $f = $sc->recv($c);
        my ($i) = grep {
            Test::FishChat::frame_line_mismatch($want[$_], $f, $sc->{vars})
                eq ''
        } 0 .. $#want;

        die "got: $f->{text}\n    expected one of: " . join($sep, @want)
            . "\n" if !defined $i;

        splice @want, $i, 1;

        if ($capture) {
            my $n = 0;
            $sc->var("$c->{name}_$f->{cmd}_" . $n++, $_)
                for @{ $f->{args} };
        }
    }
}

sub drop_client {
    my ($sc, $c) = @_;
    close $c->{sock};
    delete $sc->{clients}{$c->{name}};
}

# --------------------------------------------------------------------------
# node2: a second nginx

my $Node2Pid;
my $Node2Dir;

sub _node2_stop {
    return unless $Node2Pid;

    kill 'QUIT', $Node2Pid;

    for (1 .. 400) {
        last unless kill 0, $Node2Pid;
        Time::HiRes::sleep(0.025);
    }

    kill 'KILL', $Node2Pid if kill 0, $Node2Pid;
    undef $Node2Pid;
}

Test::Nginx::Util::add_cleanup_handler(\&_node2_stop);

# --------------------------------------------------------------------------

Test::FishChat::add_step(

    hello_login => sub {
        my ($sc, $rest) = @_;
        my ($name, $id, @port) = _raw_words($rest);
        die "usage: hello_login NAME ID [PORT]\n"
            if !defined $id || @port > 1;
        run_steps($sc, join(' ', 'connect', $name, @port),
                  "send $name HELLO 1",
                  "recv $name HELLO 1 * *",
                  "send $name SEND_CLIENT_ID $id",
                  "recv $name LOGIN_OK $id * *");
    },

    recv_any => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        recv_any_of($sc, $c, ' | ', 1, split /\s+\|\s+/, $more);
    },

    connect_worker => sub {
        my ($sc, $rest) = @_;
        my ($name, $how, @more) = $sc->tokens($rest);
        my ($other, $port);
        $other = shift @more if $how && $how ne 'any';
        $port = shift @more;
        die "usage: connect_worker NAME any|same|other [OTHER] [PORT]\n"
            if !$how || $how !~ /^(?:any|same|other)$/
               || ($how ne 'any' && !defined $other) || @more;

        # OTHER: a client connected with connect_worker, a pid, or a
        # worker channel (<prefix>w:<node>:<pid>)
        my $want;
        if ($how ne 'any') {
            if ($other =~ /(?:^|:)(\d+)$/) {
                $want = $1;
            } else {
                $want = $sc->var("pid_$other")
                    // die "no \$pid_$other (connect $other with "
                           . "connect_worker first)\n";
            }
        }

        for my $try (1 .. 64) {
            my $c = $sc->connect($name, $port);
            $sc->send($c, Test::FishChat::frame('HELLO', '1'));
            my $f = $sc->recv($c);
            die "expected HELLO 1 <node> <pid>, got: $f->{text}\n"
                if ($f->{cmd} // '') ne 'HELLO' || @{ $f->{args} } != 3;
            my $pid = $f->{args}[2];
            if ($how eq 'any' || ($how eq 'same') == ($pid eq $want)) {
                $sc->var("pid_$name", $pid);
                $sc->var('tries', $try);
                return;
            }
            drop_client($sc, $c);
        }
        die "64 connections, none to the wanted worker\n";
    },

    assert_eq => sub {
        my ($sc, $rest) = @_;
        my ($a, $b) = $sc->tokens($rest);
        die "\"$a\" ne \"$b\"\n" if $a ne $b;
    },

    assert_ne => sub {
        my ($sc, $rest) = @_;
        my ($a, $b) = $sc->tokens($rest);
        die "both are \"$a\"\n" if $a eq $b;
    },

    node2_start => sub {
        my ($sc) = @_;

        _node2_stop();    # left over from a failed block

        $Node2Dir = Test::Nginx::Util::html_dir() . "/node2";
        File::Path::make_path("$Node2Dir/conf", "$Node2Dir/logs");

        my $conf = <<"EOF";
daemon on;
master_process on;
worker_processes 1;
worker_shutdown_timeout 1s;
error_log logs/error.log info;
pid logs/nginx.pid;

fishchat_node node2;
fishchat_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
fishchat_redis_prefix $ENV{TEST_NGINX_FC_PREFIX};

events { worker_connections 256; }

stream {
    fishchat_msg_heartbeat 100ms;

    server {
        listen 127.0.0.1:$ENV{TEST_NGINX_FC_PORT2};
        fishchat_msg;
    }
}
EOF

        open my $fh, '>', "$Node2Dir/conf/nginx.conf" or die "$!\n";
        print $fh $conf;
        close $fh;

        system($ENV{TEST_NGINX_BINARY}, '-p', "$Node2Dir/", '-c',
               'conf/nginx.conf') == 0
            or die "node2 did not start\n";

        my $deadline = $sc->deadline;

        until ($Node2Pid) {
            if (open my $p, '<', "$Node2Dir/logs/nginx.pid") {
                ($Node2Pid) = <$p> =~ /(\d+)/;
            }
            die "node2 wrote no pid\n" if Time::HiRes::time() > $deadline;
            Time::HiRes::sleep(0.02) unless $Node2Pid;
        }
    },

    node2_stop => sub {
        _node2_stop();

        open my $fh, '<', "$Node2Dir/logs/error.log" or die "$!\n";
        my @bad = grep { /\[(error|alert|emerg|crit)\]/ } <$fh>;
        die "node2's error log: @bad" if @bad;
    },
);


# --------------------------------------------------------------------------
# the event loop while a thread works: round trips and their bound

sub ping_once {
    my ($sc, $c) = @_;
    my $t0 = Time::HiRes::time();
    $sc->send($c, Test::FishChat::frame('SEND_PING', 'PING'));
    my $f = $sc->recv($c);
    my $t1 = Time::HiRes::time();
    die "expected PONG, got: $f->{text}\n" if ($f->{cmd} // '') ne 'PONG';
    return ($t1 - $t0) * 1000;
}

sub ping_figures {
    my ($sc, $name, @ms) = @_;
    die "no round trips for $name\n" if !@ms;
    my @s = sort { $a <=> $b } @ms;
    my $pick = sub { $s[ int($_[0] * $#s + 0.5) ] };
    $sc->var("${name}_n", scalar @s);
    $sc->var("${name}_median", sprintf '%.3f', $pick->(0.5));
    $sc->var("${name}_p90", sprintf '%.3f', $pick->(0.9));
    $sc->var("${name}_max", sprintf '%.3f', $s[-1]);
}

Test::FishChat::add_step(ping_stats => sub {
    my ($sc, $rest) = @_;
    my ($name, $cname, $n) = $sc->tokens($rest);
    die "usage: ping_stats NAME CLIENT N\n" if !defined $n || $n !~ /^\d+$/;
    my $c = $sc->client($cname);
    ping_figures($sc, $name, map { ping_once($sc, $c) } 1 .. $n);
});

# The bound on the median round trip while a thread works (t/media-workers.t:
# a remux; t/files-load.t: uploads):
#
#     max(5 x the baseline median, the baseline median + 20 ms)
#
# Back to back on loopback, a round trip is a few hundredths of a
# millisecond here (the baseline).  The remux thread takes one core of
# two while it runs, and the event loop must still answer each ping at
# once: five times the baseline absorbs the scheduling noise of a busy
# 2-core box (the remux, ffmpeg, a build next door), and 20 ms on top a
# baseline that is tiny.  The median, not p90: one round trip in ten may
# meet a preempted thread or a page-cache flush on a loaded box, which
# says nothing of the event loop.
#
# What catches a remux on the event loop is MIN: done there, it blocks
# the loop from the hook's answer to the MP4 (about 10 ms here), so no
# round trip ends within the window (checked by hand: with the remux
# posted to the event loop instead of the thread pool, 0 round trips,
# and the test fails).  The median bound catches what is left: a thread
# that slows the loop down (a lock held across the remux, a loop that
# waits for the thread), by more than the noise.
#
# Under valgrind there is no bound: valgrind runs one thread at a time
# (its manual: it serialises execution), so the remux thread and the event
# loop take turns and every round trip meets a slice of the remux.  What
# is left to check there: some round trips ended during the remux (MIN is
# 1), which a remux on the event loop would not let happen.
Test::FishChat::add_step(latency_bound => sub {
    my ($sc, $rest) = @_;
    my ($during, $base, $min) = $sc->tokens($rest);
    die "usage: latency_bound DURING BASE MIN\n" if !defined $min;
    my %d = map { $_ => $sc->var("${during}_$_") }
            qw(n median p90 max secs after);
    my %b = map { $_ => $sc->var("${base}_$_") } qw(n median p90 max);
    my $figures = sprintf "%s: %d round trips, median %.3f ms, p90 %.3f "
        . "ms, max %.3f ms; %s%s: %d round trips, median %s ms, p90 %s ms, "
        . "max %s ms", $base, $b{n}, $b{median}, $b{p90}, $b{max}, $during,
        defined $d{secs} ? " ($d{secs} s)" : '', $d{n},
        map { $d{$_} // '-' } qw(median p90 max);
    $figures .= "; the round trip that saw the end: $d{after} ms"
        if defined $d{after};
    Test::More::note($figures);
    $min = 1 if $ENV{TEST_NGINX_USE_VALGRIND};
    die "only $d{n} round trips in \"$during\", fewer than $min: "
        . "$figures\n" if $d{n} < $min;
    return if $ENV{TEST_NGINX_USE_VALGRIND};
    my $bound = 5 * $b{median};
    $bound = $b{median} + 20 if $bound < $b{median} + 20;
    die sprintf("the median round trip of \"%s\" is above the bound of "
                . "%.3f ms: %s\n", $during, $bound, $figures)
        if $d{median} > $bound;
});

add_macro(workers_login => <<'_EOS_');
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 $pid_a
connect_worker b other a
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 $pid_b
_EOS_

add_macro(room_offline => <<'_EOS_');
hello_login e eve
send e JOIN_TOPIC room eve
recv e LOCATE_TOPIC_MSG_ADDR * room
connect se
send se SEND_CLIENT_ID erin
send se JOIN_TOPIC room erin
recv se LOCATE_TOPIC_MSG_ADDR * room
close e
close se
redis_wait 0 EXISTS ${PREFIX}client:{eve}
redis_wait 0 EXISTS ${PREFIX}client:{erin}
_EOS_

# --------------------------------------------------------------------------
# a non-blocking TCP connection, retried while nginx is not listening yet

sub tcp_connect {
    my $sock = Test::FishChat::Scenario::tcp_socket(@_);
    $sock->blocking(0);
    return $sock;
}

1;
