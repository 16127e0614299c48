"""Persistence: one repository over SQLite or PostgreSQL (see repository.py)."""

from fhirmwl.store.repository import Store, Stored, Tx, WriteHook, open_store

__all__ = ["Store", "Stored", "Tx", "WriteHook", "open_store"]
