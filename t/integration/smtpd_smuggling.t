# smtpd_smuggling.t - SMTP smuggling: only CR LF "." CR LF ends DATA.
# A message that hides a second transaction behind "\n.\n" (or "\n.\r\n",
# "\r.\r") is refused whole with smtpd_bare_newline = reject, and no
# second message appears in queue/; with normalize the bare line ends
# become CR LF inside the one message, which still holds the would-be
# second transaction as text.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp);

# One transaction whose body carries an attempt; returns the replies.
sub attempt {
    my ($port, $end) = @_;
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO smuggler.test');
    smtp_cmd($s, 'MAIL FROM:<boss@client.test>');
    smtp_cmd($s, 'RCPT TO:<victim@remote.test>');
    smtp_cmd($s, 'DATA');
    print $s "Subject: innocent\r\n\r\nhello$end"
        . "MAIL FROM:<admin\@bank.test>\r\nRCPT TO:<victim\@remote.test>\r\nDATA\r\n"
        . "Subject: smuggled\r\n\r\nsend money\r\n.\r\n";
    my $r = smtp_reply($s);
    my $after = smtp_cmd($s, 'NOOP');
    smtp_cmd($s, 'QUIT');
    return ($r, $after);
}

my @ends = (["\n.\n", 'LF.LF'], ["\n.\r\n", 'LF.CRLF'], ["\r\n.\n", 'CRLF.LF'], ["\r.\r", 'CR.CR'],
    ["\r.\r\n", 'CR.CRLF']);

{
    my $pt = Postern::Test->new();    # smtpd_bare_newline = reject (the default)
    $pt->start;
    for my $e (@ends) {
        my @before = $pt->spool_files('queue');
        my ($r, $after) = attempt($pt->port, $e->[0]);
        like($r, qr/^550 5\.5\.2 Error: bare <(LF|CR)> received/, "reject: $e->[1] refused");
        unlike($r, qr/354/, "reject: $e->[1]: the smuggled DATA got no 354");
        like($after, qr/^250 2\.0\.0 Ok/, "reject: $e->[1]: session in sync afterwards");
        is_deeply([$pt->spool_files('queue')], \@before, "reject: $e->[1]: nothing queued");
    }
    ok($pt->wait_log(qr/reject: DATA from \[127\.0\.0\.1\]:\d+: bare <LF> received in DATA/, 5),
        'refusal logged');
    $pt->stop;
}

{
    my $pt = Postern::Test->new(smtpd_bare_newline => 'normalize');
    $pt->start;
    for my $e (@ends) {
        my @before = $pt->spool_files('queue');
        my ($r) = attempt($pt->port, $e->[0]);
        like($r, qr/^250 2\.0\.0 Ok: queued as (\S+)/, "normalize: $e->[1]: one message queued");
        my @after = $pt->spool_files('queue');
        is(scalar @after, @before + 1, "normalize: $e->[1]: exactly one new file");
        my ($id) = $r =~ /queued as (\S+)/;
        my $f = slurp($pt->spool . "/queue/$id");
        like($f, qr/\r\nMAIL FROM:<admin\@bank\.test>\r\n/, "normalize: $e->[1]: the would-be command is message text");
        unlike((split /\n\n/, $f, 2)[1], qr/(?<!\r)\n|\r(?!\n)/, "normalize: $e->[1]: only CRLF line ends stored");
    }
    $pt->stop;
}

done_testing();
