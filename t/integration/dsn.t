# dsn.t - delivery status notifications (docs/dsn.md, RFC 3461/3464) end
# to end: what qmgr sends, to whom, when, and what is in it. Each notice is
# read back from the sender domain's loopback MX and parsed with Python's
# email package (t/lib/dsn_parse.py), so the checks are on the MIME
# structure and the RFC 3464 fields, not on the bytes.
#
#   - failure (550 5.1.1 at RCPT): one notice to the sender from <>, with
#     From/To/Subject/Auto-Submitted/In-Reply-To/References, multipart/report
#     with text/plain, message/delivery-status (Reporting-MTA,
#     X-Postern-Queue-ID, Original-Envelope-Id, Arrival-Date;
#     Original-Recipient, Final-Recipient, Action, Status, Remote-MTA,
#     Diagnostic-Code, Last-Attempt-Date) and text/rfc822-headers; the
#     delivered recipient is not in it; the original goes to bounced/
#   - RET=FULL returns message/rfc822 with the body; over bounce_size_limit
#     only the header
#   - 100 failed recipients at one domain: one notice, 100 recipient groups
#   - an original whose header section is over bounce_size_limit: part 3
#     cut, but In-Reply-To/References/Subject still from the original
#   - NOTIFY=NEVER: no notice (also for one recipient of two); no Subject:
#     the notice's Subject has no ": " suffix
#   - NOTIFY=SUCCESS: a "relayed" notice when the next hop does not offer
#     DSN; none, and NOTIFY/ORCPT/RET/ENVID passed on, when it does
#   - delay_warning_time (main.cf 2s; per domain 1h and 0): one "delayed"
#     notice with Will-Retry-Until, only once, only for the recipients whose
#     NOTIFY allows it
#   - max_queue_lifetime (3s for one domain): failed with 4.4.7
#   - null sender: bad/, nothing sent
#   - a notice that cannot be delivered: bad/, and one short notice to
#     notice_recipient (postmaster@myhostname); with notice_recipient empty
#     (reload), none
#   - nothing else reaches the sender's MX or the postmaster's
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use Postern::Test;
use Postern::DSN qw(parse_file notices_at);
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(wait_until);

{
    my $why = Postern::DSN::unavailable();
    plan skip_all => $why if $why;
}

my $ME = 'postern.test';
# postern.test stands for the postmaster's remote site here: not local
my $pt = Postern::Test->new(mydestination => 'localhost', retry_delay => '1s', delay_warning_time => '2s',
    bounce_size_limit => '2k');

my $NO_SUCH = sub { my (undef, $to) = @_; "550 5.1.1 <$to>: no such user" };
# rcpt.dsn.test & co.: a remote MX that refuses bad*, defers the slow domains
my $mx = $pt->peer(name => 'mx', addr => '127.0.0.221',
    rcpt_rules => [ [ qr/^bad/, $NO_SUCH ],
                    [ qr/\@(?:late|quiet|exp)\.dsn\.test$/, '451 4.3.0 try again later' ] ]);
my $relay = $pt->peer(name => 'relay', addr => '127.0.0.222');    # no DSN in EHLO (the default)
my $dsnok = $pt->peer(name => 'dsnok', addr => '127.0.0.223',
    extensions => [ 'PIPELINING', 'SIZE 104857600', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN' ]);
my $nosnd = $pt->peer(name => 'nosnd', addr => '127.0.0.224',
    rcpt_rules => [ [ qr/./, '550 5.7.1 we do not take mail from anybody' ] ]);
my $pm  = $pt->peer(name => 'pm', addr => '127.0.0.225');     # postern.test: the postmaster
my $snd = $pt->peer(name => 'snd', addr => '127.0.0.226');    # sender.test: the senders
$pt->write_file('domains', <<'MAP');
rcpt.dsn.test    mx=127.0.0.221
late.dsn.test    mx=127.0.0.221 max_queue_lifetime=1h
quiet.dsn.test   mx=127.0.0.221 max_queue_lifetime=1h delay_warning_time=1h
exp.dsn.test     mx=127.0.0.221 max_queue_lifetime=3s delay_warning_time=0
relay.dsn.test   mx=127.0.0.222
dsnok.dsn.test   mx=127.0.0.223
nosnd.dsn.test   mx=127.0.0.224
nosnd2.dsn.test  mx=127.0.0.224
postern.test     mx=127.0.0.225
sender.test      mx=127.0.0.226
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start;

# ---- helpers ----

my $ehlo_text = '';
my $nmsg = 0;

# SMTP with DSN parameters (Net::SMTP hides them): from, mail_params,
# rcpts => [addr or [addr, params]], subject/body/headers or data.
# Returns ($qid, $message_id) or (undef, undef, $error).
sub send_dsn {
    my (%a) = @_;
    my $mid = $a{message_id} // sprintf('<dsn-%d-%d-%d@client.test>', $$, ++$nmsg, time() * 1000);
    my @rc = map { ref $_ ? $_ : [$_] } @{ $a{rcpts} };
    my $data = $a{data};
    ($data) = $pt->make_message(from => $a{from} || 'nobody@client.test',
        to => $a{to_header} ? [ $a{to_header} ] : [ map { $_->[0] } @rc ],
        subject => $a{subject}, body => $a{body},
        headers => $a{headers}, message_id => $mid) unless defined $data;
    my $s = eval { smtp_connect(port => $pt->port) } or return (undef, undef, "connect: $@");
    my $err;
    my $step = sub {
        my ($line, $want) = @_;
        my $r = defined $line ? smtp_cmd($s, $line) : smtp_reply($s);
        $err = ($line // 'greeting') . ": $r" unless $r =~ /^$want/;
        return $r;
    };
    $step->(undef, '220');
    my $e = $step->('EHLO client.test', '250') unless $err;
    $ehlo_text = $e if $e;
    my $from = $a{from} // '';
    $step->("MAIL FROM:<$from>" . ($a{mail_params} ? " $a{mail_params}" : ''), '250') unless $err;
    for my $r (@rc) {
        last if $err;
        $step->("RCPT TO:<$r->[0]>" . ($r->[1] ? " $r->[1]" : ''), '250');
    }
    $step->('DATA', '354') unless $err;
    my $reply = '';
    unless ($err) {
        (my $t = $data) =~ s/\r?\n/\r\n/g;
        $t .= "\r\n" unless $t =~ /\r\n\z/;
        $t =~ s/^\./../mg;
        print $s $t;
        $reply = $step->('.', '250');
    }
    print $s "QUIT\r\n" unless $err;
    close $s;
    return (undef, undef, $err) if $err;
    my ($qid) = $reply =~ /queued as\s+(\S+)/i;
    return ($qid, $mid);
}



# The notices at $peer about the original with Message-ID $mid or queue ID
# $qid: In-Reply-To names the one, X-Postern-Queue-ID the other (either is
# enough to find it; check_notice asserts both).
sub about {
    my ($d, $mid, $qid) = @_;
    return (defined $mid && ($d->{headers}{'In-Reply-To'} // '') eq $mid)
        || (defined $qid && (($d->{per_message} // {})->{'X-Postern-Queue-ID'} // '') eq $qid);
}
sub notices_for {
    my ($peer, $mid, $qid) = @_;
    return grep { about($_, $mid, $qid) } notices_at($peer);
}

# Wait for ($n) notices about $mid/$qid at $peer; return them.
sub wait_notices {
    my ($peer, $mid, $qid, $n, $timeout) = @_;
    my @n;
    wait_until($timeout // 20, sub { @n = notices_for($peer, $mid, $qid); @n >= ($n // 1) }, 0.2);
    return @n;
}

sub rcpt_group {
    my ($d, $addr) = @_;
    my ($g) = grep { ($_->{'Final-Recipient'} // '') eq "rfc822; $addr" } @{ $d->{per_recipient} };
    return $g // {};
}

sub final_rcpts {
    my ($d) = @_;
    return [ sort map { my $v = $_->{'Final-Recipient'} // ''; $v =~ s/^rfc822;\s*//i; $v }
        @{ $d->{per_recipient} } ];
}

sub in_folder { my ($dir, $id) = @_; return scalar grep { $_ eq $id } $pt->spool_files($dir) }

my $RFC5322_DATE = qr/^(?:[A-Z][a-z]{2}, )?\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/;

# The checks every notice to a sender must pass. $o: to, qid, mid, subject
# (the original's, or undef), prefix (the subject's first words), n
# (recipient groups), part3 (content type), envid.
sub check_notice {
    my ($d, $o, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $h = $d->{headers};
    is($d->{tx}{mail_from}, '', "$name: envelope sender <>");
    is_deeply($d->{tx}{accepted_rcpts}, [ $o->{to} ], "$name: envelope recipient the sender");
    is($d->{raw_headers}{From}, qq{"Mail Delivery System" <MAILER-DAEMON\@$ME>},
        "$name: From: \"Mail Delivery System\" <MAILER-DAEMON\@$ME>");
    is($d->{to_addr}, $o->{to}, "$name: To: the sender");
    is($h->{Subject}, defined $o->{subject} ? "$o->{prefix}: $o->{subject}" : $o->{prefix},
        "$name: Subject");
    is($h->{'Auto-Submitted'}, 'auto-replied', "$name: Auto-Submitted: auto-replied");
    ok($h->{'Message-ID'} && $h->{'Message-ID'} =~ /^<[^<>\s]+\@[^<>\s]+>$/
        && $h->{'Message-ID'} ne $o->{mid}, "$name: a Message-ID of its own")
        or diag("Message-ID: " . ($h->{'Message-ID'} // 'none'));
    is($h->{'In-Reply-To'}, $o->{mid}, "$name: In-Reply-To the original");
    is($h->{References}, $o->{mid}, "$name: References the original");
    is($d->{header_counts}{$_}, 1, "$name: one $_ field")
        for qw(From To Subject Message-ID Auto-Submitted Content-Type);
    like($h->{Date} // '', $RFC5322_DATE, "$name: Date");
    is($d->{content_type}, 'multipart/report', "$name: multipart/report");
    is($d->{report_type}, 'delivery-status', "$name: report-type=delivery-status");
    ok($d->{boundary}, "$name: a boundary");
    is_deeply($d->{parts}, [ 'text/plain', 'message/delivery-status', $o->{part3} ],
        "$name: parts text/plain, message/delivery-status, $o->{part3}");
    is_deeply($d->{defects}, [], "$name: no MIME defects") or diag explain $d->{defects};
    my $pmf = $d->{per_message} // {};
    is($pmf->{'Reporting-MTA'}, "dns; $ME", "$name: Reporting-MTA: dns; $ME");
    is($pmf->{'X-Postern-Queue-ID'}, $o->{qid}, "$name: X-Postern-Queue-ID: the original's queue ID");
    is($pmf->{'Original-Envelope-Id'}, $o->{envid}, "$name: Original-Envelope-Id "
        . (defined $o->{envid} ? $o->{envid} : 'absent (no ENVID)'));
    like($pmf->{'Arrival-Date'} // '', $RFC5322_DATE, "$name: Arrival-Date");
    ok(defined $d->{per_message_epoch}{'Arrival-Date'} && defined $o->{sent}
        && abs($d->{per_message_epoch}{'Arrival-Date'} - $o->{sent}) < 5,
        "$name: Arrival-Date is when the original arrived") if $o->{sent};
    is(scalar @{ $d->{per_recipient} }, $o->{n}, "$name: $o->{n} recipient group(s)");
}

# All of master.log (the marks of wait_log move on).
sub all_log_lines {
    my ($re) = @_;
    return grep { $_ =~ $re } split /\n/, Postern::Util::slurp($pt->log_path);
}

# ---- sent first, checked at the end: a delay and an expiry ----
# late.dsn.test: main.cf's delay_warning_time (2s); quiet.dsn.test: its own
# (1h); exp.dsn.test: max_queue_lifetime 3s, delay_warning_time 0.
my $td = time;
my ($qd, $md, $ed) = send_dsn(from => 'hank@sender.test', mail_params => 'ENVID=dsn-env-delay',
    rcpts => [ 'd1@late.dsn.test', [ 'd2@late.dsn.test', 'NOTIFY=FAILURE' ],
               [ 'd3@late.dsn.test', 'NOTIFY=DELAY ORCPT=rfc822;d3@late.dsn.test' ],
               'q1@quiet.dsn.test', [ 'd4@late.dsn.test', 'NOTIFY=NEVER' ] ],
    subject => 'slow one');
ok($qd, "delay: accepted ($qd)") or diag $ed;
my $te = time;
my ($qe, $me, $ee) = send_dsn(from => 'ivy@sender.test', rcpts => ['e1@exp.dsn.test'],
    subject => 'short life');
ok($qe, "expiry: accepted ($qe)") or diag $ee;

# ---- failure: 550 5.1.1 at RCPT, with ENVID and ORCPT, no RET ----
$pt->mark_log;
my $t1 = time;
my ($q1, $m1, $e1) = send_dsn(from => 'alice@sender.test', mail_params => 'ENVID=dsn-env-0001',
    rcpts => [ [ 'bad1@rcpt.dsn.test', 'ORCPT=rfc822;orig-bad1@alias.test' ], 'ok1@rcpt.dsn.test' ],
    subject => 'lunch plans', body => "BODY-MARKER-ONE\nsee you\n");
ok($q1, "failure: message accepted ($q1)") or diag $e1;
like($ehlo_text, qr/^250[ -]DSN\r?$/m, 'smtpd offers DSN in EHLO');
my $fl = $pt->wait_log(qr/\Q$q1\E: failure notice (\S+) to <alice\@sender\.test> \(1 recipient\)/, 20);
ok($fl, 'failure: log "failure notice NOTICEID to <alice@sender.test> (1 recipient)"')
    or diag(join "\n", $pt->log_lines(qr/\Q$q1\E/));
my ($n1id) = ($fl // '') =~ /failure notice (\S+)/;
ok($pt->wait_log(qr/\Q$q1\E: moved to bounced\/ \(1 of 2 recipients failed; the sender was notified/, 10),
    'failure: the original moved to bounced/ (the sender was notified)');
ok(in_folder('bounced', $q1) && !in_folder('queue', $q1), 'failure: the file is in bounced/, not queue/');
is(scalar($mx->messages_for('ok1@rcpt.dsn.test')), 1, 'failure: the good recipient was delivered');
my @n1 = wait_notices($snd, $m1, $q1, 1, 20);
is(scalar @n1, 1, 'failure: one notice arrived at the sender\'s MX');
if (@n1) {
    my $d = $n1[0];
    check_notice($d, { to => 'alice@sender.test', qid => $q1, mid => $m1, subject => 'lunch plans',
        prefix => 'Undelivered mail returned to sender', n => 1, part3 => 'text/rfc822-headers',
        envid => 'dsn-env-0001', sent => $t1 }, 'failure');
    is($d->{headers}{'Message-ID'}, "<$n1id.notice\@$ME>", 'failure: the Message-ID the log names')
        if $n1id;
    my $g = rcpt_group($d, 'bad1@rcpt.dsn.test');
    is($g->{'Original-Recipient'}, 'rfc822;orig-bad1@alias.test', 'failure: Original-Recipient (ORCPT)');
    is($g->{'Final-Recipient'}, 'rfc822; bad1@rcpt.dsn.test', 'failure: Final-Recipient');
    is($g->{Action}, 'failed', 'failure: Action: failed');
    is($g->{Status}, '5.1.1', 'failure: Status: 5.1.1 (the server\'s)');
    is($g->{'Remote-MTA'}, 'dns; 127.0.0.221', 'failure: Remote-MTA: dns; 127.0.0.221');
    is($g->{'Diagnostic-Code'}, 'smtp; 550 5.1.1 <bad1@rcpt.dsn.test>: no such user',
        'failure: Diagnostic-Code: smtp; the reply');
    like($g->{'Last-Attempt-Date'} // '', $RFC5322_DATE, 'failure: Last-Attempt-Date');
    ok(!exists $g->{'Will-Retry-Until'}, 'failure: no Will-Retry-Until');
    is_deeply(final_rcpts($d), ['bad1@rcpt.dsn.test'], 'failure: the delivered recipient is not listed');
    my $p1 = $d->{part1} // '';
    like($p1, qr/bad1\@rcpt\.dsn\.test/, 'failure: part 1 names the recipient');
    like($p1, qr/550 5\.1\.1 <bad1\@rcpt\.dsn\.test>: no such user/, 'failure: part 1 gives the reply');
    unlike($p1, qr/ok1\@rcpt\.dsn\.test/, 'failure: part 1 does not name the delivered one');
    is($d->{part1_charset}, 'us-ascii', 'failure: part 1 is us-ascii');
    my %rh = map { lc($_->[0]) => $_->[1] } @{ $d->{returned_headers} };
    is($rh{subject}, 'lunch plans', 'failure: part 3 returns the original header (Subject)');
    is($rh{'message-id'}, $m1, 'failure: part 3 returns the original header (Message-ID)');
    unlike($d->{returned_raw} // '', qr/BODY-MARKER-ONE/, 'failure: part 3 has no body (no RET)');
}

# ---- RET=FULL: the whole message ----
my $t2 = time;
my ($q2, $m2, $e2) = send_dsn(from => 'bob@sender.test', mail_params => 'RET=FULL',
    rcpts => ['bad2@rcpt.dsn.test'], subject => 'full return', body => "BODY-MARKER-TWO\nline 2\n");
ok($q2, "RET=FULL: accepted ($q2)") or diag $e2;
my @n2 = wait_notices($snd, $m2, $q2, 1, 20);
is(scalar @n2, 1, 'RET=FULL: one notice');
if (@n2) {
    my $d = $n2[0];
    check_notice($d, { to => 'bob@sender.test', qid => $q2, mid => $m2, subject => 'full return',
        prefix => 'Undelivered mail returned to sender', n => 1, part3 => 'message/rfc822',
        envid => undef, sent => $t2 }, 'RET=FULL');
    my %rh = map { lc($_->[0]) => $_->[1] } @{ $d->{returned_headers} };
    is($rh{subject}, 'full return', 'RET=FULL: the returned message has its Subject');
    is($rh{'message-id'}, $m2, 'RET=FULL: and its Message-ID');
    like($d->{returned_body} // '', qr/BODY-MARKER-TWO\r?\nline 2/, 'RET=FULL: and its body');
    is(rcpt_group($d, 'bad2@rcpt.dsn.test')->{Status}, '5.1.1', 'RET=FULL: Status 5.1.1');
    ok(!exists rcpt_group($d, 'bad2@rcpt.dsn.test')->{'Original-Recipient'},
        'RET=FULL: no Original-Recipient without ORCPT');
}

# ---- RET=FULL over bounce_size_limit (2k): only the header ----
my ($q3, $m3, $e3) = send_dsn(from => 'bob@sender.test', mail_params => 'RET=FULL',
    rcpts => ['bad3@rcpt.dsn.test'], subject => 'too big to return',
    body => "BODY-MARKER-THREE\n" . ("x" x 70 . "\n") x 100);
ok($q3, "RET=FULL, 7k message: accepted ($q3)") or diag $e3;
my @n3 = wait_notices($snd, $m3, $q3, 1, 20);
is(scalar @n3, 1, 'RET=FULL, 7k: one notice');
if (@n3) {
    my $d = $n3[0];
    is_deeply($d->{parts}, [ 'text/plain', 'message/delivery-status', 'text/rfc822-headers' ],
        'RET=FULL over bounce_size_limit: part 3 is text/rfc822-headers');
    my %rh = map { lc($_->[0]) => $_->[1] } @{ $d->{returned_headers} };
    is($rh{subject}, 'too big to return', 'RET=FULL over the limit: the header is returned');
    unlike($d->{returned_raw} // '', qr/BODY-MARKER-THREE|xxxxxxxxxx/, 'RET=FULL over the limit: no body');
    like($d->{part1} // '', qr/bounce_size_limit|too (?:big|large)|larger|bytes|size/i,
        'RET=FULL over the limit: part 1 says why the body is not returned');
}

# ---- 100 recipients fail at one domain: one notice ----
$pt->mark_log;
my @many = map { sprintf('bad%03d@rcpt.dsn.test', $_) } 1 .. 100;
# a short To: (the header stays under bounce_size_limit; see the next case)
my ($q5, $m5, $e5) = send_dsn(from => 'carol@sender.test', mail_params => 'RET=HDRS',
    rcpts => \@many, subject => 'hundred', to_header => 'undisclosed-recipients:;');
ok($q5, "100 recipients: accepted ($q5)") or diag $e5;
ok($pt->wait_log(qr/\Q$q5\E: failure notice \S+ to <carol\@sender\.test> \(100 recipients\)/, 30),
    '100 recipients: log "failure notice ... (100 recipients)"');
my @n5 = wait_notices($snd, $m5, $q5, 1, 20);
is(scalar @n5, 1, '100 recipients: one notice');
if (@n5) {
    my $d = $n5[0];
    check_notice($d, { to => 'carol@sender.test', qid => $q5, mid => $m5, subject => 'hundred',
        prefix => 'Undelivered mail returned to sender', n => 100, part3 => 'text/rfc822-headers',
        envid => undef }, '100 recipients');
    is_deeply(final_rcpts($d), [ sort @many ], '100 recipients: each listed once');
    is(scalar(grep { ($_->{Action} // '') eq 'failed' && ($_->{Status} // '') eq '5.1.1' }
        @{ $d->{per_recipient} }), 100, '100 recipients: all Action failed, Status 5.1.1');
    is(scalar(grep { ($_->{'Diagnostic-Code'} // '') =~ /^smtp; 550 5\.1\.1 <bad\d{3}\@rcpt\.dsn\.test>: no such user$/ }
        @{ $d->{per_recipient} }), 100, '100 recipients: each with its own Diagnostic-Code');
}
my @log5 = $pt->log_lines(qr/\Q$q5\E: \S+ notice/);
is(scalar @log5, 1, '100 recipients: one notice in the log') or diag join("\n", @log5);

# ---- a header section over bounce_size_limit (2k): cut, but the notice
# still answers the original (Message-ID and Subject come after the cut) ----
$pt->mark_log;
# ~3k, folded: smtpd refuses a line over 998 octets (RFC 5322; issue 18.5)
my $big_to = join(",\n ", map { sprintf('listed-%03d@rcpt.dsn.test', $_) } 1 .. 120);
my ($q4, $m4, $e4) = send_dsn(from => 'bob@sender.test', rcpts => ['bad4@rcpt.dsn.test'],
    to_header => $big_to, subject => 'big header', body => "BODY-MARKER-FOUR\n");
ok($q4, "header over the limit: accepted ($q4)") or diag $e4;
my @n4 = wait_notices($snd, $m4, $q4, 1, 20);
is(scalar @n4, 1, 'header over the limit: one notice');
if (@n4) {
    my $d = $n4[0];
    is($d->{per_message}{'X-Postern-Queue-ID'}, $q4, 'header over the limit: X-Postern-Queue-ID');
    is($d->{headers}{'In-Reply-To'}, $m4,
        'header over the limit: In-Reply-To the original\'s Message-ID (which lies past bounce_size_limit)');
    is($d->{headers}{References}, $m4, 'header over the limit: References likewise');
    is($d->{headers}{Subject}, 'Undelivered mail returned to sender: big header',
        'header over the limit: Subject with the original\'s Subject');
    is($d->{part3_type}, 'text/rfc822-headers', 'header over the limit: text/rfc822-headers');
    cmp_ok(length($d->{returned_raw} // ''), '<=', 2048, 'header over the limit: part 3 cut to bounce_size_limit');
    unlike($d->{returned_raw} // '', qr/BODY-MARKER-FOUR/, 'header over the limit: no body');
    like($d->{part1} // '', qr/cut/, 'header over the limit: part 1 says the header was cut');
}

# ---- NOTIFY=NEVER: nothing; mixed NEVER and default; no Subject ----
$pt->mark_log;
my ($q6, $m6, $e6) = send_dsn(from => 'dave@sender.test',
    rcpts => [ [ 'bad-never@rcpt.dsn.test', 'NOTIFY=NEVER' ] ], subject => 'never tell me');
ok($q6, "NOTIFY=NEVER: accepted ($q6)") or diag $e6;
ok($pt->wait_log(qr/\Q$q6\E: moved to bounced\/ \(1 of 1 recipient failed; the sender asked for no notice \(NOTIFY\)/, 20),
    'NOTIFY=NEVER: to bounced/, the sender asked for no notice');
my $m7 = sprintf('<dsn-nosubject-%d@client.test>', $$);
my ($q7, undef, $e7) = send_dsn(from => 'erin@sender.test',
    rcpts => [ [ 'bad-a@rcpt.dsn.test', 'NOTIFY=NEVER' ], [ 'bad-b@rcpt.dsn.test', 'NOTIFY=FAILURE' ],
               'bad-c@rcpt.dsn.test' ],
    data => "From: erin\@sender.test\nTo: x\@rcpt.dsn.test\nMessage-ID: $m7\n\nno subject here\n");
ok($q7, "mixed NOTIFY: accepted ($q7)") or diag $e7;
my @n7 = wait_notices($snd, $m7, $q7, 1, 20);
is(scalar @n7, 1, 'mixed NOTIFY: one notice');
if (@n7) {
    my $d = $n7[0];
    check_notice($d, { to => 'erin@sender.test', qid => $q7, mid => $m7, subject => undef,
        prefix => 'Undelivered mail returned to sender', n => 2, part3 => 'text/rfc822-headers',
        envid => undef }, 'mixed NOTIFY, no Subject');
    is_deeply(final_rcpts($d), [ 'bad-b@rcpt.dsn.test', 'bad-c@rcpt.dsn.test' ],
        'mixed NOTIFY: NOTIFY=FAILURE and no NOTIFY listed, NOTIFY=NEVER not');
}
ok($pt->wait_log(qr/\Q$q7\E: moved to bounced\/ \(3 of 3 recipients failed; the sender was notified of those that asked for it/, 10),
    'mixed NOTIFY: bounced/, the sender notified of those that asked');

# ---- NOTIFY=SUCCESS, next hop without DSN: "relayed" ----
$pt->mark_log;
my $t8 = time;
my ($q8, $m8, $e8) = send_dsn(from => 'frank@sender.test', mail_params => 'RET=HDRS ENVID=dsn-env-0008',
    rcpts => [ [ 's1@relay.dsn.test', 'NOTIFY=SUCCESS ORCPT=rfc822;s1@relay.dsn.test' ],
               's2@relay.dsn.test' ],
    subject => 'tell me it went');
ok($q8, "NOTIFY=SUCCESS without DSN at the next hop: accepted ($q8)") or diag $e8;
ok($pt->wait_log(qr/\Q$q8\E: relay notice \S+ to <frank\@sender\.test> \(1 recipient\)/, 20),
    'relayed: log "relay notice ... (1 recipient)"');
ok($pt->wait_log(qr/\Q$q8\E: removed \(2 recipients delivered\)/, 10), 'relayed: the original is removed');
my @n8 = wait_notices($snd, $m8, $q8, 1, 20);
is(scalar @n8, 1, 'relayed: one notice');
if (@n8) {
    my $d = $n8[0];
    check_notice($d, { to => 'frank@sender.test', qid => $q8, mid => $m8, subject => 'tell me it went',
        prefix => 'Delivery report: relayed', n => 1, part3 => 'text/rfc822-headers',
        envid => 'dsn-env-0008', sent => $t8 }, 'relayed');
    my $g = rcpt_group($d, 's1@relay.dsn.test');
    is($g->{Action}, 'relayed', 'relayed: Action: relayed');
    like($g->{Status} // '', qr/^2\.\d{1,3}\.\d{1,3}$/, 'relayed: Status 2.x.x');
    is($g->{'Original-Recipient'}, 'rfc822;s1@relay.dsn.test', 'relayed: Original-Recipient');
    is($g->{'Remote-MTA'}, 'dns; 127.0.0.222', 'relayed: Remote-MTA');
    ok(!exists $g->{'Will-Retry-Until'}, 'relayed: no Will-Retry-Until');
}
my ($tr8) = $relay->messages_for('s1@relay.dsn.test');
ok($tr8, 'relayed: the next hop got the message');
if ($tr8) {
    unlike($tr8->{mail_params} // '', qr/RET=|ENVID=/, 'relayed: no RET/ENVID to a server without DSN');
    ok(!grep({ defined $_->{params} } @{ $tr8->{rcpts} }), 'relayed: no NOTIFY/ORCPT to it either')
        or diag explain $tr8->{rcpts};
}

# ---- NOTIFY=SUCCESS, next hop with DSN: passed on, no notice ----
$pt->mark_log;
my ($q9, $m9, $e9) = send_dsn(from => 'gina@sender.test', mail_params => 'RET=FULL ENVID=dsn-env-0009',
    rcpts => [ [ 'p1@dsnok.dsn.test', 'NOTIFY=SUCCESS ORCPT=rfc822;orig9@alias.test' ],
               [ 'p2@dsnok.dsn.test', 'NOTIFY=DELAY,FAILURE' ], 'p3@dsnok.dsn.test' ],
    subject => 'dsn all the way');
ok($q9, "NOTIFY=SUCCESS with DSN at the next hop: accepted ($q9)") or diag $e9;
ok($pt->wait_log(qr/\Q$q9\E: removed \(3 recipients delivered\)/, 20), 'DSN next hop: delivered and removed');
my ($tr9) = $dsnok->messages_for('p1@dsnok.dsn.test');
ok($tr9, 'DSN next hop: got the message');
if ($tr9) {
    my $mp = $tr9->{mail_params} // '';
    like($mp, qr/(?:^|\s)RET=FULL(?:\s|$)/, 'DSN next hop: MAIL has RET=FULL');
    like($mp, qr/(?:^|\s)ENVID=dsn-env-0009(?:\s|$)/, 'DSN next hop: MAIL has ENVID');
    my %rp = map { $_->{addr} => $_->{params} // '' } @{ $tr9->{rcpts} };
    like($rp{'p1@dsnok.dsn.test'} // '', qr/(?:^|\s)NOTIFY=SUCCESS(?:\s|$)/, 'DSN next hop: RCPT has NOTIFY=SUCCESS');
    like($rp{'p1@dsnok.dsn.test'} // '', qr/(?:^|\s)ORCPT=rfc822;orig9\@alias\.test(?:\s|$)/i,
        'DSN next hop: RCPT has the ORCPT as given');
    like($rp{'p2@dsnok.dsn.test'} // '', qr/(?:^|\s)NOTIFY=FAILURE,DELAY(?:\s|$)/, 'DSN next hop: NOTIFY=FAILURE,DELAY');
    unlike($rp{'p3@dsnok.dsn.test'} // '', qr/NOTIFY=/, 'DSN next hop: no NOTIFY where none was given');
    diag("DSN next hop: MAIL $mp; RCPT " . join(' | ', map { "$_ $rp{$_}" } sort keys %rp));
}
sleep 1;
ok(!$pt->log_lines(qr/\Q$q9\E: \S+ notice/), 'DSN next hop: no notice from Postern');

# ---- null sender: bad/, nothing sent ----
$pt->mark_log;
my ($q10, $m10, $e10) = send_dsn(from => '', rcpts => ['bad-null@rcpt.dsn.test'], subject => 'a bounce');
ok($q10, "null sender: accepted ($q10)") or diag $e10;
ok($pt->wait_log(qr/\Q$q10\E: moved to bad\/ .*null sender/, 20), 'null sender: moved to bad/');
ok(in_folder('bad', $q10) && !in_folder('bounced', $q10) && !in_folder('queue', $q10),
    'null sender: the file is in bad/ only');
ok(!$pt->log_lines(qr/\Q$q10\E: \S+ notice/), 'null sender: no notice in the log');

# ---- a notice that cannot be delivered: bad/ and the postmaster ----
$pt->mark_log;
my ($q11, $m11, $e11) = send_dsn(from => 'zed@nosnd.dsn.test', rcpts => ['bad-x@rcpt.dsn.test'],
    subject => 'nobody home');
ok($q11, "undeliverable notice: accepted ($q11)") or diag $e11;
my $l11 = $pt->wait_log(qr/\Q$q11\E: failure notice (\S+) to <zed\@nosnd\.dsn\.test>/, 20);
my ($n11) = ($l11 // '') =~ /failure notice (\S+)/;
ok($n11, 'undeliverable notice: the failure notice was queued') or diag $pt->log_tail(20);
$n11 //= 'NONE';
ok($pt->wait_log(qr/\Q$n11\E: to=<zed\@nosnd\.dsn\.test>.*status=failed \(smtp\/rcpt: 550 5\.7\.1/, 20),
    'undeliverable notice: the notice fails with 550');
my $l11p = $pt->wait_log(qr/\Q$n11\E: postmaster notice (\S+) to <postmaster\@postern\.test> \(1 recipient\)/, 20);
ok($l11p, 'undeliverable notice: log "postmaster notice ... to <postmaster@postern.test>"');
my ($p11) = ($l11p // '') =~ /postmaster notice (\S+)/;
ok($pt->wait_log(qr/\Q$n11\E: moved to bad\/ \(a delivery notice about \Q$q11\E that could not be delivered; the postmaster was told\)/, 10),
    'undeliverable notice: moved to bad/ (the postmaster was told)');
ok(in_folder('bad', $n11), 'undeliverable notice: the notice is in bad/');
ok(in_folder('bounced', $q11), 'undeliverable notice: the original is in bounced/');
is($pm->wait_messages(1, 20), 1, 'undeliverable notice: the postmaster\'s MX got one message');
my @pmn = notices_at($pm);
if (@pmn) {
    my $d = $pmn[0];
    is($d->{tx}{mail_from}, '', 'postmaster notice: from <>');
    is_deeply($d->{tx}{accepted_rcpts}, ["postmaster\@$ME"], 'postmaster notice: to postmaster@myhostname');
    like($d->{headers}{Subject} // '', qr/^Undeliverable delivery notice/, 'postmaster notice: Subject');
    is($d->{raw_headers}{From}, qq{"Mail Delivery System" <MAILER-DAEMON\@$ME>}, 'postmaster notice: From');
    is($d->{to_addr}, "postmaster\@$ME", 'postmaster notice: To');
    is($d->{headers}{'Auto-Submitted'}, 'auto-replied', 'postmaster notice: Auto-Submitted');
    is($d->{headers}{'In-Reply-To'}, "<$n11.notice\@$ME>", 'postmaster notice: In-Reply-To the failed notice');
    is($d->{per_message}{'X-Postern-Queue-ID'}, $n11, 'postmaster notice: X-Postern-Queue-ID the failed notice');
    my $g = rcpt_group($d, 'zed@nosnd.dsn.test');
    is($g->{Action}, 'failed', 'postmaster notice: the notice\'s recipient failed');
    is($g->{Status}, '5.7.1', 'postmaster notice: Status 5.7.1');
    is($g->{'Diagnostic-Code'}, 'smtp; 550 5.7.1 we do not take mail from anybody',
        'postmaster notice: Diagnostic-Code');
    my %rh = map { lc($_->[0]) => $_->[1] } @{ $d->{returned_headers} };
    like($rh{subject} // '', qr/^Undelivered mail returned to sender: nobody home$/,
        'postmaster notice: returns the failed notice\'s header');
    is($d->{part3_type}, 'text/rfc822-headers', 'postmaster notice: the header only');
}
ok($pt->wait_log(qr/\Q$p11\E: removed \(1 recipient delivered\)/, 10), 'postmaster notice: delivered')
    if $p11;

# ---- a second undeliverable notice to the same domain within the hour: no second postmaster notice ----
$pt->mark_log;
my ($q13, $m13, $e13) = send_dsn(from => 'amy@nosnd.dsn.test', rcpts => ['bad-z@rcpt.dsn.test'],
    subject => 'nobody home again');
ok($q13, "second undeliverable notice: accepted ($q13)") or diag $e13;
my $l13 = $pt->wait_log(qr/\Q$q13\E: failure notice (\S+) to <amy\@nosnd\.dsn\.test>/, 20);
my ($n13) = ($l13 // '') =~ /failure notice (\S+)/;
$n13 //= 'NONE';
ok($pt->wait_log(qr/\Q$n13\E: no postmaster notice about this undeliverable notice: one about nosnd\.dsn\.test went out less than 3600s ago/, 20),
    'second undeliverable notice: the postmaster notice is held back (one per domain per hour)');
ok($pt->wait_log(qr/\Q$n13\E: moved to bad\/ \(a delivery notice about \Q$q13\E that could not be delivered\)/, 10),
    'second undeliverable notice: still kept in bad/, and its reason does not claim the postmaster was told');
sleep 1;
is(scalar($pm->messages), 1, 'second undeliverable notice: still one message at the postmaster\'s MX');

# ---- notice_recipient empty: no postmaster notice ----
$pt->config(notice_recipient => '');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'smtpctl reload (notice_recipient =)') or diag $out;
ok($pt->wait_log(qr/qmgr\[\d+\]: info: configuration reloaded/, 10), 'qmgr reloaded');
my ($q12, $m12, $e12) = send_dsn(from => 'yan@nosnd2.dsn.test', rcpts => ['bad-y@rcpt.dsn.test'],
    subject => 'nobody home either');
ok($q12, "notice_recipient empty: accepted ($q12)") or diag $e12;
my $l12 = $pt->wait_log(qr/\Q$q12\E: failure notice (\S+) to <yan\@nosnd2\.dsn\.test>/, 20);
my ($n12) = ($l12 // '') =~ /failure notice (\S+)/;
$n12 //= 'NONE';
ok($pt->wait_log(qr/\Q$n12\E: moved to bad\/ \(a delivery notice about \Q$q12\E that could not be delivered\)/, 20),
    'notice_recipient empty: the failed notice goes to bad/, nobody told');
sleep 2;
ok(!$pt->log_lines(qr/\Q$n12\E: \S+ notice/), 'notice_recipient empty: no postmaster notice in the log');
is(scalar($pm->messages), 1, 'notice_recipient empty: nothing more at the postmaster\'s MX');

# ---- the delay (sent at the start) ----
my $dl = wait_until(20, sub {
    (all_log_lines(qr/\Q$qd\E: delay notice \S+ to <hank\@sender\.test> \(2 recipients\)/))[0] }, 0.2);
ok($dl, 'delay: log "delay notice ... to <hank@sender.test> (2 recipients)"')
    or diag(join "\n", all_log_lines(qr/\Q$qd\E: \S+ notice/));
my @nd = wait_notices($snd, $md, $qd, 1, 20);
is(scalar @nd, 1, 'delay: one notice');
if (@nd) {
    my $d = $nd[0];
    check_notice($d, { to => 'hank@sender.test', qid => $qd, mid => $md, subject => 'slow one',
        prefix => 'Delayed mail (still being retried)', n => 2, part3 => 'text/rfc822-headers',
        envid => 'dsn-env-delay', sent => $td }, 'delay');
    is_deeply(final_rcpts($d), [ 'd1@late.dsn.test', 'd3@late.dsn.test' ],
        'delay: no NOTIFY and NOTIFY=DELAY listed; NOTIFY=FAILURE, NEVER and the 1h domain not');
    for my $a ('d1@late.dsn.test', 'd3@late.dsn.test') {
        my $g = rcpt_group($d, $a);
        is($g->{Action}, 'delayed', "delay: $a Action: delayed");
        is($g->{Status}, '4.3.0', "delay: $a Status: 4.3.0");
        is($g->{'Remote-MTA'}, 'dns; 127.0.0.221', "delay: $a Remote-MTA");
        is($g->{'Diagnostic-Code'}, 'smtp; 451 4.3.0 try again later', "delay: $a Diagnostic-Code");
        like($g->{'Last-Attempt-Date'} // '', $RFC5322_DATE, "delay: $a Last-Attempt-Date");
        like($g->{'Will-Retry-Until'} // '', $RFC5322_DATE, "delay: $a Will-Retry-Until");
    }
    is(rcpt_group($d, 'd3@late.dsn.test')->{'Original-Recipient'}, 'rfc822;d3@late.dsn.test',
        'delay: Original-Recipient');
    my ($ep) = grep { ($_->{'Will-Retry-Until'} // 0) } @{ $d->{per_recipient_epoch} };
    my $arr = $d->{per_message_epoch}{'Arrival-Date'};
    ok($ep && $arr && abs($ep->{'Will-Retry-Until'} - ($arr + 3600)) <= 2,
        'delay: Will-Retry-Until = arrival + max_queue_lifetime (1h)')
        or diag explain [$arr, $d->{per_recipient_epoch}];
    cmp_ok($d->{tx}{t}, '>=', $td + 1.9, 'delay: not sent before delay_warning_time (2s)');
}
ok(in_folder('queue', $qd), 'delay: the message is still in queue/');
# a few more deferrals after the notice: still only one
my @def_after;
wait_until(10, sub {
    my $seen = 0;
    @def_after = grep { $seen ||= /\Q$qd\E: delay notice/; $seen && /\Q$qd\E: to=<d1\@late\.dsn\.test>.*status=deferred/ }
        split /\n/, Postern::Util::slurp($pt->log_path);
    @def_after >= 3;
}, 0.2);
cmp_ok(scalar @def_after, '>=', 3, 'delay: deferred again (3 times) after the notice');
is(scalar(all_log_lines(qr/\Q$qd\E: \S+ notice/)), 1, 'delay: one notice in the log, however long it waits');
is(scalar(notices_for($snd, $md, $qd)), 1, 'delay: one notice at the sender\'s MX');
my @qdef = all_log_lines(qr/\Q$qd\E: to=<q1\@quiet\.dsn\.test>.*status=deferred/);
cmp_ok(scalar @qdef, '>=', 3, 'delay: the 1h domain was deferred past 2s too (' . scalar(@qdef) . ' times)');

# ---- the expiry (sent at the start) ----
ok(wait_until(20, sub {
        (all_log_lines(qr/\Q$qe\E: to=<e1\@exp\.dsn\.test>.*dsn=4\.4\.7, status=expired/))[0] }, 0.2),
    'expiry: log dsn=4.4.7, status=expired') or diag(join "\n", all_log_lines(qr/\Q$qe\E/));
my @ne = wait_notices($snd, $me, $qe, 1, 20);
is(scalar @ne, 1, 'expiry: one notice (no delay notice: delay_warning_time=0 for the domain)');
if (@ne) {
    my $d = $ne[0];
    check_notice($d, { to => 'ivy@sender.test', qid => $qe, mid => $me, subject => 'short life',
        prefix => 'Undelivered mail returned to sender', n => 1, part3 => 'text/rfc822-headers',
        envid => undef, sent => $te }, 'expiry');
    my $g = rcpt_group($d, 'e1@exp.dsn.test');
    is($g->{Action}, 'failed', 'expiry: Action: failed');
    is($g->{Status}, '4.4.7', 'expiry: Status: 4.4.7');
    is($g->{'Diagnostic-Code'}, 'smtp; 451 4.3.0 try again later', 'expiry: Diagnostic-Code: the last reply');
    ok(!exists $g->{'Will-Retry-Until'}, 'expiry: no Will-Retry-Until');
    cmp_ok($d->{tx}{t}, '>=', $te + 2.9, 'expiry: not before max_queue_lifetime (3s)');
}
ok(in_folder('bounced', $qe), 'expiry: the original is in bounced/');
is(scalar(all_log_lines(qr/\Q$qe\E: \S+ notice/)), 1, 'expiry: one notice in the log');

# ---- nothing else arrived ----
sleep 1;
# qid => mid of every original that must have exactly one notice at sender.test
my %expect = map { @$_ } grep { defined $_->[0] }
    ([$q1, $m1], [$q2, $m2], [$q3, $m3], [$q4, $m4], [$q5, $m5], [$q7, $m7], [$q8, $m8],
     [$qd, $md], [$qe, $me]);
my %got = map { $_ => 0 } keys %expect;
my (@stray, @not_null);
for my $n (notices_at($snd)) {
    my ($q) = grep { about($n, $expect{$_}, $_) } keys %expect;
    if ($q) { $got{$q}++ }
    else {
        push @stray, ($n->{headers}{'In-Reply-To'} // '(no In-Reply-To)') . ' / '
            . (($n->{per_message} // {})->{'X-Postern-Queue-ID'} // '(no queue ID)');
    }
    push @not_null, $n->{tx}{mail_from} if $n->{tx}{mail_from} ne '';
}
is_deeply(\@stray, [], 'the sender\'s MX got no other message (none for NOTIFY=NEVER, null sender, DSN next hop)');
is_deeply([ grep { $got{$_} != 1 } sort keys %got ], [], 'and exactly one notice per expected event')
    or diag explain \%got;
is_deeply(\@not_null, [], 'every notice came from <>');
my %nids = map { ($_->{headers}{'Message-ID'} // '') => 1 } notices_at($snd);
is(scalar keys %nids, scalar(notices_at($snd)), 'every notice has its own Message-ID');
# the refusing domain: each of the two notices tried once (the peer records a
# refused transaction only when the connection ends, so ask the log)
for my $n ([$n11, 'zed@nosnd.dsn.test'], [$n12, 'yan@nosnd2.dsn.test']) {
    my @tries = all_log_lines(qr/\Q$n->[0]\E: to=<\Q$n->[1]\E>/);
    is(scalar @tries, 1, "the notice to <$n->[1]> was tried once (a notice is not retried)")
        or diag join("\n", @tries);
}

done_testing();
