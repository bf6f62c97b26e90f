package Postern::Route;

# Postern::Route - what the routing tests (route_*.t, relay_gateways.t,
# throttle_reuse.t) ask `smtpctl route` before they send mail.
#
#   use Postern::Route qw(route);
#   my $r = route($pt, 'a@x.test', '--size', '20k');   # one ok() check
#   is($r->{first}, 'direct', ...);
#
#   route($pt, @args) runs `smtpctl route @args --json` on the instance $pt
#   (--json is added unless @args has it already), checks with ok() that
#   the output is JSON, naming the check "smtpctl route @args" (the args as
#   given, so a caller that passes '--json' gets it in the name), and
#   returns the decoded answer ({} when it was not JSON, after a diag of
#   the output).
#
# What the peers received is asked of the peers themselves:
# Postern::Peer's transactions_for_domain, messages_for_domain and
# messages_for.

use strict;
use warnings;
use Exporter 'import';
use JSON::PP qw(decode_json);
use Test::More ();

our @EXPORT_OK = qw(route);

sub route {
    my ($pt, @args) = @_;
    my @cmd = ('route', @args);
    push @cmd, '--json' unless grep { $_ eq '--json' } @args;
    my ($rc, $out) = $pt->smtpctl(@cmd);
    my $r = eval { decode_json($out) };
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::ok($r, "smtpctl route @args") or Test::More::diag($out);
    return $r // {};
}

1;
