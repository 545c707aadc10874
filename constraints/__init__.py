"""Constraint tables, aliases and alpha/beta defaults as cited data files (no code)."""
