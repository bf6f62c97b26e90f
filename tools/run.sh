#!/bin/sh
# run.sh - "make run": start Postern in the foreground on 127.0.0.1:2525
# with etc/main.cf, the spool in run/spool of the build tree. No root
# needed. Stop it with ^C.
set -u
cd "$(dirname "$0")/.." || exit 1
mkdir -p run
echo "postern: config etc/main.cf, spool run/spool, SMTP on 127.0.0.1:2525"
echo "postern: in another terminal: bin/smtpctl -c etc status"
if [ "$(id -u)" -eq 0 ] && ! getent passwd postern >/dev/null; then
    echo "postern: creating the system user postern (the children run as it)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postern || exit 1
fi
exec bin/master -c etc -d
