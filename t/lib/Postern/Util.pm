package Postern::Util;

# Postern::Util - small helpers shared by the integration test harness
# (Postern::Test) and the scriptable SMTP peer (Postern::Peer).
#
#   free_port($addr)      a TCP port that can be bound on $addr right now
#                         (picked outside the kernel's ephemeral range, so it
#                         does not collide with outgoing connections)
#   pid_alive($pid)       true if the process exists and is not a zombie
#   proc_uid($pid)        real uid from /proc/PID/status (undef if gone)
#   proc_root($pid)       readlink /proc/PID/root (undef if unreadable)
#   proc_cmdline($pid)    argv as a list (empty if gone)
#   make_cert($dir, $cn)  self-signed certificate + key made with openssl;
#                         returns ($cert_path, $key_path)
#   read_jsonl($path)     list of hashrefs, one per JSON line (bad lines skipped)
#   wait_until($timeout, $sub, $step)  polls $sub until true or timeout;
#                         returns $sub's last value
#   slurp($path)          file contents or ''
#   run_prog(prog => $path, args => [...], input => $text, env => {...},
#            uid => $uid, gid => $gid, groups => [$gid...], timeout => $s)
#                         runs a program with input on its stdin, as another
#                         user when uid is given (root only; groups are its
#                         supplementary groups, default none but gid);
#                         returns ($exit, $stdout, $stderr), exit -1 when it
#                         was killed after timeout (default 60) seconds
#
# Nothing here talks to anything but loopback and local files.

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes ();
use POSIX ();

our @EXPORT_OK = qw(free_port pid_alive proc_uid proc_root proc_cmdline
    make_cert read_jsonl wait_until slurp run_prog);

my %handed_out;

sub free_port {
    my ($addr) = @_;
    $addr //= '127.0.0.1';
    for (1 .. 200) {
        my $port = 20000 + int(rand(12000));
        next if $handed_out{$port};
        my $s = IO::Socket::INET->new(
            LocalAddr => $addr, LocalPort => $port, Proto => 'tcp',
            Listen => 1, ReuseAddr => 1) or next;
        close $s;
        $handed_out{$port} = 1;
        return $port;
    }
    die "free_port: no free port found on $addr\n";
}

sub pid_alive {
    my ($pid) = @_;
    return 0 unless defined $pid && $pid =~ /^\d+$/ && $pid > 1;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    close $fh;
    return 0 unless defined $stat;
    # state is the first field after the parenthesised command name
    my ($state) = $stat =~ /\)\s+(\S)/;
    return 0 if !defined $state || $state eq 'Z' || $state eq 'X';
    return 1;
}

sub proc_uid {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (my $l = <$fh>) {
        return $1 if $l =~ /^Uid:\s+(\d+)/;
    }
    return undef;
}

sub proc_root {
    my ($pid) = @_;
    return readlink("/proc/$pid/root");
}

sub proc_cmdline {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/cmdline" or return ();
    local $/;
    my $c = <$fh> // '';
    return split /\0/, $c;
}

sub make_cert {
    my ($dir, $cn) = @_;
    $cn //= 'localhost';
    (my $base = $cn) =~ s/[^A-Za-z0-9.-]/_/g;
    my $cert = "$dir/$base.crt";
    my $key  = "$dir/$base.key";
    return ($cert, $key) if -s $cert && -s $key;
    my @cmd = ('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
        '-keyout', $key, '-out', $cert, '-days', '2', '-subj', "/CN=$cn",
        '-addext', "subjectAltName=DNS:$cn");
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    die "make_cert: openssl failed for $cn\n" if $? != 0 || !-s $cert;
    chmod 0644, $cert, $key;
    return ($cert, $key);
}

sub read_jsonl {
    my ($path) = @_;
    open my $fh, '<', $path or return ();
    my $json = JSON::PP->new;
    my @out;
    while (my $l = <$fh>) {
        next unless $l =~ /\S/ && $l =~ /\n\z/;    # skip a half-written line
        my $v = eval { $json->decode($l) };
        push @out, $v if ref $v;
    }
    return @out;
}

sub wait_until {
    my ($timeout, $sub, $step) = @_;
    $step //= 0.05;
    my $end = Time::HiRes::time() + $timeout;
    my $v;
    while (1) {
        $v = $sub->();
        return $v if $v;
        last if Time::HiRes::time() >= $end;
        Time::HiRes::sleep($step);
    }
    return $v;
}

my $runs = 0;

sub run_prog {
    my (%o) = @_;
    my $n = ++$runs;
    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    my ($out, $err) = ("$base/run_prog.$$.$n.out", "$base/run_prog.$$.$n.err");
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $w;
        open STDIN, '<&', $r or POSIX::_exit(126);
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        if (defined $o{uid}) {
            my $gid = $o{gid} // $o{uid};
            $) = join(' ', $gid, $gid, @{ $o{groups} || [] });
            $( = $gid;
            $< = $> = $o{uid};
            POSIX::_exit(125) if $> != $o{uid} || $< != $o{uid};
        }
        exec { $o{prog} } $o{prog}, @{ $o{args} || [] } or POSIX::_exit(127);
    }
    close $r;
    {
        local $SIG{PIPE} = 'IGNORE';
        print {$w} $o{input} // '';
        close $w;
    }
    my $st;
    my $done = wait_until($o{timeout} // 60,
        sub { waitpid($pid, POSIX::WNOHANG()) == $pid ? ($st = $?, 1) : 0 }, 0.02);
    if (!$done) { kill 'KILL', $pid; waitpid($pid, 0); $st = -1 }
    my ($o1, $e1) = (slurp($out), slurp($err));
    unlink $out, $err;
    my $code = $st == -1 ? -1 : ($st & 127) ? 128 + ($st & 127) : $st >> 8;
    return ($code, $o1, $e1);
}

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $c = <$fh>;
    return $c // '';
}

1;
