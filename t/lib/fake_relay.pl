#!/usr/bin/perl
# fake_relay.pl - a stand-in for bin/relay that behaves like a compromised
# relay, for privsep_channels.t. master starts it as it starts relay
# (POSTERN_FDS names the inherited channels); it answers master's status
# probes so master counts it as up, and on qmgr's channel it does what
# the Nth start's line of $FAKE_RELAY_DIR/modes says:
#   forge      after $FAKE_RELAY_DIR/go appears, send qmgr a successful
#              IMSG_DELIVERY_RESULT for every request id 1..300 (ids that
#              belong to deliver's jobs among them)
#   queue_new  send IMSG_QUEUE_NEW, which only smtpd may send
#   accuse     tell master (IMSG_PEER_BROKEN) that qmgr broke the protocol
#   idle       nothing (also when there is no line for this start)
# Each start appends "PID MODE" to $FAKE_RELAY_DIR/starts. Every wait is
# bounded; it exits when master's channel closes.
use strict;
use warnings;
use IO::Select;
use IO::Handle;

my $dir = $ENV{FAKE_RELAY_DIR} or die "FAKE_RELAY_DIR not set\n";
my %fd;
for (split ' ', $ENV{POSTERN_FDS} // '') {
    my ($name, $n) = split /:/;
    $fd{$name} //= $n;
}
open(my $master, '+<&=', $fd{master}) or die "master fd: $!";
open(my $qmgr, '+<&=', $fd{qmgr}) or die "qmgr fd: $!";
$_->autoflush(1) for $master, $qmgr;

my $nth = 0;
if (open(my $s, '<', "$dir/starts")) { $nth++ while <$s>; }
my @modes;
if (open(my $m, '<', "$dir/modes")) { chomp(@modes = <$m>); }
my $mode = $modes[$nth] // 'idle';
open(my $log, '>>', "$dir/starts") or die;
print $log "$$ $mode\n";
close $log;

sub str { my $s = shift; pack('L', length $s) . $s . "\0" }
sub frame {
    my ($fh, $type, $id, $body) = @_;
    syswrite($fh, pack('LSSL', length $body, $type, 0, $id) . $body);
}
# A result that says every recipient (index 0..3) was sent.
sub forged_result {
    my $id = shift;
    my $b = pack('L', $id) . str('forged.example[192.0.2.1]:25') . str('') . pack('l', 0)
        . pack('C', 0) . pack('L', 1) . pack('C', 0) . pack('Q', 1000) . pack('L', 4);
    $b .= pack('L', $_) . pack('CCC', 0, 0, 0) . pack('S', 250) . str('2.0.0')
        . str('forged by fake_relay') for 0 .. 3;
    return $b . pack('CC', 0, 0);
}

my $started = int(time * 1e6);
my $sel = IO::Select->new($master);
my $buf = '';
my $deadline = time + 120;
my $done_mode = $mode eq 'idle';
if ($mode eq 'queue_new') {
    frame($qmgr, 100, 0, str('AAAAAAAAAAAA'));
    $done_mode = 1;
} elsif ($mode eq 'accuse') {
    frame($master, 11, 0, str('qmgr') . str('made up'));
    $done_mode = 1;
}
while (time < $deadline) {
    for my $fh ($sel->can_read(0.1)) {
        my $n = sysread($fh, $buf, 65536, length $buf);
        exit 0 unless $n;
        while (length $buf >= 12) {
            my ($len, $type, $flags, $id) = unpack('LSSL', $buf);
            last if length $buf < 12 + $len;
            substr($buf, 0, 12 + $len) = '';
            if ($type == 1) { # IMSG_STATUS_REQ
                frame($master, 2, $id, pack('L', $$) . pack('q', $started) . str('0.1.0')
                    . str('running'));
            } elsif ($type == 4) { # IMSG_RELOAD: say it worked
                frame($master, 5, $id, pack('L', 1) . str(''));
            } elsif ($type == 9) { # IMSG_SHUTDOWN
                exit 0;
            }
        }
    }
    if (!$done_mode && $mode eq 'forge' && -e "$dir/go") {
        frame($qmgr, 201, $_, forged_result($_)) for 1 .. 300;
        $done_mode = 1;
    }
}
exit 0;
