"""Vision encoder of pixel policies: shapes, the ResNet-18 trunk's size, the spatial softmax's
coordinate convention, the random / centre crop, gradients, error messages, GroupNorm only.

Images are small (mostly 16x16 to 32x32, batches of a few) so the file runs in seconds.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from sci_diffusion.bench.policy_nets import count_parameters
from sci_diffusion.nets.vision import (
    BACKBONES,
    CameraEncoder,
    ObservationEncoder,
    ResNet18Trunk,
    SmallCNN,
    SpatialSoftmax,
    crop_images,
    feature_map_size,
    spatial_soft_argmax,
)

RESNET18_TRUNK_PARAMS = 11_689_512 - 513_000  # torchvision resnet18 minus its fc (512*1000+1000)


def _images(batch: int, steps: int, h: int, w: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, steps, h, w, 3), generator=g, dtype=torch.uint8)


def _coded_images(n: int, h: int, w: int) -> Tensor:
    """(n, h, w, 3) int64 whose channel 0 is the row, 1 the column, 2 the image index: a crop's
    top-left pixel names its offset."""
    rows = torch.arange(h)[None, :, None].expand(n, h, w)
    cols = torch.arange(w)[None, None, :].expand(n, h, w)
    idx = torch.arange(n)[:, None, None].expand(n, h, w)
    return torch.stack((rows, cols, idx), dim=-1)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("cameras", [("front",), ("wrist", "front")])
@pytest.mark.parametrize("proprio", [(), (0, 3, 4)])
def test_observation_encoder_shapes(cameras: tuple[str, ...], proprio: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    shapes = {"front": (24, 32, 3), "wrist": (16, 16, 3)}
    enc = ObservationEncoder({c: shapes[c] for c in cameras}, state_dim=5, proprio=proprio,
                             num_keypoints=8, feature_dim=12)
    assert enc.out_dim == len(cameras) * 12 + len(proprio)
    assert list(enc.encoders) == sorted(cameras)
    batch, steps = 3, 2
    state = torch.randn(batch, steps, 5)
    images = {c: _images(batch, steps, *shapes[c][:2], seed=i) for i, c in enumerate(cameras)}
    out = enc(state, images)
    assert out.shape == (batch, steps, enc.out_dim)
    assert torch.isfinite(out).all()
    # layout: camera features in sorted name order, then state[..., proprio]
    enc.eval()
    out = enc(state, images)
    for k, name in enumerate(sorted(cameras)):
        flat = images[name].reshape(batch * steps, *shapes[name])
        want = enc.encoders[name](flat).reshape(batch, steps, 12)
        torch.testing.assert_close(out[..., 12 * k:12 * (k + 1)], want)
    torch.testing.assert_close(out[..., len(cameras) * 12:], state[..., list(proprio)])


def test_camera_order_does_not_depend_on_mapping_order() -> None:
    torch.manual_seed(0)
    a = ObservationEncoder({"b": (16, 16, 3), "a": (16, 16, 3)}, state_dim=2)
    b = ObservationEncoder({"a": (16, 16, 3), "b": (16, 16, 3)}, state_dim=2)
    assert a.camera_names == b.camera_names == ("a", "b")
    assert list(a.state_dict()) == list(b.state_dict())


def test_small_cnn_size_and_shape() -> None:
    net = SmallCNN()
    assert net.out_channels == 64
    assert count_parameters(net) == 65_760  # 864 + 9216 + 18432 + 36864 convs, 384 norms
    assert net(torch.zeros(2, 3, 58, 58)).shape == (2, 64, 15, 15)


def test_resnet18_trunk_parameter_count_and_shapes() -> None:
    torch.manual_seed(0)
    trunk = ResNet18Trunk()
    assert count_parameters(trunk) == RESNET18_TRUNK_PARAMS == 11_176_512
    assert trunk.out_channels == 512
    assert not hasattr(trunk, "fc") and not hasattr(trunk, "avgpool")
    with torch.no_grad():
        assert trunk(torch.zeros(2, 3, 84, 84)).shape == (2, 512, 3, 3)
        # a 0.9 crop of 84x84 is round(75.6) = 76: 76 -> 38 (conv1) -> 19 (maxpool)
        # -> 19 (layer1) -> 10 -> 5 -> 3 (layers 2-4)
        enc = CameraEncoder((84, 84, 3), backbone="resnet18", num_keypoints=4, crop=0.9).eval()
        assert enc.crop_size == (76, 76) and enc.feature_map_size == (3, 3)
        x = enc.preprocess(_images(2, 1, 84, 84)[:, 0])
        assert x.shape == (2, 3, 76, 76)
        assert enc.backbone(x).shape == (2, 512, 3, 3)
        assert enc(_images(2, 1, 84, 84)[:, 0]).shape == (2, 64)


# ---------------------------------------------------------------- spatial softmax


@pytest.mark.parametrize("row, col", [(0, 0), (4, 6), (1, 5), (3, 0), (2, 3)])
def test_spatial_softmax_one_hot_pixel(row: int, col: int) -> None:
    """Convention: x along the width, y along the height, both in [-1, 1] at pixel centres:
    column j of W at x = -1 + 2 j / (W - 1), row i of H at y = -1 + 2 i / (H - 1)."""
    h, w = 5, 7
    want = torch.tensor([-1 + 2 * col / (w - 1), -1 + 2 * row / (h - 1)])
    maps = torch.full((1, 1, h, w), float("-inf"))
    maps[0, 0, row, col] = 0.0
    torch.testing.assert_close(spatial_soft_argmax(maps)[0, 0], want)
    # through the module: identity 1x1 conv, very negative everywhere but the hot pixel
    pool = SpatialSoftmax(in_channels=2, num_keypoints=2)
    with torch.no_grad():
        pool.keypoints.weight.copy_(torch.eye(2)[:, :, None, None])
        pool.keypoints.bias.zero_()
    features = torch.full((1, 2, h, w), -1e4)
    features[0, 0, row, col] = 0.0
    features[0, 1, h - 1 - row, w - 1 - col] = 0.0  # the mirrored pixel
    out = pool(features)
    assert out.shape == (1, 2, 2)
    torch.testing.assert_close(out[0, 0], want)
    torch.testing.assert_close(out[0, 1], -want)


def test_spatial_softmax_uniform_map_is_centre_and_temperature_is_learnable() -> None:
    torch.manual_seed(0)
    torch.testing.assert_close(spatial_soft_argmax(torch.zeros(2, 3, 4, 6)), torch.zeros(2, 3, 2))
    pool = SpatialSoftmax(in_channels=4, num_keypoints=5)
    assert isinstance(pool.log_temperature, nn.Parameter)
    torch.testing.assert_close(pool.temperature, torch.ones(1))
    out = pool(torch.randn(3, 4, 6, 6))
    assert out.shape == (3, 5, 2) and out.abs().max() <= 1
    out.square().sum().backward()
    assert pool.log_temperature.grad is not None and pool.log_temperature.grad.abs() > 0
    fixed = SpatialSoftmax(in_channels=4, num_keypoints=5, learnable_temperature=False)
    assert "log_temperature" not in dict(fixed.named_parameters())


# ---------------------------------------------------------------- crop


def test_random_crop_windows_are_independent_and_exact() -> None:
    n, h, w = 256, 64, 64
    coded = _coded_images(n, h, w)
    g = torch.Generator().manual_seed(1)
    out = crop_images(coded, (58, 58), random=True, generator=g)
    assert out.shape == (n, 58, 58, 3)
    top, left = out[:, 0, 0, 0], out[:, 0, 0, 1]
    for i in (0, 17, 255):  # each output is the exact window of its own image
        t, lo = int(top[i]), int(left[i])
        assert torch.equal(out[i], coded[i, t:t + 58, lo:lo + 58])
    assert torch.equal(out[..., 2], torch.arange(n)[:, None, None].expand(n, 58, 58))
    assert top.min() >= 0 and top.max() <= 6 and left.min() >= 0 and left.max() <= 6
    assert len(set(zip(top.tolist(), left.tolist(), strict=True))) > 20  # independent positions
    again = crop_images(coded, (58, 58), random=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # reproducible with a generator


def test_train_crops_differ_eval_crop_is_centre() -> None:
    torch.manual_seed(0)
    enc = CameraEncoder((20, 24, 3), num_keypoints=4, feature_dim=8, crop=0.8)
    assert enc.crop_size == (16, 19)  # round(16.0), round(19.2)
    images = _images(16, 1, 20, 24)[:, 0]
    enc.train()
    first, second = enc.preprocess(images), enc.preprocess(images)  # torch's global RNG
    assert first.shape == (16, 3, 16, 19)
    assert not torch.equal(first, second)
    assert not torch.equal(enc(images), enc(images))
    enc.eval()
    centre = images[:, 2:18, 2:21].permute(0, 3, 1, 2).float() / 255 * 2 - 1
    torch.testing.assert_close(enc.preprocess(images), centre)
    torch.testing.assert_close(enc.preprocess(images), enc.preprocess(images), rtol=0, atol=0)
    assert torch.equal(enc(images), enc(images))
    assert enc.preprocess(images).min() >= -1 and enc.preprocess(images).max() <= 1


def test_crop_one_disables_cropping() -> None:
    torch.manual_seed(0)
    enc = CameraEncoder((16, 16, 3), crop=1.0).train()
    images = _images(4, 1, 16, 16)[:, 0]
    full = images.permute(0, 3, 1, 2).float() / 255 * 2 - 1
    torch.testing.assert_close(enc.preprocess(images), full)


# ---------------------------------------------------------------- gradients and norms


@pytest.mark.parametrize("backbone", BACKBONES)
def test_gradients_reach_first_conv_of_each_camera(backbone: str) -> None:
    torch.manual_seed(0)
    # 40x40 -> 36x36 crop: resnet18's feature map is 2x2 (the smallest it accepts), small_cnn's 9x9
    enc = ObservationEncoder({"a": (40, 40, 3), "b": (40, 40, 3)}, state_dim=3, proprio=(1,),
                             backbone=backbone, num_keypoints=4, feature_dim=8)
    images = {c: _images(2, 2, 40, 40, seed=i) for i, c in enumerate("ab")}
    enc(torch.randn(2, 2, 3), images).square().sum().backward()
    for name in ("a", "b"):
        first = next(m for m in enc.encoders[name].backbone.modules() if isinstance(m, nn.Conv2d))
        assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_group_norm_only(backbone: str) -> None:
    enc = ObservationEncoder({"a": (40, 40, 3)}, state_dim=1, backbone=backbone)
    modules = list(enc.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in modules)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in modules)
    for m in modules:
        if isinstance(m, nn.GroupNorm):
            assert m.num_groups == m.num_channels // 16


# ---------------------------------------------------------------- errors


def _encoder() -> ObservationEncoder:
    return ObservationEncoder({"front": (16, 16, 3), "wrist": (8, 8, 3)}, state_dim=4,
                              proprio=(0,), num_keypoints=2, feature_dim=4)


def test_error_missing_and_extra_camera() -> None:
    enc, state = _encoder(), torch.zeros(1, 1, 4)
    with pytest.raises(ValueError, match=r"exactly the cameras \['front', 'wrist'\]; got "
                       r"\['front'\] \(missing \['wrist'\], extra \[\]\)"):
        enc(state, {"front": _images(1, 1, 16, 16)})
    with pytest.raises(ValueError, match=r"got \['front', 'side', 'wrist'\] "
                       r"\(missing \[\], extra \['side'\]\)"):
        enc(state, {"front": _images(1, 1, 16, 16), "wrist": _images(1, 1, 8, 8),
                    "side": _images(1, 1, 8, 8)})


def test_error_dtype_and_shape() -> None:
    enc, state = _encoder(), torch.zeros(2, 3, 4)
    good = {"front": _images(2, 3, 16, 16), "wrist": _images(2, 3, 8, 8)}
    with pytest.raises(ValueError, match=r"camera 'front': images must be uint8; got "
                       r"torch.float32"):
        enc(state, {**good, "front": good["front"].float()})
    with pytest.raises(ValueError, match=r"camera 'wrist': images must have shape "
                       r"\(B, To, H, W, C\) = \(2, 3, 8, 8, 3\).*got \(2, 3, 16, 16, 3\)"):
        enc(state, {**good, "wrist": _images(2, 3, 16, 16)})
    with pytest.raises(ValueError, match=r"got \(2, 16, 16, 3\)"):
        enc(state, {**good, "front": good["front"][:, 0]})
    with pytest.raises(ValueError, match=r"images must be uint8; got torch.int64"):
        CameraEncoder((8, 8, 3))(torch.zeros(1, 8, 8, 3, dtype=torch.long))
    with pytest.raises(ValueError,
                       match=r"images must have shape \(N, 8, 8, 3\); got \(1, 8, 9, 3\)"):
        CameraEncoder((8, 8, 3))(torch.zeros(1, 8, 9, 3, dtype=torch.uint8))


def test_error_state_dim() -> None:
    enc = _encoder()
    images = {"front": _images(1, 1, 16, 16), "wrist": _images(1, 1, 8, 8)}
    with pytest.raises(ValueError, match=r"state must have shape \(B, To, 4\); got \(1, 1, 5\)"):
        enc(torch.zeros(1, 1, 5), images)


def test_error_constructor_arguments() -> None:
    cams = {"front": (16, 16, 3)}
    with pytest.raises(ValueError, match=r"proprio indices \[4, -1\] out of range for state_dim 4"):
        ObservationEncoder(cams, state_dim=4, proprio=(0, 4, -1))
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet50'; choose one of "
                       r"small_cnn, resnet18"):
        ObservationEncoder(cams, state_dim=4, backbone="resnet50")
    with pytest.raises(ValueError, match=r"unknown backbone 'vit'; choose one of small_cnn"):
        CameraEncoder((16, 16, 3), backbone="vit")
    for crop in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"crop must be in \(0, 1\]"):
            ObservationEncoder(cams, state_dim=4, crop=crop)
    with pytest.raises(ValueError, match=r"crop must be in \(0, 1\]"):
        CameraEncoder((16, 16, 3), crop=2.0)
    with pytest.raises(ValueError, match=r"a 29x29 crop gives resnet18 a 1x1 feature map"):
        ObservationEncoder({"front": (32, 32, 3)}, state_dim=4, backbone="resnet18")
    assert feature_map_size("resnet18", 33, 32) == (2, 1)
    assert CameraEncoder((33, 32, 3), backbone="resnet18", crop=1.0).feature_map_size == (2, 1)
    with pytest.raises(ValueError, match=r"camera 'front' shape must be \(H, W, 3\)"):
        ObservationEncoder({"front": (16, 16, 4)}, state_dim=4)
