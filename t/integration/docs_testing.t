#!/usr/bin/perl
# docs_testing.t - docs/testing.md keeps up with the tests: every test
# file in t/integration/ (and t/interop/ when there is one) has its row,
# and every test file the page names exists.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;

my $root = Postern::Test->root;
open my $fh, '<', "$root/docs/testing.md" or die "docs/testing.md: $!";
my $doc = do { local $/; <$fh> };
my @files = map { s{.*/}{}r } glob("$root/t/integration/*.t"), glob("$root/t/interop/*.t");
ok(@files > 30, 'found the test files (' . scalar(@files) . ')');
for my $f (@files) {
    like($doc, qr/`\Q$f\E`/, "$f is described in docs/testing.md");
}
my %have = map { $_ => 1 } @files, map { s{.*/}{}r } glob("$root/t/*.t");
my %named = map { $_ => 1 } $doc =~ /`([a-z0-9_]+\.t)`/g;
for my $n (sort keys %named) {
    ok($have{$n}, "docs/testing.md names $n, and it exists");
}
done_testing();
