#!/usr/bin/perl
# queue_recycle.t - delivered queue files are reused for new mail
# (smtpd/commit.h "Recycled files", qmgr/recycle.c):
#   - a delivered message's file goes to free/ (not deleted) and smtpd
#     keeps its name (show smtpd: recycle_pool)
#   - the next message reuses that very file (same inode, files_recycled)
#     and the old, longer content is cut: the queue file is exactly as
#     long as the new message, holds none of the old body, and the MX gets
#     exactly the new message
#   - a spilled (large) message into a recycled file: complete and exact
#   - queue_file_recycle = 0 on reload: the pool is emptied, delivered
#     files are deleted and new ones created
#   - a file left in free/ is removed when smtpd starts, never reused
#   - a file left in free/ is removed when qmgr restarts alone (a killed
#     qmgr may have moved files it never announced), while smtpd still
#     holds names: smtpd skips the vanished ones and mail flows
#   - a deferred message in a recycled file parses (smtpctl show message)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until slurp);

my $pt = Postern::Test->new(retry_delay => '1h', messages_per_connection => 1);
my $mx   = $pt->peer(name => 'mx', addr => '127.0.0.131');
my $soft = $pt->peer(name => 'soft', addr => '127.0.0.132',
    replies => { rcpt => '451 4.3.0 come back later' });
$pt->write_file('domains', <<'MAP');
# queue_recycle.t
recycle.test  mx=127.0.0.131
soft.test     mx=127.0.0.132
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;
my $spool = $pt->spool;

sub stats {
    my ($c, $o) = $pt->smtpctl('show', 'smtpd', '--json');
    return eval { decode_json($o) } // {};
}

sub deliver_one {
    my (%a) = @_;
    my $n = scalar $mx->messages;
    my ($qid) = $pt->send_mail(from => 'a@client.test', to => ['u@recycle.test'], %a);
    ok($qid, "accepted ($qid)") or diag $pt->smtp_error;
    is($mx->wait_messages($n + 1, 20), $n + 1, "$qid delivered");
    ok($pt->wait_log(qr/\Q$qid\E: removed \(1 recipient delivered\)/, 10), "$qid done");
    return $qid;
}

ok(-d "$spool/free", 'the spool has free/');
is(stats()->{files_recycled}, 0, 'nothing recycled yet');

# 1. a long message, delivered: its file waits in free/
my $big = join('', map { sprintf("OLD-CONTENT line %05d %s\n", $_, 'A' x 60) } 1 .. 1000);
my $a = deliver_one(body => $big);
ok(wait_until(10, sub { (stats()->{recycle_pool} // 0) == 1 }), 'smtpd holds one name in its pool');
is_deeply([ $pt->spool_files('free') ], [$a], "free/ holds $a's file");
my $a_ino  = (stat "$spool/free/$a")[1];
my $a_size = (stat "$spool/free/$a")[7];
cmp_ok($a_size, '>', length $big, 'the old file is long');

# 2. a short message that stays queued (4xx): it reuses that file
my ($c) = $pt->send_mail(from => 'a@client.test', to => ['u@soft.test'],
    body => "short and new\n");
ok($c, "deferred message accepted ($c)");
ok($pt->wait_log(qr/\Q$c\E: to=<u\@soft\.test>.*status=deferred/, 20), "$c deferred");
my $st = stats();
is($st->{files_recycled}, 1, 'files_recycled = 1');
is($st->{recycle_pool}, 0, 'the pool is used up');
is_deeply([ $pt->spool_files('free') ], [], 'free/ is empty');
my @cs = stat "$spool/queue/$c";
is($cs[1], $a_ino, "queue/$c is the recycled inode");
my $ctext = slurp("$spool/queue/$c");
is($cs[7], length $ctext, 'size and content agree');
cmp_ok($cs[7], '<', 2000, "queue/$c is cut to the new message ($cs[7] bytes)");
unlike($ctext, qr/OLD-CONTENT/, 'none of the old body is left');
like($ctext, qr/short and new/, 'the new body is there');
($rc, $out) = $pt->smtpctl('show', 'message', $c);
is($rc, 0, 'smtpctl show message parses it') or diag $out;
like($out, qr/u\@soft\.test/, 'with its recipient');

# 3. a delivered message through a recycled file arrives exactly
my $b = deliver_one(body => "second body\n");         # creates (pool empty): file -> free/
my $d = deliver_one(body => "third body, shorter\n");  # reuses $b's file
is(stats()->{files_recycled}, 2, 'the third message reused a file');
my ($last) = ($mx->messages)[-1];
my $text = $mx->message_text($last);
like($text, qr/\r?\n\r?\nthird body, shorter\r?\n\z/, 'the MX got exactly the new body');
unlike($text, qr/second body|OLD-CONTENT/, 'and nothing of an older message');

# 4. a spilled message (over 1 MiB, streamed to disk) into a recycled file
my $huge = join('', map { sprintf("spill line %07d %s\n", $_, 'S' x 70) } 1 .. 14000);
ok(wait_until(10, sub { (stats()->{recycle_pool} // 0) >= 1 }), 'a name in the pool');
my $e = deliver_one(body => $huge);
is(stats()->{files_recycled}, 3, 'the large message went into a recycled file');
($last) = ($mx->messages)[-1];
$text = $mx->message_text($last);
$text =~ s/\r\n/\n/g;
ok(index($text, $huge) > 0 && substr($text, -length($huge)) eq $huge,
    'the large message arrived whole') or diag 'got ' . length($text) . ' bytes';
ok(!grep({ $_ eq $e } $pt->spool_files('free')), 'a file over 256 KiB is deleted, not kept');

# 5. queue_file_recycle = 0: pool emptied, files deleted
deliver_one(body => "refill the pool\n");
ok(wait_until(10, sub { (stats()->{recycle_pool} // 0) >= 1 }), 'the pool holds a name again');
$pt->config(queue_file_recycle => 0);
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with queue_file_recycle = 0') or diag $out;
ok(wait_until(10, sub { (stats()->{recycle_pool} // 1) == 0 }), 'the pool is emptied');
is_deeply([ $pt->spool_files('free') ], [], 'free/ is empty');
my $before = stats()->{files_created};
my $f = deliver_one(body => "no recycling\n");
is(stats()->{files_created}, $before + 1, 'a new file was created');
is_deeply([ $pt->spool_files('free') ], [], 'the delivered file was deleted');
ok(!-e "$spool/queue/$f", 'and is gone from queue/');

# 6. a file found in free/ at start is removed, never reused
$pt->config(queue_file_recycle => 512);
$pt->stop;
open my $fh, '>', "$spool/free/LEFTOVER" or die "create: $!";
print $fh "stale\n";
close $fh;
$pt->start;
ok(wait_until(10, sub { !-e "$spool/free/LEFTOVER" }), 'a leftover in free/ is removed at start');
is(stats()->{files_recycled}, 0, 'nothing reused after the start');

# 7. qmgr killed and restarted alone: free/ is emptied again, smtpd goes on
deliver_one(body => "into the pool\n");
ok(wait_until(10, sub { (stats()->{recycle_pool} // 0) >= 1 }), 'smtpd holds a name');
my $old = $pt->pid_of('qmgr');
ok($old && kill('KILL', $old), 'qmgr killed');
open $fh, '>', "$spool/free/ORPHAN" or die "create: $!";
close $fh;
ok(wait_until(20, sub { my $p = $pt->pid_of('qmgr'); $p && $p != $old && !-e "$spool/free/ORPHAN" }),
    'the new qmgr removed what was in free/');
my $created = stats()->{files_created};
my $g = deliver_one(body => "after qmgr's restart\n");
is(stats()->{files_created}, $created + 1, "the held name was gone: smtpd created a file instead");
($last) = ($mx->messages)[-1];
like($mx->message_text($last), qr/after qmgr's restart\r?\n\z/, 'and the message arrived intact');

done_testing();
