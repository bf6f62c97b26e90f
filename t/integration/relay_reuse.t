#!/usr/bin/perl
# relay_reuse.t - connection reuse keeps the gateway's identity and its
# priority (issue 18.7). Both pairs of gateways are one host on two ports,
# the real case of one smarthost on 25 and 587:
#   - gwp (high) refuses one connection with 421 and gwq (normal) takes
#     message 1; message 2, announced "via gwp,gwq", goes to gwp over a
#     new connection, not over gwq's idle one, and show relays credits
#     each with its own message
#   - gwa (high) is down and gwb (low) takes every message: each is
#     logged gateway=gwb, the second and third go over gwb's idle
#     connection after gwa was tried, and show relays credits gwb with
#     3 and gwa with none
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1h', connection_idle_timeout => '30s',
    messages_per_connection => 10);
my ($pp, $pq, $pa, $pb) = map { $pt->free_port('127.0.5.61') } 1 .. 4;
my $gwp = $pt->peer(name => 'gwp', addr => '127.0.5.61', port => $pp,
    greeting => [ '421 4.3.2 gwp busy, try later', '220 gwp ESMTP' ]);
my $gwq = $pt->peer(name => 'gwq', addr => '127.0.5.61', port => $pq);
my $gwa = $pt->peer(name => 'gwa', addr => '127.0.5.61', port => $pa, refuse => 1);
my $gwb = $pt->peer(name => 'gwb', addr => '127.0.5.61', port => $pb);
$pt->config(relay_gateways => [ "gwp=127.0.5.61:$pp/high", "gwq=127.0.5.61:$pq",
    "gwa=127.0.5.61:$pa/high", "gwb=127.0.5.61:$pb/low" ]);
$pt->write_file('domains', <<'MAP');
pq.rr.test   route=relay gateways=gwp,gwq relay_attempts=3
ab.rr.test   route=relay gateways=gwa,gwb relay_attempts=3
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

sub relays {
    my ($rc, $out) = $pt->smtpctl('show', 'relays', '--json');
    return map { $_->{name} => $_ } @{ (eval { decode_json($out) } // {})->{gateways} || [] };
}

# --- gwp refuses once, gwq takes message 1; message 2 goes to gwp
my $q1 = $pt->send_mail(from => 's@src.test', to => ['m1@pq.rr.test']);
ok($pt->wait_log(qr/\Q$q1\E: to=<m1\@pq\.rr\.test>, .*gateway=gwq, .*status=sent/, 20),
    'message 1: gwp refused, sent via gwq');
my $q2 = $pt->send_mail(from => 's@src.test', to => ['m2@pq.rr.test']);
ok($pt->wait_log(qr/\Q$q2\E: pq\.rr\.test: relay attempt 1 of 3 via gwp,gwq/, 20),
    'message 2 is announced via gwp,gwq');
my $sent = $pt->wait_log(qr/\Q$q2\E: to=<m2\@pq\.rr\.test>, .*status=/, 20) // '';
like($sent, qr/gateway=gwp, .*status=sent/, 'message 2 is sent via gwp, the first of its order');
ok($gwp->messages_for('m2@pq.rr.test'), 'gwp got message 2');
ok(!$gwq->messages_for('m2@pq.rr.test'), 'gwq did not');
is(scalar($gwq->transactions), 1, "gwq's idle connection carried nothing more");
ok(!$pt->log_lines(qr/\Q$q2\E: relay delivery .*reusing the connection/), 'message 2 reused no connection');
my %r = relays();
is($r{gwp}{sent}, 1, 'show relays: gwp sent 1 (message 2)');
is($r{gwq}{sent}, 1, 'show relays: gwq sent 1 (message 1)');
is($r{gwp}{failed}, 1, 'show relays: gwp failed once (the 421), not for message 2');

# --- gwa is down: gwb carries everything, and is credited with it
my @q;
for my $i (1 .. 3) {
    my $q = $pt->send_mail(from => 's@src.test', to => ["n$i\@ab.rr.test"]);
    push @q, $q;
    ok($pt->wait_log(qr/\Q$q\E: to=<n$i\@ab\.rr\.test>, .*status=sent/, 20), "message $i for ab.rr.test sent");
}
for my $i (1 .. 3) {
    my $id = $q[$i - 1];
    my ($line) = $pt->log_lines(qr/\Q$id\E: to=<n$i\@ab\.rr\.test>, .*status=sent/);
    like($line // '', qr/relay=127\.0\.5\.61\[127\.0\.5\.61\]:$pb, phase=relay, gateway=gwb,/,
        "message $i: logged with gwb's port and name");
}
is($gwb->messages, 3, 'gwb got the three messages');
my @c = $gwb->connections;
is(scalar(@c), 1, 'over one connection');
ok(scalar($pt->log_lines(qr/relay delivery to ab\.rr\.test, attempt 1: reusing the connection to 127\.0\.5\.61\[127\.0\.5\.61\]:$pb, gateway gwb/)) >= 2,
    "the second and third reused gwb's idle connection");
for my $q (@q[1, 2]) {
    ok($pt->log_lines(qr/\Q$q\E: .*connecting to 127\.0\.5\.61\[127\.0\.5\.61\]:$pa, gateway gwa/),
        "gwa was tried first for $q");
}
%r = relays();
is($r{gwb}{sent}, 3, 'show relays: gwb sent 3');
is($r{gwa}{sent} // 0, 0, 'show relays: gwa sent none');
is($r{gwa}{failed}, 3, 'show relays: gwa failed 3 times');

done_testing;
