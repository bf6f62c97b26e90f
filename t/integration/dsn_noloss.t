# dsn_noloss.t - every failed message gets its notice, and none gets two,
# while kill -9 hits qmgr (several times, also while notices are being
# written), dnsd, deliver, smtpd, and the whole process tree (followed by a fresh
# start). 200 messages from s$i@snd.test to two recipients at fail.test,
# whose MX refuses every recipient with 550; the notices go to snd.test's
# MX. Each notice names its original in In-Reply-To. A notice delivered
# twice (its delivery was in flight at a kill) keeps its Message-ID; two
# notices with different Message-IDs for one original would be a second
# notice, which must never happen.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Net::SMTP;
use Postern::Test;
use Postern::Util qw(wait_until);
use Time::HiRes qw(time sleep);

my $N = 200;
my $pt = Postern::Test->new(retry_delay => '1s', log_level => 'basic', max_deliveries => 10);
my $fail = $pt->peer(name => 'fail', addr => '127.0.0.191', keep_messages => 0, lifetime => 900,
    rcpt_rules => [ [qr/./, '550 5.1.1 no such user'] ]);
my $snd = $pt->peer(name => 'snd', addr => '127.0.0.192', lifetime => 900);
$pt->write_file('domains', <<'MAP');
fail.test   mx=127.0.0.191
snd.test    mx=127.0.0.192
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap domains') or diag $out;
$pt->start;

my $smtp;
sub send_one {
    my ($i) = @_;
    my $mid = "<dsnloss-$i\@client.test>";
    for my $try (1 .. 300) {
        $smtp //= Net::SMTP->new(Host => '127.0.0.1', Port => $pt->port, Hello => 'client.test',
            Timeout => 10);
        if ($smtp && $smtp->mail("s$i\@snd.test") && $smtp->to("a$i\@fail.test")
            && $smtp->to("b$i\@fail.test") && $smtp->data
            && $smtp->datasend("From: s$i\@snd.test\nTo: a$i\@fail.test\nSubject: dsn loss $i\n"
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

sub kill_one {
    my ($name) = @_;
    my $p = $pt->pid_of($name);
    return $p ? kill('KILL', $p) : 0;
}

my (%accepted, %kills);
for my $i (1 .. $N) {
    if ($i == 40 || $i == 100) {
        $kills{"qmgr$i"} = kill_one('qmgr');
    } elsif ($i == 60) {
        $kills{dnsd} = kill_one('dnsd');
    } elsif ($i == 70) {
        $kills{deliver} = kill_one('deliver');
    } elsif ($i == 120) {
        $smtp->close if $smtp;
        undef $smtp;
        $kills{smtpd} = kill_one('smtpd');
    } elsif ($i == 150) {
        $smtp->close if $smtp;
        undef $smtp;
        $pt->kill_tree;
        $kills{tree} = 1;
        $pt->start;
    }
    my $mid = send_one($i);
    $accepted{$mid} = 1 if $mid;
    sleep 0.01;
}
$smtp->quit if $smtp;
is(scalar keys %accepted, $N, "all $N messages accepted (some after retries across the kills)");
# two more kills of qmgr while the last failures and their notices are written
for my $k (1 .. 2) {
    sleep 0.3;
    $kills{"drain$k"} = kill_one('qmgr');
}
is(scalar(grep { $_ } values %kills), 8,
    'qmgr (4 times), dnsd, deliver, smtpd and the whole tree were killed');

# In-Reply-To of each notice -> its own Message-IDs
sub notices {
    my %n;
    for my $t ($snd->messages) {
        next unless $t->{file} && open(my $fh, '<', $t->{file});
        local $/;
        my $text = <$fh>;
        close $fh;
        my ($hdr) = split /\r?\n\r?\n/, $text, 2;
        my ($irt) = $hdr =~ /^In-Reply-To:\s*(\S+)/mi;
        next unless $irt;
        push @{ $n{$irt} }, $t->{message_id} // '';
    }
    return \%n;
}
my $n;
my $done = wait_until(240, sub {
    $n = notices();
    !grep { !$n->{$_} } keys %accepted;
}, 1);
my @missing = grep { !$n->{$_} } sort keys %accepted;
ok($done && !@missing, 'every failed message got its notice')
    or diag(scalar(@missing) . " without a notice, e.g. @missing[0 .. ($#missing < 4 ? $#missing : 4)]");
my ($second, $dup_deliveries) = (0, 0);
for my $orig (keys %$n) {
    my %ids;
    $ids{$_}++ for @{ $n->{$orig} };
    $second++ if keys %ids > 1;
    $dup_deliveries += $_ - 1 for values %ids;
}
is($second, 0, 'no original got two different notices');
diag(sprintf('dsn no-loss: %d failed messages, 8 kills; %d notice deliveries repeated (in flight '
    . 'at a kill)', $N, $dup_deliveries));
cmp_ok($dup_deliveries, '<=', 60, 'repeated notice deliveries bounded by what could be in flight');
my @notice_ids = map { @$_ } values %$n;
is(scalar(grep { $_ !~ /\.notice\@postern\.test>$/ } @notice_ids), 0,
    'every notice has a Message-ID Postern made');
ok(wait_until(60, sub {
    opendir(my $d, $pt->spool . '/queue') or return 0;
    !grep { !/^\./ } readdir $d;
}), 'queue/ empty at the end');
opendir(my $bd, $pt->spool . '/bounced');
my @bounced = grep { !/^\./ } readdir $bd;
is(scalar @bounced, $N, "all $N originals are in bounced/");
$pt->stop;
done_testing();
