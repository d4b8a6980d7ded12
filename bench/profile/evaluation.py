"""Evaluation cost: ``evaluate`` against its own distance computation, and growth with size.

``profile_evaluation`` runs ``evaluate`` (embedding, every rule, the retrieval metrics) on a
Fashion-MNIST-sized synthetic problem (60,000 training references, 10,000 test queries, 28 x 28
images, 128-d) and, in the same rounds, computes the distance matrix of the test queries
against the references alone; ``profile_growth`` times training and evaluation as the dataset
and the embedding size grow.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from bench.datasets.image_set import ImageSet, Splits
from bench.profile.training import fit_seconds
from bench.sampling.budget import Budget


def synthetic_splits(
    references: int = 60_000, queries: int = 10_000, classes: int = 10, shape=(28, 28), seed: int = 0
) -> Splits:
    """A Fashion-MNIST-shaped problem: class prototypes plus noise, balanced classes.

    Train has ``references`` images, test ``queries``, val ``queries // 5``.
    """
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(classes, *shape, generator=g)
    codes = tuple(str(c) for c in range(classes))

    def split(n: int, name: str) -> ImageSet:
        labels = torch.arange(n) % classes
        images = (prototypes[labels] + 0.5 * torch.rand(n, *shape, generator=g)).clamp(0, 1)
        return ImageSet(images, labels, codes, 0, name)

    return Splits(
        split(references, "train"), split(max(classes, queries // 5), "val"), split(queries, "test")
    )


def distance_seconds(query: torch.Tensor, reference: torch.Tensor) -> float:
    """Seconds to compute the (n, m) distance matrix that evaluation ranks by: the library's
    ``LpDistance(normalize_embeddings=True)`` (``torch.cdist`` of the L2-normalized embeddings),
    in the search's blocks of queries, each block computed and dropped."""
    from bench.evaluation.neighbours import QUERY_BLOCK

    started = time.perf_counter()
    r = F.normalize(reference, dim=1)
    for start in range(0, len(query), QUERY_BLOCK):
        torch.cdist(F.normalize(query[start : start + QUERY_BLOCK], dim=1), r)
    return time.perf_counter() - started


def profile_evaluation(
    references: int = 60_000,
    queries: int = 10_000,
    embedding_size: int = 128,
    trunk: str = "mlp",
    rounds: int = 1,
) -> dict[str, float]:
    """Seconds of ``evaluate`` (embedding, every rule, retrieval) on ``synthetic_splits``, and
    of its own distance computation (the test queries against the references), measured in
    interleaved rounds; the ratio is the median of the per-round ratios, of wall time and of CPU
    time (which a machine loaded by other jobs does not inflate by the waits for a core).

    The method is a classifier fitted for 2 steps: its weights do not change the cost, and
    it has a head, so the ``head`` rule is timed too.
    """
    from bench.evaluation.evaluate import evaluate
    from methods import create_method

    splits = synthetic_splits(references, queries)
    method = create_method("classifier", trunk=trunk)
    budget = Budget(steps=2, batch_images=64, embedding_size=embedding_size)
    started = time.perf_counter()
    method.fit(splits.train, budget=budget, seed=0)
    fit_s = time.perf_counter() - started
    test_emb, train_emb = method.embed(splits.test.images), method.embed(splits.train.images)
    distance, whole, embedding, cpu, operating = [], [], [], [], []
    for _ in range(rounds):
        started = time.process_time()
        distance.append(distance_seconds(test_emb, train_emb))
        middle = time.process_time()
        out = evaluate(method, splits, embed_sample=0)
        cpu.append((time.process_time() - middle) / (middle - started))
        whole.append(out["eval_s"])
        operating.append(out["operating_s"] / out["eval_s"])
        embedded = len(splits.train) + len(splits.val) + len(splits.test)
        embedding.append(embedded / out["embed_images_per_s"] if out["embed_images_per_s"] else 0.0)
    eval_s, embed_s = statistics.median(whole), statistics.median(embedding)
    return {
        "references": references,
        "queries": queries,
        "embedding_size": embedding_size,
        "fit_2_steps_s": fit_s,
        "eval_s": eval_s,
        "distance_s": statistics.median(distance),
        "eval_vs_distance": statistics.median(w / d for w, d in zip(whole, distance, strict=True)),
        "eval_vs_distance_cpu": statistics.median(cpu),
        "embed_s": embed_s,
        "search_and_metrics_s": eval_s - embed_s,
        "operating_share": statistics.median(operating),
    }


def profile_growth(
    sizes: Sequence[int] = (1_000, 10_000, 60_000),
    embedding_sizes: Sequence[int] = (32, 128, 512),
    steps: int = 50,
    method: str = "mined-triplet",
    trunk: str = "mlp",
) -> list[dict[str, float]]:
    """Training and evaluation seconds as the dataset (at 128-d) and the embedding grow.

    The dataset of ``n`` images is split 6 : 1 into references and queries, like
    Fashion-MNIST's 60,000 / 10,000; the embedding sweep runs at the middle size.
    """
    cells = [(n, 128) for n in sizes] + [
        (sorted(sizes)[len(sizes) // 2], d) for d in embedding_sizes if d != 128
    ]
    rows = []
    for n, d in cells:
        references, queries = n * 6 // 7, n // 7
        splits = synthetic_splits(references, queries)
        budget = Budget(steps=steps, embedding_size=d)
        fit_s = fit_seconds(method, splits.train, trunk, budget)
        row = profile_evaluation(references, queries, d, trunk)
        rows.append({"images": n, "embedding_size": d, f"fit_{steps}_steps_s": fit_s, **row})
    return rows
