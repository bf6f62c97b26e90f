#!/usr/bin/perl
# Run every libFuzzer target in build/fuzz for a short time (FUZZ_SECONDS,
# default 15) over its seed corpus in t/fuzz/NAME/. New inputs go to a
# temporary directory, never into the source tree. A crash, leak, timeout
# or sanitizer report fails the test and leaves the reproducer named in
# the output.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);

my @targets = grep { -x $_ && !/\.(o|d)$/ } glob('build/fuzz/*');
plan skip_all => 'no fuzzers built (make fuzz needs clang)' unless @targets;
my $secs = $ENV{FUZZ_SECONDS} || 15;

for my $bin (@targets) {
    (my $name = $bin) =~ s{.*/}{};
    my $seeds = "t/fuzz/$name";
    my $work = tempdir(CLEANUP => 1);
    my $artifacts = tempdir(CLEANUP => 0);
    my @cmd = ($bin, "-max_total_time=$secs", '-timeout=10', '-rss_limit_mb=2048',
               "-artifact_prefix=$artifacts/", $work, (-d $seeds ? $seeds : ()));
    my $out = `@cmd 2>&1`;
    my $rc = $? >> 8;
    my ($runs) = $out =~ /Done (\d+) runs/;
    ok($rc == 0, "$name: no crash in ${secs}s" . (defined $runs ? " ($runs runs)" : ''))
        or diag(join("\n", (split /\n/, $out)[-30 .. -1]), "\nartifacts in $artifacts");
}
done_testing();
