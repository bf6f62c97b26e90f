#!/usr/bin/perl
# The commands around the daemon: the parameter docs come from the one
# parameter table, the shipped configs validate, `make install` lays out a
# system install, smtpctl explains itself.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use FindBin;

my $top = "$FindBin::Bin/../..";
chdir $top or die "chdir $top: $!";
my $smtpctl = "bin/smtpctl";

sub write_text {
    my ($path, $text, $mode) = @_;
    open(my $fh, $mode // '>', $path) or die "$path: $!";
    print $fh $text;
    close $fh;
}

# A new temporary dir holding etc/main.cf, a copy of the development config
# with $extra appended.
sub etc_copy {
    my ($extra) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/etc";
    system("cp etc/main.cf $dir/etc/main.cf") == 0 or die;
    write_text("$dir/etc/main.cf", $extra, '>>');
    return $dir;
}

# docs/parameters.md is what `smtpctl params` prints from params.def.
my $generated = `$smtpctl params`;
is($?, 0, 'smtpctl params exits 0');
open(my $fh, '<', 'docs/parameters.md') or die "docs/parameters.md: $!";
my $doc = do { local $/; <$fh> };
close $fh;
ok($doc eq $generated, 'docs/parameters.md is current (run: make docs)');
like($generated, qr/^\| `retry_delay` \| duration \(1-604800\) \| `5m` \| main\.cf, domains \|/m,
     'a row shows type, range, default and where it may be set');
my $json = `$smtpctl --json params`;
like($json, qr/^\[\{"name":"myhostname",/, 'params --json is a JSON array');

# The development config validates; a broken copy names file and line.
my $out = `$smtpctl -c etc check 2>&1`;
is($?, 0, 'etc/main.cf passes smtpctl check') or diag $out;
my $tmp = etc_copy("retry_delay = 5 minutes\n");
my $lines = () = do { open(my $c, '<', "$tmp/etc/main.cf") or die; <$c> };
$out = `$smtpctl -c $tmp/etc check 2>&1`;
is($? >> 8, 1, 'broken copy: check exits 1');
like($out, qr{^\Q$tmp\E/etc/main\.cf:$lines: bad duration '5 minutes' for retry_delay}m,
     'error names the file and the last line');

# makemap checks a domains map entry by entry; check validates it too.
my $mdir = etc_copy("relay_gateways = isp=192.0.2.25:587/high\n");
write_text("$mdir/etc/domains", "# rules\nexample.com direct_attempts=2 gateways=isp\n.bad.example retry_delay=5x\n");
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/domains 2>&1`;
is($? >> 8, 1, 'makemap refuses a domains map with a bad entry');
like($out, qr{^\Q$mdir\E/etc/domains:3: \.bad\.example: bad duration '5x' for retry_delay}m,
     'naming file, line, key and option');
ok(!-e "$mdir/etc/domains.db", 'and writes no .db');
$out = `$smtpctl -c $mdir/etc check 2>&1`;
is($? >> 8, 1, 'check fails on the same map');
like($out, qr{domains:3: \.bad\.example: bad duration}, 'with the same message');
write_text("$mdir/etc/domains", "example.com gateways=nosuch\n");
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/domains 2>&1`;
like($out, qr{domains:1: example\.com: gateway 'nosuch' is not in relay_gateways},
     'gateway names are checked against relay_gateways');
write_text("$mdir/etc/domains", "example.com direct_attempts=2 gateways=isp\n* retry_delay=10m\n");
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/domains 2>&1`;
is($?, 0, 'a good domains map compiles') or diag $out;
ok(-f "$mdir/etc/domains.db", 'domains.db written');
write_text("$mdir/etc/senders", "boss\@example.com isp\n\@branch.example nosuch\n");
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/senders 2>&1`;
like($out, qr{senders:2: \@branch\.example: gateway 'nosuch' is not in relay_gateways},
     'sender map gateway names are checked');
write_text("$mdir/etc/senders", "boss\@example.com isp\n");
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/senders 2>&1`;
is($?, 0, 'a good sender map compiles') or diag $out;
write_text("$mdir/etc/secrets", "isp user secret\n");
chmod 0644, "$mdir/etc/secrets";
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/secrets 2>&1`;
is($? >> 8, 1, 'a secrets map readable by others is refused');
chmod 0600, "$mdir/etc/secrets";
$out = `$smtpctl -c $mdir/etc makemap $mdir/etc/secrets 2>&1`;
is($?, 0, 'mode 0600 secrets compile') or diag $out;
is((stat("$mdir/etc/secrets.db"))[2] & 07777, 0600, 'secrets.db is mode 0600');

# Commands that need the daemon say clearly that it is not running.
$out = `$smtpctl -c $tmp/etc status 2>&1`;
is($? >> 8, 2, 'status without a daemon exits 2');
like($out, qr/postern is not running/, 'and says postern is not running');
$out = `$smtpctl 2>&1`;
is($? >> 8, 2, 'no command: usage, exit 2');
like($out, qr/^usage: smtpctl/, 'usage text');

# make install into a staging root.
my $dest = tempdir(CLEANUP => 1);
$out = `make -s install DESTDIR=$dest PREFIX=/usr/local 2>&1`;
is($?, 0, 'make install DESTDIR=... PREFIX=/usr/local') or diag $out;
for my $p (qw(master smtpd qmgr dnsd deliver relay smtpctl sendmail postdrop)) {
    ok(-x "$dest/usr/local/libexec/postern/$p", "installed $p");
}
SKIP: {
    skip 'postdrop is setgid only when installed by root with a postdrop group', 1
        unless $> == 0 && defined getgrnam('postdrop');
    my @st = stat("$dest/usr/local/libexec/postern/postdrop");
    ok(($st[2] & 07777) == 02755 && $st[5] == getgrnam('postdrop'), 'postdrop: group postdrop, mode 2755');
}
ok(-l "$dest/usr/local/sbin/smtpctl", 'smtpctl link in sbin');
for my $page (qw(man1/sendmail.1 man1/mailq.1 man5/postern.conf.5 man5/postern-domains.5
                 man8/postern.8 man8/smtpctl.8)) {
    ok(-f "$dest/usr/local/share/man/$page", "man page $page installed");
}
ok(-f "$dest/usr/local/share/bash-completion/completions/smtpctl", 'bash completion for smtpctl installed');
ok(-f "$dest/etc/postern/main.cf", 'system main.cf');
ok(-f "$dest/etc/postern/domains", 'example domains map');
ok(-f "$dest/etc/systemd/system/postern.service", 'systemd unit');
open($fh, '<', "$dest/etc/postern/main.cf") or die;
my $cf = do { local $/; <$fh> };
like($cf, qr{^queue_directory = /var/spool/postern$}m, 'system spool path');
like($cf, qr{^smtpd_listen = 0\.0\.0\.0:25 \[::\]:25$}m, 'system listen addresses');
$out = `$dest/usr/local/libexec/postern/smtpctl -c $dest/etc/postern check 2>&1`;
is($?, 0, 'installed main.cf passes check') or diag $out;
open($fh, '<', "$dest/etc/systemd/system/postern.service") or die;
my $unit = do { local $/; <$fh> };
like($unit, qr{^ExecStart=/usr/local/libexec/postern/master -c /etc/postern -d$}m,
     'unit starts master with the config dir');

done_testing();
