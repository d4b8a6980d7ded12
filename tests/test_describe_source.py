"""``bench datasets --dataset SRC`` describes any source a run accepts (issue 27 C): its classes
with their split counts, the good class and the balance; a bad source is one error line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.cli import main


def test_a_builtin_source_is_described_class_by_class(capsys):
    assert main(["datasets", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "10 classes, 1797 images; good class '0'" in out
    assert "split (seed 0): train 1078, val 269, test 450" in out
    assert "balance: good 1.0x mean defect" in out
    assert "| 0 (good) |      178 |     107 |    27 |     44 |" in out


def test_an_image_folder_with_a_chosen_good_class_and_reshape(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "folder"
    rng = np.random.default_rng(0)
    for code, n in (("ok", 12), ("scratch", 6), ("dent", 6)):
        (root / code).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).convert("RGB").save(
                root / code / f"{i}.png"
            )
    assert main(["datasets", "--dataset", f"hf:{root}"]) == 0
    out = capsys.readouterr().out
    assert "3 classes, 24 images; good class 'ok'" in out and "good 2.0x each defect" in out
    assert "| ok (good) |" in out and "| scratch " in out
    assert main(["datasets", "--dataset", f"hf:{root}", "--good-per-defect", "1"]) == 0
    assert "3 classes, 18 images" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "hf:/no/such/dir"], "error: hf:/no/such/dir: no such file or directory"),
        (["--dataset", "nosuch"], "error: unknown dataset 'nosuch'"),
        (["--dataset", "digits", "--good", "x"], "error: "),
        (["--good", "0"], "error: --good describe(s) one source: add --dataset NAME"),
    ],
)
def test_a_bad_source_is_one_error_line_and_exit_2(argv, message, capsys):
    assert main(["datasets", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message) and err.count("\n") == 1
