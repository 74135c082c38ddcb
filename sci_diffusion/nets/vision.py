"""The vision encoder of pixel diffusion policies, after Chi et al. 2023 (Diffusion Policy).

Each camera has its own :class:`CameraEncoder`::

    uint8 (N, H, W, 3) -> crop -> float in [-1, 1], (N, 3, h, w) -> backbone -> (N, C, H', W')
        -> SpatialSoftmax -> (N, K, 2) keypoints -> flatten (N, 2K) -> Linear -> (N, feature_dim)

and :class:`ObservationEncoder` runs one per camera over every observation step and appends
the chosen proprioceptive entries of the state, giving one conditioning vector per step for
the policy networks (``obs`` of shape ``(B, To, out_dim)``).

Design decisions
----------------
* **ResNet-18 written here, not imported from torchvision.** The only torchvision wheels on
  our machines are built against CUDA torch and fail to load with the pinned CPU torch
  (``torchvision/_C.so`` needs ``libtorch_cuda``), and ``sci_diffusion.nets`` may depend on
  torch and numpy only. :class:`ResNet18Trunk` reproduces torchvision's ``resnet18``
  architecture exactly (BasicBlock, layers ``[2, 2, 2, 2]``, 64-128-256-512 channels, 7x7
  stride-2 stem conv without bias, 3x3 stride-2 max pool, 1x1 stride-2 downsample conv + norm on
  the first block of layers 2-4, every conv without bias, torchvision's Kaiming fan-out init)
  and keeps torchvision's module names (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ...), so
  conv weight keys line up with torchvision's state dict. As in Diffusion Policy every
  BatchNorm is replaced by ``GroupNorm(channels // 16, channels)`` (BatchNorm's running
  statistics interact badly with the EMA of the weights and with small/correlated batches),
  the weights are randomly initialised (no download), and the average pool and ``fc`` are
  removed: the trunk ends at ``layer4``'s feature map. GroupNorm has the same affine
  parameters as BatchNorm, so the trunk has torchvision's resnet18 count minus the fc layer:
  11,689,512 - 513,000 = 11,176,512 parameters.
* **SmallCNN is the default backbone** (about 66k parameters): ResNet-18 is the paper's
  choice, but it costs far more CPU time than our budgets allow (timings below).
* **Spatial softmax** (Levine et al. 2016, as in robomimic / Diffusion Policy): a 1x1 conv maps
  the feature map to K keypoint maps, a softmax over each map's pixels (divided by a
  learnable temperature, initialised at 1) gives the expected ``(x, y)``. Coordinate
  convention: ``x`` runs along the width, ``y`` along the height, both in ``[-1, 1]`` at
  pixel centres: column ``j`` of ``W`` sits at ``x = -1 + 2 j / (W - 1)`` (``0`` when
  ``W == 1``), likewise for rows.
* **Pixels**: images arrive as uint8 channels-last ``(..., H, W, 3)``; they are converted
  inside to ``float / 255``, channels-first, then scaled to ``[-1, 1]`` (``2 x - 1``).
* **Random crop** (Diffusion Policy's augmentation): crop size ``round(crop * H) x
  round(crop * W)``; in training mode an independent random position per image (drawn with
  ``torch.randint`` from torch's global RNG, or from the ``generator`` passed to ``forward``),
  in eval mode the centre crop (top-left at ``((H - h) // 2, (W - w) // 2)``). ``crop=1.0``
  disables it. The crop is one vectorized gather on the uint8 images, no Python loop.
* **Camera order**: the per-step feature vector concatenates the cameras in *sorted name*
  order, whatever the order of the ``cameras`` mapping, so two configs listing the same cameras
  differently build the same network layout.

Timings (2026-12-03, this 2-core machine shared with a training job, 1 torch thread,
``CameraEncoder`` in eval mode under ``torch.no_grad``, crop 0.9, K = 32, feature_dim 64;
median of 5 forwards of one batch of B*To = 128 uint8 images; the ranges span two runs back
to back; wall time, and in brackets the calling thread's CPU time, which load moves less):

==========  =========================  =========================
backbone    64x64 (58x58 crop)         84x84 (76x76 crop)
==========  =========================  =========================
small_cnn   57-70 ms (51-57 ms)        91-133 ms (91-95 ms)
resnet18    419-436 ms (413-421 ms)    631-662 ms (627-644 ms)
==========  =========================  =========================

ResNet-18 costs about 7x small_cnn per image. The training-mode random crop alone takes
about 13 ms for 256 images of 64x64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

BACKBONES = ("small_cnn", "resnet18")
"""Names accepted by ``backbone=`` of :class:`CameraEncoder` / :class:`ObservationEncoder`."""


def _group_norm(channels: int) -> nn.GroupNorm:
    """Diffusion Policy's BatchNorm replacement: ``GroupNorm(channels // 16, channels)``."""
    return nn.GroupNorm(num_groups=channels // 16, num_channels=channels)


def keypoint_coordinates(size: int, device: torch.device | None = None) -> Tensor:
    """(size,) normalized pixel-centre coordinates in ``[-1, 1]``: ``-1 + 2 i / (size - 1)``;
    ``[0.]`` when ``size == 1``."""
    if size == 1:
        return torch.zeros(1, device=device)
    return torch.linspace(-1.0, 1.0, size, device=device)


def spatial_soft_argmax(maps: Tensor, temperature: Tensor | float = 1.0) -> Tensor:
    """(N, K, H, W) maps -> (N, K, 2) expected ``(x, y)`` under ``softmax(maps / temperature)``
    over each map's H*W pixels; ``x`` along W, ``y`` along H, both in ``[-1, 1]`` at pixel
    centres (see :func:`keypoint_coordinates`). ``-inf`` entries get zero weight."""
    if maps.ndim != 4:
        raise ValueError(f"maps must have shape (N, K, H, W); got {tuple(maps.shape)}")
    n, k, h, w = maps.shape
    weights = torch.softmax(maps.reshape(n, k, h * w) / temperature, dim=-1).reshape(n, k, h, w)
    xs = keypoint_coordinates(w, maps.device).to(maps.dtype)
    ys = keypoint_coordinates(h, maps.device).to(maps.dtype)
    x = (weights.sum(dim=2) * xs).sum(dim=-1)  # marginal over rows, (N, K, W) -> (N, K)
    y = (weights.sum(dim=3) * ys).sum(dim=-1)  # marginal over columns, (N, K, H) -> (N, K)
    return torch.stack((x, y), dim=-1)


class SpatialSoftmax(nn.Module):
    """(N, C, H, W) feature map -> (N, num_keypoints, 2) expected ``(x, y)`` in ``[-1, 1]`` of a
    softmax over each keypoint's map (Levine et al. 2016; robomimic / Diffusion Policy: a 1x1
    conv from C to ``num_keypoints`` channels first, a learnable temperature).

    The temperature is stored as ``log_temperature`` (initialised at 0, i.e. temperature 1) so it
    stays positive; with ``learnable_temperature=False`` it is a fixed buffer. ``x`` runs along
    the width and ``y`` along the height, at pixel centres (see :func:`spatial_soft_argmax`).
    """

    def __init__(
        self, in_channels: int, num_keypoints: int = 32, learnable_temperature: bool = True
    ):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1; got {num_keypoints}")
        self.in_channels = in_channels
        self.num_keypoints = num_keypoints
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        log_temperature = torch.zeros(1)
        if learnable_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            self.register_buffer("log_temperature", log_temperature)

    @property
    def temperature(self) -> Tensor:
        """(1,) the softmax temperature (positive)."""
        return self.log_temperature.exp()

    def forward(self, features: Tensor) -> Tensor:
        """features (N, C, H, W) -> keypoints (N, num_keypoints, 2), ``[..., 0] = x``,
        ``[..., 1] = y``."""
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(
                f"features must have shape (N, {self.in_channels}, H, W); "
                f"got {tuple(features.shape)}"
            )
        return spatial_soft_argmax(self.keypoints(features), self.temperature)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock with GroupNorm: two 3x3 convs (no bias), identity or
    1x1-conv+norm shortcut. (N, in_channels, H, W) -> (N, channels, H / stride, W / stride)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _group_norm(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = _group_norm(channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                _group_norm(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, channels, H', W')."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Trunk(nn.Module):
    """torchvision's ResNet-18 up to ``layer4``, GroupNorm for BatchNorm, random init.

    (N, 3, H, W) float -> (N, 512, ~H/32, ~W/32) (each of the five stride-2 steps rounds up:
    84x84 -> 3x3, 76x76 -> 3x3, 64x64 -> 2x2, 58x58 -> 2x2). 11,176,512 parameters.
    """

    out_channels = 512

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = _group_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, stride=2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, stride=2), BasicBlock(512, 512))
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, 512, H', W'): each of the five stride-2 steps maps a side s to
        ``floor((s - 1) / 2) + 1``, i.e. ``ceil(s / 2)`` (84 -> 42 -> 21 -> 11 -> 6 -> 3)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class SmallCNN(nn.Module):
    """The CPU-budget backbone: four 3x3 convs (32, 32, 64, 64 channels; the first two stride 2,
    padding 1, no bias), each followed by ``GroupNorm(channels // 16)`` and ReLU.

    (N, 3, H, W) -> (N, 64, H', W') with ``H' = ceil(ceil(H / 2) / 2)`` (likewise W'), e.g.
    58x58 -> 15x15, 76x76 -> 19x19. 65,760 parameters with 3 input channels.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 32, 64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(channels):
            stride = 2 if i < 2 else 1
            layers += [
                nn.Conv2d(prev, c, kernel_size=3, stride=stride, padding=1, bias=False),
                _group_norm(c),
                nn.ReLU(inplace=True),
            ]
            prev = c
        self.layers = nn.Sequential(*layers)
        self.out_channels = prev

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H', W')."""
        return self.layers(x)


def _check_backbone(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


_HALVINGS = {"small_cnn": 2, "resnet18": 5}
"""Stride-2 steps of each backbone; each maps a side s to ``ceil(s / 2)``."""


def feature_map_size(backbone: str, height: int, width: int) -> tuple[int, int]:
    """(H', W') of ``backbone``'s feature map for (height, width) input images."""
    _check_backbone(backbone)
    for _ in range(_HALVINGS[backbone]):
        height, width = (height + 1) // 2, (width + 1) // 2
    return height, width


def _make_backbone(name: str) -> SmallCNN | ResNet18Trunk:
    _check_backbone(name)
    return SmallCNN() if name == "small_cnn" else ResNet18Trunk()


def _check_crop(crop: float) -> None:
    if not 0.0 < crop <= 1.0:
        raise ValueError(f"crop must be in (0, 1] (a fraction of the image side); got {crop}")


def _check_image_shape(image_shape: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{what} must be (H, W, 3) with H, W >= 1; got {tuple(image_shape)}")
    return shape  # type: ignore[return-value]


def crop_images(
    images: Tensor, size: tuple[int, int], random: bool, generator: torch.Generator | None = None
) -> Tensor:
    """Crop channels-last images (N, H, W, C) (any dtype) to (N, h, w, C), ``size = (h, w)``.

    ``random=True``: an independent uniformly random top-left corner per image, drawn with
    ``torch.randint`` from ``generator`` (torch's global RNG when ``None``); ``random=False``:
    the centre crop, top-left at ``((H - h) // 2, (W - w) // 2)``. One vectorized gather.
    """
    n, height, width = images.shape[:3]
    h, w = size
    if not (1 <= h <= height and 1 <= w <= width):
        raise ValueError(f"crop size {size} does not fit images of {height}x{width}")
    if (h, w) == (height, width):
        return images
    if random:
        device = generator.device if generator is not None else images.device
        top = torch.randint(0, height - h + 1, (n,), generator=generator, device=device)
        left = torch.randint(0, width - w + 1, (n,), generator=generator, device=device)
        top, left = top.to(images.device), left.to(images.device)
    else:
        top = torch.full((n,), (height - h) // 2, device=images.device)
        left = torch.full((n,), (width - w) // 2, device=images.device)
    rows = top[:, None] + torch.arange(h, device=images.device)  # (N, h)
    cols = left[:, None] + torch.arange(w, device=images.device)  # (N, w)
    index = torch.arange(n, device=images.device)[:, None, None]
    return images[index, rows[:, :, None], cols[:, None, :]]  # (N, h, w, C)


class CameraEncoder(nn.Module):
    """One camera: crop -> backbone -> SpatialSoftmax -> flatten (2K) -> Linear -> (N, feature_dim).

    ``image_shape`` is the camera's ``(H, W, C)``, ``C == 3``. The input is uint8 channels-last
    ``(N, H, W, 3)``; see the module docstring for the pixel scaling and the crop. The crop
    must leave the backbone a feature map of at least 2 pixels (``ValueError`` otherwise: on a
    1x1 map the spatial softmax is constant), e.g. resnet18 needs a crop side above 32.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        backbone: str = "small_cnn",
        num_keypoints: int = 32,
        feature_dim: int = 64,
        crop: float = 0.9,
    ):
        super().__init__()
        self.image_shape = _check_image_shape(image_shape, "image_shape")
        _check_crop(crop)
        _check_backbone(backbone)
        height, width, _ = self.image_shape
        self.crop = crop
        self.crop_size = (max(1, round(crop * height)), max(1, round(crop * width)))
        self.feature_map_size = feature_map_size(backbone, *self.crop_size)
        if self.feature_map_size[0] * self.feature_map_size[1] < 2:
            raise ValueError(
                f"a {self.crop_size[0]}x{self.crop_size[1]} crop gives {backbone} a 1x1 feature "
                "map, over which the spatial softmax is constant; use larger images"
            )
        self.feature_dim = feature_dim
        self.backbone = _make_backbone(backbone)
        self.pool = SpatialSoftmax(self.backbone.out_channels, num_keypoints)
        self.out = nn.Linear(2 * num_keypoints, feature_dim)

    def preprocess(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, h, w) in ``[-1, 1]``, cropped (random in training
        mode, centre in eval mode)."""
        cropped = crop_images(images, self.crop_size, self.training, generator)
        x = cropped.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return x * 2.0 - 1.0

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """images uint8 (N, H, W, 3) -> features (N, feature_dim)."""
        height, width, channels = self.image_shape
        if images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8; got {images.dtype}")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"images must have shape (N, {height}, {width}, {channels}); "
                f"got {tuple(images.shape)}"
            )
        keypoints = self.pool(self.backbone(self.preprocess(images, generator)))
        return self.out(keypoints.flatten(1))


class ObservationEncoder(nn.Module):
    """Images (one :class:`CameraEncoder` per camera, an ``nn.ModuleDict`` keyed by camera name)
    plus optional proprioception -> one conditioning vector per observation step.

    ``cameras`` maps a camera name to its ``(H, W, C)``, ``C == 3``; ``proprio`` lists indices
    ``0 <= i < state_dim`` of the state entries appended after the image features (empty: images
    only). ``out_dim = len(cameras) * feature_dim + len(proprio)``.
    """

    def __init__(
        self,
        cameras: Mapping[str, tuple[int, int, int]],
        state_dim: int,
        proprio: Sequence[int] = (),
        backbone: str = "small_cnn",
        num_keypoints: int = 32,
        feature_dim: int = 64,
        crop: float = 0.9,
    ):
        super().__init__()
        if not cameras:
            raise ValueError("cameras must name at least one camera")
        _check_backbone(backbone)
        _check_crop(crop)
        bad = [int(i) for i in proprio if not 0 <= int(i) < state_dim]
        if bad:
            raise ValueError(
                f"proprio indices {bad} out of range for state_dim {state_dim} "
                f"(each must satisfy 0 <= i < {state_dim})"
            )
        self.camera_names: tuple[str, ...] = tuple(sorted(cameras))
        self.image_shapes = {
            name: _check_image_shape(cameras[name], f"camera {name!r} shape")
            for name in self.camera_names
        }
        self.state_dim = state_dim
        self.proprio = tuple(int(i) for i in proprio)
        self.feature_dim = feature_dim
        self.encoders = nn.ModuleDict({
            name: CameraEncoder(self.image_shapes[name], backbone, num_keypoints, feature_dim, crop)
            for name in self.camera_names
        })
        self.register_buffer(
            "proprio_index", torch.tensor(self.proprio, dtype=torch.long), persistent=False
        )
        self.out_dim = len(self.camera_names) * feature_dim + len(self.proprio)

    def forward(
        self,
        state: Tensor,
        images: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """state (B, To, state_dim) float (already normalized by the caller); images: camera ->
        uint8 (B, To, H, W, 3). Returns (B, To, out_dim): per step, the camera features in sorted
        camera-name order, then ``state[..., proprio]``. ``generator`` (optional) drives the
        training-mode random crops; torch's global RNG when ``None``."""
        expected, got = set(self.camera_names), set(images)
        if expected != got:
            raise ValueError(
                f"images must hold exactly the cameras {sorted(expected)}; got {sorted(got)} "
                f"(missing {sorted(expected - got)}, extra {sorted(got - expected)})"
            )
        if state.ndim != 3 or state.shape[-1] != self.state_dim:
            raise ValueError(
                f"state must have shape (B, To, {self.state_dim}); got {tuple(state.shape)}"
            )
        batch, steps = state.shape[:2]
        features = []
        for name in self.camera_names:
            frames = images[name]
            height, width, channels = self.image_shapes[name]
            if frames.dtype != torch.uint8:
                raise ValueError(f"camera {name!r}: images must be uint8; got {frames.dtype}")
            want = (batch, steps, height, width, channels)
            if tuple(frames.shape) != want:
                raise ValueError(
                    f"camera {name!r}: images must have shape (B, To, H, W, C) = {want} "
                    f"(B, To from state); got {tuple(frames.shape)}"
                )
            flat = frames.reshape(batch * steps, height, width, channels)
            features.append(self.encoders[name](flat, generator).reshape(batch, steps, -1))
        if self.proprio:
            features.append(state.index_select(-1, self.proprio_index).to(features[0].dtype))
        return torch.cat(features, dim=-1)


__all__ = [
    "BACKBONES",
    "BasicBlock",
    "CameraEncoder",
    "ObservationEncoder",
    "ResNet18Trunk",
    "SmallCNN",
    "SpatialSoftmax",
    "crop_images",
    "feature_map_size",
    "keypoint_coordinates",
    "spatial_soft_argmax",
]
