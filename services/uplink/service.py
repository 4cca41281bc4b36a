"""The uplink process: its remotes, the router link, and what flows between them.

Theory of operation (DESIGN §2-§3, leafnode-protocol.md §4.5-§4.7)
-----------------------------------------------------------------
Each remote is bound to one local account; several remotes may share one.
``AccountState`` holds, per account, the local interest (from the router), the
union of its hubs' interest (for the router) and the account's loop-detection
subject ``$LDS.<random>``.

* Local interest -> hubs: every ``LS+``/``LS-`` from the router goes to each
  connected remote of that account that may announce it (``filters.py``); a
  remote that connects gets ``LS+ $LDS.<id>`` and the whole table.
* Hub interest -> router: each remote's ``LS+``/``LS-`` updates its own table
  and the account's union; the router sees a key appear and disappear once.
  A hub's ``$LDS`` subjects are not local interest: they go to the sibling
  remotes of the account only (so the hubs can detect a loop through us), and
  our own ``$LDS`` coming back means a loop: the link is closed and retried
  after 30 s.
* Messages router -> hub: the router only sends what some hub of the account
  wants and names the hub queue groups it picked. With one remote the
  message goes straight to it, unchanged: the router writes it in the leaf
  link's own form (``routerlink.py``), so ``local_msg`` only decides and
  whole runs of messages leave as one slice of what was read; with several,
  each remote gets it when its own table matches, and each named group goes
  to the first remote that has it (re-encoded per remote). The export filter
  (deny_exports, the hub's export permission, JetStream denies) and the hub's
  max_payload are checked before sending, so a hub never has a reason to
  close the link. When those checks cannot fail for a subject that does not
  start with ``$`` (``keep_rule``), the framer skips them per message.
* Messages hub -> router (``Session``): checked against the import filter,
  then passed on unchanged in runs under the account's ``ACC`` line
  (``leafnode/proto/_datalink.py``).
* Buffered subjects (a remote's ``buffer { subjects }``): the router sends
  live copies of them too, but they reach that remote's hub only through the
  store (``replay.py``), so nothing overtakes the backlog: ``local_msg`` drops
  the live copy for a remote that buffers its subject, and keeps forwarding
  live whatever that remote does not buffer.
* Reload (``reload``, SIGHUP, ``uplink.ctl``): remotes added are started,
  removed ones stopped, changed ones restarted; a change of the ``buffer``
  block alone is applied in place (the link stays up).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

import nkeys
import trio

from leafnode.affinity import data_path_cpu, keep_placement
from leafnode.ipc import STORE_SOCKET
from leafnode.link import Flusher
from leafnode.proto import (
    encode_hub_info,
    encode_hub_reset,
    encode_lhmsg,
    encode_lmsg,
    encode_lsub,
    encode_lunsub,
)

from .dialer import tls_context
from .handshake import LONG_BACKOFF_S, Identity
from .interest import LocalInterest
from .remote import LDS_PREFIX, AccountState, Remote
from .routerlink import RouterLink

if TYPE_CHECKING:
    from leafnode.config import RemoteSettings, Settings
    from leafnode.proto import MessageFrame, Run

    from .interfaces import SessionOwner
    from .session import Session

__all__ = ["Uplink", "new_identity"]

log = logging.getLogger("leafnode.uplink")

DATALINK_SOCKET: Final = "router.sock"


def new_identity(settings: Settings) -> Identity:
    """A fresh server id; the leaf name is ``server_name`` when configured.

    A node of a named cluster says the cluster's name in its leaf CONNECT,
    as a clustered nats-server leaf does: the hub then never passes one
    node's interest (nor its messages) to another leaf connection of the
    same cluster, whose nodes reach each other over routes (DESIGN §9).
    """
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER)
    public: bytes = nkeys.from_seed(seed).public_key
    server_id = public.decode()
    cluster = settings.cluster.name if settings.cluster is not None else None
    return Identity(
        server_id=server_id, name=settings.router.server_name or server_id, cluster=cluster or ""
    )


class Uplink:
    """The uplink service: one task per remote plus the router link."""

    def __init__(self, settings: Settings, identity: Identity | None = None) -> None:
        self.settings = settings
        self.identity = identity or new_identity(settings)
        self.reconnect_s = settings.leafnodes.reconnect_s
        self.ping_interval_s = settings.router.ping_interval_s
        self.ping_max = settings.router.ping_max
        self.accounts: dict[bytes, AccountState] = {}
        self.remotes: list[Remote] = []
        self.dropped_to_hub = 0
        self.store_path = str(Path(settings.run_dir) / STORE_SOCKET)
        self.nursery: trio.Nursery | None = None
        self._next_index = 0
        for remote_settings in settings.leafnodes.remotes:
            self._add_remote(remote_settings)
        self._refresh_singles()
        # Writes every link's outbound at the end of each reader's batch, and
        # what timers queue between batches (``leafnode.link``).
        self.flusher = Flusher()
        self.router = RouterLink(str(Path(settings.run_dir) / DATALINK_SOCKET), self)

    def _add_remote(self, remote_settings: RemoteSettings) -> Remote:
        account = self._account(remote_settings.account)
        remote = Remote(
            self._next_index,
            remote_settings,
            account,
            self,
            self.identity,
            tls_context(remote_settings.tls),
        )
        self._next_index += 1
        account.remotes.append(remote)
        self.remotes.append(remote)
        if self.nursery is not None:
            self._start_remote(self.nursery, remote)
        return remote

    def _start_remote(self, nursery: trio.Nursery, remote: Remote) -> None:
        nursery.start_soon(remote.run)
        if remote.drain is not None:
            nursery.start_soon(remote.drain.run)

    def _refresh_singles(self) -> None:
        for account in self.accounts.values():
            account.single = account.remotes[0] if len(account.remotes) == 1 else None

    def remote(self, name: str) -> Remote | None:
        """The remote called ``name``, if configured."""
        for remote in self.remotes:
            if remote.name == name:
                return remote
        return None

    def reload(self, settings: Settings) -> list[str]:
        """Apply a re-read config; returns what changed, one line per remote.

        Remotes are matched by name. The TLS context is built before anything
        changes, so a bad TLS file leaves the running remotes alone.

        Raises:
            OSError, ssl.SSLError: a new or changed remote's TLS files do not load.
        """
        wanted = {r.name: r for r in settings.leafnodes.remotes}
        current = {r.name: r for r in self.remotes}
        for name, remote_settings in wanted.items():
            old = current.get(name)
            if old is None or _differs_beyond_buffer(old.settings, remote_settings):
                tls_context(remote_settings.tls)
        changes: list[str] = []
        self.settings = settings
        self.reconnect_s = settings.leafnodes.reconnect_s
        self.ping_interval_s = settings.router.ping_interval_s
        self.ping_max = settings.router.ping_max
        for name, remote in current.items():
            new = wanted.get(name)
            if new is None:
                self._remove_remote(remote)
                changes.append(f'removed remote "{name}"')
            elif _differs_beyond_buffer(remote.settings, new):
                self._remove_remote(remote)
                self._add_remote(new)
                changes.append(f'restarted remote "{name}" (settings changed)')
            elif remote.settings != new:
                remote.configure_buffer(new)
                changes.append(f'applied the new buffer settings of remote "{name}"')
        for name, remote_settings in wanted.items():
            if name not in current:
                self._add_remote(remote_settings)
                changes.append(f'added remote "{name}"')
        # Keep config order, which is the order the remotes are reported in.
        order = list(wanted)
        self.remotes.sort(key=lambda r: order.index(r.name))
        self._refresh_singles()
        return changes

    def _remove_remote(self, remote: Remote) -> None:
        remote.stop()
        self.remotes.remove(remote)
        remote.account.remotes.remove(remote)

    def _account(self, name: str) -> AccountState:
        state = self.accounts.get(name.encode())
        if state is None:
            state = self.accounts[name.encode()] = AccountState(name)
        return state

    async def run(self) -> None:
        """Run the router link and every remote until cancelled."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self.flusher.run)
            nursery.start_soon(self.router.run)
            nursery.start_soon(keep_placement, lambda: data_path_cpu(self.settings))
            for remote in self.remotes:
                self._start_remote(nursery, remote)

    # -- router -> uplink ------------------------------------------------------

    def router_accounts(self, accounts: tuple[str, ...]) -> None:
        missing = [a.name for a in self.accounts.values() if a.name not in accounts]
        if missing:
            log.warning("The router does not know account(s) %s used by remotes", missing)

    def router_lds(self, lds: tuple[tuple[str, str], ...]) -> None:
        """Take the router's ``$LDS`` per account (its accepted leafs are told the same).

        One subject per account across the hub links and the leafs the
        router accepts, as nats-server has: a loop through any of them comes
        back as the one subject (leafnode-protocol.md §4.7).
        """
        for name, subject in lds:
            state = self.accounts.get(name.encode())
            new = subject.encode()
            if state is None or state.lds == new or not new.startswith(LDS_PREFIX):
                continue
            for session in state.connected():
                session.outbound.write(encode_lunsub(state.lds))
                session.outbound.write(encode_lsub(new))
            state.lds = new

    def router_attached(self) -> None:
        """A router (re)attached: tell it every hub's current interest and protocol level."""
        router = self.router
        for state in self.accounts.values():
            for line in state.hub.snapshot():
                router.write(line)
            if state.connected():
                self._announce_hub(state)

    def _announce_hub(self, state: AccountState) -> None:
        """Tell the router the protocol level (INFO ``proto``) and name of the account's hub.

        The router's message tracing needs them (msgtrace.py): nats-server
        forwards a trace-only message only to a remote whose ``proto`` says
        it understands tracing, and names the remote in its egress event.
        With several hubs the lowest level counts; 0 when none is connected.
        """
        sessions = state.connected()
        levels = [s.link.info.get("proto") for s in sessions]
        proto = min((p if isinstance(p, int) else 0 for p in levels), default=0)
        name = sessions[0].hub_server if sessions else ""
        self.router.write(encode_hub_info(state.name, proto, name))

    def local_sub(
        self, account: bytes, subject: bytes, queue: bytes | None, weight: int | None
    ) -> None:
        state = self.accounts.get(account)
        if state is None:
            return
        state.local.add(subject, queue, weight)
        line = encode_lsub(subject) if queue is None else encode_lsub(subject, queue, weight or 1)
        for remote in state.remotes:
            session = remote.session
            if session is not None and session.import_filter.allows_interest(subject):
                session.outbound.write(line)

    def local_unsub(self, account: bytes, subject: bytes, queue: bytes | None) -> None:
        state = self.accounts.get(account)
        if state is None or not state.local.remove(subject, queue):
            return
        line = encode_lunsub(subject, queue)
        for remote in state.remotes:
            session = remote.session
            if session is not None and session.import_filter.allows_interest(subject):
                session.outbound.write(line)

    def local_resync(self, tables: dict[bytes, LocalInterest]) -> None:
        """The router's snapshot is complete: send the hubs only what changed."""
        for account, state in self.accounts.items():
            fresh = tables.get(account) or LocalInterest()
            old = state.local.keys
            lines: list[tuple[bytes, bytes]] = []
            for key in old.keys() - fresh.keys.keys():
                lines.append((key[0], encode_lunsub(key[0], key[1])))
            for key, weight in fresh.keys.items():
                if old.get(key) != weight:
                    subject, queue = key
                    line = (
                        encode_lsub(subject)
                        if queue is None
                        else encode_lsub(subject, queue, weight)
                    )
                    lines.append((subject, line))
            state.local = fresh
            if not lines:
                continue
            for session in state.connected():
                allows = session.import_filter.allows_interest
                for subject, line in lines:
                    if allows(subject):
                        session.outbound.write(line)

    def local_msg(self, msg: MessageFrame) -> bool:
        """A local message for the hubs (hot path).

        Returns True when the message may go to the account's only remote as
        it is: it then leaves in a run (``local_run``). Runs and this
        method's own writes never mix on one hub link: an account either has
        one remote (kept or dropped here) or several (always written here).
        """
        state = self.accounts.get(msg.account)
        if state is None:
            return False
        remote = state.single
        if remote is None:
            self._local_msg_decoded(state, msg)
            return False
        subject = msg.args[0]
        buffered = remote.buffered
        if buffered is not None and subject in buffered:
            remote.live_buffered += 1  # it goes through the store
            return False
        session = remote.session
        if session is None:
            self._drop(remote, "no_link")
            return False
        filter_ = session.export_filter
        if not (filter_.plain_ok and subject[0] != 36) and not filter_.allows(subject):
            self._drop(remote, "permission")
            return False
        if msg.end - msg.body > session.max_payload:
            self._drop(remote, "max_payload")
            return False
        return True

    def keep_rule(self, account: bytes | None) -> int:
        """The largest local message of ``account`` that needs no ``local_msg`` check.

        When the account has one remote, connected, buffering nothing and
        refusing only ``$`` subjects, ``local_msg`` keeps every message up
        to the hub's max_payload whose subject does not start with ``$``;
        the framer then keeps those without asking (``MessageFramer.drain``).
        """
        state = self.accounts.get(account) if account is not None else None
        remote = state.single if state is not None else None
        if remote is None or remote.buffered is not None:
            return -1
        session = remote.session
        if session is None or not session.export_filter.plain_ok:
            return -1
        return session.max_payload

    def local_run(self, run: Run) -> None:
        """The messages ``local_msg`` kept, as read (the framer's ``Run``): to the only hub."""
        state = self.accounts.get(run.account)
        remote = state.single if state is not None else None
        session = remote.session if remote is not None else None
        if session is None:
            return  # local_msg kept nothing then
        msgs = run.msgs
        size = run.size
        if session.outbound.write_msg(run.data):
            session.out_msgs += msgs
            session.out_bytes += size
        else:
            self.dropped_to_hub += msgs
            session.remote.dropped["slow_consumer"] += msgs

    def _drop(self, remote: SessionOwner, reason: str) -> None:
        self.dropped_to_hub += 1
        remote.dropped[reason] += 1

    def _local_msg_decoded(self, state: AccountState, msg: MessageFrame) -> None:
        """The general case: several remotes share the account."""
        subject = msg.args[0]
        reply, queues = msg.route()
        headers = msg.headers
        hdr_len = msg.hdr_len
        data = msg.data
        for session, names in self._fan_out(state, subject, queues):
            if len(data) > session.max_payload:
                self._drop(session.remote, "max_payload")
                continue
            if headers:
                line = encode_lhmsg(subject, reply, names, hdr_len, data)
            else:
                line = encode_lmsg(subject, reply, names, data)
            if session.outbound.write_msg(line):
                session.out_msgs += 1
                session.out_bytes += len(data)
            else:
                self._drop(session.remote, "slow_consumer")

    def _fan_out(
        self, state: AccountState, subject: bytes, queues: tuple[bytes, ...]
    ) -> list[tuple[Session, tuple[bytes, ...]]]:
        """Several remotes share the account: which gets the message, naming which groups."""
        targets: list[tuple[Session, tuple[bytes, ...]]] = []
        single = state.single
        if single is not None:
            buffered = single.buffered
            if buffered is not None and subject in buffered:
                single.live_buffered += 1
                return targets
            session = single.session
            if session is None:
                self._drop(single, "no_link")
            elif not session.export_filter.allows(subject):
                self._drop(single, "permission")
            else:
                targets.append((session, queues))
            return targets
        unassigned = set(queues)
        for remote in state.remotes:
            buffered = remote.buffered
            if buffered is not None and subject in buffered:
                remote.live_buffered += 1  # it goes through this remote's store records
                continue
            session = remote.session
            if session is None or not session.export_filter.allows(subject):
                continue
            result = remote.hub.match(subject)
            mine: tuple[bytes, ...] = ()
            if unassigned and result.qsubs:
                names = {group[0].queue for group in result.qsubs}
                mine = tuple(q for q in queues if q in unassigned and q in names)
                unassigned.difference_update(mine)
            if result.psubs or mine:
                targets.append((session, mine))
        return targets

    # -- hubs -> uplink ---------------------------------------------------------

    def hub_up(self, remote: Remote) -> None:
        """A link finished its handshake: announce $LDS and the local interest."""
        session = remote.session
        assert session is not None
        state = remote.account
        self._announce_hub(state)
        write = session.outbound.write
        write(encode_lsub(state.lds))
        allows = session.import_filter.allows_interest
        for (subject, queue), weight in state.local.keys.items():
            if allows(subject):
                write(
                    encode_lsub(subject) if queue is None else encode_lsub(subject, queue, weight)
                )
        for sibling in state.remotes:
            if sibling is not remote:
                for subject, queue in sibling.hub.entries:
                    if queue is None and subject.startswith(LDS_PREFIX):
                        write(encode_lsub(subject))

    def hub_ready(self, remote: Remote) -> None:
        """The hub's initial interest has arrived: buffered messages may flow."""
        for drain in remote.drains():
            drain.link_ready()

    def hub_down(self, remote: Remote) -> None:
        """A link dropped: withdraw what only its hub wanted."""
        for drain in remote.drains():
            drain.link_down()
        state = remote.account
        keys = list(remote.hub.entries)
        remote.hub.clear()
        lds = [
            subject for subject, queue in keys if queue is None and subject.startswith(LDS_PREFIX)
        ]
        for session in state.connected():
            for subject in lds:
                session.outbound.write(encode_lunsub(subject))
        lines = state.hub.drop_remote(remote.index, keys)
        if not state.connected():
            if lines:
                self.router.write(encode_hub_reset(state.name))
        else:
            for line in lines:
                self.router.write(line)
        self._announce_hub(state)

    def hub_sub(
        self, remote: Remote, subject: bytes, queue: bytes | None, weight: int | None
    ) -> None:
        session = remote.session
        if session is None:
            return
        state = remote.account
        if queue is None and subject.startswith(LDS_PREFIX):
            self._hub_lds(remote, session, subject)
            return
        if not remote.hub.add(subject, queue, weight):
            return
        for drain in remote.drains():
            drain.interest_added(subject)
        if not session.export_filter.allows_interest(subject):
            return
        line = state.hub.add(remote.index, subject, queue, (weight or 1) if queue else 1)
        if line is not None:
            self.router.write(line)

    def _hub_lds(self, remote: Remote, session: Session, subject: bytes) -> None:
        state = remote.account
        if subject == state.lds:
            log.error(
                'Leafnode remote "%s": loop detected for account "%s" (our %s came back '
                "from the hub); delaying reconnect for %gs",
                remote.name,
                state.name,
                subject.decode(),
                LONG_BACKOFF_S,
            )
            session.close("loop detected", LONG_BACKOFF_S)
            return
        if not remote.hub.add(subject, None, None):
            return
        for sibling in state.connected():
            if sibling is not session:
                sibling.outbound.write(encode_lsub(subject))

    def hub_unsub(self, remote: Remote, subject: bytes, queue: bytes | None) -> None:
        if not remote.hub.remove(subject, queue):
            return
        state = remote.account
        if queue is None and subject.startswith(LDS_PREFIX):
            for sibling in state.connected():
                if sibling is not remote.session:
                    sibling.outbound.write(encode_lunsub(subject))
            return
        line = state.hub.remove(remote.index, subject, queue)
        if line is not None:
            self.router.write(line)


def _differs_beyond_buffer(old: RemoteSettings, new: RemoteSettings) -> bool:
    """Whether the change needs a new link (anything but the buffer block changed)."""
    return dataclasses.replace(old, buffer=None) != dataclasses.replace(new, buffer=None)
