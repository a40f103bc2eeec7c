# The monitor (fishchat_monitor): the dashboard, this node's status as
# JSON, the cluster from the heartbeats, the Prometheus text, errors as
# JSON; a real browser (headless Chromium through chromedriver) renders
# the dashboard while clients chat.
#
# nginx runs with a master and two workers; clients of the msg server on
# the stream port land on either.  Counters live as long as nginx does, so
# checks after traffic compare with a status taken before it.
#
# Steps of this file, besides those of t/README.md, Test::FishChat::Msg and
# Test::FishChat::Steps:
#
#   http NAME METHOD PATH [STATUS]
#       an HTTP/1.0 request to the http port; the response is kept as NAME
#       (status, headers by lower-case name, body, JSON, metrics, time)
#   expect NAME PERL
#       PERL is true, with $r the response NAME, $j its JSON, $m its
#       metrics (after metrics_check), %R every response, %v the scenario
#       variables; sum_metric($m, NAME, LABEL => VALUE...) and
#       samples($m, NAME) help
#   wait_json PATH PERL
#       GET PATH until PERL is true of its JSON ($j, as above)
#   metrics_check NAME
#       parses the body of NAME strictly as the Prometheus text format
#       0.0.4 (and with promtool, when it is installed)
#   http_send NAME PATH / http_pending NAME [SECS] / http_recv NAME [STATUS]
#   http_close NAME
#       a GET sent now and read later; http_pending: no byte of the
#       answer within SECS (0.3), the request is waiting
#   redis2_signal SIGNAL PORT
#       send SIGNAL (STOP, CONT) to the redis2 on PORT (Msg.pm's redis2)
#   beat ADDR TTL_MS SESSIONS NODE
#       a heartbeat by Redis's clock, as docs/keyspace.md shows
#   traffic start N RATE / traffic stop
#       N clients log in and send each other about RATE messages a
#       second (a child process; stopped at the end of the scenario, or
#       after 90 s)
#   browser_open PATH / browser_close
#   browser_wait JS / browser_get VAR JS
#       a script (in the page) returns true / its value; ${VAR} in JS is
#       the scenario variable
#   browser_shot FILE WIDTH [phone]
#       the whole page, WIDTH CSS pixels wide, as PNG in servroot/html
#       (and in t/servroot/html when servroot is elsewhere)
#   browser_no_errors
#       the browser's console has no error (scripts, CSP, loads)
#
# The dashboard block is the last (no_shuffle): its screenshots stay.

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Browser;

use Errno qw(EAGAIN EWOULDBLOCK EINTR ECONNREFUSED);
use File::Basename ();
use File::Copy ();
use File::Path ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Time::HiRes ();

master_on();
workers(2);
repeat_each(2);
no_shuffle();

my $JSON = JSON::PP->new->utf8->canonical;

# --------------------------------------------------------------------------
# HTTP

sub http_connect {
    my ($sc) = @_;
    my $port = server_port();
    my $deadline = $sc->deadline;

    while (1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => $sc->timeout);
        return $s if $s;
        die "cannot connect to 127.0.0.1:$port: $!\n"
            if $! != ECONNREFUSED || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
    }
}

sub http_request_bytes {
    my ($method, $path, $body) = @_;
    $body //= '';
    return "$method $path HTTP/1.0\r\nHost: localhost\r\n"
           . (length $body ? "Content-Length: " . length($body) . "\r\n"
                             . "Content-Type: text/plain\r\n"
                           : '')
           . "\r\n$body";
}

# reads until the server closes; returns the parsed response
sub http_read {
    my ($sc, $s, $what, $start) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = $sc->deadline;
    my $resp = '';

    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "$what: no whole answer within " . $sc->timeout . " s\n"
            if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($s, $resp, 65536, length $resp);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            die "$what: $!\n";
        }
        last if $n == 0;
    }
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{\AHTTP/1\.\d (\d{3}) }
        or die "$what: not an HTTP response: "
               . substr($resp, 0, 200) . "\n";

    my %h;
    for my $line (split /\r\n/, $head) {
        next if $line !~ /^([^:\s]+):\s*(.*)$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
    }

    my $r = { status => $status, headers => \%h, body => $body // '',
              elapsed => Time::HiRes::time() - $start };

    if (($h{'content-type'} // '') =~ m{^application/json}) {
        $r->{json} = eval { $JSON->decode($r->{body}) };
        die "$what: bad JSON ($@): " . substr($r->{body}, 0, 300) . "\n"
            if !$r->{json};
    }

    return $r;
}

sub http {
    my ($sc, $method, $path, $body) = @_;
    my $start = Time::HiRes::time();
    my $s = http_connect($sc);
    local $SIG{PIPE} = 'IGNORE';
    syswrite $s, http_request_bytes($method, $path, $body);
    return http_read($sc, $s, "$method $path", $start);
}

# --------------------------------------------------------------------------
# the Prometheus text format 0.0.4, strictly: HELP and TYPE once per
# family and before its samples, each family in one group, valid names,
# labels and escapes, no series twice; and this project's rules: every
# family has HELP and TYPE, is called fishchat_*, counters end in _total
# and nothing else does

my $NAME = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
my $LABEL = qr/[a-zA-Z_][a-zA-Z0-9_]*/;
my $FLOAT = qr/[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN/;

sub prom_parse {
    my $text = shift;
    my (%fam, @order, %closed, %series);
    my $current = '';
    my $n = 0;

    die "empty\n" if !length $text;
    die "the last line does not end with a newline\n" if $text !~ /\n\z/;

    my $family = sub {
        my ($name, $line) = @_;
        if ($name ne $current) {
            die "line $line: family $name appears again after others\n"
                if $closed{$name};
            $closed{$current} = 1 if length $current;
            $current = $name;
        }
        if (!$fam{$name}) {
            $fam{$name} = { samples => [] };
            push @order, $name;
        }
        return $fam{$name};
    };

    for my $line (split /\n/, $text) {
        $n++;
        next if $line eq '';

        if ($line =~ /^#/) {
            if ($line =~ /^# HELP (\S+)(?: (.*))?$/) {
                my ($name, $help) = ($1, $2 // '');
                die "line $n: bad metric name $name\n"
                    if $name !~ /^$NAME$/;
                die "line $n: bad escape in HELP\n"
                    if $help =~ /\\(?![\\n])/;
                my $f = $family->($name, $n);
                die "line $n: second HELP for $name\n"
                    if defined $f->{help};
                $f->{help} = $help;

            } elsif ($line =~ /^# TYPE (\S+) (\S+)$/) {
                my ($name, $type) = ($1, $2);
                die "line $n: bad metric name $name\n"
                    if $name !~ /^$NAME$/;
                die "line $n: bad type $type\n"
                    if $type !~ /^(?:counter|gauge|histogram|summary|untyped)$/;
                my $f = $family->($name, $n);
                die "line $n: second TYPE for $name\n"
                    if defined $f->{type};
                die "line $n: TYPE for $name after its samples\n"
                    if @{ $f->{samples} };
                $f->{type} = $type;

            } elsif ($line =~ /^# (?:HELP|TYPE)\b/) {
                die "line $n: malformed: $line\n";
            }
            next;
        }

        $line =~ /^($NAME)/g or die "line $n: no metric name: $line\n";
        my $name = $1;
        my %labels;

        if ($line =~ /\G\{/gc) {
            while ($line !~ /\G\}/gc) {
                $line =~ /\G($LABEL)="((?:[^"\\\n]|\\[\\"n])*)"/gc
                    or die "line $n: bad label at "
                           . substr($line, pos($line) // 0) . "\n";
                my ($k, $v) = ($1, $2);
                die "line $n: reserved label name $k\n" if $k =~ /^__/;
                die "line $n: label $k twice\n" if exists $labels{$k};
                $v =~ s/\\(.)/$1 eq 'n' ? "\n" : $1/ge;
                $labels{$k} = $v;
                next if $line =~ /\G,/gc;
                $line =~ /\G\}/gc or die "line $n: , or } expected\n";
                last;
            }
        }

        $line =~ /\G ($FLOAT)(?: (-?\d+))?$/gc
            or die "line $n: bad value or timestamp: $line\n";
        my $value = $1;

        my $f = $family->($name, $n);
        die "line $n: sample of $name before its TYPE\n"
            if !defined $f->{type};

        my $key = join "\0", $name,
                  map { "$_=$labels{$_}" } sort keys %labels;
        die "line $n: series twice: $line\n" if $series{$key}++;

        push @{ $f->{samples} }, { labels => \%labels,
                                   value => $value eq 'NaN' ? 'NaN'
                                            : $value =~ /Inf/ ? $value
                                            : 0 + $value };
    }

    for my $name (@order) {
        my $f = $fam{$name};
        die "$name: no HELP\n" if !defined $f->{help};
        die "$name: no TYPE\n" if !defined $f->{type};
        die "$name: not a fishchat_ name\n" if $name !~ /^fishchat_/;
        die "$name: a counter must end in _total\n"
            if $f->{type} eq 'counter' && $name !~ /_total$/;
        die "$name: only counters end in _total\n"
            if $f->{type} ne 'counter' && $name =~ /_total$/;
    }

    return \%fam;
}

sub samples {
    my ($m, $name, %want) = @_;
    my $f = $m->{$name} or die "no family $name\n";
    return grep {
        my $s = $_;
        !grep { ($s->{labels}{$_} // "\0") ne $want{$_} } keys %want
    } @{ $f->{samples} };
}

sub sum_metric {
    my $sum = 0;
    $sum += $_->{value} for samples(@_);
    return $sum;
}

sub promtool_check {
    my $text = shift;
    my $promtool;
    for my $dir (split /:/, $ENV{PATH} // '') {
        $promtool = "$dir/promtool", last if -x "$dir/promtool";
    }
    return if !$promtool;
    my $file = "$Test::Nginx::Util::HtmlDir/metrics.txt";
    open my $out, '>', $file or die "$file: $!\n";
    print $out $text;
    close $out;
    my $res = `$promtool check metrics < $file 2>&1`;
    die "promtool check metrics: $res" if $?;
}

# the parser is strict: a few texts it must refuse
for my $bad ("fishchat_x_total 1\n",
             "# TYPE fishchat_x_total counter\nfishchat_x_total 1\n",
             "# HELP fishchat_x x\n# TYPE fishchat_x gauge\nfishchat_x{a=\"1\",a=\"2\"} 1\n",
             "# HELP fishchat_x x\n# TYPE fishchat_x gauge\nfishchat_x 1\nfishchat_x 2\n",
             "# HELP fishchat_x x\n# TYPE fishchat_x counter\nfishchat_x 1\n",
             "# HELP fishchat_x x\n# TYPE fishchat_x gauge\nfishchat_x{a=\"\\q\"} 1\n",
             "# HELP fishchat_x x\n# TYPE fishchat_x gauge\nfishchat_x 1",
             "# HELP fishchat_a a\n# TYPE fishchat_a gauge\nfishchat_a 1\n"
             . "# HELP fishchat_b b\n# TYPE fishchat_b gauge\nfishchat_b 1\n"
             . "fishchat_a{x=\"1\"} 1\n")
{
    die "prom_parse accepts:\n$bad" if eval { prom_parse($bad); 1 };
}

# --------------------------------------------------------------------------
# expressions of the scenario lines

my %R;      # responses by name, for the current scenario

sub check_expr {
    my ($sc, $r, $code) = @_;
    my $j = $r ? $r->{json} : undef;
    my $m = $r ? $r->{metrics} : undef;
    my %v = %{ $sc->{vars} };
    my $ok = eval "no strict 'vars'; $code";
    die "error in \"$code\": $@" if $@;
    return $ok;
}

sub dump_of {
    my $r = shift;
    return '' if !$r;
    my $s = $r->{json} ? $JSON->encode($r->{json}) : $r->{body};
    return substr($s, 0, 1500);
}

# --------------------------------------------------------------------------
# traffic: N clients sending each other messages, in a child process

my $TrafficPid;

sub traffic_start {
    my ($sc, $n, $rate) = @_;
    my $port = $sc->port;

    # the clients log in here, so that the scenario knows they are in
    my @c;
    for my $i (1 .. $n) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => $sc->timeout)
            or die "traffic: cannot connect: $!\n";
        syswrite $s, frame('HELLO', '1') . frame('SEND_CLIENT_ID', "u$i");
        push @c, $s;
    }

    for my $s (@c) {
        my $buf = '';
        my $sel = IO::Select->new($s);
        my $deadline = $sc->deadline;
        while ($buf !~ /LOGIN_OK/) {
            my $left = $deadline - Time::HiRes::time();
            die "traffic: no LOGIN_OK within " . $sc->timeout . " s\n"
                if $left <= 0;
            next if !$sel->can_read($left);
            sysread($s, $buf, 65536, length $buf) or die "traffic: closed\n";
        }
    }

    my $pid = fork;
    die "traffic: fork: $!\n" if !defined $pid;

    if ($pid) {
        close $_ for @c;
        $TrafficPid = $pid;
        return;
    }

    # the child: sends, reads and acknowledges until killed or 90 s
    local $SIG{PIPE} = 'IGNORE';
    $_->blocking(0) for @c;
    my $end = Time::HiRes::time() + 90;
    my ($i, @buf) = (0);

    while (Time::HiRes::time() < $end) {
        my $from = $i % $n;
        my $to = ($i + 1) % $n;
        syswrite $c[$from], frame('SEND_MESSAGE_P2P', 'u' . ($to + 1),
                                  "hello $i", 'u' . ($from + 1), "r$i");
        $i++;

        for my $k (0 .. $#c) {
            my $n = sysread($c[$k], $buf[$k], 65536, length($buf[$k] // ''));
            my $acks = '';
            while (length($buf[$k] // '') >= 4) {
                my $len = unpack 'N', $buf[$k];
                last if length($buf[$k]) < 4 + $len;
                my $body = substr($buf[$k], 4, $len);
                substr($buf[$k], 0, 4 + $len, '');
                if ($body =~ /"RESP_MESSAGE_P2P","Args":\[.*,"([^"]+)"\]/) {
                    $acks .= frame('P2P_ACK', 'u' . ($k + 1), $1);
                }
            }
            syswrite $c[$k], $acks if length $acks;
        }

        # pacing the messages: the rate swings a little, for the chart
        Time::HiRes::sleep(1 / ($rate * (1 + 0.4 * sin($i / 40))));
    }

    POSIX::_exit(0);
}

sub traffic_stop {
    my $pid = $TrafficPid or return;
    undef $TrafficPid;
    kill 'TERM', $pid;
    my $deadline = Time::HiRes::time() + 5;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            last;
        }
        Time::HiRes::sleep(0.02);   # waiting for the child to exit
    }
}

# --------------------------------------------------------------------------
# the browser

my $Browser;

sub browser_close {
    $Browser->quit if $Browser;
    undef $Browser;
}

sub browser_js {
    my ($sc, $js) = @_;
    $js =~ s/\$\{(\w+)\}/$sc->var($1) \/\/ die "no \$$1\n"/ge;
    return $js;
}

# at the end of every scenario, failed or not
{
    no warnings 'redefine';
    my $finish = \&Test::FishChat::Scenario::finish;
    *Test::FishChat::Scenario::finish = sub {
        traffic_stop();
        browser_close();
        %R = ();
        $finish->(@_);
    };
}

END {
    traffic_stop();
    browser_close();
}

# --------------------------------------------------------------------------

Test::FishChat::add_step(

    http => sub {
        my ($sc, $rest) = @_;
        my ($name, $method, $path, $status, @x) = $sc->tokens($rest);
        die "usage: http NAME METHOD PATH [STATUS]\n" if !$path || @x;
        my $body = $method =~ /^(?:POST|PUT)$/ ? "some body\n" : '';
        my $r = http($sc, $method, $path, $body);
        $R{$name} = $r;
        die "$method $path: status $r->{status}, expected $status\n    "
            . dump_of($r) . "\n"
            if defined $status && $r->{status} != $status;
    },

    expect => sub {
        my ($sc, $rest) = @_;
        my ($name, $code) = $rest =~ /^(\S+)\s+(.*)$/s
            or die "usage: expect NAME PERL\n";
        my $r = $R{$name} or die "no response $name\n";
        check_expr($sc, $r, $code)
            or die "not true: $code\n    in: " . dump_of($r) . "\n";
    },

    wait_json => sub {
        my ($sc, $rest) = @_;
        my ($path, $code) = $rest =~ /^(\S+)\s+(.*)$/s
            or die "usage: wait_json PATH PERL\n";
        my $deadline = $sc->deadline;
        my $r;
        while (1) {
            $r = eval { http($sc, 'GET', $path) };
            return if $r && $r->{json} && check_expr($sc, $r, $code);
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.05);   # polling the monitor, bounded
        }
        die "not true within " . $sc->timeout . " s: $code\n    last: "
            . ($r ? "$r->{status} " . dump_of($r) : $@) . "\n";
    },

    metrics_check => sub {
        my ($sc, $rest) = @_;
        my ($name) = $sc->tokens($rest);
        my $r = $R{$name} or die "no response $name\n";
        $r->{metrics} = eval { prom_parse($r->{body}) };
        die "not valid Prometheus text: $@" . substr($r->{body}, 0, 2000)
            if !$r->{metrics};
        promtool_check($r->{body});
    },

    http_send => sub {
        my ($sc, $rest) = @_;
        my ($name, $path) = $sc->tokens($rest);
        my $s = http_connect($sc);
        syswrite $s, http_request_bytes('GET', $path);
        $sc->{http_open}{$name} = { sock => $s, path => $path,
                                    start => Time::HiRes::time() };
    },

    http_pending => sub {
        my ($sc, $rest) = @_;
        my ($name, $secs) = $sc->tokens($rest);
        my $h = $sc->{http_open}{$name} or die "no request $name\n";
        # waiting on purpose, as no_frame does: nothing may come
        my $sel = IO::Select->new($h->{sock});
        die "an answer came within " . ($secs // 0.3) . " s\n"
            if $sel->can_read($secs // 0.3);
    },

    http_recv => sub {
        my ($sc, $rest) = @_;
        my ($name, $status) = $sc->tokens($rest);
        my $h = delete $sc->{http_open}{$name} or die "no request $name\n";
        my $r = http_read($sc, $h->{sock}, "GET $h->{path}", $h->{start});
        $R{$name} = $r;
        die "GET $h->{path}: status $r->{status}, expected $status\n    "
            . dump_of($r) . "\n"
            if defined $status && $r->{status} != $status;
    },

    http_close => sub {
        my ($sc, $rest) = @_;
        my ($name) = $sc->tokens($rest);
        my $h = delete $sc->{http_open}{$name} or die "no request $name\n";
        close $h->{sock};
    },

    redis2_signal => sub {
        my ($sc, $rest) = @_;
        my ($sig, $port) = $sc->tokens($rest);
        my $file = "$Test::Nginx::Util::HtmlDir/redis2-$port/redis.pid";
        open my $in, '<', $file or die "no redis2 on $port: $!\n";
        my $pid = <$in>;
        chomp $pid;
        kill $sig, $pid or die "kill $sig $pid: $!\n";
    },

    beat => sub {
        my ($sc, $rest) = @_;
        my ($addr, $ttl, $sessions, $node, @x) = $sc->tokens($rest);
        die "usage: beat ADDR TTL_MS SESSIONS NODE\n" if !$node || @x;
        $ttl *= $Test::FishChat::TimeoutScale if $ttl > 0;
        redis('EVAL', "local t = redis.call('TIME') "
              . "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
              . "redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1]) "
              . "redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])",
              2, redis_key('{nodes}:beat'), redis_key('{nodes}:load'),
              $addr, $ttl,
              encode_json({ node => $node, sessions => 0 + $sessions }));
    },

    traffic => sub {
        my ($sc, $rest) = @_;
        my ($what, $n, $rate) = $sc->tokens($rest);
        if (($what // '') eq 'stop') {
            traffic_stop();
            return;
        }
        die "usage: traffic start N RATE | traffic stop\n"
            if ($what // '') ne 'start' || !$rate;
        traffic_start($sc, $n, $rate);
    },

    browser_open => sub {
        my ($sc, $rest) = @_;
        my ($path) = $sc->tokens($rest);
        $Browser ||= Test::FishChat::Browser->start(
            dir => "$Test::Nginx::Util::ServRoot/chrome",
            timeout => $sc->timeout);
        $Browser->open('http://127.0.0.1:' . server_port() . $path);
    },

    browser_wait => sub {
        my ($sc, $rest) = @_;
        die "no browser\n" if !$Browser;
        $Browser->wait_js(browser_js($sc, $rest), $sc->timeout);
    },

    browser_get => sub {
        my ($sc, $rest) = @_;
        my ($var, $js) = $rest =~ /^(\w+)\s+(.*)$/s
            or die "usage: browser_get VAR JS\n";
        die "no browser\n" if !$Browser;
        $sc->var($var, $Browser->js(browser_js($sc, $js)));
    },

    browser_shot => sub {
        my ($sc, $rest) = @_;
        my ($file, $width, $phone) = $sc->tokens($rest);
        die "no browser\n" if !$Browser;
        my $path = "$Test::Nginx::Util::HtmlDir/$file";
        $Browser->screenshot($path, $width, defined $phone);
        die "no screenshot in $path\n" if !-s $path;

        # t/servroot_NNN (TEST_NGINX_RANDOMIZE) goes at the end of the run
        my $keep = File::Basename::dirname($Test::Nginx::Util::ServRoot)
                   . '/servroot/html';
        if ($Test::Nginx::Util::HtmlDir ne $keep) {
            File::Path::make_path($keep);
            File::Copy::copy($path, "$keep/$file")
                or die "copy to $keep: $!\n";
        }
    },

    browser_no_errors => sub {
        my ($sc) = @_;
        die "no browser\n" if !$Browser;
        my @e = $Browser->errors;
        die "browser console:\n    " . join("\n    ", @e) . "\n" if @e;
    },

    browser_close => sub {
        browser_close();
    },
);

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: the dashboard at the location: one page, nothing from elsewhere
--- config
    location /monitor/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
http d GET /monitor/ 200
expect d $r->{headers}{'content-type'} eq 'text/html; charset=utf-8'
expect d $r->{headers}{'content-length'} == length $r->{body}
expect d $r->{headers}{'content-security-policy'} =~ /^default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; /
expect d $r->{headers}{'x-content-type-options'} eq 'nosniff'
expect d $r->{body} =~ /\A<!DOCTYPE html>/ && $r->{body} =~ m{</html>\n\z}
expect d $r->{body} =~ /<svg id="chart"/ && $r->{body} =~ /name="viewport"/
expect d $r->{body} =~ /\?format=json/ && $r->{body} =~ /\?format=cluster/
expect d $r->{body} !~ m{(?:src|href|action)\s*=\s*["']?(?:[a-z]+:)?//}i
expect d $r->{body} !~ m{url\(|\@import|https?:}i
expect d $r->{body} !~ /[^\x00-\x7f]/
http i GET /monitor/index.html 200
expect i $r->{body} eq $R{d}{body}
http h HEAD /monitor/ 200
expect h $r->{body} eq '' && $r->{headers}{'content-length'} == length $R{d}{body}



=== TEST 2: views by path, by ?format= and by the directive's parameter
--- config
    location /monitor/ {
        fishchat_monitor;
    }

    location = /status {
        fishchat_monitor;
    }

    location = /metrics {
        fishchat_monitor metrics;
    }

    location = /cluster.json {
        fishchat_monitor cluster;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
http a GET /monitor/status.json 200
expect a $r->{headers}{'content-type'} eq 'application/json' && $j->{workers} && $r->{headers}{'cache-control'} eq 'no-store'
http b GET /monitor/?format=json 200
expect b $j->{node} eq $R{a}{json}{node} && $j->{totals}
http c GET /status 200
expect c $r->{headers}{'content-type'} eq 'text/html; charset=utf-8'
http d GET /status?format=json 200
expect d exists $j->{totals}{sessions}
http e GET /status?a=1&format=status&b=2 200
expect e exists $j->{totals}{sessions}
http f GET /monitor/metrics 200
expect f $r->{headers}{'content-type'} eq 'text/plain; version=0.0.4; charset=utf-8'
expect f $r->{body} =~ /^# TYPE fishchat_sessions gauge$/m
http g GET /metrics 200
expect g $r->{headers}{'content-type'} eq 'text/plain; version=0.0.4; charset=utf-8'
http h GET /status?format=prometheus 200
expect h $r->{body} =~ /^fishchat_info\{/m
http i GET /metrics?format=html 200
expect i $r->{headers}{'content-type'} eq 'text/html; charset=utf-8'
http k GET /monitor/cluster 200
expect k $j->{redis} eq 'up' && ref $j->{nodes} eq 'ARRAY'
http l GET /cluster.json 200
expect l $j->{redis} eq 'up'
http m GET /monitor/cluster.json 200
http n GET /monitor/nothing 404
expect n $j->{status} == 404 && $j->{error} =~ /^not found/
http o GET /monitor/status.json/x 404
http p GET /status?format=xml 400
expect p $j->{status} == 400 && $j->{error} =~ /unknown format/



=== TEST 3: other methods: 405 with JSON
--- config
    location /monitor/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
http a POST /monitor/status.json 405
expect a $r->{headers}{'content-type'} eq 'application/json' && $r->{headers}{allow} eq 'GET, HEAD'
expect a $j->{status} == 405 && $j->{error} =~ /only GET and HEAD/
http b PUT /monitor/ 405
expect b $j->{status} == 405
http c DELETE /monitor/cluster 405
expect c $j->{status} == 405
http d OPTIONS /monitor/metrics 405
expect d $j->{status} == 405
http e GET /monitor/status.json 200



=== TEST 4: status.json after known traffic
--- main_config
    fishchat_node mon1;
--- config
    location /monitor/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
wait_json /monitor/status.json @{$j->{workers}} == 2 && $j->{totals}{sessions} == 0 && $j->{totals}{active} == 0 && !grep { $_->{redis}{link} ne 'up' || !$_->{redis}{rtt_us} } @{$j->{workers}}
http s0 GET /monitor/status.json 200
hello_login a alice
hello_login b bob
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
recv b RESP_MESSAGE_P2P m1 alice *
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
recv b RESP_MESSAGE_P2P m2 alice *
send b SEND_MESSAGE_P2P alice m3 bob r3
recv b ACCEPTED r3 *
recv a RESP_MESSAGE_P2P m3 bob *
sent_bytes tx
received_bytes rx
wait_json /monitor/status.json $j->{totals}{sessions} == 2 && $j->{totals}{active} == 2 && $j->{totals}{bytes_out} - $R{s0}{json}{totals}{bytes_out} == $v{rx}
http s GET /monitor/status.json 200
expect s $j->{node} eq 'mon1' && $j->{version} =~ /^\d+\.\d+\.\d+$/ && $j->{nginx} =~ /^\d+\.\d+\.\d+$/ && $j->{redis} eq "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}"
expect s $j->{pid} > 0 && $j->{uptime} >= 0 && $j->{uptime} == $j->{time} - $j->{started} && abs($j->{msec} - Time::HiRes::time() * 1000) < 5000
expect s $j->{totals}{workers} == 2 && @{$j->{workers}} == 2 && grep { $_->{pid} == $j->{pid} } @{$j->{workers}}
expect s my ($t, $b) = ($j->{totals}, $R{s0}{json}{totals}); $t->{messages} - $b->{messages} == 3 && $t->{accepted} - $b->{accepted} == 2 && $t->{frames_in} - $b->{frames_in} == 7 && $t->{frames_out} - $b->{frames_out} == 10 && $t->{bytes_in} - $b->{bytes_in} == $v{tx} && $t->{errors} == $b->{errors}
expect s !grep { !defined $j->{totals}{$_} } qw(connections topics queued_bytes queued_sessions topic_backlog stalled_sessions error)
expect s keys %{ $j->{totals}{error} } == 25 && exists $j->{totals}{error}{slow_reader} && exists $j->{totals}{error}{no_such_stream} && exists $j->{totals}{error}{quota_exceeded} && exists $j->{totals}{error}{no_such_file} && exists $j->{totals}{error}{file_busy}
expect s !grep { !($_->{pid} > 0 && $_->{started} > 0 && $_->{updated} > $j->{msec} - 3000 && $_->{connections} >= 1 && $_->{topics} == 0 && $_->{queued_bytes} == 0 && $_->{queued_sessions} == 0 && $_->{topic_backlog} == 0 && $_->{stalled_sessions} == 0) } @{$j->{workers}}
expect s !grep { !($_->{redis}{link} eq 'up' && $_->{redis}{subscriber} eq 'up' && $_->{redis}{rtt_us} > 0 && $_->{redis}{rtt_us} < 1000000 && $_->{redis}{waiting} == 0 && $_->{redis}{channels} >= 1) } @{$j->{workers}}
expect s !grep { @{$_->{servers}} != 1 || $_->{servers}[0]{server} !~ m{^msg \S+/nginx\.conf:\d+$} } @{$j->{workers}}
expect s my $w = $j->{workers}; $w->[0]{sessions} + $w->[1]{sessions} == 2 && $w->[0]{messages} + $w->[1]{messages} == $j->{totals}{messages} && $w->[0]{servers}[0]{sessions} == $w->[0]{sessions}
close b
wait_json /monitor/status.json $j->{totals}{sessions} == 1 && $j->{totals}{active} == 1 && $j->{totals}{messages} - $R{s0}{json}{totals}{messages} == 3
close a
wait_json /monitor/status.json $j->{totals}{sessions} == 0 && $j->{totals}{active} == 0



=== TEST 5: topics subscribed and bytes waiting in output queues
--- config
    location /monitor/ {
        fishchat_monitor;
    }
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=8k;
        fishchat_msg;
        fishchat_msg_send_buffer 64m;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_rate 0;
--- scenario_timeout: 10
--- scenario
wait_json /monitor/status.json @{$j->{workers}} == 2 && $j->{totals}{sessions} == 0 && $j->{totals}{topics} == 0
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
wait_json /monitor/status.json $j->{totals}{topics} == 1 && 1 == grep { $_->{topics} == 1 && $_->{redis}{channels} >= 2 } @{$j->{workers}}
http p GET /monitor/metrics 200
metrics_check p
expect p sum_metric($m, 'fishchat_topics_subscribed') == 1
connect_tiny b $TEST_NGINX_FC_PORT1
send b HELLO 1
recv b HELLO 1 * *
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * *
set_repeat big x 30000
send_repeat a 60 SEND_MESSAGE_P2P bob $big alice r$i
recv_repeat a 60 ACCEPTED r$i *
wait_json /monitor/status.json $j->{totals}{queued_bytes} > 100000 && $j->{totals}{queued_sessions} == 1
http q GET /monitor/metrics 200
metrics_check q
expect q sum_metric($m, 'fishchat_output_queue_bytes') > 100000 && sum_metric($m, 'fishchat_output_queue_sessions') == 1
close b
wait_json /monitor/status.json $j->{totals}{queued_bytes} == 0 && $j->{totals}{queued_sessions} == 0 && $j->{totals}{sessions} == 1
send a LEAVE_TOPIC room alice
recv a TOPIC_LEFT room
wait_json /monitor/status.json $j->{totals}{topics} == 0



=== TEST 6: Redis unreachable: links down, no round trip, cluster 503 at once
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_prefix fct:monitor:;
    fishchat_redis_timeout 10s;
--- config
    location /m/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 5
--- scenario
wait_json /m/status.json @{$j->{workers}} == 2 && !grep { $_->{redis}{link} !~ /^(?:down|connecting)$/ || defined $_->{redis}{rtt_us} || $_->{updated} < $j->{msec} - 3000 } @{$j->{workers}}
http c GET /m/cluster 503
expect c $r->{headers}{'content-type'} eq 'application/json' && $j->{status} == 503 && $j->{redis} eq 'down' && $j->{error} eq 'Redis is unavailable' && ref $j->{nodes} eq 'ARRAY' && !@{$j->{nodes}}
expect c $r->{elapsed} < $Test::FishChat::TimeoutScale
http p GET /m/metrics 200
metrics_check p
expect p my @up = samples($m, 'fishchat_redis_up'); @up >= 2 && !grep { $_->{value} != 0 } @up
expect p !samples($m, 'fishchat_redis_rtt_seconds')
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 7: the link state flips when Redis goes away and comes back
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_prefix fct:monitor:;
--- config
    location /m/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 15
--- scenario
redis2 start $TEST_NGINX_FC_PORT4 fresh
wait_json /m/status.json @{$j->{workers}} == 2 && !grep { $_->{redis}{link} ne 'up' || !$_->{redis}{rtt_us} } @{$j->{workers}}
http c GET /m/cluster 200
expect c $j->{redis} eq 'up' && @{$j->{nodes}} == 1
redis2 kill $TEST_NGINX_FC_PORT4
wait_json /m/status.json !grep { $_->{redis}{link} eq 'up' || defined $_->{redis}{rtt_us} } @{$j->{workers}}
http d GET /m/cluster 503
expect d $j->{redis} eq 'down'
http p GET /m/metrics 200
metrics_check p
expect p !grep { $_->{value} != 0 } samples($m, 'fishchat_redis_up', link => 'command')
redis2 start $TEST_NGINX_FC_PORT4
wait_json /m/status.json !grep { $_->{redis}{link} ne 'up' || $_->{redis}{subscriber} ne 'up' || !$_->{redis}{rtt_us} } @{$j->{workers}}
http q GET /m/metrics 200
metrics_check q
expect q my @up = samples($m, 'fishchat_redis_up'); @up == 4 && !grep { $_->{value} != 1 } @up
expect q my @rtt = samples($m, 'fishchat_redis_rtt_seconds'); @rtt == 2 && !grep { $_->{value} <= 0 || $_->{value} > 1 } @rtt
--- error_log
is unavailable (command link)
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 8: the cluster: every live node from the heartbeats, with its load
--- main_config
    fishchat_node n1;
--- config
    location /m/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
beat 192.0.2.21:19000 10000 5 n2
beat 192.0.2.20:19000 10000 7 n2
beat 192.0.2.30:19000 -1000 9 n3
connect a
send a SEND_CLIENT_ID alice
wait_json /m/cluster @{$j->{nodes}} == 2 && $j->{nodes}[0]{node} eq 'n1' && $j->{nodes}[0]{sessions} == 1
http c GET /m/cluster 200
expect c $j->{node} eq 'n1' && $j->{redis} eq 'up' && $j->{servers} == 3 && $j->{truncated} == 0 && $j->{time} > 0
expect c my $n = $j->{nodes}[0]; $n->{self} && @{$n->{servers}} == 1 && $n->{servers}[0]{address} eq "127.0.0.1:$ENV{TEST_NGINX_STREAM_PORT}" && $n->{servers}[0]{sessions} == 1 && $n->{servers}[0]{expires_in_ms} > 0
expect c my $n = $j->{nodes}[1]; $n->{node} eq 'n2' && !$n->{self} && $n->{sessions} == 12 && @{$n->{servers}} == 2
expect c my $s = $j->{nodes}[1]{servers}; $s->[0]{address} eq '192.0.2.20:19000' && $s->[0]{sessions} == 7 && $s->[1]{address} eq '192.0.2.21:19000' && $s->[1]{sessions} == 5
expect c !grep { $_->{expires_in_ms} <= 0 || $_->{expires_in_ms} > 10000 * $Test::FishChat::TimeoutScale } @{$j->{nodes}[1]{servers}}
expect c $r->{body} !~ /n3|192\.0\.2\.30/



=== TEST 9: a cluster request that goes away while Redis is slow
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_prefix fct:monitor:;
    fishchat_redis_timeout 30s;
--- config
    location /m/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 15
--- scenario
redis2 start $TEST_NGINX_FC_PORT4 fresh
wait_json /m/status.json @{$j->{workers}} == 2 && !grep { $_->{redis}{link} ne 'up' } @{$j->{workers}}
http c GET /m/cluster 200
redis2_signal STOP $TEST_NGINX_FC_PORT4
http_send x /m/cluster
http_send y /m/cluster
http_pending x
http_pending y 0.1
http_close x
http_close y
wait_log fishchat monitor: request gone, cluster query cancelled
redis2_signal CONT $TEST_NGINX_FC_PORT4
http d GET /m/cluster 200
expect d $j->{redis} eq 'up'
wait_json /m/status.json !grep { $_->{redis}{link} ne 'up' } @{$j->{workers}}



=== TEST 10: Redis dies while a cluster request waits: 503 JSON
--- main_config
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_prefix fct:monitor:;
    fishchat_redis_timeout 30s;
--- config
    location /m/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 15
--- scenario
redis2 start $TEST_NGINX_FC_PORT4 fresh
wait_json /m/status.json @{$j->{workers}} == 2 && !grep { $_->{redis}{link} ne 'up' } @{$j->{workers}}
redis2_signal STOP $TEST_NGINX_FC_PORT4
http_send x /m/cluster
http_pending x
redis2 kill $TEST_NGINX_FC_PORT4
http_recv x 503
expect x $j->{redis} eq 'down' && $j->{error} eq 'Redis did not answer' && !@{$j->{nodes}}
http y GET /m/cluster 503
expect y $j->{redis} eq 'down'
http z GET /m/status.json 200
--- error_log
is unavailable (command link)
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 11: /metrics: strict Prometheus text, the same figures as the JSON
--- main_config
    fishchat_node n1;
--- config
    location = /metrics {
        fishchat_monitor metrics;
    }

    location /m/ {
        fishchat_monitor;
    }
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_servers 127.0.0.1:$TEST_NGINX_STREAM_PORT;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
wait_json /m/status.json @{$j->{workers}} == 2 && $j->{totals}{sessions} == 0 && !grep { !$_->{redis}{rtt_us} } @{$j->{workers}}
connect a
send a SEND_CLIENT_ID alice
connect b
send b SEND_CLIENT_ID bob
send a SEND_MESSAGE_P2P bob m1 alice
recv b RESP_MESSAGE_P2P m1 alice *
send b SEND_MESSAGE_P2P alice m2 bob
recv a RESP_MESSAGE_P2P m2 bob *
connect c
send c HELLO 1
recv c HELLO 1 * *
send c hex: 00 00 00 05 7b 7b 7b 7b 7b
recv c ERROR BAD_FRAME *
closed c
close c
wait_json /m/status.json $j->{totals}{sessions} == 2 && $j->{totals}{active} == 2 && $j->{totals}{error}{bad_frame} >= 1
http s GET /m/status.json 200
http p GET /metrics 200
metrics_check p
expect p $r->{headers}{'content-type'} eq 'text/plain; version=0.0.4; charset=utf-8' && $r->{headers}{'content-length'} == length $r->{body}
expect p my @i = samples($m, 'fishchat_info'); @i == 1 && $i[0]{labels}{node} eq 'n1' && $i[0]{labels}{version} eq $R{s}{json}{version} && $i[0]{labels}{nginx_version} eq $R{s}{json}{nginx} && $i[0]{value} == 1
expect p sum_metric($m, 'fishchat_start_time_seconds') == $R{s}{json}{started}
expect p my %pids = map { $_->{pid} => 1 } @{$R{s}{json}{workers}}; my @w = samples($m, 'fishchat_worker_start_time_seconds'); @w == 2 && !grep { !$pids{$_->{labels}{pid}} } @w
expect p !grep { my $f = $_; grep { $_->{labels}{node} ne 'n1' || ($f !~ /^fishchat_(?:info|start_time_seconds|media_\w+|files_\w+)$/ && !$_->{labels}{pid}) } @{$m->{$f}{samples}} } keys %$m
expect p $m->{fishchat_sessions}{type} eq 'gauge' && $m->{fishchat_messages_total}{type} eq 'counter' && $m->{fishchat_bytes_received_total}{type} eq 'counter' && $m->{fishchat_bytes_sent_total}{type} eq 'counter' && $m->{fishchat_redis_up}{type} eq 'gauge' && $m->{fishchat_redis_rtt_seconds}{type} eq 'gauge' && $m->{fishchat_errors_total}{type} eq 'counter' && $m->{fishchat_connections}{type} eq 'gauge'
expect p sum_metric($m, 'fishchat_sessions', role => 'msg') == 2 && sum_metric($m, 'fishchat_sessions', role => 'gateway') == 0
expect p my $t = $R{s}{json}{totals}; sum_metric($m, 'fishchat_messages_total') == $t->{messages} && sum_metric($m, 'fishchat_connections_accepted_total') == $t->{accepted} && sum_metric($m, 'fishchat_frames_received_total') == $t->{frames_in} && sum_metric($m, 'fishchat_frames_sent_total') == $t->{frames_out} && sum_metric($m, 'fishchat_bytes_received_total') == $t->{bytes_in} && sum_metric($m, 'fishchat_bytes_sent_total') == $t->{bytes_out} && sum_metric($m, 'fishchat_connections') == $t->{active}
expect p sum_metric($m, 'fishchat_errors_total', code => 'bad_frame', role => 'msg') == $R{s}{json}{totals}{error}{bad_frame} && samples($m, 'fishchat_errors_total') == 2 * 2 * 25
expect p my @s = samples($m, 'fishchat_sessions'); @s == 4 && 2 == grep { $_->{labels}{server} =~ m{^gateway \S+/nginx\.conf:\d+$} } @s
expect p my @up = samples($m, 'fishchat_redis_up'); @up == 4 && !grep { $_->{value} != 1 } @up
expect p my @rtt = samples($m, 'fishchat_redis_rtt_seconds'); @rtt == 2 && !grep { $_->{value} <= 0 || $_->{value} >= 1 } @rtt
expect p sum_metric($m, 'fishchat_worker_connections') >= 4 && samples($m, 'fishchat_redis_channels_subscribed') == 2 && samples($m, 'fishchat_redis_queued_commands') == 2 && samples($m, 'fishchat_output_queue_bytes') == 2 && samples($m, 'fishchat_topic_backlog_messages') == 2 && samples($m, 'fishchat_stalled_sessions') == 2
http h HEAD /metrics 200
expect h $r->{body} eq '' && $r->{headers}{'content-type'} eq 'text/plain; version=0.0.4; charset=utf-8'



=== TEST 12: access control with allow and deny
--- config
    location /m/ {
        allow 192.0.2.1;
        deny all;
        fishchat_monitor;
    }

    location /open/ {
        allow 127.0.0.1;
        deny all;
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
http a GET /m/status.json 403
http b GET /m/ 403
http c GET /open/status.json 200
--- error_log
access forbidden by rule
--- no_error_log
[alert]
[emerg]



=== TEST 13: a node that only monitors, without Redis
--- no_redis
--- config
    location /m/ {
        fishchat_monitor;
    }
--- scenario
wait_json /m/status.json @{$j->{workers}} == 2 && !grep { $_->{redis}{link} ne 'none' || $_->{redis}{subscriber} ne 'none' || @{$_->{servers}} } @{$j->{workers}}
http s GET /m/status.json 200
expect s !defined $j->{redis} && $j->{totals}{workers} == 2 && $j->{totals}{sessions} == 0
http c GET /m/cluster 503
expect c $j->{redis} eq 'none' && $j->{error} =~ /no fishchat_redis/
http p GET /m/metrics 200
metrics_check p
expect p !samples($m, 'fishchat_redis_up') && !samples($m, 'fishchat_sessions') && samples($m, 'fishchat_worker_connections') == 2



=== TEST 14: config: an unknown view
--- config
    location /m/ {
        fishchat_monitor everything;
    }
--- must_die
--- suppress_stderr
--- error_log
[emerg]
invalid view "everything": dashboard, status, cluster or metrics expected
--- no_error_log
[alert]
[error]



=== TEST 15: config: twice in a location
--- config
    location /m/ {
        fishchat_monitor;
        fishchat_monitor status;
    }
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_monitor" directive is duplicate
--- no_error_log
[alert]
[error]



=== TEST 16: the dashboard in a browser while clients chat
--- skip_eval: 4: !Test::FishChat::Browser::available()
--- main_config
    fishchat_node node1;
--- config
    location /monitor/ {
        fishchat_monitor;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 30
--- scenario
beat 192.0.2.20:19000 120000 12 node2
beat 192.0.2.21:19000 120000 5 node2
wait_json /monitor/status.json @{$j->{workers}} == 2 && $j->{totals}{sessions} == 0 && !grep { !$_->{redis}{rtt_us} } @{$j->{workers}}
traffic start 4 25
browser_open /monitor/
browser_wait return +document.body.getAttribute('data-samples') >= 3
browser_wait return document.getElementById('sessions').textContent === '4'
browser_wait return document.getElementById('node').textContent === 'node1'
browser_wait return parseFloat(document.getElementById('msg-rate').textContent) > 0
browser_get m1 return document.getElementById('messages').textContent.replace(/,/g, '')
browser_get s1 return document.body.getAttribute('data-samples')
browser_wait return +document.getElementById('messages').textContent.replace(/,/g, '') > ${m1} && +document.body.getAttribute('data-samples') > ${s1}
browser_wait return document.getElementById('redis-state').textContent === 'up' && /^[0-9.]+ ms$/.test(document.getElementById('rtt').textContent)
browser_wait return document.getElementById('nodes-count').textContent === '2' && document.getElementById('cluster-sessions').textContent === '21'
browser_wait return document.querySelectorAll('#workers tbody tr[data-pid]').length === 2 && document.querySelectorAll('#cluster tbody tr[data-node]').length === 2
browser_wait return document.querySelectorAll('#chart polyline').length === 3
browser_wait return /^[0-9.]+ (B|kB)$/.test(document.getElementById('bytes-in-rate').textContent)
browser_wait return document.getElementById('link').textContent === 'live'
# some history for the chart of the screenshots
browser_wait return +document.body.getAttribute('data-samples') >= 10
browser_shot dashboard.png 1366
browser_shot dashboard-phone.png 390 phone
browser_no_errors
traffic stop
browser_close
