"""The pixel benchmarks run end to end at tiny sizes (the figures are in docs/benchmarks.md)."""

from __future__ import annotations

from sci_diffusion.bench.frames import build_pixel_set, peak_rss
from sci_diffusion.bench.rendering import render_rates, render_table
from sci_diffusion.envs.demos import load_demos


def test_frames_bench_builds_a_cycled_set_and_measures_both_modes(tmp_path):
    path = build_pixel_set(tmp_path / "px", episodes=5, real=2, size=16)
    demos = load_demos(path)
    assert len(demos) == 5 and demos.meta["cameras"] == {"top": [16, 16, 3]}
    lazy, eager = peak_rss(path, "lazy", batches=2, batch=4), peak_rss(path, "eager")
    assert lazy["frames_bytes_held"] == 4 * 2 * 16 * 16 * 3  # one batch: 4 windows x To=2
    assert eager["frames_bytes_held"] == sum(len(o) for o in demos.obs) * 16 * 16 * 3
    assert lazy["peak_rss_bytes"] > 0 and eager["peak_rss_bytes"] > 0


def test_rendering_bench_reports_both_flag_settings():
    records = render_rates(["multimodal"], [16], seconds=0.02, rounds=1)
    (r,) = records
    assert r["default_fps"] > 0 and r["ours_fps"] > 0 and r["physics_steps_per_s"] > 0
    assert "| multimodal | top | 16 |" in render_table(records)
