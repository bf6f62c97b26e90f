# dns_override_port.t - an mx= entry with a port (mx=ADDR:PORT) names the
# host by its address alone: the SMTP client sends no TLS SNI for it
# (RFC 6066 section 3 allows only host names there), STARTTLS with
# tls=may succeeds on the first try instead of falling back to plaintext,
# and the log says relay=ADDR[ADDR]:PORT.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s');
my $port = $pt->free_port('127.0.0.251');
my $lit = $pt->peer(name => 'lit', addr => '127.0.0.251', port => $port, starttls => 1);
$pt->write_file('domains', <<"MAP");
lit.port.test   mx=127.0.0.251:$port tls=may
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start;

$pt->mark_log;
my ($qid) = $pt->send_mail(from => 's@src.test', to => ['r@lit.port.test']);
ok($qid, "accepted ($qid)");
ok($lit->wait_messages(1, 20), 'delivered to the mx= address and port');
my $line = $pt->wait_log(qr/\Q$qid\E: to=<r\@lit\.port\.test>.*status=sent/, 10);
like($line // '', qr/relay=127\.0\.0\.251\[127\.0\.0\.251\]:\Q$port\E[, ]/,
    'the log names the host by its address, the port once');
ok(!$pt->log_lines(qr/\Q$qid\E.*(fallback|plaintext)/i), 'no TLS fallback in the log');
$pt->stop;    # deliver closes its idle connection: the peer records it
ok(wait_until(10, sub { my @c = $lit->connections; @c && !grep { !defined $_->{close} } @c }),
    'the connection was closed');
my @c = $lit->connections;
is(scalar @c, 1, 'one connection (no plaintext retry after a failed handshake)');
is($c[0]{tls}, 1, 'STARTTLS was used');
is($c[0]{sni} // 'undef', '', 'no SNI was sent for an address');
done_testing();
