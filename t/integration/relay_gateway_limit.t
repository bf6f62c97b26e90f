#!/usr/bin/perl
# relay_gateway_limit.t - max_connections per gateway (issue 17.8): many
# domains routed through one smarthost never have more deliveries in
# flight through it than its max_connections (each domain's own limit
# would allow more), and all their mail arrives; a domain with two
# limited gateways keeps within both.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(max_deliveries => 20, messages_per_connection => 1);
my $p = $pt->free_port('127.0.1.40');
my $gw = $pt->peer(name => 'smarthost', addr => '127.0.1.40', port => $p, delay => { eod => 1 });
my $gw2 = $pt->peer(name => 'second', addr => '127.0.1.41', port => $p, delay => { eod => 1 });
$pt->config(relay_gateways => ["sh=127.0.1.40:$p/max_connections=2", "sh2=127.0.1.41:$p/low/max_connections=1"]);
my $map = join '', map { "d$_.gl.test   route=relay gateways=sh\n" } 1 .. 8;
$map .= "both.gl.test   route=relay gateways=sh,sh2\n";
$pt->write_file('domains', $map);
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

($rc, $out) = $pt->smtpctl('--json', 'show', 'relays');
my ($sh) = grep { $_->{name} eq 'sh' } @{ (eval { decode_json($out) } || {})->{gateways} || [] };
is($sh->{max_connections}, 2, 'show relays shows the limit');

$pt->send_mail(from => 's@src.test', to => ["u\@d$_.gl.test"]) for 1 .. 8;
ok($gw->wait_messages(8, 40), 'all 8 messages for 8 domains arrive through the smarthost');
cmp_ok($gw->max_concurrent, '<=', 2, 'never more than 2 sessions at once (max_connections=2)');
cmp_ok($gw->max_concurrent, '==', 2, 'and it used both');
ok(scalar($pt->log_lines(qr/every gateway of this attempt is at its max_connections; waiting/)) > 0,
    'the waiting is logged (detailed level)');

$pt->send_mail(from => 's@src.test', to => ["v$_\@both.gl.test"]) for 1 .. 3;
ok(wait_until(30, sub { $gw->messages + $gw2->messages >= 11 }), 'a domain with two gateways: all 3 arrive');
cmp_ok($gw->max_concurrent, '<=', 2, 'the smarthost still never had more than 2');
cmp_ok($gw2->max_concurrent, '<=', 1, 'the second gateway never more than its 1');

$pt->stop;
done_testing();
