"""FrameStore reads exactly the frames load_demos holds, lazily and in any row order."""

from __future__ import annotations

import numpy as np
import pytest

from sci_diffusion.envs.demos import DEMOS_FILE, collect_demos, load_demos
from sci_diffusion.envs.pixels import pixel_spec
from sci_diffusion.envs.registry import get_task
from sci_diffusion.policy.frames import FrameStore


@pytest.fixture(scope="module")
def pixel_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("px") / "demos"
    spec = pixel_spec(get_task("multimodal"), image_size=24)
    collect_demos("multimodal", 3, out, seed=5, pixels=spec, progress=False)
    return out


def test_collected_pixel_demos_store_one_frame_per_observation(pixel_demos):
    demos = load_demos(pixel_demos, images=True)
    assert demos.meta["cameras"] == {"top": [24, 24, 3]}
    for obs, frames in zip(demos.obs, demos.images, strict=True):
        assert frames["top"].shape == (len(obs), 24, 24, 3)
        assert frames["top"].dtype == np.uint8
        assert not np.array_equal(frames["top"][0], frames["top"][-1])  # the puck moved


def test_frame_store_matches_the_loaded_frames_for_any_rows(pixel_demos):
    demos = load_demos(pixel_demos, images=True)
    everything = np.concatenate([f["top"] for f in demos.images])
    store = FrameStore(pixel_demos / DEMOS_FILE, demos.meta["cameras"],
                       [len(o) for o in demos.obs])  # fmt: skip
    assert len(store) == len(everything)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(store), size=(7, 2))
    rows[0] = [3, 3]  # repeated rows (edge padding) and unsorted order
    got = store.read(rows)["top"]
    assert got.shape == (7, 2, 24, 24, 3)
    assert np.array_equal(got, everything[rows])
    with pytest.raises(IndexError, match="frame rows must be in"):
        store.read(np.array([len(store)]))
    store.close()


def test_frame_store_pickles_without_its_open_file(pixel_demos):
    import pickle

    demos = load_demos(pixel_demos)
    store = FrameStore(pixel_demos / DEMOS_FILE, demos.meta["cameras"],
                       [len(o) for o in demos.obs])  # fmt: skip
    store.read(np.array([0]))
    clone = pickle.loads(pickle.dumps(store))
    assert np.array_equal(clone.read(np.array([1]))["top"], store.read(np.array([1]))["top"])
