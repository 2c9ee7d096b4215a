"""genaiops: a self-hosted Gen AI Ops platform.

Importing the package does no I/O and loads no model; everything heavy happens in the
services that the server's lifespan or the CLI builds.
"""

__version__ = "0.1.0"
