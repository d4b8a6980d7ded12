"""The parts of a record (``bench.grid.record.Record``): one frozen dataclass per JSON object it holds.

Each part declares the fields the harness writes and reads. Keys a part does not declare (a
plug-in's own sampling counts, the lifetime ``peak_rss_mb`` of old records) are kept in
``extra`` and written back unchanged. ``to_json`` writes a field that is None as null, except the
fields declared optional, which it leaves out: so a part read from a record, or built from what
the runner measured, writes back the JSON object it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.grid.record_base import (  # noqa: F401  (re-exported: the record's readers use them)
    Part,
    RecordError,
    as_dict,
    as_tuple,
    map_of,
    required,
    slot,
    to_json,
    tuple_of,
)

#: The headline rates by the names ``bench run --target-metric`` and the report use, each with the
#: ``Metrics`` field that holds it. The seed-target rule (``bench.grid.adaptive``) and the report
#: (``bench.report``) both read them through this table (``Metrics.headline``).
HEADLINE_METRICS: dict[str, str] = {
    "accuracy": "accuracy",
    "escape": "escape_rate",
    "overkill": "overkill_rate",
}


@dataclass(frozen=True, kw_only=True)
class InputsInfo(Part):
    """How the cell's images were standardized (``bench.datasets.standardize``, ``--inputs``).

    Attributes:
        mode: ``pixel``, ``global`` or ``raw``.
        std_floor: the floor under each pixel's std (absent for ``raw``).
        floored: how many pixels the floor raised (absent for ``raw``).
    """

    mode: str | None = slot()
    std_floor: float | None = slot(optional=True)
    floored: int | None = slot(optional=True)


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(Part):
    """The cell's data as it was loaded and split.

    Attributes:
        name: the dataset's name.
        classes: the class codes, in label order.
        good: the good class's code; None for a dataset without one.
        image_shape: (height, width).
        counts: images per class code per split (``train``, ``val``, ``test``).
        source: where the images came from, in words.
        inputs: how the images were standardized; absent in records made before ``--inputs``.
        fingerprint: the data files' fingerprint (paths, sizes, times), for file-backed datasets.
        augment: the transforms applied to the training batches (``bench.datasets.augment``);
            absent where none were.
        test_views: how many flip views of each image the evaluation averaged
            (``bench.evaluation.test_views``); absent where it was one, and in records made before
            the views existed (their evaluation used the image as loaded).
    """

    name: str | None = slot()
    classes: tuple[str, ...] | None = slot(as_tuple)
    good: str | None = slot()
    image_shape: tuple[int, ...] | None = slot(as_tuple)
    counts: Mapping[str, Mapping[str, int]] | None = slot(map_of(as_dict))
    source: str | None = slot()
    inputs: InputsInfo | None = slot(InputsInfo.from_json, optional=True)
    fingerprint: str | None = slot(optional=True)
    augment: tuple[str, ...] | None = slot(as_tuple, optional=True)
    test_views: int | None = slot(optional=True)


@dataclass(frozen=True, kw_only=True)
class Costs(Part):
    """Expected cost per 1,000 parts (``bench.evaluation.metrics``).

    Attributes:
        test_mix: at the test split's good share.
        production_mix: at the production good share (``--good-share``; the test mix without one).
    """

    test_mix: float | None = slot()
    production_mix: float | None = slot()


@dataclass(frozen=True, kw_only=True)
class Confusion(Part):
    """A confusion matrix.

    Attributes:
        labels: the class codes of the rows and columns.
        matrix: counts; rows are true classes, columns predicted ones.
    """

    labels: tuple[str, ...] = slot(as_tuple, default=())
    matrix: tuple[tuple[int, ...], ...] = slot(tuple_of(as_tuple), default=())


@dataclass(frozen=True, kw_only=True)
class Metrics(Part):
    """One prediction rule's metrics on the test split (``bench.evaluation``); rates in [0, 1],
    None where undefined (no defect in the split, no good class).

    Attributes:
        n: test images.
        accuracy: the share of test images classified right.
        balanced_accuracy: the mean recall over classes.
        macro_f1: the mean F1 over classes.
        per_class_recall: recall per class code.
        confusion: the confusion matrix.
        escape_rate: defective parts judged good, of the defective ones.
        escape_rate_by_class: the same per defect class code (absent in records made before it).
        overkill_rate: good parts judged defective, of the good ones.
        defect_confusion_rate: defects given the wrong defect class, of the defective ones.
        test_good_share: the good class's share of the test split.
        cost_per_1000: expected cost per 1,000 parts.
        precision_at_1: retrieval (test queries against the training split): precision at 1.
        precision_at_1_per_class: the same, averaged per class first.
        r_precision: retrieval R-precision.
        r_precision_per_class: the same, averaged per class first.
        map_at_r: retrieval MAP@R.
        map_at_r_per_class: the same, averaged per class first.
        defect_auroc: good-vs-defect AUROC of the rule's defect score (absent before scores).
        defect_ap: good-vs-defect average precision, defect the positive class (absent before).
        overkill_at_escape: the test split's escape-vs-overkill curve (``EscapeCurve``).
        operating_points: per escape budget, the threshold chosen on validation and its rates
            (``OperatingPoint``; ``bench.grid.record_operating``).
    """

    n: int | None = slot()
    accuracy: float | None = slot()
    balanced_accuracy: float | None = slot()
    macro_f1: float | None = slot()
    per_class_recall: Mapping[str, float | None] | None = slot(as_dict)
    confusion: Confusion | None = slot(Confusion.from_json)
    escape_rate: float | None = slot()
    escape_rate_by_class: Mapping[str, float | None] | None = slot(as_dict, optional=True)
    overkill_rate: float | None = slot()
    defect_confusion_rate: float | None = slot()
    test_good_share: float | None = slot()
    cost_per_1000: Costs | None = slot(Costs.from_json)
    precision_at_1: float | None = slot()
    precision_at_1_per_class: float | None = slot()
    r_precision: float | None = slot()
    r_precision_per_class: float | None = slot()
    map_at_r: float | None = slot()
    map_at_r_per_class: float | None = slot()
    defect_auroc: float | None = slot(optional=True)
    defect_ap: float | None = slot(optional=True)
    overkill_at_escape: Any = slot(lambda v: _operating().EscapeCurve.from_json(v), optional=True)
    operating_points: tuple[Any, ...] | None = slot(lambda v: _operating().parse_points(v), optional=True)

    def headline(self, name: str) -> float | None:
        """The headline rate ``name`` (a key of ``HEADLINE_METRICS``: accuracy, escape, overkill)."""
        return getattr(self, HEADLINE_METRICS[name])


def _operating() -> Any:
    from bench.grid import record_operating  # its parts build on this module's Part

    return record_operating


@dataclass(frozen=True, kw_only=True)
class ValMetrics(Part):
    """One prediction rule's few headline numbers on the validation split (rates in [0, 1]).

    Attributes:
        accuracy: the share of validation images classified right.
        balanced_accuracy: the mean recall over classes.
        macro_f1: the mean F1 over classes.
        escape_rate: defective parts judged good, of the defective ones.
        overkill_rate: good parts judged defective, of the good ones.
        cost_per_1000: the expected cost per 1,000 parts at the split's own good share.
    """

    accuracy: float | None = slot()
    balanced_accuracy: float | None = slot()
    macro_f1: float | None = slot()
    escape_rate: float | None = slot()
    overkill_rate: float | None = slot()
    cost_per_1000: float | None = slot()


@dataclass(frozen=True, kw_only=True)
class Sampling(Part):
    """What the method drew while it trained (its ``sampling_``); a method may add its own keys.

    Attributes:
        anchor_counts: anchors (or first pair elements, or batch images) drawn per class code.
        negative_counts: negatives drawn per class code (empty where the method has none).
        tuples: what the loss scored over the run (pairs, triplets, images).
        images_seen: nominal training images (steps x images per step).
        forward_images: images actually put through the trunk.
        active_share: the share of scored tuples with a non-zero loss, averaged over steps.
        steps: optimizer steps.
    """

    anchor_counts: Mapping[str, int] | None = slot(as_dict, optional=True)
    negative_counts: Mapping[str, int] | None = slot(as_dict, optional=True)
    tuples: int | None = slot(optional=True)
    images_seen: int | None = slot(optional=True)
    forward_images: int | None = slot(optional=True)
    active_share: float | None = slot(optional=True)
    steps: int | None = slot(optional=True)


@dataclass(frozen=True, kw_only=True)
class LossCurve(Part):
    """The training loss over a run.

    Attributes:
        step: each window's last step.
        loss: each window's mean training loss.
    """

    step: tuple[int, ...] = slot(as_tuple, default=())
    loss: tuple[float, ...] = slot(as_tuple, default=())


@dataclass(frozen=True, kw_only=True)
class Checkpoint(Part):
    """Checkpoint selection (``budget.eval_every > 0``): the validation curve and the step kept.

    Attributes:
        selected_step: the step whose weights the method kept (the best validation 1-NN accuracy).
        val_accuracy: that step's validation 1-NN accuracy.
        step: the step of each validation check.
        accuracy: each check's validation 1-NN accuracy.
    """

    selected_step: int | None = slot()
    val_accuracy: float | None = slot()
    step: tuple[int, ...] = slot(as_tuple, default=())
    accuracy: tuple[float, ...] = slot(as_tuple, default=())


@dataclass(frozen=True, kw_only=True)
class Health(Part):
    """Training health (``bench.evaluation.health``): whether the fit collapsed, and why.

    Attributes:
        effective_rank: RankMe of the test embeddings.
        pc1_share: the share of their variance on the first principal component.
        final_loss: the last window's mean training loss.
        collapse_loss: the loss of a fit whose embeddings all sit at one point (None: no such value).
        signs: each collapse sign (``one_direction``, ``low_rank``, ``stuck_loss``, and from rule 2
            ``no_class_signal``) and whether it shows.
        collapsed: whether the rule flags the cell.
        loss_curve: the training loss over the run.
        class_signal: ``(P - 1/C) / (1 - 1/C)``, P the test split's precision@1 per class (rule 2
            on; absent in older records).
        rule: the version of the ``collapsed`` rule that set the flag (absent: rule 1).
    """

    effective_rank: float | None = slot()
    pc1_share: float | None = slot()
    final_loss: float | None = slot()
    collapse_loss: float | None = slot()
    signs: Mapping[str, bool] | None = slot(as_dict)
    collapsed: bool | None = slot()
    loss_curve: LossCurve | None = slot(LossCurve.from_json)
    class_signal: float | None = slot(optional=True)
    rule: int | None = slot(optional=True)


@dataclass(frozen=True, kw_only=True)
class Timing(Part):
    """Wall times, throughputs and peak memory of one cell.

    Attributes:
        train_s: wall time of the fit.
        train_images_per_s: nominal training images per second.
        embed_images_per_s: images embedded per second during evaluation.
        eval_s: wall time of the evaluation.
        fit_eval_peak_rss_mb: the most resident memory fit and evaluation added (None where the
            platform cannot measure it).
        fit_eval_peak_cuda_mb: the CUDA allocator's peak (absent off CUDA).
    """

    train_s: float | None = slot()
    train_images_per_s: float | None = slot()
    embed_images_per_s: float | None = slot()
    eval_s: float | None = slot()
    fit_eval_peak_rss_mb: float | None = slot()
    fit_eval_peak_cuda_mb: float | None = slot(optional=True)


@dataclass(frozen=True, kw_only=True)
class Projection(Part):
    """A 2-D PCA projection of a sample of the test embeddings, for the scatter plot.

    Attributes:
        x: first coordinates.
        y: second coordinates.
        label: each point's class code.
    """

    x: tuple[float, ...] = slot(as_tuple, default=())
    y: tuple[float, ...] = slot(as_tuple, default=())
    label: tuple[str, ...] = slot(as_tuple, default=())
