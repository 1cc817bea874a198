"""Losses methods."""
