"""AudioSetCaps captions for VGGSound clips (data_pipelines/real/vggsound.py: read_captions, clip_key).

The release's VGGSound_AudioSetCaps_caption.csv has a header `id,caption` and ids `YOUTUBEID_START`
with the start zero-padded to six digits; the variants below are accepted as well. The join into the
records through an extraction run is in tests/test_extract.py.
"""

from __future__ import annotations

import logging

import pytest

from configs import extract
from data_pipelines.extract import sources
from data_pipelines.real.vggsound import clip_key, read_captions
from salsa.errors import UserError

# Two rows as in the release: YouTube ids with "_" and "-", captions quoted where they hold commas.
RELEASE = (
    "id,caption\n"
    'OxPnZzn1_L8_000883,"A dog barks twice, then a car passes by."\n'
    "--0PQM4-hqg_000030,Rain falls steadily on a tin roof.\n"
)


def test_the_release_format_is_read_by_youtube_id_and_start_second(tmp_path):
    path = tmp_path / "VGGSound_AudioSetCaps_caption.csv"
    path.write_text(RELEASE)
    assert read_captions(str(path)) == {
        ("OxPnZzn1_L8", 883): "A dog barks twice, then a car passes by.",
        ("--0PQM4-hqg", 30): "Rain falls steadily on a tin roof.",
    }


@pytest.mark.parametrize(
    "text, key",
    [
        ("OxPnZzn1_L8_000883", ("OxPnZzn1_L8", 883)),
        ("OxPnZzn1_L8_883", ("OxPnZzn1_L8", 883)),  # unpadded
        ("OxPnZzn1_L8_883.000", ("OxPnZzn1_L8", 883)),  # a whole float
        (" OxPnZzn1_L8_000883 ", ("OxPnZzn1_L8", 883)),
        ("YOxPnZzn1_L8_000883", ("OxPnZzn1_L8", 883)),  # AudioSet's "Y" before the 11-character id
        ("OxPnZzn1_L8_883_893", ("OxPnZzn1_L8", 883)),  # START_END
        ("YOxPnZzn1_L8_883_893", ("OxPnZzn1_L8", 883)),
        ("Yx-ab_12cde_000030", ("Yx-ab_12cde", 30)),  # an 11-character id that begins with Y keeps it
        ("abcdefgh_12_000030", ("abcdefgh_12", 30)),  # "_12" belongs to the id, not to a START_END
        ("clip_7", ("clip", 7)),  # ids that are not YouTube's, as in a folder of one's own
        ("OxPnZzn1_L8", None),
        ("OxPnZzn1_L8_883.5", None),
    ],
)
def test_clip_ids_and_their_accepted_variants(text, key):
    assert clip_key(text) == key


def test_extra_columns_a_bom_multiline_captions_blank_and_repeated_rows(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text(
        "\ufeffcaption,id,source\n"
        '"Wind gusts,\nthen quiet.",abc_000001,vggsound\n'
        ",abc_000002,vggsound\n"  # no caption: the clip keeps its label
        "  later caption  ,abc_000001,vggsound\n"  # the first of a repeated id counts
        "  spaced out  ,abc_000003,vggsound\n",
        encoding="utf-8",
    )
    assert read_captions(str(path)) == {("abc", 1): "Wind gusts,\nthen quiet.", ("abc", 3): "spaced out"}


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("OxPnZzn1_L8_000883,A dog barks.\n", ":1:", "expected a header with the columns 'id' and 'caption'"),
        ("", ":1:", "expected a header with the columns 'id' and 'caption'"),
        ("youtube_id,caption\nOxPnZzn1_L8_000883,A dog barks.\n", ":1:", "'id' and 'caption'"),
        (RELEASE + "OxPnZzn1_L8,A dog barks.\n", ":4:", "expected an id YOUTUBEID_START"),
        (RELEASE + "OxPnZzn1_L8_000010.5,A dog barks.\n", ":4:", "with a whole start second"),
        (RELEASE + "OxPnZzn1_L8_000010\n", ":4:", "expected 2 fields as in the header"),
        (RELEASE + "OxPnZzn1_L8_000010,A dog,barks\n", ":4:", "expected 2 fields as in the header"),
    ],
)
def test_a_malformed_csv_is_one_sentence_naming_file_line_and_what_is_accepted(tmp_path, text, where, what):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        read_captions(str(path))
    message = str(e.value)
    assert message.startswith(f"{path}{where} ") and what in message and "\n" not in message


def test_text_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,caption\nabc_000001,café\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"^{path}: not UTF-8 text"):
        read_captions(str(path))


def test_the_vggsound_source_counts_the_clips_that_keep_their_label(tmp_path, caplog):
    """No videos are needed to read the tables: the join is made when the source is made."""
    (tmp_path / "vggsound.csv").write_text(
        "OxPnZzn1_L8,883,dog barking,train\n--0PQM4-hqg,30,rain,train\n--0PQM4-hqg,40,rain,train\n"
    )
    elsewhere = tmp_path / "release" / "VGGSound_AudioSetCaps_caption.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text(RELEASE)
    settings = {**extract.get_config("vggsound").source.to_dict(), "dir": str(tmp_path)}
    with caplog.at_level(logging.INFO):
        sources.make({**settings, "captions": str(elsewhere)})  # an absolute path
    (message,) = [r.getMessage() for r in caplog.records if "AudioSetCaps" in r.getMessage()]
    assert message.startswith("2 of 3 clips") and message.endswith("1 keep their label as caption")
    with pytest.raises(UserError, match=r"source.captions .*missing.csv' is not a file"):
        sources.make({**settings, "captions": "missing.csv"})  # relative to source.dir
    (tmp_path / "bad.csv").write_text("id,text\n")
    with pytest.raises(UserError, match=r"bad.csv:1: expected a header"):
        sources.make({**settings, "captions": "bad.csv"})


@pytest.mark.parametrize("line", ["abc,1.5,dog barking,train", "abc,1,dog barking", "abc"])
def test_a_bad_vggsound_csv_row_is_one_sentence_naming_the_line(tmp_path, line):
    from data_pipelines.real.vggsound import read_rows

    path = tmp_path / "vggsound.csv"
    path.write_text(f"---g-f_I2yQ,1,people marching,test\n{line}\n")
    with pytest.raises(
        UserError, match=r"vggsound\.csv:2: expected 'id, start second \(a whole number\), label"
    ):
        read_rows(str(path))
