# smtpd_hops.t - mail-loop detection (RFC 5321 section 6.3): a message
# whose Received: fields, with the one smtpd adds, would be more than
# max_hop_count is refused at the end of DATA with 554 5.4.6 and nothing
# is queued; one at the limit is accepted; X-Received: and Received: in the
# body do not count; the session goes on after the refusal.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);

my $pt = Postern::Test->new(max_hop_count => 10);
$pt->start;

sub send_with {
    my ($s, $hops, $extra) = @_;
    like(smtp_cmd($s, 'MAIL FROM:<a@src.test>'), qr/^250/, 'MAIL');
    like(smtp_cmd($s, 'RCPT TO:<b@dst.test>'), qr/^250/, 'RCPT');
    like(smtp_cmd($s, 'DATA'), qr/^354/, 'DATA');
    my $msg = join('', map { "Received: from hop$_ by hop" . ($_ + 1) . "; Mon, 7 Dec 2026 08:00:00 +0000\r\n" } 1 .. $hops)
        . ($extra // '') . "Subject: hops $hops\r\n\r\nbody\r\n";
    return smtp_cmd($s, $msg . '.');
}

my $s = smtp_connect(port => $pt->port);
like(smtp_reply($s), qr/^220/, 'greeting');
like(smtp_cmd($s, 'EHLO client.test'), qr/^250/, 'EHLO');
my $before = scalar $pt->spool_files('queue');
like(send_with($s, 9), qr/^250 /, '9 Received: fields (10 with ours): accepted');
my $r = send_with($s, 10);
like($r, qr/^554 5\.4\.6 /, '10 Received: fields (11 with ours): 554 5.4.6');
like($r, qr/too many hops/i, 'the reply says why');
like(send_with($s, 9, "X-Received: by x\r\nX-Received: by y\r\n"), qr/^250 /,
    'X-Received: fields do not count');
like(smtp_cmd($s, 'NOOP'), qr/^250/, 'the session goes on after the refusal');
smtp_cmd($s, 'QUIT');
close $s;
ok($pt->wait_log(qr/reject: .*mail loop: 10 Received: header fields, with ours more than max_hop_count 10/, 10)
    || $pt->log_lines(qr/mail loop: 10 Received/), 'the log says it was a mail loop');
my $after = scalar $pt->spool_files('queue');
is($after - $before, 2, 'two messages queued, the looping one not');
$pt->stop;
done_testing();
