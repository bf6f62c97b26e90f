#!/usr/bin/perl
# Foundation: `smtpctl check` validates main.cf without a daemon (exit 0, or
# exit 1 naming file:line); master refuses to start on a broken main.cf;
# `smtpctl status` without a running daemon says so and exits non-zero.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::Util qw(slurp);

my $pt = Postern::Test->new;
my $main_cf = $pt->etc . '/main.cf';
my $good = slurp($main_cf);
my $nlines = () = $good =~ /\n/g;

# No daemon yet.
{
    my ($rc, $out, $err) = $pt->smtpctl3('status');
    isnt($rc, 0, 'status without a daemon exits non-zero');
    is($rc, 2, 'with exit code 2');
    like($err, qr/not running/i, 'and says the daemon is not running') or diag("stderr: $err");
    is($out, '', 'nothing on stdout');
    ($rc, $out, $err) = $pt->smtpctl3('status', '--json');
    is($rc, 2, 'status --json without a daemon exits 2');
    like($err, qr/not running/i, 'with the message on stderr');
    ($rc, undef, $err) = $pt->smtpctl3('reload');
    isnt($rc, 0, 'reload without a daemon exits non-zero');
    like($err, qr/not running/i, 'and says why');
}

# A stale pid file (a master that died) does not confuse it.
{
    my $run = $pt->spool . '/run';
    mkdir $pt->spool;
    mkdir $run;
    open my $fh, '>', "$run/master.pid" or die;
    print $fh "999999\n";
    close $fh;
    my ($rc, undef, $err) = $pt->smtpctl3('status');
    is($rc, 2, 'stale pid file: status exits 2');
    like($err, qr/not running/i, 'and says not running');
}

my ($rc, $out, $err) = $pt->smtpctl3('check');
is($rc, 0, 'check of the good config exits 0') or diag("stdout: $out\nstderr: $err");

my @bad = (
    ['unknown parameter',     "no_such_parameter = 1\n",           qr/no_such_parameter/],
    ['misspelt parameter',    "retry_dealy = 5m\n",                qr/retry_dealy/],
    ['bad enum value',        "gateway_policy = sometimes\n",      qr/gateway_policy/],
    ['bad duration suffix',   "max_queue_lifetime = 5x\n",         qr/max_queue_lifetime/],
    ['bad size suffix',       "message_size_limit = 10Q\n",        qr/message_size_limit/],
    ['not a number',          "max_deliveries = many\n",           qr/max_deliveries/],
    ['out of range',          "direct_port = 70000\n",             qr/direct_port/],
    ['bad boolean',           "smtpd_auth_plaintext_loopback = perhaps\n", qr/smtpd_auth_plaintext_loopback/],
    ['no equals sign',        "this line has no equals sign\n",    qr/./],
    ['unknown $name',         "submission_listen = 127.0.0.1:\$no_such_thing\n", qr/no_such_thing/],
    ['unterminated ${',       "submission_listen = \${myhostname\n", qr/\$\{|unterminated/],
    ['duplicate',             "log_level = debug\n",               qr/log_level/],
    ['per-domain option',     "route = relay\n",                   qr/route/],
);
for my $case (@bad) {
    my ($what, $line, $re) = @$case;
    my $n = $nlines + 2;    # a comment line first, then the bad line
    $pt->write_file('main.cf', $good . "# broken below\n" . $line);
    my ($rc2, $o2, $e2) = $pt->smtpctl3('check');
    is($rc2, 1, "check: $what: exit 1");
    like($e2, qr/main\.cf:$n: /, "check: $what: names main.cf:$n") or diag("stderr: $e2");
    like($e2, $re, "check: $what: names the culprit");
}

# A continuation with nothing to continue, at the very top.
$pt->write_file('main.cf', "  stray continuation\n" . $good);
($rc, $out, $err) = $pt->smtpctl3('check');
is($rc, 1, 'check: leading continuation line: exit 1');
like($err, qr/main\.cf:1: /, 'check: leading continuation line: names main.cf:1');

# A continued value: the bad value is reported at its parameter's lines.
$pt->write_file('main.cf', $good . "retry_delay_max =\n    5x\n");
($rc, $out, $err) = $pt->smtpctl3('check');
is($rc, 1, 'check: bad continued value: exit 1');
like($err, qr/main\.cf:(@{[$nlines + 1]}|@{[$nlines + 2]}): .*retry_delay_max/, 'check: bad continued value: names its line');

# A good continued value and $name expansion are accepted.
$pt->write_file('main.cf', $good . "relay_gateways = a=127.0.0.9:25\n    b=127.0.0.8:25\nsmtpd_timeout = \$retry_delay\n");
($rc, $out, $err) = $pt->smtpctl3('check');
is($rc, 0, 'check: continuation and $name expansion accepted') or diag($err);

# Missing config directory.
($rc, $out, $err) = $pt->_run(30, $pt->root . '/bin/smtpctl', '-c', $pt->dir . '/nowhere', 'check');
is($rc, 1, 'check: missing config dir: exit 1');
like($err, qr/nowhere/, 'and names it');

# master refuses to start on a broken config, naming file:line.
my $n = $nlines + 2;
$pt->write_file('main.cf', $good . "# broken below\nlog_level = loud\n");
ok(!$pt->start(nodie => 1, timeout => 10), 'master does not start on a broken main.cf');
like($pt->start_error // '', qr/master exited/, 'it exits (does not hang)');
like($pt->log_text, qr/main\.cf:$n: .*log_level/, "its log names main.cf:$n");
unlike($pt->log_text, qr/postern ready/, 'no "postern ready"');
is(scalar($pt->procs), 0, 'no process left behind');

# And starts once the config is fixed; check still passes while it runs.
$pt->write_file('main.cf', $good);
ok($pt->start, 'master starts with the good config');
($rc, $out, $err) = $pt->smtpctl3('check');
is($rc, 0, 'check while running exits 0');
$pt->stop;

done_testing;
