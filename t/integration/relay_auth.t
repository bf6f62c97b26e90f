#!/usr/bin/perl
# relay_auth.t - gateways with credentials and TLS (DESIGN 4.2, 5, 6),
# end to end, each gateway its own loopback peer; credentials in
# etc/secrets (mode 0600, compiled by smtpctl makemap):
#   - AUTH succeeds over STARTTLS and the gateway takes the message
#   - bad credentials: the gateway refuses the login, the message is
#     deferred (not failed) with a clear log line naming the gateway and
#     the secrets map
#   - a gateway whose TLS mode is encrypt but that offers no STARTTLS is
#     not given the message
#   - AUTH without TLS only for a gateway marked plainauth: with the mark
#     it logs in over plaintext; without it the password is never sent
#   - show relays says which gateways have credentials
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $p = $pt->free_port('127.0.0.181');
my %gw;
$gw{gauth} = $pt->peer(name => 'gauth', addr => '127.0.0.181', port => $p, starttls => 1,
    auth => { relayuser => 'secret' }, auth_requires_tls => 1, require_auth => 1);
$gw{gbad} = $pt->peer(name => 'gbad', addr => '127.0.0.182', port => $p, starttls => 1,
    auth => { relayuser => 'theotherone' }, auth_requires_tls => 1, require_auth => 1);
$gw{gnotls} = $pt->peer(name => 'gnotls', addr => '127.0.0.183', port => $p);
$gw{gplain} = $pt->peer(name => 'gplain', addr => '127.0.0.184', port => $p,
    auth => { u => 'p' }, require_auth => 1);
$gw{gnoplain} = $pt->peer(name => 'gnoplain', addr => '127.0.0.185', port => $p,
    auth => { u => 'p' }, require_auth => 1);
$pt->config(relay_gateways => [ "gauth=127.0.0.181:$p", "gbad=127.0.0.182:$p",
    "gnotls=127.0.0.183:$p/encrypt", "gplain=127.0.0.184:$p/plainauth", "gnoplain=127.0.0.185:$p" ]);
$pt->write_file('domains', <<'MAP');
ok.au.test       route=relay gateways=gauth
bad.au.test      route=relay gateways=gbad relay_attempts=3
notls.au.test    route=relay gateways=gnotls relay_attempts=3
plain.au.test    route=relay gateways=gplain
noplain.au.test  route=relay gateways=gnoplain relay_attempts=3
MAP
$pt->write_file('secrets', <<'MAP', 0600);
# gateway   user password
gauth       relayuser secret
gbad        relayuser wrongpass
gplain      u p
gnoplain    u p
MAP
for my $m (qw(domains secrets)) {
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
    is($rc, 0, "makemap $m") or diag $out;
}
is((stat($pt->etc . '/secrets.db'))[2] & 0777, 0600, 'secrets.db is mode 0600');
$pt->start;

# --- AUTH success over TLS ---
my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@ok.au.test']);
ok(wait_until(20, sub { $gw{gauth}->messages_for('a@ok.au.test') }), 'AUTH: the gateway took the message');
my ($t) = $gw{gauth}->messages_for('a@ok.au.test');
is($t->{auth}, 'relayuser', 'logged in as the user of the secrets map');
ok($t->{tls}, 'over TLS');
ok($pt->wait_log(qr/\Q$q1\E: to=<a\@ok\.au\.test>, .*phase=relay, gateway=gauth, .*status=sent/, 5), 'log: sent via gauth');

# --- bad credentials: deferred, clear log line ---
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@bad.au.test']);
ok($pt->wait_log(qr/\Q$q2\E: gateway gbad \(127\.0\.0\.182\S*\) refused the login: 535[^;]*; the message is deferred\. Check the entry for gbad in the secrets map/, 20),
    'bad credentials: a clear log line naming the gateway and the secrets map');
ok($pt->wait_log(qr/\Q$q2\E: to=<b\@bad\.au\.test>, .*phase=relay, gateway=gbad, .*status=deferred \(auth: 535/, 5),
    'the recipient is deferred with the auth error');
ok(!$gw{gbad}->messages_for('b@bad.au.test'), 'the gateway did not take it');
my @bt = $gw{gbad}->transactions;
is(scalar(@bt), 0, 'no MAIL was sent after the failed login');

# --- gateway with tls=encrypt that offers no STARTTLS ---
my $q3 = $pt->send_mail(from => 's@src.test', to => ['c@notls.au.test']);
ok($pt->wait_log(qr/\Q$q3\E: to=<c\@notls\.au\.test>, .*gateway=gnotls, .*status=deferred \(tls/, 20),
    'deferred with a tls error');
ok(wait_until(5, sub { scalar($gw{gnotls}->connections) >= 1 }), 'the gateway was contacted');
is(scalar($gw{gnotls}->transactions), 0, 'but never given the message (no MAIL)');

# --- plaintext AUTH only with plainauth ---
my $q4 = $pt->send_mail(from => 's@src.test', to => ['d@plain.au.test']);
ok(wait_until(20, sub { $gw{gplain}->messages_for('d@plain.au.test') }), 'plainauth: the gateway took it');
($t) = $gw{gplain}->messages_for('d@plain.au.test');
is($t->{auth}, 'u', 'logged in without TLS (plainauth)');
ok(!$t->{tls}, 'no TLS');
my $q5 = $pt->send_mail(from => 's@src.test', to => ['e@noplain.au.test']);
ok($pt->wait_log(qr/\Q$q5\E: gateway gnoplain \(.*\): AUTH not attempted: the server does not offer STARTTLS, .*mark gnoplain \/plainauth/, 20),
    'no plainauth and no TLS: AUTH is not attempted, and the log says why and what to change');
ok($pt->wait_log(qr/\Q$q5\E: to=<e\@noplain\.au\.test>, .*status=deferred \(auth/, 5), 'deferred');
is(scalar(grep { $_->{auth} } $gw{gnoplain}->connections), 0, 'the password was never sent');
is(scalar($gw{gnoplain}->transactions), 0, 'no transaction');

# --- show relays ---
my ($rc, $js) = $pt->smtpctl('show', 'relays', '--json');
my %g = map { $_->{name} => $_ } @{ (eval { decode_json($js) } // {})->{gateways} || [] };
ok($g{gauth}{auth} && !$g{gnotls}{auth}, 'show relays: credentials yes for gauth, no for gnotls');
is($g{gnotls}{tls}, 'encrypt', 'show relays: tls mode');
ok($g{gplain}{plainauth}, 'show relays: plainauth');
is($g{gbad}{state}, 'failing', 'gbad failing');
like($g{gbad}{last_error} // '', qr/auth: .*535/, 'gbad: last error is the refused login');

done_testing;
