"""Rate limits and token budgets behind one protocol: in-process or Redis."""
