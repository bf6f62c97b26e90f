#!/usr/bin/perl
# The Debian package (make deb, docs/debian.md): what dpkg-deb shows of it
# and what lintian says. The control fields (version, Provides, Conflicts,
# Replaces), every file make install installs (with PREFIX=/usr) in the
# package and the links Debian's MTAs provide, no setuid or setgid file
# in the archive (postdrop gets its group from a dpkg stat override in
# postinst), the conffiles, maintainer scripts that parse, a unit that
# systemd-analyze verify accepts, and lintian with no error and no
# warning docs/debian.md does not explain. Installing it on a fresh
# system is bench/deb-install.
#
# It uses postern_VERSION_ARCH.deb in the top folder when that is newer
# than every file of the tree, else runs make deb (about 30 s, niced).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Find;
use FindBin;

my $top = "$FindBin::Bin/../..";
chdir $top or die "chdir $top: $!";

sub have { system("command -v $_[0] >/dev/null 2>&1") == 0 }
for my $tool (qw(dpkg-buildpackage dh dpkg-deb lintian)) {
    plan skip_all => "$tool not installed (make deps installs debhelper, dpkg-dev and lintian; as root)"
        unless have($tool);
}

sub slurp {
    my ($path) = @_;
    open(my $fh, '<', $path) or die "$path: $!";
    local $/;
    return <$fh>;
}

my ($version) = slurp('common/mail/proto.h') =~ /^#define POSTERN_VERSION "([^"]+)"/m
    or die "no POSTERN_VERSION";
chomp(my $arch = `dpkg --print-architecture`);
my $deb = "postern_${version}_$arch.deb";

# The newest file of the tree (what git knows, with uncommitted changes).
sub tree_mtime {
    my $newest = 0;
    my @files = -d '.git' || -f '.git' ? split /\n/, `git ls-files -co --exclude-standard 2>/dev/null` : ();
    for my $f (@files) {
        next if $f =~ /\.deb$/;
        my $m = (lstat $f)[9] or next;
        $newest = $m if $m > $newest;
    }
    return $newest;
}
if (-f $deb && (stat $deb)[9] > tree_mtime()) {
    note("using $deb (newer than the tree)");
} else {
    my $out = `nice -n 10 make deb 2>&1`;
    is($?, 0, 'make deb') or diag $out;
}
ok(-f $deb, "make deb leaves $deb in the top folder") or done_testing(), exit;

# Control fields
my %f;
for my $k (qw(Package Version Architecture Provides Conflicts Replaces Depends Pre-Depends)) {
    chomp($f{$k} = `dpkg-deb -f $deb $k`);
}
is($f{Package}, 'postern', 'Package: postern');
is($f{Version}, $version, 'Version is POSTERN_VERSION');
is($f{Architecture}, $arch, "Architecture: $arch");
for my $k (qw(Provides Conflicts Replaces)) {
    like($f{$k}, qr/(^|, )mail-transport-agent(,|$)/,
         "$k: mail-transport-agent (as Debian's postfix and exim4 declare it)");
}
like($f{Depends}, qr/\badduser\b/, 'Depends: adduser (postinst makes the user and group)');

# Files: "MODE OWNER/GROUP SIZE DATE TIME ./PATH [-> TARGET]"
my (%mode, %owner, %link);
for (split /\n/, `dpkg-deb -c $deb`) {
    my ($m, $o, $rest) = /^(\S+)\s+(\S+)\s+\d+\s+\S+\s+\S+\s+\.(\/.*)$/ or next;
    my ($path, $target) = split / -> /, $rest;
    $path =~ s{(.)/$}{$1};
    ($mode{$path}, $owner{$path}) = ($m, $o);
    $link{$path} = $target if defined $target;
}
ok(scalar(keys %mode) > 0, 'dpkg-deb -c lists the files');

my $lib = '/usr/libexec/postern';
for my $p (qw(master smtpd qmgr dnsd deliver relay smtpctl sendmail postdrop)) {
    is($mode{"$lib/$p"} // 'missing', '-rwxr-xr-x', "$lib/$p 0755");
}
is($owner{"$lib/postdrop"}, 'root/root', "$lib/postdrop root:root in the archive");
my @special = grep { $mode{$_} =~ /^...[sS]|^......[sS]/ } sort keys %mode;
is("@special", '', 'no setuid or setgid file in the archive (never setgid root)');
my $postinst = `dpkg-deb -I $deb postinst`;
like($postinst, qr{dpkg-statoverride --update --add root postdrop 2755 "\$POSTDROP"}, 'postinst makes postdrop root:postdrop 2755 (dpkg-statoverride)');
like($postinst, qr{^POSTDROP=\Q$lib\E/postdrop$}m, '... for the postdrop the package ships');
like($postinst, qr{install -d -o postern -g postdrop -m 1730 "\$SPOOL/maildrop"}, 'postinst makes maildrop/ postern:postdrop 1730');

# The commands, where Debian's other MTAs put them
my %cmd = ('/usr/sbin/sendmail' => 'sendmail', '/usr/bin/mailq' => 'sendmail',
           '/usr/bin/newaliases' => 'sendmail', '/usr/lib/sendmail' => 'sendmail',
           '/usr/sbin/smtpctl' => 'smtpctl');
for my $c (sort keys %cmd) {
    my $t = $link{$c};
    ok(defined $t, "$c is a link") or next;
    (my $dir = $c) =~ s{/[^/]+$}{};
    my $abs = $t =~ m{^/} ? $t : "$dir/$t";
    1 while $abs =~ s{/[^/]+/\.\./}{/};
    is($abs, "$lib/$cmd{$c}", "$c -> $lib/$cmd{$c}");
}
for my $l (sort keys %link) {
    (my $dir = $l) =~ s{/[^/]+$}{};
    my $abs = $link{$l} =~ m{^/} ? $link{$l} : "$dir/$link{$l}";
    1 while $abs =~ s{/[^/]+/\.\./}{/};
    ok(exists $mode{$abs}, "link $l resolves inside the package");
}
ok(exists $mode{'/lib/systemd/system/postern.service'}, 'the unit in /lib/systemd/system (where dh_installsystemd enables it)');

# Everything make install installs is in the package: the package is make
# install's output (docs/debian.md names the two differences).
SKIP: {
    skip 'no build (bin/master): make install needs one', 1 unless -x 'bin/master';
    my $dest = tempdir(CLEANUP => 1);
    my $out = `make -s install DESTDIR=$dest PREFIX=/usr 2>&1`;
    is($?, 0, 'make install DESTDIR=... PREFIX=/usr') or diag $out;
    my @missing;
    find({ no_chdir => 1, wanted => sub {
        return if $_ eq $dest;
        (my $p = $_) =~ s{^\Q$dest\E}{};
        return if $p eq '/usr/share/doc/postern/INSTALL';
        $p =~ s{^/usr/lib/systemd/system}{/lib/systemd/system};
        my $gz = $p =~ m{^/usr/share/man/} ? "$p.gz" : $p;
        return if $p eq '/usr/lib/systemd' || exists $mode{$p} || exists $mode{$gz};
        push @missing, $p;
    } }, $dest);
    is("@missing", '', 'every file make install installs is in the package');
}

# Conffiles and maintainer scripts
my $ctl = tempdir(CLEANUP => 1);
system('dpkg-deb', '-e', $deb, $ctl) == 0 or die "dpkg-deb -e";
my @conf = split /\n/, slurp("$ctl/conffiles");
is_deeply([sort @conf], ['/etc/postern/dkim', '/etc/postern/domains', '/etc/postern/main.cf'],
          'conffiles: /etc/postern/main.cf, domains and dkim');
for my $s (qw(postinst postrm prerm)) {
    next unless -f "$ctl/$s";
    is(system('sh', '-n', "$ctl/$s"), 0, "$s parses (sh -n)");
}
like(slurp("$ctl/postrm"), qr{rm -rf "\$SPOOL" /etc/postern}, 'postrm purge removes the spool and /etc/postern');
like(slurp("$ctl/postinst"), qr{deb-systemd-helper enable 'postern\.service'}, 'postinst enables postern.service');

# systemd-analyze verify, the unit pointed at the unpacked programs
SKIP: {
    skip 'systemd-analyze not installed', 1 unless have('systemd-analyze');
    my $x = tempdir(CLEANUP => 1);
    system('dpkg-deb', '-x', $deb, $x) == 0 or die "dpkg-deb -x";
    my $unit = slurp("$x/lib/systemd/system/postern.service");
    $unit =~ s{\Q$lib\E/}{$x$lib/}g;
    open(my $fh, '>', "$x/postern.service") or die;
    print $fh $unit;
    close $fh;
    my $out = `systemd-analyze verify $x/postern.service 2>&1`;
    ok($? == 0 && $out eq '', 'systemd-analyze verify postern.service is clean') or diag $out;
}

# lintian: no errors; each warning explained in docs/debian.md
my $lint = `lintian --pedantic -I $deb 2>/dev/null`;
my @errors = grep { /^E: / } split /\n/, $lint;
is("@errors", '', 'lintian: no errors') or diag $lint;
my $doc = -f 'docs/debian.md' ? slurp('docs/debian.md') : '';
my @unexplained;
for (split /\n/, $lint) {
    my ($tag) = /^[WI]: postern: (\S+)/ or next;
    push @unexplained, $tag unless index($doc, "`$tag`") >= 0;
}
is("@unexplained", '', 'every lintian warning and info is explained in docs/debian.md') or diag $lint;
note($lint);

done_testing();
