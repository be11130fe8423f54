"""`revsync console`: the console on its own (cheroot), for a store without a running daemon."""
from __future__ import annotations

import signal

from cheroot import wsgi

from connector.console import MIN_TOKEN_LENGTH, PREFIX, TOKEN_ENV, ConsoleApp, is_loopback, token_from_env
from connector.errors import FatalError, Problem, ValidationFailed


def build(the_app, host: str, environ: dict | None = None) -> ConsoleApp:
    """The console for `host`; refuses a non-loopback host without a token (exit 2, nothing started)."""
    token = token_from_env(environ)
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValidationFailed("console", [Problem(TOKEN_ENV, f"is shorter than {MIN_TOKEN_LENGTH} characters")],
                               hint="set a long random value, e.g. `export "
                                    f"{TOKEN_ENV}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')`")
    if token is None and not is_loopback(host):
        raise ValidationFailed("console", [Problem(f"--host {host}", f"is not a loopback address and {TOKEN_ENV} "
                                                                     "is not set: anyone who reaches the port "
                                                                     "would see the data")],
                               hint=f"set {TOKEN_ENV} (a long random value) in the environment, "
                                    "or serve on 127.0.0.1")
    return ConsoleApp(the_app.store, the_app.clock, calendar=the_app.calendar, token=token)


def serve(the_app, host: str, port: int, say) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM); `say` prints a line for the user."""
    app = build(the_app, host)
    server = wsgi.Server((host, port), app, numthreads=4, server_name="revsync-console")
    server.expiration_interval = 0.2
    try:
        server.prepare()
    except OSError as exc:
        raise FatalError(f"cannot listen on {host}:{port}: {exc}", hint="choose another --host or --port") from exc
    shown = f"[{host}]" if ":" in host else host
    say(f"revsync console at http://{shown}:{server.bind_addr[1]}{PREFIX}/ (read-only; Ctrl-C stops it)"
        + (f"; open it once with ?token=<{TOKEN_ENV}>" if app.token else ""))

    def stop(*_):
        raise KeyboardInterrupt  # SIGTERM ends the console as Ctrl-C does

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return 0
