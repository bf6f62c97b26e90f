#!/usr/bin/perl
# Foundation: SIGTERM and `smtpctl stop` stop everything and leave no process
# behind; children exit when master is killed; a second master on the same
# spool is refused; master starts again over the leftovers of a crash.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(WIFEXITED WEXITSTATUS);
use Postern::Test;
use Postern::Util qw(pid_alive wait_until slurp);

my @CHILDREN = qw(smtpd qmgr dnsd deliver relay local signer);

my $pt = Postern::Test->new;
my $run = $pt->spool . '/run';

sub all_pids {
    my $st = $pt->status or return ();
    my %p = map { $_->{pid} => $_->{name} } @{ $st->{processes} };
    $p{ $_->{pid} } //= $_->{name} for $pt->procs;
    return %p;
}

sub none_alive {
    my (%p) = @_;
    return !grep { pid_alive($_) } keys %p;
}

sub describe { my (%p) = @_; return join ' ', map { "$p{$_}\[$_]" . (pid_alive($_) ? '(alive)' : '') } sort keys %p }

# 1. SIGTERM, with an SMTP session open.
{
    $pt->start;
    my %p = all_pids();
    is(scalar(keys %p), 1 + @CHILDREN, 'master and every child before the stop') or diag(describe(%p));
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pt->port, Timeout => 10);
    ok($c && scalar(<$c>), 'an SMTP session is open');
    $pt->signal('TERM');
    my $st = $pt->wait_exit(30);
    ok(defined $st, 'master exits after SIGTERM');
    ok(defined $st && WIFEXITED($st) && WEXITSTATUS($st) == 0, 'with exit status 0')
        or diag("wait status " . ($st // 'undef'));
    ok(wait_until(3, sub { none_alive(%p) }), 'every recorded process is gone') or diag(describe(%p));
    is(scalar($pt->procs), 0, 'no process of this instance in /proc');
    ok(!-e "$run/master.pid", 'pid file removed');
    ok(!-e "$run/control.sock", 'control socket removed');
    ok($pt->wait_log(qr/master\[\d+\]: info: .*stopped/, 1), 'master logs that it stopped');
    my ($rc, undef, $err) = $pt->smtpctl3('status');
    is($rc, 2, 'status afterwards exits 2');
    like($err, qr/not running/i, 'and says not running');
    close $c if $c;
    $pt->stop;
    is(scalar($pt->leftovers), 0, 'the harness had nothing to kill');
}

# 2. smtpctl stop.
{
    $pt->start;
    my %p = all_pids();
    my ($rc, $out) = $pt->smtpctl('stop');
    is($rc, 0, 'smtpctl stop exits 0') or diag($out);
    ok(defined $pt->wait_exit(30), 'master exits after smtpctl stop');
    ok(wait_until(3, sub { none_alive(%p) }), 'every recorded process is gone') or diag(describe(%p));
    $pt->stop;
    is(scalar($pt->leftovers), 0, 'the harness had nothing to kill');
}

# 3. A second master on the same configuration is refused.
{
    $pt->start;
    my %p = all_pids();
    my ($rc, $out, $err) = $pt->_run(20, $pt->root . '/bin/master', '-c', $pt->etc, '-d');
    isnt($rc, 0, 'a second master exits non-zero');
    like($out . $err, qr/already running|\b$pt->{master_pid}\b/i, 'saying one is already running')
        or diag($out . $err);
    my %q = all_pids();
    is_deeply([sort keys %q], [sort keys %p], 'the running instance is undisturbed');
    like(slurp("$run/master.pid"), qr/^\s*$pt->{master_pid}\s*$/, 'pid file still names the first master');
}

# 4. kill -9 of master: the children notice and exit by themselves.
{
    my %p = all_pids();
    my $mpid = $pt->master_pid;
    kill 'KILL', $mpid;
    ok(defined $pt->wait_exit(5), 'master killed');
    delete $p{$mpid};
    ok(wait_until(10, sub { none_alive(%p) }), 'the children exit when master dies') or diag(describe(%p));
    $pt->stop;
    is(scalar($pt->leftovers), 0, 'the harness had nothing to kill') or diag(join ' ', $pt->leftovers);

    # 5. and master starts again over the stale pid file and socket.
    ok($pt->start(nodie => 1), 'master starts again after the crash') or diag($pt->start_error);
    my $st = $pt->status;
    is(scalar(@{ $st->{processes} || [] }), 1 + @CHILDREN, 'with all its children');
    $pt->stop;
    is(scalar($pt->leftovers), 0, 'and stops cleanly');
}

done_testing;
