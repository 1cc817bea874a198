"""Samplers methods."""
