#!/usr/bin/perl
# sendmail_maildrop.t - mail from the local sendmail while Postern is down
# is not lost: sendmail hands it to postdrop, which leaves it in
# queue_directory/maildrop/, and smtpd picks it up once it runs. Shown from
# the outside, with the real programs:
#   - Postern stopped: bin/sendmail -C etc exits 0 (quietly; -v says where
#     the message went), the file in maildrop/ belongs to the caller, mode
#     0644, and is a maildrop stream; started again, smtpd delivers every
#     such message to the MX peer and maildrop/ is empty; the log says
#     "accepted ... uid=N via=maildrop" and Received: names the user id
#   - as root: a message from a non-root user (nobody, with the postdrop
#     group, as the setgid postdrop would have) says "from userid UID"
#   - a file with a 5xx-worthy MAIL FROM, a malformed file and (with
#     smtpd_bare_newline = reject) a file with bare LFs are moved to
#     maildrop-bad/ with a warning naming the file, the uid and the reply;
#     with normalize the bare-LF file is delivered with CR LF (picked up
#     through inotify, without waiting for the 60 s scan)
#   - queue_minfree cannot be met: postdrop exits 75, sendmail exits 75,
#     nothing is left in maildrop/ (not even a temporary file)
#   - the queue file cannot be written (incoming/ not writable, as on a
#     full disk): the file stays in maildrop/, and is delivered once the
#     spool is writable again
#   - intake paused: smtpd's 421 greeting sends sendmail to the maildrop;
#     the file waits while paused and goes out on resume
#   - as root: maildrop/ is mail_owner:postdrop 1730, nobody (even with the
#     postdrop group) can list it, nobody without the group cannot open a
#     file in it; the installed postdrop is root:postdrop 2755 and, run by
#     another user, ignores -C and POSTERN_CONFIG
#   - not root (a development run): maildrop/ is ours, mode 0700
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Postern::Test;
use Postern::Util qw(wait_until slurp run_prog);

my $ROOT = Postern::Test->root_dir;
my $SM   = "$ROOT/bin/sendmail";
plan skip_all => 'bin/sendmail or bin/postdrop is not built' unless -x $SM && -x "$ROOT/bin/postdrop";

my $pt = Postern::Test->new(retry_delay => '1h');
my $mx = $pt->peer(name => 'dropmx', addr => '127.0.0.215');
$pt->write_file('domains', "md.test mx=127.0.0.215\n");
my ($mrc, $mout) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($mrc, 0, 'makemap domains') or diag $mout;
my $etc      = $pt->etc;
my $maildrop = $pt->spool . '/maildrop';
my $bad      = $pt->spool . '/maildrop-bad';
my $me       = getpwuid($<) // "uid$<";

sub sendmail {
    my (%o) = @_;
    return run_prog(%o, prog => $SM, args => ['-C', $etc, @{ $o{args} }]);
}

# every name in maildrop/, dot files included
sub all_files {
    opendir(my $d, $maildrop) or return ();
    return sort grep { $_ ne '.' && $_ ne '..' } readdir $d;
}

# Write a maildrop file the way postdrop does: a dot name, then a rename.
sub drop_file {
    my ($name, $text) = @_;
    my $tmp = "$maildrop/.tmp.test$$";
    open my $fh, '>', $tmp or die "$tmp: $!";
    binmode $fh;
    print $fh $text;
    close $fh;
    chmod 0644, $tmp;
    rename $tmp, "$maildrop/$name" or die "rename: $!";
}

sub message_to {
    my ($rcpt, $timeout) = @_;
    my $t;
    wait_until($timeout // 30, sub { ($t) = $mx->messages_for($rcpt); $t }, 0.1);
    return $t;
}

# master creates maildrop/ at start; Postern then stops.
$pt->start;
$pt->stop;
ok(-d $maildrop, 'master made maildrop/');

# ================= Postern stopped =================
my ($rc, $out, $err) = sendmail(args => ['one@md.test'], input => "Subject: while down\n\nhello\n");
is($rc, 0, 'Postern stopped: sendmail exits 0') or diag $err;
is($err, '', 'and says nothing without -v');
my @f = $pt->spool_files('maildrop');
is(scalar @f, 1, 'one file in maildrop/');
my $first = $f[0] // 'none';
like($first, qr/^\d+\.[0-9a-f]{16}$/, 'named TIME.RANDOM');
my @st = stat("$maildrop/$first");
is($st[4], $<, 'owned by the caller');
is(($st[2] // 0) & 07777, 0644, 'mode 0644');
like(slurp("$maildrop/$first"),
    qr/\APOSTDROP 1\r\nMAIL FROM:<\Q$me\E\@postern\.test> SIZE=\d+\r\nRCPT TO:<one\@md\.test>\r\nDATA\r\n.*\r\nhello\r\n\.\r\n\z/s,
    'the file is the SMTP transaction');

($rc, $out, $err) = sendmail(args => ['-v', 'two@md.test'], input => "Subject: verbose\n\nx\n");
is($rc, 0, 'with -v: exit 0') or diag $err;
like($err, qr/postern is not accepting mail at 127\.0\.0\.1:\d+: connection refused; the message was left in the maildrop/,
    '-v says the message was left in the maildrop');
is(scalar($pt->spool_files('maildrop')), 2, 'two files now');

# --- queue_minfree cannot be met ---
{
    my @before = all_files();
    $pt->config(queue_minfree => '1048576G');
    ($rc, $out, $err) = sendmail(args => ['full@md.test'], input => "Subject: full\n\nx\n");
    is($rc, 75, 'queue_minfree not met: sendmail exits 75');
    like($err, qr/postdrop: not enough free space in .*queue_minfree is 1125899906842624/,
        'postdrop says why');
    like($err, qr/sendmail: postern is not accepting mail at .*; message not sent/, 'and sendmail that nothing was sent');
    is_deeply([all_files()], \@before, 'nothing left in maildrop/, not even a temporary file');
    ($rc, $out, $err) = run_prog(prog => "$ROOT/bin/postdrop", args => ['-C', $etc],
        input => "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<a\@md.test>\r\nDATA\r\n.\r\n");
    is($rc, 75, 'postdrop itself exits 75');
    $pt->config(queue_minfree => undef);
}

# --- postdrop refuses a malformed stream ---
{
    my @before = all_files();
    ($rc, $out, $err) = run_prog(prog => "$ROOT/bin/postdrop", args => ['-C', $etc],
        input => "POSTDROP 1\r\nMAIL FROM:<>\r\nDATA\r\n.\r\n");
    is($rc, 65, 'postdrop: a stream without RCPT: exit 65');
    like($err, qr/not a valid maildrop stream: DATA before any RCPT/, 'and says why');
    ($rc, $out, $err) = run_prog(prog => "$ROOT/bin/postdrop", args => ['-C', $etc],
        input => "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<a\@md.test>\r\nDATA\r\nno end\r\n");
    is($rc, 65, 'postdrop: a stream without its end: exit 65');
    is_deeply([all_files()], \@before, 'nothing left');
}

# --- a non-root user (as root) ---
my ($nuid, $ngid, $pgid);
SKIP: {
    skip 'not root: no other user to send as', 3 unless $pt->is_root;
    ($nuid, $ngid) = (getpwnam('nobody'))[2, 3];
    $pgid = getgrnam('postdrop');
    skip 'no user nobody or no group postdrop', 3 unless defined $nuid && defined $pgid;
    # what the setgid postdrop gets: the caller's uid, group postdrop
    ($rc, $out, $err) = sendmail(args => ['user@md.test'], input => "Subject: from nobody\n\nx\n",
        uid => $nuid, gid => $ngid, groups => [$pgid]);
    is($rc, 0, 'nobody (with the postdrop group): sendmail exits 0') or diag $err;
    my ($nf) = grep { (stat "$maildrop/$_")[4] == $nuid } $pt->spool_files('maildrop');
    ok($nf, "the file belongs to nobody's uid $nuid");
    ($rc, $out, $err) = sendmail(args => ['user2@md.test'], input => "Subject: no group\n\nx\n",
        uid => $nuid, gid => $ngid);
    is($rc, 75, 'nobody without the group (no setgid postdrop): exit 75, message not sent')
        or diag $err;
}

# --- files smtpd must refuse, written straight into maildrop/ ---
drop_file('1000000001.badsender',
    "POSTDROP 1\r\nMAIL FROM:<no spaces\@x>\r\nRCPT TO:<bs\@md.test>\r\nDATA\r\nSubject: b\r\n\r\nx\r\n.\r\n");
drop_file('1000000002.garbage', "this is not a maildrop file\n");
my $bare = "POSTDROP 1\r\nMAIL FROM:<bare\@src.test>\r\nRCPT TO:<%s\@md.test>\r\nDATA\r\n"
    . "Subject: bare\r\n\r\nline one\nline two\r\n.\r\n";
drop_file('1000000003.barelf', sprintf($bare, 'bare1'));

# ================= Postern starts =================
$pt->start;
for my $r (qw(one@md.test two@md.test)) {
    ok(message_to($r), "$r: delivered to the MX once Postern runs");
}
ok(wait_until(20, sub { !$pt->spool_files('maildrop') }), 'maildrop/ is empty') or diag join(' ', all_files());
{
    my $t = message_to('one@md.test');
    my $text = $t ? $mx->message_text($t) // '' : '';
    like($text, qr/^Received: by postern\.test \(Postern, from userid $<\)\r\n\tid [0-9A-F]{18}\r\n\tfor <one\@md\.test>;/m,
        'Received: by ... (Postern, from userid UID)');
    like($text, qr/^Received: by postern\.test \(Postern sendmail, from userid $<\);/m,
        "and sendmail's own Received: below it");
    like($text, qr/\r\n\r\nhello\r\n\z/, 'the body');
    is($t && $t->{mail_from}, "$me\@postern.test", 'the envelope sender');
}
like($pt->wait_log(qr/accepted from=<\Q$me\E\@postern\.test> size=\d+ nrcpt=1 uid=$< via=maildrop file=\Q$first\E/, 10) // '',
    qr/^.*[0-9A-F]{18}: accepted/, 'logged like an SMTP message: QID: accepted from=<...> ... uid=N via=maildrop');
SKIP: {
    skip 'not root', 2 unless defined $pgid;
    my $t = message_to('user@md.test');
    like($t ? $mx->message_text($t) // '' : '', qr/^Received: by postern\.test \(Postern, from userid $nuid\)/m,
        "nobody's message: Received: says from userid $nuid");
    ok($pt->wait_log(qr/accepted from=<nobody\@postern\.test> .* uid=$nuid via=maildrop/, 10),
        'and the log names the uid');
}

# the refused ones: moved aside, logged, not lost
ok(wait_until(10, sub { -e "$bad/1000000001.badsender" }), 'bad MAIL FROM: moved to maildrop-bad/');
like($pt->wait_log(qr/maildrop: 1000000001\.badsender from uid $< refused: 501 5\.1\.7 .*; moved to maildrop-bad/, 10) // '',
    qr/warn/i, 'a warning with the file, the uid and the reply');
ok(-e "$bad/1000000002.garbage", 'a malformed file: moved aside');
ok($pt->wait_log(qr/maildrop: 1000000002\.garbage from uid $< refused: not a maildrop file/, 10), 'and logged');
ok(-e "$bad/1000000003.barelf", 'bare LF with smtpd_bare_newline = reject: moved aside');
ok($pt->wait_log(qr/maildrop: 1000000003\.barelf from uid $< refused: 550 5\.5\.2 .*bare <LF>/, 10), 'with the 550');
ok(!$mx->messages_for('bs@md.test') && !$mx->messages_for('bare1@md.test'), 'none of them was sent');

# --- bare LF with normalize: delivered, found through inotify ---
{
    $pt->config(smtpd_bare_newline => 'normalize');
    my ($r2, $o2) = $pt->smtpctl('reload');
    is($r2, 0, 'reload with smtpd_bare_newline = normalize') or diag $o2;
    $pt->mark_log;
    drop_file('1000000004.barelf', sprintf($bare, 'bare2'));
    my $t = message_to('bare2@md.test', 20);
    ok($t, 'bare LF with normalize: delivered (well before the 60 s scan)');
    like($t ? $mx->message_text($t) // '' : '', qr/\r\n\r\nline one\r\nline two\r\n\z/, 'with CR LF line ends');
    ok(wait_until(10, sub { !-e "$maildrop/1000000004.barelf" }), 'and removed from maildrop/');
}

# --- the queue file cannot be written: the file stays ---
{
    my $incoming = $pt->spool . '/incoming';
    chmod 0500, $incoming or die "chmod: $!";
    $pt->mark_log;
    drop_file('1000000005.later', "POSTDROP 1\r\nMAIL FROM:<later\@src.test>\r\nRCPT TO:<later\@md.test>\r\nDATA\r\n"
        . "Subject: later\r\n\r\nx\r\n.\r\n");
    ok($pt->wait_log(qr/maildrop: 1000000005\.later from uid $< deferred: the queue file could not be written/, 20),
        'incoming/ not writable: deferred');
    ok(-e "$maildrop/1000000005.later", 'the file stays in maildrop/');
    chmod 0700, $incoming;
    my ($p1) = $pt->smtpctl('pause', 'intake');
    my ($p2) = $pt->smtpctl('resume', 'intake');    # a resume scans maildrop/ again
    ok(message_to('later@md.test', 20), 'delivered once the spool is writable');
    ok(wait_until(10, sub { !-e "$maildrop/1000000005.later" }), 'and gone from maildrop/');
}

# --- intake paused: the 421 greeting sends sendmail to the maildrop ---
{
    my ($p) = $pt->smtpctl('pause', 'intake');
    is($p, 0, 'intake paused');
    ($rc, $out, $err) = sendmail(args => ['-v', 'paused@md.test'], input => "Subject: paused\n\nx\n");
    is($rc, 0, 'sendmail while paused: exit 0') or diag $err;
    like($err, qr/postern is not accepting mail at 127\.0\.0\.1:\d+: 421 .*4\.3\.2 .*; the message was left in the maildrop/, 'after the 421 greeting')
        or diag $err;
    sleep 1;
    is(scalar($pt->spool_files('maildrop')), 1, 'the file waits while intake is paused');
    ($p) = $pt->smtpctl('resume', 'intake');
    ok(message_to('paused@md.test', 20), 'and goes out on resume');
}

my ($src, $sout) = $pt->smtpctl('show', 'smtpd');
like($sout, qr/^maildrop_picked\s+[1-9]/m, 'show smtpd counts picked-up files');
like($sout, qr/^maildrop_refused\s+3$/m, 'and refused ones');

# ================= permissions =================
SKIP: {
    skip 'not root: a development spool', 1 if $pt->is_root;
    my @d = stat($maildrop);
    ok(($d[2] & 07777) == 0700 && $d[4] == $<, 'not root: maildrop/ is ours, mode 0700');
}
SKIP: {
    skip 'not root', 10 unless $pt->is_root && defined $pgid;
    my @d = stat($maildrop);
    is($d[2] & 07777, 01730, 'maildrop/ mode 1730');
    is(scalar getpwuid($d[4]), 'postern', 'owned by mail_owner');
    is(scalar getgrgid($d[5]), 'postdrop', 'group postdrop');
    my @b = stat($bad);
    is($b[2] & 07777, 0700, 'maildrop-bad/ mode 0700');
    # as nobody, with and without the postdrop group: list it? open a file in it?
    my ($p) = $pt->smtpctl('pause', 'intake');    # so that the file stays
    drop_file('1000000006.private', "POSTDROP 1\r\n");
    my $probe = sub {
        my (@groups) = @_;
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            $) = join(' ', $ngid, $ngid, @groups);
            $( = $ngid;
            $< = $> = $nuid;
            POSIX::_exit(100) if $< != $nuid;
            my $list = opendir(my $dh, $maildrop) ? 1 : 0;
            my $read = open(my $fh, '<', "$maildrop/1000000006.private") ? 1 : 0;
            my $bad_list = opendir(my $bh, $bad) ? 1 : 0;
            POSIX::_exit($list * 4 + $read * 2 + $bad_list);
        }
        waitpid($pid, 0);
        return $? >> 8;
    };
    is($probe->(), 0, 'nobody cannot list maildrop/ or maildrop-bad/, nor open a file in maildrop/');
    is($probe->($pgid) & 4, 0, 'with the postdrop group it still cannot list maildrop/');
    unlink "$maildrop/1000000006.private";
    ($p) = $pt->smtpctl('resume', 'intake');

    # make install: postdrop is root:postdrop 2755 and ignores -C when run by others
    my $dest = tempdir('md-install-XXXXXXXX', DIR => $pt->dir, CLEANUP => 1);
    chmod 0755, $dest;
    my $iout = `make -s -C $ROOT install DESTDIR=$dest PREFIX=/usr/local 2>&1`;
    is($?, 0, 'make install DESTDIR=...') or diag $iout;
    my $pd = "$dest/usr/local/libexec/postern/postdrop";
    my @p = stat($pd);
    is(sprintf('%04o', ($p[2] // 0) & 07777), '2755', 'installed postdrop: mode 2755');
    ok(@p && $p[4] == 0 && scalar getgrgid($p[5]) eq 'postdrop', 'owner root, group postdrop');
    my @before = all_files();
    ($rc, $out, $err) = run_prog(prog => $pd, args => ['-C', $etc], env => { POSTERN_CONFIG => $etc },
        uid => $nuid, gid => $ngid,
        input => "POSTDROP 1\r\nMAIL FROM:<>\r\nRCPT TO:<a\@md.test>\r\nDATA\r\nx\r\n.x");
    like($err, qr/note: -C \Q$etc\E ignored: running setgid, postdrop reads only \/etc\/postern\/main\.cf/,
        'setgid postdrop run by nobody ignores -C');
    isnt($rc, 0, 'and does not write into the spool -C named');
    is_deeply([all_files()], \@before, 'nothing in this maildrop/');
}

done_testing;
