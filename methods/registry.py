"""The method registry: ``@register_method("name")``, ``list_methods``, ``create_method``.

Methods come from three places, all loaded on the first look-up: the built-in modules, any
other module of the ``methods`` package (drop ``my_method.py`` beside them and it is imported),
and third-party packages through the ``bench.methods`` entry-point group, each entry point
naming a module (or callable) whose import registers its methods. A plug-in or a dropped-in
module that fails to load (an import error, a name already taken) is skipped with one warning
line naming it; the others still load.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from bench.core.registry import Registry
from methods.base import EmbeddingMethod

T = TypeVar("T", bound=type[EmbeddingMethod])

METHODS: Registry[type[EmbeddingMethod]] = Registry("method")
_plugins_loaded = False
# Unconfigured, Python prints a warning as its bare message on stderr: one line per broken plug-in.
logger = logging.getLogger(__name__)


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator that registers an embedding method under ``name``.

    Raises:
        ValueError: if ``name`` is already registered to another class.
    """

    def decorate(cls: T) -> T:
        METHODS.register(name)(cls)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import methods  # noqa: F401  (registers the built-in methods)

    _import_package_modules()
    for ep in entry_points(group="bench.methods"):
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except Exception as exc:  # a broken plug-in must not take the others (or the run) down
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            logger.warning(
                "warning: method plug-in %r (%s) could not be loaded and was skipped: %s",
                ep.name,
                ep.value,
                reason,
            )


def _import_package_modules() -> None:
    """Import every module of the ``methods`` package, so a method module dropped into it is
    registered like the built-in ones."""
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"methods.{info.name}")
        except Exception as exc:  # a broken drop-in must not take the built-in methods down
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            logger.warning(
                "warning: methods/%s.py could not be loaded and was skipped: %s", info.name, reason
            )


def list_methods(pattern: str = "*", *, label_free: bool | None = None) -> list[str]:
    """Registered method names matching a shell-style ``pattern``, sorted; with ``label_free``,
    only the label-free baselines (True) or only the methods that train on labels (False)."""
    _load_plugins()
    names = METHODS.names(pattern)
    if label_free is None:
        return names
    return [name for name in names if METHODS.get(name).label_free == label_free]


def get_method_class(name: str) -> type[EmbeddingMethod]:
    """The class registered as ``name``; an unknown name is a BenchError listing the known ones."""
    _load_plugins()
    return METHODS.get(name)


def create_method(name: str, **params) -> EmbeddingMethod:
    """Construct the method registered as ``name`` with keyword hyperparameters.

    Names are checked here (``EmbeddingMethod.check_param_names``); values when the method
    fits, or earlier with ``check_params()``.

    Raises:
        BenchError: an unknown method name, or a hyperparameter the method does not take
            (the message lists the ones it does).
    """
    cls = get_method_class(name)
    cls.check_param_names(params)
    return cls(**params)
