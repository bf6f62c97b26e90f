#!/usr/bin/perl
# route_overrides.t - the overrides of DESIGN 4.4, end to end, each MX,
# gateway and static host its own loopback peer, `smtpctl route` (with
# --size and --from) asked before each case:
#   - relay_size_over: a big message goes through the gateway, a small one
#     to the same domain goes direct
#   - the sender map (relay_sender_map): mail from a listed address, or
#     from a listed @domain, goes through the gateway the map names; mail
#     from another sender goes direct
#   - a static route route=smtp:[host]:port takes the mail to that host
#     and port, never to the MX
#   - gateway_policy=always ignores the static route (as documented)
#   - mx= sends the direct attempts to the override address (no DNS)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Route qw(route);
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $gp = $pt->free_port('127.0.0.161');
my $sp = $pt->free_port('127.0.0.171');
my $mx   = $pt->peer(name => 'mx', addr => '127.0.0.151');
my $big  = $pt->peer(name => 'gbig', addr => '127.0.0.161', port => $gp);
my $gs   = $pt->peer(name => 'gsnd', addr => '127.0.0.162', port => $gp);
my $host = $pt->peer(name => 'static', addr => '127.0.0.171', port => $sp);
$pt->config(relay_gateways => [ "gbig=127.0.0.161:$gp/high", "gsnd=127.0.0.162:$gp/low" ],
    relay_sender_map => 'senders');
$pt->write_file('domains', <<"MAP");
size.ov.test     relay_size_over=10k mx=127.0.0.151
snd.ov.test      mx=127.0.0.151
route.ov.test    route=smtp:[127.0.0.171]:$sp mx=127.0.0.151
always.ov.test   gateway_policy=always route=smtp:[127.0.0.171]:$sp
MAP
$pt->write_file('senders', <<'MAP');
# sender (address or @domain)   gateway names
boss@corp.test    gsnd
@vip.test         gsnd
MAP
for my $m (qw(domains senders)) {
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
    is($rc, 0, "makemap $m") or diag $out;
}
$pt->start;

sub from_of { my ($peer, $rcpt) = @_; my ($t) = $peer->messages_for($rcpt); return $t ? $t->{mail_from} : '' }

# --- relay_size_over ---
my $r = route($pt, 'a@size.ov.test', '--size', '20k');
is($r->{relay_only}, 'size over relay_size_over', 'route --size 20k: through the gateways');
is($r->{first_gateway}, 'gbig', 'route: gbig first');
$r = route($pt, 'a@size.ov.test', '--size', '2k');
is($r->{first}, 'direct', 'route --size 2k: direct');
my $q1 = $pt->send_mail(from => 's@src.test', to => ['big@size.ov.test'], subject => 'big',
    body => join('', ("x" x 76 . "\n") x 300));
my $q2 = $pt->send_mail(from => 's@src.test', to => ['small@size.ov.test'], subject => 'small', body => "hi\n");
ok(wait_until(20, sub { $big->messages_for('big@size.ov.test') && $mx->messages_for('small@size.ov.test') }),
    'the big message went through the gateway, the small one direct');
ok(!$mx->messages_for('big@size.ov.test') && !$big->messages_for('small@size.ov.test')
    && !$gs->messages_for('small@size.ov.test'),
    'and neither went the other way');
ok($pt->wait_log(qr/\Q$q1\E: size\.ov\.test: relay attempt 1 of \d+ via gbig,gsnd \(size over relay_size_over\)/, 5),
    'log: why the big one went through the gateways');

# --- sender map ---
$r = route($pt, 'a@snd.ov.test', '--from', 'boss@corp.test');
is($r->{sender_map_key}, 'boss@corp.test', 'route --from: the sender map entry');
is($r->{relay_only}, 'sender map', 'route --from boss: relay only');
is_deeply([ map { $_->{name} } @{ $r->{phases}[0]{gateways} } ], ['gsnd'], 'route: only the gateway the map names');
$r = route($pt, 'a@snd.ov.test', '--from', 'x@vip.test');
is($r->{sender_map_key}, '@vip.test', 'route: @domain entry');
$r = route($pt, 'a@snd.ov.test', '--from', 'other@corp.test');
is($r->{first}, 'direct', 'route: another sender goes direct');
$pt->send_mail(from => 'boss@corp.test', to => ['one@snd.ov.test']);
$pt->send_mail(from => 'x@vip.test', to => ['two@snd.ov.test']);
$pt->send_mail(from => 'other@corp.test', to => ['three@snd.ov.test']);
ok(wait_until(20, sub { $gs->messages_for('one@snd.ov.test') && $gs->messages_for('two@snd.ov.test')
        && $mx->messages_for('three@snd.ov.test') }),
    'the listed senders through their gateway, the other direct');
is(from_of($gs, 'one@snd.ov.test'), 'boss@corp.test', 'gsnd: mail from boss@corp.test');
is(from_of($gs, 'two@snd.ov.test'), 'x@vip.test', 'gsnd: mail from @vip.test');
ok(!$big->messages_for('one@snd.ov.test') && !$mx->messages_for('one@snd.ov.test'),
    'sender mail did not go elsewhere');

# --- static route ---
$r = route($pt, 'a@route.ov.test');
is($r->{phases}[0]{target}, 'route', 'route: static route');
is($r->{route}, "smtp:[127.0.0.171]:$sp", 'route: the route');
my $q5 = $pt->send_mail(from => 's@src.test', to => ['r@route.ov.test']);
ok(wait_until(20, sub { $host->messages_for('r@route.ov.test') }), 'the static route host:port got it');
ok(!$mx->messages_for('r@route.ov.test'), 'the MX (mx=) was not used');
ok($pt->wait_log(qr/\Q$q5\E: to=<r\@route\.ov\.test>, relay=127\.0\.0\.171\[127\.0\.0\.171\]:$sp, phase=direct, route=smtp:\[127\.0\.0\.171\]:$sp, .*status=sent/, 5),
    'log: phase=direct, route=...');

# --- always ignores the static route ---
$r = route($pt, 'a@always.ov.test');
is($r->{relay_only}, 'gateway_policy always', 'route: always, relay only');
my ($c, $text) = $pt->smtpctl('route', 'a@always.ov.test');
like($text, qr/the static route is not used/, 'route (text): says the static route is not used');
$pt->send_mail(from => 's@src.test', to => ['w@always.ov.test']);
ok(wait_until(20, sub { $big->messages_for('w@always.ov.test') }), 'always: through the gateway');
ok(!$host->messages_for('w@always.ov.test'), 'always: the static route was ignored');

done_testing;
