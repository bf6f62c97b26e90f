# dsn_folders.t - bounced/ and bad/ and the smtpctl commands around
# delivery status notifications (docs/dsn.md "smtpctl"):
#   - show bounced (text, --json before or after the command, by ID): the
#     failed recipient with its state, status, remote host, step and reply,
#     the delivered one as sent, why the message is there
#   - show bad: a null-sender failure
#   - bounce ID: a deferred message fails now ("bounced by the
#     administrator", Status 5.0.0) and its sender gets a notice
#   - bounce --domain D: only the recipients at D; the rest stays queued
#   - requeue ID once the MX accepts, and requeue ID after the route is
#     fixed (etc/domains mx=, makemap, reload): the failed recipient is
#     delivered (over the new route), the delivered one is not sent again,
#     no second notice
#   - remove ID deletes from bounced/ and bad/; requeue of an ID that is in
#     neither fails
# Notices are read back from the sender domain's MX with t/lib/dsn_parse.py.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Postern::Test;
use Postern::DSN qw(parse_file);
use Postern::Util qw(wait_until slurp);
use Postern::Route qw(route);

{
    my $why = Postern::DSN::unavailable();
    plan skip_all => $why if $why;
}

my $pt = Postern::Test->new(retry_delay => '1s');
my $flag = $pt->dir . '/flag.fold.test-fixed';    # the MX takes flag.fold.test once this exists
my $mx = $pt->peer(name => 'mx', addr => '127.0.0.231',
    rcpt_rules => [ [ qr/^bad/, sub { my (undef, $to) = @_; "550 5.1.1 <$to>: no such user" } ],
                    [ qr/\@flag\.fold\.test$/, sub { -e $flag ? undef : '550 5.1.1 not yet' } ],
                    [ qr/\@defer2?\.fold\.test$/, '451 4.2.0 mailbox busy' ],
                    [ qr/\@fix\.fold\.test$/, '550 5.1.2 no such domain here' ] ]);
my $ok  = $pt->peer(name => 'ok', addr => '127.0.0.232');
my $snd = $pt->peer(name => 'snd', addr => '127.0.0.233');
my $domains = <<'MAP';
bad.fold.test     mx=127.0.0.231
defer.fold.test   mx=127.0.0.231 retry_delay=1h
defer2.fold.test  mx=127.0.0.231 retry_delay=1h
fix.fold.test     mx=127.0.0.231
flag.fold.test    mx=127.0.0.231
ok.fold.test      mx=127.0.0.232
sender.test       mx=127.0.0.233
MAP
$pt->write_file('domains', $domains);
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start;

# ---- helpers ----

sub notices_for {
    my ($qid) = @_;
    my @n;
    for my $t ($snd->messages) {
        next unless $t->{file};
        my $d = parse_file($t->{file}) or next;
        push @n, { %$d, tx => $t }
            if ((($d->{per_message} // {})->{'X-Postern-Queue-ID'}) // '') eq $qid;
    }
    return @n;
}

sub wait_notices {
    my ($qid, $n, $timeout) = @_;
    my @n;
    wait_until($timeout // 20, sub { @n = notices_for($qid); @n >= $n }, 0.2);
    return @n;
}

sub ctl_json {
    my (@args) = @_;
    my ($c, $o) = $pt->smtpctl(@args);
    my $j = eval { JSON::PP->new->decode($o) };
    return ($c, $j, $o);
}

sub entry_of {
    my ($j, $id) = @_;
    my ($e) = grep { $_->{id} eq $id } @{ ($j // {})->{messages} || [] };
    return $e;
}

sub rcpt_of {
    my ($e, $addr) = @_;
    my ($r) = grep { $_->{address} eq $addr } @{ ($e // {})->{recipients} || [] };
    return $r // {};
}

sub in_folder { my ($dir, $id) = @_; return scalar grep { $_ eq $id } $pt->spool_files($dir) }

sub all_log_lines {
    my ($re) = @_;
    return grep { $_ =~ $re } split /\n/, slurp($pt->log_path);
}

my $port = $pt->direct_port;

# ---- a failure: show bounced ----
$pt->mark_log;
my $qa = $pt->send_mail(from => 'amy@sender.test', to => [ 'bad1@bad.fold.test', 'good@ok.fold.test' ],
    subject => 'folder one');
ok($qa, "show bounced: message accepted ($qa)") or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qa\E: moved to bounced\/ \(1 of 2 recipients failed; the sender was notified; sender <amy\@sender\.test>\)/, 20),
    'show bounced: moved to bounced/ after its notice');
($rc, $out) = $pt->smtpctl('show', 'bounced');
is($rc, 0, 'show bounced: exit 0');
like($out, qr/^\Q$qa\E  moved \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/m, 'show bounced: the ID and when it moved');
like($out, qr/^  sender <amy\@sender\.test>, 2 recipients$/m, 'show bounced: sender and recipient count');
like($out, qr/^  why: 1 of 2 recipients failed; the sender was notified$/m, 'show bounced: why');
like($out, qr/^  <bad1\@bad\.fold\.test> failed 5\.1\.1 via 127\.0\.0\.231\[127\.0\.0\.231\]:\Q$port\E: smtp\/rcpt: 550 5\.1\.1 <bad1\@bad\.fold\.test>: no such user$/m,
    'show bounced: the failed recipient, status, remote host, step and reply') or diag $out;
like($out, qr/^  <good\@ok\.fold\.test> sent$/m, 'show bounced: the delivered recipient as sent');
like($out, qr/^1 message in bounced\/$/m, 'show bounced: the count');

my ($c1, $j1, $o1) = ctl_json('show', 'bounced', '--json');
my ($c2, $j2, $o2) = ctl_json('--json', 'show', 'bounced');
is($c1, 0, 'show bounced --json: exit 0');
ok($j1, 'show bounced --json: JSON') or diag $o1;
ok($j2, '--json show bounced: JSON') or diag $o2;
is_deeply($j2, $j1, '--json before or after the command: the same answer');
is($j1->{folder}, 'bounced', 'JSON: folder bounced');
is($j1->{count}, 1, 'JSON: count 1');
my $ea = entry_of($j1, $qa);
ok($ea, 'JSON: the message is listed');
is($ea->{sender}, 'amy@sender.test', 'JSON: sender');
is($ea->{reason}, '1 of 2 recipients failed; the sender was notified', 'JSON: reason');
my $rb = rcpt_of($ea, 'bad1@bad.fold.test');
is($rb->{state}, 'failed', 'JSON: recipient state failed');
is($rb->{status}, '5.1.1', 'JSON: recipient status 5.1.1');
is($rb->{error}, '550 5.1.1 <bad1@bad.fold.test>: no such user', 'JSON: recipient error (the reply)');
is($rb->{step}, 'rcpt', 'JSON: step rcpt');
is($rb->{class}, 'smtp', 'JSON: class smtp');
like($rb->{remote}, qr/^127\.0\.0\.231\[127\.0\.0\.231\]:\Q$port\E$/, 'JSON: remote host');
cmp_ok($rb->{last_attempt}, '>', 0, 'JSON: last attempt time');
is(rcpt_of($ea, 'good@ok.fold.test')->{state}, 'sent', 'JSON: the delivered one is sent');
my ($c3, $j3) = ctl_json('show', 'bounced', $qa, '--json');
is($j3 && $j3->{count}, 1, 'show bounced ID: just that one');
($rc, $out) = $pt->smtpctl('show', 'bounced', 'not-an-id');
is($rc, 2, 'show bounced with a bad ID: exit 2') or diag $out;
is(scalar(wait_notices($qa, 1, 20)), 1, 'show bounced: its sender got one notice');

# ---- a null-sender failure: show bad ----
$pt->mark_log;
my $qb = $pt->send_mail(from => '', to => ['bad2@bad.fold.test'], subject => 'a bounce itself');
ok($qb, "show bad: null-sender message accepted ($qb)") or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qb\E: moved to bad\//, 20), 'show bad: moved to bad/');
my ($c4, $j4, $o4) = ctl_json('show', 'bad', '--json');
is($c4, 0, 'show bad --json: exit 0');
is($j4 && $j4->{folder}, 'bad', 'show bad: folder bad');
my $eb = entry_of($j4, $qb);
ok($eb, 'show bad: the message is listed') or diag $o4;
is($eb->{sender}, '', 'show bad: sender empty (<>)');
like($eb->{reason} // '', qr/null sender/, 'show bad: why (null sender)');
is(rcpt_of($eb, 'bad2@bad.fold.test')->{status}, '5.1.1', 'show bad: recipient status');
is(rcpt_of($eb, 'bad2@bad.fold.test')->{error}, '550 5.1.1 <bad2@bad.fold.test>: no such user', 'show bad: recipient error');
my ($c5, $j5) = ctl_json('show', 'bounced', '--json');
ok(!entry_of($j5, $qb), 'show bounced does not list what is in bad/');
($rc, $out) = $pt->smtpctl('show', 'bad');
like($out, qr/^  sender <>, 1 recipient$/m, 'show bad (text): sender <>');

# ---- bounce ID: a deferred message fails now ----
$pt->mark_log;
my $qc = $pt->send_mail(from => 'ben@sender.test', to => ['c1@defer.fold.test'], subject => 'please return');
ok($qc, "bounce ID: accepted ($qc)") or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qc\E: to=<c1\@defer\.fold\.test>.*status=deferred/, 20), 'bounce ID: deferred (451)');
sleep 0.3;
($rc, $out) = $pt->smtpctl('bounce', $qc);
is($rc, 0, 'smtpctl bounce ID: exit 0') or diag $out;
like($out, qr/^bounced 1 message \(1 matched\)$/m, 'smtpctl bounce ID: says it bounced one');
ok($pt->wait_log(qr/\Q$qc\E: to=<c1\@defer\.fold\.test>, relay=none, dsn=5\.0\.0, status=failed \(bounced by the administrator/, 10),
    'bounce ID: logged as failed, bounced by the administrator');
ok($pt->wait_log(qr/\Q$qc\E: failure notice \S+ to <ben\@sender\.test> \(1 recipient\)/, 10), 'bounce ID: failure notice');
ok($pt->wait_log(qr/\Q$qc\E: moved to bounced\//, 10), 'bounce ID: moved to bounced/');
my @nc = wait_notices($qc, 1, 20);
is(scalar @nc, 1, 'bounce ID: the sender got one notice');
if (@nc) {
    my $d = $nc[0];
    is($d->{headers}{Subject}, 'Undelivered mail returned to sender: please return', 'bounce ID: Subject');
    is($d->{tx}{mail_from}, '', 'bounce ID: from <>');
    is(scalar @{ $d->{per_recipient} }, 1, 'bounce ID: one recipient group');
    my $g = $d->{per_recipient}[0] // {};
    is($g->{'Final-Recipient'}, 'rfc822; c1@defer.fold.test', 'bounce ID: Final-Recipient');
    is($g->{Action}, 'failed', 'bounce ID: Action failed');
    is($g->{Status}, '5.0.0', 'bounce ID: Status 5.0.0');
    like($g->{'Diagnostic-Code'} // '', qr/^X-Postern; bounced by the administrator/,
        'bounce ID: Diagnostic-Code X-Postern; bounced by the administrator');
    like($d->{part1} // '', qr/administrator/, 'bounce ID: part 1 says the administrator returned it');
}
my ($c6, $j6) = ctl_json('show', 'bounced', $qc, '--json');
my $rc6 = rcpt_of(entry_of($j6, $qc), 'c1@defer.fold.test');
is($rc6->{status}, '5.0.0', 'bounce ID: show bounced status 5.0.0');
like($rc6->{error} // '', qr/bounced by the administrator/, 'bounce ID: show bounced error');
sleep 1;
is(scalar(all_log_lines(qr/\Q$qc\E: to=<c1\@defer\.fold\.test>, relay=127/)), 1,
    'bounce ID: no delivery attempt after the bounce (one in all)');

# ---- bounce --domain D: only the recipients at D ----
$pt->mark_log;
my $qd = $pt->send_mail(from => 'cat@sender.test', to => [ 'x@defer.fold.test', 'y@defer2.fold.test' ],
    subject => 'half return');
ok($qd, "bounce --domain: accepted ($qd)") or diag $pt->smtp_error;
ok(wait_until(20, sub {
    $pt->log_lines(qr/\Q$qd\E: to=<x\@defer\.fold\.test>.*status=deferred/)
        && $pt->log_lines(qr/\Q$qd\E: to=<y\@defer2\.fold\.test>.*status=deferred/) }, 0.1),
    'bounce --domain: both recipients deferred');
sleep 0.3;
my ($c7, $j7, $o7) = ctl_json('bounce', '--domain', 'defer2.fold.test', '--json');
is($c7, 0, 'smtpctl bounce --domain: exit 0') or diag $o7;
is_deeply($j7, { bounced => 1, matched => 1, missing => 0 }, 'smtpctl bounce --domain --json: 1 bounced of 1 matched')
    or diag $o7;
ok($pt->wait_log(qr/\Q$qd\E: failure notice \S+ to <cat\@sender\.test> \(1 recipient\)/, 10),
    'bounce --domain: a notice for one recipient');
my @nd = wait_notices($qd, 1, 20);
is(scalar @nd, 1, 'bounce --domain: one notice');
if (@nd) {
    is_deeply([ map { $_->{'Final-Recipient'} } @{ $nd[0]{per_recipient} } ], ['rfc822; y@defer2.fold.test'],
        'bounce --domain: it lists only the recipient at that domain');
    is($nd[0]{per_recipient}[0]{Status}, '5.0.0', 'bounce --domain: Status 5.0.0');
}
sleep 0.5;
ok(in_folder('queue', $qd) && !in_folder('bounced', $qd), 'bounce --domain: the message stays in queue/');
my ($c8, $j8) = ctl_json('show', 'queue', '--json');
my ($mq) = grep { $_->{id} eq $qd } @{ ($j8 // {})->{messages} || [] };
my %st = map { ($_->{address} // $_->{addr} // '?') => $_->{state} } @{ ($mq // {})->{recipients} || [] };
is($st{'x@defer.fold.test'}, 'deferred', 'bounce --domain: the other recipient still deferred') or diag explain $mq;
is($st{'y@defer2.fold.test'}, 'failed', 'bounce --domain: that one failed');

# ---- requeue ID once the remote side is fixed (the MX now accepts) ----
$pt->mark_log;
my $qf = $pt->send_mail(from => 'eve@sender.test', to => [ 'f@flag.fold.test', 'k2@ok.fold.test' ],
    subject => 'requeue me');
ok($qf, "requeue: accepted ($qf)") or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qf\E: moved to bounced\/ \(1 of 2 recipients failed/, 20), 'requeue: first to bounced/');
is(scalar(wait_notices($qf, 1, 20)), 1, 'requeue: the sender was notified once');
open(my $fh, '>', $flag) or die "$flag: $!";
close $fh;
$pt->mark_log;
($rc, $out) = $pt->smtpctl('requeue', $qf);
is($rc, 0, 'smtpctl requeue ID: exit 0') or diag $out;
like($out, qr/^requeued 1 message \(1 matched in bounced\/ and bad\/\)$/m, 'smtpctl requeue ID: one requeued');
ok($pt->wait_log(qr/\Q$qf\E: requeued from bounced\/ by the administrator \(1 recipient to try again\)/, 10),
    'requeue: logged, one recipient to try again');
ok(wait_until(20, sub { $mx->messages_for('f@flag.fold.test') }, 0.1), 'requeue: delivered now');
ok($pt->wait_log(qr/\Q$qf\E: removed \(2 recipients delivered\)/, 10), 'requeue: the message is done and removed');
ok(!in_folder('bounced', $qf) && !in_folder('queue', $qf), 'requeue: in neither bounced/ nor queue/');
is(scalar($ok->messages_for('k2@ok.fold.test')), 1, 'requeue: the recipient delivered before was not sent again');
sleep 1;
is(scalar(notices_for($qf)), 1, 'requeue: no second notice');

# ---- requeue ID after the route is fixed (etc/domains, makemap, reload) ----
$pt->mark_log;
my $qe = $pt->send_mail(from => 'dan@sender.test', to => [ 'r@fix.fold.test', 'k@ok.fold.test' ],
    subject => 'try me again');
ok($qe, "requeue: accepted ($qe)") or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qe\E: moved to bounced\/ \(1 of 2 recipients failed/, 20), 'requeue: first to bounced/ (550 5.1.2)');
is(scalar(wait_notices($qe, 1, 20)), 1, 'requeue: the sender was notified once');
(my $fixed = $domains) =~ s/^fix\.fold\.test\s+mx=127\.0\.0\.231$/fix.fold.test     mx=127.0.0.232/m;
$pt->write_file('domains', $fixed);
($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'requeue: makemap with the fixed route') or diag $out;
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'requeue: smtpctl reload') or diag $out;
ok($pt->wait_log(qr/qmgr\[\d+\]: info: configuration reloaded/, 10), 'requeue: qmgr reloaded');
my $rt = route($pt, 'r@fix.fold.test');
is_deeply($rt->{phases}[0]{mx_override}, ['127.0.0.232'], 'requeue: smtpctl route shows the fixed mx=') or diag explain $rt;
($rc, $out) = $pt->smtpctl('requeue', $qe);
is($rc, 0, 'smtpctl requeue ID (route fixed): exit 0') or diag $out;
ok($pt->wait_log(qr/\Q$qe\E: requeued from bounced\/ by the administrator \(1 recipient to try again\)/, 10),
    'requeue (route fixed): logged');
ok(wait_until(20, sub { $ok->messages_for('r@fix.fold.test') }, 0.1), 'requeue (route fixed): delivered over the fixed route')
    or diag(join "\n", $pt->log_lines(qr/\Q$qe\E: (?:direct delivery|to=)/));
ok($pt->wait_log(qr/\Q$qe\E: removed \(2 recipients delivered\)/, 10), 'requeue (route fixed): done and removed');
ok(!in_folder('bounced', $qe) && !in_folder('queue', $qe), 'requeue (route fixed): in neither bounced/ nor queue/');
is(scalar($ok->messages_for('k@ok.fold.test')), 1, 'requeue (route fixed): the delivered recipient not sent again');
sleep 1;
is(scalar(notices_for($qe)), 1, 'requeue (route fixed): no second notice');

# ---- remove ID from bounced/ and bad/ ----
$pt->mark_log;
ok(in_folder('bounced', $qa), 'remove: the message is in bounced/');
($rc, $out) = $pt->smtpctl('remove', $qa);
is($rc, 0, 'smtpctl remove ID (bounced/): exit 0') or diag $out;
ok($pt->wait_log(qr/\Q$qa\E: removed from bounced\/ by the administrator/, 10), 'remove: logged');
ok(!in_folder('bounced', $qa), 'remove: gone from bounced/');
my ($c9, $j9) = ctl_json('show', 'bounced', $qa, '--json');
is($j9 && $j9->{count}, 0, 'remove: show bounced ID lists nothing');
($rc, $out) = $pt->smtpctl('remove', $qb);
is($rc, 0, 'smtpctl remove ID (bad/): exit 0') or diag $out;
ok(!in_folder('bad', $qb), 'remove: gone from bad/');
($rc, $out) = $pt->smtpctl('requeue', $qa);
is($rc, 1, 'requeue of an ID in neither folder: exit 1');
like($out, qr/\Q$qa\E: not in bounced\/ or bad\//, 'requeue of an ID in neither folder: says so');
ok(in_folder('bounced', $qc), 'remove: the others are still there');

# ---- nothing more at the sender's MX ----
sleep 1;
my %per;
for my $t ($snd->messages) {
    my $d = parse_file($t->{file}) or next;
    $per{ ($d->{per_message} // {})->{'X-Postern-Queue-ID'} // '?' }++;
}
is_deeply(\%per, { $qa => 1, $qc => 1, $qd => 1, $qe => 1, $qf => 1 },
    'the sender\'s MX got exactly one notice for each of the five events, nothing else')
    or diag explain \%per;

done_testing();
