#!/usr/bin/perl
# summary.pl - the interop matrix as one table: a row per cell, a column per
# peer and direction (in: peer -> Postern -> sink, out: Postern -> peer ->
# sink), each entry ok, FAIL, skip or "-" (the cell has no such direction),
# then the reasons of the skips. Reads the JSON results Postern::Interop
# writes (build/interop/PEER.json, or $POSTERN_INTEROP_RESULTS); a peer
# whose file is missing shows "?" (its test did not get that far).
#
#   perl t/interop/summary.pl [DIR]
#
# Exits 0; the verdict is prove's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;

my $dir = shift // $ENV{POSTERN_INTEROP_RESULTS} // "$FindBin::Bin/../../build/interop";
my @peers = qw(postfix exim opensmtpd);
my (%res, %name, @order, %seen);

# cell order: Postern::Interop's table, without loading the whole harness
for my $line (split /\n/, do { local (@ARGV, $/) = ("$FindBin::Bin/../lib/Postern/Interop.pm"); <> }) {
    push @order, $1 if $line =~ /^\s+\[\s*'?([\w-]+)'?\s*=>\s*'(?:both|in|out)'\s*\],/ && !$seen{$1}++;
}
for my $p (@peers) {
    my $f = "$dir/$p.json";
    open my $fh, '<', $f or next;
    my $j = eval { decode_json(do { local $/; <$fh> }) } or next;
    $name{$p} = $j->{name};
    for my $c (@{ $j->{cells} }) {
        $res{$p}{ $c->{dir} }{ $c->{cell} } = $c;
        push @order, $c->{cell} unless $seen{ $c->{cell} }++;
    }
}

my @cols = map { my $p = $_; map { [ $p, $_ ] } qw(in out) } @peers;
my $w = 12;
printf "\n%-12s", 'cell';
printf " %-${w}s", "$_->[0] $_->[1]" for @cols;
print "\n", '-' x (12 + @cols * ($w + 1)), "\n";
my (%count, @why, %whyn);
for my $cell (@order) {
    printf '%-12s', $cell;
    for my $c (@cols) {
        my ($p, $d) = @$c;
        my $r = $res{$p}{$d}{$cell};
        my $v = !$res{$p} ? '?' : !$r ? '-' : $r->{result};
        if ($r && $v eq 'skip') {
            my $k = $r->{why};
            push @why, $k unless $whyn{$k};
            $whyn{$k} //= scalar @why;
            $v = "skip($whyn{$k})";
        }
        $count{ $v =~ /^skip/ ? 'skip' : $v }++ if $v ne '-';
        printf " %-${w}s", $v;
    }
    print "\n";
}
print "\n";
printf "(%d) %s\n", $_ + 1, $why[$_] for 0 .. $#why;
printf "\npeers: %s\n", join(', ', map { $name{$_} // "$_ (no results)" } @peers);
printf "cells: %d ok, %d FAIL, %d skip%s\n", $count{ok} // 0, $count{FAIL} // 0, $count{skip} // 0,
    $count{'?'} ? ", $count{'?'} unknown" : '';
exit 0;
