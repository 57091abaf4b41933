"""
TLS server contexts and self-signed certificates.

RFC 8314 asks mail servers to prefer implicit TLS (port 993 for IMAP, 995
for POP3) and to support TLS 1.2 or later; RFC 9051 section 11 requires TLS
1.2 or later for IMAP.  L{make_tls_options} therefore refuses anything
older than TLS 1.2 and uses Twisted's default cipher list (forward-secret
AEAD suites, no RC4/3DES/export ciphers).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable

from twisted.internet import ssl


def _read(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def make_tls_options(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> ssl.CertificateOptions:
    """
    Server TLS options from PEM files.  C{cert_path} holds the server
    certificate first, optionally followed by intermediate certificates
    (sent to clients as the chain); C{key_path} holds its unencrypted
    private key.  TLS 1.2 is the minimum version.  Raises L{ValueError} (or
    L{OSError}) at once for unreadable, malformed or mismatched files, so
    a bad configuration fails at startup rather than at the first client.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        certs = x509.load_pem_x509_certificates(_read(cert_path))
    except ValueError as e:
        raise ValueError(f"no usable certificate in {os.fspath(cert_path)}: {e}") from e
    key = load_pem_private_key(_read(key_path), password=None)
    options = ssl.CertificateOptions(
        privateKey=key,
        certificate=certs[0],
        extraCertChain=certs[1:],
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
    try:
        options.getContext()  # checks that the key belongs to the certificate
    except Exception as e:
        raise ValueError(f"{os.fspath(key_path)} does not match the certificate: {e}") from e
    return options


def generate_self_signed(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    hostnames: Iterable[str] = ("localhost", "127.0.0.1"),
    days: int = 365,
) -> None:
    """
    Write a new RSA-2048 key (mode 0600) and a self-signed certificate for
    C{hostnames}: each becomes a subjectAltName, an IP address SAN for
    addresses and a DNS SAN otherwise; the first is also the common name.
    Existing files are replaced.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(hostnames)
    if not names:
        raise ValueError("at least one host name is needed")
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    os.chmod(key_path, 0o600)
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
