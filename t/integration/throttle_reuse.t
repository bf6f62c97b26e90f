#!/usr/bin/perl
# throttle_reuse.t - connection reuse driven by qmgr (DESIGN 4.6, QK's
# "maximum continuous connections"), each case with its own etc/domains
# entry over main.cf (messages_per_connection = 1 there: no reuse):
#   - 20 messages to one domain with messages_per_connection = 5 arrive
#     over 4 connections of 5 transactions each, every one ended with QUIT.
#     The domain has max_connections = 1: each delivery starts when the
#     previous one has finished, finds the connection it left idle and
#     goes over it, so the split is exactly 5+5+5+5. (With more
#     connections allowed, deliveries run side by side and how the 20 are
#     shared between the connections depends on timing; a batch can end
#     with fewer than 5 when the queue runs dry.)
#   - a domain without an entry gets main.cf's messages_per_connection = 1:
#     one connection per message
#   - max_deliveries = 1 and two domains with 5 messages each: the slot
#     stays with the destination whose connection is idle until its batch
#     is done, so all transactions of one domain come before the other's
#     (no interleaving, which plain round robin would give)
#   - the MX closes an idle connection (421 after 1 s idle): the next
#     message goes over a new connection at its first try, no deferral
#   - the MX answers RSET on the reused connection with 421: the same
#   - smtpctl route shows the values in force for each domain
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(sleep);
use Postern::Test;
use Postern::Route qw(route);
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(messages_per_connection => 1, max_connections => 10,
    connection_idle_timeout => '10s', retry_delay => '1h', max_deliveries => 10);
my $batch  = $pt->peer(name => 'batch',  addr => '127.0.0.121');
my $single = $pt->peer(name => 'single', addr => '127.0.0.122');
my $one    = $pt->peer(name => 'one',    addr => '127.0.0.123');
my $idle   = $pt->peer(name => 'idle',   addr => '127.0.0.124', idle_timeout => 1);
my $rset   = $pt->peer(name => 'rset',   addr => '127.0.0.125',
    replies => { rset => '421 4.4.2 rset closing connection' });
$pt->write_file('domains', <<'MAP');
# throttle_reuse.t
batch.thr.test   mx=127.0.0.121 messages_per_connection=5 max_connections=1
single.thr.test  mx=127.0.0.122
a.one.thr.test   mx=127.0.0.123 messages_per_connection=5
b.one.thr.test   mx=127.0.0.123 messages_per_connection=5
idle.thr.test    mx=127.0.0.124 messages_per_connection=5
rset.thr.test    mx=127.0.0.125 messages_per_connection=5
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap etc/domains') or diag $out;
$pt->start;

sub closed_all {
    my ($peer) = @_;
    return wait_until(15, sub { my @c = $peer->connections; @c && !grep { !defined $_->{close} } @c });
}

# --- the values in force ---
my $t = route($pt, 'u@batch.thr.test', '--json')->{throttles} // {};
is($t->{messages_per_connection}, 5, 'route: messages_per_connection 5 from etc/domains');
is($t->{max_connections}, 1, 'route: max_connections 1 from etc/domains');
$t = route($pt, 'u@single.thr.test', '--json')->{throttles} // {};
is($t->{messages_per_connection}, 1, 'route: messages_per_connection 1 from main.cf');
is($t->{max_connections}, 10, 'route: max_connections 10 from main.cf');
($rc, $out) = $pt->smtpctl('route', 'u@batch.thr.test');
like($out, qr/max_connections 1, messages_per_connection 5/, 'route text shows them too');

# --- 20 messages, 5 per connection ---
($rc, $out) = $pt->smtpctl('pause', 'delivery');
is($rc, 0, 'delivery paused while the messages are queued');
my $sent = 0;
for my $i (1 .. 20) { $sent++ if $pt->send_mail(from => 's@src.test', to => ["u$i\@batch.thr.test"]) }
for my $i (1 .. 3) { $sent++ if $pt->send_mail(from => 's@src.test', to => ["u$i\@single.thr.test"]) }
is($sent, 23, '23 messages accepted');
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok($batch->wait_messages(20, 60), 'all 20 arrived');
ok(closed_all($batch), 'every connection was closed');
my @c = $batch->connections;
is(scalar @c, 4, 'over 4 connections');
is_deeply([ map { $_->{transactions} } @c ], [ 5, 5, 5, 5 ], 'of 5 transactions each');
is_deeply([ map { $_->{closed_by} } @c ], [ ('client') x 4 ], 'each ended by Postern (QUIT)');
is($batch->max_concurrent, 1, 'one at a time (max_connections 1)');
ok($single->wait_messages(3, 30), 'the 3 messages to the domain without an entry arrived');
ok(closed_all($single), 'their connections were closed');
is_deeply([ map { $_->{transactions} } $single->connections ], [ 1, 1, 1 ],
    "main.cf's messages_per_connection 1: one connection per message");

# --- max_deliveries 1: a destination keeps the slot for its batch ---
$pt->config(max_deliveries => 1);
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with max_deliveries = 1') or diag $out;
sleep 0.5;
($rc, $out) = $pt->smtpctl('pause', 'delivery');
$sent = 0;
for my $i (1 .. 5) {
    $sent++ if $pt->send_mail(from => 's@src.test', to => ["u$i\@a.one.thr.test"]);
    $sent++ if $pt->send_mail(from => 's@src.test', to => ["u$i\@b.one.thr.test"]);
}
is($sent, 10, '5 messages to each of two domains, queued alternately');
($rc, $out) = $pt->smtpctl('resume', 'delivery');
ok($one->wait_messages(10, 60), 'all 10 arrived');
ok(closed_all($one), 'every connection was closed');
my @tx = sort { $a->{t} <=> $b->{t} } $one->messages;
my @doms = map { $_->{rcpts}[0]{addr} =~ /\@([ab])\./ ? $1 : '?' } @tx;
my $switches = grep { $doms[$_] ne $doms[ $_ - 1 ] } 1 .. $#doms;
is($switches, 1, "one domain's batch, then the other's: @doms");
is_deeply([ map { $_->{transactions} } $one->connections ], [ 5, 5 ], 'two connections of 5');
is($one->max_concurrent, 1, 'never two connections at once (max_deliveries 1)');
$pt->config(max_deliveries => 10);
($rc, $out) = $pt->smtpctl('reload');

# --- the MX closes the idle connection ---
$pt->mark_log;
my ($q1) = $pt->send_mail(from => 's@src.test', to => ['i1@idle.thr.test']);
ok($idle->wait_messages(1, 20), 'first message to the MX that closes idle connections');
ok(wait_until(15, sub { grep { ($_->{closed_by} // '') eq 'idle' } $idle->connections }),
    'the MX closed the idle connection');
my ($q2) = $pt->send_mail(from => 's@src.test', to => ['i2@idle.thr.test']);
ok($idle->wait_messages(2, 20), 'the second message arrived');
ok($pt->wait_log(qr/\Q$q2\E: to=<i2\@idle\.thr\.test>, .*tries=1, .*status=sent/, 10),
    'sent at its first try');
ok(!$pt->log_lines(qr/\Q$q2\E: .*status=deferred/), 'no deferral');
is(scalar($idle->connections), 2, 'over a new connection');

# --- RSET answered with 421 on the reused connection ---
$pt->mark_log;
($q1) = $pt->send_mail(from => 's@src.test', to => ['r1@rset.thr.test']);
ok($rset->wait_messages(1, 20), 'first message to the MX that refuses RSET');
($q2) = $pt->send_mail(from => 's@src.test', to => ['r2@rset.thr.test']);
ok($rset->wait_messages(2, 20), 'the second message arrived');
ok($pt->wait_log(qr/\Q$q2\E: to=<r2\@rset\.thr\.test>, .*tries=1, .*status=sent/, 10),
    'sent at its first try: the dead reused connection was not a failed attempt');
ok(!$pt->log_lines(qr/\Q$q2\E: .*status=deferred/), 'no deferral');
is(scalar($rset->connections), 2, 'two connections: the reused one, then a new one');
ok($pt->log_lines(qr/\Q$q2\E: reused connection to \S+ was closed before the transaction/),
    'the delivery engine logs that it went on with a new connection');

done_testing;
