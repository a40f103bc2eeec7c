# util/fishchat-client against a real gateway and msg server: what the
# README's quick start shows.

use Test::FishChat;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

repeat_each(1);
no_shuffle();

my $client = abs_path(dirname(__FILE__) . '/../util/fishchat-client');

# client ID INPUT EXPECTED: run the client with INPUT on its stdin (\n for
# new lines) through the gateway of this block; its output must be EXPECTED
# (\n for new lines; "<uuid>" matches a uuid)
Test::FishChat::add_step(client => sub {
    my ($sc, $rest) = @_;
    my ($id, $input, $expected) = $sc->tokens($rest);

    # nginx may still be starting (valgrind): wait until both ports listen
    for my $port ($ENV{TEST_NGINX_FC_PORT1}, $sc->port) {
        $sc->connect('_probe', $port);
        close $sc->{clients}{_probe}{sock};
        delete $sc->{clients}{_probe};
    }

    my $out = html_dir() . "/client-$id.out";
    my $in = html_dir() . "/client-$id.in";

    open my $fh, '>', $in or die "$!\n";
    print $fh $input;
    close $fh;

    my $rc = system("$client --id $id --quiet --timeout 5"
                    . " --gateway 127.0.0.1:$ENV{TEST_NGINX_FC_PORT1}"
                    . " < $in > $out 2>&1");

    open $fh, '<', $out or die "$!\n";
    my $got = do { local $/; <$fh> };
    close $fh;

    my $re = quotemeta($expected);
    $re =~ s/\\<uuid\\>/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g;

    die "the client exited with " . ($rc >> 8) . ": $got\n" if $rc != 0;
    die "the client printed:\n$got\n" if $got !~ /^$re\z/;
});

plan tests => repeat_each() * (3 * blocks());

run_tests();

__DATA__

=== TEST 1: alice writes to bob through the gateway, bob reads it later
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_servers 127.0.0.1:$TEST_NGINX_STREAM_PORT;
    }
--- stream_server_config
    fishchat_msg;
--- scenario
client alice "@bob hello bob\n@carol hi carol\n" "ok <uuid>\nok <uuid>\n"
redis_wait 1 ZCARD ${PREFIX}inbox:{bob}
client bob "/wait 1 5\n" "alice: hello bob\n"
redis_wait 0 ZCARD ${PREFIX}inbox:{bob}
redis_wait 1 ZCARD ${PREFIX}inbox:{carol}
--- no_error_log
[error]
[alert]



=== TEST 2: a refusal is shown, the client goes on
--- stream_config
    server {
        listen 127.0.0.1:$TEST_NGINX_FC_PORT1;
        fishchat_gateway;
        fishchat_gateway_servers 127.0.0.1:$TEST_NGINX_STREAM_PORT;
    }
--- stream_server_config
    fishchat_msg;
    fishchat_msg_inbox_max 1;
--- scenario
client alice "@bob one\n@bob two\n" "ok <uuid>\nerror INBOX_FULL the inbox of the recipient is full\n"
client alice "/ping\n" "pong\n"
--- no_error_log
[error]
[alert]
