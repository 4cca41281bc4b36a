"""The hub side of the leafnode handshake, sans-IO (issue 15 point 2): INFO bytes, CONNECT checks.

Byte-exact against leafnode-protocol.md §4.2's capture of a 2.15.1 hub's
INFO (without ``compression``: we only speak plain text, as 2.9 omits it)
and the 2.9.10 variant it describes. What real leafs send when they dial is
tested in tests/uplink/test_hubside_real_leafs.py.
"""

from __future__ import annotations

import base64
import json

import bcrypt
import nkeys
import pytest

from leafnode.config import LeafAcceptSettings, LeafUserSettings, TlsSettings
from leafnode.hubside import (
    Accepted,
    AsClient,
    DownstreamInterest,
    HubInfo,
    InterestChange,
    LeafAuthorizer,
    Refused,
    encode_connect_info,
    encode_first_info,
    is_own_lds,
    loop_error,
    new_lds_subject,
    new_nonce,
    split_host_port,
)

# leafnode-protocol.md §4.2, the 2.15.1 capture (server_id shortened there too).
CAPTURE_215 = (
    b'INFO {"server_id":"NBEU5TNM...","server_name":"hub1","version":"2.15.1","proto":3,'
    b'"git_commit":"b2fd3ef","go":"go1.27.2","host":"127.0.0.1","port":38109,"headers":true,'
    b'"auth_required":true,"max_payload":1048576,"ip":"127.0.0.1:38109","client_id":8,'
    b'"nonce":"c3hDFlKnZeI38aI","compression":"s2_auto","api_lvl":5,"info_on_connect":true,'
    b'"leafnode_urls":["127.0.0.1:38109"]} \r\n'
)
HUB_215 = HubInfo(
    server_id="NBEU5TNM...",
    server_name="hub1",
    version="2.15.1",
    go="go1.27.2",
    host="127.0.0.1",
    port=38109,
    max_payload=1048576,
    proto=3,
    git_commit="b2fd3ef",
    api_lvl=5,
    leafnode_urls=("127.0.0.1:38109",),
)
SEED = nkeys.encode_seed(b"\x05" * 32, nkeys.PREFIX_BYTE_USER)
KEYS = nkeys.from_seed(SEED)
PUBLIC = KEYS.public_key.decode()


def _sign(nonce: str) -> str:
    return base64.urlsafe_b64encode(KEYS.sign(nonce.encode())).decode().rstrip("=")


class TestInfo:
    def test_first_info_is_the_215_capture_without_compression(self) -> None:
        expected = CAPTURE_215.replace(b'"compression":"s2_auto",', b"")
        assert encode_first_info(HUB_215, client_id=8, nonce="c3hDFlKnZeI38aI") == expected

    def test_first_info_as_29_sends_it(self) -> None:
        hub = HubInfo(
            server_id="N29",
            server_name="hub1",
            version="2.9.10",
            go="go1.19.5",
            host="127.0.0.1",
            port=7422,
            max_payload=1048576,
            proto=1,
            leafnode_urls=("127.0.0.1:7422",),
        )
        assert encode_first_info(hub, client_id=3, nonce="abc") == (
            b'INFO {"server_id":"N29","server_name":"hub1","version":"2.9.10","proto":1,'
            b'"go":"go1.19.5","host":"127.0.0.1","port":7422,"headers":true,'
            b'"auth_required":true,"max_payload":1048576,"ip":"127.0.0.1:7422","client_id":3,'
            b'"nonce":"abc","info_on_connect":true,"leafnode_urls":["127.0.0.1:7422"]} \r\n'
        )

    def test_connect_info_names_the_account_and_permissions(self) -> None:
        line = encode_connect_info(
            HUB_215,
            client_id=8,
            account="$G",
            imports={"allow": ["a.>"]},
            exports={"deny": ["b"]},
        )
        assert line.startswith(b"INFO {")
        assert line.endswith(b"} \r\n")
        fields = json.loads(line[5:-3])
        assert "nonce" not in fields
        keys = list(fields)
        # nats-server's struct order: connect_info/remote_account before api_lvl,
        # import/export after it, info_on_connect and leafnode_urls last.
        assert keys[keys.index("client_id") :] == [
            "client_id",
            "connect_info",
            "remote_account",
            "api_lvl",
            "import",
            "export",
            "info_on_connect",
            "leafnode_urls",
        ]
        assert fields["remote_account"] == "$G"

    def test_tls_and_no_advertise_and_ipv6(self) -> None:
        hub = HubInfo(
            server_id="N",
            server_name="n",
            version="2.15.1",
            go="go",
            host="::1",
            port=7422,
            max_payload=1,
            tls_required=True,
            tls_verify=True,
        )
        fields = json.loads(encode_first_info(hub, client_id=1, nonce="n")[5:-3])
        assert fields["ip"] == "[::1]:7422"
        assert fields["tls_required"] is True
        assert fields["tls_verify"] is True
        assert "leafnode_urls" not in fields

    def test_for_listener_as_nats_server_fills_host_port_and_urls(self) -> None:
        def info(accept: LeafAcceptSettings, port: int, host: str | None = None) -> HubInfo:
            return HubInfo.for_listener(
                accept,
                port=port,
                host=host,
                server_id="N",
                server_name="n",
                version="2.15.1",
                go="python3.11",
                max_payload=1048576,
            )

        plain = info(LeafAcceptSettings(host="127.0.0.1", port=-1), 40000)
        assert (plain.host, plain.port) == ("127.0.0.1", 40000)
        assert plain.leafnode_urls == ("127.0.0.1:40000",)
        # no_advertise keeps our own URL: a real leaf refuses an INFO without leafnode_urls.
        quiet = info(LeafAcceptSettings(no_advertise=True), 7422, host="10.1.1.1")
        assert quiet.leafnode_urls == ("10.1.1.1:7422",)
        assert info(LeafAcceptSettings(advertise="edge.example"), 7422).ip == "edge.example:7422"
        assert info(LeafAcceptSettings(advertise="[::1]:9"), 7422).ip == "[::1]:9"
        tls = info(LeafAcceptSettings(tls=TlsSettings(verify=True)), 7422)
        assert (tls.tls_required, tls.tls_verify) == (True, True)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("h:1", ("h", 1)),
            ("h", ("h", 9)),
            ("h:-1", ("h", 9)),
            ("h:0", ("h", 9)),
            ("[::1]:5", ("::1", 5)),
            ("[::1]", ("::1", 9)),
        ],
    )
    def test_split_host_port(self, text: str, expected: tuple[str, int]) -> None:
        assert split_host_port(text, 9) == expected

    @pytest.mark.parametrize("text", ["a:b:c", "", "h:x"])
    def test_split_host_port_refuses(self, text: str) -> None:
        with pytest.raises(ValueError, match="host or host:port"):
            split_host_port(text, 9)

    def test_nonce_and_lds_shapes(self) -> None:
        nonce = new_nonce()
        assert len(nonce) == 15
        assert nonce != new_nonce()
        lds = new_lds_subject()
        assert lds.startswith(b"$LDS.")
        assert len(lds) == 5 + 22


class TestLoop:
    def test_own_lds_is_a_loop_others_are_not(self) -> None:
        own = new_lds_subject()
        assert is_own_lds(own, own)
        assert not is_own_lds(new_lds_subject(), own)
        assert not is_own_lds(b"foo", own)

    def test_loop_error_is_nats_servers(self) -> None:
        assert loop_error("$G") == (
            b'-ERR \'Loop detected for leafnode account="$G". '
            b"Delaying attempt to reconnect for 30s'\r\n"
        )


CONNECT_215 = {
    "version": "2.15.1",
    "user": "leafu",
    "pass": "leafp",
    "server_id": "NCOMYD34",
    "name": "LEAF",
    "cluster": "LEAF",
    "headers": True,
    "compress_mode": "off",
    "remote_account": "$G",
    "protocol": 3,
}


class TestAuthorize:
    def test_single_user_binds_the_block_account(self) -> None:
        auth = LeafAuthorizer(LeafAcceptSettings(user="leafu", password="leafp", account="SITE"))
        result = auth.check(CONNECT_215, "nonce")
        assert result == Accepted(
            account="SITE",
            user="leafu",
            name="LEAF",
            cluster="LEAF",
            headers=True,
            is_hub=False,
            deny_pub=(),
        )

    @pytest.mark.parametrize(
        "change", [{"pass": "wrong"}, {"user": "other"}, {"pass": None}, {"user": None}]
    )
    def test_single_user_refused(self, change: dict[str, object]) -> None:
        auth = LeafAuthorizer(LeafAcceptSettings(user="leafu", password="leafp"))
        options = {k: v for k, v in {**CONNECT_215, **change}.items() if v is not None}
        result = auth.check(options, "nonce")
        assert isinstance(result, Refused)
        assert result.err == b"-ERR 'Authorization Violation'\r\n"
        assert "leafp" not in result.reason
        assert "wrong" not in result.reason

    def test_bcrypt_password(self) -> None:
        hashed = bcrypt.hashpw(b"leafp", bcrypt.gensalt(rounds=4)).decode()
        auth = LeafAuthorizer(LeafAcceptSettings(user="leafu", password=hashed))
        assert auth.is_expensive(CONNECT_215)
        assert isinstance(auth.check(CONNECT_215, "n"), Accepted)
        assert isinstance(auth.check({**CONNECT_215, "pass": "nope"}, "n"), Refused)

    def test_users_list_binds_each_users_account(self) -> None:
        auth = LeafAuthorizer(
            LeafAcceptSettings(
                account="IGNORED",
                users=(
                    LeafUserSettings(user="leafu", password="leafp", account="A"),
                    LeafUserSettings(user="plain", password="x"),
                ),
            )
        )
        first = auth.check(CONNECT_215, "n")
        assert isinstance(first, Accepted)
        assert first.account == "A"
        second = auth.check({**CONNECT_215, "user": "plain", "pass": "x"}, "n")
        assert isinstance(second, Accepted)
        assert second.account == "$G"
        assert isinstance(auth.check({**CONNECT_215, "user": "nobody"}, "n"), Refused)

    def test_nkey_signature_over_the_nonce(self) -> None:
        auth = LeafAuthorizer(LeafAcceptSettings(nkey=PUBLIC))
        nonce = new_nonce()
        good = {"name": "L", "nkey": PUBLIC, "sig": _sign(nonce)}
        assert isinstance(auth.check(good, nonce), Accepted)
        # Standard base64 with padding is accepted too, as nats-server falls back to it.
        std = base64.b64encode(KEYS.sign(nonce.encode())).decode()
        assert isinstance(auth.check({**good, "sig": std}, nonce), Accepted)
        for bad in (
            {**good, "sig": _sign("other nonce")},
            {**good, "sig": "!!"},
            {"name": "L", "nkey": PUBLIC},
            {**good, "nkey": "UOTHER"},
        ):
            result = auth.check(bad, nonce)
            assert isinstance(result, Refused), bad
            assert result.err == b"-ERR 'Authorization Violation'\r\n"

    def test_no_leafnode_authorization_authenticates_as_a_client(self) -> None:
        auth = LeafAuthorizer(LeafAcceptSettings(account="SITE"))
        assert not auth.configured
        assert auth.check(CONNECT_215, "n") == AsClient(default_account="SITE")
        bound = auth.accepted_as_client(CONNECT_215, "APP", "leafu")
        assert (bound.account, bound.user, bound.name) == ("APP", "leafu", "LEAF")

    @pytest.mark.parametrize(
        ("change", "err"),
        [
            ({"lang": "python3"}, b"-ERR 'attempted to connect to leaf node port'\r\n"),
            ({"cluster": "a b"}, b"-ERR 'cluster name cannot contain spaces'\r\n"),
            ({"cluster": "HUB"}, b"-ERR 'remote leafnode has same cluster name'\r\n"),
            (
                {"gateway": "gw"},
                b"-ERR 'Rejecting connection from gateway \"gw\" on the leafnode port'\r\n",
            ),
            ({"account": "A"}, b"-ERR 'Authorization Violation'\r\n"),
        ],
    )
    def test_guards_before_credentials(self, change: dict[str, object], err: bytes) -> None:
        auth = LeafAuthorizer(
            LeafAcceptSettings(user="leafu", password="leafp"), cluster_name="HUB"
        )
        result = auth.check({**CONNECT_215, **change}, "n")
        assert isinstance(result, Refused)
        assert result.err == err

    def test_deny_pub_and_is_hub_are_kept(self) -> None:
        auth = LeafAuthorizer(LeafAcceptSettings())
        result = auth.accepted_as_client(
            {"name": "L", "deny_pub": ["x.>", 3], "is_hub": True, "headers": False}, "$G", None
        )
        assert (result.deny_pub, result.is_hub, result.headers) == (("x.>",), True, False)


class TestDownstreamInterest:
    """§4.5 "How the hub keys leaf interest", §4.7, §4.9."""

    def test_plain_interest_is_not_counted(self) -> None:
        interest = DownstreamInterest("$G", b"$LDS.own")
        assert interest.lsub(b"dup") == InterestChange(b"dup", None, 1, 1)
        assert interest.lsub(b"dup") is None  # repeating LS+ dup changes nothing
        assert interest.lunsub(b"dup") == InterestChange(b"dup", None, -1, 0)
        assert interest.lunsub(b"dup") is None  # unknown LS- ignored
        assert len(interest) == 0

    def test_queue_weight_is_updated_in_place(self) -> None:
        interest = DownstreamInterest("$G", b"$LDS.own")
        assert interest.lsub(b"q", b"g", 1) == InterestChange(b"q", b"g", 1, 1)
        assert interest.lsub(b"q", b"g", 3) == InterestChange(b"q", b"g", 2, 3)
        assert interest.lsub(b"q", b"g", 3) is None
        assert interest.lsub(b"q", b"g", 2) == InterestChange(b"q", b"g", -1, 2)
        # Plain and queue interest on one subject are separate keys.
        assert interest.lsub(b"q") == InterestChange(b"q", None, 1, 1)
        assert interest.lunsub(b"q", b"g") == InterestChange(b"q", b"g", -2, 0)
        assert interest.clear() == [InterestChange(b"q", None, -1, 0)]
        assert len(interest) == 0

    def test_own_lds_is_a_loop_other_lds_pass(self) -> None:
        interest = DownstreamInterest("SITE", b"$LDS.own", may_receive=lambda _s: False)
        refused = interest.lsub(b"$LDS.own")
        assert isinstance(refused, Refused)
        assert refused.err == loop_error("SITE")
        # Another server's $LDS is never permission-checked, and is passed on.
        assert interest.lsub(b"$LDS.other") == InterestChange(b"$LDS.other", None, 1, 1)

    def test_literal_subject_outside_permissions_closes(self) -> None:
        interest = DownstreamInterest("$G", b"$LDS.own", may_receive=lambda s: s.startswith(b"ok."))
        assert isinstance(interest.lsub(b"ok.x"), InterestChange)
        refused = interest.lsub(b"no.x")
        assert isinstance(refused, Refused)
        assert refused.err == b"-ERR 'Permissions Violation for Subscription to \"no.x\"'\r\n"
        # Wildcards are not checked here (nats-server filters what it sends instead).
        assert isinstance(interest.lsub(b"no.>"), InterestChange)
