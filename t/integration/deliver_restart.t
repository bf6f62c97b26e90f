#!/usr/bin/perl
# deliver across restarts of its peers (master hands it new channels):
#   - qmgr killed (-9) while deliver waits in the middle of a transaction:
#     deliver cancels that job (drops the connection, sends no result on
#     the new channel), the restarted qmgr sends the delivery again, and
#     the message arrives exactly once
#   - dnsd killed (-9): after its restart deliver looks up MX hosts over
#     the new channel and mail flows again
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Peer;
use Postern::DNS;
use Postern::Util qw(wait_until);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $zone = <<'ZONE';
$ORIGIN rst.test.
$TTL 300
@         IN SOA ns admin 1 3600 600 86400 60
@         IN NS ns
ns        IN A 127.0.0.1
slow      IN MX 10 mxslow
mxslow    IN A 127.0.0.61
fast      IN MX 10 mxfast
mxfast    IN A 127.0.0.62
ZONE

my $ns = Postern::DNS::Nsd->new(zones => { 'rst.test' => $zone });
$ns->start;

my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1s',
    messages_per_connection => 1);
my $port = $pt->direct_port;
# The first DATA waits 4 s before its 354: time to kill qmgr meanwhile.
my $flag = $pt->dir . '/slow-data-done';
my $slow = $pt->peer(name => 'mxslow', addr => '127.0.0.61', port => $port,
    replies => { data => sub {
        return undef if -e $flag;
        open my $fh, '>', $flag;
        close $fh;
        sleep 4;
        return undef;
    } });
my $fast = $pt->peer(name => 'mxfast', addr => '127.0.0.62', port => $port);
$pt->start;

# --- qmgr dies while a delivery is in flight
my ($qid, $mid) = $pt->send_mail(from => 'sender@origin.test', to => ['s@slow.rst.test']);
ok($qid, "message accepted ($qid)");
ok(wait_until(15, sub { grep { !defined $_->{close} } $slow->connections }),
    'deliver is connected to the slow MX');
ok($pt->wait_log(qr/deliver\[\d+\]: detail: \Q$qid\E: \S+ > DATA/, 10), 'and has sent DATA');
my $qpid = $pt->pid_of('qmgr');
ok($qpid, "qmgr runs ($qpid)");
$pt->mark_log;
kill 'KILL', $qpid;
ok($pt->wait_log(qr/deliver\[\d+\]: info: qmgr went away: 1 delivery job\(s\) cancelled/, 15),
    'deliver cancels the job of the dead qmgr');
ok($pt->wait_log(qr/deliver\[\d+\]: info: new channel to qmgr/, 20), 'deliver gets the new qmgr');
ok($pt->wait_log(qr/\Q$qid\E: to=<s\@slow.rst.test>, .*status=sent/, 30),
    'the restarted qmgr has the message delivered');
ok(wait_until(10, sub { scalar($slow->messages) >= 1 }), 'the MX has it');
is(scalar($slow->messages), 1, 'exactly once');
is_deeply([ $slow->message_ids ], [$mid], 'and it is ours');
ok(!$pt->log_lines(qr/deliver\[\d+\]: warn: cannot send the result/),
    'no result went astray');

# --- dnsd dies: lookups go to the new one
my $dpid = $pt->pid_of('dnsd');
ok($dpid, "dnsd runs ($dpid)");
$pt->mark_log;
kill 'KILL', $dpid;
ok($pt->wait_log(qr/deliver\[\d+\]: info: new channel to dnsd/, 20), 'deliver gets the new dnsd');
($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['f@fast.rst.test']);
ok($fast->wait_messages(1, 20), 'mail flows after the dnsd restart');
ok($pt->wait_log(qr/\Q$qid\E: to=<f\@fast.rst.test>, relay=mxfast\.rst\.test\[127\.0\.0\.62\]:$port, .*status=sent/, 10),
    'through the MX found by the new dnsd');

done_testing;
