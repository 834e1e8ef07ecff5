#!/usr/bin/env python3
"""Verify every DKIM-Signature of saved messages with dkimpy, against DNS
TXT records given on the command line (no DNS is queried).

  dkim_verify.py FILE.eml ... --record NAME VALUE [--record NAME VALUE ...]

Prints one line per message: "ok: N signatures (a=..., a=...)"; exits 1
on the first signature that does not verify. Ed25519 needs PyNaCl.
"""

import sys

import dkim  # dkimpy


def main(argv):
    files, records = [], {}
    i = 0
    while i < len(argv):
        if argv[i] == "--record":
            records[argv[i + 1].rstrip(".").lower()] = argv[i + 2].encode()
            i += 3
        else:
            files.append(argv[i])
            i += 1

    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip(".").lower())

    for path in files:
        raw = open(path, "rb").read()
        d = dkim.DKIM(raw)
        count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
        if count == 0:
            print(f"FAIL: {path}: not signed")
            return 1
        algorithms = []
        for idx in range(count):
            if not d.verify(idx=idx, dnsfunc=dnsfunc):
                print(f"FAIL: {path}: signature {idx + 1} of {count} does not verify")
                return 1
            algorithms.append(d.signature_fields[b"a"].decode())
        print(f"ok: {count} signatures ({', '.join('a=' + a for a in algorithms)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
