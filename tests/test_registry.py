"""The method registry: names, patterns, errors, third-party entry points; and the trunks."""

from __future__ import annotations

import pytest
import torch

import methods.registry as registry
from bench.core.errors import BenchError
from methods import create_method, list_methods, register_method
from methods.base import EmbeddingMethod
from methods.trunks import build_trunk, list_trunks

BUILT_IN = ["classifier", "mean-anchor-triplet", "mined-triplet", "siamese"]


@pytest.fixture
def scratch_registry():
    """Lets a test register methods; removes whatever it added."""
    before = dict(registry.METHODS.entries)
    yield
    registry.METHODS.entries.clear()
    registry.METHODS.entries.update(before)


def test_built_in_methods_are_listed():
    assert list_methods() == BUILT_IN


def test_list_methods_filters_by_shell_pattern():
    assert list_methods("*triplet") == ["mean-anchor-triplet", "mined-triplet"]
    assert list_methods("s*") == ["siamese"]
    assert list_methods("nothing*") == []


def test_create_method_passes_hyperparameters():
    method = create_method("siamese", margin=0.7, trunk="cnn")
    assert method.get_params()["margin"] == 0.7
    assert method.get_params()["trunk"] == "cnn"


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(BenchError) as err:
        create_method("tripletz")
    for name in BUILT_IN:
        assert name in str(err.value)


def test_unknown_hyperparameter_is_a_bench_error():
    with pytest.raises(BenchError, match="margni"):
        create_method("siamese", margni=1.0)


def test_duplicate_name_is_an_error(scratch_registry):
    class Other(EmbeddingMethod):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_method("siamese")(Other)


def test_registering_the_same_class_twice_is_harmless(scratch_registry):
    @register_method("scratch-method")
    class Scratch(EmbeddingMethod):
        pass

    register_method("scratch-method")(Scratch)
    assert "scratch-method" in list_methods()
    assert isinstance(create_method("scratch-method"), Scratch)


def test_third_party_methods_load_from_entry_points(scratch_registry, monkeypatch):
    def register_plugin():
        @register_method("plugin-method")
        class Plugin(EmbeddingMethod):
            pass

    class FakeEntryPoint:
        def load(self):
            return register_plugin

    seen_groups = []

    def fake_entry_points(group):
        seen_groups.append(group)
        return [FakeEntryPoint()]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    assert "plugin-method" in list_methods()
    assert seen_groups == ["bench.methods"]


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", [(8, 8), (36, 39)])
def test_trunks_map_images_to_embeddings(name, shape):
    trunk = build_trunk(name, shape, 128)
    assert trunk(torch.rand(5, *shape)).shape == (5, 128)


def test_trunks_are_listed_and_unknown_is_an_error():
    assert list_trunks() == ["cnn", "mlp"]
    with pytest.raises(BenchError, match="cnn, mlp"):
        build_trunk("resnet", (8, 8), 128)
