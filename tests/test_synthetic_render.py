"""The render command line: mp4 + json per clip, exit code 2 and one line for bad input."""

import json

import pytest

from data_pipelines.media import decode_audio, decode_video
from data_pipelines.synthetic import render


def test_render_writes_watchable_clips_with_ground_truth(tmp_path):
    assert render.main(["--n", "2", "--seconds", "2", "--seed", "5", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clip_0000.json",
        "clip_0000.mp4",
        "clip_0001.json",
        "clip_0001.mp4",
    ]
    truth = json.loads((tmp_path / "clip_0001.json").read_text())
    assert truth["duration"] == 2.0 and truth["fps"] == 24.0 and truth["sample_rate"] == 44100
    assert truth["caption"] and all({"time", "material", "kind"} <= set(e) for e in truth["events"])
    assert decode_video(tmp_path / "clip_0001.mp4", 24.0).shape == (48, 128, 128, 3)
    assert abs(len(decode_audio(tmp_path / "clip_0001.mp4", 44100)) - 88200) <= 44


def test_render_hidden_acoustics_records_them_and_names_them_in_captions(tmp_path):
    args = ["--n", "1", "--seconds", "2", "--size", "32", "32", "--out", str(tmp_path)]
    assert render.main([*args, "--hidden-acoustics", "--hidden-caption-fraction", "1"]) == 0
    truth = json.loads((tmp_path / "clip_0000.json").read_text())
    assert {"room", "microphone", "pitch", "words", "in_caption"} <= set(truth["acoustics"])
    assert truth["caption"].endswith(truth["acoustics"]["words"])


@pytest.mark.parametrize(
    "args",
    [
        ["--seconds", "1"],
        ["--channels", "5"],
        ["--n", "0"],
        ["--hidden-caption-fraction", "0.5"],
        ["--shutter", "2"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args):
    assert render.main(["--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and args[0].lstrip("-").replace("-", "_") in err
