"""A dataset's recommended parameters: the tuned method parameters it ships with.

A source may declare a file of method parameters that a committed tuning chose for it
(``register_recommended``); ``python -m bench run --all`` on that source runs them, the way
``--params-from`` runs a tuning's (``bench.cli.params_from``), and each record names them as its
``params_source``. The file is a copy of the tuning's ``tuned.toml`` kept in the package
(``recommended_params/``), so an installed bench has it without the repository's ``results/``;
``tests/test_recommended.py`` checks the copy against the tuning it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Where the shipped files live (package data).
RECOMMENDED_DIR = Path(__file__).parent / "recommended_params"


@dataclass(frozen=True)
class Recommended:
    """A dataset's recommended parameters.

    Attributes:
        dataset: the source they are for.
        path: the shipped copy of the tuning's ``tuned.toml``.
        tuned_in: the tuning directory they were copied from (relative to the repository root),
            named in each record's ``params_source``.
    """

    dataset: str
    path: Path
    tuned_in: str

    def source_text(self, tuned_source: str | None) -> str:
        """A record's ``params_source``: ``recommended for inspection, from results/tune-inspection``
        and what the tuning said of the trial (``trial 6 of 30, validation knn5 accuracy ...``)."""
        head = f"recommended for {self.dataset}, from {self.tuned_in}"
        detail = (tuned_source or "").removeprefix(f"tuned in {self.tuned_in}: ")
        return f"{head}: {detail}" if detail else head


_RECOMMENDED: dict[str, Recommended] = {}


def register_recommended(dataset: str, file: str, tuned_in: str) -> Recommended:
    """Declare ``RECOMMENDED_DIR / file`` as ``dataset``'s recommended parameters, copied from
    the tuning in ``tuned_in``; a second declaration for the same dataset replaces the first."""
    entry = Recommended(dataset, RECOMMENDED_DIR / file, tuned_in)
    _RECOMMENDED[dataset] = entry
    return entry


def recommended_for(dataset: str) -> Recommended | None:
    """The recommended parameters ``dataset`` declares, or None (the methods' defaults). The
    built-in sources declare theirs when ``bench.datasets`` is imported."""
    return _RECOMMENDED.get(dataset)
