"""Framing limits of the uplink's two kinds of links.

Both the hub links and the router link are cut into messages by the shared
``leafnode.proto.MessageFramer``, which lets the uplink relay messages without
building an event per message: a run of messages the uplink passes on
unchanged leaves as one slice of what was read (see that module).
"""

from __future__ import annotations

from typing import Final

__all__ = ["LINK_MAX_CONTROL_LINE", "LINK_MAX_PAYLOAD"]

# The largest message any hub may send (nats-server refuses max_payload above
# 64 MiB), and the control-line limit of leaf links on current servers (§1).
LINK_MAX_PAYLOAD: Final = 64 * 1024 * 1024
LINK_MAX_CONTROL_LINE: Final = 64 * 1024
