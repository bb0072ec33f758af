"""Key agreement, authenticated encryption and secret sharing for SecAgg+.

X25519, HKDF-SHA256 and AES-256-GCM come from ``cryptography``; Shamir secret
sharing from ``pycryptodome`` (``Crypto.Protocol.SecretSharing``, over
GF(2**128), 16-byte secrets), which is maintained and audited: a 32-byte secret
is shared as its two 16-byte halves with the same share indices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
SHARE_BYTES = 32
"""One share of a 32-byte secret (two 16-byte Shamir shares)."""


def new_private_key() -> X25519PrivateKey:
    """A fresh X25519 private key from the operating system's CSPRNG."""
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key``'s public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of ``key`` (what is secret-shared for dropout recovery)."""
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def agree(private: X25519PrivateKey | bytes, peer_public: bytes, info: bytes) -> bytes:
    """A 32-byte key both ends derive: HKDF-SHA256 of the X25519 shared secret."""
    if isinstance(private, bytes):
        private = X25519PrivateKey.from_private_bytes(private)
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """AES-256-GCM: a random nonce, then the ciphertext and its tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_sealed(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """The inverse of ``seal``; raises ``cryptography.exceptions.InvalidTag`` if tampered."""
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)


def split_secret(secret: bytes, threshold: int, count: int) -> list[bytes]:
    """``count`` shares of a 32-byte ``secret``, any ``threshold`` of which rebuild it.

    Share ``i`` (0-based) has Shamir index ``i + 1``.
    """
    low = Shamir.split(threshold, count, secret[:16])
    high = Shamir.split(threshold, count, secret[16:])
    return [first[1] + second[1] for first, second in zip(low, high, strict=True)]


def combine_shares(shares: Sequence[tuple[int, bytes]]) -> bytes:
    """The secret from ``(index, share)`` pairs (0-based indices, at least the threshold)."""
    low = Shamir.combine([(index + 1, share[:16]) for index, share in shares])
    high = Shamir.combine([(index + 1, share[16:]) for index, share in shares])
    return low + high
