"""Fixtures of the pytest-benchmark suite: data sized like the real runs, built once.

Run for timings with ``pytest tests/benchmarks --benchmark-enable --benchmark-only``; an
ordinary test run executes every benchmark once as a smoke test (``--benchmark-disable`` is
in the project's addopts).
"""

from __future__ import annotations

import pytest
import torch

from bench.datasets import load_dataset, split_dataset
from bench.profile.evaluation import synthetic_splits
from bench.sampling.budget import Budget

EMBED_IMAGES = 10_000
RULE_QUERIES = 10_000
RULE_REFERENCES = 10_000


@pytest.fixture(scope="session")
def inspection_train():
    """The training split of the default data set."""
    return split_dataset(load_dataset("inspection"), seed=0).train


@pytest.fixture(scope="session")
def default_budget():
    return Budget()


@pytest.fixture(scope="session")
def embed_images():
    """10,000 Fashion-MNIST-shaped images (28 x 28)."""
    return synthetic_splits(references=EMBED_IMAGES, queries=10, classes=10).train.images


@pytest.fixture(scope="session")
def rule_problem():
    """10,000 query and 10,000 reference embeddings (128-d, 10 classes) with labels.

    The classes overlap (noise 3x the spread of the centres: 1-NN is right for 79% of the queries,
    5-NN for 90%, the nearest centre for 97%), so the rules disagree on many queries and the smoke
    tests can tell them apart.
    """
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 128, generator=g)
    ref_labels = torch.arange(RULE_REFERENCES) % 10
    query_labels = torch.arange(RULE_QUERIES) % 10
    ref = centres[ref_labels] + 3 * torch.randn(RULE_REFERENCES, 128, generator=g)
    query = centres[query_labels] + 3 * torch.randn(RULE_QUERIES, 128, generator=g)
    return {
        "train_emb": ref,
        "train_labels": ref_labels,
        "query_emb": query,
        "query_labels": query_labels,
        "mean_image_emb": centres,
        "head_logits": torch.randn(RULE_QUERIES, 10, generator=g),
    }
