"""The bad-input corpus: malformed inputs for every command line, each refused the same way.

Every case must end with exit code 2 and one line on stderr, `error: ...`, containing the words that
name the problem; no traceback, no new file anywhere (no partial output), and every file that was there
before (the inputs, an output the user already had) left byte for byte as it was. Paths with spaces and
non-ASCII names are not bad input: those cases must succeed.

argparse commands run in-process through salsa.cli.run (the tiny pipeline is loaded at most once per
case and most cases stop before loading it); the absl commands (salsa.train, data_pipelines.extract)
share flag names, so they run as subprocesses, a few cases each.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines.media import write_audio, write_video
from data_pipelines.synthetic import render
from salsa import bundle as bundles
from salsa import cli, codec, extend
from salsa import evaluate as evaluate_cli
from salsa.convert import __main__ as convert_main
from salsa.models.vae import model as vae_lib
from tests import train_cli

pytestmark = pytest.mark.usefixtures("pipelines_loaded_once")  # tests/conftest.py

FAST = ["--steps", "1", "--window", "2", "--context", "0.5"]
VAE = vae_lib.VAEConfig(
    encoder_channels=4, decoder_channels=4, latent_dim=4, multiples=(1, 2), strides=(2, 4), audio_channels=1
)


def _video(path, seconds: float, fps: float = 24, audio: bool = False) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (max(1, round(seconds * fps)), 32, 32, 3), np.uint8)
    sound = np.zeros((round(seconds * 16000), 1), np.float32) if audio else None
    write_video(path, frames, fps, sound, 16000 if audio else None)


@pytest.fixture(scope="module")
def media(tmp_path_factory, tiny_pipeline_dir):
    """The inputs every case draws on, made once: {name: path}."""
    d = tmp_path_factory.mktemp("media")
    _video(d / "good.mp4", 2.0)
    _video(d / "voiced.mp4", 2.0, audio=True)
    _video(d / "blink.mp4", 1 / 200, fps=200)  # one frame of 5 ms
    good = (d / "good.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(bytes(range(256)) * 16)
    (d / "garbage.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64))
    write_audio(d / "sound.wav", np.zeros((16000, 1)), 16000)
    import soundfile

    soundfile.write(d / "silence0.wav", np.zeros((0, 1)), 16000)  # a valid WAV of zero samples
    np.save(d / "nan.npy", np.full((5, 4), np.nan, np.float32))
    np.save(d / "z.npy", np.zeros((5, 4), np.float32))
    (d / "notes.txt").write_text("not a folder\n")
    (d / "empty_folder").mkdir()
    (d / "clips").mkdir()  # one clip with sound: a folder salsa.evaluate --real can pair
    shutil.copy(d / "voiced.mp4", d / "clips" / "a.mp4")
    (d / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    vae = d / "vae"
    bundles.save_vae(vae, VAE, bundles.params_of(bundles.build(vae_lib.VAE, VAE, seed=0)))
    paths = {p.name.replace(".", "_"): str(p) for p in d.iterdir()}
    return {
        **paths,
        "ckpt": tiny_pipeline_dir,
        "vae": str(vae),
        "missing": str(d / "nope.mp4"),
        "dir": str(d),
    }


def _snapshot(*folders) -> dict[str, str]:
    """Every file under the folders with a hash of its bytes, and every folder."""
    seen = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            seen.update({os.path.join(root, d): "folder" for d in dirs})
            for name in files:
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    seen[path] = hashlib.sha1(f.read()).hexdigest()
    return seen


E = ["--checkpoint", "{ckpt}"]  # salsa.extend with the tiny pipeline
OUT = ["--out", "{out}/o.mp4"]
GOOD = ["--video", "{good_mp4}", *E, *OUT]

# (command, argv, words the one error line must contain)
CASES = {
    # salsa.extend: media
    "extend missing video": ("extend", ["--video", "{missing}", *E, *OUT], "no such file"),
    "extend empty video": ("extend", ["--video", "{empty_mp4}", *E, *OUT], "empty (0 bytes)"),
    "extend garbage video": ("extend", ["--video", "{garbage_mp4}", *E, *OUT], "not a media file"),
    "extend truncated video": ("extend", ["--video", "{truncated_mp4}", *E, *OUT, *FAST], "truncated.mp4"),
    "extend audio-only file": ("extend", ["--video", "{sound_wav}", *E, *OUT], "has no video stream"),
    "extend one-frame video": ("extend", ["--video", "{blink_mp4}", *E, *OUT, *FAST], "shorter than one"),
    "extend video-only for --keep-audio": (
        "extend",
        [*GOOD, "--keep-audio", "--regenerate", "0.5:1"],
        "has no audio stream",
    ),
    "extend empty folder": (
        "extend",
        ["--video", "{empty_folder}", *E, "--out", "{out}/o"],
        "holds no videos",
    ),
    "extend garbage reference": ("extend", [*GOOD, "--audio", "{garbage_wav}", *FAST], "garbage.wav"),
    "extend missing reference": ("extend", [*GOOD, "--audio", "{missing}", *FAST], "no such file"),
    "extend missing checkpoint": (
        "extend",
        ["--video", "{good_mp4}", "--checkpoint", "{missing}", *OUT],
        "nope",
    ),
    # salsa.extend: outputs
    "extend out is the input": ("extend", ["--video", "{good_mp4}", *E, "--out", "{good_mp4}"], "its input"),
    "extend wav is the input": (
        "extend",
        [*GOOD, "--wav", "{good_mp4}", *FAST],
        "is the input",
    ),
    "extend stream wav is the reference": (
        "extend",
        [*GOOD, "--audio", "{sound_wav}", "--wav", "{sound_wav}", "--stream", *FAST],
        "is the input",
    ),
    "extend out under a file": (
        "extend",
        ["--video", "{good_mp4}", *E, "--out", "{notes_txt}/o.mp4"],
        "notes.txt",
    ),
    "extend wav under a file": ("extend", [*GOOD, "--wav", "{notes_txt}/o.wav"], "notes.txt"),
    # salsa.extend: numbers
    "extend steps zero": ("extend", [*GOOD, "--steps", "0"], "--steps"),
    "extend steps not a power of two": ("extend", [*GOOD, "--steps", "3"], "power of two"),
    "extend steps not a number": ("extend", [*GOOD, "--steps", "many"], "--steps"),
    "extend window nan": ("extend", [*GOOD, "--window", "nan"], "--window"),
    "extend window negative": ("extend", [*GOOD, "--window", "-2"], "--window"),
    "extend window absurd": ("extend", [*GOOD, "--window", "1e9"], "window"),
    "extend context inf": ("extend", [*GOOD, "--context", "inf"], "--context"),
    "extend context longer than window": ("extend", [*GOOD, "--window", "2", "--context", "3"], "context"),
    "extend batch zero": ("extend", [*GOOD, "--batch", "0"], "--batch"),
    "extend audio-at nan": ("extend", [*GOOD, "--audio", "{sound_wav}", "--audio-at", "nan"], "--audio-at"),
    "extend audio-at negative": (
        "extend",
        [*GOOD, "--audio", "{sound_wav}", "--audio-at", "-1"],
        "--audio-at",
    ),
    "extend cfg inf": ("extend", [*GOOD, "--cfg", "inf"], "finite"),
    "extend cfg-video nan": ("extend", [*GOOD, "--cfg-video", "nan"], "finite"),
    "extend seed not an integer": ("extend", [*GOOD, "--seed", "1.5"], "--seed"),
    "extend unknown flag": ("extend", [*GOOD, "--sped", "2"], "--sped"),
    # salsa.codec
    "codec missing input": (
        "codec",
        ["encode", "--checkpoint", "{vae}", "{missing}", "{out}/z.npy"],
        "no such file",
    ),
    "codec garbage audio": (
        "codec",
        ["encode", "--checkpoint", "{vae}", "{garbage_wav}", "{out}/z.npy"],
        "garbage",
    ),
    "codec video-only input": (
        "codec",
        ["encode", "--checkpoint", "{vae}", "{good_mp4}", "{out}/z.npy"],
        "has no audio stream",
    ),
    "codec zero samples": (
        "codec",
        ["encode", "--checkpoint", "{vae}", "{silence0_wav}", "{out}/z.npy"],
        "has no samples",
    ),
    "codec non-finite latents": (
        "codec",
        ["decode", "--checkpoint", "{vae}", "{nan_npy}", "{out}/o.wav"],
        "finite",
    ),
    "codec output under a file": (
        "codec",
        ["decode", "--checkpoint", "{vae}", "{z_npy}", "{notes_txt}/o.wav"],
        "notes.txt",
    ),
    "codec output is the input": (
        "codec",
        ["decode", "--checkpoint", "{vae}", "{z_npy}", "{z_npy}"],
        "z.npy",
    ),
    "codec chunk-frames zero": (
        "codec",
        ["encode", "--checkpoint", "{vae}", "{sound_wav}", "{out}/z.npy", "--chunk-frames", "0"],
        "--chunk-frames",
    ),
    "codec clips zero": (
        "codec",
        ["stats", "--checkpoint", "{vae}", "--data", "synthetic", "--clips", "0"],
        "--clips",
    ),
    "codec seconds nan": (
        "codec",
        ["stats", "--checkpoint", "{vae}", "--data", "synthetic", "--seconds", "nan"],
        "--seconds",
    ),
    "codec missing bundle": (
        "codec",
        ["encode", "--checkpoint", "{missing}", "{sound_wav}", "{out}/z.npy"],
        "nope",
    ),
    # salsa.convert
    "convert missing source": ("convert", ["vae", "--src", "{missing}", "--out", "{out}/b"], "nope.mp4"),
    "convert garbage vae": ("convert", ["vae", "--src", "{garbage_wav}", "--out", "{out}/b"], "garbage.wav"),
    "convert garbage videoprism": (
        "convert",
        ["videoprism", "--src", "{garbage_npz}", "--out", "{out}/b"],
        "npz",
    ),
    "convert empty siglip folder": (
        "convert",
        ["siglip2", "--src", "{empty_folder}", "--out", "{out}/b"],
        "empty_folder",
    ),
    "convert out is a file": (
        "convert",
        ["vae", "--src", "{garbage_wav}", "--out", "{notes_txt}"],
        "notes.txt",
    ),
    "convert unknown component": ("convert", ["clap", "--src", "{dir}", "--out", "{out}/b"], "clap"),
    # salsa.evaluate (flag checks only; the runs themselves are tests/test_evaluate.py's)
    "evaluate clips negative": (
        "evaluate",
        ["--checkpoint", "{ckpt}", "--out", "{out}/e", "--clips", "-1"],
        "clips",
    ),
    "evaluate long-seconds nan": (
        "evaluate",
        ["--checkpoint", "{ckpt}", "--out", "{out}/e", "--long-seconds", "nan"],
        "long",
    ),
    "evaluate steps zero": (
        "evaluate",
        ["--checkpoint", "{ckpt}", "--out", "{out}/e", "--steps", "0"],
        "steps",
    ),
    "evaluate seed not a number": (
        "evaluate",
        ["--checkpoint", "{ckpt}", "--out", "{out}/e", "--seed", "x"],
        "seed",
    ),
    # salsa.evaluate --real/--generated (the field's metrics; runs are tests/test_evaluate_field.py's)
    "evaluate real missing": (
        "evaluate",
        ["--real", "{missing}", "--generated", "{clips}", "--weights", "{empty_folder}", "--out", "{out}/e"],
        "no such folder",
    ),
    "evaluate generated is a file": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{good_mp4}", "--weights", "{empty_folder}", "--out", "{out}/e"],
        "is a file",
    ),
    "evaluate weights without bundles": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{empty_folder}", "--out", "{out}/e"],
        "no bundle found",
    ),
    "evaluate weights missing": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{missing}", "--out", "{out}/e"],
        "--weights",
    ),
    "evaluate field without weights": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}"],
        "--weights",
    ),
    "evaluate real without generated": (
        "evaluate",
        ["--real", "{clips}", "--weights", "{empty_folder}"],
        "--generated",
    ),
    "evaluate field and checkpoint mixed": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--checkpoint", "{ckpt}"],
        "--checkpoint",
    ),
    "evaluate unknown metric": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{clips}", "--metrics", "clap"],
        "clap",
    ),
    "evaluate synchformer without bundle": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{clips}", "--metrics", "synchformer"],
        "synchformer_state_dict.pth",
    ),
    "evaluate metric without bundle": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{clips}", "--metrics", "passt"],
        "passt/config.json",
    ),
    "evaluate seconds nan": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{clips}", "--seconds", "nan"],
        "--seconds",
    ),
    "evaluate batch zero": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--weights", "{clips}", "--batch", "0"],
        "--batch",
    ),
    "evaluate out under a file": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{clips}", "--metrics", "swsd", "--out", "{notes_txt}/e"],
        "notes.txt",
    ),
    "evaluate generated holds no clips": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{vae}", "--metrics", "swsd", "--out", "{out}/e"],
        "holds no videos",
    ),
    "evaluate two clips of one name": (
        "evaluate",
        ["--real", "{dir}", "--generated", "{clips}", "--metrics", "swsd", "--out", "{out}/e"],
        "two clips are named 'garbage'",
    ),
    "evaluate generated folder empty": (
        "evaluate",
        ["--real", "{clips}", "--generated", "{empty_folder}", "--metrics", "swsd", "--out", "{out}/e"],
        "holds no videos",
    ),
    # data_pipelines.synthetic.render
    "render seconds nan": ("render", ["--out", "{out}/r", "--seconds", "nan"], "seconds"),
    "render seconds absurd": ("render", ["--out", "{out}/r", "--seconds", "1e9"], "seconds"),
    "render fps zero": ("render", ["--out", "{out}/r", "--fps", "0"], "fps"),
    "render fps inf": ("render", ["--out", "{out}/r", "--fps", "inf"], "fps"),
    "render huge frames": ("render", ["--out", "{out}/r", "--size", "100000", "100000"], "height=100000"),
    "render sample rate zero": ("render", ["--out", "{out}/r", "--sample-rate", "0"], "sample"),
    "render n not a number": ("render", ["--out", "{out}/r", "--n", "four"], "--n"),
    "render out under a file": ("render", ["--out", "{notes_txt}/r", "--seconds", "2"], "notes.txt"),
}

MAINS = {
    "extend": extend.main,
    "codec": codec.main,
    "convert": convert_main.main,
    "evaluate": evaluate_cli.main,
    "render": render._main,
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_everything_as_it_was(name, media, tmp_path, capsys):
    command, argv, words = CASES[name]
    out = tmp_path / "out"
    out.mkdir()
    argv = [a.format(**media, out=out) for a in argv]
    before = _snapshot(media["dir"], tmp_path)
    capsys.readouterr()
    try:
        code = cli.run(MAINS[command], argv)
    except SystemExit as e:  # a command that exits itself must still follow the convention
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (name, err)
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], (name, err)
    assert _snapshot(media["dir"], tmp_path) == before, name  # nothing new, nothing changed


# The absl commands: one process per case, so a handful each.
ABSL_CASES = {
    "train missing config": ("salsa.train", ["--config={missing}"], "no such config file"),
    "train override of the wrong type": (
        "salsa.train",
        ["--config={toy}", "--config.total_steps=ten"],
        "total_steps",
    ),
    "train unknown override": (
        "salsa.train",
        ["--config={toy}", "--config.learning_rate=1"],
        "learning_rate",
    ),
    "train non-finite learning rate": (
        "salsa.train",
        ["--config={toy}", "--config.optim.lr=nan"],
        "optim.lr",
    ),
    "train zero batch": ("salsa.train", ["--config={toy}", "--config.batch_size=0"], "batch_size"),
    "train unknown variant": ("salsa.train", ["--config=configs/generator.py:huge"], "huge"),
    "train stray argument": ("salsa.train", ["--config={toy}", "now"], "unexpected arguments: now"),
    "train workdir under a file": (
        "salsa.train",
        ["--config={toy}", "--workdir={notes_txt}/run"],
        "notes.txt",
    ),
    "extract missing config": ("data_pipelines.extract", ["--config={missing}"], "no such config file"),
    "extract negative process index": (
        "data_pipelines.extract",
        ["--config=configs/extract_tiny.py", "--process-index=-1", "--process-count=2"],
        "process",
    ),
    "extract unknown override": (
        "data_pipelines.extract",
        ["--config=configs/extract_tiny.py", "--config.nonsense=1"],
        "nonsense",
    ),
}


# A process each costs seconds; these run in the default suite, the rest are marked slow.
ABSL_FAST = {
    "train missing config",
    "train unknown override",
    "train non-finite learning rate",
    "extract missing config",
}


@pytest.mark.parametrize(
    "name", [n if n in ABSL_FAST else pytest.param(n, marks=pytest.mark.slow) for n in ABSL_CASES]
)
def test_absl_commands_refuse_bad_input_the_same_way(name, media, tmp_path):
    module, argv, words = ABSL_CASES[name]
    argv = [a.format(**media, toy=train_cli.TOY_CONFIG) for a in argv]
    if not any(a.startswith("--workdir") for a in argv):
        argv.append(f"--workdir={tmp_path / 'run'}")
    before = _snapshot(media["dir"])
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=train_cli.REPO,
        env=train_cli.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (name, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and lines[-1].startswith("error: ") and words in lines[-1], lines
    assert not (tmp_path / "run").exists() and _snapshot(media["dir"]) == before


# Not bad input: spaces and non-ASCII in every path work.
def test_paths_with_spaces_and_non_ascii_names_work(media, tmp_path, capsys):
    folder = tmp_path / "my clips ünïcode 音"
    folder.mkdir()
    video = folder / "vidéo 1 ☂.mp4"
    shutil.copy(media["good_mp4"], video)
    out, wav = folder / "sortie é.mp4", folder / "son é.wav"
    argv = ["--video", video, "--checkpoint", media["ckpt"], "--out", out, "--wav", wav, *FAST]
    assert cli.run(extend.main, [str(a) for a in argv]) == 0, capsys.readouterr().err
    assert out.stat().st_size > 0 and wav.stat().st_size > 0
    latents = folder / "latents ü.npy"
    assert cli.run(codec.main, ["encode", "--checkpoint", media["vae"], str(wav), str(latents)]) == 0
    assert (
        cli.run(codec.main, ["decode", "--checkpoint", media["vae"], str(latents), str(folder / "é.wav")])
        == 0
    )
    assert cli.run(render._main, ["--out", str(folder / "rendu ☂"), "--n", "1", "--seconds", "2"]) == 0
    assert (folder / "rendu ☂" / "clip_0000.mp4").is_file()
