"""The static site's parts; ``effbench.sitegen.build`` writes the pages."""
