# qmgr_noloss.t - no accepted message is lost: 1,000 messages are sent
# while kill -9 hits qmgr, then deliver, then the whole process tree
# (followed by a fresh start). Every Message-ID that got a 250 must
# arrive at the peer. A duplicate is allowed only for a delivery that
# was in flight at a kill; the count is printed (diag) for the notes and
# bounded by what could have been in flight.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Net::SMTP;
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until);
use Time::HiRes qw(time sleep);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $N = 1000;
my $ns = Postern::DNS::Nsd->new(zones => { 'sink.test' => Postern::DNS::mx_zone('sink.test', '127.0.0.71') });
$ns->start;

my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1s', log_level => 'basic',
    max_deliveries => 10);
my $peer = $pt->peer(name => 'sink', addr => '127.0.0.71', keep_messages => 0, lifetime => 900);
$pt->start;

my $smtp;
sub send_one {
    my ($i) = @_;
    my $mid = "<noloss-$i\@client.test>";
    for my $try (1 .. 300) {
        $smtp //= Net::SMTP->new(Host => '127.0.0.1', Port => $pt->port, Hello => 'client.test',
            Timeout => 10);
        if ($smtp && $smtp->mail('load@client.test') && $smtp->to("r$i\@sink.test") && $smtp->data
            && $smtp->datasend("From: load\@client.test\nTo: r$i\@sink.test\nSubject: noloss $i\n"
                . "Message-ID: $mid\n\nmessage $i\n")
            && $smtp->dataend) {
            return $mid;
        }
        $smtp->close if $smtp;
        undef $smtp;
        sleep 0.1;
    }
    return undef;
}

my (%accepted, %kills);
my $t0 = time;
for my $i (1 .. $N) {
    if ($i == 200) {
        my $p = $pt->pid_of('qmgr');
        $kills{qmgr} = kill('KILL', $p) if $p;
    } elsif ($i == 450) {
        my $p = $pt->pid_of('deliver');
        $kills{deliver} = kill('KILL', $p) if $p;
    } elsif ($i == 700) {
        $smtp->close if $smtp;
        undef $smtp;
        $pt->kill_tree;
        $kills{tree} = 1;
        $pt->start;
    }
    my $mid = send_one($i);
    $accepted{$mid} = 1 if $mid;
}
$smtp->quit if $smtp;
my $sent_s = time - $t0;
is(scalar keys %accepted, $N, "all $N messages accepted (some after retries across the kills)");
ok($kills{qmgr} && $kills{deliver} && $kills{tree}, 'qmgr, deliver and the whole tree were killed');

my %seen;
my $done = wait_until(300, sub {
    %seen = ();
    $seen{$_}++ for $peer->message_ids;
    !grep { !$seen{$_} } keys %accepted;
}, 0.5);
my @missing = grep { !$seen{$_} } sort keys %accepted;
ok($done && !@missing, 'every accepted Message-ID arrived at the peer')
    or diag(scalar(@missing) . " missing, e.g. @missing[0 .. ($#missing < 4 ? $#missing : 4)]");
my $dups = 0;
$dups += $_ - 1 for values %seen;
diag(sprintf('no-loss: %d messages sent in %.1fs across 3 kills; %d duplicate deliveries '
    . '(deliveries in flight at a kill)', $N, $sent_s, $dups));
# At most max_deliveries (10) deliveries are in flight at each of the
# three kills; anything above that would be a duplicate of a delivery
# that was not in flight.
cmp_ok($dups, '<=', 30, 'duplicates bounded by the deliveries that could be in flight');
ok(wait_until(30, sub {
    opendir(my $d, $pt->spool . '/queue') or return 0;
    !grep { !/^\./ } readdir $d;
}), 'queue/ empty at the end');
$pt->stop;

# --- a delivery in flight when deliver dies is rescheduled, not lost ---
my $ps = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1s');
my $slow = $ps->peer(name => 'slow', addr => '127.0.0.71', delay => { eod => 3 });
$ps->start;
$ps->mark_log;
my ($qid, $mid) = $ps->send_mail(from => 'slow@client.test', to => ['s@sink.test']);
ok(wait_until(20, sub { grep { !defined $_->{close} } $slow->connections }), 'delivery in progress');
sleep 1;    # inside DATA: the peer holds its reply for 3 s
my $dp = $ps->pid_of('deliver');
kill 'KILL', $dp;
ok($ps->wait_log(qr/\Q$qid\E: delivery to sink\.test was in flight when deliver went away/, 10),
    'qmgr logs the delivery that was in flight');
ok($ps->wait_log(qr/\Q$qid\E: to=<s\@sink\.test>.*status=sent/, 30), 'it is delivered after deliver restarts');
ok($ps->wait_log(qr/\Q$qid\E: removed/, 10), 'and the message is removed');
my @got = grep { $_ eq $mid } $slow->message_ids;
cmp_ok(scalar @got, '>=', 1, 'the peer has the message');
diag('in-flight delivery at the kill arrived ' . scalar(@got) . ' time(s)');
done_testing();
