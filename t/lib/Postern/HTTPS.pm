package Postern::HTTPS;

# Postern::HTTPS - an HTTPS server for MTA-STS tests: policy files served
# on loopback with a certificate of a test CA made at test time.
#
#   my $ca = Postern::HTTPS::CA->new;            # openssl CLI: a CA key and cert
#   $ca->file;                                   # the CA cert (mta_sts_ca_file)
#   my $h = Postern::HTTPS->new(ca => $ca, addr => '127.0.0.1',
#       names => ['mta-sts.a.test', 'mta-sts.b.test'], port => $port);
#   $h->start;                                   # forked IO::Socket::SSL server
#   $h->port;
#   $h->policy('a.test', "version: STSv1\n...");  # the body for Host mta-sts.a.test
#   $h->set('a.test', status => 404);            # or ctype => 'text/html',
#                                                # redirect => 'https://x/', slow => 5
#                                                # (seconds before the body),
#                                                # huge => 1 (70000 bytes), chunked => 1,
#                                                # close => 1 (no Content-Length)
#   $h->requests('a.test');                      # GETs seen for mta-sts.a.test
#   $h->stop;                                    # by PID (also on DESTROY)
#
# What a request gets is read from files at each request, so a test changes
# it between requests. Every request is appended to a log file (Host and
# path). The server forks a child per connection, exits by itself after
# `lifetime` seconds (default 300) or when its parent is gone, and listens
# on loopback only.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(remove_tree);
use IO::Select;
use IO::Socket::INET;
use IO::Socket::SSL;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

use Postern::DNS;

sub new {
    my ($class, %o) = @_;
    croak 'ca needed' unless $o{ca};
    return bless { %o, addr => $o{addr} // '127.0.0.1', names => $o{names} || [],
        lifetime => $o{lifetime} // 300, owner => $$ }, $class;
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }

sub _write {
    my ($path, $text) = @_;
    open my $fh, '>', "$path.tmp" or croak "$path: $!";
    print $fh $text;
    close $fh;
    rename "$path.tmp", $path or croak "rename $path: $!";
}

sub _slurp { return Postern::DNS::_slurp($_[0]) }

sub policy {
    my ($self, $domain, $text) = @_;
    _write("$self->{dir}/$domain.policy", $text);
}

sub set {
    my ($self, $domain, %o) = @_;
    _write("$self->{dir}/$domain.opts", join('', map { "$_=$o{$_}\n" } sort keys %o));
}

sub requests {
    my ($self, $domain) = @_;
    return scalar grep { $_ eq "mta-sts.$domain" }
        map { (split ' ')[0] // '' } split /\n/, _slurp("$self->{dir}/requests.log");
}

sub start {
    my ($self) = @_;
    $self->{dir} = Postern::DNS::_tmpdir();
    ($self->{cert}, $self->{key}) = $self->{ca}->issue($self->{dir}, @{ $self->{names} });
    _write("$self->{dir}/requests.log", '');
    my $srv = IO::Socket::INET->new(LocalAddr => $self->{addr}, LocalPort => $self->{port} // 0,
        Proto => 'tcp', Listen => 16, ReuseAddr => 1) or croak "listen $self->{addr}: $!";
    $self->{port} = $srv->sockport;
    my $parent = $$;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        eval { $self->_serve($srv, $parent) };
        POSIX::_exit(0);
    }
    close $srv;
    $self->{pid} = $pid;
    return $self;
}

sub _opts {
    my ($self, $domain) = @_;
    my %o;
    for (split /\n/, _slurp("$self->{dir}/$domain.opts")) { $o{$1} = $2 if /^(\w+)=(.*)$/ }
    return \%o;
}

sub _serve {
    my ($self, $srv, $parent) = @_;
    my $end = time + $self->{lifetime};
    my $sel = IO::Select->new($srv);
    $SIG{CHLD} = 'DEFAULT';
    while (time < $end && getppid() == $parent) {
        1 while waitpid(-1, WNOHANG) > 0;
        next unless $sel->can_read(0.2);
        my $c = $srv->accept or next;
        my $pid = fork;
        if (defined $pid && $pid == 0) {
            close $srv;
            eval { $self->_one($c) };
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub _one {
    my ($self, $c) = @_;
    alarm 30;
    IO::Socket::SSL->start_SSL($c, SSL_server => 1, SSL_cert_file => $self->{cert},
        SSL_key_file => $self->{key}, SSL_startHandshake => 1, Timeout => 10) or return;
    my $req = '';
    while ($req !~ /\r?\n\r?\n/ && length $req < 16384) {
        my $n = sysread($c, $req, 4096, length $req);
        last unless $n;
    }
    my ($path) = $req =~ /^GET (\S+) HTTP/;
    my ($host) = $req =~ /^Host:\s*([^\s:]+)/mi;
    $host = lc($host // '');
    open my $log, '>>', "$self->{dir}/requests.log";
    print $log "$host " . ($path // '-') . "\n";
    close $log;
    (my $domain = $host) =~ s/^mta-sts\.//;
    my $o = $self->_opts($domain);
    my $body = _slurp("$self->{dir}/$domain.policy");
    $body = 'x' x 70000 if $o->{huge};
    my $status = $o->{status} // 200;
    $status = 301 if $o->{redirect} && !$o->{status};
    my $head = "HTTP/1.1 $status " . ($status == 200 ? 'OK' : 'Not OK') . "\r\n";
    $head .= "Content-Type: " . ($o->{ctype} // 'text/plain; charset=utf-8') . "\r\n";
    $head .= "Location: $o->{redirect}\r\n" if $o->{redirect};
    $head .= "Connection: close\r\n";
    if ($o->{chunked}) {
        $head .= "Transfer-Encoding: chunked\r\n\r\n";
        my $half = int(length($body) / 2);
        $body = sprintf("%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n", $half, substr($body, 0, $half),
            length($body) - $half, substr($body, $half));
    } elsif ($o->{close}) {
        $head .= "\r\n";
    } else {
        $head .= "Content-Length: " . length($body) . "\r\n\r\n";
    }
    print $c $head;
    sleep $o->{slow} if $o->{slow};
    print $c $body;
    $c->close(SSL_fast_shutdown => 0);
}

sub stop {
    my ($self) = @_;
    return unless $self->{owner} == $$;
    Postern::DNS::_kill_wait(delete $self->{pid}, 3) if $self->{pid};
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{POSTERN_KEEP};
    delete $self->{dir};
}

sub DESTROY { local ($?, $!, $@); $_[0]->stop }

############################################################################
package Postern::HTTPS::CA;

use strict;
use warnings;
use Carp qw(croak);
use File::Path qw(remove_tree);

sub _run {
    my (@cmd) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    croak "failed: @cmd" if $? != 0;
}

sub new {
    my ($class, %o) = @_;
    my $self = bless { owner => $$, cn => $o{cn} // 'Postern Test CA' }, $class;
    my $d = $self->{dir} = Postern::DNS::_tmpdir();
    _run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', "$d/ca.key", '-out', "$d/ca.crt", '-days', '2',
        '-subj', "/CN=$self->{cn}", '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    chmod 0644, "$d/ca.crt";
    return $self;
}

sub file { "$_[0]{dir}/ca.crt" }

# A server certificate for @names (the first is the CN), in $dir.
sub issue {
    my ($self, $dir, @names) = @_;
    my $d = $self->{dir};
    open my $fh, '>', "$dir/ext.cnf" or croak $!;
    print $fh "subjectAltName=" . join(',', map { "DNS:$_" } @names) . "\n"
        . "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
    close $fh;
    _run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', "$dir/srv.key", '-out', "$dir/srv.csr", '-subj', "/CN=$names[0]");
    _run('openssl', 'x509', '-req', '-in', "$dir/srv.csr", '-CA', "$d/ca.crt", '-CAkey',
        "$d/ca.key", '-CAcreateserial', '-out', "$dir/srv.crt", '-days', '2', '-extfile',
        "$dir/ext.cnf");
    return ("$dir/srv.crt", "$dir/srv.key");
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $!, $@);
    return unless $self->{owner} == $$;
    remove_tree($self->{dir}) if $self->{dir} && !$ENV{POSTERN_KEEP};
}

1;
