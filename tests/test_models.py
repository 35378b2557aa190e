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
    small = build_model("resnet50", (3, 32, 32), 10, resnet_blocks=(1, 1, 1, 1), resnet_width=16)
    assert small.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_xbnblock_p2_replaces_stem_and_every_bn2_with_groupnorm():
    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10)
    assert isinstance(model.bn1, nn.GroupNorm) and model.bn1.num_groups == 64
    blocks = [m for m in model.modules() if m.__class__.__name__ == "Bottleneck"]
    assert len(blocks) == 16
    assert all(isinstance(b.bn2, nn.GroupNorm) and isinstance(b.bn1, nn.BatchNorm2d) for b in blocks)
    assert len(batchnorm_layers(model)) == 53 - 16 - 1
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_groups_are_clamped_to_channels():
    model = build_model("resnet50-xbnblock-p2", (3, 32, 32), 10, resnet_blocks=(1, 1, 1, 1), resnet_width=4)
    assert all(m.num_groups <= m.num_channels for m in model.modules() if isinstance(m, nn.GroupNorm))


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="vgg"):
        build_model("vgg", (1, 8, 8), 10)
