#!/usr/bin/perl
# ops_ctl.t - the small things an admin types (issue "Operations"):
# status says that delivery or intake is paused, and so do flush and
# sendmail -q; smtpctl route takes a bare local part as sendmail does
# (LOCAL@myhostname); smtpctl route --resolve shows the MX hosts and their
# addresses as dnsd finds them (text and --json), and each gateway's
# address; sendmail -bv shows each address's route and sends nothing;
# bin/mailq exists in the build tree and lists the queue.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::DNS;
use Postern::Test;
use Postern::Util qw(wait_until);

my $ROOT = Postern::Test->root;
my $dns = Postern::DNS::Fake->new(rules => {
    'dest.test/MX'      => { answer => ['dest.test 60 MX 10 mx1.dest.test', 'dest.test 60 MX 20 mx2.dest.test'] },
    'mx1.dest.test/A'   => { answer => ['mx1.dest.test 60 A 127.0.0.61'] },
    'mx2.dest.test/A'   => { answer => ['mx2.dest.test 60 A 127.0.0.62'] },
    'gw.relay.test/A'   => { answer => ['gw.relay.test 60 A 127.0.0.63'] },
});
$dns->start;
my $pt = Postern::Test->new(retry_delay => '1s', dns_servers => '127.0.0.1:' . $dns->port,
    relay_gateways => 'gw1=gw.relay.test:2525/high');
my $sink = $pt->peer(name => 'sink', addr => '127.0.0.61');
$pt->write_file('domains', "relayed.test  gateway_policy=always\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

# -- paused delivery is said by status, flush and sendmail -q
($rc, $out) = $pt->smtpctl('pause', 'delivery');
is($rc, 0, 'pause delivery') or diag $out;
($rc, $out) = $pt->smtpctl('status');
like($out, qr/^qmgr\s.*\bdelivery paused\b/m, 'status: qmgr says delivery paused');
($rc, $out) = $pt->smtpctl('--json', 'status');
my $st = eval { decode_json($out) };
my ($q) = grep { $_->{name} eq 'qmgr' } @{ $st->{processes} || [] };
is($q && $q->{state}, 'delivery paused', 'and in JSON');
my ($qid) = $pt->send_mail(from => 's@client.test', to => ['r@dest.test']);
ok($qid, 'a message queued while paused');
($rc, $out) = $pt->smtpctl('flush', 'all');
like($out, qr/^flushed 1 message/m, 'flush counts it');
like($out, qr/delivery is paused: nothing is sent until smtpctl resume delivery/, 'and says nothing moves');
my ($smrc, $smout, $smerr) = $pt->_run(30, "$ROOT/bin/sendmail", '-C', $pt->etc, '-q');
like($smout . $smerr, qr/delivery is paused/, 'sendmail -q says so too');
($rc, $out) = $pt->smtpctl('--json', 'flush', 'all');
like($out, qr/"delivery":"paused"/, 'flush --json: "delivery":"paused"');
($rc, $out) = $pt->smtpctl('pause', 'intake');
($rc, $out) = $pt->smtpctl('status');
like($out, qr/^smtpd\s.*\bintake paused\b/m, 'status: smtpd says intake paused');
$pt->smtpctl('resume', 'intake');
($rc, $out) = $pt->smtpctl('status');
unlike($out, qr/intake paused/, 'resumed intake: no longer said');

# -- bin/mailq in the build tree
ok(-l "$ROOT/bin/mailq" || -x "$ROOT/bin/mailq", 'bin/mailq exists after make');
my ($mrc, $mout, $merr) = $pt->_run(30, "$ROOT/bin/mailq", '-C', $pt->etc);
is($mrc, 0, 'bin/mailq runs') or diag $merr;
like($mout, qr/\Q$qid\E/, 'and lists the queued message');

$pt->smtpctl('resume', 'delivery');
ok($sink->wait_messages(1, 20), 'resumed: delivered');
($rc, $out) = $pt->smtpctl('status');
unlike($out, qr/delivery paused/, 'status no longer says paused');

# -- a bare local part
($rc, $out) = $pt->smtpctl('route', 'root');
is($rc, 0, 'route root');
like($out, qr/^address:\s+root\@postern\.test$/m, 'root is root@myhostname');
like($out, qr/root has no domain: as sendmail does, it is taken as root\@postern\.test/, 'and it says why');
($rc, $out) = $pt->smtpctl('route', 'dest.test');
like($out, qr/^address:\s+dest\.test$/m, 'a name with a dot is still a domain');

# -- --resolve: the MX hosts and their addresses, from dnsd
($rc, $out) = $pt->smtpctl('route', 'someone@dest.test', '--resolve');
is($rc, 0, 'route --resolve') or diag $out;
like($out, qr/^tls:\s+may \(STARTTLS when offered, else plaintext\)$/m, 'the TLS policy, in words');
like($out, qr/^resolved:\n  mx dest\.test:\n/m, 'the lookup it makes');
like($out, qr/10 mx1\.dest\.test .*127\.0\.0\.61/, 'the first MX host and its address');
like($out, qr/20 mx2\.dest\.test .*127\.0\.0\.62/, 'the second');
unlike($out, qr/^resolve: /m, 'qmgr\'s lookup lines are not shown raw');
($rc, $out) = $pt->smtpctl('--json', 'route', 'someone@dest.test', '--resolve');
my $j = eval { decode_json($out) };
ok($j, '--json --resolve is one JSON object') or diag $out;
is($j && $j->{route}{domain}, 'dest.test', 'with the route');
is($j && scalar @{ $j->{resolved} }, 2, 'and two lookups: the MX, and the fallback gateway');
is($j && $j->{resolved}[0]{hosts}[0]{name}, 'mx1.dest.test', 'its first host');
($rc, $out) = $pt->smtpctl('route', 'x@relayed.test', '--resolve');
like($out, qr/^  host gw\.relay\.test:\n[^\n]*\n[^\n]*127\.0\.0\.63/m, 'a relayed domain: the gateway\'s address');
($rc, $out) = $pt->smtpctl('route', 'x@nxdomain.test', '--resolve');
isnt($rc, 0, 'a domain that does not resolve: exit code not 0');
like($out, qr/NXDOMAIN/, 'and says why');

# -- sendmail -bv
($smrc, $smout, $smerr) = $pt->_run(30, "$ROOT/bin/sendmail", '-C', $pt->etc, '-bv', 'root', 'a@dest.test');
is($smrc, 0, 'sendmail -bv exits 0') or diag $smerr;
like($smout, qr/^root\@postern\.test\.\.\. deliverable: the route:$/m, 'a bare name gets @myhostname');
like($smout, qr/^a\@dest\.test\.\.\. deliverable: the route:\naddress:\s+a\@dest\.test$/m,
    'each address with its route');
my @before = $sink->messages;
($smrc, $smout, $smerr) = $pt->_run(30, "$ROOT/bin/sendmail", '-C', $pt->etc, '-bv', 'bad@@x');
isnt($smrc, 0, 'a malformed address: an error');
sleep 1;
is(scalar($sink->messages), scalar(@before), '-bv sent nothing');
($smrc, $smout, $smerr) = $pt->_run(30, "$ROOT/bin/sendmail", '-C', $pt->etc, '-bv');
isnt($smrc, 0, '-bv without an address: usage error');

$pt->stop;
$dns->stop;
done_testing();
