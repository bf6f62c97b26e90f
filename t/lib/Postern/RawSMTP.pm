package Postern::RawSMTP;
# Raw SMTP from tests: a plain socket and line-level commands, for the
# cases Net::SMTP would hide (pipelining, bare LF, half-closed sessions,
# exact replies). Every read is bounded by a timeout.
#
#   my $s = smtp_connect(port => $p [, local => '127.0.0.2']);
#   my $greeting = smtp_reply($s [, $timeout_s]);    # one whole reply
#   my $r = smtp_cmd($s, 'EHLO client.test');         # send a line, read the reply
use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;

our @EXPORT_OK = qw(smtp_connect smtp_reply smtp_cmd);

sub smtp_connect {
    my (%o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port},
        ($o{local} ? (LocalAddr => $o{local}) : ()), Timeout => 10)
        or die "connect: $!";
    binmode $s;
    $s->autoflush(1);
    return $s;
}

# One reply (all its lines); '' on timeout (default 15 s) or EOF.
sub smtp_reply {
    my ($s, $t) = @_;
    my $r = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($t // 15);
        while (defined(my $l = <$s>)) { $r .= $l; last if $l =~ /^\d{3}(?: |\r?\n)/ }
        alarm 0;
    };
    return $r;
}

sub smtp_cmd { my ($s, $line) = @_; print $s "$line\r\n"; return smtp_reply($s) }

1;
