"""copa: a personal AI workstation for the terminal."""

__version__ = "0.1.0"
