# smtpd_auth.t - relay control and AUTH: with mynetworks = 127.0.0.1/32 a
# client bound to 127.0.0.2 may not relay (554 5.7.1, logged with the
# reason) unless it authenticates; AUTH PLAIN and LOGIN against an
# etc/users map of crypt hashes (yescrypt and sha512-crypt), offered only
# after STARTTLS; bad passwords get 535 after smtpd_auth_fail_delay; the
# submission port refuses MAIL without AUTH. The password check runs in
# smtpd's AUTH thread: several sessions checked at once all get their
# verdict, a command pipelined behind AUTH is answered after it, and a
# client gone before its verdict leaves smtpd serving. swaks, Net::SMTP
# and raw sockets are the clients.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use IO::Socket::INET;
use IO::Socket::SSL;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);
use Postern::Test;
use Postern::RawSMTP qw(smtp_connect smtp_reply smtp_cmd);
use Postern::Util qw(slurp make_cert);

# etc/users compiled to etc/users.db: by `smtpctl makemap` when it can,
# else directly with DB_File (the same Berkeley DB hash format).
sub make_users {
    my ($pt, %users) = @_;
    my $text = "# test users\n" . join('', map { "$_ $users{$_}\n" } sort keys %users);
    my $path = $pt->write_file('users', $text, 0600);
    my $rc = system($pt->root . "/bin/smtpctl -c " . $pt->etc . " makemap $path >/dev/null 2>&1");
    return if $rc == 0 && -s "$path.db";
    require DB_File;
    unlink "$path.db";
    my %h;
    tie %h, 'DB_File', "$path.db", Fcntl::O_RDWR() | Fcntl::O_CREAT(), 0600, $DB_File::DB_HASH
        or die "DB_File: $!";
    $h{ lc $_ } = $users{$_} for keys %users;
    untie %h;
}

my $pt = Postern::Test->new(mynetworks => '127.0.0.1/32', smtpd_auth_fail_delay => '1s');
my ($cert, $key) = make_cert($pt->dir, 'postern.test');
my $sub_port = $pt->free_port('127.0.0.1');
$pt->config(tls_cert_file => $cert, tls_key_file => $key,
    submission_listen => "127.0.0.1:$sub_port");
my $alice = crypt('alice-secret', '$y$j9T$F5Jx5fExrKuPp53xLKQ..1$');
my $bob   = crypt('bob-secret', '$6$Qw3rTy8uIoP$');
like($alice, qr/^\$y\$/, 'yescrypt hash made');
like($bob, qr/^\$6\$/, 'sha512-crypt hash made');
make_users($pt, alice => $alice, bob => $bob, weak => crypt('weak', 'ab'));
$pt->start;
my $port = $pt->port;
ok($pt->wait_log(qr/smtpd\[\d+\]: info: ready: .*AUTH on/, 5), 'smtpd loaded the users map');

sub tls_session {
    my (%o) = @_;
    my $s = smtp_connect(port => $o{port} // $port, local => $o{local});
    smtp_reply($s);
    smtp_cmd($s, 'EHLO auth.test');
    smtp_cmd($s, 'STARTTLS');
    IO::Socket::SSL->start_SSL($s, SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => $cert,
        SSL_verifycn_name => 'postern.test', SSL_verifycn_scheme => 'smtp', Timeout => 10)
        or die "TLS: $SSL_ERROR";
    return ($s, smtp_cmd($s, 'EHLO auth.test'));
}

# --- relay control ---
{
    my $s = smtp_connect(port => $port, local => '127.0.0.2');
    smtp_reply($s);
    my $ehlo = smtp_cmd($s, 'EHLO outsider.test');
    unlike($ehlo, qr/AUTH/, 'no AUTH offered before TLS');
    like(smtp_cmd($s, 'AUTH PLAIN ' . encode_base64("\0alice\0alice-secret", '')),
        qr/^538 5\.7\.11 /, 'AUTH before TLS: 538');
    smtp_cmd($s, 'MAIL FROM:<x@outsider.test>');
    like(smtp_cmd($s, 'RCPT TO:<victim@remote.test>'),
        qr/^554 5\.7\.1 <victim\@remote\.test>: Relay access denied/, '127.0.0.2: relay denied');
    ok($pt->wait_log(qr/reject: RCPT from \[127\.0\.0\.2\]:\d+: relay access denied: client not in mynetworks and not authenticated; from=<x\@outsider\.test> to=<victim\@remote\.test>/, 5),
        'denial logged with the reason');
    like(smtp_cmd($s, 'DATA'), qr/^554 5\.5\.1 /, 'DATA without valid recipients');
    smtp_cmd($s, 'QUIT');

    # swaks as the outside client: refused too
    SKIP: {
        skip 'swaks not installed', 1 unless -x '/usr/bin/swaks';
        my $out = `timeout 30 swaks --server 127.0.0.1:$port --local-interface 127.0.0.2 --from x\@outsider.test --to victim\@remote.test --helo swaks.test 2>&1`;
        like($out, qr/<\*\* 554 5\.7\.1 /, 'swaks from 127.0.0.2: 554 5.7.1');
    }
    my ($qid) = $pt->send_mail(from => 'in@client.test', to => ['out@remote.test']);
    ok($qid, '127.0.0.1 (in mynetworks) may relay');
}

# --- AUTH PLAIN good, then relay from outside ---
{
    my ($s, $ehlo) = tls_session(local => '127.0.0.2');
    like($ehlo, qr/^250[- ]AUTH PLAIN LOGIN\r$/m, 'AUTH PLAIN LOGIN offered after TLS');
    like(smtp_cmd($s, 'AUTH PLAIN ' . encode_base64("\0alice\0alice-secret", '')),
        qr/^235 2\.7\.0 /, 'AUTH PLAIN (yescrypt): 235');
    like(smtp_cmd($s, 'MAIL FROM:<alice@client.test>'), qr/^250 /, 'MAIL');
    like(smtp_cmd($s, 'RCPT TO:<friend@remote.test>'), qr/^250 2\.1\.5 /, 'authenticated: relay allowed');
    smtp_cmd($s, 'DATA');
    print $s "Subject: authed\r\n\r\nhi\r\n.\r\n";
    my ($id) = smtp_reply($s) =~ /queued as (\S+)/;
    ok($id, 'queued');
    my $f = slurp($pt->spool . "/queue/$id");
    like($f, qr/^auth alice$/m, 'authenticated user in the envelope');
    like($f, qr/^proto ESMTPSA$/m, 'proto ESMTPSA');
    like($f, qr/with ESMTPSA id/, 'Received says ESMTPSA');
    unlike($f, qr/alice-secret/, 'no secret in the queue file');
    smtp_cmd($s, 'QUIT');
}

# --- AUTH PLAIN bad: 535 after the delay ---
{
    my ($s) = tls_session(local => '127.0.0.2');
    my $t0 = time;
    like(smtp_cmd($s, 'AUTH PLAIN ' . encode_base64("\0alice\0wrong", '')), qr/^535 5\.7\.8 /,
        'wrong password: 535');
    ok(time - $t0 >= 0.9, 'answered after smtpd_auth_fail_delay');
    like(smtp_cmd($s, 'AUTH PLAIN ' . encode_base64("\0nobody\0x", '')), qr/^535 5\.7\.8 /,
        'unknown user: 535');
    like(smtp_cmd($s, 'AUTH PLAIN ' . encode_base64("\0weak\0weak", '')), qr/^535 5\.7\.8 /,
        'a DES hash is never accepted');
    smtp_cmd($s, 'MAIL FROM:<x@client.test>');
    like(smtp_cmd($s, 'RCPT TO:<y@remote.test>'), qr/^554 5\.7\.1 /, 'still not allowed to relay');
    ok($pt->wait_log(qr/authentication failed for user alice from \[127\.0\.0\.2\]/, 5), 'failure logged');
    unlike($pt->log_text, qr/wrong|alice-secret/, 'no password in the log');
    smtp_cmd($s, 'QUIT');
}

# --- AUTH LOGIN good and bad ---
{
    my ($s) = tls_session(local => '127.0.0.2');
    like(smtp_cmd($s, 'AUTH LOGIN'), qr/^334 VXNlcm5hbWU6/, 'LOGIN: user prompt');
    like(smtp_cmd($s, encode_base64('bob', '')), qr/^334 UGFzc3dvcmQ6/, 'LOGIN: password prompt');
    like(smtp_cmd($s, encode_base64('nope', '')), qr/^535 5\.7\.8 /, 'LOGIN bad password: 535');
    like(smtp_cmd($s, 'AUTH LOGIN'), qr/^334 /, 'LOGIN again');
    like(smtp_cmd($s, encode_base64('bob', '')), qr/^334 /, 'user');
    like(smtp_cmd($s, encode_base64('bob-secret', '')), qr/^235 2\.7\.0 /, 'LOGIN (sha512-crypt): 235');
    smtp_cmd($s, 'MAIL FROM:<bob@client.test>');
    like(smtp_cmd($s, 'RCPT TO:<z@remote.test>'), qr/^250 /, 'bob may relay');
    smtp_cmd($s, 'QUIT');
}

# --- swaks: STARTTLS + AUTH LOGIN from outside mynetworks ---
SKIP: {
    skip 'swaks not installed', 1 unless -x '/usr/bin/swaks';
    my $out = `timeout 30 swaks --server 127.0.0.1:$port --local-interface 127.0.0.2 --tls --auth LOGIN --auth-user alice --auth-password alice-secret --from alice\@client.test --to far\@remote.test --helo swaks.test 2>&1`;
    like($out, qr/<~\s+250 2\.0\.0 Ok: queued as [0-9A-F]{18}/, 'swaks --tls --auth LOGIN: queued')
        or diag $out;
}

# --- submission: AUTH required ---
{
    my $s = smtp_connect(port => $sub_port);
    like(smtp_reply($s), qr/^220 /, 'submission port answers');
    smtp_cmd($s, 'EHLO sub.test');
    like(smtp_cmd($s, 'MAIL FROM:<a@client.test>'), qr/^530 5\.7\.0 Authentication required/,
        'submission without AUTH: 530 (even from mynetworks)');
    close $s;
    my ($t, $ehlo) = tls_session(port => $sub_port);
    like(smtp_cmd($t, 'AUTH PLAIN ' . encode_base64("\0alice\0alice-secret", '')), qr/^235 /, 'AUTH on submission');
    like(smtp_cmd($t, 'MAIL FROM:<a@client.test>'), qr/^250 /, 'then MAIL');
    like(smtp_cmd($t, 'RCPT TO:<b@remote.test>'), qr/^250 /, 'and RCPT');
    smtp_cmd($t, 'QUIT');
}

# --- the AUTH thread: several at once, pipelined QUIT, client gone early ---
{
    my $pid = $pt->pid_of('smtpd');
    my @s = map { (tls_session(local => '127.0.0.2'))[0] } 1 .. 6;
    my $plain = 'AUTH PLAIN ' . encode_base64("\0alice\0alice-secret", '') . "\r\n";
    print {$_} $plain for @s;    # all six wait in the AUTH thread's queue together
    my @r = map { smtp_reply($_) } @s;
    is(scalar(grep { /^235 / } @r), 6, 'six sessions checked at once: six 235')
        or diag explain \@r;
    smtp_cmd($_, 'QUIT') for @s;

    my ($t) = tls_session(local => '127.0.0.2');
    print $t $plain . "QUIT\r\n";
    like(smtp_reply($t), qr/^235 /, 'AUTH with QUIT pipelined behind it: 235 first');
    like(smtp_reply($t), qr/^221 /, 'then the buffered QUIT is answered');

    my ($g) = tls_session(local => '127.0.0.2');
    print $g $plain;
    close $g;                    # gone before the verdict
    my ($h) = tls_session(local => '127.0.0.2');
    like(smtp_cmd($h, $plain =~ s/\r\n\z//r), qr/^235 /, 'the next session authenticates');
    smtp_cmd($h, 'QUIT');
    is($pt->pid_of('smtpd'), $pid, 'the same smtpd served all of it');
}

$pt->stop;
done_testing();
