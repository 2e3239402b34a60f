"""flightdeck: the ML lifecycle stages. One module per stage, each with a typed spec and one entry function."""

__version__ = "0.1.0"
