package Postern::Forwarder;

# Postern::Forwarder - a recording TCP forwarder between two MTAs on
# loopback, to see on the wire what the client used (DATA or BDAT,
# STARTTLS) without changing a byte.
#
#   my $fw = Postern::Forwarder->new(addr => '127.0.0.1', port => $p,
#       to => "127.0.0.1:$server_port", file => "$dir/fw.jsonl");
#   ...
#   my @c = $fw->commands;      # every client command line seen, in order
#   $fw->stop;                  # also at DESTROY / END
#
# Contract
# - new binds addr:port before it returns, then serves in a child process
#   (its own process group) that forks one process per connection; each
#   connects to `to` and passes bytes both ways unchanged.
# - The client's side is parsed as SMTP: command lines are recorded (AUTH
#   arguments and the lines of an AUTH dialogue are masked); after DATA the payload up to CRLF.CRLF and after
#   `BDAT n` the n octets of the chunk are skipped; after STARTTLS nothing
#   more is parsed (TLS passes through opaquely). Records are JSON lines in
#   `file`: {conn, cmd} per command line.
# - An end of stream from one side is passed on as a half-close and the
#   other direction drained, so no reply is lost to a reset.
# - Bounded: a connection idle for `idle` seconds (default 60) is closed;
#   the server exits after `lifetime` seconds (default 600) or when the
#   test process goes away; stop() kills it by PID and process group.
#   Only loopback addresses are accepted for addr and to.

use strict;
use warnings;
use Carp qw(croak);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken refaddr);
use Time::HiRes qw(time sleep);

use Postern::Util qw(read_jsonl wait_until);

my $OWNER_PID = $$;
my %LIVE;

END {
    local $?;
    if ($$ == $OWNER_PID) {
        for my $k (keys %LIVE) { $LIVE{$k}->stop if $LIVE{$k} }
    }
}

sub new {
    my ($class, %o) = @_;
    my $self = bless { idle => 60, lifetime => 600, owner => $$, %o }, $class;
    for my $a ($self->{addr}, $self->{to}) {
        croak "forwarder: $a is not a loopback address" unless ($a // '') =~ /^127\./;
    }
    croak 'forwarder: file is required' unless $self->{file};
    open my $fh, '>', $self->{file} or croak "$self->{file}: $!";
    close $fh;
    my $ls = IO::Socket::INET->new(LocalAddr => $self->{addr}, LocalPort => $self->{port},
        Proto => 'tcp', Listen => 64, ReuseAddr => 1)
        or croak "forwarder: listen $self->{addr}:$self->{port}: $@";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        eval { $self->_serve($ls) };
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    $LIVE{ refaddr $self } = $self;
    weaken($LIVE{ refaddr $self });
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

sub records  { return read_jsonl($_[0]{file}) }
sub commands { return map { $_->{cmd} } $_[0]->records }

# connections: the command lines grouped by connection, in order:
# ({conn => N, cmds => [...]}, ...)
sub connections {
    my ($self) = @_;
    my (%c, @order);
    for my $r ($self->records) {
        push @order, $r->{conn} unless $c{ $r->{conn} };
        push @{ $c{ $r->{conn} } }, $r->{cmd};
    }
    return map { { conn => $_, cmds => $c{$_} } } @order;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid} && $$ == $self->{owner};
    my $pid = delete $self->{pid};
    kill 'TERM', -$pid;
    kill 'TERM', $pid;
    if (!wait_until(5, sub { waitpid($pid, WNOHANG) != 0 }, 0.02)) {
        kill 'KILL', -$pid;
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
    delete $LIVE{ refaddr $self };
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $?, $!);
    $self->stop;
}

sub _serve {
    my ($self, $ls) = @_;
    my $end = time + $self->{lifetime};
    my $parent = getppid();
    my $conn = 0;
    my $sel = IO::Select->new($ls);
    $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
    while (time < $end && kill(0, $parent)) {
        next unless $sel->can_read(0.5);
        my $c = $ls->accept or next;
        $conn++;
        my $pid = fork();
        if (defined $pid && $pid == 0) {
            close $ls;
            eval { $self->_pipe($c, $conn) };
            POSIX::_exit(0);
        }
        close $c;
    }
}

sub _record {
    my ($self, $rec) = @_;
    sysopen(my $fh, $self->{file}, O_WRONLY | O_APPEND | O_CREAT) or return;
    syswrite $fh, JSON::PP->new->canonical->encode($rec) . "\n";
    close $fh;
}

# One connection: bytes both ways; the client's stream parsed as it goes.
sub _pipe {
    my ($self, $c, $conn) = @_;
    my ($host, $port) = split /:/, $self->{to};
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => 10)
        or return;
    my $sel = IO::Select->new($c, $s);
    my $st = { mode => 'cmd', buf => '', skip => 0, tail => '' };
    my $last = time;
    # an end of stream on one side is passed on as a half-close (FIN), and
    # the other direction drained: closing at once could reset the
    # connection and lose the last reply still on its way to the client
    while ($sel->count && time - $last < $self->{idle}) {
        my @r = $sel->can_read(1) or next;
        for my $fh (@r) {
            my $other = $fh == $c ? $s : $c;
            my $n = sysread($fh, my $data, 65536);
            if (!$n) {
                shutdown($other, 1);
                $sel->remove($fh);
                next;
            }
            my $off = 0;
            while ($off < length $data) {
                my $w = syswrite($other, $data, length($data) - $off, $off);
                return unless defined $w;
                $off += $w;
            }
            $self->_parse($st, $data, $conn) if $fh == $c;
            $last = time;
        }
    }
}

sub _parse {
    my ($self, $st, $data, $conn) = @_;
    return if $st->{mode} eq 'opaque';
    $st->{buf} .= $data;
    while (length $st->{buf}) {
        if ($st->{mode} eq 'bdat') {
            my $take = $st->{skip} < length $st->{buf} ? $st->{skip} : length $st->{buf};
            substr($st->{buf}, 0, $take, '');
            $st->{skip} -= $take;
            $st->{mode} = 'cmd' if $st->{skip} == 0;
            next;
        }
        if ($st->{mode} eq 'data') {
            my $hay = $st->{tail} . $st->{buf};
            my $i = index($hay, "\r\n.\r\n");
            if ($i < 0) {
                $st->{tail} = substr($hay, -4);
                $st->{buf} = '';
                return;
            }
            $st->{buf} = substr($hay, $i + 5);
            $st->{tail} = '';
            $st->{mode} = 'cmd';
            next;
        }
        my $i = index($st->{buf}, "\n");
        return if $i < 0;
        my $line = substr($st->{buf}, 0, $i + 1, '');
        $line =~ s/\r?\n\z//;
        (my $shown = $line) =~ s/^(AUTH\s+\S+)\s.*/$1 ****/i;
        $shown = '****' unless $line =~ /^(?:EHLO|HELO|LHLO|MAIL|RCPT|DATA|BDAT|RSET|QUIT|NOOP|STARTTLS|AUTH|VRFY|EXPN|HELP)\b/i;
        $self->_record({ conn => $conn, cmd => $shown });
        if ($line =~ /^DATA$/i) {
            # the payload starts after the 354; "\r\n" makes an empty body's
            # lone dot line visible to the search above
            $st->{mode} = 'data';
            $st->{tail} = "\r\n";
        } elsif ($line =~ /^BDAT\s+(\d+)/i) {
            $st->{skip} = $1;
            $st->{mode} = 'bdat' if $1 > 0;
        } elsif ($line =~ /^STARTTLS$/i) {
            $st->{mode} = 'opaque';
            return;
        }
    }
}

1;
