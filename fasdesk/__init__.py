"""fasdesk: desktop face liveness checking."""
__version__ = "0.1.0"
