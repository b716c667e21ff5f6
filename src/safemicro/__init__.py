"""safemicro: responsible release of microdata on forcibly displaced people."""

__version__ = "0.1.0"
