#!/usr/bin/perl
# dnsd against a real nsd: MX sets (preferences, shuffle groups, additional
# addresses), MX without additional data, implicit MX, null MX, NXDOMAIN,
# CNAME chains, IPv6-only MX hosts, host lookups. Upstream queries are
# counted by nsd itself (nsd-control stats).
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

# Run a lookup; return the result and how many queries of each type nsd got.
sub counted {
    my ($code) = @_;
    my $before = $ns->stats;
    my $r = $code->();
    my $after = $ns->stats;
    my %n = map { $_ => ($after->{"num.type.$_"} // 0) - ($before->{"num.type.$_"} // 0) }
        qw(MX A AAAA);
    return ($r, \%n);
}

sub names { return [ map { $_->{name} } @{ $_[0]{hosts} } ] }

# MX with preferences and additional addresses
my ($r, $n) = counted(sub { $d->mx('example.test') });
is($r->{class}, 'ok', 'example.test: ok');
is_deeply(names($r), [qw(mx1.example.test mx2.example.test mx3.example.test)],
    'hosts sorted by preference');
is_deeply([ map { $_->{pref} } @{ $r->{hosts} } ], [ 10, 20, 20 ], 'preferences');
is($r->{hosts}[1]{group}, $r->{hosts}[2]{group}, 'equal preferences share a shuffle group');
isnt($r->{hosts}[0]{group}, $r->{hosts}[1]{group}, 'different preferences do not');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.11'], 'mx1 address');
is_deeply($r->{hosts}[1]{addrs}, [ '127.0.0.12', '::1' ], 'mx2 A then AAAA');
is_deeply($n, { MX => 1, A => 0, AAAA => 0 },
    'one MX query; addresses came from the additional section');
is($r->{trailing}, 0, 'reply body consumed exactly');

# MX whose host is in another zone: nsd sends no additional data for it
($r, $n) = counted(sub { $d->mx('noadd.example.test') });
is($r->{class}, 'ok', 'noadd: ok');
is_deeply(names($r), ['mail.other.test'], 'the MX host');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.31'], 'address looked up');
is_deeply($n, { MX => 1, A => 1, AAAA => 1 }, 'MX, then A and AAAA for the host');

# no MX: implicit MX
($r, $n) = counted(sub { $d->mx('implicit.example.test') });
is($r->{class}, 'ok', 'implicit: ok');
is($r->{flags} & 1, 1, 'marked as implicit MX');
is_deeply(names($r), ['implicit.example.test'], 'the domain itself is the host');
is($r->{hosts}[0]{pref}, 0, 'with preference 0');
is_deeply($r->{hosts}[0]{addrs}, [ '127.0.0.21', '::21' ], 'its A and AAAA');

# no MX and no address: permanent
$r = $d->mx('nomail.example.test');
is($r->{class}, 'permanent', 'no MX and no address: permanent');
like($r->{reason}, qr/no MX and no address/, 'reason says so');

# null MX
$r = $d->mx('nullmx.example.test');
is($r->{class}, 'permanent', 'null MX: permanent');
like($r->{reason}, qr/does not accept mail/, 'reason: domain does not accept mail');
is(scalar @{ $r->{hosts} }, 0, 'no hosts');

# NXDOMAIN
$r = $d->mx('nope.example.test');
is($r->{class}, 'permanent', 'NXDOMAIN: permanent');
like($r->{reason}, qr/NXDOMAIN/, 'reason names NXDOMAIN');

# MX host without any address
$r = $d->mx('deadmx.example.test');
is($r->{class}, 'permanent', 'MX host that does not exist: permanent');
like($r->{reason}, qr/nothere\.example\.test/, 'reason names the host');

# CNAME chain
$r = $d->mx('alias.example.test');
is($r->{class}, 'ok', 'CNAME chain followed');
is($r->{name}, 'alias.example.test', 'result named as asked');
is_deeply(names($r), ['mx1.example.test'], 'MX behind the chain');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.11'], 'with its address');

# IPv6-only MX host
$r = $d->mx('v6only.example.test');
is($r->{class}, 'ok', 'IPv6-only MX: ok');
is_deeply($r->{hosts}[0]{addrs}, ['::1'], 'only the AAAA address');

# host lookups
$r = $d->host('mx2.example.test');
is($r->{class}, 'ok', 'host lookup ok');
is_deeply($r->{hosts}[0]{addrs}, [ '127.0.0.12', '::1' ], 'A and AAAA');
$r = $d->host('missing.example.test');
is($r->{class}, 'permanent', 'unknown host: permanent');
like($r->{reason}, qr/not found/, 'reason: not found');

# case and trailing dot do not matter
$r = $d->mx('Example.TEST.');
is_deeply(names($r), [qw(mx1.example.test mx2.example.test mx3.example.test)],
    'names are normalized');

# address literal
$r = $d->mx('[127.0.0.9]');
is($r->{class}, 'ok', 'address literal');
is_deeply($r->{hosts}[0]{addrs}, ['127.0.0.9'], 'gives its address');

# a malformed request gets an answer, and dnsd lives on
my $id = $d->send_raw(300, "\x05\x00\x00\x00abc");
$r = $d->wait_rep($id, 10);
is($r && $r->{class}, 'permanent', 'malformed request answered as permanent failure');
ok($d->alive, 'dnsd still running');

# detailed logs show queries and answers
my $log = $d->log_text;
like($log, qr/query example\.test\/MX to 127\.0\.0\.1:\d+ id \d+ edns0/, 'query logged');
like($log, qr/answer example\.test\/MX from 127\.0\.0\.1:\d+: MX 10 mx1/, 'answer logged');
like($log, qr/MX nope\.example\.test: permanent: .*NXDOMAIN/, 'failure logged');

$d->stop;
$ns->stop;
done_testing();
