#!/usr/bin/perl
# Overrides: the mx= list of a domain, passed by deliver/relay in the MX
# request, replaces the MX lookup: entries in list order, literal
# addresses as they are, host names resolved to A/AAAA, ports kept.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Postern::DNS;

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $ns = Postern::DNS::Nsd->new(zones => Postern::DNS::test_zones());
$ns->start;
my $d = Postern::DNS::Dnsd->new(servers => [ $ns->addr ]);
$d->start;

my $before = $ns->stats;
my $r = $d->mx('example.test', '127.0.0.5:2626', 'mx2.example.test', '[::1]:2727', 'mail.other.test');
my $after = $ns->stats;
is($r->{class}, 'ok', 'override set: ok');
is($r->{flags} & 2, 2, 'marked as override');
is_deeply([ map { $_->{name} } @{ $r->{hosts} } ],
    [ '127.0.0.5', 'mx2.example.test', '::1', 'mail.other.test' ],
    'hosts in list order; an address is named by itself (no port, no brackets)');
is_deeply([ map { $_->{pref} } @{ $r->{hosts} } ], [ 0, 1, 2, 3 ], 'one preference each');
is_deeply([ map { scalar @{ $_->{addrs} } ? $_->{addrs}[0] : '' } @{ $r->{hosts} } ],
    [ '127.0.0.5', '127.0.0.12', '::1', '127.0.0.31' ], 'literal and looked-up addresses');
is_deeply([ map { $_->{port} } @{ $r->{hosts} } ], [ 2626, 0, 2727, 0 ], 'ports (0 = direct_port)');
is(($after->{'num.type.MX'} // 0) - ($before->{'num.type.MX'} // 0), 0, 'no MX query was made');

$r = $d->mx('example.test', 'mx.test:notaport');
is($r->{class}, 'temporary', 'a bad override entry: temporary');
like($r->{reason}, qr/bad mx= override entry "mx\.test:notaport"/, 'reason names the entry');

$r = $d->mx('example.test', 'nothere.example.test');
is($r->{class}, 'permanent', 'override host without address: permanent');

($r) = $d->ctl('dns', 'lookup', 'anything.test', '127.0.0.77:25');
is($r, 0, 'smtpctl dns lookup takes override entries too');

$d->stop;
$ns->stop;
done_testing();
