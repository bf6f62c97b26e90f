#!/usr/bin/perl
# deliver when the remote side misbehaves, end to end through qmgr:
#   - an MX that drops the connection in the middle of DATA: the delivery
#     is deferred (class network, step data), retried after retry_delay,
#     and the message arrives exactly once
#   - tls = encrypt (TLS required) to an MX without STARTTLS: deferred
#     with that reason and nothing sent in plaintext; an MX that offers
#     STARTTLS gets the message over TLS
#   - a 5xx greeting at the first MX: the second MX takes the message
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
$ORIGIN flt.test.
$TTL 300
@         IN SOA ns admin 1 3600 600 86400 60
@         IN NS ns
ns        IN A 127.0.0.1
dropper   IN MX 10 mxd
mxd       IN A 127.0.0.51
plain     IN MX 10 mxp
mxp       IN A 127.0.0.52
secure    IN MX 10 mxs
mxs       IN A 127.0.0.53
grumpy    IN MX 10 mxg
grumpy    IN MX 20 mxh
mxg       IN A 127.0.0.54
mxh       IN A 127.0.0.55
ZONE

my $ns = Postern::DNS::Nsd->new(zones => { 'flt.test' => $zone });
$ns->start;

# --- instance 1: tls = may (default)
{
    my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '2s');
    my $port = $pt->direct_port;
    my $mxd = $pt->peer(name => 'mxd', addr => '127.0.0.51', port => $port,
        drop_in_data => [ 1, 0 ]);
    my $mxg = $pt->peer(name => 'mxg', addr => '127.0.0.54', port => $port,
        greeting => '554 5.7.1 not talking to you');
    my $mxh = $pt->peer(name => 'mxh', addr => '127.0.0.55', port => $port);
    $pt->start;

    my ($qid, $mid) = $pt->send_mail(from => 'sender@origin.test', to => ['d@dropper.flt.test']);
    ok($qid, "message accepted ($qid)");
    ok($pt->wait_log(qr/\Q$qid\E: to=<d\@dropper.flt.test>, .*status=deferred \(network\/(data|dot):/, 20),
        'dropped in DATA: deferred with class network at the data step');
    ok($pt->log_lines(qr/deliver\[\d+\]: info: \Q$qid\E: mxd\.flt\.test\[127\.0\.0\.51\]:$port failed at (data|dot) \(network/),
        'deliver logs the host and the step that failed');
    ok($pt->wait_log(qr/\Q$qid\E: to=<d\@dropper.flt.test>, .*tries=2, .*status=sent/, 30),
        'the retry delivers it');
    ok(wait_until(5, sub { scalar($mxd->messages) >= 1 }), 'the MX has it');
    my @t = $mxd->transactions;
    is(scalar(grep { $_->{status} eq 'dropped' } @t), 1, 'the MX saw one dropped transaction');
    is(scalar($mxd->messages), 1, 'and exactly one accepted message');
    is_deeply([ $mxd->message_ids ], [$mid], 'the accepted message is ours');

    # 5xx greeting at the first MX: not a verdict on the message
    $pt->mark_log;
    ($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['g@grumpy.flt.test']);
    ok($mxh->wait_messages(1, 20), '5xx greeting at the first MX: the second MX got it');
    ok($pt->wait_log(qr/\Q$qid\E: to=<g\@grumpy.flt.test>, relay=mxh\.flt\.test.*status=sent/, 10),
        'logged as sent through the second MX');
    ok($pt->log_lines(qr/deliver\[\d+\]: info: \Q$qid\E: mxg\.flt\.test\[127\.0\.0\.54\]:$port failed at greeting \(smtp, permanent\): 554/),
        'the refusing MX is logged with step greeting');
    is(scalar($mxg->transactions), 0, 'no transaction at the refusing MX');
    $pt->stop;
}

# --- instance 2: tls = encrypt (TLS required)
{
    my $pt = Postern::Test->new(dns_servers => $ns->addr, tls => 'encrypt', retry_delay => '1h');
    my $port = $pt->direct_port;
    my $mxp = $pt->peer(name => 'mxp', addr => '127.0.0.52', port => $port);
    my $mxs = $pt->peer(name => 'mxs', addr => '127.0.0.53', port => $port, starttls => 1);
    $pt->start;

    my ($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['p@plain.flt.test']);
    ok($pt->wait_log(qr/\Q$qid\E: to=<p\@plain.flt.test>, .*status=deferred \(tls\/starttls: TLS required but not offered/, 20),
        'TLS required, not offered: deferred with that reason');
    ok($pt->log_lines(qr/deliver\[\d+\]: info: \Q$qid\E: mxp\.flt\.test\[127\.0\.0\.52\]:$port failed at starttls \(tls/),
        'deliver logs step starttls, class tls');
    is(scalar($mxp->transactions), 0, 'no transaction in plaintext');
    ok(scalar($mxp->connections) >= 1, 'the MX was contacted');
    my ($rc, $out) = $pt->smtpctl('show', 'queue');
    like($out, qr/\Q$qid\E/, 'the message stays in the queue');

    ($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['s@secure.flt.test']);
    ok($mxs->wait_messages(1, 20), 'an MX with STARTTLS gets the message');
    my ($m) = $mxs->messages;
    ok($m && $m->{tls}, 'over TLS');
    $pt->stop;
}

done_testing;
