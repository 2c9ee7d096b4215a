"""HTTP routers: each translates wire schemas to service calls and back, nothing more."""
