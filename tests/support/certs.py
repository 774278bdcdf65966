"""Self-signed certificates for the gateway to watch (`telemetry.certificate_files` -> `x509_cert_expiry`)."""

from __future__ import annotations

import datetime
from pathlib import Path


def self_signed_certificate(directory: Path, common_name: str, days: int) -> tuple[Path, str]:
    """Write a PEM certificate for `common_name` valid for `days` from now; return its path and
    subject (RFC 4514, as the gateway labels it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{common_name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, name.rfc4514_string()
