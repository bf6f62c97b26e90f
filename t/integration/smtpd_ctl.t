# smtpd_ctl.t - operating smtpd: `smtpctl pause intake` makes new sessions
# get 421 while running ones go on, `resume intake` undoes it; `show smtpd`
# counts what happened; smtpd_timeout closes an idle session with 421;
# `smtpctl reload` puts a new mynetworks in force.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp);

my $pt = Postern::Test->new(smtpd_timeout => '2s', smtpd_data_timeout => '2s',
    mynetworks => '127.0.0.1/32');
$pt->start;
my $port = $pt->port;

# --- pause / resume intake ---
my $old = smtp_connect(port => $port);
like(smtp_reply($old), qr/^220 /, 'a session before the pause');
smtp_cmd($old, 'EHLO old.test');
my ($rc, $out) = $pt->smtpctl('pause', 'intake');
is($rc, 0, 'smtpctl pause intake');
like($out, qr/intake paused/, 'says paused');
my $new = smtp_connect(port => $port);
like(smtp_reply($new), qr/^421 postern\.test 4\.3\.2 /, 'new session while paused: 421');
close $new;
($rc, $out) = $pt->smtpctl('--json', 'show', 'smtpd');
like($out, qr/"intake":"paused"/, 'show smtpd: paused');
like($out, qr/"sessions_refused":1\b/, 'show smtpd: one refused');
smtp_cmd($old, 'MAIL FROM:<a@client.test>');
smtp_cmd($old, 'RCPT TO:<b@remote.test>');
smtp_cmd($old, 'DATA');
print $old "Subject: during pause\r\n\r\nx\r\n.\r\n";
like(smtp_reply($old), qr/^250 2\.0\.0 Ok: queued/, 'the running session still delivers');
smtp_cmd($old, 'QUIT');
($rc, $out) = $pt->smtpctl('resume', 'intake');
is($rc, 0, 'smtpctl resume intake');
my ($qid) = $pt->send_mail(from => 'a@client.test', to => ['b@remote.test']);
ok($qid, 'accepted again after resume');
($rc, $out) = $pt->smtpctl('show', 'smtpd');
like($out, qr/^messages\s+2$/m, 'show smtpd: 2 messages');
like($out, qr/^intake\s+running$/m, 'show smtpd: running');

# --- idle timeout ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO idle.test');
    my $r = smtp_reply($s, 10);
    like($r, qr/^421 4\.4\.2 postern\.test Error: timeout exceeded/, 'idle session: 421 after smtpd_timeout');
    ok($pt->wait_log(qr/timeout after command from \[127\.0\.0\.1\]/, 5), 'timeout logged');
}

# --- DATA timeout: 421, and nothing left behind ---
{
    my $s = smtp_connect(port => $port);
    smtp_reply($s);
    smtp_cmd($s, 'EHLO slow.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    smtp_cmd($s, 'RCPT TO:<b@remote.test>');
    smtp_cmd($s, 'DATA');
    print $s "Subject: slow\r\n\r\nhalf a messa";
    my $r = smtp_reply($s, 10);
    like($r, qr/^421 4\.4\.2 postern\.test Error: timeout exceeded/, 'stalled DATA: 421 after smtpd_data_timeout');
    ok($pt->wait_log(qr/timeout after DATA from \[127\.0\.0\.1\]/, 5), 'DATA timeout logged');
    opendir(my $d, $pt->spool . '/incoming');
    is(scalar(grep { !/^\./ } readdir $d), 0, 'nothing left in incoming/');
}

# --- reload puts a new mynetworks in force ---
{
    my $s = smtp_connect(port => $port, local => '127.0.0.5');
    smtp_reply($s);
    smtp_cmd($s, 'EHLO five.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    like(smtp_cmd($s, 'RCPT TO:<b@remote.test>'), qr/^554 5\.7\.1 /, '127.0.0.5 not in mynetworks');
    close $s;
    $pt->config(mynetworks => '127.0.0.1/32 127.0.0.5/32');
    ($rc, $out) = $pt->smtpctl('reload');
    is($rc, 0, 'smtpctl reload') or diag $out;
    ok($pt->wait_log(qr/smtpd\[\d+\]: info: configuration reloaded/, 5), 'smtpd reloaded');
    $s = smtp_connect(port => $port, local => '127.0.0.5');
    smtp_reply($s);
    smtp_cmd($s, 'EHLO five.test');
    smtp_cmd($s, 'MAIL FROM:<a@client.test>');
    like(smtp_cmd($s, 'RCPT TO:<b@remote.test>'), qr/^250 /, 'after reload: 127.0.0.5 may relay');
    close $s;
}

$pt->stop;
done_testing();
