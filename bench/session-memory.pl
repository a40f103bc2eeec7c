#!/usr/bin/env perl
# Does a session's memory grow with the messages it sends and receives?
#
#   bench/session-memory.pl [MESSAGES]        (default 100000)
#
# Starts a private Redis and one nginx worker with one msg server, logs
# alice and bob in on it, and has alice send MESSAGES messages to bob, who
# acknowledges each, in windows of 100 in flight. The worker's RSS is read
# from /proc after the first 1,000 messages and at the end; a per-message
# growth of the connection pools (or a leak) shows as a difference that
# grows with MESSAGES. Prints one "RESULT" line.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $total = shift // 100000;
my $top = abs_path(dirname(__FILE__) . '/..');
my $nginx = "$top/build/nginx/sbin/nginx";

-x $nginx or die "build first: make build\n";

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/logs";

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0) or die "$!\n";
    return $s->sockport;
}

my ($rport, $mport) = (free_port(), free_port());

system('redis-server', '--port', $rport, '--bind', '127.0.0.1', '--save', '',
       '--appendonly', 'no', '--daemonize', 'yes', '--dir', $dir,
       '--pidfile', "$dir/redis.pid", '--logfile', "$dir/redis.log") == 0
    or die "redis-server failed\n";

open my $fh, '>', "$dir/nginx.conf" or die "$!\n";
print $fh <<"EOF";
worker_processes 1;
error_log logs/error.log warn;
pid logs/nginx.pid;
fishchat_redis 127.0.0.1:$rport;
events { worker_connections 1024; }
stream {
    fishchat_msg_rate 0;
    server {
        listen 127.0.0.1:$mport;
        fishchat_msg;
    }
}
EOF
close $fh;

my $stop = sub {
    if (open my $p, '<', "$dir/logs/nginx.pid") {
        my ($pid) = <$p> =~ /(\d+)/;
        kill 'QUIT', $pid if $pid;
    }
    if (open my $p, '<', "$dir/redis.pid") {
        my ($pid) = <$p> =~ /(\d+)/;
        kill 'TERM', $pid if $pid;
    }
    sleep 0.3;
};

$SIG{INT} = $SIG{TERM} = sub { $stop->(); exit 1 };

system($nginx, '-p', "$dir/", '-c', "$dir/nginx.conf") == 0
    or do { $stop->(); die "nginx failed\n" };

sub frame {
    my ($cmd, @args) = @_;
    my $j = '{"CmdName":"' . $cmd . '","Args":['
            . join(',', map { "\"$_\"" } @args) . "]}\n";
    return pack('N', length $j) . $j;
}

my %buf;

sub frames {
    my ($s, $wait) = @_;
    my @out;
    my $sel = IO::Select->new($s);

    while ($sel->can_read($wait)) {
        my $n = sysread($s, my $x, 1 << 20);
        die "connection closed\n" unless $n;
        $buf{$s} .= $x;
        while (length($buf{$s}) >= 4) {
            my $l = unpack('N', $buf{$s});
            last if length($buf{$s}) < 4 + $l;
            push @out, substr($buf{$s}, 4, $l);
            substr($buf{$s}, 0, 4 + $l) = '';
        }
        last if @out;
    }

    return @out;
}

sub connect_login {
    my ($id) = @_;
    my $s;
    for (1 .. 100) {
        $s = IO::Socket::INET->new("127.0.0.1:$mport") and last;
        sleep 0.02;
    }
    die "can't connect\n" unless $s;
    print $s frame('HELLO', '1'), frame('SEND_CLIENT_ID', $id);
    my $got = 0;
    while ($got < 2) {
        my @f = frames($s, 5) or die "no login answer\n";
        $got += @f;
    }
    return $s;
}

sub worker_rss {
    open my $p, '<', "$dir/logs/nginx.pid" or die "$!\n";
    my ($master) = <$p> =~ /(\d+)/;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $f, '<', $stat or next;
        my @s = split ' ', <$f>;
        next unless $s[3] == $master;
        my ($pid) = $stat =~ m{/proc/(\d+)/};
        open my $st, '<', "/proc/$pid/status" or next;
        while (<$st>) {
            return $1 * 1024 if /^VmRSS:\s+(\d+)/;
        }
    }
    die "no worker\n";
}

my $alice = connect_login('alice');
my $bob = connect_login('bob');

my ($sent, $acked, $rss_first, $t0) = (0, 0, 0, time);
my $window = 100;

while ($acked < $total) {
    my $batch = '';
    while ($sent < $total && $sent - $acked < $window) {
        $batch .= frame('SEND_MESSAGE_P2P', 'bob', "m$sent", 'alice');
        $sent++;
    }
    print $alice $batch if length $batch;

    my @f = frames($bob, 5) or die "delivery stalled at $acked\n";
    my $acks = '';
    for (@f) {
        my ($uuid) = /"([0-9a-f-]{36})"\]/ or next;
        $acks .= frame('P2P_ACK', 'bob', $uuid);
        $acked++;
    }
    print $bob $acks;

    # alice's ACCEPTED frames are read and dropped
    frames($alice, 0);

    if (!$rss_first && $acked >= 1000) {
        $rss_first = worker_rss();
    }
}

sleep 0.2;
my $rss_last = worker_rss();
my $secs = time - $t0;

printf "messages %d in %.1f s (%.0f/s, one sender, 100 in flight)\n",
       $total, $secs, $total / $secs;
printf "worker RSS after 1000: %d KiB, after %d: %d KiB, growth %d KiB\n",
       $rss_first / 1024, $total, $rss_last / 1024,
       ($rss_last - $rss_first) / 1024;
printf "RESULT mode=session-memory messages=%d rss_first=%d rss_last=%d "
       . "growth_bytes=%d\n", $total, $rss_first, $rss_last,
       $rss_last - $rss_first;

$stop->();
