# smtpd_concurrency.t - many sessions in one smtpd: 200 clients connected
# at the same time, each sending one message, all queued with distinct IDs;
# then the session limits: smtpd_max_sessions_per_client and
# smtpd_max_sessions answer 421 to the session over the limit.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Postern::Test;
use Postern::Util qw(slurp);

my $N = 200;

sub connect_to {
    my ($port, $local) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        ($local ? (LocalAddr => $local) : ()), Timeout => 10) or die "connect: $!";
    binmode $s;
    $s->autoflush(1);
    return $s;
}

# Read from every socket until each has $want final reply lines (or 60 s).
sub collect {
    my ($socks, $bufs, $want) = @_;
    my $sel = IO::Select->new(@$socks);
    my %idx = map { ($socks->[$_] => $_) } 0 .. $#$socks;
    my $deadline = time + 60;
    my $done = sub { my $i = shift; my @f = $bufs->[$i] =~ /^\d{3} [^\r\n]*\r\n/mg; @f >= $want };
    while (time < $deadline) {
        my @pending = grep { !$done->($idx{$_}) } @$socks;
        last unless @pending;
        $sel = IO::Select->new(@pending);
        for my $s ($sel->can_read(1)) {
            my $n = sysread($s, my $chunk, 65536);
            if (!$n) { $sel->remove($s); next }
            $bufs->[ $idx{$s} ] .= $chunk;
        }
    }
    return scalar grep { $done->($_) } 0 .. $#$socks;
}

my $pt = Postern::Test->new(smtpd_max_sessions => 1000, smtpd_max_sessions_per_client => 1000);
$pt->start;
my $port = $pt->port;

my @s = map { connect_to($port) } 1 .. $N;
my @buf = ('') x $N;
is(collect(\@s, \@buf, 1), $N, "$N sessions open at once, each greeted");
my ($rc, $show) = $pt->smtpctl('show', 'smtpd');
like($show, qr/^intake\s+running$/m, 'smtpctl show smtpd (text)');
($rc, $show) = $pt->smtpctl('--json', 'show', 'smtpd');
like($show, qr/"sessions_now":$N\b/, "smtpctl show smtpd counts $N sessions") or diag $show;

for my $i (0 .. $N - 1) {
    my $sk = $s[$i];
    print $sk "EHLO c$i.test\r\nMAIL FROM:<s$i\@client.test>\r\nRCPT TO:<r$i\@remote.test>\r\nDATA\r\n";
}
is(collect(\@s, \@buf, 5), $N, 'every session got EHLO, MAIL, RCPT and 354 replies');
my $body = "Subject: load\r\n\r\n" . ("0123456789" x 7 . "\r\n") x 50;
for my $i (0 .. $N - 1) {
    my $sk = $s[$i];
    print $sk "X-Session: $i\r\n$body.\r\nQUIT\r\n";
}
is(collect(\@s, \@buf, 7), $N, 'every session got its final replies');
my %ids;
my $queued = 0;
for my $i (0 .. $N - 1) {
    if ($buf[$i] =~ /^250 2\.0\.0 Ok: queued as ([0-9A-F]{18})\r$/m) { $ids{$1} = $i; $queued++ }
}
is($queued, $N, "all $N messages acknowledged");
is(scalar keys %ids, $N, 'with distinct queue IDs');
my $right = 0;
for my $id (keys %ids) {
    my $f = slurp($pt->spool . "/queue/$id");
    $right++ if $f =~ /\r\nX-Session: $ids{$id}\r\n/ && $f =~ /^sender s$ids{$id}\@client\.test$/m;
}
is($right, $N, 'each queue file holds its own session\'s message');
close $_ for @s;
($rc, $show) = $pt->smtpctl('--json', 'show', 'smtpd');
my ($batches) = $show =~ /"commit_batches":(\d+)/;
my ($maxb) = $show =~ /"commit_max_batch":(\d+)/;
ok($batches && $batches < $N, "group commit: $N messages in $batches batches (largest $maxb)");
$pt->stop;

# --- session limits ---
{
    my $pt2 = Postern::Test->new(smtpd_max_sessions => 4, smtpd_max_sessions_per_client => 2);
    $pt2->start;
    my $p = $pt2->port;
    my @a = map { connect_to($p, '127.0.0.1') } 1 .. 2;
    my @ab = ('') x 2;
    collect(\@a, \@ab, 1);
    like($ab[$_], qr/^220 /, "client 1, session $_: 220") for 0 .. 1;
    my $third = connect_to($p, '127.0.0.1');
    my @tb = ('');
    collect([$third], \@tb, 1);
    like($tb[0], qr/^421 postern\.test 4\.7\.0 Error: too many sessions from your address/,
        'third session from the same address: 421');
    # 3 of 4 sessions is stress (intake.h): an address may then hold one
    my @b = map { connect_to($p, '127.0.0.3') } 1 .. 2;
    my @bb = ('') x 2;
    collect(\@b, \@bb, 1);
    is(scalar(grep { /^220 / } @bb), 1, 'client 2: one session in, the third in all');
    is(scalar(grep { /^421 postern\.test 4\.7\.0 Error: too many sessions from your address while the server is busy/ } @bb), 1,
        'client 2, second session: 421, the server is busy (stress: 3 of 4)');
    my $fourth = connect_to($p, '127.0.0.5');
    my @qb = ('');
    collect([$fourth], \@qb, 1);
    like($qb[0], qr/^220 /, 'a new address gets the fourth session');
    my $fifth = connect_to($p, '127.0.0.4');
    my @fb = ('');
    collect([$fifth], \@fb, 1);
    like($fb[0], qr/^421 postern\.test 4\.7\.0 Error: too many sessions, try again later/,
        'fifth session in total: 421');
    ok($pt2->wait_log(qr/refused session from \[127\.0\.0\.4\]: 4\.7\.0 Error: too many sessions/, 5),
        'refusal logged');
    close $_ for @a, @b, $third, $fourth, $fifth;
    $pt2->stop;
}

done_testing();
