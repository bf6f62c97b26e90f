#!/bin/sh
# tools/first-run.sh - the README's "First run" as a newcomer does it, and
# checked: in a copy of this tree, `make run` in the background (the first
# terminal), then the README's lines between "<!-- first-run" and
# "<!-- /first-run -->", taken from README.md and run as they are (the
# second terminal). It passes when the message reached the sink, the log
# says status=sent and the queue is empty.
#
#   tools/first-run.sh [--reuse-build]
#
# --reuse-build copies build/ and bin/ too, so make finds them up to date
# (the test suite uses it; a newcomer's run builds from nothing). Every
# wait is bounded; at the end it stops what it started, by PID: Postern's
# master (its pid from smtpctl status) and the README lines' process group
# (the sink they start in the background). Exit 0 on success.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
reuse=0
[ "${1:-}" = "--reuse-build" ] && reuse=1
work=$(mktemp -d "${TMPDIR:-/tmp}/postern-first-run-XXXXXX") || exit 1
chmod 755 "$work"
tree="$work/postern"
fail() {
    echo "first-run: FAIL: $*"
    [ -f "$tree/run.log" ] && { echo "--- make run:"; tail -n 30 "$tree/run.log"; }
    [ -f "$work/terminal2.out" ] && { echo "--- second terminal:"; cat "$work/terminal2.out"; }
    cleanup
    exit 1
}
master=""
make_pid=""
t2=""
cleanup() {
    [ -n "$master" ] && kill -TERM "$master" 2>/dev/null
    if [ -n "$make_pid" ]; then
        i=0
        while kill -0 "$make_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "$make_pid" 2>/dev/null
    fi
    [ -n "$t2" ] && kill -TERM "-$t2" 2>/dev/null
    [ "${POSTERN_KEEP:-0}" = 1 ] && echo "first-run: kept $work" || rm -rf "$work"
}

# the tree as a clone would have it (plus uncommitted changes), without
# what a build or a run left
mkdir -p "$tree"
(cd "$src" && tar -cf - --exclude=./run --exclude=./bench/work --exclude=./build --exclude=./bin .) |
    (cd "$tree" && tar -xf -) || fail "cannot copy the tree"
if [ $reuse -eq 1 ]; then
    (cd "$src" && tar -cf - build bin) | (cd "$tree" && tar -xf -) || fail "cannot copy the build"
fi
cd "$tree" || fail "no tree"

# the README's second-terminal lines
sed -n '/^<!-- first-run/,/^<!-- \/first-run -->/p' README.md | sed '1d;$d' | sed 's/^    //' \
    >"$work/terminal2.sh"
[ -s "$work/terminal2.sh" ] || fail "README.md has no first-run block"
echo "first-run: the README's lines:"
sed 's/^/    /' "$work/terminal2.sh"

# the first terminal: make run (build included), until "postern ready"
make run >run.log 2>&1 &
make_pid=$!
i=0
until grep -q 'postern ready' run.log 2>/dev/null; do
    kill -0 "$make_pid" 2>/dev/null || fail "make run ended before postern was ready"
    i=$((i + 1))
    [ $i -gt 1800 ] && fail "postern not ready after 180 s"
    sleep 0.1
done
master=$(bin/smtpctl -c etc --json status 2>/dev/null |
    sed -n 's/.*"name":"master","pid":\([0-9]*\).*/\1/p')
[ -n "$master" ] || fail "smtpctl status did not name master"

# the second terminal, in its own process group
setsid sh -e "$work/terminal2.sh" >"$work/terminal2.out" 2>&1 &
t2=$!
i=0
while kill -0 "$t2" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 600 ] && fail "the README's lines did not finish in 60 s"
    sleep 0.1
done
wait "$t2" || fail "a README line failed"

# what the README says happens
i=0
until grep -q 'to=<someone@sink.test>.*status=sent' run.log; do
    i=$((i + 1))
    [ $i -gt 300 ] && fail "no status=sent for someone@sink.test in the log"
    sleep 0.1
done
grep -q 'It works\.' "$work/terminal2.out" || fail "the sink did not print the message"
grep -q 'queue is empty' "$work/terminal2.out" || fail "show queue did not say the queue is empty"
grep 'status=sent' run.log | sed 's/^/first-run: log: /'
echo "first-run: ok"
cleanup
exit 0
