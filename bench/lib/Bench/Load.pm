package Bench::Load;

# Bench::Load - Postfix's load tools (smtp-source, smtp-sink, from the
# unpacked .deb) with every event they report stamped by tslog.
#
#   my $l = Bench::Load->new(roots => "$work/root");
#   my $s = $l->sink(dir => $d, addr => '127.0.0.2', port => $p);
#       smtp-sink -c: one counter line per message received ("." seen)
#   $s->poll;  $s->count;  $s->time_of($n)   # when the sink had n messages
#   $s->stop;
#   my $src = $l->source(dir => $d, to => "127.0.0.1:$port", sessions => 10,
#       messages => 20000, size => 4096 [, rcpt => 'rcpt@sink.bench', log => PATH]);
#       smtp-source -v: its "<<< 250 2.0.0 ..." lines, stamped, in
#       $src->{log}; one message per connection (smtp-source's default)
#   $src->done; $src->status; $src->replies -> ([time, line], ...)
#
# Both listen on / connect to loopback addresses only.

use strict;
use warnings;
use Time::HiRes qw(time sleep);
use Bench::Proc qw(spawn_logged);

sub new {
    my ($class, %o) = @_;
    my $self = bless {%o}, $class;
    $self->{bin} = "$o{roots}/postfix/usr/sbin";
    my @lib = grep { -d } "$o{roots}/postfix/usr/lib/postfix", "$o{roots}/libs/usr/lib/x86_64-linux-gnu",
        "$o{roots}/libs/lib/x86_64-linux-gnu";
    $self->{env} = { LD_LIBRARY_PATH => join(':', @lib) };
    die "bench: $self->{bin}/smtp-source is missing (run bench/run to unpack postfix)\n"
        unless -x "$self->{bin}/smtp-source";
    return $self;
}

sub sink {
    my ($self, %o) = @_;
    my $log = "$o{dir}/sink.log";
    my @user = $> == 0 ? ('-u', 'postfix') : ();
    my ($pid, $tpid) = spawn_logged(
        cmd => [ "$self->{bin}/smtp-sink", '-c', @user, "$o{addr}:$o{port}", 1024 ],
        name => 'smtp-sink', log => $log, stdout => 1, env => $self->{env});
    my $s = bless { pid => $pid, tslog => $tpid, log => $log, off => 0, count => 0,
        at => {}, addr => $o{addr}, port => $o{port}, buf => '' }, 'Bench::Load::Sink';
    my $end = time + 10;
    until (Bench::Proc::port_listening($o{addr}, $o{port})) {
        die "bench: smtp-sink did not start on $o{addr}:$o{port}\n"
            if time > $end || Bench::Proc::exited($pid);
        sleep 0.02;
    }
    return $s;
}

sub source {
    my ($self, %o) = @_;
    my $log = $o{log} // "$o{dir}/source.log";
    my @cmd = ("$self->{bin}/smtp-source", '-v', '-s', $o{sessions}, '-m', $o{messages},
        '-l', $o{size}, '-f', 'bench@src.bench', '-t', $o{rcpt} // 'rcpt@sink.bench', $o{to});
    my ($pid, $tpid) = spawn_logged(cmd => \@cmd, name => 'smtp-source', log => $log,
        match => [ '<<< 250 2.0.0', 'fatal', 'warning', 'error' ], env => $self->{env});
    return bless { pid => $pid, tslog => $tpid, log => $log, cmd => \@cmd }, 'Bench::Load::Source';
}

############################################################################
package Bench::Load::Sink;

use Time::HiRes qw(time sleep);

# Read the counter lines written since the last poll.
sub poll {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return $self->{count};
    seek $fh, $self->{off}, 0;
    local $/;
    my $new = <$fh> // '';
    close $fh;
    $self->{off} += length $new;
    $new = $self->{buf} . $new;
    my $cut = rindex($new, "\n");
    $self->{buf} = substr($new, $cut + 1);
    $new = substr($new, 0, $cut + 1);
    for my $l (split /\n/, $new) {
        next unless $l =~ /^(\d+\.\d+) .*mesg=(\d+)/;
        next if $2 <= $self->{count};
        $self->{count} = $2;
        $self->{at}{$2} = $1;
        $self->{last} = $1;
    }
    return $self->{count};
}

sub count { $_[0]{count} }

# Time the sink's counter first reached n (or undef).
sub time_of {
    my ($self, $n) = @_;
    for my $k (sort { $a <=> $b } keys %{ $self->{at} }) {
        return $self->{at}{$k} if $k >= $n;
    }
    return undef;
}

sub stop {
    my ($self) = @_;
    Bench::Proc::stop_pid($self->{pid}, 5);
    Bench::Proc::stop_pid($self->{tslog}, 5);
    $self->poll;
}

############################################################################
package Bench::Load::Source;

sub done   { my $e = Bench::Proc::exited($_[0]{pid}); return $e ? 1 : 0 }
sub status { my $e = Bench::Proc::exited($_[0]{pid}); return $e ? $e->[1] : undef }
sub end_time { my $e = Bench::Proc::exited($_[0]{pid}); return $e ? $e->[0] : undef }

sub stop {
    my ($self) = @_;
    Bench::Proc::stop_pid($self->{pid}, 5);
    Bench::Proc::stop_pid($self->{tslog}, 5);
}

# ([time, text], ...) of the lines tslog kept.
sub lines {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return ();
    my @out;
    while (my $l = <$fh>) {
        chomp $l;
        push @out, [ $1, $2 ] if $l =~ /^(\d+\.\d+) (.*)$/;
    }
    close $fh;
    return @out;
}

1;
