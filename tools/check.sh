#!/bin/sh
# check.sh - run every test through prove: the C unit tests (executables
# in build/t/unit that print TAP), the fuzzers for a short time (when built),
# and the Perl integration tests.
set -u
cd "$(dirname "$0")/.." || exit 1

tests=""
for t in build/t/unit/*; do
    case "$t" in *.o | *.d) continue ;; esac
    [ -x "$t" ] && tests="$tests $t"
done
[ -d build/fuzz ] && [ -n "$(ls build/fuzz 2>/dev/null)" ] && tests="$tests t/fuzz.t"
for t in t/integration/*.t; do
    [ -f "$t" ] && tests="$tests $t"
done

# Sanitizer builds: known leaks inside system libraries only (see the file).
export LSAN_OPTIONS="suppressions=$(pwd)/t/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# Integration tests start whole instances; two at a time fits a 2-core machine.
exec prove -I t/lib --timer -j "${PROVE_JOBS:-2}" $tests
