"""The signing identity of a run (`--sign-cert CHAIN.pem --sign-key KEY.pem`): read, matched and tried once,
before any model loads, so a bad one is one line and never a run of unsigned or unreadable results.

The certificate chain is PEM, the signer's certificate first (then any intermediates; the root may be left out,
as C2PA validators hold their own trust lists). The algorithm follows from the key: ES256/ES384/ES512 for
P-256/P-384/P-521 EC keys, PS256 for RSA, Ed25519. C2PA's own rules on the certificate (a digital-signature
key usage, an extended key usage such as document signing or email protection, not a CA) are checked by signing
a tiny image with it and validating that, so what c2pa would refuse is refused here, by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UsageError

CERT_ENV, KEY_ENV = "MODOMO_SIGN_CERT", "MODOMO_SIGN_KEY"
# What a validator may report of a good signature whose chain it does not trust (a private or test CA), or
# whose revocation it did not check: the manifest is still intact and bound to the pixels.
TRUST_CODES = frozenset(
    {
        "signingCredential.untrusted",
        "signingCredential.ocsp.skipped",
        "signingCredential.ocsp.unknown",
        "timeStamp.untrusted",
    }
)


@dataclass(frozen=True)
class Credentials:
    """A checked certificate chain and its private key (PEM bytes: they travel to workers and actors)."""

    chain: bytes = field(repr=False)
    key: bytes = field(repr=False)  # never in a message, a log or a traceback
    alg: str  # es256, es384, es512, ps256, ed25519
    signer: str  # the signer certificate's common name
    issuer: str  # its issuer's organisation (or common name)
    source: str  # where they were read from, for messages

    def to_json(self) -> dict:
        return {"signer": self.signer, "issuer": self.issuer, "alg": self.alg}


def load_credentials(cert: str | Path | None, key: str | Path | None) -> Credentials | None:
    (
        """The certificate chain and key, read and matched, or None when the run signs nothing; UsageError (one
    line) for anything off. `signing.load_signing` also tries them."""
        ""
    )
    if not cert and not key:
        return None
    if not cert or not key:
        given, missing = ("--sign-cert", "--sign-key") if cert else ("--sign-key", "--sign-cert")
        raise UsageError(
            f"{given} needs {missing} too (or {CERT_ENV} and {KEY_ENV}): a signature needs both "
            "the certificate chain and its private key"
        )
    chain, key_pem = read_pem(cert, "--sign-cert"), read_pem(key, "--sign-key")
    certificates = parse_chain(chain, cert)
    private = parse_key(key_pem, key)
    check_pair(certificates[0], private, cert, key)
    check_usage(certificates[0], cert)
    return Credentials(
        chain,
        key_pem,
        algorithm(private, key),
        common_name(certificates[0].subject),
        organisation(certificates[0].issuer),
        f"{cert}",
    )


def read_pem(path: str | Path, option: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: no such file") from None
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read: {exc.strerror or exc}") from None


def parse_chain(data: bytes, path) -> list:
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise UsageError(
            f"--sign-cert {path}: not a PEM certificate chain (expected '-----BEGIN CERTIFICATE-----', "
            "the signer's certificate first)"
        )
    return certificates


def parse_key(data: bytes, path):
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"--sign-key {path}: the key is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UsageError(f"--sign-key {path}: not a PEM private key (expected '-----BEGIN PRIVATE KEY-----')") from None


def check_pair(certificate, private, cert, key) -> None:
    """The key must be the certificate's: a signature nobody can check is worse than none."""
    from cryptography.hazmat.primitives import serialization

    def raw(public) -> bytes:
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    if raw(certificate.public_key()) != raw(private.public_key()):
        raise UsageError(
            f"--sign-key {key} does not match the first certificate of --sign-cert {cert} "
            f"({common_name(certificate.subject)!r}): give the key of that certificate"
        )


def check_usage(certificate, path) -> None:
    """What C2PA asks of a signer's certificate, named: not a CA, a digital-signature key usage, and an
    extended key usage (document signing, email protection, C2PA's own...)."""
    from cryptography import x509

    def extension(kind):
        try:
            return certificate.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    constraints, usage, extended = (
        extension(x509.BasicConstraints),
        extension(x509.KeyUsage),
        extension(x509.ExtendedKeyUsage),
    )
    name = common_name(certificate.subject)
    if constraints is not None and constraints.ca:
        raise UsageError(
            f"--sign-cert {path}: its first certificate ({name!r}) is a CA's; C2PA manifests are "
            "signed with an end-entity certificate issued by it"
        )
    if usage is None or not usage.digital_signature:
        raise UsageError(f"--sign-cert {path}: {name!r} lacks the digitalSignature key usage C2PA requires")
    if extended is None or len(extended) == 0:
        raise UsageError(
            f"--sign-cert {path}: {name!r} has no extended key usage; C2PA requires one such as "
            "documentSigning or emailProtection"
        )


def algorithm(private, path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(private, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if private.curve.name in by_curve:
            return by_curve[private.curve.name]
        raise UsageError(
            f"--sign-key {path}: curve {private.curve.name} is not one C2PA signs with (P-256, P-384 or P-521)"
        )
    if isinstance(private, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise UsageError(f"--sign-key {path}: a {type(private).__name__} key; C2PA signs with EC, RSA or Ed25519 keys")


def common_name(name) -> str:
    from cryptography.x509.oid import NameOID

    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def organisation(name) -> str:
    from cryptography.x509.oid import NameOID

    found = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(found[0].value) if found else common_name(name)
