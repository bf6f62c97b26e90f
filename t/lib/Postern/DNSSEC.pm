package Postern::DNSSEC;

# Postern::DNSSEC - signed zones, trust anchors and TLSA records for tests.
#
#   my $s = Postern::DNSSEC->new(dir => $dir);      # keys and files go here
#   my $child  = $s->sign_zone('sub.a.test', $text, parent => 'a.test');
#   my $parent = $s->sign_zone('a.test', $text2);   # gets sub.a.test's DS
#   my $ns = Postern::DNS::Nsd->new(zones => { 'a.test' => $parent,
#                                              'sub.a.test' => $child });
#   my $anchors = $s->anchor_file('a.test');         # DS records (ldns-key2ds)
#   my $keys = $s->anchor_file({ dnskey => 1 }, 'a.test');  # DNSKEY records
#   $s->ds_for('sub.a.test');                        # its DS RR text
#   my $rr = Postern::DNSSEC::tlsa_record('cert.pem', usage => 3,
#       selector => 1, mtype => 1, name => '_25._tcp.mx.a.test');
#
# sign_zone($zone, $text, %opt) makes a KSK and a ZSK for $zone (once:
# signing the same zone again reuses them) with ldns-keygen (ECDSA P-256)
# and returns the text ldns-signzone wrote (NSEC, signatures valid from
# an hour ago for 30 days). Options:
#   nsec3 => 1              NSEC3 instead of NSEC (ldns-signzone -n, no salt)
#   expired => 1            every signature expired (inception 20 days ago,
#                           expiration 10 days ago)
#   not_yet => 1            every signature valid only from 10 days on
#   tamper => 'name/TYPE'   after signing, change that record's rdata (A:
#                           last octet + 1, AAAA: last group, MX: preference
#                           + 1, TLSA: last byte of the data, TXT: a letter),
#                           so its RRSIG no longer verifies
#   unsigned_children => ['u.a.test', ...]  delegations without DS: an NS
#                           record (ns.CHILD, glue 127.0.0.1) is added for
#                           each child the text does not already delegate
#   parent => 'a.test'      remember this zone's DS for a.test: sign_zone of
#                           a.test (later) adds it, so sign children first
#   ds => ['RR text', ...]  extra DS records to add before signing (e.g. a
#                           DS that matches no key)
# Signed zones are served by Postern::DNS::Nsd as they are: nsd sends RRSIG,
# NSEC and NSEC3 records to queries with the DO bit.
#
# tlsa_record hashes the certificate (selector 0) or its SubjectPublicKeyInfo
# (selector 1) with the openssl command: mtype 0 is the DER itself, 1
# SHA-256, 2 SHA-512. It returns "NAME. 300 IN TLSA U S M HEX".

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(sha256_hex sha512_hex);
use File::Path qw(make_path);
use POSIX qw(strftime);

sub new {
    my ($class, %o) = @_;
    my $dir = $o{dir} or croak "Postern::DNSSEC->new: dir is required";
    make_path($dir);
    return bless { dir => $dir, keys => {}, ds => {}, n => 0 }, $class;
}

sub dir { $_[0]{dir} }

# Run a command in our directory; its stdout, or croak with its output.
sub _run {
    my ($self, @cmd) = @_;
    my $out = "$self->{dir}/.out";
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        chdir $self->{dir} or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    my $rc = $?;
    my $text = _slurp($out);
    croak "@cmd failed ($rc): $text" if $rc != 0;
    return $text;
}

sub _keys {
    my ($self, $zone) = @_;
    return $self->{keys}{$zone} if $self->{keys}{$zone};
    my $ksk = $self->_run('ldns-keygen', '-a', 'ECDSAP256SHA256', '-k', $zone);
    my $zsk = $self->_run('ldns-keygen', '-a', 'ECDSAP256SHA256', $zone);
    chomp($ksk, $zsk);
    ($ksk) = $ksk =~ /^(K\S+)$/m or croak "ldns-keygen: no key name for $zone";
    ($zsk) = $zsk =~ /^(K\S+)$/m or croak "ldns-keygen: no key name for $zone";
    return $self->{keys}{$zone} = { ksk => $ksk, zsk => $zsk };
}

# The DS record of $zone's KSK (SHA-256), as RR text.
sub ds_for {
    my ($self, $zone) = @_;
    my $k = $self->_keys($zone);
    my $ds = $self->_run('ldns-key2ds', '-n', '-2', "$k->{ksk}.key");
    $ds =~ s/\s+$//;
    croak "ldns-key2ds gave no DS for $zone" unless $ds =~ /\bDS\b/;
    return $ds;
}

sub _dnskey {
    my ($self, $zone) = @_;
    my $k = $self->_keys($zone);
    my $t = _slurp("$self->{dir}/$k->{ksk}.key");
    $t =~ s/;.*$//mg;
    $t =~ s/\s+$//;
    return $t;
}

sub _ymd { return strftime('%Y%m%d%H%M%S', gmtime($_[0])) }

sub sign_zone {
    my ($self, $zone, $text, %opt) = @_;
    $zone =~ s/\.$//;
    my $k = $self->_keys($zone);
    $text .= "\n" unless $text =~ /\n\z/;
    for my $c (@{ $opt{unsigned_children} || [] }) {
        (my $child = $c) =~ s/\.$//;
        next if $text =~ /^\Q$child\E\.\s+(?:\d+\s+)?(?:IN\s+)?NS\s/mi;
        $text .= "$child. 300 IN NS ns.$child.\nns.$child. 300 IN A 127.0.0.1\n";
    }
    $text .= "$_\n" for values %{ $self->{ds}{$zone} || {} };
    $text .= "$_\n" for @{ $opt{ds} || [] };
    my $n = ++$self->{n};
    my $in = "$self->{dir}/zone$n.txt";
    my $outf = "$self->{dir}/zone$n.signed";
    _spew($in, $text);
    my $now = time;
    my ($inc, $exp) = ($now - 3600, $now + 30 * 86400);
    ($inc, $exp) = ($now - 20 * 86400, $now - 10 * 86400) if $opt{expired};
    ($inc, $exp) = ($now + 10 * 86400, $now + 40 * 86400) if $opt{not_yet};
    my @cmd = ('ldns-signzone', '-o', "$zone.", '-i', _ymd($inc), '-e', _ymd($exp),
        '-f', $outf);
    push @cmd, '-n', '-t', '0' if $opt{nsec3};
    $self->_run(@cmd, $in, $k->{ksk}, $k->{zsk});
    my $signed = _slurp($outf);
    $signed = _tamper($signed, $opt{tamper}) if $opt{tamper};
    if (my $p = $opt{parent}) {
        $p =~ s/\.$//;
        $self->{ds}{$p}{$zone} = $self->ds_for($zone);
    }
    return $signed;
}

sub _tamper {
    my ($text, $what) = @_;
    my ($name, $type) = split m{/}, $what, 2;
    $name = lc $name;
    $name =~ s/\.$//;
    my $done = 0;
    my @out;
    for my $line (split /\n/, $text) {
        my @f = split /\s+/, $line;
        if (!$done && @f >= 5 && lc($f[0]) =~ s/\.$//r eq $name && uc $f[3] eq uc $type) {
            my $t = uc $type;
            if ($t eq 'A') { my @o = split /\./, $f[4]; $o[3] = ($o[3] + 1) % 256; $f[4] = join '.', @o }
            elsif ($t eq 'AAAA') { $f[4] =~ s/([0-9a-f]*)$/sprintf('%x', (hex($1 || 0) + 1) % 65536)/ie }
            elsif ($t eq 'MX') { $f[4]++ }
            elsif ($t eq 'TLSA') { $f[-1] =~ s/(.)$/$1 eq '0' ? '1' : '0'/e }
            elsif ($t eq 'TXT') { $f[4] =~ s/^"(.)/'"' . ($1 eq 'x' ? 'y' : 'x')/e }
            else { croak "tamper: cannot change a $t record" }
            $line = join "\t", @f;
            $done = 1;
        }
        push @out, $line;
    }
    croak "tamper: no $what record in the signed zone" unless $done;
    return join("\n", @out) . "\n";
}

# A trust-anchor file for dnsd (dnssec_trust_anchor): DS records, or with
# { dnskey => 1 } as first argument the KSKs themselves.
sub anchor_file {
    my ($self, @zones) = @_;
    my $o = ref $zones[0] eq 'HASH' ? shift @zones : {};
    my $text = "; trust anchors for " . join(' ', @zones) . "\n";
    for my $z (@zones) {
        (my $zone = $z) =~ s/\.$//;
        $text .= ($o->{dnskey} ? $self->_dnskey($zone) : $self->ds_for($zone)) . "\n";
    }
    my $path = "$self->{dir}/anchors" . ++$self->{n} . ".key";
    _spew($path, $text);
    return $path;
}

sub tlsa_record {
    my ($pem, %o) = @_;
    my ($u, $s, $m) = ($o{usage} // 3, $o{selector} // 1, $o{mtype} // 1);
    my $name = $o{name} or croak "tlsa_record: name is required";
    $name =~ s/\.$//;
    my $der;
    if ($s == 0) {
        $der = _openssl_out([ 'openssl', 'x509', '-in', $pem, '-outform', 'DER' ]);
    } else {
        my $pub = _openssl_out([ 'openssl', 'x509', '-in', $pem, '-noout', '-pubkey' ]);
        $der = _openssl_out([ 'openssl', 'pkey', '-pubin', '-outform', 'DER' ], $pub);
    }
    my $hex = $m == 0 ? unpack('H*', $der) : $m == 1 ? sha256_hex($der) : sha512_hex($der);
    return "$name. 300 IN TLSA $u $s $m $hex";
}

# Run openssl with optional stdin text; its stdout (binary).
sub _openssl_out {
    my ($cmd, $stdin) = @_;
    require IPC::Open2;
    my $pid = IPC::Open2::open2(my $out, my $in, @$cmd);
    binmode $out;
    print $in $stdin if defined $stdin;
    close $in;
    local $/;
    my $data = <$out>;
    waitpid($pid, 0);
    croak "@$cmd failed" if $? != 0 || !defined $data || $data eq '';
    return $data;
}

sub _slurp {
    my ($p) = @_;
    open my $fh, '<', $p or croak "$p: $!";
    local $/;
    my $t = <$fh>;
    return $t // '';
}

sub _spew {
    my ($p, $t) = @_;
    open my $fh, '>', $p or croak "$p: $!";
    print $fh $t;
    close $fh or croak "$p: $!";
}

1;
