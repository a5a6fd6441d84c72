"""Newsletter signup forms that deliver to email service providers."""

__version__ = "0.1.0"
