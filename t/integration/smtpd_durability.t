# smtpd_durability.t - what is acknowledged is on disk, and nothing else:
# a client that disconnects in the middle of DATA (small message in memory,
# or a large one already streaming into incoming/) leaves no file behind;
# after kill -9 of the whole process tree right after a 250, the message
# is in queue/ byte for byte.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp wait_until pid_alive);

sub open_data {
    my ($port) = @_;
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO durable.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    smtp_cmd($s, 'RCPT TO:<b@remote.test>');
    my $r = smtp_cmd($s, 'DATA');
    die "no 354: $r" unless $r =~ /^354/;
    return $s;
}

my $pt = Postern::Test->new(message_size_limit => '10M');
$pt->start;
my $port = $pt->port;

# --- disconnect mid-DATA: small message ---
{
    my $s = open_data($port);
    print $s "Subject: cut\r\n\r\nthe first half of a message\r\n";
    select(undef, undef, undef, 0.2);
    close $s;
    ok($pt->wait_log(qr/lost connection during DATA; nothing was queued/, 5), 'disconnect logged');
    is_deeply([$pt->spool_files('queue')], [], 'nothing in queue/');
    is_deeply([$pt->spool_files('incoming')], [], 'nothing in incoming/');
}

# --- disconnect mid-DATA: large message already streaming to disk ---
{
    $pt->mark_log;
    my $s = open_data($port);
    my $line = ('x' x 98) . "\r\n";
    print $s "Subject: big cut\r\n\r\n";
    print $s $line x 1000 for 1 .. 30;    # 3 MB, no final dot
    ok(wait_until(5, sub { my @f = $pt->spool_files('incoming'); scalar @f }), 'large message streams into incoming/');
    close $s;
    ok($pt->wait_log(qr/lost connection during DATA/, 5), 'disconnect logged');
    ok(wait_until(5, sub { my @f = $pt->spool_files('incoming'); !@f }), 'incoming/ emptied');
    is_deeply([$pt->spool_files('queue')], [], 'nothing in queue/');
}

# --- a large message that completes ---
{
    my $s = open_data($port);
    my $line = ('y' x 98) . "\r\n";
    print $s "Subject: big\r\n\r\n";
    print $s $line x 1000 for 1 .. 30;
    print $s ".\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    ok($id, 'large message queued');
    my $f = slurp($pt->spool . "/queue/$id");
    my ($env, $msg) = split /\n\n/, $f, 2;
    my ($size) = $env =~ /^size (\d+)$/m;
    is(length $msg, $size + 0, 'streamed message: size field patched to the real size');
    ok($msg =~ /\r\n\r\n((?:y{98}\r\n){30000})\z/, 'streamed body intact');
    smtp_cmd($s, 'QUIT');
}

# --- kill -9 of everything right after the 250 ---
{
    my $body = "Subject: survive\r\nX-Test: kill -9\r\n\r\n";
    $body .= "line $_ " . ('z' x ($_ % 70)) . "\r\n" for 1 .. 300;
    $body .= ".dot-line\r\n..two dots\r\n\xc3\xa9 8bit\r\nlast";
    (my $stuffed = $body) =~ s/^\./../mg;
    my @pids = grep { pid_alive($_) } $pt->known_pids;
    ok(@pids >= 2, 'know the process tree (' . scalar(@pids) . ' pids)');
    my $s = open_data($port);
    print $s $stuffed . "\r\n.\r\n";
    my $r = smtp_reply($s);
    kill 'KILL', @pids;    # the whole tree, at once, right after the 250
    like($r, qr/^250 2\.0\.0 Ok: queued as ([0-9A-F]{18})/, '250 before the kill');
    my ($id) = $r =~ /queued as (\S+)/;
    ok(wait_until(5, sub { !grep { pid_alive($_) } @pids }), 'every process is gone');
    my $f = slurp($pt->spool . "/queue/$id");
    ok(length $f, 'the queue file survived');
    my ($env, $msg) = split /\n\n/, $f, 2;
    my ($size) = $env =~ /^size (\d+)$/m;
    is(length $msg, $size + 0, 'complete: size matches');
    $msg =~ s/\AReceived: [^\r]*\r\n(?:\t[^\r]*\r\n)*//;
    ok($msg eq "$body\r\n", 'message byte-identical to what was sent (unstuffed)');
    is_deeply([$pt->spool_files('incoming')], [], 'nothing left in incoming/');
    close $s;
}

$pt->stop;
done_testing();
