"""Training throughput: each method's real ``fit`` against a bare loop and per-item pipelines.

In one process, on one torch thread, with the same trunk, batch size and data, each method's
real ``fit`` is timed against two baselines, interleaved round by round so that background load
hits all of them alike:

- the *bare loop*: index a random batch from the image tensor, forward, cross-entropy on a
  linear head, backward, Adam step, nothing else (the least a training step can cost);
- the *per-item pipeline*, in the reference experiment's style: a ``Dataset`` whose
  ``__getitem__`` builds one triplet (class-mean anchor, positive, negative) per item, reading
  the images from a Hugging Face ``datasets`` table as the reference held them, and a
  ``DataLoader`` that collates them; and the same pipeline reading rows of a pre-converted
  tensor, to show what the per-item structure itself costs.

The bare loop and the pipelines use the harness's optimizer (``build_optimizer``), so the
ratios measure what the harness adds around the model, not a faster optimizer.

Throughput is nominal images per second (``steps * batch_images / seconds``), the unit the
budget counts; the ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets.image_set import ImageSet
from bench.sampling.budget import Budget

ROUNDS = 5
PER_ITEM = "per-item pipeline (table rows)"
PER_ITEM_TENSOR = "per-item pipeline (tensor rows)"


@dataclass(frozen=True)
class TrainingRow:
    """Median throughput of one contender and its ratios to the baselines."""

    name: str
    images_per_s: float
    vs_bare: float
    vs_per_item: float
    vs_per_item_tensor: float
    #: The bare-loop ratio of CPU time (``time.process_time``): on a machine other jobs load,
    #: wall time also counts the time spent waiting for a core.
    vs_bare_cpu: float = float("nan")


# ----------------------------------------------------------------------------- baselines


def _lr(budget: Budget) -> float:
    """The baselines' learning rate: the budget's, or 1e-3 when each method brings its own
    (the rate changes what is learned, not how long a step takes)."""
    return 1e-3 if budget.lr is None else budget.lr


def bare_loop_seconds(train: ImageSet, trunk: str, budget: Budget, seed: int = 0) -> float:
    """Seconds for ``budget.steps`` steps of the bare PyTorch loop (cross-entropy head)."""
    from methods.base import build_optimizer
    from methods.trunks import build_trunk

    torch.manual_seed(seed)
    images = train.images.float()
    labels = train.labels.long()
    model = build_trunk(trunk, train.image_shape, budget.embedding_size)
    head = nn.Linear(budget.embedding_size, train.num_classes)
    optimizer = build_optimizer([*model.parameters(), *head.parameters()], _lr(budget))
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(budget.steps):
        idx = torch.randint(0, images.shape[0], (budget.batch_images,), generator=gen)
        loss = F.cross_entropy(head(model(images[idx])), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


class PerItemTriplets(torch.utils.data.Dataset):
    """The reference's input pipeline: one (mean-image anchor, positive, negative) per item.

    Args:
        train: the training split.
        seed: seeds the per-item random choices.
        rows: where ``__getitem__`` reads the positive and negative images from.
            ``"table"`` (the reference's setting): a Hugging Face ``datasets`` table with an
            ``image`` column of flattened pixel lists and a ``label`` column, each row
            converted to a tensor as it is read. ``"tensor"``: rows of one pre-converted
            float tensor, the least a per-item pipeline can cost.
    """

    def __init__(self, train: ImageSet, seed: int = 0, rows: str = "table") -> None:
        import random

        images = train.images.float()
        self.labels = train.labels.tolist()
        self.shape = tuple(train.image_shape)
        c = train.num_classes
        self.by_class = [[i for i, y in enumerate(self.labels) if y == k] for k in range(c)]
        self.means = torch.stack([images[idx].mean(0) for idx in self.by_class])
        self.rng = random.Random(seed)
        if rows == "table":
            import datasets

            self.table = datasets.Dataset.from_dict(
                {"image": images.reshape(len(self.labels), -1).tolist(), "label": self.labels}
            )
            self.read = lambda i: torch.tensor(self.table[i]["image"], dtype=torch.float32).view(self.shape)
        elif rows == "tensor":
            self.read = images.__getitem__
        else:
            raise ValueError(f"rows must be 'table' or 'tensor', got {rows!r}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        y = self.labels[i]
        positive = self.rng.choice(self.by_class[y])
        other = self.rng.choice([k for k in range(len(self.by_class)) if k != y])
        negative = self.rng.choice(self.by_class[other])
        return self.means[y], self.read(positive), self.read(negative)


def per_item_seconds(
    train: ImageSet, trunk: str, budget: Budget, seed: int = 0, rows: str = "table"
) -> float:
    """Seconds for ``budget.steps`` steps of the per-item Dataset + DataLoader triplet pipeline.

    Each step collates ``batch_images // 3`` triplets, forwards the three stacks at once and
    applies ``F.triplet_margin_loss``; Dataset construction is excluded. ``rows`` as in
    ``PerItemTriplets``.
    """
    from methods.base import build_optimizer
    from methods.trunks import build_trunk

    torch.manual_seed(seed)
    dataset = PerItemTriplets(train, seed, rows)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=max(1, budget.batch_images // 3),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model = build_trunk(trunk, train.image_shape, budget.embedding_size)
    optimizer = build_optimizer(model.parameters(), _lr(budget))
    started = time.perf_counter()
    step = 0
    while step < budget.steps:
        for anchors, positives, negatives in loader:
            t = anchors.shape[0]
            emb = F.normalize(model(torch.cat([anchors, positives, negatives])), dim=1)
            loss = F.triplet_margin_loss(emb[:t], emb[t : 2 * t], emb[2 * t :], margin=0.2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step >= budget.steps:
                break
    # The pipeline yields 3 * (batch_images // 3) images per step; count them as such.
    return (time.perf_counter() - started) * budget.batch_images / (3 * max(1, budget.batch_images // 3))


def fit_seconds(method: str, train: ImageSet, trunk: str, budget: Budget, seed: int = 0) -> float:
    """Seconds of ``create_method(method, trunk=trunk).fit(train, budget=budget)``."""
    from methods import create_method

    estimator = create_method(method, trunk=trunk)
    started = time.perf_counter()
    estimator.fit(train, budget=budget, seed=seed)
    return time.perf_counter() - started


def profile_training(
    train: ImageSet,
    methods: Sequence[str],
    trunk: str = "mlp",
    steps: int = 100,
    batch_images: int | None = None,
    rounds: int = ROUNDS,
) -> list[TrainingRow]:
    """Throughput of the baselines and of each method, measured side by side.

    Returns:
        One row for the bare loop, two for the per-item pipeline (reference-style table rows,
        then tensor rows), then one per method.
    """
    budget = Budget(steps=steps, batch_images=batch_images or Budget().batch_images)
    warm = Budget(steps=2, batch_images=budget.batch_images)
    contenders = {
        "bare loop": lambda b: bare_loop_seconds(train, trunk, b),
        PER_ITEM: lambda b: per_item_seconds(train, trunk, b, rows="table"),
        PER_ITEM_TENSOR: lambda b: per_item_seconds(train, trunk, b, rows="tensor"),
        **{m: (lambda b, m=m: fit_seconds(m, train, trunk, b)) for m in methods},
    }
    for run in contenders.values():
        run(warm)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            started = time.process_time()
            seconds[name].append(run(budget))
            cpu[name].append(time.process_time() - started)
    nominal = budget.steps * budget.batch_images

    def ratio(baseline: str, times: list[float], clock: dict = seconds) -> float:
        """Median over rounds of baseline seconds / contender seconds (same round)."""
        return statistics.median(b / t for b, t in zip(clock[baseline], times, strict=True))

    return [
        TrainingRow(
            name=name,
            images_per_s=nominal / statistics.median(times),
            vs_bare=ratio("bare loop", times),
            vs_per_item=ratio(PER_ITEM, times),
            vs_per_item_tensor=ratio(PER_ITEM_TENSOR, times),
            vs_bare_cpu=ratio("bare loop", cpu[name], cpu),
        )
        for name, times in seconds.items()
    ]
