#!/usr/bin/perl
# bench/smtpd.pl - messages per second that smtpd accepts (each one
# fsync'd into queue/ before its 250), measured with Postfix's smtp-source
# at 1 and 50 concurrent sessions, 4 KiB messages.
#
#   perl bench/smtpd.pl [--paused] [MSGS_1 [MSGS_50]]   (defaults 2000 20000)
#
# The instance is a whole Postern (qmgr learns about every message and
# tries to deliver it to an unresolvable domain, as `make run`'s would);
# --paused runs `smtpctl pause delivery` first, so that the figure is
# closer to smtpd's own.
#
# smtp-source comes from $SMTP_SOURCE, the PATH, or Debian's postfix
# package fetched with `apt-get download` and unpacked with `dpkg -x` into
# a temporary directory (never installed: it would become the system MTA).
# Prints one line per figure, plus smtpd's group-commit counters.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use File::Temp qw(tempdir);
use Time::HiRes qw(time);
use Postern::Test;

my $paused = @ARGV && $ARGV[0] eq '--paused' ? shift : 0;
my $m1  = shift // 2000;
my $m50 = shift // 20000;

sub find_smtp_source {
    return ($ENV{SMTP_SOURCE}, '') if $ENV{SMTP_SOURCE};
    for my $d (split /:/, "$ENV{PATH}:/usr/sbin") {
        return ("$d/smtp-source", '') if -x "$d/smtp-source";
    }
    my $tmp = tempdir('smtp-source-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    system("cd $tmp && apt-get download postfix >/dev/null 2>&1") == 0
        or die "bench/smtpd.pl: smtp-source not found and `apt-get download postfix` failed\n";
    my ($deb) = glob("$tmp/postfix_*.deb");
    system('dpkg', '-x', $deb, "$tmp/root") == 0 or die "dpkg -x $deb failed\n";
    return ("$tmp/root/usr/sbin/smtp-source", "$tmp/root/usr/lib/postfix");
}

my ($ss, $libdir) = find_smtp_source();
$ENV{LD_LIBRARY_PATH} = $libdir if $libdir;

my $pt = Postern::Test->new(log_level => 'basic', smtpd_max_sessions => 1000,
    smtpd_max_sessions_per_client => 1000);
$pt->start;
my $port = $pt->port;
if ($paused) {
    my ($rc, $out) = $pt->smtpctl('pause', 'delivery');
    die "smtpctl pause delivery failed: $out" if $rc;
}

sub queued {
    opendir(my $d, $pt->spool . '/queue') or return 0;
    return scalar grep { !/^\./ } readdir $d;
}

for my $run ([1, $m1], [50, $m50]) {
    my ($sessions, $msgs) = @$run;
    my $before = queued();
    my $t0 = time;
    system($ss, '-s', $sessions, '-l', 4096, '-m', $msgs, '-f', 'bench@client.test',
        '-t', 'sink@remote.test', "127.0.0.1:$port") == 0 or die "smtp-source failed\n";
    my $dt = time - $t0;
    my $got = queued() - $before;
    printf "smtpd: %d session%s, 4 KiB messages%s: %d msgs in %.2f s = %.0f msg/s (%d in queue/)\n",
        $sessions, $sessions == 1 ? '' : 's', $paused ? ', delivery paused' : '', $msgs, $dt,
        $msgs / $dt, $got;
}
my ($rc, $out) = $pt->smtpctl('show', 'smtpd');
print map { "  $_\n" } grep { /^commit_/ } split /\n/, $out;
$pt->stop;
