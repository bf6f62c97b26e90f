#!/usr/bin/perl
# privsep_channels.t - qmgr trusts the channel a message came on, not its
# type (issue 16.2). bin/relay is replaced by t/lib/fake_relay.pl, a relay
# that behaves as if compromised:
#   - it sends qmgr "sent" results for request ids that went to deliver
#     (a message in flight to a slow MX): qmgr refuses them, the message
#     is not marked sent by the forgery, and it is delivered for real
#     once the slow MX answers (exactly once, no "forged" relay in the
#     log);
#   - qmgr asks master to restart the offender, and master does;
#   - it sends IMSG_QUEUE_NEW, a type only smtpd may send: the channel is
#     closed with a log line naming the type and the edge, and relay is
#     restarted again;
#   - it tells master that qmgr broke the protocol: master restarts the
#     accuser, not qmgr (no process can keep qmgr down that way);
#   - mail keeps flowing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Copy qw(copy);
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(smtp_timeout => '60s', retry_delay => '1s');
my $dir = $pt->dir;
my $root = Postern::Test->root;

# A bin directory like the real one, with the fake relay in it.
my $bin = "$dir/bin";
mkdir $bin or die "$bin: $!";
copy("$root/bin/master", "$bin/master") or die "copy master: $!";
chmod 0755, "$bin/master";
symlink("$root/bin/$_", "$bin/$_") or die "symlink $_: $!" for qw(smtpd qmgr dnsd deliver local signer smtpctl);
copy("$root/t/lib/fake_relay.pl", "$bin/relay") or die "copy fake relay: $!";
chmod 0755, "$bin/relay";
$ENV{FAKE_RELAY_DIR} = $dir;
open(my $m, '>', "$dir/modes") or die;
print $m "forge\nqueue_new\naccuse\n";
close $m;

my $port = $pt->direct_port;
my $slow = $pt->peer(name => 'slow', addr => '127.0.0.193', port => $port,
    delay => { greeting => 6 });
my $ok = $pt->peer(name => 'fine', addr => '127.0.0.194', port => $port);
$pt->write_file('domains', <<'MAP');
slow.pc.test   mx=127.0.0.193
fine.pc.test   mx=127.0.0.194
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start(bindir => $bin);

sub starts {
    open(my $s, '<', "$dir/starts") or return ();
    return map { [ split ' ' ] } <$s>;
}
ok(wait_until(10, sub { scalar(starts()) >= 1 }), 'master started the fake relay');
my $first = (starts())[0][0];

# --- forged results for deliver's job ---
my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@slow.pc.test']);
ok($q1, 'message for the slow MX accepted');
ok(wait_until(5, sub { grep { 1 } $slow->connections }), 'deliver is connected to the slow MX');
open(my $go, '>', "$dir/go") or die;
close $go;
ok($pt->wait_log(qr/qmgr\[\d+\]: warning: relay sent a result for delivery \d+, which went to deliver: not accepted/, 10),
    'qmgr refuses a result from a process the delivery did not go to');
ok($pt->wait_log(qr/master\[\d+\]: warning: qmgr reports that relay\[$first\] broke the protocol/, 10),
    'qmgr asks master to restart the offender, and master names it');
ok(wait_until(15, sub { scalar(starts()) >= 2 }), 'master restarted relay');
ok($slow->wait_messages(1, 20), 'the message reached the slow MX for real');
ok($pt->wait_log(qr/\Q$q1\E: to=<a\@slow\.pc\.test>, .*status=sent/, 10), 'and is logged sent');
is(scalar(() = $pt->log_text =~ /\Q$q1\E: to=<a\@slow\.pc\.test>, .*status=sent/g), 1,
    'logged sent exactly once');
unlike($pt->log_text, qr/forged\.example/, 'no forged result was taken for any message');
is(scalar($slow->messages_for('a@slow.pc.test')), 1, 'the MX got it once');

# --- a type the edge does not carry ---
my $second = (starts())[1][0];
ok($pt->wait_log(qr/qmgr\[\d+\]: warning: ipc: channel to relay closed: message type 100 is not one the relay to qmgr channel carries/, 10),
    'IMSG_QUEUE_NEW from relay closes the channel, with the type and the edge in the log');
ok($pt->wait_log(qr/qmgr reports that relay\[$second\] broke the protocol/, 10),
    'and relay is restarted again');
my $qmgr_pid = $pt->pid_of('qmgr');
ok(wait_until(15, sub { scalar(starts()) >= 3 }), 'a third relay runs');

# --- a false accusation against qmgr ---
my $third = (starts())[2][0];
ok($pt->wait_log(qr/master\[\d+\]: warning: relay reports that qmgr\[\d+\] broke the protocol \(made up\); restarting relay, not qmgr/, 10),
    'an accusation against qmgr restarts the accuser');
ok(wait_until(15, sub { scalar(starts()) >= 4 }), 'a fourth relay runs (idle)');
ok(wait_until(5, sub { !kill(0, $third) }), 'the accuser is gone');
is($pt->pid_of('qmgr'), $qmgr_pid, 'qmgr was not restarted');

# --- mail still flows ---
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@fine.pc.test']);
ok($ok->wait_messages(1, 20), 'a message sent afterwards is delivered');
my $st = $pt->status;
ok($st && $pt->pid_of('qmgr', $st), 'qmgr kept running throughout');

$pt->stop;
done_testing();
