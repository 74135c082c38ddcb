"""A 1D temporal U-Net with FiLM conditioning, for diffusion over action chunks.

The design follows the description in Chi et al. 2023 (Diffusion Policy, "CNN-based"),
itself a modification of Janner et al. 2022's temporal U-Net: residual blocks of
``Conv1d -> GroupNorm -> Mish`` over the time axis of the chunk, each modulated by FiLM
(Perez et al. 2018) from one global condition vector ``[time embedding, flattened
observation history]``; strided-conv downsampling, transposed-conv upsampling and skip
connections between levels of equal resolution. Written from the papers' descriptions.

Calling convention shared by every policy network (see :mod:`sci_diffusion.nets`)::

    net(x, t, obs) -> out      # x (B, T, Da), t (B,), obs (B, To, Do) -> (B, T, Da)

so it plugs into :class:`sci_diffusion.core.Denoiser` with ``cond={"obs": obs}``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embeddings import SinusoidalTimeEmbedding


def check_policy_inputs(
    x: Tensor, t: Tensor, obs: Tensor, action_dim: int, obs_shape: tuple[int, int]
) -> None:
    """Raise ``ValueError`` unless ``x`` (B, T, action_dim), ``t`` (B,), ``obs`` (B, *obs_shape).

    Shared by the policy networks so that a config mismatch fails with one clear message.
    """
    if x.ndim != 3 or x.shape[-1] != action_dim:
        raise ValueError(f"x must have shape (B, T, {action_dim}); got {tuple(x.shape)}")
    batch = x.shape[0]
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},); got {tuple(t.shape)}")
    if tuple(obs.shape) != (batch, *obs_shape):
        raise ValueError(
            f"obs must have shape ({batch}, {obs_shape[0]}, {obs_shape[1]}); got {tuple(obs.shape)}"
        )


class TimeMLP(nn.Sequential):
    """Sinusoidal features of ``t`` (B,) followed by a two-layer MLP -> (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__(
            SinusoidalTimeEmbedding(dim),
            nn.Linear(dim, 4 * dim),
            nn.Mish(),
            nn.Linear(4 * dim, dim),
        )


class _ConvNormMish(nn.Sequential):
    """``Conv1d -> GroupNorm -> Mish`` on (B, C_in, T) -> (B, C_out, T) (length kept)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, c_out),
            nn.Mish(),
        )


class FiLMResBlock(nn.Module):
    """Two conv blocks with FiLM between them and a residual connection.

    ``forward(h (B, C_in, T), cond (B, cond_dim)) -> (B, C_out, T)``.
    """

    def __init__(
        self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.block1 = _ConvNormMish(c_in, c_out, kernel_size, n_groups)
        self.block2 = _ConvNormMish(c_out, c_out, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        out = self.block1(h)
        scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)
        # (1 + scale): FiLM starts near the identity instead of scaling features by ~0.
        out = self.block2(out * (1.0 + scale) + shift)
        return out + self.skip(h)


class _Level(nn.Module):
    """Two FiLM residual blocks at one resolution."""

    def __init__(
        self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int
    ) -> None:
        super().__init__()
        self.first = FiLMResBlock(c_in, c_out, cond_dim, kernel_size, n_groups)
        self.second = FiLMResBlock(c_out, c_out, cond_dim, kernel_size, n_groups)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        return self.second(self.first(h, cond), cond)


class ConditionalUnet1D(nn.Module):
    """Temporal U-Net denoiser for action chunks conditioned on an observation history.

    Levels ``i = 0 .. L-1`` (``L = len(down_dims)``) run two FiLM residual blocks with
    ``down_dims[i]`` channels; all but the deepest halve the horizon afterwards (Conv1d,
    kernel 3, stride 2). Two more blocks run at the bottom. On the way up each level doubles
    the horizon (ConvTranspose1d, kernel 4, stride 2), concatenates the skip of its
    resolution and runs two blocks. A ``Conv -> GroupNorm -> Mish`` block and a 1x1 conv map
    ``down_dims[0]`` channels back to ``action_dim``.

    Horizons: the time axis is halved ``L - 1`` times, so a horizon ``T`` that is not a
    multiple of ``2**(L-1)`` is zero-padded at the end up to the next multiple and the output
    cropped back to ``T``. For multiples (e.g. T = 16 with three levels) nothing is padded.

    Behaviour cloning: with ``x = zeros`` and a fixed ``t`` (e.g. ones) the network is a
    deterministic regressor ``obs -> (B, T, Da)``; an MSE baseline trains it that way.

    Parameters
    ----------
    action_dim : int
        ``Da``, features per action step.
    obs_dim : int
        ``Do``, features per observation step.
    n_obs_steps : int
        ``To``, the observation history length; ``obs`` is flattened to ``To * Do`` features.
    horizon : int or None
        If given, inputs must have this many steps (catches config mismatches); ``None``
        accepts any horizon (the network is convolutional).
    down_dims : sequence of int
        Channels per level; each divisible by ``n_groups``. Chi et al. use (256, 512, 1024).
    time_embed_dim : int
        Width of the time embedding (even). Chi et al. use 256.
    kernel_size : int
        Odd temporal kernel size of the residual blocks.
    n_groups : int
        GroupNorm groups.
    zero_init_output : bool
        Zero the final 1x1 conv so the untrained network outputs 0 (the mean of standardised
        targets, i.e. loss 1 for epsilon prediction) and early training is stable.
    """

    def __init__(
        self,
        *,
        action_dim: int,
        obs_dim: int,
        n_obs_steps: int,
        horizon: int | None = None,
        down_dims: Sequence[int] = (64, 128, 256),
        time_embed_dim: int = 128,
        kernel_size: int = 5,
        n_groups: int = 8,
        zero_init_output: bool = True,
    ) -> None:
        super().__init__()
        dims = tuple(int(d) for d in down_dims)
        if not dims or any(d % n_groups for d in dims):
            raise ValueError(
                f"down_dims must be non-empty multiples of n_groups={n_groups}; got {dims}"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (length-preserving), got {kernel_size}")
        self.action_dim, self.obs_shape, self.horizon = action_dim, (n_obs_steps, obs_dim), horizon
        self.stride = 2 ** (len(dims) - 1)
        cond_dim = time_embed_dim + n_obs_steps * obs_dim
        args = (cond_dim, kernel_size, n_groups)

        self.time = TimeMLP(time_embed_dim)
        ins = (action_dim, *dims[:-1])
        self.down = nn.ModuleList(_Level(c_in, c, *args) for c_in, c in zip(ins, dims, strict=True))
        self.downsample = nn.ModuleList(nn.Conv1d(c, c, 3, stride=2, padding=1) for c in dims[:-1])
        self.mid = _Level(dims[-1], dims[-1], *args)
        # Up level i goes from dims[i + 1] channels at half resolution to dims[i].
        self.upsample = nn.ModuleList(
            nn.ConvTranspose1d(c, c, 4, stride=2, padding=1) for c in dims[1:]
        )
        self.up = nn.ModuleList(
            _Level(c_deep + c, c, *args) for c, c_deep in itertools.pairwise(dims)
        )
        self.final = nn.Sequential(
            _ConvNormMish(dims[0], dims[0], kernel_size, n_groups),
            nn.Conv1d(dims[0], action_dim, 1),
        )
        if zero_init_output:
            nn.init.zeros_(self.final[-1].weight)
            nn.init.zeros_(self.final[-1].bias)

    def forward(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """Denoise an action chunk.

        Parameters
        ----------
        x : Tensor, shape (B, T, Da)
            Noisy action chunk.
        t : Tensor, shape (B,)
            Diffusion time (or whatever the :class:`~sci_diffusion.core.Denoiser` passes).
        obs : Tensor, shape (B, To, Do)
            Observation history.

        Returns
        -------
        Tensor, shape (B, T, Da)
            The prediction (epsilon, x0, v, ... as trained).
        """
        check_policy_inputs(x, t, obs, self.action_dim, self.obs_shape)
        horizon = x.shape[1]
        if self.horizon is not None and horizon != self.horizon:
            raise ValueError(f"this network was built for horizon {self.horizon}; got {horizon}")
        cond = global_condition(self.time(t), obs)
        h = F.pad(x.transpose(1, 2), (0, -horizon % self.stride))  # (B, Da, T_padded)
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, cond)
            if i < len(self.downsample):
                skips.append(h)
                h = self.downsample[i](h)
        h = self.mid(h, cond)
        for i in reversed(range(len(self.up))):
            h = self.upsample[i](h)
            h = self.up[i](torch.cat([h, skips.pop()], dim=1), cond)
        return self.final(h)[:, :, :horizon].transpose(1, 2)


def global_condition(temb: Tensor, obs: Tensor) -> Tensor:
    """``[temb (B, E), obs flattened (B, To * Do)]`` -> (B, E + To * Do)."""
    return torch.cat([temb, obs.reshape(obs.shape[0], -1).to(temb.dtype)], dim=-1)
