"""The store link: frame types spoken over ``run_dir/store.sock`` (DESIGN §2, §4, §8).

This docstring is the contract the router, the uplink and the api code against.
Framing is ``_codec``'s: ``u32 body_len | u32 json_len | JSON | blobs``; every
frame has ``type`` and ``id``, binary parts are raw blobs listed in ``blobs``.

Requests and responses
----------------------
A client sends requests with ids it chooses (unique among its pending
requests; >= 1). Each request gets exactly one response with the same id,
``type`` ``"ok"`` (``"pong"`` for ping) or ``"error"``. Requests may be
pipelined; responses are matched by id, not by order. Times are integer
microseconds since the Unix epoch (``*_us``); seqs are store-wide, start at 1,
grow by one per stored message and are never reused, not even after a purge
and a restart. (On PostgreSQL, which several nodes may share, each node
reserves seqs in blocks: a node's seqs grow, with gaps between its blocks.)

Backlogs (DESIGN §9): on a PostgreSQL store shared by several nodes each
node appends to its own backlog (``backlog``: the node's name, or
``name#n`` after another node took it over) and drains the backlogs it holds
a lease on; a SQLite store has one backlog, "". ``read``, ``ack`` and
``subscribe`` take ``backlog?: str`` (default: the node's own); a read of a
backlog this node does not hold answers no messages, and an ack of one is
refused with code ``lease_lost``.

``ping`` {} -> ``pong`` {leaf_id, last_seq, node, backlog, version, database:
{up, error, down_since_us}}
    Readiness probe; ``leaf_id`` is the store's random id (DESIGN §8).
    ``database`` is whether the database takes writes, as the store last
    saw it (every operation, and a one-row write probe about every second
    while idle): ``error`` is an operator's sentence while it does not
    (never the driver's text), ``down_since_us`` when that began.

``append`` {subject: [...], remote: str|[...], received_at_us: [...],
reply: [...]|null, hdr_len: [...]|null, queues: [[queue, ...], ...]|null},
one blob per message: its headers (``hdr_len`` bytes, 0 = none) followed by
its payload. -> ``ok`` {first_seq, last_seq, refused: [[index, reason], ...]}
    The batch travels as parallel arrays, one per field, as a ``columns``
    read answer does: ``remote`` is one string when every message has it,
    ``received_at_us`` one integer when every message has it, ``subject``
    may be one string holding the subjects joined by ``"\\n"`` (a subject
    never holds whitespace; one JSON string costs the sender and the store
    far less than a list of them), ``reply``, ``hdr_len`` and ``queues``
    are null when every message has none (null, 0, []). The older form, {msgs: [[remote, subject,
    reply|null, hdr_len, received_at_us, [queue, ...]], ...]}, one JSON list
    per message, is still accepted; the columns cost a third of its decode.
    Answered after the commit, one transaction for the whole batch (and for
    the batches of other connections that queued meanwhile). Accepted
    messages got the seqs ``first_seq..last_seq`` in batch order (both 0 when
    none was accepted); ``refused`` lists the batch indexes that were not
    stored, with the reason (``discard: new``, or one message larger than
    ``max_bytes``); refused messages take no seq. With ``discard: old`` the
    oldest pending messages of the remote are deleted to make room (older
    batches first; if this batch alone is too big, its own earliest, which
    keep their seq but are gone) and counted in ``stats``. ``queue`` names
    are the local queue groups that already got the message (DESIGN §3.3).

``read`` {remote?: str, after?: seq=0, limit?: 1000, max_bytes?: 8 MiB,
subjects?: [pattern], acked?: false, since_us?, until_us?, columns?: false}
-> ``ok`` {msgs:
[[seq, remote, subject, reply|null, hdr_len, received_at_us, [queue, ...],
acked_at_us|null], ...], next, more}, one blob per message as in append.
    Messages with seq > ``after`` in seq order, only pending (un-acked) ones
    unless ``acked`` is true, matching any of ``subjects`` (NATS wildcards)
    and the ``received_at`` bounds. At least one message is returned if any
    matches, even above ``max_bytes``. ``next`` is the cursor for the next
    read (the last seq examined, matching or not, so a reader skips over
    messages it filtered out); ``more`` says the scan stopped early.
    ``remote`` absent or null reads every remote (the api). ``backlog``
    (a drain's, on a shared store) reads that backlog only, and is refused
    with code ``not_held`` when the store does not hold it (yet). ``held:
    true`` (the api) reads the node's own backlog and every backlog it took
    over, in seq order with one cursor, and adds ``backlogs``: each
    message's backlog, a list parallel to ``msgs``.

    With ``columns: true`` the same messages come as parallel arrays, one
    per field, instead of ``msgs`` (no JSON list per message, for the
    uplink's drain): ``ok`` {seq: [...], remote: [...]|null, subject: [...],
    reply: [...]|null, hdr_len: [...]|null, received_at_us: [...], queues:
    [[queue, ...], ...]|null, acked_at_us: [...]|null, next, more}, blobs as
    above. ``remote`` is null when the request named a remote (all are its);
    ``reply``, ``hdr_len``, ``queues`` and ``acked_at_us`` are null when
    every message has none (null, 0, [] and null).

``ack`` {remote, upto?: seq, seqs?: [seq]} -> ``ok`` {acked}
    The pending messages of ``remote`` with seq <= ``upto`` and/or listed
    in ``seqs`` leave the backlog: deleted, or kept as *retained* for the
    remote's ``retain`` period (a later ``redrive`` can replay them).
    ``acked`` counts the messages that were pending.

``purge`` {remote?, subject?: pattern, until_us?, upto?: seq, backlog?} -> ``ok``
{purged, backlogs: {backlog: n}}
    Deletes pending and retained messages matching every given filter (no
    filter: everything), in ``backlog`` or in every backlog the node holds
    (its own and those it took over; "" on SQLite), each fenced by its
    lease in the transaction. Pending ones are counted as dropped, reason
    ``purged``. Refused, changing nothing, with code ``not_held`` (the
    backlog is not held here, or the node's own waits for its lease after a
    restart) or ``lease_lost`` (another node took one meanwhile).

``redrive`` {remote, subject?: pattern, since_us?, until_us?, backlog?} -> ``ok``
{redriven, first_seq, backlogs: {backlog: {redriven, first_seq}}}
    Retained (acked) messages become pending again, in the backlogs a purge
    would cover (refused as a purge is); subscribers of the remote get a
    ``rewind`` event for the node's own backlog so readers move their cursor
    back (a drain of a taken-over backlog rewinds itself from ``backlogs``).

``stats`` {} -> ``ok`` {leaf_id, last_seq, node, backlog, backlog_held, shared,
takeovers, held: [{backlog, node, epoch, claimed_at_us, remotes: {name: {msgs,
bytes, oldest_age_s|null}}}], remotes: {name: {msgs, bytes,
oldest_age_s|null, retained_msgs, retained_bytes, dropped: {reason: n}, full}},
total: {msgs, bytes}, database: {up, error?, down_since_us?}}
    ``remotes`` and ``total`` are this node's own backlog; ``held`` lists
    the backlogs it took over from dead nodes (``takeovers`` counts them
    since start); ``backlog_held`` is false while the node waits for its
    previous process's lease of its own backlog.
    ``msgs``/``bytes`` are the pending backlog, the quantities the limits
    bound. ``size`` of a message is subject + reply + headers + payload.
    ``full``: the remote has ``discard: new`` and is at ``max_msgs`` or
    ``max_bytes``, so new messages are refused. While the database is down
    the answer comes at once from the counters in memory (``oldest_age_s``
    null) with ``database`` as in ``ping``.

``subscribe`` {remote?: str, backlog?: str} -> ``ok`` {last_seq, backlog}
    From then on the store sends events with the id of this request:
    ``appended`` {remote, last_seq} after each commit that stored messages
    for ``remote`` (every remote when none was given; ``last_seq`` is the
    highest seq stored for that remote), and ``rewind``
    {remote, seq} after a redrive made messages from ``seq`` on pending
    again. Events are coalesced: a slow reader sees the latest ``last_seq``,
    not one event per commit. A backlog other than the node's own gets no
    events (nobody appends to it here) and ``last_seq`` 0; ``backlog`` is
    the node's own.

``unsubscribe`` {sub: id} -> ``ok`` {}

``reload`` {check?} -> ``ok`` {reloaded, changes: [str], error?}
    Re-reads the config file the store was started with, as SIGHUP does
    (``leafnode run`` sends this on a reload, to the store first), and
    applies each remote's buffer limits to later appends and housekeeping:
    a lowered ``max_msgs``/``max_bytes`` drops the oldest pending messages
    at the next append or housekeeping pass with ``discard: old`` (counted
    as dropped), and refuses appends with ``discard: new`` until the backlog
    is below it. ``changes`` describes what changed. ``reloaded`` is false,
    with ``error``, when the file does not load: the old limits stay.
    ``store { url, sync }`` changes need a restart (the reload is refused).
    With ``check: true`` the file is only validated (``leafnode run``
    checks every service before it reloads any).

Errors: ``error`` {error: text, code}; ``code`` is ``bad_request`` (the
request was refused as malformed; nothing changed), ``unavailable`` (the
database failed, e.g. disk full or Postgres down; nothing was committed, the
request may be retried; ``error`` is ``store database: <sentence>``),
``lease_lost`` (an ack of a backlog another node holds now; nothing changed)
or ``unknown_type``. A frame that breaks the framing closes the connection.

Drop reasons (stats ``dropped`` and append ``refused``): ``max_msgs``,
``max_bytes``, ``max_age``, ``purged``.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._codec import DEFAULT_MAX_FRAME, Frame, IpcError, encode_frame

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DEFAULT_READ_LIMIT",
    "DEFAULT_READ_MAX_BYTES",
    "DROP_REASONS",
    "MAX_READ_LIMIT",
    "PROTOCOL_VERSION",
    "READ_COLUMNS",
    "SOCKET_MODE",
    "STORE_SOCKET",
    "STORE_START_GRACE_S",
    "AppendColumns",
    "AppendReply",
    "BufferedMsg",
    "ReadReply",
    "RequestError",
    "StoredMsg",
    "decode_append",
    "decode_append_columns",
    "decode_append_reply",
    "decode_read_columns",
    "decode_read_reply",
    "encode_append",
    "encode_append_columns",
    "encode_read_reply",
    "field_bool",
    "field_int",
    "field_int_list",
    "field_str",
    "field_str_list",
    "msg_id",
    "rfc3339_us",
    "stamp_headers",
]

PROTOCOL_VERSION: Final = 1
STORE_SOCKET: Final = "store.sock"
# Services start together (``leafnode run``): a client that has not reached
# store.sock yet, this soon after its own start, is waiting for a store that
# is still opening its database, not facing an outage (INFO, not ERR).
STORE_START_GRACE_S: Final = 10.0
# DESIGN §2: service sockets are readable and writable by owner and group only.
SOCKET_MODE: Final = 0o660
DEFAULT_READ_LIMIT: Final = 1000
# A read answers at most this many messages, so one response stays far below
# max_frame for small messages and a reader cannot pin the store for long.
MAX_READ_LIMIT: Final = 10_000
DEFAULT_READ_MAX_BYTES: Final = 8 * 1024 * 1024
DROP_REASONS: Final = ("max_msgs", "max_bytes", "max_age", "purged")

_HEADER_END: Final = b"\r\n\r\n"
_NATS_HDR_LINE: Final = b"NATS/1.0\r\n"
_MSG_ID_KEY: Final = b"\r\nnats-msg-id:"
_BUFFERED_AT_KEY: Final = b"\r\nleafnode-buffered-at:"


class RequestError(IpcError):
    """A request was refused (an ``error`` response, or bad request fields).

    Attributes:
        code: ``bad_request``, ``unavailable`` or ``unknown_type``.
    """

    def __init__(self, message: str, *, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class BufferedMsg:
    """A message the router hands to the store.

    Attributes:
        remote: the remote whose buffer it belongs to.
        subject: the subject it was published on.
        reply: its reply subject, if any.
        hdr_len: length of the NATS header block at the start of ``data`` (0: none).
        data: headers followed by payload, as in ``HPUB``.
        received_at_us: when the router received it (``Leafnode-Buffered-At``).
        queues: local queue groups that already got it.
    """

    remote: str
    subject: str
    reply: str | None
    hdr_len: int
    data: bytes
    received_at_us: int
    queues: tuple[str, ...] = ()


@dataclass(slots=True)
class AppendColumns:
    """An append request's messages as parallel lists, one per field.

    What the store decodes an append into (``decode_append_columns``): the
    columns of the frame as they come out of the JSON, with no object per
    message. Entry ``i`` of every list describes message ``i``; the fields
    are ``BufferedMsg``'s.
    """

    remote: list[str]
    subject: list[str]
    reply: list[str | None]
    hdr_len: list[int]
    data: list[bytes]
    received_at_us: list[int]
    queues: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def of(cls, msgs: Sequence[BufferedMsg]) -> AppendColumns:
        """The columns of ``msgs``."""
        return cls(
            [m.remote for m in msgs],
            [m.subject for m in msgs],
            [m.reply for m in msgs],
            [m.hdr_len for m in msgs],
            [m.data for m in msgs],
            [m.received_at_us for m in msgs],
            [m.queues for m in msgs],
        )


@dataclass(slots=True)
class StoredMsg:
    """A message read back from the store (``BufferedMsg`` plus its seq)."""

    seq: int
    remote: str
    subject: str
    reply: str | None
    hdr_len: int
    data: bytes
    received_at_us: int
    queues: tuple[str, ...] = ()
    acked_at_us: int | None = None

    @property
    def headers(self) -> bytes:
        """The NATS header block (``b""`` when the message has none)."""
        return self.data[: self.hdr_len]

    @property
    def payload(self) -> bytes:
        """The payload without headers."""
        return self.data[self.hdr_len :]


@dataclass(frozen=True, slots=True)
class AppendReply:
    """The answer to an append: which seqs were assigned, what was refused."""

    first_seq: int
    last_seq: int
    refused: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ReadReply:
    """The answer to a read: messages, the next cursor, whether more may follow."""

    msgs: list[StoredMsg]
    next: int
    more: bool


# -- field accessors: validate JSON values, raise RequestError(bad_request) ---------


def field_str(fields: Mapping[str, object], key: str, *, required: bool = False) -> str | None:
    """``fields[key]`` as a string, ``None`` when absent or null (unless required)."""
    value = fields.get(key)
    if value is None:
        if required:
            raise RequestError(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise RequestError(f"field {key!r} must be a string")
    return value


def field_int(
    fields: Mapping[str, object], key: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    """``fields[key]`` as an integer >= ``minimum``, ``default`` when absent."""
    value = fields.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RequestError(f"field {key!r} must be an integer >= {minimum}")
    return value


def field_bool(fields: Mapping[str, object], key: str, *, default: bool = False) -> bool:
    """``fields[key]`` as a boolean, ``default`` when absent."""
    value = fields.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(f"field {key!r} must be a boolean")
    return value


def field_int_list(fields: Mapping[str, object], key: str) -> list[int] | None:
    """``fields[key]`` as a list of non-negative integers, ``None`` when absent."""
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise RequestError(f"field {key!r} must be a list of integers >= 0")
    return value


def field_str_list(fields: Mapping[str, object], key: str) -> list[str] | None:
    """``fields[key]`` as a list of strings, ``None`` when absent."""
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"field {key!r} must be a list of strings")
    return value


# -- append ---------------------------------------------------------------------------


def encode_append(
    id: int, msgs: Sequence[BufferedMsg], *, max_frame: int = DEFAULT_MAX_FRAME
) -> bytes:
    """Encode an ``append`` request for ``msgs`` (one frame, one transaction).

    Columns, not rows (see the module docstring): one JSON array per field
    instead of one per message, and the fields every message leaves empty
    are one ``null``.
    """
    return encode_append_columns(
        id,
        [m.remote for m in msgs],
        [m.subject for m in msgs],
        [m.reply for m in msgs],
        [m.hdr_len for m in msgs],
        [m.data for m in msgs],
        [m.received_at_us for m in msgs],
        [m.queues for m in msgs],
        max_frame=max_frame,
    )


def encode_append_columns(
    id: int,
    remote: Sequence[str],
    subject: Sequence[str] | str,
    reply: Sequence[str | None],
    hdr_len: Sequence[int],
    data: Sequence[bytes],
    received_at_us: Sequence[int] | int,
    queues: Sequence[Sequence[str]],
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> bytes:
    """``encode_append`` for messages held as columns (entry ``i`` of each: message ``i``).

    ``subject`` may be the subjects already joined by ``"\\n"``, and
    ``received_at_us`` one integer for all (the module docstring). The
    router's store link keeps its batch as one tuple per message and
    takes its columns out in C: they go into the JSON as they are (lists
    or tuples), and every "all the same" test runs in C
    (``count``, ``any``), with no Python step per message.
    """
    n = len(data)
    if not isinstance(subject, str):
        joined = "\n".join(subject)
        if joined.count("\n") == n - 1:  # else a subject holds "\n": send the list
            subject = joined
    if not isinstance(received_at_us, int) and n and received_at_us.count(received_at_us[0]) == n:
        received_at_us = received_at_us[0]
    fields: dict[str, object] = {
        "subject": subject,
        "remote": remote[0] if n and remote.count(remote[0]) == n else remote,
        "received_at_us": received_at_us,
    }
    if reply.count(None) != n:
        fields["reply"] = reply
    if any(hdr_len):
        fields["hdr_len"] = hdr_len
    if any(queues):
        fields["queues"] = queues
    return encode_frame("append", id, fields, data, max_frame=max_frame)


def decode_append(frame: Frame) -> list[BufferedMsg]:
    """The messages of an ``append`` request (columns, or the older rows).

    Raises:
        RequestError: malformed fields; nothing of the batch may be stored.
    """
    if "msgs" in frame.fields:
        return _decode_append_rows(frame)
    c = decode_append_columns(frame)
    return list(
        map(
            BufferedMsg,
            c.remote,
            c.subject,
            c.reply,
            c.hdr_len,
            c.data,
            c.received_at_us,
            c.queues,
        )
    )


def decode_append_columns(frame: Frame) -> AppendColumns:
    """The messages of an ``append`` request as columns (the store's hot path).

    Every column is type-checked in C; no object is built per message.

    Raises:
        RequestError: malformed fields; nothing of the batch may be stored.
    """
    if "msgs" in frame.fields:
        return AppendColumns.of(_decode_append_rows(frame))
    f = frame.fields
    blobs = frame.blobs
    n = len(blobs)
    subject = f.get("subject")
    subjects: list[str] | None
    if type(subject) is str:
        subjects = subject.split("\n")
        if len(subjects) != n:
            raise RequestError("'subject' must join one subject per blob with '\\n'")
    else:
        subjects = _column(f, "subject", n, _STR)
    if subjects is None or "" in subjects:
        raise RequestError("'subject' must list one non-empty string per blob")
    received: list[int] | None
    received_one = f.get("received_at_us")
    if type(received_one) is int:
        received = [received_one] * n
    else:
        received = _column(f, "received_at_us", n, _INT)
    if received is None:
        raise RequestError("'received_at_us' must be one integer or list one per blob")
    remote = f.get("remote")
    remotes: list[str]
    if type(remote) is str:
        remotes = [remote] * n
    else:
        listed = _column(f, "remote", n, _STR)
        if listed is None:
            raise RequestError("'remote' must be a string or one string per blob")
        remotes = listed
    replies: list[str | None] = _column(f, "reply", n, _STR_OR_NONE, nullable=True) or [None] * n
    hdr_lens: list[int] | None = _column(f, "hdr_len", n, _INT, nullable=True)
    if hdr_lens is None:
        hdr_lens = [0] * n
    elif any(h < 0 or h > len(d) for h, d in zip(hdr_lens, blobs, strict=True)):
        raise RequestError("'hdr_len' must be within each message's blob")
    queues: list[tuple[str, ...]]
    listed_q = _column(f, "queues", n, _LIST, nullable=True)
    if listed_q is None:
        queues = [()] * n
    else:
        if not all(_STR.issuperset(map(type, q)) for q in listed_q):
            raise RequestError("'queues' must list lists of strings")
        queues = [tuple(q) if q else () for q in listed_q]
    return AppendColumns(remotes, subjects, replies, hdr_lens, blobs, received, queues)


# Element types a column may hold (``bool`` is not ``int`` here: type() is exact).
_STR: Final = frozenset({str})
_INT: Final = frozenset({int})
_LIST: Final = frozenset({list})
_STR_OR_NONE: Final[frozenset[type]] = frozenset({str, type(None)})


def _column(
    fields: Mapping[str, object],
    key: str,
    n: int,
    types: frozenset[type],
    *,
    nullable: bool = False,
) -> list[Any] | None:
    """``fields[key]`` as a list of ``n`` values of ``types``; None when null and allowed.

    The type check runs in C (``map(type, ...)`` into a set comparison), not
    one Python test per message.
    """
    value = fields.get(key)
    if value is None and nullable:
        return None
    if type(value) is not list or len(value) != n or not types.issuperset(map(type, value)):
        kind = "null or " if nullable else ""
        raise RequestError(f"'{key}' must be {kind}a list with one entry per blob")
    return value


def _decode_append_rows(frame: Frame) -> list[BufferedMsg]:
    """The older row form of ``append`` (one JSON list per message)."""
    rows = frame.fields.get("msgs")
    blobs = frame.blobs
    if not isinstance(rows, list) or len(rows) != len(blobs):
        raise RequestError("'msgs' must be a list with one blob per message")
    out: list[BufferedMsg] = []
    append = out.append
    for row, data in zip(rows, blobs, strict=True):
        try:
            remote, subject, reply, hdr_len, received_at_us, queues = row
        except (TypeError, ValueError):
            raise RequestError("an append row must have 6 fields") from None
        if (
            type(remote) is not str
            or type(subject) is not str
            or not subject
            or (reply is not None and type(reply) is not str)
            or type(hdr_len) is not int
            or not 0 <= hdr_len <= len(data)
            or type(received_at_us) is not int
            or type(queues) is not list
        ):
            raise RequestError(f"malformed append row {str(row)[:64]}")
        append(
            BufferedMsg(
                remote,
                subject,
                reply,
                hdr_len,
                data,
                received_at_us,
                tuple(queues) if queues else (),
            )
        )
    return out


def decode_append_reply(frame: Frame) -> AppendReply:
    """The ``ok`` answer to an append as an ``AppendReply``."""
    f = frame.fields
    refused: list[tuple[int, str]] = []
    refused_raw = f.get("refused")
    if isinstance(refused_raw, list):
        for item in refused_raw:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)):
                raise RequestError("append answer: malformed 'refused'")
            refused.append((item[0], str(item[1])))
    return AppendReply(
        first_seq=field_int(f, "first_seq", default=0) or 0,
        last_seq=field_int(f, "last_seq", default=0) or 0,
        refused=tuple(refused),
    )


# -- read -----------------------------------------------------------------------------


def encode_read_reply(
    id: int, msgs: Sequence[StoredMsg], *, next: int, more: bool, max_frame: int = DEFAULT_MAX_FRAME
) -> bytes:
    """Encode the ``ok`` answer to a read."""
    rows = [
        [
            m.seq,
            m.remote,
            m.subject,
            m.reply,
            m.hdr_len,
            m.received_at_us,
            list(m.queues),
            m.acked_at_us,
        ]
        for m in msgs
    ]
    return encode_frame(
        "ok",
        id,
        {"msgs": rows, "next": next, "more": more},
        [m.data for m in msgs],
        max_frame=max_frame,
    )


def decode_read_reply(frame: Frame) -> ReadReply:
    """The ``ok`` answer to a read as a ``ReadReply``.

    Raises:
        RequestError: the answer is malformed.
    """
    rows = frame.fields.get("msgs")
    if not isinstance(rows, list) or len(rows) != len(frame.blobs):
        raise RequestError("read answer: 'msgs' must have one blob per message")
    msgs: list[StoredMsg] = []
    try:
        for row, data in zip(rows, frame.blobs, strict=True):
            seq, remote, subject, reply, hdr_len, received_at_us, queues, acked_at_us = row
            msgs.append(
                StoredMsg(
                    seq,
                    remote,
                    subject,
                    reply,
                    hdr_len,
                    data,
                    received_at_us,
                    tuple(queues) if queues else (),
                    acked_at_us,
                )
            )
    except (TypeError, ValueError):
        raise RequestError("read answer: malformed message row") from None
    nxt = field_int(frame.fields, "next", default=0) or 0
    return ReadReply(msgs, nxt, field_bool(frame.fields, "more"))


# The fields of a read answer's columns layout, in the order of a ``msgs`` row,
# and what a field sent as null stands for (``remote``: the one asked for).
READ_COLUMNS: Final = (
    "seq",
    "remote",
    "subject",
    "reply",
    "hdr_len",
    "received_at_us",
    "queues",
    "acked_at_us",
)
_READ_COLUMN_NULLS: Final[dict[str, object]] = {
    "reply": None,
    "hdr_len": 0,
    "queues": (),
    "acked_at_us": None,
}


def decode_read_columns(
    fields: Mapping[str, object], remote: str | None
) -> list[tuple[object, ...]]:
    """The messages of a ``columns: true`` read answer, as ``msgs`` rows.

    ``remote`` is the remote the read named: the answer's ``remote`` column
    is null then.

    One ``zip`` over the columns: no per-message work beyond the tuple.
    ``queues`` items stay lists as sent.

    Raises:
        RequestError: a column is missing, not a list, or of another length.
    """
    n = len(seqs) if isinstance(seqs := fields.get("seq"), list) else 0
    nulls = {**_READ_COLUMN_NULLS, "remote": remote}
    cols: list[Iterable[object]] = []
    for key in READ_COLUMNS:
        value = fields.get(key)
        if isinstance(value, list):
            cols.append(value)
        elif value is None and key in nulls:
            cols.append(itertools.repeat(nulls[key], n))
        else:
            raise RequestError(f"read answer: bad column {key!r}")
    try:
        return list(zip(*cols, strict=True))
    except ValueError:
        raise RequestError("read answer: columns of different lengths") from None


# -- headers on buffered messages (DESIGN §8) -----------------------------------------


def msg_id(leaf_id: str, seq: int) -> str:
    """``Nats-Msg-Id`` of a buffered message: ``<leaf id>-<seq>``."""
    return f"{leaf_id}-{seq}"


def rfc3339_us(t_us: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-28T01:02:03.000004Z``."""
    secs, micros = divmod(t_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{micros:06d}Z"


def stamp_headers(headers: bytes, *, msg_id: str, buffered_at_us: int) -> bytes:
    """Add ``Nats-Msg-Id`` and ``Leafnode-Buffered-At`` to a NATS header block.

    Each header is added only when the block does not already carry it (a
    client's own ``Nats-Msg-Id`` is kept; names compare case-insensitively).

    Args:
        headers: the message's header block, ``b""`` when it has none.
        msg_id: the id to add (see ``msg_id``).
        buffered_at_us: the router's receive time.

    Returns:
        The new header block (``hdr_len`` is its length).
    """
    lower = headers.lower()
    extra = b""
    if _MSG_ID_KEY not in lower:
        extra += b"Nats-Msg-Id: " + msg_id.encode() + b"\r\n"
    if _BUFFERED_AT_KEY not in lower:
        extra += b"Leafnode-Buffered-At: " + rfc3339_us(buffered_at_us).encode() + b"\r\n"
    if not headers:
        return _NATS_HDR_LINE + extra + b"\r\n"
    if not extra or not headers.endswith(_HEADER_END):
        # Not a block we can extend (the router validated it; keep it as is).
        return headers
    return headers[:-2] + extra + b"\r\n"
