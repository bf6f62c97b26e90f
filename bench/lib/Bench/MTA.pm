package Bench::MTA;

# Bench::MTA - one MTA instance for a benchmark run (or for t/interop):
# Postern, Postfix, OpenSMTPD or Exim, each in a private directory with its
# own configuration and queue, listening on 127.0.0.1:PORT and relaying
# everything to the sink at SINK_ADDR:SINK_PORT. Each keeps its default
# durability.
#
#   my $m = Bench::MTA->create('postern', dir => $d, port => $p,
#       sink_addr => '127.0.0.2', sink_port => $sp, nsd => '127.0.0.1:5353',
#       repo => $repo_root, roots => "$work/root");
#   $m->start(60);            # spawn, wait until it accepts; dies on failure
#   $m->tracker;              # Bench::Proc::Tracker of its processes
#   $m->log_path;             # its log, each line stamped by tslog
#   $m->id_from_250($line)    # queue ID in smtp-source's "<<< 250 ..." line
#   $m->id_from_sent($line)   # queue ID in the MTA's "delivered" log line
#   $m->stop(30);             # SIGTERM to its master, then SIGKILL leftovers
#
# Options beyond the relay-to-sink default, for t/interop: Postfix takes
# params (main.cf) and master_extra (lines added to master.cf);
# OpenSMTPD and Exim take conf (the whole configuration text, instead of
# the default one). $m->main_log is where the MTA writes its own log
# (Exim: DIR/log/mainlog; the others: log_path).
#
# Postern runs bin/master -d. Postfix (postfix start-fg) and OpenSMTPD
# (smtpd -d) run from the .debs unpacked under bench/work/root, each in a
# private mount namespace (unshare -m) whose /etc/resolv.conf names only
# 127.0.0.1, so no lookup they make can leave the machine; OpenSMTPD's
# compiled-in paths (/var/spool/smtpd, /var/lib/opensmtpd/empty, /run)
# are bind-mounted onto the run's directory there.

use strict;
use warnings;
use File::Path qw(make_path);
use Time::HiRes qw(time sleep);
use Bench::Proc qw(spawn_logged);

sub create {
    my ($class, $kind, %o) = @_;
    my %map = (postern => 'Bench::MTA::Postern', postfix => 'Bench::MTA::Postfix',
        opensmtpd => 'Bench::MTA::OpenSMTPD', exim => 'Bench::MTA::Exim');
    my $sub = $map{$kind} or die "bench: unknown MTA '$kind'\n";
    my $self = bless { %o, kind => $kind }, $sub;
    make_path($self->{dir});
    chmod 0755, $self->{dir};
    $self->prepare;
    return $self;
}

sub kind     { $_[0]{kind} }
sub dir      { $_[0]{dir} }
sub port     { $_[0]{port} }
sub log_path { "$_[0]{dir}/mta.log" }
sub main_log { $_[0]->log_path }
sub tracker  { $_[0]{tracker} }
sub pid      { $_[0]{pid} }
sub env      { {} }

# LD_LIBRARY_PATH for the libraries bench/setup unpacked (none: empty).
sub libs_env {
    my ($self) = @_;
    my $lib = join(':', grep { -d } "$self->{roots}/libs/usr/lib/x86_64-linux-gnu",
        "$self->{roots}/libs/lib/x86_64-linux-gnu");
    return $lib ? { LD_LIBRARY_PATH => $lib } : {};
}

sub write_file {
    my ($self, $path, $text, $mode) = @_;
    open my $fh, '>', $path or die "bench: $path: $!\n";
    print $fh $text;
    close $fh or die "bench: $path: $!\n";
    chmod $mode // 0644, $path;
}

sub log_text {
    my ($self) = @_;
    open my $fh, '<', $self->log_path or return '';
    local $/;
    my $t = <$fh>;
    return $t // '';
}

# The log written since the last start.
sub log_since_start {
    my ($self) = @_;
    open my $fh, '<', $self->log_path or return '';
    seek $fh, $self->{log_off} // 0, 0;
    local $/;
    my $t = <$fh>;
    return $t // '';
}

sub start {
    my ($self, $timeout) = @_;
    $self->{log_off} = -s $self->log_path // 0;
    my ($pid, $tpid) = spawn_logged(cmd => $self->command, name => $self->{kind},
        log => $self->log_path, stdout => 1, env => $self->env, dir => $self->{dir});
    $self->{pid} = $pid;
    $self->{tslog} = $tpid;
    $self->{tracker} = Bench::Proc::Tracker->new($pid);
    my $end = time + ($timeout // 60);
    while (time < $end) {
        if (Bench::Proc::exited($pid)) {
            die "bench: $self->{kind} exited during start:\n" . _tail($self->log_text, 20);
        }
        return 1 if $self->ready;
        sleep 0.1;
    }
    my $tail = _tail($self->log_text, 20);
    $self->stop(10);
    die "bench: $self->{kind} not ready within ${timeout}s:\n$tail";
}

sub _tail {
    my ($t, $n) = @_;
    my @l = split /\n/, $t;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# The process to send SIGTERM to for an orderly stop.
sub master_pid { $_[0]{pid} }

sub stop {
    my ($self, $timeout) = @_;
    return unless $self->{pid};
    my $t = $self->{tracker};
    my $m = $self->master_pid;
    kill 'TERM', $m if $m && grep { $_ == $m } @{ $t->pids };
    my $end = time + ($timeout // 30);
    while (time < $end) {
        Bench::Proc::reap();
        last unless $t->alive;
        sleep 0.05;
    }
    $t->kill_all;
    Bench::Proc::stop_pid($self->{tslog}, 5);
    delete $self->{pid};
}

############################################################################
package Bench::MTA::Postern;
our @ISA = ('Bench::MTA');

sub prepare {
    my ($self) = @_;
    my $d = $self->{dir};
    File::Path::make_path("$d/etc");
    chmod 0755, "$d/etc";
    my %p = (
        myhostname      => 'postern.bench',
        queue_directory => "$d/spool",
        smtpd_listen    => "127.0.0.1:$self->{port}",
        log_file        => '',
        mynetworks      => '127.0.0.0/8',
        dns_servers     => $self->{nsd},
        direct_port     => $self->{sink_port},
        %{ $self->{params} || {} },
    );
    $p{mail_owner} //= 'postern' if $> == 0 && !$self->{as_user};
    $self->{params_used} = \%p;
    if ($self->{as_user}) {
        my (undef, undef, $uid, $gid) = getpwnam($self->{as_user});
        die "bench: no user $self->{as_user}\n" unless defined $uid;
        chown $uid, $gid, $d, "$d/etc", "$d/etc/main.cf";
    }
    $self->write_file("$d/etc/main.cf", join('', map { "$_ = $p{$_}\n" } sort keys %p));
}

# master_bin: another copy of master (its children are exec'd from the
# directory master runs from); as_user: run everything as that user, the
# way Postern runs when not started by root (no chroot, no setuid).
sub command {
    my ($s) = @_;
    my @c = ($s->{master_bin} // "$s->{repo}/bin/master", '-c', "$s->{dir}/etc", '-d');
    unshift @c, 'setpriv', "--reuid=$s->{as_user}", "--regid=$s->{as_user}", '--init-groups'
        if $s->{as_user};
    return \@c;
}

sub ready { return $_[0]->log_since_start =~ /postern ready/ }

sub id_from_250  { return $_[1] =~ /<<< 250 .*queued as (\S+)/ ? $1 : undef }
sub id_from_sent { return $_[1] =~ /: (\S+): to=<[^>]*>, relay=.*status=sent/ ? $1 : undef }


############################################################################
package Bench::MTA::Postfix;
our @ISA = ('Bench::MTA');

sub root { "$_[0]{roots}/postfix" }
sub env  { return { LD_LIBRARY_PATH => $_[0]->libpath } }

sub libpath {
    my ($self) = @_;
    return join(':', grep { -d } $self->root . '/usr/lib/postfix', "$self->{roots}/libs/usr/lib/x86_64-linux-gnu",
        "$self->{roots}/libs/lib/x86_64-linux-gnu");
}

sub prepare {
    my ($self) = @_;
    my $d = $self->{dir};
    my $r = $self->root;
    File::Path::make_path("$d/etc", "$d/spool", "$d/data");
    my (undef, undef, $uid) = getpwnam('postfix');
    die "bench: user postfix is missing (bench/setup creates it)\n" unless defined $uid;
    chown $uid, -1, "$d/data";
    open my $in, '<', "$r/usr/share/postfix/master.cf.dist" or die "bench: master.cf.dist: $!\n";
    my $mcf = '';
    my $skip = 0;
    while (my $l = <$in>) {
        next if $l =~ /^#/ || $l =~ /^\s*$/;
        if ($l =~ /^\s/) { $mcf .= $l unless $skip; next }
        my @f = split ' ', $l;
        # services whose programs are not in the package: left out
        $skip = ($f[7] // '') eq 'pipe' ? 1 : 0;
        next if $skip;
        # no chroot: the chroot jail would need the unpacked tree inside it
        $f[4] = 'n' if @f >= 8;
        $f[0] = "127.0.0.1:$self->{port}" if $f[0] eq 'smtp' && $f[1] eq 'inet';
        $mcf .= join(' ', @f) . "\n";
    }
    close $in;
    $mcf .= $self->{master_extra} // '';
    $self->write_file("$d/etc/master.cf", $mcf);
    for my $f ('usr/share/postfix/dynamicmaps.cf', 'etc/postfix/postfix-files') {
        (my $base = $f) =~ s{.*/}{};
        open my $a, '<', "$r/$f" or die "bench: $r/$f: $!\n";
        local $/;
        $self->write_file("$d/etc/$base", <$a>);
    }
    File::Path::make_path("$d/etc/postfix-files.d", "$d/etc/dynamicmaps.cf.d");
    my $lib = $self->libpath;
    my %p = (
        compatibility_level => '3.6',
        queue_directory     => "$d/spool",
        data_directory      => "$d/data",
        daemon_directory    => "$r/usr/lib/postfix/sbin",
        command_directory   => "$r/usr/sbin",
        meta_directory      => "$d/etc",
        shlib_directory     => "$r/usr/lib/postfix",
        mail_owner          => 'postfix',
        setgid_group        => 'postdrop',
        myhostname          => 'postfix.bench',
        mydestination       => '',
        inet_interfaces     => '127.0.0.1',
        inet_protocols      => 'ipv4',
        mynetworks          => '127.0.0.0/8',
        relayhost           => "[$self->{sink_addr}]:$self->{sink_port}",
        alias_maps          => '',
        alias_database      => '',
        maillog_file        => '/dev/stdout',
        import_environment  => "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE "
            . "POSTLOG_HOSTNAME LD_LIBRARY_PATH=$lib",
        %{ $self->{params} || {} },
    );
    $self->{params_used} = \%p;
    $self->write_file("$d/etc/main.cf", join('', map { "$_ = $p{$_}\n" } sort keys %p));
    $self->write_file("$d/etc/resolv.conf", "nameserver 127.0.0.1\n");
}

sub command {
    my ($self) = @_;
    my $d = $self->{dir};
    return [ 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
        "mount --bind $d/etc/resolv.conf /etc/resolv.conf && exec "
            . $self->root . "/usr/sbin/postfix -c $d/etc start-fg" ];
}

sub ready {
    my ($self) = @_;
    return $self->log_since_start =~ /daemon started/ && Bench::Proc::port_listening('127.0.0.1', $self->{port});
}

sub master_pid { return $_[0]{tracker}->find(qr{/sbin/master\b}) }

sub id_from_250  { return $_[1] =~ /<<< 250 .*queued as (\S+)/ ? $1 : undef }
sub id_from_sent { return $_[1] =~ m{postfix/smtp\[\d+\]: (\w+): to=<.*status=sent} ? $1 : undef }


############################################################################
package Bench::MTA::OpenSMTPD;
our @ISA = ('Bench::MTA');

sub root { "$_[0]{roots}/opensmtpd" }
sub env  { $_[0]->libs_env }

sub prepare {
    my ($self) = @_;
    my $d = $self->{dir};
    File::Path::make_path("$d/etc", "$d/var-spool/smtpd", "$d/var-lib/opensmtpd/empty", "$d/run");
    chmod 0711, "$d/var-spool/smtpd";
    chmod 0755, "$d/var-lib", "$d/var-lib/opensmtpd", "$d/var-lib/opensmtpd/empty", "$d/run";
    $self->write_file("$d/etc/smtpd.conf", $self->{conf} //
        "listen on 127.0.0.1 port $self->{port}\n"
            . "action \"relay\" relay host smtp://$self->{sink_addr}:$self->{sink_port}\n"
            . "match from local for any action \"relay\"\n");
    $self->write_file("$d/etc/resolv.conf", "nameserver 127.0.0.1\n");
}

sub command {
    my ($self) = @_;
    my $d = $self->{dir};
    return [ 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
        "mount --bind $d/etc/resolv.conf /etc/resolv.conf"
            . " && mount --bind $d/var-spool /var/spool"
            . " && mount --bind $d/var-lib /var/lib"
            . " && mount --bind $d/run /run"
            . " && exec " . $self->root . "/usr/sbin/smtpd -d -f $d/etc/smtpd.conf" ];
}

sub ready { return Bench::Proc::port_listening('127.0.0.1', $_[0]{port}) }

sub id_from_250 { return $_[1] =~ /<<< 250 2\.0\.0 ([0-9a-f]{8}) Message accepted/ ? $1 : undef }
sub id_from_sent {
    return $_[1] =~ /mta delivery evpid=([0-9a-f]{8})[0-9a-f]{8} .*result="Ok"/ ? $1 : undef;
}

# Run OpenSMTPD's smtpctl against this instance (its control socket is in
# the private /run): returns (exit status, output).
sub smtpctl {
    my ($self, @args) = @_;
    my $d = $self->{dir};
    my $cmd = "mount --bind $d/run /run && exec " . $self->root . '/usr/sbin/smtpctl '
        . join(' ', map { "'$_'" } @args);
    my $out = `timeout 20 unshare --mount --propagation private sh -c "$cmd" 2>&1`;
    return ($? >> 8, $out);
}


############################################################################
package Bench::MTA::Exim;
our @ISA = ('Bench::MTA');

# Exim runs as root from the unpacked exim4-daemon-light (`exim4 -bdf
# -q1s`), with exim_user Debian-exim (bench/setup creates it), its spool
# and logs in DIR. Not with -C: Exim re-executes itself to deliver, as
# exim_user, and then honours -C only for files listed in
# /etc/exim4/trusted_configs. So in its private mount namespace DIR/var-lib
# is bind-mounted onto /var/lib, and the configuration is
# /var/lib/exim4/config.autogenerated there, the Debian build's default
# path. Its routers name IP addresses only, so it makes no DNS lookup;
# resolv.conf names 127.0.0.1 anyway, like the others.

sub root { "$_[0]{roots}/exim4" }
sub main_log { "$_[0]{dir}/log/mainlog" }
sub env  { $_[0]->libs_env }

sub prepare {
    my ($self) = @_;
    my $d = $self->{dir};
    my (undef, undef, $uid, $gid) = getpwnam('Debian-exim');
    die "bench: user Debian-exim is missing (bench/setup creates it)\n" unless defined $uid;
    File::Path::make_path("$d/etc", "$d/spool", "$d/log", "$d/var-lib/exim4");
    chown $uid, $gid, "$d/spool", "$d/log";
    chmod 0755, "$d/var-lib", "$d/var-lib/exim4";
    $self->write_file("$d/var-lib/exim4/config.autogenerated", $self->{conf} // $self->default_conf);
    $self->write_file("$d/etc/resolv.conf", "nameserver 127.0.0.1\n");
}

# The settings every configuration needs: users, paths, no lookups of the
# client (ident, reverse DNS), the environment cleared but for the
# library path its re-executions need.
sub base_conf {
    my ($self) = @_;
    my $d = $self->{dir};
    return <<"CONF";
exim_path = @{[ $self->root ]}/usr/sbin/exim4
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = $d/spool
log_file_path = $d/log/%slog
primary_hostname = exim.bench
daemon_smtp_ports = $self->{port}
local_interfaces = <; 127.0.0.1
host_lookup =
rfc1413_hosts =
keep_environment = LD_LIBRARY_PATH
CONF
}

sub default_conf {
    my ($self) = @_;
    return $self->base_conf . <<"CONF";
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept hosts = <; 127.0.0.0/8
  deny
begin routers
to_sink:
  driver = manualroute
  route_list = * $self->{sink_addr}
  transport = to_sink
  self = send
begin transports
to_sink:
  driver = smtp
  port = $self->{sink_port}
begin retry
* * F,1h,1s
CONF
}

sub command {
    my ($self) = @_;
    my $d = $self->{dir};
    return [ 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
        "mount --bind $d/etc/resolv.conf /etc/resolv.conf && mount --bind $d/var-lib /var/lib && exec "
            . $self->root . "/usr/sbin/exim4 -bdf -q1s" ];
}

sub ready { return Bench::Proc::port_listening('127.0.0.1', $_[0]{port}) }

sub id_from_250  { return $_[1] =~ /<<< 250 OK id=(\S+)/ ? $1 : undef }
sub id_from_sent { return $_[1] =~ /^\S+ \S+ (\S+) Completed/ ? $1 : undef }


1;
