"""Homeserver processes for the federation interop harness: Synapse (from PyPI) and Parvis, on loopback.

Both classes have the same interface:

    hs = SynapseServer("A")  or  ParvisServer("A")
    hs.start()        # waits for GET /_matrix/client/versions (client port, plain HTTP) and
                      # GET /_matrix/key/v2/server (federation port, TLS)
    hs.server_name    # "127.0.0.1:<federation port>"
    hs.base_url       # "http://127.0.0.1:<client port>" (what helpers.Http / register_user use)
    hs.fed_url        # "https://127.0.0.1:<federation port>"
    hs.stop()         # SIGTERM, then SIGKILL after a grace period
    hs.kill()         # SIGKILL
    hs.restart()      # stop + start on the same ports and data
    hs.cleanup()      # stop + remove the data (the log is kept)
    hs.log_path, hs.log_tail()

Each server gets a temporary work directory holding its data, its self-signed TLS certificate (SAN
IP:127.0.0.1, DNS:localhost) and its log. Every process started here is killed at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request

SYNAPSE_VERSION = "1.163.2"
SYNAPSE_VENV = os.environ.get("PARVIS_SYNAPSE_VENV", os.path.expanduser("~/.cache/parvis-synapse-venv"))
READY_TIMEOUT_S = float(os.environ.get("FEDERATION_READY_TIMEOUT", "90"))  # 2 busy cores: be generous
READY_POLL_S = 0.05
FED_READY_AFTER_CLIENT_S = float(os.environ.get("FEDERATION_LISTENER_TIMEOUT", "20"))
STOP_GRACE_S = 10.0
INSTALL_TIMEOUT_S = 900


def free_port() -> int:
    """A port nobody listens on now, from 20000-32767: below the kernel's ephemeral range, so an
    outgoing connection or a listener on port 0 is never given it before the server binds it."""
    global _next_port
    for _ in range(12768):
        port = 20000 + _next_port % 12768
        _next_port += 1
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32767")


_next_port = (os.getpid() * 7919) % 12768


_handed_out: set[int] = set()


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports, never one handed out before in this process (servers started
    later must not get a port of a stopped server that is about to restart)."""
    ports: list[int] = []
    for _ in range(50 * n):
        if len(ports) == n:
            break
        p = free_port()
        if p not in _handed_out:
            _handed_out.add(p)
            ports.append(p)
    if len(ports) != n:
        raise RuntimeError("could not find free loopback ports")
    return ports


# --------------------------------------------------------------------------------------------
# Synapse installation (cached virtualenv)
# --------------------------------------------------------------------------------------------


def synapse_python() -> str:
    return os.path.join(SYNAPSE_VENV, "bin", "python")


def synapse_installed() -> bool:
    py = synapse_python()
    if not os.access(py, os.X_OK):
        return False
    r = subprocess.run(
        [py, "-c", "import synapse, cryptography; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return r.returncode == 0 and r.stdout.strip() == SYNAPSE_VERSION


def ensure_synapse() -> str:
    """Install matrix-synapse==SYNAPSE_VERSION from PyPI wheels into SYNAPSE_VENV once; returns its python."""
    if synapse_installed():
        return synapse_python()
    if not os.access(synapse_python(), os.X_OK):
        subprocess.run([sys.executable, "-m", "venv", SYNAPSE_VENV], check=True, timeout=300)
    subprocess.run(
        [
            synapse_python(),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            f"matrix-synapse=={SYNAPSE_VERSION}",
        ],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    if not synapse_installed():
        raise RuntimeError(f"matrix-synapse {SYNAPSE_VERSION} not importable from {SYNAPSE_VENV} after install")
    return synapse_python()


# --------------------------------------------------------------------------------------------
# TLS certificate (generated with the `cryptography` package of the Synapse venv)
# --------------------------------------------------------------------------------------------

_CERT_SCRIPT = textwrap.dedent(
    """
    import datetime, ipaddress, sys
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    cert_path, key_path, cn = sys.argv[1:4]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    """
)


def make_self_signed_cert(directory: str, common_name: str = "127.0.0.1") -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate whose SAN covers IP 127.0.0.1; returns (cert.pem, key.pem).

    The private key is PKCS#8 PEM (readable by rustls-pemfile and by pyOpenSSL)."""
    cert = os.path.join(directory, "tls.crt.pem")
    key = os.path.join(directory, "tls.key.pem")
    subprocess.run([ensure_synapse(), "-c", _CERT_SCRIPT, cert, key, common_name], check=True, timeout=120)
    return cert, key


# --------------------------------------------------------------------------------------------
# Common process handling
# --------------------------------------------------------------------------------------------

_live: list["Homeserver"] = []


@atexit.register
def _kill_leftovers() -> None:
    for hs in list(_live):
        try:
            hs.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _unverified_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Homeserver:
    kind = "?"
    all_logs: list[str] = []

    def __init__(self, label: str):
        self.label = label
        self.workdir = tempfile.mkdtemp(prefix=f"parvis-fed-{self.kind}-{label}-")
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self.workdir, "server.log")
        Homeserver.all_logs.append(self.log_path)
        self.client_port, self.fed_port = free_ports(2)
        self.tls_cert, self.tls_key = make_self_signed_cert(self.workdir)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def __repr__(self) -> str:
        return f"<{self.kind} {self.label} {self.server_name}>"

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.fed_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def fed_url(self) -> str:
        return f"https://127.0.0.1:{self.fed_port}"

    # subclasses: the command line and environment
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Called before every start (write config, generate keys on the first start...)."""

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self!r} already running"
        self.prepare()
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self not in _live:
            _live.append(self)
        self.wait_ready()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _probe(self, url: str, ctx: ssl.SSLContext | None) -> Exception | None:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return None if resp.status == 200 else RuntimeError(f"HTTP {resp.status}")
        except (OSError, urllib.error.URLError, ssl.SSLError) as e:
            return e

    def wait_ready(self) -> None:
        """Ready when the client port answers /versions and then the federation port (TLS) serves its keys.

        Once the client API is up, the federation listener gets FED_READY_AFTER_CLIENT_S more: a server
        without federation fails in seconds instead of the whole READY_TIMEOUT_S."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        checks = [
            (f"{self.base_url}/_matrix/client/versions", None),
            (f"{self.fed_url}/_matrix/key/v2/server", _unverified_tls()),
        ]
        last: Exception | None = None
        while checks and time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(
                    f"{self!r} exited with code {self.proc.returncode if self.proc else '?'} before it was ready\n"
                    f"--- {self.log_path} ---\n{self.log_tail()}"
                )
            url, ctx = checks[0]
            last = self._probe(url, ctx)
            if last is None:
                checks.pop(0)
                if checks:
                    deadline = min(deadline, time.monotonic() + FED_READY_AFTER_CLIENT_S)
                continue
            time.sleep(READY_POLL_S)
        if checks:
            self.kill()
            raise RuntimeError(
                f"{self!r} did not answer GET {checks[0][0]} in time "
                f"(last error: {last!r})\n--- {self.log_path} ---\n{self.log_tail()}"
            )

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL (to the whole process group) after grace_s."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self in _live:
            _live.remove(self)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, lines: int = 80) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(data.splitlines()[-lines:])

    def log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------
# Synapse
# --------------------------------------------------------------------------------------------

_RL = "{per_second: 100000, burst_count: 1000000}"


class SynapseServer(Homeserver):
    """matrix-synapse from PyPI: SQLite, open registration, no rate limits, TLS federation listener."""

    kind = "synapse"

    def __init__(self, label: str, verify_certificates: bool = False):
        self.python = ensure_synapse()
        self.verify_certificates = verify_certificates
        super().__init__(label)
        self.config_path = os.path.join(self.data_dir, "homeserver.yaml")

    def command(self) -> list[str]:
        return [self.python, "-m", "synapse.app.homeserver", "-c", self.config_path]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        return env

    def config_yaml(self) -> str:
        d = self.data_dir
        return textwrap.dedent(
            f"""\
            server_name: "{self.server_name}"
            pid_file: "{d}/homeserver.pid"
            public_baseurl: "{self.base_url}/"
            listeners:
              - port: {self.client_port}
                bind_addresses: ['127.0.0.1']
                type: http
                tls: false
                x_forwarded: false
                resources:
                  - names: [client]
                    compress: false
              - port: {self.fed_port}
                bind_addresses: ['127.0.0.1']
                type: http
                tls: true
                x_forwarded: false
                resources:
                  - names: [federation, keys, openid]
                    compress: false
            tls_certificate_path: "{self.tls_cert}"
            tls_private_key_path: "{self.tls_key}"
            federation_verify_certificates: {"true" if self.verify_certificates else "false"}
            ip_range_whitelist: ['127.0.0.0/8', '::1/128']
            federation_ip_range_blacklist: []
            federation:
              destination_min_retry_interval: 2s
              destination_retry_multiplier: 2
              destination_max_retry_interval: 15s
            database:
              name: sqlite3
              args: {{database: "{d}/homeserver.db"}}
            media_store_path: "{d}/media"
            signing_key_path: "{d}/signing.key"
            log_config: "{d}/log.config"
            report_stats: false
            trusted_key_servers: []
            suppress_key_server_warning: true
            enable_registration: true
            enable_registration_without_verification: true
            bcrypt_rounds: 4
            macaroon_secret_key: "federation-macaroon-{self.label}"
            form_secret: "federation-form-{self.label}"
            registration_shared_secret: "federation-shared-{self.label}"
            serve_server_wellknown: false
            allow_public_rooms_over_federation: true
            room_list_publication_rules: [{{action: allow}}]
            alias_creation_rules: [{{action: allow}}]
            caches: {{sync_response_cache_duration: 0}}
            presence: {{enabled: true}}
            rc_federation: {{window_size: 1000, sleep_limit: 100000, sleep_delay: 1, reject_limit: 100000, concurrent: 100000}}
            federation_rr_transactions_per_room_per_second: 100000
            rc_message: {_RL}
            rc_registration: {_RL}
            rc_registration_token_validity: {_RL}
            rc_login: {{address: {_RL}, account: {_RL}, failed_attempts: {_RL}}}
            rc_joins: {{local: {_RL}, remote: {_RL}}}
            rc_joins_per_room: {_RL}
            rc_invites: {{per_room: {_RL}, per_user: {_RL}, per_issuer: {_RL}}}
            rc_third_party_invite: {_RL}
            rc_room_creation: {_RL}
            rc_admin_redaction: {_RL}
            rc_3pid_validation: {_RL}
            rc_key_requests: {_RL}
            rc_media_create: {_RL}
            rc_presence: {{per_user: {_RL}}}
            rc_delayed_event_mgmt: {_RL}
            rc_reports: {_RL}
            rc_user_directory: {_RL}
            rc_profile: {_RL}
            """
        )

    def log_config_yaml(self) -> str:
        return textwrap.dedent(
            """\
            version: 1
            formatters: {f: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}
            handlers: {console: {class: logging.StreamHandler, formatter: f, stream: ext://sys.stdout}}
            loggers:
              synapse.storage.SQL: {level: WARNING}
              synapse.storage.txn: {level: WARNING}
              twisted: {level: WARNING}
            root: {level: INFO, handlers: [console]}
            disable_existing_loggers: false
            """
        )

    def prepare(self) -> None:
        with open(self.config_path, "w") as f:
            f.write(self.config_yaml())
        with open(os.path.join(self.data_dir, "log.config"), "w") as f:
            f.write(self.log_config_yaml())
        if not os.path.exists(os.path.join(self.data_dir, "signing.key")):
            subprocess.run(
                self.command() + ["--generate-keys"],
                env=self.env(),
                cwd=self.workdir,
                check=True,
                capture_output=True,
                timeout=120,
            )


# --------------------------------------------------------------------------------------------
# Parvis
# --------------------------------------------------------------------------------------------


def parvis_binary() -> str:
    default = os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/parvis-target")), "debug", "parvis"
    )
    return os.environ.get("PARVIS_BIN", default)


class ParvisServer(Homeserver):
    """The parvis binary (`parvis serve`), configured only through PARVIS_* environment variables."""

    kind = "parvis"

    def __init__(self, label: str, binary: str | None = None):
        self.binary = binary or parvis_binary()
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise RuntimeError(f"parvis binary not found or not executable: {self.binary} (set PARVIS_BIN)")
        super().__init__(label)

    def command(self) -> list[str]:
        return [self.binary, "serve"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "PARVIS_SERVER_NAME": self.server_name,
                "PARVIS_LISTEN__CLIENT": f"127.0.0.1:{self.client_port}",
                "PARVIS_STORAGE__PATH": self.data_dir,
                "PARVIS_RATE_LIMITS__ENABLED": "false",
                # Peers and push gateways of the tests listen on loopback (denied by default).
                "PARVIS_NETWORK__ALLOW_RANGES": '["127.0.0.0/8", "::1/128"]',
                "PARVIS_FEDERATION__LISTEN": f"127.0.0.1:{self.fed_port}",
                "PARVIS_FEDERATION__TLS_CERTIFICATE": self.tls_cert,
                "PARVIS_FEDERATION__TLS_PRIVATE_KEY": self.tls_key,
                "PARVIS_FEDERATION__VERIFY_CERTIFICATES": "false",
                # Retention on, with no default policy (only rooms with m.room.retention expire), and
                # purge jobs every 2 s (test_federation_retention.py).
                "PARVIS_RETENTION__ENABLED": "true",
                "PARVIS_RETENTION__PURGE_JOBS": '[{ interval = "2s" }]',
            }
        )
        return env


KINDS = {"synapse": SynapseServer, "parvis": ParvisServer}


def make_server(kind: str, label: str) -> Homeserver:
    try:
        cls = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown homeserver kind {kind!r} (expected one of {sorted(KINDS)})") from None
    return cls(label)
