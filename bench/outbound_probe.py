"""Re-run issue 8's probes of the Outbound Message endpoint on loopback and print the figures.

    .venv/bin/python bench/outbound_probe.py

Starts the daemon's HTTP server (connector.server, default [server] settings plus the recorded
org id) on a free loopback port with a temporary SQLite store, then: forged posts and the wake-ups
they cause, one 17,000-notification post, slow senders against a valid post and /health, an
oversize chunked body, and 200 concurrent valid posts. Bounded: about 30 seconds.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import requests  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from connector.clock import SystemClock  # noqa: E402
from connector.metrics import Metrics  # noqa: E402
from connector.server import Server, ServerSettings  # noqa: E402
from connector.store import schema as t  # noqa: E402
from connector.store.db import open_store  # noqa: E402
from server_support import RECORDED_ORG, chunked_request, order_message, post_request, raw_request  # noqa: E402

XML = {"Content-Type": "text/xml; charset=utf-8"}


def count(store) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.notifications)).scalar_one()


def slow_sender(port: int, stop: threading.Event) -> None:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for byte in post_request(order_message(1, start=900)):
                if stop.wait(1):
                    return
                sock.sendall(bytes([byte]))
    except OSError:
        return


def main() -> None:
    logging.disable(logging.WARNING)  # the refusals are logged one a line; the figures are the point
    tmp = Path(tempfile.mkdtemp(prefix="outbound-probe-"))
    store = open_store(f"sqlite:///{tmp / 'store.db'}")
    wakes: list[str] = []
    settings = ServerSettings(port=0, org_ids=[RECORDED_ORG], objects=["Order"])
    server = Server(settings, store=store, clock=SystemClock(), metrics=Metrics(),
                    cycle_interval=dt.timedelta(minutes=1), on_notified=lambda sobject, ids: wakes.append(sobject))
    with server:
        url = f"{server.url}/outbound"
        print(f"threads {settings.threads}, request deadline {settings.request_timeout_seconds} s")

        statuses = [requests.post(url, data=order_message(1, start=n, org="00DA0000000muCUMAY"), headers=XML,
                                  timeout=10).status_code for n in range(20)]
        print(f"20 posts with a foreign org id: statuses {sorted(set(statuses))}, wake-ups {len(wakes)}, "
              f"stored {count(store)}")
        requests.post(url, data=order_message(3, start=100), headers=XML, timeout=10)
        resends = [requests.post(url, data=order_message(3, start=100), headers=XML, timeout=10).status_code
                   for _ in range(20)]
        print(f"1 valid post then 20 resends of it: statuses {sorted(set(resends))}, wake-ups {len(wakes)}")

        big = order_message(17000, start=1000)
        reply = requests.post(url, data=big, headers=XML, timeout=30)
        print(f"one {len(big) / 1e6:.1f} MB post of 17,000 notifications: {reply.status_code}, "
              f"stored still {count(store)}")

        chunked = raw_request(server.port, chunked_request(big[:5_000_000] + b" " * max(0, 5_000_000 - len(big))))
        print(f"chunked body of 5 MB: {chunked.status} {chunked.body.decode().strip()!r}")

        for senders in (4, 8):
            stop = threading.Event()
            threads = [threading.Thread(target=slow_sender, args=(server.port, stop)) for _ in range(senders)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            started = time.monotonic()
            ok = requests.post(url, data=order_message(1, start=500 + senders), headers=XML, timeout=60).status_code
            post_took = time.monotonic() - started
            started = time.monotonic()
            health = requests.get(f"{server.url}/health", timeout=60).status_code
            health_took = time.monotonic() - started
            stop.set()
            for thread in threads:
                thread.join()
            print(f"{senders} connections sending 1 byte/s: valid post {ok} in {post_took:.3f} s, "
                  f"/health {health} in {health_took:.3f} s")

        results: list[object] = [None] * 200
        go = threading.Event()

        def one(i: int) -> None:
            go.wait()
            try:
                results[i] = raw_request(server.port, post_request(order_message(1, start=50_000 + i)), timeout=30).status
            except OSError as exc:
                results[i] = type(exc).__name__

        posts = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        for thread in posts:
            thread.start()
        started = time.monotonic()
        go.set()
        for thread in posts:
            thread.join()
        failed = [r for r in results if r != 200]
        print(f"200 concurrent valid posts: {200 - len(failed)} acked, {len(failed)} refused/failed "
              f"in {time.monotonic() - started:.2f} s")
    store.dispose()


if __name__ == "__main__":
    main()
