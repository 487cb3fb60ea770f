"""The pipeline checkpoint: everything generation needs, in one folder, and the Python API over it.

    DIR/pipeline.json   {"format": 1, "generator_config": {...},
                         "components": {"generator": "generator", "vae": "vae", "siglip": "siglip",
                                        "sync": "sync", "tokenizer": "tokenizer.json" | null}}
    DIR/generator/      salsa.bundle bundle, kind "generator" (EMA parameters)
    DIR/vae/            VAE bundle (salsa.vae_bundle, with latent statistics)
    DIR/siglip/         bundle kind "siglip2";  DIR/sync/  bundle kind "sync"
    DIR/tokenizer.json  optional (Hugging Face `tokenizers` format)

Written atomically by `save`, the generator task's export and `python -m salsa.pipeline assemble`;
read by `load`, `salsa.extend` and notebooks:

    p = pipeline.load("ckpt")
    frames8, frames24 = p.read_video("clip.mp4")
    out = p.extend(frames8, frames24, text="rain on a tin roof", steps=8, seed=0)
    out.audio  # (samples, channels) at p.sample_rate; out.latents (frames, latent_dim), normalized
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator, Sequence

import jax
import ml_collections
import numpy as np

from salsa import bundle, vae_bundle
from salsa.inference import codec as vae_codec
from salsa.inference import editing, encoders, long_form
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig
from salsa.models.encoders.sync import SyncConfig, SyncModel
from salsa.models.generator.model import Generator, GeneratorConfig
from salsa.models.vae.model import VAE
from salsa.sampling import guidance as guidance_lib
from salsa.sampling.euler import check_steps
from salsa.sampling.guidance import Guidance

FORMAT = 1
FILE = "pipeline.json"
NAMES = {"generator": "generator", "vae": "vae", "siglip": "siglip", "sync": "sync"}
TOKENIZER = "tokenizer.json"


class PipelineError(ValueError):
    """A pipeline checkpoint (or a part of one) is missing, unreadable or inconsistent; one sentence."""


@dataclasses.dataclass
class Result:
    """audio (samples, channels) float32 at sample_rate; latents (frames, latent_dim), normalized with
    the VAE's statistics (the generator's space, as in feature records)."""

    audio: np.ndarray
    latents: np.ndarray
    sample_rate: int


@dataclasses.dataclass
class Pipeline:
    config: ml_collections.ConfigDict
    generator: Generator
    vae: VAE
    vae_stats: dict[str, np.ndarray]
    siglip: Siglip
    sync: SyncModel
    tokenizer: str | None
    directory: str

    @property
    def sample_rate(self) -> int:
        return int(self.config.audio.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.config.audio.channels)

    @property
    def frame_sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(height, width) of the 8 fps frames (SigLIP) and of the 24 fps frames (sync encoder)."""
        s, v = self.siglip.config.image_size, self.sync.config.video.image_size
        return (s, s), (v, v)

    def read_video(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """(frames at video.semantic_fps, frames at video.sync_fps) of a file, sized for the encoders."""
        from data_pipelines.media import decode_video

        size8, size24 = self.frame_sizes
        v = self.config.video
        return decode_video(path, v.semantic_fps, size8), decode_video(path, v.sync_fps, size24)

    def text_features(self, text: str) -> np.ndarray:
        """(text_dim,) SigLIP text embedding; PipelineError when the checkpoint has no tokenizer."""
        if self.tokenizer is None:
            raise PipelineError(
                f"{self.directory}: the checkpoint has no tokenizer.json, so it cannot take a text prompt."
            )
        tokens = encoders.tokenize(self.tokenizer, [text], self.siglip.config.text_len)
        return encoders.text(self.siglip, tokens)[0]

    def reference_latents(self, audio: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """(frames, latent_dim) normalized latents of reference audio (samples, channels) or (samples,),
        resampled from `sample_rate` (default: the VAE's) and mixed to the VAE's channel count."""
        audio = np.asarray(audio, np.float32)
        audio = audio[:, None] if audio.ndim == 1 else audio
        if audio.ndim != 2 or audio.shape[0] == 0:
            raise ValueError(
                f"reference audio must be (samples, channels) with samples > 0, got {audio.shape}."
            )
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if rate != self.sample_rate:
            from scipy import signal

            g = math.gcd(rate, self.sample_rate)
            audio = signal.resample_poly(audio, self.sample_rate // g, rate // g, axis=0).astype(np.float32)
        if audio.shape[1] != self.channels:
            audio = np.repeat(audio.mean(1, keepdims=True), self.channels, axis=1)
        return vae_codec.normalize(vae_codec.encode(self.vae, audio), self.vae_stats)

    def stream(
        self,
        frames8,
        frames24,
        *,
        text: str | None = None,
        reference: np.ndarray | None = None,
        reference_at: float = 0.0,
        reference_rate: int | None = None,
        references: Sequence[tuple[np.ndarray, float]] = (),
        seconds=None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like `extend`, yielding (audio, new latents) pieces window by window, in order."""
        if guidance is not None and cfg is not None:
            raise ValueError(f"give guidance ({guidance}) or cfg ({cfg:g}), not both.")
        guidance = guidance if guidance is not None else self.guidance(cfg)
        geo = long_form.geometry(self.config, window_s, context_s)
        clip = self.clip(
            frames8, frames24, text, reference, reference_at, reference_rate, seconds, seed, geo, references
        )
        steps = self.sampling(steps)[0]
        events = long_form.run(self, [clip], geo=geo, steps=steps, guidance=guidance)
        for _, audio, latents, _ in decode_windows(self, events, geo):
            yield audio, latents

    def extend(self, frames8, frames24, **kw) -> Result:
        """Audio for a video of any length by iterative extension (module docstring of long_form).

        frames8 / frames24: (T, H, W, 3) uint8 at the config's semantic and sync rates (`read_video`).
        text: a prompt (needs the tokenizer). reference: audio (samples, channels) kept clean from
        `reference_at` seconds, at `reference_rate` Hz (default the VAE's), at most one window long;
        references: several such (audio, seconds) pairs, none overlapping another.
        seconds: the video's duration (default len(frames24) / sync_fps). guidance: a
        sampling.guidance.Guidance (per-condition scales) or cfg: one scale for all (`Pipeline.guidance`).
        steps, guidance, window_s, context_s default to the config's.
        """
        pieces = list(self.stream(frames8, frames24, **kw))
        audio = np.concatenate([p[0] for p in pieces])
        return Result(audio, np.concatenate([p[1] for p in pieces]), self.sample_rate)

    def generate(self, frames8, frames24, **kw) -> Result:
        """Audio for a video no longer than one window (config.window_s); ValueError if longer."""
        window = kw.get("window_s") or self.config.window_s
        seconds = kw.get("seconds") or len(frames24) / self.config.video.sync_fps
        if seconds > window + 1e-6:
            raise ValueError(
                f"the video lasts {seconds:g} s, longer than one {window:g} s window; use extend."
            )
        return self.extend(frames8, frames24, **kw)

    def inpaint(self, frames8, frames24, reference: np.ndarray, at: float = 0.0, **kw) -> Result:
        """`generate` around a clean reference span: `reference` audio placed at `at` seconds."""
        return self.generate(frames8, frames24, reference=reference, reference_at=at, **kw)

    def clip(
        self,
        frames8,
        frames24,
        text,
        reference,
        reference_at,
        reference_rate,
        seconds,
        seed,
        geo,
        references: Sequence[tuple[np.ndarray, float]] = (),
    ) -> long_form.Clip:
        """The long_form.Clip for these inputs (text and references encoded here); ValueError naming a
        reference that is longer than a window, placed before 0 s, or overlapping another."""
        pairs = [*references, *([] if reference is None else [(reference, reference_at)])]
        spans = []
        for audio, at in pairs:
            z = self.reference_latents(audio, reference_rate)
            if z.shape[0] > geo.latents:
                raise ValueError(
                    f"the reference at {at:g} s lasts {z.shape[0] / geo.latent_rate:.2f} s, longer than the "
                    f"{geo.window_s:g} s window; use a reference of at most one window."
                )
            if at < 0:
                raise ValueError(f"a reference at {at:g} s is not accepted; use a time >= 0 s.")
            spans.append((round(at * geo.latent_rate), z, at))
        spans.sort(key=lambda span: span[0])
        for (a0, z0, at0), (a1, _, at1) in zip(spans, spans[1:], strict=False):
            if a1 < a0 + len(z0):
                raise ValueError(
                    f"the references at {at0:g} s ({len(z0) / geo.latent_rate:.2f} s long) and at {at1:g} s "
                    "overlap; place them apart."
                )
        return long_form.Clip(
            frames8=frames8,
            frames24=frames24,
            key=jax.random.key(seed),
            seconds=seconds,
            text=None if text is None else self.text_features(text),
            references=[(a, z) for a, z, _ in spans],
        )

    def regenerate(
        self,
        frames8,
        frames24,
        audio: np.ndarray,
        ranges: Sequence[tuple[float, float]],
        *,
        audio_rate: int | None = None,
        text: str | None = None,
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Result:
        """The video's own `audio` (samples, channels) at `audio_rate` (default the VAE's), kept as VAE
        latents, with the time `ranges` [(start_s, end_s), ...] generated anew (salsa.inference.editing).
        ValueError naming a range that is reversed, outside the video, overlapping another or longer
        than a window minus its context. seconds: the video's duration (default len(frames24) /
        sync_fps); the rest as for `extend`."""
        events, geo = self.edit_events(
            frames8,
            frames24,
            audio,
            ranges,
            audio_rate=audio_rate,
            text=text,
            seconds=len(frames24) / self.config.video.sync_fps if seconds is None else seconds,
            seed=seed,
            steps=steps,
            guidance=guidance,
            cfg=cfg,
            window_s=window_s,
            context_s=context_s,
        )
        pieces = [(a, z) for _, a, z, _ in decode_windows(self, events, geo)]
        return Result(
            np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces]), self.sample_rate
        )

    def edit_events(
        self,
        frames8,
        frames24,
        audio: np.ndarray,
        ranges: Sequence[tuple[float, float]],
        *,
        seconds: float,
        audio_rate: int | None = None,
        text: str | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
        index: int = 0,
        timings: dict | None = None,
    ) -> tuple[Iterator[long_form.Window], long_form.Geometry]:
        """(window events, geometry) of `regenerate`; the ranges and settings are checked here, before
        any event is made."""
        if guidance is not None and cfg is not None:
            raise ValueError(f"give guidance ({guidance}) or cfg ({cfg:g}), not both.")
        guidance = guidance if guidance is not None else self.guidance(cfg)
        geo = long_form.geometry(self.config, window_s, context_s)
        steps = self.sampling(steps)[0]
        check_steps(steps, self.config.objective.grid)
        windows = editing.plan(list(ranges), seconds, geo)
        audio = np.asarray(audio, np.float32)
        audio = audio[:, None] if audio.ndim == 1 else audio
        need = math.ceil(seconds * (self.sample_rate if audio_rate is None else audio_rate))
        if audio.shape[0] != need:  # the sound as long as the video: cut, or padded with silence
            audio = np.pad(audio[:need], ((0, max(0, need - audio.shape[0])), (0, 0)))
        kept = self.reference_latents(audio, audio_rate)
        clip = self.clip(frames8, frames24, text, None, 0.0, None, seconds, seed, geo)
        events = editing.run(
            self,
            clip,
            kept,
            windows,
            geo=geo,
            steps=steps,
            guidance=guidance,
            seconds=seconds,
            index=index,
            timings=timings,
        )
        return events, geo

    def sampling(self, steps: int | None = None, cfg: float | None = None) -> tuple[int, float]:
        """(steps, cfg), the config's `sampling` where not given (cfg 1 for a generator trained with
        guidance baked in)."""
        s = self.config.sampling
        if cfg is None:
            cfg = 1.0 if guidance_lib.baked(self.config) else s.cfg
        return int(s.steps if steps is None else steps), float(cfg)

    def guidance(
        self,
        cfg: float | None = None,
        *,
        video: float | None = None,
        text: float | None = None,
        audio: float | None = None,
    ) -> Guidance:
        """The guidance to sample with: `cfg` sets every scale, `video` / `text` / `audio` override one;
        the rest from the config (guidance.from_config: config.sampling, or w = 1 when baked in)."""
        return guidance_lib.from_config(self.config, cfg, video=video, text=text, audio=audio)


def decode_windows(
    p: Pipeline, events: Iterator[long_form.Window], geo: long_form.Geometry, timings: dict | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray, bool]]:
    """(clip, audio, new latents, last) per window event: latents denormalized and decoded by one VAE
    StreamDecoder per clip (equal to decoding the whole sequence at once: no seams), audio cut to the
    clip's duration at its last window."""
    context = vae_codec.receptive_radius(p.vae.config)[1]
    chunk = max(context, geo.latents - 2 * context)  # the first window's audio comes out at once
    decoders: dict[int, vae_codec.StreamDecoder] = {}
    written: dict[int, int] = {}
    timings = timings if timings is not None else {}
    timings.setdefault("vae", 0.0)
    for w in events:
        dec = decoders.setdefault(w.clip, vae_codec.StreamDecoder(p.vae, chunk))
        t0 = time.perf_counter()
        audio = dec.push(vae_codec.denormalize(w.latents, p.vae_stats)) if len(w.latents) else None
        parts = [] if audio is None else [audio]
        if w.last:
            parts.append(dec.finish())
            del decoders[w.clip]
        timings["vae"] += time.perf_counter() - t0
        audio = np.concatenate(parts) if parts else np.zeros((0, p.channels), np.float32)
        done = written.get(w.clip, 0)
        if w.last:  # the latents cover the video rounded up to a whole frame: cut to its duration
            audio = audio[: max(0, round(w.seconds * p.sample_rate) - done)]
        written[w.clip] = done + audio.shape[0]
        yield w.clip, audio, w.latents, w.last


# ---------------------------------------------------------------------------------------------- files


def _config_dict(config) -> dict:
    return json.loads(config.to_json_best_effort())


def _check_dims(config, vae_config, stats, siglip_config, sync_config, where: str) -> None:
    """PipelineError naming the first component whose geometry disagrees with the generator config."""
    a, f, v = config.audio, config.features, config.video
    checks = [
        ("vae sample rate", vae_config.sample_rate, a.sample_rate, "audio.sample_rate"),
        ("vae hop", vae_config.hop, a.hop, "audio.hop"),
        ("vae audio channels", vae_config.audio_channels, a.channels, "audio.channels"),
        ("vae latent_dim", vae_config.latent_dim, a.latent_dim, "audio.latent_dim"),
        ("siglip image width", siglip_config.image.width, f.semantic_dim, "features.semantic_dim"),
        ("siglip text_proj", siglip_config.text_proj, f.text_dim, "features.text_dim"),
        ("sync width", sync_config.video.spatial.width, f.sync_dim, "features.sync_dim"),
        ("sync fps", sync_config.fps, v.sync_fps, "video.sync_fps"),
    ]
    for name, got, want, field in checks:
        if got != want:
            raise PipelineError(f"{where}: {name} is {got} but the generator config's {field} is {want}.")
    if stats is None:
        raise PipelineError(
            f"{where}: the VAE bundle has no latent statistics; add them with `python -m salsa.codec stats`."
        )


def _read_bundle(path: str, kind: str, from_dict):
    try:
        _, cfg, params = bundle.load(path, kind)
        config = from_dict(cfg)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise PipelineError(f"{path}: unreadable {kind} bundle ({_reason(e)}).") from None
    return config, params


def _reason(e: BaseException) -> str:
    return str(e).rstrip(".") or type(e).__name__


def _materialize(cls, config, params: dict, where: str):
    """`cls(config)` holding `params` (checked against the config's shapes); PipelineError otherwise."""
    try:
        model = bundle.abstract(cls, config)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise PipelineError(f"{where}: the config cannot build a {cls.__name__} ({_reason(e)}).") from None
    try:
        return bundle.materialize(cls, config, params, model)
    except ValueError as e:
        raise PipelineError(
            f"{where}: {cls.__name__} parameters do not match its config ({_reason(e)})."
        ) from None


def _read_vae(path: str):
    try:
        return vae_bundle.load(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise PipelineError(f"{path}: unreadable VAE bundle ({_reason(e)}).") from None


def save(
    directory: str | os.PathLike,
    generator_config: ml_collections.ConfigDict,
    generator_params: dict,
    *,
    vae: str,
    siglip: str,
    sync: str,
    tokenizer: str | None = None,
) -> None:
    """Writes the pipeline checkpoint at `directory` from the generator and the component bundles
    (copied in); checks that their dimensions agree first. Nothing appears unless all was written."""
    directory = os.path.abspath(os.fspath(directory))
    vae_config, _, stats, _ = _read_vae(vae)
    siglip_config, _ = _read_bundle(siglip, "siglip2", SiglipConfig.from_dict)
    sync_config, _ = _read_bundle(sync, "sync", SyncConfig.from_dict)
    _check_dims(generator_config, vae_config, stats, siglip_config, sync_config, directory)
    try:
        abstract = bundle.abstract(Generator, GeneratorConfig.from_config(generator_config))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise PipelineError(
            f"{directory}: the generator config cannot build a model ({_reason(e)})."
        ) from None
    try:
        bundle.check_shapes(abstract, generator_params)
    except ValueError as e:
        raise PipelineError(
            f"{directory}: Generator parameters do not match its config ({_reason(e)})."
        ) from None
    if tokenizer is not None and not os.path.isfile(tokenizer):
        raise PipelineError(f"{tokenizer}: no such tokenizer file.")
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    with bundle.atomic_directory(directory) as temp:
        config = _config_dict(generator_config)
        bundle.save(
            os.path.join(temp, NAMES["generator"]), "generator", config, jax.device_get(generator_params)
        )
        for name, src in (("vae", vae), ("siglip", siglip), ("sync", sync)):
            shutil.copytree(src, os.path.join(temp, NAMES[name]))
        if tokenizer is not None:
            shutil.copyfile(tokenizer, os.path.join(temp, TOKENIZER))
        doc = {
            "format": FORMAT,
            "generator_config": config,
            "components": {**NAMES, "tokenizer": TOKENIZER if tokenizer is not None else None},
        }
        with open(os.path.join(temp, FILE), "w") as f:
            json.dump(doc, f, indent=2)


def load(directory: str | os.PathLike) -> Pipeline:
    """The Pipeline stored at `directory`; PipelineError naming the problem when it is missing,
    unreadable, or its parts do not match the generator config."""
    directory = os.fspath(directory)
    path = os.path.join(directory, FILE)
    if not os.path.isdir(directory):
        raise PipelineError(f"{directory}: no such checkpoint folder.")
    if not os.path.isfile(path):
        raise PipelineError(f"{directory}: not a pipeline checkpoint (no {FILE}; make one with `assemble`).")
    try:
        with open(path) as f:
            doc = json.load(f)
        fmt, parts = doc["format"], doc["components"]
        config = ml_collections.ConfigDict(doc["generator_config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PipelineError(f"{path}: unreadable pipeline description ({_reason(e)}).") from None
    if fmt != FORMAT:
        raise PipelineError(f"{path}: format {fmt!r} is not known; this version reads format {FORMAT}.")

    def part(name):
        return os.path.join(directory, parts[name]) if parts.get(name) else None

    vae_config, vae_params, stats, _ = _read_vae(part("vae"))
    siglip_config, siglip_params = _read_bundle(part("siglip"), "siglip2", SiglipConfig.from_dict)
    sync_config, sync_params = _read_bundle(part("sync"), "sync", SyncConfig.from_dict)
    _check_dims(config, vae_config, stats, siglip_config, sync_config, directory)
    _, gen_params = _read_bundle(part("generator"), "generator", ml_collections.ConfigDict)
    generator = _materialize(Generator, GeneratorConfig.from_config(config), gen_params, part("generator"))
    siglip = _materialize(Siglip, siglip_config, siglip_params, part("siglip"))
    sync = _materialize(SyncModel, sync_config, sync_params, part("sync"))
    vae = _materialize(VAE, vae_config, vae_params, part("vae"))
    tokenizer = part("tokenizer")
    if tokenizer is not None and not os.path.isfile(tokenizer):
        raise PipelineError(
            f"{directory}: pipeline.json names {parts['tokenizer']!r} but there is no such file."
        )
    return Pipeline(config, generator, vae, stats, siglip, sync, tokenizer, directory)


def export(config: ml_collections.ConfigDict, params: dict, workdir: str) -> str:
    """Called when generator training ends: writes WORKDIR/pipeline/ from the record folder's
    extraction.json components, or only WORKDIR/pipeline/generator/ when there is none (toy features).
    Returns what was written."""
    out = os.path.join(workdir, "pipeline")
    data = config.data.get("dir") or os.path.join(workdir, "data")
    extraction = os.path.join(data, "extraction.json")
    if os.path.isfile(extraction):
        with open(extraction) as f:
            parts = json.load(f)["components"]
        save(
            out,
            config,
            params,
            vae=parts["vae"],
            siglip=parts["siglip"],
            sync=parts["sync"],
            tokenizer=parts.get("tokenizer"),
        )
        logging.info("exported the pipeline checkpoint to %s", out)
        return out
    gen = os.path.join(out, NAMES["generator"])
    bundle.save(gen, "generator", _config_dict(config), params)
    logging.info(
        "exported the generator bundle to %s; %s has no extraction.json, so the VAE and encoders are not "
        "known: make a pipeline with `python -m salsa.pipeline assemble --generator %s ...`",
        gen,
        data,
        workdir,
    )
    return gen


def _generator_bundle(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params) from a generator bundle or a training workdir that exported one."""
    for candidate in (path, os.path.join(path, "pipeline", NAMES["generator"])):
        if all(os.path.isfile(os.path.join(candidate, f)) for f in ("config.json", "params.npz")):
            return _read_bundle(candidate, "generator", ml_collections.ConfigDict)
    raise PipelineError(
        f"{path}: neither a generator bundle nor a training workdir with pipeline/generator/ in it "
        "(it is written when training ends)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salsa.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assemble", help="build a pipeline checkpoint from its parts")
    a.add_argument("--generator", required=True, help="generator bundle, or a training workdir")
    a.add_argument("--vae", required=True, help="VAE bundle folder (with latent statistics)")
    a.add_argument("--siglip", required=True, help="SigLIP 2 bundle folder")
    a.add_argument("--sync", required=True, help="sync-encoder bundle folder")
    a.add_argument("--tokenizer", help="tokenizer.json (needed for text prompts)")
    a.add_argument("--out", required=True, help="the checkpoint folder to write")
    args = parser.parse_args(argv)
    try:
        config, params = _generator_bundle(args.generator)
        save(
            args.out,
            config,
            params,
            vae=args.vae,
            siglip=args.siglip,
            sync=args.sync,
            tokenizer=args.tokenizer,
        )
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
