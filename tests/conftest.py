"""Shared fixtures: the tiny generator config and random feature batches shaped like the loader's."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess

# Tests run on the CPU even where libtpu is installed (the `tpu` extra, for salsa.aot); set before
# JAX is imported, and inherited by the subprocesses that tests start.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
from tests.train_cli import COMPILE_CACHE, COMPILE_FLAGS  # noqa: E402  (imports no JAX)

os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {COMPILE_FLAGS}".strip()
# The test processes use the children's persistent compilation cache too: each loop.train call jits its
# state creation and train step anew, and both xdist workers compile the same tiny models (the training
# system's tests, test_faults_steps + test_faults_checkpoints + test_phases, 43 -> 30 CPU s cold).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", COMPILE_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")  # not every eager op

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from configs import generator  # noqa: E402
from salsa import numba_cache  # noqa: E402
from salsa.models.generator.model import Generator, GeneratorConfig  # noqa: E402
from tests import launch_fake  # noqa: E402


def feature_batch(config, batch: int, key: jax.Array, seconds: float | None = None) -> dict[str, jax.Array]:
    """A batch in the training layout, padded to train_crop_s; rows shorter when `seconds` is given."""
    crop = config.train_crop_s
    rate = config.audio.sample_rate / config.audio.hop
    ta, t8, t24 = (math.ceil(crop * r) for r in (rate, config.video.semantic_fps, config.video.sync_fps))
    f = config.features
    k = jax.random.split(key, 4)
    valid_s = crop if seconds is None else seconds

    def mask(n, r):
        return jnp.broadcast_to(jnp.arange(n) < math.ceil(valid_s * r), (batch, n))

    return dict(
        latents=jax.random.normal(k[0], (batch, ta, config.audio.latent_dim)),
        latent_mask=mask(ta, rate),
        semantic=jax.random.normal(k[1], (batch, t8, f.semantic_dim)),
        semantic_mask=mask(t8, config.video.semantic_fps),
        sync=jax.random.normal(k[2], (batch, t24, f.sync_dim)),
        sync_mask=mask(t24, config.video.sync_fps),
        text=jax.random.normal(k[3], (batch, f.text_dim)),
        text_mask=jnp.ones((batch,), bool),
    )


def perturbed_generator(config, seed: int = 0):
    """A tiny Generator whose parameters are all non-zero (a fresh one outputs exactly zero)."""
    with nnx.use_eager_sharding(False):
        model = Generator(GeneratorConfig.from_config(config), nnx.Rngs(seed))
    # adaLN-Zero makes a fresh model output zeros; perturb every parameter to test real paths.
    state = nnx.state(model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(seed + 1), len(jax.tree.leaves(state))))
    nnx.update(model, jax.tree.map(lambda p: p + 0.05 * jax.random.normal(next(keys), p.shape), state))
    return model


# The default run's longest files, longest first (from the run's --durations). With `-n 2 --dist loadfile`
# (README) pytest-xdist hands each worker a whole file at a time, in collection order once its own
# reordering (by number of tests) is off: started first, these cannot leave one worker running a long file
# alone at the end while the other is idle.
LONG_FILES = (
    "tests/test_evaluate.py",
    "tests/test_info_aot.py",
    "tests/test_vae_train.py",
    "tests/test_notebooks.py",
    "tests/test_resume.py",
    "tests/test_extract.py",
    "tests/test_toy_shortcut.py",
    "tests/test_bad_inputs.py",
    "tests/test_baked_guidance.py",
    "tests/test_sync.py",
    "tests/test_multihost.py",
    "tests/test_extend.py",
    "tests/test_generator.py",
    "tests/test_benches.py",
)


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadfile":
        config.option.loadscopereorder = False  # files in the order pytest_collection_modifyitems leaves
    if not hasattr(config, "workerinput"):  # the controller, before xdist starts its workers
        numba_cache.warm()


@pytest.hookimpl(trylast=True)  # after pytest's own reordering (by fixture scope), which keeps files whole
def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    # A stable sort: each file's tests stay together and in their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture
def tiny_config():
    return generator.get_config("tiny")


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A pipeline checkpoint of random-weight tiny components (salsa/testing.py), built once."""
    from salsa import testing

    return testing.random_pipeline(
        str(tmp_path_factory.mktemp("tiny_pipeline")), generator.get_config("tiny")
    )


@pytest.fixture(scope="module")
def pipelines_loaded_once():
    """salsa.extend loads its checkpoint per call, so each call compiles its models anew: with this, a
    module's calls share one load per checkpoint folder (a failed load is not kept)."""
    from salsa.inference import pipeline, soundtrack

    loaded, real = {}, pipeline.load

    def load(path, *args, **kwargs):
        key = os.path.realpath(path)
        if key not in loaded:
            loaded[key] = real(path, *args, **kwargs)
        return loaded[key]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(soundtrack.pipeline, "load", load)
        yield


@pytest.fixture(scope="session")
def trained_sync(tmp_path_factory):
    """(model, config, minutes): the tiny sync model trained with configs/sync_tiny.py, once per session
    for the slow tests that need one that knows timing (minutes of CPU)."""
    import time

    from configs.sync_tiny import get_config
    from salsa import bundle
    from salsa.models.encoders.sync import SyncModel
    from salsa.training import loop
    from salsa.training.tasks.sync import SyncTask

    config = get_config()
    start = time.perf_counter()
    state = loop.train(config, str(tmp_path_factory.mktemp("trained_sync")))
    minutes = (time.perf_counter() - start) / 60
    model = bundle.build(SyncModel, SyncTask(config).model_config)
    bundle.assign(model, jax.device_get(state.params))
    return model, config, minutes


# launch/tpu.sh against a fake gcloud (tests/launch_fake.py): tests/test_launch.py, test_launch_sync.py
@pytest.fixture
def checkout(tmp_path):
    """A git checkout with launch/tpu.sh (and what it sources) and the launch_fake.COMMITTED files, all
    committed."""
    root = tmp_path / "checkout"
    for path, text in launch_fake.COMMITTED.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for path in launch_fake.LAUNCH_FILES:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(launch_fake.REPO, path), root / path)
    launch_fake.run_git(root, "init", "-q")
    launch_fake.run_git(root, "add", ".")
    launch_fake.run_git(
        root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"
    )
    return root


@pytest.fixture
def fake(tmp_path, checkout):
    """Environment with the fake gcloud first on PATH; .calls() reads the logged argv lists."""
    bin_dir, worker_bin, home = tmp_path / "bin", tmp_path / "worker-bin", tmp_path / "worker-home"
    for d in (bin_dir, worker_bin, home):
        d.mkdir()
    (bin_dir / "gcloud").write_text(launch_fake.FAKE_GCLOUD)
    (worker_bin / "python3").write_text(launch_fake.FAKE_PYTHON)
    (worker_bin / "tail").write_text(launch_fake.FAKE_TAIL)
    for exe in (bin_dir / "gcloud", worker_bin / "python3", worker_bin / "tail"):
        exe.chmod(0o755)
    log = tmp_path / "gcloud.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALSA_")}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_GCLOUD_LOG=str(log),
        FAKE_GCLOUD_HOME=str(home),
        FAKE_WORKER_PATH=f"{worker_bin}:{os.environ['PATH']}",
        SALSA_TPU_PROJECT="my-project",
        XDG_CONFIG_HOME=str(tmp_path),
        **launch_fake.GIT_ENV,
    )

    class Fake:
        def __init__(self):
            self.env, self.home, self.log, self.checkout = env, home, log, checkout
            self.script = str(checkout / "launch" / "tpu.sh")

        def run(self, *args, env=None, check=True):
            proc = subprocess.run(
                [self.script, *args],
                env={**self.env, **(env or {})},
                capture_output=True,
                text=True,
                timeout=60,
            )
            if check:
                assert proc.returncode == 0, proc.stderr
            return proc

        def calls(self):
            if not self.log.exists():
                return []
            return [line.split("\x1f") for line in self.log.read_text().splitlines()]

    yield Fake()
    # A trainer a test left running (a failed assertion before its `stop`) is stopped, its group with it.
    pid_file = home / "salsa-train.pid"
    if pid_file.exists() and pid_file.read_text().strip():
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
