#!/usr/bin/perl
# bench/dsn-postfix.pl - a delivery status notification Postern sends is
# accepted and delivered by a real Postfix (issue "DSN", docs/dsn.md).
#
#   sh bench/setup              # once, as root: unpacks Postfix under bench/work
#   perl bench/dsn-postfix.pl [--keep]
#
# Everything is on loopback. A Postern instance (bin/, via t/lib's
# Postern::Test) routes fail.test to a peer that refuses every recipient
# with 550, and sender.test to a private Postfix (Bench::MTA, the same
# setup as the benchmarks) on 127.0.0.1:PORT, which relays all it gets to
# a peer standing for the sender's mailbox. One message from
# alice@sender.test (RET=FULL, ENVID, ORCPT, NOTIFY=FAILURE) to two
# recipients at fail.test must come back, through Postfix, as one notice
# whose MIME structure and fields are checked with Python's email parser
# (t/lib/dsn_parse.py). Prints one line per check and a summary; exit 0
# when every check passed. Every wait is bounded; every process started
# is stopped by PID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../t/lib";
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Net::SMTP;
use JSON::PP;
use Bench::MTA;
use Bench::Proc;
use Postern::Test;
use Postern::Util qw(wait_until free_port);

my $keep = grep { $_ eq '--keep' } @ARGV;
my $REPO = "$FindBin::Bin/..";
my $ROOTS = "$FindBin::Bin/work/root";
die "bench: Postfix is not unpacked; run sh bench/setup as root first\n"
    unless -x "$ROOTS/postfix/usr/sbin/postfix";
die "bench: python3 is needed to parse the notice\n" if system('command -v python3 >/dev/null') != 0;

my ($pass, $fail) = (0, 0);
sub check {
    my ($cond, $what) = @_;
    printf "%-4s %s\n", $cond ? 'ok' : 'FAIL', $what;
    $cond ? $pass++ : $fail++;
    return $cond;
}

$| = 1;
Bench::Proc::init("$FindBin::Bin/work");
my $dir = tempdir('dsn-postfix-XXXXXX', TMPDIR => 1, CLEANUP => !$keep);
chmod 0755, $dir;
my $pt = Postern::Test->new(retry_delay => '1s', log_level => 'detailed');
my $refuse = $pt->peer(name => 'refuse', addr => '127.0.0.211',
    rcpt_rules => [ [qr/./, '550 5.1.1 no such user here'] ]);
my $box_port = free_port('127.0.0.212');
my $box = $pt->peer(name => 'mailbox', addr => '127.0.0.212', port => $box_port);
my $pf_port = free_port('127.0.0.1');
my $pf = Bench::MTA->create('postfix', dir => "$dir/postfix", port => $pf_port,
    sink_addr => '127.0.0.212', sink_port => $box_port, repo => $REPO, roots => $ROOTS);
$pt->write_file('domains', <<"MAP");
fail.test     mx=127.0.0.211
sender.test   route=smtp:[127.0.0.1]:$pf_port
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
die "bench: makemap: $out\n" if $rc;

my $ok = eval {
    $pf->start(60);
    $pt->start;
    my $s = Net::SMTP->new(Host => '127.0.0.1', Port => $pt->port, Hello => 'client.test',
        Timeout => 10, Debug => $ENV{DEBUG} // 0) or die "bench: cannot connect to Postern\n";
    $s->mail('alice@sender.test', Return => 'FULL', Envelope => 'ENV-42') or die "MAIL refused\n";
    $s->to('bob@fail.test', { Notify => ['FAILURE'], ORcpt => 'rfc822;Bob@fail.test' })
        or die "RCPT refused\n";
    $s->to('carol@fail.test') or die "RCPT refused\n";
    $s->data;
    $s->datasend("From: alice\@sender.test\nTo: bob\@fail.test\nSubject: interop\n"
        . "Message-ID: <interop-1\@client.test>\n\nHello Postfix.\n");
    $s->dataend or die "DATA refused\n";
    $s->quit;
    check(wait_until(60, sub { scalar $box->messages }, 0.5),
        'the notice went through Postfix to the sender\'s mailbox');
    my ($t) = $box->messages;
    die "bench: nothing arrived\n" unless $t;
    check($t->{mail_from} eq '', 'its envelope sender is <> (Postfix kept it)');
    check(scalar(grep { /status=sent/ && /to=<alice\@sender\.test>/ } split /\n/, $pf->log_text) >= 1,
        'Postfix logged status=sent for it');
    my $json = `python3 $REPO/t/lib/dsn_parse.py $t->{file}`;
    my $d = eval { decode_json($json) } || {};
    check(($d->{content_type} // '') eq 'multipart/report'
        && ($d->{report_type} // '') eq 'delivery-status', 'multipart/report; report-type=delivery-status');
    check(!@{ $d->{defects} // [] }, 'the parser found no defects');
    my @types = @{ $d->{parts} // [] };
    check("@types" eq 'text/plain message/delivery-status message/rfc822',
        "parts: @types (RET=FULL returns the message)");
    my @r = @{ $d->{per_recipient} // [] };
    check(@r == 2, 'two recipients in one notice');
    check(($d->{per_message}{'Original-Envelope-Id'} // '') eq 'ENV-42', 'Original-Envelope-Id echoed');
    my ($bob) = grep { ($_->{'Final-Recipient'} // '') =~ /bob\@fail\.test/ } @r;
    check($bob && ($bob->{'Original-Recipient'} // '') =~ /Bob\@fail\.test/, 'ORCPT echoed');
    check($bob && ($bob->{Status} // '') eq '5.1.1' && ($bob->{Action} // '') eq 'failed',
        'Action failed, Status 5.1.1');
    check($bob && ($bob->{'Diagnostic-Code'} // '') =~ /smtp; 550 5\.1\.1 no such user here/,
        'Diagnostic-Code is the server\'s reply');
    check(($d->{returned_body} // '') =~ /Hello Postfix/, 'the whole original is returned');
    1;
};
my $err = $@;
$pt->stop;
$pf->stop(30);
print "error: $err" unless $ok;
printf "\n%d passed, %d failed%s\n", $pass, $fail + ($ok ? 0 : 1), $keep ? " (kept $dir)" : '';
exit($fail || !$ok ? 1 : 0);
