#!/usr/bin/perl
# Foundation: SIGHUP / `smtpctl reload` apply a changed valid main.cf; a
# broken main.cf is refused with an error naming file:line while the
# running configuration and processes stay.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;
use Postern::Util qw(pid_alive wait_until slurp);

my @CHILDREN = qw(smtpd qmgr dnsd deliver relay local signer);

my $pt = Postern::Test->new(log_level => 'basic');
$pt->start;
my $main_cf = $pt->etc . '/main.cf';

sub pids {
    my $st = $pt->status or return {};
    return { map { $_->{name} => $_->{pid} } @{ $st->{processes} } };
}

sub kill_and_wait {
    my ($name) = @_;
    my $old = pids()->{$name} or return 0;
    kill 'KILL', $old;
    my $new = wait_until(10, sub { my $p = pids()->{$name}; $p && $p != $old ? $p : 0 }, 0.1)
        or return 0;
    # it must stay up (not die again at start)
    sleep 1.5;
    my $st = $pt->status or return 0;
    my ($e) = grep { $_->{name} eq $name } @{ $st->{processes} };
    return $e && $e->{pid} == $new && $e->{state} eq 'running' && pid_alive($new);
}

# Line number of "name = ..." in main.cf.
sub line_of {
    my ($name) = @_;
    my @l = split /\n/, slurp($main_cf);
    for my $i (0 .. $#l) { return $i + 1 if $l[$i] =~ /^\Q$name\E\s*=/ }
    return 0;
}

my $pids0 = pids();
is(scalar(grep { $pids0->{$_} } @CHILDREN), scalar(@CHILDREN), 'all children up');

# 1. log_level basic: a child restart logs no debug line.
$pt->mark_log;
ok(kill_and_wait('deliver'), 'deliver restarted');
is(scalar($pt->log_lines(qr/\]: debug: /)), 0, 'log_level basic: no debug lines');

# 2. SIGHUP with log_level = debug: applied.
$pt->config(log_level => 'debug');
$pt->mark_log;
ok($pt->signal('HUP'), 'SIGHUP sent');
ok($pt->wait_log(qr/master\[\d+\]: info: .*reload/i, 10), 'master logs the reload');
ok(!$pt->wait_log(qr/\]: error: /, 1), 'without an error');
$pt->mark_log;
ok(kill_and_wait('relay'), 'relay restarted');
ok($pt->wait_log(qr/\]: debug: /, 5), 'log_level debug now in force: debug lines appear');
my $pids1 = pids();
is($pids1->{master}, $pids0->{master}, 'same master after reload');
for my $c (grep { !/^(deliver|relay)$/ } @CHILDREN) {
    is($pids1->{$c}, $pids0->{$c}, "$c kept its process across the reload");
}

# 3. `smtpctl reload` of a valid change exits 0.
$pt->config(log_level => 'detailed');
$pt->mark_log;
my ($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'smtpctl reload of a valid config exits 0') or diag($out);
sleep 1;
for my $c (@CHILDREN) {
    my @l = $pt->log_lines(qr/ $c\[\d+\]: info: configuration reloaded/);
    is(scalar(@l), 1, "$c logs 'configuration reloaded' once per reload");
}

# 4. A broken config: SIGHUP refused with file:line, everything keeps running.
$pt->config(log_level => 'loud');
my $bad = line_of('log_level');
ok($bad, "broken value at main.cf line $bad");
$pt->mark_log;
$pt->signal('HUP');
my $err = $pt->wait_log(qr/\]: error: .*main\.cf:\Q$bad\E\b/, 10);
ok($err, "SIGHUP with a broken main.cf logs an error naming main.cf:$bad") or diag($pt->log_text);
sleep 1;
my $pids2 = pids();
ok(pid_alive($pt->master_pid), 'master still running');
is($pids2->{$_}, $pids1->{$_}, "$_ still the same process") for 'master', @CHILDREN;
my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pt->port, Timeout => 10);
like($c ? scalar(<$c>) // '' : '', qr/^220 /, 'smtpd still serves');
close $c if $c;

($rc, $out) = $pt->smtpctl('reload');
is($rc, 1, 'smtpctl reload of a broken config exits 1');
like($out, qr/main\.cf:\Q$bad\E\b/, "and names main.cf:$bad");

# The old configuration stayed in force: still "detailed", so no debug lines.
# A child restarted now must run with the running configuration, not with
# the refused file on disk.
$pt->mark_log;
ok(kill_and_wait('dnsd'), 'dnsd restarted while main.cf on disk is broken')
    or diag(join "\n", $pt->log_lines(qr/dnsd/));
sleep 1;
is(scalar($pt->log_lines(qr/\]: debug: /)), 0, 'the refused config did not take effect');

# An unknown parameter is refused the same way.
$pt->config(log_level => 'detailed', no_such_parameter => 'x');
my $unk = line_of('no_such_parameter');
($rc, $out) = $pt->smtpctl('reload');
is($rc, 1, 'unknown parameter: reload exits 1');
like($out, qr/main\.cf:\Q$unk\E\b.*no_such_parameter/, "and names main.cf:$unk and the parameter");

# 5. Fixed again: reload works.
$pt->config(no_such_parameter => undef, log_level => 'debug');
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload after fixing the config exits 0') or diag($out);
$pt->mark_log;
ok(kill_and_wait('qmgr'), 'qmgr restarted');
ok($pt->wait_log(qr/\]: debug: /, 5), 'the fixed config is in force');

# 6. A parameter that needs a restart: listener unchanged, warning logged.
my $newport = $pt->free_port;
$pt->config(smtpd_listen => "127.0.0.1:$newport");
$pt->mark_log;
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with a changed smtpd_listen is accepted');
ok($pt->wait_log(qr/\]: warning: .*smtpd_listen/, 5), 'with a warning that smtpd_listen needs a restart');
$c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pt->port, Timeout => 10);
like($c ? scalar(<$c>) // '' : '', qr/^220 /, 'the old listener still serves');

ok(pid_alive($pt->master_pid), 'master alive at the end');
done_testing;
