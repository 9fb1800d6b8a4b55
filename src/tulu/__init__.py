"""tulu: an open post-training toolkit (the Tulu 3 recipe)."""

__version__ = "0.1.0"
