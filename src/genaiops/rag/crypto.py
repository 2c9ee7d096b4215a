"""Encryption at rest for collection text, and the matching treatment of search terms.

With a key (32 bytes, base64, from the environment variable named by
``rag.encryption_key_env``), chunk text, document titles and headings are stored as
AES-256-GCM ciphertext (a fresh 96-bit nonce per value), and the lexical index holds keyed
hashes of the normalised terms instead of the terms, so BM25 still ranks (term frequencies
and document lengths are unchanged) while the database file holds no plaintext words.
Vectors and user metadata stay in clear: metadata filters run in SQL, and vectors are not
text (though research shows they leak some of it; keep the file access-controlled).

Encryption belongs to a collection: one created while a key is configured is encrypted
(the store keeps a check value of the key with it), one created without a key stays in
clear after a key is configured, so a collection never holds a mix of both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from genaiops.errors import ConfigError, InvalidRequest

_NONCE = 12


class UnreadableText(InvalidRequest):
    """A stored value of a collection does not open with the configured key."""

    code = "encrypted_text_unreadable"


# Marks a keyed content hash (``Sealer.fingerprint``); stores written before hashes were
# keyed hold bare SHA-256 hex digests, which the stores' ``_key_hashes`` upgrade in place.
FINGERPRINT = "k:"


class Sealer:
    def __init__(self, key: bytes | None):
        self.key = key
        self._aead = None
        if key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(key)
            self._term_key = hmac.new(key, b"genaiops-lexical-terms", hashlib.sha256).digest()
            self._print_key = hmac.new(key, b"genaiops-fingerprints", hashlib.sha256).digest()

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
        """The text of a stored value. A value that does not open (sealed with another key,
        damaged, or sealed in a collection that is stored in clear) is an error that says
        so, not a crash."""
        blob = bytes(blob)
        try:
            if self._aead is None:
                return blob.decode("utf-8")
            from cryptography.exceptions import InvalidTag

            try:
                data = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], None)
            except InvalidTag:
                raise UnreadableText(
                    "Stored text of this collection cannot be decrypted with the configured "
                    "key (it was written with another key or is damaged). Re-ingest the "
                    "affected documents.",
                    code="encrypted_text_unreadable",
                ) from None
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableText(
                "Stored text of this collection is not readable text (it may have been "
                "encrypted in a collection stored in clear). Re-ingest the affected documents.",
                code="encrypted_text_unreadable",
            ) from None

    def fingerprint(self, digest: str) -> str:
        """What is stored for a content hash (a document's, or a chunk's to reuse its
        vector). In clear it is the hash itself; in an encrypted collection it is keyed
        (``FINGERPRINT`` then an HMAC of the hash), since a plain SHA-256 of a short,
        guessable text (a CSV row, a salary line) lets anyone holding the file confirm a
        guess of the text without the key."""
        if self._aead is None or digest.startswith(FINGERPRINT):
            return digest
        return FINGERPRINT + hmac.new(self._print_key, digest.encode(), hashlib.sha256).hexdigest()

    def term(self, token: str) -> str:
        if self._aead is None:
            return token
        return hmac.new(self._term_key, token.encode(), hashlib.sha256).hexdigest()[:20]
