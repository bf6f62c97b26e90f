#!/usr/bin/perl
# smtpctl's DNS commands on a whole Postern instance whose dns_servers
# point at a real nsd: dns lookup (text and --json, exit codes), show dns
# (--json, hit/miss counters), dns flush.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::DNS;
use Postern::Test;

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $ns = Postern::DNS::Nsd->new(zones => Postern::DNS::test_zones());
$ns->start;
my $pt = Postern::Test->new(dns_servers => $ns->addr, dns_timeout => '1s');
$pt->start;

my ($rc, $out) = $pt->smtpctl('dns', 'lookup', 'example.test');
is($rc, 0, 'dns lookup exits 0 on success');
like($out, qr/^example\.test: ok/m, 'prints the class');
like($out, qr/10 mx1\.example\.test group=0 127\.0\.0\.11/, 'and each host with its addresses');
like($out, qr/20 mx2\.example\.test group=1 127\.0\.0\.12 ::1/, 'A and AAAA');

($rc, $out) = $pt->smtpctl('--json', 'dns', 'lookup', 'example.test');
my $j = eval { decode_json($out) };
ok($j, '--json output parses') or diag($out);
is($j && $j->{class}, 'ok', 'class in JSON');
is($j && scalar @{ $j->{hosts} }, 3, 'three hosts in JSON');

($rc, $out) = $pt->smtpctl('dns', 'lookup', 'nope.example.test');
is($rc, 1, 'dns lookup exits 1 on a DNS failure');
like($out, qr/permanent: .*NXDOMAIN/, 'and prints the error class and reason');

($rc, $out) = $pt->smtpctl('dns', 'lookup', 'nullmx.example.test');
like($out, qr/does not accept mail/, 'null MX reported');

my $q0 = $ns->queries;
($rc, $out) = $pt->smtpctl('dns', 'lookup', 'example.test');
is($ns->queries, $q0, 'a cached lookup asks nsd nothing');

($rc, $out) = $pt->smtpctl('--json', 'show', 'dns');
is($rc, 0, 'show dns --json exits 0');
my $s = eval { decode_json($out) };
ok($s, 'show dns --json parses') or diag($out);
ok($s && $s->{hits} >= 1 && $s->{misses} >= 1, 'hit and miss counters');
ok($s && grep({ $_->{name} eq 'example.test' && $_->{type} eq 'MX' && $_->{ttl} > 0 } @{ $s->{entries} }),
    'cached entry with its TTL left');

($rc, $out) = $pt->smtpctl('show', 'dns');
like($out, qr/^cache: \d+ of 10000 entries/m, 'text show dns');
like($out, qr/example\.test\s+MX\s+\d+s\s+MX 10 mx1/, 'with one line per entry');

($rc, $out) = $pt->smtpctl('dns', 'flush');
is($rc, 0, 'dns flush');
($rc, $out) = $pt->smtpctl('--json', 'show', 'dns');
$s = eval { decode_json($out) };
is($s && $s->{size}, 0, 'cache empty after flush');

($rc, $out) = $pt->smtpctl('dns', 'bogus');
is($rc, 2, 'unknown dns command: usage, exit 2');

# reload: new dns_servers and dns_cache_size take effect without a restart
my $f = Postern::DNS::Fake->new(rules => {
    'fake.test/MX' => { answer => ['fake.test MX 10 mx.fake.test'],
                        additional => ['mx.fake.test A 127.0.0.60'] },
});
$f->start;
$pt->config(dns_servers => $f->addr, dns_cache_size => 7);
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload accepted') or diag($out);
($rc, $out) = $pt->smtpctl('dns', 'lookup', 'fake.test');
like($out, qr/10 mx\.fake\.test group=0 127\.0\.0\.60/, 'lookups go to the new server');
is($f->count('fake.test', 'MX'), 1, 'which was asked');
($rc, $out) = $pt->smtpctl('--json', 'show', 'dns');
$s = eval { decode_json($out) };
is($s && $s->{max}, 7, 'new cache size in force');
$f->stop;

$pt->stop;
$ns->stop;
done_testing();
