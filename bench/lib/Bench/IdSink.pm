package Bench::IdSink;

# Bench::IdSink - a fast SMTP sink that writes down the Message-ID of every
# message it accepts, for benchmarks that count arrivals (bench/chaos).
#
#   my $s = Bench::IdSink->new(addr => '127.0.2.1', port => $port,
#                              file => "$dir/arrivals.log", lifetime => 3600);
#   ... ;  my $new = $s->poll;        # arrivals since the last poll:
#                                     # ([time, message_id, conn], ...)
#   $s->count($mid);  $s->total;  $s->ids (hashref mid => times seen)
#   $s->stop;                         # by PID; also at DESTROY
#
# Contract
# - new binds addr:port before it returns, then serves in one forked
#   process (a select loop, no process per connection), so thousands of
#   messages a second cost it little. It offers PIPELINING, 8BITMIME,
#   SIZE and ENHANCEDSTATUSCODES, no STARTTLS and no AUTH; every MAIL,
#   RCPT and message is accepted.
# - For each message it appends one line "TIME<TAB>MESSAGE-ID<TAB>CONN\n"
#   to `file` with a single write, *before* it sends the 250 for the final
#   dot: whatever the MTA was told is delivered is in the file. A message
#   without a Message-ID header is recorded as "-".
# - forget_every => N (a self-test of whoever counts): every N-th message
#   is answered 250 and not written down, as if it had been lost.
# - The server exits by itself after `lifetime` seconds (default 3600) or
#   when the process that made it is gone. It listens on the loopback
#   address it is given and nothing else.

use strict;
use warnings;
use Carp qw(croak);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Fcntl qw(O_WRONLY O_APPEND O_CREAT);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %o) = @_;
    croak 'IdSink: addr, port and file are required' unless $o{addr} && $o{port} && $o{file};
    croak "IdSink: $o{addr} is not a loopback address" unless $o{addr} =~ /^127\./;
    my $self = bless {
        addr     => $o{addr},
        port     => $o{port},
        file     => $o{file},
        lifetime => $o{lifetime} // 3600,
        hostname => $o{hostname} // 'sink.bench',
        forget   => $o{forget_every} // 0,
        owner    => $$,
        off      => 0,
        partial  => '',
        ids      => {},
        total    => 0,
    }, $class;
    open my $fh, '>', $self->{file} or croak "IdSink: $self->{file}: $!";
    close $fh;
    my $ls = IO::Socket::INET->new(LocalAddr => $o{addr}, LocalPort => $o{port}, Proto => 'tcp',
        Listen => 1024, ReuseAddr => 1)
        or croak "IdSink: listen $o{addr}:$o{port}: $@";
    my $pid = fork() // croak "IdSink: fork: $!";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP CHLD);
        $SIG{PIPE} = 'IGNORE';
        setpgrp(0, 0);
        eval { $self->_serve($ls) };
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    return $self;
}

sub pid   { $_[0]{pid} }
sub file  { $_[0]{file} }
sub total { $_[0]{total} }
sub ids   { $_[0]{ids} }
sub count { $_[0]{ids}{ $_[1] } // 0 }

# Read what the server appended since the last call.
sub poll {
    my ($self) = @_;
    open my $fh, '<', $self->{file} or return ();
    seek $fh, $self->{off}, 0;
    local $/;
    my $chunk = <$fh> // '';
    close $fh;
    $self->{off} += length $chunk;
    $chunk = $self->{partial} . $chunk;
    my $cut = rindex($chunk, "\n");
    $self->{partial} = substr($chunk, $cut + 1);
    my @new;
    for my $l (split /\n/, substr($chunk, 0, $cut + 1)) {
        my ($t, $mid, $conn) = split /\t/, $l;
        next unless defined $mid;
        $self->{ids}{$mid}++;
        $self->{total}++;
        push @new, [ $t, $mid, $conn ];
    }
    return @new;
}

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    my $end = time + 5;
    while (time < $end) {
        return 1 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $?, $!);
    $self->stop;
}

# ---- the server (child process) ----

sub _serve {
    my ($self, $ls) = @_;
    my $parent = getppid();
    my $end = time + $self->{lifetime};
    my $stop = 0;
    $SIG{TERM} = sub { $stop = 1 };
    sysopen(my $rec, $self->{file}, O_WRONLY | O_APPEND | O_CREAT) or die "sink: $self->{file}: $!";
    $ls->blocking(0);
    my $sel = IO::Select->new($ls);
    my (%c, $n);
    while (!$stop && time < $end && getppid() == $parent) {
        my @r = $sel->can_read(0.5);
        for my $fh (@r) {
            if ($fh == $ls) {
                for (1 .. 64) {
                    my $s = $ls->accept or last;
                    $s->blocking(0);
                    my $st = { sock => $s, in => '', conn => ++$n, data => 0 };
                    $c{ fileno $s } = $st;
                    $sel->add($s);
                    _out($st, "220 $self->{hostname} ESMTP chaos sink");
                }
                next;
            }
            my $st = $c{ fileno $fh } or next;
            my $got = sysread($fh, my $buf, 65536);
            if (!defined $got && ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR)) { next }
            if (!$got) { _close(\%c, $sel, $st); next }
            $st->{in} .= $buf;
            my $quit = $self->_lines($st, $rec);
            _close(\%c, $sel, $st) if $quit || $st->{dead} || length $st->{in} > 4_000_000;
        }
    }
    close $_->{sock} for values %c;
    POSIX::_exit(0);
}

sub _close {
    my ($c, $sel, $st) = @_;
    $sel->remove($st->{sock});
    delete $c->{ fileno $st->{sock} };
    close $st->{sock};
}

# Write a reply; the socket is non-blocking, so wait (briefly) for room.
sub _out {
    my ($st, $text) = @_;
    $text .= "\r\n";
    my $off = 0;
    my $end = time + 10;
    while ($off < length $text) {
        my $w = syswrite($st->{sock}, $text, length($text) - $off, $off);
        if (defined $w) { $off += $w; next }
        if (($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR) && time < $end) {
            IO::Select->new($st->{sock})->can_write(0.5);
            next;
        }
        $st->{dead} = 1;
        return;
    }
}

# Handle every complete line in the input; true when the session ends.
sub _lines {
    my ($self, $st, $rec) = @_;
    while ((my $i = index($st->{in}, "\n")) >= 0) {
        my $l = substr($st->{in}, 0, $i + 1, '');
        $l =~ s/\r?\n\z//;
        if ($st->{data}) {
            if ($l eq '.') {
                my $line = sprintf("%.3f\t%s\t%d\n", time, $st->{mid} // '-', $st->{conn});
                syswrite($rec, $line) unless $self->{forget} && ++$self->{nmsg} % $self->{forget} == 0;
                $st->{data} = 0;
                $st->{mail} = 0;
                _out($st, '250 2.0.0 ok: recorded');
                next;
            }
            if ($st->{headers}) {
                if ($l eq '') { $st->{headers} = 0 }
                elsif (!defined $st->{mid} && $l =~ /^Message-ID:\s*(\S+)/i) { $st->{mid} = $1 }
            }
            next;
        }
        my ($verb) = $l =~ /^\s*(\S+)/;
        $verb = uc($verb // '');
        if ($verb eq 'EHLO') {
            _out($st, "250-$self->{hostname}\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
                . "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
        } elsif ($verb eq 'HELO') {
            _out($st, "250 $self->{hostname}");
        } elsif ($verb eq 'MAIL') {
            $st->{mail} = 1;
            $st->{rcpts} = 0;
            _out($st, '250 2.1.0 ok');
        } elsif ($verb eq 'RCPT') {
            if ($st->{mail}) { $st->{rcpts}++; _out($st, '250 2.1.5 ok') }
            else { _out($st, '503 5.5.1 need MAIL first') }
        } elsif ($verb eq 'DATA') {
            if (!$st->{mail} || !$st->{rcpts}) { _out($st, '554 5.5.1 no valid recipients'); next }
            $st->{data} = 1;
            $st->{headers} = 1;
            $st->{mid} = undef;
            _out($st, '354 end data with <CR><LF>.<CR><LF>');
        } elsif ($verb eq 'RSET') {
            $st->{mail} = 0;
            _out($st, '250 2.0.0 ok');
        } elsif ($verb eq 'NOOP') {
            _out($st, '250 2.0.0 ok');
        } elsif ($verb eq 'QUIT') {
            _out($st, '221 2.0.0 bye');
            return 1;
        } else {
            _out($st, '502 5.5.2 command not recognized');
        }
    }
    return 0;
}

1;
