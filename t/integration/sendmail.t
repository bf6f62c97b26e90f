#!/usr/bin/perl
# sendmail.t - the sendmail(1) compatible command and mailq, end to end:
# bin/sendmail -C <instance etc> hands mail to a running Postern, which
# delivers it to a peer standing in for the MX of sm.test (mx= in the
# domains map). Shown from the outside:
#   - recipients on the command line; -t with To/Cc/Bcc (all get it, Bcc
#     removed) plus one more on the command line; -f sets the envelope
#     sender, "-f <>" the null sender; -F names the added From:
#   - a lone "." ends input without -i; with -i it is body text,
#     dot-stuffed on the wire and arriving as "."
#   - LF-only input goes out with CR LF (smtpd refuses bare LF by default,
#     and the wire as a raw server sees it has no bare LF)
#   - Date:, Message-ID:, From: added when missing, kept when present
#   - BODY=8BITMIME and SIZE= on MAIL for 8-bit input
#   - postern not running: exit 75 and the message; a recipient refused
#     at RCPT: exit 67, the server's reply printed, no DATA sent
#   - malformed To: with -t: exit 65, nothing sent; over
#     message_size_limit: exit 65; unknown option: exit 64 with usage
#   - -bs speaks SMTP on stdin/stdout; -bi does nothing, successfully
#   - mailq (by name and -bp) lists a held message; a user who may not use
#     the control socket is told so (exit 1)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Postern::Test;
use Postern::Util qw(wait_until slurp free_port run_prog);

my $ROOT = Postern::Test->root_dir;
my $SM   = "$ROOT/bin/sendmail";
plan skip_all => 'bin/sendmail is not built' unless -x $SM;

# run_sm(args => [...], input => $text, env => {...}, prog => $path, uid => $uid)
# -> ($exit, $stdout, $stderr); killed after 60 s.
my $tmp = tempdir('sendmail-t-XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;

sub run_sm {
    my (%o) = @_;
    return run_prog(%o, prog => $o{prog} // $SM);
}

# ---- a raw SMTP server: records the exact bytes a client sends ----
# Each connection's bytes go to DIR/rawN; RCPT to refuse* gets 550.
sub raw_server {
    my ($dir) = @_;
    my $port = free_port('127.0.0.212');
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.212', LocalPort => $port, Listen => 5,
        ReuseAddr => 1) or die "raw server: $!";
    my $parent = $$;
    my $pid = fork() // die "fork: $!";
    if ($pid) { close $ls; return ($pid, $port) }
    my $n = 0;
    local $SIG{ALRM} = sub { POSIX::_exit(0) };
    alarm 300;
    while (my $c = $ls->accept) {
        $n++;
        open my $log, '>', "$dir/raw$n.tmp" or POSIX::_exit(1);
        binmode $c;
        $c->autoflush(1);
        my $buf = '';
        my ($data, $quit) = (0, 0);
        print $c "220 raw.test ESMTP\r\n";
        while (!$quit) {
            my $k = sysread($c, my $chunk, 65536);
            last unless $k;
            print $log $chunk;
            $buf .= $chunk;
            if ($data) {
                next unless $buf =~ s/\A.*?\r\n\.\r\n//s;
                $data = 0;
                print $c "250 2.0.0 raw: queued as RAW$n\r\n";
            }
            while (!$data && $buf =~ s/\A([^\n]*)\n//) {
                my $l = $1;
                $l =~ s/\r\z//;
                if ($l =~ /^EHLO/i) {
                    print $c "250-raw.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n"
                        . "250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";
                } elsif ($l =~ /^RCPT TO:<refuse/i) {
                    print $c "550 5.1.1 <refused> no such user here\r\n";
                } elsif ($l =~ /^DATA/i) {
                    print $c "354 go on\r\n";
                    $data = 1;
                } elsif ($l =~ /^QUIT/i) {
                    print $c "221 2.0.0 bye\r\n";
                    $quit = 1;
                    last;
                } else {
                    print $c "250 2.0.0 ok\r\n";
                }
            }
        }
        close $log;
        rename "$dir/raw$n.tmp", "$dir/raw$n";
        close $c;
        last if getppid() != $parent;
    }
    POSIX::_exit(0);
}

sub write_conf {
    my ($dir, %p) = @_;
    mkdir $dir;
    open my $fh, '>', "$dir/main.cf" or die "$dir/main.cf: $!";
    print $fh "$_ = $p{$_}\n" for sort keys %p;
    close $fh;
    return $dir;
}

# ================= the raw server: the wire =================
my $rawdir = "$tmp/raw";
mkdir $rawdir;
my ($rawpid, $rawport) = raw_server($rawdir);
my $rawetc = write_conf("$tmp/rawetc", smtpd_listen => "127.0.0.212:$rawport",
    myhostname => 'raw.test', queue_directory => "$tmp/rawspool", alias_maps => "$tmp/rawetc/aliases");
my $smalletc = write_conf("$tmp/smalletc", smtpd_listen => "127.0.0.212:$rawport",
    myhostname => 'raw.test', queue_directory => "$tmp/rawspool", message_size_limit => '2k');
my $nraw = 0;

sub raw_next {
    $nraw++;
    my $f = "$rawdir/raw$nraw";
    wait_until(10, sub { -e $f });
    return slurp($f) // '';
}

{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-i', 'a@wire.test'],
        input => "Subject: wire\n\nline one\n.\n..two\n.three\nlast\n");
    is($rc, 0, 'raw: sent with -i') or diag $err;
    my $w = raw_next();
    like($w, qr/^MAIL FROM:<root\@raw\.test>/m, 'raw: sender is the user at myhostname');
    my ($data) = $w =~ /\r\nDATA\r\n(.*)\z/s;
    $data //= '';
    unlike($data, qr/(?<!\r)\n/, 'raw: no bare LF on the wire');
    like($data, qr/\r\nline one\r\n\.\.\r\n\.\.\.two\r\n\.\.three\r\nlast\r\n\.\r\n/,
        'raw: leading dots doubled, CR LF line ends, final dot');
    like($w, qr/QUIT\r\n\z/, 'raw: QUIT at the end');
}
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, 'a@wire.test'],
        input => "Subject: 8bit\n\ncaf\xc3\xa9\n");
    is($rc, 0, 'raw: 8-bit message sent') or diag $err;
    my $w = raw_next();
    like($w, qr/^MAIL FROM:<root\@raw\.test> SIZE=\d+ BODY=8BITMIME\r$/m, 'raw: SIZE and BODY=8BITMIME');
}
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-N', 'success,failure', '-R', 'hdrs',
            '-V', 'env+1', 'a@wire.test'], input => "Subject: dsn\n\nx\n");
    is($rc, 0, 'raw: DSN options') or diag $err;
    my $w = raw_next();
    like($w, qr/^MAIL FROM:<root\@raw\.test> SIZE=\d+ RET=HDRS ENVID=env\+2B1\r$/m,
        'raw: RET and ENVID (xtext)');
    like($w, qr/^RCPT TO:<a\@wire\.test> NOTIFY=SUCCESS,FAILURE\r$/m, 'raw: NOTIFY');
}
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, 'ok@wire.test', 'refuse@wire.test'],
        input => "Subject: refused\n\nx\n");
    is($rc, 67, 'raw: a recipient refused with 5xx: exit 67 (EX_NOUSER)');
    like($err, qr/<refuse\@wire\.test>: recipient refused: 550 5\.1\.1 <refused> no such user here/,
        'raw: the server reply is printed');
    like($err, qr/message not sent to anyone/, 'raw: and that nobody got it');
    my $w = raw_next();
    unlike($w, qr/^DATA/m, 'raw: DATA was never sent');
}
{
    my $body = join('', map { "line $_ " . ('x' x 60) . "\n" } 1 .. 60);
    my ($rc, $out, $err) = run_sm(args => ['-C', $smalletc, 'a@wire.test'],
        input => "Subject: big\n\n$body");
    is($rc, 65, 'over message_size_limit: exit 65 (EX_DATAERR)');
    like($err, qr/message_size_limit/, 'and says which limit');
}
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-t'],
        input => "To: John user\@x.test\nSubject: bad\n\nx\n");
    is($rc, 65, 'malformed To: with -t: exit 65');
    like($err, qr/To: header: ',' expected between addresses/, 'names the header and the problem');
}
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-Z', 'a@x.test'], input => "x\n");
    is($rc, 64, 'unknown option: exit 64 (EX_USAGE)');
    like($err, qr/unknown option -Z.*\nusage: sendmail /s, 'with a usage line');
    ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-i'], input => "x\n");
    is($rc, 64, 'no recipients and no -t: exit 64');
    ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-oQ/tmp', '-odb', '-oem', '-v', 'a@wire.test'],
        input => "Subject: noted\n\nx\n");
    is($rc, 0, 'no-op options accepted') or diag $err;
    like($err, qr/note: option -oQ\/tmp ignored/, 'an unknown -o option is noted');
    like($err, qr/^-> EHLO raw\.test$/m, '-v shows the dialogue');
    raw_next();
    ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-bi']);
    is($rc, 65, '-bi (newaliases) without an aliases file: exit 65');
    like($err, qr/cannot read \Q$rawetc\E\/aliases: No such file/, 'saying which file');
    open my $afh, '>', "$rawetc/aliases" or die $!;
    print $afh "root: ops\@wire.test\n";
    close $afh;
    ($rc, $out, $err) = run_sm(args => ['-C', $rawetc, '-bi']);
    is($rc, 0, '-bi compiles alias_maps') or diag $err;
    ok(-f "$rawetc/aliases.db", 'aliases.db written');
}
# no new connection happened for the refused runs above
ok(!-e "$rawdir/raw" . ($nraw + 1), 'no connection for messages refused before sending');
kill 'TERM', $rawpid;
waitpid($rawpid, 0);

# ================= postern not running =================
{
    my $down = Postern::Test->new;
    my ($rc, $out, $err) = run_sm(args => ['-C', $down->etc, 'a@sm.test'], input => "Subject: x\n\nx\n");
    is($rc, 75, 'postern not running: exit 75 (EX_TEMPFAIL)');
    my $port = $down->port;
    like($err, qr/postern is not accepting mail at 127\.0\.0\.1:$port: connection refused; message not sent/,
        'and says so');
    ($rc, $out, $err) = run_sm(args => ['-C', $down->etc, '-bp']);
    is($rc, 1, 'mailq with postern not running: exit 1');
    like($err, qr/postern is not running/, 'and says so');
}

# ================= a whole Postern =================
my $pt = Postern::Test->new(retry_delay => '1h');
my $mx = $pt->peer(name => 'smx', addr => '127.0.0.211');
$pt->write_file('domains', "sm.test mx=127.0.0.211\nheld.sm.test mx=127.0.0.213\n");
my ($mrc, $mout) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($mrc, 0, 'makemap domains') or diag $mout;
$pt->start;
my $etc = $pt->etc;

# the transaction at the peer that has recipient $rcpt
sub tx_for {
    my ($rcpt) = @_;
    my $t;
    wait_until(30, sub {
        ($t) = grep { $_->{status} eq 'accepted' && grep { $_->{addr} eq $rcpt } @{ $_->{rcpts} } }
            $mx->transactions;
        $t;
    }, 0.1);
    return $t;
}

sub text_of {
    my ($t) = @_;
    return $t ? ($mx->message_text($t) // '') : '';
}

sub headers_of {
    my ($text) = @_;
    my ($h) = split /\r\n\r\n/, $text, 2;
    $h //= '';
    $h =~ s/\r\n/\n/g;
    return $h;
}

# --- recipients on the command line ---
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'one@sm.test', 'two@sm.test'],
        input => "Subject: plain\n\nhello from sendmail\n");
    is($rc, 0, 'plain: exit 0') or diag $err;
    is($err, '', 'plain: nothing on stderr');
    my $t = tx_for('one@sm.test');
    ok($t, 'plain: delivered to the peer');
    is_deeply([sort map { $_->{addr} } @{ $t->{rcpts} || [] }], ['one@sm.test', 'two@sm.test'],
        'plain: both recipients');
    is($t->{mail_from}, 'root@postern.test', 'plain: sender is the invoking user @myhostname');
    my $text = text_of($t);
    my $h = headers_of($text);
    like($h, qr/^From: root <root\@postern\.test>$/m, 'From: added with the full name');
    like($h, qr/^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/m, 'Date: added');
    like($h, qr/^Message-ID: <\d{14}\.[0-9a-f]{16}\.\d+\@postern\.test>$/m, 'Message-ID: added');
    like($h, qr/^Received: by postern\.test \(Postern sendmail, from userid 0\);/m,
        'a Received: line names the local user id');
    like($text, qr/\r\n\r\nhello from sendmail\r\n\z/, 'plain: the body');
}

# --- -t with To, Cc, Bcc ---
{
    my $in = "From: Sender <s\@src.test>\nTo: \"To, Person\" <to\@sm.test>\n"
        . "Cc: cc\@sm.test (a comment)\nBcc: Hidden <bcc\@sm.test>,\n  team: b2\@sm.test;\n"
        . "Subject: extract\n\nbody\n";
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-t', '-i', 'extra@sm.test'], input => $in);
    is($rc, 0, '-t: exit 0') or diag $err;
    my $t = tx_for('to@sm.test');
    ok($t, '-t: delivered');
    is_deeply([sort map { $_->{addr} } @{ $t->{rcpts} || [] }],
        [sort qw(to@sm.test cc@sm.test bcc@sm.test b2@sm.test extra@sm.test)],
        '-t: To, Cc, Bcc (with a group) and the command line recipient');
    my $h = headers_of(text_of($t));
    unlike($h, qr/^Bcc:/mi, '-t: Bcc removed');
    unlike($h, qr/b2\@sm\.test|bcc\@sm\.test/, '-t: no trace of the blind copies');
    like($h, qr/^From: Sender <s\@src\.test>$/m, '-t: From kept');
    is(scalar(() = $h =~ /^From:/mg), 1, '-t: From not added twice');
}

# --- -f and -F ---
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-f', 'bounces@src.test', '-F', 'Cron Daemon',
            'f1@sm.test'], input => "Subject: sender\n\nx\n");
    is($rc, 0, '-f: exit 0') or diag $err;
    my $t = tx_for('f1@sm.test');
    is($t && $t->{mail_from}, 'bounces@src.test', '-f sets the envelope sender');
    like(headers_of(text_of($t)), qr/^From: Cron Daemon <bounces\@src\.test>$/m,
        '-F names the added From:');
    ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-f', '<>', 'f2@sm.test'], input => "Subject: null\n\nx\n");
    is($rc, 0, '-f <>: exit 0') or diag $err;
    $t = tx_for('f2@sm.test');
    is($t && $t->{mail_from}, '', '-f <> is the null sender');
}

# --- the lone dot ---
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'dot1@sm.test'],
        input => "Subject: dot\n\nbefore\n.\nafter the dot\n");
    is($rc, 0, 'lone dot without -i: exit 0') or diag $err;
    my $text = text_of(tx_for('dot1@sm.test'));
    like($text, qr/\r\n\r\nbefore\r\n\z/, 'without -i a lone "." ends the message');
    unlike($text, qr/after the dot/, 'what follows is not sent');

    ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-oi', 'dot2@sm.test'],
        input => "Subject: dot\n\nbefore\n.\n..\nafter the dot\n");
    is($rc, 0, 'lone dot with -oi: exit 0') or diag $err;
    $text = text_of(tx_for('dot2@sm.test'));
    like($text, qr/\r\n\r\nbefore\r\n\.\r\n\.\.\r\nafter the dot\r\n\z/,
        'with -oi "." and ".." arrive as written');
}

# --- LF and CR LF input ---
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'crlf@sm.test'],
        input => "Subject: crlf\r\n\r\nwindows\r\nline\r\n");
    is($rc, 0, 'CR LF input: exit 0') or diag $err;
    like(text_of(tx_for('crlf@sm.test')), qr/\r\n\r\nwindows\r\nline\r\n\z/, 'CR LF input arrives as it was');
    ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'lf@sm.test'],
        input => "Subject: lf\n\nunix\nline\n");
    is($rc, 0, 'LF input accepted by smtpd (which refuses bare LF): sent with CR LF') or diag $err;
    like(text_of(tx_for('lf@sm.test')), qr/\r\n\r\nunix\r\nline\r\n\z/, 'LF input arrives with CR LF');
}

# --- headers present are kept ---
{
    my $in = "From: a\@src.test\nDate: Mon, 01 Jan 2024 00:00:00 +0000\nMessage-ID: <given\@src.test>\n"
        . "Subject: kept\n\nx\n";
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'kept@sm.test'], input => $in);
    is($rc, 0, 'complete headers: exit 0') or diag $err;
    my $t = tx_for('kept@sm.test');
    my $h = headers_of(text_of($t));
    is(scalar(() = $h =~ /^(?:From|Date|Message-ID):/mgi), 3, 'no From/Date/Message-ID added');
    like($h, qr/^Message-ID: <given\@src\.test>$/m, 'Message-ID kept');
    is($t && $t->{message_id}, '<given@src.test>', 'the peer saw the given Message-ID');
}

# --- -bs ---
{
    my $in = "EHLO local.test\r\nMAIL FROM:<bs\@src.test>\r\nRCPT TO:<bs\@sm.test>\r\nDATA\r\n"
        . "Subject: bs\r\n\r\nover -bs\r\n.\r\nQUIT\r\n";
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-bs'], input => $in);
    is($rc, 0, '-bs: exit 0') or diag $err;
    like($out, qr/^220 .*\r\n.*^250 2\.0\.0 Ok: queued as \S+\r\n221 /ms, '-bs: the SMTP dialogue on stdout');
    like(text_of(tx_for('bs@sm.test')), qr/over -bs/, '-bs: delivered');
}

# --- mailq ---
{
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-v', 'h@held.sm.test'], input => "Subject: held\n\nx\n");
    is($rc, 0, 'to a dead MX: queued') or diag $err;
    my ($qid) = $err =~ /queued as (\S+)/;
    ok($qid, '-v prints the queue ID') or diag $err;
    $qid //= 'none';
    ok($pt->wait_log(qr/\Q$qid\E.*status=deferred/, 20), 'deferred');
    my ($hrc, $hout) = $pt->smtpctl('hold', $qid);
    is($hrc, 0, 'held with smtpctl') or diag $hout;

    my $link = "$tmp/mailq";
    symlink($SM, $link) or die "symlink: $!";
    ($rc, $out, $err) = run_sm(prog => $link, env => { POSTERN_CONFIG => $etc });
    is($rc, 0, 'mailq: exit 0') or diag $err;
    like($out, qr/^\Q$qid\E\b.*\(held\)/m, 'mailq (by name, $POSTERN_CONFIG) lists the held message');
    like($out, qr/h\@held\.sm\.test/, 'with its recipient');
    ($rc, $out, $err) = run_sm(args => ['-bp', '-C', $etc]);
    is($rc, 0, 'sendmail -bp: exit 0');
    like($out, qr/^\Q$qid\E\b/m, 'sendmail -bp lists it too');

    SKIP: {
        skip 'not root: cannot run mailq as another user', 3 unless $> == 0;
        my ($uid, $gid) = (getpwnam('nobody'))[2, 3];
        skip 'no user nobody', 3 unless defined $uid;
        ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-bp'], uid => $uid, gid => $gid);
        is($rc, 1, 'mailq as nobody: exit 1');
        like($err, qr/permission denied: only root and the user postern runs as may use its control socket/,
            'and says who may');
        is($out, '', 'and lists nothing');
    }
    ($rc, $out, $err) = run_sm(args => ['-C', $etc, '-q']);
    is($rc, 0, 'sendmail -q (flush): exit 0') or diag $err;
}

# --- a recipient refused by postern itself ---
{
    $pt->config(mynetworks => '192.0.2.0/24');
    my ($rrc, $rout) = $pt->smtpctl('reload');
    is($rrc, 0, 'reload with loopback outside mynetworks') or diag $rout;
    my ($rc, $out, $err) = run_sm(args => ['-C', $etc, 'denied@sm.test'], input => "Subject: d\n\nx\n");
    is($rc, 67, 'relay refused at RCPT: exit 67 (EX_NOUSER)');
    like($err, qr/<denied\@sm\.test>: recipient refused: 554 5\.7\.1 .*Relay access denied/,
        "postern's reply is printed");
}

done_testing;
