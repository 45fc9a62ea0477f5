"""Bridges to other tools (optional extras)."""
