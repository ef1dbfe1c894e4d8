"""The speed benchmark runs the pipeline a dataset run builds and times its stages, writing included."""

from cam_sam.studies import benchmark
from data.synthetic import write_synthetic_isic


def test_the_benchmark_times_every_stage_of_the_realtime_preset(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    result = benchmark.main(
        [
            "--set",
            f"data_root={root}",
            "--set",
            "preset=realtime",
            "--set",
            "n_images=1",
            "--set",
            "student_backend=torch",
            "--set",
            f"out_dir={tmp_path / 'bench'}",
        ]
    )
    assert result["n_images"] == 1 and result["seconds_per_image"] > 0
    assert {"proposals", "trust", "writing"} <= set(result["stages"]) and result["stages"]["writing"] > 0
    assert (tmp_path / "bench" / "benchmark.json").is_file() and not result["synthetic"]
