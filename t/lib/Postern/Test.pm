package Postern::Test;

# Postern::Test - a temporary Postern instance for integration tests.
#
#   use lib 't/lib';            # or: use FindBin; use lib "$FindBin::Bin/../lib";
#   use Postern::Test;
#   my $pt = Postern::Test->new(log_level => 'debug');   # main.cf overrides
#   $pt->start;                 # bin/master -c DIR/etc -d, waits for "postern ready"
#   my ($rc, $out) = $pt->smtpctl('show', 'queue');
#   my $st = $pt->status;       # parsed `smtpctl status --json`
#   $pt->send_mail(from => 'a@x.test', to => ['b@y.test']);
#   ok($pt->wait_log(qr/status=sent/, 10));
#   $pt->stop;                  # also done automatically at exit
#
# Contract
# - new(%overrides) makes a temp dir (mode 0755, under $TMPDIR or /tmp; kept
#   when POSTERN_KEEP=1) holding etc/main.cf written from test defaults plus
#   the overrides (value undef = leave the line out, arrayref = joined by
#   blanks). Defaults: queue_directory=DIR/spool, smtpd_listen=127.0.0.1:PORT
#   (a free port), log_file empty, log_level=detailed, myhostname=postern.test,
#   mynetworks=127.0.0.0/8, direct_port=a free port (peers listen there on
#   their own 127.0.0.x), dns_servers=127.0.0.1:1 (placeholder), retry_delay=2s,
#   retry_delay_max=0, short outbound timeouts, mail_spool_directory=DIR/mail
#   (mode 1777) and alias_maps=DIR/etc/aliases (not compiled: no aliases), so
#   local delivery never touches the host's. Run as root: mail_owner=postern
#   (the system user is created with useradd if missing); otherwise
#   mail_owner is not written and everything runs as the current user.
# - start runs master (from bindir when given: a copy of bin/ with a
#   stand-in for one program) with stderr (and stdout) appended to DIR/master.log and
#   waits up to 20 s for a "postern ready" line written after the start; on
#   failure it dies with the log tail (start(nodie => 1) returns 0 instead).
# - stop sends SIGTERM to master, waits (default 15 s), then SIGKILL; then
#   kills, by PID, every process it knows of from `smtpctl status` or whose
#   command line names this instance's config dir. stop runs automatically
#   from DESTROY, END and on SIGINT/SIGTERM/SIGHUP of the test, so no process
#   outlives a failing test. leftovers() lists the PIDs stop had to kill.
# - Every wait is bounded; every external command runs with a timeout.
#
# Methods: dir etc spool log_path port direct_port root master_pid
#   free_port([$addr]) config(%more) write_file($name, $text [, $mode])
#   start([bindir => DIR]) stop signal($sig) wait_exit($timeout) restart
#   smtpctl(@args) -> ($exit, $stdout.$stderr)
#   smtpctl3(@args) -> ($exit, $stdout, $stderr)
#   spool_files($subdir) -> sorted file names in DIR/spool/$subdir (no dot
#     files; empty if it cannot be read; in scalar context their count)
#   status -> hashref (undef if smtpctl failed); pid_of($name); known_pids
#   procs -> this instance's live processes from /proc: ({pid, name}, ...)
#   mark_log; wait_log(qr//, $timeout) -> matching line or undef;
#   log_lines(qr//) (since the mark); log_text; log_tail($n)
#   send_mail(from, to => [...], data | subject/body/headers, port, host,
#     helo, starttls, auth => [user, pass], timeout) -> queue id (or 1) on
#     success, undef on failure; list context: ($qid, $message_id, $error)
#   make_message(%opts) -> ($text, $message_id)
#   peer(%opts) -> a Postern::Peer whose files live in DIR and that is
#     stopped with this instance.

use strict;
use warnings;
use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(remove_tree make_path);
use File::Temp qw(tempdir);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Net::SMTP;
use POSIX qw(:sys_wait_h);
use Scalar::Util qw(weaken refaddr);
use Time::HiRes qw(time sleep);

use Postern::Util qw(pid_alive proc_cmdline wait_until slurp);

my $OWNER_PID = $$;
my %LIVE;            # refaddr => weak ref to every instance not yet cleaned up
my $msg_counter = 0;

my $ROOT = do {
    my $d = abs_path(dirname(__FILE__) . '/../../..');
    $ENV{POSTERN_ROOT} ? abs_path($ENV{POSTERN_ROOT}) : $d;
};

sub _cleanup_all {
    return unless $$ == $OWNER_PID;
    for my $k (keys %LIVE) {
        my $pt = $LIVE{$k};
        $pt->_cleanup if $pt;
    }
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        _cleanup_all();
        POSIX::_exit(128 + ($sig eq 'INT' ? 2 : $sig eq 'TERM' ? 15 : 1));
    } if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

END {
    local $?;
    _cleanup_all();
}

sub root_dir { $ROOT }

sub _ensure_user {
    my ($user) = @_;
    return if defined getpwnam($user);
    system('useradd', '--system', '--no-create-home', '--home-dir', '/nonexistent',
        '--shell', '/usr/sbin/nologin', $user) == 0
        or croak "useradd $user failed";
}

sub _base_tmp {
    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    return $base unless $> == 0;
    # mail_owner must be able to reach the spool: every component o+x
    my $p = abs_path($base);
    my $path = '';
    for my $c (grep { length } split m{/}, $p) {
        $path .= "/$c";
        my @st = stat($path) or return '/tmp';
        return '/tmp' unless $st[2] & 0001;
    }
    return $p;
}

sub new {
    my ($class, %over) = @_;
    my $dir = tempdir('postern-XXXXXXXX', DIR => _base_tmp(), CLEANUP => 0);
    $dir = abs_path($dir);
    chmod 0755, $dir;
    make_path("$dir/etc");
    chmod 0755, "$dir/etc";
    # local delivery never reaches the host's /var/mail nor /etc/aliases
    make_path("$dir/mail");
    chmod 01777, "$dir/mail";
    my $self = bless {
        dir       => $dir,
        etc       => "$dir/etc",
        log       => "$dir/master.log",
        over      => {},
        known     => {},
        mark      => 0,
        leftovers => [],
        owner     => $$,
        peers     => [],
    }, $class;
    $self->{port}        = Postern::Util::free_port('127.0.0.1');
    $self->{direct_port} = Postern::Util::free_port('127.0.0.1');
    $self->{is_root}     = ($> == 0);
    if ($self->{is_root}) {
        my $u = exists $over{mail_owner} ? $over{mail_owner} : 'postern';
        _ensure_user($u) if defined $u;
    }
    $LIVE{refaddr $self} = $self;
    weaken($LIVE{refaddr $self});
    $self->config(%over);
    return $self;
}

sub dir         { $_[0]{dir} }
sub etc         { $_[0]{etc} }
sub log_path    { $_[0]{log} }
sub port        { $_[0]{port} }
sub direct_port { $_[0]{direct_port} }
sub master_pid  { $_[0]{master_pid} }
sub leftovers   { @{ $_[0]{leftovers} } }
sub root        { $ROOT }
sub is_root     { $_[0]{is_root} }

sub spool {
    my ($self) = @_;
    my $q = $self->_params->{queue_directory};
    return $q;
}

sub free_port { shift; return Postern::Util::free_port(@_) }

sub spool_files {
    my ($self, $sub) = @_;
    opendir(my $d, $self->spool . "/$sub") or return ();
    my @f = sort grep { !/^\./ } readdir $d;
    return @f;
}

sub _defaults {
    my ($self) = @_;
    my @d = (
        myhostname           => 'postern.test',
        queue_directory      => "$self->{dir}/spool",
        smtpd_listen         => "127.0.0.1:$self->{port}",
        log_file             => '',
        log_level            => 'detailed',
        mynetworks           => '127.0.0.0/8',
        direct_port          => $self->{direct_port},
        dns_servers          => '127.0.0.1:1',
        dns_timeout          => '2s',
        retry_delay          => '2s',
        retry_delay_max      => '0',
        smtp_connect_timeout => '5s',
        smtp_timeout         => '30s',
        mail_spool_directory => "$self->{dir}/mail",
        alias_maps           => "$self->{dir}/etc/aliases",
    );
    push @d, (mail_owner => 'postern') if $self->{is_root};
    return @d;
}

# Effective parameters: defaults overlaid with overrides (undef = removed).
sub _params {
    my ($self) = @_;
    my %p = $self->_defaults;
    for my $k (keys %{ $self->{over} }) {
        if (defined $self->{over}{$k}) { $p{$k} = $self->{over}{$k} }
        else                           { delete $p{$k} }
    }
    return \%p;
}

# config(%more): add or change overrides and rewrite etc/main.cf.
sub config {
    my ($self, %more) = @_;
    $self->{over}{$_} = $more{$_} for keys %more;
    my @d = $self->_defaults;
    my (@order, %seen);
    for (my $i = 0; $i < @d; $i += 2) { push @order, $d[$i]; $seen{ $d[$i] } = 1 }
    push @order, grep { !$seen{$_} } sort keys %{ $self->{over} };
    my $p = $self->_params;
    my $text = "# written by t/lib/Postern/Test.pm\n";
    for my $k (@order) {
        next unless exists $p->{$k};
        my $v = $p->{$k};
        $v = join(' ', @$v) if ref $v eq 'ARRAY';
        $text .= $v eq '' ? "$k =\n" : "$k = $v\n";
    }
    $self->write_file('main.cf', $text);
    return $self;
}

# write_file($name, $text [, $mode]): a file in DIR/etc (or an absolute path).
sub write_file {
    my ($self, $name, $text, $mode) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{etc}/$name";
    make_path(dirname($path));
    my $tmp = "$path.tmp$$";
    open my $fh, '>', $tmp or croak "write $tmp: $!";
    print $fh $text;
    close $fh or croak "close $tmp: $!";
    chmod(defined $mode ? $mode : 0644, $tmp);
    rename $tmp, $path or croak "rename $path: $!";
    return $path;
}

sub _log_size { my @s = stat($_[0]{log}); return @s ? $s[7] : 0 }

sub start {
    my ($self, %o) = @_;
    croak 'start: master already running' if $self->{master_pid};
    my $timeout = $o{timeout} // 20;
    my $bin = ($o{bindir} // "$ROOT/bin") . '/master';
    croak "start: $bin not built (run make)" unless -x $bin;
    my $from = $self->_log_size;
    $self->{mark} = $from;
    my @args = ('-c', $self->{etc}, '-d', @{ $o{args} || [] });
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{log};
        open STDERR, '>>&', \*STDOUT;
        exec $bin, @args or POSIX::_exit(127);
    }
    $self->{master_pid} = $pid;
    $self->{known}{$pid} = 'master';
    my $ready = wait_until($timeout, sub {
        return 'exited' if waitpid($pid, WNOHANG) == $pid;
        return 'ready' if $self->_log_from($from) =~ /postern ready/;
        return 0;
    }, 0.05);
    my $err;
    if (!$ready) {
        $err = "master did not print 'postern ready' within ${timeout}s";
    } elsif ($ready eq 'exited') {
        $self->{master_status} = $?;
        delete $self->{master_pid};
        $err = "master exited (status $?) before 'postern ready'";
    }
    if ($err) {
        $err .= "\n--- tail of $self->{log}:\n" . $self->log_tail(30);
        $self->stop if $self->{master_pid};
        $self->{start_error} = $err;
        return 0 if $o{nodie};
        croak $err;
    }
    $self->status;    # learn the children's PIDs for cleanup
    return 1;
}

sub start_error { $_[0]{start_error} }

sub signal {
    my ($self, $sig) = @_;
    my $pid = $self->{master_pid} or return 0;
    return kill $sig, $pid;
}

# wait_exit($timeout): wait for master to exit; its wait status, or undef.
# kill_tree(): SIGKILL to every process of the instance (master included,
# as a crash would), then wait until they are gone; start() again after.
sub kill_tree {
    my ($self) = @_;
    # Again until none is left: master may have started a child (a
    # restart) between the listing and the kill, and that child would
    # live on until it noticed master gone, holding its sockets.
    my %seen;
    wait_until(10, sub {
        my @p = grep { !$seen{$_}++ || pid_alive($_) } map { $_->{pid} } $self->procs;
        kill 'KILL', @p if @p;
        !@p;
    }, 0.05);
    $self->wait_exit(10);
    wait_until(10, sub { !grep { pid_alive($_) } keys %seen }, 0.05);
}

sub wait_exit {
    my ($self, $timeout) = @_;
    my $pid = $self->{master_pid};
    return $self->{master_status} unless $pid;
    my $r = wait_until($timeout // 15, sub { waitpid($pid, WNOHANG) == $pid }, 0.05);
    return undef unless $r;
    $self->{master_status} = $?;
    delete $self->{master_pid};
    return $self->{master_status};
}

# Processes that belong to this instance: any live process whose command
# line names our config dir (master and the children it execs with -c
# DIR/etc), plus known PIDs (from smtpctl status) still running a Postern
# program. A PID is only ever trusted after its /proc entry was checked.
my $PROG_RE = qr{(?:^|/)(?:master|smtpd|qmgr|dnsd|deliver|relay|local|signer|smtpctl)$};

sub _instance_pids {
    my ($self) = @_;
    my %p;
    for my $pid (keys %{ $self->{known} }) {
        my ($argv0) = proc_cmdline($pid);
        $p{$pid} = 1 if defined $argv0 && $argv0 =~ $PROG_RE && pid_alive($pid);
    }
    opendir(my $dh, '/proc') or return keys %p;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        next if $pid == $$ || $p{$pid};
        my @cmd = proc_cmdline($pid);
        next unless @cmd && $cmd[0] =~ $PROG_RE;
        next unless grep { $_ eq $self->{etc} || index($_, "$self->{dir}/") == 0 } @cmd;
        $p{$pid} = 1 if pid_alive($pid);
    }
    closedir $dh;
    return keys %p;
}

# procs: this instance's live processes found in /proc (not through
# smtpctl): list of { pid, name } with name = basename of argv[0].
sub procs {
    my ($self) = @_;
    my @out;
    for my $pid (sort { $a <=> $b } $self->_instance_pids) {
        my ($argv0) = proc_cmdline($pid);
        next unless defined $argv0;
        (my $name = $argv0) =~ s{.*/}{};
        push @out, { pid => $pid, name => $name };
    }
    return @out;
}

sub stop {
    my ($self, %o) = @_;
    return undef unless $$ == $self->{owner};
    my $pid = $self->{master_pid};
    if ($pid) {
        $self->status(timeout => 5) if pid_alive($pid);    # refresh child PIDs
        kill 'TERM', $pid;
        if (!defined $self->wait_exit($o{timeout} // 15)) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $self->{master_status} = $?;
            delete $self->{master_pid};
            push @{ $self->{leftovers} }, $pid;
        }
    }
    # children must go with master; give them a moment, then kill by PID
    my @left;
    wait_until($o{grace} // 3, sub { @left = $self->_instance_pids; !@left }, 0.05);
    if (@left) {
        kill 'KILL', @left;
        push @{ $self->{leftovers} }, @left;
        wait_until(3, sub { !grep { pid_alive($_) } @left }, 0.05);
    }
    $self->_check_sanitizer;
    return $self->{master_status};
}

# A sanitizer build (make check SANITIZE=1) writes its reports to stderr,
# which is master.log: any report there fails the test, once per instance.
sub _check_sanitizer {
    my ($self) = @_;
    return if $self->{sanitizer_checked} || !-s $self->{log};
    my @hits = grep { /ERROR: (?:Address|Leak|Memory|Thread)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer/ }
        split /\n/, $self->_log_from(0);
    return unless @hits;
    $self->{sanitizer_checked} = 1;
    my $tb = eval { require Test::More; Test::More->builder } or return;
    $tb->ok(0, "no sanitizer report in $self->{log}");
    $tb->diag(join("\n", @hits[0 .. ($#hits < 20 ? $#hits : 19)]));
}

sub restart {
    my ($self, %o) = @_;
    $self->stop;
    return $self->start(%o);
}

sub _cleanup {
    my ($self) = @_;
    return if $self->{cleaned} || $$ != $self->{owner};
    $self->{cleaned} = 1;
    delete $LIVE{refaddr $self};
    eval { $_->stop for @{ $self->{peers} } };
    eval { $self->stop };
    my $tb = eval { require Test::More; Test::More->builder };
    if ($tb && !$tb->is_passing && -s $self->{log}) {
        $tb->diag("--- tail of $self->{log}:\n" . $self->log_tail(40));
    }
    if ($ENV{POSTERN_KEEP}) {
        $tb ? $tb->diag("POSTERN_KEEP: instance kept in $self->{dir}")
            : print STDERR "instance kept in $self->{dir}\n";
    } else {
        remove_tree($self->{dir}, { safe => 0 });
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $?, $!);
    $self->_cleanup;
}

# ---- commands ----

sub _run {
    my ($self, $timeout, @cmd) = @_;
    my $n   = ++$self->{runs};
    my $out = "$self->{dir}/.run$n.out";
    my $err = "$self->{dir}/.run$n.err";
    my $pid = fork() // croak "fork: $!";
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>', $err;
        exec @cmd or POSIX::_exit(127);
    }
    my $st;
    my $done = wait_until($timeout, sub { waitpid($pid, WNOHANG) == $pid ? ($st = $?, 1) : 0 }, 0.02);
    if (!$done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
        $st = -1;
    }
    my ($o, $e) = (slurp($out), slurp($err));
    unlink $out, $err;
    $e .= "[harness: killed after ${timeout}s]\n" if $st == -1;
    my $code = $st == -1 ? -1 : ($st & 127) ? 128 + ($st & 127) : $st >> 8;
    return ($code, $o, $e);
}

sub smtpctl3 {
    my ($self, @args) = @_;
    my $timeout = 30;
    if (@args && ref $args[0] eq 'HASH') { $timeout = shift(@args)->{timeout} // 30 }
    return $self->_run($timeout, "$ROOT/bin/smtpctl", '-c', $self->{etc}, @args);
}

sub smtpctl {
    my ($self, @args) = @_;
    my ($code, $o, $e) = $self->smtpctl3(@args);
    return ($code, $o . $e);
}

sub status {
    my ($self, %o) = @_;
    my ($code, $out, $err) = $self->smtpctl3({ timeout => $o{timeout} // 15 }, 'status', '--json');
    $self->{status_error} = "exit $code: $err";
    return undef unless $code == 0;
    my $st = eval { JSON::PP->new->decode($out) };
    if (!$st || ref $st ne 'HASH') {
        $self->{status_error} = "bad JSON from smtpctl status --json: $out";
        return undef;
    }
    for my $p (@{ $st->{processes} || [] }) {
        $self->{known}{ $p->{pid} } = $p->{name} if $p->{pid} && $p->{pid} =~ /^\d+$/;
    }
    return $st;
}

sub status_error { $_[0]{status_error} }

sub pid_of {
    my ($self, $name, $st) = @_;
    $st //= $self->status or return undef;
    for my $p (@{ $st->{processes} || [] }) {
        return $p->{pid} if $p->{name} eq $name;
    }
    return undef;
}

sub known_pids { keys %{ $_[0]{known} } }

# ---- log ----

sub _log_from {
    my ($self, $off) = @_;
    open my $fh, '<', $self->{log} or return '';
    seek $fh, $off, 0;
    local $/;
    my $t = <$fh>;
    return $t // '';
}

sub mark_log { my ($self) = @_; $self->{mark} = $self->_log_size; return $self->{mark} }
sub log_text { my ($self) = @_; return $self->_log_from($self->{mark}) }

sub log_lines {
    my ($self, $re) = @_;
    return grep { $_ =~ $re } split /\n/, $self->log_text;
}

sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $line;
    wait_until($timeout // 10, sub { ($line) = $self->log_lines($re); defined $line }, 0.05);
    return $line;
}

sub log_tail {
    my ($self, $n) = @_;
    my @l = split /\n/, slurp($self->{log});
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l) . "\n";
}

# ---- mail ----

sub make_message {
    my ($self, %a) = @_;
    my $mid = $a{message_id} // sprintf('<%d.%d.%d@client.test>', time() * 1000, $$, ++$msg_counter);
    my $to = join(', ', @{ $a{to} || ['nobody@example.test'] });
    my $text = '';
    $text .= "From: " . ($a{from} || 'sender@client.test') . "\n";
    $text .= "To: $to\n";
    $text .= "Subject: " . ($a{subject} // 'Postern test') . "\n";
    $text .= "Date: " . POSIX::strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime) . "\n";
    $text .= "Message-ID: $mid\n";
    $text .= "$_\n" for @{ $a{headers} || [] };
    $text .= "\n" . ($a{body} // "This is a test message.\n");
    return ($text, $mid);
}

sub send_mail {
    my ($self, %a) = @_;
    my ($qid, $mid, $err) = $self->_send_mail(%a);
    $self->{smtp_error} = $err;
    return wantarray ? ($qid, $mid, $err) : $qid;
}

sub smtp_error { $_[0]{smtp_error} }

sub _send_mail {
    my ($self, %a) = @_;
    my @to = ref $a{to} ? @{ $a{to} } : ($a{to} // ());
    my ($data, $mid) = defined $a{data} ? ($a{data}, undef) : $self->make_message(%a, to => \@to);
    ($mid) = $data =~ /^Message-ID:\s*(\S+)/mi unless defined $mid;
    my $host = $a{host} // '127.0.0.1';
    my $port = $a{port} // $self->{port};
    my $smtp = Net::SMTP->new(Host => $host, Port => $port,
        ($a{local_addr} ? (LocalAddr => $a{local_addr}) : ()),
        Hello => $a{helo} // 'client.test', Timeout => $a{timeout} // 30)
        or return (undef, $mid, "connect $host:$port: $@");
    my $fail = sub {
        my $step = shift;
        my $e = "$step: " . ($smtp->code // '') . ' ' . join('', $smtp->message // '');
        $e =~ s/\s+\z//;
        $smtp->close;
        return (undef, $mid, $e);
    };
    if ($a{starttls}) {
        $smtp->starttls(SSL_verify_mode => 0) or return $fail->('starttls');
    }
    if ($a{auth}) {
        my ($u, $p) = @{ $a{auth} };
        $smtp->command('AUTH', 'PLAIN', encode_base64("\0$u\0$p", ''));
        $smtp->response == 2 or return $fail->('auth');    # CMD_OK
    }
    $smtp->mail($a{from} // 'sender@client.test') or return $fail->('mail');
    my $ok = 0;
    for my $r (@to) {
        if ($smtp->to($r)) { $ok++ }
        else { return $fail->("rcpt $r") unless $a{partial} }
    }
    return $fail->('rcpt (none accepted)') unless $ok;
    $smtp->data or return $fail->('data');
    $smtp->datasend($data);
    $smtp->dataend or return $fail->('end of data');
    my $reply = join('', $smtp->message // '');
    my ($qid) = $reply =~ /queued as\s+(\S+)/i;
    $smtp->quit;
    return ($qid // 1, $mid, undef);
}

# ---- peers ----

sub peer {
    my ($self, %o) = @_;
    require Postern::Peer;
    $o{dir}  //= $self->{dir};
    $o{port} //= $self->{direct_port};
    my $peer = Postern::Peer->new(%o);
    push @{ $self->{peers} }, $peer;
    return $peer;
}

1;
