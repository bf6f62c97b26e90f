#!/usr/bin/perl
# Direct delivery to MX hosts, end to end: smtpd -> qmgr -> deliver -> the
# "remote MX" peers on their own loopback addresses, found through a real
# nsd. Checked from the outside: what each peer saw (transactions,
# recipients, TLS) and what the log says.
#   - a message to two domains with three recipients each: one transaction
#     per domain carrying its recipients
#   - the first MX refuses the connection: the second takes the message,
#     and deliver logs the failed host with its step
#   - STARTTLS offered by the MX is used (tls = may, the default)
#   - equal-preference MX hosts both get used over several messages
#   - an IPv6-only MX (::1)
#   - a null-MX domain fails permanently (dsn 5.1.10), no connection
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::IP;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(sleep time);
use Postern::Test;
use Postern::Peer;
use Postern::DNS;

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $zone = <<'ZONE';
$ORIGIN dlv.test.
$TTL 300
@         IN SOA ns admin 1 3600 600 86400 60
@         IN NS ns
ns        IN A 127.0.0.1
alpha     IN MX 10 mxa
mxa       IN A 127.0.0.41
beta      IN MX 10 mxb
mxb       IN A 127.0.0.42
failover  IN MX 10 dead
failover  IN MX 20 live
dead      IN A 127.0.0.43
live      IN A 127.0.0.44
tlsok     IN MX 10 mxt
mxt       IN A 127.0.0.47
equal     IN MX 10 eq1
equal     IN MX 10 eq2
eq1       IN A 127.0.0.48
eq2       IN A 127.0.0.49
v6        IN MX 10 mx6
mx6       IN AAAA ::1
nullmx    IN MX 0 .
ZONE

my $ns = Postern::DNS::Nsd->new(zones => { 'dlv.test' => $zone });
$ns->start;

# One message per connection, so that the shuffle of equal preferences
# shows (a reused connection would carry every message to one host).
my $pt = Postern::Test->new(dns_servers => $ns->addr, messages_per_connection => 1);
my $port = $pt->direct_port;
my %peer;
for my $p ([mxa => '127.0.0.41'], [mxb => '127.0.0.42'], [live => '127.0.0.44'],
    [eq1 => '127.0.0.48'], [eq2 => '127.0.0.49'])
{
    $peer{ $p->[0] } = $pt->peer(name => $p->[0], addr => $p->[1], port => $port);
}
$peer{mxt} = $pt->peer(name => 'mxt', addr => '127.0.0.47', port => $port, starttls => 1);

# A minimal SMTP sink on [::1] (Postern::Peer listens on IPv4 only): one
# connection at a time, each accepted message's recipients appended to a file.
my $v6file = $pt->dir . '/v6-sink.txt';
my $v6 = IO::Socket::IP->new(LocalHost => '::1', LocalPort => $port, Listen => 5, ReuseAddr => 1);
my $v6pid;
if ($v6) {
    $v6pid = fork // die "fork: $!";
    if ($v6pid == 0) {
        my $end = time + 120;
        local $SIG{ALRM} = sub { POSIX::_exit(0) };
        alarm 120;
        while (time < $end and my $c = $v6->accept) {
            $c->autoflush(1);
            my @rcpts;
            print $c "220 v6 sink ESMTP\r\n";
            while (my $l = <$c>) {
                if ($l =~ /^EHLO/i)          { print $c "250-v6\r\n250 8BITMIME\r\n" }
                elsif ($l =~ /^HELO/i)       { print $c "250 v6\r\n" }
                elsif ($l =~ /^MAIL/i)       { @rcpts = (); print $c "250 ok\r\n" }
                elsif ($l =~ /^RCPT TO:<([^>]*)>/i) { push @rcpts, $1; print $c "250 ok\r\n" }
                elsif ($l =~ /^DATA/i) {
                    print $c "354 go\r\n";
                    while (my $d = <$c>) { last if $d =~ /^\.\r?\n$/ }
                    open my $fh, '>>', $v6file or die;
                    print $fh join(' ', @rcpts), "\n";
                    close $fh;
                    print $c "250 2.0.0 ok v6\r\n";
                }
                elsif ($l =~ /^QUIT/i) { print $c "221 bye\r\n"; last }
                else                    { print $c "250 ok\r\n" }
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $v6;
}
END { local $?; if ($v6pid) { kill "KILL", $v6pid; waitpid($v6pid, 0) } }

$pt->start;

sub rcpts_of { return join ' ', sort map { $_->{addr} } @{ $_[0]{rcpts} } }

# --- two domains, three recipients each: one transaction per domain
my @to = map { ("$_\@alpha.dlv.test", "$_\@beta.dlv.test") } qw(r1 r2 r3);
my ($qid) = $pt->send_mail(from => 'sender@origin.test', to => \@to);
ok($qid, "message to two domains accepted ($qid)");
ok($peer{mxa}->wait_messages(1, 20), 'alpha MX got the message');
ok($peer{mxb}->wait_messages(1, 20), 'beta MX got the message');
ok($pt->wait_log(qr/\Q$qid\E: removed/, 20), 'the message is removed once delivered');
my @ta = $peer{mxa}->transactions;
my @tb = $peer{mxb}->transactions;
is(scalar @ta, 1, 'alpha: exactly one transaction');
is(scalar @tb, 1, 'beta: exactly one transaction');
is(rcpts_of($ta[0]), 'r1@alpha.dlv.test r2@alpha.dlv.test r3@alpha.dlv.test',
    'alpha transaction carries the three alpha recipients');
is(rcpts_of($tb[0]), 'r1@beta.dlv.test r2@beta.dlv.test r3@beta.dlv.test',
    'beta transaction carries the three beta recipients');
is(scalar(() = $pt->log_text =~ /\Q$qid\E: to=<[^>]+>, relay=\S+, .*status=sent/g), 6,
    'six "status=sent" lines, one per recipient');

# --- the first MX refuses the connection, the second takes the message
$pt->mark_log;
($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['x@failover.dlv.test']);
ok($peer{live}->wait_messages(1, 20), 'the second MX got the message');
ok($pt->wait_log(qr/\Q$qid\E: to=<x\@failover.dlv.test>, relay=live\.dlv\.test\[127\.0\.0\.44\]:$port, .*status=sent/, 10),
    'logged as sent through the second MX');
ok($pt->log_lines(qr/deliver\[\d+\]: info: \Q$qid\E: dead\.dlv\.test\[127\.0\.0\.43\]:$port failed at connect \(network/),
    'deliver logs the refused MX with step connect and class network');
ok($pt->log_lines(qr/deliver\[\d+\]: detail: \Q$qid\E: direct delivery to failover\.dlv\.test, attempt 1: connecting to dead\.dlv\.test\[127\.0\.0\.43\]:$port/),
    'the connection attempt is logged at detailed level');
is(scalar($peer{live}->transactions), 1, 'one transaction at the second MX');

# --- STARTTLS offered: used
($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['t@tlsok.dlv.test']);
ok($peer{mxt}->wait_messages(1, 20), 'the STARTTLS peer got the message');
my ($tt) = $peer{mxt}->messages;
ok($tt && $tt->{tls}, 'the transaction ran over TLS');

# --- equal preferences: both hosts get used
my $n = 16;
for my $i (1 .. $n) {
    $pt->send_mail(from => 'sender@origin.test', to => ["e$i\@equal.dlv.test"])
        or fail("equal message $i not accepted");
}
my $both = Postern::Util::wait_until(30, sub {
    scalar($peer{eq1}->messages) + scalar($peer{eq2}->messages) >= $n });
ok($both, "all $n messages to equal.dlv.test arrived");
my ($n1, $n2) = (scalar($peer{eq1}->messages), scalar($peer{eq2}->messages));
ok($n1 > 0 && $n2 > 0, "both equal-preference MX hosts were used (eq1 $n1, eq2 $n2)");
is($n1 + $n2, $n, 'each message arrived once');

# --- IPv6-only MX
SKIP: {
    skip 'cannot listen on [::1]', 3 unless $v6pid;
    ($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['six@v6.dlv.test']);
    my $got = Postern::Util::wait_until(20, sub { -s $v6file });
    ok($got, 'the IPv6-only MX got the message');
    is(Postern::Util::slurp($v6file), "six\@v6.dlv.test\n", 'with its recipient');
    ok($pt->wait_log(qr/\Q$qid\E: to=<six\@v6.dlv.test>, relay=mx6\.dlv\.test\[::1\]:$port, .*status=sent/, 10),
        'logged with the IPv6 address');
}

# --- null MX: failed at once, permanently
($qid) = $pt->send_mail(from => 'sender@origin.test', to => ['n@nullmx.dlv.test']);
ok($pt->wait_log(qr/\Q$qid\E: to=<n\@nullmx.dlv.test>, relay=none, .*dsn=5\.1\.10, status=failed \(.*dns: .*null MX/, 15),
    'null MX: failed with 5.1.10 and a dns reason');
ok(!$pt->log_lines(qr/\Q$qid\E: .*connecting to/), 'no connection was attempted');

done_testing;
