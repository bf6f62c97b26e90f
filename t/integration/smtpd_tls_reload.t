#!/usr/bin/perl
# smtpd_tls_reload.t - `smtpctl reload` loads a renewed TLS certificate
# and key (issue 17.8): chrooted smtpd cannot read them itself, so master
# reads and tries the pair, then sends it to smtpd (IMSG_TLS_CERT).
#   - new sessions show the new certificate after the reload; smtpd keeps
#     running (same process) and logs what it loaded
#   - a key that does not match: the reload is refused, naming the
#     parameter, and sessions keep the certificate in use
#   - a certificate file that is gone: the same
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Copy qw(copy);
use IO::Socket::SSL;
use Test::More;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(make_cert);

my $pt = Postern::Test->new();
my ($c1, $k1) = make_cert($pt->dir, 'one.test');
my $d2 = $pt->dir . '/two';
mkdir $d2;
my ($c2, $k2) = make_cert($d2, 'two.test');
my $cert = $pt->dir . '/live.crt';
my $key = $pt->dir . '/live.key';
copy($c1, $cert) && copy($k1, $key) or die "copy: $!";
chmod 0600, $key;
$pt->config(tls_cert_file => $cert, tls_key_file => $key);
$pt->start;
my $port = $pt->port;

sub cn_seen {
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO reload.test');
    return 'no 220 to STARTTLS' unless smtp_cmd($s, 'STARTTLS') =~ /^220/;
    IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 10)
        or return "handshake failed: $SSL_ERROR";
    my $cn = $s->peer_certificate('cn') // '?';
    close $s;
    return $cn;
}

is(cn_seen(), 'one.test', 'the first certificate at start');
my $smtpd = $pt->pid_of('smtpd');
copy($c2, $cert) && copy($k2, $key) or die "copy: $!";
$pt->mark_log;
my ($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with the renewed pair') or diag $out;
ok($pt->wait_log(qr/smtpd\[\d+\]: info: TLS certificate loaded: .*CN ?= ?two\.test.*expires/, 10),
    'smtpd logs the certificate it loaded');
is(cn_seen(), 'two.test', 'new sessions get the new certificate');
is($pt->pid_of('smtpd'), $smtpd, 'without a restart of smtpd');

# a key that does not belong to the certificate
copy($k1, $key) or die;
($rc, $out) = $pt->smtpctl('reload');
isnt($rc, 0, 'a key that does not match refuses the reload');
like($out, qr/tls_cert_file \/ tls_key_file: .*private key .*(does not match|mismatch)/, 'and says why') or diag $out;
is(cn_seen(), 'two.test', 'sessions keep the certificate in use');

# a certificate file that is gone
copy($k2, $key) or die;
unlink $cert;
($rc, $out) = $pt->smtpctl('reload');
isnt($rc, 0, 'a missing certificate file refuses the reload');
like($out, qr/cannot read .*live\.crt/, 'naming the file') or diag $out;
is(cn_seen(), 'two.test', 'and STARTTLS still works with the one in use');

$pt->stop;
done_testing();
