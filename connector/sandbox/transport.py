"""In-process access to the sandbox org through ``requests``: a transport adapter that hands each
request to the WSGI app without sockets, so ``requests`` and simple-salesforce (``session=``) work
unchanged against ``https://sandbox.revsync.test``.
"""
from __future__ import annotations

import io
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .app import ANSWER_LOST, SandboxApp
from .org import Org

DEFAULT_BASE_URL = "https://sandbox.revsync.test"


class SandboxAdapter(BaseAdapter):
    """A ``requests`` adapter that serves requests from a :class:`SandboxApp` in process."""

    def __init__(self, app: SandboxApp):
        super().__init__()
        self.app = app

    def send(self, request: requests.PreparedRequest, stream=False, timeout=None, verify=True, cert=None,
             proxies=None) -> requests.Response:
        """Run the WSGI app for one prepared request and wrap its answer as a ``requests.Response``."""
        url = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif hasattr(body, "read"):
            body = body.read()
        environ = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            # WSGI carries the path as latin-1 "bytes in str"; percent-decoding mirrors real servers.
            "PATH_INFO": _unquote_path(url.path).encode("utf-8").decode("latin-1"),
            "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "localhost",
            "SERVER_PORT": str(url.port or (443 if url.scheme == "https" else 80)),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": url.scheme,
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            ANSWER_LOST: [],
        }
        for key, value in request.headers.items():
            name = key.upper().replace("-", "_")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif name != "CONTENT_LENGTH":
                environ[f"HTTP_{name}"] = value
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers

        chunks = self.app(environ, start_response)
        data = b"".join(chunks)
        if environ[ANSWER_LOST]:
            # the org carried the request out; its answer never comes back (a lost-answer fault)
            raise requests.ReadTimeout(f"sandbox fault: the answer to {request.method} {url.path} was lost",
                                       request=request)
        resp = requests.Response()
        resp.status_code = int(captured["status"].split(" ", 1)[0])
        resp.reason = captured["status"].split(" ", 1)[1] if " " in captured["status"] else ""
        resp.headers = CaseInsensitiveDict(captured["headers"])
        resp.raw = io.BytesIO(data)
        resp._content = data
        resp.encoding = "utf-8"
        resp.url = request.url
        resp.request = request
        resp.connection = self
        return resp

    def close(self) -> None:
        """Nothing to release: there is no connection pool."""


def _unquote_path(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def sandbox_session(org: Org, base_url: str = DEFAULT_BASE_URL, *, token: str | None = None) -> requests.Session:
    """A ``requests.Session`` whose requests to ``base_url`` go to ``org`` in process.

    With ``token`` the session already carries ``Authorization: Bearer <token>``.
    """
    session = requests.Session()
    session.mount(base_url.rstrip("/") + "/", SandboxAdapter(SandboxApp(org)))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session
