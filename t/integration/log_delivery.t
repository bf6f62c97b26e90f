#!/usr/bin/perl
# log_delivery.t - what the log says about outbound deliveries (issue 18.6):
#   - a failure before the recipients (greeting, HELO, STARTTLS, AUTH,
#     MAIL) and after them (RCPT, the final dot) prints the reply code
#     once, in relay's "failed at" line and in qmgr's recipient line
#   - a login relay would not attempt, because TLS is not in use and the
#     gateway is not marked plainauth, names that cause and what to change
#     (the server's STARTTLS, or the gateway's tls option), never the
#     secrets map; a password the server refuses still points there
#   - UTF-8 addresses stay readable in the transcript and in replies
#   - at log_level = basic a status=sent line says tls=PROTOCOL CIPHER
#     when the session used TLS (like smtpd's accepted line), and nothing
#     when it did not
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1h');
my $p = $pt->free_port('127.0.5.31');
my %peer = (
    greet => { greeting => '554 5.3.2 go away' },
    helo  => { replies => { ehlo => '550 5.7.1 no EHLO', helo => '550 5.7.1 no HELO either' } },
    stls  => { starttls => 1, replies => { starttls => '454 4.7.0 TLS not available now' } },
    auth  => { auth => { u => 'right' }, require_auth => 1 },
    mail  => { replies => { mail => '530 5.7.0 Authentication required' } },
    rcpt  => { rcpt_rules => [ [ qr/./, '550 5.1.1 no such user' ] ] },
    dot   => { replies => { eod => '554 5.6.0 message refused' } },
    notls => { auth => { u => 'p' }, require_auth => 1 },
    tlsnone => { starttls => 1, auth => { u => 'p' }, require_auth => 1 },
);
my @order = qw(greet helo stls auth mail rcpt dot notls tlsnone);
my %addr;
my $i = 31;
for my $n (@order) {
    $addr{$n} = '127.0.5.' . $i++;
    $pt->peer(name => $n, addr => $addr{$n}, port => $p, %{ $peer{$n} });
}
my $utf = $pt->peer(name => 'utf', addr => '127.0.5.50', port => $p,
    extensions => [ 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES' ],
    rcpt_rules => [ [ qr/^b\xc3\xbc/, "550 5.1.1 <b\xc3\xbc\@utf.lg.test>: unbekannt" ] ]);
my %opt = (stls => '/encrypt', auth => '/plainauth', tlsnone => '/none');
$pt->config(relay_gateways => [ map { "$_=$addr{$_}:$p" . ($opt{$_} // '') } @order ]);
$pt->write_file('domains', join('', map { "$_.lg.test  route=relay gateways=$_\n" } @order)
    . "utf.lg.test  mx=127.0.5.50:$p\n");
$pt->write_file('secrets', "auth u wrong\nnotls u p\ntlsnone u p\n", 0600);
for my $m (qw(domains secrets)) {
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
    is($rc, 0, "makemap $m") or diag $out;
}
$pt->start;

my %qid;
$qid{$_} = $pt->send_mail(from => 's@src.test', to => ["u\@$_.lg.test"]) for @order;

# --- the reply code once, at every step
my %want = (
    greet => [ 'greeting', 'smtp', '554 5.3.2 go away' ],
    helo  => [ 'helo', 'smtp', '550 5.7.1 no HELO either' ],
    stls  => [ 'starttls', 'tls', '454 4.7.0 TLS not available now' ],
    auth  => [ 'auth', 'auth', '535 5.7.8' ],
    mail  => [ 'mail', 'smtp', '530 5.7.0 Authentication required' ],
);
for my $n (qw(greet helo stls auth mail)) {
    my ($step, $cls, $reply) = @{ $want{$n} };
    my $line = $pt->wait_log(qr/relay\[\d+\]: info: \Q$qid{$n}\E: \S+ failed at \Q$step\E /, 20) // '';
    like($line, qr/failed at \Q$step\E \(\Q$cls\E, \w+\): \Q$reply\E/, "$step: relay's line has the reply");
    unlike($line, qr/failed at \w+ \([^)]*\): (\d{3}) \1\b/, "$step: relay's line has the code once");
    my $r = $pt->wait_log(qr/\Q$qid{$n}\E: to=<u\@\Q$n\E\.lg\.test>, .*status=/, 10) // '';
    like($r, qr/status=\w+ \(\Q$cls\E(\/\Q$step\E)?: \Q$reply\E/, "$step: the recipient line has the reply");
    unlike($r, qr/: (\d{3}) \1\b/, "$step: and the code once");
}
for my $n (qw(rcpt dot)) {
    my $r = $pt->wait_log(qr/\Q$qid{$n}\E: to=<u\@\Q$n\E\.lg\.test>, .*status=/, 20) // '';
    like($r, qr/status=failed \(smtp\/$n: 5\d\d 5\.\d\.\d /, "$n: the recipient line has the reply");
    unlike($r, qr/: (\d{3}) \1\b/, "$n: and the code once");
}

# --- a login not attempted: the cause and what to change
my $w = $pt->wait_log(qr/\Q$qid{notls}\E: gateway notls /, 20) // '';
like($w, qr/gateway notls \(127\.0\.5\.\d+\S*\): AUTH not attempted: the server does not offer STARTTLS, and plaintext AUTH is not allowed for this host; the message is deferred/,
    'no STARTTLS offered: the log names the cause');
like($w, qr/have the server offer STARTTLS .*mark notls \/plainauth in relay_gateways/, 'and what to change');
unlike($w, qr/secrets map|refused the login/, 'and does not send the admin to the secrets map');
ok($pt->wait_log(qr/\Q$qid{notls}\E: to=<u\@notls\.lg\.test>, .*dsn=4\.7\.11, status=deferred \(auth: AUTH not attempted: the server does not offer STARTTLS/, 10),
    'the recipient is deferred with the same reason');
$w = $pt->wait_log(qr/\Q$qid{tlsnone}\E: gateway tlsnone /, 20) // '';
like($w, qr/AUTH not attempted: TLS is off for this host \(tls none\)/, 'tls none: the cause');
like($w, qr/give tlsnone a TLS mode in relay_gateways \(\/may or \/encrypt\)/, 'tls none: change the tls option');
unlike($w, qr/secrets map/, 'tls none: not the secrets map');
like($pt->wait_log(qr/\Q$qid{auth}\E: gateway auth /, 10) // '',
    qr/refused the login: 535 .*Check the entry for auth in the secrets map/,
    'a password the server refuses: still the secrets map');

# --- UTF-8 addresses in the transcript and in replies
my $s = smtp_connect(port => $pt->port);
smtp_reply($s);
smtp_cmd($s, 'EHLO client.test');
like(smtp_cmd($s, "MAIL FROM:<s\xc3\xa9nder\@src.test> SMTPUTF8"), qr/^250 /, 'UTF-8 sender accepted');
like(smtp_cmd($s, "RCPT TO:<a\@utf.lg.test>"), qr/^250 /, 'recipient 1');
like(smtp_cmd($s, "RCPT TO:<b\xc3\xbc\@utf.lg.test>"), qr/^250 /, 'recipient 2 (UTF-8)');
like(smtp_cmd($s, 'DATA'), qr/^354 /, 'DATA');
my $end = smtp_cmd($s, "Subject: utf\r\n\r\nhi\r\n.");
my ($uq) = $end =~ /queued as (\S+)/;
ok($uq, 'queued');
smtp_cmd($s, 'QUIT');
ok($utf->wait_messages(1, 20), 'the MX took it');
ok($pt->wait_log(qr/\Q$uq\E: \S+ > MAIL FROM:<s\xc3\xa9nder\@src\.test>/, 10),
    'the transcript shows the UTF-8 sender as it is');
ok($pt->wait_log(qr/\Q$uq\E: \S+ > RCPT TO:<b\xc3\xbc\@utf\.lg\.test>/, 10),
    'and the UTF-8 recipient');
ok($pt->wait_log(qr/\Q$uq\E: to=<b\xc3\xbc\@utf\.lg\.test>, .*status=failed \(smtp\/rcpt: 550 5\.1\.1 <b\xc3\xbc\@utf\.lg\.test>: unbekannt\)/, 10),
    'a UTF-8 address in the reply is kept');
ok(!$pt->log_lines(qr/s\?\?nder|b\?\?\@/), 'no ?? in place of UTF-8 anywhere');
$pt->stop;

# --- log_level = basic: TLS on the status=sent line
my $pb = Postern::Test->new(log_level => 'basic', retry_delay => '1h');
my $pp = $pb->direct_port;
my $tlsmx = $pb->peer(name => 'tlsmx', addr => '127.0.5.51', port => $pp, starttls => 1);
my $plainmx = $pb->peer(name => 'plainmx', addr => '127.0.5.52', port => $pp);
$pb->write_file('domains', "tls.lg.test  mx=127.0.5.51\nplain.lg.test  mx=127.0.5.52\n");
my ($rc, $out) = $pb->smtpctl('makemap', $pb->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pb->start;
my $q1 = $pb->send_mail(from => 's@src.test', to => ['a@tls.lg.test']);
my $q2 = $pb->send_mail(from => 's@src.test', to => ['a@plain.lg.test']);
my $sent = $pb->wait_log(qr/\Q$q1\E: to=<a\@tls\.lg\.test>, .*status=sent/, 20) // '';
like($sent, qr/, relay=\S+, tls=TLSv1\.[23] [A-Z0-9_-]+, delay=/, 'basic level: the sent line names the TLS protocol and cipher');
my ($t) = $tlsmx->transactions;
ok($t && $t->{tls}, 'and the MX saw TLS');
$sent = $pb->wait_log(qr/\Q$q2\E: to=<a\@plain\.lg\.test>, .*status=sent/, 20) // '';
ok($sent && $sent !~ /tls=/, 'without TLS the sent line has no tls=');
ok(!$pb->log_lines(qr/detail:/), 'nothing at detailed level was logged');

done_testing;
