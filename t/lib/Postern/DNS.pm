package Postern::DNS;

# Postern::DNS - DNS servers for tests, and a direct driver for bin/dnsd.
#
#   my $ns = Postern::DNS::Nsd->new(zones => { 'example.test' => $zone_text });
#   $ns->start;                  # real nsd (Debian) on 127.0.0.1:$ns->port
#   $ns->queries; $ns->stats->{'num.type.MX'}   # counted by nsd-control
#   $ns->stop;                   # by PID (also on DESTROY)
#   Postern::DNS::mx_zone('x.test', '127.0.0.41')  # zone text: one MX, mx.x.test
#                                # at that address
#
#   my $f = Postern::DNS::Fake->new(rules => {
#       'a.test/MX'  => { answer => ['a.test 60 MX 10 mx.a.test'] },
#       'b.test/*'   => { rcode => 'SERVFAIL' },
#       'c.test/MX'  => { drop => 1 },                 # never answers
#       'd.test/MX'  => { tc => 1, answer => [...] },   # TC on UDP, full on TCP
#       'e.test/MX'  => { wrong_id => 1, answer => [...] }, # bogus reply with a
#                                     # wrong ID first, the real one 0.2 s later
#       'f.test/MX'  => { spoof_port => 1, answer => [...] }, # bogus reply from
#                                     # another source port first
#       'g.test/MX'  => { delay => 0.5, answer => [...] },
#       'h.test/MX'  => { formerr_edns => 1, answer => [...] }, # FORMERR to a
#                                     # query with EDNS0 (an OPT record)
#       'i.test/MX'  => { ad => 1, answer => [...] },   # AD set in the reply
#                                     # (a validating resolver's "secure")
#   });
#   $f->start; $f->port; $f->count('a.test', 'MX'); $f->count_tcp(...);
#   $f->set_rules('a.test/TXT' => { answer => [...] }, 'b.test/MX' => undef);
#   $f->stop;
#   A rule is looked up as "name/TYPE", then "name/*"; no rule: NXDOMAIN with
#   a SOA (zone "test", negative TTL 30). Rule keys: rcode (default NOERROR),
#   answer/authority/additional (lists of RR text), soa (1: add the SOA to
#   the authority section), ttl-free RR text gets TTL 60.
#   The responder is a forked Perl child on UDP and TCP of one loopback
#   port, built on Net::DNS::Packet; every query it gets is appended to a
#   log file so the parent can count them. It exits by itself after
#   `lifetime` seconds (default 300) or when its parent is gone.
#
#   my $d = Postern::DNS::Dnsd->new(servers => ["127.0.0.1:$port"],
#                                   params => { dns_timeout => '1s' });
#   $d->start;                   # bin/dnsd with a fake master and "deliver"
#   my $r = $d->mx('example.test', @override);  # decoded IMSG_DNS_REP
#   my $s = $d->mx('example.test', { flags => Postern::DNS::Dnsd::DNS_Q_STS });
#   $d->restart(%params);        # the same directory (spool, sts.db) kept
#   my $h = $d->host('mx1.example.test');
#   $d->mx('a.test', { flags => 1, port => 25 })  # request flags (DNS_Q_DANE
#                                # = 1, DNS_Q_STS = 2) and port; also host()
#   my @r = $d->mx_many([ 'x.test', 'x.test', ... ]);  # sent at once
#   my ($code, $out) = $d->ctl('show', 'dns', { json => 1 });
#   $d->log_text; $d->stop;
#   A result is { class => 'ok'|'temporary'|'permanent', reason, name,
#   flags, sec, sts => { state, mode, id, max_age, reason, mx => [...] },
#   hosts => [ { name, pref, group, port, class, reason,
#   addrs => ['127.0.0.1', '::1'], sec, tlsa_state, tlsa_reason,
#   tlsa => [ { usage, selector, mtype, data (hex) } ] } ] }.
#   sec is insecure|secure|bogus.
#
# Everything listens on and talks to loopback only; every wait is bounded.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(remove_tree make_path);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC inet_ntop AF_INET AF_INET6);
use Time::HiRes qw(time sleep);

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

sub free_udp_tcp_port {
    for (1 .. 200) {
        my $port = 20000 + int(rand(12000));
        my $t = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
            Proto => 'tcp', Listen => 1, ReuseAddr => 1) or next;
        my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
            Proto => 'udp') or next;
        close $t;
        close $u;
        return $port;
    }
    croak "no free port";
}

sub _tmpdir {
    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    my $d = tempdir('postern-dns-XXXXXXXX', DIR => $base, CLEANUP => 0);
    chmod 0755, $d;
    return abs_path($d);
}

sub _kill_wait {
    my ($pid, $timeout) = @_;
    return unless $pid;
    kill 'TERM', $pid;
    my $end = time + ($timeout // 5);
    while (time < $end) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

############################################################################
package Postern::DNS::Nsd;

use strict;
use warnings;
use Carp qw(croak);
use Net::DNS;
use File::Path qw(remove_tree);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

sub nsd_path {
    for my $p ('/usr/sbin/nsd', '/usr/local/sbin/nsd') { return $p if -x $p }
    return undef;
}

sub new {
    my ($class, %o) = @_;
    my $self = bless { zones => $o{zones} || {}, owner => $$ }, $class;
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }
sub dir  { $_[0]{dir} }

sub start {
    my ($self) = @_;
    my $nsd = nsd_path() or croak "nsd is not installed (apt-get install nsd)";
    my $dir = $self->{dir} = Postern::DNS::_tmpdir();
    $self->{port} = Postern::DNS::free_udp_tcp_port();
    my $conf = <<"EOF";
server:
    ip-address: 127.0.0.1\@$self->{port}
    username: ""
    chroot: ""
    zonesdir: "$dir"
    pidfile: "$dir/nsd.pid"
    database: ""
    xfrdfile: "$dir/xfrd.state"
    xfrdir: "$dir"
    zonelistfile: "$dir/zone.list"
    logfile: "$dir/nsd.log"
    server-count: 1
    verbosity: 1
    do-ip6: no
    reuseport: no
remote-control:
    control-enable: yes
    control-interface: $dir/ctl.sock
EOF
    my $i = 0;
    for my $z (sort keys %{ $self->{zones} }) {
        $i++;
        open my $fh, '>', "$dir/zone$i" or croak "$dir/zone$i: $!";
        print $fh $self->{zones}{$z};
        close $fh;
        $conf .= "zone:\n    name: \"$z\"\n    zonefile: \"zone$i\"\n";
    }
    open my $fh, '>', "$dir/nsd.conf" or croak $!;
    print $fh $conf;
    close $fh;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$dir/nsd.out";
        open STDERR, '>>', "$dir/nsd.out";
        exec $nsd, '-d', '-c', "$dir/nsd.conf" or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    # ready when it answers an SOA query for its first zone
    my ($first) = sort keys %{ $self->{zones} };
    my $end = time + 15;
    while (time < $end) {
        last if waitpid($pid, WNOHANG) == $pid;
        my $r = Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $self->{port},
            recurse => 0, udp_timeout => 0.5, retry => 1);
        my $p = $r->send($first, 'SOA');
        return $self if $p && $p->header->rcode eq 'NOERROR' && $p->header->ancount;
        sleep 0.1;
    }
    my $out = Postern::DNS::_slurp("$dir/nsd.out") . Postern::DNS::_slurp("$dir/nsd.log");
    $self->stop;
    croak "nsd did not start:\n$out";
}

# nsd-control stats_noreset as a hashref
sub stats {
    my ($self) = @_;
    my %s;
    my $pid = open(my $fh, '-|');
    croak "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec 'nsd-control', '-c', "$self->{dir}/nsd.conf", 'stats_noreset' or POSIX::_exit(127);
    }
    local $SIG{ALRM} = sub { kill 'KILL', $pid };
    alarm 10;
    while (<$fh>) {
        $s{$1} = $2 if /^([\w.]+)=(\S+)/;
    }
    close $fh;
    alarm 0;
    return \%s;
}

# nsd-control sometimes answers without the counters when the machine is
# busy (sanitizer runs): ask again a few times before giving up.
sub queries {
    my ($self) = @_;
    for my $try (1 .. 10) {
        my $n = $self->stats->{'num.queries'};
        return $n if defined $n;
        select(undef, undef, undef, 0.2);
    }
    return -1;
}

sub stop {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    Postern::DNS::_kill_wait(delete $self->{pid}, 5) if $self->{pid};
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{POSTERN_KEEP};
    delete $self->{dir};
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

############################################################################
package Postern::DNS::Fake;

use strict;
use warnings;
use Carp qw(croak);
use JSON::PP ();
use File::Path qw(remove_tree);
use IO::Select;
use IO::Socket::INET;
use Net::DNS;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %o) = @_;
    return bless { rules => $o{rules} || {}, lifetime => $o{lifetime} // 300, owner => $$ },
        $class;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }

sub start {
    my ($self) = @_;
    $self->{dir} = Postern::DNS::_tmpdir();
    $self->{log} = "$self->{dir}/queries.log";
    open my $t, '>', $self->{log} or croak $!;
    close $t;
    $self->{port} = Postern::DNS::free_udp_tcp_port();
    my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $self->{port},
        Proto => 'udp') or croak "udp bind: $!";
    my $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $self->{port},
        Proto => 'tcp', Listen => 16, ReuseAddr => 1) or croak "tcp bind: $!";
    my $parent = $$;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        eval { $self->_serve($udp, $tcp, $parent) };
        POSIX::_exit(0);
    }
    close $udp;
    close $tcp;
    $self->{pid} = $pid;
    return $self;
}

# Change rules while it runs: set_rules(KEY => RULE, ...) adds or replaces
# (RULE undef removes); the responder reads them at its next query.
sub set_rules {
    my ($self, %r) = @_;
    my $path = "$self->{dir}/rules.json";
    my $cur = -e $path ? JSON::PP::decode_json(Postern::DNS::_slurp($path)) : {};
    for my $k (keys %r) {
        if (defined $r{$k}) { $cur->{$k} = $r{$k} } else { $cur->{$k} = { gone => 1 } }
    }
    open my $fh, '>', "$path.tmp" or croak $!;
    print $fh JSON::PP::encode_json($cur);
    close $fh;
    rename "$path.tmp", $path or croak $!;
}

sub _rule {
    my ($self, $name, $type) = @_;
    $name = lc $name;
    $name =~ s/\.$//;
    my $path = "$self->{dir}/rules.json";
    my @st = stat $path;
    if (@st && "$st[9]/$st[7]/$st[1]" ne ($self->{rules_seen} // '')) {
        $self->{rules_seen} = "$st[9]/$st[7]/$st[1]";
        my $extra = eval { JSON::PP::decode_json(Postern::DNS::_slurp($path)) } || {};
        $self->{extra} = $extra;
    }
    for my $k ("$name/$type", "$name/*") {
        my $x = $self->{extra} && $self->{extra}{$k};
        return undef if $x && $x->{gone};
        return $x if $x;
        return $self->{rules}{$k} if $self->{rules}{$k};
    }
    return undef;
}

sub _rr {
    my ($text) = @_;
    return $text if ref $text;
    return Net::DNS::RR->new($text =~ /^\S+\s+\d+\s/ ? $text : do {
        my ($n, $rest) = split ' ', $text, 2;
        "$n 60 $rest";
    });
}

sub _soa { Net::DNS::RR->new('test. 30 IN SOA ns.test. admin.test. 1 3600 600 86400 30') }

sub _reply {
    my ($self, $q, $rule, $over_tcp) = @_;
    my $r = $q->reply;
    $r->header->aa(1);
    $r->header->ra(1);
    my ($qq) = $q->question;
    if (!$rule) {
        $r->header->rcode('NXDOMAIN');
        $r->push(authority => _soa());
        return $r;
    }
    $r->header->rcode($rule->{rcode} // 'NOERROR');
    $r->header->ad(1) if $rule->{ad};
    $r->push(answer => map { _rr($_) } @{ $rule->{answer} || [] });
    $r->push(authority => map { _rr($_) } @{ $rule->{authority} || [] });
    $r->push(additional => map { _rr($_) } @{ $rule->{additional} || [] });
    $r->push(authority => _soa()) if $rule->{soa};
    return $r;
}

sub _log {
    my ($self, $proto, $name, $type) = @_;
    open my $fh, '>>', $self->{log} or return;
    $name = lc $name;
    $name =~ s/\.$//;
    print $fh "$proto $name $type\n";
    close $fh;
}

sub _serve {
    my ($self, $udp, $tcp, $parent) = @_;
    my $sel = IO::Select->new($udp, $tcp);
    my $end = time + $self->{lifetime};
    my @later;    # [time, sock, peer, bytes]
    my $other = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Proto => 'udp');
    while (time < $end) {
        last if getppid() != $parent;
        my $now = time;
        my @due = grep { $_->[0] <= $now } @later;
        @later = grep { $_->[0] > $now } @later;
        for my $d (@due) { $d->[1]->send($d->[3], 0, $d->[2]) }
        my @r = $sel->can_read(@later ? 0.02 : 0.2);
        for my $s (@r) {
            if ($s == $udp) {
                my $buf = '';
                my $peer = $udp->recv($buf, 65535) or next;
                my $q = eval { Net::DNS::Packet->new(\$buf) } or next;
                my ($qq) = $q->question or next;
                $self->_log('udp', $qq->qname, $qq->qtype);
                my $rule = $self->_rule($qq->qname, $qq->qtype);
                next if $rule && $rule->{drop};
                if ($rule && $rule->{formerr_edns} && unpack('n', substr($buf, 10, 2)) > 0) {
                    my $fe = $q->reply;
                    $fe->header->rcode('FORMERR');
                    $udp->send($fe->data, 0, $peer);
                    next;
                }
                my $rep = $self->_reply($q, $rule, 0);
                if ($rule && $rule->{tc}) {
                    my $t = $q->reply;
                    $t->header->tc(1);
                    $udp->send($t->data, 0, $peer);
                    next;
                }
                my $delay = ($rule && $rule->{delay}) || 0;
                if ($rule && ($rule->{wrong_id} || $rule->{spoof_port})) {
                    my $bogus = $q->reply;
                    $bogus->header->rcode('NOERROR');
                    $bogus->push(answer => Net::DNS::RR->new(
                        $qq->qname . ' 60 IN MX 10 evil.example'));
                    $bogus->push(answer => Net::DNS::RR->new($qq->qname . ' 60 IN A 10.6.6.6'));
                    if ($rule->{wrong_id}) {
                        $bogus->header->id(($q->header->id + 1) & 0xffff);
                        $udp->send($bogus->data, 0, $peer);
                    } else {
                        $other->send($bogus->data, 0, $peer);
                    }
                    $delay = 0.2 if $delay < 0.2;
                }
                if ($delay) {
                    push @later, [time + $delay, $udp, $peer, $rep->data];
                } else {
                    $udp->send($rep->data, 0, $peer);
                }
            } else {
                my $c = $tcp->accept or next;
                $self->_tcp_one($c);
                close $c;
            }
        }
    }
}

sub _tcp_one {
    my ($self, $c) = @_;
    my $sel = IO::Select->new($c);
    my $buf = '';
    my $end = time + 5;
    while (time < $end) {
        last unless $sel->can_read(0.5);
        my $n = sysread($c, $buf, 65537, length $buf);
        last unless $n;
        next if length($buf) < 2;
        my $len = unpack('n', $buf);
        next if length($buf) < 2 + $len;
        my $q = eval { Net::DNS::Packet->new(\substr($buf, 2, $len)) } or return;
        my ($qq) = $q->question or return;
        $self->_log('tcp', $qq->qname, $qq->qtype);
        my $rule = $self->_rule($qq->qname, $qq->qtype);
        return if $rule && $rule->{drop};
        my $rep = $self->_reply($q, $rule, 1)->data;
        syswrite($c, pack('n', length $rep) . $rep);
        return;
    }
}

sub _lines {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @l = <$fh>;
    close $fh;
    chomp @l;
    return @l;
}

# Queries seen for name (and type, unless undef), UDP and TCP together.
sub count {
    my ($self, $name, $type, $proto) = @_;
    $name = lc $name;
    return scalar grep {
        my ($p, $n, $t) = split ' ';
        $n eq $name && (!defined $type || $t eq $type) && (!defined $proto || $p eq $proto)
    } $self->_lines;
}
sub count_tcp { my ($self, $n, $t) = @_; return $self->count($n, $t, 'tcp') }
sub total { return scalar $_[0]->_lines }

sub stop {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    Postern::DNS::_kill_wait(delete $self->{pid}, 3) if $self->{pid};
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{POSTERN_KEEP};
    delete $self->{dir};
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

############################################################################
package Postern::DNS::Dnsd;

use strict;
use warnings;
use Carp qw(croak);
use File::Path qw(remove_tree make_path);
use IO::Handle;
use IO::Select;
use POSIX qw(:sys_wait_h);
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC AF_INET AF_INET6 inet_ntop);
use Time::HiRes qw(time sleep);

use constant {
    IMSG_STATUS_REQ   => 1,
    IMSG_STATUS_REP   => 2,
    IMSG_CTL_REQ      => 7,
    IMSG_CTL_REP      => 8,
    IMSG_SHUTDOWN     => 9,
    IMSG_DNS_MX_REQ   => 300,
    IMSG_DNS_HOST_REQ => 301,
    IMSG_DNS_REP      => 302,
    CTL_F_JSON        => 1,
    DNS_Q_DANE        => 1,
    DNS_Q_STS         => 2,
};

my @CLASS = ('ok', 'temporary', 'permanent');

sub new {
    my ($class, %o) = @_;
    return bless {
        servers => $o{servers} || [],
        params  => $o{params} || {},
        owner   => $$,
        next_id => 1,
        inbuf   => { master => '', deliver => '' },
    }, $class;
}

sub dir      { $_[0]{dir} }
sub log_path { "$_[0]{dir}/dnsd.log" }
sub pid      { $_[0]{pid} }
sub log_text { return Postern::DNS::_slurp($_[0]->log_path) }

sub _ensure_user {
    my ($user) = @_;
    return if defined getpwnam($user);
    system('useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent',
        '--shell', '/usr/sbin/nologin', $user) == 0 or croak "useradd $user failed";
}

# spool/dnsd: dnsd's own chroot (its MTA-STS cache), as master makes it:
# mail_owner's, mode 0700.
sub _make_own_dir {
    my ($self) = @_;
    my $own = "$self->{dir}/spool/dnsd";
    make_path($own);
    chmod 0700, $own;
    if ($> == 0) {
        _ensure_user('postern');
        my ($uid, $gid) = (getpwnam('postern'))[2, 3];
        chown $uid, $gid, $own;
    }
}

# The MTA-STS cache file as dnsd keeps it.
sub sts_db { "$_[0]{dir}/spool/dnsd/sts.db" }

sub start {
    my ($self) = @_;
    my $bin = "$Postern::DNS::ROOT/bin/dnsd";
    croak "$bin is not built (make)" unless -x $bin;
    my $dir = $self->{dir} //= Postern::DNS::_tmpdir();
    make_path("$dir/etc", "$dir/spool/empty");
    chmod 0755, "$dir/spool", "$dir/spool/empty";
    $self->_make_own_dir;
    my %p = (
        queue_directory => "$dir/spool",
        log_level       => 'detailed',
        dns_servers     => join(' ', @{ $self->{servers} }),
        dns_timeout     => '1s',
        %{ $self->{params} },
    );
    $p{mail_owner} //= 'postern' if $> == 0;
    open my $cf, '>', "$dir/etc/main.cf" or croak $!;
    print $cf "$_ = $p{$_}\n" for sort keys %p;
    close $cf;

    my (%mine, %theirs);
    for my $n (qw(master deliver relay)) {
        socketpair(my $a, my $b, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or croak "socketpair: $!";
        $a->autoflush(1);
        ($mine{$n}, $theirs{$n}) = ($a, $b);
    }
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/dnsd.log";
        open STDERR, '>>', "$dir/dnsd.log";
        my @high;
        my $i = 0;
        for my $n (qw(master deliver relay)) {
            my $h = 100 + $i++;
            POSIX::dup2(fileno $theirs{$n}, $h) // POSIX::_exit(126);
            push @high, $h;
        }
        my $fd = 3;
        for my $h (@high) { POSIX::dup2($h, $fd++) // POSIX::_exit(126); POSIX::close($h) }
        $ENV{POSTERN_FDS} = 'master:3 deliver:4 relay:5';
        $ENV{POSTERN_LOG} = 'stderr';
        delete $ENV{POSTERN_OPTS};
        exec $bin, '-c', "$dir/etc" or POSIX::_exit(127);
    }
    close $theirs{$_} for keys %theirs;
    $self->{pid} = $pid;
    $self->{sock} = \%mine;
    # ready when it answers a status request
    $self->_send('master', IMSG_STATUS_REQ, 0, '');
    my $f = $self->_recv('master', 0, 15);
    croak "dnsd did not start:\n" . $self->log_text unless $f && $f->{type} == IMSG_STATUS_REP;
    return $self;
}

sub _send {
    my ($self, $chan, $type, $id, $body) = @_;
    my $s = $self->{sock}{$chan} or croak "no channel $chan";
    my $frame = pack('L S S L', length $body, $type, 0, $id) . $body;
    my $off = 0;
    while ($off < length $frame) {
        my $n = syswrite($s, $frame, length($frame) - $off, $off);
        croak "write to dnsd: $!" unless defined $n;
        $off += $n;
    }
}

# Next frame on chan (with id, unless undef), or undef after timeout.
sub _recv {
    my ($self, $chan, $id, $timeout) = @_;
    my $s = $self->{sock}{$chan};
    my $sel = IO::Select->new($s);
    my $end = time + ($timeout // 30);
    $self->{frames}{$chan} ||= [];
    while (1) {
        my $q = $self->{frames}{$chan};
        for my $i (0 .. $#$q) {
            if (!defined $id || $q->[$i]{id} == $id) {
                return splice(@$q, $i, 1);
            }
        }
        my $left = $end - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($s, $self->{inbuf}{$chan}, 65536, length $self->{inbuf}{$chan});
        return undef unless $n;
        while (length($self->{inbuf}{$chan}) >= 12) {
            my ($len, $type, $flags, $fid) = unpack('L S S L', $self->{inbuf}{$chan});
            last if length($self->{inbuf}{$chan}) < 12 + $len;
            my $body = substr($self->{inbuf}{$chan}, 12, $len);
            substr($self->{inbuf}{$chan}, 0, 12 + $len, '');
            push @$q, { type => $type, id => $fid, body => $body };
        }
    }
}

sub _str { my ($s) = @_; return pack('L', length $s) . $s . "\0" }

# A reader over a body: u8 u16 u32 str bytes
sub _rd {
    my ($b, $off, $what) = @_;
    if ($what eq 'u8')  { my $v = unpack('C', substr($$b, $$off, 1)); $$off += 1; return $v }
    if ($what eq 'u16') { my $v = unpack('S', substr($$b, $$off, 2)); $$off += 2; return $v }
    if ($what eq 'u32') { my $v = unpack('L', substr($$b, $$off, 4)); $$off += 4; return $v }
    my $n = unpack('L', substr($$b, $$off, 4));
    $$off += 4;
    my $v = substr($$b, $$off, $n);
    $$off += $n + ($what eq 'str' ? 1 : 0);
    return $v;
}

my @SEC        = qw(insecure secure bogus);
my @TLSA_STATE = qw(not-asked none insecure found failed);
my @STS_STATE  = qw(not-asked none policy failed);
my @STS_MODE   = qw(none testing enforce);

sub decode_rep {
    my ($body) = @_;
    my $off = 0;
    my %r;
    $r{class}  = $CLASS[ _rd(\$body, \$off, 'u32') ];
    $r{reason} = _rd(\$body, \$off, 'str');
    $r{name}   = _rd(\$body, \$off, 'str');
    $r{flags}  = _rd(\$body, \$off, 'u32');
    my $nh = _rd(\$body, \$off, 'u32');
    for (1 .. $nh) {
        my %h;
        $h{name}   = _rd(\$body, \$off, 'str');
        $h{pref}   = _rd(\$body, \$off, 'u16');
        $h{group}  = _rd(\$body, \$off, 'u16');
        $h{port}   = _rd(\$body, \$off, 'u16');
        $h{class}  = $CLASS[ _rd(\$body, \$off, 'u32') ];
        $h{reason} = _rd(\$body, \$off, 'str');
        my $na = _rd(\$body, \$off, 'u32');
        for (1 .. $na) {
            my $fam = _rd(\$body, \$off, 'u8');
            my $raw = _rd(\$body, \$off, 'bytes');
            push @{ $h{addrs} }, inet_ntop($fam == 4 ? AF_INET : AF_INET6, $raw);
        }
        $h{addrs} ||= [];
        $h{sec}         = $SEC[ _rd(\$body, \$off, 'u8') ];
        $h{tlsa_state}  = $TLSA_STATE[ _rd(\$body, \$off, 'u8') ];
        $h{tlsa_reason} = _rd(\$body, \$off, 'str');
        my $nt = _rd(\$body, \$off, 'u32');
        for (1 .. $nt) {
            my %t;
            $t{usage}    = _rd(\$body, \$off, 'u8');
            $t{selector} = _rd(\$body, \$off, 'u8');
            $t{mtype}    = _rd(\$body, \$off, 'u8');
            $t{data}     = unpack('H*', _rd(\$body, \$off, 'bytes'));
            push @{ $h{tlsa} }, \%t;
        }
        $h{tlsa} ||= [];
        push @{ $r{hosts} }, \%h;
    }
    $r{sec} = $SEC[ _rd(\$body, \$off, 'u8') ];
    my %sts;
    $sts{state}   = $STS_STATE[ _rd(\$body, \$off, 'u8') ];
    $sts{mode}    = $STS_MODE[ _rd(\$body, \$off, 'u8') ];
    $sts{id}      = _rd(\$body, \$off, 'str');
    $sts{max_age} = _rd(\$body, \$off, 'u32');
    $sts{reason}  = _rd(\$body, \$off, 'str');
    my $nm = _rd(\$body, \$off, 'u32');
    $sts{mx} = [ map { _rd(\$body, \$off, 'str') } 1 .. $nm ];
    $r{sts} = \%sts;
    $r{hosts} ||= [];
    $r{trailing} = length($body) - $off;
    return \%r;
}

sub _id { my ($self) = @_; return $self->{next_id}++ }

# send_mx($domain, @override [, { flags => DNS_Q_STS, port => 25 }])
sub send_mx {
    my ($self, $domain, @override) = @_;
    my $o = @override && ref $override[-1] eq 'HASH' ? pop @override : {};
    my $id = $self->_id;
    $self->_send('deliver', IMSG_DNS_MX_REQ, $id,
        _str($domain) . pack('L', scalar @override) . join("", map { _str($_) } @override)
            . pack("LS", $o->{flags} // 0, $o->{port} // 0));
    return $id;
}

sub send_host {
    my ($self, $name, $o) = @_;
    $o ||= {};
    my $id = $self->_id;
    $self->_send('deliver', IMSG_DNS_HOST_REQ, $id,
        _str($name) . pack("LS", $o->{flags} // 0, $o->{port} // 0));
    return $id;
}

sub send_raw {
    my ($self, $type, $body) = @_;
    my $id = $self->_id;
    $self->_send('deliver', $type, $id, $body);
    return $id;
}

sub wait_rep {
    my ($self, $id, $timeout) = @_;
    my $f = $self->_recv('deliver', $id, $timeout // 30) or return undef;
    return undef unless $f->{type} == IMSG_DNS_REP;
    return decode_rep($f->{body});
}

# The next reply, whatever its id: ($id, $result), or () after timeout.
sub wait_any {
    my ($self, $timeout) = @_;
    my $f = $self->_recv('deliver', undef, $timeout // 30) or return ();
    return ($f->{id}, $f->{type} == IMSG_DNS_REP ? decode_rep($f->{body}) : undef);
}

sub mx   { my ($self, @a) = @_; return $self->wait_rep($self->send_mx(@a)) }
sub host { my ($self, $n, $o) = @_; return $self->wait_rep($self->send_host($n, $o)) }

sub mx_many {
    my ($self, $domains) = @_;
    my @ids = map { $self->send_mx($_) } @$domains;
    return map { $self->wait_rep($_) } @ids;
}

# ctl(@argv [, { json => 1 }]) -> (exit code, output)
sub ctl {
    my ($self, @argv) = @_;
    my $o = ref $argv[-1] eq 'HASH' ? pop @argv : {};
    my $id = 1000000 + $self->_id;
    $self->_send('master', IMSG_CTL_REQ, $id,
        pack('L L', $o->{json} ? CTL_F_JSON : 0, scalar @argv) . join('', map { _str($_) } @argv));
    my $f = $self->_recv('master', $id, $o->{timeout} // 60) or return (-1, 'no answer');
    my $off = 0;
    my $code = _rd(\$f->{body}, \$off, 'u32');
    my $text = _rd(\$f->{body}, \$off, 'str');
    return ($code, $text);
}

sub alive { my ($self) = @_; return $self->{pid} && waitpid($self->{pid}, WNOHANG) == 0 }

# Stop dnsd and start it again on the same directory (its spool and the
# MTA-STS cache in it are kept); params: changes to main.cf.
sub restart {
    my ($self, %params) = @_;
    $self->_halt;
    $self->{params}{$_} = $params{$_} for keys %params;
    $self->{inbuf} = { master => '', deliver => '' };
    $self->{frames} = {};
    return $self->start;
}

sub _halt {
    my ($self) = @_;
    if ($self->{pid}) {
        eval { $self->_send('master', IMSG_SHUTDOWN, 0, '') };
        my $end = time + 5;
        while (time < $end) {
            last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
            sleep 0.05;
        }
        Postern::DNS::_kill_wait($self->{pid}, 2) if kill 0, $self->{pid};
        delete $self->{pid};
    }
}

sub stop {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    $self->_halt;
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{POSTERN_KEEP};
    delete $self->{dir};
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

package Postern::DNS;

# A zone for $domain whose one MX, mx.$domain, has the address $addr (for
# nsd: each test domain's MX on its own loopback address).
sub mx_zone {
    my ($domain, $addr) = @_;
    return "\$ORIGIN $domain.\n\$TTL 300\n\@ IN SOA ns admin 1 3600 600 86400 60\n"
        . "\@ IN NS ns\nns IN A 127.0.0.1\n\@ IN MX 10 mx\nmx IN A $addr\n";
}

# The zones the dns_*.t tests share (served by nsd).
sub test_zones {
    return {
        'example.test' => <<'ZONE',
$ORIGIN example.test.
$TTL 300
@        IN SOA ns admin 1 3600 600 86400 60
@        IN NS ns
ns       IN A 127.0.0.1
@        IN MX 10 mx1
@        IN MX 20 mx2
@        IN MX 20 mx3
mx1      IN A 127.0.0.11
mx2      IN A 127.0.0.12
mx2      IN AAAA ::1
mx3      IN A 127.0.0.13
noadd    IN MX 10 mail.other.test.
implicit IN A 127.0.0.21
implicit IN AAAA ::21
nullmx   IN MX 0 .
alias    IN CNAME chain1
chain1   IN CNAME chain2
chain2   IN MX 10 mx1
v6only   IN MX 10 mx6
mx6      IN AAAA ::1
nomail   IN TXT "no mail here"
short 2  IN MX 10 mx1
deadmx   IN MX 10 nothere
ZONE
        'other.test' => <<'ZONE',
$ORIGIN other.test.
$TTL 300
@        IN SOA ns admin 1 3600 600 86400 60
@        IN NS ns
ns       IN A 127.0.0.1
mail     IN A 127.0.0.31
ZONE
    };
}

sub _slurp {
    my ($p) = @_;
    open my $fh, '<', $p or return '';
    local $/;
    my $t = <$fh>;
    return $t // '';
}

1;
