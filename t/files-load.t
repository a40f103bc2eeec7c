# Files under load (issue 15): chat round trips stay quick while 20 uploads
# of 20 MB each run at once.  See t/files.t for the uploads themselves
# (docs/files.md) and t/media-workers.t TEST 2 for the same measure while
# a recording is remuxed.
#
# One worker: the uploads and the chat sessions share one event loop,
# which must keep answering while it reads 400 MB of request bodies into
# temporary files and while the thread pool hashes them (SHA-256, never
# on the loop) and renames them into the store.  A logged-in client pings
# back to back (SEND_PING -> PONG, opt-in): first without uploads (the
# baseline), then from the moment 20 forked children are released to PUT
# their bodies until the last of them has its 201 (upload_pings in
# Test::FishChat::Files), then again after.  The bound is
# max(5 x baseline median, baseline median + 20 ms), and at least 50
# round trips must end within the uploads (they take a few seconds here;
# back to back, thousands of round trips fit in that window).
#
# Every upload must answer 201 with its id, size, type and the SHA-256
# computed here (Digest::SHA) over the random bytes this test made; then
# every file GETs back whole (its length and SHA-256) and the store holds
# 20 files.
#
# Blocks get, unless they say otherwise, the config of t/files.t with
# room for the load: client_max_body_size 64m, fishchat_files_quota 2g
# (20 x 20 MB from two ids is 200 MB each; the default is 1g).

use Test::FishChat;
use Test::FishChat::Msg;
use Test::FishChat::Files;

repeat_each(1);
no_shuffle();
no_root_location();

# info, not debug: every line the event loop writes costs it time, and
# the debug log of 400 MB of request bodies would be most of the work
log_level('info');

# room for the load: 20 x 20 MB from two ids is 200 MB each
files_blocks(body_max => '64m', main => <<'_EOC_');
    fishchat_files_quota 2g;
_EOC_

plan tests => msg_plan();

run_tests();

__DATA__

=== TEST 1: 20 concurrent uploads of 20 MB (201, the right SHA-256, each GETs back whole) while chat round trips stay within max(5 x baseline, baseline + 20 ms)
--- scenario_timeout: 40
--- scenario
hello_login a alice
hello_login b bob
# c pings: it uploads nothing, so nothing comes between its PONGs
hello_login c carol
# warm up (the first round trips pay for page faults), then the baseline
ping_stats warm c 50
ping_stats base c 300
upload_pings during c 20 20971520 application/octet-stream a b
latency_bound during base 50
# every file is whole in the store and comes back
tree_count store 20
uploads_get during 20 20971520
redis_expect ready HGET ${PREFIX}file:{$during_id_1} state
# and after it, as before
ping_stats after c 300
latency_bound after base 300
--- no_error_log
[error]
[alert]
[emerg]
