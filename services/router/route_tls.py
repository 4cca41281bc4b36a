"""TLS on routes: ``cluster { tls { ... } }`` (DESIGN §9), as nats-server serves it.

Theory of operation (nats-server ``server/route.go`` createRoute,
``server/opts.go`` getTLSConfig, ``server/client.go`` doTLSHandshake):

- a route's TLS handshake is the very first thing on the connection, on
  both sides: the node that dialed is the TLS client, the node that
  accepted the TLS server; INFO and CONNECT follow inside TLS. There is no
  INFO in clear text first, as on the client port, so ``handshake_first``
  means nothing here: nats-server 2.15 reads the key in any ``tls`` block
  and its routes never look at it; leafnode reads it the same way;
- a route is always mutual TLS: each side presents ``cert_file`` and
  checks the other's chain against ``ca_file`` (the system's CAs without
  one), whatever ``verify`` says (nats-server forces
  RequireAndVerifyClientCert for routes), so one certificate per node
  serves both directions and must be good for server and client auth;
- the dialing side checks the certificate's name against the host of the
  URL it dialed; for a URL with an IP address (gossip names peers by IP)
  it checks the first host name of the configured routes instead, if any,
  and forgets that name once a peer's certificate does not carry it
  (nats-server's ``routeTLSName``); ``insecure: true`` checks neither
  chain nor name of the peers it dials (warned about, as nats-server does);
- the handshake must finish within ``timeout`` (2 s by default), else the
  route closes (``TLS Handshake Error``); a node without TLS, or whose
  certificate is not trusted, is refused by the handshake itself, the
  node that dialed then tries again as it does after any failure.

The INFO and CONNECT of a TLS route say ``tls_required`` (INFO also
``tls_verify``), as nats-server's do.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

if TYPE_CHECKING:
    from leafnode.config import TlsSettings

__all__ = ["INSECURE_WARNING", "TLS_HANDSHAKE_ERROR", "RouteTls"]

log = logging.getLogger("leafnode.router")

TLS_HANDSHAKE_ERROR: Final = "TLS Handshake Error"
"""The close reason of a route whose handshake failed (nats-server's)."""
INSECURE_WARNING: Final = (
    "TLS certificate chain and hostname of solicited routes will not be verified."
    " DO NOT USE IN PRODUCTION!"
)
"""nats-server's clusterTLSInsecureWarning, logged once at start."""
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH.
_NAME_MISMATCH: Final = frozenset({62, 64})


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class RouteTls:
    """The contexts of ``cluster.tls`` (module doc); built once, at start."""

    def __init__(self, tls: TlsSettings, routes: tuple[str, ...]) -> None:
        assert tls.cert_file is not None
        assert tls.key_file is not None
        self.timeout_s = tls.timeout_s
        # Accepted routes: the dialer's certificate is required and checked.
        self.server_context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cafile=tls.ca_file
        )
        self.server_context.load_cert_chain(tls.cert_file, tls.key_file)
        self.server_context.verify_mode = ssl.CERT_REQUIRED
        # Dialed routes: our certificate presented, the peer's checked.
        self.client_context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file
        )
        self.client_context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure:
            self.client_context.check_hostname = False
            self.client_context.verify_mode = ssl.CERT_NONE
            log.warning("%s", INSECURE_WARNING)
        # nats-server's routeTLSName: the first host name among the seeds.
        self.tls_name = ""
        for url in routes:
            host = urlsplit(url).hostname or ""
            if host and not _is_ip(host):
                self.tls_name = host
                break

    async def handshake(
        self, stream: trio.abc.Stream, url: str | None, label: str
    ) -> trio.SSLStream[trio.abc.Stream] | None:
        """TLS over a new route (``url``: the one we dialed; None: accepted), or None.

        A failure is logged as nats-server logs it; the caller closes ``stream``.
        """
        server_hostname: str | None = None
        if url is not None:
            server_hostname = urlsplit(url).hostname or ""
            if self.tls_name and _is_ip(server_hostname):
                server_hostname = self.tls_name
            ssl_stream = trio.SSLStream(
                stream, self.client_context, server_hostname=server_hostname
            )
        else:
            ssl_stream = trio.SSLStream(stream, self.server_context, server_side=True)
        try:
            with trio.fail_after(self.timeout_s):
                await ssl_stream.do_handshake()
        except trio.TooSlowError:
            log.error("%s - TLS route handshake error: timeout", label)
            return None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = exc.__cause__ or exc
            if (
                isinstance(cause, ssl.SSLCertVerificationError)
                and cause.verify_code in _NAME_MISMATCH
                and server_hostname is not None
                and server_hostname == self.tls_name
            ):
                self.tls_name = ""  # next time, the URL's own host
            log.error("%s - TLS route handshake error: %s", label, cause)
            return None
        log.debug("%s - TLS handshake complete", label)
        return ssl_stream
