package Postern::DSN;

# Postern::DSN - read the notices (RFC 3464 reports) a test peer received,
# with t/lib/dsn_parse.py (Python 3's email package; see its header for
# the JSON it prints).
#
#   my $why = Postern::DSN::unavailable();  # undef, or why the tests must skip
#   my $d = parse_file($file);              # decoded JSON (cached per file), undef on error
#   my @n = notices_at($peer);              # each accepted message at $peer, parsed,
#                                           # with its transaction as {tx}

use strict;
use warnings;
use Exporter 'import';
use FindBin;
use JSON::PP ();
use POSIX ();
use Test::More ();

our @EXPORT_OK = qw(parse_file notices_at);

my $PARSER = "$FindBin::Bin/../lib/dsn_parse.py";
my $PY;

sub unavailable {
    for my $d (split /:/, $ENV{PATH} // '') { if (-x "$d/python3") { $PY = "$d/python3"; last } }
    return 'python3 is not installed (needed to parse the notices with its email package)'
        unless $PY;
    my $v = `$PY -c 'import email.policy, json; print("ok")' 2>/dev/null` // '';
    return "python3 cannot import email.policy and json: $v" unless $v =~ /^ok/;
    return undef;
}

my %parsed;
sub parse_file {
    my ($file) = @_;
    return $parsed{$file} if $parsed{$file};
    unavailable() unless $PY;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec $PY, $PARSER, $file or POSIX::_exit(127);
    }
    local $/;
    my $json = <$fh>;
    close $fh;
    my $d = eval { JSON::PP->new->decode($json) };
    if (!$d) { Test::More::diag("dsn_parse.py $file: $json"); return undef }
    return $parsed{$file} = $d;
}

sub notices_at {
    my ($peer) = @_;
    my @n;
    for my $t ($peer->messages) {
        next unless $t->{file};
        my $d = parse_file($t->{file}) or next;
        push @n, { %$d, tx => $t };
    }
    return @n;
}

1;
