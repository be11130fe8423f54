"""A PostgreSQL store that cannot be reached (the server down, a failover under way): every command
ends with a message that says so and what to do, exit 1, never a traceback."""
from __future__ import annotations

import socket

from cli_support import Call, run_all, write_doc


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once closed: nothing listens there


def test_commands_on_an_unreachable_postgresql_store_say_so_without_a_traceback(tmp_path):
    (tmp_path / "config.toml").write_text(
        f'[store]\nurl = "postgresql+psycopg://revsync:s3cret-pw@127.0.0.1:{closed_port()}/revsync"\n')
    doc = write_doc(tmp_path / "orders.json", {"orders": []})
    commands = [("status",), ("report", "accounts"), ("jobs",), ("outbox",), ("quarantine",), ("import", str(doc))]
    results = run_all([Call(tmp_path, args) for args in commands])
    for result in results:
        assert result.code == 1, result
        assert "Traceback" not in result.stderr, result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout  # the URL's password is never shown
        assert "Connection refused" in result.errors, result.errors
        assert "database server is running and reachable" in result.errors, result.errors
        assert "then run the command again" in result.errors, result.errors
    for result in results[:-1]:  # commands that read the store
        assert result.errors.startswith("error: the store is unavailable: the store could not be reached"), result
    assert results[-1].errors.startswith("error: cannot open the store at postgresql+psycopg://revsync:***@"), \
        results[-1]
