"""The ``elpv`` source on a small folder with the package's layout (no package needed): options,
the error paths (each one line, exit 2 through the CLI) and the disk cache's keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.core.errors import BenchError
from bench.datasets import elpv, load_dataset
from bench.datasets.describe import elpv_rows
from bench.datasets.disk_cache import ENV_VAR

ROOT = Path(__file__).resolve().parents[1]
#: (probability as the package writes it, cell type) per image: 3 of each level.
ROWS = [
    (p, t)
    for p in ("0.0", "0.3333333333333333", "0.6666666666666666", "1.0")
    for t in ("mono", "poly", "mono")
]


def write_layout(root: Path, rows=ROWS, side: int = 24) -> Path:
    """``labels.csv`` and 8-bit grayscale PNGs laid out as in ``elpv_dataset/data``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, (probability, cell_type) in enumerate(rows, start=1):
        name = f"images/cell{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), mode="L").save(root / name)
        lines.append(f"{name}  {probability:<19} {cell_type}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def layout(tmp_path):
    return write_layout(tmp_path / "elpv")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(path))
    return path


@pytest.fixture
def decodes(monkeypatch):
    calls = []
    real = elpv.decode_cells

    def counted(directory, paths, size):
        calls.append(size)
        return real(directory, paths, size)

    monkeypatch.setattr(elpv, "decode_cells", counted)
    return calls


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def entries(cache: Path) -> list[Path]:
    return sorted(cache.rglob("*.npz"))


def test_the_layout_loads_with_each_scheme_and_size(layout, cache):
    data = load_dataset("elpv", data_dir=str(layout), size=16)
    assert data.images.shape == (12, 16, 16) and data.good_index == 0
    assert data.counts_by_code() == {"good": 3, "defect-33": 3, "defect-67": 3, "defect-100": 3}
    assert load_dataset("elpv", data_dir=str(layout), labels="binary").counts_by_code() == {
        "good": 6,
        "defect": 6,
    }
    typed = load_dataset("elpv", data_dir=str(layout), labels="levels-type")
    assert typed.classes == (
        "good", "defect-33-mono", "defect-33-poly", "defect-67-mono", "defect-67-poly",
        "defect-100-mono", "defect-100-poly",
    )  # fmt: skip
    assert typed.counts_by_code()["good"] == 3 and typed.counts_by_code()["defect-33-mono"] == 2


def test_the_cache_is_hit_then_keyed_by_size_and_by_the_files(layout, cache, decodes):
    first = load_dataset("elpv", data_dir=str(layout))
    second = load_dataset("elpv", data_dir=str(layout), labels="binary")
    assert decodes == [64] and len(entries(cache)) == 1
    assert np.array_equal(first.images.numpy(), second.images.numpy())
    load_dataset("elpv", data_dir=str(layout), size=32)
    assert decodes == [64, 32] and len(entries(cache)) == 2  # one entry per size
    image = layout / "images" / "cell0001.png"
    Image.fromarray(np.zeros((24, 24), dtype=np.uint8), mode="L").save(image)
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    rewritten = load_dataset("elpv", data_dir=str(layout))
    assert decodes == [64, 32, 64] and float(rewritten.images[0].max()) == 0.0
    assert len(entries(cache)) == 2  # the entry of the old files was replaced, not kept beside


@pytest.mark.parametrize("damage", [b"", b"not an npz", None])
def test_a_damaged_entry_is_rebuilt(layout, cache, decodes, damage):
    first = load_dataset("elpv", data_dir=str(layout))
    (entry,) = entries(cache)
    if damage is None:  # truncated in the middle, as a full disk or a killed copy leaves it
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    else:
        entry.write_bytes(damage)
    again = load_dataset("elpv", data_dir=str(layout))
    assert decodes == [64, 64] and np.array_equal(again.images.numpy(), first.images.numpy())
    assert load_dataset("elpv", data_dir=str(layout)) is not None and decodes == [64, 64]  # rebuilt


def test_the_cache_can_be_turned_off(layout, monkeypatch, decodes, tmp_path):
    monkeypatch.setenv(ENV_VAR, "off")
    load_dataset("elpv", data_dir=str(layout))
    load_dataset("elpv", data_dir=str(layout))
    assert decodes == [64, 64]


def test_an_unwritable_cache_folder_costs_only_the_speed_up(layout, tmp_path, monkeypatch, decodes):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(ENV_VAR, str(blocker))
    assert len(load_dataset("elpv", data_dir=str(layout))) == 12


def test_processes_filling_the_cache_at_once_decode_once(layout, cache, tmp_path):
    """Two processes miss at once: one decodes (slowly), the other waits for its entry."""
    marks = tmp_path / "decoded"
    marks.mkdir()
    script = f"""
import os, time
from bench.datasets import elpv, load_dataset
real = elpv.decode_cells
def slow(directory, paths, size):
    open(os.path.join({str(marks)!r}, str(os.getpid())), "w").close()
    time.sleep(1.5)
    return real(directory, paths, size)
elpv.decode_cells = slow
print(float(load_dataset("elpv", data_dir={str(layout)!r}).images.sum()))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV_VAR: str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    assert outputs[0][0] == outputs[1][0]
    assert len(list(marks.iterdir())) == 1 and len(entries(cache)) == 1
    assert not [p for p in cache.rglob(".*") if p.is_file()]  # no temporary file left behind


# --------------------------------------------------------------------------- errors


def test_package_missing(monkeypatch, cache):
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)  # find_spec then says: not installed
    with pytest.raises(BenchError, match=r"pip install -e '\.\[elpv\]'") as info:
        load_dataset("elpv")
    one_line(info)
    assert [row["source"] for row in elpv_rows()] == ["not installed: pip install -e '.[elpv]'"]


def test_a_folder_without_labels_csv(tmp_path, cache):
    with pytest.raises(BenchError, match="no labels.csv in") as info:
        load_dataset("elpv", data_dir=str(tmp_path))
    one_line(info)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"labels": "level"},
            "unknown label scheme 'level' \\(did you mean 'levels'\\?\\); known label schemes",
        ),
        ({"labels": ["levels"]}, "unknown label scheme \\['levels'\\]"),
        ({"size": 0}, "size=0 is not a side in pixels from 8 to 300"),
        ({"size": 512}, "size=512"),
        ({"size": "big"}, "size='big'"),
        ({"size": True}, "size=True"),
        ({"colour": "red"}, "does not take option"),
    ],
)
def test_unknown_option_values(layout, cache, options, message):
    with pytest.raises(BenchError, match=message) as info:
        load_dataset("elpv", data_dir=str(layout), **options)
    one_line(info)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("images/cell0002.png  0.5  mono", r"line 2: defect probability '0.5' is not one of 0, 1/3, 2/3, 1"),
        ("images/cell0002.png  1.0  thin-film", "line 2: cell type 'thin-film' is not mono or poly"),
        ("images/cell0002.png  1.0", "line 2: expected 'path probability type'"),
        ("images/cell0002.png  nan  mono", "defect probability 'nan'"),
    ],
)
def test_unknown_label_values(layout, cache, line, message):
    lines = (layout / "labels.csv").read_text().splitlines()
    lines[1] = line
    (layout / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchError, match=message) as info:
        load_dataset("elpv", data_dir=str(layout))
    one_line(info)


def test_a_corrupt_image_is_named_and_nothing_is_cached(layout, cache):
    (layout / "images" / "cell0005.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(BenchError, match=r"image images/cell0005.png in .* could not be decoded") as info:
        load_dataset("elpv", data_dir=str(layout))
    one_line(info)
    assert entries(cache) == []


def test_a_missing_image_is_named(layout, cache):
    (layout / "images" / "cell0003.png").unlink()
    with pytest.raises(BenchError, match="image images/cell0003.png listed in .* is missing") as info:
        load_dataset("elpv", data_dir=str(layout))
    one_line(info)


def test_a_16_bit_image_is_refused(layout, cache):
    Image.fromarray(np.zeros((24, 24), dtype=np.uint16)).save(layout / "images" / "cell0004.png")
    with pytest.raises(BenchError, match="has mode I;16, not 8-bit grayscale"):
        load_dataset("elpv", data_dir=str(layout))


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("problem", ["label value", "corrupt image", "labels option"])
def test_the_cli_says_each_problem_in_one_line_with_exit_2(layout, cache, tmp_path, capsys, problem):
    argv = [
        "run",
        "--dataset",
        "elpv",
        "--method",
        "classifier",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "run"),
    ]
    if problem == "label value":
        (layout / "labels.csv").write_text("images/cell0001.png  0.25  mono\n")
    elif problem == "corrupt image":
        (layout / "images" / "cell0002.png").write_bytes(b"garbage")
    else:
        config = tmp_path / "grid.toml"
        config.write_text('dataset = "elpv"\n[dataset_options]\nlabels = "tri-state"\n')
        argv += ["--config", str(config)]
    code, err = run_cli([*argv, "--data-dir", str(layout)], capsys)
    assert code == 2 and err.startswith("error: elpv: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_the_cli_without_the_package_exits_2_with_the_install_command(tmp_path):
    script = (
        "import sys; sys.modules['elpv_dataset'] = None\n"  # as if it were not installed
        "from bench.cli import main\n"
        f"sys.exit(main(['run', '--dataset', 'elpv', '--method', 'classifier', '--out', {str(tmp_path / 'r')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr == (
        "error: the elpv dataset needs the elpv-dataset package, which is not installed: "
        "pip install -e '.[elpv]' (or pip install elpv-dataset)\n"
    )
