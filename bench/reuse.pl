#!/usr/bin/perl
# bench/reuse.pl - what connection reuse is worth: messages per second to
# ONE destination with messages_per_connection = 100 (reuse) and = 1 (a
# new connection for every message), everything else equal.
#
#   perl bench/reuse.pl [--n N] [--runs R] [--sessions S] [--size BYTES]
#                       (defaults: 5000 messages, 3 runs, 10 sessions, 4096)
#
# Each run: a fresh smtp-sink (Postfix's, from the .deb bench/setup
# unpacked under bench/work/root) on 127.0.0.2 plays the destination's MX;
# a fresh Postern instance (t/lib/Postern/Test.pm; log_level basic,
# default max_deliveries 10 and max_connections 10) sends everything for
# sink.bench there (an mx= override in etc/domains, no DNS). Two figures:
#   e2e/s       smtp-source (S sessions, one message per session) -> Postern
#               -> smtp-sink: N / (time the sink counted the N-th - start)
#   deliver/s   the same N queued while delivery is paused, then
#               `smtpctl resume delivery`: N / (time the sink counted the
#               N-th - resume); qmgr, deliver and the SMTP client alone
# and, for each run, how many deliveries qmgr handed to an idle connection
# (`reused` in smtpctl show hosts --json).
# Runs alternate between the two settings; the medians are printed.
# Every process started is stopped by PID; all traffic is on 127.0.0.0/8.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use JSON::PP;
use Time::HiRes qw(time sleep);

use Bench::Proc;
use Bench::Load;
use Postern::Test;
use Postern::Util qw(free_port);

my %o = (n => 5000, runs => 3, sessions => 10, size => 4096);
GetOptions(\%o, 'n=i', 'runs=i', 'sessions=i', 'size=i', 'help')
    or die "usage: see the header of bench/reuse.pl\n";
if ($o{help}) { system('sed', '-n', '2,25p', $0); exit 0 }

my $BENCH = abs_path($FindBin::Bin);
my $WORK  = "$BENCH/work";
$| = 1;
Bench::Proc::init($WORK);
my $load = Bench::Load->new(roots => "$WORK/root");

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub wait_sink {
    my ($sink, $want, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return $sink->time_of($want) if $sink->poll >= $want;
        sleep 0.02;
    }
    return undef;
}

sub run_one {
    my ($mpc, $mode, $run) = @_;
    my $dir = "$WORK/run/reuse-$mpc-$mode-$run";
    remove_tree($dir);
    make_path($dir);
    chmod 0755, $dir;
    my $sport = free_port('127.0.0.2');
    my $sink = $load->sink(dir => $dir, addr => '127.0.0.2', port => $sport);
    my $pt = Postern::Test->new(log_level => 'basic', direct_port => $sport,
        messages_per_connection => $mpc, smtpd_max_sessions => 1000,
        smtpd_max_sessions_per_client => 1000, retry_delay => '1h');
    $pt->write_file('domains', "sink.bench mx=127.0.0.2\n");
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
    die "makemap: $out" if $rc;
    $pt->start;
    my %r = (mpc => $mpc, mode => $mode);
    my $t0;
    if ($mode eq 'deliver') {
        $pt->smtpctl('pause', 'delivery');
        my $src = $load->source(dir => $dir, to => '127.0.0.1:' . $pt->port,
            sessions => $o{sessions}, messages => $o{n}, size => $o{size});
        Bench::Proc::wait_exit($src->{pid}, 600);
        $src->stop;
        $t0 = time;
        $pt->smtpctl('resume', 'delivery');
    } else {
        $t0 = time;
        my $src = $load->source(dir => $dir, to => '127.0.0.1:' . $pt->port,
            sessions => $o{sessions}, messages => $o{n}, size => $o{size});
        $r{src} = $src;
    }
    my $t = wait_sink($sink, $o{n}, 600);
    $r{rate} = $t ? $o{n} / ($t - $t0) : undef;
    ($rc, $out) = $pt->smtpctl('show', 'hosts', '--json');
    my $j = eval { decode_json($out) } // {};
    my ($h) = grep { $_->{destination} eq 'sink.bench' } @{ $j->{hosts} || [] };
    $r{reused} = $h ? $h->{reused} : 0; # not listed: nothing queued, nothing reused
    $r{src}->stop if $r{src};
    delete $r{src};
    $pt->stop;
    $sink->stop;
    remove_tree($dir);
    return \%r;
}

my %res;
for my $run (1 .. $o{runs}) {
    for my $mode (qw(e2e deliver)) {
        for my $mpc ($run % 2 ? (100, 1) : (1, 100)) {
            my $r = run_one($mpc, $mode, $run);
            push @{ $res{$mode}{$mpc} }, $r;
            printf "run %d %-7s messages_per_connection=%-3d %s msg/s (%s over reused connections)\n",
                $run, $mode, $mpc, defined $r->{rate} ? sprintf('%.0f', $r->{rate}) : 'FAILED',
                $r->{reused} // '?';
        }
    }
}
print "\nmedians, $o{n} messages of $o{size} bytes, $o{sessions} smtp-source sessions, one destination:\n";
for my $mode (qw(e2e deliver)) {
    my $on  = median(map { $_->{rate} } @{ $res{$mode}{100} });
    my $off = median(map { $_->{rate} } @{ $res{$mode}{1} });
    printf "  %-8s reuse on (100): %6.0f msg/s   off (1): %6.0f msg/s   ratio %.2f\n",
        $mode eq 'e2e' ? 'e2e' : 'deliver', $on // 0, $off // 0, $off ? ($on // 0) / $off : 0;
}
