"""The shared trunks: every method trains the same network, so only the method differs.

A trunk maps float images ``(n, h, w)`` to embeddings ``(n, embedding_size)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bench.errors import unknown_name

TrunkBuilder = Callable[[tuple[int, int], int], nn.Module]

_TRUNKS: dict[str, TrunkBuilder] = {}


def register_trunk(name: str) -> Callable[[TrunkBuilder], TrunkBuilder]:
    """Decorator registering a trunk builder ``(image_shape, embedding_size) -> nn.Module``."""

    def decorate(builder: TrunkBuilder) -> TrunkBuilder:
        if name in _TRUNKS and _TRUNKS[name] is not builder:
            raise ValueError(f"trunk {name!r} is already registered")
        _TRUNKS[name] = builder
        return builder

    return decorate


def list_trunks() -> list[str]:
    """Registered trunk names, sorted."""
    return sorted(_TRUNKS)


def build_trunk(name: str, image_shape: tuple[int, int], embedding_size: int = 128) -> nn.Module:
    """A freshly initialised trunk (uses the global torch RNG for its initial weights).

    Raises:
        BenchError: an unknown trunk name (the message lists the known ones).
    """
    if name not in _TRUNKS:
        raise unknown_name("trunk", name, list_trunks())
    return _TRUNKS[name](tuple(image_shape), int(embedding_size))


@register_trunk("mlp")
def build_mlp(image_shape: tuple[int, int], embedding_size: int) -> nn.Module:
    """The reference network: flatten -> 512 -> 256 -> 256 -> embedding_size, ReLU between."""
    h, w = image_shape
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(h * w, 512),
        nn.ReLU(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, embedding_size),
    )


class _AddChannel(nn.Module):
    def forward(self, x):
        return x.unsqueeze(1)


@register_trunk("cnn")
def build_cnn(image_shape: tuple[int, int], embedding_size: int) -> nn.Module:
    """A small conv net sized for CPU: conv 32 -> pool -> conv 64 -> pool -> 4 x 4 -> linear.

    ``ceil_mode`` pooling and the adaptive pool let it take any image size from 4 x 4 up
    (8 x 8 digits and 36 x 39 inspection images alike).
    """
    return nn.Sequential(
        _AddChannel(),
        nn.Conv2d(1, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(32, 64, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d((4, 4)),
        nn.Flatten(),
        nn.Linear(64 * 16, embedding_size),
    )
