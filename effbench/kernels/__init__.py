"""Triton kernels, apart from the reference math: launchers and autograd Functions only.

Kernel modules import triton at import time; method files import them lazily, inside
the implementation, so the registry loads on machines without triton.
"""
