"""Evaluate SPF with pyspf (Debian's python3-spf) against the tests' DNS server.

Usage: pyspf.py PORT TIMEOUT [IP HELO MAILFROM]...
Each triple is checked with DNS at 127.0.0.1:PORT; one line per triple on stdout: the result.
pyspf asks DNS through dnspython when it has it, else through pydns: both are pointed at PORT.
"""
import sys

import spf

port, timeout = int(sys.argv[1]), float(sys.argv[2])
if spf.DNSLookup.__name__ == 'DNSLookup_dnspython':
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port = ['127.0.0.1'], port
    dns.resolver.default_resolver = r
else:
    import DNS
    DNS.defaults['server'], DNS.defaults['port'] = ['127.0.0.1'], port

args = sys.argv[3:]
for i in range(0, len(args), 3):
    ip, helo, mailfrom = args[i:i + 3]
    res, _code, _exp = spf.query(i=ip, s=mailfrom, h=helo, timeout=timeout).check()
    print(res, flush=True)
