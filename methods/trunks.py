"""The shared trunks: every method trains the same network, so only the method differs.

A trunk maps float images ``(n, h, w)`` to embeddings ``(n, embedding_size)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bench.core.registry import Registry

TrunkBuilder = Callable[[tuple[int, int], int], nn.Module]

TRUNKS: Registry[TrunkBuilder] = Registry("trunk")
#: Decorator registering a trunk builder ``(image_shape, embedding_size) -> nn.Module``.
register_trunk = TRUNKS.register
#: Registered trunk names, sorted.
list_trunks = TRUNKS.names


def build_trunk(name: str, image_shape: tuple[int, int], embedding_size: int = 128) -> nn.Module:
    """A freshly initialised trunk (uses the global torch RNG for its initial weights).

    Raises:
        BenchError: an unknown trunk name (the message lists the known ones).
    """
    return TRUNKS.get(name)(tuple(image_shape), int(embedding_size))


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
    """A small conv net sized for CPU: conv 16 (5 x 5, stride 2) -> conv 32 (stride 2) -> 4 x 4 -> linear.

    Strided convolutions instead of pooling keep one training step at about four times the
    MLP's on one CPU thread (a 32 / 64 channel net with pooling cost ten times as much). The
    adaptive pool lets it take any image size from 4 x 4 up (8 x 8 digits, 28 x 28
    Fashion-MNIST and 39 x 36 inspection images alike).
    """
    return nn.Sequential(
        _AddChannel(),
        nn.Conv2d(1, 16, kernel_size=5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((4, 4)),
        nn.Flatten(),
        nn.Linear(32 * 16, embedding_size),
    )


class _ResidualBlock(nn.Module):
    """Two 3 x 3 conv + batch norm layers and a shortcut (a strided 1 x 1 conv where the shape changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels_out),
            )

    def forward(self, x):
        return nn.functional.relu(self.body(x) + self.shortcut(x))


#: Channels of the residual trunk's stages; every stage after the first halves the resolution.
RESNET_CHANNELS = (16, 32, 64, 128)


@register_trunk("resnet")
def build_resnet(image_shape: tuple[int, int], embedding_size: int) -> nn.Module:
    """A small residual CNN for real images: a strided stem, four residual stages, global pooling.

    Stem: conv 16 (3 x 3, stride 2) + batch norm + ReLU, so the most expensive full-resolution
    layers run at half the side. Then one residual block per stage with 16, 32, 64 and 128
    channels, the last three strided (a 64 x 64 image ends at 4 x 4), global average pooling
    and a linear map to ``embedding_size``. Batch norm lets it train fast at a high learning
    rate; global pooling makes it indifferent to where on the cell a defect lies and lets it
    take any image size from 8 x 8 up.
    """
    stages, channels_in = [], RESNET_CHANNELS[0]
    for i, channels in enumerate(RESNET_CHANNELS):
        stages.append(_ResidualBlock(channels_in, channels, stride=1 if i == 0 else 2))
        channels_in = channels
    return nn.Sequential(
        _AddChannel(),
        nn.Conv2d(1, RESNET_CHANNELS[0], 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(RESNET_CHANNELS[0]),
        nn.ReLU(),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels_in, embedding_size),
    )
