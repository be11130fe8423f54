"""The sandbox org over real HTTPS on loopback: cheroot serves the WSGI app with a certificate from
a throw-away test CA made by trustme; the CA certificate is written where clients can trust it
(``REQUESTS_CA_BUNDLE=<ca_path>``).

Entry point for the CLI (``revsync sandbox serve``), also runnable as
``python -m connector.sandbox.server --seed FILE --port N --ca-out PATH``::

    main(["--seed", "seed.json", "--port", "8443", "--ca-out", "/tmp/sandbox-ca.pem"])

Options: ``--seed FILE``, ``--host`` (127.0.0.1), ``--port`` (8443; 0 picks a free port),
``--ca-out PATH`` (required), ``--client-id``/``--client-secret`` (default: the obviously fake
``revsync-test-client``/``revsync-test-secret``; also ``REVSYNC_SANDBOX_CLIENT_ID``/``_SECRET``),
``--username``, ``--jwt-cert PEM`` (verify JWT bearer assertions), ``--daily-api-limit``,
``--batch-size``, ``--pubsub-port N`` (also serve the Pub/Sub API, gRPC over TLS, with the org's
Change Data Capture events; 0 picks a free port). It prints the instance URL, a ``[salesforce]`` table and the environment a revsync
configuration needs to sync with it, and serves until interrupted.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

import trustme
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .app import SandboxApp
from .org import Org, OrgConfig
from .pubsub import PubSubBindError, PubSubServer, serve_pubsub
from .seed import SeedError, load_seed


class SandboxServer:
    """A running HTTPS server for one org; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, org: Org, server: wsgi.Server, thread: threading.Thread, url: str, ca_path: Path,
                 tmpdir: tempfile.TemporaryDirectory, pubsub: PubSubServer | None = None):
        self.org = org
        self.url = url
        self.ca_path = ca_path
        #: the Pub/Sub API's gRPC target, ``localhost:PORT`` (None unless served: ``serve(pubsub_port=...)``)
        self.pubsub_target = pubsub.target if pubsub else None
        self._pubsub = pubsub
        self._server = server
        self._thread = thread
        self._tmpdir = tmpdir

    def stop(self) -> None:
        """Stop serving and remove the server's key files."""
        if self._pubsub is not None:
            self._pubsub.stop()
        self._server.stop()
        self._thread.join(timeout=10)
        self._tmpdir.cleanup()

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(org: Org, host: str = "127.0.0.1", port: int = 0, ca_path: str | Path = "sandbox-ca.pem", *,
          threads: int = 4, pubsub_port: int | None = None, pubsub_keepalive: float | None = None) -> SandboxServer:
    """Start serving ``org`` over HTTPS in a background thread; sets ``org.config.instance_url`` to the URL.

    With ``pubsub_port`` (0: a free port) it also serves the org's Pub/Sub API (gRPC, TLS with a
    certificate of the same test CA) at ``SandboxServer.pubsub_target``; ``pubsub_keepalive``
    overrides ``org.config.pubsub_keepalive`` (seconds between keep-alives on an idle stream)."""
    ca = trustme.CA()
    names = sorted({host, "localhost", "127.0.0.1"})
    cert = ca.issue_cert(*names)
    ca_path = Path(ca_path)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))
    tmpdir = tempfile.TemporaryDirectory(prefix="revsync-sandbox-")
    key_file = Path(tmpdir.name) / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_file))
    server = wsgi.Server((host, port), SandboxApp(org), numthreads=threads, server_name="sandbox.revsync")
    server.ssl_adapter = BuiltinSSLAdapter(str(key_file), str(key_file))
    server.prepare()
    bound_port = server.bind_addr[1]
    url_host = "localhost" if host in ("127.0.0.1", "localhost") else host
    url = f"https://{url_host}:{bound_port}"
    org.config.instance_url = url
    pubsub = None
    if pubsub_port is not None:
        chain = b"".join(pem.bytes() for pem in cert.cert_chain_pems)
        try:
            pubsub = serve_pubsub(org, cert.private_key_pem.bytes(), chain, host, pubsub_port,
                                  keepalive=pubsub_keepalive)
        except BaseException:
            server.stop()
            tmpdir.cleanup()
            raise
    thread = threading.Thread(target=server.serve, name="sandbox-https", daemon=True)
    thread.start()
    return SandboxServer(org, server, thread, url, ca_path, tmpdir, pubsub)


#: exit codes, as the `revsync` command's: 2 = bad arguments or seed file (fix them), 1 = the server
#: could not start for a reason outside its input (the port is taken, the address is not local)
EXIT_ERROR, EXIT_INVALID = 1, 2


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text}")
    return value


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0 picks a free one), not {text}")
    return value


def _fail(code: int, message: str, hint: str) -> int:
    from connector.render import print_error  # red "error:" on a terminal, as every revsync command's

    print_error(f"revsync sandbox serve: {message}\n  → {hint}")
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox org as an HTTPS server until interrupted; returns the exit code.

    Bad arguments or a bad seed file exit 2, a port in use 1; each with a message, never a traceback.
    """
    return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="revsync sandbox serve", description="Serve a local Salesforce sandbox org.")
    parser.add_argument("--seed", type=Path, help="JSON seed file (see connector.sandbox.seed)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8443)
    parser.add_argument("--ca-out", type=Path, required=True, help="where to write the test CA certificate (PEM)")
    parser.add_argument("--client-id", default=os.environ.get("REVSYNC_SANDBOX_CLIENT_ID", FAKE_CLIENT_ID))
    parser.add_argument("--client-secret", default=os.environ.get("REVSYNC_SANDBOX_CLIENT_SECRET", FAKE_CLIENT_SECRET))
    parser.add_argument("--username", default="integration@revsync.test")
    parser.add_argument("--jwt-cert", type=Path, help="PEM certificate or public key that signs JWT bearer assertions")
    parser.add_argument("--daily-api-limit", type=_positive, default=15000)
    parser.add_argument("--batch-size", type=_positive, default=2000, help="REST query page size")
    parser.add_argument("--pubsub-port", type=_port, default=None,
                        help="also serve the Pub/Sub API (gRPC over TLS, Change Data Capture events) on this port "
                             "(0 picks a free one)")
    parser.add_argument("--big-object-capacity", type=_positive, default=None,
                        help="big-object records the org holds, all big objects together (default: no limit); "
                             "a new row past it fails with STORAGE_LIMIT_EXCEEDED")
    args = parser.parse_args(argv)
    jwt_key = None
    if args.jwt_cert:
        try:
            jwt_key = args.jwt_cert.read_text("ascii")
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(EXIT_INVALID, f"--jwt-cert {args.jwt_cert}: cannot read it ({getattr(exc, 'strerror', None) or exc})",
                         "give the path of a PEM certificate or public key")
    config = OrgConfig(clients={args.client_id: args.client_secret}, username=args.username,
                       jwt_public_key=jwt_key,
                       daily_api_limit=args.daily_api_limit, query_batch_size=args.batch_size,
                       big_object_capacity=args.big_object_capacity)
    org = Org(config)
    if args.seed:
        if not args.seed.is_file():
            return _fail(EXIT_INVALID, f"--seed {args.seed}: no such file",
                         "give the path of a JSON seed file (format: connector/sandbox/seed.py)")
        try:
            refs = load_seed(org, args.seed)
        except SeedError as exc:
            where = "" if str(exc).startswith(str(args.seed)) else f"{args.seed}: "
            return _fail(EXIT_INVALID, f"bad seed file: {where}{exc}",
                         "fix the seed file (format: connector/sandbox/seed.py)")
        print(f"seeded {len(refs)} named records from {args.seed}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = serve(org, args.host, args.port, args.ca_out, pubsub_port=args.pubsub_port)
    except PubSubBindError:
        return _fail(EXIT_ERROR, f"cannot serve the Pub/Sub API on {args.host}:{args.pubsub_port} (in use?)",
                     "stop whatever listens there, or pick another --pubsub-port (0 picks a free one)")
    except OSError as exc:
        return _serve_failed(exc, args)
    print(f"sandbox org at {server.url} (CA certificate: {args.ca_out}; set REQUESTS_CA_BUNDLE to it)", flush=True)
    if server.pubsub_target:
        print(f"Pub/Sub API (Change Data Capture) at {server.pubsub_target}", flush=True)
    print(config_for(server.url, args.client_id, args.client_secret, args.ca_out, server.pubsub_target), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


#: the sandbox's own test connected app: public, obviously fake credentials known to the local org only
FAKE_CLIENT_ID, FAKE_CLIENT_SECRET = "revsync-test-client", "revsync-test-secret"


def config_for(url: str, client_id: str, client_secret: str, ca_path: Path, pubsub_target: str | None = None) -> str:
    """What a revsync configuration needs to sync with this org: a `[salesforce]` table to paste and
    the environment to set. The secret is printed only when it is the public fake one; a secret given
    with --client-secret (or REVSYNC_SANDBOX_CLIENT_SECRET) is the user's and is never echoed."""
    secret = client_secret if client_secret == FAKE_CLIENT_SECRET else "<the --client-secret you gave>"
    return "\n".join([
        "",
        "# revsync configuration for this org (add it to config.toml):",
        "[salesforce]",
        'auth = "client_credentials"',
        f'login_url = "{url}"',
        f'consumer_key = "{client_id}"',
        *([f'pubsub_url = "{pubsub_target}"'] if pubsub_target else []),
        "",
        "# and in the environment of `revsync sync` (the secret never goes in the file):",
        f"export REVSYNC_SF_CONSUMER_SECRET={secret}",
        f"export REQUESTS_CA_BUNDLE={Path(ca_path).resolve()}",
    ])


def _serve_failed(exc: OSError, args: argparse.Namespace) -> int:
    """The server could not start: say whether the port, the address or the CA path is at fault."""
    # cheroot reports a failed bind as a plain OSError whose text holds the socket's error
    # ("No socket could be created -- (('127.0.0.1', 8443): [Errno 98] Address already in use)")
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    code = exc.errno if exc.errno is not None else (int(found.group(1)) if found else None)
    if code == errno.EADDRINUSE:
        return _fail(EXIT_ERROR, f"port {args.port} on {args.host} is already in use",
                     "stop whatever listens there, or pick another --port (0 picks a free one)")
    if code == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return _fail(EXIT_INVALID, f"--host {args.host}: not an address of this machine",
                     "serve on loopback: --host 127.0.0.1")
    if exc.filename is not None:
        return _fail(EXIT_INVALID, f"cannot write {exc.filename}: {exc.strerror}",
                     "give a --ca-out path in a writable directory")
    return _fail(EXIT_ERROR, f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
                 "check --host and --port")


if __name__ == "__main__":
    sys.exit(main())
