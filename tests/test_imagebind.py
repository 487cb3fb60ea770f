"""ImageBind: parity of the vision and audio towers with the `imagebind` package (imagebind-unofficial)
after `salsa.convert imagebind`; the front ends against torch transcriptions of the reference's data
pipeline; the clip protocol; the converter's refusals."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
import types
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("imagebind") is None:
    pytest.skip(
        "imagebind (pip install --no-deps imagebind-unofficial) is not installed", allow_module_level=True
    )


from salsa import bundle, cli  # noqa: E402
from salsa.convert import ConvertError  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.convert.imagebind import config_from_weights, params_from_weights  # noqa: E402
from salsa.models.evaluators import imagebind_frontend as fe  # noqa: E402
from salsa.models.evaluators.imagebind import ImageBind, ImageBindConfig  # noqa: E402
from tests.evaluator_audio import kaldi_mel_banks_torch, realistic_audio  # noqa: E402

SR = 16000
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


# --- the reference -------------------------------------------------------------------------------------


def _stand_ins() -> dict[str, types.ModuleType]:
    """imagebind/__init__.py imports its data pipeline (torchaudio, torchvision, pytorchvideo, decord:
    no wheels for torch 2.13.0 on CPU), and its model files import timm (which needs torchvision) for
    DropPath and trunc_normal_, and iopath and ftfy for the text tokenizer. The model files are imported
    without the package's __init__, with stand-ins for what does not import here: DropPath is the
    identity at inference, trunc_normal_ torch's own; the tokenizer is never built."""
    ib = types.ModuleType("imagebind")
    ib.__path__ = [str(p) for p in importlib.util.find_spec("imagebind").submodule_search_locations]
    out = {"imagebind": ib}
    try:
        importlib.import_module("timm.layers")
    except Exception:
        layers = types.ModuleType("timm.layers")

        class DropPath(torch.nn.Identity):
            def __init__(self, drop_prob: float = 0.0):
                super().__init__()

        layers.DropPath, layers.trunc_normal_ = DropPath, torch.nn.init.trunc_normal_
        out |= {"timm": types.ModuleType("timm"), "timm.layers": layers}
    try:
        importlib.import_module("iopath.common.file_io")
    except Exception:
        file_io = types.ModuleType("iopath.common.file_io")
        file_io.g_pathmgr = None  # only the text tokenizer opens files
        out |= {n: types.ModuleType(n) for n in ("iopath", "iopath.common")} | {
            "iopath.common.file_io": file_io
        }
    if importlib.util.find_spec("ftfy") is None:
        out["ftfy"] = types.ModuleType("ftfy")
    return out


def reference() -> types.ModuleType:
    """imagebind.models.imagebind_model; the stand-ins live in sys.modules only while it imports."""
    name = "imagebind.models.imagebind_model"
    if name not in sys.modules:
        stand_ins = _stand_ins()
        sys.modules.update(stand_ins)
        try:
            importlib.import_module(name)
        finally:
            for n in stand_ins:
                sys.modules.pop(n, None)
    return sys.modules[name]


SMALL = dict(
    vision_embed_dim=160, vision_num_blocks=2, vision_num_heads=2, audio_embed_dim=128, audio_num_blocks=2,
    audio_num_heads=2, out_embed_dim=96, text_embed_dim=32, text_num_blocks=1, text_num_heads=1,
    depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=1, thermal_embed_dim=32, thermal_num_blocks=1,
    thermal_num_heads=1, imu_embed_dim=32, imu_num_blocks=1, imu_num_heads=1,
)  # fmt: skip


def _reference_net(**kw):
    """A randomly initialised ImageBindModel (the released architecture; `kw` shrinks it), eval mode,
    with every LayerNorm and bias randomised too (they start at 1 and 0)."""
    torch.manual_seed(0)
    net = reference().ImageBindModel(**kw).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for name, p in net.named_parameters():
            if p.ndim == 1:
                base = 1.0 if ("norm" in name or "pre_transformer" in name or ".0." in name) else 0.0
                if name.endswith("bias"):
                    base = 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
    return net


# --- the reference's data pipeline, transcribed in torch (imagebind/data.py with pytorchvideo 0.1.5) ----


def _kaldi_fbank(wave: torch.Tensor) -> torch.Tensor:
    """torchaudio.compliance.kaldi.fbank(wave[None], htk_compat=True, sample_frequency=16000,
    use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_length=25,
    frame_shift=10), transcribed operation by operation (torchaudio has no wheel for torch 2.13.0 on
    CPU; bit-equal to torchaudio 2.11.0's on 2 s of realistic_audio, checked once by hand)."""
    frames = wave.unfold(0, 400, 160)
    frames = frames - frames.mean(1, keepdim=True)
    prev = torch.nn.functional.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
    frames = (frames - 0.97 * prev[:, :-1]) * torch.hann_window(400, periodic=False)
    spec = torch.fft.rfft(torch.nn.functional.pad(frames, (0, 112))).abs().pow(2.0)
    banks = torch.nn.functional.pad(
        kaldi_mel_banks_torch(128, 512, 16000.0, 20.0, 8000.0, 100.0, -500.0, 1.0)[0], (0, 1)
    )
    return torch.max(torch.mm(spec, banks.T), torch.tensor(torch.finfo(torch.float).eps)).log()


def _clip_times(duration: float, clips: int) -> list[tuple[Fraction, Fraction]]:
    """pytorchvideo's ConstantClipsPerVideoSampler as imagebind.data.get_clip_timepoints drives it."""
    start = Fraction(max(duration - 2, 0))
    step = Fraction(start, clips)
    return [(step * k, step * k + 2) for k in range(clips)]


def _reference_audio(waveform: np.ndarray) -> torch.Tensor:
    """load_and_transform_audio_data on a (1, samples) 16 kHz recording -> (3, 1, 128, 204)."""
    waveform = torch.tensor(waveform)[None].clone()
    out = []
    for start, end in _clip_times(waveform.size(1) / SR, 3):
        clip = waveform[:, int(start * SR) : int(end * SR)]
        clip -= clip.mean()  # in place on the view, as the reference
        fbank = _kaldi_fbank(clip[0]).transpose(0, 1)
        p = 204 - fbank.size(1)
        fbank = torch.nn.functional.pad(fbank, (0, p)) if p > 0 else fbank[:, :204]
        out.append(((fbank - (-4.268)) / 9.138)[None])
    return torch.stack(out)


def _reference_video(frames: np.ndarray, fps: float) -> torch.Tensor:
    """load_and_transform_video_data on decoded frames (T, H, W, 3) -> (15, 3, 2, 224, 224)."""
    video = torch.tensor(frames).permute(3, 0, 1, 2).float()  # (C, T, H, W), as decord gives it
    clips = []
    for start, end in _clip_times(len(frames) / fps, 5):
        first, stop = math.ceil(fps * start), min(math.ceil(fps * end), len(frames))
        clip = video[:, first:stop]
        idx = torch.linspace(0, clip.shape[1] - 1, 2).clamp(0, clip.shape[1] - 1).long()
        clip = torch.index_select(clip, 1, idx) / 255.0
        c, t, h, w = clip.shape
        size = (int(math.floor(h / w * 224)), 224) if w < h else (224, int(math.floor(w / h * 224)))
        clip = torch.nn.functional.interpolate(clip, size=size, mode="bilinear", align_corners=False)
        clip = (clip - torch.tensor(MEAN)[:, None, None, None]) / torch.tensor(STD)[:, None, None, None]
        clips.append(clip)
    out = []
    for clip in clips:
        h, w = clip.shape[2:]
        y, x = math.ceil((h - 224) / 2), math.ceil((w - 224) / 2)
        for i in range(3):
            yi = (0 if i == 0 else h - 224 if i == 2 else y) if h > w else y
            xi = x if h > w else (0 if i == 0 else w - 224 if i == 2 else x)
            out.append(clip[:, :, yi : yi + 224, xi : xi + 224])
    return torch.stack(out)


def realistic_video(seconds: float, fps: float, h: int, w: int) -> np.ndarray:
    """Moving colour gradients, a bright moving square and noise: (T, h, w, 3) uint8."""
    rng = np.random.default_rng(0)
    t = np.arange(round(seconds * fps))[:, None, None] / fps
    y, x = np.arange(h)[None, :, None] / h, np.arange(w)[None, None, :] / w
    r = 0.5 + 0.5 * np.sin(2 * np.pi * (x + 0.3 * t))
    g = 0.5 + 0.5 * np.cos(2 * np.pi * (y * 2 - 0.2 * t))
    b = 0.5 + 0.5 * np.sin(6 * np.pi * x * y + t)
    v = np.stack(np.broadcast_arrays(r, g, b), -1) + 0.1 * rng.normal(size=(*t.shape[:1], h, w, 3))
    cx = ((0.2 + 0.1 * t[:, 0, 0]) * w).astype(int)
    for i, c in enumerate(cx):
        v[i, h // 3 : h // 3 + h // 5, c : c + w // 6] = 1.0
    return np.clip(v * 255, 0, 255).astype(np.uint8)


def _close(name: str, got, want, tol: float = 1e-4) -> None:
    got, want = np.asarray(got), np.asarray(want)
    err = np.abs(got - want).max()
    print(f"ImageBind {name}: max |error| {err:.2e}, relative {err / np.abs(want).max():.2e}")
    assert got.shape == want.shape and err <= tol * np.abs(want).max()


# --- tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [8.0, 5.0, 1.5])  # the protocol's 8 s; overlapping clips; one short clip
def test_audio_frontend_matches_reference(seconds):
    audio = realistic_audio(SR, seconds)
    got = np.asarray(fe.audio_clips(audio))
    want = np.stack([_reference_audio(a)[:, 0].numpy() for a in audio])
    assert got.shape == (2, 3, 128, 204)
    err = np.abs(got - want)
    print(f"ImageBind audio front end ({seconds} s): max |error| {err.max():.2e}, mean {err.mean():.1e}")
    # float32 FFTs: the error is a fraction of the loud bins' energy, so it shows in the quietest mel
    # bins (ln mel about -15, the lowest bands after the DC removal): a few 1e-4; elsewhere far smaller.
    assert err.max() <= 1e-3 and np.percentile(err, 99.9) <= 1e-4 and err.mean() <= 1e-5


@pytest.mark.parametrize("shape", [(180, 320), (300, 240)])  # landscape (upscaled), portrait (downscaled)
def test_video_frontend_matches_reference(shape):
    frames = realistic_video(8.0, 10.0, *shape)
    got = np.asarray(fe.video_clips(frames, 10.0))
    want = _reference_video(frames, 10.0).permute(0, 2, 3, 4, 1).numpy()  # (15, 2, 224, 224, 3)
    assert got.shape == (15, 2, 224, 224, 3)
    _close(f"video front end {shape}", got, want, tol=1e-5)


def test_clip_protocol():
    assert fe.clip_times(8.0, 3) == [(0, 2), (2, 4), (4, 6)]  # 2 s clips at k (d - 2) / 3
    assert [float(s) for s, _ in fe.clip_times(8.0, 5)] == [0.0, 1.2, 2.4, 3.6, 4.8]
    assert fe.clip_times(1.0, 3) == [(0, 2)] * 3  # short recordings: every clip from the start
    idx = fe.clip_frame_indices(80, 10.0)  # 8 s at 10 fps: each clip's first and last frame
    assert idx.tolist() == [[0, 19], [12, 31], [24, 43], [36, 55], [48, 67]]
    # an integer rate is read as the float the reference's decoder reports (8 s at 25 fps: frame 110)
    assert (fe.clip_frame_indices(200, 25) == fe.clip_frame_indices(200, 25.0)).all()
    assert fe.crop_offsets(224, 398, 224) == [(0, 0), (0, 87), (0, 174)]
    with pytest.raises(ValueError, match="shorter than one Kaldi frame"):
        fe.audio_clips(np.zeros((1, 100), np.float32))


def _convert(net, tmp_path) -> ImageBind:
    torch.save(net.state_dict(), tmp_path / "imagebind.pth")
    argv = ["imagebind", "--src", str(tmp_path / "imagebind.pth"), "--out", str(tmp_path / "b")]
    assert cli.run(convert_cli.main, argv) == 0
    meta = bundle.read(tmp_path / "b", "imagebind").meta
    assert meta["sha256"] == hashlib.sha256((tmp_path / "imagebind.pth").read_bytes()).hexdigest()
    return bundle.from_bundle(str(tmp_path / "b"), "imagebind", ImageBind, ImageBindConfig)


def test_small_imagebind_parity_through_the_converter(tmp_path):
    """2-block towers (vision 160 wide, audio 128 wide) at the released input geometry, on 8 s of video
    (15 clips) and audio (3 clips): every tensor the converter maps takes part in the forward pass."""
    net = _reference_net(**SMALL)
    frames, audio = realistic_video(8.0, 8.0, 180, 320), realistic_audio(SR, 8.0)
    video_in = _reference_video(frames, 8.0)[None]  # (1, 15, 3, 2, 224, 224)
    audio_in = torch.stack([_reference_audio(a) for a in audio])  # (2, 3, 1, 128, 204)
    with torch.no_grad():
        out = net({"vision": video_in, "audio": audio_in})
    want_v = torch.nn.functional.normalize(out["vision"], dim=-1).numpy()
    want_a = torch.nn.functional.normalize(out["audio"], dim=-1).numpy()
    model = _convert(net, tmp_path)
    assert (model.config.vision.heads, model.config.audio.heads, model.config.out_dim) == (2, 2, 96)
    _close("small video embedding", model.embed_video(frames[None], 8.0), want_v)
    _close("small audio embedding", model.embed_audio(audio), want_a)
    # the towers on the reference's own inputs: the models alone, front ends aside
    _close("small vision tower", model.embed_video_clips(video_in.permute(0, 1, 3, 4, 5, 2).numpy()), want_v)
    _close("small audio tower", model.embed_audio_clips(audio_in[:, :, 0].numpy()), want_a)


@pytest.mark.slow  # ~2 min on a shared CPU: 1280- and 768-wide towers, saved, converted, 15 + 3 clips each
def test_released_widths_parity(tmp_path):
    """The released towers' widths, heads and output width (ViT-H vision with 16 heads, ViT-B audio with
    12, 1024-d) with 2 blocks each: the heads the converter infers are the released ones."""
    kw = {**SMALL, "vision_embed_dim": 1280, "vision_num_heads": 16, "audio_embed_dim": 768}
    net = _reference_net(**{**kw, "audio_num_heads": 12, "out_embed_dim": 1024})
    frames, audio = realistic_video(8.0, 8.0, 180, 320), realistic_audio(SR, 8.0, batch=1)
    with torch.no_grad():
        out = net({"vision": _reference_video(frames, 8.0)[None], "audio": _reference_audio(audio[0])[None]})
    model = _convert(net, tmp_path)
    assert (model.config.vision.heads, model.config.audio.heads, model.config.out_dim) == (16, 12, 1024)
    _close("video embedding (released widths)", model.embed_video(frames, 8.0)[None], _unit(out["vision"]))
    _close("audio embedding (released widths)", model.embed_audio(audio), _unit(out["audio"]))


def _unit(x) -> np.ndarray:
    return torch.nn.functional.normalize(x, dim=-1).numpy()


def test_checkpoint_keys_map_onto_the_model():
    """The released architecture's state dict (imagebind_huge, built on the meta device: shapes only)
    gives the released geometry, and every vision and audio tensor lands on a parameter of the right
    shape (checked on the first 2 blocks of each tower: building the abstract 44-block model takes
    JAX ~90 s here, the blocks are alike)."""
    linspace = torch.linspace  # the reference reads drop-path rates with .item(), which meta cannot
    try:
        torch.linspace = lambda *a, **k: linspace(*a, **{**k, "device": "cpu"})
        with torch.device("meta"):
            net = reference().imagebind_huge()
    finally:
        torch.linspace = linspace
    w = {k: np.broadcast_to(np.float32(0), v.shape) for k, v in net.state_dict().items()}
    assert config_from_weights(w, "x.pth") == ImageBindConfig()
    w = {
        k: v
        for k, v in w.items()
        if ".blocks." not in k or k.split(".blocks.")[1].split(".")[0] in ("0", "1")
    }
    c = config_from_weights(w, "x.pth")
    assert c.vision.depth == c.audio.depth == 2 and (c.vision.heads, c.audio.heads) == (16, 12)
    params = params_from_weights(w, c)
    bundle.check_shapes(bundle.abstract(ImageBind, c), params)
    ours = [k for k in w if k.split(".")[1] in ("vision", "audio") and "postprocessors" not in k]
    fused = sum(k.endswith(("in_proj_weight", "in_proj_bias")) for k in ours)
    assert len(bundle.flatten(params)) == len(ours) + 2 * fused  # each in_proj becomes q, k, v


def test_missing_and_wrong_files_are_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert cli.run(convert_cli.main, ["imagebind", "--src", str(tmp_path / "no.pth"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "imagebind_huge.pth" in err
    torch.save({"modality_preprocessors.vision.cls_token": torch.zeros(1, 1, 160)}, tmp_path / "other.pth")
    assert (
        cli.run(convert_cli.main, ["imagebind", "--src", str(tmp_path / "other.pth"), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "--src" in err and "audio.cls_token" in err and "imagebind_huge.pth" in err
    )
    assert not out.exists()
    sd = {k: v for k, v in _reference_net(**SMALL).state_dict().items() if "vision.blocks.1." not in k}
    sd["modality_preprocessors.audio.pos_embedding_helper.pos_embed"] = torch.zeros(1, 100, 128)
    with pytest.raises(
        ConvertError, match="--src 'x.pth': audio positions 100; the released front end needs 229"
    ):
        config_from_weights({k: v.numpy() for k, v in sd.items()}, "x.pth")
