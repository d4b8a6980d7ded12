"""What ``bench run --dry-run`` checks and prints besides the grid: everything short of training.

The dataset is loaded (a missing one is an error, exit 2), split as the first cell would split it
and every scheme's plan is built over its training classes; the classes, the good class and the
split counts are printed as TOML comments under the grid, so the output stays a valid grid file.
"""

from __future__ import annotations

from bench.datasets import good_class_note
from bench.grid.config import GridConfig


def split_protocol(grid: GridConfig) -> str:
    """How the grid's test images are chosen, in a few words."""
    if grid.split_seed is None:
        return "test split varied with the seed (older protocol)"
    return f"test split fixed by split seed {grid.split_seed}; the seeds draw validation from the rest"


def data_lines(grid: GridConfig) -> list[str]:
    """Load and split the grid's data and build its plans; the comment lines that describe them.

    Raises:
        BenchError: the dataset does not load, a class is too small to split, a scheme does not
            apply to the data.
    """
    from bench.cli.run import check_data
    from bench.grid.driver import shared_schemes
    from bench.grid.runner import prepare_data

    check_data(grid)  # loads, splits and builds every scheme's plan
    splits = prepare_data(grid.dataset, dict(grid.dataset_options), grid.seeds[0], grid.split_seed)
    data = splits.train
    note, warn = good_class_note(data, grid.dataset_options.get("good"))
    counts = {name: len(part) for name, part in (("train", data), ("val", splits.val), ("test", splits.test))}
    shape = " x ".join(map(str, data.image_shape))
    shared = [
        f"# {scheme} gives the weights of {trained} on this data: trained once, as {trained}"
        for scheme, trained in shared_schemes(grid).items()
    ]
    return [
        f"# dataset {data.name}: {data.num_classes} classes ({', '.join(data.classes)}), images {shape}",
        f"# {'warning: ' if warn else ''}{note}",
        f"# split (seed {grid.seeds[0]}): "
        + ", ".join(f"{name} {n}" for name, n in counts.items())
        + f" images; {split_protocol(grid)}",
        *shared,
    ]
