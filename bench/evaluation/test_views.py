"""Test-time views: what a method outputs for an image is the mean over the image's flipped views.

A dataset whose labels survive flips declares them as its training augmentation
(``bench.datasets.augment``: ``elpv`` declares ``("hflip", "vflip")``). A fitted network is not
exactly flip-invariant, so one image and its mirror get different embeddings; averaging them
removes that part of the noise. The evaluation therefore embeds every image it scores (the
training references, the validation and test images, the class-mean images) in each combination
of the augmentation's flips (with ``hflip, vflip``: as loaded, mirrored left-right, top-bottom,
and both) and uses the mean: the mean embedding, the mean head logits, the mean defect score.

It is one rule for every method, applied here and never inside a method, so no method gains
from it more than the shared pipeline gives. Without flips (every dataset but ``elpv`` by
default, or ``--augment none``) there is one view, and the method's outputs are used as they
are: evaluation is bit for bit what it was before views existed. On ELPV (classifier, 48 px,
one seed) the views lifted 5-NN accuracy on the four levels from 73.2% to 76.2%
(``docs/datasets-elpv.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import torch

from bench.datasets.augment import FLIP_DIMS


def flip_views(augment: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
    """The image dimensions each view reverses: every combination of ``augment``'s flips.

    ``()`` (the image as loaded) comes first; transforms that are not flips add no view.
    """
    dims = [FLIP_DIMS[name] for name in augment if name in FLIP_DIMS]
    return tuple(combo for size in range(len(dims) + 1) for combo in combinations(dims, size))


def _averaged(output: Callable[..., Any], views: tuple[tuple[int, ...], ...]) -> Callable[..., Any]:
    def mean_over_views(images: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        total = None
        for dims in views:
            out = output(images.flip(dims) if dims else images, *args, **kwargs)
            if out is None:
                return None
            out = out.detach().float()
            total = out if total is None else total + out
        return total / len(views)

    return mean_over_views


class ViewAveraged:
    """A fitted method whose ``embed``, ``predict_head`` and ``defect_score`` (those it has) answer
    with the mean over ``views``; every other attribute is the method's own."""

    def __init__(self, method: Any, views: tuple[tuple[int, ...], ...]) -> None:
        self._method = method
        self.views = views
        for name in ("embed", "predict_head", "defect_score"):
            output = getattr(method, name, None)
            if output is not None:
                setattr(self, name, _averaged(output, views))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)


def with_test_views(method: Any, augment: tuple[str, ...]) -> Any:
    """``method`` itself when ``augment`` has no flips, else the method averaged over its flip views."""
    views = flip_views(augment)
    return method if len(views) == 1 else ViewAveraged(method, views)
