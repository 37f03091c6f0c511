"""The SMTP server of tests/email.rs: aiosmtpd on loopback that requires STARTTLS (with the
test's certificate) and AUTH by one user before it takes mail, and writes each message it takes
to <dir>/<n>.eml (with the envelope's recipients and whether TLS and AUTH were used). Prints
"ready" once it listens; stops when its stdin closes.

usage: python sink.py <port> <dir> <cert.pem> <key.pem> <user> <password>
"""

import itertools
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, cert, key, user, password = sys.argv[1:7]
numbers = itertools.count(1)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(out, f"{next(numbers):04}.eml")
        headers = (
            f"X-Sink-Rcpt-To: {','.join(envelope.rcpt_tos)}\r\n"
            f"X-Sink-Tls: {'yes' if session.ssl else 'no'}\r\n"
            f"X-Sink-Auth: {'yes' if session.authenticated else 'no'}\r\n"
        ).encode()
        with open(path + ".tmp", "wb") as f:
            f.write(headers + envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Sink(),
    hostname="127.0.0.1",
    port=int(port),
    server_hostname="localhost",
    tls_context=context,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
