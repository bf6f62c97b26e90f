# dsn_recover.t - a notice that cannot be written (the spool's incoming/
# is not writable, as on a full disk) leaves the original in queue/ and
# is not lost: after a kill -9 of qmgr and the spool writable again, the
# restarted qmgr writes it, exactly once, and only then moves the
# original to bounced/.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);
use Time::HiRes qw(sleep);

my $pt = Postern::Test->new(retry_delay => '1s');
my $fail = $pt->peer(name => 'fail', addr => '127.0.0.241',
    rcpt_rules => [ [qr/./, '550 5.1.1 no such user'] ]);
my $snd = $pt->peer(name => 'snd', addr => '127.0.0.242');
$pt->write_file('domains', <<'MAP');
fail.rec.test   mx=127.0.0.241
snd.rec.test    mx=127.0.0.242
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start;

($rc, $out) = $pt->smtpctl('pause', 'delivery');
is($rc, 0, 'delivery paused');
my ($qid) = $pt->send_mail(from => 'alice@snd.rec.test', to => ['bob@fail.rec.test'],
    subject => 'recover me');
ok($qid, "accepted ($qid)");
my $incoming = $pt->spool . '/incoming';
ok(chmod(0500, $incoming), 'incoming/ made read-only');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok($pt->wait_log(qr/\Q$qid\E: to=<bob\@fail\.rec\.test>.*status=failed/, 20), 'the recipient fails');
ok($pt->wait_log(qr/\Q$qid\E: cannot write the notice \S+ to <alice\@snd\.rec\.test>: .*tried again/, 20),
    'the notice cannot be written, and the log says it will be tried again');
ok(-e $pt->spool . "/queue/$qid", 'the original stays in queue/');
ok(!-e $pt->spool . "/bounced/$qid", 'and is not in bounced/');
sleep 1;
is(scalar($snd->messages), 0, 'nothing reached the sender yet');

my $old = $pt->pid_of('qmgr');
ok(kill('KILL', $old), 'kill -9 qmgr');
ok(chmod(0700, $incoming), 'incoming/ writable again');
ok(wait_until(20, sub { my $p = $pt->pid_of('qmgr'); $p && $p != $old }), 'master restarted qmgr');
ok($pt->wait_log(qr/\Q$qid\E: failure notice (\S+) to <alice\@snd\.rec\.test> \(1 recipient\)/, 20),
    'the restarted qmgr writes the notice');
ok(wait_until(20, sub { scalar($snd->messages) >= 1 }), 'it reaches the sender\'s MX');
ok($pt->wait_log(qr/\Q$qid\E: moved to bounced\//, 10), 'then the original moves to bounced/');
ok(-e $pt->spool . "/bounced/$qid" && !-e $pt->spool . "/queue/$qid", 'it is in bounced/ only');
sleep 2;
my @got = $snd->messages;
is(scalar @got, 1, 'exactly one notice');
my @lines = $pt->log_lines(qr/\Q$qid\E: (failure notice|notice \S+ was being written)/);
diag($_) for @lines;
cmp_ok(scalar(grep { /failure notice/ } @lines), '==', 1, 'one "failure notice" line in the log');
$pt->stop;
done_testing();
