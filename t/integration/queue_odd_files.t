#!/usr/bin/perl
# queue_odd_files.t - only regular files are queue files (issue 17.8).
# Entries in queue/ with a queue ID's name that are not regular files are
# moved to bad/ with a log line saying what they are, never followed and
# never left there unseen:
#   - a dangling symbolic link
#   - a symbolic link to a real, valid queue file outside the spool: it is
#     not delivered (the link is not followed)
#   - a FIFO (opening it must not hang qmgr)
# and `smtpctl show bad` lists them without hanging.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use POSIX qw(mkfifo);
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new();
my $peer = $pt->peer(name => 'sink', addr => '127.0.0.199', port => $pt->direct_port);
$pt->write_file('domains', "odd.qo.test   mx=127.0.0.199\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;

# A real queue file to point a link at: queue one message, stop with
# delivery paused, and take the file out of the spool.
$pt->start;
$pt->smtpctl('pause', 'delivery');
my $qid = $pt->send_mail(from => 's@src.test', to => ['real@odd.qo.test']);
ok($qid, 'a message is queued (delivery paused)');
$pt->stop;
my $q = $pt->spool . '/queue';
my $outside = $pt->dir . "/outside-$qid";
ok(rename("$q/$qid", $outside), 'its queue file moved out of the spool');

my ($dangling, $linked, $fifo) = ('0662000000000000A1', $qid, '0662000000000000A3');
ok(symlink($pt->dir . '/no-such-file', "$q/$dangling"), 'a dangling link with a queue ID name');
ok(symlink($outside, "$q/$linked"), 'a link to a valid queue file outside the spool');
ok(mkfifo("$q/$fifo", 0600), 'a FIFO with a queue ID name');

$pt->start;
$pt->smtpctl('resume', 'delivery');
ok($pt->wait_log(qr/$dangling: moved to bad\/: queue\/$dangling is a symbolic link, not a queue file/, 10),
    'the dangling link is moved to bad/, and the log says what it is');
ok($pt->wait_log(qr/$linked: moved to bad\/: queue\/$linked is a symbolic link/, 5),
    'so is the link to a real queue file');
ok($pt->wait_log(qr/$fifo: moved to bad\/: queue\/$fifo is a FIFO/, 5), 'and the FIFO');
ok(-l $pt->spool . "/bad/$dangling" && -l $pt->spool . "/bad/$linked" && -p $pt->spool . "/bad/$fifo",
    'all three are in bad/ as they were');
is(scalar(grep { -e "$q/$_" || -l "$q/$_" } $dangling, $linked, $fifo), 0, 'none is left in queue/');
sleep 2;
is(scalar($peer->messages), 0, 'the linked message was not delivered (the link was not followed)');
($rc, $out) = $pt->smtpctl('show', 'bad');
is($rc, 0, 'show bad answers');
like($out, qr/$dangling/, 'and lists them') or diag $out;

$pt->stop;
done_testing();
