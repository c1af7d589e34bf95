"""blindproof: private and verifiable inference for PyTorch models."""

from blindproof._threads import pin_threads as _pin_threads

_pin_threads()

__version__ = "0.1.0"
