"""A test certificate chain for C2PA signing, made with `cryptography`: a root CA and an ES256 signer certificate
with the key usage (digital signature) and extended key usage (email protection) C2PA requires."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

import pytest


class Chain(NamedTuple):
    cert: Path  # the signer's certificate, then the CA's
    key: Path  # the signer's private key
    ca_key: Path  # the CA's private key (a CA certificate must not sign manifests)
    ca_cert: Path


def pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_chain(folder: Path, *, usage: bool = True, expired: bool = False) -> Chain:
    """Write a CA and a signer certificate under `folder`; `usage=False` leaves out the signer's extended key
    usage, which C2PA validation refuses; `expired=True` makes a signer certificate that expired yesterday."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modomo test CA"),
            ]
        )

    def usage_of(signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signer,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not signer,
            crl_sign=not signer,
            encipher_only=False,
            decipher_only=False,
        )

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("modomo test root"))
        .issuer_name(name("modomo test root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage_of(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer = (
        x509.CertificateBuilder()
        .subject_name(name("modomo test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(now + dt.timedelta(days=-1 if expired else 30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage_of(signer=True), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if usage:
        signer = signer.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    signer = signer.sign(ca_key, hashes.SHA256())
    folder.mkdir(parents=True, exist_ok=True)
    files = Chain(folder / "chain.pem", folder / "signer.key", folder / "ca.key", folder / "ca.pem")
    pem = serialization.Encoding.PEM
    files.cert.write_bytes(signer.public_bytes(pem) + ca.public_bytes(pem))
    files.key.write_bytes(pem_key(key))
    files.ca_key.write_bytes(pem_key(ca_key))
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


@pytest.fixture(scope="session")
def signing_chain(tmp_path_factory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("c2pa-chain"))
