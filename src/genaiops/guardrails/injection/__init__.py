"""Prompt-injection and jailbreak detection for English, Spanish and Portuguese.

``InjectionGuard`` (guard name ``prompt_injection``) combines weighted regex rules over
de-obfuscated text (``normalize``, ``rules``) with a hashed n-gram logistic regression
(``classifier``) trained on the labelled prompts shipped in ``data/prompts.jsonl``.
Importing this package compiles regexes and nothing else; the model and scikit-learn are
loaded on the first check.
"""

from genaiops.guardrails.injection.classifier import train_cli
from genaiops.guardrails.injection.guard import InjectionGuard

__all__ = ["InjectionGuard", "train_cli"]
