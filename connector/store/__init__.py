"""The store: the engine's records in SQLite (default) or PostgreSQL, through SQLAlchemy Core."""
