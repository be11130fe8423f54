"""The daemon's HTTP side: Outbound Messages, a health check and Prometheus metrics, on cheroot.

One WSGI dispatcher serves `/outbound` (connector.sources.outbound), `/health` and `/metrics`.
cheroot is CherryPy's production WSGI server (thread pool, keep-alive, request size limits, TLS
through the standard `ssl` module); wsgiref is a reference implementation and not meant for a
port that Salesforce reaches over the internet.

Hardening of the port Salesforce reaches (issue 8; README "Hardening the Outbound Message
endpoint"): every request must be read whole within `request_timeout_seconds` or its connection
is dropped (408), so slow senders hold a worker thread for a bounded time; the TLS handshake runs
in the worker thread under the same deadline, not in cheroot's accepting thread; the listen backlog
and thread pool are sized for bursts; an optional client-certificate check (mutual TLS) and source
allow-list; cheroot's own error reports go to the JSON log without tracebacks.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
import time
from typing import Callable, Iterable

from cheroot import errors as cheroot_errors
from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

from connector.clock import Clock
from connector.errors import FatalError
from connector.metrics import Metrics
from connector.server_settings import Network, ServerSettings
from connector.sources.outbound import OnNotified, OutboundReceiver, purge_processed, source_allowed

log = logging.getLogger(__name__)

#: The daemon is unhealthy once its last good cycle is older than this many intervals.
STALE_CYCLES = 3

#: The listen backlog (cheroot's `request_queue_size`, 5 by default, refused bursts of posts);
#: the kernel caps it at net.core.somaxconn (4096 on current Linux).
BACKLOG = 1024
#: cheroot counts the chunk-size lines of a chunked body against its limit; the receiver checks
#: the exact limit on the body itself.
CHUNK_SLACK_BYTES = 64 * 1024
#: How often the server deletes processed notifications older than the retention.
PURGE_EVERY = dt.timedelta(hours=1)


StartResponse = Callable[[str, list[tuple[str, str]]], object]


def _respond(start_response: StartResponse, status: str, body: bytes, content_type: str,
             extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *extra])
    return [body]


class Health:
    """Decides whether the daemon is healthy: store reachable, last cycle recent enough."""

    def __init__(self, store: Engine, clock: Clock, metrics: Metrics, cycle_interval: dt.timedelta):
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.cycle_interval = cycle_interval
        self.started_at = clock.now()

    def check(self) -> dict:
        """The health report: status `ok` or `degraded`, with the reasons when degraded."""
        now = self.clock.now()
        reasons = []
        try:
            with self.store.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            reasons.append(f"store unreachable: {type(exc).__name__}")
        if self.metrics.trouble:
            reasons.append(self.metrics.trouble)
        limit = STALE_CYCLES * self.cycle_interval
        last = self.metrics.last_cycle_at
        if last is None:
            # A fresh daemon gets the same grace as a running one before it is called stale.
            if now - self.started_at > limit:
                reasons.append(f"no sync cycle has succeeded since the start "
                               f"{_seconds(now - self.started_at)} s ago")
        elif now - last > limit:
            reasons.append(f"last successful sync cycle {_seconds(now - last)} s ago, "
                           f"more than {STALE_CYCLES} × the {_seconds(self.cycle_interval)} s interval")
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "checked_at": now.isoformat(),
            "last_cycle_at": last.isoformat() if last else None,
            "cycle_interval_seconds": _seconds(self.cycle_interval),
        }


def _seconds(delta: dt.timedelta) -> float:
    return round(delta.total_seconds(), 1)


class Dispatcher:
    """The WSGI application: `/outbound`, `/health`, `/metrics` and `/console`, anything else 404."""

    def __init__(self, *, health: Health, metrics: Metrics, store: Engine, clock: Clock,
                 outbound: OutboundReceiver | None, console: Callable | None = None):
        self.console = console  # the read-only web console (connector.console), under /console
        self.health = health
        self.metrics = metrics
        self.store = store
        self.clock = clock
        self.outbound = outbound

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/outbound":
            if self.outbound is None:
                return _respond(start_response, "404 Not Found",
                                b"Outbound Messages are not received here: [server] org_ids is empty\n",
                                "text/plain; charset=utf-8")
            return self.outbound(environ, start_response)
        if self.console is not None and (path == "/console" or path.startswith("/console/")):
            return self.console(environ, start_response)
        if path not in ("/health", "/metrics"):
            return _respond(start_response, "404 Not Found", b"not found\n", "text/plain; charset=utf-8")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _respond(start_response, "405 Method Not Allowed", b"use GET\n",
                            "text/plain; charset=utf-8", [("Allow", "GET, HEAD")])
        if path == "/health":
            report = self.health.check()
            status = "200 OK" if report["status"] == "ok" else "503 Service Unavailable"
            return _respond(start_response, status, json.dumps(report).encode(), "application/json")
        try:
            self.metrics.collect_from_store(self.store, self.clock)
        except Exception as exc:
            # Still serve what the daemon set itself; revsync_store_up says the rest is stale.
            log.warning("metrics: store figures not refreshed: %s", exc)
        return _respond(start_response, "200 OK", generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)


class _DeadlineSocket:
    """A connection's socket whose reads end at the request's deadline (a slow sender is dropped).

    cheroot's `timeout` bounds each read, so a client sending a byte a second would hold a worker
    thread forever; here every read gets at most the time left until the deadline, and a read
    after it raises the timeout that cheroot answers with 408 and a closed connection.
    """

    def __init__(self, sock, read_timeout: float, on_deadline: Callable[[], None] | None = None):
        self._wrapped = sock
        self.read_timeout = read_timeout
        self.deadline: float | None = None
        self.on_deadline = on_deadline

    def __getattr__(self, name):
        return getattr(self._wrapped, name)

    def _arm(self) -> None:
        if self.deadline is None:
            self._wrapped.settimeout(self.read_timeout)
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._timed_out()
            raise TimeoutError("timed out")  # cheroot recognises the message: 408, connection closed
        self._wrapped.settimeout(min(left, self.read_timeout))

    def _timed_out(self) -> None:
        if self.on_deadline is not None:
            self.on_deadline()
            self.on_deadline = None  # once per connection: it is closed next

    def recv_into(self, *args, **kwargs):
        self._arm()
        try:
            return self._wrapped.recv_into(*args, **kwargs)
        except TimeoutError:
            self._timed_out()
            raise

    def recv(self, *args, **kwargs):
        self._arm()
        try:
            return self._wrapped.recv(*args, **kwargs)
        except TimeoutError:
            self._timed_out()
            raise

    def send(self, *args, **kwargs):
        self._wrapped.settimeout(self.read_timeout)
        return self._wrapped.send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._wrapped.settimeout(self.read_timeout)
        return self._wrapped.sendall(*args, **kwargs)


class _Connection(cheroot_server.HTTPConnection):
    """One client connection: each request is read under a deadline; TLS handshakes here too."""

    def __init__(self, server, sock, makefile=cheroot_server.MakeFile):
        super().__init__(server, _DeadlineSocket(sock, server.timeout, lambda: server.dropped("deadline")),
                         makefile)
        self.handshake_pending = isinstance(sock, ssl.SSLSocket)

    def communicate(self):
        sock = self.socket
        sock.deadline = time.monotonic() + self.server.request_deadline
        try:
            if self.handshake_pending and not self._handshake():
                return False
            return super().communicate()
        finally:
            sock.deadline = None

    def _handshake(self) -> bool:
        tls = self.socket._wrapped
        try:
            tls.settimeout(max(0.01, self.socket.deadline - time.monotonic()))
            tls.do_handshake()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; a timeout too
            # A client without an acceptable certificate (mutual TLS) ends here, as does plain
            # HTTP on the HTTPS port and a client that never completes the handshake.
            log.info("TLS handshake with %s failed: %s", self.remote_addr, _reason(exc))
            self.server.dropped("tls")
            if isinstance(exc, ssl.SSLError) and "HTTP_REQUEST" in str(exc.reason).upper():
                self._plain_http_answer(tls)
            return False
        self.handshake_pending = False
        self.ssl_env = self.server.ssl_adapter.get_environ(tls)
        return True


    @staticmethod
    def _plain_http_answer(tls: ssl.SSLSocket) -> None:
        """Tell a client speaking plain HTTP to the HTTPS port what is wrong, in plain HTTP."""
        body = b"This port speaks HTTPS only: use an https:// URL (e.g. in the Outbound Message's endpoint).\n"
        answer = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        try:
            socket.socket.sendall(tls, answer)  # the TCP socket under the failed TLS layer
        except OSError:
            pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason
    return str(exc) or type(exc).__name__


class _TLSAdapter(BuiltinSSLAdapter):
    """TLS with a context of our own: no system CAs for client certificates, handshake deferred.

    cheroot's adapter handshakes in its one accepting thread, where a client that connects and
    says nothing stalls every other connection; `wrap` here only wraps, and the worker thread
    handshakes under the request deadline (_Connection). With `client_ca_file`, a client
    certificate is required and verified against that file only (cheroot's default context would
    also trust every public CA of the system store).
    """

    def __init__(self, certificate: str, private_key: str):
        super().__init__(certificate, private_key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, private_key)
        self.context = context

    def require_client_certificates(self, client_ca_file: str) -> None:
        """Mutual TLS: a client must present a certificate that verifies against `client_ca_file`.

        Salesforce signs its outbound connections with its API client certificate (SOAP API
        Developer Guide, "Considerations for Security" of outbound messaging, and AJAX Toolkit
        Developer Guide, "Download the Salesforce Client Certificate",
        https://developer.salesforce.com/docs/atlas.en-us.ajax.meta/ajax/sforce_api_ajax_client_cert_for_om.htm:
        "configure your application server to request the client certificate").
        """
        self.context.load_verify_locations(cafile=client_ca_file)
        self.context.verify_mode = ssl.CERT_REQUIRED
        # The certificate downloaded from Setup → API → Manage API Client Certificate is a leaf:
        # trust it as an anchor by itself, without the CA chain above it.
        self.context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN

    def wrap(self, sock):
        try:
            tls = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        except (OSError, ValueError) as exc:
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        return tls, {}


class _Cheroot(wsgi.Server):
    """cheroot's WSGI server: closes its socket when the bind fails, reads under deadlines, logs
    in our JSON log without tracebacks."""

    # Short select timeout of the serving loop: stop() waits for one, and the daemon's warm
    # shutdown should not (cheroot's default is 0.5 s; the wake-ups cost nothing measurable).
    expiration_interval = 0.1
    ConnectionClass = _Connection
    #: seconds for the whole of a request (TLS handshake, headers, body), set by Server.start
    request_deadline = 10.0
    #: `[server] allowed_sources`, set by Server.start; empty = any source
    allowed_sources: tuple[Network, ...] = ()
    #: the daemon's metrics, set by Server.start
    metrics: Metrics | None = None

    def dropped(self, reason: str) -> None:
        """Count a connection dropped for `reason` (source, tls, deadline)."""
        if self.metrics is not None:
            self.metrics.count_dropped_connection(reason)

    def process_conn(self, conn):
        """Hand a connection to the pool, unless its peer address is not allowed to connect.

        Checked here, right after the accept and before any worker thread, TLS handshake or read,
        so a refused source costs nothing but the accept. The address is the TCP peer's, never a
        header such as X-Forwarded-For (a client chooses those).
        """
        if self.allowed_sources and not source_allowed(conn.remote_addr or "", self.allowed_sources):
            log.info("connection from %s closed: not in [server] allowed_sources", conn.remote_addr)
            self.dropped("source")
            conn.close()
            return
        super().process_conn(conn)

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        """cheroot's reports (dropped connections, bad requests) as one log line, no traceback.

        They are about what a client sent or did; a traceback would add nothing a user can act on
        and land in the JSON log as plain text.
        """
        log.log(max(level, logging.INFO), "HTTP server: %s", msg)
        if traceback and log.isEnabledFor(logging.DEBUG):  # for a developer chasing a bug
            log.debug("HTTP server: %s", msg, exc_info=True)

    @staticmethod
    def bind_socket(socket_, bind_addr):
        """Bind, closing the socket on failure (cheroot leaves it to the garbage collector)."""
        try:
            socket_.bind(bind_addr)
        except OSError:
            socket_.close()
            raise
        return socket_


class Server:
    """The daemon's HTTP server, on cheroot in a background thread; `start()` then `stop()`."""

    def __init__(self, settings: ServerSettings, *, store: Engine, clock: Clock, metrics: Metrics,
                 cycle_interval: dt.timedelta, on_notified: OnNotified | None = None,
                 threads: int | None = None, calendar=None):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.metrics = metrics
        outbound = None
        if settings.org_ids:
            outbound = OutboundReceiver(store, clock, org_ids=settings.org_ids, objects=settings.objects,
                                        max_body_bytes=settings.max_body_bytes,
                                        max_notifications=settings.max_notifications_per_message,
                                        allowed_sources=settings.source_networks,
                                        client_cert_cn=settings.client_cert_cn, on_notified=on_notified,
                                        on_answer=metrics.count_outbound_answer)
        from connector.console import for_server

        # the console's fiscal calendar: the one given, else what the store tells (connector.console.calendar)
        self.app = Dispatcher(health=Health(store, clock, metrics, cycle_interval), metrics=metrics,
                              store=store, clock=clock, outbound=outbound,
                              console=for_server(settings.host, store, clock, calendar=calendar))
        self.threads = threads if threads is not None else settings.threads
        self._server: _Cheroot | None = None
        self._thread: threading.Thread | None = None
        self._housekeeping: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when settings say 0)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._server.bind_addr[1]

    @property
    def url(self) -> str:
        """The base URL of the running server."""
        scheme = "https" if self.settings.tls_cert else "http"
        host = self.settings.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Bind the port (errors are raised here) and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        s = self.settings
        server = _Cheroot((s.host, s.port), self.app, numthreads=self.threads, server_name="revsync",
                          request_queue_size=BACKLOG, timeout=s.request_timeout_seconds)
        server.request_deadline = s.request_timeout_seconds
        server.allowed_sources = tuple(s.source_networks)
        server.metrics = self.metrics
        # cheroot refuses larger bodies with 413 before the application reads them (a chunked body
        # is stopped by the receiver, which answers 413 as well).
        server.max_request_body_size = s.max_body_bytes + CHUNK_SLACK_BYTES
        if s.tls_cert is not None and s.tls_key is not None:
            try:
                adapter = _TLSAdapter(str(s.tls_cert), str(s.tls_key))
            except (OSError, ValueError) as exc:
                raise FatalError(f"cannot load the TLS certificate {s.tls_cert} / key {s.tls_key}: {exc}",
                                 hint="check [server] tls_cert and tls_key") from exc
            if s.client_ca_file is not None:
                try:
                    adapter.require_client_certificates(str(s.client_ca_file))
                except (OSError, ValueError) as exc:
                    raise FatalError(f"cannot load the client CA file {s.client_ca_file}: {exc}",
                                     hint="check [server] client_ca_file: a PEM file of certificates") from exc
            server.ssl_adapter = adapter
        try:
            server.prepare()
        except OSError as exc:
            raise FatalError(f"cannot listen on {s.host}:{s.port}: {exc}",
                             hint="choose another [server] host or port") from exc
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="revsync-http", daemon=True)
        self._thread.start()
        if self.app.outbound is not None:
            self._housekeeping = threading.Thread(target=self._purge_loop, name="revsync-purge", daemon=True)
            self._housekeeping.start()
        log.info("HTTP server listening on %s", self.url)

    def purge(self) -> int:
        """Delete processed notifications older than `notification_retention_days`; return how many."""
        older_than = self.clock.now() - self.settings.notification_retention
        with self.store.begin() as conn:
            purged = purge_processed(conn, older_than)
        self.metrics.add_purged(purged)
        if purged:
            log.info("purged %d notification(s) processed more than %d day(s) ago",
                     purged, self.settings.notification_retention_days)
        return purged

    def _purge_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.purge()
            except Exception as exc:  # the store may be down for a while; try again next time
                log.warning("processed notifications not purged: %s", exc)
            self._stopping.wait(PURGE_EVERY.total_seconds())

    def _serve(self) -> None:
        assert self._server is not None
        try:
            self._server.serve()
        except Exception:
            log.exception("HTTP server stopped on an error")

    def stop(self) -> None:
        """Stop serving, close the port and wait for the worker threads."""
        server, thread, housekeeping = self._server, self._thread, self._housekeeping
        if server is None:
            return
        self._stopping.set()
        server.stop()
        for running in (thread, housekeeping):
            if running is not None:
                running.join(timeout=10)
        self._server = self._thread = self._housekeeping = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
