"""Attention methods."""
