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
``--batch-size``. It prints the instance URL and serves until interrupted.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

import trustme
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from .app import SandboxApp
from .org import Org, OrgConfig
from .seed import load_seed


class SandboxServer:
    """A running HTTPS server for one org; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, org: Org, server: wsgi.Server, thread: threading.Thread, url: str, ca_path: Path,
                 tmpdir: tempfile.TemporaryDirectory):
        self.org = org
        self.url = url
        self.ca_path = ca_path
        self._server = server
        self._thread = thread
        self._tmpdir = tmpdir

    def stop(self) -> None:
        """Stop serving and remove the server's key files."""
        self._server.stop()
        self._thread.join(timeout=10)
        self._tmpdir.cleanup()

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(org: Org, host: str = "127.0.0.1", port: int = 0, ca_path: str | Path = "sandbox-ca.pem", *,
          threads: int = 4) -> SandboxServer:
    """Start serving ``org`` over HTTPS in a background thread; sets ``org.config.instance_url`` to the URL."""
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
    thread = threading.Thread(target=server.serve, name="sandbox-https", daemon=True)
    thread.start()
    return SandboxServer(org, server, thread, url, ca_path, tmpdir)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox org as an HTTPS server until interrupted; returns the exit code."""
    parser = argparse.ArgumentParser(prog="revsync sandbox serve", description="Serve a local Salesforce sandbox org.")
    parser.add_argument("--seed", type=Path, help="JSON seed file (see connector.sandbox.seed)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-out", type=Path, required=True, help="where to write the test CA certificate (PEM)")
    parser.add_argument("--client-id", default=os.environ.get("REVSYNC_SANDBOX_CLIENT_ID", "revsync-test-client"))
    parser.add_argument("--client-secret", default=os.environ.get("REVSYNC_SANDBOX_CLIENT_SECRET", "revsync-test-secret"))
    parser.add_argument("--username", default="integration@revsync.test")
    parser.add_argument("--jwt-cert", type=Path, help="PEM certificate or public key that signs JWT bearer assertions")
    parser.add_argument("--daily-api-limit", type=int, default=15000)
    parser.add_argument("--batch-size", type=int, default=2000, help="REST query page size")
    args = parser.parse_args(argv)
    config = OrgConfig(clients={args.client_id: args.client_secret}, username=args.username,
                       jwt_public_key=args.jwt_cert.read_text("ascii") if args.jwt_cert else None,
                       daily_api_limit=args.daily_api_limit, query_batch_size=args.batch_size)
    org = Org(config)
    if args.seed:
        refs = load_seed(org, args.seed)
        print(f"seeded {len(refs)} named records from {args.seed}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = serve(org, args.host, args.port, args.ca_out)
    print(f"sandbox org at {server.url} (CA certificate: {args.ca_out}; set REQUESTS_CA_BUNDLE to it)", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
