"""The contract every embedding method meets, and the training loop they all share.

``EmbeddingMethod.fit`` is a template: seed, build the shared trunk, Adam, then for each of
``budget.steps`` steps draw a batch with the method's ``_draw`` hook, compute the loss with
its ``_loss`` hook, backward, step, and bookkeeping. A method therefore only decides *what
it draws* and *how it scores it*; trunk, optimizer, step count and nominal images per step
are the same for all (the fairness the comparison rests on).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.sampling.budget import Budget
from bench.sampling.plan import BalancePlan
from methods.batch import Batch, StepLoss
from methods.checks import check_choice, check_positive, per_tuple_reduce
from methods.fit_data import FitData
from methods.sampling import ClassIndex, plan_weight_table
from methods.trunks import build_trunk, list_trunks

__all__ = [
    "RECORD_EVERY",
    "Batch",
    "EmbeddingMethod",
    "StepLoss",
    "TrainingDiverged",
    "build_optimizer",
    "check_choice",
    "check_positive",
    "per_tuple_reduce",
]

#: Steps between loss records, divergence checks and progress calls.
RECORD_EVERY = 10


def build_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """The optimizer every method (and the profile's baselines) trains with: Adam.

    ``fused=True`` updates every parameter in one kernel pass instead of the default
    per-parameter sequence of about ten element-wise ops. On one CPU thread that pass is
    about a sixth of the default's cost, which was a third of the reference MLP's whole
    training step (fit 1.2 to 1.4x faster, measured). Its rounding differs from the default
    loop's in the last bits, so records made before this choice do not rerun bit for bit.
    """
    return torch.optim.Adam(params, lr=lr, fused=True)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite.

    Attributes:
        step: the (1-based) step whose loss was first non-finite.
        loss: that loss value.
    """

    def __init__(self, step: int, loss: float) -> None:
        self.step = int(step)
        self.loss = float(loss)
        super().__init__(f"loss diverged ({self.loss}) at step {self.step}")


class EmbeddingMethod(FitData):
    """Base class of every embedding method (scikit-learn style estimator).

    ``__init__`` only stores keyword hyperparameters; ``fit`` learns; learned state ends in
    ``_``:

    - ``model_``: the trunk, an ``nn.Module`` mapping ``(n, h, w)`` float images to
      ``(n, embedding_size)``.
    - ``classes_``: the label codes, aligned with class indices.
    - ``sampling_``: JSON-serializable record of what fit drew: ``anchor_counts`` and
      ``negative_counts`` (code -> count), ``tuples``, ``active_share``, ``steps``,
      ``images_seen`` (nominal, ``steps * batch_images``), ``forward_images`` (actual).
    - ``loss_history_``: mean training loss of every ``RECORD_EVERY`` steps (see ``collapse_loss``).
    - ``checkpoint_``: with ``budget.eval_every > 0`` and a validation split, the selected
      step and validation 1-NN accuracies; otherwise None (final weights).

    Subclasses implement ``_prepare`` (optional), ``_draw`` and ``_loss``. While ``fit``
    runs, the hooks read the training data and the draw tools through public accessors:
    ``train_images``, ``train_labels``, ``class_index`` (vectorized draws of classes and
    images), ``generator`` (seeded by ``fit``; pass it to every draw), ``batch_images``
    (nominal images per step, the shared budget) and ``num_classes``. A worked plug-in is in
    the README (*Writing a method*).

    Args:
        trunk: the shared trunk, ``"mlp"`` (the reference network) or ``"cnn"``.
    """

    name: str = "base"
    #: Whether the metric loss L2-normalizes embeddings; ``embed`` then returns unit vectors.
    normalize: bool = False

    def __init__(self, *, trunk: str = "mlp") -> None:
        self.trunk = trunk

    # ----------------------------------------------------------------- parameters

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    def get_params(self) -> dict:
        """Every hyperparameter (trunk included), JSON-serializable; recorded with each result."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> EmbeddingMethod:
        """Set hyperparameters by name; unknown names are a BenchError."""
        known = self._param_names()
        for key, value in params.items():
            if key not in known:
                raise BenchError(f"{self.name}: unknown hyperparameter {key!r}; known: {', '.join(known)}")
            setattr(self, key, value)
        return self

    def check_params(self) -> None:
        """Raise BenchError for a hyperparameter value the method cannot use."""
        if self.trunk not in list_trunks():
            raise BenchError(
                f"{self.name}: unknown trunk {self.trunk!r}; known trunks: {', '.join(list_trunks())}"
            )

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- hooks

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor, budget: Budget) -> dict[str, nn.Module]:
        """Precompute per-fit state from the training tensors (on the device).

        ``images`` and ``labels`` are ``train_images`` and ``train_labels``. Returns extra
        trainable modules (e.g. a classifier head) to optimise with the trunk. Runs under the
        fit seed, so modules built here are initialised reproducibly.
        """
        return {}

    def _draw(self, weights: torch.Tensor) -> Batch:
        """Draw one step's batch following class ``weights`` (C,), the balance plan's.

        Draw with ``class_index`` and ``generator`` (never Python's or torch's global RNG),
        about ``batch_images`` nominal images; return positions into ``train_images``.
        """
        raise NotImplementedError

    def _loss(self, batch: Batch) -> StepLoss:
        """Forward the batch (``train_images[batch.positions]``) through ``self.model_`` and score it."""
        raise NotImplementedError

    # ----------------------------------------------------------------- training

    def fit(
        self,
        train: ImageSet,
        val: ImageSet | None = None,
        plan: BalancePlan | None = None,
        budget: Budget | None = None,
        seed: int = 0,
        device: str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> EmbeddingMethod:
        """Train on ``train`` (the only split drawn from) and return ``self``.

        Args:
            train: the training split.
            val: the validation split, used only to pick a checkpoint when
                ``budget.eval_every > 0`` (best validation 1-NN accuracy against the
                training embeddings); never drawn from.
            plan: per-class weights for what the method draws first; uniform by default.
            budget: steps, nominal images per step, learning rate, embedding size.
            seed: seeds the trunk initialisation (``torch.manual_seed`` inside a forked RNG
                state, so the caller's global RNG is untouched) and the sampling generator.
            device: ``"cpu"`` or ``"cuda"``; the training tensors move there once.
            progress: called as ``progress(step, total_steps)`` every 10 steps and at the end.

        Raises:
            TrainingDiverged: the loss became NaN or infinite.
            BenchError: unusable hyperparameters, plan or budget.
        """
        budget = budget or Budget()
        plan = plan or BalancePlan.uniform(train.classes)
        self.check_params()
        if tuple(plan.classes) != tuple(train.classes):
            raise BenchError(f"plan classes {plan.classes} do not match the training classes {train.classes}")
        if budget.steps < 1 or budget.batch_images < 1:
            raise BenchError(f"budget needs steps >= 1 and batch_images >= 1 (got {budget})")
        dev = torch.device(device)
        steps = int(budget.steps)
        num_classes = train.num_classes

        self.classes_ = tuple(train.classes)
        self.budget_ = budget
        self._images = train.images.to(dev, torch.float32)
        self._labels = train.labels.to(dev, torch.int64)
        self._index = ClassIndex(self._labels, num_classes)
        self._generator = torch.Generator(device=dev)
        self._generator.manual_seed(int(seed))
        weight_table = plan_weight_table(plan, steps, dev)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                self.model_ = build_trunk(self.trunk, train.image_shape, budget.embedding_size).to(dev)
                self._extra = {
                    k: m.to(dev) for k, m in self._prepare(self._images, self._labels, budget).items()
                }
            self._train_loop(train, val, weight_table, steps, dev, progress)
        finally:
            for attr in ("_images", "_labels", "_index", "_generator"):
                self.__dict__.pop(attr, None)
        self.model_.eval()
        for module in self._extra.values():
            module.eval()
        return self

    def collapse_loss(self) -> float | None:
        """Loss of a fitted run whose embedding collapsed to one point; None when undefined."""
        return None

    def _train_loop(self, train, val, weight_table, steps, dev, progress) -> None:
        c = self.num_classes
        modules = [self.model_, *self._extra.values()]
        params = [p for m in modules for p in m.parameters()]
        optimizer = build_optimizer(params, self.budget_.lr)
        for m in modules:
            m.train()

        anchor_counts = torch.zeros(c, dtype=torch.int64, device=dev)
        negative_counts = torch.zeros(c, dtype=torch.int64, device=dev)
        tuples = torch.zeros((), dtype=torch.int64, device=dev)
        active_share = torch.zeros((), dtype=torch.float64, device=dev)
        uses_negatives = False
        forward_images = 0
        window: list[torch.Tensor] = []
        self.loss_history_: list[float] = []
        selecting = self.budget_.eval_every > 0 and val is not None and len(val) > 0
        best = (-1.0, 0, None)
        history: list[list[float]] = []
        static = weight_table.shape[0] == 1

        for step in range(1, steps + 1):
            weights = weight_table[0 if static else step - 1]
            batch = self._draw(weights)
            out = self._loss(batch)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()

            # Bookkeeping stays on the device: no host sync except every RECORD_EVERY steps.
            anchor_counts += torch.bincount(batch.anchor_classes, minlength=c)
            if batch.negative_classes is not None:
                uses_negatives = True
                if batch.negative_weights is None:
                    negative_counts += torch.bincount(batch.negative_classes, minlength=c)
                else:
                    negative_counts.index_add_(0, batch.negative_classes, batch.negative_weights)
            tuples += out.tuples
            scored = out.tuples.clamp(min=1) if torch.is_tensor(out.tuples) else max(out.tuples, 1)
            active_share += out.active / scored
            forward_images += out.forward_images
            window.append(out.loss.detach())

            if step % RECORD_EVERY == 0 or step == steps:
                self._flush(window, step)
                window = []
                if progress is not None:
                    progress(step, steps)
            if selecting and (step % self.budget_.eval_every == 0 or step == steps):
                acc = self._val_accuracy(val, dev)
                history.append([step, acc])
                if acc > best[0]:
                    best = (acc, step, self._snapshot(modules))
                for m in modules:
                    m.train()

        self.checkpoint_ = None
        if selecting:
            for m, state in zip(modules, best[2], strict=True):
                m.load_state_dict(state)
            self.checkpoint_ = {"selected_step": best[1], "val_accuracy": best[0], "history": history}
        codes = self.classes_
        self.sampling_ = {
            "anchor_counts": dict(zip(codes, anchor_counts.tolist(), strict=True)),
            "negative_counts": dict(zip(codes, negative_counts.tolist(), strict=True))
            if uses_negatives
            else {},
            "tuples": int(tuples),
            "active_share": float(active_share) / steps,
            "steps": steps,
            "images_seen": steps * self.batch_images,
            "forward_images": int(forward_images),
        }

    def _flush(self, window: list[torch.Tensor], last_step: int) -> None:
        values = torch.stack(window).double().cpu()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0])
            raise TrainingDiverged(last_step - len(window) + 1 + first, float(values[first]))
        self.loss_history_.append(float(values.mean()))

    @staticmethod
    def _snapshot(modules: list[nn.Module]) -> list[dict]:
        return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]

    def _val_accuracy(self, val: ImageSet, dev: torch.device) -> float:
        """Validation 1-NN accuracy against the training embeddings (checkpoint selection)."""
        train_emb = self.embed(self._images)
        val_emb = self.embed(val.images)
        nearest = torch.cdist(val_emb, train_emb).argmin(1)
        predicted = self._labels.cpu()[nearest]
        return float((predicted == val.labels).double().mean())

    # ----------------------------------------------------------------- inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise BenchError(f"{self.name}: call fit() before embed() or predict_head()")

    def embed(self, images: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """Embeddings ``(n, embedding_size)`` float32 on the CPU (eval mode, no grad).

        L2-normalized when the method's loss normalizes (``get_params()["normalize"]``), so
        the embedding space is the one the loss shaped.
        """
        self._check_fitted()
        model = self.model_
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                emb = model(images[start : start + batch_size].to(device, torch.float32))
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=1)
                chunks.append(emb.float().cpu())
        model.train(was_training)
        if not chunks:
            return torch.empty(0, self.budget_.embedding_size)
        return torch.cat(chunks)

    def predict_head(self, images: torch.Tensor) -> torch.Tensor | None:
        """Class logits ``(n, C)`` for methods with a classification head; None otherwise."""
        self._check_fitted()
        return None
