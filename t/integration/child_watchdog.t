#!/usr/bin/perl
# child_watchdog.t - a child that stops answering (hung, not dead) is
# noticed by master, killed and restarted, with a log line saying why,
# and its work is retried (issue 17.6). SIGSTOP stands in for a loop
# stuck in a system call; child_watchdog_timeout is 2 s here.
#   - deliver stopped with a message in flight: killed, restarted, the
#     message delivered
#   - qmgr stopped: killed, restarted, the queue reloaded and delivered
#   - a child that answers is left alone
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(child_watchdog_timeout => '2s');
my $peer = $pt->peer(name => 'sink', addr => '127.0.0.200', port => $pt->direct_port,
    delay => { greeting => 1 });
$pt->write_file('domains', "wd.cw.test   mx=127.0.0.200\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;
my $dnsd = $pt->pid_of('dnsd');

for my $name (qw(deliver qmgr)) {
    my $pid = $pt->pid_of($name);
    $pt->mark_log;
    my $n = scalar($peer->messages);
    my $qid = $pt->send_mail(from => 's@src.test', to => ["to-$name\@wd.cw.test"]);
    ok($qid, "message for the $name case accepted");
    ok(wait_until(5, sub { grep { 1 } $peer->connections } ), 'a delivery is under way') if $name eq 'deliver';
    kill 'STOP', $pid;
    ok($pt->wait_log(qr/master\[\d+\]: error: $name\[$pid\] has not answered master for \d+s \(hung, not dead\): killing it/, 15),
        "$name stopped: master says it is hung and kills it");
    ok(wait_until(15, sub { my $p = $pt->pid_of($name); $p && $p != $pid }), "$name restarted");
    ok($peer->wait_messages($n + 1, 30), "the message of the $name case is delivered");
}
is($pt->pid_of('dnsd'), $dnsd, 'dnsd, which kept answering, was left alone');

$pt->stop;
done_testing();
