"""The method API a plug-in author relies on: the worked plug-in of ``docs/writing-a-method.md``,
registered through a (faked) entry point from its own pyproject.toml, trains, checks its
hyperparameters and declares its search space; a module dropped into ``methods/`` is found."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import methods
import methods.registry as registry
from bench.core.errors import BenchError
from bench.sampling.budget import Budget
from methods import create_method, get_method_class, list_methods

ROOT = Path(__file__).resolve().parents[1]


def documented_example() -> tuple[str, str]:
    """The python and toml blocks of the *A complete plug-in* section of the method guide."""
    text = (ROOT / "docs" / "writing-a-method.md").read_text()
    section = text.split("\n## A complete plug-in\n", 1)[1].split("\n## ", 1)[0]
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    return python, toml


@pytest.fixture
def plugin_registry(monkeypatch):
    """Lets a test load plug-ins afresh; removes the methods and modules it added."""
    entries = dict(registry.METHODS.entries)
    modules = set(sys.modules)
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    yield
    registry.METHODS.entries.clear()
    registry.METHODS.entries.update(entries)
    for name in set(sys.modules) - modules:
        if name.startswith(("methods.", "bench_")):  # the plug-ins' modules, nothing of torch's
            del sys.modules[name]


def test_the_documented_plugin_registers_through_its_entry_point_and_trains(
    plugin_registry, tmp_path, monkeypatch, digits_splits
):
    python, toml = documented_example()
    points = tomllib.loads(toml)["project"]["entry-points"]["bench.methods"]
    ((name, module),) = points.items()
    (tmp_path / f"{module}.py").write_text(python)
    monkeypatch.syspath_prepend(str(tmp_path))
    # What importlib.metadata returns once the plug-in's package is installed.
    installed = [EntryPoint(name=name, value=module, group="bench.methods")]
    monkeypatch.setattr(registry, "entry_points", lambda group: installed if group == "bench.methods" else [])

    assert name in list_methods()
    method = create_method(name, temperature=0.1)
    assert method.get_params() == {"trunk": "mlp", "temperature": 0.1}
    with pytest.raises(BenchError, match=r"^norm-softmax: temperature=0.0 is not a positive number$"):
        create_method(name, temperature=0.0).check_params()
    with pytest.raises(BenchError, match="has no hyperparameter 'temprature'; it takes: trunk, temperature"):
        create_method(name, temprature=0.1)
    assert list(get_method_class(name).search_space()) == ["lr", "temperature"]
    budget = Budget(steps=60, batch_images=64)
    method.fit(digits_splits.train, budget=budget, seed=0)
    assert method.sampling_["images_seen"] == 60 * 64
    assert sum(method.sampling_["anchor_counts"].values()) == 60 * 64
    emb = method.embed(digits_splits.test.images)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb)), atol=1e-5)
    # Nearest proxy on the test split: learned, far above chance (0.1).
    proxies = torch.nn.functional.normalize(method.proxies_.weight.detach(), dim=1)
    accuracy = float(((emb @ proxies.T).argmax(1) == digits_splits.test.labels).double().mean())
    assert accuracy > 0.6
    # Nothing of the fit stays behind but learned state; the proxies are kept as ``proxies_``.
    assert set(vars(method)) == {"trunk", "temperature"} | {
        "model_", "classes_", "budget_", "proxies_", "sampling_", "loss_history_", "checkpoint_",
    }  # fmt: skip


def test_a_module_dropped_into_methods_is_registered(plugin_registry, tmp_path, monkeypatch, caplog):
    (tmp_path / "dropped_method.py").write_text(
        "from methods import register_method\n"
        "from methods.classifier import Classifier\n\n\n"
        '@register_method("dropped")\n'
        "class Dropped(Classifier):\n"
        '    """A classifier under another name."""\n'
    )
    (tmp_path / "broken_method.py").write_text("raise RuntimeError('half written')\n")
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with caplog.at_level("WARNING", logger="methods.registry"):
        names = list_methods()
    assert [r.getMessage() for r in caplog.records] == [
        "warning: methods/broken_method.py could not be loaded and was skipped: RuntimeError: half written"
    ]
    assert "dropped" in names and "classifier" in names  # the broken one stops nothing else
