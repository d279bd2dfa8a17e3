#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on loopback for the email notifier tests.

Usage: smtp_server.py OUTDIR [--auth USER:PASS] [--mechanisms PLAIN,LOGIN]
                             [--rcpt-reply "451 4.3.0 Try again later"]

Listens on 127.0.0.1 on a port the OS picks and prints that port on the first
line of stdout. Every accepted message is written to OUTDIR as
msg-<n>.json: {"mail_from", "rcpt_tos", "data" (the raw DATA, dot-unstuffed),
"auth_mechanism", "auth_login"}, written to a temporary name and renamed, so a
reader never sees half a file.

--auth requires authentication with these credentials (over plain TCP: the
server is told auth_require_tls=False, as aiosmtpd refuses AUTH without TLS
by default). --mechanisms limits the offered SASL mechanisms. --rcpt-reply
answers every RCPT TO with that reply instead of accepting it.
"""

import argparse
import asyncio
import json
import os
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ALL_MECHANISMS = ("PLAIN", "LOGIN")


class Recorder:
    def __init__(self, outdir, rcpt_reply):
        self.outdir = outdir
        self.rcpt_reply = rcpt_reply
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "auth_mechanism": getattr(session, "outpost_mechanism", None),
            "auth_login": getattr(session, "outpost_login", None),
        }
        path = os.path.join(self.outdir, f"msg-{self.count}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted for delivery"


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        if ok:
            session.outpost_mechanism = mechanism
            session.outpost_login = user
        return AuthResult(success=ok, handled=False)

    return authenticate


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--auth")
    ap.add_argument("--mechanisms", default=",".join(ALL_MECHANISMS))
    ap.add_argument("--rcpt-reply")
    args = ap.parse_args()

    handler = Recorder(args.outdir, args.rcpt_reply)
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        offered = {m.strip().upper() for m in args.mechanisms.split(",")}
        kwargs = dict(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
            auth_exclude_mechanism=[m for m in ALL_MECHANISMS if m not in offered],
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="outpost-test-mx", **kwargs),
        host="127.0.0.1",
        port=0,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
