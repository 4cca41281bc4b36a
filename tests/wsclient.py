"""A small blocking WebSocket NATS client for tests (as a browser or nats.ws speaks).

wsproto does the framing; ``status`` is the HTTP answer to the upgrade
(101 when accepted). Extra request headers (an ``Origin``, a ``Cookie``)
go with the upgrade.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import TYPE_CHECKING

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

if TYPE_CHECKING:
    from wsproto.extensions import Extension

__all__ = ["WsClient"]


class WsClient:
    """A blocking WebSocket NATS client; ``status`` is the HTTP answer to the upgrade."""

    def __init__(
        self,
        port: int,
        *,
        origin: str | None = None,
        compress: bool = False,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        sock: socket.socket | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Upgrade a new connection to ``port`` (or ``sock``, already connected to it).

        ``headers``: more request headers (a ``Cookie``, say).
        """
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls else sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.buf = b""
        self.closed = False
        self.extensions: list[Extension] = []
        headers = [*([(b"Origin", origin.encode())] if origin else []), *(headers or [])]
        offer: list[Extension] = [PerMessageDeflate()] if compress else []
        request = Request(
            host=f"127.0.0.1:{port}", target="/", extra_headers=headers, extensions=offer
        )
        self.sock.sendall(self.ws.send(request))
        self.status = 0
        deadline = time.monotonic() + timeout
        while not self.status:
            for event in self._events(deadline):
                if isinstance(event, AcceptConnection):
                    self.status = 101
                    self.extensions = list(event.extensions)
                elif isinstance(event, RejectConnection):
                    self.status = event.status_code

    def _events(self, deadline: float) -> list[object]:
        self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            data = None
        except ConnectionResetError:
            data = b""
        if data == b"":
            self.closed = True
        if data:
            self.ws.receive_data(data)
        elif data == b"":
            self.ws.receive_data(None)
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing more within the deadline: {self.buf!r}")
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, BytesMessage):
                self.buf += bytes(event.data)
            elif isinstance(event, TextMessage):
                self.buf += event.data.encode()
            elif isinstance(event, CloseConnection):
                self.closed = True
        return list(events)

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            assert not self.closed, self.buf
            self._events(deadline)
        end = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    def info(self) -> dict[str, object]:
        line = self.read_until(b"\r\n")
        assert line.startswith(b"INFO "), line
        info = json.loads(line[5:])
        assert isinstance(info, dict)
        return info

    def close(self) -> None:
        self.sock.close()
