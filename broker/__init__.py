"""mash-broker: secure inter-agency information sharing for child safeguarding."""

__all__ = ["__version__"]

__version__ = "0.1.0"
