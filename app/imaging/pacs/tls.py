"""DICOM TLS to a node (PS3.15 B.1 Basic TLS Secure Transport): the SSL context built from the
node's settings, and the handshake's failure told in one line.

pynetdicom catches a failed handshake and only reports that no association was made, so the
context hands out sockets that remember why their handshake failed (``sslsocket_class``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from app.imaging.pacs.nodes import Node, PacsError


class TlsContext(ssl.SSLContext):
    """A client context whose last handshake failure is kept in :attr:`failure`."""

    failure: OSError | None = None


class _WatchedSocket(ssl.SSLSocket):
    """Keeps why the handshake failed: at connect, or (TLS 1.3: the server checks our
    certificate after the client's half of the handshake) at the first read."""

    def connect(self, address: object) -> None:
        try:
            super().connect(address)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            self.context.failure = exc  # type: ignore[attr-defined]
            raise

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except ssl.SSLError as exc:
            self.context.failure = exc  # type: ignore[attr-defined]
            raise


def client_context(node: Node) -> TlsContext:
    """Server authentication against the node's CA file (or the system's CAs), hostname
    checked, TLS 1.2 or later; our certificate and key when the node names them."""
    context = TlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _WatchedSocket
    _load(context, node)
    return context


def server_context(node: Node) -> ssl.SSLContext | None:
    """Our storage SCP's context for a C-MOVE from a TLS node (None without TLS): the archive
    connects back with TLS, shows a certificate chaining to the node's CA, and gets ours."""
    if not node.tls:
        return None
    if not node.tls_cert:
        msg = f"a C-MOVE from TLS node '{node.name}' needs our certificate and key "
        msg += "(--tls-cert, --tls-key): the archive connects back to us; or use --method get"
        raise PacsError(msg)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    _load(context, node)
    return context


def _load(context: ssl.SSLContext, node: Node) -> None:
    """The node's CA (or the system's) to verify the peer, and our certificate if any."""
    try:
        if node.tls_ca:
            context.load_verify_locations(cafile=node.tls_ca)
        else:
            server = context.protocol == ssl.PROTOCOL_TLS_CLIENT
            context.load_default_certs(
                ssl.Purpose.SERVER_AUTH if server else ssl.Purpose.CLIENT_AUTH
            )
    except (OSError, ssl.SSLError):
        msg = f"the TLS CA file {Path(node.tls_ca).name} of PACS '{node.name}' is not a PEM certificate"
        raise PacsError(msg) from None
    try:
        if node.tls_cert:
            context.load_cert_chain(node.tls_cert, node.tls_key)
    except (OSError, ssl.SSLError):
        msg = f"our TLS certificate {Path(node.tls_cert).name} and key "
        msg += f"{Path(node.tls_key).name} for PACS '{node.name}' do not load (PEM, matching pair)"
        raise PacsError(msg) from None


def tls_args(node: Node) -> tuple[TlsContext, str] | None:
    """What ``AE.associate(tls_args=...)`` takes for ``node`` (None without TLS)."""
    return (client_context(node), node.host) if node.tls else None


def explain(node: Node, failure: OSError) -> str:
    """One line for a failed handshake with ``node`` (no certificate contents quoted)."""
    where = f"PACS '{node.name}' ({node.host}:{node.port})"
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or "verification failed"
        check = "check --tls-ca" if node.tls_ca else "give the hospital's CA with --tls-ca"
        return f"the PACS certificate is not trusted ({reason}) at {where}; {check}"
    reason = getattr(failure, "reason", None) or "the connection was closed"
    if "ALERT" in reason.upper():
        return (
            f"{where} refused our TLS connection ({reason.lower()}); does it want our "
            "certificate (--tls-cert, --tls-key) or does it not trust it?"
        )
    return f"TLS with {where} failed ({reason.lower()}); is that port a DICOM TLS port?"
