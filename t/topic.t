# Topics (group chat): CREATE_TOPIC, JOIN_TOPIC, LEAVE_TOPIC,
# SEND_MESSAGE_TOPIC, the opt-in TOPIC_MEMBERS and MY_TOPICS, fan-out over
# two workers and two nodes, catch-up after being offline, the history cap
# and TOPIC_GAP, slow members, and the channel subscriptions of the workers.
#
# nginx runs with a master and two workers.  Blocks that need both workers
# use a second msg server with "reuseport" on $TEST_NGINX_FC_PORT1, where
# the kernel spreads connections; node2 (blocks with node2_start) is a
# second nginx on $TEST_NGINX_FC_PORT2.  Steps used here that other files
# use too are in Test::FishChat::Steps.

use Test::FishChat;
use Test::FishChat::Steps;

use Time::HiRes ();

repeat_each(1);
no_shuffle();
master_on();
workers(2);
worker_connections(512);

# recv_exact NAME LENGTH BODY: the next frame, byte for byte: the length in
# hex, the JSON body as written here and the final \n
Test::FishChat::add_step(recv_exact => sub {
    my ($sc, $rest) = @_;
    my ($name, $len, $body) = $rest =~ /^(\S+)\s+([0-9a-f]{8})\s+(.*?)\s*$/
        or die "usage: recv_exact NAME HEXLENGTH BODY\n";
    my $f = $sc->recv($name);
    my $want = pack('H8', $len) . $body . "\n";

    if ($f->{raw} ne $want) {
        die "expected: $len $body\\n\n    got:      "
            . unpack('H8', $f->{raw}) . ' ' . substr($f->{raw}, 4) . "\n";
    }
});

# flood FROM TOPIC N SIZE READER...: FROM sends N messages of about SIZE
# bytes ("FROM-0001-xxx...") one at a time; every READER must get each one,
# in order, before the next is sent.  ACCEPTED frames are skipped, and if
# FROM is an opt-in client all N of them are waited for at the end.
Test::FishChat::add_step(flood => sub {
    my ($sc, $rest) = @_;
    my ($from, $topic, $n, $size, @readers) = $sc->tokens($rest);
    my %accepted;

    my $next = sub {
        my ($r) = @_;
        while (1) {
            my $f = $sc->recv($r);
            if ($f->{cmd} && $f->{cmd} eq 'ACCEPTED') {
                $accepted{$r}++;
                next;
            }
            return $f;
        }
    };

    for my $i (1 .. $n) {
        my $text = sprintf("%s-%04d-", $from, $i) . ('x' x $size);
        $sc->send($from, frame('SEND_MESSAGE_TOPIC', $topic, $text));

        for my $r (@readers) {
            my $f = $next->($r);
            die "$r: expected message $i, got: "
                . substr($f->{text}, 0, 120) . "\n"
                if !$f->{cmd} || $f->{cmd} ne 'RESP_MESSAGE_TOPIC'
                   || $f->{args}[1] ne $text;
        }
    }

    if ($accepted{$from}) {
        while ($accepted{$from} < $n) {
            my $f = $sc->recv($from);
            die "$from: expected ACCEPTED, got: "
                . substr($f->{text}, 0, 120) . "\n"
                if !$f->{cmd} || $f->{cmd} ne 'ACCEPTED';
            $accepted{$from}++;
        }
    }
});

# recv_tail NAME FROM FIRST N LAST: the next frames of NAME are messages
# of a flood by FROM, numbered FIRST (or anything for "*") to N without a
# gap, then the message LAST
Test::FishChat::add_step(recv_tail => sub {
    my ($sc, $rest) = @_;
    my ($name, $from, $first, $n, $last) = $sc->tokens($rest);
    my $expect = $first eq '*' ? undef : $first;

    while (1) {
        my $f = $sc->recv($name);
        die "expected a message, got: " . substr($f->{text}, 0, 120) . "\n"
            if !$f->{cmd} || $f->{cmd} ne 'RESP_MESSAGE_TOPIC';

        my $text = $f->{args}[1];

        if (defined $expect && $expect > $n) {
            die "expected \"$last\", got: " . substr($text, 0, 40) . "\n"
                if $text ne $last;
            return;
        }

        my ($i) = $text =~ /^\Q$from\E-(\d{4})-/
            or die "expected a message of the flood, got: "
                   . substr($text, 0, 40) . "\n";
        $i += 0;

        die "expected message $expect, got $i\n"
            if defined $expect && $i != $expect;

        $expect = $i + 1;
    }
});

# login NAME ID: seed client NAME logs in as ID.  A seed client gets no
# reply to wait for, and a command sent before the server has the login
# is refused: wait for the server's (debug) log line of the login.
Test::FishChat::add_step(login => sub {
    my ($sc, $rest) = @_;
    my ($name, $id) = $sc->tokens($rest);
    my $re = qr/fishchat msg: "\Q$id\E" logged in/;
    my $before = () = $sc->error_log_since_start =~ /$re/g;

    $sc->send($name, frame('SEND_CLIENT_ID', $id));

    my $deadline = $sc->deadline;

    while (1) {
        my $n = () = $sc->error_log_since_start =~ /$re/g;
        return if $n > $before;
        die "no login of \"$id\" in the error log\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);   # polling the log, bounded
    }
});

# burst FROM TOPIC N SIZE: FROM sends N messages of about SIZE bytes
# ("FROM-0001-xxx...") in one write, without waiting for anything
Test::FishChat::add_step(burst => sub {
    my ($sc, $rest) = @_;
    my ($from, $topic, $n, $size) = $sc->tokens($rest);

    $sc->send($from, join '', map {
        frame('SEND_MESSAGE_TOPIC', $topic,
              sprintf("%s-%04d-", $from, $_) . ('x' x $size))
    } 1 .. $n);
});

# burst_recv NAME FROM N [ACCEPTED]: the next frames of NAME are the N
# messages of a burst by FROM, in order, with their uuid for an opt-in
# client; with ACCEPTED, N ACCEPTED frames too, anywhere among them
my $burst_recv = sub {
    my ($sc, $name, $from, $n, $accepted) = @_;
    my ($i, $acc) = (1, 0);

    while ($i <= $n || ($accepted && $acc < $n)) {
        my $f = $sc->recv($name);

        if ($accepted && $f->{cmd} && $f->{cmd} eq 'ACCEPTED') {
            $acc++;
            next;
        }

        my $want = sprintf("%s-%04d-", $from, $i);
        my $args = $sc->client($name)->{optin} ? 4 : 3;

        die "$name: expected message $want, got: "
            . substr($f->{text}, 0, 120) . "\n"
            if !$f->{cmd} || $f->{cmd} ne 'RESP_MESSAGE_TOPIC'
               || @{ $f->{args} } != $args
               || index($f->{args}[1], $want) != 0
               || $f->{args}[2] ne $sc->var("${from}_id");
        $i++;
    }
};

Test::FishChat::add_step(burst_recv => sub {
    my ($sc, $rest) = @_;
    my ($name, $from, $n, $accepted) = $sc->tokens($rest);
    $burst_recv->($sc, $name, $from, $n, $accepted);
});

# crowd NAME N TOPIC PORT: N clients NAME1 .. NAMEN (ids NAME1 ...), opt-in
# and seed clients in turn, log in and join TOPIC, each with one write;
# they must be served by two workers
Test::FishChat::add_step(crowd => sub {
    my ($sc, $rest) = @_;
    my ($name, $n, $topic, $port) = $sc->tokens($rest);
    my %pids;

    for my $i (1 .. $n) {
        my $c = "$name$i";
        my $optin = $i % 2;

        $sc->connect($c, $port);
        $sc->client($c)->{optin} = $optin;
        $sc->var("${c}_id", $c);
        $sc->send($c, ($optin ? frame('HELLO', '1') : '')
                      . frame('SEND_CLIENT_ID', $c)
                      . frame('JOIN_TOPIC', $topic, $c));
    }

    for my $i (1 .. $n) {
        my $c = "$name$i";
        my @want = $i % 2 ? qw(HELLO LOGIN_OK LOCATE_TOPIC_MSG_ADDR)
                          : qw(LOCATE_TOPIC_MSG_ADDR);

        for my $cmd (@want) {
            my $f = $sc->recv($c);
            die "$c: expected $cmd, got: $f->{text}\n"
                if !$f->{cmd} || $f->{cmd} ne $cmd;
            $pids{ $f->{args}[2] } = 1 if $cmd eq 'HELLO';
        }
    }

    die "one worker served them all\n" if keys %pids < 2;
});

# crowd_recv NAME N FROM COUNT: each client of the crowd that is still
# connected gets the COUNT messages of a burst by FROM, in order
Test::FishChat::add_step(crowd_recv => sub {
    my ($sc, $rest) = @_;
    my ($name, $n, $from, $count) = $sc->tokens($rest);

    for my $c (map { "$name$_" } 1 .. $n) {
        $burst_recv->($sc, $c, $from, $count) if $sc->{clients}{$c};
    }
});

# optin NAME ID: NAME is an opt-in client logged in as ID (for burst_recv)
Test::FishChat::add_step(optin => sub {
    my ($sc, $rest) = @_;
    my ($name, $id) = $sc->tokens($rest);
    $sc->client($name)->{optin} = 1;
    $sc->var("${name}_id", $id);
});

# seed NAME ID: NAME is a seed client logged in as ID (for burst_recv)
Test::FishChat::add_step(seed => sub {
    my ($sc, $rest) = @_;
    my ($name, $id) = $sc->tokens($rest);
    $sc->client($name)->{optin} = 0;
    $sc->var("${name}_id", $id);
});

# room_on_two_workers: on the server of $TEST_NGINX_FC_PORT1, alice (a)
# and bob (b), opt-in, on different workers, and carol (c), a seed client;
# alice makes "room", the others join it; both workers subscribe to it
Test::FishChat::Steps::add_macro(room_on_two_workers => <<'EOF');
connect a $TEST_NGINX_FC_PORT1
send a HELLO 1
recv a HELLO 1 * *
capture a pid_a 2
connect_worker b other $pid_a $TEST_NGINX_FC_PORT1
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * $pid_a
optin a alice
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * $pid_b
optin b bob
connect c $TEST_NGINX_FC_PORT1
login c carol
seed c carol
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send c JOIN_TOPIC room carol
recv c LOCATE_TOPIC_MSG_ADDR * room
redis_wait "${PREFIX}t:{room} 2" PUBSUB NUMSUB ${PREFIX}t:{room}
EOF

# each block: scenario, error_log and no_error_log; TEST 14 has two
# error_log, TEST 13 two no_error_log
plan tests => repeat_each() * (3 * blocks() + 2);

run_tests();

__DATA__

=== TEST 1: create, join, members, my topics, leave (opt-in clients)
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
send a CREATE_TOPIC room
recv a ERROR TOPIC_EXISTS "topic \"room\" exists"
# the creator is a member; joining again is harmless
send a JOIN_TOPIC room alice
recv a LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_STREAM_PORT room
hello_login b bob
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_STREAM_PORT room
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_STREAM_PORT room
send b TOPIC_MEMBERS room
recv b TOPIC_MEMBERS room alice bob
send a CREATE_TOPIC lobby
recv a TOPIC_CREATED lobby
send a MY_TOPICS
recv a MY_TOPICS lobby room
send b MY_TOPICS
recv b MY_TOPICS room
redis_expect alice HGET ${PREFIX}topic:{room} creator
redis_expect 0 HGET ${PREFIX}topic:{room} seq
send b LEAVE_TOPIC room bob
recv b TOPIC_LEFT room
send b TOPIC_MEMBERS room
recv b TOPIC_MEMBERS room alice
send b LEAVE_TOPIC room bob
recv b ERROR NOT_MEMBER "not a member of \"room\""
send b MY_TOPICS
recv b MY_TOPICS
send b TOPIC_MEMBERS nowhere
recv b ERROR NO_SUCH_TOPIC "no topic \"nowhere\""
send b SEND_PING
recv b PONG
--- no_error_log
[error]
[alert]



=== TEST 2: refusals
--- stream_server_config
    fishchat_msg;
--- scenario
connect a
send a HELLO 1
recv a HELLO 1 * *
send a CREATE_TOPIC room
recv a ERROR NOT_LOGGED_IN "CREATE_TOPIC before login"
closed a
close a
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
# opt-in: the session goes on after these
hello_login c carol
send c SEND_MESSAGE_TOPIC room "let me in" r1
recv c ERROR NOT_MEMBER "message to \"room\" not accepted"
send c JOIN_TOPIC nowhere carol
recv c ERROR NO_SUCH_TOPIC "no topic \"nowhere\""
send c SEND_MESSAGE_TOPIC nowhere hi
recv c ERROR NO_SUCH_TOPIC "message to \"nowhere\" not accepted"
send c SEND_PING
recv c PONG
no_frame a
# ... and these close it
send c CREATE_TOPIC "bad name"
recv c ERROR BAD_ARGS *
closed c
close c
hello_login c carol
send c JOIN_TOPIC room alice
recv c ERROR FORBIDDEN "JOIN_TOPIC for another id"
closed c
close c
hello_login c carol
send c SEND_MESSAGE_TOPIC room
recv c ERROR BAD_ARGS "SEND_MESSAGE_TOPIC takes 2 to 3 arguments"
closed c
# seed clients: no frame they would not understand, the close instead
connect s
login s sam
send s SEND_MESSAGE_TOPIC room "let me in"
closed s
close s
redis_wait 0 EXISTS ${PREFIX}client:{sam}
connect s
login s sam
send s JOIN_TOPIC nowhere sam
closed s
close s
redis_wait 0 EXISTS ${PREFIX}client:{sam}
connect s
login s sam
send s TOPIC_MEMBERS room
closed s
redis_expect alice HKEYS ${PREFIX}topic:{room}:members
--- no_error_log
[error]
[alert]



=== TEST 3: the seed's topic frames, byte for byte
--- stream_server_config
    fishchat_msg;
    fishchat_msg_advertise 127.0.0.1:19001;
--- scenario
connect b
login b tB
send b CREATE_TOPIC room1
connect a
login a tA
redis_wait 1 EXISTS ${PREFIX}topic:{room1}
send a JOIN_TOPIC room1 tA
recv_exact a 00000047 {"CmdName":"LOCATE_TOPIC_MSG_ADDR","Args":["127.0.0.1:19001","room1"]}
# the seed answers nothing to a name that is taken: neither do we
send b CREATE_TOPIC room1
no_frame b
send b SEND_MESSAGE_TOPIC room1 hello_from_B
recv_exact a 00000046 {"CmdName":"RESP_MESSAGE_TOPIC","Args":["room1","hello_from_B","tB"]}
recv_exact b 00000046 {"CmdName":"RESP_MESSAGE_TOPIC","Args":["room1","hello_from_B","tB"]}
send a SEND_MESSAGE_TOPIC room1 hello_from_A
recv a RESP_MESSAGE_TOPIC room1 hello_from_A tA
recv b RESP_MESSAGE_TOPIC room1 hello_from_A tA
no_frame a
no_frame b
--- no_error_log
[error]
[alert]



=== TEST 4: opt-in members get the uuid, the sender an ACCEPTED
--- stream_server_config
    fishchat_msg;
--- scenario
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
connect b
login b bob
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_STREAM_PORT room
send a SEND_MESSAGE_TOPIC room "hi \"all\" <3" m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room "hi \"all\" <3" alice *
assert_eq $a_ACCEPTED_1 $a_RESP_MESSAGE_TOPIC_3
recv b RESP_MESSAGE_TOPIC room "hi \"all\" <3" alice
send a SEND_MESSAGE_TOPIC room "no reference"
recv_any a ACCEPTED '' * | RESP_MESSAGE_TOPIC room "no reference" alice *
recv b RESP_MESSAGE_TOPIC room "no reference" alice
send b SEND_MESSAGE_TOPIC room "from a seed client"
recv a RESP_MESSAGE_TOPIC room "from a seed client" bob *
recv b RESP_MESSAGE_TOPIC room "from a seed client" bob
redis_expect 3 HGET ${PREFIX}topic:{room} seq
redis_expect 3 LLEN ${PREFIX}topic:{room}:h
no_frame a
no_frame b
--- no_error_log
[error]
[alert]



=== TEST 5: two workers: each subscribes while it has members, messages both ways
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_msg;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
connect a $TEST_NGINX_FC_PORT1
send a HELLO 1
recv a HELLO 1 * *
capture a pid_a 2
connect_worker b other $pid_a $TEST_NGINX_FC_PORT1
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice * $pid_a
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob * $pid_b
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
redis_wait "${PREFIX}t:{room} 1" PUBSUB NUMSUB ${PREFIX}t:{room}
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_FC_PORT1 room
redis_wait "${PREFIX}t:{room} 2" PUBSUB NUMSUB ${PREFIX}t:{room}
send a SEND_MESSAGE_TOPIC room "from worker a" m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room "from worker a" alice *
recv b RESP_MESSAGE_TOPIC room "from worker a" alice $a_ACCEPTED_1
send b SEND_MESSAGE_TOPIC room "from worker b" m2
recv_any b ACCEPTED m2 * | RESP_MESSAGE_TOPIC room "from worker b" bob *
recv a RESP_MESSAGE_TOPIC room "from worker b" bob $b_ACCEPTED_1
flood a room 20 10 a b
flood b room 20 10 a b
# bob leaves: his worker has no member left and unsubscribes
send b LEAVE_TOPIC room bob
recv b TOPIC_LEFT room
redis_wait "${PREFIX}t:{room} 1" PUBSUB NUMSUB ${PREFIX}t:{room}
send a SEND_MESSAGE_TOPIC room "bob is gone" m3
recv_any a ACCEPTED m3 * | RESP_MESSAGE_TOPIC room "bob is gone" alice *
no_frame b
# bob comes back; alice closes: her worker unsubscribes
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_FC_PORT1 room
redis_wait "${PREFIX}t:{room} 2" PUBSUB NUMSUB ${PREFIX}t:{room}
close a
redis_wait "${PREFIX}t:{room} 1" PUBSUB NUMSUB ${PREFIX}t:{room}
send b SEND_MESSAGE_TOPIC room "alice is offline" m4
recv_any b ACCEPTED m4 * | RESP_MESSAGE_TOPIC room "alice is offline" bob *
close b
redis_wait "${PREFIX}t:{room} 0" PUBSUB NUMSUB ${PREFIX}t:{room}
--- no_error_log
[error]
[alert]



=== TEST 6: two nodes: a topic made on node1, joined from node2, messages both ways
--- stream_config
    fishchat_msg_heartbeat 100ms;
--- stream_server_config
    fishchat_msg;
--- main_config
    fishchat_node node1;
--- scenario_timeout: 10
--- scenario
node2_start
connect a
send a HELLO 1
recv a HELLO 1 node1 *
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice node1 *
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
connect b $TEST_NGINX_FC_PORT2
send b HELLO 1
recv b HELLO 1 node2 *
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob node2 *
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_FC_PORT2 room
send a SEND_MESSAGE_TOPIC room "hi from node1" m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room "hi from node1" alice *
recv b RESP_MESSAGE_TOPIC room "hi from node1" alice $a_ACCEPTED_1
send b SEND_MESSAGE_TOPIC room "hi from node2" m2
recv_any b ACCEPTED m2 * | RESP_MESSAGE_TOPIC room "hi from node2" bob *
recv a RESP_MESSAGE_TOPIC room "hi from node2" bob $b_ACCEPTED_1
flood b room 10 100 a b
send a TOPIC_MEMBERS room
recv a TOPIC_MEMBERS room alice bob
# bob moves to node1 while alice writes: he misses nothing
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
send a SEND_MESSAGE_TOPIC room "while bob moves" m3
recv_any a ACCEPTED m3 * | RESP_MESSAGE_TOPIC room "while bob moves" alice *
connect b2
send b2 HELLO 1
recv b2 HELLO 1 node1 *
send b2 SEND_CLIENT_ID bob
recv b2 LOGIN_OK bob node1 *
recv b2 RESP_MESSAGE_TOPIC room "while bob moves" alice $a_ACCEPTED_1
no_frame b2
node2_stop
--- no_error_log
[error]
[alert]



=== TEST 7: an offline member catches up in order, then live, none twice
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_msg;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
hello_login a alice $TEST_NGINX_FC_PORT1
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
hello_login b bob $TEST_NGINX_FC_PORT1
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send a SEND_MESSAGE_TOPIC room one m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room one alice *
recv b RESP_MESSAGE_TOPIC room one alice *
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
redis_expect 1 HGET ${PREFIX}topic:{room}:members bob
send a SEND_MESSAGE_TOPIC room two m2
recv_any a ACCEPTED m2 * | RESP_MESSAGE_TOPIC room two alice *
send a SEND_MESSAGE_TOPIC room three m3
recv_any a ACCEPTED m3 * | RESP_MESSAGE_TOPIC room three alice *
send a SEND_MESSAGE_TOPIC room four m4
recv_any a ACCEPTED m4 * | RESP_MESSAGE_TOPIC room four alice *
capture a u4 1
# a seed client: the frames of the seed, the missed ones first
connect b $TEST_NGINX_FC_PORT1
send b SEND_CLIENT_ID bob
recv b RESP_MESSAGE_TOPIC room two alice
recv b RESP_MESSAGE_TOPIC room three alice
recv b RESP_MESSAGE_TOPIC room four alice
send a SEND_MESSAGE_TOPIC room five m5
recv_any a ACCEPTED m5 * | RESP_MESSAGE_TOPIC room five alice *
recv b RESP_MESSAGE_TOPIC room five alice
no_frame b
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
redis_expect 5 HGET ${PREFIX}topic:{room}:members bob
# nothing new: nothing comes again
hello_login b bob $TEST_NGINX_FC_PORT1
no_frame b 0.5
# a flood while bob logs in again, on whichever worker: each once, in order
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
connect b $TEST_NGINX_FC_PORT1
send b HELLO 1
recv b HELLO 1 * *
send b SEND_CLIENT_ID bob
flood a room 30 10 a
send a SEND_MESSAGE_TOPIC room after m6
recv_any a ACCEPTED m6 * | RESP_MESSAGE_TOPIC room after alice *
recv b LOGIN_OK bob * *
recv_tail b a 1 30 after
no_frame b
--- no_error_log
[error]
[alert]



=== TEST 8: over the history cap: TOPIC_GAP, then what the history has
--- stream_server_config
    fishchat_msg;
    fishchat_topic_history 3;
--- scenario
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
hello_login b bob
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
send a SEND_MESSAGE_TOPIC room one m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room one alice *
send a SEND_MESSAGE_TOPIC room two m2
recv_any a ACCEPTED m2 * | RESP_MESSAGE_TOPIC room two alice *
send a SEND_MESSAGE_TOPIC room three m3
recv_any a ACCEPTED m3 * | RESP_MESSAGE_TOPIC room three alice *
send a SEND_MESSAGE_TOPIC room four m4
recv_any a ACCEPTED m4 * | RESP_MESSAGE_TOPIC room four alice *
send a SEND_MESSAGE_TOPIC room five m5
recv_any a ACCEPTED m5 * | RESP_MESSAGE_TOPIC room five alice *
redis_expect 3 LLEN ${PREFIX}topic:{room}:h
hello_login b bob
recv b TOPIC_GAP room 2
recv b RESP_MESSAGE_TOPIC room three alice *
recv b RESP_MESSAGE_TOPIC room four alice *
recv b RESP_MESSAGE_TOPIC room five alice $a_ACCEPTED_1
no_frame b
--- error_log eval
qr/\[info\] .*"bob" missed 2 messages of topic "room"/
--- no_error_log
[error]



=== TEST 9: a slow member is disconnected, the others go on, it catches up later
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=8k;
        fishchat_msg;
        fishchat_msg_send_buffer 64k;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 20
--- scenario
hello_login a alice $TEST_NGINX_FC_PORT1
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
hello_login b bob $TEST_NGINX_FC_PORT1
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
hello_login s slow $TEST_NGINX_FC_PORT1
send s JOIN_TOPIC slow slow
send s JOIN_TOPIC room slow
recv s ERROR NO_SUCH_TOPIC *
recv s LOCATE_TOPIC_MSG_ADDR * room
# s reads nothing from here on
flood a room 80 16000 a b
wait_log SLOW_READER
redis_wait 0 EXISTS ${PREFIX}client:{slow}
send a SEND_MESSAGE_TOPIC room after m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room after alice *
recv b RESP_MESSAGE_TOPIC room after alice *
# back, it gets what it was not sent, in order
hello_login s2 slow $TEST_NGINX_FC_PORT1
recv_tail s2 a * 80 after
no_frame s2
--- no_error_log
[error]
[alert]



=== TEST 10: the subscriber link goes down: members catch up when it is back; positions are saved without a logout
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 10
--- scenario
hello_login a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
hello_login b bob
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
send a SEND_MESSAGE_TOPIC room before m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room before alice *
recv b RESP_MESSAGE_TOPIC room before alice *
# the workers reconnect after 100 ms: this message finds no subscriber
redis CLIENT KILL TYPE pubsub
send a SEND_MESSAGE_TOPIC room "while the link was down" m2
recv_any a ACCEPTED m2 * | RESP_MESSAGE_TOPIC room "while the link was down" alice *
recv b RESP_MESSAGE_TOPIC room "while the link was down" alice $a_ACCEPTED_1
wait_log subscribed again, its members catch up
send a SEND_MESSAGE_TOPIC room after m3
recv_any a ACCEPTED m3 * | RESP_MESSAGE_TOPIC room after alice *
recv b RESP_MESSAGE_TOPIC room after alice $a_ACCEPTED_1
no_frame b
# saved within a few seconds, both still logged in
redis_wait 3 HGET ${PREFIX}topic:{room}:members bob
redis_wait 3 HGET ${PREFIX}topic:{room}:members alice
--- no_error_log
[error]
[alert]



=== TEST 11: a burst reaches every member on both workers in order, several messages a write
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_msg;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 20
--- scenario
room_on_two_workers
burst a room 300 100
burst_recv b a 300
burst_recv c a 300
burst_recv a a 300 ACCEPTED
redis_expect 300 HGET ${PREFIX}topic:{room} seq
no_frame a
no_frame b
no_frame c
--- error_log eval
qr/fishchat msg: (?:[2-9]|[1-9]\d+) frames of topic "room" to "(?:alice|bob|carol)"/
--- no_error_log
[error]



=== TEST 12: a member that reads nothing holds the messages by reference while the others go on; then it gets them all, in order
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 sndbuf=8k;
        fishchat_msg;
        fishchat_msg_send_buffer 4m;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 20
--- scenario
hello_login a alice $TEST_NGINX_FC_PORT1
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
hello_login b bob $TEST_NGINX_FC_PORT1
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR * room
hello_login s slow $TEST_NGINX_FC_PORT1
send s JOIN_TOPIC room slow
recv s LOCATE_TOPIC_MSG_ADDR * room
# s reads nothing from here on: about 1 MB waits for it
flood a room 60 16000 a b
wait_log fishchat out: \d+ bytes queued, [1-9]\d* by reference
send a SEND_MESSAGE_TOPIC room after m1
recv_any a ACCEPTED m1 * | RESP_MESSAGE_TOPIC room after alice *
recv b RESP_MESSAGE_TOPIC room after alice *
# it reads: everything, in order, nothing twice
recv_tail s a 1 60 after
no_frame s
# its position counts what left the queue
close s
redis_wait 61 HGET ${PREFIX}topic:{room}:members slow
--- no_error_log
[error]
SLOW_READER



=== TEST 13: 150 members on two workers, more than a pass of the delivery event each: a burst reaches all, in order; their positions are saved
A worker saves the positions of its ~75 members in one command of over
150 arguments.
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_msg;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 30
--- scenario
hello_login a alice $TEST_NGINX_FC_PORT1
optin a alice
send a CREATE_TOPIC room
recv a TOPIC_CREATED room
crowd m 150 room $TEST_NGINX_FC_PORT1
redis_wait "${PREFIX}t:{room} 2" PUBSUB NUMSUB ${PREFIX}t:{room}
burst a room 40 50
burst_recv a a 40 ACCEPTED
crowd_recv m 150 a 40
# one of them leaves in the middle of the next burst: the others get it all
burst a room 40 50
close m7
burst_recv a a 40 ACCEPTED
crowd_recv m 150 a 40
# saved within a few seconds: position 80 for each of the 149 still there
redis_wait 149 EVAL "local n = 0 for i = 1, 150 do if i ~= 7 and redis.call('HGET', KEYS[1], 'm' .. i) == '80' then n = n + 1 end end return n" 1 ${PREFIX}topic:{room}:members
--- error_log eval
qr/fishchat msg: topic delivery goes on after the other events/
--- no_error_log
[error]
[alert]



=== TEST 14: fishchat_topic_backlog: past it a worker stops reading its clients, then reads them again; nothing is lost or reordered
--- stream_config
    fishchat_topic_backlog 4;
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1 reuseport;
        fishchat_msg;
        fishchat_msg_rate 0;
    }
--- stream_server_config
    fishchat_msg;
--- scenario_timeout: 20
--- scenario
room_on_two_workers
burst a room 300 100
burst_recv b a 300
burst_recv c a 300
burst_recv a a 300 ACCEPTED
redis_expect 300 HGET ${PREFIX}topic:{room} seq
send a SEND_PING
recv a PONG
send c SEND_MESSAGE_TOPIC room after
recv a RESP_MESSAGE_TOPIC room after carol *
recv b RESP_MESSAGE_TOPIC room after carol *
recv c RESP_MESSAGE_TOPIC room after carol
no_frame a
no_frame b
no_frame c
--- error_log eval
[qr/fishchat msg: topic backlog: reading clients paused/,
 qr/fishchat msg: topic backlog: reading clients resumed/]
--- no_error_log
[error]
