package Postern::Peer;

# Postern::Peer - a scriptable SMTP server ("remote MX" or relay gateway) for
# integration tests, running in a forked process on a loopback address.
#
#   my $mx = Postern::Peer->new(addr => '127.0.0.2', port => $pt->direct_port,
#       rcpt_rules => [ [qr/^bad\@/, '550 5.1.1 no such user'] ],
#       replies => { eod => ['451 4.3.0 try later', '250 2.0.0 ok'] });
#   ... ;  $mx->wait_messages(1, 20);
#   my @t = $mx->transactions;  my $n = $mx->max_concurrent;
#
# Contract
# - new(%opt) binds addr:port before it returns (connections queue in the
#   backlog at once), then serves in a child process (own process group) that
#   forks one process per connection. The server exits by itself after
#   `lifetime` seconds (default 300) or when the test process goes away;
#   stop() (also run from DESTROY/END) kills it and its connection processes
#   by PID / process group.
# - Options (all optional):
#     name        label used in files and the default host name ("peerN")
#     addr        loopback address (default 127.0.0.(10+N) per test process)
#     port        TCP port (default: a free one)
#     dir         where the record file lives (default: a temp dir)
#     hostname    in the greeting and EHLO (default NAME.test)
#     refuse      1: do not listen at all (connections are refused)
#     hangup      close right after accept, without a greeting
#     greeting    the greeting line (default "220 HOST ESMTP test peer")
#     ehlo        0: answer EHLO with 502 (client must fall back to HELO)
#     extensions  EHLO keywords (default PIPELINING SIZE 8BITMIME
#                 ENHANCEDSTATUSCODES); STARTTLS and AUTH are added by:
#     starttls    1: offer STARTTLS, with cert/key (made by openssl if absent)
#     require_tls 1: MAIL before STARTTLS gets 530
#     auth        { user => password, ... }: offer AUTH PLAIN LOGIN
#     auth_requires_tls  1: AUTH offered only after STARTTLS
#     require_auth 1: MAIL before AUTH gets 530
#     replies     { greeting ehlo helo starttls auth mail rcpt data eod rset
#                   quit noop => reply } to override a step's reply
#     rcpt_rules  [ [qr/addr-regex/, reply], ... ] first match wins over
#                 replies->{rcpt}
#     delay       { greeting ehlo helo mail rcpt data eod quit => seconds }
#     drop_in_data  true: close the connection abruptly in the middle of the
#                 DATA content (after drop_after_lines lines, default 3, or
#                 at the final dot if the message is shorter)
#     idle_timeout  seconds without a command before "421" and close
#     lifetime    seconds the server lives (default 300)
#     keep_messages  1 (default): store each accepted message in DIR
#   A reply (and hangup, greeting, drop_in_data) may be a plain value, an
#   arrayref = a sequence by occurrence across all connections (the last
#   entry repeats: ['451 4.3.0 later', '250 ok'] = first time 451, then 250),
#   or a coderef called with a hashref of the session (and the argument)
#   that returns the value (undef: the default).
# - Records, one JSON line each in DIR/peer-NAME.jsonl:
#     {ev:"connect", conn, t, remote}
#     {ev:"connection", conn, connect, close, tls, sni (the TLS server name
#      the client sent, "" for none), auth, helo, remote,
#      transactions, messages, closed_by: client|server|drop|idle|hangup|error}
#     {ev:"transaction", conn, t, end, tls, auth, helo, mail_from, mail_params,
#      rcpts:[{addr, reply, params}], accepted_rcpts, data_reply, eod_reply, bytes,
#      message_id, file, status: accepted|rejected|dropped|aborted}
#   (params: the RCPT command's ESMTP parameters, e.g. "NOTIFY=SUCCESS
#   ORCPT=rfc822;a@b.test", only when it had some; mail_params likewise.)
#   transactions(), messages() (status accepted), message_ids(),
#   transactions_for_domain($dom) (a recipient at $dom), messages_for_domain($dom),
#   messages_for($rcpt) (accepted, with exactly $rcpt among the recipients),
#   connections() (in-progress ones have close undef), max_concurrent(),
#   wait_messages($n, $timeout), wait_connections($n, $timeout), reset().

use strict;
use warnings;
use Carp qw(croak);
use Fcntl qw(:flock O_WRONLY O_APPEND O_CREAT O_RDWR);
use File::Temp qw(tempdir);
use File::Path qw(remove_tree);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use MIME::Base64 qw(decode_base64);
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken refaddr);
use Time::HiRes qw(time sleep);

use Postern::Util qw(free_port pid_alive make_cert read_jsonl wait_until slurp);

my $OWNER_PID = $$;
my $seq = 0;
my %LIVE;

END {
    local $?;
    if ($$ == $OWNER_PID) {
        for my $k (keys %LIVE) { $LIVE{$k}->stop if $LIVE{$k} }
    }
}

sub new {
    my ($class, %o) = @_;
    my $n = ++$seq;
    my $self = bless {
        name        => $o{name} // "peer$n",
        addr        => $o{addr} // '127.0.0.' . (10 + $n),
        lifetime    => $o{lifetime} // 300,
        extensions  => $o{extensions} // ['PIPELINING', 'SIZE 104857600', '8BITMIME', 'ENHANCEDSTATUSCODES'],
        replies     => $o{replies} // {},
        delay       => $o{delay} // {},
        rcpt_rules  => $o{rcpt_rules} // [],
        ehlo        => $o{ehlo} // 1,
        keep_messages => $o{keep_messages} // 1,
        drop_after_lines => $o{drop_after_lines} // 3,
        owner       => $$,
        %o,
    }, $class;
    $self->{name} =~ s/[^A-Za-z0-9_.-]/_/g;
    $self->{hostname} //= "$self->{name}.test";
    if (!$self->{dir}) {
        $self->{dir} = tempdir('postern-peer-XXXXXXXX', TMPDIR => 1, CLEANUP => 0);
        $self->{own_dir} = 1;
    }
    $self->{file}    = "$self->{dir}/peer-$self->{name}.jsonl";
    $self->{counter} = "$self->{dir}/peer-$self->{name}.counters";
    $self->{msgdir}  = "$self->{dir}/peer-$self->{name}.msgs";
    mkdir $self->{msgdir};
    $self->{port} //= free_port($self->{addr});
    for my $f ($self->{file}, $self->{counter}) { open my $fh, '>', $f or croak "$f: $!" }
    if ($self->{starttls} && !$self->{cert}) {
        require IO::Socket::SSL;
        @$self{qw(cert key)} = make_cert($self->{dir}, $self->{hostname});
    }
    $LIVE{refaddr $self} = $self;
    weaken($LIVE{refaddr $self});
    return $self if $self->{refuse};

    my $ls = IO::Socket::INET->new(LocalAddr => $self->{addr}, LocalPort => $self->{port},
        Proto => 'tcp', Listen => 256, ReuseAddr => 1)
        or croak "peer $self->{name}: listen $self->{addr}:$self->{port}: $@";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        eval { $self->_serve($ls) };
        POSIX::_exit(0);
    }
    close $ls;
    $self->{pid} = $pid;
    return $self;
}

sub name { $_[0]{name} }
sub addr { $_[0]{addr} }
sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub file { $_[0]{file} }
sub cert { $_[0]{cert} }
sub hostport { "$_[0]{addr}:$_[0]{port}" }

sub stop {
    my ($self) = @_;
    return unless $$ == $self->{owner};
    my $pid = delete $self->{pid};
    if ($pid) {
        kill 'TERM', -$pid;    # the server's process group: server + connections
        kill 'TERM', $pid;
        my $gone = wait_until(5, sub { waitpid($pid, WNOHANG) != 0 }, 0.02);
        if (!$gone) { kill 'KILL', -$pid; kill 'KILL', $pid; waitpid($pid, 0) }
    }
    return 1;
}

sub running { my $p = $_[0]{pid}; return $p && waitpid($p, WNOHANG) == 0 }

sub DESTROY {
    my ($self) = @_;
    local ($@, $?, $!);
    return unless $$ == $self->{owner};
    delete $LIVE{refaddr $self};
    $self->stop;
    remove_tree($self->{dir}) if $self->{own_dir} && !$ENV{POSTERN_KEEP};
}

# ---- reading the records (test side) ----

sub records { return read_jsonl($_[0]{file}) }
sub transactions { return grep { $_->{ev} eq 'transaction' } $_[0]->records }
sub messages { return grep { $_->{status} eq 'accepted' } $_[0]->transactions }
sub message_ids { return map { $_->{message_id} // () } $_[0]->messages }

# The transactions that named a recipient at $domain (any status; a
# transaction's rcpts include the refused ones), the accepted ones of those,
# and the accepted transactions that named exactly $rcpt.
sub transactions_for_domain {
    my ($self, $domain) = @_;
    return grep { grep { $_->{addr} =~ /\@\Q$domain\E$/ } @{ $_->{rcpts} || [] } } $self->transactions;
}
sub messages_for_domain { return grep { $_->{status} eq 'accepted' } $_[0]->transactions_for_domain($_[1]) }
sub messages_for {
    my ($self, $rcpt) = @_;
    return grep { grep { $_->{addr} eq $rcpt } @{ $_->{rcpts} || [] } } $self->messages;
}

sub connections {
    my ($self) = @_;
    my (%c, @order);
    for my $r ($self->records) {
        if ($r->{ev} eq 'connect') {
            push @order, $r->{conn} unless $c{ $r->{conn} };
            $c{ $r->{conn} } //= { conn => $r->{conn}, connect => $r->{t}, close => undef, remote => $r->{remote} };
        } elsif ($r->{ev} eq 'connection') {
            push @order, $r->{conn} unless $c{ $r->{conn} };
            $c{ $r->{conn} } = $r;
        }
    }
    return map { $c{$_} } @order;
}

sub max_concurrent {
    my ($self) = @_;
    my @ev;
    for my $c ($self->connections) {
        push @ev, [$c->{connect}, 1];
        push @ev, [$c->{close}, -1] if defined $c->{close};
    }
    # at equal times a close counts before a connect
    @ev = sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev;
    my ($cur, $max) = (0, 0);
    for (@ev) { $cur += $_->[1]; $max = $cur if $cur > $max }
    return $max;
}

sub wait_messages {
    my ($self, $n, $timeout) = @_;
    my @m;
    wait_until($timeout // 20, sub { @m = $self->messages; @m >= $n }, 0.1);
    return scalar @m;
}

sub wait_connections {
    my ($self, $n, $timeout) = @_;
    my @c;
    wait_until($timeout // 20, sub { @c = grep { defined $_->{close} } $self->connections; @c >= $n }, 0.1);
    return scalar @c;
}

sub message_text {
    my ($self, $t) = @_;
    return defined $t->{file} ? slurp($t->{file}) : undef;
}

sub reset {
    my ($self) = @_;
    for my $f ($self->{file}, $self->{counter}) {
        open my $fh, '+<', $f or next;
        flock $fh, LOCK_EX;
        truncate $fh, 0;
        close $fh;
    }
}

# ---- server side (child processes) ----

sub _serve {
    my ($self, $ls) = @_;
    $SIG{$_} = 'DEFAULT' for qw(INT HUP);
    my $parent = getppid();
    my $end = time() + $self->{lifetime};
    my %kids;
    my $stopping = 0;
    $SIG{TERM} = sub { $stopping = 1 };
    $SIG{CHLD} = 'DEFAULT';
    my $sel = IO::Select->new($ls);
    my $conn = 0;
    while (!$stopping && time() < $end && getppid() == $parent) {
        while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $kids{$k} }
        my @r = $sel->can_read(0.5);
        next unless @r;
        my $c = $ls->accept or next;
        if (keys(%kids) >= 500) { close $c; next }    # bound the fork count
        $conn++;
        my $pid = fork();
        if (!defined $pid) { close $c; next }
        if ($pid == 0) {
            close $ls;
            $SIG{TERM} = 'DEFAULT';
            my $left = $end - time();
            alarm($left > 1 ? int($left) : 1);
            eval { $self->_session($c, $conn) };
            POSIX::_exit(0);
        }
        $kids{$pid} = 1;
        close $c;
    }
    kill 'TERM', keys %kids;
    wait_until(2, sub {
        while ((my $k = waitpid(-1, WNOHANG)) > 0) { delete $kids{$k} }
        !%kids;
    }, 0.02);
    POSIX::_exit(0);
}

sub _record {
    my ($self, $rec) = @_;
    my $line = JSON::PP->new->canonical->encode($rec) . "\n";
    sysopen(my $fh, $self->{file}, O_WRONLY | O_APPEND | O_CREAT) or return;
    flock $fh, LOCK_EX;
    syswrite $fh, $line;
    close $fh;
}

# Occurrence number (0-based) of KEY across all connections of this peer.
sub _occurrence {
    my ($self, $key) = @_;
    sysopen(my $fh, $self->{counter}, O_RDWR | O_CREAT) or return 0;
    flock $fh, LOCK_EX;
    local $/;
    my $txt = <$fh> // '';
    my $h = eval { JSON::PP->new->decode($txt) } || {};
    my $n = $h->{$key} // 0;
    $h->{$key} = $n + 1;
    seek $fh, 0, 0;
    truncate $fh, 0;
    print $fh JSON::PP->new->canonical->encode($h);
    close $fh;
    return $n;
}

# The scripted value for KEY: plain, sequence (arrayref) or coderef.
sub _script {
    my ($self, $key, $v, $s, $arg) = @_;
    return undef unless defined $v;
    if (ref $v eq 'ARRAY') {
        return undef unless @$v;
        my $i = $self->_occurrence($key);
        $v = $i < @$v ? $v->[$i] : $v->[-1];
    }
    $v = $v->($s, $arg) if ref $v eq 'CODE';
    return $v;
}

sub _reply_for {
    my ($self, $step, $s, $arg, $default) = @_;
    my $r = $self->_script("reply:$step", $self->{replies}{$step}, $s, $arg);
    return defined $r ? $r : $default;
}

sub _delay {
    my ($self, $step) = @_;
    my $d = $self->{delay}{$step};
    sleep($d) if $d;
}

sub _send {
    my ($s, $text) = @_;
    $text =~ s/\r?\n/\r\n/g;
    $text .= "\r\n" unless $text =~ /\r\n\z/;
    my $off = 0;
    while ($off < length $text) {
        my $w = $s->{sock}->syswrite($text, length($text) - $off, $off);
        die "write failed\n" unless $w;
        $off += $w;
    }
}

# One line (without CRLF) or undef on EOF/timeout; $s->{why} says which.
sub _readline {
    my ($s, $timeout) = @_;
    my $sock = $s->{sock};
    my $end = defined $timeout ? time() + $timeout : undef;
    while (1) {
        if ($s->{buf} =~ s/\A([^\n]*)\n//) {
            my $l = $1;
            $l =~ s/\r\z//;
            return $l;
        }
        if (length $s->{buf} > 1_000_000) { $s->{why} = 'toolong'; return undef }
        my $pending = $s->{tls} && $sock->can('pending') ? $sock->pending : 0;
        if (!$pending) {
            my $wait = defined $end ? $end - time() : 300;
            if ($wait <= 0) { $s->{why} = 'timeout'; return undef }
            my @r = IO::Select->new($sock)->can_read($wait);
            if (!@r) { $s->{why} = 'timeout'; return undef }
        }
        my $n = $sock->sysread(my $chunk, 65536);
        if (!defined $n) {
            next if $s->{tls} && ($!{EAGAIN} || $!{EWOULDBLOCK});
            $s->{why} = 'error';
            return undef;
        }
        if ($n == 0) { $s->{why} = 'eof'; return undef }
        $s->{buf} .= $chunk;
    }
}

sub _code_ok { my ($r) = @_; return defined $r && $r =~ /^2/ }

sub _session {
    my ($self, $sock, $conn) = @_;
    my $remote = $sock->peerhost . ':' . $sock->peerport;
    my $s = { sock => $sock, buf => '', conn => $conn, tls => 0, auth => undef,
        helo => undef, ntx => 0, nmsg => 0, remote => $remote, peer => $self->{name} };
    my $t0 = time();
    $self->_record({ ev => 'connect', conn => $conn, t => $t0, remote => $remote });
    my $closed_by = eval { $self->_dialog($s) } // 'error';
    $self->_end_tx($s, 'aborted') if $s->{tx};
    close $sock;
    $self->_record({ ev => 'connection', conn => $conn, connect => $t0, close => time(),
        tls => $s->{tls} ? 1 : 0, sni => $s->{sni}, auth => $s->{auth}, helo => $s->{helo},
        remote => $remote, transactions => $s->{ntx}, messages => $s->{nmsg}, closed_by => $closed_by,
        ($s->{error} ? (error => $s->{error}) : ()) });
}

sub _ehlo_lines {
    my ($self, $s) = @_;
    my @ext = @{ $self->{extensions} };
    push @ext, 'STARTTLS' if $self->{starttls} && !$s->{tls};
    push @ext, 'AUTH PLAIN LOGIN'
        if $self->{auth} && !$s->{auth} && ($s->{tls} || !$self->{auth_requires_tls});
    my @l = ($self->{hostname}, @ext);
    return join("\r\n", map { ($_ == $#l ? '250 ' : '250-') . $l[$_] } 0 .. $#l);
}

sub _dialog {
    my ($self, $s) = @_;
    if ($self->_script('hangup', $self->{hangup}, $s)) { return 'hangup' }
    $self->_delay('greeting');
    my $greet = $self->_script('greeting', $self->{greeting}, $s)
        // $self->_reply_for('greeting', $s, undef, "220 $self->{hostname} ESMTP test peer");
    _send($s, $greet);
    my $closed = $greet =~ /^421/;
    return 'server' if $closed;
    my $service = $greet =~ /^2/;
    while (1) {
        my $line = _readline($s, $self->{idle_timeout});
        if (!defined $line) {
            if ($s->{why} eq 'timeout' && $self->{idle_timeout}) {
                eval { _send($s, '421 4.4.2 idle timeout, closing') };
                return 'idle';
            }
            return $s->{why} eq 'eof' ? 'client' : 'error';
        }
        if (length $line > 2048) { _send($s, '500 5.5.2 line too long'); next }
        my ($verb, $arg) = $line =~ /^\s*(\S+)\s*(.*)$/;
        $verb = uc($verb // '');
        if ($verb eq 'QUIT') {
            $self->_delay('quit');
            _send($s, $self->_reply_for('quit', $s, undef, '221 2.0.0 bye'));
            return 'client';
        }
        if (!$service) { _send($s, '503 5.5.1 no service'); next }
        my $m = "_cmd_" . lc $verb;
        if ($verb =~ /^[A-Z]+$/ && $self->can($m)) {
            my $r = $self->$m($s, $arg);
            return $r if $r;    # a reason to close
        } else {
            _send($s, '502 5.5.2 command not recognized');
        }
    }
}

sub _cmd_ehlo {
    my ($self, $s, $arg) = @_;
    $self->_delay('ehlo');
    if (!$self->{ehlo}) { _send($s, '502 5.5.2 EHLO not supported'); return }
    my $r = $self->_reply_for('ehlo', $s, $arg, undef);
    $self->_end_tx($s, 'aborted') if $s->{tx};
    $s->{helo} = $arg if !defined $r || $r =~ /^2/;
    _send($s, $r // $self->_ehlo_lines($s));
    return;
}

sub _cmd_helo {
    my ($self, $s, $arg) = @_;
    $self->_delay('helo');
    my $r = $self->_reply_for('helo', $s, $arg, "250 $self->{hostname}");
    $self->_end_tx($s, 'aborted') if $s->{tx};
    $s->{helo} = $arg if $r =~ /^2/;
    _send($s, $r);
    return;
}

sub _cmd_noop { my ($self, $s) = @_; _send($s, $self->_reply_for('noop', $s, undef, '250 2.0.0 ok')); return }
sub _cmd_vrfy { my ($self, $s) = @_; _send($s, '252 2.1.5 cannot verify'); return }

sub _cmd_rset {
    my ($self, $s) = @_;
    $self->_end_tx($s, 'aborted') if $s->{tx};
    _send($s, $self->_reply_for('rset', $s, undef, '250 2.0.0 ok'));
    return;
}

sub _cmd_starttls {
    my ($self, $s) = @_;
    if (!$self->{starttls} || $s->{tls}) { _send($s, '502 5.5.1 STARTTLS not available'); return }
    my $r = $self->_reply_for('starttls', $s, undef, '220 2.0.0 ready to start TLS');
    _send($s, $r);
    return unless $r =~ /^220/;
    require IO::Socket::SSL;
    my $ok = IO::Socket::SSL->start_SSL($s->{sock}, SSL_server => 1,
        SSL_cert_file => $self->{cert}, SSL_key_file => $self->{key}, Timeout => 30);
    if (!$ok) {
        $s->{error} = 'TLS handshake: ' . (IO::Socket::SSL::errstr() || 'failed');
        return 'error';
    }
    $s->{tls} = 1;
    $s->{sni} = eval { $s->{sock}->get_servername } // '';    # what the client sent as SNI
    $s->{buf} = '';    # anything sent before the handshake is discarded
    $s->{helo} = undef;
    $self->_end_tx($s, 'aborted') if $s->{tx};
    return;
}

sub _cmd_auth {
    my ($self, $s, $arg) = @_;
    my $offered = $self->{auth} && ($s->{tls} || !$self->{auth_requires_tls});
    if (!$offered) { _send($s, '502 5.5.1 AUTH not available'); return }
    if ($s->{auth}) { _send($s, '503 5.5.1 already authenticated'); return }
    my ($mech, $init) = split ' ', $arg // '', 2;
    $mech = uc($mech // '');
    my ($user, $pass);
    if ($mech eq 'PLAIN') {
        if (!defined $init || $init eq '') {
            _send($s, '334 ');
            $init = _readline($s, 60) // return 'client';
        }
        if ($init eq '*') { _send($s, '501 5.5.2 cancelled'); return }
        my (undef, $u, $p) = split /\0/, decode_base64($init), 3;
        ($user, $pass) = ($u, $p);
    } elsif ($mech eq 'LOGIN') {
        if (defined $init && $init ne '') { $user = decode_base64($init) }
        else {
            _send($s, '334 VXNlcm5hbWU6');
            my $l = _readline($s, 60) // return 'client';
            $user = decode_base64($l);
        }
        _send($s, '334 UGFzc3dvcmQ6');
        my $l = _readline($s, 60) // return 'client';
        $pass = decode_base64($l);
    } else {
        _send($s, '504 5.5.4 mechanism not supported');
        return;
    }
    my $good = defined $user && defined $pass && exists $self->{auth}{$user}
        && $self->{auth}{$user} eq $pass;
    my $r = $self->_reply_for('auth', $s, $user,
        $good ? '235 2.7.0 authentication successful' : '535 5.7.8 authentication failed');
    $s->{auth} = $user if $r =~ /^235/;
    $s->{auth_failed} = $user unless $r =~ /^235/;
    _send($s, $r);
    return;
}

sub _addr {
    my ($arg, $kw) = @_;
    return () unless $arg =~ /^\Q$kw\E:\s*<([^>]*)>\s*(.*)$/i
        || $arg =~ /^\Q$kw\E:\s*(\S+)\s*(.*)$/i;
    return ($1, $2);
}

sub _cmd_mail {
    my ($self, $s, $arg) = @_;
    $self->_delay('mail');
    if ($s->{tx}) { _send($s, '503 5.5.1 nested MAIL'); return }
    my ($from, $params) = _addr($arg, 'FROM');
    if (!defined $from) { _send($s, '501 5.5.4 syntax: MAIL FROM:<address>'); return }
    if ($self->{require_tls} && !$s->{tls}) { _send($s, '530 5.7.0 Must issue a STARTTLS command first'); return }
    if ($self->{require_auth} && !$s->{auth}) { _send($s, '530 5.7.0 Authentication required'); return }
    my $r = $self->_reply_for('mail', $s, $from, '250 2.1.0 ok');
    _send($s, $r);
    if ($r =~ /^2/) {
        $s->{tx} = { conn => $s->{conn}, t => time(), mail_from => $from, mail_params => $params,
            rcpts => [], accepted_rcpts => [] };
    } else {
        $s->{ntx}++;
        $self->_record({ ev => 'transaction', conn => $s->{conn}, t => time(), end => time(),
            tls => $s->{tls} ? 1 : 0, auth => $s->{auth}, helo => $s->{helo}, mail_from => $from,
            mail_params => $params, mail_reply => $r, rcpts => [], accepted_rcpts => [],
            status => 'rejected' });
    }
    return;
}

sub _cmd_rcpt {
    my ($self, $s, $arg) = @_;
    $self->_delay('rcpt');
    if (!$s->{tx}) { _send($s, '503 5.5.1 need MAIL first'); return }
    my ($to, $rparams) = _addr($arg, 'TO');
    if (!defined $to) { _send($s, '501 5.5.4 syntax: RCPT TO:<address>'); return }
    my $r;
    my $i = 0;
    for my $rule (@{ $self->{rcpt_rules} }) {
        my ($re, $v) = @$rule;
        if ($to =~ $re) { $r = $self->_script("rcpt_rule:$i", $v, $s, $to); last }
        $i++;
    }
    $r //= $self->_reply_for('rcpt', $s, $to, '250 2.1.5 ok');
    push @{ $s->{tx}{rcpts} }, { addr => $to, reply => $r,
        (defined $rparams && $rparams ne '' ? (params => $rparams) : ()) };
    push @{ $s->{tx}{accepted_rcpts} }, $to if $r =~ /^2/;
    _send($s, $r);
    return;
}

sub _cmd_data {
    my ($self, $s) = @_;
    $self->_delay('data');
    my $tx = $s->{tx};
    if (!$tx) { _send($s, '503 5.5.1 need MAIL first'); return }
    if (!@{ $tx->{accepted_rcpts} }) { _send($s, '554 5.5.1 no valid recipients'); return }
    my $r = $self->_reply_for('data', $s, undef, '354 end data with <CR><LF>.<CR><LF>');
    _send($s, $r);
    if ($r !~ /^3/) {
        $tx->{data_reply} = $r;
        $self->_end_tx($s, 'rejected');
        return;
    }
    my $drop = $self->_script('drop_in_data', $self->{drop_in_data}, $s);
    my ($bytes, $lines, $in_headers, $mid) = (0, 0, 1, undef);
    my ($fh, $path);
    if ($self->{keep_messages}) {
        $path = sprintf('%s/c%d-t%d.eml', $self->{msgdir}, $s->{conn}, $s->{ntx} + 1);
        open $fh, '>', $path or undef $path;
    }
    while (1) {
        my $l = _readline($s, 120);
        if (!defined $l) {
            $self->_end_tx($s, 'aborted', bytes => $bytes, message_id => $mid);
            return $s->{why} eq 'eof' ? 'client' : 'error';
        }
        if ($drop && ($l eq '.' || $lines >= $self->{drop_after_lines})) {
            $self->_end_tx($s, 'dropped', bytes => $bytes, message_id => $mid);
            shutdown($s->{sock}, 2);
            return 'drop';
        }
        last if $l eq '.';
        $l =~ s/^\.//;
        $lines++;
        $bytes += length($l) + 2;
        print $fh "$l\r\n" if $fh;
        if ($in_headers) {
            if ($l eq '') { $in_headers = 0 }
            elsif (!defined $mid && $l =~ /^Message-ID:\s*(\S+)/i) { $mid = $1 }
        }
    }
    close $fh if $fh;
    $self->_delay('eod');
    my $end = $self->_reply_for('eod', $s, undef, sprintf('250 2.0.0 ok: queued as %s-%d-%d',
        $self->{name}, $s->{conn}, $s->{ntx} + 1));
    _send($s, $end);
    $tx->{eod_reply} = $end;
    my $ok = $end =~ /^2/;
    unlink $path if $path && !$ok;
    $self->_end_tx($s, $ok ? 'accepted' : 'rejected', bytes => $bytes, message_id => $mid,
        file => $ok ? $path : undef);
    return;
}

sub _end_tx {
    my ($self, $s, $status, %more) = @_;
    my $tx = delete $s->{tx} or return;
    $s->{ntx}++;
    $s->{nmsg}++ if $status eq 'accepted';
    $self->_record({ ev => 'transaction', %$tx, %more, end => time(), status => $status,
        tls => $s->{tls} ? 1 : 0, auth => $s->{auth}, helo => $s->{helo} });
}

1;
