#!/usr/bin/perl
# throttle_hung.t - hung destinations cannot take every delivery slot
# (issue 17.5, qmgr/slots.c). A destination with no recent success gets
# one connection at a time, and such destinations together hold at most
# max_deliveries less a reserve (10 - 2 here) kept for destinations that
# work. Hung hosts accept TCP and never greet (for 40 s; smtp_timeout is
# 60 s).
#   - 5 hung domains, 2 messages each: one connection each, and mail to
#     a new healthy domain is delivered at once (before: 5 x 2 filled the
#     10 slots and it waited for smtp_timeout)
#   - 9 hung domains: at most 8 deliveries to them, and mail to a domain
#     that worked a moment ago is delivered at once
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(max_deliveries => 10, max_connections => 2, smtp_timeout => '60s',
    messages_per_connection => 1);
my $port = $pt->direct_port;
my @hung = map { $pt->peer(name => "hung$_", addr => "127.0.1.$_", port => $port,
    delay => { greeting => 40 }) } 1 .. 9;
my $ok = $pt->peer(name => 'ok', addr => '127.0.1.20', port => $port);
my $map = join '', map { "hung$_.th.test   mx=127.0.1.$_\n" } 1 .. 9;
$map .= "ok.th.test   mx=127.0.1.20\nnew.th.test   mx=127.0.1.20\n";
$pt->write_file('domains', $map);
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

# ok.th.test works: proven
$pt->send_mail(from => 's@src.test', to => ['first@ok.th.test']);
ok($ok->wait_messages(1, 15), 'a first message to ok.th.test is delivered');

sub connects { my $a = shift; scalar $pt->log_lines(qr/connecting to \Q$a\E\[/) }

$pt->mark_log;
for my $n (1 .. 5) {
    $pt->send_mail(from => 's@src.test', to => ["m$_\@hung$n.th.test"]) for 1 .. 2;
}
ok(wait_until(10, sub { !grep { connects("127.0.1.$_") < 1 } 1 .. 5 }),
    'every hung domain got a connection');
sleep 1;
is(scalar(grep { connects("127.0.1.$_") > 1 } 1 .. 5), 0,
    'no hung domain got a second connection while it has not worked');
$pt->send_mail(from => 's@src.test', to => ['a@new.th.test']);
ok($ok->wait_messages(2, 8), 'mail to a new healthy domain is delivered at once');

for my $n (6 .. 9) {
    $pt->send_mail(from => 's@src.test', to => ["m$_\@hung$n.th.test"]) for 1 .. 2;
}
sleep 3;
my $busy = grep { connects("127.0.1.$_") >= 1 } 1 .. 9;
ok($busy <= 8, "at most 8 hung domains hold a delivery ($busy do)");
$pt->send_mail(from => 's@src.test', to => ['second@ok.th.test']);
ok($ok->wait_messages(3, 8), 'mail to a domain that works is delivered at once');

$pt->stop;
done_testing();
