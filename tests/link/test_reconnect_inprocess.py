"""The uplink's reconnect back-off in virtual time (issue 13; leafnode-protocol.md §7).

A real ``Uplink`` and its ``Remote`` built from a config; the remote's link
opener (``Remote.open_link``) is a stand-in that refuses every attempt the way
``open_hub_link`` does (``HandshakeError``), so the reconnect loop runs under
``MockClock(autojump_threshold=0)`` without a socket: minutes of retries in
milliseconds, each at the virtual instant the policy says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from leafnode.config import loads
from services.uplink.handshake import LONG_BACKOFF_S, HandshakeError
from services.uplink.service import Uplink

if TYPE_CHECKING:
    import ssl

    from leafnode.config import RemoteSettings
    from services.uplink.dialer import HubUrl
    from services.uplink.handshake import HubLink, Identity


def _uplink(reconnect: str) -> Uplink:
    config = f"""
leafnodes {{
  reconnect: "{reconnect}"
  remotes: [ {{ url: "nats-leaf://127.0.0.1:7422" }} ]
}}
"""
    return Uplink(loads(config))


class _Refusing:
    """Refuses every attempt; records when each came (virtual time)."""

    def __init__(self, errors: list[HandshakeError]) -> None:
        self.errors = errors
        self.at: list[float] = []

    async def __call__(
        self, url: HubUrl, remote: RemoteSettings, identity: Identity, tls_ctx: ssl.SSLContext
    ) -> HubLink:
        self.at.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        raise self.errors[min(len(self.at), len(self.errors)) - 1]


@pytest.mark.trio
async def test_failed_attempts_back_off_reconnect_plus_jitter(
    autojump_clock: trio.abc.Clock,
) -> None:
    uplink = _uplink("2s")
    remote = uplink.remotes[0]
    opener = _Refusing([HandshakeError("cannot connect: connection refused")])
    remote.open_link = opener
    with trio.move_on_after(600):
        await remote.run()
    gaps = [b - a for a, b in zip(opener.at, opener.at[1:], strict=False)]
    # nats-server: reconnect plus a random jitter of up to reconnect again.
    assert len(gaps) >= 600 / 4 - 1
    assert all(2.0 <= gap <= 4.0 for gap in gaps), gaps
    assert max(gaps) - min(gaps) > 0.5  # jittered, not lock step
    assert remote.last_error == "cannot connect: connection refused"


@pytest.mark.trio
async def test_a_loop_error_backs_off_thirty_seconds(autojump_clock: trio.abc.Clock) -> None:
    uplink = _uplink("1s")
    remote = uplink.remotes[0]
    loop = HandshakeError("hub answered -ERR 'Loop detected'", backoff_s=LONG_BACKOFF_S)
    opener = _Refusing([loop, loop, HandshakeError("cannot connect: refused")])
    remote.open_link = opener
    with trio.move_on_after(70):
        await remote.run()
    gaps = [b - a for a, b in zip(opener.at, opener.at[1:], strict=False)]
    assert gaps[:2] == [pytest.approx(LONG_BACKOFF_S), pytest.approx(LONG_BACKOFF_S)]
    assert all(1.0 <= gap <= 2.0 for gap in gaps[2:]), gaps
