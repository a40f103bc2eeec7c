# Login tokens (issue 13): fishchat_msg_auth token, the fishchat_auth_*
# directives, SEND_CLIENT_ID <id> <token>, REFRESH_TOKEN, the session
# closed when its token expires, revocation (POST /clients/{id}/revoke),
# tokens minted by the manager (POST /tokens) and fishchat_msg_login_rate.
#
# Blocks get, unless they say otherwise:
#   main_config            fishchat_node n1; the HS256 test secret
#   stream_server_config   fishchat_msg; fishchat_msg_auth token;
#   config                 location / { fishchat_manager; }
#
# Custom steps:
#   refused NAME ID TOKEN CODE   an opt-in client logs in as ID with TOKEN:
#                                ERROR CODE, then the close
#   seed_refused NAME ID TOKEN   a seed client: the close, nothing else
#   log_lacks VAR                error.log (all of it) does not contain $VAR
#   login_burst N ID             N opt-in clients log in at once as ID-1 ..
#                                ID-N; $ok and $limited count the
#                                LOGIN_OKs and the RATE_LIMITED refusals
#                                (each followed by the close)

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Manager;
use Test::FishChat::Token;

repeat_each(1);
no_shuffle();
no_root_location();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->main_config) {
        $block->set_value('main_config', <<'_EOC_');
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
_EOC_
    }

    if (!defined $block->stream_server_config
        && !defined $block->stream_config)
    {
        $block->set_value('stream_server_config', <<'_EOC_');
    fishchat_msg;
    fishchat_msg_auth token;
_EOC_
    }

    if (!defined $block->config) {
        $block->set_value('config', <<'_EOC_');
    location / {
        fishchat_manager;
    }
_EOC_
    }
});

Test::FishChat::add_step(refused => sub {
    my ($sc, $rest) = @_;
    my ($name, $id, $token, $code) = $sc->tokens($rest);
    die "usage: refused NAME ID TOKEN CODE\n" if !defined $code;
    my $c = $sc->connect($name);
    $sc->send($c, frame('HELLO', '1'));
    my $f = $sc->recv($c);
    die "expected HELLO 1 * *, got: $f->{text}\n" if ($f->{cmd} // '') ne 'HELLO';
    $sc->send($c, frame('SEND_CLIENT_ID', $id, $token));
    $f = $sc->recv($c);
    die "expected ERROR $code, got: $f->{text}\n"
        if ($f->{cmd} // '') ne 'ERROR' || $f->{args}[0] ne $code;
    Test::FishChat::Steps::run_steps($sc, "closed $name");
});

Test::FishChat::add_step(seed_refused => sub {
    my ($sc, $rest) = @_;
    my ($name, $id, $token) = $sc->tokens($rest);
    my $c = $sc->connect($name);
    $sc->send($c, frame('SEND_CLIENT_ID', $id, $token));
    Test::FishChat::Steps::run_steps($sc, "closed $name");
});

Test::FishChat::add_step(log_lacks => sub {
    my ($sc, $rest) = @_;
    my ($var) = $sc->tokens($rest);
    my $v = $sc->var($var) // die "no \$$var\n";
    open my $in, '<', $Test::Nginx::Util::ErrLogFile or die "$!\n";
    local $/;
    my $log = <$in>;
    die "error.log contains \$$var\n" if index($log, $v) >= 0;
    # the signature alone is secret enough to look for
    my ($sig) = $v =~ /\.([^.]+)\z/;
    die "error.log contains the signature of \$$var\n"
        if $sig && length $sig > 8 && index($log, $sig) >= 0;
});

Test::FishChat::add_step(login_burst => sub {
    my ($sc, $rest) = @_;
    my ($n, $id) = $sc->tokens($rest);
    my $secret = "$ENV{TEST_NGINX_FC_KEYS}/hs.secret";
    my @c;
    for my $i (1 .. $n) {
        my $t = Test::FishChat::Token::mint(alg => 'HS256', key => $secret,
                    claims => { sub => "$id-$i", exp => time + 60,
                                iat => time });
        my $c = $sc->connect("$id-$i");
        $sc->send($c, frame('HELLO', '1') . frame('SEND_CLIENT_ID', "$id-$i", $t));
        push @c, $c;
    }
    my ($ok, $limited) = (0, 0);
    for my $c (@c) {
        my $f = $sc->recv($c);
        die "expected HELLO, got: $f->{text}\n" if ($f->{cmd} // '') ne 'HELLO';
        $f = $sc->recv($c);
        if (($f->{cmd} // '') eq 'LOGIN_OK') {
            $ok++;
        } elsif (($f->{cmd} // '') eq 'ERROR' && $f->{args}[0] eq 'RATE_LIMITED') {
            $limited++;
            Test::FishChat::Steps::run_steps($sc, "closed $c->{name}");
        } else {
            die "$c->{name}: unexpected $f->{text}\n";
        }
    }
    $sc->var('ok', $ok);
    $sc->var('limited', $limited);
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: a valid HS256 token logs in, opt-in and seed; the token is never logged
--- scenario
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+60
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice $t
recv a LOGIN_OK alice n1 *
token u key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob
connect b
send b SEND_CLIENT_ID bob $u
redis_wait_like "w:n1:" HGET ${PREFIX}client:{bob} ch
send a SEND_MESSAGE_P2P bob "hi bob" alice r1
recv a ACCEPTED r1 *
recv b RESP_MESSAGE_P2P "hi bob" alice *
log_lacks t
log_lacks u



=== TEST 2: refusals, opt-in: each is AUTH_FAILED, the close and an info line without the token
--- scenario
refused a alice "" AUTH_FAILED
wait_log login of "alice" refused: 
refused a1 alice not-a-jwt AUTH_FAILED
token t alg=none sub=alice
refused a2 alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/hs-wrong.secret alg=HS256 sub=alice
refused a3 alice $t AUTH_FAILED
log_lacks t
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob
refused a4 alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=absent
refused a5 alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice nbf=+120
refused a6 alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS384 sub=alice
refused a7 alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/rsa.key alg=RS256 sub=alice
refused a8 alice $t AUTH_FAILED
# expired beyond the leeway (30 s by default): its own code
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=-120
refused a9 alice $t TOKEN_EXPIRED
# a media token (its URL may be seen by others) never logs in
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice claim=act:play claim=stream:0123456789abcdef
refused a10 alice $t AUTH_FAILED
wait_log login of "alice" refused: a media token
log_lacks t
# within the leeway: accepted
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=-5 nbf=+5
connect ok
send ok HELLO 1
recv ok HELLO 1 n1 *
send ok SEND_CLIENT_ID alice $t
recv ok LOGIN_OK alice n1 *
redis_expect 0 EXISTS ${PREFIX}client:{bob}
--- no_error_log
[error]
[alert]
[emerg]
--- error_log
login of "alice" refused



=== TEST 3: refusals, seed clients: the close and nothing else
--- scenario
seed_refused a alice ""
token t alg=none sub=alice
seed_refused b alice $t
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=-120
seed_refused c alice $t
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob
seed_refused d alice $t
redis_expect 0 EXISTS ${PREFIX}client:{alice}
wait_log login of "alice" refused



=== TEST 4: RS256: a valid token, and an HS256 token keyed with the public key (alg confusion)
--- main_config
    fishchat_node n1;
    fishchat_auth_public_key_file $TEST_NGINX_FC_KEYS/rsa.pub;
    fishchat_auth_alg RS256;
--- scenario
token t key=$TEST_NGINX_FC_KEYS/rsa.pub alg=HS256 sub=alice
refused a alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/ec.key alg=ES256 sub=alice
refused b alice $t AUTH_FAILED
token t alg=none sub=alice
refused c alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/rsa.key alg=RS256 sub=alice exp=+60
connect ok
send ok HELLO 1
recv ok HELLO 1 n1 *
send ok SEND_CLIENT_ID alice $t
recv ok LOGIN_OK alice n1 *



=== TEST 5: ES256 with a public key file
--- main_config
    fishchat_node n1;
    fishchat_auth_public_key_file $TEST_NGINX_FC_KEYS/ec.pub;
    fishchat_auth_alg ES256;
--- scenario
token t key=$TEST_NGINX_FC_KEYS/ec.key alg=ES256 sub=alice exp=+60
connect ok
send ok HELLO 1
recv ok HELLO 1 n1 *
send ok SEND_CLIENT_ID alice $t
recv ok LOGIN_OK alice n1 *
token t key=$TEST_NGINX_FC_KEYS/ec.pub alg=HS256 sub=bob
refused b bob $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/rsa.key alg=RS256 sub=bob
refused c bob $t AUTH_FAILED



=== TEST 6: fishchat_auth_audience: the right aud logs in, a wrong one does not
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_auth_audience fishchat-test;
--- scenario
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice aud=other
refused a alice $t AUTH_FAILED
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice aud=fishchat-test
connect ok
send ok HELLO 1
recv ok HELLO 1 n1 *
send ok SEND_CLIENT_ID alice $t
recv ok LOGIN_OK alice n1 *



=== TEST 7: fishchat_msg_auth off (the default): a token argument is ignored
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice whatever.not.checked
recv a LOGIN_OK alice n1 *
token t alg=none sub=bob
connect b
send b SEND_CLIENT_ID bob $t
redis_wait_like "w:n1:" HGET ${PREFIX}client:{bob} ch



=== TEST 8: expiry closes the session: opt-in gets TOKEN_EXPIRED first, seed just the close
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_auth_leeway 0s;
--- scenario_timeout: 6
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 n1 *
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+2
send a SEND_CLIENT_ID alice $t
recv a LOGIN_OK alice n1 *
token u key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob exp=+2
connect b
send b SEND_CLIENT_ID bob $u
recv a ERROR TOKEN_EXPIRED *
closed a
closed b
redis_wait 0 EXISTS ${PREFIX}client:{alice}
wait_log refused|expired



=== TEST 9: REFRESH_TOKEN keeps the session; a bad refresh is refused and changes nothing
--- main_config
    fishchat_node n1;
    fishchat_auth_secret_file $TEST_NGINX_FC_KEYS/hs.secret;
    fishchat_auth_leeway 0s;
--- scenario_timeout: 6
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 n1 *
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+2
send a SEND_CLIENT_ID alice $t
recv a LOGIN_OK alice n1 *
token t2 key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+600
send a REFRESH_TOKEN $t2
recv a TOKEN_REFRESHED *
capture a exp 0
# a token that ends before the session's does not shorten it
token t3 key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+300
send a REFRESH_TOKEN $t3
recv a ERROR AUTH_FAILED "refresh of \"alice\" refused: the token ends before the session's"
no_frame a 3
send a SEND_PING PING
recv a PONG
# a second session whose refreshes are all bad: it ends at its first exp
connect b
send b HELLO 1
recv b HELLO 1 n1 *
token u key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob exp=+2
send b SEND_CLIENT_ID bob $u
recv b LOGIN_OK bob n1 *
token bad key=$TEST_NGINX_FC_KEYS/hs-wrong.secret alg=HS256 sub=bob exp=+600
send b REFRESH_TOKEN $bad
recv b ERROR AUTH_FAILED *
token bad key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice exp=+600
send b REFRESH_TOKEN $bad
recv b ERROR AUTH_FAILED *
token bad alg=none sub=bob exp=+600
send b REFRESH_TOKEN $bad
recv b ERROR AUTH_FAILED *
recv b ERROR TOKEN_EXPIRED *
closed b
send a SEND_PING PING
recv a PONG
log_lacks t2



=== TEST 10: revocation: live sessions are kicked, older tokens refused at login and refresh, newer ones accepted
--- scenario_timeout: 5
--- scenario
token old key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice iat=-10 exp=+600
token noiat key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice iat=absent exp=+600
token bobs key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=bob iat=-10 exp=+600
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice $old
recv a LOGIN_OK alice n1 *
connect b
send b HELLO 1
recv b HELLO 1 n1 *
send b SEND_CLIENT_ID bob $bobs
recv b LOGIN_OK bob n1 *
api 200 POST /clients/alice/revoke
api_json id alice
api_capture rb revoked_before
recv a ERROR KICKED *
closed a
refused a2 alice $old AUTH_FAILED
refused a3 alice $noiat AUTH_FAILED
# bob is not concerned
send b SEND_PING PING
recv b PONG
# a token issued after the revocation second logs in, and a refresh to an
# old token is refused
token new key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=alice iat=$rb+1 exp=+600
connect a4
send a4 HELLO 1
recv a4 HELLO 1 n1 *
send a4 SEND_CLIENT_ID alice $new
recv a4 LOGIN_OK alice n1 *
send a4 REFRESH_TOKEN $old
recv a4 ERROR AUTH_FAILED *
send a4 SEND_PING PING
recv a4 PONG
api 404 POST /clients/alice/nothing



=== TEST 11: POST /tokens mints a token that logs in; bad requests; no signing key
--- scenario
api 200 POST /tokens '{"id":"alice","ttl":3600}'
api_capture tok token
api_capture exp expires
api_like ^\{"token":"[\w-]+\.[\w-]+\.[\w-]+","expires":\d+\}
connect a
send a HELLO 1
recv a HELLO 1 n1 *
send a SEND_CLIENT_ID alice $tok
recv a LOGIN_OK alice n1 *
log_lacks tok
api 400 POST /tokens '{"id":"","ttl":3600}'
api 400 POST /tokens '{"id":"alice","ttl":0}'
api 400 POST /tokens '{"id":"alice","ttl":"x"}'
api 400 POST /tokens '{"ttl":60}'
api 400 POST /tokens 'not json'



=== TEST 12: POST /tokens with only a public key: 409 NO_SIGNING_KEY
--- main_config
    fishchat_node n1;
    fishchat_auth_public_key_file $TEST_NGINX_FC_KEYS/rsa.pub;
    fishchat_auth_alg RS256;
--- scenario
api 409 POST /tokens '{"id":"alice","ttl":3600}'
api_json error.code NO_SIGNING_KEY



=== TEST 13: fishchat_msg_login_rate: logins beyond the burst from one address are refused, later ones pass
--- stream_server_config
    fishchat_msg;
    fishchat_msg_auth token;
    fishchat_msg_login_rate 2r/s burst=2;
--- scenario_timeout: 5
--- scenario
login_burst 8 u
assert_ne 0 $limited
assert_ne 0 $ok
wait_log RATE_LIMITED|login rate
# a second later the address may log in again
no_frame u-1 1.5
token t key=$TEST_NGINX_FC_KEYS/hs.secret alg=HS256 sub=later
connect l
send l HELLO 1
recv l HELLO 1 n1 *
send l SEND_CLIENT_ID later $t
recv l LOGIN_OK later n1 *
