"""Encryption at rest for collection text, and the matching treatment of search terms.

With a key (32 bytes, base64, from the environment variable named by
``rag.encryption_key_env``), chunk text, document titles and headings are stored as
AES-256-GCM ciphertext (a fresh 96-bit nonce per value), and the lexical index holds keyed
hashes of the normalised terms instead of the terms, so BM25 still ranks (term frequencies
and document lengths are unchanged) while the database file holds no plaintext words.
Vectors and user metadata stay in clear: metadata filters run in SQL, and vectors are not
text (though research shows they leak some of it; keep the file access-controlled).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from genaiops.errors import ConfigError

_NONCE = 12


class Sealer:
    def __init__(self, key: bytes | None):
        self.key = key
        self._aead = None
        if key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(key)
            self._term_key = hmac.new(key, b"genaiops-lexical-terms", hashlib.sha256).digest()

    @classmethod
    def from_env(cls, variable: str) -> Sealer:
        raw = os.environ.get(variable)
        if not raw:
            return cls(None)
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{variable} must be 32 bytes encoded in base64") from exc
        if len(key) != 32:
            raise ConfigError(f"{variable} must be 32 bytes encoded in base64 (got {len(key)})")
        return cls(key)

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    def check_value(self) -> str | None:
        """A value stored with an encrypted collection to recognise the right key later."""
        if self.key is None:
            return None
        return hmac.new(self.key, b"genaiops-key-check", hashlib.sha256).hexdigest()[:16]

    def seal(self, text: str) -> bytes:
        data = text.encode("utf-8")
        if self._aead is None:
            return data
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, None)

    def open(self, blob: bytes) -> str:
        if self._aead is None:
            return bytes(blob).decode("utf-8")
        blob = bytes(blob)
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], None).decode("utf-8")

    def term(self, token: str) -> str:
        if self._aead is None:
            return token
        return hmac.new(self._term_key, token.encode(), hashlib.sha256).hexdigest()[:20]
