"""The study's networks: a deep BN MLP, its BN/batch-free hybrid, and ResNet-50 for 32x32 inputs.

Every model here is a plain ``nn.Module`` holding ordinary ``nn.BatchNorm*d`` layers, so the
estimator bank (``dmbn.estimators``) works on them exactly as on any user model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .names import ARCHITECTURES, RESNET50_CHANNELS, xbn_group_count

if TYPE_CHECKING:  # torchvision costs seconds to import: only the ResNet builders load it
    from torchvision.models.resnet import ResNet

BATCH_FREE_NORMS = ("layernorm", "groupnorm")

# ResNet-50's stage depths; tests pass e.g. (1, 1, 1, 1) for a small bottleneck network.
RESNET50_BLOCKS = (3, 4, 6, 3)
XBN_GROUPS = 64  # XBNBlock-P2's GroupNorm groups at 64 channels (Huang et al.), scaled with the width


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
    channels: int = RESNET50_CHANNELS,
    norm_layer: Callable[[int], nn.Module] | None = None,
    block: type | None = None,
    stem_norm: Callable[[int], nn.Module] | None = None,
) -> "ResNet":
    """torchvision's ResNet-50 (bottlenecks ``blocks``) with a CIFAR stem (3x3 stride-1 conv, no
    max-pool) and every channel count scaled by ``channels / 64``: the stem has ``channels``, stage
    k's bottlenecks ``channels * 2**k`` inside and four times that out. At ``channels = 64`` it is
    ResNet-50 itself. ``norm_layer`` and ``block`` are torchvision's extension points (a norm for
    every position, a Bottleneck subclass); ``stem_norm`` the stem's norm (default ``norm_layer``)."""
    from torchvision.models.resnet import Bottleneck

    return _scaled_resnet_class()(block or Bottleneck, list(blocks), num_classes, channels, in_channels,
                                  norm_layer or nn.BatchNorm2d, stem_norm)


@lru_cache(maxsize=1)
def _scaled_resnet_class() -> type:
    """torchvision's ``ResNet`` with every stage's width scaled (defined on first use: torchvision
    costs seconds to import)."""
    from torchvision.models.resnet import ResNet

    class ScaledResNet(ResNet):
        def __init__(self, block, layers, num_classes, channels, in_channels, norm_layer, stem_norm):
            self.channels = channels  # read by _make_layer while ResNet.__init__ builds the stages
            super().__init__(block, layers, num_classes=num_classes, norm_layer=norm_layer)
            # torchvision's stem and head are fixed at 64 channels in and 2048 out: the CIFAR stem
            # and the scaled head replace them, initialised as ResNet initialises its own
            self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
            self.bn1 = (stem_norm or norm_layer)(channels)
            self.maxpool = nn.Identity()
            self.fc = nn.Linear(8 * channels * block.expansion, num_classes)

        def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
            if planes == RESNET50_CHANNELS:  # the first stage takes the stem's (scaled) output
                self.inplanes = self.channels
            return super()._make_layer(block, planes * self.channels // RESNET50_CHANNELS, blocks, stride, dilate)

    return ScaledResNet


def xbn_groups_at(channels: int, groups_at_64: int = XBN_GROUPS) -> int:
    """``dmbn.names.xbn_group_count``, refusing a width it has no group count for (the config
    check refuses it before any job)."""
    groups = xbn_group_count(channels, groups_at_64)
    if groups is None:
        raise ValueError(f"XBNBlock-P2 at resnet_channels={channels}: {groups_at_64} GroupNorm groups at 64 "
                         f"channels scale to {groups_at_64 * channels / RESNET50_CHANNELS:g} groups, which "
                         f"must be a whole number dividing {channels}")
    return groups


def xbn_bottleneck(groups: int) -> type:
    """torchvision's Bottleneck with GroupNorm(``groups``) as its ``bn2``: the XBNBlock-P2 block."""
    from torchvision.models.resnet import Bottleneck

    class XBNBottleneck(Bottleneck):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.bn2 = nn.GroupNorm(groups, self.bn2.num_features)

    return XBNBottleneck


# -- the builders of dmbn.names.ARCHITECTURES (by name) ---------------------------------------------

def mlp_bn(input_shape: tuple[int, ...], num_classes: int, depth: int = 20, width: int = 128, **_) -> nn.Module:
    return mlp(int(torch.Size(input_shape).numel()), num_classes, depth, width)


def mlp_bnbfn(input_shape: tuple[int, ...], num_classes: int, depth: int = 20, width: int = 128,
              batch_free: str = "layernorm", groups: int = 1, **_) -> nn.Module:
    return mlp(int(torch.Size(input_shape).numel()), num_classes, depth, width, batch_free_every=2,
               batch_free=batch_free, groups=groups)


def resnet50(input_shape: tuple[int, ...], num_classes: int, resnet_blocks: tuple[int, ...] = RESNET50_BLOCKS,
             resnet_channels: int = RESNET50_CHANNELS, **_) -> nn.Module:
    return resnet50_32x32(num_classes, input_shape[0], tuple(resnet_blocks), resnet_channels)


def resnet50_xbnblock_p2(input_shape: tuple[int, ...], num_classes: int,
                         resnet_blocks: tuple[int, ...] = RESNET50_BLOCKS, resnet_channels: int = RESNET50_CHANNELS,
                         xbn_groups: int = XBN_GROUPS, **_) -> nn.Module:
    """Huang et al.'s XBNBlock-P2: GroupNorm at the stem and as every bottleneck's ``bn2``."""
    groups = xbn_groups_at(resnet_channels, xbn_groups)
    return resnet50_32x32(num_classes, input_shape[0], tuple(resnet_blocks), resnet_channels,
                          block=xbn_bottleneck(groups), stem_norm=lambda c: nn.GroupNorm(groups, c))


def build_model(arch: str, input_shape: tuple[int, ...], num_classes: int, **settings) -> nn.Module:
    """Build one of ``dmbn.names.ARCHITECTURES`` for inputs of ``input_shape`` (channels first, no
    batch axis); ``settings``: the ``train`` keys of ``dmbn.config.MODEL_KEYS`` (each builder takes
    those it needs)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {tuple(ARCHITECTURES)}")
    return globals()[ARCHITECTURES[arch].builder](input_shape, num_classes, **settings)


def norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every normalisation layer (batch or batch-free) in forward order, with its module name."""
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, norm_types)]
