# qmgr_state.t - qmgr's state across restarts and its start-up scan:
# deferred recipients keep their attempt counts, next try and last error
# after kill -9 of qmgr and after a restart of the whole tree; held mail
# stays held; corrupt queue files go to bad/ (never deleted, qmgr keeps
# running); a state record whose file is gone is dropped; a file without
# a record is adopted; mail expires after max_queue_lifetime.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP;
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until slurp);
use Time::HiRes qw(sleep);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $ns = Postern::DNS::Nsd->new(zones => { 'dead.test' => Postern::DNS::mx_zone('dead.test', '127.0.0.61'),
    'live.test' => Postern::DNS::mx_zone('live.test', '127.0.0.62') });
$ns->start;

my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1h');
my $live = $pt->peer(name => 'live', addr => '127.0.0.62');
$pt->start;

sub queue {
    my ($rc, $out) = $pt->smtpctl('show', 'queue', '--json');
    my $j = eval { JSON::PP->new->decode($out) } // { messages => [] };
    return { map { $_->{id} => $_ } @{ $j->{messages} } };
}

$pt->mark_log;
my ($m1) = $pt->send_mail(from => 'keep@client.test', to => ['a@dead.test']);
ok($pt->wait_log(qr/\Q$m1\E: to=<a\@dead\.test>.*status=deferred/, 20), 'deferred');
my @logs = glob($pt->spool . '/db/log.*');
ok(@logs >= 1 && !grep({ -s $_ > 4 * 1024 * 1024 } @logs),
    'the state database log files are at most 4 MiB each (BDB would make 10 MiB)');
sleep 0.5;    # the state is written in the same loop turn; leave it a moment
my $before = queue()->{$m1}{recipients}[0];
is($before->{attempts}, 1, 'one attempt before the restart');

# --- kill -9 qmgr: master restarts it; state survives ---
my $old = $pt->pid_of('qmgr');
ok($old, "qmgr pid $old");
$pt->mark_log;
kill 'KILL', $old;
my $new;
ok(wait_until(20, sub { $new = $pt->pid_of('qmgr'); $new && $new != $old }), 'master restarted qmgr');
ok($pt->wait_log(qr/qmgr\[\d+\]: info: queue loaded .*1 with saved state/, 10),
    'the new qmgr found the saved state');
my $after = queue()->{$m1}{recipients}[0];
is($after->{state}, 'deferred', 'after kill -9: still deferred');
is($after->{attempts}, 1, 'attempt count kept');
ok(abs(($after->{next_try} // 0) - $before->{next_try}) < 0.01, 'next try kept')
    or diag("before $before->{next_try} after " . ($after->{next_try} // 'none'));
is($after->{last_error}{class}, 'network', 'last error kept');
is($after->{first_failure}, $before->{first_failure}, 'first failure time kept');
ok(!$pt->log_lines(qr/\Q$m1\E: to=/), 'not tried again before its next try');

# --- hold survives a restart of the whole tree ---
my ($m2) = $pt->send_mail(from => 'held@client.test', to => ['b@dead.test']);
ok($pt->wait_log(qr/\Q$m2\E: to=.*status=deferred/, 20), 'second message deferred');
my ($rc, $out) = $pt->smtpctl('hold', $m2);
$pt->restart;
my $q = queue();
is($q->{$m1}{recipients}[0]{attempts}, 1, 'after a full restart: attempts kept');
ok(abs(($q->{$m1}{recipients}[0]{next_try} // 0) - $before->{next_try}) < 0.01, 'next try kept');
is($q->{$m2}{queue}, 'hold', 'held message still held');
is($q->{$m2}{recipients}[0]{attempts}, 1, 'with its attempt count');

# --- corrupt files go to bad/; a record without a file is dropped ---
$pt->stop;
my $spool = $pt->spool;
my $bad1 = '0660C0000000000000';
my $bad2 = '0660C0000000000001';
$pt->write_file("$spool/queue/$bad1", "this is not a queue file\n", 0600);
my $good = slurp("$spool/hold/$m2");
$pt->write_file("$spool/queue/$bad2", substr($good, 0, 60), 0600);    # truncated envelope
unlink "$spool/queue/$m1" or die "unlink: $!";
if ($pt->is_root) {
    my ($uid, $gid) = (getpwnam('postern'))[2, 3];
    chown $uid, $gid, "$spool/queue/$bad1", "$spool/queue/$bad2";
}
$pt->mark_log;
$pt->start;
ok($pt->wait_log(qr/\Q$bad1\E: moved to bad\/: corrupt queue file/, 10), 'garbage file moved to bad/ with a log line');
ok($pt->wait_log(qr/\Q$bad2\E: moved to bad\/: corrupt queue file/, 10), 'truncated file moved to bad/');
is_deeply([ grep { $_ eq $bad1 || $_ eq $bad2 } $pt->spool_files('bad') ], [ sort $bad1, $bad2 ],
    'both kept in bad/');
ok($pt->wait_log(qr/queue loaded .*1 stale record dropped/, 10), 'the record of the vanished file was dropped');
$q = queue();
ok(!$q->{$m1}, 'vanished message not listed');
ok($q->{$m2}, 'held message still there');
ok($pt->pid_of('qmgr'), 'qmgr is running');

# --- a file without a record is adopted ---
($rc, $out) = $pt->smtpctl('pause', 'delivery');
my ($m3) = $pt->send_mail(from => 'new@client.test', to => ['c@dead.test']);
ok(wait_until(10, sub { queue()->{$m3} }), 'new message queued while delivery is paused');
$pt->mark_log;
$pt->restart;
ok($pt->wait_log(qr/queue loaded .*2 messages \(1 held\), 1 with saved state, 1 new to the state database/, 10),
    'restart: the message without a record was adopted')
    or diag(join "\n", $pt->log_lines(qr/queue loaded/));
# the pause outlived the restart (qmgr_pause.t): resume it
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok($pt->wait_log(qr/\Q$m3\E: to=<c\@dead\.test>.*status=deferred/, 20), 'and tried');

# --- a partly delivered message: the sent recipient is not sent again ---
$pt->mark_log;
my ($m5, $mid5) = $pt->send_mail(from => 'part@client.test', to => ['e@live.test', 'f@dead.test']);
ok($pt->wait_log(qr/\Q$m5\E: to=<e\@live\.test>.*status=sent/, 20), 'live recipient sent');
ok($pt->wait_log(qr/\Q$m5\E: to=<f\@dead\.test>.*status=deferred/, 20), 'dead recipient deferred');
sleep 0.5;
kill 'KILL', $pt->pid_of('qmgr');
ok(wait_until(20, sub { my $p = $pt->pid_of('qmgr'); $p && queue()->{$m5} }), 'qmgr back after kill -9');
is(queue()->{$m5}{recipients}[0]{state}, 'sent', 'the sent recipient is still marked sent');
($rc, $out) = $pt->smtpctl('flush', $m5);
ok($pt->wait_log(qr/\Q$m5\E: to=<f\@dead\.test>.*tries=2/, 20), 'flush tries the deferred one again');
sleep 1;
is(scalar(grep { $_ eq $mid5 } $live->message_ids), 1, 'the live domain got the message once');
$pt->stop;

# --- expiry after max_queue_lifetime ---
my $pe = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1s', max_queue_lifetime => '4s');
$pe->start;
$pe->mark_log;
my ($m4) = $pe->send_mail(from => 'old@client.test', to => ['d@dead.test']);
ok($pe->wait_log(qr/\Q$m4\E: to=<d\@dead\.test>.*status=deferred/, 20), 'deferred first');
my $line = $pe->wait_log(qr/\Q$m4\E: to=<d\@dead\.test>.*status=expired/, 20);
ok($line, 'expired after max_queue_lifetime');
my ($delay) = ($line // '') =~ /delay=([\d.]+)/;
cmp_ok($delay // 0, '>=', 4, 'not before max_queue_lifetime');
like($line // '', qr/last error: network/, 'with the last error');
ok($pe->wait_log(qr/\Q$m4\E: moved to bounced\//, 10), 'moved to bounced/');
done_testing();
