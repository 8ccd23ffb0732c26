"""``hposweep dashboard``: optuna-dashboard over the studies' own storages, read-only.

One web server per storage (the default SQLite storage is one file per study; a shared
PostgreSQL, MySQL or journal storage holds every backbone's study and gets one server).
The dashboard's own editing routes (notes, renaming, deleting, telling trials) are
refused: only GET and HEAD reach it, so looking at a study never changes it, and
workers elsewhere can go on writing to it.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hposweep.config.schema import SweepConfig, study_name_for
from hposweep.errors import UserError
from hposweep.study.storage import anything_stored, make_storage, redact_url, storage_url

EXTRA = "hposweep[dashboard]"
READ_METHODS = ("GET", "HEAD")


@dataclass
class Server:
    """One web server: a storage, the studies of the config in it, and their pages."""

    storage_url: str
    storage: Any  # opened for reading
    studies: list[tuple[str, int]] = field(default_factory=list)  # (backbone, study id)
    httpd: Any = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def study_url(self, study_id: int) -> str:
        return f"{self.url}/dashboard/studies/{study_id}"


def require_extra() -> None:
    """Exit 2 (a :class:`UserError`) naming the extra when optuna-dashboard is missing."""
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        raise UserError(f"hposweep dashboard needs optuna-dashboard: pip install '{EXTRA}'"
                        ) from None


def exposed(host: str) -> bool:
    """Whether binding ``host`` makes the dashboard reachable from other machines."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return True


def read_only(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app`` refusing every request that could write (405)."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD", "GET") in READ_METHODS:
            return app(environ, start_response)
        start_response("405 Method Not Allowed", [("Content-Type", "application/json"),
                                                  ("Allow", ", ".join(READ_METHODS))])
        return [b'{"reason": "hposweep dashboard is read-only"}']

    return guarded


def plan(cfg: SweepConfig, warn: Callable[[str], None]) -> list[Server]:
    """The servers to start: one per storage that holds a study of the config. Only whether
    each study exists is read (its id): optuna-dashboard reads the rest when a page asks."""
    servers: dict[str, Server] = {}
    for backbone in cfg.backbones:
        name = study_name_for(cfg, backbone)
        url = storage_url(cfg, name)
        if url is None:
            raise UserError("study.persist is false: the study lives in memory only, "
                            "there is nothing to show")
        server = servers.get(url)
        if server is None and anything_stored(url):  # looking creates no file, no table
            server = servers[url] = Server(url, make_storage(url, reading=True))
        study_id = _study_id(server.storage, name) if server is not None else None
        if server is None or study_id is None:
            warn(f"{backbone}: no study {name!r} in {redact_url(url)} yet")
            continue
        server.studies.append((backbone, study_id))
    started = [server for server in servers.values() if server.studies]
    if not started:
        raise UserError("no study to show yet: start the sweep first (hposweep run)")
    return started


def _study_id(storage: Any, name: str) -> int | None:
    try:
        return int(storage.get_study_id_from_name(name))
    except KeyError:
        return None


def start(servers: list[Server], host: str, port: int) -> None:
    """Listen: the first server on ``port``, the next ones on the ports after it (``0``:
    any free port each). Serves in background threads; :func:`stop` ends them."""
    from optuna_dashboard import wsgi

    for index, server in enumerate(servers):
        wanted = port + index if port else 0
        try:
            server.httpd = _make_server(host, wanted, read_only(wsgi(server.storage)))
        except OSError as exc:
            stop(servers)
            raise UserError(f"cannot listen on {host}:{wanted}: {exc.strerror or exc} "
                            "(choose another --port or --host)") from None
        threading.Thread(target=server.httpd.serve_forever, daemon=True,
                         name=f"dashboard-{index}").start()


def stop(servers: list[Server]) -> None:
    for server in servers:
        if server.httpd is not None:
            server.httpd.shutdown()
            server.httpd.server_close()
            server.httpd = None


def _make_server(host: str, port: int, app: Callable[..., Any]) -> Any:
    """A threaded WSGI server (a page's requests in parallel), quiet about each request."""
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    class Threaded(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return make_server(host, port, app, server_class=Threaded, handler_class=Quiet)
