#!/usr/bin/env python3
"""Independent checks of what herald sends, with Python's own SMTP server
(aiosmtpd), MIME parser (email) and DKIM verifier (dkimpy).

  interop.py serve OUTDIR [--starttls CERT KEY | --implicit CERT KEY]
                    [--auth MECH,...]
                               run an SMTP server on 127.0.0.1 (port printed
                               on stdout), saving each message to OUTDIR with
                               a .meta file (TLS in use, AUTH mechanism and
                               login); --starttls offers STARTTLS (and AUTH
                               only after it), --implicit speaks TLS from the
                               first byte, --auth requires authentication
                               with one of the given mechanisms
  interop.py check OUTDIR N [--dkim-pubkey PEM --selector S --domain D]
                               assert N messages that parse, carry the bulk
                               sender headers, put text/plain before text/html,
                               have unique Message-IDs, and (with a key)
                               verify under DKIM with the List-Unsubscribe
                               headers signed
"""

import asyncio
import base64
import email
import email.policy
import os
import sys


def serve(outdir, starttls=None, implicit=None, auth=None):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    os.makedirs(outdir, exist_ok=True)

    class Saver:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Saver.count += 1
            path = os.path.join(outdir, f"{Saver.count:06d}.eml")
            with open(path + ".tmp", "wb") as f:
                f.write(envelope.original_content)
            os.rename(path + ".tmp", path)
            with open(path + ".rcpt", "w") as f:
                f.write("\n".join(envelope.rcpt_tos))
            login = getattr(session, "herald_login", None)
            with open(path + ".meta", "w") as f:
                tls = server.transport.get_extra_info("ssl_object") is not None
                f.write(f"tls={'yes' if tls else 'no'}\n")
                f.write(f"mechanism={getattr(session, 'herald_mechanism', None)}\n")
                f.write(f"login={login}\n")
            return "250 2.0.0 Ok: saved"

    def authenticator(server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode()
        password = auth_data.password.decode()
        ok = login == "herald" and password == "s3cret-relay-pass"
        if ok:
            session.herald_mechanism = mechanism
            session.herald_login = login
        return AuthResult(success=ok)

    def context(cert, key):
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return ctx

    kwargs = {}
    if starttls:
        kwargs.update(tls_context=context(*starttls), require_starttls=True)
    if implicit:
        # aiosmtpd only counts STARTTLS as TLS for AUTH; here the whole
        # session is TLS (the .meta file records it from the transport).
        kwargs.update(ssl_context=context(*implicit), auth_require_tls=False)
    if auth:
        mechs = {m.strip().upper() for m in auth.split(",")}
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in mechs],
        )

    import socket
    with socket.socket() as probe:  # aiosmtpd cannot listen on port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Saver(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(port, flush=True)
    try:
        # Run until stdin closes (the test drops its end) or we are killed.
        sys.stdin.read()
    finally:
        controller.stop()


REQUIRED = ["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
            "List-Unsubscribe-Post", "List-Id", "MIME-Version"]


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(outdir, expected, pubkey=None, selector=None, domain=None):
    files = sorted(f for f in os.listdir(outdir) if f.endswith(".eml"))
    if len(files) != expected:
        fail(f"expected {expected} messages, found {len(files)}")
    ids = set()
    dns_txt = None
    if pubkey:
        import dkim  # dkimpy
        der = b"".join(l.strip() for l in open(pubkey, "rb") if not l.startswith(b"-----"))
        dns_txt = b"v=DKIM1; k=rsa; p=" + der

        def dnsfunc(name, timeout=5):
            want = f"{selector}._domainkey.{domain}.".encode()
            return dns_txt if name in (want, want.rstrip(b".")) else None

    for name in files:
        raw = open(os.path.join(outdir, name), "rb").read()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for h in REQUIRED:
            if msg[h] is None:
                fail(f"{name}: missing {h}")
        lu = str(msg["List-Unsubscribe"])
        if not (lu.startswith("<https://") or lu.startswith("<http://")):
            fail(f"{name}: List-Unsubscribe is not an https URL: {lu}")
        if str(msg["List-Unsubscribe-Post"]) != "List-Unsubscribe=One-Click":
            fail(f"{name}: bad List-Unsubscribe-Post")
        if msg.get_content_type() != "multipart/alternative":
            fail(f"{name}: top level is {msg.get_content_type()}")
        parts = [p.get_content_type() for p in msg.iter_parts()]
        if parts != ["text/plain", "text/html"]:
            fail(f"{name}: parts are {parts}, want text/plain then text/html")
        text = msg.get_body(preferencelist=("plain",)).get_content()
        unsub_url = lu.strip("<>").split(">")[0]
        if unsub_url not in text.replace("\n", ""):
            fail(f"{name}: the text part does not show the unsubscribe URL")
        mid = str(msg["Message-ID"])
        if mid in ids:
            fail(f"{name}: duplicate Message-ID {mid}")
        ids.add(mid)
        for line in raw.split(b"\r\n"):
            if len(line) > 998:
                fail(f"{name}: a line is longer than 998 octets")
        if pubkey:
            sig = msg["DKIM-Signature"]
            if sig is None:
                fail(f"{name}: not DKIM-signed")
            tags = {k.strip(): v.strip() for k, _, v in
                    (t.partition("=") for t in str(sig).replace("\r\n", "").split(";")) if k.strip()}
            signed = [h.strip().lower() for h in tags.get("h", "").split(":")]
            for h in ("list-unsubscribe", "list-unsubscribe-post", "from", "subject"):
                if h not in signed:
                    fail(f"{name}: {h} is not among the signed headers {signed}")
            if tags.get("c") != "relaxed/relaxed":
                fail(f"{name}: canonicalization is {tags.get('c')}")
            if not dkim.verify(raw, dnsfunc=dnsfunc):
                fail(f"{name}: DKIM signature does not verify")
    print(f"ok: {len(files)} messages, unique Message-IDs" + (", DKIM verified" if pubkey else ""))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        args = sys.argv[3:]
        opts = {}
        while args:
            flag = args.pop(0)
            if flag in ("--starttls", "--implicit"):
                opts[flag[2:]] = (args.pop(0), args.pop(0))
            elif flag == "--auth":
                opts["auth"] = args.pop(0)
            else:
                sys.exit(f"unknown option {flag}")
        serve(sys.argv[2], **opts)
    elif sys.argv[1] == "check":
        args = sys.argv[2:]
        opts = {}
        while len(args) > 2:
            opts[args[-2].lstrip("-").replace("-", "_")] = args[-1]
            args = args[:-2]
        check(args[0], int(args[1]), opts.get("dkim_pubkey"), opts.get("selector"), opts.get("domain"))
    else:
        sys.exit(__doc__)
