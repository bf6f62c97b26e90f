#!/usr/bin/perl
# route_on_error.t - gateway_policy on_error and relay_on_errors (DESIGN
# 4.3), and permanent errors (4.5), end to end. DNS is a scripted
# responder that answers SERVFAIL for the failing domains.
#   - on_error with relay_on_errors=dns: a domain whose DNS fails goes to
#     the gateway at once, after one direct attempt
#   - on_error with only smtp: the same DNS failure does not switch; the
#     direct attempts go on, and the gateway is used only once they are
#     spent (on_error includes what undelivered does)
#   - on_error with smtp: a 550 from the MX goes to the gateway at once
#   - undelivered: a 550 from the MX fails the recipient, no gateway
#   - smtpctl route says so for each
#   - a gateway given by name is resolved through dnsd
#   - a static route without brackets (route=smtp:host:port) goes to the
#     MX hosts of that host, on that port
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Route qw(route);
use Postern::DNS;
use Postern::Util qw(wait_until);

my $dns = Postern::DNS::Fake->new(rules => {
    'dnsfail.oe.test/*'  => { rcode => 'SERVFAIL' },
    'dnsfail2.oe.test/*' => { rcode => 'SERVFAIL' },
    'hub.oe.test/MX'     => { answer => ['hub.oe.test 60 MX 10 mxhub.oe.test'] },
    'mxhub.oe.test/A'    => { answer => ['mxhub.oe.test 60 A 127.0.0.135'] },
    'mxhub.oe.test/AAAA' => { rcode => 'NOERROR' },
    'gwname.oe.test/A'    => { answer => ['gwname.oe.test 60 A 127.0.0.141'] },
    'gwname.oe.test/AAAA' => { rcode => 'NOERROR' },
});
$dns->start;

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0', dns_servers => $dns->addr,
    dns_timeout => '1s', dns_attempts => 1);
my $gp = $pt->free_port('127.0.0.141');
my $gw = $pt->peer(name => 'gw', addr => '127.0.0.141', port => $gp);
my $mx = $pt->peer(name => 'mx550', addr => '127.0.0.131', replies => { rcpt => '550 5.1.1 no such user' });
my $hp = $pt->free_port('127.0.0.135');
my $hub = $pt->peer(name => 'hub', addr => '127.0.0.135', port => $hp);
$pt->config(relay_gateways => "gw=127.0.0.141:$gp gn=gwname.oe.test:$gp/low");
$pt->write_file('domains', <<"MAP");
via.oe.test       route=smtp:hub.oe.test:$hp
named.oe.test     route=relay gateways=gn
dnsfail.oe.test   gateway_policy=on_error relay_on_errors=dns direct_attempts=5 relay_attempts=2
dnsfail2.oe.test  gateway_policy=on_error relay_on_errors=smtp direct_attempts=3 relay_attempts=2
perm.oe.test      gateway_policy=on_error relay_on_errors=smtp mx=127.0.0.131
permund.oe.test   gateway_policy=undelivered mx=127.0.0.131
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

# --- on_error + dns: at once ---
my $r = route($pt, 'a@dnsfail.oe.test');
is($r->{gateway_policy}, 'on_error', 'route: on_error');
is_deeply($r->{phases}[1]{early}{on_error}, ['dns'], 'route: relay early on a dns error');
my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@dnsfail.oe.test']);
ok(wait_until(20, sub { $gw->messages_for_domain('dnsfail.oe.test') }),
    'DNS failure with relay_on_errors=dns: the gateway got the message');
ok($pt->wait_log(qr/\Q$q1\E: to=<a\@dnsfail\.oe\.test>, relay=none, .*tries=1, .*status=deferred \(dns:/, 5),
    'after one direct attempt that failed in DNS');
ok($pt->wait_log(qr/\Q$q1\E: dnsfail\.oe\.test: relay attempt 1 of 2 via gw,gn \(on_error: a direct dns error\)/, 5),
    'log: relay because of the dns error');
ok($pt->wait_log(qr/\Q$q1\E: to=<a\@dnsfail\.oe\.test>, .*phase=relay, gateway=gw, .*tries=2, .*status=sent/, 5),
    'sent by the gateway at the second try');

# --- on_error + only smtp: the dns error does not switch ---
$r = route($pt, 'b@dnsfail2.oe.test');
is_deeply($r->{phases}[1]{early}{on_error}, ['smtp'], 'route: relay early on smtp errors only');
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@dnsfail2.oe.test']);
ok($pt->wait_log(qr/\Q$q2\E: to=<b\@dnsfail2\.oe\.test>, relay=none, .*tries=2, .*status=deferred \(dns:/, 20),
    'a second direct attempt after the dns error');
is(scalar($gw->transactions_for_domain('dnsfail2.oe.test')), 0,
    'the gateway saw nothing while direct attempts were left');
ok(wait_until(20, sub { $gw->messages_for_domain('dnsfail2.oe.test') }),
    'the gateway got it once the direct attempts were spent');
is(scalar $pt->log_lines(qr/\Q$q2\E: to=<b\@dnsfail2\.oe\.test>, relay=none, .*status=deferred \(dns:/), 3,
    'three direct attempts (direct_attempts=3) before');
ok($pt->wait_log(qr/\Q$q2\E: dnsfail2\.oe\.test: relay attempt 1 of 2 via gw,gn \(direct_attempts used up\)/, 5),
    'log: relay because the direct attempts were used up');

# --- on_error + smtp: a permanent error goes to the gateway ---
my $q3 = $pt->send_mail(from => 's@src.test', to => ['c@perm.oe.test']);
ok(wait_until(20, sub { $gw->messages_for_domain('perm.oe.test') }),
    '550 from the MX with on_error smtp: the gateway got it');
# (a transaction on a connection kept for reuse is recorded at its next
# command or close)
wait_until(10, sub { $mx->transactions_for_domain('perm.oe.test') >= 1 });
is(scalar($mx->transactions_for_domain('perm.oe.test')), 1, 'the MX was tried once');
ok($pt->wait_log(qr/\Q$q3\E: to=<c\@perm\.oe\.test>, relay=127\.0\.0\.131\S*, .*dsn=5\.1\.1, status=deferred \(smtp\/rcpt: 550/, 5),
    'the 550 deferred the recipient to the relay phase');
ok($pt->wait_log(qr/\Q$q3\E: perm\.oe\.test: relay attempt 1 of \d+ via gw,gn \(on_error: a direct smtp error\)/, 5),
    'log: relay because of the smtp error');

# --- undelivered: a permanent error fails ---
$r = route($pt, 'd@permund.oe.test');
is($r->{gateway_policy}, 'undelivered', 'route: undelivered');
my $q4 = $pt->send_mail(from => 's@src.test', to => ['d@permund.oe.test']);
ok($pt->wait_log(qr/\Q$q4\E: to=<d\@permund\.oe\.test>, relay=127\.0\.0\.131\S*, .*tries=1, dsn=5\.1\.1, status=failed \(smtp\/rcpt: 550/, 20),
    '550 with undelivered: failed at once');
sleep 1;
is(scalar($gw->transactions_for_domain('permund.oe.test')), 0, 'no gateway for it');

# --- a gateway by name ---
my $q7 = $pt->send_mail(from => 's@src.test', to => ['n@named.oe.test']);
ok(wait_until(20, sub { $gw->messages_for_domain('named.oe.test') }),
    'a gateway given by name: resolved and used');
ok($pt->wait_log(qr/\Q$q7\E: to=<n\@named\.oe\.test>, relay=gwname\.oe\.test\[127\.0\.0\.141\]:$gp, phase=relay, gateway=gn, .*status=sent/, 5),
    'log: the gateway name and its address');

# --- route=smtp:host:port: the MX hosts of host ---
$r = route($pt, 'v@via.oe.test');
is($r->{phases}[0]{target}, 'route', 'route: static route through the MX of hub.oe.test');
my $q6 = $pt->send_mail(from => 's@src.test', to => ['v@via.oe.test']);
ok(wait_until(20, sub { $hub->messages_for_domain('via.oe.test') }),
    'the MX host of the route host got it, on the route port');
ok($pt->wait_log(qr/\Q$q6\E: to=<v\@via\.oe\.test>, relay=mxhub\.oe\.test\[127\.0\.0\.135\]:$hp, phase=direct, route=smtp:hub\.oe\.test:$hp, .*status=sent/, 5),
    'log: through the route');

done_testing;
