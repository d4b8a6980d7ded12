"""What a method's hooks read while ``fit`` runs: the training tensors and the draw tools.

``EmbeddingMethod.fit`` sets them up before ``_prepare`` and drops the large ones when it
returns; these read-only accessors are the documented way to reach them from ``_prepare``,
``_draw`` and ``_loss`` (outside ``fit`` they raise a BenchError that says so).
"""

from __future__ import annotations

import torch

from bench.core.errors import BenchError
from methods.sampling import ClassIndex


class FitData:
    """Read-only accessors to the state ``fit`` prepares, mixed into ``EmbeddingMethod``.

    Their names are reserved: a method's hyperparameters must not use them.
    """

    def _fit_state(self, attr: str, public: str):
        value = self.__dict__.get(attr)
        if value is None:
            name = getattr(self, "name", type(self).__name__)
            raise BenchError(f"{name}: {public} is set up by fit(); read it in _prepare, _draw or _loss")
        return value

    @property
    def train_images(self) -> torch.Tensor:
        """The training split's images, float32 ``(n, h, w)`` on the training device (during fit)."""
        return self._fit_state("_images", "train_images")

    @property
    def train_labels(self) -> torch.Tensor:
        """The class index (0..C-1, int64, ``(n,)``) of each of ``train_images`` (during fit);
        ``classes_[i]`` is the label code of index ``i``."""
        return self._fit_state("_labels", "train_labels")

    @property
    def class_index(self) -> ClassIndex:
        """Training positions grouped by class, with vectorized draws (during fit):
        ``draw_classes(weights, n, generator)``, ``draw_in_class(classes, generator)``,
        ``draw_negatives(classes, generator, by="image" | "class")``, ``draw_outside_class``,
        ``draw_other_classes``. Every position it returns indexes ``train_images``."""
        return self._fit_state("_index", "class_index")

    @property
    def generator(self) -> torch.Generator:
        """The fit's random generator on the training device, seeded by ``fit(seed=...)``
        (during fit). Pass it to every draw, so that one seed gives one run."""
        return self._fit_state("_generator", "generator")

    @property
    def batch_images(self) -> int:
        """Nominal images per step, the budget every method shares: a triplet counts three
        images, a pair two, whatever is actually forwarded (from fit on)."""
        return int(self._fit_state("budget_", "batch_images").batch_images)

    @property
    def num_classes(self) -> int:
        """C, the number of classes in the training split (from fit on)."""
        return len(self._fit_state("classes_", "num_classes"))
