package Bench::Proc;

# Bench::Proc - the processes a benchmark starts, and what they cost.
#
#   Bench::Proc::init($workdir)   once: take $workdir/bench.lock (waits while
#                                 another benchmark runs; BENCH_NO_LOCK=1
#                                 skips that), become a child
#                                 subreaper, install the cleanup handlers
#   my $pid = spawn(cmd => [...], name => 'sink', stdout => PATH|FH|undef,
#                   stderr => PATH|FH|'stdout'|undef, env => {...});
#   my ($pid, $tpid) = spawn_logged(cmd => [...], name => ..., log => PATH,
#                   match => [substrings], stdout => 1);
#       the program's stderr (and stdout with stdout => 1) goes through
#       bench/work/bin/tslog into PATH, each line stamped with the time
#   reap(); exited($pid) -> [time, status] or undef; wait_exit($pid, $secs)
#   stop_pid($pid, $secs)  SIGTERM, wait, SIGKILL (only if still ours)
#   my $s = snapshot();     every process: { pid => {comm ppid state cpu
#                           cumul start rss threads} }
#   tree($root, $s)         $root and its descendants in $s
#   cpu_of(\@pids, $s)      CPU seconds used so far by those processes and
#                           by every child they have reaped
#   mem_of(\@pids)          (rss_bytes, pss_bytes) summed over the pids
#   Bench::Proc::Tracker->new($root_pid): follows one program's process
#       tree; ->sample (memory peak), ->cpu, ->per_name, ->kill_all
#   port_listening($addr, $port)   true once something listens there
#   machine_cpu()  (idle, total) CPU jiffies of the machine so far
#
# Every PID is remembered with its start time and only signalled while
# /proc shows the same process; cleanup kills, by PID, everything spawned
# here and every process seen in a tracked tree. Nothing here opens a
# network connection.

use strict;
use warnings;
use Exporter 'import';
use Fcntl ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(spawn spawn_logged reap exited wait_exit stop_pid snapshot tree
    cpu_of mem_of port_listening);

my $HZ   = POSIX::sysconf(POSIX::_SC_CLK_TCK) || 100;
my $PAGE = POSIX::sysconf(POSIX::_SC_PAGESIZE) || 4096;
my $OWNER = $$;
my $TSLOG;
my %SPAWNED;      # pid => { name, start }
my %EXITED;       # pid => [time, status]
my @TRACKERS;     # live trackers, killed at cleanup

my $LOCK;

sub init {
    my ($work) = @_;
    $TSLOG = "$work/bin/tslog";
    die "bench: $TSLOG is not built (run bench/run)\n" unless -x $TSLOG;
    # One benchmark at a time: two would measure each other.
    open $LOCK, '>>', "$work/bench.lock" or die "bench: $work/bench.lock: $!\n";
    if (!$ENV{BENCH_NO_LOCK} && !flock($LOCK, Fcntl::LOCK_EX() | Fcntl::LOCK_NB())) {
        print STDERR "bench: another benchmark holds $work/bench.lock; waiting for it (at most 4 h)\n";
        my $end = time + 4 * 3600;
        until (flock($LOCK, Fcntl::LOCK_EX() | Fcntl::LOCK_NB())) {
            die "bench: gave up waiting for $work/bench.lock\n" if time > $end;
            sleep 5;
        }
    }
    # Orphans of the programs we start come back to us, so we can reap and
    # kill them by PID (PR_SET_CHILD_SUBREAPER).
    eval {
        require 'sys/syscall.ph';
        syscall(&SYS_prctl, 36, 1, 0, 0, 0);
    };
    for my $sig (qw(INT TERM HUP)) {
        $SIG{$sig} = sub {
            print STDERR "\nbench: caught SIG$sig, stopping everything it started\n";
            cleanup();
            POSIX::_exit(130);
        };
    }
    $SIG{PIPE} = 'IGNORE';
}

sub _stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return undef;
    my $s = <$fh>;
    close $fh;
    return undef unless defined $s;
    my ($comm, $rest) = $s =~ /^\d+ \((.*)\) (.*)$/s or return undef;
    my @f = split ' ', $rest;    # $f[0] is field 3 (state)
    return {
        pid     => $pid,
        comm    => $comm,
        state   => $f[0],
        ppid    => $f[1],
        utime   => $f[11],
        stime   => $f[12],
        cumul   => ($f[13] + $f[14]) / $HZ,    # reaped children
        threads => $f[17],
        start   => $f[19],
        rss     => $f[21] * $PAGE,
    };
}

# Own CPU time of a process in seconds: schedstat (nanoseconds) when the
# process has one thread, else utime + stime (clock ticks).
sub _own_cpu {
    my ($st) = @_;
    if ($st->{threads} == 1 && open my $fh, '<', "/proc/$st->{pid}/schedstat") {
        my $l = <$fh>;
        close $fh;
        return $1 / 1e9 if defined $l && $l =~ /^(\d+)/;
    }
    return ($st->{utime} + $st->{stime}) / $HZ;
}

sub snapshot {
    my %p;
    opendir my $d, '/proc' or die "bench: /proc: $!\n";
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my $st = _stat($pid) or next;
        $p{$pid} = $st;
    }
    closedir $d;
    return \%p;
}

sub tree {
    my ($root, $snap) = @_;
    return () unless $snap->{$root};
    my %kids;
    push @{ $kids{ $_->{ppid} } }, $_->{pid} for values %$snap;
    my @out;
    my @todo = ($root);
    while (@todo) {
        my $p = shift @todo;
        push @out, $p;
        push @todo, @{ $kids{$p} || [] };
    }
    return @out;
}

sub cpu_of {
    my ($pids, $snap) = @_;
    my $t = 0;
    for my $p (@$pids) {
        my $st = $snap->{$p} or next;
        $t += _own_cpu($st) + $st->{cumul};
    }
    return $t;
}

sub mem_of {
    my ($pids) = @_;
    my ($rss, $pss) = (0, 0);
    for my $p (@$pids) {
        open my $fh, '<', "/proc/$p/smaps_rollup" or next;
        while (my $l = <$fh>) {
            if    ($l =~ /^Rss:\s+(\d+) kB/) { $rss += $1 * 1024 }
            elsif ($l =~ /^Pss:\s+(\d+) kB/) { $pss += $1 * 1024 }
        }
        close $fh;
    }
    return ($rss, $pss);
}

sub _open_target {
    my ($t, $mode) = @_;
    return $t if ref $t;
    open my $fh, $mode, $t // '/dev/null' or die "bench: $t: $!\n";
    return $fh;
}

sub spawn {
    my (%o) = @_;
    my $out = _open_target($o{stdout}, '>>');
    my $err = defined $o{stderr} && $o{stderr} eq 'stdout' ? $out : _open_target($o{stderr}, '>>');
    my $in = $o{stdin} ? $o{stdin} : undef;
    my $pid = fork() // die "bench: fork: $!\n";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE CHLD ALRM);
        # own process group: a ^C reaches only the harness, which then
        # stops everything by PID
        setpgrp(0, 0);
        if ($in) { open STDIN, '<&', $in or POSIX::_exit(126) }
        else     { open STDIN, '<', '/dev/null' }
        open STDOUT, '>&', $out or POSIX::_exit(126);
        open STDERR, '>&', $err or POSIX::_exit(126);
        chdir $o{dir} if $o{dir};
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        exec { $o{cmd}[0] } @{ $o{cmd} } or POSIX::_exit(127);
    }
    my $st = _stat($pid);
    $SPAWNED{$pid} = { name => $o{name} // $o{cmd}[0], start => $st ? $st->{start} : undef };
    return $pid;
}

sub spawn_logged {
    my (%o) = @_;
    pipe(my $r, my $w) or die "bench: pipe: $!\n";
    my $tpid = spawn(
        cmd    => [ $TSLOG, (map { ('-m', $_) } @{ $o{match} || [] }), $o{log} ],
        name   => "tslog($o{name})",
        stdin  => $r,
        stdout => undef,
        stderr => $o{tslog_err} // undef,
    );
    my $pid = spawn(%o, stdout => $o{stdout} ? $w : undef, stderr => $w);
    close $r;
    close $w;
    return ($pid, $tpid);
}

sub reap {
    while ((my $p = waitpid(-1, WNOHANG)) > 0) {
        $EXITED{$p} = [ time, $? ];
    }
}

sub exited { reap(); return $EXITED{ $_[0] } }

sub wait_exit {
    my ($pid, $secs) = @_;
    my $end = time + ($secs // 10);
    while (time < $end) {
        return $EXITED{$pid} if exited($pid);
        sleep 0.02;
    }
    return undef;
}

# Still the process we started (same start time), and not a zombie?
sub _ours {
    my ($pid, $start) = @_;
    my $st = _stat($pid) or return 0;
    return 0 if $st->{state} eq 'Z' || $st->{state} eq 'X';
    return !defined $start || $st->{start} == $start;
}

sub stop_pid {
    my ($pid, $secs) = @_;
    return 1 if exited($pid);
    my $start = $SPAWNED{$pid} ? $SPAWNED{$pid}{start} : undef;
    kill 'TERM', $pid if _ours($pid, $start);
    return 1 if wait_exit($pid, $secs // 5);
    kill 'KILL', $pid if _ours($pid, $start);
    return wait_exit($pid, 5) ? 1 : 0;
}

# (idle, total) jiffies of all CPUs since boot, from /proc/stat; idle
# counts iowait too.
sub machine_cpu {
    open my $fh, '<', '/proc/stat' or return (0, 0);
    my $l = <$fh>;
    close $fh;
    my @f = split ' ', $l;
    shift @f;
    my $tot = 0;
    $tot += $_ for @f[0 .. 7];
    return ($f[3] + $f[4], $tot);
}

sub port_listening {
    my ($addr, $port) = @_;
    my $want = sprintf('%02X%02X%02X%02X:%04X', reverse(split /\./, $addr), $port);
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (my $l = <$fh>) {
        my @f = split ' ', $l;
        return 1 if @f > 3 && $f[1] eq $want && $f[3] eq '0A';
    }
    return 0;
}

sub cleanup {
    return unless $$ == $OWNER;
    $_->kill_all for grep { defined } @TRACKERS;
    for my $pid (keys %SPAWNED) {
        next if $EXITED{$pid};
        kill 'TERM', $pid if _ours($pid, $SPAWNED{$pid}{start});
    }
    my $end = time + 5;
    while (time < $end) {
        reap();
        last unless grep { !$EXITED{$_} && _ours($_, $SPAWNED{$_}{start}) } keys %SPAWNED;
        sleep 0.05;
    }
    for my $pid (keys %SPAWNED) {
        kill 'KILL', $pid if !$EXITED{$pid} && _ours($pid, $SPAWNED{$pid}{start});
    }
    reap();
}

END { local $?; cleanup() }

############################################################################
package Bench::Proc::Tracker;

# One program's process tree: its root PID (what spawn returned), every
# process seen below it, the peak memory of the tree and its CPU use.

use Time::HiRes qw(time sleep);

sub new {
    my ($class, $root) = @_;
    my $st = Bench::Proc::_stat($root);
    my $self = bless { root => $root, root_start => $st ? $st->{start} : -1, seen => {},
        rss => 0, pss => 0 }, $class;
    push @TRACKERS, $self;
    Scalar::Util::weaken($TRACKERS[-1]) if eval { require Scalar::Util; 1 };
    return $self;
}

# Live PIDs of the tree: descendants of root plus any process seen in it
# earlier that is still the same process (an orphan handed to us).
sub pids {
    my ($self, $snap) = @_;
    $snap //= Bench::Proc::snapshot();
    my $r = $snap->{ $self->{root} };
    my %p;
    %p = map { $_ => 1 } Bench::Proc::tree($self->{root}, $snap)
        if $r && $r->{start} == $self->{root_start};
    for my $pid (keys %{ $self->{seen} }) {
        my $st = $snap->{$pid};
        $p{$pid} = 1 if $st && $st->{start} == $self->{seen}{$pid} && $st->{state} ne 'Z';
    }
    for my $pid (keys %p) {
        $self->{seen}{$pid} //= $snap->{$pid}{start} if $snap->{$pid};
    }
    return [ keys %p ];
}

# Record the memory of the tree now; keep the peak.
sub sample {
    my ($self, $snap) = @_;
    my $pids = $self->pids($snap);
    my ($rss, $pss) = Bench::Proc::mem_of($pids);
    $self->{rss} = $rss if $rss > $self->{rss};
    $self->{pss} = $pss if $pss > $self->{pss};
    return $pids;
}

sub reset_peak { my ($self) = @_; $self->{rss} = $self->{pss} = 0 }
sub peak_rss   { $_[0]{rss} }
sub peak_pss   { $_[0]{pss} }

# CPU seconds used by the tree so far (exited processes included through
# their parents' counts of reaped children).
sub cpu {
    my ($self, $snap) = @_;
    $snap //= Bench::Proc::snapshot();
    return Bench::Proc::cpu_of($self->pids($snap), $snap);
}

# CPU seconds per process name (comm) for the live processes, with the
# time of their reaped children added to the parent's name.
sub per_name {
    my ($self, $snap) = @_;
    $snap //= Bench::Proc::snapshot();
    my %n;
    for my $p (@{ $self->pids($snap) }) {
        my $st = $snap->{$p} or next;
        $n{ $st->{comm} } += Bench::Proc::_own_cpu($st) + $st->{cumul};
    }
    return \%n;
}

sub find {
    my ($self, $re) = @_;
    my $snap = Bench::Proc::snapshot();
    for my $p (@{ $self->pids($snap) }) {
        open my $fh, '<', "/proc/$p/cmdline" or next;
        local $/;
        my $c = <$fh> // '';
        close $fh;
        $c =~ s/\0/ /g;
        return $p if $c =~ $re;
    }
    return undef;
}

sub alive {
    my ($self) = @_;
    return scalar @{ $self->pids };
}

# SIGKILL every process of the tree still alive (by PID, after checking it
# is the same process), then reap.
sub kill_all {
    my ($self) = @_;
    for (1 .. 3) {
        my $snap = Bench::Proc::snapshot();
        my $pids = $self->pids($snap);
        last unless @$pids;
        kill 'KILL', @$pids;
        my $end = time + 3;
        while (time < $end) {
            Bench::Proc::reap();
            last unless @{ $self->pids };
            sleep 0.05;
        }
    }
}

1;
