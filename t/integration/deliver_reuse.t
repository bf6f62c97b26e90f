#!/usr/bin/perl
# Connection reuse in deliver, end to end (qmgr names the destination,
# the delivery engine keeps the session idle between messages):
#   - 10 messages to one domain, max_connections = 1,
#     messages_per_connection = 5: two connections of five transactions,
#     each ended with QUIT
#   - the MX closes the idle connection (421 after 1 s idle): the next
#     message goes over a new connection, sent at its first try
#   - the MX answers RSET with 421 on a reused connection: the message
#     goes over a new connection, sent at its first try (not counted as a
#     failed attempt)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Postern::Test;
use Postern::Peer;
use Postern::DNS;
use Postern::Util qw(wait_until);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $zone = <<'ZONE';
$ORIGIN reuse.test.
$TTL 300
@         IN SOA ns admin 1 3600 600 86400 60
@         IN NS ns
ns        IN A 127.0.0.1
batch     IN MX 10 mxb
mxb       IN A 127.0.0.71
idle      IN MX 10 mxi
mxi       IN A 127.0.0.72
rset      IN MX 10 mxr
mxr       IN A 127.0.0.73
ZONE

my $ns = Postern::DNS::Nsd->new(zones => { 'reuse.test' => $zone });
$ns->start;

my $pt = Postern::Test->new(dns_servers => $ns->addr, max_connections => 1,
    messages_per_connection => 5, retry_delay => '1h');
my $port = $pt->direct_port;
my $mxb = $pt->peer(name => 'mxb', addr => '127.0.0.71', port => $port);
my $mxi = $pt->peer(name => 'mxi', addr => '127.0.0.72', port => $port, idle_timeout => 1);
my $mxr = $pt->peer(name => 'mxr', addr => '127.0.0.73', port => $port,
    replies => { rset => '421 4.4.2 mxr closing connection' });
$pt->start;

# --- 10 messages, 5 per connection
for my $i (1 .. 10) {
    $pt->send_mail(from => 'sender@origin.test', to => ["b$i\@batch.reuse.test"])
        or fail("message $i not accepted");
}
ok($mxb->wait_messages(10, 40), 'all ten messages arrived');
ok(wait_until(10, sub { !grep { !defined $_->{close} } $mxb->connections }),
    'every connection was closed');
my @c = $mxb->connections;
is(scalar @c, 2, 'over two connections');
is_deeply([ map { $_->{transactions} } @c ], [ 5, 5 ], 'five transactions each');
is_deeply([ map { $_->{closed_by} } @c ], [ 'client', 'client' ], 'closed by deliver (QUIT)');
ok($pt->log_lines(qr/deliver\[\d+\]: detail: \S+: direct delivery to batch\.reuse\.test, attempt 1: reusing the connection to mxb\.reuse\.test/),
    'reuse is logged at detailed level');

# --- the MX closes the idle connection
my ($q1) = $pt->send_mail(from => 'sender@origin.test', to => ['i1@idle.reuse.test']);
ok($mxi->wait_messages(1, 20), 'first message to the idle-closing MX');
ok(wait_until(10, sub { grep { ($_->{closed_by} // '') eq 'idle' } $mxi->connections }),
    'the MX closed the idle connection');
my ($q2) = $pt->send_mail(from => 'sender@origin.test', to => ['i2@idle.reuse.test']);
ok($mxi->wait_messages(2, 20), 'the second message arrived');
ok($pt->wait_log(qr/\Q$q2\E: to=<i2\@idle.reuse.test>, .*tries=1, .*status=sent/, 10),
    'sent at its first try');
is(scalar($mxi->connections), 2, 'over a new connection');

# --- RSET answered with 421 on the reused connection
$pt->mark_log;
($q1) = $pt->send_mail(from => 'sender@origin.test', to => ['r1@rset.reuse.test']);
ok($mxr->wait_messages(1, 20), 'first message to the RSET-refusing MX');
ok($pt->wait_log(qr/\Q$q1\E: to=<r1\@rset.reuse.test>, .*status=sent/, 10), 'logged as sent');
($q2) = $pt->send_mail(from => 'sender@origin.test', to => ['r2@rset.reuse.test']);
ok($mxr->wait_messages(2, 20), 'the second message arrived');
ok($pt->wait_log(qr/\Q$q2\E: to=<r2\@rset.reuse.test>, .*tries=1, .*status=sent/, 10),
    'sent at its first try: the dead reused connection was not a failed attempt');
ok($pt->log_lines(qr/deliver\[\d+\]: detail: \Q$q2\E: reused connection to mxr\.reuse\.test\S+ was closed before the transaction/),
    'deliver logs that it went on with a new connection');
ok(!$pt->log_lines(qr/\Q$q2\E: .*status=deferred/), 'no deferral');
is(scalar($mxr->connections), 2, 'two connections in all');

done_testing;
