"""The generator configs: one per size (tiny, small, large), over the paper's settings.

    python -m salsa.train --config=configs/generator.py:large --workdir=...   # as configs/large.py

Rates, feature sizes and the objective follow the paper (§3, A.4); model widths are ours
(DESIGN.md: parameter counts within ±3% of the paper's, widths multiples of 128). The generator network
is built from the config's generator section (salsa.models.generator.model.GeneratorConfig.from_config:
model, audio latent size and rate, video rates, feature sizes). Sizes:

  tiny   trains usefully in minutes on 2 CPU cores: the tiny VAE's audio (configs/vae_tiny.py: 16 kHz
         mono, hop 256 -> 62.5 latent frames/s, 16 channels), the 64-wide tiny SigLIP and sync encoders,
         2 s crops; the tiny pipeline's generator (configs/tiny.py).
  small  paper A.4: 4 joint blocks (first 2 with audio self-attention) + 4 DiT blocks; width 1280 with
         10 heads of 128 and MLP 4096 gives 345.4M parameters (paper: 347M, -0.5%).
  large  paper A.4: 6 joint blocks (first 3 with audio self-attention) + 6 DiT blocks; width 1536 with
         12 heads of 128 and MLP 3072 gives 647.3M parameters (paper: 643M, +0.7%); every width is a
         multiple of 128 for the TPU MXU and the head count divides common tensor-parallel sizes.
"""

import ml_collections

from configs.common import SHARDING_RULES

SIZES = ("tiny", "small", "large")


def base_config() -> ml_collections.ConfigDict:
    """The paper's settings at full-size geometry, before a size is chosen (extraction uses its
    audio/video/features sections)."""
    c = ml_collections.ConfigDict()
    c.task = "generator"
    c.seed = 0

    c.audio = dict(sample_rate=44100, hop=1024, channels=2, latent_dim=64)
    c.video = dict(semantic_fps=8.0, sync_fps=24.0)
    # encoder_dtype: the SigLIP and sync encoders' compute dtype, in extraction and at inference alike
    # (salsa.inference.encoders); bfloat16 on TPU/GPU, float32 on CPU (the tiny size).
    c.features = dict(semantic_dim=1152, sync_dim=768, text_dim=1152, encoder_dtype="bfloat16")
    c.window_s = 10.0  # inference window
    c.context_s = 0.5  # long-form extension context
    c.train_crop_s = 10.0  # training crops (<= 15 s); shorter clips are padded and masked

    c.model = dict(
        width=1024,
        heads=16,
        mlp_dim=4096,
        n_mm=6,
        n_x=3,
        n_dit=6,
        freq_dim=256,  # sinusoidal embedding size for t and d
        rope_theta=10000.0,
        dtype="float32",  # compute dtype: bfloat16 on TPU/GPU, float32 on CPU
        param_dtype="float32",
        # What the backward pass keeps and recomputes (salsa/models/generator/remat.py): "none", "block"
        # (each block's forward again), "dots" (recompute attention and elementwise work only),
        # "projections" (also recompute the adaLN modulation projections).
        remat="none",
        remat_long="",  # a policy for crops longer than remat_limit_s ("": model.remat for all lengths)
        remat_limit_s=0.0,
        attention="xla",  # "xla" anywhere; "cudnn" (GPU, bf16/f16): cuDNN's fused attention kernel
    )

    c.objective = dict(
        sc_fraction=0.25,  # rows with self-consistency targets
        grid=128,  # M: shortcut levels 1, 1/2, ..., 1/M
        ref_fraction=0.25,  # rows with a clean reference span
        # in the rows whose conditions are all null, which train guidance's reference-only branch v(A):
        # None keeps ref_fraction there too (docs/tiny_experiments.md, "FD rises with any reference")
        ref_fraction_unconditional=ml_collections.config_dict.placeholder(float),
        ref_min_tokens=1,
        ref_max_tokens=88,
        # Conditioning dropout to the null embeddings: all of text, semantic and sync together in 10% of
        # rows (trains the unconditional branch, paper A.4), and each alone, independently, in 5% more.
        cond_dropout_joint=0.1,
        cond_dropout=0.05,
        t_logit_mean=0.0,
        t_logit_std=1.0,
        target_clip=4.0,
        # Whose velocities the self-consistency targets are: "ema" (the paper's EMA weights) or "model" (the
        # weights being trained, stop-gradient; for short runs, where the EMA lags: docs/training.md).
        teacher="ema",
        # > 0: classifier-free guidance at this scale baked into training (salsa/objectives/
        # baked_guidance.py): the model learns the guided velocity and samples with one branch per step.
        sc_guidance=0.0,
        sc_guidance_mix=0.75,  # m of SoundVCM Eq. 16: share of the w-scaled target, the rest the teacher's
        # The reference's scale baked in: 1, the reference as context. A baked model samples one branch
        # and cannot tell a user's reference from long-form's previous window, which must stay context.
        sc_guidance_audio=1.0,
    )

    # cfg: the video and text guidance scale (paper A.1: 4). cfg_audio: a user's reference audio's, in
    # v̂ = v(∅) + w_a·(v(A) − v(∅)) + w·(v(A,V,T) − v(A)) (salsa/sampling/guidance.py); long-form's
    # previous window is context, guided at 1 whatever it is. 2 (three branches where a reference is):
    # in the tiny pipeline the clip's own 1 s reference lowers FD (0.77x, separated; at 1 it raised it
    # 1.15x) and keeps onset F1 within its interval (0.97x); the paper's Eq. 3 (cfg_audio = cfg, two
    # branches) lowers FD further (0.28x) at onset F1's cost (0.89x, separated); docs/extend.md.
    c.sampling = dict(steps=8, cfg=4.0, cfg_audio=2.0)

    c.optim = dict(name="adam", lr=1e-4, b1=0.9, b2=0.999, warmup_steps=0, grad_clip=1.0, ema=0.999)
    c.optim.schedule = "constant"  # after the warmup; "cosine": decays to 0 at total_steps
    c.batch_size = 300
    # The step splits its batch into this many micro-batches and accumulates their gradients
    # (salsa/training/step.py): activations scale with batch / micro_batches, the update is the batch's.
    c.micro_batches = 1
    c.micro_batches_long = 0  # for crops longer than model.remat_limit_s (0: micro_batches for all)
    c.total_steps = 1_000_000
    c.log_every = 100
    c.checkpoint_every = 5000
    c.keep_checkpoints = 3
    # Steps with non-finite inputs, loss or gradients are skipped; this many in a row stop training.
    c.max_consecutive_skips = 10

    c.data = dict(dir="", make_toy_if_missing=False, shuffle_seed=0, worker_count=0)
    # Shorter crop lengths (s) besides train_crop_s: each batch is one length bucket, each clip in the
    # shortest that holds it (data_pipelines/features/buckets.py); () is one fixed crop of train_crop_s.
    c.data.buckets = ()
    # A mixture instead of data.dir: {name: dict(dir=FOLDER, weight=W)}, each source's share of rows
    # (data_pipelines/features/sources.py); per-source losses are logged as <name>_loss.
    c.data.sources = {}
    c.data.toy_clips = 512  # size and seed of the toy feature set built when make_toy_if_missing
    c.data.toy_seed = 0

    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.sharding_rules = SHARDING_RULES
    return c


def _tiny(c: ml_collections.ConfigDict) -> None:
    c.audio = dict(sample_rate=16000, hop=256, channels=1, latent_dim=16)
    c.features = dict(semantic_dim=64, sync_dim=64, text_dim=64, encoder_dtype="float32")
    c.train_crop_s = 2.0
    c.window_s = 2.0
    c.context_s = 0.5
    c.model.update(width=64, heads=2, mlp_dim=256, n_mm=2, n_x=1, n_dit=2, freq_dim=64)
    c.batch_size = 32  # the smallest multiple of 4 whose 1/4 self-consistency rows cover all 7 levels
    c.total_steps = 1000
    c.log_every = 25
    c.checkpoint_every = 250
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 50
    c.optim.ema = 0.99
    # 1000 steps are too few for the EMA teacher: on bench/toy_shortcut.py at this batch and length the
    # 1-step distance to data is 0.24 with it and 0.14 with the trained weights, and in the tiny pipeline
    # (three runs each) the 1 / 2-step FD 49.7 / 21.9 against 27.5 / 8.15 (docs/training.md).
    c.objective.teacher = "model"


def _paper(c: ml_collections.ConfigDict, **model) -> None:
    c.model.update(**model)
    # The paper's crops of at most 15 s, in buckets: on the recipe's lengths (docs/data.md) one fixed
    # 15 s crop is 36% padding, these buckets 4% (bench/buckets.py).
    c.train_crop_s = 15.0
    c.data.buckets = (3.0, 6.0, 10.0)
    c.model.dtype = "bfloat16"
    # Batch 300 on v4-8 (salsa.aot, docs/performance.md): buckets up to 10 s keep every projection
    # output ("dots": large at 10 s 25.3 GiB of 32, 1.02x the model's FLOPs); the 15 s bucket keeps block
    # inputs only ("block": 25.8 GiB, 1.29x), since "dots" at 15 s needs more than a chip has in one pass.
    # micro_batches_long=3 with remat_long="dots" fits it in 3 passes (18.7 GiB, 1.05x) but reads and
    # writes 21% more HBM by XLA's count (1251 vs 1038 GB per chip); which is faster wants a v4
    # (docs/performance.md).
    c.model.remat = "dots"
    c.model.remat_long = "block"
    c.model.remat_limit_s = 10.0
    c.batch_size = 300
    c.mesh = dict(data=1, fsdp=-1, tensor=1)


def get_config(size: str | None = None) -> ml_collections.ConfigDict:
    """The generator of `size` (one of SIZES)."""
    c = base_config()
    if size == "tiny":
        _tiny(c)
    elif size == "small":
        _paper(c, width=1280, heads=10, mlp_dim=4096, n_mm=4, n_x=2, n_dit=4)
        # Small keeps every projection output at 15 s too: 26.1 GiB of 32 per chip at batch 300 on v4-8
        # (19% headroom), 1.03x the model's FLOPs (docs/performance.md, "Attention on TPU").
        c.model.remat_long = ""
    elif size == "large":
        _paper(c, width=1536, heads=12, mlp_dim=3072, n_mm=6, n_x=3, n_dit=6)
    else:
        raise ValueError(f"configs/generator.py takes a size, one of {', '.join(SIZES)}; got {size!r}.")
    return c
