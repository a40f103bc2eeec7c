#!/usr/bin/env bash
# The differential fuzzer of the frame decoder (bench/fuzz/frame_fuzz.c):
# builds it with clang's libFuzzer, AddressSanitizer and UBSan, seeds it
# with the frames the tests send (t/*.t) and a few odd ones, and runs it.
#
#   bench/fuzz/run.sh [SECONDS]      default 20 (make test runs it so)
#   bench/fuzz/run.sh 3600           a long run; the corpus it grows is
#                                    kept in var/fuzz/corpus
#
# Prints libFuzzer's last status line (executions, coverage); exits non-0
# on any difference or sanitizer report (the input that shows it is kept
# in var/fuzz/crash-*).

set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
out=$top/var/fuzz
mkdir -p "$out/build" "$out/corpus"

# the decoder alone, with the shims as its nginx headers (a quoted include
# looks next to the file first: it is copied next to them)
cp "$top/src/ngx_fishchat_common/ngx_fishchat_frame_decode.c" \
   "$top/bench/fuzz/shim/"*.h "$top/bench/fuzz/frame_fuzz.c" "$out/build/"

clang -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -I "$out/build" \
    "$out/build/ngx_fishchat_frame_decode.c" "$out/build/frame_fuzz.c" \
    -ljansson -o "$out/frame_fuzz"

# seeds: the commands the tests send, as clients write them
perl -ne '
    next unless /^send\s+\S+\s+(\S+)(.*)$/;
    my ($cmd, $rest) = ($1, $2);
    my @a = $rest =~ /"((?:[^"\\]|\\.)*)"|(\S+)/g;
    @a = grep { defined } @a;
    my $j = join ",", map { s/(["\\])/\\$1/gr =~ s/^/"/r . "\"" } @a;
    print "{\"CmdName\":\"$cmd\",\"Args\":[$j]}\n";
' "$top"/t/*.t | sort -u | head -2000 | {
    n=0
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s\n' "$line" > "$out/corpus/t$n"
    done
}

printf '{"CmdName":"SEND_PING","Args":[]}\n' > "$out/corpus/s1"
printf '{"CmdName":"X","Args":["\\u00e9","a\\"b"]}' > "$out/corpus/s2"
printf ' {"Args":["a"],"CmdName":"X"} ' > "$out/corpus/s3"
printf '{"CmdName":"X","Args":["\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"]}\r\n' \
    > "$out/corpus/s4"
printf '{"CmdName":"X","Args":null}' > "$out/corpus/s5"

"$out/frame_fuzz" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -artifact_prefix="$out/" \
    -print_final_stats=1 "$out/corpus" > "$out/last.log" 2>&1 \
    || { tail -40 "$out/last.log"; exit 1; }

grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$out/last.log" | tail -1
grep -E 'stat::number_of_executed_units|stat::peak_rss' "$out/last.log"
