"""The metadata store: SQLAlchemy over SQLite (embedded default) or PostgreSQL."""
