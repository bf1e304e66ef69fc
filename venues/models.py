"""Tortoise models of the venues domain."""

from __future__ import annotations
