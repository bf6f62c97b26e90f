# smtpd_tls.t - STARTTLS: openssl s_client verifies the certificate the
# test generated (and TLS 1.2+ is negotiated); a client that trusts another
# CA fails; commands pipelined after STARTTLS are discarded and the session
# starts afresh (RFC 3207); a message over TLS records the TLS facts in the
# envelope and the Received: header.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use IO::Socket::SSL;
use File::Temp qw(tempdir);
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp make_cert);

my $pt = Postern::Test->new();
my ($cert, $key) = make_cert($pt->dir, 'postern.test');
my ($other) = make_cert($pt->dir, 'other.test');
$pt->config(tls_cert_file => $cert, tls_key_file => $key);
$pt->start;
my $port = $pt->port;

# --- openssl s_client verifies our certificate ---
SKIP: {
    skip 'openssl not installed', 4 unless -x '/usr/bin/openssl';
    my $tmp = tempdir(CLEANUP => 1);
    open my $in, '>', "$tmp/in" or die;
    print $in "EHLO sclient.test\nNOOP\nQUIT\n";
    close $in;
    my $cmd = "timeout 20 openssl s_client -starttls smtp -connect 127.0.0.1:$port "
        . "-CAfile $cert -verify_return_error -verify_hostname postern.test "
        . "-servername postern.test -crlf -ign_eof < $tmp/in > $tmp/out 2>&1";
    my $rc = system($cmd);
    my $out = slurp("$tmp/out");
    is($rc, 0, 'openssl s_client completed') or diag $out;
    like($out, qr/Verify return code: 0 \(ok\)/, 'certificate verified against the test CA');
    like($out, qr/Protocol\s*:\s*TLSv1\.[23]|New, TLSv1\.[23]/, 'TLS 1.2 or newer');
    like($out, qr/^250 2\.0\.0 Ok/m, 'SMTP works inside TLS');
}

# --- a client trusting another CA refuses the handshake ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    like(smtp_cmd($s, 'EHLO wrongca.test'), qr/^250[- ]STARTTLS\r$/m, 'STARTTLS offered');
    like(smtp_cmd($s, 'STARTTLS'), qr/^220 2\.0\.0 /, '220 to STARTTLS');
    my $ok = IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_PEER,
        SSL_ca_file => $other, SSL_verifycn_name => 'postern.test', SSL_verifycn_scheme => 'smtp',
        Timeout => 10);
    ok(!$ok, 'verification fails with the wrong CA');
    close $s;
}

# --- pipelined after STARTTLS: discarded; state reset ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    my $ehlo = smtp_cmd($s, 'EHLO pipe.test');
    unlike($ehlo, qr/AUTH/, 'no AUTH before TLS (no users map here anyway)');
    smtp_cmd($s, 'MAIL FROM:<before@client.test>');
    print $s "STARTTLS\r\nMAIL FROM:<evil\@client.test>\r\nRCPT TO:<evil\@remote.test>\r\n";
    like(smtp_reply($s), qr/^220 2\.0\.0 Ready to start TLS/, '220 Ready');
    my $ok = IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_PEER,
        SSL_ca_file => $cert, SSL_verifycn_name => 'postern.test', SSL_verifycn_scheme => 'smtp',
        Timeout => 10);
    ok($ok, 'TLS handshake with verification') or diag $SSL_ERROR;
    ok($s->get_sslversion =~ /^TLSv1_[23]$/, 'TLS version ' . ($s->get_sslversion // '?'));
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test>'), qr/^503 5\.5\.1 Error: send HELO\/EHLO first/,
        'EHLO forgotten by TLS: the pipelined MAIL did not count, nor the earlier one');
    my $e2 = smtp_cmd($s, 'EHLO pipe.test');
    unlike($e2, qr/STARTTLS/, 'STARTTLS not offered again');
    like(smtp_cmd($s, 'RCPT TO:<x@remote.test>'), qr/^503 5\.5\.1 Error: need MAIL/,
        'no transaction survived STARTTLS');
    ok($pt->wait_log(qr/discarded \d+ bytes pipelined after STARTTLS/, 5), 'discard logged');
    like(smtp_cmd($s, 'MAIL FROM:<tls@client.test>'), qr/^250 /, 'MAIL inside TLS');
    like(smtp_cmd($s, 'RCPT TO:<r@remote.test>'), qr/^250 /, 'RCPT inside TLS');
    like(smtp_cmd($s, 'DATA'), qr/^354 /, 'DATA inside TLS');
    print $s "Subject: over tls\r\n\r\nsecret stuff\r\n.\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    ok($id, 'queued over TLS');
    my $f = slurp($pt->spool . "/queue/$id");
    like($f, qr/^proto ESMTPS$/m, 'proto ESMTPS');
    like($f, qr/^tls TLSv1\.[23] \S+$/m, 'TLS version and cipher in the envelope');
    like($f, qr/with ESMTPS id \Q$id\E\r\n\t\(TLSv1\.[23] \S+\)/, 'TLS facts in Received:');
    like(smtp_cmd($s, 'QUIT'), qr/^221 /, 'QUIT');
    ok($pt->status, 'instance alive');
}

# --- a client that drops the handshake does not hurt ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO drop.test');
    smtp_cmd($s, 'STARTTLS');
    print $s "this is not a TLS ClientHello\r\n";
    close $s;
    ok($pt->wait_log(qr/TLS handshake with \[127\.0\.0\.1\]:\d+ failed/, 5), 'failed handshake logged');
    my ($qid) = $pt->send_mail(from => 'a@client.test', to => ['b@remote.test']);
    ok($qid, 'smtpd still serves');
}

$pt->stop;
done_testing();
