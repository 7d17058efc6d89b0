"""``folkrnn serve``: the web composer (folkrnn.org's composer, on your own machine).

The package: :mod:`folkrnn.serve.fields` (a tune's options as a query string),
:mod:`folkrnn.serve.studio` (the model and the decoding loop every request shares),
:mod:`folkrnn.serve.tunebook` (saved tunes: SQLite or PostgreSQL), :mod:`folkrnn.serve.app` (the
HTTP side) and ``static/`` (the page: HTML, CSS, JavaScript, abcjs and the instrument samples). The
API is written up in docs/serve.md.
"""

from __future__ import annotations

import os
import socket

from folkrnn.errors import OptionError

__all__ = ["serve", "bind"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or OptionError saying why not (in use, no such address)."""
    if not 0 <= port <= 65535:
        raise OptionError(f"--port must be between 0 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise OptionError(f"--host {host!r}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise OptionError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8000, *, model: str | None = None, db: str | None = None,
          workers: int = 1, announce=print, log_level: str = "warning") -> None:
    """Run the web composer until interrupted. ``workers`` > 1: that many server processes share
    the port (each with its own model and decoding loop; the tunebook is one database)."""
    import uvicorn

    from folkrnn.serve.app import Settings, create_app

    if not 1 <= workers <= 64:
        raise OptionError(f"--workers must be between 1 and 64, not {workers}")
    settings = Settings.from_env()  # the budgets (FOLKRNN_SERVE_RATE ...: benchmarks set them)
    settings.model, settings.db = (str(model) if model is not None else None), db or "tunebook.sqlite"
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{sock.getsockname()[1]}/"
    if workers == 1:
        try:
            app = create_app(settings)  # the model and the tunebook open before the address is shown
        except BaseException:
            sock.close()
            raise
        announce(f"folkrnn serve: {address}  (model {app.state.studio.model}; tunebook {app.state.tunebook.where}; "
                 "Ctrl-C stops)")
        config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=2)
        uvicorn.Server(config).run(sockets=[sock])
        return
    from folkrnn.serve.tunebook import Tunebook

    try:
        book = Tunebook(settings.db)  # a database that cannot be opened is said once, here
        where = book.where
        book.close()
    except BaseException:
        sock.close()
        raise
    os.environ.update(settings.to_env())
    announce(f"folkrnn serve: {address}  ({workers} processes; tunebook {where}; Ctrl-C stops)")
    config = uvicorn.Config("folkrnn.serve.app:app_from_env", factory=True, workers=workers, log_level=log_level,
                            timeout_graceful_shutdown=2)
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[sock]).run()
