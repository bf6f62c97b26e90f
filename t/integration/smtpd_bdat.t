# smtpd_bdat.t - CHUNKING (RFC 3030) both ways, between two real Postern
# instances: a client sends pipelined BDAT chunks to A (dots, an end of
# data sequence and commands inside the octets), A relays to B with one
# BDAT chunk (B's transcript shows it), B delivers by DATA to a sink that
# does not offer CHUNKING; the text arrives unchanged. Refused chunks are
# read to their end and never taken for commands. Also, at intake: lines
# over 998 octets are refused with 550 5.5.2, RCPT TO:<postmaster> is
# taken from any client and queued for notice_recipient.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(wait_until);

# B: takes mail from 127.0.0.1 only (A), delivers dest.test to the sink
my $pb = Postern::Test->new(retry_delay => '1s', mynetworks => '127.0.0.1/32',
    notice_recipient => 'admin@dest.test');
my $sink = $pb->peer(name => 'sink', addr => '127.0.0.231');
$pb->write_file('domains', "dest.test   mx=127.0.0.231\n");
my ($rc, $out) = $pb->smtpctl('makemap', $pb->etc . '/domains');
is($rc, 0, 'B: makemap') or diag $out;
$pb->start;

# A: relays dest.test to B
my $pa = Postern::Test->new(retry_delay => '1s');
my $bport = $pb->port;
$pa->write_file('domains', "dest.test   mx=127.0.0.1:$bport\n");
($rc, $out) = $pa->smtpctl('makemap', $pa->etc . '/domains');
is($rc, 0, 'A: makemap') or diag $out;
$pa->start;

sub read_replies {
    my ($s, $n) = @_;
    return map { smtp_reply($s) } 1 .. $n;
}

# -- pipelined chunks into A
my $c1 = "Subject: chunks\r\nMessage-ID: <bdat1\@client.test>\r\n\r\n.leading dot\r\n";
my $c2 = "\r\n.\r\nMAIL FROM:<smuggled\@evil.test>\r\nRCPT TO:<x\@dest.test>\r\n";
my $c3 = "last line without an end";
my $s = smtp_connect(port => $pa->port);
smtp_reply($s);
my $ehlo = smtp_cmd($s, 'EHLO client.test');
like($ehlo, qr/^250[- ]CHUNKING\r?$/m, 'A offers CHUNKING');
like(smtp_cmd($s, 'HELP'), qr/\bBDAT\b/, 'and HELP lists BDAT');
print $s "MAIL FROM:<s\@client.test>\r\nRCPT TO:<r\@dest.test>\r\n"
    . sprintf("BDAT %d\r\n%s", length $c1, $c1)
    . sprintf("BDAT %d\r\n%s", length $c2, $c2)
    . sprintf("BDAT %d LAST\r\n%s", length $c3, $c3);
my @r = read_replies($s, 5);
like($r[0], qr/^250 /, 'MAIL');
like($r[1], qr/^250 /, 'RCPT');
like($r[2], qr/^250 2\.0\.0 Ok: ${\ length $c1} octets/, 'first chunk: its size');
like($r[3], qr/^250 2\.0\.0 Ok: ${\ length $c2} octets/, 'second chunk, with an end of data and commands in it');
like($r[4], qr/^250 2\.0\.0 Ok: queued as (\S+)/, 'LAST chunk: queued');
my ($qid) = $r[4] =~ /queued as (\S+)/;
like(smtp_cmd($s, 'NOOP'), qr/^250 /, 'the session goes on, in step (one reply per command)');

# -- refused chunks are read whole, their octets are not commands
my $evil = "RSET\r\nMAIL FROM:<evil\@x.test>\r\nRCPT TO:<e\@dest.test>\r\n";
print $s sprintf("BDAT %d LAST\r\n%s", length $evil, $evil);
like(smtp_reply($s), qr/^503 5\.5\.1 Error: need MAIL/, 'BDAT before MAIL: 503 after its octets');
like(smtp_cmd($s, 'RCPT TO:<e@dest.test>'), qr/^503 /,
    'the MAIL inside the refused chunk was not run');
like(smtp_cmd($s, 'DATA'), qr/^503 /, 'nor anything else');
smtp_cmd($s, 'MAIL FROM:<s@client.test>');
smtp_cmd($s, 'RCPT TO:<r@dest.test>');
my $big = ('y' x 1100) . "\r\n";
print $s sprintf("BDAT %d\r\n", length $big) . $big . "BDAT 5 LAST\r\nhello";
like(smtp_reply($s), qr/^550 5\.5\.2 .*998/, 'a chunk with a line over 998 octets: 550 5.5.2');
like(smtp_reply($s), qr/^503 5\.5\.1 Error: an earlier chunk/, 'the pipelined rest: refused');
like(smtp_cmd($s, 'NOOP'), qr/^250 /, 'and the session is in step');
like(smtp_cmd($s, 'BDAT 12x'), qr/^501 5\.5\.4/, 'a size that cannot be read: 501');
is(smtp_reply($s, 5), '', 'and the connection is closed');
close $s;

# -- A to B with BDAT, B to the sink with DATA
ok($sink->wait_messages(1, 30), 'delivered through A and B');
my ($m) = $sink->messages;
my $text = $m ? $sink->message_text($m) : '';
my ($body) = $text =~ /\r?\n\r?\n(.*)\z/s;
$body //= '';
(my $want = "$c2$c3\r\n") =~ s/\r\n/\n/g;
(my $got = $body) =~ s/\r\n/\n/g;
is($got, ".leading dot\n$want", 'the body arrived byte for byte (dots, the end sequence, commands)');
like($text, qr/^Message-ID: <bdat1\@client\.test>/m, 'with its header');
unlike(join(' ', map { ($_->{mail_from} // ''), @{ $_->{accepted_rcpts} || [] } } $sink->transactions),
    qr/evil|smuggled/,
    'nothing from inside the chunks became an envelope');
ok($pb->log_lines(qr/< BDAT \d+ LAST/), 'A sent it to B as one BDAT ... LAST chunk');
ok(!$pb->log_lines(qr/< DATA$/), 'not with DATA');
ok($pa->wait_log(qr/\Q$qid\E: .*status=sent/, 10), 'A logged it sent');

# -- smtp_chunking = no: DATA even when offered
$pa->config(smtp_chunking => 'no');
($rc, $out) = $pa->smtpctl('reload');
is($rc, 0, 'A: reload with smtp_chunking = no') or diag $out;
sleep 1;
$pb->mark_log;
my ($q2) = $pa->send_mail(from => 's@client.test', to => ['r2@dest.test']);
ok($q2 && $sink->wait_messages(2, 30), 'delivered');
ok($pb->wait_log(qr/< DATA$/, 5) && !$pb->log_lines(qr/< BDAT/), 'smtp_chunking = no: DATA');

# -- lines over 998 octets are refused at intake (DATA too); 998 is fine
$s = smtp_connect(port => $pa->port);
smtp_reply($s);
smtp_cmd($s, 'EHLO client.test');
for my $len (998, 999) {
    smtp_cmd($s, 'MAIL FROM:<s@client.test>');
    smtp_cmd($s, 'RCPT TO:<long@dest.test>');
    smtp_cmd($s, 'DATA');
    print $s "Subject: long\r\n\r\n" . ('z' x $len) . "\r\n.\r\n";
    my $r = smtp_reply($s);
    if ($len == 998) { like($r, qr/^250 /, 'a line of 998 octets: accepted') }
    else { like($r, qr/^550 5\.5\.2 Error: message has a line longer than 998 octets/, 'a line of 999: 550 5.5.2') }
}
smtp_cmd($s, 'QUIT');
close $s;

# -- RCPT TO:<postmaster> from a client outside mynetworks (B trusts 127.0.0.1 only)
$s = smtp_connect(port => $pb->port, local => '127.0.0.2');
smtp_reply($s);
smtp_cmd($s, 'EHLO outside.test');
smtp_cmd($s, 'MAIL FROM:<someone@outside.test>');
like(smtp_cmd($s, 'RCPT TO:<x@dest.test>'), qr/^554 5\.7\.1/, 'outside mynetworks: no relaying');
like(smtp_cmd($s, 'RCPT TO:<Postmaster>'), qr/^250 /, 'RCPT TO:<Postmaster> is taken (RFC 5321 4.5.1)');
smtp_cmd($s, 'DATA');
print $s "Subject: to the postmaster\r\n\r\nhello\r\n.\r\n";
like(smtp_reply($s), qr/^250 /, 'queued');
smtp_cmd($s, 'QUIT');
close $s;
ok(wait_until(30, sub { grep { "@{$_->{accepted_rcpts} || []}" =~ /admin\@dest\.test/ } $sink->messages }),
    'and delivered to notice_recipient (admin@dest.test)');

$pa->stop;
$pb->stop;
done_testing();
