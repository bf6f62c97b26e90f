#!/usr/bin/perl
# smtpctl_config.t - `smtpctl config` (a postconf) and `smtpctl params
# NAME`, without and with a running daemon: the values main.cf sets, as in
# force ($name expanded, relative paths made absolute), every default with
# -d, single values (the default when unset), --json, unknown and
# per-domain names refused by name; and unknown commands refused with the
# usage whether or not the daemon runs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use JSON::PP qw(decode_json);
use Postern::Test;

my $pt = Postern::Test->new(
    notice_recipient => 'hostmaster@$myhostname',
    domains_map      => 'mydomains',
    max_deliveries   => 7,
);
my $etc = $pt->etc;

# name => value as main.cf writes it
sub main_cf {
    open(my $fh, '<', "$etc/main.cf") or die "$etc/main.cf: $!";
    my %set;
    while (<$fh>) {
        next if /^\s*(#|$)/;
        $set{$1} = $2 if /^(\w+)\s*=\s*(.*?)\s*$/;
    }
    close $fh;
    return %set;
}

# name => value from "name = value" lines
sub parse_lines {
    my %v;
    for (split /\n/, $_[0]) {
        /^(\w+) = (.*)$/ or return;
        $v{$1} = $2;
    }
    return %v;
}

my %params = map { $_->{name} => $_ } @{ decode_json(($pt->smtpctl3("--json", "params"))[1]) };
my @main_params = grep { $params{$_}{where} ne 'domains only' } keys %params;
ok(@main_params > 50, 'smtpctl --json params lists the parameters');

sub checks {
    my ($when) = @_;
    my %file = main_cf();

    # config: exactly the parameters main.cf sets, with their values in force
    my ($rc, $out, $err) = $pt->smtpctl3('config');
    is($rc, 0, "$when: config exits 0") or diag $err;
    my %got = parse_lines($out);
    is_deeply([sort keys %got], [sort keys %file], "$when: config prints the parameters main.cf sets");
    my %want = %file;
    $want{notice_recipient} = 'hostmaster@postern.test';
    $want{domains_map} = "$etc/mydomains";
    is_deeply(\%got, \%want, "$when: each with its value in force (\$myhostname expanded, a relative path made absolute)");

    ($rc, $out) = $pt->smtpctl3('--json', 'config');
    is_deeply(decode_json($out), \%want, "$when: config --json is the same as one object");

    # config NAME...: values in force, defaults when unset
    ($rc, $out) = $pt->smtpctl3('config', 'max_deliveries', 'retry_delay_max', 'message_size_limit', 'myhostname');
    is($out, "max_deliveries = 7\nretry_delay_max = 0\nmessage_size_limit = 25M\nmyhostname = postern.test\n",
       "$when: config NAME... gives set values and defaults, in the order asked");
    ($rc, $out) = $pt->smtpctl3('config', 'dns_ttl_max', '--json');
    is($out, qq({"dns_ttl_max":"1d"}\n), "$when: config NAME --json");

    # config -d: every main.cf parameter with its default
    ($rc, $out) = $pt->smtpctl3('config', '-d');
    %got = parse_lines($out);
    is($rc, 0, "$when: config -d exits 0");
    is_deeply(\%got, { map { $_ => $params{$_}{default} } @main_params },
              "$when: config -d gives every main.cf parameter with its default");
    ($rc, $out) = $pt->smtpctl3('config', '-d', 'max_deliveries');
    is($out, "max_deliveries = 10\n", "$when: config -d NAME gives the default although main.cf sets it");

    # errors name the parameter, print nothing else
    ($rc, $out, $err) = $pt->smtpctl3('config', 'retry_delay', 'no_such_param');
    is($rc, 1, "$when: an unknown parameter: exit 1");
    is($out, '', "$when: and nothing on stdout");
    like($err, qr/unknown parameter 'no_such_param'/, "$when: the error names it");
    ($rc, $out, $err) = $pt->smtpctl3('config', 'route');
    is($rc, 1, "$when: a per-domain option is not a main.cf parameter");
    like($err, qr/'route' is a per-domain option/, "$when: and says so");
    ($rc, $out, $err) = $pt->smtpctl3('config', '-x');
    is($rc, 2, "$when: an unknown option of config is a usage error");

    # params NAME honours its argument
    ($rc, $out) = $pt->smtpctl3('params', 'retry_delay');
    is($out, "retry_delay = 5m\n    duration (1-604800); main.cf, domains\n    wait after a failed attempt\n",
       "$when: params NAME describes that parameter alone");
    ($rc, $out) = $pt->smtpctl3('--json', 'params', 'tls', 'mx');
    is_deeply([map { $_->{name} } @{ decode_json($out) }], ['tls', 'mx'], "$when: params --json NAME...");
    ($rc, $out, $err) = $pt->smtpctl3('params', 'retry');
    is($rc, 1, "$when: params with an unknown name: exit 1");
    like($err, qr/unknown parameter 'retry'/, "$when: naming it");

    # unknown commands: said here, with the usage
    for my $cmd (['bogus'], ['show', 'bogus'], ['show']) {
        ($rc, $out, $err) = $pt->smtpctl3(@$cmd);
        my $name = join ' ', @$cmd;
        is($rc, 2, "$when: '$name' exits 2");
        like($err, qr/^smtpctl: unknown command '\Q$name\E'\nusage: smtpctl /,
             "$when: '$name' is an unknown command, then the usage");
        unlike($err, qr/not running/, "$when: '$name' does not talk of the daemon");
    }
}

checks('daemon down');
my ($rc, $out, $err) = $pt->smtpctl3('status');
is($rc, 2, 'daemon down: status exits 2');
like($err, qr/postern is not running/, 'and says postern is not running');

$pt->start;
checks('daemon up');
($rc, $out, $err) = $pt->smtpctl3('log', 'level');
is($rc, 2, 'log level without a level: exit 2');
like($err, qr/^usage: smtpctl log level basic\|detailed\|debug$/m, 'master answers with the usage from the table');
($rc, $out, $err) = $pt->smtpctl3('show', 'stats');
is($rc, 0, 'a command routed by the table reaches its owner (show stats: qmgr)') or diag $err;
($rc, $out, $err) = $pt->smtpctl3('dns', 'flush');
like($out, qr/^flushed \d+ entries$/m, 'dns flush reaches dnsd');
($rc, $out, $err) = $pt->smtpctl3('show', 'smtpd');
is($rc, 0, 'show smtpd reaches smtpd') or diag $err;
$pt->stop;

# A main.cf with an error: config says where, -d needs no main.cf at all.
$pt->config(retry_delay => '5 minutes');
($rc, $out, $err) = $pt->smtpctl3('config');
is($rc, 1, 'a broken main.cf: config exits 1');
like($err, qr{main\.cf:\d+: bad duration '5 minutes' for retry_delay}, 'naming file, line and value');
unlink "$etc/main.cf";
($rc, $out, $err) = $pt->smtpctl3('config', '-d', 'retry_delay');
is($out, "retry_delay = 5m\n", 'config -d works without main.cf');

done_testing();
