#!/usr/bin/perl
# throttle_concurrency.t - max_connections per destination and
# max_deliveries in all are never exceeded, as the receiving peer sees it
# (it records when each connection opened and closed; max_concurrent is
# the most connections it had open at one instant). The peers answer the
# final dot after 0.2 s so that deliveries overlap for real:
#   - max_connections = 2 for one domain in etc/domains (main.cf says 10),
#     30 messages: the peer never has more than 2 connections open, and
#     does reach 2 (the limit is what holds it back, not a lack of mail)
#   - max_deliveries = 3, one domain delivered directly and one through a
#     relay gateway (route = relay), the MX and the gateway being the same
#     peer, 15 messages each: the peer never has more than 3 connections
#     open: deliver and relay are counted together
#     (and no more transactions at once either); connections kept idle for
#     reuse count too, so a server behind several destinations never sees
#     more than max_deliveries connections from Postern
#   - smtpctl route shows max_connections 2 for the domain and 10 for one
#     without an entry, and max_deliveries (all destinations) after a reload
# Counting connections at the peer: Postern sends QUIT and its result
# goes to qmgr at once, while the peer records the close only after it
# has answered 221 and closed; a new connection may be recorded in the
# millisecond between. An overlap shorter than QUIT_SLACK (50 ms) is that
# handshake, not a connection too many: a broken limit gives overlaps of
# whole transactions (each over 0.2 s here).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(max_connections => 10, max_deliveries => 10,
    messages_per_connection => 5, retry_delay => '1h');
my $two = $pt->peer(name => 'two', addr => '127.0.0.131', delay => { eod => 0.2 });
my $mix = $pt->peer(name => 'mix', addr => '127.0.0.132', delay => { eod => 0.2 });
$pt->config(relay_gateways => 'gw=127.0.0.132:' . $pt->direct_port);
$pt->write_file('domains', <<'MAP');
# throttle_concurrency.t
two.thr.test     mx=127.0.0.131 max_connections=2
direct.thr.test  mx=127.0.0.132
relay.thr.test   route=relay
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap etc/domains') or diag $out;
$pt->start;

use constant QUIT_SLACK => 0.05;

# The most intervals [start, end - slack] open at one instant.
sub max_open {
    my ($slack, @iv) = @_;
    my @ev;
    for (@iv) {
        my ($a, $b) = @$_;
        next unless defined $a && defined $b;
        $b -= $slack;
        $b = $a if $b < $a;
        push @ev, [ $a, 1 ], [ $b, -1 ];
    }
    @ev = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev;
    my ($cur, $max) = (0, 0);
    for (@ev) { $cur += $_->[1]; $max = $cur if $cur > $max }
    return $max;
}

sub conns_open { my ($p) = @_; return max_open(QUIT_SLACK, map { [ $_->{connect}, $_->{close} ] } $p->connections) }
sub txns_open  { my ($p) = @_; return max_open(QUIT_SLACK, map { [ $_->{t}, $_->{end} ] } $p->transactions) }

sub timeline {
    my ($p) = @_;
    return join "\n", map { sprintf 'conn %d: %.4f - %.4f, %d transactions, closed by %s', $_->{conn},
        $_->{connect}, $_->{close} // 0, $_->{transactions} // 0, $_->{closed_by} // '?' } $p->connections;
}

sub throttles {
    my ($addr) = @_;
    my ($c, $o) = $pt->smtpctl('route', $addr, '--json');
    my $r = eval { decode_json($o) } // {};
    return $r->{throttles} // {};
}

is(throttles('u@two.thr.test')->{max_connections}, 2, 'route: max_connections 2 from etc/domains');
is(throttles('u@other.thr.test')->{max_connections}, 10, 'route: 10 from main.cf for a domain without an entry');

sub queue_mail {
    my (@to) = @_;
    my ($rc2) = $pt->smtpctl('pause', 'delivery');
    my $n = 0;
    for my $to (@to) { $n++ if $pt->send_mail(from => 's@src.test', to => [$to]) }
    $pt->smtpctl('resume', 'delivery');
    return $n;
}

sub all_closed {
    my ($peer) = @_;
    return wait_until(20, sub { my @c = $peer->connections; @c && !grep { !defined $_->{close} } @c });
}

# --- max_connections 2, 30 messages ---
is(queue_mail(map { "u$_\@two.thr.test" } 1 .. 30), 30, '30 messages queued');
ok($two->wait_messages(30, 90), 'all 30 arrived');
ok(all_closed($two), 'every connection was closed');
my $max = conns_open($two);
cmp_ok($max, '<=', 2, "never more than 2 connections at once ($max; strictly "
    . $two->max_concurrent . ')') or diag timeline($two);
is($max, 2, 'and 2 were used');
my @c = $two->connections;
cmp_ok(scalar(@c), '>=', 6, scalar(@c) . ' connections of at most 5 messages');
ok(!grep({ $_->{transactions} > 5 } @c), 'none carried more than messages_per_connection');

# --- max_deliveries 3 across deliver and relay ---
$pt->config(max_deliveries => 3);
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with max_deliveries = 3') or diag $out;
sleep 1;
is(throttles('u@direct.thr.test')->{max_deliveries}, 3, 'route: max_deliveries 3 in force');
($rc, $out) = $pt->smtpctl('route', 'u@relay.thr.test');
like($out, qr/\(all destinations\) max_deliveries 3, connection_idle_timeout 5s/, 'route text shows the global throttles');
$pt->mark_log;
is(queue_mail(map { ("d$_\@direct.thr.test", "r$_\@relay.thr.test") } 1 .. 15), 30,
    '15 messages to a direct domain and 15 to a relayed one, the same peer behind both');
ok($mix->wait_messages(30, 90), 'all 30 arrived');
ok(all_closed($mix), 'every connection was closed');
my @rel = $pt->log_lines(qr/: to=<r\d+\@relay\.thr\.test>.*phase=relay, gateway=gw.*status=sent/);
my @dir = $pt->log_lines(qr/: to=<d\d+\@direct\.thr\.test>.*status=sent/);
is(scalar(@rel), 15, 'the relayed domain went through the gateway (relay)');
is(scalar(@dir), 15, 'the other one directly (deliver)');
$max = conns_open($mix);
cmp_ok($max, '<=', 3, "never more than 3 connections at once in all ($max; strictly "
    . $mix->max_concurrent . ')') or diag timeline($mix);
my $tx = txns_open($mix);
cmp_ok($tx, '<=', 3, "never more than 3 transactions at once ($tx)");
cmp_ok($tx, '>=', 2, 'with deliveries side by side');

done_testing;
