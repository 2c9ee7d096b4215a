"""Guardrails: prompt injection, PII, toxicity and output checks, configured by policy."""
