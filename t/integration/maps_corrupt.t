#!/usr/bin/perl
# maps_corrupt.t - a compiled map that does not read back is refused
# everywhere, and domains values are checked when the map is compiled
# (issue 17.2 and 17.3):
#   - makemap refuses mx= values dnsd would refuse (port 0, port 99999,
#     a name no host has, an empty list), naming file:line, and leaves
#     the .db in use alone; check refuses the same source
#   - domains.db overwritten with random bytes: `smtpctl check` fails and
#     says to rebuild it, `smtpctl reload` is refused, and mail still
#     follows the rules in force (the mx= route), not a real MX lookup
#   - master refuses to start with it, naming the file; after makemap it
#     starts
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new();
my $port = $pt->direct_port;
my $peer = $pt->peer(name => 'routed', addr => '127.0.0.197', port => $port);
my $good = "kept.mc.test   mx=127.0.0.197\n";
$pt->write_file('domains', $good);
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
my $db = $pt->etc . '/domains.db';
my $db_before = do { local $/; open(my $f, '<', $db) or die; <$f> };

# --- values dnsd would refuse are refused at makemap and check ---
for my $case (['mx=127.0.0.1:0', 'port 0'], ['mx=127.0.0.1:99999', 'port over 65535'],
              ['mx=not_a@host!!', 'not a host name'], ['mx=,,,', 'an empty list']) {
    my ($v, $what) = @$case;
    $pt->write_file('domains', "# comment\nother.mc.test  $v\n");
    ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
    isnt($rc, 0, "makemap refuses $v ($what)");
    like($out, qr{/domains:2: other\.mc\.test: mx=}, '  naming file:line and the key') or diag $out;
    ($rc, $out) = $pt->smtpctl('check');
    isnt($rc, 0, "  check refuses it too");
}
is(do { local $/; open(my $f, '<', $db) or die; <$f> }, $db_before,
    'the compiled map in use was left alone by the refused makemaps');
$pt->write_file('domains', $good);
utime(time - 100, time - 100, $pt->etc . '/domains'); # the .db is newer than its source
($rc, $out) = $pt->smtpctl('check');
is($rc, 0, 'check passes with the good source') or diag $out;

$pt->start;
my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@kept.mc.test']);
ok($peer->wait_messages(1, 20), 'the mx= rule routes to the peer');

# --- the compiled map overwritten with random bytes ---
open(my $f, '>', $db) or die;
print $f pack('C*', map { int(rand(256)) } 1 .. 16384);
close $f;
($rc, $out) = $pt->smtpctl('check');
isnt($rc, 0, 'check fails on a corrupt domains.db');
like($out, qr/domains: the compiled map cannot be read: .*rebuild it with smtpctl makemap/,
    'and says which map and what to do') or diag $out;
unlike($out, qr/domains\.db: up to date/, 'it does not call it up to date');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
isnt($rc, 0, 'reload is refused');
like($out, qr/reload refused.*domains\.db \(domains_map\) cannot be read/, 'naming the map') or diag $out;
my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@kept.mc.test']);
ok($peer->wait_messages(2, 20), 'mail still follows the rules in force (the mx= route)');
unlike($pt->log_text, qr/going on without it|MX lookup for kept\.mc\.test/,
    'no process dropped the map or looked the domain up in DNS');

# --- master will not start with it ---
$pt->stop;
ok(!$pt->start(nodie => 1), 'master refuses to start with a corrupt domains.db');
like($pt->start_error // '', qr/domains\.db \(domains_map\) cannot be read/, 'and names it');

($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap rebuilds it');
ok($pt->start(nodie => 1), 'then master starts');
my $q3 = $pt->send_mail(from => 's@src.test', to => ['c@kept.mc.test']);
ok($peer->wait_messages(3, 20), 'and routes by the rules again');

$pt->stop;
done_testing();
