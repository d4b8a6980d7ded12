"""The method registry: names, patterns, errors, third-party entry points; and the trunks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import methods.registry as registry
from bench.core.errors import BenchError
from methods import create_method, list_methods, register_method
from methods.base import EmbeddingMethod
from methods.trunks import build_trunk, list_trunks

BUILT_IN = [
    "classifier",
    "knn-distance",
    "mean-anchor-triplet",
    "mined-triplet",
    "pca-gaussian",
    "siamese",
]


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


def test_a_broken_plug_in_is_one_line_and_the_others_still_load(tmp_path):
    """A real entry point (a dist-info on the path) whose module fails to import, listed before
    a working one: ``bench list methods`` names the broken one in one line and lists the other."""
    dist = tmp_path / "bench_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[bench.methods]\nbroken = broken_plugin\ngood = good_plugin:register\n"
    )
    (tmp_path / "broken_plugin.py").write_text("import no_such_module_for_bench\n")
    (tmp_path / "good_plugin.py").write_text(
        "from methods import register_method\n"
        "from methods.base import EmbeddingMethod\n\n\n"
        "def register():\n"
        "    @register_method('plugin-method')\n"
        "    class Plugin(EmbeddingMethod):\n"
        "        'A plug-in that loads.'\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "list", "methods"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "warning: method plug-in 'broken' (broken_plugin) could not be loaded and was skipped:"
        " ModuleNotFoundError: No module named 'no_such_module_for_bench'"
    ]
    assert "plugin-method" in proc.stdout and "A plug-in that loads." in proc.stdout
    assert all(name in proc.stdout for name in BUILT_IN)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", [(8, 8), (36, 39)])
def test_trunks_map_images_to_embeddings(name, shape):
    trunk = build_trunk(name, shape, 128)
    assert trunk(torch.rand(5, *shape)).shape == (5, 128)


def test_trunks_are_listed_and_unknown_is_an_error():
    assert list_trunks() == ["cnn", "mlp", "resnet"]
    with pytest.raises(BenchError, match="cnn, mlp, resnet"):
        build_trunk("vgg", (8, 8), 128)
