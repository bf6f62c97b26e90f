#!/usr/bin/perl
# route_reload.t - qmgr re-reads the routing configuration on reload:
#   - a changed etc/domains (smtpctl makemap, then smtpctl reload) applies
#     to the next decision: smtpctl route says so and the mail follows
#   - a changed relay_gateways in main.cf, the same
#   - a domains map removed: main.cf alone applies
#   - makemap refuses a secrets file that others may read
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Route qw(route);
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $gp = $pt->free_port('127.0.0.195');
my $mx = $pt->peer(name => 'mx', addr => '127.0.0.191');
my $g1 = $pt->peer(name => 'g1', addr => '127.0.0.195', port => $gp);
my $g2 = $pt->peer(name => 'g2', addr => '127.0.0.196', port => $gp);
$pt->config(relay_gateways => "g1=127.0.0.195:$gp");
$pt->write_file('domains', "rl.test mx=127.0.0.191\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

sub reload {
    $pt->mark_log;
    my ($c, $o) = $pt->smtpctl('reload');
    is($c, 0, 'smtpctl reload') or diag $o;
    ok($pt->wait_log(qr/qmgr\[\d+\]: info: configuration reloaded/, 10), 'qmgr reloaded');
}

my $r = route($pt, 'a@rl.test');
is($r->{rule}, 'rl.test', 'before: the entry matched');
is($r->{first}, 'direct', 'before: direct');
$pt->send_mail(from => 's@src.test', to => ['one@rl.test']);
ok(wait_until(20, sub { $mx->messages_for('one@rl.test') }), 'before: delivered direct');

# --- a new domains map ---
$pt->write_file('domains', "rl.test route=relay\n");
($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap (changed)') or diag $out;
reload();
$r = route($pt, 'a@rl.test');
is($r->{relay_only}, 'route = relay', 'after reload: route = relay');
$pt->send_mail(from => 's@src.test', to => ['two@rl.test']);
ok(wait_until(20, sub { $g1->messages_for('two@rl.test') }), 'after reload: through the gateway');
ok(!$mx->messages_for('two@rl.test'), 'not direct');

# --- new gateways in main.cf ---
$pt->config(relay_gateways => "g1=127.0.0.195:$gp/low g2=127.0.0.196:$gp/high");
reload();
$r = route($pt, 'a@rl.test');
is($r->{first_gateway}, 'g2', 'after reload: the new high-priority gateway first');
$pt->send_mail(from => 's@src.test', to => ['three@rl.test']);
ok(wait_until(20, sub { $g2->messages_for('three@rl.test') }), 'the new gateway got it');

# --- the domains map removed ---
unlink $pt->etc . '/domains.db';
reload();
$r = route($pt, 'a@rl.test');
is($r->{rule}, 'main.cf', 'no domains map: main.cf applies');

# --- secrets readable by others are refused ---
my $path = $pt->write_file('secrets', "g1 user pass\n", 0644);
($rc, $out) = $pt->smtpctl('makemap', $path);
isnt($rc, 0, 'makemap refuses a secrets file others may read');
like($out, qr/secrets|mode|readable|permission/i, 'and says why') or diag $out;

done_testing;
