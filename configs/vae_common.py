"""Settings shared by the VAE configs (vae_tiny, vae_sao43). Loss weights follow Stable Audio Open's
autoencoder recipe (MRSTFT 1, adversarial 0.1, feature matching 5, KL 1e-4)."""

import ml_collections

from configs.common import SHARDING_RULES


def vae_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.task = "vae"
    c.seed = 0
    c.audio = dict(sample_rate=44100, channels=2)
    # overrides: VAEConfig fields, e.g. {"latent_dim": 32}; initial_posterior_std: 0 keeps softplus(0)
    c.vae = dict(variant="sao43", overrides={}, initial_posterior_std=0.0)
    c.init_bundle = ""
    c.crop_samples = 65536
    c.loss = dict(
        stft=1.0,
        kl=1e-4,
        adversarial=0.1,
        feature_matching=5.0,
        adversarial_start=0,  # step from which the discriminator trains and the GAN terms count
        stft_n_ffts=(2048, 1024, 512, 256, 128, 64, 32),
        # Onset-flux term (salsa/objectives/onset_flux.py): the onset detector's envelope, relative L1;
        # windows of onset_window_s every onset_hop_s over onset_mels mel bands. 0: off.
        onset_flux=0.0,
        onset_window_s=0.02,
        onset_hop_s=0.005,
        onset_mels=64,
    )
    c.disc = dict(n_ffts=(2048, 1024, 512, 256, 128), filters=32, lr=3e-4)
    c.optim = dict(
        name="adam", lr=1.5e-4, b1=0.8, b2=0.99, warmup_steps=0, grad_clip=1.0, ema=0.0, schedule="constant"
    )
    c.batch_size = 32
    c.total_steps = 1_000_000
    c.log_every = 100
    c.checkpoint_every = 5000
    c.keep_checkpoints = 3
    # Steps with non-finite inputs, loss or gradients are skipped; this many in a row stop training.
    c.max_consecutive_skips = 10
    # source: 'synthetic' (rendered on the fly, `clips` clips of `world_seconds`) or a folder of audio files
    c.data = dict(
        source="synthetic",
        clips=4096,
        world_seconds=8.0,
        world_seed=0,
        shuffle_seed=0,
        worker_count=0,
        crop_tries=1,  # >1: each crop is the loudest of this many random windows (skips silence)
    )
    c.stats_clips = 256
    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.sharding_rules = SHARDING_RULES
    return c
