# qmgr_delivery.t - qmgr end to end with deliver, a real DNS server (nsd)
# and scriptable SMTP peers on loopback addresses: recipients grouped by
# domain into one transaction each; 4xx deferred and retried after
# retry_delay; 5xx failed at once and the message kept in bounced/;
# mixed per-recipient results; a failure with the null sender goes to
# bad/; the log lines and `smtpctl show queue` along the way.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

# One zone per test domain; each domain's MX is its own loopback address.
my %mx = ('one.test' => '127.0.0.41', 'two.test' => '127.0.0.42', 'soft.test' => '127.0.0.43',
          'hard.test' => '127.0.0.44', 'mixed.test' => '127.0.0.45');
my $ns = Postern::DNS::Nsd->new(zones => { map { $_ => Postern::DNS::mx_zone($_, $mx{$_}) } keys %mx });
$ns->start;

my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '2s', log_level => 'detailed');
my %peer;
$peer{one}   = $pt->peer(name => 'one', addr => $mx{'one.test'});
$peer{two}   = $pt->peer(name => 'two', addr => $mx{'two.test'});
$peer{soft}  = $pt->peer(name => 'soft', addr => $mx{'soft.test'},
    replies => { eod => ['451 4.3.0 try again later', '250 2.0.0 ok now'] });
$peer{hard}  = $pt->peer(name => 'hard', addr => $mx{'hard.test'},
    replies => { rcpt => '550 5.1.1 no such user here' });
$peer{mixed} = $pt->peer(name => 'mixed', addr => $mx{'mixed.test'},
    rcpt_rules => [ [ qr/^bad\@/, '550 5.1.1 bad is unknown' ] ]);
$pt->start;

sub queue_json {
    my ($rc, $out) = $pt->smtpctl('show', 'queue', '--json');
    return eval { JSON::PP->new->decode($out) } // { messages => [] };
}

# --- two domains, three recipients each: one transaction per domain ---
$pt->mark_log;
my ($qid, $mid) = $pt->send_mail(from => 'alice@client.test',
    to => [ map { ("u$_\@one.test", "u$_\@two.test") } 1 .. 3 ]);
ok($qid, "message accepted ($qid)");
is($peer{one}->wait_messages(1, 30), 1, 'one.test got the message');
is($peer{two}->wait_messages(1, 30), 1, 'two.test got the message');
my @t1 = $peer{one}->messages;
my @t2 = $peer{two}->messages;
is_deeply([ sort map { $_->{addr} } @{ $t1[0]{rcpts} } ], [ map { "u$_\@one.test" } 1 .. 3 ],
    'one.test: one transaction with its three recipients');
is_deeply([ sort map { $_->{addr} } @{ $t2[0]{rcpts} } ], [ map { "u$_\@two.test" } 1 .. 3 ],
    'two.test: one transaction with its three recipients');
is($t1[0]{message_id}, $mid, 'the Message-ID arrived');
ok($pt->wait_log(qr/\Q$qid\E: removed \(6 recipients delivered\)/, 15),
    'message removed once all six were delivered');
my @sent = $pt->log_lines(qr/\Q$qid\E: to=<u\d\@(one|two)\.test>, relay=mx\.\w+\.test\[127\.0\.0\.4[12]\]:\d+, delay=[\d.]+, tries=1, dsn=2\.\d\.\d, status=sent \(250/);
is(scalar @sent, 6, 'one "status=sent" line per recipient, with relay, delay, dsn')
    or diag(join "\n", $pt->log_lines(qr/qmgr/));
ok(!grep({ $_ eq $qid } $pt->spool_files('queue')), 'queue file gone');

# --- 4xx: deferred, retried after retry_delay, then sent ---
$pt->mark_log;
($qid) = $pt->send_mail(from => 'bob@client.test', to => ['x@soft.test']);
ok($pt->wait_log(qr/\Q$qid\E: to=<x\@soft\.test>.*status=deferred \(smtp\/\w+: 451 4\.3\.0 try again later\)/, 20),
    '451 logged as deferred with class, step and reply');
my $q = queue_json();
my ($m) = grep { $_->{id} eq $qid } @{ $q->{messages} };
ok($m, 'deferred message listed by show queue --json');
is($m->{recipients}[0]{state}, 'deferred', 'recipient state deferred') if $m;
is($m->{recipients}[0]{attempts}, 1, 'one attempt so far') if $m;
ok($m && $m->{recipients}[0]{next_try}, 'next try time given') if $m;
is($m->{recipients}[0]{last_error}{class}, 'smtp', 'last error class smtp') if $m;
is($peer{soft}->wait_messages(1, 30), 1, 'second attempt delivered');
my @st = $peer{soft}->transactions;
cmp_ok(scalar @st, '>=', 2, 'two transactions at the soft peer');
cmp_ok($st[1]{t} - $st[0]{end}, '>=', 1.9, 'the retry came after retry_delay (2s), not before')
    if @st >= 2;
ok($pt->wait_log(qr/\Q$qid\E: to=<x\@soft\.test>.*tries=2, .*status=sent/, 10), 'then sent, at the second try');
ok($pt->wait_log(qr/\Q$qid\E: removed/, 10), 'and removed');

# --- 5xx: failed at once, kept in bounced/ ---
$pt->mark_log;
($qid) = $pt->send_mail(from => 'carol@client.test', to => ['y@hard.test']);
ok($pt->wait_log(qr/\Q$qid\E: to=<y\@hard\.test>.*dsn=5\.1\.1, status=failed \(smtp\/rcpt: 550 5\.1\.1 no such user here\)/, 20),
    '550 at RCPT: failed at once, with class, step and reply');
ok($pt->wait_log(qr/\Q$qid\E: moved to bounced\/ \(1 of 1 recipient failed/, 10), 'moved to bounced/');
ok(grep({ $_ eq $qid } $pt->spool_files('bounced')), 'file is in bounced/');
ok(!grep({ $_ eq $qid } $pt->spool_files('queue')), 'and no longer in queue/');
is(scalar(() = $pt->log_lines(qr/\Q$qid\E: to=/)), 1, 'exactly one attempt');

# --- mixed results in one transaction ---
$pt->mark_log;
($qid) = $pt->send_mail(from => 'dave@client.test',
    to => [ 'good1@mixed.test', 'bad@mixed.test', 'good2@mixed.test' ]);
ok($pt->wait_log(qr/\Q$qid\E: moved to bounced\/ \(1 of 3 recipients failed/, 20),
    'mixed: the message goes to bounced/ with one failure of three');
my @mt = $peer{mixed}->messages;
is(scalar @mt, 1, 'one transaction');
is_deeply([ sort @{ $mt[0]{accepted_rcpts} // [] } ], [ 'good1@mixed.test', 'good2@mixed.test' ],
    'carrying the two good recipients') or diag explain $mt[0];
is(scalar(() = $pt->log_lines(qr/\Q$qid\E: to=<good\d\@mixed\.test>.*status=sent/)), 2, 'two sent');
is(scalar(() = $pt->log_lines(qr/\Q$qid\E: to=<bad\@mixed\.test>.*status=failed/)), 1, 'one failed');

# --- null sender with a failure: bad/ ---
$pt->mark_log;
($qid) = $pt->send_mail(from => '', to => ['z@hard.test']);
ok($qid, 'bounce-like message (null sender) accepted');
ok($pt->wait_log(qr/\Q$qid\E: moved to bad\/ .*null sender/, 20), 'failed with the null sender: moved to bad/');
ok(grep({ $_ eq $qid } $pt->spool_files('bad')), 'file is in bad/');

my ($rc, $out) = $pt->smtpctl('show', 'stats', '--json');
my $stats = eval { JSON::PP->new->decode($out) } // {};
cmp_ok($stats->{recipients_sent} // 0, '>=', 9, 'stats count sent recipients');
cmp_ok($stats->{messages_bounced} // 0, '>=', 2, 'stats count bounced messages');
done_testing();
