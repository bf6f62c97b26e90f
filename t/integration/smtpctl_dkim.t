#!/usr/bin/perl
# smtpctl_dkim.t - the DKIM tools on a whole Postern instance whose DNS is
# a real nsd on loopback:
#   - smtpctl dkim keygen writes DIR/DOMAIN.SELECTOR.key mode 0600 (the
#     directory 0700 when it makes it), refuses to overwrite a key unless
#     --force, and prints the dkim_map line and the TXT record as a zone
#     file line split into strings of at most 255 bytes;
#   - those records put in nsd's zones make `smtpctl dkim check` say the
#     keys match (RSA and --ed25519, two keys for one domain, exit 0);
#     another key's record: does not match, exit 1; no record: "not
#     published", exit 1; --json; as a user who cannot read the keys it
#     says they were not checked and why;
#   - smtpctl dns txt prints the records (the strings of one joined), says
#     NXDOMAIN and "no TXT record" apart, --json, and is not cached;
#   - smtpctl check names FILE:LINE of a bad etc/dkim line, checks the
#     keys as root (a key group may read is named with its line) and not
#     as another user; makemap compiles etc/dkim; a reload is refused
#     while etc/dkim is newer than etc/dkim.db.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::DNS;
use Postern::Test;
use Postern::Util qw(run_prog);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my $pt = Postern::Test->new(dkim_map => 'dkim', dns_timeout => '1s');
my $etc = $pt->etc;
my $keys = "$etc/dkimkeys";

sub mode_of { my @st = stat($_[0]); return @st ? $st[2] & 07777 : -1 }

# ---- keygen ----
my ($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test', 'rsa1');
is($rc, 0, 'keygen: an RSA key') or diag $out;
ok(-f "$keys/dk.test.rsa1.key", 'written to dkim_key_directory as DOMAIN.SELECTOR.key');
is(sprintf('%04o', mode_of("$keys/dk.test.rsa1.key")), '0600', 'mode 0600');
is(sprintf('%04o', mode_of($keys)), '0700', 'the directory made 0700');
like($out, qr/^dk\.test selector=rsa1 key=\Q$keys\E\/dk\.test\.rsa1\.key algorithm=rsa-sha256$/m,
     'prints the dkim_map line');
my ($rsa_zone) = $out =~ /^(rsa1\._domainkey\.dk\.test\. IN TXT \(.*\))$/m;
ok($rsa_zone, 'and the TXT record as a zone file line') or diag $out;
my @strings = ($rsa_zone // '') =~ /"([^"]*)"/g;
ok(@strings >= 2 && !grep({ length > 255 } @strings), 'a 2048-bit key: strings of at most 255 bytes')
    or diag "@strings";
like(join('', @strings), qr/^v=DKIM1; k=rsa; p=[A-Za-z0-9+\/]+=*$/, 'v=DKIM1; k=rsa; p=...');

my $first = Postern::Util::slurp("$keys/dk.test.rsa1.key");
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test', 'rsa1');
is($rc, 1, 'keygen refuses to overwrite a key');
like($out, qr/exists: not overwritten \(--force replaces it\)/, 'and says so');
is(Postern::Util::slurp("$keys/dk.test.rsa1.key"), $first, 'the key is unchanged');

($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test', 'ed1', '--ed25519');
is($rc, 0, 'keygen --ed25519') or diag $out;
my ($ed_zone) = $out =~ /^(ed1\._domainkey\.dk\.test\. IN TXT \( "v=DKIM1; k=ed25519; p=[A-Za-z0-9+\/]{43}=" \))$/m;
ok($ed_zone, 'an Ed25519 record: one string, the raw 32-byte key') or diag $out;
is(sprintf('%04o', mode_of("$keys/dk.test.ed1.key")), '0600', 'mode 0600');

# bad.test: the map names key A, the DNS publishes key B. none.test: no record.
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'bad.test', 's1', '--bits', '1024');
is($rc, 0, 'keygen --bits 1024') or diag $out;
like($out, qr/rsa-sha256, 1024 bits/, 'of 1024 bits');
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'bad.test', 's1', '--dir', $pt->dir . '/other', '--bits', '1024');
is($rc, 0, 'keygen --dir: another key for the same names') or diag $out;
ok(-f $pt->dir . '/other/bad.test.s1.key', 'written in DIR');
my ($other_zone) = $out =~ /^(s1\._domainkey\.bad\.test\. IN TXT \(.*\))$/m;
my $old = Postern::Util::slurp($pt->dir . '/other/bad.test.s1.key');
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'bad.test', 's1', '--dir', $pt->dir . '/other', '--bits', '1024', '--force');
is($rc, 0, 'keygen --force replaces a key') or diag $out;
isnt(Postern::Util::slurp($pt->dir . '/other/bad.test.s1.key'), $old, 'with a new one');
is(sprintf('%04o', mode_of($pt->dir . '/other/bad.test.s1.key')), '0600', 'still mode 0600');
($other_zone) = $out =~ /^(s1\._domainkey\.bad\.test\. IN TXT \(.*\))$/m;
ok($other_zone, 'its record');
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'none.test', 's1', '--bits', '1024');
is($rc, 0, 'keygen for none.test');

($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test', 'bad_sel');
is($rc, 2, 'keygen: a selector that is not a DNS name is a usage error');
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test', 'x', '--ed25519', '--bits', '2048');
is($rc, 2, 'keygen: --bits with --ed25519 is a usage error');
($rc, $out) = $pt->smtpctl('dkim', 'keygen', 'dk.test');
is($rc, 2, 'keygen without a selector: usage');

# ---- the map, check, makemap ----
$pt->write_file('dkim', <<"EOF");
# DKIM keys
dk.test   selector=rsa1 key=dkimkeys/dk.test.rsa1.key
dk.test   selector=ed1  key=dkimkeys/dk.test.ed1.key algorithm=ed25519-sha256
bad.test  selector=s1   key=dkimkeys/bad.test.s1.key
none.test selector=s1   key=$keys/none.test.s1.key
EOF
($rc, $out) = $pt->smtpctl('check');
is($rc, 1, 'check: the map is not compiled yet') or diag $out;
like($out, qr/dkim\.db is missing or older: run smtpctl makemap/, 'and says to run makemap');
($rc, $out) = $pt->smtpctl('makemap', "$etc/dkim");
is($rc, 0, 'makemap etc/dkim') or diag $out;
like($out, qr/dkim\.db: written \(dkim\)/, 'compiled as the dkim_map');
($rc, $out) = $pt->smtpctl('check');
is($rc, 0, 'check passes') or diag $out;
like($out, qr/\Q$etc\E\/dkim: ok, keys checked/, 'as root the keys are checked');

# as a user who cannot read the keys
my $nobody = getpwnam('nobody');
SKIP: {
    skip 'not root', 4 unless $> == 0 && defined $nobody;
    my ($code, $o, $e) = run_prog(prog => $pt->root . '/bin/smtpctl', args => ['-c', $etc, 'check'],
                                  uid => $nobody, gid => scalar getgrnam('nogroup') // 65534);
    is($code, 0, 'check as another user passes') or diag "$o$e";
    like($o, qr/keys not checked: only root may read them/, 'and says the keys were not checked');
    ($code, $o, $e) = run_prog(prog => $pt->root . '/bin/smtpctl',
                               args => ['-c', $etc, 'dkim', 'check', 'dk.test'],
                               uid => $nobody, gid => scalar getgrnam('nogroup') // 65534);
    is($code, 1, 'dkim check as another user: exit 1');
    like("$o$e", qr/not checked: key .*cannot be read.*\n.*run smtpctl dkim check as root/s,
         'says the key cannot be read and to run it as root') or diag "$o$e";
}

# bad lines: FILE:LINE
my $good = Postern::Util::slurp("$etc/dkim");
$pt->write_file('dkim', $good . "oops.test selector=s1\nbad.test selector=s2 key=k algorithm=rsa-sha1\n");
($rc, $out) = $pt->smtpctl('check');
is($rc, 1, 'check: a bad etc/dkim is an error');
like($out, qr/^\Q$etc\E\/dkim:6: oops\.test: key= is missing/m, 'naming FILE:LINE: DOMAIN: why');
like($out, qr/^\Q$etc\E\/dkim:7: bad\.test: unknown algorithm 'rsa-sha1'/m, 'every bad line');
($rc, $out) = $pt->smtpctl('makemap', "$etc/dkim");
is($rc, 1, 'makemap refuses it too');
like($out, qr/dkim:6: oops\.test: key= is missing/, 'with the same words');
chmod 0644, "$keys/none.test.s1.key";
$pt->write_file('dkim', $good);
($rc, $out) = $pt->smtpctl('check');
is($rc, 1, 'check: a key group and others may read');
like($out, qr/^\Q$etc\E\/dkim:5: none\.test: key \Q$keys\E\/none\.test\.s1\.key: group or others may read/m,
     'names its line and the key');
chmod 0600, "$keys/none.test.s1.key";
($rc, $out) = $pt->smtpctl('makemap', "$etc/dkim");
is($rc, 0, 'makemap again') or diag $out;

# ---- nsd with the records, then Postern ----
my $zone_head = sub {
    my ($d) = @_;
    return "\$ORIGIN $d.\n\$TTL 300\n\@ IN SOA ns admin 1 3600 600 86400 60\n\@ IN NS ns\nns IN A 127.0.0.1\n";
};
my $ns = Postern::DNS::Nsd->new(zones => {
    'dk.test'   => $zone_head->('dk.test') . "$rsa_zone\n$ed_zone\n"
        . "host IN A 127.0.0.9\nmulti IN TXT \"one\" \"two\"\nmulti IN TXT \"three\"\n",
    'bad.test'  => $zone_head->('bad.test') . "$other_zone\n",
    'none.test' => $zone_head->('none.test'),
});
$ns->start;
$pt->config(dns_servers => $ns->addr);
$pt->start;

# ---- dns txt ----
($rc, $out) = $pt->smtpctl('dns', 'txt', 'rsa1._domainkey.dk.test');
is($rc, 0, 'dns txt: exit 0') or diag $out;
is($out, join('', @strings) . "\n", 'one line: the record, its strings joined');
($rc, $out) = $pt->smtpctl('dns', 'txt', 'multi.dk.test');
is(join('|', sort split /\n/, $out), 'onetwo|three', 'two records: two lines');
($rc, $out) = $pt->smtpctl('dns', 'txt', 'nothere.dk.test');
is($rc, 1, 'dns txt: NXDOMAIN is exit 1');
like($out, qr/^nothere\.dk\.test: no such name \(NXDOMAIN\)$/m, 'and says so');
($rc, $out) = $pt->smtpctl('dns', 'txt', 'host.dk.test');
is($rc, 1, 'a name without TXT: exit 1');
like($out, qr/^host\.dk\.test: no TXT record \(the name exists\)$/m, 'told apart from NXDOMAIN');
($rc, $out) = $pt->smtpctl('--json', 'dns', 'txt', 'ed1._domainkey.dk.test');
my $j = eval { decode_json($out) };
ok($j && $j->{status} eq 'found' && @{ $j->{records} } == 1 && $j->{records}[0] =~ /^v=DKIM1; k=ed25519; p=/
       && $j->{cached} == JSON::PP::false, '--json: status, records, not cached') or diag $out;
($rc, $out) = $pt->smtpctl('--json', 'dns', 'txt', 'nothere.dk.test');
$j = eval { decode_json($out) };
ok($j && $j->{status} eq 'nxdomain' && $rc == 1, '--json: nxdomain') or diag $out;
my $q0 = $ns->queries;
$pt->smtpctl('dns', 'txt', 'rsa1._domainkey.dk.test');
ok($ns->queries > $q0, 'asked again each time (not cached)');
($rc, $out) = $pt->smtpctl('--json', 'show', 'dns');
$j = eval { decode_json($out) };
ok($j && !grep({ $_->{type} eq 'TXT' } @{ $j->{entries} }), 'and nothing of it in the DNS cache');

# ---- dkim check ----
($rc, $out) = $pt->smtpctl('dkim', 'check', 'dk.test');
is($rc, 0, 'dkim check: every key matches, exit 0') or diag $out;
like($out, qr/^dk\.test s=rsa1 \(rsa-sha256, 2048 bits\): rsa1\._domainkey\.dk\.test: the published record matches the key$/m,
     'the RSA key matches');
like($out, qr/^dk\.test s=ed1 \(ed25519-sha256\): ed1\._domainkey\.dk\.test: the published record matches the key$/m,
     'the Ed25519 key matches');
($rc, $out) = $pt->smtpctl('--json', 'dkim', 'check', 'DK.test');
$j = eval { decode_json($out) };
ok($j && $j->{ok} == JSON::PP::true && @{ $j->{keys} } == 2
       && !grep({ $_->{verdict} ne 'match' } @{ $j->{keys} }), '--json: ok, two keys, both match')
    or diag $out;
($rc, $out) = $pt->smtpctl('dkim', 'check', 'lists.dk.test');
is($rc, 0, 'a subdomain is checked with its parent domain\'s keys (what signs its mail)') or diag $out;

($rc, $out) = $pt->smtpctl('dkim', 'check', 'bad.test');
is($rc, 1, 'another key\'s record: exit 1');
like($out, qr/^bad\.test s=s1 .*: does not match: the record published is not this key's: /m, 'does not match')
    or diag $out;
($rc, $out) = $pt->smtpctl('dkim', 'check', 'none.test');
is($rc, 1, 'no record: exit 1');
like($out, qr/^none\.test s=s1 .*: not published: s1\._domainkey\.none\.test: no such name \(NXDOMAIN\)$/m,
     'says it is not published') or diag $out;
($rc, $out) = $pt->smtpctl('--json', 'dkim', 'check', 'none.test');
$j = eval { decode_json($out) };
ok($j && $j->{ok} == JSON::PP::false && $j->{keys}[0]{verdict} eq 'missing', '--json: missing') or diag $out;
($rc, $out) = $pt->smtpctl('dkim', 'check', 'unsigned.test');
is($rc, 1, 'a domain without a key: exit 1');
like($out, qr/no key for unsigned\.test in the dkim_map/, 'and says so');
($rc, $out) = $pt->smtpctl('dkim', 'check');
is($rc, 2, 'dkim check without a domain: usage');

# ---- reload and the compiled map ----
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'reload with a compiled dkim_map') or diag $out;
sleep 1;    # the source must be newer than the .db by the clock
$pt->write_file('dkim', $good . "# edited\n");
($rc, $out) = $pt->smtpctl('reload');
is($rc, 1, 'reload refused while etc/dkim is newer than etc/dkim.db');
like($out, qr/dkim\.db is missing or older than .*run smtpctl makemap/, 'saying to run makemap') or diag $out;
$pt->smtpctl('makemap', "$etc/dkim");
($rc, $out) = $pt->smtpctl('reload');
is($rc, 0, 'accepted once it is compiled again') or diag $out;

$pt->stop;
$ns->stop;
done_testing();
