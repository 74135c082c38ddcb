"""A residual MLP policy denoiser for tiny tasks: the chunk is flattened, the observation
history conditions every block.

:class:`~sci_diffusion.nets.mlp.MLPDenoiser` already takes a flat conditioning vector
(``cond``, (B, cond_dim)); this wrapper gives it the policy networks' calling convention::

    net(x, t, obs) -> out      # x (B, T, Da), t (B,), obs (B, To, Do) -> (B, T, Da)
"""

from __future__ import annotations

from torch import Tensor, nn

from .mlp import MLPDenoiser
from .unet1d import check_policy_inputs


class PolicyMLP(nn.Module):
    """Residual MLP over the flattened chunk ``T * Da``, conditioned on time and ``obs``.

    The flattened observation history (``To * Do``) is projected and added to the time
    embedding, and the sum conditions every residual block (see
    :class:`~sci_diffusion.nets.mlp.MLPDenoiser`). The output layer starts at zero.

    Behaviour cloning: with ``x = zeros`` and a fixed ``t`` (e.g. ones) the network is a
    regressor ``obs -> (B, T, Da)``, deterministic when ``dropout = 0`` or in eval mode.

    Parameters
    ----------
    action_dim : int
        ``Da``, features per action step.
    obs_dim : int
        ``Do``, features per observation step.
    n_obs_steps : int
        ``To``, the observation history length.
    horizon : int
        ``T``, the chunk length (fixed: the chunk is flattened).
    width : int
        Hidden width (even).
    depth : int
        Residual blocks.
    dropout : float
        Dropout inside the residual blocks.
    """

    def __init__(
        self,
        *,
        action_dim: int,
        obs_dim: int,
        n_obs_steps: int,
        horizon: int,
        width: int = 256,
        depth: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.action_dim, self.obs_shape, self.horizon = action_dim, (n_obs_steps, obs_dim), horizon
        self.mlp = MLPDenoiser(
            (horizon, action_dim), width, depth, cond_dim=n_obs_steps * obs_dim, dropout=dropout
        )

    def forward(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """Denoise an action chunk.

        Parameters
        ----------
        x : Tensor, shape (B, T, Da)
            Noisy action chunk, ``T == horizon``.
        t : Tensor, shape (B,)
            Diffusion time.
        obs : Tensor, shape (B, To, Do)
            Observation history.

        Returns
        -------
        Tensor, shape (B, T, Da)
            The prediction (epsilon, x0, v, ... as trained).
        """
        check_policy_inputs(x, t, obs, self.action_dim, self.obs_shape)
        if x.shape[1] != self.horizon:
            raise ValueError(f"this network was built for horizon {self.horizon}; got {x.shape[1]}")
        return self.mlp(x, t, cond=obs.reshape(obs.shape[0], -1).to(x.dtype))
