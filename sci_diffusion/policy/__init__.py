"""Diffusion policies: observation history -> action chunk, executed with receding horizon.

* :mod:`.normalize` — min/max ("limits") normalization fitted on the demonstrations, stored
  with the network as buffers so every checkpoint carries it.
* :mod:`.windows` — training windows (observation history, action chunk) cut from episodes.
* :mod:`.policy` — the runtime policy: normalize, sample (or regress), un-normalize, clip.
* :mod:`.rollout` — seeded, batched evaluation episodes in lockstep environments.
* :mod:`.stats` — the Wilson score interval for success rates.
"""
