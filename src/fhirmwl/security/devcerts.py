"""A development certificate authority, so a newcomer can try TLS and mutual TLS in one command.

``write_dev_certs(out)`` writes ``ca.pem`` (a self-signed CA), ``server.pem``/``server-key.pem``
(SAN ``localhost`` and ``127.0.0.1``, serverAuth) and ``client.pem``/``client-key.pem``
(clientAuth certificate whose subject is ``CN=<client_cn>``) with the
``cryptography`` library: ECDSA P-256 keys, SHA-256 signatures. The keys are written
unencrypted with mode 0600; they are for development and tests, never for production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FILES = ("ca.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _leaf(
    cn: str,
    usage: x509.ObjectIdentifier,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    days: int,
    san: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(cn), ca_name, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), True
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_dev_certs(
    out: Path, client_cn: str = "fhirmwl-dev-client", days: int = 825
) -> list[Path]:
    """Write the CA, server and client certificates and keys into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("fhirmwl development CA")
    ca = (
        _builder(ca_name, ca_name, ca_key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    san: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    server, server_key = _leaf(
        "localhost", ExtendedKeyUsageOID.SERVER_AUTH, ca_key, ca_name, days, san
    )
    client, client_key = _leaf(client_cn, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_name, days)
    pem = serialization.Encoding.PEM
    _write(out / "ca.pem", ca.public_bytes(pem))
    _write(out / "server.pem", server.public_bytes(pem))
    _write(out / "server-key.pem", _key_pem(server_key), private=True)
    _write(out / "client.pem", client.public_bytes(pem))
    _write(out / "client-key.pem", _key_pem(client_key), private=True)
    return [out / name for name in FILES]
