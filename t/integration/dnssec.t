#!/usr/bin/perl
# DNSSEC in dnsd against a real nsd serving zones signed by ldns-signzone
# (Postern::DNSSEC): dnssec = validate with an anchor for the test zones
# (secure MX, addresses and TLSA records; a tampered MX and expired
# signatures fail temporarily; a bogus TLSA fails its host; secure
# NODATA for TLSA is "none"; NSEC3; a zone outside the anchors is
# insecure and works as before), dnssec = resolver against the fake
# server (the AD bit, a TLSA SERVFAIL), dnssec = off (no TLSA asked even
# with DANE, counted by nsd), and a missing anchor file stopping dnsd.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);
use Test::More;
use Postern::DNS;
use Postern::DNSSEC;

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();
plan skip_all => 'ldnsutils is not installed' unless -x '/usr/bin/ldns-signzone';

my $DANE = 1;    # DNS_Q_DANE
my $dir = tempdir(CLEANUP => !$ENV{POSTERN_KEEP});

# certificates whose TLSA records the zones publish
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
        . "-subj /CN=Test-CA -keyout $dir/ca.key -out $dir/ca.pem >/dev/null 2>&1") == 0
    or BAIL_OUT('openssl: cannot make a CA');
system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 "
        . "-subj /CN=mx.d.test -keyout $dir/mx.key -out $dir/mx.pem >/dev/null 2>&1") == 0
    or BAIL_OUT('openssl: cannot make a certificate');
my $ee = Postern::DNSSEC::tlsa_record("$dir/mx.pem", usage => 3, selector => 1, mtype => 1,
    name => '_25._tcp.mx.d.test');
my $ta = Postern::DNSSEC::tlsa_record("$dir/ca.pem", usage => 2, selector => 0, mtype => 1,
    name => '_25._tcp.mx.d.test');
my ($ee_hex) = $ee =~ /TLSA 3 1 1 (\S+)$/;
my ($ta_hex) = $ta =~ /TLSA 2 0 1 (\S+)$/;
like($ee_hex, qr/^[0-9a-f]{64}$/, 'tlsa_record: SHA-256 of the SPKI');

sub zone {
    my ($name, $body) = @_;
    return "\$ORIGIN $name.\n\$TTL 300\n\@ IN SOA ns admin 1 3600 600 86400 60\n"
        . "\@ IN NS ns\nns IN A 127.0.0.1\n$body";
}

my $s = Postern::DNSSEC->new(dir => "$dir/keys");
my %zones = (
    'd.test' => $s->sign_zone('d.test', zone('d.test', <<"EOF"), tamper => '_25._tcp.mx3.d.test/TLSA'),
\@ IN MX 10 mx
mx IN A 127.0.0.51
$ee
$ta
nodata IN MX 10 mx2
mx2 IN A 127.0.0.52
bogustlsa IN MX 10 mx3
mx3 IN A 127.0.0.53
_25._tcp.mx3 IN TLSA 3 1 1 $ee_hex
EOF
    'tm.test' => $s->sign_zone('tm.test', zone('tm.test', "\@ IN MX 10 mx\nmx IN A 127.0.0.54\n"),
        tamper => 'tm.test/MX'),
    'x.test' => $s->sign_zone('x.test', zone('x.test', "\@ IN MX 10 mx\nmx IN A 127.0.0.55\n"),
        expired => 1),
    'n3.test' => $s->sign_zone('n3.test', zone('n3.test', <<"EOF"), nsec3 => 1),
\@ IN MX 10 mx
mx IN A 127.0.0.56
_25._tcp.mx IN TLSA 3 1 1 $ee_hex
nodata IN MX 10 mx2
mx2 IN A 127.0.0.57
EOF
    'plain.test' => zone('plain.test', "\@ IN MX 10 mx\nmx IN A 127.0.0.58\n"),
);
my $anchors = $s->anchor_file('d.test', 'tm.test', 'x.test', 'n3.test');
my $ns = Postern::DNS::Nsd->new(zones => \%zones);
$ns->start;

sub host_named {
    my ($r, $name) = @_;
    my ($h) = grep { $_->{name} eq $name } @{ $r->{hosts} || [] };
    return $h || {};
}

sub tlsa_count { return $ns->stats->{'num.type.TLSA'} // 0 }

# ---- validate ----
my $d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ],
    params => { dnssec => 'validate', dnssec_trust_anchor => $anchors });
$d->start;
like($d->log_text, qr/dnssec: 4 trust anchor\(s\) from \Q$anchors\E/, 'anchors read at start');

my $before = tlsa_count();
my $r = $d->mx('d.test', { flags => $DANE });
is($r->{class}, 'ok', 'd.test: ok');
is($r->{sec}, 'secure', 'the MX answer is secure');
my $h = host_named($r, 'mx.d.test');
is_deeply($h->{addrs}, ['127.0.0.51'], 'its address');
is($h->{sec}, 'secure', 'its addresses are secure');
is($h->{tlsa_state}, 'found', 'TLSA found');
is_deeply([ sort map { "$_->{usage} $_->{selector} $_->{mtype} $_->{data}" } @{ $h->{tlsa} } ],
    [ sort("3 1 1 $ee_hex", "2 0 1 $ta_hex") ], 'both records (usage 3 and 2) returned');
ok(tlsa_count() > $before, 'nsd was asked for TLSA');

$r = $d->mx('d.test');
is(host_named($r, 'mx.d.test')->{tlsa_state}, 'not-asked', 'without DANE no TLSA is asked');
is($r->{sec}, 'secure', 'but the status is there');

$r = $d->mx('nodata.d.test', { flags => $DANE });
is($r->{class}, 'ok', 'nodata.d.test: ok');
$h = host_named($r, 'mx2.d.test');
is($h->{sec}, 'secure', 'mx2 secure');
is($h->{tlsa_state}, 'none', 'a secure NODATA for TLSA: none');

$r = $d->mx('bogustlsa.d.test', { flags => $DANE });
is($r->{class}, 'ok', 'a bogus TLSA does not fail the MX lookup');
$h = host_named($r, 'mx3.d.test');
is($h->{tlsa_state}, 'failed', 'a bogus TLSA: failed');
like($h->{tlsa_reason}, qr/TLSA lookup for _25\._tcp\.mx3\.d\.test failed: DNSSEC: bogus/,
    'with the reason') or diag($h->{tlsa_reason});

$r = $d->mx('tm.test', { flags => $DANE });
is($r->{class}, 'temporary', 'tampered MX: temporary failure');
like($r->{reason}, qr/DNSSEC validation failed for tm\.test/, 'mentioning DNSSEC')
    or diag($r->{reason});
like($d->log_text, qr/info: dns: tm\.test\/MX: DNSSEC validation failed: .*RRSIG over tm\.test\/MX/,
    'logged at info with the reason');

$r = $d->mx('x.test');
is($r->{class}, 'temporary', 'expired signatures: temporary failure');
like($r->{reason}, qr/DNSSEC.*expired/, 'the reason says expired') or diag($r->{reason});

$r = $d->mx('n3.test', { flags => $DANE });
is($r->{class}, 'ok', 'NSEC3 zone: ok');
is($r->{sec}, 'secure', 'NSEC3 zone: secure MX');
$h = host_named($r, 'mx.n3.test');
is($h->{sec}, 'secure', 'NSEC3 zone: secure address (AAAA NODATA proven by NSEC3)');
is($h->{tlsa_state}, 'found', 'NSEC3 zone: TLSA found');
$r = $d->mx('nodata.n3.test', { flags => $DANE });
is(host_named($r, 'mx2.n3.test')->{tlsa_state}, 'none', 'NSEC3: secure NXDOMAIN for TLSA: none');

$r = $d->mx('plain.test', { flags => $DANE });
is($r->{class}, 'ok', 'a zone outside the anchors works as before');
is($r->{sec}, 'insecure', 'and is insecure');
$h = host_named($r, 'mx.plain.test');
is_deeply($h->{addrs}, ['127.0.0.58'], 'its address');
is($h->{sec}, 'insecure', 'host insecure');
is($h->{tlsa_state}, 'not-asked', 'no TLSA for an insecure host');

$r = $d->host('mx.d.test', { flags => $DANE, port => 587 });
is($r->{sec}, 'secure', 'host request: secure');
is(host_named($r, 'mx.d.test')->{tlsa_state}, 'none', 'TLSA of port 587 (_587._tcp): none');

# a cached answer keeps its status
$r = $d->mx('d.test', { flags => $DANE });
is(host_named($r, 'mx.d.test')->{tlsa_state}, 'found', 'from the cache: TLSA still found');
is($r->{sec}, 'secure', 'from the cache: still secure');
$r = $d->mx('tm.test');
like($r->{reason}, qr/DNSSEC validation failed/, 'a bogus answer is remembered (cached briefly)');

my ($code, $out) = $d->ctl('show', 'dns', { json => 1 });
my $sd = eval { decode_json($out) } || {};
my %sec = map { ("$_->{name}/$_->{type}" => $_->{sec}) } @{ $sd->{entries} || [] };
is($sec{'d.test/MX'}, 'secure', 'show dns: d.test/MX secure');
is($sec{'plain.test/MX'}, 'insecure', 'show dns: plain.test/MX insecure');
is($sec{'tm.test/MX'}, 'bogus', 'show dns: tm.test/MX bogus');
is($sec{'d.test/DNSKEY'}, 'secure', 'show dns: the DNSKEY set fetched for the chain, secure');
($code, $out) = $d->ctl('show', 'dns');
like($out, qr/^d\.test\s+MX\s+\d+s\s+MX 10 mx\.d\.test\s+\[secure\]$/m, 'show dns text: [secure]');

($code, $out) = $d->ctl('dns', 'lookup', '--dane', 'd.test');
is($code, 0, 'dns lookup --dane exits 0');
like($out, qr/^d\.test: ok sec=secure$/m, 'dns lookup --dane: sec');
like($out, qr/mx\.d\.test .*sec=secure tlsa=found\n\s+TLSA [23] /, 'and the TLSA records');
($code, $out) = $d->ctl('dns', 'lookup', '--dane', '--port', '587', 'd.test', { json => 1 });
my $j = eval { decode_json($out) } || {};
is($j->{hosts}[0]{tlsa_state}, 'none', 'dns lookup --dane --port 587: _587 has none');
($code, $out) = $d->ctl('dns', 'lookup', '--port', 'x', 'd.test');
is($code, 2, 'a bad --port is a usage error');
$d->stop;

# ---- off: no TLSA asked, everything insecure ----
$d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ], params => { dnssec => 'off' });
$d->start;
$before = tlsa_count();
$r = $d->mx('d.test', { flags => $DANE });
is($r->{class}, 'ok', 'off: d.test ok');
is($r->{sec}, 'insecure', 'off: insecure');
$h = host_named($r, 'mx.d.test');
is($h->{sec}, 'insecure', 'off: host insecure');
is($h->{tlsa_state}, 'not-asked', 'off: TLSA not asked');
$r = $d->mx('tm.test');
is($r->{class}, 'ok', 'off: the tampered zone is not judged');
is(tlsa_count(), $before, 'off: nsd got no TLSA query');
$d->stop;

# ---- resolver: the AD bit ----
my $tlsa_rr = "_25._tcp.mx.r.test 60 TLSA 3 1 1 $ee_hex";
my $f = Postern::DNS::Fake->new(rules => {
    'r.test/MX'                 => { ad => 1, answer => ['r.test 60 MX 10 mx.r.test'] },
    'mx.r.test/A'               => { ad => 1, answer => ['mx.r.test 60 A 127.0.0.60'] },
    'mx.r.test/AAAA'            => { ad => 1, soa => 1 },
    '_25._tcp.mx.r.test/TLSA'   => { ad => 1, answer => [$tlsa_rr] },
    'noad.test/MX'              => { answer => ['noad.test 60 MX 10 mx.r.test'] },
    'sf.test/MX'                => { ad => 1, answer => ['sf.test 60 MX 10 mx.sf.test'] },
    'mx.sf.test/A'              => { ad => 1, answer => ['mx.sf.test 60 A 127.0.0.61'] },
    'mx.sf.test/AAAA'           => { ad => 1, soa => 1 },
    '_25._tcp.mx.sf.test/TLSA'  => { rcode => 'SERVFAIL' },
});
$f->start;
$d = Postern::DNS::Dnsd->new(servers => [ $f->addr ], params => { dnssec => 'resolver' });
$d->start;
$r = $d->mx('r.test', { flags => $DANE });
is($r->{sec}, 'secure', 'resolver: AD set -> secure');
$h = host_named($r, 'mx.r.test');
is($h->{sec}, 'secure', 'resolver: host secure');
is($h->{tlsa_state}, 'found', 'resolver: TLSA found');
is($h->{tlsa}[0]{data}, $ee_hex, 'resolver: the record');
$r = $d->mx('noad.test', { flags => $DANE });
is($r->{sec}, 'insecure', 'resolver: no AD -> insecure');
is(host_named($r, 'mx.r.test')->{tlsa_state}, 'not-asked', 'resolver: no TLSA for an insecure MX');
$r = $d->mx('sf.test', { flags => $DANE });
is($r->{class}, 'ok', 'resolver: TLSA SERVFAIL does not fail the lookup');
$h = host_named($r, 'mx.sf.test');
is($h->{tlsa_state}, 'failed', 'resolver: TLSA SERVFAIL -> failed');
like($h->{tlsa_reason}, qr/TLSA lookup for _25\._tcp\.mx\.sf\.test failed: SERVFAIL/,
    'with the reason') or diag($h->{tlsa_reason});
unlike($d->log_text, qr/not on loopback/, 'no loopback warning for 127.0.0.1');
$d->stop;
$f->stop;

# ---- a missing anchor file stops dnsd ----
$d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ],
    params => { dnssec => 'validate', dnssec_trust_anchor => "$dir/missing.key" });
{
    local $SIG{PIPE} = 'IGNORE';    # dnsd is gone: writes to it fail
    ok(!eval { $d->start; 1 }, 'dnssec = validate without its anchor file: dnsd does not start');
    like($@, qr/\Q$dir\/missing.key\E: cannot read the DNSSEC trust anchors/,
        'the error names the file');
    $d->stop;
}

$ns->stop;
done_testing();
