#!/usr/bin/perl
# The layers of common/ (common/README.md) hold: tools/layers.sh, which
# every `make` runs, passes on this tree and fails on a copy that breaks
# each rule (a lower layer including an upper one, a program including
# another program's header, a file straight in common/).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use FindBin;

my $top = "$FindBin::Bin/../..";
chdir $top or die "chdir $top: $!";

my $out = `sh tools/layers.sh 2>&1`;
is($?, 0, 'this tree keeps the include direction') or diag $out;

# Each rule broken alone in a fresh copy of the sources.
sub copy_tree {
    my $dir = tempdir(CLEANUP => 1);
    system('cp', '-a', 'common', 'smtpd', 'qmgr', 'tools', $dir) == 0 or die "cp: $?";
    return $dir;
}

sub append {
    my ($file, $text) = @_;
    open(my $fh, '>>', $file) or die "$file: $!";
    print $fh $text;
    close $fh;
}

my @cases = (
    ['base includes mail', 'common/base/util.c', qq{#include "mail/qfile.h"\n},
     qr{common/base/util\.c:\d+: "mail/qfile\.h": common/base may include only: base}],
    ['base includes delivery', 'common/base/log.h', qq{#include "delivery/smtp_client.h"\n},
     qr{common/base/log\.h:\d+: "delivery/smtp_client\.h"}],
    ['mail includes delivery', 'common/mail/qfile.c', qq{#include "delivery/dlv_engine.h"\n},
     qr{common/mail/qfile\.c:\d+: "delivery/dlv_engine\.h": common/mail may include only: base mail}],
    ['a program includes another program', 'smtpd/server.c', qq{#include "../qmgr/qmgr.h"\n},
     qr{smtpd/server\.c:\d+: "\.\./qmgr/qmgr\.h"}],
    ['a common header named without its layer', 'qmgr/main.c', qq{#include "util.h"\n},
     qr{qmgr/main\.c:\d+: "util\.h" is not in qmgr/}],
);
for my $c (@cases) {
    my ($name, $file, $text, $want) = @$c;
    my $dir = copy_tree();
    append("$dir/$file", $text);
    my $o = `sh $dir/tools/layers.sh $dir 2>&1`;
    is($? >> 8, 1, "$name: refused");
    like($o, $want, "$name: the line is named");
}

my $dir = copy_tree();
append("$dir/common/stray.c", "int stray;\n");
my $o = `sh $dir/tools/layers.sh $dir 2>&1`;
is($? >> 8, 1, 'a file straight in common/: refused');
like($o, qr{common/stray\.c: common/ holds only}, 'and named');

done_testing();
