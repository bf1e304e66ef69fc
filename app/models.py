"""Tortoise models shared by every domain (the `core` app)."""

from __future__ import annotations
