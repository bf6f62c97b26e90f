#!/usr/bin/perl
# mta_sts.t - MTA-STS policy discovery in dnsd (RFC 8461): bin/dnsd driven
# directly (Postern::DNS::Dnsd) against Postern::DNS::Fake serving the
# _mta-sts TXT, MX and mta-sts.DOMAIN records, and Postern::HTTPS serving
# the policies with a certificate of a CA made here. Every domain has its
# own case; the server counts the GETs for each.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);
use Postern::DNS;
use Postern::HTTPS;

my $STS = Postern::DNS::Dnsd::DNS_Q_STS;
my @domains = qw(enf tst chg exp exp2 keep fail multi none wrong untrusted redir e404 ctype
    huge slow chunk close co restart bg malformed);
my %rules;
for my $n (@domains) {
    my $d = "$n.test";
    $rules{"$d/MX"} = { answer => ["$d MX 10 mx.$d"], additional => ["mx.$d A 127.0.0.9"] };
    $rules{"_mta-sts.$d/TXT"} = { answer => [qq{_mta-sts.$d TXT "v=STSv1; id=1"}] };
    $rules{"mta-sts.$d/A"} = { answer => ["mta-sts.$d A 127.0.0.1"] };
}
$rules{'_mta-sts.none.test/TXT'} = { answer => [qq{_mta-sts.none.test TXT "v=spf1 -all"}] };
$rules{'_mta-sts.multi.test/TXT'} = { answer => [qq{_mta-sts.multi.test TXT "v=STSv1; id=1"},
    qq{_mta-sts.multi.test TXT "v=STSv1; id=2"}] };
$rules{'_mta-sts.malformed.test/TXT'} = { answer => [qq{_mta-sts.malformed.test TXT "v=STSv1; id=a-b"}] };
$rules{'mta-sts.untrusted.test/A'} = { answer => ['mta-sts.untrusted.test A 127.0.0.2'] };

my $f = Postern::DNS::Fake->new(rules => \%rules);
$f->start;
my $ca = Postern::HTTPS::CA->new;
my $other_ca = Postern::HTTPS::CA->new(cn => 'Another CA');
my $h = Postern::HTTPS->new(ca => $ca, addr => '127.0.0.1',
    names => [map { "mta-sts.$_.test" } grep { $_ ne 'wrong' } @domains]);
$h->start;
my $h2 = Postern::HTTPS->new(ca => $other_ca, addr => '127.0.0.2', port => $h->port,
    names => ['mta-sts.untrusted.test']);
$h2->start;

sub policy_text {
    my (%o) = @_;
    my $mx = join('', map { "mx: $_\r\n" } @{ $o{mx} || ['mx.example.test'] });
    return "version: STSv1\r\nmode: " . ($o{mode} // 'enforce') . "\r\n$mx"
        . "max_age: " . ($o{max_age} // 86400) . "\r\n";
}
for my $n (@domains) {
    $h->policy("$n.test", policy_text(mx => ["mx.$n.test", "*.$n.test"]));
}
$h->policy('tst.test', policy_text(mode => 'testing', mx => ['mx.tst.test']));
$h2->policy('untrusted.test', policy_text(mx => ['mx.untrusted.test']));

my $d = Postern::DNS::Dnsd->new(servers => [$f->addr], params => {
    mta_sts_port => $h->port, mta_sts_ca_file => $ca->file, mta_sts_fetch_timeout => '2s',
    dns_ttl_max => '1s' });
$d->start;

sub sts { my ($dom) = @_; my $r = $d->mx($dom, { flags => $STS }); return $r ? $r->{sts} : {} }

# ---- policies come back ----
my $r = $d->mx('enf.test', { flags => $STS });
is($r->{class}, 'ok', 'the MX set is answered as before');
is($r->{hosts}[0]{name}, 'mx.enf.test', 'with its host');
is($r->{sts}{state}, 'policy', 'enforce: a policy') or diag explain $r->{sts};
is($r->{sts}{mode}, 'enforce', 'mode enforce');
is($r->{sts}{id}, '1', 'the id of the TXT record');
is($r->{sts}{max_age}, 86400, 'max_age');
is_deeply($r->{sts}{mx}, ['mx.enf.test', '*.enf.test'], 'mx patterns');
is($h->requests('enf.test'), 1, 'fetched once');
my $t = sts('tst.test');
is($t->{state} . '/' . $t->{mode}, 'policy/testing', 'testing: a policy in mode testing');
is($d->mx('enf.test')->{sts}{state}, 'not-asked', 'without DNS_Q_STS: not asked');

# ---- same id: the cache; new id: fetched again ----
sleep 1.2;    # the TXT answer left dnsd's cache (dns_ttl_max 1s): asked again
is(sts('enf.test')->{state}, 'policy', 'same id: policy');
is($h->requests('enf.test'), 1, 'same id: no second fetch');

is(sts('chg.test')->{id}, '1', 'chg: id 1');
$f->set_rules('_mta-sts.chg.test/TXT' => { answer => [qq{_mta-sts.chg.test TXT "v=STSv1; id=2"}] });
$h->policy('chg.test', policy_text(mx => ['new.chg.test']));
sleep 1.2;
$t = sts('chg.test');
is($t->{id}, '2', 'new id: the new policy');
is_deeply($t->{mx}, ['new.chg.test'], 'with its mx');
is($h->requests('chg.test'), 2, 'new id: fetched again');

# ---- a fetch that fails ----
$t = sts('keep.test');
is($t->{state}, 'policy', 'keep: a policy first');
$f->set_rules('_mta-sts.keep.test/TXT' => { answer => [qq{_mta-sts.keep.test TXT "v=STSv1; id=2"}] });
$h->set('keep.test', status => 500);
sleep 1.2;
$t = sts('keep.test');
is($t->{state}, 'policy', 'refresh failed: the cached policy still applies');
is($t->{id}, '1', 'the cached one (id 1)');
like($t->{reason}, qr/cached, refresh failed: .*HTTP status 500/, 'and the reason says so');
is($h->requests('keep.test'), 2, 'after one more fetch');
$t = sts('keep.test');
is($h->requests('keep.test'), 2, 'not fetched again within a minute of the failure');
like($t->{reason}, qr/next try in \d+ s/, 'the reason says when');

$h->set('fail.test', status => 500);
$t = sts('fail.test');
is($t->{state}, 'failed', 'fetch failure without a cache: failed');
like($t->{reason}, qr/mta-sts\.fail\.test: HTTP status 500/, 'with the reason');

# ---- records that give no policy ----
$t = sts('multi.test');
is($t->{state}, 'none', 'two STSv1 TXT records: none');
like($t->{reason}, qr/2 STSv1 TXT records/, 'reason');
is($h->requests('multi.test'), 0, 'nothing fetched');
is(sts('none.test')->{state}, 'none', 'no STSv1 record (another TXT): none');
is(sts('nothere.test')->{state}, 'none', 'no TXT record at all: none');
$t = sts('malformed.test');
is($t->{state}, 'none', 'a malformed STSv1 record: none');
like($t->{reason}, qr/malformed/, 'reason');

# ---- the server is checked ----
$t = sts('wrong.test');
is($t->{state}, 'failed', 'a certificate for another name: failed');
like($t->{reason}, qr/certificate verify failed/, 'reason') or diag $t->{reason};
is($h->requests('wrong.test'), 0, 'nothing was asked of it');
$t = sts('untrusted.test');
is($t->{state}, 'failed', 'a certificate of an unknown CA: failed');
like($t->{reason}, qr/certificate verify failed/, 'reason') or diag $t->{reason};
is($h2->requests('untrusted.test'), 0, 'nothing was asked of it');
$h->set('redir.test', redirect => 'https://mta-sts.enf.test/.well-known/mta-sts.txt');
$t = sts('redir.test');
is($t->{state}, 'failed', 'a redirect: failed');
like($t->{reason}, qr/redirect .* not followed/, 'not followed');
is($h->requests('enf.test'), 1, 'the redirect target was not asked');
$h->set('e404.test', status => 404);
like(sts('e404.test')->{reason}, qr/HTTP status 404/, 'a 404: failed');
$h->set('ctype.test', ctype => 'text/html');
$t = sts('ctype.test');
is($t->{state}, 'failed', 'text/html: failed');
like($t->{reason}, qr{Content-Type "text/html" is not text/plain}, 'reason');
$h->set('huge.test', huge => 1);
$t = sts('huge.test');
is($t->{state}, 'failed', 'a body over 64 KiB: failed');
like($t->{reason}, qr/longer than 65536/, 'reason');
$h->set('slow.test', slow => 4);
my $t0 = time;
$t = sts('slow.test');
is($t->{state}, 'failed', 'a server slower than mta_sts_fetch_timeout: failed');
like($t->{reason}, qr/timed out after 2 s/, 'reason');
ok(time - $t0 < 3.5, 'within the timeout');
$h->set('chunk.test', chunked => 1);
is(sts('chunk.test')->{state}, 'policy', 'a chunked body');
$h->set('close.test', close => 1);
is(sts('close.test')->{state}, 'policy', 'a body ended by the close');

# ---- concurrent lookups share one fetch ----
$h->set('co.test', slow => 1);
my @ids = map { $d->send_mx('co.test', { flags => $STS }) } 1 .. 5;
my @res = map { $d->wait_rep($_) } @ids;
is(scalar(grep { $_ && $_->{sts}{state} eq 'policy' } @res), 5, 'five lookups at once: five policies');
is($h->requests('co.test'), 1, 'one fetch');

# ---- expiry ----
$h->policy('exp2.test', policy_text(mx => ['mx.exp2.test'], max_age => 2));
is(sts('exp2.test')->{max_age}, 2, 'a policy of max_age 2');
sleep 3;
is(sts('exp2.test')->{state}, 'policy', 'after its expiry: a policy again');
ok($h->requests('exp2.test') >= 2, 'fetched again after max_age');

$h->policy('exp.test', policy_text(mx => ['mx.exp.test'], max_age => 2));
is(sts('exp.test')->{state}, 'policy', 'exp: a policy of max_age 2');
$h->set('exp.test', status => 503);
sleep 3;
$t = sts('exp.test');
is($t->{state}, 'failed', 'an expired policy is not used when the refetch fails');

# ---- background refresh ----
$h->policy('bg.test', policy_text(mx => ['mx.bg.test'], max_age => 8));
is(sts('bg.test')->{state}, 'policy', 'bg: a policy of max_age 8');
my $end = time + 12;
sleep 0.2 while $h->requests('bg.test') < 2 && time < $end;
is($h->requests('bg.test'), 2, 'refreshed in the background before it expires, without a lookup');

# ---- control ----
my ($code, $out) = $d->ctl('show', 'sts', { json => 1 });
is($code, 0, 'show sts');
my $j = eval { decode_json($out) } || {};
my ($e) = grep { $_->{domain} eq 'enf.test' } @{ $j->{policies} || [] };
ok($e, 'lists enf.test') or diag $out;
is($e && $e->{mode}, 'enforce', 'with its mode');
ok($e && $e->{expires_in} > 86000, 'and its expiry');
my ($k) = grep { $_->{domain} eq 'keep.test' } @{ $j->{policies} || [] };
like($k && $k->{last_error}, qr/HTTP status 500/, 'and the last error of keep.test');
($code, $out) = $d->ctl('show', 'sts');
like($out, qr/^enf\.test mode=enforce id=1 max_age=86400 .*mx=mx\.enf\.test,\*\.enf\.test/m,
    'text show sts');
($code, $out) = $d->ctl('sts', 'lookup', 'tst.test');
is($code, 0, 'sts lookup: exit 0');
like($out, qr/^tst\.test: policy mode=testing id=1/, 'prints the policy');
is($h->requests('tst.test'), 2, 'fetched anew');
($code, $out) = $d->ctl('sts', 'lookup', 'fail.test');
is($code, 1, 'sts lookup of a failing domain: exit 1');
($code, $out) = $d->ctl('sts', 'flush', 'enf.test');
like($out, qr/flushed 1 policies/, 'sts flush DOMAIN');
sts('enf.test');
is($h->requests('enf.test'), 2, 'a flushed policy is fetched again');

# ---- persistence ----
is(sts('restart.test')->{state}, 'policy', 'restart: a policy');
$f->set_rules('_mta-sts.restart.test/TXT' => undef);
ok(-s $d->sts_db, 'the cache is on disk');
if ($> == 0) {
    my @st = stat $d->sts_db;
    is($st[4], scalar getpwnam('postern'), 'owned by mail_owner');
    is(readlink('/proc/' . $d->pid . '/root'), $d->dir . '/spool/dnsd', 'dnsd is chrooted into its own dir');
}
$d->restart;
sleep 1.2;
$t = sts('restart.test');
is($t->{state}, 'policy', 'after a restart, with the TXT record gone: the cached policy');
like($t->{reason}, qr/cached; no STSv1 TXT record/, 'reason');
is($h->requests('restart.test'), 1, 'not fetched again');

# ---- a corrupt cache file ----
$d->_halt;
open my $fh, '>', $d->sts_db or die $!;
print $fh join('', map { chr(int(rand(256))) } 1 .. 16384);
close $fh;
$d->restart;
like($d->log_text, qr/MTA-STS cache .*sts\.db cannot be used .*moved aside to .*sts\.db\.corrupt-/,
    'a corrupt cache is logged and moved aside');
my @aside = glob($d->dir . '/spool/dnsd/sts.db.corrupt-*');
is(scalar @aside, 1, 'the old file is kept aside');
is(sts('tst.test')->{state}, 'policy', 'lookups work with the new cache');
ok($d->alive, 'dnsd runs');

$d->stop;
done_testing();
