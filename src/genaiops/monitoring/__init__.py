"""Prometheus metrics and structured logs (drift detection joins later)."""
