"""librosa's compiled functions, written to numba's disk cache by one process before others start.

librosa compiles its gufuncs (peak picking, local extrema, zero crossings, pitch tracking) with numba
when its modules are first imported, and caches the machine code beside its sources. Two processes that
compile them at once on a cold cache can leave a gufunc's two cache files (the function and its
`guf-` wrapper) from different processes (numba issue #10128), and from then on every call to it
crashes the interpreter with a segmentation fault, in every run, until the files are deleted. Measured
on the 2-core machine: two cold imports at once, then a third process detecting onsets, 1 crash in 8.

The main job runs stages two at a time, and both processes of the first wave import librosa in their
first seconds (the VAE stage's onset-flux loss, the sync stage's log-mel front end), as pytest's
workers do when they collect the tests. `warm()`, called by the parent before it starts the others,
imports those modules once: the cache is complete before another process reads it, and the others only
load it.

A cache that an earlier run left broken is not mended by this: its symptom is a segmentation fault in
`numba/np/ufunc/gufunc.py`; delete the files (`find "$(python -c 'import librosa, os;
print(os.path.dirname(librosa.__file__))')" -name '*.nb[ic]' -delete`) and run again.
"""

from __future__ import annotations

# The librosa modules that define gufuncs our code reaches (salsa.metrics, the onset-flux loss and the
# log-mel front ends import librosa.filters, .feature and .onset, which import all three).
MODULES = ("librosa.util.utils", "librosa.core.audio", "librosa.core.pitch")


def warm() -> None:
    """Imports MODULES (compiling and caching their gufuncs when the cache is cold; loading it otherwise)."""
    import importlib

    for name in MODULES:
        importlib.import_module(name)
