#!/usr/bin/perl
# smtpctl_docs.t - what is made from the parameter table and smtpctl's
# command table agrees with them and with the parser:
#   - the man pages lint clean (mandoc -Tlint: nothing but references to
#     each other), render with man -l without warnings, and list every
#     command (smtpctl.8), every main.cf parameter (postern.conf.5) and
#     exactly the per-domain ones (postern-domains.5);
#   - the bash completion offers the commands, sub-commands, options and
#     parameter names of the table (bash -c, COMP_WORDS set, COMPREPLY read);
#   - docs/parameters.md is a well-formed table (an escaped '|' stays in
#     its cell), and every default, choice, range bound and value its
#     meanings name ("0: off", "empty: ...") is one the config parser
#     takes, while a value just out of range is refused;
#   - docs/domains.md names no relay_on_errors class the parser refuses.
use strict;
use warnings;
use FindBin;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP qw(decode_json);

my $top = "$FindBin::Bin/../..";
chdir $top or die "chdir $top: $!";
my $smtpctl = "bin/smtpctl";

sub slurp {
    open(my $fh, '<', $_[0]) or die "$_[0]: $!";
    local $/;
    return scalar <$fh>;
}

sub write_text {
    my ($path, $text) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    print $fh $text;
    close $fh;
}

my @params = @{ decode_json(scalar `$smtpctl --json params`) };
my %param = map { $_->{name} => $_ } @params;
my @main_params = grep { $_->{where} ne 'domains only' } @params;
my @domain_params = grep { $_->{where} ne 'main.cf' } @params;

# The forms `smtpctl help` lists: "show queue", "flush", ... (the table).
my @forms;
my %subs;    # word => [sub-commands]
for (split /\n/, scalar `$smtpctl help`) {
    next unless /^  ([a-z]+)(?: ([a-z]+))?(?: |$)/;
    my ($w, $s) = ($1, $2);
    $s = undef if defined $s && !grep { $_ eq $w } qw(show log pause resume dns dkim);
    push @forms, defined $s ? "$w $s" : $w;
    push @{ $subs{$w} }, $s if defined $s;
}
ok(@forms > 30, 'smtpctl help lists the commands') or diag scalar @forms;
ok((grep { $_ eq 'monitor' } @forms) && (grep { $_ eq 'config' } @forms), 'monitor and config among them');

# ---- man pages ----
my %pages = ('postern.8' => 'man8', 'smtpctl.8' => 'man8', 'sendmail.1' => 'man1',
             'mailq.1' => 'man1', 'postern.conf.5' => 'man5', 'postern-domains.5' => 'man5');
my %ours = map { my ($n, $s) = /^(.*)\.(\d)$/; ("$n $s" => 1) } keys %pages;
for my $p (sort keys %pages) {
    ok(-f "build/man/$pages{$p}/$p", "build/man/$pages{$p}/$p is made");
}
SKIP: {
    skip 'mandoc is not installed (make deps)', scalar keys %pages
        unless system('command -v mandoc >/dev/null 2>&1') == 0;
    for my $p (sort keys %pages) {
        my @msgs = `mandoc -Tlint build/man/$pages{$p}/$p 2>&1`;
        # A reference to one of our own pages is fine: they are installed together.
        my @bad = grep { !(/STYLE: referenced manual not found: Xr (\S+) (\d)/ && $ours{"$1 $2"}) } @msgs;
        is(join('', @bad), '', "$p: mandoc -Tlint finds nothing");
    }
}
my %render;
my $cwd = tempdir(CLEANUP => 1);
for my $p (sort keys %pages) {
    my $out = `MANWIDTH=200 MANPAGER=cat PAGER=cat LC_ALL=C man --warnings -l build/man/$pages{$p}/$p 2>$cwd/man.err`;
    is($?, 0, "$p: man -l renders it");
    is(slurp("$cwd/man.err"), '', "$p: without warnings");
    my ($name) = $p =~ /^(.*)\.\d$/;
    like($out, qr/^NAME\n\s+\S/m, "$p: has a NAME section");
    $render{$p} = $out;
}
my @missing = grep { my $f = $_; $render{'smtpctl.8'} !~ /^\s+\Q$f\E( |$)/m } @forms;
is("@missing", '', 'smtpctl.8 lists every command of the table');
for my $p (@main_params) {
    like($render{'postern.conf.5'}, qr/^\s+\Q$p->{name}\E(\s|$)/m, "postern.conf.5 lists $p->{name}")
        or last;
}
my @listed = $render{'postern-domains.5'} =~ /^     ([a-z_]+)(?:\s{2,}|\n)/mg;
my %is_param = map { $_->{name} => 1 } @params;
@listed = grep { $is_param{$_} } @listed;
is_deeply([sort @listed], [sort map { $_->{name} } @domain_params],
          'postern-domains.5 lists exactly the per-domain parameters');
like($render{'postern.conf.5'}, qr/retry_delay\s+wait after a failed attempt\.\s+Type: duration, 1 to 604800 seconds\.\s+Default: .5m.\./,
     'a parameter shows its meaning, type, range and default');

# ---- bash completion ----
my $completion = "$top/build/completion/smtpctl";
ok(-f $completion, 'the bash completion is made');
mkdir "$cwd/etcdir";
write_text("$cwd/domains", '');

# The words bash would offer for a command line (a trailing blank: a new word).
sub complete {
    my ($line) = @_;
    my @w = split / /, $line, -1;
    my $words = join ' ', map { "'$_'" } @w;
    my $script = "cd '$cwd' && . '$completion' && COMP_WORDS=($words) && COMP_CWORD=$#w && "
        . '_smtpctl && printf "%s\n" "${COMPREPLY[@]}"';
    open(my $fh, '-|', 'bash', '--norc', '--noprofile', '-c', $script) or die "bash: $!";
    my @out = grep { length } map { chomp; $_ } <$fh>;
    close $fh;
    return join ' ', sort @out;
}

my %firsts = map { (split / /)[0] => 1 } @forms;
is(complete('smtpctl '), join(' ', sort(keys %firsts, '-c', '--json')),
   'the first word: every command of the table, and the global options');
is(complete('smtpctl sh'), 'show', 'smtpctl sh -> show');
is(complete('smtpctl -c etc --json st'), 'status stop sts', 'after -c DIR and --json, the commands again');
is(complete('smtpctl -c etcd'), 'etcdir', '-c completes a directory');
for my $w (sort keys %subs) {
    is(complete("smtpctl $w "), join(' ', sort @{ $subs{$w} }), "smtpctl $w: its sub-commands");
}
is(complete('smtpctl show q'), 'queue', 'smtpctl show q -> queue');
is(complete('smtpctl log level '), 'basic debug detailed', 'log level: the levels');
is(complete('smtpctl config retry_d'), 'retry_delay retry_delay_max', 'config: parameter names');
is(complete('smtpctl config -d --json max_c'), 'max_connections', 'config: names after its options');
is(complete('smtpctl config -'), '--json -d', 'config: its options');
is(complete('smtpctl config mx'), '', 'config: not the per-domain-only options');
is(complete('smtpctl params mx'), 'mx', 'params: those too');
is(complete('smtpctl flush --'), '--domain --recipient --sender', 'flush: the selection options');
is(complete('smtpctl flush --domain '), '', 'nothing offered for the value of --domain');
is(complete('smtpctl show queue a'), 'all', 'show queue: all');
is(complete('smtpctl route user@example.com --'), '--from --json --resolve --size', 'route: its options');
is(complete('smtpctl monitor -'), '--json -i -n', 'monitor: its options');
is(complete('smtpctl dkim keygen example.com s1 --'), '--bits --dir --ed25519 --force', 'dkim keygen: its options');
is(complete('smtpctl dkim keygen example.com s1 --bits '), '', 'nothing offered for the value of --bits');
is(complete('smtpctl dns t'), 'txt', 'dns t -> txt');
is(complete('smtpctl makemap dom'), 'domains', 'makemap: file names');
is(complete('smtpctl help fl'), 'flush', 'help: command names');
is(complete('smtpctl bogus '), '', 'an unknown command: nothing');

# ---- docs/parameters.md ----
my $md = slurp('docs/parameters.md');
my $gen = `$smtpctl params`;
ok($md eq $gen, 'docs/parameters.md is what smtpctl params makes now (make docs)');
my @rows = grep { /^\| `/ } split /\n/, $md;
is(scalar @rows, scalar @params, 'one row per parameter');
my %doc;
for my $row (@rows) {
    my @cells = map { s/\\\|/|/gr } map { s/^\s+|\s+$//gr } split /(?<!\\)\|/, $row, -1;
    shift @cells;
    pop @cells;
    is(scalar @cells, 5, "five cells: $row") or next;
    my ($name) = $cells[0] =~ /^`(\w+)`$/;
    $doc{$name} = {cells => \@cells};
}
like($md, qr/\| basic \\\| detailed \(SMTP transcripts, DNS activity\) \\\| debug \|/,
     "a '|' in a meaning is escaped");

# Does the parser take "name = value" (main.cf) or "key name=value" (domains)?
my $dir = tempdir(CLEANUP => 1);
sub accepted {
    my ($name, $value) = @_;
    if ($param{$name}{where} eq 'domains only') {
        write_text("$dir/main.cf", "");
        write_text("$dir/domains", "example.test $name=$value\n");
        system("$smtpctl -c $dir makemap $dir/domains >/dev/null 2>&1");
    } else {
        write_text("$dir/main.cf", "$name = $value\n");
        system("$smtpctl -c $dir check >/dev/null 2>&1");
    }
    return $? == 0;
}

my @refused;
for my $name (sort keys %doc) {
    my ($type, $def, $where, $meaning) = @{ $doc{$name}{cells} }[1 .. 4];
    my %values;
    if ($def =~ /^`(.*)`$/ && $1 ne '(empty)') {
        $values{$1} = 'default';
    }
    if ($type =~ /^choice: (.*)$/) {
        $values{$_} = 'choice' for split / /, $1;
    }
    my ($min, $max) = $type =~ /\((\d+)-(\d+)\)/;
    if (defined $min) {
        $values{$min} = 'the documented minimum';
        $values{$max} = 'the documented maximum';
        ok(!accepted($name, $max + 1), "$name: one over the documented maximum is refused");
        ok(!accepted($name, $min - 1), "$name: one under the documented minimum is refused") if $min > 0;
    }
    while ($meaning =~ /\((\w+): /g) {
        $values{$1 eq 'empty' ? '' : $1} = "the meaning's '($1: ...)'";
    }
    for my $v (sort keys %values) {
        push @refused, "$name = '$v' ($values{$v})" unless accepted($name, $v);
    }
}
is(join("\n", @refused), '', 'every default and every value docs/parameters.md names is accepted');
ok(!accepted('log_level', 'verbose') && !accepted('retry_delay', '5 minutes'),
   '(and the check can fail: bad values are refused)');

# ---- docs/domains.md: relay_on_errors ----
my ($row) = slurp('docs/domains.md') =~ /^(\| `relay_on_errors` .*)$/m;
ok($row, 'docs/domains.md has a relay_on_errors row');
my @named = grep { !$is_param{$_} && $_ ne 'on_error' } ($row // '') =~ /`([a-z_]+)`/g;
ok(@named >= 3, 'it names the error classes');
for my $class (@named) {
    ok(accepted('relay_on_errors', $class), "docs/domains.md's relay_on_errors class '$class' is accepted");
}
ok(!accepted('relay_on_errors', 'tls') && !accepted('relay_on_errors', 'auth'),
   'tls and auth are refused (and docs/domains.md does not name them)');

done_testing();
