#!/usr/bin/perl
# local_outage.t - a local outage is not a destination failure (issue
# 17.1, dlv_blame in common/mail/dlv_proto.h). dnsd is stopped while a
# delivery's lookup waits on it, then killed: master restarts it.
#   - the recipient is deferred as a local outage: "not counted as an
#     attempt", tries=0, retried after the short local back-off (5 s), not
#     after retry_delay (300 s here);
#   - twice in a row: the healthy destination is never marked down (two
#     destination failures in a row would mark it down for 300 s), and
#     both messages arrive without a flush;
#   - the attempt that delivers is still "direct attempt 1": nothing was
#     counted against the direct phase, so no fallback to relay.
# (messages_per_connection = 1: each delivery asks dnsd; a reused
# connection would not.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until pid_alive);

my $pt = Postern::Test->new(retry_delay => '300s', retry_delay_max => '0',
    direct_attempts => 2, relay_attempts => 3, messages_per_connection => 1);
my $port = $pt->direct_port;
my $peer = $pt->peer(name => 'healthy', addr => '127.0.0.195', port => $port);
my $gwp = $pt->free_port('127.0.0.196');
my $gw = $pt->peer(name => 'gw', addr => '127.0.0.196', port => $gwp);
$pt->config(relay_gateways => ["gw=127.0.0.196:$gwp"]);
$pt->write_file('domains', "healthy.lo.test   mx=127.0.0.195 gateway_policy=undelivered\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

for my $n (1, 2) {
    my $dnsd = $pt->pid_of('dnsd');
    ok($dnsd, "dnsd runs ($n)");
    kill 'STOP', $dnsd;
    $pt->mark_log;
    my $qid = $pt->send_mail(from => 's@src.test', to => ["u$n\@healthy.lo.test"]);
    ok($qid, "message $n accepted");
    ok($pt->wait_log(qr/\Q$qid\E: healthy\.lo\.test: direct attempt 1 of 2/, 10),
        "message $n: the delivery started and waits on the stopped dnsd");
    sleep 1;
    kill 'KILL', $dnsd;
    ok($pt->wait_log(qr/\Q$qid\E: to=<u$n\@healthy\.lo\.test>, .*tries=0, .*status=deferred \(local: dnsd unavailable.*not counted as an attempt, again in 5s\)/, 10),
        "message $n: deferred as a local outage, not counted, retried in 5 s");
    ok(wait_until(10, sub { my $p = $pt->pid_of('dnsd'); $p && $p != $dnsd }), 'master restarted dnsd');
    ok($peer->wait_messages($n, 20), "message $n arrives after the back-off, with no flush");
    ok($pt->wait_log(qr/\Q$qid\E: to=<u$n\@healthy\.lo\.test>, .*status=sent/, 5), "message $n: sent");
    my @attempts = $pt->log_lines(qr/\Q$qid\E: healthy\.lo\.test: (direct|relay) attempt/);
    is(scalar(grep { /direct attempt 1 of 2/ } @attempts), 2,
        "message $n: both tries were direct attempt 1 (the outage was not counted)");
}
$pt->mark_log;
my $log = do { open(my $f, '<', $pt->log_path) or die; local $/; <$f> };
unlike($log, qr/destination healthy\.lo\.test is down/, 'the destination was never marked down');
is(scalar($gw->messages), 0, 'nothing went to the relay gateway');

$pt->stop;
done_testing();
