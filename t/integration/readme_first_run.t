#!/usr/bin/perl
# readme_first_run.t - the README's "First run" works as written:
# tools/first-run.sh copies this tree (with its build), runs `make run`,
# then the README's own lines (a sink on 127.0.0.1:2526, an mx= route,
# makemap, reload, sendmail, show queue) and checks the message reached
# the sink, the log says status=sent and the queue is empty. A newcomer's
# run on a fresh Debian 12 root is bench/newcomer.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;

my $root = Postern::Test->root;
for my $p (2525, 2526) {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p, ReuseAddr => 1, Listen => 1);
    plan skip_all => "port $p on 127.0.0.1 is in use (the README's first run needs it)" unless $s;
    close $s;
}
my $out = `cd $root && timeout 300 sh tools/first-run.sh --reuse-build 2>&1`;
my $rc = $? >> 8;
is($rc, 0, 'tools/first-run.sh passes') or diag $out;
like($out, qr/^first-run: log: .*to=<someone\@sink\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:2526, .*status=sent/m,
    'the delivery the README shows');
like($out, qr/^first-run: ok$/m, 'every check of the script');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 2526, Timeout => 1),
    'the sink it started is gone');
done_testing();
