"""Pydantic models of the api's JSON bodies (DESIGN §7); never ORM rows.

The response models document the shapes in OpenAPI; fields a service could
not tell us are ``null`` ("unknown"), never guessed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Backlog",
    "BufferMessage",
    "BufferMessages",
    "BufferRemote",
    "BufferView",
    "ConfigView",
    "HeldBacklog",
    "Purged",
    "Rate",
    "RedriveResult",
    "ReloadResult",
    "ReplayControl",
    "ReplayControlResult",
    "ReplayRemote",
    "ReplayRun",
    "ReplayView",
    "Totals",
]


class ConfigView(BaseModel):
    """``GET /config``."""

    file: str | None = Field(description="the config file the site runs from")
    config: dict[str, object] = Field(description="the settings, secrets redacted")
    warnings: list[str] = Field(description="options accepted but not implemented")


class ReloadResult(BaseModel):
    """``PUT /config`` and ``POST /config/reload``."""

    reloaded: bool = Field(description="every running service applied the new config")
    services: dict[str, dict[str, object]] = Field(
        description="per service: reloaded, and error or status"
    )
    warnings: list[str] = []


class Backlog(BaseModel):
    msgs: int
    bytes: int
    oldest_age_s: float | None
    waiting_for_interest: int | None = Field(
        description="backlog messages the hub has no interest in yet (null: unknown)"
    )


class HeldInRouter(BaseModel):
    msgs: int
    bytes: int
    reason: str | None = Field(description="why they are not in the store yet (null: none held)")


class HeldBacklog(BaseModel):
    """A backlog this node took over from a dead node and drains to this remote (DESIGN §9)."""

    backlog: str | None = Field(
        description="the backlog's id (its node's name, #n after a takeover)"
    )
    node: str | None = Field(description="the node that appended it")
    since: str | None = Field(description="RFC 3339: when this node took it over")
    msgs: int
    bytes: int
    oldest_age_s: float | None
    state: str | None = Field(description="its drain's state (null: the uplink did not say)")
    paused: bool | None = Field(
        default=None, description="its drain is paused (POST /replay; null: the uplink did not say)"
    )
    sent: int | None = Field(description="sent to the hub by this node since it took it over")


class BufferRemote(BaseModel):
    name: str
    account: str | None
    urls: list[str]
    connected: bool | None = Field(description="link state (null: the uplink did not say)")
    backlog: Backlog
    held_in_router: HeldInRouter = Field(
        description="messages waiting in router memory for the store (not yet durable)"
    )
    refusing_new: bool = Field(
        description="discard: new and full: new messages are refused (and counted as dropped)"
    )
    dropped: dict[str, int]
    node: str | None = Field(description="this node's name (server_name, else the host name)")
    backlog_id: str | None = Field(
        description="the backlog this node appends to ('' on SQLite: the file is this node's)"
    )
    backlog_lease: Literal["held", "waiting"] | None = Field(
        default=None,
        description="shared PostgreSQL store: 'held' when this node drains its own backlog, "
        "'waiting' for a few seconds after a store restart, until its previous process's "
        "lease expires (nothing is lost meanwhile); null on SQLite or when unknown",
    )
    held: list[HeldBacklog] = Field(
        description="backlogs of dead nodes this node drains to this remote (shared PostgreSQL)"
    )


class StoreDatabase(BaseModel):
    up: bool | None = Field(description="the store's database takes writes (null: unknown)")
    error: str | None


class Totals(BaseModel):
    msgs: int
    bytes: int


class BufferView(BaseModel):
    """``GET /buffer``."""

    remotes: list[BufferRemote]
    total: Totals
    database: StoreDatabase


class BufferMessage(BaseModel):
    seq: int
    remote: str
    subject: str
    reply: str | None
    received_at: str = Field(description="RFC 3339, when the router received it")
    acked_at: str | None = Field(description="set for retained (already delivered) messages")
    size: int
    headers: str | None = Field(description="the NATS header block, as text")
    msg_id: str = Field(description="the Nats-Msg-Id the hub gets (the client's, if it set one)")
    payload: str = Field(description="base64")
    backlog_id: str | None = Field(
        default=None,
        description="the backlog it is in: this node's own (/buffer backlog_id) or one it "
        "took over (/buffer held[].backlog); null when the store did not say",
    )


class BufferMessages(BaseModel):
    """``GET /buffer/messages``: one page; pass ``next`` as ``after`` for the next."""

    messages: list[BufferMessage]
    next: int
    more: bool


class Purged(BaseModel):
    """``DELETE /buffer``."""

    purged: int
    backlogs: dict[str, int] | None = Field(
        default=None,
        description="shared PostgreSQL store only: purged per backlog, this node's own and "
        "every one it took over",
    )


class ReplayControl(BaseModel):
    """``POST /replay``: pause or resume draining, or redrive retained messages."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["pause", "resume", "redrive"]
    remote: str | None = Field(None, max_length=256, description="default: every remote")
    subject: str | None = Field(None, max_length=4096, description="redrive: a subject filter")
    since: str | None = Field(
        None, max_length=64, description="redrive: RFC 3339, epoch seconds, or a duration ago (1h)"
    )
    until: str | None = Field(None, max_length=64, description="redrive: as since")


class Rate(BaseModel):
    msgs_s: float = Field(description="messages per second")
    bytes_s: float = Field(description="bytes per second (as the backlog counts bytes)")


class ReplayRun(BaseModel):
    """One replay: the backlog as it began, and what of it was sent."""

    started_at: str = Field(description="RFC 3339")
    ended_at: str | None = Field(description="RFC 3339; null while it runs")
    ended: Literal["caught up", "link down", "paused"] | None = Field(
        description="how it ended; null while it runs"
    )
    backlog: Totals = Field(description="the backlog when it began (the store's count)")
    sent: Totals = Field(description="sent to the hub since it began")


class ReplayRemote(BaseModel):
    """One buffered remote's drain; the same vocabulary as ``/buffer`` (msgs, bytes).

    Bytes are counted as the store counts them (subject, reply, headers and
    payload: what ``max_bytes`` limits) in every figure.
    """

    name: str
    state: str = Field(
        description="draining, idle, paused, waiting_for_interest, no_link, "
        "store_unavailable, waiting_for_lease (a restarted store waits a few seconds for "
        "its own backlog's lease), or unknown (the uplink did not answer)"
    )
    connected: bool | None
    paused: bool | None
    backlog: Backlog = Field(description="what remains, from the store (as in /buffer)")
    sent: Totals | None = Field(description="sent to the hub since the uplink started")
    rate: Rate | None = Field(description="sent per second over the last 5 s, up to now")
    eta_s: float | None = Field(
        description="deliverable backlog / rate; 0 when nothing remains, null when unknown"
    )
    replay: ReplayRun | None = Field(description="the current or last replay")
    held: list[HeldBacklog] = Field(
        default_factory=list,
        description="backlogs of dead nodes this node drains to this remote, each with its "
        "drain's state (pause and resume apply to them too)",
    )


class ReplayView(BaseModel):
    """``GET /replay``."""

    remotes: list[ReplayRemote]


class ReplayControlResult(BaseModel):
    """``POST /replay`` pause or resume: the remotes concerned, as ``GET /replay`` shows them."""

    action: Literal["pause", "resume"]
    remotes: list[ReplayRemote]


class RedriveResult(BaseModel):
    action: Literal["redrive"] = "redrive"
    redriven: int
    remotes: dict[str, int]
    backlogs: dict[str, int] | None = Field(
        default=None,
        description="shared PostgreSQL store only: redriven per backlog, this node's own and "
        "every one it took over",
    )
