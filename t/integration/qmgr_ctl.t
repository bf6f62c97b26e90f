# qmgr_ctl.t - the queue from smtpctl: show queue (text and --json),
# show message, show hosts, show stats; hold, release, remove and flush by
# queue ID, --domain, --recipient, --sender and all; pause and resume
# delivery; errors for unknown IDs and missing selections. Mail goes to
# domains whose MX refuses connections, so it stays deferred.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP;
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my %mx = ('dead1.test' => '127.0.0.51', 'dead2.test' => '127.0.0.52');
my $ns = Postern::DNS::Nsd->new(zones => { map { $_ => Postern::DNS::mx_zone($_, $mx{$_}) } keys %mx });
$ns->start;

# nothing listens on 127.0.0.51/52 at direct_port: connections are refused
my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1h');
$pt->start;

sub ctl_json {
    my (@args) = @_;
    my ($rc, $out) = $pt->smtpctl(@args, '--json');
    my $j = eval { JSON::PP->new->decode($out) };
    diag("not JSON from @args: $out") unless $j;
    return ($rc, $j // {});
}

sub ids_in_queue {
    my (@sel) = @_;
    my ($rc, $j) = ctl_json('show', 'queue', @sel);
    return sort map { $_->{id} } @{ $j->{messages} || [] };
}

$pt->mark_log;
my ($m1) = $pt->send_mail(from => 's1@client.test', to => ['a@dead1.test']);
my ($m2) = $pt->send_mail(from => 's2@client.test', to => ['b@dead2.test', 'c@dead1.test']);
my ($m3) = $pt->send_mail(from => 's3@client.test', to => ['d@dead2.test']);
ok($m1 && $m2 && $m3, 'three messages accepted');
ok(wait_until(20, sub { $pt->log_lines(qr/status=deferred/) >= 4 }), 'all four recipients deferred')
    or diag(join "\n", $pt->log_lines(qr/qmgr/));

# --- show queue ---
my ($rc, $out) = $pt->smtpctl('show', 'queue');
is($rc, 0, 'show queue: exit 0');
like($out, qr/^\Q$m1\E\s+\S+\s+\d+\s+<s1\@client\.test>/m, 'text: ID, age, size, sender');
like($out, qr/deferred\s+<a\@dead1\.test>\s+tries 1, next in \d+[hm]/, 'text: recipient state, tries, next try');
like($out, qr/last error: network\/connect: /, 'text: last error with class and step');
like($out, qr/-- 3 messages \(0 held\), 4 recipients/, 'text: summary line');
my $j;
($rc, $j) = ctl_json('show', 'queue');
is($j->{count}, 3, 'json: three messages');
my ($jm2) = grep { $_->{id} eq $m2 } @{ $j->{messages} };
is($jm2->{sender}, 's2@client.test', 'json: sender');
is(scalar @{ $jm2->{recipients} }, 2, 'json: two recipients');
is($jm2->{recipients}[0]{state}, 'deferred', 'json: state');
is($jm2->{recipients}[0]{attempts}, 1, 'json: attempts');
cmp_ok($jm2->{recipients}[0]{next_try}, '>', time + 3000, 'json: next try about retry_delay ahead');
is($jm2->{recipients}[0]{last_error}{class}, 'network', 'json: error class');
is_deeply([ ids_in_queue('--domain', 'dead2.test') ], [ sort $m2, $m3 ], 'show queue --domain');
is_deeply([ ids_in_queue('--recipient', 'C@DEAD1.test') ], [$m2], 'show queue --recipient (any case)');
is_deeply([ ids_in_queue('--sender', 's3@client.test') ], [$m3], 'show queue --sender');
is_deeply([ ids_in_queue($m1, $m3) ], [ sort $m1, $m3 ], 'show queue by IDs');

# --- show message, hosts, stats ---
($rc, $out) = $pt->smtpctl('show', 'message', $m2);
is($rc, 0, 'show message: exit 0');
like($out, qr/sender:\s+<s2\@client\.test>/, 'show message: sender');
like($out, qr/client:\s+127\.0\.0\.1/, 'show message: client from the queue file');
like($out, qr/<b\@dead2\.test>.*<c\@dead1\.test>/s, 'show message: recipients');
($rc, $out) = $pt->smtpctl('show', 'message', '0123456789ABCDEF01');
is($rc, 1, 'show message of an unknown ID: exit 1');
($rc, $j) = ctl_json('show', 'hosts');
my ($h1) = grep { $_->{destination} eq 'dead1.test' } @{ $j->{hosts} || [] };
ok($h1, 'show hosts lists dead1.test');
cmp_ok($h1->{consecutive_failures}, '>=', 1, 'with its consecutive failures') if $h1;
ok($h1->{last_failure}, 'and the last failure time') if $h1;
like($h1->{last_error} // '', qr/refused|connect/i, 'and the last error') if $h1;
($rc, $out) = $pt->smtpctl('show', 'hosts');
like($out, qr/^dead1\.test\s+\d+\s+\d+\s+[1-9]/m, 'show hosts text');
($rc, $j) = ctl_json('show', 'stats');
is($j->{messages_queued}, 3, 'stats: three queued');
cmp_ok($j->{recipients_deferred}, '>=', 4, 'stats: deferred recipients counted');

# --- hold by sender; flush all skips held mail ---
$pt->mark_log;
($rc, $out) = $pt->smtpctl('hold', '--sender', 's1@client.test');
is($rc, 0, 'hold --sender: exit 0');
like($out, qr/held 1 message/, 'one message held');
ok(grep({ $_ eq $m1 } $pt->spool_files('hold')), 'the file moved to hold/');
ok(!grep({ $_ eq $m1 } $pt->spool_files('queue')), '... out of queue/');
($rc, $j) = ctl_json('show', 'queue', $m1);
is($j->{messages}[0]{queue}, 'hold', 'show queue says it is held');
($rc, $out) = $pt->smtpctl('flush');
is($rc, 0, 'flush: exit 0');
ok(wait_until(15, sub { $pt->log_lines(qr/\Q$m3\E: to=<d\@dead2\.test>.*tries=2/) }),
    'flush: the deferred message was tried again at once');
ok(wait_until(15, sub { $pt->log_lines(qr/\Q$m2\E: to=<b\@dead2\.test>.*tries=2/) }), 'all of them');
ok(!$pt->log_lines(qr/\Q$m1\E: to=/), 'held message not tried');

# --- release by ID: back to queue/ and tried ---
$pt->mark_log;
($rc, $out) = $pt->smtpctl('release', $m1);
is($rc, 0, 'release by ID');
ok(grep({ $_ eq $m1 } $pt->spool_files('queue')), 'back in queue/');
ok(wait_until(15, sub { $pt->log_lines(qr/\Q$m1\E: to=<a\@dead1\.test>.*tries=2/) }),
    'released message tried again');

# --- flush by domain ---
$pt->mark_log;
($rc, $out) = $pt->smtpctl('flush', '--domain', 'dead2.test');
like($out, qr/flushed 2 messages/, 'flush --domain: the two messages with a dead2.test recipient');
ok(wait_until(15, sub { $pt->log_lines(qr/\Q$m3\E: to=<d\@dead2\.test>.*tries=3/) }), 'tried');

# --- remove by recipient ---
($rc, $out) = $pt->smtpctl('remove', '--recipient', 'b@dead2.test');
like($out, qr/removed 1 message/, 'remove --recipient');
ok(!grep({ $_ eq $m2 } $pt->spool_files('queue')), 'file gone from queue/');
ok($pt->wait_log(qr/\Q$m2\E: removed by the administrator/, 5), 'logged');
is_deeply([ ids_in_queue() ], [ sort $m1, $m3 ], 'two left');

# --- errors ---
($rc, $out) = $pt->smtpctl('hold');
is($rc, 2, 'hold without a selection: usage error');
($rc, $out) = $pt->smtpctl('remove', 'nonsense');
is($rc, 2, 'remove with a word that is not an ID: usage error');
($rc, $out) = $pt->smtpctl('hold', '0123456789ABCDEF01');
is($rc, 1, 'hold of an unknown ID: exit 1');
like($out, qr/not in the queue/, '... saying so');

# --- pause / resume delivery ---
($rc, $out) = $pt->smtpctl('pause', 'delivery');
is($rc, 0, 'pause delivery');
$pt->mark_log;
my ($m4) = $pt->send_mail(from => 's4@client.test', to => ['e@dead1.test']);
sleep 2;
ok(!$pt->log_lines(qr/\Q$m4\E: to=/), 'paused: the new message is not tried');
($rc, $j) = ctl_json('show', 'queue', $m4);
is($j->{messages}[0]{recipients}[0]{state}, 'pending', 'it is pending');
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok(wait_until(15, sub { $pt->log_lines(qr/\Q$m4\E: to=/) }), 'resumed: tried');

# --- hold all, remove all ---
($rc, $out) = $pt->smtpctl('hold', 'all');
like($out, qr/held 3 messages/, 'hold all');
is(scalar($pt->spool_files('queue')), 0, 'queue/ empty');
is(scalar($pt->spool_files('hold')), 3, 'hold/ has them');
($rc, $out) = $pt->smtpctl('remove', 'all');
like($out, qr/removed 3 messages/, 'remove all');
is(scalar($pt->spool_files('hold')), 0, 'hold/ empty');
($rc, $out) = $pt->smtpctl('show', 'queue');
like($out, qr/queue is empty/, 'show queue: empty');
done_testing();
