"""JAX's persistent compilation cache for the command lines (salsa.train, salsa.extend, salsa.evaluate).

A program compiled once (the generator's sampling at a window's shape, the VAE's decoder, an encoder, a
train step) is written to a folder, and the next process that compiles the same program on the same
kind of machine reads it back instead. `salsa.extend` on a minute of video with the tiny pipeline takes
8 s instead of 12 (2 CPU cores); a resumed or restarted training run skips compiling its step again.

The folder: JAX_COMPILATION_CACHE_DIR when set (JAX's own variable, which also wins over everything
here), else SALSA_COMPILATION_CACHE, else `$XDG_CACHE_HOME/salsa/jax` (~/.cache/salsa/jax). Set
SALSA_COMPILATION_CACHE=off (or empty) to compile everything afresh. A local path or a gs:// one (for a
pod's hosts to share; JAX trusts what it reads there, so give it a folder only you can write). The cache
is kept under MAX_BYTES, least recently used entries dropped first. Every program is cached however
quickly it compiles: the tiny models' dozens of programs take 0.1 s each, and together a third of a
short run.

JAX checks that a cached CPU program suits the machine that loads it and compiles afresh when it does
not. On some CPUs that check refuses every program, even one the same machine wrote (an error line per
program on stderr, then a normal compilation; jax-ml/jax#38445): there, set SALSA_COMPILATION_CACHE=off.
"""

from __future__ import annotations

import os

ENV = "SALSA_COMPILATION_CACHE"
OFF = ("", "off", "0", "none")
MAX_BYTES = 4 * 2**30


def default_dir() -> str:
    """$XDG_CACHE_HOME/salsa/jax, ~/.cache/salsa/jax without it."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "salsa", "jax")


def enable() -> str | None:
    """Turns the cache on in this process; the folder in use, or None when SALSA_COMPILATION_CACHE turns
    it off. A folder JAX was already given is kept as it is, with JAX's settings."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir:  # JAX_COMPILATION_CACHE_DIR, or the caller's own choice
        return jax.config.jax_compilation_cache_dir
    path = os.environ.get(ENV, default_dir())
    if path.strip().lower() in OFF:
        return None
    compilation_cache.set_cache_dir(path)  # JAX opens the folder at the next compilation
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.config.jax_compilation_cache_max_size < 0:
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path
