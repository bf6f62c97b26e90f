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
    make_cert read_jsonl wait_until slurp);

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

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $c = <$fh>;
    return $c // '';
}

1;
