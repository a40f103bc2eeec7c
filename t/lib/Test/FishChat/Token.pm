package Test::FishChat::Token;

# Login tokens for the tests: compact JWTs (RFC 7519) minted here, good ones
# and every kind of bad one.  Loading the module adds the step; nothing
# else changes.
#
#   token VAR key=FILE alg=ALG [sub=ID] [exp=T|absent] [nbf=T] [iat=T|absent]
#         [aud=X] [claim=NAME:VALUE ...] [header=NAME:VALUE ...]
#       $VAR is a compact JWT.
#       alg: HS256 HS384 HS512 (HMAC with the bytes of FILE, one trailing
#            newline removed: key=pub.pem makes the classic alg-confusion
#            token), RS256 RS384 RS512 (FILE: an RSA private key, PEM),
#            ES256 ES384 ES512 (FILE: an EC private key, PEM; the
#            signature is r||s as JWS wants), none (no key=, an empty
#            signature).
#       T: +N or -N seconds from now, or an absolute unix time.  exp is
#            +3600 unless given, iat is now unless given, nbf is absent
#            unless given; "absent" leaves the claim out.
#       claim=NAME:VALUE adds a claim: integers, true, false and null are
#            JSON values, anything else a string.  header= adds to the
#            JOSE header the same way (kid, typ).
#       A FILE is relative to servroot/html (where --- user_files land)
#       unless absolute; $TEST_NGINX_FC_KEYS/ names the static test keys.
#
# Perl:
#   Test::FishChat::Token::mint(alg => 'HS256', key => $path,
#                               claims => {...}, header => {...})
#       the compact JWT for exactly these claims (no defaults)
#   Test::FishChat::Token::b64url($bytes)

use strict;
use warnings;

use Test::FishChat ();

use Digest::SHA ();
use File::Temp ();
use JSON::PP ();
use MIME::Base64 ();
use Time::HiRes ();

my $JSON = JSON::PP->new->canonical(1);

sub b64url {
    my $s = MIME::Base64::encode_base64(shift, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+\z//;
    return $s;
}

sub _slurp {
    my $file = shift;
    open my $in, '<:raw', $file or die "cannot read key file $file: $!\n";
    local $/;
    my $d = <$in>;
    close $in;
    return $d;
}

# DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }) to r||s
sub _der_to_raw {
    my ($der, $n) = @_;
    my $p = 0;
    my $len = sub {
        my $l = ord substr($der, $p++, 1);
        if ($l & 0x80) {
            my $k = $l & 0x7f;
            $l = 0;
            $l = ($l << 8) | ord substr($der, $p++, 1) for 1 .. $k;
        }
        return $l;
    };

    die "ECDSA signature: not a DER SEQUENCE\n"
        if ord substr($der, $p++, 1) != 0x30;
    $len->();

    my $out = '';
    for (1 .. 2) {
        die "ECDSA signature: INTEGER expected\n"
            if ord substr($der, $p++, 1) != 0x02;
        my $l = $len->();
        my $int = substr($der, $p, $l);
        $p += $l;
        $int =~ s/\A\x00+//;
        die "ECDSA signature: integer longer than $n bytes\n"
            if length $int > $n;
        $out .= ("\0" x ($n - length $int)) . $int;
    }
    return $out;
}

my %EC_SIZE = (256 => 32, 384 => 48, 512 => 66);

sub _sign {
    my ($alg, $key, $data) = @_;

    return '' if $alg eq 'none';

    my ($kind, $bits) = $alg =~ /\A(HS|RS|ES)(256|384|512)\z/
        or die "unknown alg \"$alg\"\n";
    die "alg=$alg needs key=FILE\n" if !defined $key;

    if ($kind eq 'HS') {
        (my $secret = _slurp($key)) =~ s/\r?\n\z//;
        no strict 'refs';
        return &{"Digest::SHA::hmac_sha$bits"}($data, $secret);
    }

    my $in = File::Temp->new(SUFFIX => '.jwt');
    print $in $data;
    close $in;
    my $out = File::Temp->new(SUFFIX => '.sig');
    close $out;

    my $err = `openssl dgst -sha$bits -sign '$key' -out '$out' '$in' 2>&1`;
    die "openssl dgst -sign with $key failed: $err\n" if $? != 0;
    my $sig = _slurp("$out");

    return $kind eq 'ES' ? _der_to_raw($sig, $EC_SIZE{$bits}) : $sig;
}

sub mint {
    my %o = @_;
    my $alg = $o{alg} // 'HS256';
    my %h = (alg => $alg, typ => 'JWT', %{ $o{header} || {} });
    my $input = b64url($JSON->encode(\%h)) . '.'
                . b64url($JSON->encode($o{claims} || {}));
    return $input . '.' . b64url(_sign($alg, $o{key}, $input));
}

sub _value {
    my $v = shift;
    return 0 + $v if $v =~ /\A-?(?:0|[1-9]\d{0,17})\z/;
    return JSON::PP::true() if $v eq 'true';
    return JSON::PP::false() if $v eq 'false';
    return undef if $v eq 'null';
    return $v;
}

sub _time {
    my ($name, $v, $now) = @_;
    return $now + $1 if $v =~ /\A\+(\d+)\z/;
    return $now - $1 if $v =~ /\A-(\d+)\z/;
    return 0 + $v if $v =~ /\A\d+\z/;
    die "bad $name=$v (+N, -N, a unix time or absent)\n";
}

Test::FishChat::add_step(token => sub {
    my ($sc, $rest) = @_;
    my ($var, @args) = $sc->tokens($rest);

    die "usage: token VAR key=FILE alg=ALG [sub=ID] [exp=T|absent] [nbf=T]"
        . " [iat=T|absent] [aud=X] [claim=NAME:VALUE ...]\n"
        if !defined $var || $var !~ /\A\w+\z/;

    my $now = int Time::HiRes::time();
    my %t = (exp => '+3600', iat => '+0');
    my (%o, %claims, %header);

    for my $a (@args) {
        my ($k, $v) = $a =~ /\A(\w+)=(.*)\z/s
            or die "bad argument \"$a\" (NAME=VALUE)\n";
        if ($k eq 'claim' || $k eq 'header') {
            my ($n, $val) = $v =~ /\A([^:]+):(.*)\z/s
                or die "bad $k=$v (NAME:VALUE)\n";
            ($k eq 'claim' ? \%claims : \%header)->{$n} = _value($val);
        } elsif ($k =~ /\A(?:exp|nbf|iat)\z/) {
            $t{$k} = $v;
        } elsif ($k =~ /\A(?:key|alg|sub|aud)\z/) {
            $o{$k} = $v;
        } else {
            die "unknown argument \"$k\"\n";
        }
    }

    die "alg= is required\n" if !defined $o{alg};

    $claims{sub} = $o{sub} if defined $o{sub};
    $claims{aud} = $o{aud} if defined $o{aud};
    for my $k (qw(exp nbf iat)) {
        next if !defined $t{$k} || $t{$k} eq 'absent';
        $claims{$k} = _time($k, $t{$k}, $now);
    }

    my $key = defined $o{key} ? $sc->path($o{key}) : undef;
    $sc->var($var, mint(alg => $o{alg}, key => $key, claims => \%claims,
                        header => \%header));
});

1;
