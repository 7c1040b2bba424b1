#!/usr/bin/env python3
"""Verify every DKIM signature of the message on stdin with dkimpy, keys from a file.

Usage: dkimpy_verify.py KEYS < message
KEYS has one "NAME VALUE" line per key record (NAME like sel._domainkey.example.test), so
that no DNS is asked: dkimpy takes the lookup as dnsfunc. Prints "pass" or "fail" per
signature, in order, one a line; exits 0 if all pass.
"""
import sys

import dkim

keys = {}
with open(sys.argv[1]) as f:
    for line in f:
        name, _, value = line.strip().partition(" ")
        keys[name.lower().rstrip(".")] = value.encode()


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return keys.get(name.lower().rstrip("."), b"")


msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = sum(1 for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
ok = True
for i in range(n):
    try:
        res = d.verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:  # a body hash mismatch is raised, not returned
        print(e, file=sys.stderr)
        res = False
    print("pass" if res else "fail")
    ok = ok and res
sys.exit(0 if ok else 1)
