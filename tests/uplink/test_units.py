"""Pure pieces of the uplink: filters, credentials, URL lists, interest tables."""

from __future__ import annotations

import base64
import os

import nkeys
import pytest

from services.uplink.auth import CredentialsError, parse_creds, sign_nonce, url_userinfo
from services.uplink.dialer import HubUrl, UrlList
from services.uplink.filters import JS_DENIES, SubjectFilter, permission_lists
from services.uplink.handshake import is_leafnode_info
from services.uplink.interest import AccountHubInterest, HubInterest
from services.uplink.websocket import leafnode_path
from tests.support import OperatorKeys


class TestSubjectFilter:
    def test_open_filter_allows_everything(self) -> None:
        f = SubjectFilter()
        assert f.allows(b"a.b")
        assert f.allows_interest(b">")

    def test_js_denies_only_touch_system_subjects(self) -> None:
        f = SubjectFilter((), JS_DENIES)
        assert f.allows(b"orders.new")
        assert not f.allows(b"$KV.bucket.key")
        assert not f.allows(b"$JS.API.INFO")
        assert f.allows(b"$SYS.REQ.USER.INFO")
        assert not f.allows_interest(b"$KV.>")
        assert f.allows_interest(b"$KV")
        assert f.allows_interest(b">")

    def test_allow_and_deny_lists(self) -> None:
        f = SubjectFilter([(b"allowed.>", b"_INBOX.>")], [b"allowed.secret"])
        assert f.allows(b"allowed.x")
        assert not f.allows(b"allowed.secret")
        assert not f.allows(b"other")
        # Literal interest is checked like a subject; wildcards only when
        # they can match nothing allowed.
        assert not f.allows_interest(b"other.x")
        assert f.allows_interest(b"*.x")
        assert not f.allows_interest(b"other.*")
        assert not f.allows_interest(b"allowed.secret")

    def test_every_allow_list_must_match(self) -> None:
        f = SubjectFilter([(b"a.>",), (b"*.b",)])
        assert f.allows(b"a.b")
        assert not f.allows(b"a.c")

    def test_permissions_from_connect_info(self) -> None:
        assert permission_lists({"allow": ["a.>"], "deny": "b"}) == ((b"a.>",), (b"b",))
        assert permission_lists(None) == (None, ())
        assert permission_lists({"deny": ["x"]}) == (None, (b"x",))


JWT = "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n"
SEED = "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n"


class TestCredentials:
    def test_creds_file_round_trip(self) -> None:
        operator = OperatorKeys()
        creds = parse_creds(operator.user_creds("APP"))
        assert creds.jwt.count(".") == 2
        assert creds.seed.startswith(b"SU")

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("nothing here", "no user JWT block"),
            (JWT % "abc", "not a JWT"),
            (JWT % "a.b.c", "no user seed"),
            (JWT % "a.b.c" + SEED % "SUBAD", "invalid user nkey seed"),
        ],
    )
    def test_bad_creds(self, text: str, reason: str) -> None:
        with pytest.raises(CredentialsError, match=reason):
            parse_creds(text, "x.creds")

    def test_nonce_signature_verifies(self) -> None:
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        sig = sign_nonce(seed, "c3hDFlKnZeI38aI")
        assert "=" not in sig
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        assert nkeys.from_seed(seed).verify(b"c3hDFlKnZeI38aI", raw)

    def test_url_userinfo_is_percent_decoded(self) -> None:
        assert url_userinfo("nats-leaf://u%40x:p%3Aw@h:1") == ("u@x", "p:w")
        assert url_userinfo("nats-leaf://tok@h:1") == ("tok", None)
        assert url_userinfo("nats-leaf://h:1") == (None, None)


class TestUrlList:
    def test_order_rotation_and_discovery(self) -> None:
        urls = UrlList(["nats-leaf://u:p@a:1", "nats-leaf://b:2"], randomize=False)
        assert urls.next().address == "a:1"
        assert urls.next().address == "b:2"
        added = urls.add_discovered(["a:1", "c:3", 5, ""], "nats-leaf")
        assert [u.address for u in added] == ["c:3"]
        # A discovered URL inherits the configured credentials.
        assert added[0].userinfo == ("u", "p")
        assert [urls.next().address for _ in range(3)] == ["a:1", "b:2", "c:3"]

    def test_redacted_url_hides_credentials(self) -> None:
        url = HubUrl.parse("tls://user:secret@hub.example:7422")
        assert url.redacted == "tls://hub.example:7422"

    def test_websocket_path(self) -> None:
        assert leafnode_path("") == "/leafnode"
        assert leafnode_path("/nats/") == "/nats/leafnode"
        assert leafnode_path("/x/leafnode") == "/x/leafnode"


class TestHubInterest:
    def test_union_over_remotes(self) -> None:
        union = AccountHubInterest(b"A")
        assert union.add(0, b"s", None, 1) == b"LS+ A s\r\n"
        assert union.add(1, b"s", None, 1) is None
        assert union.add(0, b"q", b"g", 2) == b"LS+ A q g 2\r\n"
        assert union.add(1, b"q", b"g", 3) == b"LS+ A q g 5\r\n"
        assert union.remove(0, b"s", None) is None
        assert union.drop_remote(1, [(b"s", None), (b"q", b"g")]) == [
            b"LS- A s\r\n",
            b"LS+ A q g 2\r\n",
        ]
        assert list(union.snapshot()) == [b"LS+ A q g 2\r\n"]

    def test_hub_keys_are_not_refcounted(self) -> None:
        hub = HubInterest()
        assert hub.add(b"dup", None, None)
        assert not hub.add(b"dup", None, None)
        assert hub.add(b"q", b"g", 1)
        assert hub.add(b"q", b"g", 2)  # weight updated in place
        assert hub.remove(b"dup", None)
        assert not hub.remove(b"dup", None)
        assert [e.queue for e in hub.match(b"q").qsubs[0]] == [b"g"]


# First INFOs captured from live hubs (server ids and nonces shortened).
_LEAF_215: dict[str, object] = {
    "server_id": "NAMW",
    "version": "2.15.1",
    "proto": 3,
    "auth_required": True,
    "ip": "127.0.0.1:38581",
    "client_id": 5,
    "nonce": "-i-PQfHJh7dC33I",
    "compression": "s2_auto",
    "info_on_connect": True,
    "leafnode_urls": ["127.0.0.1:38581"],
}
_LEAF_29: dict[str, object] = {
    "server_id": "NAFV",
    "version": "2.9.10",
    "proto": 1,
    "auth_required": True,
    "ip": "127.0.0.1:35101",
    "client_id": 4,
    "nonce": "a3VvC-7npb5jNgk",
    "info_on_connect": True,
    "leafnode_urls": ["127.0.0.1:35101"],
}
_CLIENT_215: dict[str, object] = {
    "server_id": "NAMW",
    "version": "2.15.1",
    "proto": 1,
    "host": "0.0.0.0",
    "port": 51083,
    "headers": True,
    "client_id": 6,
    "client_ip": "127.0.0.1",
    "xkey": "XB5Q",
}
_CLIENT_29: dict[str, object] = {
    "server_id": "NAFV",
    "version": "2.9.10",
    "proto": 1,
    "client_id": 5,
    "client_ip": "127.0.0.1",
}


class TestLeafnodePortInfo:
    def test_leafnode_ports_of_both_versions(self) -> None:
        assert is_leafnode_info(_LEAF_215)
        assert is_leafnode_info(_LEAF_29)

    def test_a_no_advertise_hub_sends_no_leafnode_urls(self) -> None:
        # leafnodes { no_advertise: true } on 2.15.1: the same INFO without the key.
        info = {k: v for k, v in _LEAF_215.items() if k != "leafnode_urls"}
        assert is_leafnode_info(info)

    def test_a_hub_before_info_on_connect(self) -> None:
        info = {k: v for k, v in _LEAF_29.items() if k != "info_on_connect"}
        assert is_leafnode_info(info)

    @pytest.mark.parametrize("info", [_CLIENT_215, _CLIENT_29], ids=["2.15", "2.9"])
    def test_client_ports_are_not(self, info: dict[str, object]) -> None:
        assert not is_leafnode_info(info)
        # Even a client port that requires auth (nonce, auth_required) is not one.
        assert not is_leafnode_info({**info, "auth_required": True, "nonce": "abc"})

    @pytest.mark.parametrize("client_id", [None, 0, False, True, "5"])
    def test_no_usable_client_id_is_not(self, client_id: object) -> None:
        info = {k: v for k, v in _LEAF_215.items() if k != "client_id"}
        if client_id is not None:
            info["client_id"] = client_id
        assert not is_leafnode_info(info)
