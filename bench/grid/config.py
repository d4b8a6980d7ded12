"""Cell and grid configurations: frozen, hashable, and stable across runs and machines."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.core.canonical import canonical_json
from bench.core.errors import BenchError
from bench.datasets.augment import check_augment
from bench.datasets.standardize import DEFAULT_INPUTS, LEGACY_INPUTS, check_inputs
from bench.evaluation.operating import DEFAULT_ESCAPE_BUDGETS, check_budgets
from bench.grid.adaptive import SeedTarget
from bench.sampling.budget import LR_PARAM, Budget, method_budget

#: The split seed of new grids: every seed is tested on the same images.
DEFAULT_SPLIT_SEED = 0
#: What a grid file written by bench (a run directory's ``config.toml``, a ``tuned.toml``) means
#: by a key it lacks: it was written before the key existed, so its records were made under the
#: older defaults (raw pixels; each seed its own test split).
WRITTEN_BEFORE = {"inputs": LEGACY_INPUTS, "split_seed": None}


@dataclass(frozen=True)
class CellConfig:
    """One grid cell: everything that determines its result.

    Two cells with the same fields have the same ``hash`` on every machine, which is what makes
    ``--resume`` skip finished work. Device and thread count are *not* part of the cell: they
    change speed, not what is computed.

    ``inputs`` (how images are standardized) is in the hash except at its legacy value
    ``raw``: records made before it existed were made on raw pixels and keep their hashes (the
    record reader, ``bench.grid.record``, reads their missing key as ``raw``).

    ``augment`` is None for the dataset's own augmentation (``ImageSet.augment``), or the
    transforms that replace it (``()`` for none); it is in the hash only when given, so cells
    made before it existed keep their hashes.

    ``split_seed`` chooses the test images (``bench.datasets.split_dataset``); the seed chooses
    the validation images among the others, the training draws and the initialisation. None is
    the older protocol, where the seed chose the test images too: records made before the field
    existed keep their hashes (``hash`` leaves None out; the record reader reads their missing
    key as None).

    ``escape_budgets`` (the operating points' escape budgets, ``--escape-budget``) is in the hash
    and ``to_dict`` except at its default, 1%: a cell at the default is the cell it was before the
    budgets existed.
    """

    dataset: str
    method: str
    scheme: str
    seed: int
    trunk: str = "mlp"
    budget: Budget = field(default_factory=Budget)
    params: tuple[tuple[str, Any], ...] = ()
    dataset_options: tuple[tuple[str, Any], ...] = ()
    scheme_options: tuple[tuple[str, Any], ...] = ()
    headline_rule: str = "knn5"
    cost_escape: float = 10.0
    cost_overkill: float = 1.0
    good_share: float | None = None
    inputs: str = DEFAULT_INPUTS
    split_seed: int | None = DEFAULT_SPLIT_SEED
    augment: tuple[str, ...] | None = None
    escape_budgets: tuple[float, ...] = DEFAULT_ESCAPE_BUDGETS

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("params", "dataset_options", "scheme_options"):
            out[key] = dict(getattr(self, key))
        out["budget"] = self.budget.to_dict()
        if self.augment is None:
            del out["augment"]
        else:
            out["augment"] = list(self.augment)
        # Left out at the default, so a record written before budgets existed reads back the same.
        if tuple(self.escape_budgets) == DEFAULT_ESCAPE_BUDGETS:
            del out["escape_budgets"]
        else:
            out["escape_budgets"] = list(self.escape_budgets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellConfig:
        data = dict(data)
        data["budget"] = Budget(**data.get("budget", {}))
        data["escape_budgets"] = tuple(data.get("escape_budgets", DEFAULT_ESCAPE_BUDGETS))
        for key in ("params", "dataset_options", "scheme_options"):
            data[key] = _frozen_items(data.get(key) or {})
        if data.get("augment") is not None:
            data["augment"] = tuple(data["augment"])
        return cls(**data)

    @property
    def hash(self) -> str:
        """16 hex digits of SHA-256 over the canonical JSON of the config."""
        identity = self.to_dict()
        if identity["inputs"] == LEGACY_INPUTS:
            del identity["inputs"]
        if identity["split_seed"] is None:
            del identity["split_seed"]
        return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]

    @property
    def params_dict(self) -> dict[str, Any]:
        """The method parameters as a dict (``lr`` included when the method has its own)."""
        return dict(self.params)

    @property
    def label(self) -> str:
        return f"{self.method} / {self.scheme} / seed {self.seed}"


def _frozen_items(mapping: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), v) for k, v in mapping.items()))


@dataclass(frozen=True)
class GridConfig:
    """A whole run: the product methods x schemes x seeds on one dataset, trunk and budget."""

    dataset: str = "inspection"
    methods: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    trunk: str = "mlp"
    budget: Budget = field(default_factory=Budget)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    scheme_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    headline_rule: str = "knn5"
    cost_escape: float = 10.0
    cost_overkill: float = 1.0
    good_share: float | None = None
    inputs: str = DEFAULT_INPUTS
    #: Chooses the test images of every cell (None: each seed its own, the older protocol).
    split_seed: int | None = DEFAULT_SPLIT_SEED
    #: The transforms applied to every method's training batches: None for the dataset's own
    #: (``ImageSet.augment``), or the names that replace them (``()`` for none).
    augment: tuple[str, ...] | None = None
    #: The operating points' escape budgets (shares of defective parts, ``--escape-budget``).
    escape_budgets: tuple[float, ...] = DEFAULT_ESCAPE_BUDGETS
    #: Where each method's parameters came from (e.g. a tuning directory); stamped on its
    #: records, not part of any cell's hash. Methods not named use their defaults and ``method_params``.
    params_source: dict[str, str] = field(default_factory=dict)
    seed_target: SeedTarget | None = None

    def __post_init__(self) -> None:
        def names(key: str) -> None:
            value = getattr(self, key)
            if not isinstance(value, tuple | list) or not all(isinstance(v, str) and v for v in value):
                raise BenchError(f"{key} must be a list of names (got {value!r})")

        names("methods")
        names("schemes")
        if (
            not isinstance(self.seeds, tuple | list)
            or not self.seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in self.seeds)
        ):
            raise BenchError(
                f"seeds must be a non-empty list of whole numbers in [0, 2^31) (got {self.seeds!r})"
            )
        for key in ("dataset", "trunk", "headline_rule", "inputs"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise BenchError(f"{key} must be a name (got {getattr(self, key)!r})")
        check_inputs(self.inputs)
        split = self.split_seed
        if split is not None and (
            isinstance(split, bool) or not isinstance(split, int) or not 0 <= split < 2**31
        ):
            raise BenchError(f"split_seed must be a whole number in [0, 2^31) (got {split!r})")
        if self.augment is not None:
            object.__setattr__(self, "augment", check_augment(self.augment))
        if not isinstance(self.escape_budgets, tuple | list):
            raise BenchError(f"escape_budgets must be a list of shares (got {self.escape_budgets!r})")
        object.__setattr__(self, "escape_budgets", check_budgets(self.escape_budgets))
        for key in ("cost_escape", "cost_overkill"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise BenchError(f"{key} must be a finite number >= 0 (got {value!r})")
        share = self.good_share
        if share is not None and (
            isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1
        ):
            raise BenchError(f"good_share must be a number between 0 and 1 (got {share!r})")
        if not isinstance(self.budget, Budget):
            raise BenchError(f"budget must be a table of {', '.join(Budget().to_dict())}")
        if not isinstance(self.dataset_options, dict):
            raise BenchError("dataset_options must be a table")
        for key in ("scheme_options", "method_params"):
            table = getattr(self, key)
            if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
                raise BenchError(f"{key} must be a table of tables, one per name")
        for params in self.method_params.values():
            method_budget(self.budget, params)  # a per-method lr must be a valid budget lr
        source = self.params_source
        if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
            raise BenchError("params_source must be a table of texts, one per method")
        target = self.seed_target
        if target is not None:
            if not isinstance(target, SeedTarget):
                raise BenchError("seed_target must be a table (ci, diff_ci, against, metric, max_seeds)")
            if target.max_seeds < len(self.seeds):
                raise BenchError(
                    f"max_seeds ({target.max_seeds}) is below the {len(self.seeds)} start seeds; raise"
                    " --max-seeds or start with fewer --seeds"
                )
            if target.diff_ci is not None and target.against not in self.schemes:
                raise BenchError(
                    f"--target-diff-ci compares against {target.against!r}, which is not among the"
                    f" grid's schemes ({', '.join(map(repr, self.schemes))}); add it or choose --against"
                )

    def cell(self, method: str, scheme: str, seed: int) -> CellConfig:
        """The cell of ``method`` x ``scheme`` x ``seed`` on this grid's data, trunk and budget."""
        return CellConfig(
            dataset=self.dataset,
            method=method,
            scheme=scheme,
            seed=seed,
            trunk=self.trunk,
            budget=self.budget,
            params=_frozen_items(self.cell_params(method)),
            dataset_options=_frozen_items(self.dataset_options),
            scheme_options=_frozen_items(self.scheme_options.get(scheme, {})),
            headline_rule=self.headline_rule,
            cost_escape=self.cost_escape,
            cost_overkill=self.cost_overkill,
            good_share=self.good_share,
            inputs=self.inputs,
            split_seed=self.split_seed,
            augment=self.augment,
            escape_budgets=self.escape_budgets,
        )

    def cell_params(self, method: str) -> dict[str, Any]:
        """The parameters ``method``'s cells carry: its ``method_params``, and, when the budget
        sets no ``lr`` and neither do they, the method's ``default_lr`` as its ``lr``; so every
        cell's hash and record name the rate it trains with (a budget that sets ``lr``, as every
        grid before per-method rates did, leaves the cells as they were). A label-free method,
        which trains nothing, or a name no method has, gets its ``method_params`` alone."""
        params = dict(self.method_params.get(method, {}))
        if self.budget.lr is not None or LR_PARAM in params:
            return params
        from methods import get_method_class

        try:
            cls = get_method_class(method)
        except BenchError:
            return params
        return params if cls.label_free else {**params, LR_PARAM: cls.default_lr}

    def cells(self) -> list[CellConfig]:
        """Cells in run order: seed-major, so a partial run already holds whole seeds. With a
        ``seed_target`` these are the start seeds; ``bench.grid.adaptive`` adds the rest."""
        return [self.cell(m, s, seed) for seed in self.seeds for m in self.methods for s in self.schemes]

    def to_toml(self) -> str:
        """The resolved grid as TOML (read back by ``load_grid_toml``)."""
        lines = [
            f"dataset = {_toml(self.dataset)}",
            f"methods = {_toml(list(self.methods))}",
            f"schemes = {_toml(list(self.schemes))}",
            f"seeds = {_toml(list(self.seeds))}",
            f"trunk = {_toml(self.trunk)}",
            f"inputs = {_toml(self.inputs)}",
            *([f"split_seed = {self.split_seed}"] if self.split_seed is not None else []),
            f"headline_rule = {_toml(self.headline_rule)}",
            f"cost_escape = {_toml(self.cost_escape)}",
            f"cost_overkill = {_toml(self.cost_overkill)}",
        ]
        if self.escape_budgets != DEFAULT_ESCAPE_BUDGETS:
            lines.append(f"escape_budgets = {_toml(list(self.escape_budgets))}")
        if self.good_share is not None:
            lines.append(f"good_share = {_toml(self.good_share)}")
        if self.augment is not None:
            lines.append(f"augment = {_toml(list(self.augment))}")
        lines += ["", "[budget]"] + [f"{k} = {_toml(v)}" for k, v in self.budget.to_dict().items()]
        if self.seed_target is not None:
            lines += ["", "[seed_target]"] + [
                f"{k} = {_toml(v)}" for k, v in self.seed_target.to_dict().items()
            ]
        for title, table in (("dataset_options", self.dataset_options),):
            if table:
                lines += ["", f"[{title}]"] + [f"{k} = {_toml(v)}" for k, v in sorted(table.items())]
        for title, nested in (("scheme_options", self.scheme_options), ("method_params", self.method_params)):
            for name, table in sorted(nested.items()):
                if table:
                    lines += ["", f'[{title}."{name}"]'] + [
                        f"{k} = {_toml(v)}" for k, v in sorted(table.items())
                    ]
        if self.params_source:
            lines += ["", "[params_source]"] + [
                f"{_toml(m)} = {_toml(v)}" for m, v in sorted(self.params_source.items())
            ]
        return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    # json's literals are valid TOML for the str / int / float / bool / list values a grid holds.
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


GRID_KEYS = {f.name for f in fields(GridConfig)}


def load_grid_toml(path: Path) -> dict[str, Any]:
    """Read a TOML grid file into GridConfig keyword arguments.

    Raises:
        BenchError: missing or unreadable file, invalid TOML, or unknown keys.
    """
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"config file {str(path)!r} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - GRID_KEYS)
    if unknown:
        raise BenchError(
            f"config file {str(path)!r} has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(GRID_KEYS))}"
        )
    out: dict[str, Any] = dict(raw)
    if "budget" in out:
        budget_keys = {f.name for f in fields(Budget)}
        bad = sorted(set(out["budget"]) - budget_keys)
        if bad:
            raise BenchError(
                f"config file {str(path)!r} has unknown budget key(s) {', '.join(bad)}; valid: {', '.join(sorted(budget_keys))}"
            )
        if not isinstance(out["budget"], dict):
            raise BenchError(f"config file {str(path)!r}: budget must be a table")
        out["budget"] = Budget(**out["budget"])
    if "seed_target" in out:
        table = out["seed_target"]
        known = {f.name for f in fields(SeedTarget)}
        if not isinstance(table, dict) or set(table) - known:
            raise BenchError(
                f"config file {str(path)!r}: seed_target must be a table of {', '.join(sorted(known))}"
            )
        out["seed_target"] = SeedTarget(**table)
    for key in ("methods", "schemes", "seeds", "augment", "escape_budgets"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def load_written_grid(path: Path) -> dict[str, Any]:
    """``load_grid_toml`` for a grid file bench wrote (a run directory's ``config.toml``, a
    tuning's ``tuned.toml``): a key it lacks means what it meant when the file was written
    (``WRITTEN_BEFORE``), so an old directory reads as the grid its records were made with.
    The one place that converts older grid files; a user's ``--config`` file gets today's defaults."""
    return {**WRITTEN_BEFORE, **load_grid_toml(path)}
