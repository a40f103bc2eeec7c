# The frame decoder's fast path against jansson (bench/fuzz/frame_fuzz.c):
# libFuzzer runs for FISHCHAT_FUZZ_SECS (20) seconds from the frames the
# tests send; any frame the fast path decodes otherwise than jansson, or
# any sanitizer report, fails.  A long run: bench/fuzz/run.sh 3600.

use strict;
use warnings;

use Test::More tests => 1;

my $secs = $ENV{FISHCHAT_FUZZ_SECS} || 20;
my $out = `bench/fuzz/run.sh $secs 2>&1`;
my $rc = $? >> 8;

diag($out) if $rc != 0;
note($out);

is($rc, 0, "the fast path decodes as jansson does, $secs s of libFuzzer");
