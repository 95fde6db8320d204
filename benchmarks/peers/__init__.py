"""Re-implementations of peer detectors whose packages do not install on this Python / torch."""
