"""effbench: which training-efficiency method should I use, and what does it cost me?"""

from effbench.registry import Method, Skipped, Unavailable, discover

__version__ = "0.1.0"
__all__ = ["Method", "Skipped", "Unavailable", "discover", "__version__"]
