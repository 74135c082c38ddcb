"""A residual MLP denoiser for small state spaces (toy data, low-dimensional actions)."""

from __future__ import annotations

from torch import Tensor, nn

from .embeddings import SinusoidalTimeEmbedding


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, width), nn.Dropout(dropout)
        )
        self.time = nn.Linear(width, width)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h + self.net(h + self.time(temb))


class MLPDenoiser(nn.Module):
    """Residual MLP over flattened samples, conditioned on time (and an optional vector).

    Args:
        sample_shape: shape of one sample, e.g. (2,) or (T, D); flattened internally.
        width: hidden width. depth: residual blocks. cond_dim: size of an optional
            conditioning vector (0 for none).
    """

    def __init__(
        self,
        sample_shape: tuple[int, ...],
        width: int = 256,
        depth: int = 4,
        cond_dim: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        size = 1
        for s in self.sample_shape:
            size *= s
        self.time = nn.Sequential(
            SinusoidalTimeEmbedding(width), nn.Linear(width, width), nn.SiLU()
        )
        self.cond = nn.Linear(cond_dim, width) if cond_dim else None
        self.inp = nn.Linear(size, width)
        self.blocks = nn.ModuleList(_ResidualBlock(width, dropout) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, size))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """``x`` (B, *sample_shape), ``t`` (B,), ``cond`` (B, cond_dim) -> (B, *sample_shape)."""
        if tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(
                f"MLPDenoiser expects samples of shape (B, *{self.sample_shape})"
                f"; got {tuple(x.shape)}"
            )
        temb = self.time(t)
        if self.cond is not None:
            if cond is None:
                raise ValueError("this MLPDenoiser was built with cond_dim > 0: pass cond")
            temb = temb + self.cond(cond)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h).reshape(x.shape)
