package Test::FishChat::Browser;

# A headless Chromium driven through chromedriver's WebDriver HTTP API, for
# the monitor's dashboard test (t/monitor.t).  Core Perl only (HTTP::Tiny,
# JSON::PP, MIME::Base64); Debian's chromium and chromium-driver packages
# (util/deps.sh installs them).  Every wait is bounded.
#
#   Test::FishChat::Browser::available()   both programs are installed
#   my $b = Test::FishChat::Browser->start(dir => $dir, timeout => $secs);
#   $b->open($url);
#   $b->js('return document.title');     # a script's value
#   $b->wait_js('return ...', $secs);    # until the script returns true
#   $b->viewport($width, $height, $mobile);  # emulated screen (CDP)
#   $b->screenshot($file, $width, $mobile);  # the whole page, as PNG
#   $b->errors;                          # SEVERE console lines, if any
#   $b->quit;
#
# chromedriver runs on a free port with its log in $dir/chromedriver.log;
# Chromium gets a fresh profile in $dir/profile.

use strict;
use warnings;

use Errno ();
use HTTP::Tiny ();
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 ();
use POSIX ();
use Time::HiRes ();

my $JSON = JSON::PP->new->utf8->canonical;

sub _which {
    my $name = shift;
    for my $dir (split /:/, $ENV{PATH} // '') {
        return "$dir/$name" if -x "$dir/$name";
    }
    return undef;
}

# the browser itself, not Debian's wrapper script
sub chromium_binary {
    return $ENV{TEST_NGINX_FC_CHROMIUM} if $ENV{TEST_NGINX_FC_CHROMIUM};
    for my $p ('/usr/lib/chromium/chromium', _which('chromium'),
               _which('chromium-browser'), _which('google-chrome'))
    {
        return $p if defined $p && -x $p;
    }
    return undef;
}

sub chromedriver_binary {
    return $ENV{TEST_NGINX_FC_CHROMEDRIVER}
           // _which('chromedriver')
           // (-x '/usr/lib/chromium/chromedriver'
               ? '/usr/lib/chromium/chromedriver' : undef);
}

sub available {
    return defined chromium_binary() && defined chromedriver_binary();
}

sub _free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "browser: no free port: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub start {
    my ($class, %o) = @_;
    my $dir = $o{dir} or die "browser: dir needed\n";
    my $timeout = $o{timeout} || 20;

    my $driver = chromedriver_binary() or die "browser: no chromedriver\n";
    my $chromium = chromium_binary() or die "browser: no chromium\n";

    mkdir $dir if !-d $dir;
    my $port = _free_port();

    my $pid = fork;
    die "browser: fork: $!\n" if !defined $pid;

    if ($pid == 0) {
        CORE::open STDIN, '<', '/dev/null';
        CORE::open STDOUT, '>', "$dir/chromedriver.out";
        CORE::open STDERR, '>&', \*STDOUT;
        { exec $driver, "--port=$port", "--log-path=$dir/chromedriver.log" };
        POSIX::_exit(127);
    }

    my $self = bless {
        pid     => $pid,
        port    => $port,
        dir     => $dir,
        timeout => $timeout,
        http    => HTTP::Tiny->new(timeout => $timeout),
        base    => "http://127.0.0.1:$port",
    }, $class;

    # chromedriver answers /status with ready: true once it listens

    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $r = eval { $self->_call('GET', '/status') };
        last if $r && $r->{ready};
        if (Time::HiRes::time() > $deadline) {
            $self->_stop_driver;
            die "browser: chromedriver did not start within $timeout s, "
                . "see $dir/chromedriver.out\n";
        }
        Time::HiRes::sleep(0.05);   # polling for the driver to listen
    }

    my $caps = {
        capabilities => {
            alwaysMatch => {
                browserName => 'chrome',
                'goog:chromeOptions' => {
                    binary => $chromium,
                    args   => [
                        '--headless', '--no-sandbox', '--disable-gpu',
                        '--disable-background-networking',
                        '--disable-dev-shm-usage',
                        '--no-first-run', '--no-default-browser-check',
                        '--hide-scrollbars', '--force-color-profile=srgb',
                        '--window-size=1366,900',
                        "--user-data-dir=$dir/profile",
                    ],
                },
                'goog:loggingPrefs' => { browser => 'ALL' },
                timeouts => { pageLoad => $timeout * 1000,
                              script => $timeout * 1000 },
            },
        },
    };

    my $r = eval { $self->_call('POST', '/session', $caps) };
    if (!$r || !$r->{sessionId}) {
        my $err = $@ || "no session id\n";
        $self->_stop_driver;
        die "browser: new session failed: $err";
    }

    $self->{session} = $r->{sessionId};

    return $self;
}

# one WebDriver call; the "value" of the answer, or die with its error
sub _call {
    my ($self, $method, $path, $body) = @_;
    my %opt = (headers => { 'Content-Type' => 'application/json' });
    $opt{content} = $JSON->encode($body) if defined $body;

    my $res = $self->{http}->request($method, $self->{base} . $path, \%opt);
    my $j = eval { $JSON->decode($res->{content}) };

    if (!$res->{success}) {
        my $v = $j && ref $j->{value} eq 'HASH' ? $j->{value} : {};
        die "browser: $method $path: $res->{status} "
            . ($v->{error} // '') . ': '
            . substr($v->{message} // $res->{content} // '', 0, 300)
            . "\n";
    }

    die "browser: $method $path: not JSON\n" if !$j;
    return $j->{value} // ($path eq '/session' ? $j : undef);
}

sub _s {
    my ($self, $path) = @_;
    return "/session/$self->{session}$path";
}

sub open {
    my ($self, $url) = @_;
    $self->_call('POST', $self->_s('/url'), { url => $url });
}

sub js {
    my ($self, $script, @args) = @_;
    return $self->_call('POST', $self->_s('/execute/sync'),
                        { script => $script, args => \@args });
}

# the script's value once it is true; dies after $secs
sub wait_js {
    my ($self, $script, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs || $self->{timeout});
    my $v;
    while (1) {
        $v = $self->js($script);
        return $v if $v;
        die "browser: not true within " . ($secs || $self->{timeout})
            . " s: $script\n" if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.1);    # polling the page, bounded
    }
}

sub cdp {
    my ($self, $cmd, $params) = @_;
    return $self->_call('POST', $self->_s('/goog/cdp/execute'),
                        { cmd => $cmd, params => $params || {} });
}

# an emulated screen of $width x $height CSS pixels
sub viewport {
    my ($self, $width, $height, $mobile) = @_;
    $self->cdp('Emulation.setDeviceMetricsOverride', {
        width => $width + 0, height => $height + 0,
        deviceScaleFactor => $mobile ? 2 : 1,
        mobile => $mobile ? JSON::PP::true : JSON::PP::false,
    });
}

# the whole page at $width CSS pixels (a phone when $mobile), as PNG
sub screenshot {
    my ($self, $file, $width, $mobile) = @_;

    $self->viewport($width, $mobile ? 844 : 900, $mobile);

    # the layout settles on the next frames; then the page's full height
    $self->wait_js('return new Promise(function (ok) { '
                   . 'requestAnimationFrame(function () { '
                   . 'requestAnimationFrame(function () { ok(true); }); '
                   . '}); })', 5);

    my $height = $self->js('return Math.ceil(Math.max('
                           . 'document.documentElement.scrollHeight, '
                           . 'document.body.scrollHeight))');

    $self->viewport($width, $height, $mobile);
    $self->wait_js('return new Promise(function (ok) { '
                   . 'requestAnimationFrame(function () { '
                   . 'requestAnimationFrame(function () { ok(true); }); '
                   . '}); })', 5);

    my $png = $self->_call('GET', $self->_s('/screenshot'));
    die "browser: no screenshot\n" if !$png;

    CORE::open(my $out, '>:raw', $file)
        or die "browser: cannot write $file: $!\n";
    print $out MIME::Base64::decode_base64($png);
    close $out;

    return $height;
}

# the browser's console messages of level SEVERE (script errors, CSP
# violations, failed loads)
sub errors {
    my $self = shift;
    my $log = eval { $self->_call('POST', $self->_s('/se/log'),
                                  { type => 'browser' }) } || [];
    return map { $_->{message} } grep { ($_->{level} // '') eq 'SEVERE' }
           @$log;
}

sub quit {
    my $self = shift;
    if ($self->{session}) {
        eval { $self->_call('DELETE', $self->_s('')) };
        delete $self->{session};
    }
    $self->_stop_driver;
}

sub _stop_driver {
    my $self = shift;
    my $pid = delete $self->{pid} or return;

    kill 'TERM', $pid;
    my $deadline = Time::HiRes::time() + 5;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            last;
        }
        Time::HiRes::sleep(0.05);   # waiting for chromedriver to exit
    }
}

sub DESTROY {
    my $self = shift;
    local ($@, $!, $?);
    $self->quit if $self->{pid};
}

1;
