"""The large generator of the paper (A.4): configs/generator.py:large."""

from configs import generator


def get_config():
    return generator.get_config("large")
