"""Feature extraction from real videos for the full-size generator (configs/generator.py geometry).

    python -m data_pipelines.extract --config=configs/extract.py --workdir=OUT \
        --config.source.dir=VIDEOS --config.components.vae=VAE --config.components.siglip=SIGLIP \
        --config.components.sync=SYNC --config.components.tokenizer=tokenizer.json

Sources: `configs/extract.py` (or `:folder`) reads every video under source.dir (optional captions.csv
with `file,caption`); `configs/extract.py:vggsound` reads source.dir in data_pipelines/real/vggsound.py's
manual_dir layout (vggsound.csv + videos/; the label is the caption, or with
source.captions=VGGSound_AudioSetCaps_caption.csv the clip's AudioSetCaps caption where it has one;
source.split="" keeps every row);
`configs/extract.py:audio_text` reads captioned audio without video (WavCaps captions.json or a
captions.csv, data_pipelines/real/audio_text.py) into audio-only records; configs/extract_tiny.py
renders the synthetic world. The audio/video/features sections must equal the generator config's that
will train on the output (docs/extraction.md).
"""

import ml_collections

from configs.generator import base_config


def extract_base(generator: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Extraction settings whose geometry sections are `generator`'s (audio, video, features)."""
    c = ml_collections.ConfigDict()
    c.audio = generator.audio.to_dict()
    c.video = generator.video.to_dict()
    c.features = generator.features.to_dict()
    # Paths of the component bundles (salsa/bundle.py, kind vae, with latent statistics, and
    # salsa/bundle.py kinds "siglip2" and "sync"); tokenizer: a tokenizer.json, or "" for no text.
    c.components = dict(vae="", siglip="", sync="", tokenizer="")
    c.source = dict(kind="folder", dir="")
    c.num_shards = 64  # shard files; several processes split them (process p takes shards s % n == p)
    c.min_seconds = 1.0  # shorter clips (video with audio) are skipped
    # Frames per SigLIP call, sync windows per call and their hop (frames), latent frames per VAE window.
    # Each SigLIP and sync call is split across the process's devices (a TPU v4 host's 4 chips), so
    # semantic and sync should be multiples of the device count; otherwise every device computes the
    # whole call (data_pipelines/extract/components.py).
    c.chunks = dict(semantic=32, sync=8, sync_hop=8, vae_frames=256)
    # Clips decoded by background threads while the current one is encoded (0: in turn). A 10 s video
    # takes ~0.6 CPU s to decode and the encoders ~0.2 s on a v4 host's chips, so 4 keep up (docs/data.md).
    c.decode_ahead = 4
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = extract_base(base_config())
    if arg == "vggsound":
        # captions: AudioSetCaps's caption CSV for VGGSound ("" captions every clip with its label).
        c.source = dict(kind="vggsound", dir="", split="", captions="")
    elif arg == "audio_text":
        c.source = dict(kind="audio_text", dir="", split="")
    elif arg not in (None, "", "folder"):
        raise ValueError(f"configs/extract.py takes 'folder', 'vggsound' or 'audio_text', got {arg!r}.")
    return c
