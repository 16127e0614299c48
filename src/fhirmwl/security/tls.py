"""One TLS configuration for the three listeners and the clients (HTTP, MLLP, DICOM).

Every door gets its :class:`ssl.SSLContext` from here so they share one policy: TLS 1.2 or
later, the cipher suites recommended by BCP 195 (RFC 9325: ECDHE/DHE key exchange with AES-GCM
or ChaCha20-Poly1305; TLS 1.3 suites are fixed by OpenSSL and all recommended), no compression,
no renegotiation. Mutual TLS is the IHE ATNA node authentication for MLLP and DICOM: with
``tls_client_ca`` set, client certificates are verified against it, and the verified subject
(RFC 4514 string, e.g. ``CN=ct01,O=Radiology``) becomes the peer identity of the connection.
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509

from fhirmwl.errors import BadRequest

# RFC 9325 section 4.2: the four recommended TLS 1.2 suites, plus their ChaCha20 equivalents.
BCP195_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1"

LISTENERS = ("http", "mllp", "dicom")


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BCP195_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return ctx


def server_context(
    cert: str, key: str, client_ca: str = "", require_client_cert: bool = False
) -> ssl.SSLContext:
    """A server context; ``client_ca`` asks for client certificates, ``require`` demands one."""
    if require_client_cert and not client_ca:
        raise BadRequest("tls_require_client_cert needs tls_client_ca (the CA of the clients)")
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    try:
        ctx.load_cert_chain(cert, key or None)
        if client_ca:
            ctx.load_verify_locations(client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise BadRequest(f"cannot load TLS certificate, key or CA: {exc}") from None
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


def client_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client context verifying the server against ``ca`` (or the system store)."""
    try:
        ctx = _harden(ssl.create_default_context(cafile=ca or None))
        if cert:
            ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise BadRequest(f"cannot load TLS CA, certificate or key: {exc}") from None
    return ctx


def tls_enabled(settings: Any, listener: str) -> bool:
    """True when ``listener`` (http, mllp, dicom) runs TLS under ``settings``."""
    return bool(settings.tls_cert) and bool(getattr(settings, f"{listener}_tls", True))


def listener_context(settings: Any, listener: str) -> ssl.SSLContext | None:
    """The server context for one listener, or ``None`` when it runs in clear."""
    if not tls_enabled(settings, listener):
        return None
    return server_context(
        settings.tls_cert,
        settings.tls_key,
        settings.tls_client_ca,
        settings.tls_require_client_cert,
    )


def peer_subject(ssl_object: Any) -> str | None:
    """The verified client certificate's subject (RFC 4514), or ``None`` without one."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):  # handshake not done
        return None
    if not der:
        return None
    return str(x509.load_der_x509_certificate(der).subject.rfc4514_string())
