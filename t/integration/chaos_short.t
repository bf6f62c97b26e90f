# chaos_short.t - the short form of bench/chaos: 600 messages at 60/s
# while 12 SIGKILLs hit every role twice (master smtpd qmgr dnsd deliver
# relay; a killed master is started again by the script, as systemd
# would). Fails when a message that got a 250 after its final dot never
# reached the sink, when the queue does not drain, or when a role was
# never killed. Duplicates are allowed (a kill between the sink's 250
# and the removal of the queue file) and printed with the table. Before
# that, a self-test of the counting: a sink that forgets some of the
# messages it accepts must be reported as losing exactly those.
# CHAOS_SEED=N fixes the kill plan; the seed used is always printed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use POSIX qw(:sys_wait_h);
use Postern::Util qw(read_jsonl slurp wait_until);

my $root = abs_path("$FindBin::Bin/../..");
my $seed = $ENV{CHAOS_SEED} // (time % 100000);

# chaos(NAME, ARGS...): run bench/chaos with --out a temp dir; returns
# (its exit status or -1 on timeout, the result from runs.jsonl, output).
sub chaos {
    my ($name, @args) = @_;
    my $out = tempdir("chaos-$name-XXXXXXXX", TMPDIR => 1, CLEANUP => !$ENV{POSTERN_KEEP});
    my $log = "$out/output.txt";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $log;
        open STDERR, '>&', \*STDOUT;
        exec $^X, "$root/bench/chaos", @args, '--out', $out, '--quiet',
            ($ENV{POSTERN_KEEP} ? ('--keep') : ()) or POSIX::_exit(127);
    }
    my $st;
    my $done = wait_until(240, sub { waitpid($pid, WNOHANG) == $pid ? ($st = $?, 1) : 0 }, 0.1);
    if (!$done) {
        kill 'TERM', $pid;    # bench/chaos stops what it started
        wait_until(20, sub { waitpid($pid, WNOHANG) == $pid }, 0.1)
            or do { kill 'KILL', $pid; waitpid($pid, 0) };
        $st = -1;
    }
    my $text = slurp($log);
    ok($done, "$name: bench/chaos finished within 240 s") or diag($text);
    my ($r) = reverse read_jsonl("$out/runs.jsonl");
    ok($r && !$r->{error}, "$name: the campaign ran to its end") or diag($r ? $r->{error} : $text);
    return ($st, $r // {}, -s "$out/table.md" ? slurp("$out/table.md") : $text);
}

# The counting first: a sink that answers 250 to every 20th message
# without writing it down must make the run report exactly those as lost.
my ($sst, $self) = chaos('selftest', '--messages', 60, '--kills', 0, '--rate', 60,
    '--clients', 2, '--drain', 3, '--sink-forget', 20, '--no-dns', '--seed', $seed);
is($self->{accepted}, 60, 'self-test: 60 accepted');
is($self->{lost}, 3, 'self-test: the 3 messages the sink forgot are reported lost');
ok(!$self->{drained}, 'self-test: and the run is not drained');
is($sst >> 8, 1, 'self-test: bench/chaos exits 1 on a loss');

my ($st, $r, $table) = chaos('campaign', '--messages', 600, '--kills', 12, '--rate', 60,
    '--clients', 4, '--drain', 60, '--seed', $seed);
is($r->{lost}, 0, 'no message that got a 250 was lost');
for my $d (@{ $r->{lost_detail} || [] }) {
    diag("lost: message $d->{message} $d->{message_id} (queue ID $d->{queue_id}):\n    "
        . join("\n    ", @{ $d->{log} }));
}
ok($r->{drained}, 'queue/ empty and every accepted message at the sink within the drain window')
    or diag("queue/ has $r->{queue_left} files");
cmp_ok($r->{accepted} // 0, '>=', 540, 'at least 90% of the 600 messages were accepted');
is($r->{arrived}, $r->{accepted}, 'arrived = accepted');
for my $role (qw(master smtpd qmgr dnsd deliver relay)) {
    cmp_ok($r->{kills_by_role}{$role} // 0, '>=', 1, "$role was killed");
}
is($r->{restarts_by_role}{master}, $r->{kills_by_role}{master}, 'master was started again after each kill');
is($r->{sanitizer_reports}, 0, "no sanitizer report in master's log");
is($st, 0, 'bench/chaos exited 0');
diag("seed $seed\n$table");
done_testing();
