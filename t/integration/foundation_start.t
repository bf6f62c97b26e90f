#!/usr/bin/perl
# Foundation: master starts every child; users, chroots and privileges of
# each process as DESIGN section 1 says; pid file and control socket.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Cwd qw(abs_path);
use IO::Socket::INET;
use Postern::Test;
use Postern::Util qw(pid_alive slurp);

my @CHILDREN = qw(smtpd qmgr dnsd deliver relay local signer);
my $as_root = $> == 0;

my $pt = Postern::Test->new;
$pt->start;
my $spool = abs_path($pt->spool);

my $st = $pt->status;
ok($st, 'smtpctl status --json parses') or diag($pt->status_error);
my @p = @{ $st->{processes} || [] };
is($p[0]{name}, 'master', 'master is the first entry');
is($p[0]{pid}, $pt->master_pid, 'with the pid of the master we started');
is_deeply([sort map { $_->{name} } @p[1 .. $#p]], [sort @CHILDREN], 'one entry per child program');
my %by = map { $_->{name} => $_ } @p;
for my $name (@CHILDREN) {
    my $e = $by{$name} or next;
    ok($e->{pid} && pid_alive($e->{pid}), "$name has a live pid");
    is($e->{state}, 'running', "$name state running");
    is($e->{restarts}, 0, "$name not restarted");
    my $cmd = slurp("/proc/$e->{pid}/cmdline");
    like($cmd, qr{(^|/)\Q$name\E\0}, "pid $e->{pid} runs bin/$name");
}
is(scalar(grep { $_->{name} !~ /^(master|smtpctl)$/ } $pt->procs), scalar(@CHILDREN),
    'exactly one process per child program in /proc');

is(scalar($pt->log_lines(qr/postern ready/)), 1, 'one "postern ready" line');

# uid, chroot and privileges as seen by the kernel
sub proc_status {
    my ($pid) = @_;
    my %h;
    for (split /\n/, slurp("/proc/$pid/status")) { $h{$1} = $2 if /^(\w+):\s*(.*)$/ }
    return \%h;
}

my $mpid = $pt->master_pid;
is(readlink("/proc/$mpid/root"), '/', 'master is not chrooted');
if ($as_root) {
    my ($uid, $gid) = (getpwnam('postern'))[2, 3];
    ok(defined $uid, 'mail_owner postern exists');
    like(proc_status($mpid)->{Uid}, qr/^0\s/, 'master runs as root');
    my %want_root = (smtpd => $spool, qmgr => $spool,
        dnsd => "$spool/dnsd", deliver => "$spool/empty", relay => "$spool/empty",
        signer => "$spool/empty");
    # local stays root to become each recipient (docs/local.md): its jobs
    # and workers drop per delivery; it is not chrooted
    my $lpid = $by{local}{pid};
    ok($lpid, 'local runs');
    like(proc_status($lpid)->{Uid}, qr/^0\s/, 'local runs as root') if $lpid;
    is(readlink("/proc/$lpid/root"), '/', 'local is not chrooted') if $lpid;
    for my $name (grep { $_ ne 'local' } @CHILDREN) {
        my $pid = $by{$name}{pid} or next;
        my $ps = proc_status($pid);
        is($ps->{Uid}, join("\t", ($uid) x 4), "$name: real, effective, saved and fs uid are postern");
        is($ps->{Gid}, join("\t", ($gid) x 4), "$name: all gids are postern's group");
        my @groups = split ' ', ($ps->{Groups} // '');
        ok(!grep({ $_ != $gid } @groups), "$name: no supplementary group but postern's (@groups)");
        is(readlink("/proc/$pid/root"), $want_root{$name}, "$name chrooted to $want_root{$name}");
        is($by{$name}{uid}, $uid, "$name: status reports uid $uid");
        is($by{$name}{user}, 'postern', "$name: status reports user postern");
        is($by{$name}{root}, $want_root{$name}, "$name: status reports its root");
        like($ps->{CapEff} // '', qr/^0+$/, "$name: no effective capabilities");
    }
    my @est = stat("$spool/empty");
    ok(@est && -d _, 'empty dir exists');
    is($est[4], 0, 'empty dir is owned by root');
    is($est[2] & 0022, 0, 'empty dir is not writable by group or others');
    opendir(my $dh, "$spool/empty");
    is(scalar(grep { !/^\.\.?$/ } readdir $dh), 0, 'empty dir is empty');
    # dnsd's own root holds its MTA-STS cache and nothing else (docs/dns.md)
    my @dst = stat("$spool/dnsd");
    ok(@dst && -d _, 'dnsd dir exists');
    is($dst[4], $uid, 'dnsd dir is owned by mail_owner');
    is($dst[2] & 07777, 0700, 'dnsd dir is mode 0700');
    opendir(my $dd, "$spool/dnsd");
    my @in = grep { !/^\.\.?$/ } readdir $dd;
    ok(!grep({ !/^sts\.db$/ } @in), "dnsd dir holds at most sts.db (@in)");
} else {
    for my $name (@CHILDREN) {
        my $pid = $by{$name}{pid} or next;
        like(proc_status($pid)->{Uid}, qr/^$<\s/, "$name runs as the current user (not root)");
        is(readlink("/proc/$pid/root"), '/', "$name not chrooted (not root)");
    }
    ok($pt->wait_log(qr/not started as root/, 1) || $pt->wait_log(qr/without chroot/, 1),
        'the log says it runs without root');
}

# pid file and control socket
my $pidfile = "$spool/run/master.pid";
like(slurp($pidfile), qr/^\s*$mpid\s*$/, 'pid file holds master pid');
my @cst = stat("$spool/run/control.sock");
ok(@cst && -S _, 'control socket exists');
is($cst[2] & 0007, 0, 'control socket is not accessible to others');

# the listener answers (smtpd got its socket from master)
my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pt->port, Timeout => 10);
ok($c, 'smtpd_listen accepts a connection');
my $greet = $c ? <$c> : undef;
like($greet // '', qr/^220 /, 'and smtpd greets with 220');
close $c if $c;

# text status is readable and names every process
my ($rc, $out) = $pt->smtpctl('status');
is($rc, 0, 'smtpctl status exits 0');
like($out, qr/^\s*\Q$_\E\s+\d+/m, "text status lists $_") for 'master', @CHILDREN;

done_testing;
