"""powernest: a conformance suite for nested virtualization on IBM POWER."""

__version__ = "0.1.0"
