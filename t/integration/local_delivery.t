#!/usr/bin/perl
# local_delivery.t - Postern as a host's MTA (issue 20): mail for
# mydestination is delivered on the host by local, from the outside:
#   - mail to root lands in mail_spool_directory/root (a temp dir, never
#     the host's /var/mail), an mbox python3's mailbox module reads: the
#     From_ line, ">From " quoting, Delivered-To:, the body; the log says
#     relay=local and "delivered to mailbox"
#   - as root: a user created here (useradd, removed at the end) gets an
#     mbox of its own, owned by it (its uid wrote it); with home_mailbox =
#     Maildir/ a Maildir file in ~/Maildir/new; a ~/.forward to a remote
#     address sends the mail to that peer with Delivered-To: added
#   - aliases compiled by bin/newaliases: root: an address at a remote
#     domain (the "satellite" case) reaches the sink peer, with ORCPT the
#     original recipient; a loop (a -> b -> a) is warned about by
#     newaliases and the mail fails with "alias loop: ..." (5.4.6); a
#     |command alias fails with 5.7.1 (allow_mail_to_commands is empty)
#   - an unknown local user is refused at RCPT with 550 5.1.1 (and
#     postmaster is always taken, even without an alias); with
#     local_recipient_check = no it is accepted and fails at delivery
#     (5.1.1, unknown user)
#   - as root: a spool directory on a 1 MiB tmpfs defers a bigger message
#     with "disk full" (nothing lost), and it is delivered once the
#     filesystem is made larger
#   - mail submitted with bin/sendmail while Postern is stopped (maildrop)
#     to a bare "root" is in root's mbox after the start
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp qw(tempdir);
use Postern::Test;
use Postern::Util qw(wait_until slurp run_prog);

my $ROOT = Postern::Test->root_dir;
my $SM   = "$ROOT/bin/sendmail";
my $PY   = -x '/usr/bin/python3' ? '/usr/bin/python3' : undef;

# The messages of an mbox as python3's mailbox module reads them:
# "FROM_LINE\tSUBJECT\tBODY-ESCAPED" lines.
sub read_mbox {
    my ($path) = @_;
    return () unless $PY;
    my $code = <<'PY';
import mailbox, sys
for m in mailbox.mbox(sys.argv[1], create=False):
    body = m.get_payload()
    print("%s\t%s\t%s\t%s" % (m.get_from(), m["Subject"], m["Delivered-To"], body.encode("unicode_escape").decode()))
PY
    open(my $ph, '-|', $PY, '-c', $code, $path) or return ();
    my @rows = map { chomp; [split /\t/, $_, 4] } <$ph>;
    close $ph;
    return @rows;
}

my $pt = Postern::Test->new(retry_delay => '1s');
my $mail = $pt->dir . '/mail';
my $sink = $pt->peer(name => 'remote', addr => '127.0.4.41');
$pt->write_file('domains', "remote.test mx=127.0.4.41\n");
my ($mrc, $mout) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($mrc, 0, 'makemap domains') or diag $mout;

# aliases, compiled as an admin does it
$pt->write_file('aliases', <<'EOF');
# the satellite case
admin: ops@remote.test
# a loop
loopa: loopb
loopb: extra, loopa
extra: root
runit: "|/bin/cat >/dev/null"
team: root,
    admin
EOF
my ($arc, $aout, $aerr) = run_prog(prog => "$ROOT/bin/newaliases", args => ['-C', $pt->etc]);
is($arc, 0, 'newaliases compiles the aliases') or diag $aerr;
like($aerr, qr/aliases:4: alias loop: loopa -> loopb -> loopa/, 'newaliases warns of the loop, with file:line');
ok(-f $pt->etc . '/aliases.db', 'aliases.db written');
$pt->start;

# ---- root's mbox ----
my $body = "First line\nFrom the start of a line\nlast\n";
my $qid = $pt->send_mail(from => 'sender@client.test', to => ['root@postern.test'], subject => 'to root',
    body => $body);
ok($qid, 'mail to root accepted') or diag $pt->smtp_error;
ok($pt->wait_log(qr/\Q$qid\E: to=<root\@postern\.test>, relay=local, .*status=sent \(delivered to mailbox \Q$mail\E\/root\)/, 20),
    'logged: relay=local, delivered to mailbox DIR/mail/root');
ok(-s "$mail/root", 'the mbox is there');
my $text = slurp("$mail/root") // '';
like($text, qr/\AFrom sender\@client\.test \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n/, 'From_ line');
like($text, qr/^>From the start of a line$/m, '>From quoting');
like($text, qr/^Delivered-To: root\@postern\.test$/m, 'Delivered-To: added');
unlike($text, qr/\r/, 'LF line ends');
SKIP: {
    skip 'python3 missing', 3 unless $PY;
    my @m = read_mbox("$mail/root");
    is(scalar @m, 1, 'python3 mailbox reads one message');
    is($m[0][1], 'to root', 'its subject');
    like($m[0][3], qr/From the start of a line/, 'its body (quoting is the mbox\'s, as mboxo readers show it)');
}
ok(!-e "$mail/root.lock", 'no dotlock left');

# ---- postmaster, unknown users ----
my ($q2, undef, $e2) = $pt->send_mail(from => 'sender@client.test', to => ['nosuch@postern.test']);
ok(!$q2, 'unknown local user refused');
like($e2 // '', qr/550 5\.1\.1/, 'with 550 5.1.1 at RCPT');
my $q3 = $pt->send_mail(from => 'sender@client.test', to => ['postmaster@postern.test'], subject => 'pm');
ok($q3, 'postmaster@ is taken without an alias');
ok($pt->wait_log(qr/\Q$q3\E: to=<postmaster\@postern\.test>, relay=local, .*status=sent \(delivered to mailbox \Q$mail\E\/root\)/, 20),
    'postmaster is root\'s');

# ---- aliases ----
my $q4 = $pt->send_mail(from => 'sender@client.test', to => ['admin@postern.test'], subject => 'satellite');
ok($q4, 'mail to an alias of a remote address accepted');
ok($pt->wait_log(qr/\Q$q4\E: to=<admin\@postern\.test>, relay=local, .*status=sent \(forwarded as \w+ to <ops\@remote\.test>\)/, 20),
    'forwarded: logged with the new queue ID');
is($sink->wait_messages(1, 30), 1, 'the remote sink got it');
my ($t) = $sink->messages_for('ops@remote.test');
ok($t, 'for ops@remote.test');
like($sink->message_text($t) // '', qr/^Delivered-To: admin\@postern\.test\r?$/m, 'with Delivered-To: the alias');
like(join(' ', map { join ' ', @{ $_->{params} || [] } } @{ $t->{rcpts} || [] }) . ' ' . ($sink->message_text($t) // ''),
    qr/Subject: satellite/, 'the same message');

my $q5 = $pt->send_mail(from => 'sender@client.test', to => ['loopa@postern.test']);
ok($q5, 'an alias in a loop is accepted (it is an alias)');
ok($pt->wait_log(qr/\Q$q5\E: to=<loopa\@postern\.test>, relay=local, .*dsn=5\.4\.6, status=failed \(mailbox: alias loop: loopa -> loopb -> loopa/, 20),
    'and fails: alias loop reported, not expanded forever');

my $q6 = $pt->send_mail(from => 'sender@client.test', to => ['runit@postern.test']);
ok($pt->wait_log(qr/\Q$q6\E: .*dsn=5\.7\.1, status=failed .*allow_mail_to_commands/, 20),
    'a |command alias fails while allow_mail_to_commands is empty');

my $q7 = $pt->send_mail(from => 'sender@client.test', to => ['team@postern.test'], subject => 'team');
ok($pt->wait_log(qr/\Q$q7\E: to=<team\@postern\.test>, relay=local, .*status=sent \(delivered to mailbox .*forwarded as/, 20),
    'a continued alias: root\'s mailbox and the remote address');

# ---- local_recipient_check = no: the unknown user fails at delivery ----
$pt->config(local_recipient_check => 'no');
my ($rrc, $rout) = $pt->smtpctl('reload');
is($rrc, 0, 'reload') or diag $rout;
my $q8 = $pt->send_mail(from => 'sender@client.test', to => ['ghost@postern.test']);
ok($q8, 'without the check an unknown user is accepted');
ok($pt->wait_log(qr/\Q$q8\E: to=<ghost\@postern\.test>, relay=local, .*dsn=5\.1\.1, status=failed \(mailbox: unknown user: "ghost"\)/, 20),
    'and bounced at delivery with 5.1.1');
$pt->config(local_recipient_check => undef);
$pt->smtpctl('reload');

# ---- a user of its own, Maildir, .forward (root only) ----
SKIP: {
    skip 'useradd needs root', 9 unless $pt->is_root;
    my $user = "pt$$";
    $user = substr($user, 0, 12);
    my $home = tempdir('ptuser-XXXXXX', DIR => '/tmp', CLEANUP => 1);
    chmod 0755, $home;
    system('useradd', '--home-dir', "$home/h", '--create-home', '--shell', '/bin/sh', $user) == 0
        or skip "useradd $user failed", 9;
    my $cleanup = Postern::Test::Guard->new(sub { system('userdel', '-r', $user) });
    my $uid = getpwnam($user);
    wait_until(15, sub {
        my ($q) = $pt->send_mail(from => 'sender@client.test', to => ["$user\@postern.test"], subject => 'probe');
        $q }, 1) or diag 'the new user is not known to smtpd in time';
    ok(wait_until(20, sub { -s "$mail/$user" }, 0.2), "mail to $user: its mbox");
    my @st = stat("$mail/$user");
    is($st[4], $uid, 'owned by the user');

    $pt->config(home_mailbox => 'Maildir/');
    $pt->smtpctl('reload');
    my $q9 = $pt->send_mail(from => 'sender@client.test', to => ["$user\@postern.test"], subject => 'maildir');
    ok($pt->wait_log(qr/\Q$q9\E: .*relay=local, .*status=sent \(delivered to maildir \Q$home\E\/h\/Maildir\/new\//, 20),
        'home_mailbox = Maildir/: delivered to maildir');
    my @new = glob("$home/h/Maildir/new/*");
    is(scalar @new, 1, 'one file in Maildir/new');
    my @fst = stat($new[0] // '/nonexistent');
    is($fst[4], $uid, 'written as the user');
    like(slurp($new[0] // '/nonexistent') // '', qr/^Subject: maildir$/m, 'the message');

    open my $fh, '>', "$home/h/.forward" or die $!;
    print $fh "# to the remote office\nfwd\@remote.test\n";
    close $fh;
    chown $uid, -1, "$home/h/.forward";
    chmod 0644, "$home/h/.forward";
    my $q10 = $pt->send_mail(from => 'sender@client.test', to => ["$user\@postern.test"], subject => 'fwd');
    ok($pt->wait_log(qr/\Q$q10\E: .*status=sent \(forwarded as \w+ to <fwd\@remote\.test>\)/, 20), '.forward: forwarded');
    ok(wait_until(30, sub { scalar $sink->messages_for('fwd@remote.test') }, 0.2), 'the sink got it');
    my ($ft) = $sink->messages_for('fwd@remote.test');
    like($sink->message_text($ft) // '', qr/^Delivered-To: \Q$user\E\@postern\.test\r?$/m, 'Delivered-To: the user');
    $pt->config(home_mailbox => undef);
    $pt->smtpctl('reload');
}

# ---- disk full defers, never loses (root only: a tiny tmpfs) ----
SKIP: {
    skip 'mounting a tmpfs needs root', 4 unless $pt->is_root;
    my $small = $pt->dir . '/small';
    mkdir $small;
    system('mount', '-t', 'tmpfs', '-o', 'size=1m,mode=1777', 'pt-local', $small) == 0
        or skip 'cannot mount a tmpfs', 4;
    my $umount = Postern::Test::Guard->new(sub { system('umount', $small) });
    $pt->config(mail_spool_directory => $small);
    $pt->smtpctl('reload');
    my $big = ('x' x 76 . "\n") x 20000;    # 1.5 MiB
    my $q11 = $pt->send_mail(from => 'sender@client.test', to => ['root@postern.test'], subject => 'big', body => $big);
    ok($q11, 'a big message accepted');
    ok($pt->wait_log(qr/\Q$q11\E: .*relay=local, .*status=deferred \(mailbox: disk full: cannot write \Q$small\E\/root: No space left on device/, 20),
        'disk full: deferred');
    is(-s "$small/root" // 0, 0, 'nothing half-written left in the mailbox');
    system('mount', '-o', 'remount,size=8m', $small);
    ok($pt->wait_log(qr/\Q$q11\E: .*relay=local, .*status=sent \(delivered to mailbox \Q$small\E\/root\)/, 30),
        'delivered once there is room');
    $pt->config(mail_spool_directory => $mail);
    $pt->smtpctl('reload');
}

# ---- submitted while stopped: the maildrop, then root's mbox ----
SKIP: {
    skip 'bin/sendmail is not built', 3 unless -x $SM;
    $pt->stop;
    my ($src) = run_prog(prog => $SM, args => ['-C', $pt->etc, '-i', 'root'],
        input => "Subject: while stopped\n\ncron output\n");
    is($src, 0, 'sendmail while Postern is stopped exits 0 (maildrop)');
    my $before = () = read_mbox("$mail/root");
    $pt->start;
    ok($pt->wait_log(qr/to=<root\@postern\.test>, relay=local, .*status=sent/, 30), 'delivered after the start');
    like(slurp("$mail/root") // '', qr/^Subject: while stopped$/m, 'in root\'s mbox');
}

done_testing;

package Postern::Test::Guard;
sub new { my ($c, $f) = @_; return bless { f => $f, pid => $$ }, $c }
sub DESTROY { my $s = shift; $s->{f}->() if $s->{pid} == $$ }
