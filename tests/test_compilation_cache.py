"""salsa.compilation_cache: the command lines' persistent compilation cache, its folder and its off switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A process that enables the cache after a first compilation (as a command whose imports compiled
# something would), then compiles a program: the folder in use, and the cache hits it saw.
PROGRAM = """
import json
import jax, jax.numpy as jnp
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: name.endswith("cache_hits") and hits.append(name))
jax.jit(lambda x: x * 2 + 1)(jnp.ones(3)).block_until_ready()  # compiled before the cache is on
from salsa import compilation_cache
folder = compilation_cache.enable()
jax.jit(lambda x: jnp.sin(x) * 3 + x @ x.T)(jnp.ones((64, 64))).block_until_ready()
print(json.dumps({"folder": folder, "hits": len(hits)}))
"""


def _run(tmp_path, **env) -> dict:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_COMPILATION", "JAX_PERSISTENT", "SALSA_"))
    }
    clean.update(JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=REPO, **env)
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=clean, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_program_compiled_by_one_process_is_read_back_by_the_next_from_the_user_cache(tmp_path):
    """Default folder $XDG_CACHE_HOME/salsa/jax, written by the first process (even though it compiled
    something before turning the cache on), read back by the second."""
    first = _run(tmp_path)
    assert first["folder"] == str(tmp_path / "xdg" / "salsa" / "jax")
    assert first["hits"] == 0 and os.listdir(first["folder"])
    assert _run(tmp_path)["hits"] >= 1


def test_the_cache_goes_where_salsa_or_jax_says_and_off_writes_nothing(tmp_path):
    """SALSA_COMPILATION_CACHE names the folder or turns the cache off; JAX_COMPILATION_CACHE_DIR, JAX's
    own setting, wins over both."""
    mine = tmp_path / "mine"
    assert _run(tmp_path, SALSA_COMPILATION_CACHE=str(mine))["folder"] == str(mine) and os.listdir(mine)
    assert _run(tmp_path, SALSA_COMPILATION_CACHE="off") == {"folder": None, "hits": 0}
    assert not (tmp_path / "xdg").exists()
    jax_own = tmp_path / "jax_own"
    got = _run(tmp_path, SALSA_COMPILATION_CACHE="off", JAX_COMPILATION_CACHE_DIR=str(jax_own))
    assert got["folder"] == str(jax_own)
