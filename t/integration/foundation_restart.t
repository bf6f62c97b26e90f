#!/usr/bin/perl
# Foundation: a child killed with SIGKILL is restarted by master within 2 s,
# `smtpctl status` counts the restart, the other children are left alone,
# and a child that keeps dying is retried with a growing delay, never in a
# tight loop, and reported in the log.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Postern::Test;
use Postern::Util qw(pid_alive wait_until);

my @CHILDREN = qw(smtpd qmgr dnsd deliver relay local signer);

my $pt = Postern::Test->new;
$pt->start;

sub status_by_name {
    my $st = $pt->status or return {};
    return { map { $_->{name} => $_ } @{ $st->{processes} } };
}

# The new process of $name as seen in /proc (independent of smtpctl).
sub proc_pid {
    my ($name) = @_;
    my @p = map { $_->{pid} } grep { $_->{name} eq $name } $pt->procs;
    return @p == 1 ? $p[0] : undef;
}

my $before = status_by_name();
my $mpid = $pt->master_pid;

for my $name (@CHILDREN) {
    my $old = $before->{$name}{pid};
    ok($old && pid_alive($old), "$name running as $old") or next;
    my %others = map { $_ => $before->{$_}{pid} } grep { $_ ne $name } @CHILDREN;
    kill 'KILL', $old;
    my $t0 = time();
    my $new = wait_until(2, sub { my $p = proc_pid($name); $p && $p != $old ? $p : 0 }, 0.02);
    ok($new, sprintf("%s restarted within 2 s (new pid %s after %.2f s)", $name, $new || '-', time() - $t0));
    ok(!pid_alive($old), "old $name $old is gone");
    my $now;
    wait_until(10, sub { $now = status_by_name(); ($now->{$name}{pid} // 0) == ($new // -1) }, 0.2);
    is($now->{$name}{pid}, $new, "smtpctl status shows the new $name pid");
    is($now->{$name}{restarts}, ($before->{$name}{restarts} // 0) + 1, "$name restarts counted");
    is($now->{$name}{state}, 'running', "$name running again");
    for my $o (sort keys %others) {
        is($now->{$o}{pid}, $others{$o}, "$o untouched by the restart of $name");
    }
    is($now->{master}{pid}, $mpid, 'master unchanged');
    ok($pt->wait_log(qr/\]: error: .*\b\Q$name\E\[$old\]/, 5), "the death of $name\[$old] is logged as an error");
    $before = $now;
}

# The restarted children work together: status answers from all of them.
my $st = status_by_name();
is(scalar(grep { ($st->{$_}{state} // '') eq 'running' } @CHILDREN), scalar(@CHILDREN),
    'all children answer status after the restarts');

# A child that keeps dying: restarted every time, with a growing delay.
{
    my $name = 'dnsd';
    my (@gaps, $pid);
    $pid = proc_pid($name);
    for my $i (1 .. 5) {
        last unless $pid;
        kill 'KILL', $pid;
        my $t0 = time();
        my $old = $pid;
        $pid = wait_until(30, sub { my $p = proc_pid($name); $p && $p != $old ? $p : 0 }, 0.02);
        push @gaps, time() - $t0;
    }
    is(scalar(@gaps), 5, 'five quick deaths');
    ok($pid, "$name still restarted after the fifth death");
    diag(sprintf('restart delays: %s s', join(' ', map { sprintf '%.2f', $_ } @gaps)));
    cmp_ok($gaps[-1], '>', 0.3, 'the fifth restart waits (no tight restart loop)');
    cmp_ok($gaps[-1], '>', $gaps[0], 'the delay grew');
    ok($pt->wait_log(qr/master\[\d+\]: error: .*\b$name\b.*(keeps|again|loop|repeated|times)/i, 5),
        'the crash loop is reported in the log');
    ok(wait_until(15, sub { (status_by_name()->{$name}{state} // '') eq 'running' }, 0.5),
        "$name running again");
    is(status_by_name()->{$name}{restarts}, $before->{$name}{restarts} + 5, 'five more restarts counted');
}

ok(pid_alive($mpid), 'master survived all of it');
done_testing;
