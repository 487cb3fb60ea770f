"""The house conventions every writer and every command relies on: atomic writes, one-line errors."""

import os
import subprocess
import sys

import pytest

from salsa import cli, io
from salsa.errors import UserError


def test_atomic_file_leaves_nothing_on_failure_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "report.md"
    io.write_text(path, "old\n")
    with pytest.raises(RuntimeError), io.atomic_file(path) as temp:
        with open(temp, "w") as f:
            f.write("half")
        raise RuntimeError("killed midway")
    assert path.read_text() == "old\n"
    assert os.listdir(path.parent) == ["report.md"]  # no temporary left behind
    io.write_json(path, {"a": 1})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "bundle"
    with io.atomic_directory(target) as d:
        (open(os.path.join(d, "a"), "w")).close()
    with pytest.raises(RuntimeError), io.atomic_directory(target) as d:
        (open(os.path.join(d, "b"), "w")).close()
        raise RuntimeError
    assert os.listdir(target) == ["a"]
    with io.atomic_directory(target) as d:
        (open(os.path.join(d, "c"), "w")).close()
    assert os.listdir(target) == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["bundle"]


def test_user_error_is_one_line_and_exit_2(capsys):
    def main(argv):
        raise UserError("--steps 3 is not accepted;\n use a power of two.")

    assert cli.run(main, []) == 2
    assert capsys.readouterr().err == "error: --steps 3 is not accepted; use a power of two.\n"
    assert cli.run(lambda argv: None, []) == 0


def test_absl_commands_follow_the_same_convention(tmp_path):
    script = tmp_path / "entry.py"  # not cmd.py: that name would shadow the standard library's cmd
    script.write_text(
        "from salsa import cli\nfrom salsa.errors import UserError\n"
        "def main(argv):\n    raise UserError('no checkpoint at runs/x.')\n"
        "cli.run_absl(main)\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=os.getcwd())
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: no checkpoint at runs/x."


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m
