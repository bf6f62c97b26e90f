#!/usr/bin/perl
# qmgr_show_hosts.t - `smtpctl show hosts` counts a destination's queued
# groups, not its messages (issue 18.8): a message with one recipient
# for a domain that takes it and one for a domain that refuses
# connections stays in the queue for the second; the first domain then
# has nothing queued (Queued 0, or not listed), before and after a
# restart of qmgr from the saved state.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use JSON::PP;
use Test::More;
use Postern::Test;
use Postern::Util qw(wait_until);

my $pt = Postern::Test->new(retry_delay => '1h');
my $port = $pt->direct_port;
my $mx = $pt->peer(name => 'mx', addr => '127.0.5.21', port => $port);
# nothing listens on 127.0.5.22: connections to dead.sh.test are refused
$pt->write_file('domains', <<'MAP');
ok.sh.test     mx=127.0.5.21
dead.sh.test   mx=127.0.5.22
MAP
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;
$pt->start;

sub hosts {
    my ($rc, $out) = $pt->smtpctl('show', 'hosts', '--json');
    my $j = eval { decode_json($out) } // {};
    return map { $_->{destination} => $_ } @{ $j->{hosts} || [] };
}

sub queued_text {
    my ($dest) = @_;
    my ($rc, $out) = $pt->smtpctl('show', 'hosts');
    my ($n) = $out =~ /^\Q$dest\E\s+(\d+)\s/m;
    return $n // 0; # not listed: nothing queued
}

my $qid = $pt->send_mail(from => 's@src.test', to => ['a@ok.sh.test', 'b@dead.sh.test']);
ok($qid, 'a message for two domains accepted');
ok($pt->wait_log(qr/\Q$qid\E: to=<a\@ok\.sh\.test>, .*status=sent/, 20), 'ok.sh.test: sent');
ok($pt->wait_log(qr/\Q$qid\E: to=<b\@dead\.sh\.test>, .*status=deferred/, 20), 'dead.sh.test: deferred');
ok(grep({ $_ eq $qid } $pt->spool_files('queue')), 'the message stays queued for dead.sh.test');

my %h = hosts();
is($h{'dead.sh.test'}{queued}, 1, 'show hosts: dead.sh.test has 1 queued');
is($h{'ok.sh.test'} ? $h{'ok.sh.test'}{queued} : 0, 0,
    'show hosts: ok.sh.test has nothing queued (its only recipient was sent)');
is(queued_text('ok.sh.test'), 0, 'text: Queued 0 for ok.sh.test');
is(queued_text('dead.sh.test'), 1, 'text: Queued 1 for dead.sh.test');

# the same from the state saved in BDB, after a restart of qmgr
my $pid = $pt->pid_of('qmgr');
kill 'KILL', $pid;
ok(wait_until(20, sub { my $p = $pt->pid_of('qmgr'); $p && $p != $pid && scalar(hosts()) }),
    'qmgr restarted');
ok(wait_until(10, sub { my %x = hosts(); ($x{'dead.sh.test'}{queued} // 0) == 1 }),
    'after the restart: dead.sh.test has 1 queued');
%h = hosts();
is($h{'ok.sh.test'} ? $h{'ok.sh.test'}{queued} : 0, 0, 'after the restart: ok.sh.test has nothing queued');
is($mx->messages, 1, 'and nothing was sent twice');

done_testing;
