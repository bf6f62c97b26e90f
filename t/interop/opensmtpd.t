#!/usr/bin/perl
# opensmtpd.t - the interoperability matrix against OpenSMTPD 6.8 (Debian 12's package,
# unpacked by bench/setup): every cell of Postern::Interop, both directions
# (docs/interop.md). Run by make interop.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Postern::Interop;

Postern::Interop->run('opensmtpd');
