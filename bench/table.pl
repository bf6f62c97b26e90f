#!/usr/bin/perl
# bench/table.pl - print the table of one or more runs.jsonl files.
#
#   perl bench/table.pl bench/results/DATE/runs.jsonl [MORE.jsonl ...]
#
# Several files are merged (for example Postern and Postfix measured in one
# invocation and OpenSMTPD's slow cells in another); the machine lines and
# disk ceiling come from the first file that has them. Ratios to Postfix
# still pair runs of the same file only when run numbers match, so merge
# files whose Postern and Postfix runs were made together.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Bench::Report;

die "usage: bench/table.pl RUNS.jsonl...\n" unless @ARGV;
my $rep = Bench::Report->from_jsonl(shift @ARGV);
for my $f (@ARGV) {
    my $more = Bench::Report->from_jsonl($f);
    push @{ $rep->{runs} }, @{ $more->{runs} };
    $rep->{disk} //= $more->{disk};
    $rep->{info} = $more->{info} unless @{ $rep->{info} };
}
my %m = map { $_->{target} => 1 } @{ $rep->{runs} };
$rep->{mtas} = [ grep { $m{$_} } qw(postern postfix opensmtpd) ];
print $rep->finish;
