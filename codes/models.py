"""Tortoise models of the codes domain."""

from __future__ import annotations
