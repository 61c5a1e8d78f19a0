"""Two CPU ranks (gloo on 127.0.0.1) run each training script's --smoke as DDP: one set of
weights on every rank, files from rank 0 alone, resume through rank 0, the effective batch recorded.
And the 128-px option, end to end in one process.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import write_celeba
from core.checkpoint import load_checkpoint
from training.common import BatchSampler, param_hash

pytestmark = pytest.mark.slow  # trains real (tiny) models: `pytest -m "not slow"` skips them

WORLD = 2


def _free_ports(n: int) -> list[int]:
    """n distinct ports on 127.0.0.1 that were free a moment ago."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _worker(rank: int, ports: list[int], data: str, root: str) -> None:
    """One rank, set up as torchrun sets one up (environment variables), in its own working folder
    (relative --out), so that a file written by rank 1 would show."""
    from training import train_classifier, train_encoder, train_gan

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    here = Path(root) / f"rank{rank}"
    here.mkdir()
    os.chdir(here)
    common = ["--data", data, "--smoke", "--device", "cpu", "--cache-dir", str(Path(root) / "cache")]
    rank0 = Path(root) / "rank0"
    g_path, c_path = str(rank0 / "gan" / "generator.pt"), str(rank0 / "cls" / "classifier.pt")
    jobs = {
        # --ema 0: recalibrating the EMA copy's BatchNorm would be most of a smoke run's time
        "gan": (train_gan.main, ["--out", "gan", "--steps", "3", "--ema", "0"]),
        "cls": (train_classifier.main, ["--out", "cls", "--steps", "4", "--log-every", "2"]),
        "enc": (train_encoder.main, ["--out", "enc", "--steps", "2", "--generator", g_path, "--classifier", c_path]),
        # rank 1's folder has no gan/ to resume from: its state comes from rank 0
        "gan_resumed": (train_gan.main, ["--out", "gan", "--steps", "5", "--ema", "0", "--resume"]),
    }
    runs = {}
    for (name, (main, argv)), port in zip(jobs.items(), ports):
        os.environ["MASTER_PORT"] = str(port)  # each script starts and ends its own group, as under torchrun
        runs[name] = main([*common, *argv])
        assert not torch.distributed.is_initialized()
    keep = {name: {k: r[k] for k in ("rank", "steps", "weights", "history")} for name, r in runs.items()}
    (Path(root) / f"result{rank}.json").write_text(json.dumps(keep))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("ddp")
    data = write_celeba(root / "celeba", n=60)
    mp.spawn(_worker, args=(_free_ports(4), str(data), str(root)), nprocs=WORLD, join=True)
    return root, [json.loads((root / f"result{r}.json").read_text()) for r in range(WORLD)]


def test_ranks_hold_identical_weights_and_rank0_saved_them(two_ranks):
    root, (r0, r1) = two_ranks
    for name in ("gan", "cls", "enc", "gan_resumed"):
        assert r0[name]["weights"] == r1[name]["weights"], name
        assert r0[name]["history"] == r1[name]["history"], name  # logged losses are the job's mean
    out = root / "rank0"
    gen_ck = load_checkpoint(out / "gan" / "generator.pt", "generator")  # after the resumed run
    assert param_hash(gen_ck.model) == r0["gan_resumed"]["weights"]["generator"]
    disc = load_checkpoint(out / "gan" / "discriminator.pt", "discriminator").model
    assert param_hash(disc) == r0["gan_resumed"]["weights"]["discriminator"]
    assert param_hash(load_checkpoint(out / "cls" / "classifier.pt").model) == r0["cls"]["weights"]["classifier"]
    assert param_hash(load_checkpoint(out / "enc" / "encoder.pt").model) == r0["enc"]["weights"]["encoder"]
    assert r0["gan"]["weights"] != r0["gan_resumed"]["weights"]  # the resumed run did train on


def test_only_rank0_writes_and_the_effective_batch_is_recorded(two_ranks):
    root, (r0, _) = two_ranks
    assert list((root / "rank1").iterdir()) == []
    out = root / "rank0"
    for path in ("gan/generator.pt", "gan/discriminator.pt", "gan/metrics.jsonl", "cls/classifier.pt",
                 "cls/metrics.jsonl", "enc/encoder.pt", "enc/metrics.jsonl"):
        assert (out / path).is_file(), path
    assert list((out / "gan" / "samples").glob("*.png")) and list((out / "enc" / "samples").glob("*.png"))
    train = load_checkpoint(out / "gan" / "generator.pt").train
    assert train["world_size"] == WORLD and train["effective_batch_size"] == WORLD * train["batch_size"] == 32
    assert train["steps"] == 5 and "2 ranks" in train["hardware"]
    steps = [json.loads(line)["step"] for line in (out / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5] and [h["step"] for h in r0["gan_resumed"]["history"]] == steps
    enc = load_checkpoint(out / "enc" / "encoder.pt").train
    assert enc["effective_batch_size"] == WORLD * enc["batch_size"]


def test_ranks_draw_disjoint_parts_of_one_shared_pass():
    images = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 3, 2, 2).contiguous()
    labels = torch.arange(20).float().view(20, 1)
    seen = []
    for rank in range(WORLD):
        torch.manual_seed(100 + rank)  # each rank's own stream: it must not decide the data order
        sampler = BatchSampler(images, 5, labels=labels, flip=False, rank=rank, world=WORLD, seed=7)
        seen.append([int(v) for _ in range(2) for v in sampler.next()[1].flatten()])
    assert set(seen[0]).isdisjoint(seen[1]) and sorted(seen[0] + seen[1]) == list(range(20))


def test_128_px_runs_end_to_end(tmp_path):
    from training import train_classifier, train_encoder, train_gan

    data = write_celeba(tmp_path / "celeba", n=30)
    common = ["--data", str(data), "--smoke", "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--steps", "1"]
    cls = train_classifier.main([*common, "--out", str(tmp_path / "cls"), "--image-size", "128"])
    cls64 = train_classifier.main([*common, "--out", str(tmp_path / "cls64")])
    gan = train_gan.main([*common, "--out", str(tmp_path / "gan"), "--image-size", "128", "--ema", "0",
                          "--classifier", cls64["checkpoint"]])  # FD_cls on faces downsampled to 64 px
    assert "fd_cls" in gan
    gen = load_checkpoint(gan["checkpoint"], "generator")
    assert gen.image_size == 128 and gen.model(torch.randn(2, gen.model.z_dim)).shape == (2, 3, 128, 128)
    enc = train_encoder.main([*common, "--out", str(tmp_path / "enc"), "--generator", gan["checkpoint"],
                              "--classifier", cls["checkpoint"]])  # no --image-size: G's is taken
    assert load_checkpoint(enc["checkpoint"], "encoder").model(torch.randn(1, 3, 128, 128)).shape == (1, gen.model.z_dim)
    with pytest.raises(SystemExit, match="64 px, but the generator makes 128 px"):
        train_encoder.main([*common, "--out", str(tmp_path / "enc64"), "--generator", gan["checkpoint"],
                            "--classifier", cls64["checkpoint"]])
