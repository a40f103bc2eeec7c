# The msg server with two workers sharing a reuseport listener: messages,
# kicks and redelivery between workers go through Redis (the send script
# publishes to the recipient's worker channel, a login elsewhere tells the
# old worker to close its session).
#
# connect_worker (t/lib/Test/FishChat/Msg.pm) connects, sends HELLO 1 and
# tries again until the worker's pid in the reply is the one wanted.

use Test::FishChat;
use Test::FishChat::Msg;

master_on();
workers(2);
repeat_each(2);

# login_equal_sid OLD NEW ID
#
# OLD and NEW log in as ID on different workers, NEW with the same session
# number as OLD when the workers' numbers allow it.  Each worker numbers
# its connections; one probe login on each tells where each count is, and
# from then on every connection to a worker takes that worker's next
# number.  Sets $sid_OLD, $sid_NEW, $pid_OLD, $pid_NEW.

Test::FishChat::add_step(login_equal_sid => sub {
    my ($sc, $rest) = @_;
    my ($old, $new, $id) = $sc->tokens($rest);
    die "usage: login_equal_sid OLD NEW ID\n" if !defined $id;

    my %next;

    my $open = sub {
        my $name = shift;
        my $c = $sc->connect($name);
        $sc->send($c, frame('HELLO', '1'));
        my $f = $sc->recv($c);
        die "expected HELLO, got: $f->{text}\n"
            if ($f->{cmd} // '') ne 'HELLO';
        return ($c, $f->{args}[2]);
    };

    my $login = sub {
        my ($c, $as) = @_;
        $sc->send($c, frame('SEND_CLIENT_ID', $as));
        my $f = $sc->recv($c);
        die "expected LOGIN_OK, got: $f->{text}\n"
            if ($f->{cmd} // '') ne 'LOGIN_OK';
        return redis('HGET', fc_prefix() . "client:{$as}", 'sid');
    };

    my $drop = sub {
        my $c = shift;
        close $c->{sock};
        delete $sc->{clients}{$c->{name}};
    };

    for my $try (1 .. 64) {
        last if keys %next == 2;
        my ($c, $pid) = $open->('probe');
        if (exists $next{$pid}) {
            $next{$pid}++;
        } else {
            $next{$pid} = $login->($c, "probe$try") + 1;
        }
        $drop->($c);
    }

    die "64 connections to one worker\n" if keys %next != 2;

    # OLD: on the worker whose count is ahead, so the other can catch up

    my ($oc, $opid, $osid);

    for (1 .. 64) {
        my ($c, $pid) = $open->($old);
        my ($other) = grep { $_ ne $pid } keys %next;
        my $s = $next{$pid}++;
        if ($next{$other} <= $s) {
            ($oc, $opid) = ($c, $pid);
            last;
        }
        $drop->($c);
    }

    die "no connection for $old\n" if !$oc;

    $osid = $login->($oc, $id);

    # NEW: on the other worker, once its next number is OLD's (or at once
    # when it can't get there soon)

    for (1 .. 256) {
        my ($c, $pid) = $open->($new);
        my $s = $next{$pid}++;
        if ($pid ne $opid
            && ($s == $osid || $s > $osid || $osid - $s > 100))
        {
            $sc->send($c, frame('SEND_CLIENT_ID', $id));
            $sc->var("pid_$old", $opid);
            $sc->var("pid_$new", $pid);
            $sc->var("sid_$old", $osid);
            $sc->var("sid_$new", $s);
            return;
        }
        $drop->($c);
    }

    die "no connection for $new\n";
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: messages between workers, both ways, opt-in and seed clients
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario
workers_login
redis_expect ${PREFIX}w:n1:$pid_a HGET ${PREFIX}client:{alice} ch
redis_expect ${PREFIX}w:n1:$pid_b HGET ${PREFIX}client:{bob} ch
send a SEND_MESSAGE_P2P bob "a to b" alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_MESSAGE_P2P "a to b" alice $u1
send b SEND_MESSAGE_P2P alice "b to a" bob r2
recv b ACCEPTED r2 *
capture b u2 1
recv a RESP_MESSAGE_P2P "b to a" bob $u2
connect l
send l SEND_CLIENT_ID lee
redis_wait_like '^\S+:\d+$' HGET ${PREFIX}client:{lee} ch
redis_capture lch HGET ${PREFIX}client:{lee} ch
connect_worker x other $lch
send x SEND_CLIENT_ID xavier
recv x LOGIN_OK xavier n1 *
send x SEND_MESSAGE_P2P lee "x to lee" xavier r3
recv x ACCEPTED r3 *
capture x u3 1
recv l RESP_MESSAGE_P2P "x to lee" xavier $u3
send l SEND_MESSAGE_P2P xavier "lee to x" lee
recv x RESP_MESSAGE_P2P "lee to x" lee *
send l P2P_ACK lee $u3
redis_wait 0 ZCARD ${PREFIX}inbox:{lee}
no_frame a
no_frame b
no_frame l 0.1
no_frame x 0.1



=== TEST 2: a login on another worker closes the old session there
The old opt-in session gets ERROR KICKED; presence points at the new one
(the old one's logout doesn't remove it); unacknowledged messages come
again to the new session.
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario
connect_worker b1 any
send b1 SEND_CLIENT_ID bob
recv b1 LOGIN_OK bob n1 $pid_b1
connect_worker a same b1
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 *
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b1 RESP_MESSAGE_P2P m1 alice $u1
connect_worker b2 other b1
send b2 SEND_CLIENT_ID bob
recv b2 LOGIN_OK bob n1 $pid_b2
recv b2 RESP_MESSAGE_P2P m1 alice $u1
recv b1 ERROR KICKED *
closed b1
redis_expect ${PREFIX}w:n1:$pid_b2 HGET ${PREFIX}client:{bob} ch
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
capture a u2 1
recv b2 RESP_MESSAGE_P2P m2 alice $u2
redis_expect ${PREFIX}w:n1:$pid_b2 HGET ${PREFIX}client:{bob} ch
connect_worker b3 other b2
send b3 SEND_CLIENT_ID bob
recv b3 LOGIN_OK bob n1 $pid_b3
recv b3 RESP_MESSAGE_P2P m1 alice $u1
recv b3 RESP_MESSAGE_P2P m2 alice $u2
recv b2 ERROR KICKED *
closed b2
send b3 P2P_ACK bob $u1
send b3 P2P_ACK bob $u2
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
no_frame b3
--- error_log
fishchat msg: KICKED: logged in elsewhere, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 3: a seed client kicked by a login on another worker is closed
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario
connect l
send l SEND_CLIENT_ID lee
redis_wait_like '^\S+:\d+$' HGET ${PREFIX}client:{lee} ch
redis_capture lch HGET ${PREFIX}client:{lee} ch
connect_worker n other $lch
send n SEND_CLIENT_ID lee
recv n LOGIN_OK lee n1 $pid_n
closed l
redis_expect ${PREFIX}w:n1:$pid_n HGET ${PREFIX}client:{lee} ch



=== TEST 4: redelivery after moving to the other worker
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
connect_worker b other a
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * *
send a SEND_MESSAGE_P2P bob m1 alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_MESSAGE_P2P m1 alice $u1
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
send a SEND_MESSAGE_P2P bob m2 alice r2
recv a ACCEPTED r2 *
capture a u2 1
connect_worker b2 same a
send b2 SEND_CLIENT_ID bob
recv b2 LOGIN_OK bob * $pid_a
recv b2 RESP_MESSAGE_P2P m1 alice $u1
recv b2 RESP_MESSAGE_P2P m2 alice $u2
send b2 P2P_ACK bob $u1
send b2 P2P_ACK bob $u2
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
no_frame b2
no_frame a 0.1



=== TEST 5: a kick between workers whose sessions have the same number
Each worker numbers its sessions; the new session here is given the old
one's number there (when the numbers are per worker counters).  The old
session must still be closed, and its logout must not remove the new
presence.
--- main_config
    fishchat_node n1;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario_timeout: 5
--- scenario
login_equal_sid old new bob
recv new LOGIN_OK bob n1 $pid_new
recv old ERROR KICKED *
closed old
redis_expect ${PREFIX}w:n1:$pid_new HGET ${PREFIX}client:{bob} ch
connect_worker a same old
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
send a SEND_MESSAGE_P2P bob "after the kick" alice r1
recv a ACCEPTED r1 *
recv new RESP_MESSAGE_P2P "after the kick" alice *
redis_expect ${PREFIX}w:n1:$pid_new HGET ${PREFIX}client:{bob} ch
--- error_log
fishchat msg: KICKED: logged in elsewhere, closing
--- no_error_log
[error]
[alert]
[emerg]



=== TEST 6: the heartbeat counts the sessions of both workers
--- main_config
    fishchat_node hb2;
--- stream_config
    fishchat_msg_heartbeat 100ms;
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
        fishchat_msg_advertise 127.0.0.1:19001;
    }
--- scenario
set load ${PREFIX}{nodes}:load
redis_wait '{"node":"hb2","sessions":0}' HGET $load 127.0.0.1:19001
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * *
connect_worker b other a
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * *
connect_worker c other a
redis_wait '{"node":"hb2","sessions":2}' HGET $load 127.0.0.1:19001
close b
redis_wait '{"node":"hb2","sessions":1}' HGET $load 127.0.0.1:19001



=== TEST 7: 16 clients at once: logins, messages in a ring, acks
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario eval
my $n = 16;
my $next = sub { $_[0] % $n + 1 };
CORE::join "\n",
    (map { "connect c$_" } 1 .. $n),
    (map { "send_frames c$_ HELLO 1 || SEND_CLIENT_ID u$_" } 1 .. $n),
    (map { ("recv c$_ HELLO 1 * *", "recv c$_ LOGIN_OK u$_ * *") } 1 .. $n),
    (map { "send c$_ SEND_MESSAGE_P2P u" . $next->($_) . " m$_ u$_ r$_" }
         1 .. $n),
    (map { my $from = ($_ + $n - 2) % $n + 1;
           ("recv_any_order c$_ ACCEPTED r$_ * || "
            . "RESP_MESSAGE_P2P m$from u$from *",
            "ack_all c$_ u$_") } 1 .. $n),
    (map { "redis_wait 0 ZCARD \${PREFIX}inbox:{u$_}" } 1 .. $n),
    (map { "no_frame c$_ 0.01" } 1 .. $n);



=== TEST 8: file messages between workers: RESP_FILE_P2P and RESP_FILE_TOPIC made by the recipient's worker (the file's record is written to Redis as the files location leaves it)
--- main_config
    fishchat_node n1;
    fishchat_files_url http://files.example/f;
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
--- scenario
set fid 00112233445566778899aabbccddeeff
redis HSET ${PREFIX}file:{$fid} owner alice name a.txt type text/plain size 5 created 1700000000000 expires 1800000000 state ready sha256 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 probe ""
workers_login
send a SEND_FILE_P2P bob $fid alice r1
recv a ACCEPTED r1 *
capture a u1 1
recv b RESP_FILE_P2P $fid alice $u1 a.txt text/plain 5 http://files.example/f/$fid "{\"id\":\"$fid\",\"name\":\"a.txt\",\"type\":\"text/plain\",\"size\":5,\"sha256\":\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\",\"created\":1700000000,\"expires\":1800000000}"
send b P2P_ACK bob $u1
redis_wait 0 EXISTS ${PREFIX}inbox:{bob}
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send a SEND_FILE_TOPIC room $fid r2
recv_any a ACCEPTED r2 * | RESP_FILE_TOPIC room $fid alice * a.txt text/plain 5 http://files.example/f/$fid *
recv b RESP_FILE_TOPIC room $fid alice * a.txt text/plain 5 http://files.example/f/$fid *
send b FILE_URL $fid
recv b FILE_URL $fid http://files.example/f/$fid http://files.example/f/$fid/info http://files.example/f/$fid/thumb
--- no_error_log
[error]
[alert]
[emerg]
