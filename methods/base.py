"""The contract every embedding method meets, and the training loop they all share.

``EmbeddingMethod.fit`` is a template: seed, build the shared trunk, Adam, then for each of
``budget.steps`` steps draw a batch with the method's ``_draw`` hook, compute the loss with
its ``_loss`` hook, backward, step, and bookkeeping. A method therefore only decides *what
it draws* and *how it scores it*; trunk, optimizer, step count and nominal images per step
are the same for all (the fairness the comparison rests on).

The hooks get what they need as arguments: the ``FitContext`` of the fit (training tensors,
class index, generator, budget) and the ``Prepared`` state the method's ``_prepare`` built
from it. Nothing of the training data stays on the method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.sampling.budget import LR_PARAM, LR_SEARCH_RANGE, Budget
from bench.sampling.plan import BalancePlan
from methods.batch import Batch, StepLoss
from methods.constraints import Constraint, Options, check_value
from methods.fit_context import FitContext, Prepared
from methods.sampling import plan_weight_table
from methods.training import (
    RECORD_EVERY,
    CheckpointSelector,
    LossWindow,
    SamplingCounter,
    TrainingDiverged,
    build_optimizer,
    build_schedule,
    nearest_neighbour_accuracy,
    optimizer_step,
)
from methods.trunks import build_trunk, list_trunks

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "RECORD_EVERY",
    "Batch",
    "EmbeddingMethod",
    "FitContext",
    "Prepared",
    "StepLoss",
    "TrainingDiverged",
    "build_optimizer",
]

#: Learned state every fit sets; a module of ``Prepared.modules`` may not take one of these names.
_FIT_STATE = ("model", "classes", "budget", "sampling", "loss_history", "checkpoint")


class EmbeddingMethod:
    """Base class of every embedding method (scikit-learn style estimator).

    ``__init__`` only stores keyword hyperparameters; ``fit`` learns; learned state ends in
    ``_``:

    - ``model_``: the trunk, an ``nn.Module`` mapping ``(n, h, w)`` float images to
      ``(n, embedding_size)``.
    - ``classes_``: the label codes, aligned with class indices.
    - ``budget_``: the budget of the fit.
    - ``sampling_``: JSON-serializable record of what fit drew: ``anchor_counts`` and
      ``negative_counts`` (code -> count), ``tuples``, ``active_share``, ``steps``,
      ``images_seen`` (nominal, ``steps * batch_images``), ``forward_images`` (actual).
    - ``loss_history_``: mean training loss of every ``RECORD_EVERY`` steps (see ``collapse_loss``).
    - ``checkpoint_``: with ``budget.eval_every > 0`` and a validation split, the selected
      step and validation 1-NN accuracies; otherwise None (final weights).
    - ``<name>_`` for each extra module ``_prepare`` returned (e.g. the classifier's ``head_``).

    A method implements ``_draw`` and ``_loss``, and optionally ``_prepare``,
    ``collapse_loss`` and ``search_space``; it declares its hyperparameters' valid values in
    ``_parameter_constraints``. See *Writing a method* in the documentation.

    Args:
        trunk: the shared trunk, ``"mlp"`` (the reference network) or ``"cnn"``.
    """

    #: The registered name (set by ``register_method``); error messages start with it.
    name: str = "base"
    #: Whether the metric loss L2-normalizes embeddings; ``embed`` then returns unit vectors.
    normalize: bool = False
    #: Whether the method never sees a defect label (a baseline scoring images against the good
    #: training images: ``methods.good_only``); ``bench run --all`` leaves such methods out.
    label_free: bool = False
    #: The Adam learning rate the method trains at when neither the budget (``--lr``,
    #: ``[budget] lr``) nor its own ``lr`` parameter sets one. The built-in methods' values were
    #: chosen from the committed tunings (good on every tuned dataset, none collapsing on a
    #: shipped one; *Methods* in the documentation says how); 1e-3 for a method that sets none.
    default_lr: ClassVar[float] = 1e-3
    #: Valid values of each hyperparameter: name -> constraints, one of which a value must
    #: meet (``methods.constraints``). Each class declares its own; ``check_params`` merges
    #: them over the class hierarchy, so a subclass lists only the hyperparameters it adds.
    _parameter_constraints: ClassVar[dict[str, list[Constraint | None]]] = {
        "trunk": [Options(list_trunks)],
    }

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

    @classmethod
    def check_param_names(cls, names: Iterable[str]) -> None:
        """Raise BenchError for a name that is not one of the method's hyperparameters.

        The one check of hyperparameter names: ``create_method`` and ``set_params`` use it.
        """
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()):
            return
        known = cls._param_names()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise BenchError(
                f"method {cls.name!r} has no hyperparameter {unknown[0]!r}; it takes: {', '.join(known)}"
            )

    @classmethod
    def parameter_constraints(cls) -> dict[str, list[Constraint | None]]:
        """Every declared constraint, merged over the class hierarchy (a subclass overrides)."""
        merged: dict[str, list[Constraint | None]] = {}
        for klass in reversed(cls.__mro__):
            merged.update(vars(klass).get("_parameter_constraints", {}))
        return merged

    def get_params(self) -> dict:
        """Every hyperparameter (trunk included), JSON-serializable; recorded with each result."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> EmbeddingMethod:
        """Set hyperparameters by name; an unknown name is a BenchError."""
        self.check_param_names(params)
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def check_params(self) -> None:
        """Raise BenchError for a hyperparameter value the method cannot use.

        Checks every hyperparameter declared in ``_parameter_constraints`` (one line:
        ``"siamese: margin=-1.0 is not a positive number"``). ``fit`` and ``bench run
        --dry-run`` call it. A method with a rule between hyperparameters extends it.
        """
        params = self.get_params()
        for name, constraints in self.parameter_constraints().items():
            if name not in params:
                raise BenchError(
                    f"{self.name}: _parameter_constraints names {name!r}, which is not a hyperparameter"
                )
            check_value(self.name, name, params[name], constraints)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def search_space(cls) -> dict[str, BaseDistribution]:
        """The hyperparameters ``bench tune`` searches, as Optuna distributions by name.

        Tuning suggests them in this order, the learning rate under ``"lr"`` (the budget's
        ``lr`` for this method alone; its untuned value is ``default_lr``). The default is the
        learning rate alone, log-uniform over ``LR_SEARCH_RANGE``, the range every method
        shares; a method adds its own::

            @classmethod
            def search_space(cls):
                return {**super().search_space(), "margin": FloatDistribution(0.1, 1.0)}

        The defaults should lie inside: the first trial of every study runs them.
        """
        from optuna.distributions import FloatDistribution

        return {LR_PARAM: FloatDistribution(*LR_SEARCH_RANGE, log=True)}

    # ----------------------------------------------------------------- hooks

    def _prepare(self, ctx: FitContext) -> Prepared:
        """Compute the per-fit state ``_draw`` and ``_loss`` receive (once per fit).

        Runs under the fit's seed after the trunk is built, so modules built here are
        initialised reproducibly. Raise BenchError for a budget the method cannot use.

        Args:
            ctx: the fit's training data and draw tools.

        Returns:
            A ``Prepared`` (or a subclass with the method's constants); its ``modules`` are
            trained with the trunk and kept as ``<name>_``. The default has none.
        """
        return Prepared()

    def _draw(self, ctx: FitContext, prepared: Prepared, weights: torch.Tensor) -> Batch:
        """Draw one step's batch following class ``weights`` (C,), the balance plan's.

        Draw with ``ctx.class_index`` and ``ctx.generator`` (never Python's or torch's global
        RNG), about ``ctx.batch_images`` nominal images; return positions into
        ``ctx.train_images``.
        """
        raise NotImplementedError

    def _loss(self, ctx: FitContext, prepared: Prepared, batch: Batch) -> StepLoss:
        """Forward the batch through ``self.model_`` (and the method's own modules,
        ``self.<name>_``) and score it.

        Forward ``ctx.images(batch.positions)`` (or ``ctx.images`` of a part of the positions),
        never ``ctx.train_images[...]``: it applies the dataset's augmentation, the same for
        every method.
        """
        raise NotImplementedError

    def collapse_loss(self) -> float | None:
        """The loss a fitted run scores once its embedding collapsed to one point; None when
        undefined. Computed from hyperparameters and learned state only (``budget_``,
        ``sampling_``...); the run's health check compares the final loss with it."""
        return None

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
            budget: steps, nominal images per step, learning rate (None: ``default_lr``),
                embedding size.
            seed: seeds the trunk initialisation (``torch.manual_seed`` inside a forked RNG
                state, so the caller's global RNG is untouched) and the sampling generator.
            device: ``"cpu"`` or ``"cuda"``; the training tensors move there once.
            progress: called as ``progress(step, total_steps)`` every 10 steps and at the end.

        Raises:
            TrainingDiverged: the loss became NaN or infinite.
            BenchError: unusable hyperparameters, plan or budget.
        """
        budget = budget or Budget()
        if budget.lr is None:
            budget = Budget(**{**budget.to_dict(), "lr": self.default_lr})
        plan = plan or BalancePlan.uniform(train.classes)
        self.check_params()
        if tuple(plan.classes) != tuple(train.classes):
            raise BenchError(f"plan classes {plan.classes} do not match the training classes {train.classes}")
        if budget.steps < 1 or budget.batch_images < 1:
            raise BenchError(f"budget needs steps >= 1 and batch_images >= 1 (got {budget})")
        dev = torch.device(device)
        self.classes_ = tuple(train.classes)
        self.budget_ = budget
        ctx = FitContext.from_split(train, budget, seed, dev)
        weight_table = plan_weight_table(plan, int(budget.steps), dev)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.model_ = build_trunk(self.trunk, train.image_shape, budget.embedding_size).to(dev)
            prepared = self._prepare(ctx)
            modules = [self.model_, *self._keep_modules(prepared, dev)]
        self._train(ctx, prepared, modules, weight_table, val, progress)
        for module in modules:
            module.eval()
        return self

    def _keep_modules(self, prepared: Prepared, device: torch.device) -> list[nn.Module]:
        """Move the prepared modules to ``device`` and keep each as learned state ``<name>_``."""
        kept = []
        for name, module in prepared.modules.items():
            if not name.isidentifier() or name.startswith("_") or name in _FIT_STATE:
                raise BenchError(f"{self.name}: _prepare returned a module named {name!r}; use another name")
            module = module.to(device)
            setattr(self, f"{name}_", module)
            kept.append(module)
        return kept

    def _train(
        self,
        ctx: FitContext,
        prepared: Prepared,
        modules: list[nn.Module],
        weight_table: torch.Tensor,
        val: ImageSet | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """The steps: draw, loss, optimizer step, bookkeeping; sets the run's learned records."""
        budget, steps = ctx.budget, int(ctx.budget.steps)
        optimizer = build_optimizer(
            [p for m in modules for p in m.parameters()], budget.lr, budget.weight_decay
        )
        schedule = build_schedule(optimizer, budget.schedule, steps)
        for m in modules:
            m.train()
        counter = SamplingCounter(ctx.num_classes, ctx.device)
        losses = LossWindow()
        selector = None
        if budget.eval_every > 0 and val is not None and len(val) > 0:
            selector = CheckpointSelector(modules)
        static = weight_table.shape[0] == 1

        for step in range(1, steps + 1):
            batch = self._draw(ctx, prepared, weight_table[0 if static else step - 1])
            out = self._loss(ctx, prepared, batch)
            optimizer_step(optimizer, out.loss)
            if schedule is not None:
                schedule.step()
            counter.add(batch, out)
            losses.add(out.loss)
            if step % RECORD_EVERY == 0 or step == steps:
                losses.flush(step)
                if progress is not None:
                    progress(step, steps)
            if selector is not None and (step % budget.eval_every == 0 or step == steps):
                selector.consider(
                    step, nearest_neighbour_accuracy(self.embed, ctx.train_images, ctx.train_labels, val)
                )
                for m in modules:
                    m.train()

        self.loss_history_ = losses.history
        self.checkpoint_ = None if selector is None else selector.restore()
        self.sampling_ = counter.record(self.classes_, steps, ctx.batch_images)

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
