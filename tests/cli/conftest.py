"""A store with SPEC section 7's worked example, imported once by the real command for the session."""
from __future__ import annotations

import pytest

from cli_support import revsync, workdir, worked_example, write_doc


@pytest.fixture(scope="session")
def worked_store(tmp_path_factory) -> dict:
    """Working directory `wd` (config.toml, store), the import file `doc`, and the import's result."""
    wd = workdir(tmp_path_factory.mktemp("worked"), "wd")
    doc = write_doc(wd / "orders.json", worked_example())
    result = revsync(wd, "import", str(doc))
    assert result.code == 0, result.stderr
    return {"wd": wd, "doc": doc, "import": result}
