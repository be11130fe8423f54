"""The daemon's HTTP side: Outbound Messages, a health check and Prometheus metrics, on cheroot.

One WSGI dispatcher serves `/outbound` (connector.sources.outbound), `/health` and `/metrics`.
cheroot is CherryPy's production WSGI server (thread pool, keep-alive, request size limits, TLS
through the standard `ssl` module); wsgiref is a reference implementation and not meant for a
port that Salesforce reaches over the internet.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Engine, text

from connector.clock import Clock
from connector.errors import FatalError
from connector.metrics import Metrics
from connector.sources.outbound import (
    DEFAULT_MAX_BODY_BYTES, DEFAULT_OBJECTS, OnNotified, OutboundReceiver, org_key,
)

log = logging.getLogger(__name__)

#: The daemon is unhealthy once its last good cycle is older than this many intervals.
STALE_CYCLES = 3


class ServerSettings(BaseModel):
    """The `[server]` table: where to listen, which org(s) and objects to take messages for, TLS."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)
    org_ids: list[str] = Field(default_factory=list)
    objects: list[str] = Field(default_factory=lambda: list(DEFAULT_OBJECTS))
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, gt=0)

    @field_validator("org_ids")
    @classmethod
    def _org_ids_are_ids(cls, value: list[str]) -> list[str]:
        for org in value:
            org_key(org)  # raises ValueError naming the bad id
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both for HTTPS, or neither")
        return self


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
    """The WSGI application: `/outbound`, `/health` and `/metrics`, anything else 404."""

    def __init__(self, *, health: Health, metrics: Metrics, store: Engine, clock: Clock,
                 outbound: OutboundReceiver | None):
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


class _Cheroot(wsgi.Server):
    """cheroot's WSGI server, closing its socket when the bind fails."""

    # Short select timeout of the serving loop: stop() waits for one, and the daemon's warm
    # shutdown should not (cheroot's default is 0.5 s; the wake-ups cost nothing measurable).
    expiration_interval = 0.1

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
                 threads: int = 4):
        self.settings = settings
        outbound = None
        if settings.org_ids:
            outbound = OutboundReceiver(store, clock, org_ids=settings.org_ids, objects=settings.objects,
                                        max_body_bytes=settings.max_body_bytes, on_notified=on_notified)
        self.app = Dispatcher(health=Health(store, clock, metrics, cycle_interval), metrics=metrics,
                              store=store, clock=clock, outbound=outbound)
        self.threads = threads
        self._server: _Cheroot | None = None
        self._thread: threading.Thread | None = None

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
        server = _Cheroot((s.host, s.port), self.app, numthreads=self.threads, server_name="revsync")
        # cheroot refuses larger bodies with 413 before the application reads them.
        server.max_request_body_size = s.max_body_bytes
        if s.tls_cert is not None and s.tls_key is not None:
            try:
                server.ssl_adapter = BuiltinSSLAdapter(str(s.tls_cert), str(s.tls_key))
            except (OSError, ValueError) as exc:
                raise FatalError(f"cannot load the TLS certificate {s.tls_cert} / key {s.tls_key}: {exc}",
                                 hint="check [server] tls_cert and tls_key") from exc
        try:
            server.prepare()
        except OSError as exc:
            raise FatalError(f"cannot listen on {s.host}:{s.port}: {exc}",
                             hint="choose another [server] host or port") from exc
        self._server = server
        self._thread = threading.Thread(target=self._serve, name="revsync-http", daemon=True)
        self._thread.start()
        log.info("HTTP server listening on %s", self.url)

    def _serve(self) -> None:
        assert self._server is not None
        try:
            self._server.serve()
        except Exception:
            log.exception("HTTP server stopped on an error")

    def stop(self) -> None:
        """Stop serving, close the port and wait for the worker threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.stop()
        if thread is not None:
            thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
