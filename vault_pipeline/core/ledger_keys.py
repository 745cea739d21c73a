"""Ledger keys: who may sign the vault's ledger, and how anyone checks a signature.

Entries and checkpoints are signed with Ed25519 (auditors need only the public key) or
HMAC-SHA256 (auditors need the shared secret). ``VAULT_LEDGER_KEY`` holds the key as
``ed25519:<base64 of the raw 32-byte private key>`` or ``hmac:<base64 secret>``; without it the
embedded default keeps an Ed25519 key in ``$VAULT_HOME/ledger.key`` (mode 0600, created
atomically) and publishes its public half as ``$VAULT_HOME/ledger.pub``. Key ids are derived
so they can be published; no message ever contains key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ENV = "VAULT_LEDGER_KEY"
KEY_FILE = "ledger.key"
PUBLIC_KEY_FILE = "ledger.pub"
HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
# The HMAC key id is derived through a labelled HMAC so that it can be published without
# being a hash of the secret itself (which would allow offline guessing of weak secrets).
_KEY_ID_LABEL = b"vault-ledger/key-id/v1"


class LedgerKeyError(ValueError):
    """The ledger key is missing, malformed or stored unsafely. Messages never contain key material."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# -- signers and verifiers -----------------------------------------------------------------


@runtime_checkable
class Verifier(Protocol):
    algorithm: str
    key_id: str

    def verify(self, message: bytes, signature: bytes) -> bool: ...


@runtime_checkable
class Signer(Protocol):
    algorithm: str
    key_id: str

    def sign(self, message: bytes) -> bytes: ...

    def verifier(self) -> Verifier: ...


def _hmac_key_id(secret: bytes) -> str:
    return hashlib.sha256(hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).digest()).hexdigest()[:16]


class HmacVerifier:
    """Checks HMAC-SHA256 signatures; holds the shared secret, so keep it as secret as the signer."""

    algorithm = HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise LedgerKeyError("an HMAC ledger secret must be at least 16 bytes (32 recommended)")
        self._secret = bytes(secret)
        self.key_id = _hmac_key_id(self._secret)

    def _mac(self, message: bytes) -> bytes:
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self._mac(message), signature)

    def __repr__(self) -> str:  # never the secret
        return f"{type(self).__name__}(key_id={self.key_id!r})"


class HmacSigner(HmacVerifier):
    """Signs with HMAC-SHA256 over a shared secret."""

    def sign(self, message: bytes) -> bytes:
        return self._mac(message)

    def verifier(self) -> HmacVerifier:
        return HmacVerifier(self._secret)

    def spec(self) -> str:
        """The ``VAULT_LEDGER_KEY`` form of this key (secret material: never log it)."""
        return "hmac:" + b64(self._secret)


class Ed25519Verifier:
    """Checks Ed25519 signatures with a public key; safe to hand to anyone."""

    algorithm = ED25519

    def __init__(self, public_key: Ed25519PublicKey | bytes) -> None:
        if isinstance(public_key, (bytes, bytearray)):
            public_key = Ed25519PublicKey.from_public_bytes(bytes(public_key))
        if not isinstance(public_key, Ed25519PublicKey):
            raise LedgerKeyError(f"not an Ed25519 public key: {type(public_key).__name__}")
        self.public_key = public_key
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def from_pem(cls, pem: bytes) -> Ed25519Verifier:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise LedgerKeyError("the PEM public key is not an Ed25519 key")
        return cls(key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.public_key.verify(signature, message)
            return True
        except InvalidSignature:
            return False

    def public_key_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"


class Ed25519Signer:
    """Signs with an Ed25519 private key (``cryptography``)."""

    algorithm = ED25519

    def __init__(self, private_key: Ed25519PrivateKey | bytes) -> None:
        if isinstance(private_key, (bytes, bytearray)):
            if len(private_key) != 32:
                raise LedgerKeyError("an Ed25519 private key is exactly 32 raw bytes")
            private_key = Ed25519PrivateKey.from_private_bytes(bytes(private_key))
        if not isinstance(private_key, Ed25519PrivateKey):
            raise LedgerKeyError(f"not an Ed25519 private key: {type(private_key).__name__}")
        self._private_key = private_key
        self._verifier = Ed25519Verifier(private_key.public_key())
        self.key_id = self._verifier.key_id

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def verifier(self) -> Ed25519Verifier:
        return self._verifier

    def public_key_pem(self) -> bytes:
        return self._verifier.public_key_pem()

    def spec(self) -> str:
        """The ``VAULT_LEDGER_KEY`` form of this key (secret material: never log it)."""
        raw = self._private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return "ed25519:" + b64(raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"


def signer_from_spec(spec: str, *, source: str = KEY_ENV) -> HmacSigner | Ed25519Signer:
    """Parse ``hmac:<base64 secret>`` or ``ed25519:<base64 raw 32-byte private key>``."""
    expected = f"{source} must be 'ed25519:<base64 raw 32-byte private key>' or 'hmac:<base64 secret>'"
    scheme, sep, payload = spec.strip().partition(":")
    if not sep or scheme not in ("hmac", "ed25519"):
        # The value is secret: name the problem, never echo it.
        raise LedgerKeyError(f"{expected}; the value has no known scheme prefix")
    try:
        raw = unb64(payload)
    except (binascii.Error, ValueError):
        raise LedgerKeyError(f"{expected}; the part after '{scheme}:' is not valid base64") from None
    if scheme == "hmac":
        return HmacSigner(raw)
    return Ed25519Signer(raw)


# -- key file ------------------------------------------------------------------------------


def _read_key_file(path: Path) -> HmacSigner | Ed25519Signer:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LedgerKeyError(
            f"{path} is accessible to group or others (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )
    return signer_from_spec(path.read_text(encoding="ascii"), source=str(path))


def _create_key_file(path: Path) -> HmacSigner | Ed25519Signer:
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = Ed25519Signer.generate()
    data = (signer.spec() + "\n").encode("ascii")
    # Written in full to a private temporary file, then published with link(), which fails if
    # the name exists: two processes starting at once end up sharing one key, and nobody ever
    # reads a half-written key file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path)
        except OSError:
            # Filesystems without hard links: create the key file itself exclusively.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                return _read_key_file(path)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    finally:
        tmp.unlink(missing_ok=True)
    return signer


def _write_public_key(home: Path, signer: Ed25519Signer) -> None:
    path = home / PUBLIC_KEY_FILE
    pem = signer.public_key_pem()
    if path.exists() and path.read_bytes() == pem:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_or_create_ledger_key(home: Path, env: Mapping[str, str] = os.environ) -> HmacSigner | Ed25519Signer:
    """The ledger signer: ``VAULT_LEDGER_KEY`` if set, else ``home/ledger.key`` (created on first use).

    With an Ed25519 key, ``home/ledger.pub`` (PEM) is kept current for auditors.
    """
    home = Path(home)
    spec = env.get(KEY_ENV)
    if spec:
        signer = signer_from_spec(spec)
        if isinstance(signer, Ed25519Signer):
            try:
                _write_public_key(home, signer)
            except OSError:
                # A key from the environment usually means a deployment whose home may be
                # read-only; the public key is also available from the signer itself.
                pass
        return signer
    path = home / KEY_FILE
    signer = _read_key_file(path) if path.exists() else _create_key_file(path)
    if isinstance(signer, Ed25519Signer):
        _write_public_key(home, signer)
    return signer


def load_public_verifier(home: Path) -> Ed25519Verifier:
    """The verifier an auditor builds from ``home/ledger.pub`` alone."""
    return Ed25519Verifier.from_pem((Path(home) / PUBLIC_KEY_FILE).read_bytes())
