#!/usr/bin/python3
# dkim_verify.py - check every DKIM-Signature of a message with an
# independent verifier (python3-dkim, Debian's dkimpy), the public keys
# looked up in the test suite's own DNS server on loopback.
#
#   dkim_verify.py --dns 127.0.0.1:PORT MESSAGE-FILE
#
# Prints one JSON document: {"signatures": [{"d":..., "s":..., "a":...,
# "ok": true|false, "error": "..."}], "count": N}. Exit 0 when there is at
# least one signature and every one verifies, 1 otherwise, 2 on bad use.
import json
import sys

import dkim
import dns.resolver


def main():
    args = sys.argv[1:]
    if len(args) != 3 or args[0] != "--dns":
        print("usage: dkim_verify.py --dns ADDR:PORT FILE", file=sys.stderr)
        return 2
    addr, port = args[1].rsplit(":", 1)
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [addr]
    res.port = int(port)
    res.lifetime = 5

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        try:
            ans = res.resolve(name, "TXT")
        except Exception:
            return None
        for rr in ans:
            return b"".join(rr.strings)
        return None

    with open(args[2], "rb") as f:
        msg = f.read()
    d = dkim.DKIM(msg)
    sigs = []
    count = sum(1 for (k, _) in d.headers if k.lower() == b"dkim-signature")
    for i in range(count):
        entry = {"ok": False, "error": ""}
        try:
            entry["ok"] = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        except Exception as e:  # a malformed signature is a failure too
            entry["error"] = str(e)
        value = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"][i]
        tags = {}
        for part in value.decode("ascii", "replace").split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                tags[k.strip()] = "".join(v.split())
        for tag in ("d", "s", "a"):
            entry[tag] = tags.get(tag)
        sigs.append(entry)
    print(json.dumps({"count": count, "signatures": sigs}))
    return 0 if count > 0 and all(s["ok"] for s in sigs) else 1


if __name__ == "__main__":
    sys.exit(main())
