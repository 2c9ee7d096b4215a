"""PII detection and redaction for the identifiers of Latin America and Spain.

``detectors`` finds spans (regex candidates kept only when a check digit, or a keyword for
identifiers without one, confirms them), ``redaction`` masks, hashes or reversibly vaults
them, and ``guard`` exposes the detector as the ``pii`` guard.
"""

from genaiops.guardrails.pii.detectors import ENTITY_KINDS, PIIDetector
from genaiops.guardrails.pii.guard import PIIGuard
from genaiops.guardrails.pii.redaction import StreamingRestorer, Vault, hash_spans, mask, redact

__all__ = [
    "ENTITY_KINDS",
    "PIIDetector",
    "PIIGuard",
    "StreamingRestorer",
    "Vault",
    "hash_spans",
    "mask",
    "redact",
]
