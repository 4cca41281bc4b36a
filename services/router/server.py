"""The router: client port listener, accounts, and the data-link socket."""

from __future__ import annotations

import contextlib
import logging
import os
import socket as _stdsocket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import nkeys
import trio

from leafnode import SERVER_VERSION
from leafnode.config import DEFAULT_ACCOUNT

from .auth import Authenticator
from .client_conn import ClientConnection
from .datalink import DataLink
from .outbound import Flusher
from .routing import Account

if TYPE_CHECKING:
    from leafnode.config import Settings

__all__ = ["Server"]

log = logging.getLogger("leafnode.router")

DATALINK_SOCKET = "router.sock"


def _new_server_id() -> str:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER)
    public: bytes = nkeys.from_seed(seed).public_key
    return public.decode()


class Server:
    """Everything the router process owns."""

    def __init__(self, settings: Settings) -> None:
        self.full_settings = settings
        self.settings = settings.router
        self.server_id = _new_server_id()
        self.server_name = self.settings.server_name or self.server_id
        self.auth = Authenticator(self.settings)
        # bcrypt hashing runs in threads; bound how many at once.
        self.auth_limiter = trio.CapacityLimiter(2)
        self.accounts: dict[str, Account] = {}
        self.accounts_by_bytes: dict[bytes, Account] = {}
        self.datalink: DataLink | None = None
        for name in (DEFAULT_ACCOUNT, *self.auth.accounts):
            self.account(name)
        for remote in settings.leafnodes.remotes:
            self.account(remote.account)
        self.default_account = self.accounts[DEFAULT_ACCOUNT]
        self.clients: dict[int, ClientConnection] = {}
        self.flusher = Flusher()
        self.datalink_path = str(Path(settings.run_dir) / DATALINK_SOCKET)
        self.slow_consumers = 0
        self.total_connections = 0
        self._next_cid = 0
        self.port = self.settings.port
        self.info_template: dict[str, object] = {}

    def account(self, name: str) -> Account:
        account = self.accounts.get(name)
        if account is None:
            account = Account(name)
            self.accounts[name] = account
            self.accounts_by_bytes[account.name_bytes] = account
            if self.datalink is not None:
                account.hub_sink = self.datalink
        return account

    def _build_info(self) -> None:
        settings = self.settings
        info: dict[str, object] = {
            "server_id": self.server_id,
            "server_name": self.server_name,
            "version": SERVER_VERSION,
            "proto": 1,
            "go": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "host": settings.host,
            "port": self.port,
            "headers": True,
            "max_payload": settings.max_payload,
        }
        if self.auth.auth_required:
            info["auth_required"] = True
        self.info_template = info

    def remove_client(self, client: ClientConnection) -> None:
        self.clients.pop(client.cid, None)

    # ------------------------------------------------------------- serving

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind the data-link socket and the client port, then serve forever."""
        settings = self.settings
        datalink_listener = await self._bind_datalink()
        port = 0 if settings.port == -1 else settings.port
        listeners = await trio.open_tcp_listeners(port, host=settings.host or None)
        self.port = listeners[0].socket.getsockname()[1]
        self._build_info()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.flusher.run)
            await nursery.start(trio.serve_listeners, self._handle_datalink, [datalink_listener])
            await nursery.start(trio.serve_listeners, self._handle_client, listeners)
            log.info("Listening for client connections on %s:%d", settings.host, self.port)
            log.info("Server is ready")
            task_status.started(self.port)

    async def _bind_datalink(self) -> trio.SocketListener:
        path = self.datalink_path
        # Start-up only, before any client: blocking file-system calls are fine.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a stale socket from a killed router
        sock = trio.socket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(16)
        os.chmod(path, 0o660)
        return trio.SocketListener(sock)

    async def _handle_client(self, stream: trio.SocketStream) -> None:
        self._next_cid += 1
        cid = self._next_cid
        try:
            peer = stream.socket.getpeername()
            host, port = str(peer[0]), int(peer[1])
        except OSError:
            host, port = "", 0
        client = ClientConnection(self, stream, cid, host, port)
        max_conn = self.settings.max_connections
        if max_conn and len(self.clients) >= max_conn:
            log.error("%s - maximum connections exceeded", client)
            client.send_info()
            client.outbound.write(b"-ERR 'maximum connections exceeded'\r\n")
            client.outbound.close_after_flush()
            with trio.move_on_after(1):
                await client.outbound.run_writer()
            client.outbound.close_raw()
            await stream.aclose()
            return
        self.clients[cid] = client
        self.total_connections += 1
        log.debug("%s - Client connection created", client)
        await client.run()

    async def _handle_datalink(self, stream: trio.SocketStream) -> None:
        old = self.datalink
        link = DataLink(self, stream)
        self.datalink = link
        if old is not None:
            old.close()
        await link.run()
