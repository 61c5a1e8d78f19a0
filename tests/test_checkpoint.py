"""One checkpoint format: round trip, fp16 storage, and refusal of every kind of bad file."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint, state_hash
from core.models import Classifier, ClassifierConfig, Encoder, EncoderConfig, Generator, GeneratorConfig


def _gen() -> Generator:
    torch.manual_seed(0)
    return Generator(GeneratorConfig(z_dim=16, width=8)).eval()


def test_round_trip_rebuilds_model_from_metadata(tmp_path):
    g = _gen()
    path = save_checkpoint(tmp_path / "g.pt", "generator", g, attributes=["A", "B"], train={"steps": 3})
    ck = load_checkpoint(path, "generator")
    assert ck.kind == "generator" and ck.config == {"z_dim": 16, "width": 8, "upsample": "nearest", "image_size": 64, "to_rgb": "resize"}
    assert ck.attributes == ["A", "B"] and ck.train == {"steps": 3} and ck.normalisation == "x/127.5-1"
    z = torch.randn(2, 16)
    assert torch.equal(ck.model(z), g(z))
    assert not ck.model.training and not any(p.requires_grad for p in ck.model.parameters())
    assert state_hash(ck.model) == state_hash(g)
    assert read_metadata(path)["kind"] == "generator"


def test_half_storage_is_smaller_and_close(tmp_path):
    g = _gen()
    full = save_checkpoint(tmp_path / "full.pt", "generator", g)
    half = save_checkpoint(tmp_path / "half.pt", "generator", g, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_checkpoint(half).model
    assert next(loaded.parameters()).dtype == torch.float32
    z = torch.randn(4, 16)
    assert (loaded(z) - g(z)).abs().max() < 2e-2


def test_extra_state_round_trips(tmp_path):
    g = _gen()
    opt = torch.optim.Adam(g.parameters())
    g.train()
    g(torch.randn(4, 16)).mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "g.pt", "generator", g, extra={"resume": {"step": 5, "opt": opt.state_dict()}})
    ck = load_checkpoint(path)
    opt2 = torch.optim.Adam(ck.model.parameters())
    opt2.load_state_dict(ck.extra["resume"]["opt"])
    assert ck.extra["resume"]["step"] == 5


def test_wrong_kind_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", "classifier", Classifier(ClassifierConfig(num_attributes=2, width=8)),
                           attributes=["A", "B"])
    with pytest.raises(CheckpointError, match="is a classifier checkpoint, expected a generator"):
        load_checkpoint(path, "generator")


def test_truncated_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "g.pt", "generator", _gen())
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="damaged|truncated"):
            load_checkpoint(path)


def test_non_checkpoint_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch archive"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a Latent Steer checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a Latent Steer checkpoint"):
        load_checkpoint(tmp_path / "list.pt")


class _Exploit:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_code_running_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    blob = {"format_version": 1, "kind": "generator", "config": {}, "state_dict": {}, "payload": _Exploit(marker)}
    path = tmp_path / "evil.pt"
    torch.save(blob, path)  # a real torch archive whose pickle calls Path.touch
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # the same payload as a bare pickle (not an archive) is refused too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_shapes_that_do_not_match_config_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "g.pt", "generator", _gen())
    blob = torch.load(path, weights_only=True)
    blob["config"]["width"] = 16  # weights are for width 8
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(path)
    blob["config"]["width"] = 8
    del blob["state_dict"]["to_rgb.0.1.weight"]
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


def test_malicious_config_is_refused_before_building(tmp_path):
    path = save_checkpoint(tmp_path / "e.pt", "encoder", Encoder(EncoderConfig(z_dim=8, width=8)))
    blob = torch.load(path, weights_only=True)
    blob["config"]["width"] = 10**8  # would allocate terabytes if built
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="invalid encoder config"):
        load_checkpoint(path)


def test_newer_format_and_unknown_kind_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "g.pt", "generator", _gen())
    blob = torch.load(path, weights_only=True)
    blob["format_version"] = 99
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)
    blob["format_version"], blob["kind"] = 1, "toaster"
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="unknown checkpoint kind"):
        load_checkpoint(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "g.pt", "generator", _gen())
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, "generator", _gen())
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]  # no temp file left behind
    assert zipfile.is_zipfile(path)
