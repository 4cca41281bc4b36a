"""A blocking leafnode.ipc client for tests (router.ctl, store.sock)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from leafnode.ipc import Frame, FrameDecoder, encode_frame


class IpcClient:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(10)
            try:
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.decoder = FrameDecoder()
        self.next_id = 0

    def request(self, type: str, blobs: tuple[bytes, ...] = (), **fields: object) -> Frame:
        self.next_id += 1
        self.sock.sendall(encode_frame(type, self.next_id, fields, blobs))
        while True:
            frame = self.decoder.next_frame()
            if frame is not None and frame.id == self.next_id:
                return frame
            if frame is None:
                data = self.sock.recv(1 << 20)
                assert data, f"{type}: connection closed"
                self.decoder.feed(data)

    def close(self) -> None:
        self.sock.close()


def request_once(path: Path, type: str, blobs: tuple[bytes, ...] = (), **fields: object) -> Frame:
    """One request on a fresh connection, closed after the answer."""
    client = IpcClient(path)
    try:
        return client.request(type, blobs, **fields)
    finally:
        client.close()
