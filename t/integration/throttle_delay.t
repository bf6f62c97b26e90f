#!/usr/bin/perl
# throttle_delay.t - connection_delay (QK's "delay for continuing"): the
# pause before the next connection to a destination once one has ended,
# set per domain in etc/domains (main.cf says 0):
#   - 6 messages, messages_per_connection = 2, max_connections = 1,
#     connection_delay = 2s: 3 connections of 2 transactions, and no new
#     connection starts less than 2 s after the previous one ended
#   - a connection closed by Postern's idle timer (connection_idle_timeout
#     = 1s) counts as ended too: a message sent right after that waits
#     for the rest of the 2 s
#   - the waits are logged (qmgr holds the destination back: no delivery
#     slot is taken while it waits)
#   - smtpctl route shows connection_delay 2s for the domain, 0s for a
#     domain without an entry
# The check has the right direction and a generous tolerance: a gap must
# be at least 2 s minus SLACK (0.25 s: the peer records the close after
# its 221 and the connection when its forked process starts, both a
# little after Postern's own moments).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);
use Postern::Test;
use Postern::Util qw(wait_until);

use constant SLACK => 0.25;

my $pt = Postern::Test->new(connection_delay => '0', connection_idle_timeout => '1s',
    retry_delay => '1h', log_level => 'debug');
my $mx  = $pt->peer(name => 'slow', addr => '127.0.0.151');
my $mx2 = $pt->peer(name => 'slow2', addr => '127.0.0.152');
$pt->write_file('domains', <<'MAP');
# throttle_delay.t
slow.thr.test   mx=127.0.0.151 connection_delay=2s messages_per_connection=2 max_connections=1
slow2.thr.test  mx=127.0.0.152 connection_delay=2s messages_per_connection=5
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap etc/domains') or diag $out;
$pt->start;

sub throttles {
    my ($addr) = @_;
    my ($c, $o) = $pt->smtpctl('route', $addr, '--json');
    my $r = eval { decode_json($o) } // {};
    return $r->{throttles} // {};
}
is(throttles('u@slow.thr.test')->{connection_delay}, 2, 'route: connection_delay 2 s from etc/domains');
is(throttles('u@other.thr.test')->{connection_delay}, 0, 'route: 0 from main.cf');
($rc, $out) = $pt->smtpctl('route', 'u@slow.thr.test');
like($out, qr/connection_delay 2s/, 'route text: connection_delay 2s');

sub closed_conns {
    my ($peer) = @_;
    return grep { defined $_->{close} } $peer->connections;
}

# --- 6 messages, 2 per connection, 2 s between connections ---
($rc, $out) = $pt->smtpctl('pause', 'delivery');
my $n = 0;
for my $i (1 .. 6) { $n++ if $pt->send_mail(from => 's@src.test', to => ["u$i\@slow.thr.test"]) }
is($n, 6, '6 messages queued');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok($mx->wait_messages(6, 60), 'all 6 arrived');
ok(wait_until(15, sub { closed_conns($mx) == 3 }), 'over 3 connections, all closed');
my @c = $mx->connections;
is_deeply([ map { $_->{transactions} } @c ], [ 2, 2, 2 ], 'of 2 transactions each');
for my $i (1 .. $#c) {
    my $gap = $c[$i]{connect} - $c[ $i - 1 ]{close};
    cmp_ok($gap, '>=', 2 - SLACK,
        sprintf('connection %d started %.2f s after connection %d ended (connection_delay 2s)', $i + 1, $gap, $i));
}
ok($pt->log_lines(qr/qmgr\[\d+\]: debug: slow\.thr\.test: next connection in [\d.]+s \(connection_delay\)/),
    'qmgr held the destination back for connection_delay');

# --- an idle connection closed by the idle timer starts the delay too ---
my ($q1) = $pt->send_mail(from => 's@src.test', to => ['a@slow2.thr.test']);
ok($mx2->wait_messages(1, 20), 'a first message to the second domain');
ok(wait_until(10, sub { closed_conns($mx2) == 1 }), 'its connection closed after being idle');
my ($conn1) = $mx2->connections;
is($conn1->{closed_by}, 'client', 'by Postern (QUIT after connection_idle_timeout)');
my ($q2) = $pt->send_mail(from => 's@src.test', to => ['b@slow2.thr.test']);
ok($mx2->wait_messages(2, 20), 'the next message arrived');
my @c2 = $mx2->connections;
is(scalar @c2, 2, 'over a new connection');
my $gap = ($c2[1]{connect} // 0) - ($conn1->{close} // 0);
cmp_ok($gap, '>=', 2 - SLACK,
    sprintf('which started %.2f s after the idle one was closed', $gap));

done_testing;
