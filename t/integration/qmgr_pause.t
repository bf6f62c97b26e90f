#!/usr/bin/perl
# qmgr_pause.t - `smtpctl pause delivery` holds across a qmgr restart
# (issue 17.8): the pause is kept in qmgr's state database, so a qmgr
# killed and restarted by master stays paused and says so in the log and
# in `show stats`; `resume delivery` ends it, and that too survives a restart.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new();
my $peer = $pt->peer(name => 'sink', addr => '127.0.0.198', port => $pt->direct_port);
$pt->write_file('domains', "pause.qp.test   mx=127.0.0.198\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

sub restart_qmgr {
    my $old = $pt->pid_of('qmgr');
    kill 'KILL', $old;
    return wait_until(15, sub { my $p = $pt->pid_of('qmgr'); $p && $p != $old });
}
sub delivery_state {
    my ($rc, $out) = $pt->smtpctl('show', 'stats');
    return $out =~ /^delivery\s+(\S+)/m ? $1 : '';
}

($rc, $out) = $pt->smtpctl('pause', 'delivery');
is($rc, 0, 'pause delivery');
my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@pause.qp.test']);
ok($q1, 'a message is accepted while paused');
$pt->mark_log;
ok(restart_qmgr(), 'qmgr killed and restarted');
ok($pt->wait_log(qr/qmgr\[\d+\]: warning: delivery is paused .*smtpctl resume delivery/, 10),
    'the new qmgr says delivery is paused');
is(delivery_state(), 'paused', 'show stats says paused');
sleep 3;
is(scalar($peer->messages), 0, 'nothing was delivered while paused');

($rc, $out) = $pt->smtpctl('resume', 'delivery');
is($rc, 0, 'resume delivery');
ok($peer->wait_messages(1, 20), 'the message goes out after resume');
ok(restart_qmgr(), 'qmgr restarted again');
is(delivery_state(), 'running', 'the resume held too');
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@pause.qp.test']);
ok($peer->wait_messages(2, 20), 'mail flows after the restart');

$pt->stop;
done_testing();
