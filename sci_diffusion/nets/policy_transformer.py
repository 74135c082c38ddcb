"""A transformer denoiser for action chunks, in the spirit of Diffusion Policy's time-series
diffusion transformer (Chi et al. 2023, which builds on minGPT).

Each action step is a token (a linear map of ``Da`` features plus a learned position). The
observation history and the diffusion time form the *memory*: one time token and ``To``
observation tokens (each a linear map of ``Do`` features), with learned positions. A stack of
pre-norm decoder layers (``nn.TransformerDecoder``) lets action tokens self-attend (causally
by default, as in Chi et al.) and cross-attend to the whole memory; a final LayerNorm and
linear head map tokens back to ``Da`` features.

Calling convention shared by every policy network::

    net(x, t, obs) -> out      # x (B, T, Da), t (B,), obs (B, To, Do) -> (B, T, Da)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .unet1d import TimeMLP, check_policy_inputs


class PolicyTransformer(nn.Module):
    """Transformer denoiser: action tokens attend to ``[time token, observation tokens]``.

    Behaviour cloning: with ``x = zeros`` and a fixed ``t`` (e.g. ones) the network is a
    regressor ``obs -> (B, T, Da)``, deterministic in eval mode (dropout is active in training
    mode); an MSE baseline trains it that way.

    Parameters
    ----------
    action_dim : int
        ``Da``, features per action step.
    obs_dim : int
        ``Do``, features per observation step.
    n_obs_steps : int
        ``To``, the observation history length (one memory token each).
    horizon : int
        The longest chunk ``T`` accepted (the size of the learned position table); shorter
        chunks use its first rows.
    d_model : int
        Token width.
    n_layers : int
        Decoder layers.
    n_heads : int
        Attention heads; must divide ``d_model``.
    dropout : float
        Dropout on the embeddings, attention weights and feed-forward blocks. Chi et al.
        report that attention dropout matters for their transformer (they use 0.3 on
        Push-T); 0.1 is a mild default.
    causal : bool
        Whether action token ``i`` attends only to action tokens ``<= i`` (Chi et al.'s
        choice). Cross-attention to the memory is never masked.
    zero_init_output : bool
        Zero the output head so the untrained network outputs 0 (stable start; loss 1 for
        epsilon prediction of standardised data).
    """

    def __init__(
        self,
        *,
        action_dim: int,
        obs_dim: int,
        n_obs_steps: int,
        horizon: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        causal: bool = True,
        zero_init_output: bool = True,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        if d_model % 2:
            raise ValueError(f"d_model must be even (sinusoidal time features), got {d_model}")
        self.action_dim, self.obs_shape, self.horizon = action_dim, (n_obs_steps, obs_dim), horizon
        self.causal = causal
        self.action_in = nn.Linear(action_dim, d_model)
        self.action_pos = nn.Parameter(torch.empty(1, horizon, d_model))
        self.time = TimeMLP(d_model)
        self.obs_in = nn.Linear(obs_dim, d_model)
        self.memory_pos = nn.Parameter(torch.empty(1, 1 + n_obs_steps, d_model))
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerDecoderLayer(
            d_model,
            n_heads,
            dim_feedforward=4 * d_model,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm (as in minGPT): stable without warm-up tricks
        )
        self.decoder = nn.TransformerDecoder(layer, n_layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, action_dim)
        # Small random positions (GPT-2 convention) so tokens start distinguishable.
        nn.init.normal_(self.action_pos, std=0.5)
        nn.init.normal_(self.memory_pos, std=0.5)
        if zero_init_output:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        # True = may not attend (nn.Transformer's boolean mask convention).
        mask = torch.ones(horizon, horizon, dtype=torch.bool).triu(diagonal=1)
        self.register_buffer("causal_mask", mask, persistent=False)

    def memory(self, t: Tensor, obs: Tensor) -> Tensor:
        """``[time token, obs tokens]`` with positions: t (B,), obs (B, To, Do) -> (B, 1+To, d)."""
        tokens = torch.cat([self.time(t)[:, None], self.obs_in(obs)], dim=1)
        return self.drop(tokens + self.memory_pos)

    def forward(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """Denoise an action chunk.

        Parameters
        ----------
        x : Tensor, shape (B, T, Da)
            Noisy action chunk, ``T <= horizon``.
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
        steps = x.shape[1]
        if steps > self.horizon:
            raise ValueError(f"this network was built for horizons <= {self.horizon}; got {steps}")
        tokens = self.drop(self.action_in(x) + self.action_pos[:, :steps])
        mask = self.causal_mask[:steps, :steps] if self.causal else None
        h = self.decoder(
            tokens, self.memory(t, obs.to(tokens.dtype)), tgt_mask=mask, tgt_is_causal=self.causal
        )
        return self.head(h)
