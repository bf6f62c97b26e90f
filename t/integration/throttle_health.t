#!/usr/bin/perl
# throttle_health.t - a dead destination does not hold up the others
# (DESIGN 4.6: delay after failure, destination health; max_deliveries 4):
#   - dead.thr.test's MX accepts connections and never says a word (the
#     worst kind: each attempt holds a delivery slot until smtp_timeout,
#     3 s here); ok.thr.test's MX works
#   - 10 messages to the dead domain are sent first, and once its
#     deliveries have started 10 to the healthy one: the healthy one gets
#     all 10 before the first connection to the dead MX has even given up
#     - the dead destination, new and untried (not proven: slots.c), has
#     one delivery in flight at a time and so never takes all 4 slots
#   - after that first failure (the two deliveries in flight failed
#     together: one failure) the dead destination gets one delivery at a
#     time, and the messages that failed are not tried again before their
#     retry_delay (3 s in its etc/domains entry; main.cf says 1h)
#   - while it is being tried, 5 more messages to the healthy domain
#     arrive before that delivery gives up
#   - after destination_failure_limit (2) failures in a row it is marked
#     down: logged once, its other messages deferred without a connection
#     ("not tried: down"), smtpctl show hosts says so with when it comes
#     back, and it is not tried before then
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);
use Postern::Test;
use Postern::Util qw(wait_until read_jsonl);

use constant SLACK => 0.25;

my $pt = Postern::Test->new(max_deliveries => 4, max_connections => 10, retry_delay => '1h',
    retry_delay_max => '0', smtp_timeout => '3s', destination_failure_limit => 2);
my $ok = $pt->peer(name => 'ok', addr => '127.0.0.162');
my $dead = SilentMX->new(addr => '127.0.0.161', port => $pt->direct_port, dir => $pt->dir);
$pt->write_file('domains', <<'MAP');
# throttle_health.t
dead.thr.test  mx=127.0.0.161 retry_delay=3s
ok.thr.test    mx=127.0.0.162
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap etc/domains') or diag $out;
$pt->start;

my ($c, $o) = $pt->smtpctl('route', 'u@dead.thr.test', '--json');
is((eval { decode_json($o) } // {})->{throttles}{retry_delay}, 3, 'route: retry_delay 3 s for the dead domain');

sub hosts {
    my ($rc2, $out2) = $pt->smtpctl('show', 'hosts', '--json');
    my $j = eval { decode_json($out2) } // {};
    return { map { $_->{destination} => $_ } @{ $j->{hosts} || [] } };
}

# --- the first wave ---
$pt->mark_log;
my $n = 0;
for my $i (1 .. 10) { $n++ if $pt->send_mail(from => 's@src.test', to => ["d$i\@dead.thr.test"]) }
ok(wait_until(10, sub { $dead->connections >= 1 }), 'the dead MX is being tried');
sleep 0.5;    # every delivery qmgr is willing to start for it has started
for my $i (1 .. 10) { $n++ if $pt->send_mail(from => 's@src.test', to => ["o$i\@ok.thr.test"]) }
is($n, 20, '10 messages to the dead domain, then 10 to the healthy one');
ok($ok->wait_messages(10, 30), 'the healthy domain got its 10');
ok(wait_until(15, sub { grep { defined $_->{close} } $dead->connections }),
    'a first connection to the dead MX gave up');
my $failed_at = (sort { $a <=> $b } grep { defined } map { $_->{close} } $dead->connections)[0];
my @first = grep { $_->{connect} < $failed_at } $dead->connections;
my $last_ok = 0;
for ($ok->messages) { $last_ok = $_->{end} if $_->{end} > $last_ok }
cmp_ok($last_ok, '<', $failed_at,
    sprintf('all 10 arrived %.2f s before the first dead connection gave up', $failed_at - $last_ok));
cmp_ok(scalar(@first), '<=', 2, scalar(@first) . ' connection(s) to the dead MX before then: '
    . 'at most 2 of the 4 slots');

# --- after the failure: one delivery at a time; the failed messages wait ---
ok(wait_until(10, sub { $dead->connections > @first }), 'the dead destination gets another delivery');
my ($probe) = grep { $_->{n} > @first } $dead->connections;
my $h = hosts()->{'dead.thr.test'};
is($h->{consecutive_failures}, 1, 'show hosts: one failure so far (the first deliveries failed together)');
is($h->{state}, 'failing', 'show hosts: failing');
is($h->{deliveries_allowed}, 1, 'show hosts: one delivery at a time');
ok(!$h->{down_until}, 'not down yet (destination_failure_limit 2)');

# healthy mail flows while the dead one is retried
$n = 0;
for my $i (11 .. 15) { $n++ if $pt->send_mail(from => 's@src.test', to => ["o$i\@ok.thr.test"]) }
is($n, 5, '5 more to the healthy domain meanwhile');
ok($ok->wait_messages(15, 20), 'they arrived');
ok(wait_until(10, sub { my ($p) = grep { $_->{n} == $probe->{n} } $dead->connections; defined $p->{close} }),
    'the delivery to the dead one gave up');
($probe) = grep { $_->{n} == $probe->{n} } $dead->connections;
$last_ok = 0;
for ($ok->messages) { $last_ok = $_->{end} if $_->{end} > $last_ok }
cmp_ok($last_ok, '<', $probe->{close}, 'the healthy messages arrived before it gave up');
my @overlap = grep { $_->{n} != $probe->{n} && $_->{connect} < $probe->{close}
    && (!defined $_->{close} || $_->{close} > $probe->{connect}) && $_->{connect} > $failed_at } $dead->connections;
is(scalar @overlap, 0, 'no other connection to the dead MX meanwhile (one at a time)');

# --- down after 2 failures in a row ---
ok($pt->wait_log(qr/destination dead\.thr\.test is down for \d+s after 2 consecutive failures/, 10),
    'marked down after 2 failures in a row');
$h = hosts()->{'dead.thr.test'};
is($h->{state}, 'down', 'show hosts: down');
cmp_ok($h->{down_until} // 0, '>', time, 'until a time still to come');
is($h->{consecutive_failures}, 2, 'after 2 failures');
($rc, $out) = $pt->smtpctl('show', 'hosts');
like($out, qr/^dead\.thr\.test\s.*\bdown\b/m, 'show hosts text says down');
ok($pt->wait_log(qr/: to=<d\d+\@dead\.thr\.test>.*status=deferred \(network: destination dead\.thr\.test not tried: down after 2 failures/, 10),
    'its other messages are deferred without a connection');
my $down_until = $h->{down_until};
ok(wait_until(15, sub { grep { $_->{connect} > $probe->{close} } $dead->connections }),
    'it is tried again once the down period is over');
my ($next) = grep { $_->{connect} > $probe->{close} } $dead->connections;
cmp_ok($next->{connect}, '>=', $down_until - SLACK, 'not before');
my @down = $pt->log_lines(qr/destination dead\.thr\.test is down for \d+s after 2 consecutive/);
is(scalar @down, 1, 'the down state was logged once');
my @fail1 = $pt->log_lines(qr/destination dead\.thr\.test failed \(1 of 2 consecutive failures/);
is(scalar @fail1, 1, 'and the first failure once, though two deliveries failed with it');

# --- the failed messages were not tried again before their retry_delay ---
my %seen;
for my $l ($pt->log_lines(qr/: to=<d[12]\@dead\.thr\.test>/)) {
    my ($ts, $rcpt) = $l =~ /T(\d\d:\d\d:[\d.]+) .*to=<(d[12])\@/ or next;
    my ($hh, $mm, $ss) = split /:/, $ts;
    push @{ $seen{$rcpt} }, $hh * 3600 + $mm * 60 + $ss;
}
my @retried = grep { @{ $seen{$_} } >= 2 } sort keys %seen;
ok(@retried >= 1, 'a message that failed was tried again (' . join(',', @retried) . ')');
for my $r (@retried) {
    my @t = @{ $seen{$r} };
    cmp_ok($t[1] - $t[0], '>=', 3 - SLACK, sprintf('%s: the next try came %.2f s later (retry_delay 3s)', $r, $t[1] - $t[0]));
}
cmp_ok($dead->max_concurrent, '<=', 1, 'never more than 1 connection at a time to the dead MX (it never worked)');

$dead->stop;
done_testing;

# A server that accepts connections and never sends anything; records
# each connection's open and close (EOF from the client) as JSON lines.
package SilentMX;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);
use JSON::PP;

sub new {
    my ($class, %o) = @_;
    my $self = bless { %o, file => "$o{dir}/silent-$o{addr}.jsonl", owner => $$ }, $class;
    open my $fh, '>', $self->{file} or die "$self->{file}: $!";
    close $fh;
    my $ls = IO::Socket::INET->new(LocalAddr => $o{addr}, LocalPort => $o{port}, Proto => 'tcp',
        Listen => 64, ReuseAddr => 1) or die "listen $o{addr}:$o{port}: $@";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        alarm 120;
        $self->_serve($ls);
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    return $self;
}

sub _record {
    my ($self, $r) = @_;
    open my $fh, '>>', $self->{file} or return;
    print $fh JSON::PP->new->canonical->encode($r), "\n";
    close $fh;
}

sub _serve {
    my ($self, $ls) = @_;
    my $sel = IO::Select->new($ls);
    my (%n, $count);
    my $parent = getppid();
    while (getppid() == $parent) {
        for my $s ($sel->can_read(0.2)) {
            if ($s == $ls) {
                my $c = $ls->accept or next;
                $n{ fileno $c } = ++$count;
                $sel->add($c);
                $self->_record({ ev => 'connect', n => $count, t => time });
                next;
            }
            my $got = sysread($s, my $buf, 4096);
            next if $got;
            $self->_record({ ev => 'close', n => delete $n{ fileno $s }, t => time });
            $sel->remove($s);
            close $s;
        }
    }
}

sub connections {
    my ($self) = @_;
    my %c;
    for my $r (Postern::Util::read_jsonl($self->{file})) {
        if ($r->{ev} eq 'connect') { $c{ $r->{n} } = { n => $r->{n}, connect => $r->{t}, close => undef } }
        elsif ($c{ $r->{n} })      { $c{ $r->{n} }{close} = $r->{t} }
    }
    return map { $c{$_} } sort { $a <=> $b } keys %c;
}

sub max_concurrent {
    my ($self) = @_;
    my @ev;
    for ($self->connections) {
        push @ev, [ $_->{connect}, 1 ];
        push @ev, [ $_->{close}, -1 ] if defined $_->{close};
    }
    @ev = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev;
    my ($cur, $max) = (0, 0);
    for (@ev) { $cur += $_->[1]; $max = $cur if $cur > $max }
    return $max;
}

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    for (1 .. 50) { last if waitpid($pid, WNOHANG) != 0; Time::HiRes::sleep(0.05) }
    if (kill 0, $pid) { kill 'KILL', $pid; waitpid($pid, 0) }
}

sub DESTROY { local ($@, $?, $!); $_[0]->stop }
