#!/usr/bin/env python3
"""Recomputes the worked examples of docs/format.md from first principles.

Independent of Tresor's code: only the `cryptography` package (pip install cryptography; needs
a build with OpenSSL >= 3.2 for AES-GCM-SIV, which the PyPI wheels have). Every value printed
here appears verbatim in docs/format.md, and src/keys/ring.rs (module `format_vectors`) checks the
same values against the Rust implementation.

    python3 docs/format_example.py
"""

import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def lp(field: bytes) -> bytes:
    """LP(x) = u32 big-endian length of x, then x."""
    return struct.pack(">I", len(field)) + field


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def hkdf(ikm: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869), no salt (= 32 zero bytes), 32 bytes of output."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def prk(ikm: bytes) -> bytes:
    """The HKDF-Extract output, shown for debugging: HMAC-SHA256(key = 32 zero bytes, ikm)."""
    return hmac.new(bytes(32), ikm, hashlib.sha256).digest()


def aad(environment, tenant, key, version, context, associated_data) -> bytes:
    return (
        lp(b"tresor-ct-v1")
        + lp(environment)
        + lp(tenant)
        + lp(key)
        + u32(version)
        + lp(context)
        + lp(associated_data)
    )


def text(version: int, payload: bytes) -> str:
    return f"tresor:v{version}:" + base64.b64encode(payload).decode("ascii")


def show(name: str, value) -> None:
    if isinstance(value, bytes):
        value = value.hex()
    print(f"{name:<22} {value}")


def example_a() -> None:
    print("== (a) non-derived key, with associated data, fixed nonce ==")
    material = bytes(range(0x00, 0x20))
    environment, tenant, key, version = b"production", b"payments", b"card-pan", 2
    associated_data = b"order-4711"
    plaintext = b"4111 1111 1111 1111"
    nonce = bytes(range(0xA0, 0xAC))

    info = lp(b"tresor-encrypt-v1")
    enc_key = hkdf(material, info)
    a = aad(environment, tenant, key, version, b"", associated_data)
    sealed = AESGCMSIV(enc_key).encrypt(nonce, plaintext, a)  # ciphertext ‖ tag
    payload = nonce + sealed
    show("material", material)
    show("hkdf prk", prk(material))
    show("hkdf info", info)
    show("encryption key", enc_key)
    show("aad", a)
    show("plaintext", plaintext)
    show("nonce", nonce)
    show("ciphertext", sealed[:-16])
    show("tag", sealed[-16:])
    show("payload", payload)
    show("result", text(version, payload))

    print()
    print("== HMAC token, same key and version ==")
    hmac_info = lp(b"tresor-hmac-v1")
    hmac_key = hkdf(material, hmac_info)
    hmac_input = b"4111 1111 1111 1111"
    tag = hmac.new(hmac_key, hmac_input, hashlib.sha256).digest()
    show("hkdf info", hmac_info)
    show("hmac key", hmac_key)
    show("input", hmac_input)
    show("hmac-sha256", tag)
    show("token", text(version, tag))


def example_b() -> None:
    print("== (b) derived, convergent key (deterministic) ==")
    material = bytes(range(0x20, 0x40))
    environment, tenant, key, version = b"production", b"payments", b"customer-email", 1
    context = b"customers.email"
    associated_data = b""
    plaintext = b"alice@example.com"

    derive_info = lp(b"tresor-derive-v1") + lp(context)
    enc_key = hkdf(material, derive_info)
    nonce_info = lp(b"tresor-convergent-nonce-v1") + lp(context)
    nonce_key = hkdf(material, nonce_info)
    a = aad(environment, tenant, key, version, context, associated_data)
    digest = hmac.new(nonce_key, a + plaintext, hashlib.sha256).digest()
    nonce = digest[:12]
    sealed = AESGCMSIV(enc_key).encrypt(nonce, plaintext, a)
    payload = nonce + sealed
    show("material", material)
    show("hkdf prk", prk(material))
    show("derive info", derive_info)
    show("derived key", enc_key)
    show("nonce info", nonce_info)
    show("nonce key", nonce_key)
    show("aad", a)
    show("plaintext", plaintext)
    show("hmac(aad‖plaintext)", digest)
    show("nonce", nonce)
    show("ciphertext", sealed[:-16])
    show("tag", sealed[-16:])
    show("payload", payload)
    show("result", text(version, payload))


if __name__ == "__main__":
    example_a()
    print()
    example_b()
