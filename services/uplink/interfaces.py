"""What the uplink's parts see of each other upward: ``Protocol``s only.

Ownership runs one way: ``service.Uplink`` owns the router link
(``routerlink.RouterLink``) and the remotes (``remote.Remote``); a remote owns
its hub session (``session.Session``) and its drain (``replay.Drain``). Each
part calls back into its owner through a Protocol here instead of importing
the owner's module, so every import of the uplink goes one way, type-only
imports included (``scripts/check-import-cycles``; issue 13). Each Protocol
lists what its users read or call, no more; mypy checks ``Uplink`` and
``Remote`` against them where they are handed over. (The drain's view of its
remote names ``Session``, so it lives next to its user: ``replay.DrainOwner``.)

The imports here reach only the modules below the connections (``interest``,
``leafnode.link``, ``leafnode.config``, ``leafnode.proto``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Self, TypeVar

if TYPE_CHECKING:
    import collections

    import trio

    from leafnode.config import RemoteSettings
    from leafnode.link import Flusher, Outbound
    from leafnode.proto import MessageFrame, Run

    from .interest import LocalInterest

__all__ = ["AccountName", "HubHost", "RouterHost", "RouterSink", "SessionOwner"]

#: The remote type the uplink's hub callbacks take (``remote.Remote``).
RemoteT_contra = TypeVar("RemoteT_contra", contravariant=True)


class RouterSink(Protocol):
    """The router link (``routerlink.RouterLink``) as a hub session writes to it."""

    @property
    def outbound(self) -> Outbound | None:
        """None while no router is attached."""

    def write_run(self, account: bytes, data: bytes) -> None: ...


class HubHost(Protocol[RemoteT_contra]):
    """What a remote and its hub session use of the uplink (``service.Uplink``).

    The hub callbacks take the remote they come from, typed by the caller:
    ``remote.Remote`` holds a ``HubHost[Remote]``.
    """

    store_path: str
    flusher: Flusher
    reconnect_s: float
    ping_interval_s: float
    ping_max: int

    @property
    def nursery(self) -> trio.Nursery | None: ...

    @property
    def router(self) -> RouterSink: ...

    def hub_up(self, remote: RemoteT_contra) -> None: ...

    def hub_ready(self, remote: RemoteT_contra) -> None: ...

    def hub_down(self, remote: RemoteT_contra) -> None: ...

    def hub_sub(
        self, remote: RemoteT_contra, subject: bytes, queue: bytes | None, weight: int | None
    ) -> None: ...

    def hub_unsub(self, remote: RemoteT_contra, subject: bytes, queue: bytes | None) -> None: ...


class AccountName(Protocol):
    """The local account a remote serves (``remote.AccountState``), by name."""

    name: str
    name_bytes: bytes


class SessionOwner(Protocol):
    """What a hub session (``session.Session``) uses of its remote (``remote.Remote``),
    and what the uplink's fan-out counts on it (``dropped``)."""

    name: str
    # Live messages for the hub that could not go, by reason.
    dropped: collections.Counter[str]

    @property
    def settings(self) -> RemoteSettings: ...

    @property
    def account(self) -> AccountName: ...

    @property
    def uplink(self) -> HubHost[Self]: ...

    def learn_urls(self, addresses: object, scheme: str) -> None: ...


class RouterHost(Protocol):
    """What the router link (``routerlink.RouterLink``) calls of the uplink (``service.Uplink``)."""

    flusher: Flusher

    def router_attached(self) -> None: ...

    def router_accounts(self, accounts: tuple[str, ...]) -> None: ...

    def router_lds(self, lds: tuple[tuple[str, str], ...]) -> None: ...

    def local_sub(
        self, account: bytes, subject: bytes, queue: bytes | None, weight: int | None
    ) -> None: ...

    def local_unsub(self, account: bytes, subject: bytes, queue: bytes | None) -> None: ...

    def local_resync(self, tables: dict[bytes, LocalInterest]) -> None: ...

    def local_msg(self, msg: MessageFrame) -> bool: ...

    def keep_rule(self, account: bytes | None) -> int: ...

    def local_run(self, run: Run) -> None: ...
