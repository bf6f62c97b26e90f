#!/usr/bin/perl
# DANE (RFC 7672) end to end: smtpd -> qmgr -> deliver -> MX peers on
# loopback, with dnssec = validate and zones signed by ldns-signzone that
# the test's own nsd serves, each zone anchored in a trust-anchor file.
#   - DANE-EE (3 1 1) matching the MX's self-signed certificate: delivered
#     over TLS, the log says tls_policy=dane and which record matched
#   - DANE-TA (2 0 1) on the CA that issued the MX's certificate for its
#     name: delivered
#   - a TLSA record that matches nothing: deferred, the peer saw no
#     transaction, the log names the records and the certificate
#   - an MX with TLSA records that does not offer STARTTLS: deferred, never
#     in plaintext
#   - a zone whose MX record is tampered with (bogus): deferred, DNSSEC
#     named in the log, no connection
#   - an unsigned zone outside every anchor: the normal policy (may),
#     delivered with STARTTLS but without DANE
#   - tls = dane-only for an unsigned zone: deferred, no connection
#   - smtpctl show tls counts each of these by policy (text and JSON)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Peer;
use Postern::DNS;
use Postern::DNSSEC;
use Postern::Util qw(make_cert);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();
for my $tool (qw(ldns-signzone ldns-keygen ldns-key2ds openssl)) {
    plan skip_all => "$tool is not installed" unless grep { -x "$_/$tool" } split /:/, $ENV{PATH};
}

my $pt = Postern::Test->new(messages_per_connection => 1);
my $port = $pt->direct_port;
my $dir = $pt->dir;

sub run_quiet {
    my @cmd = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    die "@cmd failed\n" if $?;
}

# A CA and a leaf for mx.ta.test signed by it; the chain file the peer
# serves holds both, so the client sees the CA the DANE-TA record names.
mkdir "$dir/ca";
run_quiet('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$dir/ca/ca.key",
    '-out', "$dir/ca/ca.crt", '-days', '2', '-subj', '/CN=DANE test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
run_quiet('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$dir/ca/ta.key",
    '-out', "$dir/ca/ta.csr", '-subj', '/CN=mx.ta.test');
open my $ext, '>', "$dir/ca/ta.ext" or die;
print $ext "subjectAltName=DNS:mx.ta.test\n";
close $ext;
run_quiet('openssl', 'x509', '-req', '-in', "$dir/ca/ta.csr", '-CA', "$dir/ca/ca.crt",
    '-CAkey', "$dir/ca/ca.key", '-CAcreateserial', '-days', '2', '-extfile', "$dir/ca/ta.ext",
    '-out', "$dir/ca/ta.crt");
{
    local $/;
    open my $a, '<', "$dir/ca/ta.crt" or die;
    open my $b, '<', "$dir/ca/ca.crt" or die;
    open my $c, '>', "$dir/ca/ta-chain.crt" or die;
    my ($x, $y) = (scalar <$a>, scalar <$b>);
    print $c $x, $y;
}

my %peer;
$peer{ee}    = $pt->peer(name => 'ee',    addr => '127.0.0.61', port => $port, starttls => 1, hostname => 'mx.ee.test');
$peer{ta}    = $pt->peer(name => 'ta',    addr => '127.0.0.62', port => $port, starttls => 1,
    cert => "$dir/ca/ta-chain.crt", key => "$dir/ca/ta.key");
$peer{wrong} = $pt->peer(name => 'wrong', addr => '127.0.0.63', port => $port, starttls => 1, hostname => 'mx.wrong.test');
$peer{strip} = $pt->peer(name => 'strip', addr => '127.0.0.64', port => $port);
$peer{bogus} = $pt->peer(name => 'bogus', addr => '127.0.0.65', port => $port, starttls => 1, hostname => 'mx.bogus.test');
$peer{plain} = $pt->peer(name => 'plain', addr => '127.0.0.66', port => $port, starttls => 1, hostname => 'mx.plain.test');
$peer{only}  = $pt->peer(name => 'only',  addr => '127.0.0.67', port => $port, starttls => 1, hostname => 'mx.only.test');

sub zone {
    my ($name, $addr, @extra) = @_;
    return join("\n", "\$ORIGIN $name.", '$TTL 300', '@ IN SOA ns admin 1 3600 600 86400 60',
        '@ IN NS ns', 'ns IN A 127.0.0.1', '@ IN MX 10 mx', "mx IN A $addr", @extra) . "\n";
}

my $ds = Postern::DNSSEC->new(dir => "$dir/dnssec");
my $tlsa = sub { my ($zone, $cert, @o) = @_; Postern::DNSSEC::tlsa_record($cert, @o, name => "_$port._tcp.mx.$zone") };
# a TLSA record for a key nobody has: the SHA-256 of a fresh certificate's key
mkdir "$dir/other";
my ($other) = make_cert("$dir/other", 'other.test');
my %zones = (
    'ee.test'    => $ds->sign_zone('ee.test', zone('ee.test', '127.0.0.61',
        $tlsa->('ee.test', $peer{ee}->cert, usage => 3, selector => 1, mtype => 1))),
    'ta.test'    => $ds->sign_zone('ta.test', zone('ta.test', '127.0.0.62',
        $tlsa->('ta.test', "$dir/ca/ca.crt", usage => 2, selector => 0, mtype => 1))),
    'wrong.test' => $ds->sign_zone('wrong.test', zone('wrong.test', '127.0.0.63',
        $tlsa->('wrong.test', $other, usage => 3, selector => 1, mtype => 1))),
    'strip.test' => $ds->sign_zone('strip.test', zone('strip.test', '127.0.0.64',
        $tlsa->('strip.test', $peer{ee}->cert, usage => 3, selector => 1, mtype => 1))),
    'bogus.test' => $ds->sign_zone('bogus.test', zone('bogus.test', '127.0.0.65',
        $tlsa->('bogus.test', $peer{bogus}->cert, usage => 3, selector => 1, mtype => 1)),
        tamper => 'bogus.test/MX'),
    'plain.test' => zone('plain.test', '127.0.0.66'),
    'only.test'  => zone('only.test', '127.0.0.67'),
);
my $anchors = $ds->anchor_file(qw(ee.test ta.test wrong.test strip.test bogus.test));
my $ns = Postern::DNS::Nsd->new(zones => \%zones);
$ns->start;

$pt->config(dns_servers => $ns->addr, dnssec => 'validate', dnssec_trust_anchor => $anchors,
    mta_sts => 'no');
$pt->write_file('domains', "only.test tls=dane-only\n");
my ($mrc, $mout) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($mrc, 0, 'domains map compiled') or diag $mout;
$pt->start;

sub send_to {
    my ($rcpt) = @_;
    my ($qid) = $pt->send_mail(from => 'sender@origin.test', to => [$rcpt]);
    ok($qid, "message to $rcpt accepted");
    return $qid;
}

# --- DANE-EE: delivered over TLS, the matched record in the log
$pt->mark_log;
my $q = send_to('a@ee.test');
ok($peer{ee}->wait_messages(1, 20), 'ee: the MX got the message');
my ($t) = $peer{ee}->messages;
ok($t && $t->{tls}, 'ee: over TLS');
my $sent = $pt->wait_log(qr/\Q$q\E: to=<a\@ee\.test>.*status=sent/, 20) // '';
like($sent, qr/tls_policy=dane/, 'ee: the delivery line says tls_policy=dane');
ok($pt->wait_log(qr/\Q$q\E.*DANE: TLSA 3 1 1 matched at depth 0/, 5),
    'ee: the log names the record that matched');

# --- DANE-TA: the CA's record, the name checked against the MX host
$q = send_to('a@ta.test');
ok($peer{ta}->wait_messages(1, 20), 'ta: the MX got the message');
$sent = $pt->wait_log(qr/\Q$q\E: to=<a\@ta\.test>.*status=sent/, 20) // '';
like($sent, qr/tls_policy=dane/, 'ta: delivered under DANE');
ok($pt->wait_log(qr/\Q$q\E.*DANE: TLSA 2 0 1 matched at depth 1/, 5), 'ta: matched at the CA');

# --- a TLSA record matching nothing: deferred, never delivered
$q = send_to('a@wrong.test');
my $def = $pt->wait_log(qr/\Q$q\E: to=<a\@wrong\.test>.*status=deferred/, 20) // '';
ok($def, 'wrong: deferred');
ok($pt->wait_log(qr/\Q$q\E.*DANE: the certificate failed the TLSA check for mx\.wrong\.test.*3 1 1/, 5),
    'wrong: the log says which records were tried');
is(scalar($peer{wrong}->transactions), 0, 'wrong: no transaction reached the MX');

# --- TLSA records but no STARTTLS: deferred, no plaintext
$q = send_to('a@strip.test');
ok($pt->wait_log(qr/\Q$q\E: to=<a\@strip\.test>.*status=deferred/, 20), 'strip: deferred');
is(scalar($peer{strip}->transactions), 0, 'strip: nothing sent in plaintext');
ok($peer{strip}->connections >= 1, 'strip: the MX was connected to (and refused for no TLS)');

# --- bogus MX answer: deferred as a DNS failure, no connection
$q = send_to('a@bogus.test');
$def = $pt->wait_log(qr/\Q$q\E: to=<a\@bogus\.test>.*status=deferred/, 20) // '';
like($def, qr/DNSSEC/i, 'bogus: deferred, the reason names DNSSEC');
is(scalar($peer{bogus}->connections), 0, 'bogus: no connection to the MX');

# --- an unsigned zone: the normal policy, STARTTLS without DANE
$q = send_to('a@plain.test');
ok($peer{plain}->wait_messages(1, 20), 'plain: delivered');
($t) = $peer{plain}->messages;
ok($t && $t->{tls}, 'plain: STARTTLS used (tls = may)');
$sent = $pt->wait_log(qr/\Q$q\E: to=<a\@plain\.test>.*status=sent/, 20) // '';
unlike($sent, qr/tls_policy=/, 'plain: no DANE policy applied');

# --- dane-only without secure records: deferred, no connection
$q = send_to('a@only.test');
$def = $pt->wait_log(qr/\Q$q\E: to=<a\@only\.test>.*status=deferred/, 20) // '';
like($def, qr/no secure TLSA records for mx\.only\.test/, 'only: deferred for want of TLSA records');
is(scalar($peer{only}->connections), 0, 'only: no connection');

# --- smtpctl route --resolve: the TLS policy per host, as deliver decides it
my ($rrc, $rout) = $pt->smtpctl('route', 'a@ee.test', '--resolve');
is($rrc, 0, 'route --resolve ee.test') or diag $rout;
like($rout, qr/tls policy \(may\): MX answer secure; MTA-STS: not looked up/, 'route: the MX answer is secure');
like($rout, qr/^\s+mx\.ee\.test: DANE, 1 usable TLSA record \(3 1 1 [0-9a-f]{12}\.\.\.\): STARTTLS required/m,
    'route: DANE for the MX, with its record');
($rrc, $rout) = $pt->smtpctl('route', 'a@plain.test', '--resolve');
like($rout, qr/^\s+mx\.plain\.test: may: STARTTLS when offered, else plaintext \(no DANE: its name or addresses are not DNSSEC-secure\)/m,
    'route: an insecure zone gets the domain\'s mode and says why not DANE');
($rrc, $rout) = $pt->smtpctl('route', 'a@only.test', '--resolve');
like($rout, qr/^\s+mx\.only\.test: not used: no secure TLSA records for mx\.only\.test/m,
    'route: dane-only without records: the host is not used');
($rrc, $rout) = $pt->smtpctl('--json', 'route', 'a@wrong.test', '--resolve');
my $rj = eval { decode_json($rout) };
my $h0 = $rj && $rj->{resolved}[0]{tls}{hosts}[0];
ok($h0 && $h0->{dane} && $h0->{usable_tlsa} == 1 && $h0->{policy} eq 'dane',
    'route --json: the TLS plan of the host') or diag $rout;

# --- smtpctl tls check: the policy and a test connection, no mail sent
my $before = scalar($peer{ee}->transactions);
my ($crc, $cout) = $pt->smtpctl('tls', 'check', 'ee.test');
is($crc, 0, 'tls check ee.test: exit 0') or diag $cout;
like($cout, qr/^mx ee\.test:$/m, 'tls check: the lookup it made');
like($cout, qr/mx\.ee\.test\[127\.0\.0\.61\]:$port: ok, TLSv1\.[23] \S+, DANE: TLSA 3 1 1 matched at depth 0/,
    'tls check: the host passed the DANE check');
is(scalar($peer{ee}->transactions), $before, 'tls check sent no mail');
($crc, $cout) = $pt->smtpctl('tls', 'check', 'wrong.test');
is($crc, 1, 'tls check wrong.test: exit 1');
like($cout, qr/mx\.wrong\.test\[127\.0\.0\.63\]:$port: failed at starttls \(tls\): DANE: the certificate failed the TLSA check/,
    'tls check: a certificate matching no record fails, saying so');
($crc, $cout) = $pt->smtpctl('tls', 'check', 'strip.test');
is($crc, 1, 'tls check strip.test: exit 1');
like($cout, qr/mx\.strip\.test\[127\.0\.0\.64\]:$port: failed at starttls \(tls\): TLS required but not offered/,
    'tls check: no STARTTLS under DANE fails');
($crc, $cout) = $pt->smtpctl('tls', 'check', 'only.test');
is($crc, 1, 'tls check only.test: exit 1');
like($cout, qr/mx\.only\.test: no secure TLSA records for mx\.only\.test/, 'tls check: dane-only without records');
($crc, $cout) = $pt->smtpctl('--json', 'tls', 'check', 'ee.test');
my $cj = eval { decode_json($cout) };
ok($cj && $cj->{checks}[0]{ok} && $cj->{checks}[0]{hosts}[0]{ok} && $cj->{checks}[0]{tls}{hosts}[0]{dane},
    'tls check --json: the plan and the probe') or diag $cout;
($crc, $cout) = $pt->smtpctl('tls', 'check', 'a@ee.test');
is($crc, 2, 'tls check takes a domain, not an address');

# --- smtpctl show tls
my ($rc, $out) = $pt->smtpctl('show', 'tls');
is($rc, 0, 'show tls works');
like($out, qr/^mx\.ee\.test tlsa: [1-9]\d* ok, 0 failed$/m, 'show tls: the DANE-EE successes');
like($out, qr/^mx\.wrong\.test tlsa: 0 ok, [1-9]\d* failed$/m, 'show tls: the failing TLSA policy');
like($out, qr/\d+ x tlsa-invalid at mx\.wrong\.test: DANE: the certificate failed/, 'show tls: its failure kind (RFC 8460 tlsa-invalid) and why') or diag $out;
like($out, qr/\d+ x starttls-not-supported at mx\.strip\.test/, 'show tls: the stripped STARTTLS');
like($out, qr/^plain\.test no-policy-found: [1-9]\d* ok/m, 'show tls: sessions without a policy');
($rc, $out) = $pt->smtpctl('show', 'tls', '--json');
my $rep = eval { decode_json($out) };
ok($rep && ref $rep->{policies} eq 'ARRAY', 'show tls --json is an RFC 8460 report') or diag $out;
my ($pee) = grep { $_->{policy}{'policy-domain'} eq 'mx.ee.test' } @{ $rep->{policies} || [] };
ok($pee && $pee->{policy}{'policy-type'} eq 'tlsa' && $pee->{summary}{'total-successful-session-count'} >= 1,
    'json: the DANE-EE policy with its successes');
ok($pee && grep({ /^3 1 1 [0-9a-f]{64}$/ } @{ $pee->{policy}{'policy-string'} }),
    'json: the policy string is the TLSA record');
($rc, $out) = $pt->smtpctl('show', 'tls', '--reset');
like($out, qr/^mx\.ee\.test tlsa:/m, 'show tls --reset shows the counts once more');
($rc, $out) = $pt->smtpctl('show', 'tls');
# the deferred messages (wrong, strip) may be retried meanwhile and count
# again; the delivered ones (ee, ta, plain) have no sessions any more
unlike($out, qr/^(?:mx\.ee\.test|mx\.ta\.test|plain\.test) /m,
    'after --reset the counters start again') or diag $out;

done_testing();
