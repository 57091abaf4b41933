"""Storage backends: in-memory, SQL (SQLAlchemy) and mbox."""
