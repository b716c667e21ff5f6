"""Aggregate-only access: scoped tokens, protected outputs, hash-chained audit log."""
