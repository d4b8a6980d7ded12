"""Sampling-balance schemes map class counts to the weights their papers define."""

from pathlib import Path

import pytest
import torch

from bench.core.errors import BenchError
from bench.sampling.schemes import DEFAULT_SCHEMES, list_schemes, make_plan

COUNTS = torch.tensor([500.0, 100.0, 100.0, 40.0])
CODES = ("0", "11", "13", "21")


def plan(name, **options):
    return make_plan(name, COUNTS, CODES, good_index=0, **options)


def test_uniform_gives_every_class_the_same_weight():
    assert torch.allclose(plan("uniform").weights_at(), torch.full((4,), 0.25, dtype=torch.float64))


def test_natural_follows_class_frequencies():
    assert torch.allclose(plan("natural").weights_at(), COUNTS.double() / COUNTS.sum())


def test_sqrt_is_proportional_to_square_root_of_counts():
    w = plan("sqrt").weights_at()
    assert torch.allclose(w / w[1], COUNTS.double().sqrt() / 10.0)


@pytest.mark.parametrize("k", [1, 2, 5, 10, 2.5])
def test_good_xk_weights_good_k_times_each_defect(k):
    w = plan(f"good-x{k}").weights_at()
    assert torch.allclose(w[0] / w[1:], torch.full((3,), float(k), dtype=torch.float64))
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_effective_number_matches_cui_et_al_formula():
    beta = 0.99
    w = plan("effective-number", beta=beta).weights_at()
    expected = (1 - beta) / (1 - beta ** COUNTS.double())
    assert torch.allclose(w, expected / expected.sum())
    assert w[3] > w[1] > w[0]  # rarer classes weigh more


def test_progressive_moves_from_natural_to_uniform():
    p = plan("progressive")
    assert torch.allclose(p.weights_at(0, 100), plan("natural").weights_at())
    assert torch.allclose(p.weights_at(99, 100), plan("uniform").weights_at())
    middle = p.weights_at(50, 100)
    assert plan("uniform").weights_at()[0] < middle[0] < plan("natural").weights_at()[0]


def test_plan_records_its_scheme_and_codes():
    p = plan("good-x5")
    assert p.scheme == "good-x5" and p.classes == CODES
    assert set(p.to_dict()["start"]) == set(CODES)


@pytest.mark.parametrize("bad", ["unifrom", "good-x", "good-xfive", "good-x0", "good-5"])
def test_unknown_or_malformed_scheme_is_one_clear_error(bad):
    with pytest.raises(BenchError) as err:
        plan(bad)
    assert "\n" not in str(err.value) and bad in str(err.value)


def test_unknown_scheme_suggests_a_close_match():
    with pytest.raises(BenchError, match="did you mean 'uniform'"):
        plan("unifrom")


def test_good_xk_needs_a_good_class():
    with pytest.raises(BenchError, match="good class"):
        make_plan("good-x5", COUNTS, CODES, good_index=None)


def test_default_set_is_registered():
    names = list_schemes()
    assert all(s in names or s.startswith("good-x") for s in DEFAULT_SCHEMES)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "effective-number",
            {"beta": "0.99"},
            "scheme 'effective-number' option beta must be a float (got '0.99', a str)",
        ),
        ("effective-number", {"beta": True}, "option beta must be a float (got True, a bool)"),
        ("effective-number", {"gamma": 0.5}, "does not take option(s) gamma; it takes: beta (float)"),
        ("uniform", {"beta": 0.5}, "scheme 'uniform' does not take option(s) beta; it takes: no options"),
        ("good-x5", {"beta": 0.5}, "scheme 'good-x5' does not take option(s) beta; it takes: no options"),
    ],
)
def test_bad_scheme_options_name_the_option_the_value_and_the_type(name, options, message):
    with pytest.raises(BenchError) as err:
        plan(name, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_whole_number_is_a_valid_float_option():
    assert torch.allclose(plan("effective-number", beta=0).weights_at(), plan("uniform").weights_at())


def test_bad_scheme_options_in_a_config_file_exit_2_with_one_line(tmp_path):
    """Through the real CLI, in one subprocess: an option good-xK does not take, a string beta,
    and an unknown scheme name each give exit 2 and one line on stderr."""
    import subprocess
    import sys

    cases = {
        '[scheme_options."good-x5"]\nbeta = 0.5\n': "scheme_options.good-x5: scheme 'good-x5' does not take option(s) beta",
        '[scheme_options."effective-number"]\nbeta = "0.99"\n': "option beta must be a float (got '0.99', a str)",
        '[scheme_options."effective-numbr"]\nbeta = 0.9\n': "unknown scheme 'effective-numbr' (did you mean 'effective-number'?)",
    }
    paths = []
    for n, toml in enumerate(cases):
        paths.append(str(tmp_path / f"{n}.toml"))
        Path(paths[-1]).write_text(toml)
    script = (
        "import sys\nfrom bench.cli import main\n"
        "print([main(['run', '--all', '--config', p, '--dry-run']) for p in sys.argv[1:]])"
    )
    proc = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "[2, 2, 2]", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in proc.stderr
    for line, message in zip(lines, cases.values(), strict=True):
        assert line.startswith("error: ") and message in line
