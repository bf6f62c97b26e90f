package Postern::Interop;

# Postern::Interop - the interoperability matrix of one peer MTA (Postfix,
# Exim or OpenSMTPD from Debian's packages, unpacked by bench/setup) against
# Postern, both directions, on loopback (docs/interop.md).
#
#   my $ix = Postern::Interop->new('postfix');  # skip_all when not unpacked
#   $ix->cell(out => 'plain', sub { ... Test::More assertions ... });
#   $ix->skip_cell(in => 'bdat', 'OpenSMTPD does not implement CHUNKING');
#   $ix->finish;            # results to build/interop/PEER.json, stops all
#   Postern::Interop->run('exim');   # all of it: every cell of @CELLS
#
# Contract
# - new starts, in a temp dir: a test CA (openssl) and certificates for
#   127.0.0.1 signed by it; a Postern (Postern::Test) with that certificate,
#   tls_ca_file the CA, retry_delay 1s; the sink (a Postern::Peer on
#   127.0.N.2, N per peer so the three tests can run at once) where both
#   directions end; a peer refusing every recipient with 550 (127.0.N.3);
#   two recording forwarders (Postern::Forwarder), peer -> Postern and
#   Postern -> peer, for the BDAT cells; and the peer MTA (Bench::MTA) on
#   127.0.0.1, configured so that:
#     in.test src.in.test loop.test -> Postern, no TLS
#     tls.in.test -> Postern, STARTTLS required (the peer's client TLS)
#     bdat.in.test -> the forwarder -> Postern, no TLS
#     retry.in.test -> Postern's second listener, no TLS
#     deny.in.test -> Postern from 127.0.N.9, outside its mynetworks
#     (127.0.0.1/32), so refused with 554 5.7.1
#     anything else -> the sink; reject550@... gets 550 at RCPT and
#     retry451@... 451 until accept_retry() is called.
#   Postern routes the in domains to the sink and the out domains to the
#   peer (out.test: tls=none; may./enc./ver.out.test: tls=may, encrypt,
#   verify; bdat.out.test through the forwarder; dsn.out.test; loop.test;
#   auth./login.out.test through the Exim gateways), src.out.test to the
#   sink and fail.out.test to the 550 peer. Unless the tls-dane cell is
#   skipped (OpenSMTPD; no nsd or ldnsutils): dane.out.test and
#   bad.dane.out.test by their MX records in a signed zone that our own
#   nsd serves, dnssec = validate with that zone's anchor only, TLSA 3 1 1
#   of the peer's key (bad.: of another key) (_dane_setup).
# - cell(DIR, NAME, CODE) runs CODE as a Test::More subtest named
#   "PEER DIR NAME" (a die in it is one more failure) and records ok or
#   FAIL; skip_cell(DIR, NAME, REASON) records skip and emits a skipped
#   test. finish writes the results as JSON to $POSTERN_INTEROP_RESULTS
#   (default build/interop) for t/interop/summary.pl.
# - Every wait is bounded; everything started is stopped by PID.

use strict;
use warnings;
use Carp qw(croak);
use Digest::SHA qw(sha256_hex);
use File::Path qw(make_path);
use JSON::PP ();
use Net::SMTP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);

use Postern::Test;
use Postern::Forwarder;
use Postern::Util qw(free_port wait_until slurp run_prog);

my $ROOT = Postern::Test->root_dir;
my $ROOTS = $ENV{POSTERN_INTEROP_ROOTS} // "$ROOT/bench/work/root";
my %NET = (postfix => 1, exim => 2, opensmtpd => 3);
my %NAME = (postfix => 'Postfix 3.7', exim => 'Exim 4.96', opensmtpd => 'OpenSMTPD 6.8');
my %BIN = (postfix => 'postfix/usr/sbin/postfix', exim => 'exim4/usr/sbin/exim4',
    opensmtpd => 'opensmtpd/usr/sbin/smtpd');

# Every matrix not yet stopped, so that a test dying anywhere still stops
# the peer MTA, the forwarders and Postern (by PID, through their objects).
my %LIVE;
my $OWNER_PID = $$;
END {
    local $?;
    if ($$ == $OWNER_PID) { $_->stop for grep { $_ } values %LIVE }
}

# Header fields a hop adds, left out of the comparison (docs/interop.md).
our @TRACE = qw(Received Return-Path X-Original-To Delivered-To);

sub new {
    my ($class, $kind) = @_;
    my $n = $NET{$kind} or croak "interop: unknown peer $kind";
    plan skip_all => "$NAME{$kind} is not unpacked under $ROOTS (make interop runs bench/setup)"
        unless -x "$ROOTS/$BIN{$kind}";
    plan skip_all => 'interop runs the peer MTAs as root' unless $> == 0;
    require lib;
    lib->import("$ROOT/bench/lib");
    require Bench::MTA;
    require Bench::Proc;
    {
        local $ENV{BENCH_NO_LOCK} = 1;
        local %SIG = %SIG;
        Bench::Proc::init("$ROOT/bench/work");
    }
    my $self = bless { kind => $kind, name => $NAME{$kind}, net => "127.0.$n", results => [],
        seq => 0, features => { smtputf8 => $kind ne 'opensmtpd' } }, $class;
    $LIVE{$self} = $self;
    $self->_start;
    return $self;
}

sub kind { $_[0]{kind} }
sub pt   { $_[0]{pt} }
sub sink { $_[0]{sink} }
sub mta  { $_[0]{mta} }
sub dir  { $_[0]{dir} }

sub _start {
    my ($self) = @_;
    my $net = $self->{net};
    my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0',
        delay_warning_time => '0', message_size_limit => '6M', smtp_timeout => '60s',
        mynetworks => '127.0.0.1/32');
    $self->{pt} = $pt;
    # a second listener only the peer's route for retry.in.test uses, so
    # the 4xx cell finds no session the peer keeps open from earlier cells
    $self->{pt_port2} = free_port('127.0.0.1');
    $pt->config(smtpd_listen => [ '127.0.0.1:' . $pt->port, "127.0.0.1:$self->{pt_port2}" ]);
    my $d = $self->{dir} = $pt->dir;
    $self->_make_ca;
    $self->{sink} = $pt->peer(name => 'sink', addr => "$net.2",
        extensions => [ 'PIPELINING', 'SIZE 104857600', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES' ]);
    $self->{refuser} = $pt->peer(name => 'refuser', addr => "$net.3", port => $self->{sink}->port,
        rcpt_rules => [ [ qr/./, '550 5.1.1 no such user here' ] ]);
    $self->{pport} = free_port('127.0.0.1');
    @{$self}{qw(aport bport)} = (free_port('127.0.0.1'), free_port('127.0.0.1'));
    $self->{fw_in} = Postern::Forwarder->new(addr => '127.0.0.1', port => free_port('127.0.0.1'),
        to => '127.0.0.1:' . $pt->port, file => "$d/fw-in.jsonl");
    $self->{fw_out} = Postern::Forwarder->new(addr => '127.0.0.1', port => free_port('127.0.0.1'),
        to => "127.0.0.1:$self->{pport}", file => "$d/fw-out.jsonl");
    my %gw;
    if ($self->{kind} eq 'exim') {
        %gw = (relay_gateways => [ "eximplain=127.0.0.1:$self->{aport}/verify",
            "eximlogin=127.0.0.1:$self->{bport}/none/plainauth" ]);
        $pt->write_file('secrets', "eximplain gwuser gwpass\neximlogin gwuser gwpass\n", 0600);
    }
    $pt->config(tls_cert_file => "$d/ca/postern.crt", tls_key_file => "$d/ca/postern.key",
        tls_ca_file => "$d/ca/ca.crt", %gw);
    my $sink = $self->{sink}->hostport;
    my $peer = "127.0.0.1:$self->{pport}";
    my $map = '';
    $map .= "$_ mx=$sink tls=none\n"
        for qw(in.test src.in.test tls.in.test bdat.in.test deny.in.test retry.in.test src.out.test);
    $map .= "fail.out.test mx=$net.3:" . $self->{sink}->port . "\n";
    $map .= "out.test mx=$peer tls=none\n";
    $map .= "may.out.test mx=$peer tls=may\n";
    $map .= "enc.out.test mx=$peer tls=encrypt\n";
    $map .= "ver.out.test mx=$peer tls=verify\n";
    $map .= "dsn.out.test mx=$peer tls=none\n";
    $map .= "loop.test mx=$peer tls=none\n";
    $map .= 'bdat.out.test mx=127.0.0.1:' . $self->{fw_out}->port . " tls=none\n";
    $map .= "auth.out.test route=relay gateways=eximplain\nlogin.out.test route=relay gateways=eximlogin\n"
        if %gw;
    $map .= $self->_dane_setup unless $self->why_skip(out => 'tls-dane');
    $pt->write_file('domains', $map);
    for my $m ('domains', %gw ? 'secrets' : ()) {
        my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . "/$m");
        croak "interop: makemap $m: $out" if $rc;
    }
    my $make = "_mta_$self->{kind}";
    $self->{mta} = $self->$make("$d/$self->{kind}");
    $self->{mta}->start(60);
    $pt->start;
}

# The DANE cell's DNS (docs/interop.md): one zone, dane.out.test, signed
# with ldns-signzone and served by our own nsd on loopback. Its MX
# mx.dane.out.test and bad.dane.out.test's MX mx.bad.dane.out.test are
# 127.0.0.1, where the peer listens; _PPORT._tcp.mx.dane.out.test has a
# TLSA 3 1 1 record of the peer's key (ca/peer.crt), and
# _PPORT._tcp.mx.bad.dane.out.test one of a key the peer does not have
# (Postern's own, ca/postern.crt). Postern asks nsd only (dns_servers),
# validates (dnssec = validate) from an anchor file with that zone's DS
# only, and reaches both domains by a real MX lookup of themselves on the
# peer's port (route=smtp:HOST:PORT), so the TLSA names carry that port.
# Every other domain keeps its mx= override with a literal address and
# never asks DNS. mta_sts stays on (the default): the only MX target
# without an override is this zone, and its _mta-sts TXT lookup goes to
# nsd too, which denies it (NXDOMAIN, signed), so nothing is fetched and
# no query leaves loopback. Returns the domains map's lines.
sub _dane_setup {
    my ($self) = @_;
    require Postern::DNS;
    require Postern::DNSSEC;
    my $ca = "$self->{dir}/ca";
    my $port = $self->{pport};
    my $z = 'dane.out.test';
    my $tlsa = sub { Postern::DNSSEC::tlsa_record($_[0], usage => 3, selector => 1, mtype => 1, name => $_[1]) };
    my $text = join("\n", "\$ORIGIN $z.", '$TTL 300', '@ IN SOA ns admin 1 3600 600 86400 60',
        '@ IN NS ns', 'ns IN A 127.0.0.1',
        '@ IN MX 10 mx', 'mx IN A 127.0.0.1', $tlsa->("$ca/peer.crt", "_$port._tcp.mx.$z"),
        'bad IN MX 10 mx.bad', 'mx.bad IN A 127.0.0.1', $tlsa->("$ca/postern.crt", "_$port._tcp.mx.bad.$z")) . "\n";
    my $s = Postern::DNSSEC->new(dir => "$self->{dir}/dnssec");
    my $signed = $s->sign_zone($z, $text);
    $self->{nsd} = Postern::DNS::Nsd->new(zones => { $z => $signed });
    $self->{nsd}->start;
    $self->{pt}->config(dns_servers => $self->{nsd}->addr, dnssec => 'validate',
        dnssec_trust_anchor => $s->anchor_file($z));
    return "$z route=smtp:$z:$port tls=dane\nbad.$z route=smtp:bad.$z:$port tls=dane\n";
}

# Why the DANE cell cannot run here for want of tools (undef: it can).
sub _dane_missing {
    require Postern::DNS;
    return 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();
    for my $tool (qw(ldns-signzone ldns-keygen ldns-key2ds)) {
        return "$tool is not installed (ldnsutils)" unless grep { -x "$_/$tool" } split /:/, $ENV{PATH} // '';
    }
    return undef;
}

# A CA and two leaf certificates for 127.0.0.1 (Postern's and the peer's).
sub _make_ca {
    my ($self) = @_;
    my $ca = "$self->{dir}/ca";
    make_path($ca);
    chmod 0755, $ca;
    _run_ok('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$ca/ca.key",
        '-out', "$ca/ca.crt", '-days', '2', '-subj', '/CN=Postern interop test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    for my $who (qw(postern peer)) {
        _run_ok('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$ca/$who.key",
            '-out', "$ca/$who.csr", '-subj', "/CN=$who.interop.test");
        open my $fh, '>', "$ca/$who.ext" or croak $!;
        print $fh "subjectAltName=IP:127.0.0.1,DNS:$who.interop.test\n"
            . "extendedKeyUsage=serverAuth,clientAuth\n";
        close $fh;
        _run_ok('openssl', 'x509', '-req', '-in', "$ca/$who.csr", '-CA', "$ca/ca.crt", '-CAkey',
            "$ca/ca.key", '-CAcreateserial', '-out', "$ca/$who.crt", '-days', '2', '-extfile', "$ca/$who.ext");
    }
    chmod 0644, glob("$ca/*");
    # keys readable by their user only (OpenSMTPD insists): Exim reads its
    # key as exim_user, Postern's children as mail_owner
    my %reader = (postern => 'postern', peer => $self->{kind} eq 'exim' ? 'Debian-exim' : 'root');
    for my $who (keys %reader) {
        my $gid = (getpwnam($reader{$who}))[3] // 0;
        chown 0, $gid, "$ca/$who.key";
        chmod 0640, "$ca/$who.key";
    }
}

sub _run_ok {
    my ($prog, @args) = @_;
    my ($rc, undef, $err) = run_prog(prog => $prog, args => \@args, timeout => 60);
    croak "interop: $prog $args[0] failed: $err" if $rc;
}

# ---- the peers' configurations ----

sub _mta_postfix {
    my ($self, $d) = @_;
    my $pt = $self->{pt};
    my $to = '[127.0.0.1]:' . $pt->port;
    my $fw = '[127.0.0.1]:' . $self->{fw_in}->port;
    my %tr = ('in.test' => "plain:$to", 'src.in.test' => "plain:$to", 'loop.test' => "plain:$to",
        'tls.in.test' => "tlsout:$to", 'bdat.in.test' => "plain:$fw", 'deny.in.test' => "denied:$to",
        'retry.in.test' => "plain:[127.0.0.1]:$self->{pt_port2}");
    my $ca = "$self->{dir}/ca";
    my $m = Bench::MTA->create('postfix', dir => $d, port => $self->{pport}, sink_addr => $self->{sink}->addr,
        sink_port => $self->{sink}->port, repo => $ROOT, roots => $ROOTS,
        master_extra => "plain unix - - n - - smtp -o smtp_tls_security_level=none\n"
            . "tlsout unix - - n - - smtp -o smtp_tls_security_level=encrypt\n"
            . "denied unix - - n - - smtp -o smtp_tls_security_level=none -o smtp_bind_address=$self->{net}.9\n",
        params => {
            myhostname => 'postfix.interop.test',
            transport_maps => 'inline:{' . join(', ', map { "$_=$tr{$_}" } sort keys %tr) . '}',
            smtpd_recipient_restrictions => "check_recipient_access hash:$d/etc/access, permit_mynetworks, reject",
            smtpd_relay_restrictions => 'permit_mynetworks, reject',
            smtpd_tls_cert_file => "$ca/peer.crt", smtpd_tls_key_file => "$ca/peer.key",
            smtpd_tls_security_level => 'may', smtpd_tls_loglevel => 1, smtp_tls_loglevel => 1,
            smtp_tls_security_level => 'none', smtputf8_enable => 'yes',
            message_size_limit => 20000000, minimal_backoff_time => '1s', maximal_backoff_time => '2s',
            queue_run_delay => '1s', smtp_tls_CAfile => "$ca/ca.crt",
        });
    $self->{postfix_dir} = $d;
    $self->_postfix_access(1);
    return $m;
}

sub _postfix_access {
    my ($self, $with451) = @_;
    my $d = $self->{postfix_dir};
    my $t = "reject550\@out.test 550 5.1.1 no such user here\n";
    $t .= "retry451\@out.test 451 4.3.0 try again later\n" if $with451;
    open my $fh, '>', "$d/etc/access" or croak $!;
    print $fh $t;
    close $fh;
    my $lib = join(':', "$ROOTS/postfix/usr/lib/postfix", "$ROOTS/libs/usr/lib/x86_64-linux-gnu");
    system("LD_LIBRARY_PATH=$lib timeout 20 $ROOTS/postfix/usr/sbin/postmap -c $d/etc hash:$d/etc/access") == 0
        or croak 'interop: postmap failed';
}

sub _mta_exim {
    my ($self, $d) = @_;
    my $pt = $self->{pt};
    my $ca = "$self->{dir}/ca";
    my ($pp, $pa, $pb) = @{$self}{qw(pport aport bport)};
    my $m = Bench::MTA->create('exim', dir => $d, port => $pp, sink_addr => $self->{sink}->addr,
        sink_port => $self->{sink}->port, repo => $ROOT, roots => $ROOTS);
    my $sink = $self->{sink};
    my $conf = $m->base_conf;
    $conf =~ s/^primary_hostname = .*$/primary_hostname = exim.interop.test/m;
    $conf =~ s/^daemon_smtp_ports = .*$/daemon_smtp_ports = $pp : $pa : $pb/m;
    $conf .= <<"CONF";
tls_advertise_hosts = *
tls_certificate = $ca/peer.crt
tls_privatekey = $ca/peer.key
smtputf8_advertise_hosts = *
chunking_advertise_hosts = *
message_size_limit = 20M
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  deny local_parts = reject550
    message = 550 5.1.1 no such user here
  defer local_parts = retry451
    condition = \${if exists{$d/accept-retry451}{no}{yes}}
    message = 451 4.3.0 try again later
  accept hosts = <; 127.0.0.0/8
  deny message = relay not permitted
begin routers
to_postern:
  driver = manualroute
  domains = in.test : src.in.test : loop.test
  route_list = * 127.0.0.1
  transport = postern_plain
  self = send
to_postern_tls:
  driver = manualroute
  domains = tls.in.test
  route_list = * 127.0.0.1
  transport = postern_tls
  self = send
to_postern_bdat:
  driver = manualroute
  domains = bdat.in.test
  route_list = * 127.0.0.1
  transport = postern_bdat
  self = send
to_postern_retry:
  driver = manualroute
  domains = retry.in.test
  route_list = * 127.0.0.1
  transport = postern_retry
  self = send
to_postern_denied:
  driver = manualroute
  domains = deny.in.test
  route_list = * 127.0.0.1
  transport = postern_denied
  self = send
to_sink:
  driver = manualroute
  route_list = * ${\ $sink->addr }
  transport = to_sink
  self = send
begin transports
postern_plain:
  driver = smtp
  port = ${\ $pt->port }
  hosts_avoid_tls = *
postern_tls:
  driver = smtp
  port = ${\ $pt->port }
  hosts_require_tls = *
postern_bdat:
  driver = smtp
  port = ${\ $self->{fw_in}->port }
  hosts_avoid_tls = *
postern_retry:
  driver = smtp
  port = $self->{pt_port2}
  hosts_avoid_tls = *
postern_denied:
  driver = smtp
  port = ${\ $pt->port }
  hosts_avoid_tls = *
  interface = $self->{net}.9
to_sink:
  driver = smtp
  port = ${\ $sink->port }
  hosts_avoid_tls = *
begin retry
* * F,1h,1s
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and {{eq{\$auth2}{gwuser}}{eq{\$auth3}{gwpass}}}}
  server_set_id = \$auth2
  server_advertise_condition = \${if eq{\$received_port}{$pa}}
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username:: | Password::
  server_condition = \${if and {{eq{\$auth1}{gwuser}}{eq{\$auth2}{gwpass}}}}
  server_set_id = \$auth1
  server_advertise_condition = \${if eq{\$received_port}{$pb}}
CONF
    $m->write_file("$d/var-lib/exim4/config.autogenerated", $conf);
    $self->{exim_dir} = $d;
    return $m;
}

sub _mta_opensmtpd {
    my ($self, $d) = @_;
    my $m = Bench::MTA->create('opensmtpd', dir => $d, port => $self->{pport},
        sink_addr => $self->{sink}->addr, sink_port => $self->{sink}->port, repo => $ROOT, roots => $ROOTS,
        conf => $self->_opensmtpd_conf(1));
    $self->{opensmtpd_dir} = $d;
    return $m;
}

sub _opensmtpd_conf {
    my ($self, $with451) = @_;
    my $pt = $self->{pt};
    my $ca = "$self->{dir}/ca";
    my $to = '127.0.0.1:' . $pt->port;
    my $sink = $self->{sink}->hostport;
    my $filter = $with451 ? 'filter "f451" phase rcpt-to match rcpt-to regex "^retry451@" '
        . "reject \"451 4.3.0 try again later\"\n" : '';
    return <<"CONF";
pki peer cert "$ca/peer.crt"
pki peer key "$ca/peer.key"
ca testca cert "$ca/ca.crt"
$filter
listen on 127.0.0.1 port $self->{pport} hostname opensmtpd.interop.test@{[ $with451 ? ' filter "f451"' : '' ]}
action "postern" relay host smtp+notls://$to
action "postern_tls" relay host smtp+tls://$to tls no-verify
action "postern_bdat" relay host smtp+notls://127.0.0.1:@{[ $self->{fw_in}->port ]}
action "postern_retry" relay host smtp+notls://127.0.0.1:$self->{pt_port2}
action "postern_denied" relay host smtp+notls://$to src $self->{net}.9
action "sink" relay host smtp+notls://$sink
match from any for rcpt-to "reject550\@out.test" reject
match from any for domain { "in.test", "src.in.test", "loop.test" } action "postern"
match from any for domain "tls.in.test" action "postern_tls"
match from any for domain "bdat.in.test" action "postern_bdat"
match from any for domain "deny.in.test" action "postern_denied"
match from any for domain "retry.in.test" action "postern_retry"
match from any for any action "sink"
CONF
}

# accept_retry: retry451@ is accepted from now on.
sub accept_retry {
    my ($self) = @_;
    my $k = $self->{kind};
    if ($k eq 'postfix') { $self->_postfix_access(0) }
    elsif ($k eq 'exim') { open my $fh, '>', "$self->{exim_dir}/accept-retry451" or croak $! }
    else {
        # OpenSMTPD reads its filters at start: restart it without the 451
        my $m = $self->{mta};
        $m->stop(30);
        $m->write_file("$self->{opensmtpd_dir}/etc/smtpd.conf", $self->_opensmtpd_conf(0));
        $m->start(60);
    }
}

# flush: ask the peer to retry what it has queued now, at most every 2 s.
# Exim retries every second by its configuration; Postfix, with 1 s
# backoff times, still took a minute to retry a destination that had
# answered 421 (postqueue -f makes it try now); OpenSMTPD's first retry
# comes after minutes (smtpctl schedule all).
sub flush {
    my ($self) = @_;
    return if time - ($self->{flushed} // 0) < 2;
    $self->{flushed} = time;
    my $k = $self->{kind};
    if ($k eq 'opensmtpd') {
        $self->{mta}->smtpctl('schedule', 'all');
    } elsif ($k eq 'postfix') {
        my $lib = join(':', "$ROOTS/postfix/usr/lib/postfix", "$ROOTS/libs/usr/lib/x86_64-linux-gnu");
        run_prog(prog => "$ROOTS/postfix/usr/sbin/postqueue", args => [ '-c', "$self->{postfix_dir}/etc", '-f' ],
            env => { LD_LIBRARY_PATH => $lib }, timeout => 20);
    }
}

sub stop {
    my ($self) = @_;
    return if $self->{stopped}++;
    delete $LIVE{$self};
    eval { $self->{mta}->stop(30) if $self->{mta} };
    $_->stop for grep { $_ } @{$self}{qw(fw_in fw_out)};
    $self->{pt}->stop if $self->{pt};
    $self->{nsd}->stop if $self->{nsd};
}

# ---- cells and results ----

sub cell {
    my ($self, $dir, $name, $code) = @_;
    # a cell that dies fails alone; the matrix goes on
    my $ok = subtest("$self->{kind} $dir $name", sub {
        fail("the cell died: $@") unless eval { $code->(); 1 };
        done_testing();
    });
    push @{ $self->{results} }, { dir => $dir, cell => $name, result => $ok ? 'ok' : 'FAIL' };
    return $ok;
}

sub skip_cell {
    my ($self, $dir, $name, $why) = @_;
    SKIP: { Test::More::skip("$self->{kind} $dir $name: $why", 1) }
    push @{ $self->{results} }, { dir => $dir, cell => $name, result => 'skip', why => $why };
}

sub finish {
    my ($self) = @_;
    my $out = $ENV{POSTERN_INTEROP_RESULTS} // "$ROOT/build/interop";
    make_path($out);
    open my $fh, '>', "$out/$self->{kind}.json" or croak "$out: $!";
    print $fh JSON::PP->new->canonical->pretty->encode({ peer => $self->{kind}, name => $self->{name},
        cells => $self->{results} });
    close $fh;
    if (!Test::More->builder->is_passing) {
        diag("--- tail of the peer's log (" . $self->{mta}->main_log . "):\n" . _tail(slurp($self->{mta}->main_log), 40));
    }
    $self->stop;
    done_testing();
}

sub _tail {
    my ($t, $n) = @_;
    my @l = split /\n/, $t;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# ---- messages ----

# message(%o) -> ($text, $message_id): a message with every field a peer
# would otherwise add (Date, Message-ID), lines ending in LF. Options:
# subject, headers => [lines], body.
sub message {
    my ($self, %o) = @_;
    my $mid = sprintf('<interop.%s.%d.%d.%d@client.test>', $self->{kind}, time(), $$, ++$self->{seq});
    my $t = "From: Sender <sender\@client.test>\n"
        . 'To: ' . ($o{to} // 'rcpt@example.test') . "\n"
        . 'Subject: ' . ($o{subject} // "interop $self->{kind}") . "\n"
        . 'Date: ' . POSIX::strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime) . "\n"
        . "Message-ID: $mid\n";
    $t .= "$_\n" for @{ $o{headers} || [] };
    $t .= "\n" . ($o{body} // "A test message.\n");
    return ($t, $mid);
}

# smtp_send(port => P, from => F, to => [..], text => T, mail_params => '...',
#      rcpt_params => '...') -> undef or the error (step and reply)
sub smtp_send {
    my ($self, %o) = @_;
    my $s = Net::SMTP->new(Host => '127.0.0.1', Port => $o{port}, Hello => 'client.test', Timeout => 60)
        or return "connect 127.0.0.1:$o{port}: $@";
    my $fail = sub {
        my $e = "$_[0]: " . ($s->code // '') . ' ' . join('', $s->message // '');
        $e =~ s/\s+\z//;
        $s->close;
        return $e;
    };
    $s->command('MAIL', "FROM:<$o{from}>" . ($o{mail_params} ? " $o{mail_params}" : ''));
    return $fail->('mail') unless $s->response == 2;
    for my $r (@{ $o{to} }) {
        $s->command('RCPT', "TO:<$r>" . ($o{rcpt_params} ? " $o{rcpt_params}" : ''));
        return $fail->("rcpt $r") unless $s->response == 2;
    }
    $s->data or return $fail->('data');
    $s->datasend($o{text});
    $s->dataend or return $fail->('end of data');
    $s->quit;
    return undef;
}

# inject(DIR, ...): send through the entry of the direction: the peer for
# "in", Postern for "out".
sub inject {
    my ($self, $dir, %o) = @_;
    my $port = $dir eq 'in' ? $self->{pport} : $self->{pt}->port;
    return $self->smtp_send(port => $port, from => 'sender@src.' . ($dir eq 'in' ? 'in' : 'out') . '.test', %o);
}

# The sink's accepted transactions after the first $n.
sub sink_since {
    my ($self, $n) = @_;
    my @m = $self->{sink}->messages;
    return @m[ $n .. $#m ];
}

# wait_notice($rcpt, $n0, $timeout [, qr/in its text/]): the first notice
# (sender <>) to $rcpt at the sink after its first $n0 messages, asking
# the peer to retry meanwhile; undef when none came in time.
sub wait_notice {
    my ($self, $rcpt, $n0, $timeout, $re) = @_;
    my $notice;
    my $find = sub {
        ($notice) = grep { $_->{mail_from} eq '' && grep { $_ eq $rcpt } @{ $_->{accepted_rcpts} } }
            $self->sink_since($n0);
        $notice && (!$re || ($self->{sink}->message_text($notice) // '') =~ $re);
    };
    wait_until($timeout, sub { $self->flush; $find->() }, 0.5) if $timeout;
    return $find->() ? $notice : undef;
}

# The sink's accepted transactions for this recipient.
sub arrived_to {
    my ($self, $rcpt) = @_;
    return grep { grep { $_ eq $rcpt } @{ $_->{accepted_rcpts} } } $self->{sink}->messages;
}

# The sink's accepted transactions carrying this Message-ID.
sub arrived {
    my ($self, $mid) = @_;
    return grep { ($_->{message_id} // '') eq $mid } $self->{sink}->messages;
}

sub wait_arrived {
    my ($self, $mid, $timeout, $nrcpt) = @_;
    $nrcpt //= 1;
    my @t;
    wait_until($timeout // 30, sub {
        @t = $self->arrived($mid);
        my $n = 0;
        $n += @{ $_->{accepted_rcpts} } for @t;
        $n >= $nrcpt;
    }, 0.1);
    return @t;
}

# split_message($text) -> (\@fields, $body): header fields as sent (folded
# lines kept, CRLF), the body after the blank line.
sub split_message {
    my ($text) = @_;
    $text =~ s/\r?\n/\r\n/g;
    my ($head, $body) = $text =~ /\A(.*?\r\n)\r\n(.*)\z/s ? ($1, $2) : ($text, '');
    my @f;
    for my $l (split /(?<=\r\n)/, $head) {
        if ($l =~ /^[ \t]/ && @f) { $f[-1] .= $l }
        else { push @f, $l }
    }
    return (\@f, $body);
}

# same_content($sent, $got): Test::More checks that every header field but
# the trace fields (@TRACE) is there, in order and byte for byte, and the
# body's SHA-256 is the same.
sub same_content {
    my ($sent, $got, $what) = @_;
    $what //= 'content';
    my ($fs, $bs) = split_message($sent);
    my ($fg, $bg) = split_message($got // '');
    my $trace = join('|', @TRACE);
    my @s = grep { !/^(?:$trace):/i } @$fs;
    my @g = grep { !/^(?:$trace):/i } @$fg;
    my $ok = is_deeply(\@g, \@s, "$what: every header field but " . join(', ', @TRACE) . ' identical');
    if (!$ok) {
        my %in = map { $_ => 1 } @s;
        diag('added or changed: ' . join('', grep { !$in{$_} } @g));
    }
    is(length($bg), length($bs), "$what: body length " . length($bs));
    is(sha256_hex($bg), sha256_hex($bs), "$what: body SHA-256");
}

# The trace fields the hops added, for the record.
sub trace_fields {
    my ($got) = @_;
    my ($f) = split_message($got);
    my $trace = join('|', @TRACE);
    return grep { /^(?:$trace):/i } @$f;
}

# ---- the matrix ----

# The cells, in the order of the summary table; each is run for both
# directions unless its entry says otherwise.
our @CELLS = (
    [ plain      => 'both' ],
    [ starttls   => 'in' ],
    [ 'tls-may'     => 'out' ],
    [ 'tls-encrypt' => 'out' ],
    [ 'tls-verify'  => 'out' ],
    [ 'tls-dane'    => 'out' ],
    [ 'auth-plain'  => 'out' ],
    [ 'auth-login'  => 'out' ],
    [ '8bitmime'    => 'both' ],
    [ smtputf8   => 'both' ],
    [ '5mb'      => 'both' ],
    [ '100rcpt'  => 'both' ],
    [ headers    => 'both' ],
    [ dotlines   => 'both' ],
    [ longline   => 'both' ],
    [ bdat       => 'both' ],
    [ '5xx-final' => 'both' ],
    [ '4xx-retry' => 'both' ],
    [ dsn        => 'out' ],
    [ loop       => 'both' ],
);

# Why a cell cannot run against this peer (undef: it runs).
sub why_skip {
    my ($self, $dir, $cell) = @_;
    my $k = $self->{kind};
    if ($cell eq 'dsn') {
        require Postern::DSN;
        return Postern::DSN::unavailable();
    }
    if ($cell =~ /^auth-/ && $k ne 'exim') {
        return $k eq 'postfix' ? "Postfix's SASL server needs Cyrus or Dovecot; gateway AUTH is checked against Exim"
            : "OpenSMTPD offers AUTH only over TLS, and its server-side TLS is broken (see tls-encrypt); "
            . 'gateway AUTH is checked against Exim';
    }
    if ($k eq 'postfix' && $dir eq 'in' && $cell eq 'bdat') {
        return "Postfix 3.7's SMTP client does not send BDAT (its CHUNKING is server-side only): "
            . 'it gets CHUNKING from Postern and sends DATA';
    }
    if ($cell eq 'tls-dane' && (my $why = _dane_missing())) {
        return "DANE needs signed zones: $why";
    }
    if ($cell eq 'tls-dane' && (my $why = _dane_missing())) {
        return "DANE needs signed zones: $why";
    }
    if ($k eq 'opensmtpd') {
        return 'OpenSMTPD 6.8 does not implement CHUNKING (RFC 3030)' if $cell eq 'bdat';
        return "OpenSMTPD 6.8's server-side TLS fails with OpenSSL 3 (handshake aborted: "
            . '"io-error: error:0A080006:SSL routines::EVP lib")'
            if $dir eq 'out' && $cell =~ /^tls-/;
        return 'OpenSMTPD 6.8 does not offer SMTPUTF8 (RFC 6531): the message cannot enter it'
            if $dir eq 'in' && $cell eq 'smtputf8';
    }
    return undef;
}

sub run {
    my ($class, $kind) = @_;
    my $self = $class->new($kind);
    for my $c (@CELLS) {
        my ($cell, $dirs) = @$c;
        for my $dir (qw(in out)) {
            next unless $dirs eq 'both' || $dirs eq $dir;
            my $why = $self->why_skip($dir, $cell);
            if ($why) { $self->skip_cell($dir, $cell, $why); next }
            (my $m = "cell_$cell") =~ s/-/_/g;
            $self->cell($dir, $cell, sub { $self->$m($dir) });
        }
    }
    $self->finish;
}

sub domain { return $_[1] eq 'in' ? 'in.test' : 'out.test' }

# content(DIR, to => [...], msg => {message options}, mail_params => ...,
# rcpt_params) -> the transactions at the sink, after checking that the
# message arrived for every recipient, identical.
sub content {
    my ($self, $dir, %o) = @_;
    my @to = @{ $o{to} || [ 'rcpt@' . $self->domain($dir) ] };
    my ($text, $mid) = $self->message(%{ $o{msg} || {} }, to => $o{header_to} // $to[0]);
    my $err = $self->inject($dir, to => \@to, text => $text, mail_params => $o{mail_params},
        rcpt_params => $o{rcpt_params}, ($o{from} ? (from => $o{from}) : ()));
    ok(!$err, 'the entry MTA took the message') or diag $err;
    my @t = $self->wait_arrived($mid, $o{timeout} // 30, scalar @to);
    my %got = map { $_ => 1 } map { @{ $_->{accepted_rcpts} } } @t;
    is(scalar(grep { $got{$_} } @to), scalar(@to), 'the sink got it for all ' . scalar(@to) . ' recipients')
        or diag('missing: ' . join(' ', grep { !$got{$_} } @to));
    ok(@t >= 1, "it arrived ($mid)") or return ();
    my $copies = 0;
    $copies += @{ $_->{accepted_rcpts} } for @t;
    is($copies, scalar(@to), 'once for each recipient (no duplicate)');
    my $i = 0;
    same_content($text, $self->{sink}->message_text($_), @t > 1 ? 'copy ' . ++$i : 'content') for @t;
    note('trace fields added: ' . join('', trace_fields($self->{sink}->message_text($t[0]))));
    return @t;
}

# The Postern log lines of the delivery to $rcpt (out) since the mark.
sub sent_line {
    my ($self, $rcpt, $timeout) = @_;
    return $self->{pt}->wait_log(qr/to=<\Q$rcpt\E>.*status=sent/, $timeout // 20);
}

sub cell_plain {
    my ($self, $dir) = @_;
    $self->{pt}->mark_log;
    my $rcpt = 'plain@' . $self->domain($dir);
    $self->content($dir, to => [$rcpt]);
    if ($dir eq 'out') {
        my $l = $self->sent_line($rcpt);
        like($l // '', qr/relay=127\.0\.0\.1\[127\.0\.0\.1\]:$self->{pport}/, 'Postern sent it to the peer');
        unlike($l // '', qr/\btls=/, 'without TLS (tls=none)');
    } else {
        my $l = $self->{pt}->wait_log(qr/accepted from=<sender\@src\.in\.test>/, 5);
        ok($l, 'Postern logged it accepted from the peer') or return;
        unlike($l, qr/\btls=/, 'without TLS');
    }
}

sub cell_starttls {
    my ($self, $dir) = @_;
    $self->{pt}->mark_log;
    $self->content($dir, to => ['tls@tls.in.test']);
    my $l = $self->{pt}->wait_log(qr/accepted from=<sender\@src\.in\.test>/, 5);
    like($l // '', qr/ tls=TLSv1\.[23]/, "the peer's client used STARTTLS into Postern: " . ($l // 'no log line'));
}

# What Postern's SMTP client says of the session that carried the delivery
# to $rcpt (its transcript at log_level=detailed): the "tls=" of its
# "ready:" line, or undef.
sub tls_of_delivery {
    my ($self, $rcpt) = @_;
    my $l = $self->sent_line($rcpt) // return undef;
    my ($qid) = $l =~ /: (\S+): to=</ or return undef;
    my ($ready) = $self->{pt}->log_lines(qr/\Q$qid\E: \S+ ready: .*tls=/);
    return $ready && $ready =~ /tls=([^,]*),/ ? $1 : undef;
}

# Whether the peer logged TLS on the session of the message $mid that it
# queued as $queued (from Postern's status=sent reply): undef when the
# peer's log cannot say.
sub peer_saw_tls {
    my ($self, $mid, $queued) = @_;
    my $log = slurp($self->{mta}->main_log);
    if ($self->{kind} eq 'exim') {
        (my $bare = $mid) =~ s/^<|>$//g;
        my ($in) = $log =~ /^(.*<= .* id=\Q$bare\E.*)$/m or return 0;
        return $in =~ /\bX=TLS1\.[23]/ ? 1 : 0;
    }
    if ($self->{kind} eq 'postfix') {
        my ($pid) = $log =~ /postfix\/smtpd\[(\d+)\]: \Q$queued\E: client=/ or return 0;
        return $log =~ /postfix\/smtpd\[$pid\]: \w+ TLS connection established from/ ? 1 : 0;
    }
    return undef;
}

sub _tls_out {
    my ($self, $mode) = @_;
    my $short = { may => 'may', encrypt => 'enc', verify => 'ver' }->{$mode};
    my $rcpt = "tls-$mode\@$short.out.test";
    $self->{pt}->mark_log;
    my @t = $self->content('out', to => [$rcpt]);
    my $l = $self->sent_line($rcpt) // '';
    my $tls = $self->tls_of_delivery($rcpt) // 'not in the log';
    like($tls, qr/^TLSv1\.[23]/, "Postern's client: tls=$tls");
    like($tls, qr/verified/, 'the certificate was verified against the test CA') if $mode eq 'verify';
    my @retries = $self->{pt}->log_lines(qr/to=<\Q$rcpt\E>.*status=deferred/);
    is(scalar(@retries), 0, 'the first attempt succeeded') or diag(join("\n", @retries));
    my ($queued) = $l =~ /queued as (\S+?)\)?$/;
    my $peer = @t ? $self->peer_saw_tls($t[0]{message_id}, $queued // '') : 0;
    ok($peer, 'the peer logged the session as TLS') if defined $peer;
}

sub cell_tls_may     { $_[0]->_tls_out('may') }
sub cell_tls_encrypt { $_[0]->_tls_out('encrypt') }
sub cell_tls_verify  { $_[0]->_tls_out('verify') }

# DANE (RFC 7672): dane.out.test is found by its MX lookup in the signed
# zone (_dane_setup); the TLSA 3 1 1 record of the peer's key must match.
# bad.dane.out.test's TLSA names another key: Postern must defer, and the
# message must never reach the peer.
sub cell_tls_dane {
    my ($self) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my $rcpt = 'tls-dane@dane.out.test';
    my @t = $self->content('out', to => [$rcpt]);
    my $l = $self->sent_line($rcpt) // '';
    like($l, qr/relay=mx\.dane\.out\.test\[127\.0\.0\.1\]:$self->{pport}/,
        'Postern found the peer by the MX lookup: ' . ($l =~ /(relay=[^,\s]+)/ ? $1 : 'no status=sent line'));
    note("Postern: $l");
    like($l, qr/, tls=TLSv1\.[23] /, 'the delivery line has the TLS version');
    like($l, qr/, tls_policy=dane\b/, 'and tls_policy=dane');
    my ($qid) = $l =~ /: (\S+): to=</;
    ok($qid && scalar($pt->log_lines(qr/\Q$qid\E: .*DANE: TLSA 3 1 1 matched at depth 0/)),
        "the log says the peer's TLSA record matched (3 1 1 at depth 0)");
    my @retries = $pt->log_lines(qr/to=<\Q$rcpt\E>.*status=deferred/);
    is(scalar(@retries), 0, 'the first attempt succeeded') or diag(join("\n", @retries));
    my ($queued) = $l =~ /queued as (\S+?)\)?$/;
    my $peer = @t ? $self->peer_saw_tls($t[0]{message_id}, $queued // '') : 0;
    ok($peer, 'the peer logged the session as TLS') if defined $peer;

    # a TLSA record for a key the peer does not have
    $pt->mark_log;
    my $bad = 'tls-dane@bad.dane.out.test';
    my ($text, $mid) = $self->message(to => $bad);
    my $err = $self->inject('out', to => [$bad], text => $text);
    ok(!$err, 'Postern took the message for bad.dane.out.test') or diag $err;
    my $def = $pt->wait_log(qr/to=<\Q$bad\E>.*status=deferred/, 30);
    ok($def, 'a TLSA record of another key: deferred') or return;
    my ($bq) = $def =~ /: (\S+): to=</;
    ok(scalar($pt->log_lines(qr/\Q$bq\E: .*DANE: the certificate failed the TLSA check for mx\.bad\.dane\.out\.test\b.*3 1 1/)),
        'the log says the TLSA check failed');
    note("Postern: $def");
    # a retry (retry_delay 1s) must fail the same way
    ok($pt->wait_log(qr/\Q$bq\E: to=<\Q$bad\E>.*tries=[2-9].*status=deferred/, 30), 'and again on the retry');
    is(scalar($pt->log_lines(qr/to=<\Q$bad\E>.*status=sent/)), 0, 'never sent');
    (my $bare = $mid) =~ s/^<|>$//g;
    my $plog = slurp($self->{mta}->main_log);
    ok($plog =~ /\S/ && index($plog, $bare) < 0, "the peer's log has no trace of the message ($mid)");
    ok(!$self->arrived($mid), 'it reached no mailbox');
    my ($rc, $out) = $pt->smtpctl('remove', $bq);
    like($out, qr/removed 1 message/, "smtpctl remove $bq") or diag $out;
    ok($pt->wait_log(qr/\Q$bq\E: removed by the administrator/, 10), 'removed from the queue');
}

sub _auth {
    my ($self, $mech) = @_;
    my $dom = $mech eq 'plain' ? 'auth.out.test' : 'login.out.test';
    my $rcpt = "auth-$mech\@$dom";
    $self->{pt}->mark_log;
    my @t = $self->content('out', to => [$rcpt]);
    my $l = $self->sent_line($rcpt);
    like($l // '', qr/gateway=exim$mech\b/, "Postern sent it through the gateway exim$mech");
    my ($mid) = map { $_->{message_id} } @t;
    (my $bare = $mid // '') =~ s/^<|>$//g;
    my ($in) = grep { /<= sender\@src\.out\.test .*id=\Q$bare\E/ } split /\n/, slurp($self->{mta}->main_log);
    like($in // '', qr/\bA=$mech:gwuser\b/, "Exim logged the login (AUTH \U$mech\E as gwuser): " . ($in // 'no <= line'));
    if ($mech eq 'plain') { like($in // '', qr/\bX=TLS1\.[23]/, 'over TLS (gateway tls=verify)') }
    else { unlike($in // '', qr/\bX=/, 'without TLS (gateway tls=none, plainauth)') }
}

sub cell_auth_plain { $_[0]->_auth('plain') }
sub cell_auth_login { $_[0]->_auth('login') }

sub cell_8bitmime {
    my ($self, $dir) = @_;
    $self->{pt}->mark_log;
    my @t = $self->content($dir, to => [ '8bit@' . $self->domain($dir) ], mail_params => 'BODY=8BITMIME',
        msg => { headers => ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit'],
            body => "Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln, \xe2\x82\xac 100.\nLatin-1 byte: \xe9t\xe9\n" . ("\xd0\x96" x 70) . "\n" } );
    return unless @t;
    # Postern must pass BODY=8BITMIME on when it got it; what the peer
    # passes on is its own business (Exim drops it), so only noted
    my $sender = "sender\@src.$dir.test";
    if ($dir eq 'out') {
        ok(scalar($self->{pt}->log_lines(qr/> MAIL FROM:<\Q$sender\E> .*BODY=8BITMIME/)),
            'Postern declared BODY=8BITMIME to the peer');
        note('the peer passed on: ' . ($t[0]{mail_params} // '(no parameters)'));
    } else {
        my ($in) = $self->{pt}->log_lines(qr/< MAIL FROM:<\Q$sender\E>/);
        my $declared = ($in // '') =~ /BODY=8BITMIME/i;
        note("the peer declared to Postern: $in");
        if ($declared) { like($t[0]{mail_params} // '', qr/BODY=8BITMIME/i, 'Postern passed BODY=8BITMIME on') }
        else { pass('the peer did not declare BODY=8BITMIME (it sends 8-bit data undeclared)') }
    }
}

sub cell_smtputf8 {
    my ($self, $dir) = @_;
    my $rcpt = "j\xc3\xb6rg.m\xc3\xbcller\@" . $self->domain($dir);
    my $from = "s\xc3\xa9nder\@src.$dir.test";
    my %msg = (subject => "\xe4\xbd\xa0\xe5\xa5\xbd, UTF-8 subject", headers => ['Content-Type: text/plain; charset=utf-8'],
        body => "\xe4\xbd\xa0\xe5\xa5\xbd \xe4\xb8\x96\xe7\x95\x8c\n");
    if ($dir eq 'out' && !$self->{features}{smtputf8}) {
        # RFC 6531 3.4: a server that does not offer SMTPUTF8 must not get
        # the message; Postern fails it (5.6.7) and tells the sender
        my $pt = $self->{pt};
        $pt->mark_log;
        my ($text) = $self->message(%msg, to => "J\xc3\xb6rg <$rcpt>");
        my $err = $self->smtp_send(port => $pt->port, from => 'sender@src.out.test', to => [$rcpt], text => $text,
            mail_params => 'SMTPUTF8 BODY=8BITMIME');
        ok(!$err, 'Postern took the message') or diag $err;
        ok($pt->wait_log(qr/to=<\Q$rcpt\E>.*dsn=5\.6\.7, status=failed.*does not offer it/, 20),
            "the peer does not offer SMTPUTF8: Postern failed it with 5.6.7 instead of downgrading");
        ok(wait_until(20, sub { grep { $_->{mail_from} eq '' } $self->arrived_to('sender@src.out.test') }),
            'and the sender got a notice');
        return;
    }
    my @t = $self->content($dir, to => [$rcpt], from => $from, mail_params => 'SMTPUTF8 BODY=8BITMIME',
        header_to => "J\xc3\xb6rg <$rcpt>", msg => \%msg);
    return unless @t;
    like($t[0]{mail_params} // '', qr/SMTPUTF8/i, 'SMTPUTF8 reached the last hop');
    is($t[0]{mail_from}, $from, 'the UTF-8 sender is intact');
}

sub cell_5mb {
    my ($self, $dir) = @_;
    my $line = join('', map { chr(ord('a') + $_ % 26) } 0 .. 75) . "\n";
    my $body = $line x int(5 * 1024 * 1024 / length $line);
    $self->content($dir, to => [ 'big@' . $self->domain($dir) ], msg => { body => $body }, timeout => 60);
}

sub cell_100rcpt {
    my ($self, $dir) = @_;
    my @to = map { sprintf('r%03d@%s', $_, $self->domain($dir)) } 1 .. 100;
    my @t = $self->content($dir, to => \@to, timeout => 60);
    note(scalar(@t) . ' transactions at the sink');
}

sub cell_headers {
    my ($self, $dir) = @_;
    my @h = (
        _long_field('X-Long', 998),    # one line of 998 octets, the limit
        "X-Folded: first part\n\tsecond part after a tab\n    third part after spaces\n\tfourth",
        "References: <a.1\@client.test>\n <b.2\@client.test>\n <c.3\@client.test>",
        'X-Empty-Looking:    value after spaces',
        map { "X-Many-$_: $_" } 1 .. 60,
    );
    $self->content($dir, to => [ 'headers@' . $self->domain($dir) ], msg => { headers => \@h });
}

sub _long_field {
    my ($name, $len) = @_;
    my $f = "$name:";
    my $i = 0;
    $f .= ' w' . ++$i while length($f) < $len - 6;
    return $f . ' ' . ('z' x ($len - length($f) - 1));
}

sub cell_dotlines {
    my ($self, $dir) = @_;
    my $body = ".\n..\n...\n.leading dot\n. dot space\nmiddle . dot\n.\n\n..\n.\nlast line\n.";
    $body .= "\n";
    $self->content($dir, to => [ 'dots@' . $self->domain($dir) ], msg => { body => $body });
}

# A body line of 1200 octets, over RFC 5321's 998 (issue 18.5): Postern
# refuses it at intake (550 5.5.2); a peer may refuse it too, fold it
# (Postfix) or pass it on, and then Postern refuses it at the next hop.
# Either way no line over 998 octets reaches a mailbox, and the sender
# learns of a refusal (at once, or by a notice).
sub cell_longline {
    my ($self, $dir) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my $n0 = () = $self->{sink}->messages;
    my $rcpt = 'long@' . $self->domain($dir);
    my ($text, $mid) = $self->message(to => $rcpt, body => "short line\n" . ('x' x 1200) . "\nend\n");
    my $err = $self->inject($dir, to => [$rcpt], text => $text);
    if ($dir eq 'out') {
        like($err // 'accepted', qr/^end of data: 550 5\.5\.2/, 'Postern refused it at intake: ' . ($err // 'accepted'));
        return;
    }
    my $sender = 'sender@src.in.test';
    my ($how, @t, $notice);
    if ($err) {
        $how = "the peer refused it at its intake: $err";
    } else {
        wait_until(30, sub {
            $self->flush;
            @t = $self->arrived($mid);
            $notice = $self->wait_notice($sender, $n0, 0, qr/\Q$rcpt\E/);
            @t || $notice;
        }, 0.5);
        my $refused = $pt->log_lines(qr/550 5\.5\.2/);
        $how = @t ? 'the peer changed it (no line over 998 octets left) and it was delivered'
            : ($refused ? 'Postern refused it from the peer (550 5.5.2); ' : 'the peer did not send it on; ')
            . ($notice ? 'the peer sent the sender a notice' : 'no notice reached the sender');
    }
    ok($err || @t || $notice, "the message was delivered changed, or the sender learnt of the refusal: $how");
    for my $t (@t) {
        my $long = grep { length > 998 } split /\r\n/, $self->{sink}->message_text($t);
        is($long, 0, 'no line over 998 octets reached the mailbox');
    }
}

sub cell_bdat {
    my ($self, $dir) = @_;
    my $fw = $dir eq 'in' ? $self->{fw_in} : $self->{fw_out};
    my $n0 = () = $fw->records;
    my $line = "A line of the chunked message.\n";
    $self->content($dir, to => [ 'chunks@bdat.' . $self->domain($dir) ],
        msg => { body => ".starts with a dot\n" . ($line x 20000) . "..\n.\n" });
    my @cmds = map { $_->{cmd} } (($fw->records)[ $n0 .. $#{ [ $fw->records ] } ]);
    my $who = $dir eq 'in' ? "the peer (client) to Postern" : 'Postern (client) to the peer';
    ok((grep { /^BDAT \d+/i } @cmds), "$who used BDAT") or diag('commands seen: ' . join(' | ', @cmds));
    ok(!(grep { /^DATA$/i } @cmds), 'and not DATA');
}

sub cell_5xx_final {
    my ($self, $dir) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my $n0 = () = $self->{sink}->messages;
    my ($rcpt, $text, $mid);
    if ($dir eq 'out') {
        # the peer refuses the recipient at RCPT with 550
        $rcpt = 'reject550@out.test';
        ($text, $mid) = $self->message(to => $rcpt);
    } else {
        # the peer's route for deny.in.test connects from 127.0.N.9, outside
        # Postern's mynetworks: 554 5.7.1 relay access denied at RCPT
        $rcpt = 'denied@deny.in.test';
        ($text, $mid) = $self->message(to => $rcpt);
    }
    my $err = $self->inject($dir, to => [$rcpt], text => $text);
    ok(!$err, 'the entry MTA took the message') or diag $err;
    my $sender = "sender\@src.$dir.test";
    my $notice = $self->wait_notice($sender, $n0, 60, qr/\Q$rcpt\E/);
    ok($notice, "a notice with sender <> reached $sender") or return;
    my $nt = $self->{sink}->message_text($notice) // '';
    like($nt, $dir eq 'out' ? qr/550/ : qr/554|5\.7\.1|Relay access denied/i, 'it says why (the 5xx reply)');
    ok(!$self->arrived($mid), 'the message itself was not delivered');
    if ($dir eq 'out') {
        ok($pt->wait_log(qr/to=<\Q$rcpt\E>.*dsn=5\.\S+, status=(?:failed|bounced)/, 5), 'Postern: status=failed');
        is(scalar($pt->log_lines(qr/to=<\Q$rcpt\E>.*status=deferred/)), 0, 'never deferred');
        is(scalar($pt->log_lines(qr/to=<\Q$rcpt\E>.*status=/)), 1, 'one attempt only');
    } else {
        sleep 3;
        $self->flush;
        my @tries = $pt->log_lines(qr/RCPT TO:<\Q$rcpt\E>/);
        is(scalar(@tries), 1, 'the peer tried once: ' . ($tries[0] // 'never'));
        ok(scalar($pt->log_lines(qr/554 5\.7\.1 <\Q$rcpt\E>: Relay access denied/)), 'Postern answered 554 5.7.1');
        like($nt, qr/\Q$self->{kind}\E\.interop\.test|MAILER-DAEMON|Mail Delivery/i, "the peer's own notice")
            and note('notice came back through Postern: ' . ($pt->log_lines(qr/accepted from=<>/))[0]);
        ok(scalar($pt->log_lines(qr/accepted from=<> /)) >= 1, "Postern accepted the peer's notice (sender <>)");
    }
}

sub cell_4xx_retry {
    my ($self, $dir) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my $rcpt = $dir eq 'out' ? 'retry451@out.test' : 'retry@retry.in.test';
    my ($text, $mid) = $self->message(to => $rcpt);
    if ($dir eq 'out') {
        my $err = $self->inject($dir, to => [$rcpt], text => $text);
        ok(!$err, 'Postern took the message') or diag $err;
        ok($pt->wait_log(qr/to=<\Q$rcpt\E>.*status=deferred.*451/, 20), 'Postern: deferred with the 451')
            or return;
        ok(!$self->arrived($mid), 'not delivered yet');
        $self->accept_retry;
    } else {
        my ($rc, $out) = $pt->smtpctl('pause', 'intake');
        is($rc, 0, 'Postern: pause intake') or diag $out;
        my $err = $self->inject($dir, to => [$rcpt], text => $text);
        ok(!$err, 'the peer took the message') or diag $err;
        my $refused = $pt->wait_log(qr/refused session from \[127\.0\.0\.1\]: 4\.3\.2 .*intake is paused/, 30);
        ok($refused, 'the peer tried and was refused with 421: ' . ($refused // 'no log line'));
        ok(!$self->arrived($mid), 'not delivered yet');
        ($rc, $out) = $pt->smtpctl('resume', 'intake');
        is($rc, 0, 'Postern: resume intake') or diag $out;
    }
    my @t;
    # Postfix may hold a destination that refused it for up to a minute
    # more under load, whatever postqueue -f says: the bound is generous
    wait_until(150, sub { $self->flush; @t = $self->arrived($mid) }, 0.5);
    ok(@t, 'retried and delivered') or return;
    same_content($text, $self->{sink}->message_text($t[0]));
    if ($dir eq 'out') {
        ok($self->sent_line($rcpt, 5), 'Postern: status=sent');
        is(scalar($pt->log_lines(qr/to=<\Q$rcpt\E>.*status=bounced/)), 0, 'never bounced');
    }
}

sub cell_dsn {
    my ($self, $dir) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my ($text, $mid) = $self->message(to => 'nobody@fail.out.test');
    my $err = $self->smtp_send(port => $pt->port, from => 'owner@dsn.out.test', to => ['nobody@fail.out.test'],
        text => $text, mail_params => 'RET=HDRS ENVID=interop-env', rcpt_params => 'NOTIFY=FAILURE');
    ok(!$err, 'Postern took the message') or diag $err;
    my $n;
    wait_until(30, sub {
        ($n) = grep { $_->{mail_from} eq '' && grep { $_ eq 'owner@dsn.out.test' } @{ $_->{accepted_rcpts} } }
            $self->{sink}->messages;
        $n;
    }, 0.2);
    ok($n, "Postern's failure notice went through the peer to the sender's mailbox") or return;
    my $nt = $self->{sink}->message_text($n);
    ok((grep { /\Q$self->{kind}\E\.interop\.test/ } trace_fields($nt)), "it passed the peer (its Received: field)");
    my $l = $pt->wait_log(qr/to=<owner\@dsn\.out\.test>.*status=sent/, 5);
    like($l // '', qr/relay=127\.0\.0\.1\[127\.0\.0\.1\]:$self->{pport}/, 'Postern sent the notice to the peer');
    my $d = Postern::DSN::parse_file($n->{file}) || {};
    is($d->{content_type}, 'multipart/report', 'multipart/report');
    is($d->{report_type}, 'delivery-status', 'report-type=delivery-status');
    my ($r) = @{ $d->{per_recipient} || [] };
    is($r->{Status}, '5.1.1', 'Status 5.1.1');
    is($r->{Action}, 'failed', 'Action failed');
    is(($d->{per_message} || {})->{'Original-Envelope-Id'}, 'interop-env', 'ENVID kept');
    is_deeply($d->{defects} || [], [], 'no MIME defects after the peer');
}

sub cell_loop {
    my ($self, $dir) = @_;
    my $pt = $self->{pt};
    $pt->mark_log;
    my $mlog0 = length slurp($self->{mta}->main_log);
    my $n0 = () = $self->{sink}->messages;
    my $rcpt = "loop-$dir\@loop.test";
    my ($text, $mid) = $self->message(to => $rcpt);
    my $err = $self->inject($dir, to => [$rcpt], text => $text);
    ok(!$err, 'the entry MTA took the message') or diag $err;
    my $sender = "sender\@src.$dir.test";
    my $notice = $self->wait_notice($sender, $n0, 120);
    ok($notice, "the loop was stopped and the sender got a notice");
    my $acc = () = $pt->log_lines(qr/accepted from=<\Q$sender\E>/);
    sleep 2;
    my $acc2 = () = $pt->log_lines(qr/accepted from=<\Q$sender\E>/);
    is($acc2, $acc, 'no more rounds after that');
    ok($acc >= 1 && $acc <= 60, "bounded: Postern accepted it $acc times");
    # Postern's smtpd refusing at max_hop_count, or the peer's own words:
    # Postfix's cleanup, Exim's receiver, OpenSMTPD's smtp server
    my @stop = $pt->log_lines(qr/smtpd\[\d+\]: .*mail loop: \d+ Received: header fields/);
    my $plog = substr(slurp($self->{mta}->main_log), $mlog0);
    my ($peer_stop) = $plog =~ /^(.*(?:hopcount exceeded|Too many "Received" headers|Routing loop detected|Loop detected).*)$/mi;
    ok(@stop || $peer_stop, 'stopped by ' . (@stop ? "Postern: $stop[0]" : $peer_stop ? "the peer: $peer_stop" : 'nobody'));
    ok(!$self->arrived($mid), 'the looping message itself reached no mailbox');
}

1;
