#!/bin/sh
# install.sh DESTDIR PREFIX - "make install": programs, a system main.cf,
# the example domains map and dkim_map, the systemd unit, the docs, the
# man pages and the bash completion (both made by make, in build/). As root,
# postdrop is installed root:postdrop 2755 when the group exists. It does
# not create the postern user or the postdrop group, or start anything:
# INSTALL says how.
set -eu
DESTDIR=$1
PREFIX=$2
cd "$(dirname "$0")/.."

sbindir=$PREFIX/sbin
libexec=$PREFIX/libexec/postern
# smtpctl, sendmail and mailq look in /etc/postern by default (or
# $POSTERN_CONFIG): the configuration goes there whatever PREFIX is.
confdir=/etc/postern
docdir=$PREFIX/share/doc/postern

install -d "$DESTDIR$sbindir" "$DESTDIR$libexec" "$DESTDIR$confdir" "$DESTDIR$docdir"
# master finds its children in its own directory: all programs live in
# libexec; the commands people type are links in sbin.
for p in master smtpd qmgr dnsd deliver relay local signer smtpctl; do
    install -m 0755 "bin/$p" "$DESTDIR$libexec/$p"
done
ln -sf "$libexec/master" "$DESTDIR$sbindir/postern-master"
ln -sf "$libexec/smtpctl" "$DESTDIR$sbindir/smtpctl"
if [ -x bin/sendmail ]; then
    install -m 0755 bin/sendmail "$DESTDIR$libexec/sendmail"
    ln -sf "$libexec/sendmail" "$DESTDIR$sbindir/sendmail"
    ln -sf "$libexec/sendmail" "$DESTDIR$sbindir/mailq"
    ln -sf "$libexec/sendmail" "$DESTDIR$sbindir/newaliases"
fi
# postdrop: setgid to the group that may write maildrop/ (INSTALL, step 3).
# sendmail runs the postdrop in its own directory.
if [ -x bin/postdrop ]; then
    if [ "$(id -u)" -eq 0 ] && getent group postdrop >/dev/null; then
        install -o root -g postdrop -m 2755 bin/postdrop "$DESTDIR$libexec/postdrop"
    else
        install -m 0755 bin/postdrop "$DESTDIR$libexec/postdrop"
        if [ "$(id -u)" -eq 0 ]; then
            echo "install: group postdrop does not exist: $libexec/postdrop is not setgid," \
                "so sendmail cannot leave mail in the maildrop while postern is down (INSTALL, step 3)" >&2
        fi
    fi
fi

# A system main.cf from the development one: port 25 on all addresses,
# spool in /var/spool/postern. An existing main.cf is never overwritten.
if [ ! -e "$DESTDIR$confdir/main.cf" ]; then
    sed -e 's|^queue_directory = .*|queue_directory = /var/spool/postern|' \
        -e 's|^smtpd_listen = .*|smtpd_listen = 0.0.0.0:25 [::]:25|' \
        etc/main.cf >"$DESTDIR$confdir/main.cf"
    chmod 0644 "$DESTDIR$confdir/main.cf"
fi
[ -e "$DESTDIR$confdir/domains" ] || install -m 0644 etc/domains "$DESTDIR$confdir/domains"
# the example dkim_map: every line a comment, used once main.cf names it
[ -e "$DESTDIR$confdir/dkim" ] || install -m 0644 etc/dkim "$DESTDIR$confdir/dkim"

unitdir=$PREFIX/lib/systemd/system
[ "$PREFIX" = /usr/local ] && unitdir=/etc/systemd/system
install -d "$DESTDIR$unitdir"
sed -e "s|@LIBEXEC@|$libexec|g" -e "s|@CONFDIR@|$confdir|g" etc/systemd/postern.service \
    >"$DESTDIR$unitdir/postern.service"

for d in README.md INSTALL docs/*.md; do
    [ -f "$d" ] && install -m 0644 "$d" "$DESTDIR$docdir/"
done

# Man pages: build/man/manN/NAME.N, made by tools/docgen.
mandir=$PREFIX/share/man
for page in build/man/man*/*; do
    [ -f "$page" ] || continue
    section=$(basename "$(dirname "$page")")
    install -d "$DESTDIR$mandir/$section"
    install -m 0644 "$page" "$DESTDIR$mandir/$section/"
done
# bash completion, where bash-completion looks for it.
install -d "$DESTDIR$PREFIX/share/bash-completion/completions"
install -m 0644 build/completion/smtpctl "$DESTDIR$PREFIX/share/bash-completion/completions/smtpctl"
echo "installed into ${DESTDIR:-/}: programs in $libexec, config in $confdir"
