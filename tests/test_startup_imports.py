"""What every command pays before it does anything (issue 11).

Importing the command line, and opening a store already at its schema's head, load neither the
Salesforce client (requests, simple-salesforce, and through it the SOAP client zeep, PyJWT and
cryptography), nor the HTTP server (cheroot, prometheus-client), nor the migration tool
(alembic): each command that needs one loads it itself. Together they were about a third of
`revsync --version`'s time.
Each check runs in a fresh interpreter, since this one has loaded everything already.
"""
from __future__ import annotations

import json
import subprocess
import sys

#: packages no command needs at start-up
HEAVY = ("alembic", "zeep", "simple_salesforce", "jwt", "cryptography", "lxml", "cheroot", "prometheus_client",
         "requests", "urllib3")


def _loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_command_line_loads_no_salesforce_client_server_or_migration_tool():
    loaded = _loaded_after("import connector.cli")
    assert "connector" in loaded and "typer" in loaded  # the probe sees what the import loaded
    assert sorted(loaded & set(HEAVY)) == []


def test_opening_a_store_at_its_head_loads_no_migration_tool(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    opened = "from connector.store.db import open_store\nopen_store(%r).dispose()" % url
    first = _loaded_after(opened)  # the first open builds the store: alembic runs
    assert "alembic" in first
    again = _loaded_after(opened)
    assert "alembic" not in again
    assert "sqlalchemy" in again


def test_the_status_command_on_a_store_at_its_head_loads_no_salesforce_client_server_or_migration_tool(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "store.db"}"\n')
    run = ("import os, sys\nos.environ['REVSYNC_CONFIG'] = %r\nfrom connector.cli import main\n"
           "sys.argv = ['revsync', 'status', '--format', 'json']\n"
           "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n") % str(config)
    _loaded_after("from connector.store.db import open_store\nopen_store(%r).dispose()"
                  % f"sqlite:///{tmp_path / 'store.db'}")  # a store, as an import leaves it
    loaded = _loaded_after(run)
    assert sorted(loaded & set(HEAVY)) == []
