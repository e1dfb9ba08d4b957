"""ao: run a fleet of AI coding agents and supervise them so that humans only make decisions."""

__version__ = "0.1.0"
