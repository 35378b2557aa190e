import pytest
import torch
from torch import nn

from dmbn.models import build_model, norm_layers
from dmbn.statistics import batchnorm_layers


def test_mlp_has_one_batchnorm_per_hidden_layer():
    model = build_model("mlp", (1, 28, 28), 10)
    bns = batchnorm_layers(model)
    assert len(bns) == 20 and all(isinstance(bn, nn.BatchNorm1d) and bn.num_features == 128 for _, bn in bns)
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_bnbfn_alternates_batchnorm_and_batch_free_norm():
    model = build_model("mlp-bnbfn", (1, 28, 28), 10)
    kinds = [type(m) for _, m in norm_layers(model)]
    assert kinds[0::2] == [nn.BatchNorm1d] * 10   # hidden layers 1, 3, ..., 19
    assert kinds[1::2] == [nn.LayerNorm] * 10     # hidden layers 2, 4, ..., 20
    group = build_model("mlp-bnbfn", (1, 8, 8), 10, depth=4, width=32, batch_free="groupnorm", groups=8)
    assert isinstance(norm_layers(group)[1][1], nn.GroupNorm) and norm_layers(group)[1][1].num_groups == 8


def test_resnet50_for_32x32_inputs():
    model = build_model("resnet50", (3, 32, 32), 100)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert len(batchnorm_layers(model)) == 53
    small = build_model("resnet50", (3, 32, 32), 10, resnet_blocks=(1, 1, 1, 1), resnet_channels=16)
    assert small.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_xbnblock_p2_replaces_stem_and_every_bn2_with_groupnorm():
    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10)
    assert isinstance(model.bn1, nn.GroupNorm) and model.bn1.num_groups == 64
    from torchvision.models.resnet import Bottleneck

    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    assert all(isinstance(b.bn2, nn.GroupNorm) and isinstance(b.bn1, nn.BatchNorm2d) for b in blocks)
    assert len(batchnorm_layers(model)) == 53 - 16 - 1
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_groups_never_exceed_channels():
    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10, resnet_blocks=(1, 1, 1, 1), resnet_channels=4)
    assert all(m.num_groups <= m.num_channels for m in model.modules() if isinstance(m, nn.GroupNorm))


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="vgg"):
        build_model("vgg", (1, 8, 8), 10)


# -- the width-scaled ResNet-50 (issue: the convolutional half) -------------------------------------

def torchvision_cifar_resnet50(num_classes: int) -> nn.Module:
    """torchvision's own ResNet-50 with the CIFAR stem put in by hand: the reference."""
    from torchvision.models import resnet50

    model = resnet50(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def test_at_64_channels_it_is_torchvisions_resnet50_with_the_cifar_stem():
    ours, theirs = build_model("resnet50", (3, 32, 32), 10), torchvision_cifar_resnet50(10)
    assert shapes(ours) == shapes(theirs)  # every layer, by name and shape
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == 23_520_842
    assert [type(m).__name__ for m in ours.modules()][1:] == [type(m).__name__ for m in theirs.modules()][1:]


@pytest.mark.parametrize("channels", [8, 16, 24])
def test_every_channel_count_scales_with_the_width(channels):
    """Each of torchvision's channel counts (64 and up) times channels / 64; kernels, the three
    input channels and the classes stay."""
    ours = shapes(build_model("resnet50", (3, 32, 32), 10, resnet_channels=channels))
    expected = {name: tuple(d * channels // 64 if d >= 64 else d for d in shape)
                for name, shape in shapes(torchvision_cifar_resnet50(10)).items()}
    assert ours == expected
    assert ours["conv1.weight"] == (channels, 3, 3, 3) and ours["fc.weight"] == (10, 32 * channels)


def test_a_quarter_width_costs_about_a_sixteenth():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(model: nn.Module) -> int:
        with FlopCounterMode(display=False) as counter:
            model.eval()(torch.randn(1, 3, 32, 32))
        return counter.get_total_flops()

    full, quarter = flops(build_model("resnet50", (3, 32, 32), 10)), flops(build_model("resnet50", (3, 32, 32), 10,
                                                                                       resnet_channels=16))
    assert 14 < full / quarter < 17  # convolutions scale with in x out channels: (1/4)^2, the stem conv and fc less


@pytest.mark.parametrize("channels, groups", [(64, 64), (32, 32), (16, 16), (8, 8)])
def test_xbnblock_keeps_huang_et_als_channels_per_group_at_every_width(channels, groups):
    from torchvision.models.resnet import Bottleneck

    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10, resnet_channels=channels)
    norms = [model.bn1] + [b.bn2 for b in model.modules() if isinstance(b, Bottleneck)]
    assert all(isinstance(n, nn.GroupNorm) and n.num_groups == groups for n in norms)
    # channels per group as at 64 channels with 64 groups: the stem 1, stage k's bn2 2**k
    full = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10)
    full_norms = [full.bn1] + [b.bn2 for b in full.modules() if isinstance(b, Bottleneck)]
    assert [n.num_channels // n.num_groups for n in norms] == [n.num_channels // n.num_groups for n in full_norms]
    assert len(batchnorm_layers(model)) == 53 - 16 - 1


def test_xbn_groups_setting_reaches_the_network():
    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10, resnet_channels=32, xbn_groups=32)
    assert model.bn1.num_groups == 16  # 32 groups at 64 channels: 16 at 32


@pytest.mark.parametrize("channels, groups, scaled", [(3, 32, "1.5"), (8, 48, "6")])
def test_a_width_without_a_whole_group_count_is_refused(channels, groups, scaled):
    # 32 groups at 64 channels are 1.5 at 3; 48 are 6 at 8, which does not divide 8
    with pytest.raises(ValueError, match=f"resnet_channels={channels}: {groups} GroupNorm groups at 64 "
                                         f"channels scale to {scaled} groups"):
        build_model("resnet50-xbnblock-p2", (3, 32, 32), 10, resnet_channels=channels, xbn_groups=groups)
