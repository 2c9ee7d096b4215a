"""Identity, access, limits and the audit log: everything between a request's credentials
and the engine."""
