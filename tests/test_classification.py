"""The classification stage on tiny generated data: a step learns, resume, DDP split, checkpoints."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from classification import train as train_script
from classification.training import loss_of, make_loss
from common.distributed import ShardedShuffle
from data.synthetic import write_synthetic_isic
from models import create_classifier
from tests.conftest import REPO


def _labelled_root(tmp_path, n_train=8, n_val=4):
    root = tmp_path / "isic"
    write_synthetic_isic(root, n_train, "train", seed=0)
    write_synthetic_isic(root, n_val, "val", seed=100)
    for tag in ("Training", "Validation"):  # alternate labels so both classes exist
        csv = root / f"ISIC-2017_{tag}_Part3_GroundTruth.csv"
        lines = csv.read_text().splitlines()
        rows = [lines[0]] + [f"{line.split(',')[0]},{float(i % 2)},0.0" for i, line in enumerate(lines[1:])]
        csv.write_text("\n".join(rows) + "\n")
    return root


def _args(root, out, *extra):
    settings = [f"data_root={root}", f"out_dir={out}", "batch_size=4", "num_workers=0", "epochs=1", *extra]
    return [x for s in settings for x in ("--set", s)]


def test_one_training_step_changes_weights_and_lowers_the_loss():
    torch.manual_seed(0)
    model = create_classifier("efficientnet_lite0", num_classes=1)
    model.train()
    images = torch.randn(8, 3, 224, 224)
    labels = torch.tensor([0, 1] * 4)
    loss_fn = make_loss("melanoma", labels.numpy(), torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.classifier.weight.detach().clone()
    losses = []
    for _ in range(3):
        loss = loss_of(loss_fn, model(images), labels, "melanoma")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert not torch.equal(before, model.classifier.weight)
    assert losses[-1] < losses[0]


def test_pos_weight_is_the_negative_to_positive_ratio():
    loss = make_loss("melanoma", np.array([1, 0, 0, 0]), torch.device("cpu"))
    assert loss.pos_weight.item() == pytest.approx(3.0)


def test_sharded_shuffle_sees_every_sample_once_per_epoch():
    single = ShardedShuffle(11, 0, 1, seed=3)
    ranks = [ShardedShuffle(11, r, 2, seed=3) for r in range(2)]
    for epoch in (1, 2):
        for s in [single, *ranks]:
            s.set_epoch(epoch)
        shards = [r.indices() for r in ranks]
        assert sorted(shards[0] + shards[1]) == sorted(single.indices()) == list(range(11))
        assert not set(shards[0]) & set(shards[1])
    assert len(ranks[0]) == 6 and len(ranks[1]) == 5


def test_train_resume_and_checkpoint_roundtrip(tmp_path):
    root = _labelled_root(tmp_path)
    out = tmp_path / "run"
    first = train_script.main(_args(root, out))
    assert [h["epoch"] for h in first["history"]] == [1]
    row1 = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    second = train_script.main(_args(root, out, "epochs=2"))  # resumes from last.pth
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0]) == row1
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 2
    assert (out / "learning_curves.png").is_file() and (out / "log.txt").read_text()
    # the checkpoint plugs into create_classifier (num_classes read from it)
    model = create_classifier("efficientnet_lite0", checkpoint=out / "best.pth")
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1)


def test_classifier_test_script(tmp_path):
    from classification import test as test_script

    root = _labelled_root(tmp_path)
    train_script.main(_args(root, tmp_path / "run"))
    report = test_script.main(
        [
            "--set",
            f"checkpoint={tmp_path / 'run' / 'best.pth'}",
            "--set",
            f"data_root={root}",
            "--set",
            f"out_dir={tmp_path / 'test'}",
            "--set",
            "num_workers=0",
        ]
    )
    cm = report["confusion_matrix"]
    assert cm["tn"] + cm["fp"] + cm["fn"] + cm["tp"] == 4 and 0 <= report["roc_auc"] <= 1
    assert (tmp_path / "test" / "roc.png").is_file()
    scores = pd.read_csv(tmp_path / "test" / "scores.csv")
    assert len(scores) == 4 and set(scores["melanoma"]) <= {0, 1} and scores["score"].between(0, 1).all()


def test_two_process_gloo_run_splits_the_data(tmp_path):
    root = _labelled_root(tmp_path, n_train=6, n_val=2)
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "classification.train",
        *_args(root, out, "log_sample_ids=true", "device=cpu"),
    ]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads((out / f"seen_rank{r}_epoch1.json").read_text()) for r in range(2)]
    assert not set(seen[0]) & set(seen[1])
    all_ids = sorted(p.stem for p in (root / "ISIC-2017_Training_Data").glob("*.png"))
    assert sorted(seen[0] + seen[1]) == all_ids
    # the same permutation as a single process would use
    single = ShardedShuffle(len(all_ids), 0, 1, seed=0)
    single.set_epoch(1)
    assert sorted(single.indices()) == list(range(len(all_ids)))
    assert (out / "best.pth").is_file()
