#!/usr/bin/perl
# relay_gateways.t - the relay phase's gateways (DESIGN 4.2), end to end,
# each gateway its own loopback peer:
#   - gateways are tried highest priority first; a disabled gateway is
#     never contacted, even when it has the best priority
#   - failover inside an attempt and rotation between attempts: gateway A
#     always fails (421), B fails the first time (451 at the dot) and then
#     accepts: attempt one goes A then B, attempt two starts at B (and B
#     takes it), so A is contacted once in all
#   - smtpctl route shows those orders before anything is sent, and
#     smtpctl show relays shows each gateway's state and counts after
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Route qw(route);
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $p = $pt->free_port('127.0.0.121');
my %gw;
$gw{gx} = $pt->peer(name => 'gx', addr => '127.0.0.121', port => $p);
$gw{gy} = $pt->peer(name => 'gy', addr => '127.0.0.122', port => $p);
$gw{gz} = $pt->peer(name => 'gz', addr => '127.0.0.123', port => $p);
$gw{ra} = $pt->peer(name => 'ra', addr => '127.0.0.124', port => $p, greeting => '421 4.3.2 shutting down');
$gw{rb} = $pt->peer(name => 'rb', addr => '127.0.0.125', port => $p,
    replies => { eod => [ '451 4.3.0 queue full, later', '250 2.0.0 ok' ] });
$pt->config(relay_gateways => [ "gx=127.0.0.121:$p/low", "gy=127.0.0.122:$p/highest",
    "gz=127.0.0.123:$p/highest/disabled", "ra=127.0.0.124:$p/high", "rb=127.0.0.125:$p/normal" ]);
$pt->write_file('domains', <<'MAP');
prio.gw.test  route=relay gateways=gx,gy,gz
rot.gw.test   route=relay gateways=ra,rb relay_attempts=3
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

# --- priority and disabled ---
my $r = route($pt, 'a@prio.gw.test');
is_deeply([ map { $_->{name} } @{ $r->{phases}[0]{gateways} } ], [qw(gy gx)],
    'route: highest first, the disabled one left out');
is($r->{first_gateway}, 'gy', 'route: gy first');
my ($rc2, $text) = $pt->smtpctl('route', 'a@prio.gw.test');
like($text, qr/relay\s+100 attempts through gy \(highest, 127\.0\.0\.122:$p\), gx \(low/, 'route (text): the gateways with priorities');

my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@prio.gw.test']);
ok($gw{gy}->wait_messages(1, 20), 'the highest-priority enabled gateway got the message');
is(scalar($gw{gx}->connections), 0, 'the low-priority gateway was not needed');
is(scalar($gw{gz}->connections), 0, 'the disabled gateway was never contacted');
ok($pt->wait_log(qr/\Q$q1\E: to=<a\@prio\.gw\.test>, relay=127\.0\.0\.122\S*, phase=relay, gateway=gy, .*status=sent/, 5),
    'log: phase=relay, gateway=gy');

# --- failover within an attempt, rotation between attempts ---
$r = route($pt, 'b@rot.gw.test');
is_deeply($r->{phases}[0]{order}, [ [qw(ra rb)], [qw(rb ra)] ], 'route: attempt 1 ra,rb; attempt 2 rb,ra');
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@rot.gw.test']);
ok($gw{rb}->wait_messages(1, 30), 'B took the message in the end');
ok($pt->wait_log(qr/\Q$q2\E: rot\.gw\.test: relay attempt 1 of 3 via ra,rb/, 5), 'log: attempt 1 via ra,rb');
ok($pt->wait_log(qr/\Q$q2\E: rot\.gw\.test: relay attempt 2 of 3 via rb,ra/, 5), 'log: attempt 2 via rb,ra');
ok($pt->wait_log(qr/\Q$q2\E: to=<b\@rot\.gw\.test>, .*phase=relay, gateway=rb, .*tries=2, .*status=sent/, 5),
    'log: sent by rb at the second try');
my @ca = $gw{ra}->connections;
my @tb = $gw{rb}->transactions;
is(scalar(@ca), 1, 'A was contacted once: attempt two did not start with it');
is(scalar(@tb), 2, 'B saw two transactions (a 451, then the accepted one)');
ok(@ca && @tb == 2 && $ca[0]{connect} <= $tb[0]{t} && $tb[0]{t} < $tb[1]{t},
    'in order: A, then B (attempt one), then B (attempt two)');
is(scalar(grep { $_->{status} eq 'accepted' } @tb), 1, 'one accepted transaction at B');

# --- show relays ---
my ($rc3, $js) = $pt->smtpctl('show', 'relays', '--json');
my $rel = eval { decode_json($js) } // {};
my %g = map { $_->{name} => $_ } @{ $rel->{gateways} || [] };
is($rel->{count}, 5, 'show relays: five gateways');
is($g{gz}{state}, 'disabled', 'gz disabled');
is($g{gx}{state}, 'unused', 'gx unused');
is($g{gy}{priority}, 'highest', 'gy priority');
is($g{gy}{sent}, 1, 'gy sent 1');
is($g{ra}{state}, 'failing', 'ra failing');
is($g{ra}{failed}, 1, 'ra failed once');
is($g{rb}{sent}, 1, 'rb sent 1');
is($g{rb}{failed}, 1, 'rb failed once');
is($g{rb}{state}, 'ok', 'rb ok after its success');
like($g{rb}{last_error} // '', qr/451 4\.3\.0 queue full/, 'rb: its last error');
my ($rc4, $tx) = $pt->smtpctl('show', 'relays');
like($tx, qr/^gz\s+127\.0\.0\.123:$p\s+highest\s+may\s+no\s+no\s+disabled/m, 'show relays (text): gz line');
like($tx, qr/^ra\s+.*failing\s+0\s+1\s/m, 'show relays (text): ra line');

done_testing;
