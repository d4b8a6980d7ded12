"""Sampling-balance schemes map class counts to the weights their papers define."""

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
