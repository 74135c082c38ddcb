"""Diffusion policies: observation history -> action chunk, executed with receding horizon.

* :mod:`.normalize` — min/max ("limits") normalization fitted on the demonstrations, stored
  with the network as buffers so every checkpoint carries it.
* :mod:`.windows` — training windows (observation history, action chunk) cut from episodes.
* :mod:`.methods` — the policy methods (``policy=diffusion|mse_bc``): training objective and
  chunk prediction, one module each.
* :mod:`.backbones` — the backbones (``model=unet1d|transformer|mlp``), one module each.
* :mod:`.network` — a backbone with its normalizers: the trained object.
* :mod:`.policy` — the runtime policy: normalize, plan with the method, un-normalize, clip.
* :mod:`.rollout` — seeded, batched evaluation episodes in lockstep environments.
* :mod:`.stats` — the Wilson score interval for success rates.
"""
