#!/usr/bin/perl
# sts_delivery.t - MTA-STS (RFC 8461) end to end: smtpd -> qmgr -> deliver
# -> MX peers on loopback, DNS from Postern::DNS::Fake (MX, A, the
# _mta-sts TXT record, mta-sts.DOMAIN), the policies served by
# Postern::HTTPS with a certificate of one test CA (mta_sts_ca_file) and
# the MX peers' certificates issued by another (tls_ca_file). Each case is
# a recipient domain of its own:
#   enf      enforce, the MX in the policy with a valid certificate:
#            delivered over TLS, tls_policy=mta-sts
#   two      enforce, two MX, the better one not in the policy: never
#            connected to (logged as skipped), the other takes the mail
#   nomatch  enforce, no MX in the policy: deferred naming MTA-STS, no
#            connection
#   badcert  enforce, a certificate of the right CA for another name:
#            deferred, no transaction; untrusted: a self-signed one, the same
#   notls    enforce, an MX without STARTTLS: deferred, nothing in plaintext
#   testing  testing, the badcert certificate: delivered, counted as a
#            failure by show tls
#   chg      max_age 3: after expiry the new policy (same id) is used; an
#            unexpired policy with the same id is not fetched again; a new
#            TXT id is fetched at once
#   keep     a cached policy whose refresh fails (404, new id) stays in
#            force; show sts and the log say the refresh failed
#   reuse    an idle connection to an MX that a changed policy no longer
#            lists is not used: the reuse check comes after the lookup,
#            against the host's plan
#   show tls (text and --json) counts sts successes and failures per
#   policy domain; control: after a reload with mta_sts = no the MX that
#   is not in nomatch's policy gets mail.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Postern::Test;
use Postern::Peer;
use Postern::DNS;
use Postern::HTTPS;
use Postern::Util qw(wait_until);

plan skip_all => 'openssl is not installed' unless grep { -x "$_/openssl" } split /:/, $ENV{PATH};

# one message per connection: every delivery opens (and is checked on) a
# connection of its own, so the peers' connection counts say what was tried
my $pt = Postern::Test->new(messages_per_connection => 1, dns_ttl_max => '1s');
my $port = $pt->direct_port;
my $dir = $pt->dir;

my $web_ca = Postern::HTTPS::CA->new(cn => 'STS web CA');
my $mx_ca = Postern::HTTPS::CA->new(cn => 'STS MX CA');

# A certificate of the MX CA for $name, in a directory of its own.
sub mx_cert {
    my ($label, $name) = @_;
    my $d = "$dir/cert-$label";
    mkdir $d or die "$d: $!";
    my ($crt, $key) = $mx_ca->issue($d, $name);
    chmod 0644, $crt, $key;
    return (cert => $crt, key => $key);
}

# name => [address, MX host, peer options]
my %mx = (
    enf      => ['127.0.0.71', 'mx.enf.test',      { starttls => 1, mx_cert('enf', 'mx.enf.test') }],
    two1     => ['127.0.0.72', 'mx1.two.test',     { starttls => 1, mx_cert('two1', 'mx1.two.test') }],
    two2     => ['127.0.0.73', 'mx2.two.test',     { starttls => 1, mx_cert('two2', 'mx2.two.test') }],
    nomatch  => ['127.0.0.74', 'mx.nomatch.test',  { starttls => 1, mx_cert('nomatch', 'mx.nomatch.test') }],
    badcert  => ['127.0.0.75', 'mx.badcert.test',  { starttls => 1, mx_cert('badcert', 'wrong.name.test') }],
    untrusted => ['127.0.0.76', 'mx.untrusted.test', { starttls => 1 }],    # self-signed
    notls    => ['127.0.0.77', 'mx.notls.test',    {}],
    testing  => ['127.0.0.78', 'mx.testing.test',  { starttls => 1, mx_cert('testing', 'wrong.name.test') }],
    chga     => ['127.0.0.79', 'mxa.chg.test',     { starttls => 1, mx_cert('chga', 'mxa.chg.test') }],
    chgb     => ['127.0.0.80', 'mxb.chg.test',     { starttls => 1, mx_cert('chgb', 'mxb.chg.test') }],
    keep1    => ['127.0.0.81', 'mx1.keep.test',    { starttls => 1, mx_cert('keep1', 'mx1.keep.test') }],
    keep2    => ['127.0.0.82', 'mx2.keep.test',    { starttls => 1, mx_cert('keep2', 'mx2.keep.test') }],
    reusea   => ['127.0.0.83', 'mxa.reuse.test',   { starttls => 1, mx_cert('reusea', 'mxa.reuse.test') }],
    reuseb   => ['127.0.0.84', 'mxb.reuse.test',   { starttls => 1, mx_cert('reuseb', 'mxb.reuse.test') }],
);
my %peer;
for my $n (sort keys %mx) {
    my ($addr, $host, $o) = @{ $mx{$n} };
    $peer{$n} = $pt->peer(name => $n, addr => $addr, port => $port, hostname => $host, %$o);
}

# domain => its MX (peer names, by preference)
my %dom = (
    'enf.test' => ['enf'], 'two.test' => ['two1', 'two2'], 'nomatch.test' => ['nomatch'],
    'badcert.test' => ['badcert'], 'untrusted.test' => ['untrusted'], 'notls.test' => ['notls'],
    'testing.test' => ['testing'], 'chg.test' => ['chga', 'chgb'], 'keep.test' => ['keep1', 'keep2'],
    'reuse.test' => ['reusea', 'reuseb'],
);
my $h = Postern::HTTPS->new(ca => $web_ca, addr => '127.0.0.1',
    names => [map { "mta-sts.$_" } sort keys %dom]);
$h->start;

my %rules;
sub txt_id {
    my ($d, $id) = @_;
    return ("_mta-sts.$d/TXT" => { answer => [qq{_mta-sts.$d TXT "v=STSv1; id=$id"}] });
}
for my $d (sort keys %dom) {
    my @names = @{ $dom{$d} };
    my $pref = 0;
    $rules{"$d/MX"} = {
        answer => [map { $pref += 10; "$d MX $pref $mx{$_}[1]" } @names],
        additional => [map { "$mx{$_}[1] A $mx{$_}[0]" } @names],
    };
    $rules{"$mx{$_}[1]/A"} = { answer => ["$mx{$_}[1] A $mx{$_}[0]"] } for @names;
    %rules = (%rules, txt_id($d, 1));
    $rules{"mta-sts.$d/A"} = { answer => ["mta-sts.$d A 127.0.0.1"] };
}
my $f = Postern::DNS::Fake->new(rules => \%rules);
$f->start;

sub policy_text {
    my (%o) = @_;
    return "version: STSv1\r\nmode: " . ($o{mode} // 'enforce') . "\r\n"
        . join('', map { "mx: $_\r\n" } @{ $o{mx} }) . "max_age: " . ($o{max_age} // 86400) . "\r\n";
}
$h->policy('enf.test',       policy_text(mx => ['mx.enf.test']));
$h->policy('two.test',       policy_text(mx => ['mx2.two.test']));
$h->policy('nomatch.test',   policy_text(mx => ['other.nomatch.test', '*.elsewhere.test']));
$h->policy('badcert.test',   policy_text(mx => ['mx.badcert.test']));
$h->policy('untrusted.test', policy_text(mx => ['*.untrusted.test']));
$h->policy('notls.test',     policy_text(mx => ['mx.notls.test']));
$h->policy('testing.test',   policy_text(mode => 'testing', mx => ['mx.testing.test']));
$h->policy('chg.test',       policy_text(mx => ['mxa.chg.test'], max_age => 3));
$h->policy('keep.test',      policy_text(mx => ['mx2.keep.test']));
$h->policy('reuse.test',     policy_text(mx => ['mxa.reuse.test']));

$pt->config(dns_servers => $f->addr, mta_sts_port => $h->port, mta_sts_ca_file => $web_ca->file,
    tls_ca_file => $mx_ca->file, connection_idle_timeout => '60s');
# reuse.test alone keeps its connections open between messages
$pt->write_file('domains', "reuse.test messages_per_connection=5\n");
my ($mrc, $mout) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($mrc, 0, 'domains map compiled') or diag $mout;
$pt->start;

sub send_to {
    my ($rcpt) = @_;
    my ($qid) = $pt->send_mail(from => 'sender@origin.test', to => [$rcpt]);
    ok($qid, "message to $rcpt accepted") or diag $pt->smtp_error;
    return $qid // 'NOQID';
}
sub sent_line { my ($q, $r) = @_; return $pt->wait_log(qr/\Q$q\E: to=<\Q$r\E>.*status=sent/, 30) // '' }
sub deferred_line { my ($q, $r) = @_; return $pt->wait_log(qr/\Q$q\E: to=<\Q$r\E>.*status=deferred/, 30) // '' }
sub conns { return scalar(my @c = $_[0]->connections) }
sub txns  { return scalar(my @t = $_[0]->transactions) }

# --- 1. enforce, the MX in the policy, a valid certificate
$pt->mark_log;
my $q = send_to('a@enf.test');
ok($peer{enf}->wait_messages(1, 30), 'enf: the MX got the message');
my ($t) = $peer{enf}->messages;
ok($t && $t->{tls}, 'enf: over TLS');
like(sent_line($q, 'a@enf.test'), qr/tls_policy=mta-sts(?! testing)/, 'enf: the delivery line says tls_policy=mta-sts');
is($h->requests('enf.test'), 1, 'enf: the policy was fetched once');

# --- 2. enforce, two MX: the better one is not in the policy
$q = send_to('a@two.test');
ok($peer{two2}->wait_messages(1, 30), 'two: the MX in the policy got the message');
like(sent_line($q, 'a@two.test'), qr/relay=mx2\.two\.test.*tls_policy=mta-sts/, 'two: sent through mx2 under MTA-STS');
like($pt->wait_log(qr/\Q$q\E: mx1\.two\.test skipped/, 5) // '',
    qr/skipped \(tls, temporary\): mx1\.two\.test is not in the MTA-STS policy of two\.test \(id 1\)/,
    'two: the log says mx1 was skipped as not in the policy');
is(conns($peer{two1}), 0, 'two: mx1 (preference 10) was never connected to');

# --- 3. enforce, no MX in the policy
$q = send_to('a@nomatch.test');
like(deferred_line($q, 'a@nomatch.test'), qr/not in the MTA-STS policy of nomatch\.test/,
    'nomatch: deferred, the reason names MTA-STS');

# --- 4. enforce, the MX in the policy with a certificate for another name / self-signed
$q = send_to('a@badcert.test');
my $bq = $q;
my $def = deferred_line($q, 'a@badcert.test');
ok($def, 'badcert: deferred');
ok($pt->wait_log(qr/\Q$q\E: mx\.badcert\.test\[127\.0\.0\.75\]:\d+ failed at starttls \(tls, temporary\)/, 5),
    'badcert: the log says TLS failed at mx.badcert.test') or diag $def;
ok(conns($peer{badcert}) >= 1, 'badcert: the MX was connected to');
is(txns($peer{badcert}), 0, 'badcert: no transaction reached it');
$q = send_to('a@untrusted.test');
ok(deferred_line($q, 'a@untrusted.test'), 'untrusted: a self-signed certificate: deferred');
is(txns($peer{untrusted}), 0, 'untrusted: no transaction reached it');

# --- 5. enforce, no STARTTLS
$q = send_to('a@notls.test');
ok(deferred_line($q, 'a@notls.test'), 'notls: deferred');
ok(conns($peer{notls}) >= 1, 'notls: the MX was connected to');
is(txns($peer{notls}), 0, 'notls: nothing sent in plaintext');

# --- 6. testing, the certificate of case 4: delivered, reported
$q = send_to('a@testing.test');
ok($peer{testing}->wait_messages(1, 30), 'testing: delivered despite the certificate');
($t) = $peer{testing}->messages;
ok($t && $t->{tls}, 'testing: over TLS');
like(sent_line($q, 'a@testing.test'), qr/tls_policy=mta-sts testing/, 'testing: tls_policy=mta-sts testing');

# no connection anywhere for nomatch (checked after the others took their time)
is(conns($peer{nomatch}), 0, 'nomatch: no connection to its MX');

# --- 7. a policy change: after max_age, and by a new id
$q = send_to('a@chg.test');
ok($peer{chga}->wait_messages(1, 30), 'chg: mxa (in the policy of max_age 3) got the first message');
is(conns($peer{chgb}), 0, 'chg: mxb not tried');
$h->policy('chg.test', policy_text(mx => ['mxb.chg.test'], max_age => 86400));
sleep 5;    # past the max_age of 3 s (the TXT id is still 1)
$q = send_to('b@chg.test');
ok(wait_until(30, sub { $peer{chgb}->messages_for('b@chg.test') }),
    'chg: after max_age the new policy applies: mxb got the next message');
like(sent_line($q, 'b@chg.test'), qr/relay=mxb\.chg\.test/, 'chg: sent through mxb');
is(scalar(my @m = $peer{chga}->messages_for('b@chg.test')), 0, 'chg: not through mxa');
ok($pt->wait_log(qr/\Q$q\E: mxa\.chg\.test skipped.*not in the MTA-STS policy/, 5),
    'chg: mxa skipped as no longer in the policy');
my $nreq = $h->requests('chg.test');
# unexpired, same id: the cache is used, nothing fetched
$h->policy('chg.test', policy_text(mx => ['mxa.chg.test']));
sleep 2;    # the TXT answer left dnsd's cache (dns_ttl_max 1s)
$q = send_to('c@chg.test');
ok(wait_until(30, sub { $peer{chgb}->messages_for('c@chg.test') }),
    'chg: same id, unexpired: still the cached policy (mxb)');
is($h->requests('chg.test'), $nreq, 'chg: and it was not fetched again');
# a new id: fetched at once
$f->set_rules(txt_id('chg.test', 2));
sleep 2;
$q = send_to('d@chg.test');
ok(wait_until(30, sub { $peer{chga}->messages_for('d@chg.test') }), 'chg: a new id: the new policy (mxa)');
is($h->requests('chg.test'), $nreq + 1, 'chg: fetched once for the new id');
is(scalar(@m = $peer{chgb}->messages_for('d@chg.test')), 0, 'chg: not through mxb');

# --- 8. a failing refresh keeps the cached policy
$q = send_to('a@keep.test');
ok($peer{keep2}->wait_messages(1, 30), 'keep: mx2 (the one in the policy) got the first message');
$h->set('keep.test', status => 404);
$h->policy('keep.test', policy_text(mx => ['mx1.keep.test', 'mx2.keep.test']));
$f->set_rules(txt_id('keep.test', 2));
sleep 2;
$pt->mark_log;
$q = send_to('b@keep.test');
ok(wait_until(30, sub { $peer{keep2}->messages_for('b@keep.test') }),
    'keep: the refresh failed: still delivered by the cached policy (mx2)');
is(conns($peer{keep1}), 0, 'keep: mx1, not in the cached policy, was never connected to');
ok($pt->wait_log(qr/\Q$q\E: mx1\.keep\.test skipped.*not in the MTA-STS policy of keep\.test \(id 1\)/, 5),
    'keep: mx1 skipped under the cached policy (id 1)');
is($h->requests('keep.test'), 2, 'keep: the new id was fetched (and failed)');
ok($pt->wait_log(qr/dnsd\[\d+\]: \w+: MTA-STS: policy fetch for keep\.test failed: .*HTTP status 404/, 5),
    'keep: the dnsd log says the fetch failed');
my ($rc, $out) = $pt->smtpctl('show', 'sts');
is($rc, 0, 'show sts');
like($out, qr/^keep\.test mode=enforce id=1 .*mx=mx2\.keep\.test last_error="[^"]*HTTP status 404/m,
    'show sts: keep.test keeps id 1 and says the refresh failed') or diag $out;

# --- 9. show tls counts the sts sessions per policy domain
($rc, $out) = $pt->smtpctl('show', 'tls');
is($rc, 0, 'show tls');
like($out, qr/^enf\.test sts: 1 ok, 0 failed$/m, 'show tls: enf: one success');
like($out, qr/^    policy  mx: mx\.enf\.test$/m, 'show tls: with the policy lines');
like($out, qr/^two\.test sts: 1 ok, [1-9]\d* failed$/m, 'show tls: two: a success and the skipped MX');
like($out, qr/^badcert\.test sts: 0 ok, [1-9]\d* failed$/m, 'show tls: badcert: failures only');
like($out, qr/x certificate-host-mismatch at mx\.badcert\.test/, 'show tls: badcert: a host mismatch');
like($out, qr/x certificate-not-trusted at mx\.untrusted\.test/, 'show tls: untrusted: not trusted');
like($out, qr/x starttls-not-supported at mx\.notls\.test/, 'show tls: notls: no STARTTLS');
like($out, qr/x validation-failure at mx\.nomatch\.test: mx\.nomatch\.test is not in the MTA-STS policy/,
    'show tls: nomatch: the MX not in the policy');
like($out, qr/^testing\.test sts: 0 ok, 1 failed$/m, 'show tls: testing: delivered, yet a failure');
like($out, qr/1 x certificate-host-mismatch at mx\.testing\.test/, 'show tls: testing: what enforce would refuse');
($rc, $out) = $pt->smtpctl('show', 'tls', '--json');
my $rep = eval { decode_json($out) };
ok($rep && ref $rep->{policies} eq 'ARRAY', 'show tls --json is an RFC 8460 report') or diag $out;
my %pol;
for my $p (@{ $rep->{policies} || [] }) {
    next unless $p->{policy}{'policy-type'} eq 'sts';
    push @{ $pol{ $p->{policy}{'policy-domain'} } }, $p;
}
my ($pe) = @{ $pol{'enf.test'} || [] };
ok($pe, 'json: an sts policy for enf.test') or diag $out;
is($pe && $pe->{summary}{'total-successful-session-count'}, 1, 'json: enf: one success');
is($pe && $pe->{summary}{'total-failure-session-count'}, 0, 'json: enf: no failure');
is_deeply($pe && $pe->{policy}{'policy-string'},
    ['version: STSv1', 'mode: enforce', 'mx: mx.enf.test', 'max_age: 86400'], 'json: enf: the policy string');
my ($pt6) = @{ $pol{'testing.test'} || [] };
is($pt6 && $pt6->{summary}{'total-failure-session-count'}, 1, 'json: testing: one failure');
my ($d6) = $pt6 ? @{ $pt6->{'failure-details'} || [] } : ();
is($d6 && $d6->{'result-type'}, 'certificate-host-mismatch', 'json: testing: its result type');
is($d6 && $d6->{'receiving-mx-hostname'}, 'mx.testing.test', 'json: testing: at its MX');
my ($pb) = @{ $pol{'badcert.test'} || [] };
ok($pb && $pb->{summary}{'total-failure-session-count'} >= 1
    && !$pb->{summary}{'total-successful-session-count'}, 'json: badcert: failures, no success');
is(scalar(@{ $pol{'keep.test'} || [] }), 1, 'json: keep: one policy (the cached one) for both messages');

# --- 10. an idle connection and a policy that changed meanwhile
$q = send_to('a@reuse.test');
ok($peer{reusea}->wait_messages(1, 30), 'reuse: mxa (in the policy) got the first message');
$h->policy('reuse.test', policy_text(mx => ['mxb.reuse.test']));
$f->set_rules(txt_id('reuse.test', 2));
sleep 2;
$q = send_to('b@reuse.test');
ok(wait_until(30, sub { $peer{reusea}->messages_for('b@reuse.test') || $peer{reuseb}->messages_for('b@reuse.test') }),
    'reuse: the second message was delivered');
is(scalar(@m = $peer{reusea}->messages_for('b@reuse.test')), 0,
    'reuse: not over the idle connection to mxa, no longer in the policy');
ok(scalar($peer{reuseb}->messages_for('b@reuse.test')), 'reuse: mxb, the host of the new policy, got it');
is($h->requests('reuse.test'), 2, 'reuse: the new id was fetched');
# when the first session was still idle, the log says why it was not used
my @kept = $pt->log_lines(qr/not reusing the connection to mxa\.reuse\.test/);
ok(!@kept || $kept[0] =~ /is not in the MTA-STS policy of reuse\.test|no longer an MX host/,
    'reuse: a stale idle session is closed for the policy (' . scalar(@kept) . ' seen)');

# --- control: mta_sts = no, the MX outside nomatch's policy gets mail
$pt->config(mta_sts => 'no');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with mta_sts = no') or diag $out;
ok($pt->wait_log(qr/qmgr\[\d+\]: info: configuration reloaded/, 10), 'qmgr reloaded');
$q = send_to('b@nomatch.test');
ok(wait_until(30, sub { $peer{nomatch}->messages_for('b@nomatch.test') }),
    'mta_sts = no: the MX not in the policy gets the mail');
unlike(sent_line($q, 'b@nomatch.test'), qr/tls_policy=/, 'mta_sts = no: no policy applied');
ok(wait_until(30, sub { $peer{nomatch}->messages_for('a@nomatch.test') }),
    'mta_sts = no: the deferred message of case 3 goes out at its retry');

done_testing();
