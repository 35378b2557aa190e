"""The study's networks: a deep BN MLP, its BN/batch-free hybrid, and ResNet-50 for 32x32 inputs.

Every model here is a plain ``nn.Module`` holding ordinary ``nn.BatchNorm*d`` layers, so the
estimator bank (``dmbn.estimators``) works on them exactly as on any user model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:  # torchvision costs seconds to import: only the ResNet builders load it
    from torchvision.models.resnet import ResNet

ARCHITECTURES = ("mlp", "mlp-bnbfn", "resnet50", "resnet50-xbnblock-p2")
BATCH_FREE_NORMS = ("layernorm", "groupnorm")

# ResNet-50's stage depths; tests pass e.g. (1, 1, 1, 1) for a small bottleneck network.
RESNET50_BLOCKS = (3, 4, 6, 3)


class MLPBlock(nn.Sequential):
    """One hidden layer: Linear -> norm -> ReLU."""

    def __init__(self, in_features: int, out_features: int, norm: nn.Module) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = norm
        self.relu = nn.ReLU(inplace=True)


def batch_free_norm(kind: str, channels: int, groups: int = 1) -> nn.Module:
    """A normalisation that uses no batch statistics (so has nothing to estimate at test time)."""
    if kind == "layernorm":
        return nn.LayerNorm(channels)
    if kind == "groupnorm":
        return nn.GroupNorm(min(groups, channels), channels)
    raise ValueError(f"unknown batch-free norm {kind!r}; choose one of {BATCH_FREE_NORMS}")


def mlp(
    in_features: int,
    num_classes: int,
    depth: int = 20,
    width: int = 128,
    batch_free_every: int = 0,
    batch_free: str = "layernorm",
    groups: int = 1,
) -> nn.Sequential:
    """The thesis's MLP: ``depth`` hidden layers of ``width`` units, each Linear -> norm -> ReLU.

    ``batch_free_every=2`` gives BN-BFN: hidden layers 2, 4, ... use a batch-free norm and
    layers 1, 3, ... keep BatchNorm.
    """
    blocks: list[nn.Module] = [nn.Flatten()]
    for layer in range(1, depth + 1):
        batch_free_here = batch_free_every > 0 and layer % batch_free_every == 0
        norm = batch_free_norm(batch_free, width, groups) if batch_free_here else nn.BatchNorm1d(width)
        blocks.append(MLPBlock(in_features if layer == 1 else width, width, norm))
    blocks.append(nn.Linear(width, num_classes))
    return nn.Sequential(*blocks)


def resnet50_32x32(
    num_classes: int,
    in_channels: int = 3,
    blocks: tuple[int, ...] = RESNET50_BLOCKS,
    width_per_group: int = 64,
    norm_layer: Callable[[int], nn.Module] | None = None,
) -> "ResNet":
    """torchvision's ResNet-50 with a CIFAR stem: 3x3 stride-1 conv, no max-pool."""
    from torchvision.models.resnet import Bottleneck, ResNet

    model = ResNet(Bottleneck, list(blocks), num_classes=num_classes,
                   width_per_group=width_per_group, norm_layer=norm_layer)
    stem_channels = model.bn1.num_features
    model.conv1 = nn.Conv2d(in_channels, stem_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def xbnblock_p2(model: "ResNet", groups: int = 64) -> "ResNet":
    """Huang et al.'s XBNBlock-P2: GroupNorm replaces the stem BN and every bottleneck's ``bn2``."""
    from torchvision.models.resnet import Bottleneck

    model.bn1 = batch_free_norm("groupnorm", model.bn1.num_features, groups)
    for module in model.modules():
        if isinstance(module, Bottleneck):
            module.bn2 = batch_free_norm("groupnorm", module.bn2.num_features, groups)
    return model


def build_model(
    arch: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 20,
    width: int = 128,
    batch_free: str = "layernorm",
    groups: int = 1,
    resnet_blocks: tuple[int, ...] = RESNET50_BLOCKS,
    resnet_width: int = 64,
) -> nn.Module:
    """Build one of ``ARCHITECTURES`` for inputs of ``input_shape`` (channels first, no batch axis)."""
    if arch in ("mlp", "mlp-bnbfn"):
        in_features = int(torch.Size(input_shape).numel())
        return mlp(in_features, num_classes, depth, width,
                   batch_free_every=2 if arch == "mlp-bnbfn" else 0,
                   batch_free=batch_free, groups=groups)
    if arch in ("resnet50", "resnet50-xbnblock-p2"):
        model = resnet50_32x32(num_classes, input_shape[0], tuple(resnet_blocks), resnet_width)
        return xbnblock_p2(model) if arch == "resnet50-xbnblock-p2" else model
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every normalisation layer (batch or batch-free) in forward order, with its module name."""
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, norm_types)]
