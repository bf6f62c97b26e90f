#!/usr/bin/perl
# bench/dns.pl - dnsd lookups per second, cold (every lookup asks the
# local nsd) and cached (answered from dnsd's cache), measured through
# dnsd's real IPC channel with up to WINDOW requests in flight.
#
#   perl bench/dns.pl [NAMES [WINDOW [ROUNDS]]]    (defaults 2000 100 5)
#
# Prints one line per figure. Needs bin/dnsd (make) and nsd.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use Time::HiRes qw(time);
use Postern::DNS;

my $names  = shift // 2000;
my $window = shift // 100;
my $rounds = shift // 5;

my $zone = "\$ORIGIN bench.test.\n\$TTL 3600\n\@ IN SOA ns admin 1 3600 600 86400 60\n"
    . "\@ IN NS ns\nns IN A 127.0.0.1\n";
for my $i (1 .. $names) {
    $zone .= "d$i IN MX 10 mx$i\nmx$i IN A 127.0.1." . ($i % 250 + 1) . "\n";
}
my $ns = Postern::DNS::Nsd->new(zones => { 'bench.test' => $zone });
$ns->start;
my $d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ],
    params => { log_level => 'basic', dns_cache_size => $names * 2 });
$d->start;

# Run all lookups with at most $window in flight; returns (seconds, failures).
sub run {
    my (@domains) = @_;
    my (%pending, $bad);
    my $t0 = time;
    while (@domains || %pending) {
        while (@domains && keys %pending < $window) {
            $pending{ $d->send_mx(shift @domains) } = 1;
        }
        my ($id, $r) = $d->wait_any(30);
        die "no answer from dnsd\n" unless defined $id;
        $bad++ unless $r && $r->{class} eq 'ok';
        delete $pending{$id};
    }
    return (time - $t0, $bad // 0);
}

my @all = map { "d$_.bench.test" } 1 .. $names;
my ($cold, $bad_cold) = run(@all);
my $q = $ns->queries;
my ($hot, $bad_hot) = (0, 0);
for (1 .. $rounds) {
    my ($t, $b) = run(@all);
    $hot += $t;
    $bad_hot += $b;
}
my $q2 = $ns->queries;
printf "dns cold:   %d lookups in %.2fs = %.0f lookups/s (each one MX query to nsd; %d failed)\n",
    $names, $cold, $names / $cold, $bad_cold;
printf "dns cached: %d lookups in %.2fs = %.0f lookups/s (%d upstream queries; %d failed)\n",
    $names * $rounds, $hot, $names * $rounds / $hot, $q2 - $q, $bad_hot;
$d->stop;
$ns->stop;
