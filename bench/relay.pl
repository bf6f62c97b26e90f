#!/usr/bin/perl
# bench/relay.pl - relay N messages through each MTA and print the table.
#
#   perl bench/relay.pl [--quick] [--mta postern,postfix,opensmtpd]
#       [--cells 4k:1,4k:10,4k:50,100k:1,100k:10,100k:50] [--n N] [--n-100k N]
#       [--n-opensmtpd N] [--runs 3] [--timeout SECS] [--no-ceiling]
#       [--disk-seconds S] [--min-seconds S] [--out DIR] [--keep]
#       [--dkim rsa|ed25519|both]   (Postern signs every message)
#
# Normally started by bench/run, which first installs and unpacks what this
# needs (bench/setup). For every cell (message size, concurrency) and run,
# and for every target - "ceiling" (smtp-source straight into smtp-sink)
# and each MTA - it starts a fresh smtp-sink on 127.0.0.2, a fresh MTA
# instance on 127.0.0.1 relaying everything to that sink, then smtp-source
# with N messages (one per connection), and measures:
#   accept/s   N / (last 250 seen by smtp-source - start)
#   e2e/s      N / (time smtp-sink counted the N-th message - start)
#   p50/p99    per message: the MTA's "sent" log line - the 250 seen by
#              smtp-source for the same queue ID (both stamped by tslog)
#   RSS, PSS   peak, summed over the MTA's processes (sampled every 0.25 s)
#   CPU        seconds per 1,000 messages used by all the MTA's processes
#              (exited ones included), start of the run to 1 s after the
#              last arrival
#   box busy   share of the machine's CPU time (all cores, everything on
#              it: load tools, MTA, anything else) that was not idle
#   (bg_busy in runs.jsonl: the same over the idle second before the run,
#   i.e. other users' load; high values mark disturbed runs)
# N: each target's runs of a cell take at least --min-seconds (default 20;
# 0 with --quick): before its first run a short trial (a tenth of N, at
# least 500 messages) measures the target's rate, and N is raised to
# rate x min-seconds x 1.15 when that is more than the default (20,000
# for 4 KiB, 10,000 for 100 KiB). An explicit --n (or --n-opensmtpd for
# OpenSMTPD) is used as given. The trial is not part of the results.
# Each figure in the table is the median of the runs; Postern's ratios to
# Postfix are medians of the per-run ratios (runs are interleaved, so a
# ratio compares runs made one right after the other).
#
# Writes bench/results/DATE/{runs.jsonl,table.md,machine.txt}. Every
# process it starts is stopped by PID when the run ends, fails or is
# interrupted; all traffic is on 127.0.0.0/8; every wait is bounded.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use JSON::PP ();
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

use Bench::Proc qw(snapshot);
use Bench::MTA;
use Bench::Load;
use Bench::Report;
use Postern::DNS;
use Postern::Util qw(free_port);

my $BENCH = abs_path($FindBin::Bin);
my $REPO  = abs_path("$BENCH/..");
my $WORK  = "$BENCH/work";
my $ROOTS = "$WORK/root";

my %o = (mta => 'postern,postfix,opensmtpd', runs => 3, ceiling => 1);
GetOptions(\%o, 'quick', 'mta=s', 'cells=s', 'n=i', 'n-100k=i', 'n-opensmtpd=i', 'runs=i',
    'timeout=i', 'ceiling!', 'disk-seconds=f', 'min-seconds=f', 'out=s', 'keep', 'dkim=s', 'help')
    or die "usage: see the header of bench/relay.pl\n";
if ($o{help}) { system('sed', '-n', '2,30p', $0); exit 0 }

# --dkim rsa|ed25519|both: Postern signs every message (one "*" entry
# per key, made with openssl; the keys are root's, mode 0600), to measure
# what signing at delivery costs. The sink does not verify; dkim.t does.
sub dkim_setup {
    my ($d, $which) = @_;
    die "bench: --dkim takes rsa, ed25519 or both\n" unless $which =~ /^(rsa|ed25519|both)$/;
    make_path($d);
    my $map = '';
    for my $alg ($which eq 'both' ? qw(rsa ed25519) : ($which)) {
        my $f = "$d/bench-$alg.key";
        my @cmd = $alg eq 'rsa' ? ('-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048') : ('-algorithm', 'ed25519');
        system('openssl', 'genpkey', @cmd, '-out', $f) == 0 or die "bench: openssl genpkey failed\n";
        chmod 0600, $f;
        $map .= "* selector=bench$alg key=$f\n";
    }
    open(my $fh, '>', "$d/dkim") or die "$d/dkim: $!";
    print $fh $map;
    close $fh;
    system("$REPO/bin/smtpctl", 'makemap', "$d/dkim") == 0 or die "bench: makemap $d/dkim failed\n";
    return (params => { dkim_map => "$d/dkim" });
}

my @mtas = split /,/, $o{mta};
my $cells = $o{cells} // ($o{quick} ? '4k:10,4k:50,100k:10' : '4k:1,4k:10,4k:50,100k:1,100k:10,100k:50');
my @cells = map {
    my ($s, $c) = split /:/;
    die "bench: bad cell '$_' (SIZE:CONCURRENCY, e.g. 4k:10)\n" unless defined $c && $c =~ /^\d+$/;
    my $bytes = $s =~ /^(\d+)k$/i ? $1 * 1024 : $s =~ /^\d+$/ ? $s : die "bench: bad size '$s'\n";
    { size => $bytes, label => lc $s, conc => $c }
} split /,/, $cells;

sub n_for {
    my ($target, $cell) = @_;
    my $big = $cell->{size} > 16384;
    my $n = $o{n} // ($o{quick} ? 2000 : 20000);
    $n = $o{'n-100k'} // ($o{quick} ? 1000 : 10000) if $big && !defined $o{n};
    if ($target eq 'opensmtpd') {
        # its listen backlog of 5 keeps it near 10 messages/s above 5 sessions
        $n = $o{'n-opensmtpd'} // ($o{quick} ? 200 : $n);
    }
    return $n;
}

# N for a target's runs of a cell: see the header (--min-seconds).
my %sized;
sub sized_n {
    my ($target, $cell) = @_;
    my $n = n_for($target, $cell);
    my $min = $o{'min-seconds'} // ($o{quick} ? 0 : 20);
    return $n if $min <= 0 || defined $o{n};
    return $n if $target eq 'opensmtpd' && defined $o{'n-opensmtpd'};
    my $key = "$target/$cell->{label}/$cell->{conc}";
    return $sized{$key} if defined $sized{$key};
    my $trial = int($n / 10) < 500 ? 500 : int($n / 10);
    $trial = $n if $trial > $n;
    my $r = run_one($target, $cell, 0, $trial);
    my $rate = $r->{error} ? undef : ($r->{e2e_rate} // $r->{accept_rate});
    my $want = $n;
    if ($rate) {
        my $need = $rate * $min * 1.15;
        $need = 300000 if $need > 300000;
        $want = 1000 * int(($need + 999) / 1000) if $need > $n;
    }
    printf "sizing: %s %s c=%d: %s in a %d-message trial -> N=%d (runs of at least %gs)\n",
        $target, $cell->{label}, $cell->{conc},
        $rate ? sprintf('%.0f/s', $rate) : 'no rate (' . ($r->{error} // '?') . ')', $trial, $want, $min;
    return $sized{$key} = $want;
}

$| = 1;
Bench::Proc::init($WORK);
die "bench: bin/master is missing: run make first\n" unless -x "$REPO/bin/master";
my $stamp = strftime('%Y%m%d-%H%M%S', localtime);
my $out = $o{out} // "$BENCH/results/$stamp";
make_path($out, "$WORK/run");

my $load = Bench::Load->new(roots => $ROOTS);
my $nsd = Postern::DNS::Nsd->new(zones => { 'sink.bench' => <<'ZONE' });
$ORIGIN sink.bench.
$TTL 3600
@   IN SOA ns admin 1 3600 600 86400 60
@   IN NS ns
ns  IN A 127.0.0.1
@   IN MX 10 mx
mx  IN A 127.0.0.2
ZONE
$nsd->start;

my $report = Bench::Report->new(out => $out, mtas => \@mtas);
$report->machine(repo => $REPO, roots => $ROOTS, work => $WORK);
$report->disk(disk_ceiling($o{'disk-seconds'} // ($o{quick} ? 2 : 5)));

my @targets = (($o{ceiling} ? ('ceiling') : ()), @mtas);
my $total = @cells * $o{runs} * @targets;
my $k = 0;
for my $cell (@cells) {
    for my $run (1 .. $o{runs}) {
        # rotate the MTAs' order from run to run; the ceiling goes first
        my @m = @mtas;
        push @m, shift @m for 2 .. $run;
        for my $t (($o{ceiling} ? ('ceiling') : ()), @m) {
            $k++;
            my $r = run_one($t, $cell, $run);
            $report->add($r);
            printf "[%d/%d] %s\n", $k, $total, Bench::Report::one_line($r);
        }
    }
}
$nsd->stop;
print "\n", $report->finish;
print "\nresults: $out\n";
exit 0;

sub disk_ceiling {
    my ($secs) = @_;
    my %r;
    for my $i (1 .. 3) {
        my $f = "$out/fsyncrate.$i.txt";
        my $pid = Bench::Proc::spawn(cmd => [ "$WORK/bin/fsyncrate", $WORK, $secs ], name => 'fsyncrate',
            stdout => $f);
        Bench::Proc::wait_exit($pid, 3 * $secs + 60) or Bench::Proc::stop_pid($pid, 5);
        open my $fh, '<', $f or next;
        while (<$fh>) { push @{ $r{$1} }, $2 if /^(\w+) \d+ \S+ (\d+)/ }
        close $fh;
    }
    return { map { $_ => Bench::Report::median(@{ $r{$_} }) } keys %r };
}

sub run_one {
    my ($target, $cell, $run, $n) = @_;
    $n //= sized_n($target, $cell);
    my %r = (target => $target, size => $cell->{size}, label => $cell->{label},
        conc => $cell->{conc}, n => $n, run => $run);
    my $dir = "$WORK/run/$target-$cell->{label}-c$cell->{conc}-r$run";
    remove_tree($dir);
    make_path($dir);
    chmod 0755, $dir;
    system('sync');
    # what the machine does without us: other users' work shows here
    my @b0 = Bench::Proc::machine_cpu();
    sleep 1;
    my @b1 = Bench::Proc::machine_cpu();
    $r{bg_busy} = 1 - ($b1[0] - $b0[0]) / ($b1[1] - $b0[1]) if $b1[1] > $b0[1];
    my ($sink, $mta, $src);
    my $ok = eval {
        my $sport = free_port('127.0.0.2');
        $sink = $load->sink(dir => $dir, addr => '127.0.0.2', port => $sport);
        my $to = "127.0.0.2:$sport";
        if ($target ne 'ceiling') {
            my $port = free_port('127.0.0.1');
            my %extra = $target eq 'postern' && $o{dkim} ? dkim_setup("$dir/dkim", $o{dkim}) : ();
            $mta = Bench::MTA->create($target, dir => "$dir/mta", port => $port,
                sink_addr => '127.0.0.2', sink_port => $sport, nsd => $nsd->addr,
                repo => $REPO, roots => $ROOTS, %extra);
            $mta->start(60);
            $to = "127.0.0.1:$port";
            sleep 1;    # let start-up work finish before counting CPU
        }
        measure(\%r, $mta, $sink, $to, $dir, $cell, $n);
        1;
    };
    $r{error} //= $@ =~ s/\s+$//r unless $ok;
    $mta->stop(30) if $mta;
    $sink->stop if $sink;
    if ($mta && !$r{error}) { parse_latency(\%r, $mta, $dir) }
    if ($mta && $r{error}) {
        my @l = split /\n/, $mta->log_text;
        $r{mta_log_tail} = join("\n", @l > 15 ? @l[-15 .. -1] : @l);
    }
    remove_tree($dir) unless $o{keep};
    return \%r;
}

sub measure {
    my ($r, $mta, $sink, $to, $dir, $cell, $n) = @_;
    my $tr = $mta ? $mta->tracker : undef;
    my ($cpu0, $names0);
    if ($tr) {
        my $s = snapshot();
        $cpu0   = $tr->cpu($s);
        $names0 = $tr->per_name($s);
        $tr->reset_peak;
        $tr->sample($s);
    }
    my $timeout = $o{timeout} // (120 + $n / 5);
    my @stat0 = Bench::Proc::machine_cpu();
    my $t0 = time;
    my $src = $load->source(dir => $dir, to => $to, sessions => $cell->{conc}, messages => $n,
        size => $cell->{size});
    my $deadline = $t0 + $timeout;
    my ($want, $next) = ($n, 0);
    while (1) {
        $sink->poll;
        if (!defined $r->{accept_end} && $src->done) {
            Bench::Proc::wait_exit($src->{tslog}, 5);
            source_results($r, $mta, $src);
            $want = $r->{accepted} if $r->{accepted} < $want;
        }
        last if defined $r->{accept_end} && $sink->count >= $want;
        if (time > $deadline) {
            $r->{error} = sprintf('timeout after %ds: %d accepted, %d at the sink',
                $timeout, $r->{accepted} // -1, $sink->count);
            last;
        }
        if ($tr && time >= $next) { $tr->sample; $next = time + 0.25 }
        sleep 0.05;
    }
    my @stat1 = Bench::Proc::machine_cpu();
    $r->{box_busy} = 1 - ($stat1[0] - $stat0[0]) / ($stat1[1] - $stat0[1]) if $stat1[1] > $stat0[1];
    $src->stop;
    source_results($r, $mta, $src) unless defined $r->{accept_end};
    $r->{t0} = $t0;
    $r->{at_sink} = $sink->count;
    # A run in which the source gave up early (a refused session is fatal
    # to smtp-source) measured something else: it is not a figure.
    $r->{error} //= sprintf('only %d of %d accepted; smtp-source: %s', $r->{accepted}, $n,
        $r->{source_errors} ? $r->{source_errors}[0] : 'no error shown')
        if defined $r->{accepted} && $r->{accepted} < $n;
    my $t_e2e = $sink->time_of($want);
    $r->{e2e_rate} = $want / ($t_e2e - $t0) if $t_e2e && !$r->{error};
    $r->{accept_rate} = $r->{accepted} / ($r->{accept_end} - $t0)
        if $r->{accepted} && $r->{accept_end} > $t0;
    $r->{accept_rate} = $r->{e2e_rate} if !$mta && $r->{e2e_rate};
    return unless $tr;
    my $end = time + 1;    # the tail of the work (file removal, logging)
    while (time < $end) { $tr->sample; sleep 0.25 }
    my $s = snapshot();
    $tr->sample($s);
    my $names1 = $tr->per_name($s);
    $r->{cpu} = $tr->cpu($s) - $cpu0;
    $r->{cpu_per_1000} = $r->{cpu} / $want * 1000 if $want;
    $r->{rss} = $tr->peak_rss;
    $r->{pss} = $tr->peak_pss;
    my %d;
    for my $k (keys %$names1) {
        my $v = $names1->{$k} - ($names0->{$k} // 0);
        $d{$k} = sprintf('%.3f', $v) + 0 if $v > 0.0005;
    }
    $r->{cpu_by_name} = \%d;
}

# The 250s smtp-source saw: count, last time, and (for MTAs) queue IDs.
sub source_results {
    my ($r, $mta, $src) = @_;
    my ($n, $last, %t250) = (0, undef);
    my @bad;
    for my $l ($src->lines) {
        my ($t, $text) = @$l;
        if ($text =~ /<<< 250 2\.0\.0/) {
            my $id = $mta ? $mta->id_from_250($text) : 'x';
            next unless defined $id;
            $n++;
            $t250{$id} = $t if $mta;
            $last = $t if !defined $last || $t > $last;
        } elsif (@bad < 5) {
            push @bad, $text;
        }
    }
    $r->{accepted} = $n;
    $r->{accept_end} = $last // time;
    $r->{source_errors} = \@bad if @bad;
    $r->{_t250} = \%t250;
}

sub parse_latency {
    my ($r, $mta, $dir) = @_;
    my $t250 = delete $r->{_t250} or return;
    open my $fh, '<', $mta->log_path or return;
    my @lat;
    my %seen;
    while (my $l = <$fh>) {
        next unless $l =~ /^(\d+\.\d+) (.*)/;
        my ($t, $text) = ($1, $2);
        my $id = $mta->id_from_sent($text) // next;
        next if $seen{$id}++ || !defined $t250->{$id};
        push @lat, ($t - $t250->{$id}) * 1000;
    }
    close $fh;
    $r->{latency_n} = scalar @lat;
    return unless @lat;
    @lat = sort { $a <=> $b } @lat;
    $r->{p50_ms} = Bench::Report::pct(\@lat, 50);
    $r->{p99_ms} = Bench::Report::pct(\@lat, 99);
}
