"""Protocol limits, each with the reason for its value."""

from __future__ import annotations

from typing import Final

# nats-server's default max_control_line for client connections (server/const.go).
MAX_CONTROL_LINE: Final = 4096
# Leaf, route and gateway connections get 16x the client limit on current servers
# (leafnode-protocol.md §1): an LS+/LMSG line can carry long queue lists.
MAX_CONTROL_LINE_LEAF: Final = 16 * MAX_CONTROL_LINE
# nats-server's default max_payload: 1 MiB.
MAX_PAYLOAD: Final = 1024 * 1024
# nats-server's hard ceiling for max_payload (64 MiB); larger configs are refused.
MAX_PAYLOAD_LIMIT: Final = 64 * 1024 * 1024
# Payloads at least this large are copied out of the read buffer through a
# memoryview (one copy instead of two); below it plain slicing is faster (STYLE §2).
ZERO_COPY_MIN: Final = 32 * 1024
# nats-server's default max_pending per client (64 MiB) before slow-consumer close.
MAX_PENDING: Final = 64 * 1024 * 1024
