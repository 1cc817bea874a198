"""Optimizers methods."""
