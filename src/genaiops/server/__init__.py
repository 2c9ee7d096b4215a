"""HTTP face of genaiops: create_app(settings) is the composition root."""

from genaiops.server.app import create_app

__all__ = ["create_app"]
