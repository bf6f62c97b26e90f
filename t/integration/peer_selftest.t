#!/usr/bin/perl
# Self-test of the scriptable SMTP peer (t/lib/Postern/Peer.pm), driven with
# Net::SMTP, so that Postern's delivery tests can trust what the peer records.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Net::SMTP;
use Time::HiRes qw(time sleep);
use Postern::Peer;
use Postern::Util qw(wait_until pid_alive);

my $n = 0;
sub addr { return '127.0.0.' . (60 + ++$n) }

sub msg {
    my ($mid, @extra) = @_;
    return join("\n", "From: a\@client.test", "To: b\@peer.test", "Subject: t",
        "Message-ID: <$mid>", '', @extra, 'body line', '.leading dot', '') ;
}

sub smtp {
    my ($p, %o) = @_;
    return Net::SMTP->new(Host => $p->addr, Port => $p->port, Hello => 'client.test',
        Timeout => 10, %o);
}

subtest 'plain transaction is recorded' => sub {
    my $p = Postern::Peer->new(addr => addr(), name => 'basic');
    my $s = smtp($p) or return fail("connect: $@");
    like($s->banner, qr/^basic\.test ESMTP/, 'greeting names the host');
    ok(defined $s->supports('PIPELINING'), 'EHLO offers PIPELINING');
    ok(!defined $s->supports('STARTTLS'), 'no STARTTLS unless asked');
    ok($s->mail('a@client.test'), 'MAIL');
    ok($s->to('b@peer.test'), 'RCPT 1');
    ok($s->to('c@peer.test'), 'RCPT 2');
    ok($s->data, 'DATA');
    $s->datasend(msg('m1@client.test'));
    ok($s->dataend, 'end of data accepted');
    like($s->message, qr/queued as basic-1-1/, 'queue id in the reply');
    $s->quit;
    ok(wait_until(5, sub { $p->connections && defined(($p->connections)[0]{close}) }), 'connection closed');
    my @t = $p->transactions;
    is(scalar @t, 1, 'one transaction');
    is($t[0]{status}, 'accepted', 'accepted');
    is($t[0]{mail_from}, 'a@client.test', 'MAIL FROM recorded');
    is_deeply($t[0]{accepted_rcpts}, ['b@peer.test', 'c@peer.test'], 'RCPTs recorded');
    is($t[0]{message_id}, '<m1@client.test>', 'Message-ID recorded');
    is($t[0]{helo}, 'client.test', 'EHLO name recorded');
    is($t[0]{tls}, 0, 'no TLS');
    my $text = $p->message_text($t[0]);
    is($t[0]{bytes}, length($text), 'byte count matches the stored message');
    like($text, qr/^\.leading dot\r$/m, 'dot-stuffing undone');
    is_deeply([$p->message_ids], ['<m1@client.test>'], 'message_ids');
    my @c = $p->connections;
    is(scalar @c, 1, 'one connection');
    is($c[0]{closed_by}, 'client', 'closed by the client (QUIT)');
    cmp_ok($c[0]{close}, '>=', $c[0]{connect}, 'close after connect');
    is($c[0]{transactions}, 1, 'one transaction on the connection');
    is($p->max_concurrent, 1, 'max_concurrent 1');
};

subtest 'per-recipient replies and RSET' => sub {
    my $p = Postern::Peer->new(addr => addr(),
        rcpt_rules => [[qr/^bad\@/, '550 5.1.1 no such user'], [qr/^later\@/, '451 4.2.0 later']]);
    my $s = smtp($p) or return fail("connect: $@");
    ok($s->mail('a@client.test'), 'MAIL');
    ok(!$s->to('bad@peer.test'), 'bad@ refused');
    is($s->code, 550, 'with 550');
    ok(!$s->to('later@peer.test'), 'later@ deferred');
    is($s->code, 451, 'with 451');
    ok($s->to('good@peer.test'), 'good@ accepted');
    ok($s->reset, 'RSET');
    ok($s->mail('x@client.test'), 'MAIL after RSET');
    ok($s->to('good@peer.test'), 'RCPT');
    ok($s->data && $s->datasend(msg('m2@client.test')) && $s->dataend, 'message accepted');
    $s->quit;
    $p->wait_connections(1, 5);
    my @t = $p->transactions;
    is(scalar @t, 2, 'two transactions');
    is($t[0]{status}, 'aborted', 'the first was aborted by RSET');
    is_deeply([map { [$_->{addr}, substr($_->{reply}, 0, 3)] } @{ $t[0]{rcpts} }],
        [['bad@peer.test', 550], ['later@peer.test', 451], ['good@peer.test', 250]],
        'each RCPT with its reply');
    is($t[1]{status}, 'accepted', 'the second was accepted');
};

subtest 'sequences across connections; MAIL, DATA and end-of-data replies' => sub {
    my $p = Postern::Peer->new(addr => addr(),
        replies => { mail => ['451 4.3.0 try later', '250 2.1.0 ok'],
                     eod  => ['554 5.6.0 content rejected', '452 4.3.1 full', '250 2.0.0 ok'],
                     data => ['451 4.3.2 not now', '354 go'] });
    my $try = sub {
        my $s = smtp($p) or return "connect";
        my $r = !$s->mail('a@client.test') ? 'mail ' . $s->code
            : !$s->to('b@peer.test') ? 'rcpt ' . $s->code
            : !$s->data ? 'data ' . $s->code
            : ($s->datasend(msg('m3@client.test')), !$s->dataend) ? 'eod ' . $s->code
            : 'ok';
        $s->quit;
        return $r;
    };
    is($try->(), 'mail 451', 'first MAIL: 451');
    is($try->(), 'data 451', 'second: MAIL ok, DATA 451');
    is($try->(), 'eod 554', 'third: end of data 554');
    is($try->(), 'eod 452', 'fourth: end of data 452');
    is($try->(), 'ok', 'fifth: accepted');
    is($try->(), 'ok', 'the last entry repeats');
    $p->wait_connections(6, 5);
    is(scalar($p->messages), 2, 'two messages accepted');
    is_deeply([map { $_->{status} } $p->transactions],
        [qw(rejected rejected rejected rejected accepted accepted)], 'statuses');
};

subtest 'greeting, hangup, refuse' => sub {
    my $p = Postern::Peer->new(addr => addr(), greeting => '554 5.3.2 go away');
    ok(!smtp($p), 'Net::SMTP refuses a 554 greeting');
    my $h = Postern::Peer->new(addr => addr(), hangup => [1, 0]);
    ok(!smtp($h), 'hangup: no greeting');
    ok(smtp($h), 'second connection greeted');
    $h->wait_connections(1, 5);
    is(($h->connections)[0]{closed_by}, 'hangup', 'recorded as hangup');
    my $r = Postern::Peer->new(addr => addr(), refuse => 1);
    my $sock = IO::Socket::INET->new(PeerAddr => $r->addr, PeerPort => $r->port, Timeout => 5);
    ok(!$sock, 'refuse: connection refused');
};

subtest 'HELO fallback' => sub {
    my $p = Postern::Peer->new(addr => addr(), ehlo => 0);
    my $s = smtp($p) or return fail("connect: $@");
    ok(!defined $s->supports('PIPELINING'), 'no extensions');
    ok($s->mail('a@client.test') && $s->to('b@peer.test') && $s->data
        && $s->datasend(msg('m4@client.test')) && $s->dataend, 'message after HELO');
    $s->quit;
    $p->wait_messages(1, 5);
    is(($p->messages)[0]{helo}, 'client.test', 'HELO name recorded');
};

subtest 'STARTTLS' => sub {
    my $p = Postern::Peer->new(addr => addr(), name => 'tls', starttls => 1, require_tls => 1);
    ok(-s $p->cert, 'certificate made');
    my $s = smtp($p) or return fail("connect: $@");
    ok(defined $s->supports('STARTTLS'), 'STARTTLS offered');
    ok(!$s->mail('a@client.test'), 'MAIL before TLS refused');
    is($s->code, 530, 'with 530');
    ok($s->starttls(SSL_verify_mode => 0), 'STARTTLS handshake');
    ok(!defined $s->supports('STARTTLS'), 'not offered again after TLS');
    ok($s->mail('a@client.test') && $s->to('b@peer.test') && $s->data
        && $s->datasend(msg('m5@client.test')) && $s->dataend, 'message over TLS');
    $s->quit;
    $p->wait_connections(1, 5);
    my @t = $p->messages;
    is(scalar @t, 1, 'one message');
    is($t[0]{tls}, 1, 'transaction recorded with TLS');
    is(($p->connections)[0]{tls}, 1, 'connection recorded with TLS');
};

subtest 'AUTH PLAIN and LOGIN' => sub {
    my $p = Postern::Peer->new(addr => addr(), auth => { gwuser => 'secret' }, require_auth => 1,
        starttls => 1, auth_requires_tls => 1);
    my $s = smtp($p) or return fail("connect: $@");
    ok(!defined $s->supports('AUTH'), 'no AUTH before TLS');
    ok(!$s->mail('a@client.test'), 'MAIL before AUTH refused');
    is($s->code, 530, 'with 530');
    ok($s->starttls(SSL_verify_mode => 0), 'TLS');
    like($s->supports('AUTH') // '', qr/PLAIN/, 'AUTH PLAIN offered after TLS');
    $s->command('AUTH', 'PLAIN', encode_base64("\0gwuser\0wrong", ''));
    is($s->response, 5, 'bad password: 5xx');
    is($s->code, 535, 'with 535');
    $s->command('AUTH', 'PLAIN', encode_base64("\0gwuser\0secret", ''));
    is($s->response, 2, 'good password: 2xx');
    ok($s->mail('a@client.test') && $s->to('b@peer.test') && $s->data
        && $s->datasend(msg('m6@client.test')) && $s->dataend, 'message after AUTH');
    $s->quit;

    my $l = smtp($p) or return fail("connect: $@");
    ok($l->starttls(SSL_verify_mode => 0), 'TLS again');
    $l->command('AUTH LOGIN');
    is($l->response, 3, '334 for the user name');
    $l->command(encode_base64('gwuser', ''));
    is($l->response, 3, '334 for the password');
    $l->command(encode_base64('secret', ''));
    is($l->response, 2, 'AUTH LOGIN accepted');
    $l->quit;
    $p->wait_connections(2, 5);
    is(($p->messages)[0]{auth}, 'gwuser', 'transaction records the AUTH user');
    is_deeply([map { $_->{auth} } $p->connections], ['gwuser', 'gwuser'], 'connections record it');
};

subtest 'drop in the middle of DATA' => sub {
    my $p = Postern::Peer->new(addr => addr(), drop_in_data => [1, 0]);
    my $s = smtp($p) or return fail("connect: $@");
    ok($s->mail('a@client.test') && $s->to('b@peer.test') && $s->data, 'DATA started');
    $s->datasend(msg('m7@client.test', map { "line $_" } 1 .. 20));
    ok(!$s->dataend, 'end of data fails: connection dropped');
    my $s2 = smtp($p) or return fail("connect: $@");
    ok($s2->mail('a@client.test') && $s2->to('b@peer.test') && $s2->data
        && $s2->datasend(msg('m7@client.test')) && $s2->dataend, 'retry accepted');
    $s2->quit;
    $p->wait_connections(2, 5);
    is_deeply([map { $_->{status} } $p->transactions], ['dropped', 'accepted'], 'dropped, then accepted');
    is_deeply([$p->message_ids], ['<m7@client.test>'], 'the message arrived exactly once');
    is(($p->connections)[0]{closed_by}, 'drop', 'connection recorded as dropped');
};

subtest 'idle timeout and delays' => sub {
    my $p = Postern::Peer->new(addr => addr(), idle_timeout => 1, delay => { mail => 1 });
    my $s = smtp($p) or return fail("connect: $@");
    my $t0 = time();
    ok($s->mail('a@client.test'), 'MAIL');
    cmp_ok(time() - $t0, '>=', 0.9, 'MAIL reply delayed by about 1 s');
    $s->reset;
    sleep 2.5;
    my $sock = $s;
    my $line = <$sock>;
    like($line // '', qr/^421/, '421 after the idle time');
    ok(!defined(<$sock>), 'then closed');
    $p->wait_connections(1, 5);
    is(($p->connections)[0]{closed_by}, 'idle', 'recorded as idle close');
};

subtest 'concurrent connections' => sub {
    my $p = Postern::Peer->new(addr => addr());
    my @socks;
    for (1 .. 5) {
        my $c = IO::Socket::INET->new(PeerAddr => $p->addr, PeerPort => $p->port, Timeout => 5);
        push @socks, $c if $c;
    }
    is(scalar @socks, 5, 'five connections open');
    my @greet = map { scalar <$_> } @socks;
    is(scalar(grep { defined && /^220/ } @greet), 5, 'all five greeted');
    ok(wait_until(5, sub { $p->max_concurrent == 5 }), 'max_concurrent sees 5 at once');
    print $_ "QUIT\r\n" for @socks;
    $_->close for @socks;
    is($p->wait_connections(5, 5), 5, 'five closed');
    for (1 .. 3) {
        my $s = smtp($p);
        $s->quit if $s;
    }
    $p->wait_connections(8, 5);
    is($p->max_concurrent, 5, 'sequential connections do not raise it');
    my $q = Postern::Peer->new(addr => addr());
    for (1 .. 3) { my $s = smtp($q); $s->quit if $s; $q->wait_connections($_, 5) }
    is($q->max_concurrent, 1, 'strictly sequential connections: 1');
};

subtest 'lifetime and stop' => sub {
    my $p = Postern::Peer->new(addr => addr(), lifetime => 2);
    ok($p->running, 'running');
    ok(wait_until(8, sub { !$p->running }), 'exits by itself after its lifetime');
    my $q = Postern::Peer->new(addr => addr());
    my $c = IO::Socket::INET->new(PeerAddr => $q->addr, PeerPort => $q->port, Timeout => 5);
    ok($c && <$c> =~ /^220/, 'connected');
    my ($conn_pid) = grep { $_ != $q->pid } _pgroup($q->pid);
    ok($conn_pid, 'a connection process exists');
    $q->stop;
    ok(!$q->running, 'server stopped');
    ok(wait_until(5, sub { !pid_alive($conn_pid) }), 'connection process gone');
    ok(!IO::Socket::INET->new(PeerAddr => $q->addr, PeerPort => $q->port, Timeout => 2), 'port closed');
};

sub _pgroup {
    my ($pgid) = @_;
    my @p;
    opendir(my $dh, '/proc') or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $st = <$fh> // next;
        my @f = split ' ', ($st =~ /\)\s+(.*)/)[0];
        push @p, $pid if $f[2] == $pgid;    # state ppid pgrp
    }
    return @p;
}

done_testing;
