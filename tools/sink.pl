#!/usr/bin/perl
# tools/sink.pl - a local SMTP sink for trying Postern on one machine:
# it takes every message and prints its envelope and text. Nothing is
# kept, nothing is relayed. Core Perl only.
#
#   tools/sink.pl [--background] [ADDR:]PORT     (default 127.0.0.1:2526)
#
# --background returns once it listens (so the next command can count on
# it) and leaves the sink running; it prints its pid: `kill PID` stops it.
# Route a test domain to it in etc/domains (`sink.test mx=127.0.0.1:2526`),
# then mail to anyone@sink.test arrives here. ^C (or kill) stops it.
use strict;
use warnings;
use IO::Socket::INET;

my $bg = @ARGV && $ARGV[0] eq '--background' ? shift : 0;
my $where = shift // '127.0.0.1:2526';
my ($addr, $port) = $where =~ /^(?:(.*):)?(\d+)$/ or die "usage: $0 [ADDR:]PORT\n";
$addr = '127.0.0.1' unless defined $addr && length $addr;
my $srv = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => $port, Listen => 16,
    ReuseAddr => 1, Proto => 'tcp') or die "sink: cannot listen on $addr:$port: $!\n";
$| = 1;
if ($bg) {
    my $pid = fork() // die "sink: fork: $!\n";
    if ($pid) {
        print "sink: listening on $addr:$port, pid $pid (kill $pid stops it)\n";
        exit 0;
    }
} else {
    print "sink: listening on $addr:$port (^C stops it)\n";
}
$SIG{CHLD} = 'IGNORE';
my $n = 0;
while (my $c = $srv->accept) {
    $n++;
    my $pid = fork();
    next if !defined $pid;
    if ($pid) { close $c; next }
    close $srv;
    session($c, $n);
    exit 0;
}

sub session {
    my ($c, $id) = @_;
    my ($from, @to) = ('');
    local $SIG{ALRM} = sub { exit 0 };    # a silent client is dropped after 5 min
    my $say = sub { print $c "$_[0]\r\n" };
    $say->('220 sink.local ESMTP tools/sink.pl');
    while (1) {
        alarm 300;
        defined(my $l = <$c>) or return;
        $l =~ s/\r?\n\z//;
        if ($l =~ /^EHLO\b/i)      { $say->("250-sink.local\r\n250-8BITMIME\r\n250 SMTPUTF8") }
        elsif ($l =~ /^HELO\b/i)   { $say->('250 sink.local') }
        elsif ($l =~ /^MAIL FROM:\s*<([^>]*)>/i) { ($from, @to) = ($1); $say->('250 2.1.0 ok') }
        elsif ($l =~ /^RCPT TO:\s*<([^>]*)>/i)   { push @to, $1; $say->('250 2.1.5 ok') }
        elsif ($l =~ /^DATA$/i) {
            $say->('354 go ahead');
            my $text = '';
            while (defined(my $d = <$c>)) {
                last if $d =~ /^\.\r?\n\z/;
                $d =~ s/^\.//;
                $text .= $d;
            }
            $text =~ s/\r\n/\n/g;
            print "---- message $id from <$from> to <", join('>, <', @to), ">\n$text---- end\n";
            $say->("250 2.0.0 ok: printed by the sink");
        }
        elsif ($l =~ /^(RSET|NOOP)$/i) { $say->('250 2.0.0 ok') }
        elsif ($l =~ /^QUIT$/i)        { $say->('221 2.0.0 bye'); return }
        else                           { $say->('502 5.5.1 not here') }
    }
}
