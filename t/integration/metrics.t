# metrics.t - Prometheus metrics on metrics_listen and `smtpctl monitor`,
# from the outside (docs/metrics.md): a known burst of mail (delivered
# directly, through a gateway, refused for good, deferred, one message
# refused at intake, one over STARTTLS) and a kill of deliver, then
#   - GET /metrics: every counter of the burst exactly, the queue by state,
#     the latency histogram's count, the restart; `promtool check metrics`
#     passes on the text; 404 for anything but GET /metrics; the limits
#     (idle and trickling clients closed, oversized headers refused, at most
#     METRICS_CONN_MAX connections: the next waits in the listen backlog)
#   - a real Prometheus scrapes it and its query API returns the values
#   - `smtpctl monitor -n 3 --json`: the burst on the first line (since
#     start), nothing on the next; text mode repeats its header every 20
#     lines; a monitor left running sums to a second burst and stops with
#     exit 0 on SIGINT.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use IO::Socket::INET;
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes ();
use Postern::Test;
use Postern::DNS;
use Postern::Util qw(wait_until make_cert slurp);

plan skip_all => 'nsd is not installed' unless Postern::DNS::Nsd::nsd_path();

my %mx = ('sink.test' => '127.0.0.86', 'refuse.test' => '127.0.0.87', 'defer.test' => '127.0.0.88',
          'home.test' => '127.0.0.90');
my $ns = Postern::DNS::Nsd->new(zones => { map { $_ => Postern::DNS::mx_zone($_, $mx{$_}) } keys %mx });
$ns->start;

my $mport = Postern::Util::free_port('127.0.0.1');
my $pt = Postern::Test->new(dns_servers => $ns->addr, retry_delay => '1h',
    message_size_limit => '4k', metrics_listen => "127.0.0.1:$mport");
my ($cert, $key) = make_cert($pt->dir, 'postern.test');
my $gp = $pt->free_port('127.0.0.89');
$pt->config(tls_cert_file => $cert, tls_key_file => $key, relay_gateways => ["gw1=127.0.0.89:$gp"]);
$pt->write_file('domains', "relay.test route=relay gateways=gw1\n");
my ($rc, $out) = $pt->smtpctl('makemap', $pt->etc . '/domains');
is($rc, 0, 'makemap') or diag $out;

my $sink   = $pt->peer(name => 'sink', addr => $mx{'sink.test'});
my $refuse = $pt->peer(name => 'refuse', addr => $mx{'refuse.test'},
    replies => { rcpt => '550 5.1.1 no such user here' });
my $defer  = $pt->peer(name => 'defer', addr => $mx{'defer.test'},
    replies => { rcpt => '451 4.3.0 try again later' });
my $home   = $pt->peer(name => 'home', addr => $mx{'home.test'});
my $gw     = $pt->peer(name => 'gw1', addr => '127.0.0.89', port => $gp);
$pt->start;

# ---- the burst ----
my ($N, $K, $R) = (10, 2, 3);    # to the sink, refused for good, through gw1
for my $i (1 .. $N) {
    ok($pt->send_mail(from => 'a@home.test', to => ["u$i\@sink.test"], ($i == 1 ? (starttls => 1) : ())),
        "sink message $i accepted");
}
ok($pt->send_mail(from => 'a@home.test', to => ["x$_\@refuse.test"]), "refused message $_ accepted") for 1 .. $K;
ok($pt->send_mail(from => 'a@home.test', to => ['y@defer.test']), 'deferred message accepted');
ok($pt->send_mail(from => 'a@home.test', to => ["r$_\@relay.test"]), "relayed message $_ accepted") for 1 .. $R;
ok(!$pt->send_mail(from => 'a@home.test', to => ['big@sink.test'], body => join('', ('x' x 70 . "\r\n") x 100)),
    'a message over message_size_limit is refused');
is($sink->wait_messages($N, 30), $N, "the sink got $N");
is($gw->wait_messages($R, 30), $R, "the gateway got $R");
is($home->wait_messages($K, 30), $K, "the sender's MX got $K notices");
ok($pt->wait_log(qr/y\@defer\.test.*status=deferred/, 20), 'the deferral is logged');

# deliver killed once: a restart to count
my $dpid = $pt->pid_of('deliver');
ok($dpid && kill('KILL', $dpid), "deliver ($dpid) killed");
ok(wait_until(10, sub { my $p = $pt->pid_of('deliver'); $p && $p != $dpid }), 'deliver restarted');

my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 0);
my $url  = "http://127.0.0.1:$mport/metrics";
my %m;    # "name{labels}" -> value
sub scrape {
    my $r = $http->get($url);
    return undef unless $r->{success};
    %m = ();
    for (split /\n/, $r->{content}) {
        next if /^#/ || !/\S/;
        /^(\S+) (\S+)$/ and $m{$1} = $2;
    }
    return $r;
}
my $acc_sent = $N + $K;    # the sink's and the notices
my %want = (
    'postern_messages_accepted_total' => $N + $K + 1 + $R,
    'postern_messages_rejected_total{reason="size"}' => 1,
    'postern_messages_rejected_total{reason="relay_denied"}' => 0,
    'postern_deliveries_total{status="sent",phase="direct"}' => $acc_sent,
    'postern_deliveries_total{status="bounced",phase="direct"}' => $K,
    'postern_deliveries_total{status="deferred",phase="direct"}' => 1,
    'postern_deliveries_total{status="sent",phase="relay",gateway="gw1"}' => $R,
    'postern_deliveries_total{status="bounced",phase="relay",gateway="gw1"}' => 0,
    'postern_delivery_latency_seconds_count' => $acc_sent + $R,
    'postern_delivery_latency_seconds_bucket{le="+Inf"}' => $acc_sent + $R,
    'postern_queue_messages{state="deferred"}' => 1,
    'postern_queue_messages{state="bounced"}' => $K,
    'postern_queue_messages{state="active"}' => 0,
    'postern_queue_messages{state="pending"}' => 0,
    'postern_queue_messages{state="hold"}' => 0,
    'postern_queue_messages{state="bad"}' => 0,
    'postern_messages_delivered_total' => $acc_sent + $R,
    'postern_messages_bounced_total' => $K,
    'postern_dsn_sent_total{to="sender"}' => $K,
    'postern_smtpd_tls_sessions_total{version="TLSv1.3"}' => 1,
    'postern_child_restarts_total{process="deliver"}' => 1,
    'postern_child_restarts_total{process="qmgr"}' => 0,
    'postern_deliveries_active' => 0,
);
# dnsd's counters come through master: up to two seconds behind the rest
my $match = sub { scrape() && !grep({ ($m{$_} // 'none') ne $want{$_} } keys %want)
        && ($m{postern_dns_lookups_total} // 0) >= 4 };
ok(wait_until(20, $match, 0.25), 'GET /metrics: the burst, exactly')
    or diag explain { map { $_ => $m{$_} // 'missing' } grep { ($m{$_} // 'none') ne $want{$_} } sort keys %want };
ok($m{postern_dns_lookups_total} >= 4, "dns lookups counted ($m{postern_dns_lookups_total})");
is($m{postern_dns_cache_hits_total} + $m{postern_dns_cache_misses_total} > 0, 1, 'dns cache questions counted');
ok($m{postern_smtpd_sessions_total} >= $N + $K + 1 + $R + 1, 'sessions counted');
ok($m{postern_queue_oldest_message_age_seconds} > 0, 'the deferred message has an age');
ok(!grep({ /^postern_deliveries_total\{.*(\@|u\d)/ } keys %m), 'no per-recipient label');

my $r = $http->get($url);
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Content-Type of format 0.0.4');
my $text = $r->{content};
like($text, qr/^# HELP postern_deliveries_total .+\n# TYPE postern_deliveries_total counter$/m, 'HELP and TYPE lines');
like($text, qr/^# TYPE postern_delivery_latency_seconds histogram$/m, 'the latency is a histogram');

# ---- promtool ----
SKIP: {
    skip 'promtool is not installed (Debian package prometheus)', 1 unless -x '/usr/bin/promtool';
    open my $fh, '>', $pt->dir . '/scrape.txt' or die $!;
    print $fh $text;
    close $fh;
    my $pr = `/usr/bin/promtool check metrics < @{[ $pt->dir ]}/scrape.txt 2>&1`;
    is($?, 0, 'promtool check metrics passes') or diag $pr;
    is($pr, '', 'promtool has no lint to report') or diag $pr;
}

# ---- HTTP limits ----
is($http->get("http://127.0.0.1:$mport/")->{status}, 404, 'GET / is 404');
is($http->get("http://127.0.0.1:$mport/metrics/x")->{status}, 404, 'GET /metrics/x is 404');
is($http->post_form($url, { a => 1 })->{status}, 404, 'POST /metrics is 404');
my $big = $http->get($url, { headers => { 'X-Big' => 'y' x 9000 } });
isnt($big->{status}, 200, "oversized headers refused ($big->{status})");

sub conn { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 5) }
# the accept queue of the listening socket, as the kernel counts it
sub backlog {
    my $o = `ss -Hltn 'sport = :$mport' 2>/dev/null`;
    return $o =~ /^\S+\s+(\d+)/ ? $1 : -1;
}
my @idle = map { conn() } 1 .. 4;
ok(!grep({ !$_ } @idle), 'four idle connections');
ok(wait_until(10, sub { backlog() == 0 }), 'all four accepted');
my $fifth = conn();
ok($fifth, 'a fifth connects (to the backlog)');
ok(wait_until(10, sub { backlog() == 1 }), 'the fifth waits in the backlog: qmgr holds four at most');
print $fifth "GET /metrics HTTP/1.0\r\n\r\n";
$fifth->blocking(0);
my $early = sysread($fifth, my $buf, 100);
ok(!$early, 'the fifth has no answer while four are open');
close shift @idle;
$fifth->blocking(1);
my $reply = '';
wait_until(10, sub { my $n = sysread($fifth, my $b, 65536); $reply .= $b if $n; defined $n && $n == 0 });
like($reply, qr{^HTTP/1\.\d 200}, 'served once one of the four closed');
ok(wait_until(15, sub { my $n = sysread($idle[0], my $b, 10); defined $n && $n == 0 }),
    'an idle connection is closed by the server');
local $SIG{PIPE} = 'IGNORE';
my $slow = conn();
$slow->blocking(0);
my $closed = wait_until(15, sub {
    syswrite($slow, 'G');    # a byte a second: never idle, never done
    my $got = sysread($slow, my $b, 100);
    (defined $got && $got == 0) || (!defined $got && $!{ECONNRESET});
}, 1);
ok($closed, 'a client that trickles its request is closed at the deadline');
close $_ for @idle, $fifth, $slow;

# ---- a real Prometheus ----
SKIP: {
    skip 'prometheus is not installed (Debian package prometheus)', 3 unless -x '/usr/bin/prometheus';
    my $pp  = Postern::Util::free_port('127.0.0.1');
    my $dir = $pt->dir . '/prom';
    mkdir $dir;
    open my $fh, '>', "$dir/prometheus.yml" or die $!;
    print $fh "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        . "scrape_configs:\n  - job_name: postern\n    static_configs:\n      - targets: ['127.0.0.1:$mport']\n";
    close $fh;
    my $ppid = fork() // die "fork: $!";
    if ($ppid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/prometheus.log";
        open STDERR, '>&', \*STDOUT;
        exec '/usr/bin/prometheus', "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/data",
            "--web.listen-address=127.0.0.1:$pp" or POSIX::_exit(127);
    }
    my $query = sub {
        my $res = $http->get("http://127.0.0.1:$pp/api/v1/query?query=$_[0]");
        return undef unless $res->{success};
        my $j = eval { decode_json($res->{content}) } or return undef;
        my $v = $j->{data}{result}[0]{value}[1];
        return $v;
    };
    my $up = wait_until(30, sub { my $v = $query->('up'); defined $v && $v eq '1' }, 0.5);
    ok($up, 'Prometheus scraped postern: up is 1') or diag slurp("$dir/prometheus.log");
    my $acc = wait_until(10, sub { $query->('postern_messages_accepted_total') }, 0.5);
    is($acc, $want{postern_messages_accepted_total}, 'its query API has postern_messages_accepted_total');
    is(wait_until(10, sub { $query->('postern_deliveries_total%7Bphase%3D%22relay%22,status%3D%22sent%22%7D') }, 0.5),
        $R, 'and the relayed deliveries by gateway');
    kill 'TERM', $ppid;
    wait_until(10, sub { waitpid($ppid, WNOHANG) == $ppid }) or (kill('KILL', $ppid), waitpid($ppid, 0));
}

# ---- smtpctl monitor ----
sub monitor_lines { map { decode_json($_) } grep { /^\{/ } split /\n/, $_[0] }
my ($mrc, $mout, $merr) = $pt->smtpctl3('monitor', '-n', '3', '-i', '0.2', '--json');
is($mrc, 0, 'monitor -n 3 --json exits 0') or diag $merr;
my @l = monitor_lines($mout);
is(scalar @l, 3, 'three lines');
my %first = (accepted => $want{postern_messages_accepted_total}, rejected => 1,
    delivered_direct => $acc_sent, delivered_relay => $R, deferred => 1, bounced => $K,
    queue_deferred => 1, queue_bounced => $K, queue_active => 0, queue_pending => 0,
    queue_hold => 0, queue_bad => 0, deliveries_active => 0);
is_deeply({ map { $_ => $l[0]{$_} } keys %first }, \%first, 'first line: the burst since start');
ok($l[0]{since_start}, 'first line says since_start');
is(join(',', map { $_->{accepted} + $_->{delivered_direct} + $_->{bounced} } @l[1, 2]), '0,0',
    'the next lines: nothing new in their intervals');
is($l[2]{queue_deferred}, 1, 'gauges on every line');
ok(!defined $l[1]{dns_hit_ratio} || $l[1]{dns_hit_ratio} <= 1, 'dns hit ratio null or a ratio');

($mrc, $mout) = $pt->smtpctl3('monitor', '-n', '21', '-i', '0.1');
is($mrc, 0, 'monitor (text) exits 0');
my @tl = split /\n/, $mout;
is(scalar(grep { /^\s*accept\s+reject\s+direct\s+relay/ } @tl), 2, 'header repeated after 20 lines');
is(scalar(@tl), 23, '21 lines and 2 headers');

# left running: a second burst, then ^C
my $mlog = $pt->dir . '/monitor.out';
my $mpid = fork() // die "fork: $!";
if ($mpid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $mlog;
    exec $pt->root . '/bin/smtpctl', '-c', $pt->etc, 'monitor', '-i', '0.2', '--json' or POSIX::_exit(127);
}
ok(wait_until(10, sub { -s $mlog }), 'the monitor prints');
ok($pt->send_mail(from => 'a@home.test', to => ["v$_\@sink.test"]), "second burst $_") for 1 .. 2;
my $sum = sub {
    my %s;
    for my $x (monitor_lines(slurp($mlog))) { $s{$_} += $x->{$_} // 0 for qw(accepted delivered_direct) }
    return \%s;
};
ok(wait_until(30, sub { my $s = $sum->(); $s->{accepted} == $want{postern_messages_accepted_total} + 2
        && $s->{delivered_direct} == $acc_sent + 2 }, 0.2),
    'its lines add up to both bursts') or diag explain $sum->();
kill 'INT', $mpid;
my $st;
ok(wait_until(10, sub { return 0 unless waitpid($mpid, WNOHANG) == $mpid; $st = $?; 1 }),
    'it stops on SIGINT')
    or (kill('KILL', $mpid), waitpid($mpid, 0));
is($st, 0, 'with exit status 0');

done_testing;
