"""A raw-socket NATS client for protocol edge cases (no client library in the way)."""

from __future__ import annotations

import json
import socket
import time


class RawClient:
    """Blocking socket with deadline-bounded reads."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, read_info: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=5)
        self.buf = b""
        self.closed = False
        self.info: dict[str, object] = {}
        if read_info:
            line = self.read_line()
            assert line.startswith(b"INFO "), line
            self.info = json.loads(line[5:])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_line(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(
                    f"no line within {timeout}s (closed={self.closed}): {self.buf!r}"
                )
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including ``marker``."""
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if not self._fill(deadline):
                raise AssertionError(
                    f"{marker!r} not seen within {timeout}s (closed={self.closed}): {self.buf!r}"
                )
        end = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    def read_until_closed(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._fill(deadline) and not self.closed:
                raise AssertionError(f"connection still open after {timeout}s: {self.buf!r}")
        data, self.buf = self.buf, b""
        return data

    def exchange(self, data: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
        """Send ``data`` + PING; return what came back up to the PONG (or EOF), and closed."""
        try:
            self.send(data + b"PING\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
        deadline = time.monotonic() + timeout
        while not self.buf.endswith(b"PONG\r\n") and not self.closed:
            if not self._fill(deadline):
                break
        out, self.buf = self.buf, b""
        return out, self.closed

    def close(self) -> None:
        self.sock.close()
