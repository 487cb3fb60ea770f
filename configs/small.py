"""The small generator of the paper (A.4): configs/generator.py:small."""

from configs import generator


def get_config():
    return generator.get_config("small")
