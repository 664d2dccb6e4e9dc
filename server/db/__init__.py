"""Database layer: declarative base, ORM models, engine and session handling."""
