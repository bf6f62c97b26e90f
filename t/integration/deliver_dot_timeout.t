#!/usr/bin/perl
# deliver_dot_timeout.t - a host that takes the whole message and then
# never answers the final dot may have it already (RFC 1047): the
# recipient is deferred for much longer than retry_delay (six retry
# delays, at least 30 min), so the host does not get it again and again
# (issue 17.5: such a peer received the full message 4 times).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1s', retry_delay_max => '0', smtp_timeout => '2s');
my $peer = $pt->peer(name => 'stall', addr => '127.0.1.30', port => $pt->direct_port,
    delay => { eod => 30 });
$pt->write_file('domains', "dot.dt.test   mx=127.0.1.30\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

my $qid = $pt->send_mail(from => 's@src.test', to => ['a@dot.dt.test']);
ok($pt->wait_log(qr/\Q$qid\E: to=<a\@dot\.dt\.test>, .*status=deferred \(.*no reply to the final dot: the host may have it already, next try in (\d+)s \(RFC 1047\)/, 15),
    'a timeout after the final dot is logged as such');
my ($secs) = $pt->log_text =~ /next try in (\d+)s \(RFC 1047\)/;
cmp_ok($secs // 0, '>=', 1790, 'and the next try is at least 30 min away (retry_delay is 1s)');
($rc, $out) = $pt->smtpctl('--json', 'show', 'message', $qid);
my $j = eval { decode_json($out) } || {};
my ($r) = @{ $j->{recipients} || [] };
cmp_ok(($r->{next_try} // 0) - time, '>', 1700, 'show message says so too');
sleep 5;
is(scalar($peer->connections), 1, 'the host was connected to once in 5 s of 1 s retry delays');

$pt->stop;
done_testing();
