#!/usr/bin/perl
# privsep_secrets.t - the relay gateways' passwords are held by relay and
# by no other daemon (issue 16.1, docs/architecture.md):
#   - the secrets map is never copied into the spool; as root, a process
#     with smtpd's uid chrooted into the spool (exactly smtpd's view)
#     finds no file that holds a password, and an old copy left by an
#     earlier version is removed at start
#   - no IPC message that qmgr, smtpd or deliver sends or receives
#     carries a password or the AUTH user (strace of every read, recvmsg,
#     write and sendmsg of those processes during relayed deliveries with
#     AUTH); qmgr never opens the secrets map
#   - relay still logs in: at start (it read the map before dropping
#     root), after `smtpctl reload` with new credentials (master sends
#     them to relay alone), and after relay is killed and restarted
#   - a secrets map that cannot be read refuses the reload and relay keeps
#     the credentials it has
#   - show relays still says which gateways have credentials (names only,
#     from relay)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Find;
use POSIX qw(_exit);
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until pid_alive);

my $PW1 = 'Pw1-zq7Kx93-unique';
my $PW2 = 'Pw2-rL4mT08-unique';
my $USER = 'relayusr-q8v';

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $p = $pt->free_port('127.0.0.191');
my $gw = $pt->peer(name => 'gw', addr => '127.0.0.191', port => $p, starttls => 1,
    auth => { $USER => $PW1 }, auth_requires_tls => 1, require_auth => 1);
my $gw2 = $pt->peer(name => 'gw2', addr => '127.0.0.192', port => $p, starttls => 1,
    auth => { $USER => $PW2 }, auth_requires_tls => 1, require_auth => 1);
$pt->config(relay_gateways => [ "gw=127.0.0.191:$p", "gw2=127.0.0.192:$p" ]);
$pt->write_file('domains', <<'MAP');
one.ps.test   route=relay gateways=gw
two.ps.test   route=relay gateways=gw2 relay_attempts=20
MAP
# gw2's password is wrong at first; a reload fixes it.
$pt->write_file('secrets', "gw $USER $PW1\ngw2 $USER wrong-at-first\n", 0600);
for my $m (qw(domains secrets)) {
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
    is($rc, 0, "makemap $m") or diag $out;
}
# What an older Postern left in the spool: removed at start.
my $old = $pt->spool . '/etc/secrets.db';
system('mkdir', '-p', $pt->spool . '/etc');
open(my $fh, '>', $old) or die "$old: $!";
print $fh "gw $USER $PW1\n";
close $fh;
$pt->start;
ok(!-e $old, 'a copy of the secrets map in the spool (older versions) is removed at start');
ok($pt->wait_log(qr/removed .*secrets\.db: gateway credentials no longer live in the spool/, 5),
    'and the log says so');

# --- trace the IPC of every daemon but relay and master ---
my $have_strace = system('sh', '-c', 'command -v strace >/dev/null') == 0;
my (%trace, %tracer);
SKIP: {
    skip 'strace is not installed', 1 unless $have_strace;
    for my $name (qw(qmgr smtpd deliver)) {
        my $pid = $pt->pid_of($name) or next;
        my $out = $pt->dir . "/strace.$name";
        my $t = fork();
        if ($t == 0) {
            open(STDERR, '>', "$out.err");
            { exec('strace', '-qq', '-f', '-xx', '-s', '1048576', '-e',
                'trace=read,recvmsg,recvfrom,write,sendmsg,sendto,writev,readv,openat,open',
                '-o', $out, '-p', $pid) }
            _exit(127);
        }
        $trace{$name} = $out;
        $tracer{$name} = $t;
    }
    sleep 1; # let strace attach before the mail flows
    is(scalar(grep { pid_alive($tracer{$_}) } qw(qmgr smtpd deliver)), 3,
        'strace is attached to qmgr, smtpd and deliver');
}

my $q1 = $pt->send_mail(from => 's@src.test', to => ['a@one.ps.test']);
ok(wait_until(20, sub { $gw->messages_for('a@one.ps.test') }),
    'relay logs in with the credentials it read at start');
my ($m1) = $gw->messages_for('a@one.ps.test');
is($m1->{auth}, $USER, 'as the user of the secrets map');

my $q2 = $pt->send_mail(from => 's@src.test', to => ['b@two.ps.test']);
ok($pt->wait_log(qr/\Q$q2\E: to=<b\@two\.ps\.test>, .*gateway=gw2, .*status=deferred \(auth/, 15),
    'gw2 refuses the wrong password: deferred');

# --- show relays: names only, from relay ---
my ($rc, $out) = $pt->smtpctl('show', 'relays');
like($out, qr/^gw\s.*\byes\b/m, 'show relays: gw has credentials');

# --- reload with the right password for gw2: master sends them to relay ---
$pt->write_file('secrets', "gw $USER $PW1\ngw2 $USER $PW2\n", 0600);
($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/secrets');
is($rc, 0, 'makemap with the new password');
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload') or diag $out;
ok($pt->wait_log(qr/relay\[\d+\].*credentials for 2 gateways loaded/, 10)
        || $pt->wait_log(qr/credentials for 2 gateways loaded/, 1),
    'relay got the new credentials from master');
ok(wait_until(20, sub { $gw2->messages_for('b@two.ps.test') }),
    'after the reload relay logs in to gw2 with the new password');

# --- a secrets map that cannot be read: reload refused, relay keeps its own ---
my $db = $pt->etc . '/secrets.db';
open($fh, '>', $db) or die "$db: $!";
print $fh pack('C*', map { int(rand(256)) } 1 .. 8192);
close $fh;
chmod 0600, $db;
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
isnt($rc, 0, 'reload with a corrupt secrets.db fails');
like($out, qr/relay_secrets_map/, 'and says which map') or diag $out;
my $q3 = $pt->send_mail(from => 's@src.test', to => ['c@two.ps.test']);
ok(wait_until(20, sub { $gw2->messages_for('c@two.ps.test') }),
    'relay kept the credentials it had');

# --- stop tracing and look at every byte those processes moved ---
SKIP: {
    skip 'strace is not installed', 4 unless $have_strace;
    kill 'INT', values %tracer;
    waitpid($_, 0) for values %tracer;
    my $hex = sub { join '', map { sprintf '\\x%02x', ord } split //, $_[0] };
    for my $name (sort keys %trace) {
        my $text = do { local $/; my $t; open($t, '<', $trace{$name}) ? <$t> : '' };
        my $found = grep { index($text, $hex->($_)) >= 0 || index($text, $_) >= 0 }
            ($PW1, $PW2, $USER);
        ok(length($text) > 0 && !$found,
            "$name: no password or AUTH user in any byte it read or wrote ("
            . length($text) . ' bytes of trace)');
        if ($name eq 'qmgr') {
            ok(index($text, $hex->('secrets.db')) < 0 && index($text, 'secrets.db') < 0,
                'qmgr never opens a secrets map (not even on reload)');
        }
    }
}

# --- relay restarted: reads the map itself again (fix the map first) ---
$pt->write_file('secrets', "gw $USER $PW1\ngw2 $USER $PW2\n", 0600);
$pt->smtpctl('makemap', $pt->etc . '/secrets');
my $rpid = $pt->pid_of('relay');
kill 'KILL', $rpid;
ok(wait_until(15, sub { my $n = $pt->pid_of('relay'); $n && $n != $rpid }), 'relay restarted');
my $q4 = $pt->send_mail(from => 's@src.test', to => ['d@one.ps.test']);
ok(wait_until(20, sub { $gw->messages_for('d@one.ps.test') }),
    'the restarted relay logs in with the credentials it read at start');

# --- smtpd's view of the spool: nothing holds a secret ---
SKIP: {
    skip 'needs root (mail_owner and chroot)', 3 unless $pt->is_root;
    my $uid = getpwnam('postern');
    my $gid = (getpwnam('postern'))[3];
    ok(!-e $pt->spool . '/etc/secrets.db', 'no secrets.db in the spool');
    pipe(my $r, my $w) or die;
    my $kid = fork();
    if ($kid == 0) {
        close $r;
        chroot($pt->spool) or _exit(2);
        chdir('/');
        $( = $) = "$gid $gid";
        $< = $> = $uid;
        _exit(3) if $> != $uid || $< != $uid;
        my ($files, @hits) = (0);
        local $SIG{__WARN__} = sub { }; # directories it may not enter are the point
        find({ no_chdir => 1, wanted => sub {
            return unless -f $_;
            open(my $f, '<', $_) or return;
            $files++;
            local $/;
            my $c = <$f> // '';
            push @hits, $_ if grep { index($c, $_) >= 0 } ($PW1, $PW2);
        } }, '/');
        print $w "$files @hits\n";
        close $w;
        _exit(0);
    }
    close $w;
    my $line = <$r> // '';
    waitpid($kid, 0);
    is($? >> 8, 0, 'a process as smtpd\'s uid chrooted into the spool walked it');
    my ($n, @hits) = split ' ', $line;
    ok(defined $n && $n > 0 && !@hits,
        "of the " . ($n // 0) . " files it can read, none holds a password (@hits)");
}

$pt->stop;
done_testing();
