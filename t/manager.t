# The manager's REST API (ngx_http_fishchat_manager_module): every endpoint
# and its errors, against a real msg server in the same nginx (two
# workers): messages posted to online and offline clients, topics and their
# live members, kicks, access control, Redis slow, away or dying, clients
# that go away mid-wait, and 1,000 requests at once.
#
# The api steps are in t/lib/Test/FishChat/Manager.pm; blocks get a msg
# server on the stream port and "location / { fishchat_manager; }" unless
# they say otherwise (--- no_msg, --- config).

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Manager;

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes ();

repeat_each(1);
master_on();
workers(2);
worker_connections(4096);
no_root_location();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->main_config) {
        $block->set_value('main_config', "    fishchat_node n1;\n");
    }

    if (!defined $block->stream_config && !defined $block->no_msg) {
        $block->set_value('stream_config', <<'_EOC_');
    server {
        listen 127.0.0.1:$TEST_NGINX_STREAM_PORT reuseport;
        fishchat_msg;
    }
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

# api_chunked STATUS METHOD PATH BODY: the body with chunked encoding
Test::FishChat::add_step(api_chunked => sub {
    my ($sc, $rest) = @_;
    my ($want, $method, $path, $body) = $sc->tokens($rest);
    die "usage: api_chunked STATUS METHOD PATH BODY\n" if !defined $body;
    $body = Test::FishChat::_bytes($body);
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
              . sprintf("%x\r\n", length $body) . "$body\r\n0\r\n\r\n";
    my $resp = Test::FishChat::Manager::api_request($sc, $req);
    die "expected status $want, got $resp->{status}: $resp->{body}\n"
        if $resp->{status} ne $want;
    $sc->{api_last} = $resp;
    $sc->{api_json} = undef;
});

# api_flood CONNS: CONNS connections at once, each with one keep-alive
# request, all written before any answer is read, then a second request on
# each (Connection: close).  Every 4th request posts a message to "flood";
# the others read a topic "room" (200), the nodes (200) and an unknown
# client (404).  $flood_posts is the number of messages posted.
Test::FishChat::add_step(api_flood => sub {
    my ($sc, $rest) = @_;
    my ($conns) = $sc->tokens($rest);
    my $port = Test::Nginx::Util::server_port();
    my $deadline = $sc->deadline;
    my (@socks, %want, $posts);

    local $SIG{PIPE} = 'IGNORE';

    my $req = sub {
        my ($i, $round) = @_;
        my $conn = $round ? 'close' : 'keep-alive';
        my $k = ($i + $round) % 4;
        my ($status, $r);

        if ($k == 0) {
            my $body = qq({"to":"flood","message":"m$i.$round"});
            $r = "POST /messages HTTP/1.1\r\nHost: x\r\nConnection: $conn\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n$body";
            $status = 201;
            $posts++;

        } else {
            my $path = ('', '/topics/room', '/nodes', '/clients/nobody')[$k];
            $r = "GET $path HTTP/1.1\r\nHost: x\r\nConnection: $conn\r\n\r\n";
            $status = $k == 3 ? 404 : 200;
        }

        return ($r, $status);
    };

    for my $i (0 .. $conns - 1) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
            or die "connection $i: $!\n";
        $s->blocking(0);
        push @socks, { sock => $s, i => $i, buf => '', got => 0 };
    }

    for my $round (0, 1) {
        for my $c (@socks) {
            my ($r, $status) = $req->($c->{i}, $round);
            $c->{want} = $status;
            $c->{out} = $r;
            $c->{buf} = '';
            $c->{done} = 0;
        }

        my $sel_w = IO::Select->new(map { $_->{sock} } @socks);
        my $sel_r = IO::Select->new(map { $_->{sock} } @socks);
        my %by = map { fileno($_->{sock}) => $_ } @socks;
        my $left = @socks;

        while ($left) {
            die "round $round: $left responses missing after the timeout\n"
                if Time::HiRes::time() > $deadline;

            my ($rd, $wr) = IO::Select->select($sel_r, $sel_w, undef, 0.5);

            for my $s (@{ $wr // [] }) {
                my $c = $by{fileno $s};
                my $n = syswrite($s, $c->{out});
                if (!defined $n) {
                    next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                    die "connection $c->{i}: write: $!\n";
                }
                substr($c->{out}, 0, $n, '');
                $sel_w->remove($s) if !length $c->{out};
            }

            for my $s (@{ $rd // [] }) {
                my $c = $by{fileno $s};
                my $n = sysread($s, $c->{buf}, 65536, length $c->{buf});
                if (!defined $n) {
                    next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
                    die "connection $c->{i}: read: $!\n";
                }

                my ($head, $body) = split /\r\n\r\n/, $c->{buf}, 2;

                if (defined $body && $head =~ /Content-Length: (\d+)/i
                    && length $body >= $1)
                {
                    my ($st) = $head =~ m{^HTTP/1\.1 (\d+)};
                    die "connection $c->{i}, round $round: expected "
                        . "$c->{want}, got $st: $body\n"
                        if $st != $c->{want};
                    $sel_r->remove($s);
                    $left--;
                    next;
                }

                die "connection $c->{i}, round $round: closed early: "
                    . "$c->{buf}\n" if $n == 0;
            }
        }
    }

    close $_->{sock} for @socks;

    $sc->var('flood_posts', $posts);
});

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: GET /nodes: the live msg servers by node, stale ones left out; HEAD
--- scenario
redis_wait_like "127\.0\.0\.1:$TEST_NGINX_STREAM_PORT" ZRANGE ${PREFIX}{nodes}:beat 0 -1
redis EVAL "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])" 2 ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load $NOW_MS+60000 10.0.0.2:19000 '{"node":"n2","sessions":7}'
redis EVAL "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])" 2 ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load $NOW_MS+61000 10.0.0.2:19001 '{"node":"n2","sessions":3}'
redis EVAL "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])" 2 ${PREFIX}{nodes}:beat ${PREFIX}{nodes}:load $NOW_MS-1000 10.0.0.3:19000 '{"node":"n3","sessions":1}'
api 200 GET /nodes
api_count nodes 2
api_json nodes.0.node n1
api_json nodes.0.sessions 0
api_count nodes.0.servers 1
api_json nodes.0.servers.0.address 127.0.0.1:$TEST_NGINX_STREAM_PORT
api_json nodes.0.servers.0.sessions 0
api_json nodes.0.servers.0.expires_in *
api_json nodes.1.node n2
api_json nodes.1.sessions 10
api_json nodes.1.servers.0.address 10.0.0.2:19000
api_json nodes.1.servers.1.address 10.0.0.2:19001
api_json nodes.1.servers.1.sessions 3
api_header Content-Type application/json
api 200 HEAD /nodes
api_body ""
api 405 POST /nodes
api_header Allow "GET, HEAD"



=== TEST 2: GET /clients/{id}: online (its worker, address, server), offline with an inbox, unknown, invalid
--- scenario
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 $pid_a
api 200 GET /clients/alice
api_json id alice
api_json online true
api_json node n1
api_json worker $pid_a
api_json channel ${PREFIX}w:n1:$pid_a
api_json server 127.0.0.1:$TEST_NGINX_STREAM_PORT
api_json address 127.0.0.1
api_like "since":\d{13},
api_json session *
api_json pending 0
api_json topics 0
api 201 POST /messages '{"to":"bob","message":"for later"}'
api 200 GET /clients/bob
api_body '{"id":"bob","online":false,"pending":1,"topics":0}'
# a presence left by a worker that is gone (no one on its channel)
redis HSET ${PREFIX}client:{ghost} node n9 ch ${PREFIX}w:n9:1 srv 10.0.0.9:19000 sid 5 since 1
api 200 GET /clients/ghost
api_body '{"id":"ghost","online":false,"pending":0,"topics":0,"stale":true}'
api 404 GET /clients/carol
api_body '{"error":{"code":"NOT_FOUND","message":"no client \"carol\""}}'
wait_log fishchat manager: 404 NOT_FOUND: no client "carol"
api 400 GET /clients/a%20b
api_json error.code BAD_REQUEST
api 400 GET /clients/a%7Bb
api_json error.code BAD_REQUEST
api 405 DELETE /clients/alice
api_header Allow "GET, HEAD"



=== TEST 3: GET /clients: the online clients page by page (SCAN), offline ones left out; bad pages
--- scenario
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 *
connect_worker b any
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 *
connect_worker c any
send c SEND_CLIENT_ID carol
recv c LOGIN_OK carol n1 *
api 201 POST /messages '{"to":"dave","message":"offline"}'
api 201 POST /messages '{"to":"bob","message":"online"}'
recv b RESP_MESSAGE_P2P online system *
redis HSET ${PREFIX}client:{ghost} node n9 ch ${PREFIX}w:n9:1 srv 10.0.0.9:19000 sid 5 since 1
api 200 GET /clients
api_count clients 3
api_json cursor null
api_pages /clients?count=1 clients id "alice bob carol"
api_pages /clients?count=2 clients online "true true true"
api_pages /clients clients pending "0 0 1"
api 400 GET /clients?count=0
api_json error.code BAD_REQUEST
api 400 GET /clients?count=1001
api 400 GET /clients?count=x
api 400 GET /clients?cursor=abc
api 400 GET /clients?cursor=123456789012345678901
api 200 GET /clients?cursor=0&count=1000
close b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
api_pages /clients?count=1 clients id "alice carol"



=== TEST 4: DELETE /clients/{id}/session: an opt-in and a seed session are closed, offline is 404, stale presence is removed
--- scenario
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 $pid_a
connect b
send b SEND_CLIENT_ID bob
redis_wait_like "w:n1:" HGET ${PREFIX}client:{bob} ch
api 200 DELETE /clients/alice/session
api_body '{"id":"alice","kicked":true,"stale":false}'
recv a ERROR KICKED "kicked by the manager"
closed a
redis_wait 0 EXISTS ${PREFIX}client:{alice}
api 200 DELETE /clients/bob/session
api_json kicked true
closed b
redis_wait 0 EXISTS ${PREFIX}client:{bob}
api 404 DELETE /clients/alice/session
api_body '{"error":{"code":"NOT_FOUND","message":"client \"alice\" is not online"}}'
redis HSET ${PREFIX}client:{ghost} node n9 ch ${PREFIX}w:n9:1 srv 10.0.0.9:19000 sid 5
api 200 DELETE /clients/ghost/session
api_body '{"id":"ghost","kicked":true,"stale":true}'
redis_expect 0 EXISTS ${PREFIX}client:{ghost}
api 405 GET /clients/alice/session
api_header Allow DELETE
connect_worker c any
send c SEND_CLIENT_ID alice
recv c LOGIN_OK alice n1 *
send c SEND_PING
recv c PONG



=== TEST 5: POST /messages to online clients on either worker, opt-in and seed: delivered as over TCP, the uuid in the response
--- scenario
workers_login
api 201 POST /messages '{"to":"alice","message":"hi alice"}'
api_json status ROUTED
api_json to alice
api_capture u1 uuid
recv a RESP_MESSAGE_P2P "hi alice" system $u1
api 201 POST /messages '{"to":"bob","message":"hi bob","from":"alice"}'
api_capture u2 uuid
recv b RESP_MESSAGE_P2P "hi bob" alice $u2
redis_expect $u1 ZRANGE ${PREFIX}inbox:{alice} 0 -1
send a P2P_ACK alice $u1
redis_wait 0 EXISTS ${PREFIX}inbox:{alice}
connect s
send s SEND_CLIENT_ID sam
redis_wait_like "w:n1:" HGET ${PREFIX}client:{sam} ch
api 201 POST /messages '{"to":"sam","message":"<b>&\u2028 \u00e9"}'
api_capture u3 uuid
recv s RESP_MESSAGE_P2P "<b>&\u{2028} \u{e9}" system $u3
last_body_like s \\u003cb\\u003e\\u0026\\u2028 \xc3\xa9
api 200 GET /clients/sam/inbox
api_json messages.0.message "<b>&\u{2028} \u{e9}"
api_like "message":"\\u003cb\\u003e\\u0026\\u2028 é"
no_frame a
no_frame b



=== TEST 6: an offline client's inbox: pages, delete, then delivery at login
--- scenario
api 201 POST /messages '{"to":"bob","message":"one"}'
api_json status OFFLINE
api_capture u1 uuid
api 201 POST /messages '{"to":"bob","message":"two","from":"alice"}'
api_capture u2 uuid
api 201 POST /messages '{"to":"bob","message":"three"}'
api_capture u3 uuid
api 200 GET /clients/bob/inbox?count=2
api_json id bob
api_json total 3
api_count messages 2
api_json messages.0.seq 1
api_json messages.0.uuid $u1
api_json messages.0.from system
api_json messages.0.message one
api_json messages.1.from alice
api_json messages.1.message two
api_capture c cursor
api 200 GET "/clients/bob/inbox?count=2&cursor=$c"
api_count messages 1
api_json messages.0.message three
api_json cursor null
api 200 DELETE /clients/bob/inbox/$u2
api_body "{\"id\":\"bob\",\"uuid\":\"$u2\",\"deleted\":true}"
api 404 DELETE /clients/bob/inbox/$u2
api_json error.code NOT_FOUND
api 200 GET /clients/bob/inbox
api_json total 2
api 404 GET /clients/nobody/inbox
api 400 GET /clients/bob/inbox?cursor=-1
api 405 POST /clients/bob/inbox
api_header Allow "GET, HEAD"
connect b
send b SEND_CLIENT_ID bob
recv b RESP_MESSAGE_P2P one system $u1
recv b RESP_MESSAGE_P2P three system $u3
no_frame b



=== TEST 7: POST /messages: a full inbox, and every kind of bad body
--- config
    location / {
        fishchat_manager;
        fishchat_manager_inbox_max 2;
    }
--- scenario
api 201 POST /messages '{"to":"bob","message":"1"}'
api 201 POST /messages '{"to":"bob","message":""}'
api 409 POST /messages '{"to":"bob","message":"3"}'
api_body '{"error":{"code":"INBOX_FULL","message":"the inbox of \"bob\" is full"}}'
api 400 POST /messages '{"message":"x"}'
api_body '{"error":{"code":"BAD_REQUEST","message":"either \"to\" (a client id) or \"topic\" (a topic name) is needed"}}'
api 400 POST /messages '{"to":"bob","topic":"t","message":"x"}'
api 400 POST /messages '{"to":"bob"}'
api_json error.message "\"message\" (a string) is needed"
api 400 POST /messages '{"to":"bob","message":5}'
api 400 POST /messages '{"to":7,"message":"x"}'
api 400 POST /messages '{"to":"b b","message":"x"}'
api 400 POST /messages '{"topic":"{t}","message":"x"}'
api 400 POST /messages '{"to":"bob","message":"x","from":"{x}"}'
api 400 POST /messages '{"to":"bob","message":"x","from":7}'
api 400 POST /messages '[1,2]'
api_json error.message "a JSON object expected in the body"
api 400 POST /messages '{"to":'
api_like ^\{"error":\{"code":"BAD_REQUEST","message":"invalid JSON: 
api 400 POST /messages '{"to":"bob","message":"x"} trailing'
api 400 POST /messages
api_json error.code BAD_REQUEST
api 405 GET /messages
api_header Allow POST
api 404 POST /messages '{"topic":"nope","message":"x"}'
api_body '{"error":{"code":"NOT_FOUND","message":"no topic \"nope\""}}'
redis_expect 2 ZCARD ${PREFIX}inbox:{bob}
wait_log fishchat manager: 400 BAD_REQUEST: invalid JSON



=== TEST 8: fishchat_manager_body_max: 413 by Content-Length and for a chunked body
--- config
    location / {
        fishchat_manager;
        fishchat_manager_body_max 64;
    }
--- scenario
set_repeat pad a 60
api 413 POST /messages "{\"to\":\"bob\",\"message\":\"$pad\"}"
api_body '{"error":{"code":"BODY_TOO_LARGE","message":"a body is at most 64 bytes"}}'
api_header Content-Type application/json
api_chunked 413 POST /messages "{\"to\":\"bob\",\"message\":\"$pad\"}"
api_json error.code BODY_TOO_LARGE
set_repeat pad a 38
api 201 POST /messages "{\"to\":\"bob\",\"message\":\"$pad\"}"
api_chunked 201 POST /messages '{"to":"bob","message":"chunked"}'
redis_expect 2 ZCARD ${PREFIX}inbox:{bob}
wait_log fishchat manager: 413 BODY_TOO_LARGE



=== TEST 9: a location prefix, unknown endpoints, methods, URL-decoded segments, bytes that are not UTF-8
--- config
    location /api/ {
        fishchat_manager;
    }
--- scenario
api 404 GET /api/nothing
api_body '{"error":{"code":"NOT_FOUND","message":"no such endpoint"}}'
api 404 GET /api/
api 404 GET /api/clients/a/b
api 404 GET /api/topics/x/members/y/z
api 404 GET /api/clients/a/inbox/b/c
api 405 PATCH /api/topics/x
api_header Allow "GET, HEAD, DELETE"
api_json error.code METHOD_NOT_ALLOWED
api 405 POST /api/clients
api_header Allow "GET, HEAD"
api 405 DELETE /api/topics
api_header Allow "GET, HEAD, POST"
api 405 GET /api/topics/x/members/y
api_header Allow "PUT, DELETE"
api 200 GET /api/clients/
api_json cursor null
api 201 POST /api/messages '{"to":"a/b%","message":"slash"}'
api 200 GET /api/clients/a%2Fb%25
api_json id a/b%
api_json pending 1
api 200 GET /api/clients/a%2fb%25/inbox
api_json messages.0.message slash
api 404 GET /api/clients/%C3%28x
api_body '{"error":{"code":"NOT_FOUND","message":"no client \"\ufffd(x\""}}'
api 404 GET /api/clients/%e2%80%a8
api_like "no client \\"\\u2028\\""
api 400 GET /api/clients/%00x
api 400 GET /api/clients/x%0a
set_repeat long x 129
api 400 GET /api/clients/$long
set_repeat long x 128
api 404 GET /api/clients/$long



=== TEST 10: topics: create (Location), read, list, delete; the errors
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
api_header Location /topics/room
api_body '{"name":"room","creator":"alice","created":true}'
api 409 POST /topics '{"name":"room","creator":"bob"}'
api_body '{"error":{"code":"TOPIC_EXISTS","message":"topic \"room\" exists"}}'
api 400 POST /topics '{"name":"r m","creator":"bob"}'
api 400 POST /topics '{"name":"r2"}'
api_json error.code BAD_REQUEST
api 400 POST /topics '{"creator":"bob"}'
api 400 POST /topics '"room"'
api 200 GET /topics/room
api_json name room
api_json creator alice
api_like "created":\d{13},
api_json messages 0
api_json members 1
api_json history 0
redis_expect room SMEMBERS ${PREFIX}client:{alice}:topics
api 201 POST /topics '{"name":"sp/ce","creator":"bob"}'
api_header Location /topics/sp%2Fce
api 200 GET /topics/sp%2Fce
api_json creator bob
api_pages /topics?count=1 topics name "room sp/ce"
api_pages /topics topics members "1 1"
api 400 GET /topics?count=-3
api 200 DELETE /topics/room
api_body '{"name":"room","deleted":true,"members":1}'
redis_expect 0 EXISTS ${PREFIX}topic:{room} ${PREFIX}topic:{room}:members ${PREFIX}topic:{room}:h
redis_wait (empty) SMEMBERS ${PREFIX}client:{alice}:topics
api 404 GET /topics/room
api_body '{"error":{"code":"NOT_FOUND","message":"no topic \"room\""}}'
api 404 DELETE /topics/room
api 405 PUT /topics/room
api_header Allow "GET, HEAD, DELETE"
api_pages /topics topics name sp/ce



=== TEST 11: topic members: list, add (idempotent), remove; no topic, no member
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
api 200 PUT /topics/room/members/bob
api_body '{"name":"room","id":"bob","member":true,"online":false}'
api 200 PUT /topics/room/members/bob
redis_expect room SMEMBERS ${PREFIX}client:{bob}:topics
api 404 PUT /topics/nope/members/bob
api_body '{"error":{"code":"NOT_FOUND","message":"no topic \"nope\""}}'
api 400 PUT /topics/room/members/b%20b
api 200 GET /topics/room/members
api_json name room
api_json total 2
api_pages /topics/room/members?count=1 members id "alice bob"
api_pages /topics/room/members members position "0 0"
api 200 DELETE /topics/room/members/bob
api_body '{"name":"room","id":"bob","member":false,"online":false}'
redis_expect (empty) SMEMBERS ${PREFIX}client:{bob}:topics
api 404 DELETE /topics/room/members/bob
api_body '{"error":{"code":"NOT_FOUND","message":"\"bob\" is not a member of topic \"room\""}}'
api 404 DELETE /topics/nope/members/bob
api 404 GET /topics/nope/members
api 400 GET /topics/room/members?cursor=x
api 405 POST /topics/room/members
api_header Allow "GET, HEAD"
api 200 GET /topics/room
api_json members 1



=== TEST 12: a member added or removed while online (on either worker) gets the topic's messages, or stops getting them, at once
--- scenario
api 201 POST /topics '{"name":"room","creator":"carol"}'
workers_login
connect s
send s SEND_CLIENT_ID sam
redis_wait_like "w:n1:" HGET ${PREFIX}client:{sam} ch
api 200 PUT /topics/room/members/alice
api_json online true
api 200 PUT /topics/room/members/bob
api_json online true
api 200 PUT /topics/room/members/sam
api 201 POST /messages '{"topic":"room","message":"welcome"}'
api_json topic room
api_json seq 1
api_capture u1 uuid
recv a RESP_MESSAGE_TOPIC room welcome system $u1
recv b RESP_MESSAGE_TOPIC room welcome system $u1
recv s RESP_MESSAGE_TOPIC room welcome system
send a MY_TOPICS
recv a MY_TOPICS room
send a SEND_MESSAGE_TOPIC room "from alice" r1
recv_any_order a ACCEPTED r1 * || RESP_MESSAGE_TOPIC room "from alice" alice *
recv b RESP_MESSAGE_TOPIC room "from alice" alice *
recv s RESP_MESSAGE_TOPIC room "from alice" alice
api 200 DELETE /topics/room/members/alice
api_json online true
api 200 DELETE /topics/room/members/sam
api 201 POST /messages '{"topic":"room","message":"bye","from":"bob"}'
api_capture u2 uuid
recv b RESP_MESSAGE_TOPIC room bye bob $u2
no_frame a
no_frame s
send a MY_TOPICS
recv a MY_TOPICS
send a SEND_MESSAGE_TOPIC room x r2
recv a ERROR NOT_MEMBER *
send a SEND_PING
recv a PONG
api 200 GET /topics/room/history
api_count messages 3
api_json messages.1.from alice



=== TEST 13: a deleted topic: connected members (opt-in and seed) stay connected and get nothing more, its channel is left, the name can be taken again
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
workers_login
connect s
send s SEND_CLIENT_ID sam
redis_wait_like "w:n1:" HGET ${PREFIX}client:{sam} ch
api 200 PUT /topics/room/members/bob
api 200 PUT /topics/room/members/sam
api 201 POST /messages '{"topic":"room","message":"m1"}'
recv a RESP_MESSAGE_TOPIC room m1 system *
recv b RESP_MESSAGE_TOPIC room m1 system *
recv s RESP_MESSAGE_TOPIC room m1 system
redis_wait "${PREFIX}t:{room} 2" PUBSUB NUMSUB ${PREFIX}t:{room}
api 200 DELETE /topics/room
api_json members 3
redis_wait "${PREFIX}t:{room} 0" PUBSUB NUMSUB ${PREFIX}t:{room}
send a MY_TOPICS
recv a MY_TOPICS
send b SEND_MESSAGE_TOPIC room after r2
recv b ERROR NO_SUCH_TOPIC *
send b SEND_PING
recv b PONG
send s SEND_PING
api 201 POST /topics '{"name":"room","creator":"carol"}'
api 201 POST /messages '{"topic":"room","message":"the new room"}'
no_frame a
no_frame b
no_frame s
api 200 GET /topics/room
api_json creator carol
api_json members 1
api_json messages 1
send b JOIN_TOPIC room bob
recv b LOCATE_TOPIC_MSG_ADDR 127.0.0.1:$TEST_NGINX_STREAM_PORT room
api 201 POST /messages '{"topic":"room","message":"hello bob"}'
recv b RESP_MESSAGE_TOPIC room "hello bob" system *
no_frame a



=== TEST 14: topic messages reach members online and, at login, the offline ones; the history page by page, capped
--- config
    location / {
        fishchat_manager;
        fishchat_manager_topic_history 3;
    }
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
api 200 PUT /topics/room/members/bob
connect_worker a any
send a SEND_CLIENT_ID alice
recv a LOGIN_OK alice n1 $pid_a
api 201 POST /messages '{"topic":"room","message":"m1"}'
api 201 POST /messages '{"topic":"room","message":"m2","from":"carol"}'
api 201 POST /messages '{"topic":"room","message":"m3"}'
api 201 POST /messages '{"topic":"room","message":"m4"}'
api 201 POST /messages '{"topic":"room","message":"m5"}'
api_json seq 5
api_capture u5 uuid
recv a RESP_MESSAGE_TOPIC room m1 system *
recv a RESP_MESSAGE_TOPIC room m2 carol *
recv a RESP_MESSAGE_TOPIC room m3 system *
recv a RESP_MESSAGE_TOPIC room m4 system *
recv a RESP_MESSAGE_TOPIC room m5 system $u5
api 200 GET /topics/room/history?count=2
api_json name room
api_json last 5
api_count messages 2
api_json messages.0.seq 4
api_json messages.0.message m4
api_json messages.1.seq 5
api_json messages.1.uuid $u5
api_json messages.1.from system
api_json cursor 4
api 200 GET /topics/room/history?count=2&cursor=4
api_count messages 1
api_json messages.0.seq 3
api_json cursor null
api 200 GET /topics/room/history
api_count messages 3
api 200 GET /topics/room/history?cursor=1
api_count messages 0
api_json cursor null
api 404 GET /topics/nope/history
api 400 GET /topics/room/history?count=0
connect_worker b other a
send b SEND_CLIENT_ID bob
recv b LOGIN_OK bob n1 *
recv b TOPIC_GAP room 2
recv b RESP_MESSAGE_TOPIC room m3 system *
recv b RESP_MESSAGE_TOPIC room m4 system *
recv b RESP_MESSAGE_TOPIC room m5 system $u5



=== TEST 15: fishchat_manager_token: 401 without a valid bearer token
--- config
    location / {
        fishchat_manager;
        fishchat_manager_token s3cret;
    }
--- scenario
api 401 GET /nodes
api_header WWW-Authenticate "Bearer realm=\"fishchat\""
api_body '{"error":{"code":"UNAUTHORIZED","message":"a valid bearer token is required"}}'
api 401 POST /messages '{"to":"bob","message":"x"}'
api_headers "Authorization: Bearer wrong"
api 401 GET /nodes
api_headers "Authorization: Bearer s3cre"
api 401 GET /nodes
api_headers "Authorization: Bearer s3cret2"
api 401 GET /nodes
api_headers "Authorization: Basic czNjcmV0"
api 401 GET /nodes
api_headers "Authorization: Bearer"
api 401 GET /nodes
api_headers "Authorization: Bearer s3cret"
api 200 GET /nodes
api 201 POST /messages '{"to":"bob","message":"x"}'
api_headers "Authorization: bearer   s3cret"
api 404 GET /topics/room
api_headers
api 401 GET /topics/room
wait_log fishchat manager: 401 UNAUTHORIZED
redis_expect 1 ZCARD ${PREFIX}inbox:{bob}



=== TEST 16: nginx's own allow / deny in front of the manager
--- config
    location / {
        allow 127.0.0.2;
        deny all;
        fishchat_manager;
    }
--- scenario
api 403 GET /nodes
--- error_log
access forbidden by rule
--- no_error_log
[alert]
[emerg]



=== TEST 17: Redis unreachable: 503 REDIS_UNAVAILABLE with Retry-After, once the wait is over
--- main_config
    fishchat_node n1;
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT4;
    fishchat_redis_prefix fct:manager:;
    fishchat_redis_timeout 300ms;
--- no_msg
--- scenario
api 503 GET /topics/room
api_header Retry-After 1
api_body '{"error":{"code":"REDIS_UNAVAILABLE","message":"Redis is unavailable"}}'
api 503 POST /messages '{"to":"bob","message":"x"}'
api_json error.code REDIS_UNAVAILABLE
api 503 DELETE /clients/bob/session
api 400 POST /messages '{"to":"bob"}'



=== TEST 18: Redis dies while requests wait for it: 503 (REDIS_UNAVAILABLE, or NOT_CONFIRMED for a write), and the workers go on when it is back
--- main_config
    fishchat_node n1;
    fishchat_redis 127.0.0.1:$TEST_NGINX_FC_PORT3;
    fishchat_redis_prefix fct:manager:;
    fishchat_redis_timeout 10s;
--- no_msg
--- scenario_timeout: 15
--- scenario
redis2 start $TEST_NGINX_FC_PORT3 fresh
api 404 GET /topics/room
api 201 POST /topics '{"name":"room","creator":"alice"}'
redis2_cmd $TEST_NGINX_FC_PORT3 CLIENT PAUSE 20000 WRITE
api_send c GET /topics/room
redis_paused $TEST_NGINX_FC_PORT3
api_send d POST /messages '{"topic":"room","message":"x"}'
redis_paused $TEST_NGINX_FC_PORT3
redis2 kill $TEST_NGINX_FC_PORT3
api_recv c 503
api_header Retry-After 1
api_body '{"error":{"code":"REDIS_UNAVAILABLE","message":"Redis is unavailable"}}'
api_recv d 503
api_json error.code NOT_CONFIRMED
redis2 start $TEST_NGINX_FC_PORT3
api 200 GET /topics/room
api_json creator alice
api 201 POST /messages '{"topic":"room","message":"y"}'
api 200 GET /clients
redis2 kill $TEST_NGINX_FC_PORT3



=== TEST 19: requests whose clients go away while Redis is slow (a pause): nothing is left behind, a message posted is stored
--- main_config
    fishchat_node n1;
    fishchat_redis_timeout 20s;
--- scenario_timeout: 10
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
redis CLIENT PAUSE 5000 WRITE
api_send c GET /topics/room
redis_paused
api_send d POST /messages '{"to":"bob","message":"left"}'
redis_paused
api_send e GET /clients?count=5
redis_paused
close c
close d
close e
wait_log client prematurely closed connection(?s:.*)client prematurely closed connection(?s:.*)client prematurely closed connection
redis CLIENT UNPAUSE
api 200 GET /topics/room
redis_wait 1 ZCARD ${PREFIX}inbox:{bob}
api 200 GET /clients/bob/inbox
api_json messages.0.message left



=== TEST 20: 1,000 requests at once on 1,000 connections, then one more on each (keep-alive)
--- scenario_timeout: 120
--- scenario
api 201 POST /topics '{"name":"room","creator":"alice"}'
api_flood 1000
redis_expect $flood_posts ZCARD ${PREFIX}inbox:{flood}
api 200 GET /clients/flood
api_json pending $flood_posts



=== TEST 21: Redis refuses a script (a key of the wrong type): 500 INTERNAL, logged at error
--- scenario
redis SET ${PREFIX}client:{odd} text
api 500 GET /clients/odd
api_body '{"error":{"code":"INTERNAL","message":"Redis refused the command"}}'
api 200 GET /nodes
--- error_log
fishchat manager: script failed: 
fishchat manager: 500 INTERNAL: Redis refused the command
--- no_error_log
[alert]
[emerg]



=== TEST 22: without fishchat_redis the manager refuses to start
--- main_config
    fishchat_node n1;
--- no_redis
--- no_msg
--- must_die
--- suppress_stderr
--- error_log
[emerg]
"fishchat_manager" needs "fishchat_redis"



=== TEST 23: Redis answers nothing for longer than fishchat_redis_timeout while sessions and requests wait: each is answered, the workers go on
--- main_config
    fishchat_node n1;
    fishchat_redis_timeout 500ms;
--- scenario_timeout: 10
--- scenario
connect a
send a SEND_CLIENT_ID alice
connect b
send b SEND_CLIENT_ID bob
connect c
send c SEND_CLIENT_ID carol
redis_wait_like "w:n1:" HGET ${PREFIX}client:{alice} ch
redis_wait_like "w:n1:" HGET ${PREFIX}client:{bob} ch
redis_wait_like "w:n1:" HGET ${PREFIX}client:{carol} ch
redis CLIENT PAUSE 3000 WRITE
api_send h GET /topics/room
redis_paused
send a SEND_MESSAGE_P2P dave "to dave" alice
redis_paused
send b SEND_MESSAGE_P2P dave "to dave" bob
redis_paused
send c SEND_MESSAGE_P2P dave "to dave" carol
redis_paused
api_recv h 503
closed a
closed b
closed c
redis CLIENT UNPAUSE
api 404 GET /topics/room
connect d
send d HELLO 1
recv d HELLO 1 n1 *
send d SEND_CLIENT_ID alice
recv d LOGIN_OK alice n1 *
