"""Built-in methods, one file per method, grouped by family. Discovered, never listed."""
