#!/usr/bin/perl
# dkim.t - DKIM signing end to end (issue 22, docs/dkim.md). Keys are made
# by `smtpctl dkim keygen`, their TXT records served by the suite's nsd;
# every message that arrives at a sink is checked by an independent
# verifier (python3-dkim, t/lib/dkim_verify.py) that looks the keys up in
# that DNS:
#   - rsa-sha256 and ed25519-sha256 at once (two signatures), for mail from
#     a client in mynetworks; the log says dkim=signed d= s=
#   - an 8-bit body, folded headers and a line that starts with a dot
#   - through a relay gateway
#   - a client outside mynetworks that authenticated (STARTTLS + AUTH) is
#     signed, and so is mail handed to the sendmail command
#   - a client outside mynetworks that did not authenticate may only write
#     to <postmaster> and to local users: what of it leaves (notice_recipient,
#     a forwarding alias) is not signed, whatever its From:
#   - a changed key is used after smtpctl reload (the new selector)
#   - a key that cannot be loaded defers the mail (dkim_required), or lets
#     it go unsigned where required=no; a DSN is signed for myhostname
#   - smtpctl route says whether mail from a sender would be signed
#   - as root: smtpd's uid can read no key file and nothing of signer's
#     memory; signer is not dumpable
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use POSIX qw(_exit);
use Test::More;
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until slurp make_cert run_prog);

my $PY = '/usr/bin/python3';
plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();
plan skip_all => 'python3-dkim (and python3-nacl) are not installed'
    unless system("$PY -c 'import dkim, nacl, dns.resolver' 2>/dev/null") == 0;

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0');
my $kdir = $pt->dir . '/keys';

# --- keys, with the records keygen prints ---
my %txt;
sub keygen {
    my ($dom, $sel, @opt) = @_;
    my ($rc, $out) = $pt->smtpctl('dkim', 'keygen', $dom, $sel, '--dir', $kdir, @opt);
    is($rc, 0, "keygen $dom $sel @opt") or diag $out;
    my ($rec) = $out =~ /(IN\s+TXT\s.*)/s;
    my $t = join('', ($rec // '') =~ /"([^"]*)"/g);
    like($t, qr/^v=DKIM1; k=(rsa|ed25519); p=\S+$/, "keygen $dom $sel: a TXT record to publish");
    $txt{"$sel._domainkey.$dom"} = $t;
    return "$kdir/$dom.$sel.key";
}
my $rsa  = keygen('example.org', 'rsa1');
my $ed   = keygen('example.org', 'ed1', '--ed25519');
my $rsa2 = keygen('example.org', 'rsa2');
my $gwk  = keygen('gw.example', 'g1');
my $dsnk = keygen('postern.test', 'bounce');
my $laxk = keygen('lax.example', 'l1');
is((stat $rsa)[2] & 0777, 0600, 'the key is written with mode 0600');

sub zone {
    my ($origin, @rr) = @_;
    my $z = "\$ORIGIN $origin.\n\$TTL 60\n\@ IN SOA ns admin 1 3600 600 86400 60\n\@ IN NS ns\nns IN A 127.0.0.1\n";
    $z .= "$_\n" for @rr;
    return $z;
}
sub txt_rr {
    my ($name) = @_;
    my $t = $txt{$name};
    my @parts;
    push @parts, substr($t, 0, 250, '') while length $t;
    return "$name. IN TXT " . join(' ', map { "\"$_\"" } @parts);
}
my $port = $pt->direct_port;
my $ns = Postern::DNS::Nsd->new(zones => {
    'dkim.test' => zone('dkim.test', 'rcpt IN MX 10 mx', 'mx IN A 127.0.0.171'),
    'example.org' => zone('example.org', map { txt_rr($_) } grep { /example\.org$/ } keys %txt),
    'gw.example' => zone('gw.example', txt_rr('g1._domainkey.gw.example')),
    'postern.test' => zone('postern.test', txt_rr('bounce._domainkey.postern.test')),
    'lax.example' => zone('lax.example', txt_rr('l1._domainkey.lax.example')),
});
$ns->start;

my $sink = $pt->peer(name => 'sink', addr => '127.0.0.171', port => $port,
    rcpt_rules => [ [ qr/^nobody\@/, '550 5.1.1 no such user' ] ]);
my $gwp = $pt->free_port('127.0.0.172');
my $gw = $pt->peer(name => 'gw', addr => '127.0.0.172', port => $gwp);

my ($cert, $certkey) = make_cert($pt->dir, 'postern.test');
$pt->write_file('users', 'alice ' . crypt('alice-secret', '$6$Qw3rTy8uIoP$') . "\n", 0600);
$pt->config(tls_cert_file => $cert, tls_key_file => $certkey,
    dns_servers => $ns->addr, relay_gateways => ["g=127.0.0.172:$gwp"],
    dkim_map => 'dkim', mynetworks => '127.0.0.1/32', alias_maps => $pt->etc . '/aliases',
    mydestination => 'postern.test', notice_recipient => 'admin@rcpt.dkim.test');
$pt->write_file('domains', "relayed.dkim.test route=relay gateways=g\n");
$pt->write_file('aliases', "fwd: someone\@rcpt.dkim.test\n");
sub dkim_map {
    my ($rsa_key, $broken) = @_;
    my $bad = $broken ? "broken.example selector=x key=$kdir/missing.key\n"
        . "lax.example   selector=l1 key=$kdir/missing-too.key required=no\n" : '';
    $pt->write_file('dkim', <<"MAP" . $bad);
# written by dkim.t
example.org   selector=@{[ $rsa_key eq $rsa ? 'rsa1' : 'rsa2' ]} key=$rsa_key
example.org   selector=ed1 key=$ed algorithm=ed25519-sha256
gw.example    selector=g1 key=$gwk
postern.test  selector=bounce key=$dsnk
MAP
    for my $m (qw(dkim domains aliases users)) {
        my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
        is($rc, 0, "makemap $m") or diag $out;
    }
}
dkim_map($rsa, 1);
$pt->start;

sub verify {
    my ($t) = @_;
    my $f = $t && $t->{file} or return { count => 0, signatures => [] };
    my $out = `$PY $FindBin::Bin/../lib/dkim_verify.py --dns @{[ $ns->addr ]} $f`;
    return eval { decode_json($out) } // { count => -1, raw => $out };
}
sub msg_for {
    my ($peer, $mid) = @_;
    my $t;
    wait_until(30, sub { ($t) = grep { ($_->{message_id} // '') eq $mid } $peer->messages; $t }, 0.2);
    return $t;
}
sub sigs { join ' ', map { "$_->{d}/$_->{s}/$_->{a}/" . ($_->{ok} ? 'ok' : "FAIL($_->{error})") } @{ $_[0]{signatures} } }

# --- rsa-sha256 and ed25519-sha256 at once ---
my ($q1, $m1) = $pt->send_mail(from => 'a@example.org', to => ['r1@rcpt.dkim.test']);
ok($q1, 'a local client sends mail from example.org') or diag $pt->smtp_error;
my $t1 = msg_for($sink, $m1);
ok($t1, 'it arrives at the sink');
my $v1 = verify($t1);
is($v1->{count}, 2, 'two DKIM-Signature fields') or diag explain $v1;
is(sigs($v1), 'example.org/rsa1/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    'both verify with python3-dkim against the published keys');
ok($pt->wait_log(qr/\Q$q1\E: to=<r1\@rcpt\.dkim\.test>.*dkim=signed d=example\.org s=rsa1,ed1.*status=sent|\Q$q1\E: to=<r1\@rcpt\.dkim\.test>.*status=sent.*dkim=signed d=example\.org s=rsa1,ed1/, 5),
    'the log says dkim=signed d=example.org s=rsa1,ed1');
my $raw1 = slurp($t1->{file});
unlike($raw1, qr/^DKIM-Signature:.*\bl=/mi, 'no l= tag');
like($raw1, qr/^DKIM-Signature:(?:.*\r\n[ \t].*)*\bt=\d+/m, 't= is set');

# --- 8-bit body, folded headers, a dot line ---
my $body = "caf\xc3\xa9 na\xc3\xafve\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nend\r\n";
my $data = "From: \"Alice Example\" <a\@example.org>\r\nTo: r2\@rcpt.dkim.test\r\n"
    . "Subject: a subject folded\r\n\tover two lines\r\n"
    . "Message-ID: <fold-1\@example.org>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    . "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    . "Content-Transfer-Encoding: 8bit\r\n\r\n$body";
my ($q2) = $pt->send_mail(from => 'a@example.org', to => ['r2@rcpt.dkim.test'], data => $data);
ok($q2, '8-bit mail with folded headers and dot lines accepted') or diag $pt->smtp_error;
my $t2 = msg_for($sink, '<fold-1@example.org>');
my $v2 = verify($t2);
is(sigs($v2), 'example.org/rsa1/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    '8-bit body, folded Subject and dot lines: both signatures verify');
like(slurp($t2->{file}), qr/\r\n\.a line that starts with a dot\r\n\.\.two dots\r\n\.\r\nend\r\n\z/,
    'the dot lines arrived as sent');

# --- through a relay gateway ---
my ($q3, $m3) = $pt->send_mail(from => 'b@gw.example', to => ['r3@relayed.dkim.test']);
my $t3 = msg_for($gw, $m3);
ok($t3, 'mail routed through the gateway arrives there');
is(sigs(verify($t3)), 'gw.example/g1/rsa-sha256/ok', 'signed, and it verifies, through the gateway');

# --- authenticated, and from the sendmail command ---
my ($qa, $ma) = $pt->send_mail(from => 'a@example.org', to => ['ra@rcpt.dkim.test'],
    local_addr => '127.0.0.9', starttls => 1, auth => [ 'alice', 'alice-secret' ]);
ok($qa, 'a client outside mynetworks that authenticated sends mail') or diag $pt->smtp_error;
is(sigs(verify(msg_for($sink, $ma))), 'example.org/rsa1/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    'authenticated mail is signed');
my ($src, $sout, $serr) = run_prog(prog => $pt->root . '/bin/sendmail',
    args => [ '-C', $pt->etc, '-f', 'a@example.org', 'rsm@rcpt.dkim.test' ],
    input => "From: a\@example.org\nTo: rsm\@rcpt.dkim.test\nSubject: from sendmail\n"
        . "Message-ID: <sm-1\@example.org>\n\nhello\n");
is($src, 0, 'sendmail takes a message') or diag $serr;
is(sigs(verify(msg_for($sink, '<sm-1@example.org>'))),
    'example.org/rsa1/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok', 'mail from sendmail is signed');

# --- mail from a client outside mynetworks is not signed ---
my ($q4, $m4) = $pt->send_mail(from => 'a@example.org', to => ['postmaster'], local_addr => '127.0.0.9',
    subject => 'to the postmaster');
ok($q4, 'a client outside mynetworks may write to postmaster') or diag $pt->smtp_error;
my $t4 = msg_for($sink, $m4);
ok($t4, 'it reaches notice_recipient at the sink');
is(verify($t4)->{count}, 0, 'not signed, though its From: is example.org');
my ($q5, $m5) = $pt->send_mail(from => 'a@example.org', to => ['fwd@postern.test'], local_addr => '127.0.0.9');
ok($q5, 'a client outside mynetworks writes to a local alias that forwards') or diag $pt->smtp_error;
my $t5 = msg_for($sink, $m5);
ok($t5, 'the forwarded copy reaches the sink');
is(verify($t5)->{count}, 0, 'the forwarded copy of mail from elsewhere is not signed');
my ($q6, $m6) = $pt->send_mail(from => 'a@example.org', to => ['fwd@postern.test']);
my $t6 = msg_for($sink, $m6);
is(sigs(verify($t6)), 'example.org/rsa1/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    'the forwarded copy of a local client\'s mail is signed');

# --- smtpctl route ---
my ($rc, $out) = $pt->smtpctl('route', 'x@rcpt.dkim.test', '--from', 'a@example.org');
like($out, qr/^dkim:\s+signed d=example\.org s=rsa1 \(rsa-sha256\), d=example\.org s=ed1 \(ed25519-sha256\)/m,
    'route: mail from example.org is signed with both keys');
($rc, $out) = $pt->smtpctl('route', 'x@rcpt.dkim.test', '--from', 'a@nokey.example');
like($out, qr/^dkim:\s+not signed: no key for nokey\.example/m, 'route: no key, not signed');
($rc, $out) = $pt->smtpctl('route', 'x@rcpt.dkim.test', '--from', 'a@broken.example');
like($out, qr/^dkim:\s+deferred until fixed: key \S*missing\.key \(s=x\) not loaded/m,
    'route: a key that did not load, required: deferred');
($rc, $out) = $pt->smtpctl('route', '--json', 'x@rcpt.dkim.test', '--from', 'a@example.org');
my $rj = eval { decode_json($out) } // {};
is($rj->{dkim}{verdict}, 'signed', 'route --json: dkim verdict');
is(scalar @{ $rj->{dkim}{signatures} || [] }, 2, 'route --json: two signatures');

# --- a key that cannot be loaded ---
$pt->mark_log;
my ($q7, $m7) = $pt->send_mail(from => 'c@broken.example', to => ['r7@rcpt.dkim.test']);
ok($pt->wait_log(qr/\Q$q7\E: .*DKIM: key \S*missing\.key \(s=x\) not loaded.*dkim_required/, 20),
    'required key missing: deferred, and the log says which key and why');
ok($pt->wait_log(qr/\Q$q7\E: .*not counted as an attempt/, 10), 'as a local failure, not counted');
is(scalar(grep { ($_->{message_id} // '') eq $m7 } $sink->transactions), 0, 'nothing was sent unsigned');
my ($q8, $m8) = $pt->send_mail(from => 'c@lax.example', to => ['r8@rcpt.dkim.test']);
my $t8 = msg_for($sink, $m8);
ok($t8, 'required=no: sent');
is(verify($t8)->{count}, 0, 'and unsigned');
ok($pt->wait_log(qr/\Q$q8\E: to=.*dkim=unsigned \(key \S*missing-too\.key/, 5), 'the log says dkim=unsigned and why');

# --- a DSN is signed for myhostname ---
my ($q9) = $pt->send_mail(from => 'a@rcpt.dkim.test', to => ['nobody@rcpt.dkim.test']);
my $dsn;
wait_until(30, sub {
    ($dsn) = grep { ($_->{mail_from} // 'x') eq '' && grep { $_ eq 'a@rcpt.dkim.test' } @{ $_->{accepted_rcpts} } }
        $sink->messages;
    $dsn }, 0.2);
ok($dsn, 'the sender gets a DSN');
is(sigs(verify($dsn)), 'postern.test/bounce/rsa-sha256/ok', 'the DSN is signed for myhostname and verifies');

# --- a changed key after reload (a key that does not load refuses a
# reload, so the two broken entries go) ---
dkim_map($rsa2, 0);
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with a new key') or diag $out;
my ($q10, $m10) = $pt->send_mail(from => 'a@example.org', to => ['r10@rcpt.dkim.test']);
is(sigs(verify(msg_for($sink, $m10))), 'example.org/rsa2/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    'after reload the new key signs');
# a broken key refuses the reload, and the keys in force stay
$pt->write_file('dkim', "example.org selector=rsa1 key=$kdir/nowhere.key\n");
$pt->smtpctl('makemap', $pt->etc . '/dkim');
($rc, $out) = $pt->smtpctl('reload');
isnt($rc, 0, 'a dkim_map naming a missing key refuses the reload');
like($out, qr/dkim_map: key \S*nowhere\.key for example\.org \(s=rsa1\)/, 'and says which key');
my ($q11, $m11) = $pt->send_mail(from => 'a@example.org', to => ['r11@rcpt.dkim.test']);
is(sigs(verify(msg_for($sink, $m11))), 'example.org/rsa2/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
    'the keys in force still sign');

# --- the signer killed: mail waits for it, and leaves signed ---
{
    my $old = $pt->pid_of('signer');
    ok($old && kill('KILL', $old), 'kill -9 of the signer');
    my ($qk, $mk) = $pt->send_mail(from => 'a@example.org', to => ['rk@rcpt.dkim.test']);
    ok($qk, 'mail is accepted while the signer restarts') or diag $pt->smtp_error;
    my $tk = msg_for($sink, $mk);
    ok($tk, 'it is delivered once the signer is back');
    is(sigs(verify($tk)), 'example.org/rsa2/rsa-sha256/ok example.org/ed1/ed25519-sha256/ok',
        'signed with the keys in force (master sent them to the new signer too)');
    my $new = $pt->pid_of('signer');
    ok($new && $new != $old, 'a new signer runs');
}

# --- smtpd's uid and the keys ---
SKIP: {
    skip 'not root: the uid separation needs root', 6 unless $pt->is_root;
    my ($uid, $gid) = (getpwnam('postern'))[ 2, 3 ];
    my $signer = $pt->pid_of('signer');
    ok($signer, 'signer runs');
    my $as_postern = sub {
        my ($path) = @_;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            POSIX::setgid($gid);
            POSIX::setuid($uid);
            _exit(1) if $< != $uid;
            my $fh;
            _exit(open($fh, '<', $path) && defined(sysread($fh, my $b, 1)) ? 0 : 3);
        }
        waitpid($pid, 0);
        return $? >> 8;
    };
    is($as_postern->($_), 3, "smtpd's uid cannot read $_") for ($rsa, $ed);
    is($as_postern->("/proc/$signer/mem"), 3, "smtpd's uid cannot read signer's memory");
    is($as_postern->("/proc/$signer/environ"), 3, "nor its environment");
    like(slurp("/proc/$signer/status"), qr/^Uid:\s+$uid\s/m, 'signer runs as postern');
}

done_testing;
