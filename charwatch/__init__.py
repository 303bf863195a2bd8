"""charwatch: find unlicensed uses of registered characters on short-video platforms."""

__version__ = "0.1.0"
