"""Extraction at the paper's sizes: CPU seconds per clip, FLOPs and bytes per clip, TPU v4 host estimates.

    PYTHONPATH=. python bench/extract.py --size full [--seconds 10] [--mfu 0.35] [--decode] [--reuse]

Random-weight sao43 VAE, SigLIP 2 So400m and sync model (`salsa.testing.extraction_configs("full")`)
with configs/extract.py's rates and chunk sizes. For each encoder:
- FLOPs and bytes accessed of one call at the clip's shapes, from XLA's cost analysis of the library's
  jitted function compiled for one TPU v4 chip (compile-only, salsa.aot's topology; needs libtpu, the
  `tpu` extra, else it is compiled for this CPU and says so), times the calls one clip takes;
- CPU seconds (user + sys of this process, all threads) and wall seconds of one call on a smaller
  batch (`--image-frames`, `--sync-windows`, `--vae-frames`) after a warm-up call that compiles,
  scaled linearly to the clip's work (frames, snippet windows, latent frames of the VAE's windows);
- a TPU v4 host's clips per second (data_pipelines/extract/throughput.py): the FLOP and byte bounds of
  its 4 chips, and the estimate with the FLOP rate at `--mfu` of peak.
`--decode` also times decoding one 10 s H.264/AAC file (640 x 360, 25 fps) at the encoders' rates and
sizes, and a 32 kHz mono FLAC into 44.1 kHz stereo: the host's share of a clip. `--reuse` takes the
measurements of the last results file of the same clip length and chunks (compiling the four encoders
for a TPU takes minutes of CPU) and takes only what it lacks. The 1-minute load average before and after
is recorded.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import extract as extract_config
from data_pipelines.extract import throughput
from salsa import bundle, testing
from salsa.inference import codec, encoders, windows
from salsa.io import write_json
from salsa.models.encoders import siglip2
from salsa.models.encoders import sync as sync_lib
from salsa.models.vae import model as vae_lib

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "extract_full.json")
ENCODERS = ("vae", "siglip_image", "siglip_text", "sync")
OWNER = {"vae": "vae", "siglip_image": "siglip", "siglip_text": "siglip", "sync": "sync"}  # the model
ROWS = {"video clip": ENCODERS, "audio-text clip": ("vae", "siglip_text")}


def clip_calls(config, vae_c, siglip_c, sync_c, seconds: float) -> dict[str, dict]:
    """Per encoder: the calls extraction makes on one clip of `seconds`, the input of each call
    (shape, dtype) and the work they cover (VAE latent frames, frames, texts, snippet windows)."""
    chunks, video = config.chunks, config.video
    latents = math.ceil(seconds * vae_c.sample_rate / vae_c.hop)
    spans = list(windows.spans(latents, chunks.vae_frames, vae_lib.receptive_radius(vae_c)[0]))
    window = spans[0][1] - spans[0][0]
    t8, t24 = round(seconds * video.semantic_fps), round(seconds * video.sync_fps)
    snippets = len(windows.starts(t24, sync_c.snippet_frames, chunks.sync_hop))
    image_calls, sync_calls = math.ceil(t8 / chunks.semantic), math.ceil(snippets / chunks.sync)
    side, sync_side = siglip_c.image_size, sync_c.video.image_size
    return {
        "vae": dict(calls=len(spans), shape=(1, window * vae_c.hop, vae_c.audio_channels),
                    dtype=jnp.float32, work=len(spans) * window),
        "siglip_image": dict(calls=image_calls, shape=(chunks.semantic, side, side, 3), dtype=jnp.uint8,
                             work=image_calls * chunks.semantic),
        "siglip_text": dict(calls=1, shape=(1, siglip_c.text_len), dtype=jnp.int32, work=1),
        "sync": dict(calls=sync_calls, shape=(chunks.sync, sync_c.snippet_frames, sync_side, sync_side, 3),
                     dtype=jnp.uint8, work=sync_calls * chunks.sync),
    }  # fmt: skip


def _bodies(siglip_c, dtype: str) -> dict:
    """The library's jitted per-call functions, unwrapped: what extraction compiles for each encoder, the
    encoders computing in `dtype`."""
    return {
        "vae": codec._encode_window.__wrapped__,
        "siglip_image": lambda m, x: encoders._image_chunk.__wrapped__(
            m, x, siglip_c.image_size, None, dtype
        ),
        "siglip_text": lambda m, x: encoders._text.__wrapped__(m, x, dtype),
        "sync": lambda m, x: encoders._sync_windows.__wrapped__(m, x, dtype),
    }


def cost_devices():
    """(device to compile the cost analysis for, its name): one TPU v4 chip, or this CPU without libtpu."""
    try:
        from salsa.aot import topology_devices

        return topology_devices("v4-8")[0], "tpu v4 (compile-only)"
    except Exception as e:  # no libtpu, or a libtpu that cannot describe the slice
        print(f"no TPU topology ({type(e).__name__}: {e}); cost analysis compiled for this CPU")
        return jax.devices("cpu")[0], "cpu"


def call_cost(body, model: nnx.Module, shape, dtype, device) -> throughput.Cost:
    """FLOPs and bytes accessed of `body(model, x)` for x of `shape`, compiled for `device` (shapes only:
    `model` may be abstract)."""
    graphdef, state = nnx.split(model)
    on = jax.sharding.SingleDeviceSharding(device)
    state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=on), state)
    x = jax.ShapeDtypeStruct(shape, dtype, sharding=on)
    compiled = jax.jit(lambda s, x: body(nnx.merge(graphdef, s), x)).lower(state, x).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return throughput.Cost(float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)))


def compiled_costs(plan: dict, classes: dict, siglip_c, dtype: str) -> tuple[dict, str]:
    """Per encoder: calls per clip, their input and the FLOPs and bytes of a clip's calls (shapes only: no
    weights in memory); and the backend they were compiled for."""
    device, backend = cost_devices()
    bodies, rows = _bodies(siglip_c, dtype), {}
    for name in ENCODERS:
        cls, c = classes[OWNER[name]]
        start, calls = time.process_time(), plan[name]["calls"]
        cost = call_cost(
            bodies[name], bundle.abstract(cls, c), plan[name]["shape"], plan[name]["dtype"], device
        )
        rows[name] = {"calls_per_clip": calls, "call_input": list(plan[name]["shape"]),
                      "flops_per_clip": cost.flops * calls, "bytes_per_clip": cost.bytes * calls,
                      "cost_compile_cpu_s": time.process_time() - start}  # fmt: skip
        print(f"{name}: {calls} calls of {plan[name]['shape']}: {cost.flops * calls:.3e} FLOPs per clip")
    return rows, backend


def _timed(fn) -> dict[str, float]:
    """CPU and wall seconds of `fn()` after one warm-up call (which compiles)."""
    fn()
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def probe(name: str, model, config, plan: dict, args, rng) -> dict:
    """Times one smaller call of encoder `name` through the library's public function; returns its CPU
    and wall seconds, the work it covered and the factor that scales it to one clip."""
    chunks, dtype = config.chunks, encoders.compute_dtype(config)
    if name == "vae":
        n = args.vae_frames
        audio = rng.uniform(-0.5, 0.5, (n * model.config.hop, model.config.audio_channels)).astype(np.float32)
        t = _timed(lambda: codec.encode(model, audio, n))
    elif name == "siglip_image":
        n = args.image_frames
        frames = rng.integers(0, 256, (n, *plan["shape"][1:]), np.uint8)
        t = _timed(lambda: encoders.semantic(model, frames, n, dtype=dtype))
    elif name == "siglip_text":
        n = 1
        tokens = rng.integers(0, model.config.vocab_size, plan["shape"], np.int32)
        t = _timed(lambda: encoders.text(model, tokens, dtype))
    else:
        n = args.sync_windows
        win, hop = model.config.snippet_frames, chunks.sync_hop
        frames = rng.integers(0, 256, (win + (n - 1) * hop, *plan["shape"][2:]), np.uint8)
        t = _timed(lambda: encoders.sync(model, frames, hop, n, dtype))
    scale = plan["work"] / n
    return {**t, "probe_work": n, "scale": scale, "cpu_s_per_clip": t["cpu_s"] * scale,
            "wall_s_per_clip": t["wall_s"] * scale}  # fmt: skip


def decode_seconds(config, siglip_c, sync_c, seconds: float) -> dict[str, dict[str, float]]:
    """CPU and wall seconds to decode one `seconds` H.264/AAC file (640 x 360, 25 fps, 44.1 kHz stereo)
    into extraction's frames and audio (data_pipelines.extract.sources, folder source), and one 32 kHz
    mono FLAC (WavCaps' format) into 44.1 kHz stereo (the audio-text source's work)."""
    from data_pipelines.extract import sources
    from data_pipelines.media import decode_audio
    from data_pipelines.media.encode import write_audio, write_video

    n = round(seconds * 25)
    y, x = np.mgrid[0:360, 0:640]
    frames = np.stack([((x + y + 7 * k) % 256).astype(np.uint8) for k in range(n)])  # a moving ramp
    frames = np.repeat(frames[..., None], 3, axis=-1)
    t = np.arange(round(seconds * 44100)) / 44100
    audio = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    decoding = sources.Decoding(
        semantic_fps=config.video.semantic_fps, sync_fps=config.video.sync_fps,
        semantic_size=siglip_c.image_size, sync_size=sync_c.video.image_size,
        sample_rate=config.audio.sample_rate, channels=config.audio.channels,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        write_video(os.path.join(tmp, "clip.mp4"), frames, 25.0, audio.astype(np.float32), 44100)
        source = sources.make({"kind": "folder", "dir": tmp})
        video = _timed(lambda: sources.trim(source.load(0, decoding), decoding))
        flac = os.path.join(tmp, "clip.flac")
        mono = 0.3 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * 32000)) / 32000)
        write_audio(flac, mono[:, None].astype(np.float32), 32000)
        sound = _timed(lambda: decode_audio(flac, config.audio.sample_rate, config.audio.channels))
    return {"video_clip": video, "audio_clip": sound}


def previous(args, config) -> dict | None:
    """The last results file, when `--reuse` is given and it measured the same clip length and chunks."""
    if not (args.reuse and os.path.exists(RESULTS)):
        return None
    with open(RESULTS) as f:
        old = json.load(f)
    if old["clip_seconds"] != args.seconds or old["chunks"] != config.chunks.to_dict():
        print(f"{RESULTS} measured another clip length or chunks; measuring again")
        return None
    return old


def run(args) -> dict:
    config = extract_config.get_config()
    vae_c, siglip_c, sync_c = testing.extraction_configs("full")
    plan = clip_calls(config, vae_c, siglip_c, sync_c, args.seconds)
    classes = {
        "vae": (vae_lib.VAE, vae_c),
        "siglip": (siglip2.Siglip, siglip_c),
        "sync": (sync_lib.SyncModel, sync_c),
    }
    load_before = os.getloadavg()[0]
    old = previous(args, config)
    if old is None:
        rows, cost_backend = compiled_costs(plan, classes, siglip_c, encoders.compute_dtype(config))
    else:
        rows, cost_backend = old["encoders"], old["cost_backend"]
    measured = old is None  # the load average belongs to the run that measured something
    rng = np.random.default_rng(0)
    for part in ("vae", "siglip", "sync"):  # one full-size model in memory at a time
        names = [n for n in ENCODERS if OWNER[n] == part]
        if args.skip_cpu or all("cpu" in rows[n] for n in names):
            continue
        cls, c = classes[part]
        model = bundle.build(cls, c, seed=0)
        measured = True
        for name in names:
            rows[name]["cpu"] = probe(name, model, config, plan[name], args, rng)
            print(f"{name}: {rows[name]['cpu']['cpu_s_per_clip']:.1f} CPU s per clip")
        del model
    decode = old and old.get("decode_s_per_clip")
    if args.decode and not decode:
        decode, measured = decode_seconds(config, siglip_c, sync_c, args.seconds), True
    estimates = {}
    for label, names in {**{n: (n,) for n in ENCODERS}, **ROWS}.items():
        costs = [throughput.Cost(rows[n]["flops_per_clip"], rows[n]["bytes_per_clip"]) for n in names]
        estimates[label] = throughput.host_rate(costs, mfu=args.mfu)
    return {
        "weights": "random (speed does not depend on values)",
        "clip_seconds": args.seconds,
        "chunks": config.chunks.to_dict(),
        "cost_backend": cost_backend,
        "mfu": args.mfu,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "encoders": rows,
        "decode_s_per_clip": decode,
        "v4_host_clips_per_s": estimates,
        "load_average_1min": [load_before, os.getloadavg()[0]] if measured else old["load_average_1min"],
    }


def table(doc: dict) -> str:
    """The results as one markdown table (per encoder, then the video and audio-text clips)."""
    rows, est = doc["encoders"], doc["v4_host_clips_per_s"]
    lines = [
        f"| per {doc['clip_seconds']:g} s clip | CPU s | GFLOP | GB accessed | v4 host clips/s: FLOPs bound "
        f"| bytes bound | at MFU {doc['mfu']:.2f} |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in (*ENCODERS, *ROWS):
        names = ROWS.get(label, (label,))
        cpu = [rows[n].get("cpu", {}).get("cpu_s_per_clip") for n in names]
        cpu_s = "-" if None in cpu else f"{sum(cpu):.1f}"
        flops = sum(rows[n]["flops_per_clip"] for n in names) / 1e9
        gb = sum(rows[n]["bytes_per_clip"] for n in names) / 1e9
        e = est[label]
        bounds = f"{e['flops_bound']:.1f} | {e['bytes_bound']:.1f} | {e['estimate']:.1f}"
        lines.append(f"| {label} | {cpu_s} | {flops:,.0f} | {gb:,.1f} | {bounds} |")
    return "\n".join(lines)


def main(args) -> None:
    doc = run(args)
    print(table(doc))
    for kind, d in (doc["decode_s_per_clip"] or {}).items():
        print(f"decoding one {kind.replace('_', ' ')}: {d['cpu_s']:.2f} CPU s ({d['wall_s']:.2f} s wall)")
    print(f"cost analysis: {doc['cost_backend']}; load {doc['load_average_1min'][0]:.1f} -> "
          f"{doc['load_average_1min'][1]:.1f}")  # fmt: skip
    write_json(RESULTS, doc)
