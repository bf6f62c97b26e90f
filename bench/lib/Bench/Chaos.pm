package Bench::Chaos;

# Bench::Chaos - the fault campaign behind bench/chaos: mail sent at a
# steady rate while every Postern process, master included, is killed
# with SIGKILL at random moments; then count what arrived.
#
#   my $r = Bench::Chaos::run(messages => 10000, kills => 100, rate => 200,
#       clients => 8, drain => 120, seed => 1, restart_delay => 0.5,
#       giveup => 60, dns => 1, keep => 0, sink_forget => 0, say => sub { print @_ });
#   print Bench::Chaos::table($r);
#
# What run does
# - A temporary instance (t/lib/Postern/Test.pm: its own spool, config
#   and loopback ports; retry_delay 2s) whose etc/domains sends
#   direct.chaos to the sink by an mx= override, relay.chaos through relay
#   (route=relay, one gateway: the sink), and, when nsd is installed,
#   dns.chaos through a real MX lookup (nsd on 127.0.0.1, so dnsd does
#   work). The sender's domain, client.chaos, goes to the sink too: a
#   delivery status notice would arrive there and be counted.
# - The sink: Bench::IdSink on 127.0.2.1, which writes down the
#   Message-ID of each message before it answers 250 (with sink_forget
#   => N it forgets every N-th one: a self-test that losses are caught).
# - `clients` forked senders share the messages (message i, from 1, goes
#   to client (i-1) mod C) and send it at t0 + (i-1)/rate (or at once when
#   late), one recipient each, up to 10 messages per SMTP session. Every
#   attempt has its own Message-ID, <chaos.RUN.I.A@client.chaos> (message I,
#   attempt A): a message counts as accepted when one attempt got 250
#   after the final dot. An attempt that failed (no connection, a 4xx or
#   5xx, the session cut) is written down with its step and reply and
#   retried after a pause, with a new Message-ID, for up to `giveup`
#   seconds; then the message is given up. Those attempts are not
#   accepted mail and cannot be lost; one that was cut after the final dot
#   may still arrive (smtpd may have committed it), and is counted apart.
# - Kills: `kills` moments drawn uniformly over the planned sending window
#   (messages / rate seconds), the roles in rounds of six (each of
#   master smtpd qmgr dnsd deliver relay once per round, in a random
#   order), so every role is hit when kills >= 6. A child's PID is found in
#   /proc: argv[0] names the role, the command line names this instance's
#   config directory, and its parent is the running master. When the role
#   has no process at that moment (a child in master's restart backoff),
#   the kill waits for it, for up to 30 s, then is skipped.
# - Master killed (by us or not): as systemd's Restart=on-failure with
#   KillMode=control-group would, the script waits for master's children
#   to exit (they do: PR_SET_PDEATHSIG), SIGKILLs any left after 10 s,
#   waits `restart_delay` seconds and starts master again.
# - Drain: after the last sender finished and the last kill, wait up to
#   `drain` seconds for every accepted Message-ID to be at the sink and
#   queue/ to be empty. Then count, read master's log (restarts, deaths
#   that were not our kills, sanitizer reports) and stop everything.
#
# The result (a hashref, one line of runs.jsonl) has: messages accepted
# refused_attempts (and refused_by step) gave_up arrived lost duplicated
# dup_copies unconfirmed_arrived notices other_ids queue_left bounced bad
# kills_by_role restarts_by_role other_deaths_by_role kills_skipped
# setup_s send_s drain_s drained total_s accept_rate sanitizer_reports
# (and other_death_lines: master's reason and the death line), the
# options, the first lost messages with their log lines (lost_detail),
# and events (every kill and master restart, with times).
#
# Every process it starts (senders, sink, nsd, the Postern instance) is
# stopped by PID at the end or on an error or signal; all traffic is on
# 127.0.0.0/8; every wait is bounded.

use strict;
use warnings;
use Carp qw(croak);
use Errno qw(EINTR);
use IO::Select;
use IO::Socket::INET;
use List::Util qw(shuffle min);
use POSIX qw(:sys_wait_h strftime);
use Time::HiRes qw(time sleep);

use Bench::IdSink;
use Postern::Test;
use Postern::Util qw(pid_alive proc_cmdline wait_until slurp);

our @ROLES = qw(master smtpd qmgr dnsd deliver relay);
my $SINK_ADDR = '127.0.2.1';

my @KIDS;    # sender PIDs, for cleanup
my $OWNER = $$;

sub _kill_kids {
    return unless $$ == $OWNER;
    my @live = grep { waitpid($_, WNOHANG) == 0 } @KIDS;
    kill 'TERM', @live if @live;
    wait_until(3, sub { !grep { waitpid($_, WNOHANG) == 0 } @live }, 0.02) if @live;
    kill 'KILL', grep { pid_alive($_) } @live;
    waitpid($_, 0) for grep { pid_alive($_) } @live;
    @KIDS = ();
}

END { local $?; _kill_kids() }

# ---------------------------------------------------------------- run

sub run {
    my (%o) = @_;
    $o{messages}      //= 10000;
    $o{kills}         //= 100;
    $o{rate}          //= 200;
    $o{clients}       //= 8;
    $o{drain}         //= 120;
    $o{seed}          //= int(time) % 100000;
    $o{restart_delay} //= 0.5;
    $o{giveup}        //= 60;
    $o{dns}           //= 1;
    my $say = $o{say} // sub { print @_ };
    croak 'messages, rate and clients must be positive'
        unless $o{messages} > 0 && $o{rate} > 0 && $o{clients} > 0;
    srand($o{seed});

    my %r = (messages => $o{messages}, kills_planned => $o{kills}, rate => $o{rate},
        clients => $o{clients}, drain_limit => $o{drain}, seed => $o{seed},
        restart_delay => $o{restart_delay}, giveup => $o{giveup},
        ($o{sink_forget} ? (sink_forget => $o{sink_forget}) : ()),
        date => strftime('%Y-%m-%dT%H:%M:%S', localtime), events => []);
    my $t_start = time;
    my $t_base = $t_start;    # events are stamped from here: the start of sending, once known
    my $run_id = sprintf('%d%04d', time, $$ % 10000);

    # --- the instance, routes, sink
    my $ns;
    if ($o{dns}) {
        require Postern::DNS;
        if (Postern::DNS::Nsd::nsd_path()) {
            $ns = Postern::DNS::Nsd->new(zones => { 'dns.chaos' => Postern::DNS::mx_zone('dns.chaos', $SINK_ADDR) });
            $ns->start;
        }
    }
    my @domains = ('direct.chaos', 'relay.chaos', ($ns ? ('dns.chaos') : ()));
    $r{domains} = \@domains;
    $ENV{POSTERN_KEEP} = 1 if $o{keep};    # read when the instance is cleaned up
    my $pt = Postern::Test->new(log_level => 'basic', retry_delay => '2s',
        ($ns ? (dns_servers => $ns->addr) : ()));
    my $sport = $pt->direct_port;
    $pt->config(relay_gateways => "sink=$SINK_ADDR:$sport/none");
    $pt->write_file('domains', <<"MAP");
# written by bench/chaos
direct.chaos   mx=$SINK_ADDR
relay.chaos    route=relay gateways=sink
client.chaos   mx=$SINK_ADDR
MAP
    my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
    die "chaos: smtpctl makemap failed: $out\n" if $rc != 0;
    $r{instance} = $pt->dir;
    my $sink = Bench::IdSink->new(addr => $SINK_ADDR, port => $sport,
        file => $pt->dir . '/arrivals.log', lifetime => 4 * 3600, forget_every => $o{sink_forget});
    $pt->start;
    my %master_pids = ($pt->master_pid => 1);

    my $ev = sub {
        my ($what, %f) = @_;
        my $e = { t => sprintf('%.3f', time - $t_base) + 0, ev => $what, %f };
        push @{ $r{events} }, $e;
        $say->(sprintf("  %8.3fs %s\n", $e->{t}, join(' ', $what,
            map { "$_=$f{$_}" } grep { defined $f{$_} } sort keys %f)));
    };

    # --- kill plan: moments over the window, roles in shuffled rounds
    my $window = $o{messages} / $o{rate};
    my @times = sort { $a <=> $b } map { rand($window) } 1 .. $o{kills};
    my @roles;
    push @roles, shuffle(@ROLES) while @roles < $o{kills};
    my @plan = map { { at => $times[$_], role => $roles[$_] } } 0 .. $o{kills} - 1;

    # --- senders
    my $cdir = $pt->dir . '/clients';
    mkdir $cdir;
    my $t0 = time + 0.2;
    $t_base = $t0;
    $r{setup_s} = sprintf('%.1f', $t0 - $t_start) + 0;
    my %c = (port => $pt->port, t0 => $t0, rate => $o{rate}, n => $o{messages},
        clients => $o{clients}, run => $run_id, giveup => $o{giveup}, domains => \@domains,
        deadline => $t0 + $window + $o{giveup} + 60 + 2 * $o{kills} * ($o{restart_delay} + 1));
    my %client_pid;
    for my $k (0 .. $o{clients} - 1) {
        my $file = "$cdir/client$k.log";
        my $pid = fork() // die "chaos: fork: $!\n";
        if ($pid == 0) {
            $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
            $SIG{PIPE} = 'IGNORE';
            eval { _client(\%c, $k, $file) };
            POSIX::_exit($@ ? 1 : 0);
        }
        push @KIDS, $pid;
        $client_pid{$pid} = $k;
    }
    $say->(sprintf("chaos: %d messages at %g/s from %d senders to %s; %d kills over %.0f s "
        . "(seed %d); instance %s\n", $o{messages}, $o{rate}, $o{clients}, join(', ', @domains),
        $o{kills}, $window, $o{seed}, $pt->dir));

    # --- the campaign: kills, master's restarts, progress
    my (%kills, %skipped, @killed_pids);
    my $restart = sub {
        my ($why) = @_;
        my $old = $pt->master_pid;
        $pt->wait_exit(10);
        my $td = time;
        my @left;
        wait_until(10, sub { @left = map { $_->{pid} } $pt->procs; !@left }, 0.02);
        if (@left) {
            kill 'KILL', @left;
            wait_until(5, sub { !grep { pid_alive($_) } @left }, 0.02);
            $ev->('leftovers_killed', pids => join(',', @left));
        }
        sleep $o{restart_delay};
        for my $try (1 .. 5) {
            if ($pt->start(nodie => 1)) {
                $master_pids{ $pt->master_pid } = 1;
                $r{master_restarts}++;
                $ev->('master_started', pid => $pt->master_pid, after => $why,
                    children_gone_s => sprintf('%.2f', time - $td - $o{restart_delay}));
                return;
            }
            $ev->('master_start_failed', try => $try);
            $say->($pt->start_error // '');
            sleep 1;
        }
        die "chaos: master would not start again; see " . $pt->log_path . "\n";
    };
    my $check_master = sub {
        my $p = $pt->master_pid;
        return if $p && pid_alive($p);
        $r{master_deaths_not_ours}++;
        $ev->('master_died', pid => $p // '?');
        $restart->('an unexpected death');
    };

    my ($next_progress, $j) = (time + 5, 0);
    my %done_clients;
    my $campaign_end = $c{deadline} + 30;
    while (time < $campaign_end) {
        for my $pid (keys %client_pid) {
            next if $done_clients{$pid};
            $done_clients{$pid} = $? if waitpid($pid, WNOHANG) == $pid;
        }
        my $senders_done = keys(%done_clients) == keys(%client_pid);
        if ($j < @plan && time - $t0 >= $plan[$j]{at}) {
            my $k = $plan[$j];
            my $pid = _role_pid($pt, $k->{role});
            if ($pid) {
                if (kill 'KILL', $pid) {
                    $kills{ $k->{role} }++;
                    push @killed_pids, $pid;
                    $ev->('kill', role => $k->{role}, pid => $pid,
                        late_s => sprintf('%.2f', time - $t0 - $k->{at}));
                    if ($k->{role} eq 'master') {
                        $restart->('our kill');
                    }
                }
                $j++;
            } elsif (time - $t0 - $k->{at} > 30) {
                $skipped{ $k->{role} }++;
                $ev->('kill_skipped', role => $k->{role}, why => 'no process for 30 s');
                $j++;
            }
        }
        $check_master->();
        if (time >= $next_progress) {
            $sink->poll;
            $say->(sprintf("  %8.3fs progress: %d kills done, %d at the sink, %d in queue/\n",
                time - $t0, scalar(@killed_pids), $sink->total, scalar($pt->spool_files('queue'))));
            $next_progress = time + 5;
        }
        last if $senders_done && $j >= @plan;
        sleep 0.02;
    }
    my $t_send_end = time;
    $r{send_s} = sprintf('%.1f', $t_send_end - $t0) + 0;
    if ($j < @plan || keys(%done_clients) < keys(%client_pid)) {
        $r{error} = sprintf('campaign did not finish in time: %d of %d kills, %d of %d senders done',
            $j, scalar @plan, scalar keys %done_clients, scalar keys %client_pid);
        _kill_kids();
    }
    $r{sender_failures} = scalar grep { $_ } values %done_clients;

    # --- what the senders saw
    my (%accepted, %unconfirmed, %refused_by, $refused, $gave_up, %qid_of, $last250);
    $refused = $gave_up = 0;
    for my $k (0 .. $o{clients} - 1) {
        open my $fh, '<', "$cdir/client$k.log" or next;
        while (my $l = <$fh>) {
            chomp $l;
            my @f = split /\t/, $l;
            if ($f[0] eq 'A') {
                $accepted{ $f[3] } = $f[1];
                $qid_of{ $f[3] } = $f[4];
                $last250 = $f[5] if !defined $last250 || $f[5] > $last250;
            } elsif ($f[0] eq 'F') {
                $refused++;
                $refused_by{ $f[4] }++;
                $unconfirmed{ $f[3] } = 1 if $f[4] eq 'eod-noreply';
            } elsif ($f[0] eq 'G') {
                $gave_up++;
            }
        }
        close $fh;
    }
    $r{accepted} = scalar keys %accepted;
    $r{refused_attempts} = $refused;
    $r{refused_by} = \%refused_by;
    $r{gave_up} = $gave_up;
    $r{accept_rate} = sprintf('%.1f', $r{accepted} / ($last250 - $t0)) + 0
        if $last250 && $last250 > $t0;

    # --- drain
    my $drained = 0;
    my $dend = time + $o{drain};
    while (1) {
        $sink->poll;
        my $ids = $sink->ids;
        if (!grep { !$ids->{$_} } keys %accepted) {
            $drained = 1 unless scalar $pt->spool_files('queue');
        }
        last if $drained || time >= $dend;
        $check_master->();
        sleep 0.1;
    }
    $r{drain_s} = sprintf('%.1f', time - $t_send_end) + 0;
    $r{drained} = $drained ? 1 : 0;
    sleep 0.5;    # anything still on its way (a duplicate in flight)
    $sink->poll;

    # --- counting
    my $ids = $sink->ids;
    my @lost = sort { $accepted{$a} <=> $accepted{$b} } grep { !$ids->{$_} } keys %accepted;
    $r{arrived} = $r{accepted} - @lost;
    $r{lost} = scalar @lost;
    my @dups = grep { ($ids->{$_} // 0) > 1 } keys %accepted;
    $r{duplicated} = scalar @dups;
    $r{dup_copies} = 0;
    $r{dup_copies} += $ids->{$_} - 1 for @dups;
    $r{unconfirmed_arrived} = scalar grep { !exists $accepted{$_} && /^<chaos\.\Q$run_id\E\./ } keys %$ids;
    $r{notices} = scalar grep { /\.notice\@/ } keys %$ids;
    $r{other_ids} = scalar grep { !/^<chaos\.\Q$run_id\E\./ && !/\.notice\@/ } keys %$ids;
    $r{queue_left} = scalar $pt->spool_files('queue');
    $r{bounced} = scalar $pt->spool_files('bounced');
    $r{bad} = scalar $pt->spool_files('bad');
    $r{kills_by_role} = { map { $_ => $kills{$_} // 0 } @ROLES };
    $r{kills_done} = scalar @killed_pids;
    $r{kills_skipped} = { %skipped };

    # --- master's log: restarts, deaths that were not ours, sanitizers
    my %ours = map { $_ => 1 } @killed_pids;
    my (%restarts, %other, @other_lines, $san);
    $restarts{master} = $r{master_restarts} // 0;
    $other{master} = $r{master_deaths_not_ours} // 0;
    my @recent;    # the last lines before a death that was not ours: what led to it
    open my $lf, '<', $pt->log_path or die "chaos: " . $pt->log_path . ": $!\n";
    while (my $l = <$lf>) {
        if ($l =~ /\bmaster\[(\d+)\]: \w+: (\w+)\[(\d+)\] (.*); restarting it$/) {
            $restarts{$2}++;
            if (!$ours{$3}) {
                $other{$2}++;
                my ($role, $pid) = ($2, $3);
                # master's reason for a kill of its own names the process
                push @other_lines, grep { /broke the protocol|has not answered/
                        && (/\Q$role\E\[$pid\]/ || /restarting \Q$role\E(?:,|$)/) } @recent;
                push @other_lines, $l;
            }
        }
        push @recent, $l;
        shift @recent if @recent > 40;
        $san++ if $l =~ /ERROR: (?:Address|Leak|Memory|Thread)Sanitizer|runtime error: |SUMMARY: \w+Sanitizer/;
    }
    close $lf;
    $r{restarts_by_role} = { map { $_ => $restarts{$_} // 0 } @ROLES };
    $r{other_deaths_by_role} = { map { $_ => $other{$_} // 0 } @ROLES };
    chomp @other_lines;
    my %seen_line;
    @other_lines = grep { !$seen_line{$_}++ } @other_lines;
    $r{other_death_lines} = [ @other_lines[0 .. min($#other_lines, 39)] ] if @other_lines;
    $r{sanitizer_reports} = $san // 0;

    # --- a lost message: what the log says about it
    if (@lost) {
        my $log = slurp($pt->log_path);
        my @detail;
        for my $mid (@lost[0 .. min($#lost, 4)]) {
            my $q = $qid_of{$mid} // '';
            my @lines = $q ne '' ? grep { index($_, $q) >= 0 } split /\n/, $log : ();
            push @detail, { message_id => $mid, message => $accepted{$mid}, queue_id => $q,
                log => [ @lines[0 .. min($#lines, 29)] ] };
        }
        $r{lost_detail} = \@detail;
        $r{lost_ids} = [ @lost[0 .. min($#lost, 99)] ];
    }

    # --- stop; Postern::Test would report sanitizer lines through
    # Test::More, which this script is not: they are counted above.
    $pt->{sanitizer_checked} = 1;
    $sink->stop;
    $pt->stop;
    $ns->stop if $ns;
    $r{log_copy} = $pt->log_path;
    $r{total_s} = sprintf('%.1f', time - $t_start) + 0;
    $r{_pt} = $pt;    # the caller may copy the log before the instance goes
    return \%r;
}

# The PID of ROLE in this instance: master's from the harness, a child's
# from /proc (argv[0] is the role, the command line names our config
# directory, and its parent is the running master).
sub _role_pid {
    my ($pt, $role) = @_;
    my $m = $pt->master_pid;
    return undef unless $m && pid_alive($m);
    return $m if $role eq 'master';
    my $etc = $pt->etc;
    opendir(my $d, '/proc') or return undef;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $st = <$fh> // '';
        close $fh;
        my ($state, $ppid) = $st =~ /\)\s+(\S)\s+(\d+)/ or next;
        next unless $ppid == $m && $state ne 'Z';
        my @cmd = proc_cmdline($pid);
        next unless @cmd && $cmd[0] =~ m{(?:^|/)\Q$role\E$};
        next unless grep { $_ eq $etc } @cmd;
        closedir $d;
        return $pid;
    }
    closedir $d;
    return undef;
}

# ---------------------------------------------------------------- senders

# One sender (a forked process): messages k+1, k+1+C, ... ; one line per
# attempt in FILE:
#   A  I  ATTEMPT  MESSAGE-ID  QUEUE-ID  TIME      (250 after the final dot)
#   F  I  ATTEMPT  MESSAGE-ID  STEP  TIME  REPLY   (not accepted)
#   G  I                                           (given up)
sub _client {
    my ($c, $k, $file) = @_;
    open my $log, '>>', $file or die "chaos: $file: $!\n";
    $log->autoflush(1);
    my $s = { port => $c->{port} };
    my $in_session = 0;
    for (my $i = $k + 1; $i <= $c->{n}; $i += $c->{clients}) {
        my $at = $c->{t0} + ($i - 1) / $c->{rate};
        my $wait = $at - time;
        sleep $wait if $wait > 0;
        my $first = time;
        my $dom = $c->{domains}[ $i % @{ $c->{domains} } ];
        for (my $a = 1; ; $a++) {
            if (time > $c->{deadline}) { print $log "G\t$i\n"; last }
            my $mid = "<chaos.$c->{run}.$i.$a\@client.chaos>";
            if ($in_session >= 10) { _quit($s); $in_session = 0 }
            my ($ok, $step, $reply) = _send($s, $i, $a, $mid, "r$i\@$dom");
            if ($ok) {
                $in_session++;
                my ($qid) = $reply =~ /queued as\s+([^\s;,]+)/i;
                printf $log "A\t%d\t%d\t%s\t%s\t%.3f\n", $i, $a, $mid, $qid // '-', time;
                last;
            }
            $reply =~ s/[\r\n\t]+/ /g;
            printf $log "F\t%d\t%d\t%s\t%s\t%.3f\t%s\n", $i, $a, $mid, $step, time, $reply;
            _drop($s);
            $in_session = 0;
            if (time - $first > $c->{giveup}) { print $log "G\t$i\n"; last }
            sleep min(0.05 * $a, 0.5);
        }
    }
    _quit($s);
    close $log;
}

sub _drop { my ($s) = @_; close $s->{sock} if $s->{sock}; delete $s->{sock}; $s->{buf} = '' }

sub _quit {
    my ($s) = @_;
    return unless $s->{sock};
    _put($s, 'QUIT') and _reply($s, 5);
    _drop($s);
}

sub _put {
    my ($s, $text) = @_;
    my $w = syswrite($s->{sock}, "$text\r\n");
    return defined $w && $w == length($text) + 2;
}

# (code, text) of the next reply, or (undef, why).
sub _reply {
    my ($s, $timeout) = @_;
    my $end = time + ($timeout // 30);
    my $text = '';
    while (1) {
        while ((my $i = index($s->{buf}, "\n")) >= 0) {
            my $l = substr($s->{buf}, 0, $i + 1, '');
            $l =~ s/\r?\n\z//;
            $text .= "$l\n";
            return ($1, $text) if $l =~ /^(\d{3})(?: |$)/;
            return (undef, "bad reply line: $l") unless $l =~ /^\d{3}-/;
        }
        my $left = $end - time;
        return (undef, 'timeout') if $left <= 0;
        my @r = IO::Select->new($s->{sock})->can_read($left);
        next if !@r && $! == EINTR;
        return (undef, 'timeout') unless @r;
        my $n = sysread($s->{sock}, my $chunk, 8192);
        return (undef, defined $n ? 'connection closed' : "read: $!") unless $n;
        $s->{buf} .= $chunk;
    }
}

# One attempt: (1, 'ok', reply) or (0, STEP, reply or reason).
sub _send {
    my ($s, $i, $a, $mid, $rcpt) = @_;
    if (!$s->{sock}) {
        $s->{buf} = '';
        $s->{sock} = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $s->{port},
            Proto => 'tcp', Timeout => 5)
            or return (0, 'connect', "$!");
        my ($code, $t) = _reply($s, 30);
        return (0, 'greeting', $t) unless ($code // '') eq '220';
        _put($s, 'EHLO client.chaos') or return (0, 'ehlo', 'write failed');
        ($code, $t) = _reply($s, 30);
        return (0, 'ehlo', $t) unless ($code // '') eq '250';
    }
    my @steps = (
        [ mail => 'MAIL FROM:<load@client.chaos>', '250' ],
        [ rcpt => "RCPT TO:<$rcpt>", '250' ],
        [ data => 'DATA', '354' ],
    );
    for my $st (@steps) {
        _put($s, $st->[1]) or return (0, $st->[0], 'write failed');
        my ($code, $t) = _reply($s, 30);
        return (0, $st->[0], $t) unless ($code // '') eq $st->[2];
    }
    my $date = strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime);
    my $body = "From: load\@client.chaos\r\nTo: $rcpt\r\nSubject: chaos $i attempt $a\r\n"
        . "Date: $date\r\nMessage-ID: $mid\r\n\r\n"
        . "Message $i, attempt $a of a bench/chaos run.\r\n"
        . ("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n" x 12)
        . ".\r\n";
    my $w = syswrite($s->{sock}, $body);
    return (0, 'data', 'write failed') unless defined $w && $w == length $body;
    my ($code, $t) = _reply($s, 60);
    return (0, 'eod-noreply', $t) unless defined $code;
    return (0, "eod-$code", $t) unless $code eq '250';
    return (1, 'ok', $t);
}

# ---------------------------------------------------------------- table

sub table {
    my ($r) = @_;
    my $t = '';
    $t .= sprintf("## bench/chaos, %s\n\n", $r->{date});
    $t .= sprintf("%d messages at %g/s from %d senders to %s; %d kills planned (seed %d); "
        . "master restarted %.1f s after its death; drain limit %d s\n",
        $r->{messages}, $r->{rate}, $r->{clients}, join(', ', @{ $r->{domains} || [] }),
        $r->{kills_planned}, $r->{seed}, $r->{restart_delay}, $r->{drain_limit});
    $t .= "commit $r->{commit}; $r->{machine}\n" if $r->{commit};
    $t .= "\n**self-test: the sink forgot every $r->{sink_forget}th message it accepted**\n"
        if $r->{sink_forget};
    $t .= "\n**ERROR: $r->{error}**\n" if $r->{error};
    $t .= "\n| accepted | arrived | lost | duplicated | refused attempts | given up | "
        . "arrived without 250 | sending | drain | queue/ at end |\n";
    $t .= "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    my $dup = $r->{duplicated} ? sprintf('%d (+%d %s)', $r->{duplicated}, $r->{dup_copies},
        $r->{dup_copies} == 1 ? 'copy' : 'copies') : '0';
    $t .= sprintf("| %d | %d | **%d** | %s | %d | %d | %d | %.1f s (%s/s accepted) | %s | %d |\n",
        $r->{accepted}, $r->{arrived}, $r->{lost}, $dup,
        $r->{refused_attempts}, $r->{gave_up}, $r->{unconfirmed_arrived}, $r->{send_s},
        $r->{accept_rate} // '-', $r->{drained} ? "$r->{drain_s} s" : "not drained in $r->{drain_s} s",
        $r->{queue_left});
    $t .= "\n| role | kills | restarts | deaths not ours |\n| --- | ---: | ---: | ---: |\n";
    my ($tk, $tr, $to) = (0, 0, 0);
    for my $role (@ROLES) {
        my ($k, $re, $o) = map { $r->{$_}{$role} // 0 } qw(kills_by_role restarts_by_role other_deaths_by_role);
        $t .= sprintf("| %s | %d | %d%s | %d |\n", $role, $k, $re, $role eq 'master' ? ' (by bench/chaos)' : '', $o);
        ($tk, $tr, $to) = ($tk + $k, $tr + $re, $to + $o);
    }
    $t .= sprintf("| all | %d | %d | %d |\n", $tk, $tr, $to);
    my @notes;
    my $skip = $r->{kills_skipped} || {};
    push @notes, 'kills skipped (no process for 30 s): ' . join(', ', map { "$_ $skip->{$_}" } sort keys %$skip)
        if %$skip;
    push @notes, 'refused attempts by step: '
        . join(', ', map { "$_ $r->{refused_by}{$_}" } sort keys %{ $r->{refused_by} || {} })
        if $r->{refused_attempts};
    push @notes, "delivery status notices at the sink: $r->{notices}" if $r->{notices};
    push @notes, "messages in bounced/: $r->{bounced}, in bad/: $r->{bad}" if $r->{bounced} || $r->{bad};
    push @notes, "unknown Message-IDs at the sink: $r->{other_ids}" if $r->{other_ids};
    push @notes, "sanitizer reports in master's log: $r->{sanitizer_reports}" if $r->{sanitizer_reports};
    push @notes, "senders that failed: $r->{sender_failures}" if $r->{sender_failures};
    push @notes, sprintf('total run %.1f s', $r->{total_s});
    $t .= "\n" . join("\n", map { "- $_" } @notes) . "\n";
    my @od = @{ $r->{other_death_lines} || [] };
    if (@od) {
        $t .= "\ndeaths that were not our kills, each after master's reason for it if it gave one"
            . (@od > 12 ? ' (the first of them; all in runs.jsonl and master.log)' : '') . ":\n\n";
        $t .= "    $_\n" for @od[0 .. min($#od, 11)];
    }
    for my $d (@{ $r->{lost_detail} || [] }) {
        $t .= "\nlost: message $d->{message}, $d->{message_id}, queue ID $d->{queue_id}:\n";
        $t .= "    $_\n" for @{ $d->{log} };
    }
    return $t;
}

1;
