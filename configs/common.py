"""Settings shared by the generator configs (tiny, small, large).

Rates, feature sizes and the objective follow the paper (§3, A.4); model widths are ours
(DESIGN.md: parameter counts within ±3% of the paper's, widths multiples of 128).
"""

import ml_collections

# Sharding rules: logical axis name -> mesh axis (or axes). One table for every model.
SHARDING_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("length", None),
    ("features", None),
)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "generator"
    c.seed = 0

    c.audio = dict(sample_rate=44100, hop=1024, channels=2, latent_dim=64)
    c.video = dict(semantic_fps=8.0, sync_fps=24.0)
    c.features = dict(semantic_dim=1152, sync_dim=768, text_dim=1152)
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
        remat=False,  # rematerialise each block in the backward pass
    )

    c.objective = dict(
        sc_fraction=0.25,  # rows with self-consistency targets
        grid=128,  # M: shortcut levels 1, 1/2, ..., 1/M
        ref_fraction=0.25,  # rows with a clean reference span
        ref_min_tokens=1,
        ref_max_tokens=88,
        # Conditioning dropout to the null embeddings: all of text, semantic and sync together in 10% of
        # rows (trains the unconditional branch, paper A.4), and each alone, independently, in 5% more.
        cond_dropout_joint=0.1,
        cond_dropout=0.05,
        t_logit_mean=0.0,
        t_logit_std=1.0,
        target_clip=4.0,
        # > 0: classifier-free guidance at this scale baked into training (salsa/objectives/
        # baked_guidance.py): the model learns the guided velocity and samples with one branch per step.
        sc_guidance=0.0,
        sc_guidance_mix=0.75,  # m of SoundVCM Eq. 16: share of the w-scaled target, the rest the teacher's
    )

    c.sampling = dict(steps=8, cfg=4.0)

    c.optim = dict(name="adam", lr=1e-4, b1=0.9, b2=0.999, warmup_steps=0, grad_clip=1.0, ema=0.999)
    c.batch_size = 300
    c.total_steps = 1_000_000
    c.log_every = 100
    c.checkpoint_every = 5000
    c.keep_checkpoints = 3

    c.data = dict(dir="", make_toy_if_missing=False, shuffle_seed=0, worker_count=0)
    c.data.toy_clips = 512  # size and seed of the toy feature set built when make_toy_if_missing
    c.data.toy_seed = 0

    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.sharding_rules = SHARDING_RULES
    return c
