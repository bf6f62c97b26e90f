# smtpd_basic.t - SMTP intake from the outside: a plain message lands in
# queue/ with its envelope and Received: header; a pipelined session gets
# its replies in order; commands out of order, unknown commands, over-long
# lines, the size limit (by SIZE and by actual size), the recipient limit,
# the error limit, 8BITMIME and SMTPUTF8 addresses.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp wait_until);

my $pt = Postern::Test->new(
    message_size_limit       => '20k',
    smtpd_recipient_limit    => 3,
    smtpd_command_line_limit => 600,
    smtpd_line_length_limit  => 1000,
    smtpd_error_limit        => 8,
);
$pt->config(smtpd_listen => '127.0.0.1:' . $pt->port . ' [::1]:' . $pt->port);
$pt->start;
my $port = $pt->port;

# --- a plain message ---
my ($qid, $mid, $err) = $pt->send_mail(from => 'alice@client.test', to => ['bob@remote.test'],
    subject => 'plain', body => "Hello.\n.leading dot\n");
ok($qid && $qid =~ /^[0-9A-F]{18}$/, 'plain message queued with an 18-digit ID') or diag $err;
my $file = $pt->spool . "/queue/$qid";
ok(-f $file, 'queue file exists');
my $q = slurp($file);
like($q, qr/\APOSTERN-QUEUE 1\n/, 'queue file version line');
like($q, qr/^id \Q$qid\E$/m, 'envelope id');
like($q, qr/^sender alice\@client\.test$/m, 'envelope sender');
like($q, qr/^rcpt - - bob\@remote\.test$/m, 'envelope recipient');
like($q, qr/^client 127\.0\.0\.1 \d+$/m, 'envelope client');
like($q, qr/^proto ESMTP$/m, 'envelope proto');
my ($env, $msg) = split /\n\n/, $q, 2;
my ($size) = $env =~ /^size (\d+)$/m;
is(length($msg), $size + 0, 'size matches the message section');
like($msg, qr/\AReceived: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby postern\.test \(Postern\) with ESMTP id \Q$qid\E\r\n\tfor <bob\@remote\.test>;\r\n\t\w{3}, /,
    'Received: header first');
like($msg, qr/\r\nSubject: plain\r\n/, 'headers kept with CRLF');
like($msg, qr/\r\nHello\.\r\n\.leading dot\r\n\z/, 'body unstuffed, ends with CRLF');
ok($pt->wait_log(qr/\Q$qid\E: accepted from=<alice\@client\.test> size=\d+ nrcpt=1/, 5),
    'accepted line logged');
is(scalar $pt->spool_files('incoming'), 0, 'incoming/ is empty');

# --- a pipelined session: replies in order ---
{
    my $s = smtp_connect(port => $port);
    like(smtp_reply($s), qr/^220 postern\.test ESMTP/, 'greeting');
    my $ehlo = smtp_cmd($s, 'EHLO pipe.test');
    like($ehlo, qr/^250-PIPELINING\r$/m, 'PIPELINING offered');
    like($ehlo, qr/^250-SIZE 20480\r$/m, 'SIZE announced with the limit');
    like($ehlo, qr/^250-8BITMIME\r$/m, '8BITMIME offered');
    like($ehlo, qr/^250-SMTPUTF8\r$/m, 'SMTPUTF8 offered');
    like($ehlo, qr/^250-ENHANCEDSTATUSCODES\r$/m, 'ENHANCEDSTATUSCODES offered');
    like($ehlo, qr/^250[- ]DSN\r$/m, 'DSN offered');
    print $s "MAIL FROM:<p\@client.test>\r\nRCPT TO:<r1\@remote.test>\r\nRCPT TO:<bad>\r\n"
        . "RCPT TO:<r2\@remote.test>\r\nDATA\r\n";
    my @want = (qr/^250 2\.1\.0/, qr/^250 2\.1\.5/, qr/^501 5\.1\.3/, qr/^250 2\.1\.5/, qr/^354 /);
    my $i = 0;
    for my $w (@want) {
        like(smtp_reply($s), $w, "pipelined reply " . ++$i . " in order");
    }
    print $s "Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<p2\@client.test>\r\n"
        . "RCPT TO:<r3\@remote.test>\r\nDATA\r\n";
    my $r = smtp_reply($s);
    like($r, qr/^250 2\.0\.0 Ok: queued as ([0-9A-F]{18})/, 'first message queued');
    my ($id1) = $r =~ /queued as (\S+)/;
    like(smtp_reply($s), qr/^250 2\.1\.0/, 'second MAIL after the 250');
    like(smtp_reply($s), qr/^250 2\.1\.5/, 'second RCPT');
    like(smtp_reply($s), qr/^354 /, 'second DATA');
    print $s "Subject: second\r\n\r\nx\r\n.\r\nQUIT\r\n";
    $r = smtp_reply($s);
    my ($id2) = $r =~ /queued as (\S+)/;
    ok($id2 && $id2 gt $id1, 'second message queued with a later ID');
    like(smtp_reply($s), qr/^221 2\.0\.0/, 'QUIT');
    my $q1 = slurp($pt->spool . "/queue/$id1");
    like($q1, qr/^rcpt - - r1\@remote\.test\nrcpt - - r2\@remote\.test\n/m,
        'both good recipients kept, the bad one not');
}

# --- a client that half-closes after sending everything still gets every reply ---
{
    my $s = smtp_connect(port => $port);
    print $s "EHLO halfclose.test\r\nMAIL FROM:<h\@client.test>\r\nRCPT TO:<h\@remote.test>\r\n"
        . "DATA\r\n";
    smtp_reply($s) for 1 .. 2;    # greeting, EHLO
    like(smtp_reply($s), qr/^250 2\.1\.0/, 'half-close: MAIL');
    like(smtp_reply($s), qr/^250 2\.1\.5/, 'half-close: RCPT');
    like(smtp_reply($s), qr/^354 /, 'half-close: 354');
    print $s "Subject: half\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n";
    shutdown($s, 1);
    like(smtp_reply($s), qr/^250 2\.0\.0 Ok: queued as/, 'half-close: message queued and acknowledged');
    like(smtp_reply($s), qr/^250 2\.0\.0 Ok/, 'half-close: NOOP answered');
    like(smtp_reply($s), qr/^221 /, 'half-close: QUIT answered');
}

# --- commands out of order, unknown commands ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test>'), qr/^503 5\.5\.1 /, 'MAIL before EHLO: 503');
    like(smtp_cmd($s, 'EHLO order.test'), qr/^250 /m, 'EHLO');
    like(smtp_cmd($s, 'RCPT TO:<b@remote.test>'), qr/^503 5\.5\.1 Error: need MAIL/, 'RCPT before MAIL: 503');
    like(smtp_cmd($s, 'DATA'), qr/^503 5\.5\.1 /, 'DATA before MAIL: 503');
    like(smtp_cmd($s, 'FROBNICATE now'), qr/^500 5\.5\.2 Error: command not recognized/, 'unknown command: 500');
    like(smtp_cmd($s, 'EXPN staff'), qr/^502 5\.5\.1 /, 'EXPN: 502');
    like(smtp_cmd($s, 'VRFY bob'), qr/^252 2\.0\.0 /, 'VRFY: 252');
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test> FOO=BAR'), qr/^555 5\.5\.4 /, 'unknown MAIL parameter: 555');
    like(smtp_cmd($s, 'NOOP'), qr/^250 2\.0\.0 /, 'NOOP');
    like(smtp_cmd($s, 'QUIT'), qr/^221 /, 'QUIT');
}

# --- over-long lines ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO long.test');
    like(smtp_cmd($s, 'NOOP ' . ('x' x 700)), qr/^500 5\.5\.2 Error: line too long/, 'long command line: 500');
    like(smtp_cmd($s, 'NOOP'), qr/^250 /, 'session goes on after it');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    smtp_cmd($s, 'RCPT TO:<b@remote.test>');
    like(smtp_cmd($s, 'DATA'), qr/^354 /, 'DATA');
    print $s "Subject: long\r\n\r\n" . ('y' x 1200) . "\r\n.\r\n";
    like(smtp_reply($s), qr/^550 5\.5\.2 Error: message has a line longer than 998 octets/,
        'long DATA line: 550 5.5.2');
    ok($pt->wait_log(qr/reject: DATA from \[127\.0\.0\.1\]:\d+: a line longer than 998 octets/, 5), 'logged');
    like(smtp_cmd($s, 'QUIT'), qr/^221 /, 'QUIT after a refused message');
}

# --- size limit: by SIZE and by actual size ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO size.test');
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test> SIZE=30000'),
        qr/^552 5\.3\.4 Message size exceeds fixed limit of 20480 bytes/, 'SIZE over the limit: 552');
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test> SIZE=1000'), qr/^250 /, 'small SIZE accepted');
    smtp_cmd($s, 'RCPT TO:<b@remote.test>');
    smtp_cmd($s, 'DATA');
    my $n_before = () = $pt->spool_files('queue');
    print $s "Subject: big\r\n\r\n" . (("z" x 78 . "\r\n") x 400) . ".\r\n";
    like(smtp_reply($s), qr/^552 5\.3\.4 Error: message exceeds fixed limit/, 'actual size over the limit: 552');
    is(scalar(() = $pt->spool_files('queue')), $n_before, 'nothing queued');
    is(scalar $pt->spool_files('incoming'), 0, 'nothing left in incoming/');
    smtp_cmd($s, 'QUIT');
}

# --- recipient limit ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO rcpt.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    like(smtp_cmd($s, "RCPT TO:<r$_\@remote.test>"), qr/^250 /, "recipient $_ accepted") for 1 .. 3;
    like(smtp_cmd($s, 'RCPT TO:<r4@remote.test>'), qr/^452 4\.5\.3 Error: too many recipients/,
        'recipient 4: 452');
    smtp_cmd($s, 'DATA');
    print $s "Subject: rcpt\r\n\r\nx\r\n.\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    ok($id, 'message with 3 recipients queued');
    my @r = slurp($pt->spool . "/queue/$id") =~ /^rcpt /mg;
    is(scalar @r, 3, 'three recipients in the envelope');
    smtp_cmd($s, 'QUIT');
}

# --- error limit ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    my $r = '';
    $r .= smtp_cmd($s, "BAD$_") for 1 .. 8;
    $r .= smtp_reply($s);
    like($r, qr/421 4\.7\.0 postern\.test Error: too many errors/, '421 at smtpd_error_limit');
    my $eof = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm 5;
        my $l = <$s>;
        alarm 0;
        !defined $l;
    };
    ok($eof, 'connection closed after 421');
}

# --- 8BITMIME and SMTPUTF8 ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO utf8.test');
    like(smtp_cmd($s, "MAIL FROM:<\xc3\xa9l\xc3\xa8ve\@exemple.test>"), qr/^553 5\.6\.7 /,
        'UTF-8 sender without SMTPUTF8: 553');
    like(smtp_cmd($s, "MAIL FROM:<\xc3\xa9l\xc3\xa8ve\@exemple.test> BODY=8BITMIME SMTPUTF8"),
        qr/^250 /, 'UTF-8 sender with SMTPUTF8');
    like(smtp_cmd($s, "RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7\@\xe4\xbe\x8b\xe5\xad\x90.test>"),
        qr/^250 /, 'UTF-8 recipient');
    smtp_cmd($s, 'DATA');
    print $s "Subject: =?UTF-8?Q?x?=\r\n\r\n8bit body: \xc3\xa9\xc3\xa8\xc3\xa0\r\n.\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    ok($id, 'UTF-8 message queued');
    my $f = slurp($pt->spool . "/queue/$id");
    like($f, qr/^body 8BITMIME$/m, 'BODY=8BITMIME in the envelope');
    like($f, qr/^smtputf8$/m, 'SMTPUTF8 in the envelope');
    like($f, qr/^sender \xc3\xa9l\xc3\xa8ve\@exemple\.test$/m, 'UTF-8 sender kept');
    like($f, qr/^rcpt - - \xe7\x94\xa8\xe6\x88\xb7\@\xe4\xbe\x8b\xe5\xad\x90\.test$/m, 'UTF-8 recipient kept');
    like($f, qr/8bit body: \xc3\xa9\xc3\xa8\xc3\xa0\r\n/, '8-bit body kept byte for byte');
    smtp_cmd($s, 'QUIT');
}

# --- DSN parameters reach the envelope ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO dsn.test');
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test> RET=HDRS ENVID=QQ+2B1'), qr/^250 /, 'RET and ENVID');
    like(smtp_cmd($s, 'RCPT TO:<b@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b@remote.test'),
        qr/^250 /, 'NOTIFY and ORCPT');
    smtp_cmd($s, 'DATA');
    print $s "Subject: dsn\r\n\r\nx\r\n.\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    my $f = slurp($pt->spool . "/queue/$id");
    like($f, qr/^ret HDRS$/m, 'ret in the envelope');
    like($f, qr/^envid QQ\+2B1$/m, 'envid in the envelope (xtext)');
    like($f, qr/^rcpt SUCCESS,DELAY rfc822;b\@remote\.test b\@remote\.test$/m, 'notify and orcpt');
    smtp_cmd($s, 'QUIT');
}

# --- IPv6 ---
SKIP: {
    require IO::Socket::IP;
    my $s = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $port, Timeout => 10);
    skip "no IPv6 loopback: $@", 5 unless $s;
    binmode $s;
    $s->autoflush(1);
    like(smtp_reply($s), qr/^220 /, 'greeting on [::1]');
    smtp_cmd($s, 'EHLO six.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    like(smtp_cmd($s, 'RCPT TO:<b@remote.test>'), qr/^554 5\.7\.1 /,
        '::1 is not in mynetworks 127.0.0.0/8: relay denied');
    smtp_cmd($s, 'RSET');
    close $s;
    $pt->config(mynetworks => '127.0.0.0/8 [::1]/128');
    $pt->smtpctl('reload');
    $pt->wait_log(qr/smtpd\[\d+\]: info: configuration reloaded/, 5);
    my ($id) = $pt->send_mail(host => '::1', from => 'a@client.test', to => ['b@remote.test']);
    ok($id, 'message over IPv6 queued once ::1 is in mynetworks');
    my $f = slurp($pt->spool . "/queue/$id");
    like($f, qr/^client ::1 \d+$/m, 'IPv6 client in the envelope');
    like($f, qr/^Received: from client\.test \(\[IPv6:::1\]\)\r$/m, 'IPv6 literal in Received:');
}

$pt->stop;
done_testing();
