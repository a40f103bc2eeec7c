package Test::FishChat;

# Test::Nginx::Socket plus the FishChat seed wire protocol: frame builders and
# renderers, stream server blocks, a private Redis per test file, and
# multi-client scenarios.  See t/README.md.

use Test::Nginx::Socket -base;

use strict;
use warnings;

use Digest::MD5 ();
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use File::Basename ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use Socket qw(IPPROTO_TCP TCP_NODELAY SHUT_WR);
use Time::HiRes ();

our @EXPORT = qw(
    frame frames frame_raw render_frames ngx_quote
    redis redis_key fc_prefix
    default_no_error_log
);

our $VERSION = '0.1';

# step timeout for scenarios, seconds (--- scenario_timeout overrides)
our $StepTimeout = $ENV{TEST_NGINX_FC_STEP_TIMEOUT} || 3;

# blocking waits get longer under valgrind; no_frame windows do not
our $TimeoutScale = $ENV{TEST_NGINX_USE_VALGRIND} ? 5 : 1;

# the most a scenario client reads at once (the harness's self-test makes
# it small to read TLS records piecemeal)
our $ReadSize = 65536;

# frames announcing more than this are reported instead of waited for
our $MaxFrameLen = 64 * 1024 * 1024;

our %Steps;
our @DefaultNoErrorLog;

my $JSON = JSON::PP->new->utf8->allow_nonref;

# --------------------------------------------------------------------------
# per-file set-up: key prefix and four spare ports

our $Prefix;
{
    my $base = File::Basename::basename($0);
    $base =~ s/\.t\z//;
    $base =~ s/[^A-Za-z0-9_.-]/_/g;
    $Prefix = "fct:$base:";
    $ENV{TEST_NGINX_FC_PREFIX} = $Prefix;
}

# $TEST_NGINX_FC_PORT<first> .. <first + n - 1>: free ports, none of the
# ones picked before (Test::FishChat::Media picks 5..8)
sub pick_ports {
    my ($first, $n) = @_;
    my %used = map { ($ENV{"TEST_NGINX_FC_PORT$_"} // 0) => 1 } 1 .. $first - 1;
    my @ports;

    # below the kernel's ephemeral range (32768 and up by default): a port
    # held for the whole file must not be taken meanwhile as the local
    # port of some outgoing connection
    my $base;
    for (1 .. 200) {
        $base = eval { Test::Nginx::Util::gen_rand_port(1000, {}, $n) };
        last if !defined $base
                || ($base + $n - 1 < 32768
                    && !grep { $used{$_} } $base .. $base + $n - 1);
        undef $base;
    }

    if (defined $base) {
        @ports = ($base .. $base + $n - 1);

    } else {
        # fall back on kernel-chosen ports, all held open at the same time
        # so that they differ
        my @socks;
        for (1 .. $n) {
            my $s = IO::Socket::INET->new(Listen => 1,
                                          LocalAddr => '127.0.0.1',
                                          LocalPort => 0, ReuseAddr => 1)
                or die "Test::FishChat: no free port: $!\n";
            push @socks, $s;
            push @ports, $s->sockport;
        }
        close $_ for @socks;
    }

    for my $i (0 .. $n - 1) {
        $ENV{"TEST_NGINX_FC_PORT" . ($first + $i)} //= $ports[$i];
    }
}

pick_ports(1, 4);

# static test key material (t/lib/Test/FishChat/keys): configs and steps
# name it $TEST_NGINX_FC_KEYS
$ENV{TEST_NGINX_FC_KEYS} //= do {
    require File::Spec;
    File::Spec->rel2abs(File::Basename::dirname(__FILE__)) . '/FishChat/keys';
};

# git checks the secrets out readable by all, which nginx warns about
chmod 0600, glob("$ENV{TEST_NGINX_FC_KEYS}/*.secret");

sub fc_prefix { $Prefix }

sub redis_key { $Prefix . shift }

sub default_no_error_log {
    @DefaultNoErrorLog = @_;
}

# --------------------------------------------------------------------------
# text helpers

sub _chars {
    my $s = shift;
    return '' if !defined $s;
    return $s if utf8::is_utf8($s);
    my $c = $s;
    return utf8::decode($c) ? $c : $s;
}

sub _bytes {
    my $s = shift;
    return '' if !defined $s;
    if (utf8::is_utf8($s)) {
        utf8::encode($s);
    }
    return $s;
}

sub _now_ms { int(Time::HiRes::time() * 1000) }

sub _var {
    my ($name, $vars) = @_;

    return $vars->{$name} if $vars && exists $vars->{$name};
    return $Prefix if $name eq 'PREFIX';
    return _now_ms() if $name eq 'NOW_MS';
    return int(Time::HiRes::time()) if $name eq 'NOW';
    return $ENV{$name} if $name =~ /^TEST_NGINX_/ && defined $ENV{$name};
    return undef;
}

my %UNESC = (n => "\n", r => "\r", t => "\t", 0 => "\0");

# after a backslash
sub _unescape {
    my $t = shift;

    if ($$t =~ /\Gx([0-9A-Fa-f]{2})/gc) {
        return chr hex $1;
    }
    if ($$t =~ /\Gu\{([0-9A-Fa-f]{1,6})\}/gc) {
        return chr hex $1;
    }
    if ($$t =~ /\G(.)/gcs) {
        return exists $UNESC{$1} ? $UNESC{$1} : $1;
    }
    die "backslash at the end of the line\n";
}

# after a dollar sign
sub _expand {
    my ($t, $vars) = @_;
    my ($name, $src);

    if ($$t =~ /\G\{(\w+)\}/gc) {
        ($name, $src) = ($1, "\${$1}");

    } elsif ($$t =~ /\G(\w+)/gc) {
        ($name, $src) = ($1, "\$$1");

    } else {
        return '$';
    }

    my $val = _var($name, $vars);
    return $src if !defined $val;

    if ($val =~ /\A-?\d+\z/ && $$t =~ /\G((?:[+-]\d+)+)/gc) {
        my $expr = $1;
        while ($expr =~ /([+-])(\d+)/g) {
            $val = $1 eq '+' ? $val + $2 : $val - $2;
        }
    }

    return $val;
}

# Shell-like words: "double quotes" with \ escapes and $VAR expansion,
# 'single quotes' verbatim, \ escapes and $VAR outside quotes too; an
# unquoted # word starts a comment.  Each word is {v => text, plain => 1 if
# written without quotes, escapes or variables}.
sub _words {
    my ($text, $vars) = @_;
    my @words;

    $text = _chars($text);
    pos($text) = 0;

    while (1) {
        $text =~ /\G\s+/gc;
        last if pos($text) >= length $text;
        last if $text =~ /\G#(?=\s|\z)/gc;

        my ($v, $plain) = ('', 1);

        while (pos($text) < length $text) {
            last if substr($text, pos($text), 1) =~ /\s/;

            if ($text =~ /\G"/gc) {
                $plain = 0;
                while (1) {
                    if ($text =~ /\G"/gc) {
                        last;
                    } elsif ($text =~ /\G\\/gc) {
                        $v .= _unescape(\$text);
                    } elsif ($text =~ /\G\$/gc) {
                        $v .= _expand(\$text, $vars);
                    } elsif ($text =~ /\G([^"\\\$]+)/gc) {
                        $v .= $1;
                    } else {
                        die "unterminated double quote\n";
                    }
                }

            } elsif ($text =~ /\G'([^']*)'/gc) {
                $plain = 0;
                $v .= $1;

            } elsif ($text =~ /\G'/gc) {
                die "unterminated single quote\n";

            } elsif ($text =~ /\G\\/gc) {
                $plain = 0;
                $v .= _unescape(\$text);

            } elsif ($text =~ /\G\$/gc) {
                $plain = 0;
                $v .= _expand(\$text, $vars);

            } elsif ($text =~ /\G([^\s"'\\\$]+)/gc) {
                $v .= $1;
            }
        }

        push @words, { v => $v, plain => $plain };
    }

    return @words;
}

sub _tokens {
    return map { $_->{v} } _words($_[0], $_[1]);
}

# --------------------------------------------------------------------------
# frames

my %JESC = ("\n" => '\n', "\r" => '\r', "\t" => '\t', "\b" => '\b',
            "\f" => '\f');

sub _json_str {
    my $s = _chars(shift);
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/([\x00-\x1f])/$JESC{$1} \/\/ sprintf('\u%04x', ord $1)/ge;
    $s = qq{"$s"};
    utf8::encode($s);       # characters (Latin-1 if not valid UTF-8) to UTF-8
    return $s;
}

sub _frame_body {
    my ($cmd, @args) = @_;
    return '{"CmdName":' . _json_str($cmd) . ',"Args":['
           . join(',', map { _json_str($_) } @args) . ']}';
}

sub frame_raw {
    my $body = _bytes(shift);
    return pack('N', length $body) . $body;
}

sub frame {
    return frame_raw(_frame_body(shift, @_) . "\n");
}

# one line of the request_frames syntax; returns bytes, undef for a blank
# or comment line, or the string "split" for the packet separator
sub _line_bytes {
    my ($line, $vars) = @_;

    $line = _chars($line);
    $line =~ s/\A\s+//;
    $line =~ s/[\r\n]+\z//;

    return undef if $line eq '' || $line =~ /\A#/;

    if ($line =~ /\Ajson:[ \t]?(.*)\z/s) {
        return frame_raw($1 . "\n");
    }

    if ($line =~ /\Araw:[ \t]?(.*)\z/s) {
        return _bytes($1);
    }

    if ($line =~ /\Ahex:(.*)\z/s) {
        my $hex = $1;
        $hex =~ s/(?:\A|\s)#.*//s;
        $hex =~ s/\s+//g;
        die "bad hex: $1\n" if $hex =~ /[^0-9A-Fa-f]/ || length($hex) % 2;
        return pack('H*', $hex);
    }

    if ($line =~ /\Asplit:\s*\z/) {
        return 'split';
    }

    my $nonl = $line =~ s/\Anonl:\s*//;
    my @t = _tokens($line, $vars);
    die "no command name in \"$line\"\n" if !@t;

    return $nonl ? frame_raw(_frame_body(@t)) : frame(@t);
}

# list of packets, each the bytes of some frames
sub _packets {
    my ($vars, @lines) = @_;
    my @packets = ('');

    for my $line (map { split /\n/ } @lines) {
        my $b = _line_bytes($line, $vars);
        next if !defined $b;
        if ($b eq 'split') {
            push @packets, '' if length $packets[-1];
            next;
        }
        $packets[-1] .= $b;
    }

    pop @packets if @packets > 1 && !length $packets[-1];
    return @packets;
}

sub frames {
    return join '', _packets(undef, @_);
}

# nginx config string for arbitrary bytes (for stream "return")
sub ngx_quote {
    my $s = _bytes(shift);
    die "ngx_quote: nginx strings cannot hold \"\$\" literally\n"
        if $s =~ /\$/;
    $s =~ s/(["\\])/\\$1/g;
    return qq{"$s"};
}

# --------------------------------------------------------------------------
# rendering

my $JSTR = qr/"(?:[^"\\\x00-\x1f]++|\\["\\\/bfnrt]|\\u[0-9A-Fa-f]{4})*+"/;

# ($cmd, [args]) for a canonical body, () otherwise
sub _parse_body {
    my $body = shift;

    return () if $body !~ /\A\{"CmdName":($JSTR),"Args":\[(.*)\]\}\n\z/s;

    my ($cmd, $list) = ($1, $2);
    my @args;

    if (length $list) {
        pos($list) = 0;
        while (1) {
            return () if $list !~ /\G($JSTR)/gc;
            push @args, $1;
            last if pos($list) == length $list;
            return () if $list !~ /\G,/gc;
        }
    }

    my @v = eval { map { $JSON->decode($_) } $cmd, @args };
    return () if $@;

    return (shift @v, \@v);
}

my %QESC = ("\n" => '\n', "\r" => '\r', "\t" => '\t', '"' => '\"',
            '\\' => '\\\\', '$' => '\$');

# an argument as the input syntax would write it
sub _q {
    my ($s, $is_cmd) = @_;

    if (length $s
        && $s !~ /[\s"'\\\$\x00-\x1f\x7f]/
        && $s ne '*' && $s ne '#'
        && !($is_cmd && $s =~ /\A(?:!|(?:json|nonl|hex|raw|split):)/))
    {
        return $s;
    }

    (my $q = $s) =~ s{([\x00-\x1f\x7f"\\\$])}
                     {$QESC{$1} // sprintf('\x%02x', ord $1)}ge;
    return qq{"$q"};
}

sub _render_ok {
    my ($cmd, $args) = @_;
    return join ' ', _q($cmd, 1), map { _q($_) } @$args;
}

sub _render_bad {
    my $body = shift;
    my $c = $body;

    if (!utf8::decode($c)) {
        $c = $body;
        $c =~ s/([\x80-\xff])/sprintf('\x%02x', ord $1)/ge;
    }

    $c =~ s{([\x00-\x1f\x7f])}
           {$1 eq "\n" ? '\n' : $1 eq "\r" ? '\r' : $1 eq "\t" ? '\t'
            : sprintf('\x%02x', ord $1)}ge;

    return length $c ? "!BADFRAME $c" : '!BADFRAME';
}

# one frame body, rendered (characters)
sub _render_body {
    my $body = shift;
    my ($cmd, $args) = _parse_body($body);
    return defined $cmd ? _render_ok($cmd, $args) : _render_bad($body);
}

sub render_frames {
    my $bytes = shift // '';
    my ($out, $off, $len) = ('', 0, length $bytes);

    while ($len - $off >= 4) {
        my $n = unpack 'N', substr($bytes, $off, 4);
        last if $len - $off - 4 < $n;
        $out .= _render_body(substr($bytes, $off + 4, $n)) . "\n";
        $off += 4 + $n;
    }

    if ($off < $len) {
        $out .= '!PARTIAL ' . ($len - $off) . " bytes\n";
    }

    return _bytes($out);
}

# a received frame as a hash: raw, body, text (rendered, characters), cmd
# and args (undef unless canonical)
sub _mk_frame {
    my $raw = shift;
    my $body = substr($raw, 4);
    my ($cmd, $args) = _parse_body($body);

    return {
        raw  => $raw,
        body => $body,
        cmd  => $cmd,
        args => $args,
        text => defined $cmd ? _render_ok($cmd, $args) : _render_bad($body),
    };
}

# Compare one expected line (recv syntax) with a frame; returns '' when it
# matches, otherwise why not.
sub frame_line_mismatch {
    my ($expected, $f, $vars) = @_;

    if (!ref $f) {
        my $raw = $f;
        return "not one whole frame: " . render_frames($raw)
            if length($raw) < 4 || length($raw) != 4 + unpack('N', $raw);
        $f = _mk_frame($raw);
    }

    $expected = _chars($expected);
    $expected =~ s/\A\s+|\s+\z//g;

    if ($expected =~ /\A!/) {
        return $expected eq $f->{text} ? '' : "got: $f->{text}";
    }

    my @w = _words($expected, $vars);
    return "empty expectation" if !@w;

    return "got: $f->{text}" if !defined $f->{cmd};

    my @got = ($f->{cmd}, @{ $f->{args} });

    if (@got != @w) {
        return "got: $f->{text} (" . scalar(@got) . " words, expected "
               . scalar(@w) . ")";
    }

    for my $i (0 .. $#w) {
        next if $w[$i]{plain} && $w[$i]{v} eq '*';
        if ($got[$i] ne $w[$i]{v}) {
            my $what = $i ? "argument " . ($i - 1) : "command";
            return "got: $f->{text} ($what differs)";
        }
    }

    return '';
}

# --------------------------------------------------------------------------
# Redis, RESP over a plain socket

{
    package Test::FishChat::RedisError;
    use overload '""' => sub { ${ $_[0] } }, fallback => 1;
    sub new { my ($c, $m) = @_; bless \$m, $c }
}

my ($RedisSock, $RedisPid, $RedisBuf);

sub _redis_port {
    my $port = $ENV{TEST_NGINX_REDIS_PORT};
    die "TEST_NGINX_REDIS_PORT is not set (run the suite with make test)\n"
        if !$port;
    return $port;
}

sub _redis_conn {
    if ($RedisSock && $RedisPid == $$) {
        return $RedisSock;
    }

    my $port = _redis_port();
    $RedisSock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                       PeerPort => $port, Proto => 'tcp',
                                       Timeout => 3)
        or die "cannot connect to redis at 127.0.0.1:$port: $!\n";
    $RedisSock->blocking(0);
    $RedisPid = $$;
    $RedisBuf = '';
    return $RedisSock;
}

sub _redis_drop {
    close $RedisSock if $RedisSock;
    undef $RedisSock;
}

sub _redis_fill {
    my $deadline = shift;
    my $sel = IO::Select->new($RedisSock);

    while (1) {
        my $left = $deadline - Time::HiRes::time();
        die "redis: reply timed out\n" if $left <= 0;
        next if !$sel->can_read($left);
        my $n = sysread($RedisSock, $RedisBuf, 65536, length $RedisBuf);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            die "redis: read failed: $!\n";
        }
        die "redis: connection closed\n" if $n == 0;
        return;
    }
}

sub _redis_line {
    my $deadline = shift;
    while (1) {
        my $i = index($RedisBuf, "\r\n");
        return substr($RedisBuf, 0, $i + 2, '') =~ s/\r\n\z//r if $i >= 0;
        _redis_fill($deadline);
    }
}

sub _redis_reply {
    my $deadline = shift;
    my $line = _redis_line($deadline);
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $t eq '+';
    return Test::FishChat::RedisError->new($rest) if $t eq '-';
    return 0 + $rest if $t eq ':';

    if ($t eq '$') {
        return undef if $rest < 0;
        _redis_fill($deadline) while length($RedisBuf) < $rest + 2;
        my $v = substr($RedisBuf, 0, $rest + 2, '');
        return substr($v, 0, $rest);
    }

    if ($t eq '*') {
        return undef if $rest < 0;
        return [map { _redis_reply($deadline) } 1 .. $rest];
    }

    die "redis: unexpected reply line \"$line\"\n";
}

# the reply, or a Test::FishChat::RedisError object for an error reply
sub redis_try {
    my @cmd = map { _bytes($_) } @_;
    die "redis: empty command\n" if !@cmd;

    my $req = '*' . @cmd . "\r\n"
              . join('', map { '$' . length($_) . "\r\n$_\r\n" } @cmd);

    my $reply = eval {
        my $sock = _redis_conn();
        my $deadline = Time::HiRes::time() + 5;
        my $sel = IO::Select->new($sock);
        my $off = 0;
        local $SIG{PIPE} = 'IGNORE';

        while ($off < length $req) {
            my $left = $deadline - Time::HiRes::time();
            die "redis: write timed out\n" if $left <= 0;
            next if !$sel->can_write($left);
            my $n = syswrite($sock, $req, length($req) - $off, $off);
            if (!defined $n) {
                next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                die "redis: write failed: $!\n";
            }
            $off += $n;
        }

        [_redis_reply($deadline)];
    };

    if (!$reply) {
        my $err = $@;
        _redis_drop();
        die $err;
    }

    return $reply->[0];
}

# the reply; an error reply dies with "redis: <message>"
sub redis {
    my $r = redis_try(@_);
    die "redis: $r\n" if ref $r eq 'Test::FishChat::RedisError';
    return $r;
}

# a reply as one line of text: scalars verbatim, (nil), (error) msg,
# arrays as space-separated words quoted like frame arguments, [nested]
sub render_redis {
    my ($r, $nested) = @_;

    return '(nil)' if !defined $r;
    return "(error) $r" if ref $r eq 'Test::FishChat::RedisError';

    if (ref $r eq 'ARRAY') {
        return '(empty)' if !@$r;
        return join ' ', map {
            ref $_ eq 'ARRAY' ? '[' . render_redis($_, 1) . ']'
                : !defined $_ ? '(nil)'
                : _q(_chars($_))
        } @$r;
    }

    return $nested ? _q(_chars($r)) : _chars($r);
}

sub _glob_escape {
    (my $s = shift) =~ s/([*?\[\]\\^])/\\$1/g;
    return $s;
}

sub redis_clean_prefix {
    my $prefix = shift // $Prefix;
    my $pat = _glob_escape($prefix) . '*';
    my ($cursor, $deleted, $rounds) = ('0', 0, 0);

    do {
        my $r = redis('SCAN', $cursor, 'MATCH', $pat, 'COUNT', 1000);
        ($cursor, my $keys) = @$r;
        if (@$keys) {
            $deleted += redis('DEL', @$keys);
        }
    } while ($cursor ne '0' && ++$rounds < 100000);

    return $deleted;
}

sub _run_redis_lines {
    my ($block, $text) = @_;
    my $n = 0;

    for my $line (split /\n/, $text) {
        $n++;
        my @cmd = eval { _tokens($line) };
        bail_out($block->name . " - redis_setup line $n: $@") if $@;
        next if !@cmd;
        eval { redis(@cmd); 1 }
            or bail_out($block->name . " - redis_setup line $n ($line): $@");
    }
}

# --------------------------------------------------------------------------
# block preprocessing

my $OrigClientPort;

sub _stream_port {
    return $ENV{TEST_NGINX_STREAM_PORT} // (server_port() + 1);
}

sub _expand_env {
    my $s = shift;
    $s =~ s/\$(TEST_NGINX_[A-Z0-9_]+)/$ENV{$1} \/\/ "\$$1"/ge;
    return $s;
}

sub _preprocess {
    my $block = shift;
    my $name = $block->name;

    $OrigClientPort //= server_port_for_client();

    my $has_stream = defined $block->stream_server_config
                     || defined $block->stream_config;
    my $scenario = defined $block->scenario;

    if ($scenario
        && (defined $block->request_frames || defined $block->raw_request
            || defined $block->request))
    {
        bail_out("$name - --- scenario cannot be combined with requests");
    }

    if (defined $block->response_frames
        && defined $block->response_frames_like)
    {
        bail_out("$name - use either --- response_frames or "
                 . "--- response_frames_like");
    }

    my $main = $block->main_config // '';
    my $port = _stream_port();

    if ($has_stream) {
        my $s = "stream {\n";
        $s .= $block->stream_config . "\n" if defined $block->stream_config;
        if (defined $block->stream_server_config) {
            $s .= "    server {\n"
                  . "        listen 127.0.0.1:$port;\n"
                  . $block->stream_server_config
                  . "\n    }\n";
        }
        $s .= "}\n";
        $main .= "\n" . $s;
    }

    if (!defined $block->no_redis && $main !~ /\bfishchat_redis\s/) {
        my $rport = eval { _redis_port() };
        bail_out("$name - $@") if !$rport;
        $main = "fishchat_redis 127.0.0.1:$rport;\n"
                . "fishchat_redis_prefix $Prefix;\n" . $main;
    }

    $block->set_value('main_config', $main);

    # requests go to the stream port unless the block speaks HTTP
    my $http_req = defined $block->request
                   || defined $block->pipelined_requests;
    my $to_stream = $has_stream && !$http_req;
    $block->{__fc_client_port} = $to_stream ? $port : $OrigClientPort;

    if (($has_stream || $scenario) && !defined $block->config) {
        $block->set_value('config', '');
    }

    # Test::Nginx decides whether to restart nginx (when
    # TEST_NGINX_FORCE_RESTART_ON_TEST=0) by comparing --- config only:
    # make main_config part of it
    if (defined $block->config) {
        $block->set_value('config', $block->config
                          . "\n        # main_config "
                          . Digest::MD5::md5_hex(_bytes($main)) . "\n");
    }

    if ($to_stream && !defined $block->http09) {
        $block->set_value('http09', 1);
    }

    if (defined $block->request_frames) {
        bail_out("$name - both --- request_frames and --- raw_request")
            if defined $block->raw_request;
        my $src = $block->request_frames;
        my @lines = ref $src eq 'ARRAY' ? @$src : ($src);
        my @p = eval { _packets(undef, @lines) };
        bail_out("$name - --- request_frames: $@") if $@;
        $block->set_value('raw_request', @p > 1 ? \@p : $p[0]);
    }

    if (defined $block->response_frames
        || defined $block->response_frames_like)
    {
        bail_out("$name - --- response_frames with --- response_body*")
            if defined $block->response_body
               || defined $block->response_body_like;

        my @filters = (\&render_frames);
        if (defined(my $f = $block->response_body_filters)) {
            push @filters, ref $f eq 'ARRAY' ? @$f
                           : ref $f ? $f : split ' ', $f;
        }
        $block->set_value('response_body_filters', \@filters);

        if (defined $block->response_frames) {
            $block->set_value('response_body', $block->response_frames);
        } else {
            $block->set_value('response_body_like',
                              _expand_env($block->response_frames_like));
        }
    }

    if (@DefaultNoErrorLog && !defined $block->no_error_log
        && !defined $block->error_log)
    {
        $block->set_value('no_error_log', [@DefaultNoErrorLog]);
    }

    my $init = $block->init;
    $block->set_value('init', "Test::FishChat::_block_init(\$block);\n"
                              . (defined $init ? $init : ''));

    my $pss = $block->post_setup_server_root;
    $block->set_value('post_setup_server_root',
                      "Test::FishChat::_before_start(\$block);\n"
                      . (defined $pss ? $pss : ''));
}

add_block_preprocessor(\&_preprocess);

# "--- xxx eval" sections are evaluated in Test::Base::Filter: make the
# helpers callable there too
{
    require Test::Base::Filter;
    no strict 'refs';
    for my $f (@EXPORT) {
        *{"Test::Base::Filter::$f"} = \&{"Test::FishChat::$f"}
            if !defined &{"Test::Base::Filter::$f"};
    }
}

# called by Test::Nginx after the old nginx is gone, before the new one starts
sub _before_start {
    my $block = shift;
    _clean_for($block);
}

sub _clean_for {
    my $block = shift;
    return if $block->{__fc_cleaned}++;
    return if !$ENV{TEST_NGINX_REDIS_PORT};
    eval { redis_clean_prefix(); 1 }
        or bail_out($block->name . " - cleaning redis keys $Prefix*: $@");
}

# called by Test::Nginx (--- init) once nginx runs, before the requests
sub _block_init {
    my $block = shift;
    server_port_for_client($block->{__fc_client_port} // $OrigClientPort);
    _clean_for($block);     # nginx was not restarted for this block
}

# --------------------------------------------------------------------------
# run helper: redis_setup, scenarios, leak mode for stream blocks

my $OrigRunTestHelper = $Test::Nginx::Util::RunTestHelper;
$Test::Nginx::Util::RunTestHelper = \&_run_test_helper;

sub _run_test_helper {
    my ($block, $dry_run, $rep) = @_;
    my $name = $block->name;
    my $leak = $Test::Nginx::Util::CheckLeak
               && !defined $block->no_check_leak;

    if (!$dry_run && defined $block->redis_setup) {
        _run_redis_lines($block, $block->redis_setup);
    }

    if (!defined $block->scenario) {
        if (!($leak && $block->{__fc_client_port} != $OrigClientPort)) {
            return $OrigRunTestHelper->(@_);
        }

        # raw frames can't go through ab: loop them ourselves
        _leak_test($block, sub { _raw_once($block) });
        my $save = $Test::Nginx::Util::CheckLeak;
        $Test::Nginx::Util::CheckLeak = 0;
        my $ok = eval {
            $OrigRunTestHelper->($block,
                                 'the "check leak" testing mode', $rep);
            1;
        };
        my $err = $@;
        $Test::Nginx::Util::CheckLeak = $save;
        die $err if !$ok;
        return;
    }

    if ($leak) {
        $dry_run = 'the "check leak" testing mode';
        _leak_test($block, sub { run_scenario($block) });
    }

    SKIP: {
        Test::More::skip("$name - scenario - tests skipped due to $dry_run", 1)
            if $dry_run;

        my ($ok, $msg) = run_scenario($block);
        local $Test::Builder::Level = $Test::Builder::Level + 1;
        Test::More::ok($ok, "$name - scenario (repeated req $rep)")
            or Test::More::diag($msg);
    }

    if ($block->wait) {
        Time::HiRes::sleep($block->wait);
    }

    $Test::Nginx::Util::CheckErrorLog->($block, undef, $dry_run, $rep, 0);
    Test::Nginx::Socket::check_access_log($block, $dry_run, $rep);
}

sub _raw_once {
    my $block = shift;
    my $req = $block->raw_request;
    my @p = ref $req eq 'ARRAY' ? @$req : ($req);
    my $sc = Test::FishChat::Scenario->new(block => $block, timeout => 1);
    local $SIG{PIPE} = 'IGNORE';
    eval {
        $sc->connect('leak');
        $sc->send('leak', $_) for @p;
        my $c = $sc->client('leak');
        my $deadline = Time::HiRes::time() + 0.3;
        1 while !$c->{eof} && defined $sc->_fill($c, $deadline);
    };
    $sc->finish;
}

sub _leak_test {
    my ($block, $once) = @_;
    my $name = $block->name;
    my $count = $Test::Nginx::Socket::CheckLeakCount || 100;
    my $pid = Test::Nginx::Util::get_pid_from_pidfile($name);
    my @rss;
    my $until = Time::HiRes::time() + 120;

    warn "$name\n";

    for (1 .. $count) {
        $once->();
        last if !$pid || Time::HiRes::time() > $until;
        my $rss = `ps -o rss= -p $pid`;
        last if $? != 0;
        $rss =~ s/\s+//g;
        push @rss, $rss;
    }

    warn "LeakTest: [@rss]\n";

    if (@rss < 2) {
        warn "LeakTest: k=N/A\n";
        return;
    }

    my $skip = int(@rss * 0.1);
    my @stable = @rss[$skip .. $#rss];
    warn "LeakTest: k=",
         Test::Nginx::Socket::get_linear_regression_slope(\@stable), "\n";
}

# --------------------------------------------------------------------------
# scenarios

sub add_step {
    my %h = @_;
    while (my ($k, $v) = each %h) {
        die "add_step: $k needs a code reference\n" if ref $v ne 'CODE';
        $Steps{$k} = $v;
    }
}

# run the block's --- scenario; returns (1) or (0, message)
sub run_scenario {
    my ($block, %opts) = @_;
    my $text = $opts{text} // $block->scenario;

    my $timeout = $opts{timeout} // ($block ? $block->scenario_timeout : undef);
    $timeout = $StepTimeout if !defined $timeout || $timeout !~ /\S/;
    $timeout =~ s/^\s+|\s+$//g;

    my $sc = Test::FishChat::Scenario->new(
        block   => $block,
        timeout => $timeout * $TimeoutScale,
        port    => $opts{port},
    );

    my ($ok, $msg) = (1, '');
    my $n = 0;

    local $SIG{PIPE} = 'IGNORE';

    for my $line (split /\n/, $text) {
        $n++;
        (my $l = $line) =~ s/^\s+|\s+$//g;
        next if $l eq '' || $l =~ /^#/;

        my ($kw, $rest) = $l =~ /^(\S+)\s*(.*)$/s;
        my $step = $Steps{$kw};

        $sc->{line_no} = $n;
        $sc->{line} = $l;

        my $done = $step && eval { $step->($sc, $rest); 1 };
        if (!$done) {
            my $err = $step ? $@ : "unknown step \"$kw\"\n";
            chomp $err;
            ($ok, $msg) = (0, "scenario line $n: $l\n    $err\n"
                              . $sc->report);
            last;
        }
    }

    $sc->finish;
    return ($ok, $msg);
}

package Test::FishChat::Scenario;

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINTR ECONNREFUSED);
use IO::Select ();
use IO::Socket::INET ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes ();

sub new {
    my ($class, %o) = @_;
    my $port = $o{port};

    if (!defined $port) {
        $port = $o{block} && $o{block}{__fc_client_port}
                ? $o{block}{__fc_client_port}
                : Test::Nginx::Util::server_port_for_client();
    }

    my $log_pos = $Test::Nginx::Util::ErrLogFilePos || 0;

    return bless {
        block   => $o{block},
        timeout => $o{timeout} // $Test::FishChat::StepTimeout,
        port    => $port,
        clients => {},
        vars    => {},
        log_pos => $log_pos,
    }, $class;
}

sub block { $_[0]{block} }
sub timeout { $_[0]{timeout} }
sub port { $_[0]{port} }
sub deadline { Time::HiRes::time() + $_[0]{timeout} }

sub var {
    my ($sc, $k, @v) = @_;
    $sc->{vars}{$k} = $v[0] if @v;
    return $sc->{vars}{$k};
}

sub tokens { Test::FishChat::_tokens($_[1], $_[0]{vars}) }
sub words { Test::FishChat::_words($_[1], $_[0]{vars}) }

# bytes for one line of request_frames syntax
sub frame_bytes {
    my ($sc, $line) = @_;
    my $b = Test::FishChat::_line_bytes($line, $sc->{vars});
    die "nothing to send\n" if !defined $b || $b eq 'split';
    return $b;
}

sub client {
    my ($sc, $name) = @_;
    my $c = $sc->{clients}{$name}
        or die "no client \"$name\" (connect it first)\n";
    return $c;
}

# a blocking TCP socket to HOST:PORT (TCP_NODELAY), connecting again while
# nginx is not listening yet, until DEADLINE

sub tcp_socket {
    my ($host, $port, $deadline) = @_;
    my $sock;

    while (1) {
        my $left = $deadline - Time::HiRes::time();
        $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                      Proto => 'tcp',
                                      Timeout => $left > 0.1 ? $left : 0.1);
        last if $sock;
        my $err = $!;
        if ($err != ECONNREFUSED || Time::HiRes::time() >= $deadline) {
            die "cannot connect to $host:$port: $err\n";
        }
        Time::HiRes::sleep(0.02);   # nginx not listening yet: retry
    }

    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);

    return $sock;
}

# split "NAME rest" and return (client, rest)
sub client_arg {
    my ($sc, $text) = @_;
    my ($name, $rest) = ($text // '') =~ /^(\S+)\s*(.*)$/s
        or die "client name missing\n";
    return ($sc->client($name), $rest);
}

sub connect {
    my ($sc, $name, $target, %tls) = @_;

    die "client \"$name\" is already connected\n" if $sc->{clients}{$name};

    my ($host, $port) = ('127.0.0.1', $sc->{port});
    if (defined $target && length $target) {
        if ($target =~ /^(?:(127\.\d+\.\d+\.\d+|localhost):)?(\d+)$/) {
            ($host, $port) = ($1 // '127.0.0.1', $2);
        } else {
            die "bad port \"$target\" (use PORT or 127.x.x.x:PORT)\n";
        }
    }

    my $deadline = $sc->deadline;
    my $sock = tcp_socket($host, $port, $deadline);

    my $tls;
    if (%tls) {
        $sock = $sc->_start_tls($sock, $host, $port, $deadline, %tls);
        $tls = $sock->get_sslversion // 'TLS';
    }

    $sock->blocking(0);

    return $sc->{clients}{$name} = {
        name   => $name,
        sock   => $sock,
        buf    => '',
        eof    => 0,
        err    => undef,
        frames => [],
        last   => undef,
        addr   => "$host:$port" . ($tls ? " $tls" : ''),
        tls    => $tls ? 1 : 0,
    };
}

# a path given to a step: relative to servroot/html unless absolute
sub path {
    my ($sc, $file) = @_;
    return $file if $file =~ m{^/};
    return Test::Nginx::Util::html_dir() . "/$file";
}

# the TLS handshake on a connected socket (blocking, bounded by the
# deadline); options: ca (verify the server against it, and its name: sni
# or the host), sni, version (TLSv1_2, TLSv1_3)
sub _start_tls {
    my ($sc, $sock, $host, $port, $deadline, %o) = @_;

    require IO::Socket::SSL;

    my $left = $deadline - Time::HiRes::time();
    my %args = (
        SSL_startHandshake => 1,
        Timeout            => $left > 0.1 ? $left : 0.1,
    );

    if (defined $o{ca}) {
        my $ca = $sc->path($o{ca});
        die "no CA file $ca\n" if !-r $ca;
        $args{SSL_verify_mode} = IO::Socket::SSL::SSL_VERIFY_PEER();
        $args{SSL_ca_file} = $ca;
        $args{SSL_verifycn_name} = $o{sni} // $host;
        $args{SSL_verifycn_scheme} = 'http';
    } else {
        $args{SSL_verify_mode} = IO::Socket::SSL::SSL_VERIFY_NONE();
    }

    # no SNI for an address, as browsers do
    $args{SSL_hostname} = defined $o{sni} ? $o{sni} : '';

    if (defined $o{version}) {
        die "bad version \"$o{version}\" (TLSv1_2 or TLSv1_3)\n"
            if $o{version} !~ /^TLSv1_[23]$/;
        $args{SSL_version} = $o{version};
    }

    my $ssl = IO::Socket::SSL->start_SSL($sock, %args);
    if (!$ssl) {
        my $err = $IO::Socket::SSL::SSL_ERROR || $!;
        close $sock;
        die "TLS handshake with $host:$port failed: $err\n";
    }

    return $ssl;
}

sub send {
    my ($sc, $name, $bytes) = @_;
    my $c = ref $name ? $name : $sc->client($name);
    my $deadline = $sc->deadline;
    my $sel = IO::Select->new($c->{sock});
    my $off = 0;

    die "client $c->{name} is closed\n" if !$c->{sock};

    while ($off < length $bytes) {
        my $left = $deadline - Time::HiRes::time();
        die "send timed out after $off of " . length($bytes) . " bytes\n"
            if $left <= 0;
        if ($c->{want_read}) {
            # TLS: the record layer needs the peer's bytes first
            $sel->can_read($left > 0.05 ? 0.05 : $left);
        } else {
            next if !$sel->can_write($left);
        }
        $c->{want_read} = 0;
        my $n = syswrite($c->{sock}, $bytes, length($bytes) - $off, $off);
        if (!defined $n) {
            if ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR) {
                $c->{want_read} = $c->{tls} && _ssl_wants_read();
                next;
            }
            die "send failed: " . _sock_err($c) . "\n";
        }
        $off += $n;
    }
}

sub _ssl_wants_read {
    return ($IO::Socket::SSL::SSL_ERROR // '') =~ /wants a read/
           ? 1 : 0;
}

sub _sock_err {
    my $c = shift;
    my $e = "$!";
    $e .= " ($IO::Socket::SSL::SSL_ERROR)"
        if $c->{tls} && $IO::Socket::SSL::SSL_ERROR;
    return $e;
}

# read once; 1: got bytes, 0: end of stream, undef: deadline passed
sub _fill {
    my ($sc, $c, $deadline) = @_;

    return 0 if $c->{eof};

    my $sel = IO::Select->new($c->{sock});

    while (1) {
        # TLS: a record already read into the library is not seen by
        # select: ask the library first
        if (!($c->{tls} && $c->{sock}->pending)) {
            my $left = $deadline - Time::HiRes::time();
            return undef if $left <= 0;
            next if !$sel->can_read($left);
        }

        my $n = sysread($c->{sock}, $c->{buf}, $Test::FishChat::ReadSize,
                        length $c->{buf});
        if (!defined $n) {
            # TLS: a record without application data (a session ticket,
            # a handshake message) reads as EAGAIN
            if ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR) {
                return undef if $deadline <= Time::HiRes::time();
                next;
            }
            $c->{err} = _sock_err($c);
            $c->{eof} = 1;
            return 0;
        }
        if ($n == 0) {
            $c->{eof} = 1;
            return 0;
        }
        return 1;
    }
}

sub _take_frame {
    my ($sc, $c) = @_;
    return undef if length $c->{buf} < 4;
    my $n = unpack 'N', $c->{buf};
    return undef if length($c->{buf}) - 4 < $n;
    my $f = Test::FishChat::_mk_frame(substr($c->{buf}, 0, 4 + $n, ''));
    push @{ $c->{frames} }, $f;
    $c->{last} = $f;
    return $f;
}

# why no frame came: for messages
sub _pending {
    my ($sc, $c) = @_;
    my $s = '';
    if (length $c->{buf}) {
        $s .= length($c->{buf}) . " bytes of an incomplete frame pending";
        if (length $c->{buf} >= 4) {
            $s .= " (announced length " . unpack('N', $c->{buf}) . ")";
        }
    }
    return $s;
}

# the next frame of a client, or die
sub recv {
    my ($sc, $name, $deadline) = @_;
    my $c = ref $name ? $name : $sc->client($name);
    $deadline //= $sc->deadline;

    while (1) {
        my $f = $sc->_take_frame($c);
        return $f if $f;

        if (length $c->{buf} >= 4
            && unpack('N', $c->{buf}) > $Test::FishChat::MaxFrameLen)
        {
            die "frame announces " . unpack('N', $c->{buf}) . " bytes\n";
        }

        my $r = $sc->_fill($c, $deadline);
        next if $r;

        my $p = $sc->_pending($c);
        if (defined $r) {
            die "connection closed by the server"
                . ($c->{err} ? " ($c->{err})" : '')
                . ($p ? "; $p" : '') . "\n";
        }
        die "no frame within $sc->{timeout} s" . ($p ? "; $p" : '') . "\n";
    }
}

sub finish {
    my $sc = shift;
    for my $c (values %{ $sc->{clients} }) {
        close $c->{sock} if $c->{sock};
    }
    $sc->{clients} = {};
}

sub report {
    my $sc = shift;
    my $s = '';
    for my $name (sort keys %{ $sc->{clients} }) {
        my $c = $sc->{clients}{$name};
        my @f = map { "        $_->{text}\n" } @{ $c->{frames} };
        $s .= "    client $name ($c->{addr}) received "
              . (@f ? scalar(@f) . " frame(s):\n" . join('', @f)
                    : "no frames\n");
        if (my $p = $sc->_pending($c)) {
            $s .= "        ($p)\n";
        }
        $s .= "        (closed by the server)\n" if $c->{eof};
    }
    my $out = Test::FishChat::_bytes($s);
    return $out;
}

sub error_log_since_start {
    my $sc = shift;
    open my $in, '<', $Test::Nginx::Util::ErrLogFile or return '';
    seek $in, $sc->{log_pos}, 0;
    local $/;
    my $data = <$in>;
    close $in;
    return $data // '';
}

package Test::FishChat;

sub _redis_step_words {
    my ($sc, $rest) = @_;
    my @w = $sc->words($rest);
    die "expected value and command needed\n" if @w < 2;
    my $exp = shift @w;
    return ($exp, map { $_->{v} } @w);
}

sub _redis_matches {
    my ($exp, $got) = @_;
    return 1 if $exp->{plain} && $exp->{v} eq '*';
    return $exp->{v} eq $got;
}

sub _strip_comment {
    my $s = shift;
    $s =~ s/\s+#(?:\s.*)?\z//s;
    return $s;
}

add_step(
    connect => sub {
        my ($sc, $rest) = @_;
        my ($name, @port) = $sc->tokens($rest);
        die "usage: connect NAME [PORT]\n" if !defined $name || @port > 1;
        $sc->connect($name, $port[0]);
    },

    connect_raw => sub {
        my ($sc, $rest) = @_;
        my ($name, @port) = $sc->tokens($rest);
        die "usage: connect_raw NAME [PORT]\n" if !defined $name || @port > 1;
        $sc->connect($name, $port[0]);
    },

    connect_tls => sub {
        my ($sc, $rest) = @_;
        my ($name, @more) = $sc->tokens($rest);
        my ($port, %o);
        for my $w (@more) {
            if ($w =~ /^(ca|sni|version)=(.*)$/s) {
                $o{$1} = $2;
            } elsif (!defined $port && !%o) {
                $port = $w;
            } else {
                die "bad argument \"$w\"\n";
            }
        }
        die "usage: connect_tls NAME [PORT] [ca=FILE] [sni=NAME] "
            . "[version=TLSv1_2|TLSv1_3]\n" if !defined $name;
        my $c = $sc->connect($name, $port, tls => 1, %o);
        $sc->var("tls_$name", $c->{sock}->get_sslversion);
    },

    tls_renegotiate => sub {
        my ($sc, $rest) = @_;
        my ($c) = $sc->client_arg($rest);
        die "client $c->{name} is not a TLS client\n" if !$c->{tls};
        my $ssl = $c->{sock}->_get_ssl_object
            or die "no SSL object for $c->{name}\n";
        Net::SSLeay::renegotiate($ssl)
            or die "renegotiate refused by the library (TLSv1.3? use "
                   . "version=TLSv1_2)\n";
        # non-blocking: this sends the ClientHello; the rest of the
        # handshake, or the server's refusal, comes with the next reads
        Net::SSLeay::do_handshake($ssl);
    },

    send => sub {
        my ($sc, $rest) = @_;
        my ($c, $line) = $sc->client_arg($rest);
        $sc->send($c, $sc->frame_bytes($line));
    },

    recv => sub {
        my ($sc, $rest) = @_;
        my ($c, $exp) = $sc->client_arg($rest);
        my $f = $sc->recv($c);
        my $why = frame_line_mismatch($exp, $f, $sc->{vars});
        die "expected: $exp\n    $why\n" if $why;
    },

    recv_like => sub {
        my ($sc, $rest) = @_;
        my ($c, $re) = $sc->client_arg($rest);
        $re = _strip_comment(_chars($re));
        my $qr = eval { qr/$re/ } or die "bad regex $re: $@";
        my $f = $sc->recv($c);
        die "expected to match: $re\n    got: $f->{text}\n"
            if $f->{text} !~ $qr;
    },

    capture => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        my ($var, $idx, @x) = $sc->tokens($more);
        die "usage: capture CLIENT VAR INDEX\n"
            if !defined $idx || @x || $var !~ /^\w+$/
               || $idx !~ /^(?:-?\d+|cmd)$/;
        my $f = $c->{last} or die "client $c->{name} has no frame yet\n";
        die "last frame is not a canonical frame: $f->{text}\n"
            if !defined $f->{cmd};
        my $v = $idx eq 'cmd' ? $f->{cmd} : $f->{args}[$idx];
        die "last frame has no argument $idx: $f->{text}\n" if !defined $v;
        $sc->var($var, $v);
    },

    no_frame => sub {
        my ($sc, $rest) = @_;
        my ($c, $more) = $sc->client_arg($rest);
        my ($secs, @x) = $sc->tokens($more);
        $secs //= 0.3;
        die "usage: no_frame CLIENT [SECONDS]\n"
            if @x || $secs !~ /^\d*\.?\d+$/;
        my $deadline = Time::HiRes::time() + $secs;
        while (!length $c->{buf} && !$c->{eof}) {
            last if !defined $sc->_fill($c, $deadline);
        }
        if (length $c->{buf}) {
            # let a frame that is on its way arrive whole, for the message
            my $d2 = Time::HiRes::time() + 0.2;
            while (!$sc->_take_frame($c) && !$c->{eof}) {
                last if !defined $sc->_fill($c, $d2);
            }
            my $got = $c->{last} && !length $c->{buf}
                      ? $c->{last}{text}
                      : render_frames($c->{buf});
            chomp $got;
            die "expected no frame within $secs s, got: $got\n";
        }
        die "expected no frame within $secs s, but the server closed the "
            . "connection\n" if $c->{eof};
    },

    closed => sub {
        my ($sc, $rest) = @_;
        my ($c) = $sc->client_arg($rest);
        my $deadline = $sc->deadline;
        while (1) {
            if (my $f = $sc->_take_frame($c)) {
                die "expected the server to close, got: $f->{text}\n";
            }
            if ($c->{eof}) {
                my $p = $sc->_pending($c);
                die "closed, but $p\n" if $p;
                return;
            }
            if (!defined $sc->_fill($c, $deadline)) {
                die "the server did not close within $sc->{timeout} s\n";
            }
        }
    },

    close => sub {
        my ($sc, $rest) = @_;
        my ($c) = $sc->client_arg($rest);
        close $c->{sock};
        delete $sc->{clients}{$c->{name}};
    },

    shutdown => sub {
        my ($sc, $rest) = @_;
        my ($c) = $sc->client_arg($rest);
        shutdown($c->{sock}, SHUT_WR) or die "shutdown: $!\n";
    },

    set => sub {
        my ($sc, $rest) = @_;
        my ($var, @v) = $sc->tokens($rest);
        die "usage: set VAR VALUE\n"
            if !defined $var || $var !~ /^\w+$/ || @v != 1;
        $sc->var($var, $v[0]);
    },

    redis => sub {
        my ($sc, $rest) = @_;
        my @cmd = $sc->tokens($rest);
        die "redis: no command\n" if !@cmd;
        redis(@cmd);
    },

    redis_expect => sub {
        my ($sc, $rest) = @_;
        my ($exp, @cmd) = _redis_step_words($sc, $rest);
        my $got = render_redis(redis_try(@cmd));
        die "expected: $exp->{v}\n    got: $got\n"
            if !_redis_matches($exp, $got);
    },

    redis_wait => sub {
        my ($sc, $rest) = @_;
        my ($exp, @cmd) = _redis_step_words($sc, $rest);
        my $deadline = $sc->deadline;
        my $got;
        while (1) {
            $got = render_redis(redis_try(@cmd));
            return if _redis_matches($exp, $got);
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);   # polling Redis, bounded
        }
        die "expected within $sc->{timeout} s: $exp->{v}\n    got: $got\n";
    },

    wait_log => sub {
        my ($sc, $rest) = @_;
        my $re = _strip_comment(_chars($rest));
        my $qr = eval { qr/$re/m } or die "bad regex $re: $@";
        my $deadline = $sc->deadline;
        while (1) {
            return if _chars($sc->error_log_since_start) =~ $qr;
            last if Time::HiRes::time() >= $deadline;
            Time::HiRes::sleep(0.02);   # polling the log, bounded
        }
        die "no error.log line matched within $sc->{timeout} s\n";
    },
);

1;
