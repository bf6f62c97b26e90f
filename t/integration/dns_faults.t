#!/usr/bin/perl
# dnsd against a scripted responder: SERVFAIL and REFUSED (temporary), a
# server that never answers (the next one is used; the wait is bounded),
# truncated UDP retried over TCP, spoofed answers (wrong ID, wrong source
# port) ignored and logged, CNAME chains across packets and CNAME loops.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time);
use Postern::DNS;

my $mx = sub {
    my ($dom, $host, $addr) = @_;
    return (answer => ["$dom MX 10 $host"], additional => ["$host A $addr"]);
};

my $f = Postern::DNS::Fake->new(rules => {
    'sf.test/*'      => { rcode => 'SERVFAIL' },
    'ref.test/*'     => { rcode => 'REFUSED' },
    'big.test/MX'    => { tc => 1, $mx->('big.test', 'mx.big.test', '127.0.0.40') },
    'spoof.test/MX'  => { wrong_id => 1, $mx->('spoof.test', 'good.spoof.test', '127.0.0.41') },
    'port.test/MX'   => { spoof_port => 1, $mx->('port.test', 'good.port.test', '127.0.0.42') },
    'c1.test/*'      => { answer => ['c1.test CNAME c2.test'] },
    'c2.test/*'      => { answer => ['c2.test CNAME c3.test'] },
    'c3.test/MX'     => { answer => ['c3.test MX 10 mx.c3.test'] },
    'mx.c3.test/A'   => { answer => ['mx.c3.test A 127.0.0.43'] },
    'mx.c3.test/AAAA' => { soa => 1 },
    'l1.test/*'      => { answer => ['l1.test CNAME l2.test'] },
    'l2.test/*'      => { answer => ['l2.test CNAME l1.test'] },
    'inloop.test/*'  => { answer => ['inloop.test CNAME inloop2.test', 'inloop2.test CNAME inloop.test'] },
    'slow.test/MX'   => { $mx->('slow.test', 'mx.slow.test', '127.0.0.44') },
    'slow2.test/MX'  => { $mx->('slow2.test', 'mx.slow2.test', '127.0.0.45') },
    'old.test/MX'    => { formerr_edns => 1, $mx->('old.test', 'mx.old.test', '127.0.0.47') },
    'mxdown.test/MX' => { answer => ['mxdown.test MX 10 a.mxdown.test', 'mxdown.test MX 20 b.mxdown.test'] },
    'a.mxdown.test/*' => { rcode => 'SERVFAIL' },
    'b.mxdown.test/A' => { answer => ['b.mxdown.test A 127.0.0.46'] },
    'b.mxdown.test/AAAA' => { soa => 1 },
});
$f->start;

my $d = Postern::DNS::Dnsd->new(servers => [ $f->addr ],
    params => { dns_timeout => '1s', dns_attempts => 2 });
$d->start;

my $r = $d->mx('sf.test');
is($r->{class}, 'temporary', 'SERVFAIL: temporary');
like($r->{reason}, qr/SERVFAIL/, 'reason names SERVFAIL');
is($f->count('sf.test', 'MX'), 2, 'asked dns_attempts (2) times, not cached');

$r = $d->mx('ref.test');
is($r->{class}, 'temporary', 'REFUSED: temporary');
like($r->{reason}, qr/REFUSED/, 'reason names REFUSED');

# truncated over UDP: retried over TCP
$r = $d->mx('big.test');
is($r->{class}, 'ok', 'truncated answer: ok after TCP');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.40'], 'data from the TCP answer');
is($f->count('big.test', 'MX', 'udp'), 1, 'one UDP query');
is($f->count_tcp('big.test', 'MX'), 1, 'one TCP query');

# spoofed answers
$r = $d->mx('spoof.test');
is($r->{class}, 'ok', 'wrong-ID answer ignored, real answer used');
is($r->{hosts}[0]{name}, 'good.spoof.test', 'not the spoofed MX');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.41'], 'nor the spoofed address');
like($d->log_text, qr/warn.*ignored answer for spoof\.test\/MX .*wrong ID/, 'logged at warn');

$r = $d->mx('port.test');
is($r->{hosts}[0]{name}, 'good.port.test', 'answer from another source port ignored');
like($d->log_text, qr/ignored answer for port\.test\/MX from unexpected source 127\.0\.0\.1 port/,
    'logged with the source');

# a server that does not know EDNS0
$r = $d->mx('old.test');
is($r->{class}, 'ok', 'FORMERR to EDNS0: ok after a retry without it');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.47'], 'with the data');
is($f->count('old.test', 'MX'), 2, 'two queries: with and without EDNS0');
like($d->log_text, qr/answered FORMERR to EDNS0, retrying without/, 'logged');

# CNAME chain across packets
$r = $d->mx('c1.test');
is($r->{class}, 'ok', 'CNAME chain across queries: ok');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.43'], 'the MX behind it');
ok($f->count('c1.test', 'MX') == 1 && $f->count('c2.test', 'MX') == 1
    && $f->count('c3.test', 'MX') == 1, 'each name asked once');

# CNAME loops
$r = $d->mx('l1.test');
is($r->{class}, 'temporary', 'CNAME loop across queries: temporary');
like($r->{reason}, qr/CNAME loop/, 'reason names the loop');
ok($f->count('l1.test') + $f->count('l2.test') <= 2, 'the loop costs at most one query per name');
$r = $d->host('inloop.test');
is($r->{class}, 'temporary', 'CNAME loop inside one answer: temporary');
like($r->{reason}, qr/CNAME loop/, 'reason names the loop');

# one MX host fails, the other works: the set is usable
$r = $d->mx('mxdown.test');
is($r->{class}, 'ok', 'set with one failing host is ok');
is($r->{hosts}[0]{class}, 'temporary', 'the failing host says temporary');
like($r->{hosts}[0]{reason}, qr/SERVFAIL/, 'and why');
is_deeply($r->{hosts}[1]{addrs}, ['127.0.0.46'], 'the other host has its address');
$d->stop;

# A server that never answers: the next server is used, the wait is bounded.
my $hole = Postern::DNS::Fake->new(rules => { map { ("$_/*" => { drop => 1 }) } qw(slow.test slow2.test mx.slow.test dead.test) });
$hole->start;
$d = Postern::DNS::Dnsd->new(servers => [ $hole->addr, $f->addr ],
    params => { dns_timeout => '1s', dns_attempts => 2 });
$d->start;
my $t0 = time;
$r = $d->mx('slow.test');
my $took = time - $t0;
is($r->{class}, 'ok', 'silent first server: answer from the second');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.44'], 'with its data');
is($hole->count('slow.test', 'MX'), 1, 'the silent server was asked once');
ok($took >= 0.9 && $took < 5, sprintf('waited one dns_timeout (%.2fs)', $took));
like($d->log_text, qr/timeout from \Q${\ $hole->addr}\E/, 'timeout logged');
$r = $d->mx('slow2.test');
is($r->{class}, 'ok', 'next lookup ok');
is($hole->count('slow2.test', 'MX'), 0, 'and it starts with the server that answers');
$d->stop;

# Nobody answers: temporary, bounded by timeout x attempts x servers.
$d = Postern::DNS::Dnsd->new(servers => [ $hole->addr ],
    params => { dns_timeout => '1s', dns_attempts => 2 });
$d->start;
$t0 = time;
$r = $d->mx('dead.test');
$took = time - $t0;
is($r->{class}, 'temporary', 'no server answers: temporary');
like($r->{reason}, qr/timeout/, 'reason: timeout');
is($hole->count('dead.test', 'MX'), 2, 'asked dns_attempts times');
ok($took < 6, sprintf('gave up within the bound (%.2fs)', $took));
$d->stop;

$hole->stop;
$f->stop;
done_testing();
