#!/usr/bin/perl
# dnsd's cache: a second lookup makes no upstream query (counted at the
# server), entries expire after their TTL, negative answers are cached,
# the cache never exceeds dns_cache_size, 100 concurrent lookups of one
# name make one upstream query, dns flush, dns_ttl_max clamps.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::DNS;

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $ns = Postern::DNS::Nsd->new(zones => Postern::DNS::test_zones());
$ns->start;
my $d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ]);
$d->start;

sub show {
    my ($dd) = @_;
    my ($code, $out) = $dd->ctl('show', 'dns', { json => 1 });
    return eval { decode_json($out) } || do { diag("show dns: $code $out"); {} };
}

my $q0 = $ns->queries;
my $r1 = $d->mx('example.test');
my $q1 = $ns->queries;
is($q1 - $q0, 1, 'first lookup: one upstream query');
my $r2 = $d->mx('example.test');
is($ns->queries, $q1, 'second lookup: no upstream query');
is_deeply($r2, $r1, 'same answer from the cache');
my $s = show($d);
ok($s->{hits} >= 1, 'show dns counts the hit');
my ($e) = grep { $_->{name} eq 'example.test' && $_->{type} eq 'MX' } @{ $s->{entries} };
ok($e, 'show dns lists example.test/MX');
ok($e && $e->{ttl} > 250 && $e->{ttl} <= 300, 'with its TTL left');
like($e ? $e->{data} : '', qr/10 mx1\.example\.test/, 'and its data');

# negative caching (SOA minimum 60)
$q0 = $ns->queries;
$d->mx('nope.example.test');
$d->mx('nope.example.test');
is($ns->queries - $q0, 1, 'NXDOMAIN cached: one upstream query for two lookups');

# expiry: short.example.test has TTL 2
$q0 = $ns->queries;
$d->mx('short.example.test');
$d->mx('short.example.test');
is($ns->queries - $q0, 1, 'short TTL entry served from the cache while fresh');
sleep 3;
$d->mx('short.example.test');
is($ns->queries - $q0, 2, 'asked again after its TTL');

# flush
my ($code, $out) = $d->ctl('dns', 'flush');
is($code, 0, 'dns flush exits 0');
like($out, qr/flushed \d+ entries/, 'and says how many');
is(show($d)->{size}, 0, 'cache empty');
$q0 = $ns->queries;
$d->mx('example.test');
is($ns->queries - $q0, 1, 'after a flush the server is asked again');
$d->stop;

# size bound
$d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ], params => { dns_cache_size => 5 });
$d->start;
my $max_seen = 0;
for my $i (1 .. 12) {
    $d->mx("n$i.example.test");
    my $sz = show($d)->{size} // 99;
    $max_seen = $sz if $sz > $max_seen;
}
$s = show($d);
is($s->{max}, 5, 'dns_cache_size is the bound');
ok($max_seen <= 5, "never more than 5 entries (saw at most $max_seen)");
is(scalar @{ $s->{entries} }, $s->{size}, 'entries listed match the size');
$q0 = $ns->queries;
$d->mx('n12.example.test');
is($ns->queries, $q0, 'the most recent entry is still cached');
$d->mx('n1.example.test');
is($ns->queries - $q0, 1, 'the oldest one was evicted');
$d->stop;

# dns_ttl_max clamps
$d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ], params => { dns_ttl_max => '10s' });
$d->start;
$d->mx('example.test');
($e) = grep { $_->{type} eq 'MX' } @{ show($d)->{entries} };
ok($e && $e->{ttl} <= 10, 'TTL clamped to dns_ttl_max');
$d->stop;

# 100 concurrent lookups of one name: one upstream query
my $f = Postern::DNS::Fake->new(rules => {
    'hot.test/MX' => { delay => 0.5, answer => ['hot.test MX 10 mx.hot.test'],
                       additional => ['mx.hot.test A 127.0.0.50'] },
});
$f->start;
$d = Postern::DNS::Dnsd->new(servers => [ $f->addr ]);
$d->start;
my @r = $d->mx_many([ ('hot.test') x 100 ]);
is(scalar(grep { $_ && $_->{class} eq 'ok' && $_->{hosts}[0]{addrs}[0] eq '127.0.0.50' } @r), 100,
    'all 100 lookups answered');
is($f->count('hot.test', 'MX'), 1, 'with one upstream query');
is(show($d)->{coalesced}, 99, '99 joined the query in flight');
$d->stop;
$f->stop;
$ns->stop;
done_testing();
