#!/usr/bin/perl
# smtpd_intake.t - intake cannot be locked out (issue 17.4 and 17.7,
# smtpd/intake.h), with small limits (smtpd_max_sessions 40, 10 per
# address, smtpd_timeout 30s):
#   - 40 idle connections from 8 addresses: stress mode begins at 30
#     (logged), addresses then get few more sessions, a normal client
#     still gets a 220 and its message queued, and the idle sessions are
#     closed after the stress deadline (10 s), not smtpd_timeout
#   - a command line trickled a byte at a time is closed at its deadline
#     although bytes keep arriving (only the gap between reads was timed)
#   - DATA at 1 byte/s is closed below smtpd_min_data_rate
#   - smtpd_client_message_rate_limit and smtpd_client_connection_rate_limit
#   - a spool below queue_minfree: 452 4.3.1 at MAIL and RCPT, and a
#     client that keeps trying is not closed for "too many errors"
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(smtpd_max_sessions => 40, smtpd_max_sessions_per_client => 10,
    smtpd_timeout => '30s', smtpd_data_timeout => '3s', smtpd_min_data_rate => 500,
    smtpd_client_message_rate_limit => 3, smtpd_client_connection_rate_limit => 0);
$pt->start;
my $port = $pt->port;

sub connect_from {
    my ($addr) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, LocalAddr => $addr,
        Proto => 'tcp', Timeout => 5);
}
# One reply line, unbuffered (select and PerlIO's buffer do not mix):
# '' on timeout, undef at EOF.
my %inbuf;
sub line_of {
    my ($s, $t) = @_;
    my $end = time + ($t // 5);
    while (1) {
        my $b = \$inbuf{"$s"};
        $$b //= '';
        if ($$b =~ s/^([^\n]*\n)//) { return $1 }
        my $left = $end - time;
        return '' if $left <= 0 || !IO::Select->new($s)->can_read($left);
        my $n = sysread($s, $$b, 4096, length $$b);
        return undef unless $n;
    }
}

# --- a flood of idle connections ---
my (@idle, $refused_busy);
for my $i (0 .. 47) {
    my $s = connect_from('127.0.4.' . (1 + $i % 8)) or next;
    my $g = line_of($s);
    if ($g =~ /^220/) { push @idle, $s } elsif ($g =~ /^421.*busy/) { $refused_busy++ }
}
ok(@idle >= 30 && @idle < 40, 'the flood got in until stress, then was held back (' . scalar(@idle) . ' sessions)');
ok($refused_busy, 'addresses were refused "while the server is busy"');
ok($pt->wait_log(qr/smtpd\[\d+\]: warning: stress mode: \d+ of 40 sessions in use; command deadlines are 10s/, 5),
    'stress mode is logged');
my $t0 = time;
my $c = connect_from('127.0.0.1');
my $g = $c ? line_of($c) : '';
like($g, qr/^220 /, 'a normal client still gets its greeting');
print $c "EHLO client.test\r\nMAIL FROM:<a\@src.test>\r\nRCPT TO:<b\@dest.test>\r\nDATA\r\n";
my $all = '';
while (defined(my $l = line_of($c))) { last if $l eq ''; $all .= $l; last if $l =~ /^354/ }
print $c "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
my $done = '';
while (defined(my $l = line_of($c))) { last if $l eq ''; $done .= $l; last if $l =~ /^250 2\.0\.0 Ok: queued/ }
like($done, qr/^250 2\.0\.0 Ok: queued as/m, "and its message is queued while the flood is on") or diag($all . $done);
diag(sprintf('normal client served in %.2f s during the flood', time - $t0));
close $c;
my $closed = 0;
ok(wait_until(20, sub {
    for my $s (@idle) { next unless $s; my $l = line_of($s, 0.01); if (!defined $l || $l =~ /^421 4\.4\.2/) { $closed++; $s = undef } }
    $closed >= @idle * 0.9 }), "the idle sessions are closed at the stress deadline ($closed)");
close $_ for grep { $_ } @idle;
ok($pt->wait_log(qr/stress mode ends/, 10), 'stress mode ends when they are gone');

# --- a command line trickled a byte at a time ---
{
    my $s = connect_from('127.0.4.20');
    line_of($s);
    my $start = time;
    my $got = '';
    my $sel = IO::Select->new($s);
    for my $ch (split //, 'EHLO ' . ('x' x 200)) {
        last if time - $start > 45;
        syswrite($s, $ch);
        if ($sel->can_read(0.5)) { $got = line_of($s) // 'EOF'; last }
    }
    like($got, qr/^421 4\.4\.2 .*timeout exceeded/, 'a trickled command line is closed at its deadline');
    cmp_ok(time - $start, '<', 40, sprintf('after %.0f s, though a byte came every half second', time - $start));
    close $s;
}

# --- DATA at 1 byte/s ---
{
    my $s = connect_from('127.0.4.21');
    line_of($s);
    print $s "HELO t\r\nMAIL FROM:<a\@src.test>\r\nRCPT TO:<b\@dest.test>\r\nDATA\r\n";
    my $r = '';
    $r = line_of($s) for 1 .. 4;
    like($r, qr/^354/, 'DATA started');
    my $start = time;
    my $got = '';
    my $sel = IO::Select->new($s);
    while (time - $start < 30) {
        syswrite($s, 'y');
        if ($sel->can_read(1)) { $got = line_of($s) // 'EOF'; last }
    }
    like($got, qr/^421 4\.4\.2/, 'DATA at 1 byte/s is closed');
    ok($pt->wait_log(qr/timeout after DATA from \[127\.0\.4\.21\].*in all: below smtpd_min_data_rate/, 5), 'logged as too slow');
    close $s;
}

# --- message rate ---
{
    my $s = connect_from('127.0.4.22');
    line_of($s);
    print $s "HELO t\r\n";
    line_of($s);
    my @r;
    for (1 .. 4) { print $s "MAIL FROM:<a\@src.test>\r\n"; push @r, line_of($s); print $s "RSET\r\n"; line_of($s) }
    is(scalar(grep { /^250/ } @r), 3, 'three MAIL a minute from one address');
    like($r[3], qr/^452 4\.7\.0 Error: too many messages per minute/, 'the fourth gets 452');
    close $s;
}

$pt->stop;

# --- connection rate, and a full spool ---
my $p2 = Postern::Test->new(smtpd_client_connection_rate_limit => 3, queue_minfree => '1000000G',
    smtpd_error_limit => 5);
$p2->start;
my @g;
for (1 .. 4) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p2->port, LocalAddr => '127.0.4.30', Timeout => 5);
    push @g, $s ? line_of($s) : '';
    close $s if $s;
}
is(scalar(grep { /^220/ } @g), 3, 'three connections a minute from one address');
like($g[3], qr/^421 .*too many connections per minute/, 'the fourth gets 421');

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p2->port, LocalAddr => '127.0.4.31', Timeout => 5);
line_of($s);
print $s "EHLO t\r\n";
1 while (line_of($s) // '') =~ /^250-/;
my @r;
for (1 .. 8) { print $s "MAIL FROM:<a\@src.test> SIZE=1000\r\n"; push @r, line_of($s) }
is(scalar(grep { /^452 4\.3\.1 Error: insufficient system storage/ } @r), 8,
    'a full spool: 452 4.3.1 at MAIL, before any DATA') or diag(join '', @r);
print $s "NOOP\r\n";
like(line_of($s) // '', qr/^250/, 'eight of those and the session is still open (smtpd_error_limit is 5)');
close $s;
ok($p2->wait_log(qr/reject: MAIL from \[127\.0\.4\.31\].*spool has \d+ bytes free, less than the message's SIZE plus queue_minfree/, 5),
    'and the log says why');
$p2->stop;
done_testing();
