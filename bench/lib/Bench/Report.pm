package Bench::Report;

# Bench::Report - collect benchmark runs and print the table.
#
#   my $rep = Bench::Report->new(out => $dir, mtas => [...]);
#   $rep->machine(repo => $repo, roots => $roots, work => $work);
#   $rep->disk({ file => N, commit => N, append => N });
#   $rep->add(\%run);        # appended to $dir/runs.jsonl at once
#   print $rep->finish;      # markdown, also written to $dir/table.md
#   Bench::Report->from_jsonl($file) rebuilds a report from a runs file
#   median(@v)  pct(\@sorted, $p)  one_line(\%run)
#
# A cell's figure for a target is the median over its runs that have the
# figure; Postern's "x Postfix" ratios are medians of per-run ratios
# (run i of Postern over run i of Postfix, same cell).

use strict;
use warnings;
use JSON::PP ();
use POSIX qw(strftime);

my $JSON = JSON::PP->new->canonical;

sub new {
    my ($class, %o) = @_;
    my $self = bless { out => $o{out}, mtas => $o{mtas}, runs => [], disk => undef, info => [] },
        $class;
    return $self;
}

sub from_jsonl {
    my ($class, $file, %o) = @_;
    my $self = $class->new(%o);
    open my $fh, '<', $file or die "bench: $file: $!\n";
    while (my $l = <$fh>) {
        my $r = eval { $JSON->decode($l) } or next;
        if ($r->{type} && $r->{type} eq 'disk')       { $self->{disk} = $r->{rates} }
        elsif ($r->{type} && $r->{type} eq 'machine') { $self->{info} = $r->{lines} }
        else                                          { push @{ $self->{runs} }, $r }
    }
    close $fh;
    my %m = map { $_->{target} => 1 } @{ $self->{runs} };
    $self->{mtas} //= [ grep { $m{$_} } qw(postern postfix opensmtpd) ];
    return $self;
}

sub _append {
    my ($self, $rec) = @_;
    return unless $self->{out};
    open my $fh, '>>', "$self->{out}/runs.jsonl" or die "bench: runs.jsonl: $!\n";
    print $fh $JSON->encode($rec), "\n";
    close $fh;
}

sub _cmd {
    my (@c) = @_;
    my $pid = open(my $fh, '-|');
    return '' unless defined $pid;
    if ($pid == 0) { open STDERR, '>', '/dev/null'; exec @c or POSIX::_exit(127) }
    local $/;
    my $t = <$fh> // '';
    close $fh;
    $t =~ s/\s+$//;
    return $t;
}

sub machine {
    my ($self, %o) = @_;
    my @l;
    my ($model) = _cmd('sh', '-c', "grep -m1 'model name' /proc/cpuinfo") =~ /:\s*(.*)/;
    my $cpus = _cmd('nproc');
    my ($mem) = _cmd('sh', '-c', 'grep MemTotal /proc/meminfo') =~ /(\d+)/;
    push @l, sprintf('CPU: %s, %s cores; memory %.1f GiB', $model // '?', $cpus, ($mem // 0) / 1048576);
    push @l, 'kernel: ' . _cmd('uname', '-sr') . '; Debian ' . _cmd('cat', '/etc/debian_version');
    my $df = _cmd('df', '-PT', $o{work});
    my @f = split ' ', (split /\n/, $df)[-1] // '';
    if (@f >= 7) {
        (my $dev = $f[0]) =~ s{^/dev/}{};
        my $rot = _cmd('cat', "/sys/block/$dev/queue/rotational");
        push @l, "spools on $f[0] ($f[1]" . ($rot eq '0' ? ', non-rotational' : $rot eq '1' ? ', rotational' : '')
            . "), mounted on $f[6]";
    }
    my $rev = _cmd('git', '-C', $o{repo}, 'rev-parse', '--short', 'HEAD');
    my $dirty = _cmd('git', '-C', $o{repo}, 'status', '--porcelain', '--untracked-files=no') ne '' ? '+changes' : '';
    push @l, "Postern: git $rev$dirty (make, -O2)";
    for my $p (qw(postfix opensmtpd)) {
        my ($deb) = glob("$o{roots}/../debs/${p}_*.deb");
        push @l, "$p: " . ($deb ? ($deb =~ s{.*/}{}r) : 'not unpacked');
    }
    push @l, 'date: ' . strftime('%Y-%m-%d %H:%M %Z', localtime);
    $self->{info} = \@l;
    $self->_append({ type => 'machine', lines => \@l });
}

sub disk {
    my ($self, $rates) = @_;
    $self->{disk} = $rates;
    $self->_append({ type => 'disk', rates => $rates });
}

sub add {
    my ($self, $r) = @_;
    delete $r->{$_} for grep { /^_/ } keys %$r;
    push @{ $self->{runs} }, $r;
    $self->_append($r);
}

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# Nearest-rank percentile of a sorted list.
sub pct {
    my ($v, $p) = @_;
    return undef unless @$v;
    my $i = int($p / 100 * @$v + 0.999999) - 1;
    $i = 0 if $i < 0;
    $i = $#$v if $i > $#$v;
    return $v->[$i];
}

sub _f {
    my ($v, $fmt) = @_;
    return '-' unless defined $v;
    return sprintf($fmt // '%.0f', $v);
}

sub _mb { return defined $_[0] ? sprintf('%.0f', $_[0] / 1048576) : '-' }

sub one_line {
    my ($r) = @_;
    my $s = sprintf('%-9s %4s c=%-2d N=%-5d run %d: ', $r->{target}, $r->{label}, $r->{conc}, $r->{n},
        $r->{run});
    return $s . "ERROR $r->{error}" if $r->{error};
    $s .= sprintf('accept %s/s e2e %s/s box %s%% (idle box before: %s%%)', _f($r->{accept_rate}),
        _f($r->{e2e_rate}), _f(defined $r->{box_busy} ? 100 * $r->{box_busy} : undef),
        _f(defined $r->{bg_busy} ? 100 * $r->{bg_busy} : undef));
    return $s if $r->{target} eq 'ceiling';
    $s .= sprintf(' p50 %s ms p99 %s ms RSS %s MB PSS %s MB CPU %s s/1000', _f($r->{p50_ms}, '%.1f'),
        _f($r->{p99_ms}, '%.1f'), _mb($r->{rss}), _mb($r->{pss}), _f($r->{cpu_per_1000}, '%.2f'));
    return $s;
}

my %NAME = (ceiling => 'ceiling: smtp-source → smtp-sink', postern => 'Postern',
    postfix => 'Postfix', opensmtpd => 'OpenSMTPD');

sub _ratio {
    my ($self, $runs, $key) = @_;
    my (%pe, %pf, @r);
    for my $r (@$runs) {
        next if $r->{error} || !defined $r->{$key};
        $pe{ $r->{run} } = $r->{$key} if $r->{target} eq 'postern';
        $pf{ $r->{run} } = $r->{$key} if $r->{target} eq 'postfix';
    }
    push @r, $pe{$_} / $pf{$_} for grep { defined $pf{$_} && $pf{$_} > 0 } keys %pe;
    return median(@r);
}

sub finish {
    my ($self) = @_;
    my @t;
    push @t, 'Machine:', map { "- $_" } @{ $self->{info} };
    if (my $d = $self->{disk}) {
        push @t, '', sprintf('Disk ceiling (bench/fsyncrate, median of 3): %s fsync\'d new files/s; '
                . '%s full commits/s (new file + fsync + rename + directory fsync); %s fsync\'d '
                . '4 KiB appends/s', _f($d->{file}), _f($d->{commit}), _f($d->{append}));
    }
    push @t, '',
        '| size | conc | MTA | N | runs | accept/s | end-to-end/s | p50 ms | p99 ms | peak RSS MB | peak PSS MB | CPU s/1000 msgs | box busy | Postern ÷ Postfix |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |';
    my %cells;
    for my $r (@{ $self->{runs} }) {
        push @{ $cells{"$r->{size}:$r->{conc}"} }, $r;
    }
    for my $key (sort { my @a = split /:/, $a; my @b = split /:/, $b; $a[0] <=> $b[0] || $a[1] <=> $b[1] }
        keys %cells)
    {
        my $runs = $cells{$key};
        for my $target ('ceiling', @{ $self->{mtas} }) {
            my @rs = grep { $_->{target} eq $target } @$runs;
            next unless @rs;
            my @ok = grep { !$_->{error} } @rs;
            my %m;
            for my $k (qw(accept_rate e2e_rate p50_ms p99_ms rss pss cpu_per_1000 box_busy)) {
                $m{$k} = median(map { $_->{$k} } @ok);
            }
            my $ratio = '';
            if ($target eq 'postern') {
                my @p;
                for ([ 'accept', 'accept_rate' ], [ 'e2e', 'e2e_rate' ], [ 'CPU', 'cpu_per_1000' ]) {
                    my $x = $self->_ratio($runs, $_->[1]);
                    push @p, sprintf('%s %.2f×', $_->[0], $x) if defined $x;
                }
                $ratio = join(', ', @p);
            }
            my $err = @ok < @rs ? sprintf(' (%d failed)', @rs - @ok) : '';
            my $c = $target eq 'ceiling';
            push @t, sprintf('| %s | %d | %s | %d | %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
                $rs[0]{label}, $rs[0]{conc}, $NAME{$target} // $target, $rs[0]{n}, scalar @ok, $err,
                _f($m{accept_rate}), _f($m{e2e_rate}), $c ? '' : _f($m{p50_ms}, '%.1f'),
                $c ? '' : _f($m{p99_ms}, '%.1f'), $c ? '' : _mb($m{rss}), $c ? '' : _mb($m{pss}),
                $c ? '' : _f($m{cpu_per_1000}, '%.2f'),
                defined $m{box_busy} ? sprintf('%.0f%%', 100 * $m{box_busy}) : '-', $ratio);
        }
    }
    my @errs = grep { $_->{error} } @{ $self->{runs} };
    if (@errs) {
        push @t, '', 'Failed runs:';
        push @t, map { "- $_->{target} $_->{label} c=$_->{conc} run $_->{run}: $_->{error}" } @errs;
    }
    my $text = join("\n", @t) . "\n";
    if ($self->{out}) {
        open my $fh, '>', "$self->{out}/table.md" or die "bench: table.md: $!\n";
        print $fh $text;
        close $fh;
    }
    return $text;
}

1;
