"""A hostile-input sweep of sessions, CLI arguments and outputs: nothing is lost, memory stays
bounded, garbage is refused in one sentence (each case failed before its fix)."""
from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import pytest
import torch

import main
from core.atomic import save_tensor_atomic
from core.history import EditState, SeedPoint
from core.messages import one_line
from core.session import (ModelsInfo, Session, SessionError, SessionFile, load_session, read_meta, save_session)
from core.tuning import GeneratorDelta
from test_hostile_inputs import one_line_error, python


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(capsys, tiny_models):
    def call(command: str, *argv: str) -> tuple[int, str, str]:
        return run(capsys, command, "--models", str(tiny_models), "--device", "cpu", "--size", "64", *argv)
    return call


def tensors_of(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return torch.load(io.BytesIO(zf.read("tensors.pt")), weights_only=True)


def rewrite(path, meta=None, tensors=None, tensor_bytes: bytes | None = None):
    """The session at `path` with its JSON and/or tensors replaced, written over a copy."""
    with zipfile.ZipFile(path) as zf:
        old_meta, old_tensors = zf.read("session.json"), zf.read("tensors.pt")
    if tensors is not None:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        tensor_bytes = buffer.getvalue()
    out = path.with_name("changed.lsteer")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", old_meta if meta is None else json.dumps(meta).encode())
        zf.writestr(zipfile.ZipInfo("tensors.pt"), old_tensors if tensor_bytes is None else tensor_bytes,
                    compress_type=zipfile.ZIP_STORED)
    return out


def small_session(tmp_path, z_dim: int = 16):
    face = EditState(base=torch.randn(z_dim), label="a face", z=torch.randn(z_dim))
    session = Session(models=ModelsInfo(z_dim=z_dim, attributes=["Smiling", "Male"]))
    session.history.push(face)
    return save_session(session, tmp_path / "s.lsteer")


# --- 9. data loss ---------------------------------------------------------------------------------


def test_the_cli_records_canonical_names_and_a_lowercase_file_opens_again(cli, tiny_models, tmp_path):
    path = tmp_path / "work.lsteer"
    code, _, err = cli("edit", "--seed", "2", "--set", "smiling=1", "--lock", "male", "--out", str(tmp_path / "e.png"),
                       "--session", str(path))
    assert code == 0, err
    state = load_session(path).current
    assert state.alphas == {"Smiling": 1.0} and state.locked == {"Male"}
    # a file an older version wrote with the names as typed opens, with the names put right
    from core.engine import Engine

    engine = Engine(tiny_models, device="cpu", start_worker=False)
    meta = read_meta(path)
    for s in meta["states"]:
        s["alphas"] = {k.lower(): v for k, v in s["alphas"].items()}
        s["locked"] = [k.lower() for k in s["locked"]]
    old = rewrite(path, meta=meta)
    fixed = SessionFile(old, engine).current
    assert fixed.alphas == {"Smiling": 1.0} and fixed.locked == {"Male"}
    code, _, err = cli("steer", "--more", "Smiling", "--less", "smiling", "--out", str(tmp_path / "s.gif"))
    assert code == 1 and one_line_error(err) and "both name Smiling" in err


def test_two_commands_on_one_session_cannot_lose_an_edit(tiny_models, tmp_path):
    from core.engine import Engine

    engine = Engine(tiny_models, device="cpu", start_worker=False)
    path = tmp_path / "s.lsteer"
    SessionFile(path, engine).record(EditState(base=SeedPoint(1), label="seed 1", seed=1))
    first = SessionFile(path, engine)
    with pytest.raises(SessionError, match="being edited by another command"):
        SessionFile(path, engine)  # while the first holds it
    first._lock.close()  # as if the first had only read it without a lock (e.g. Windows)
    other = load_session(path)
    other.history.push(EditState(base=SeedPoint(2), label="seed 2", seed=2))
    save_session(other, path)  # another program saves in between
    with pytest.raises(SessionError, match="changed by another program"):
        first.record(first.origin(None), EditState(base=SeedPoint(3), label="seed 3", seed=3))
    assert load_session(path).current.seed == 2  # the other program's edit is still there


def unreadable_autosave(data, kind: str):
    data.mkdir(parents=True, exist_ok=True)
    path = data / "autosave-0.lsteer"
    good = small_session(data)
    meta = read_meta(good)
    if kind == "newer":
        meta["version"] = 99
        bad = rewrite(good, meta=meta)
    else:  # a 2^36-element stride-0 code: once made the window crash at every start
        tensors = tensors_of(good)
        tensors[meta["states"][0]["z"]] = torch.zeros(1).expand(2**36)
        bad = rewrite(good, tensors=tensors)
    os.replace(bad, path)
    good.unlink()
    return path, path.read_bytes()


@pytest.mark.parametrize("kind", ["newer", "stride0"])
def test_an_unreadable_autosave_is_moved_aside_never_overwritten(make_window, qtbot, tmp_path, kind):
    from ui.session_flow import SessionFlow

    data = tmp_path / "data"
    path, original = unreadable_autosave(data, kind)
    w = make_window()
    flow = SessionFlow(w, data, poll_ms=50, ask_close=lambda win: "discard",
                       ask_restore=lambda win, t: pytest.fail("nothing readable to restore"))
    flow.start()
    kept = [p for p in data.glob("autosave-0-unreadable-*.lsteer")]
    assert len(kept) == 1 and kept[0].read_bytes() == original
    assert "could not be read" in w.message() and kept[0].name in w.message()
    w.attribute_panel.rows["Smiling"].slider.setValue(10)  # an edit autosaves into the slot, not over the old file
    qtbot.waitUntil(lambda: path.exists(), timeout=20_000)
    flow.flush()
    assert kept[0].read_bytes() == original


# --- 10, 11. memory bounded by the file's size ----------------------------------------------------


def test_a_stride_zero_tensor_is_refused_before_it_costs_memory(tmp_path):
    good = small_session(tmp_path)
    meta = read_meta(good)
    tensors = tensors_of(good)
    tensors[meta["states"][0]["z"]] = torch.zeros(1).expand(2**30)
    bad = rewrite(good, tensors=tensors)
    assert bad.stat().st_size < 10_000
    result = python("import resource, sys\nfrom core.session import load_session, SessionError\n"
                    f"try:\n    load_session({str(bad)!r})\nexcept SessionError as e:\n    print('refused', e)\n"
                    "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    assert "refused" in result.stdout and "not stored densely" in result.stdout, result.stderr[-2000:]
    peak_kb = int(result.stdout.split("peak")[-1])
    assert peak_kb < 1_500_000  # ~0.5 GB for torch itself; the tensor would have been 4 GB


def test_compressed_records_inside_the_tensors_are_refused(tmp_path):
    good = small_session(tmp_path)
    with zipfile.ZipFile(good) as zf:
        inner = zf.read("tensors.pt")
    packed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(inner)) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(SessionError, match="inflate"):
        load_session(rewrite(good, tensor_bytes=packed.getvalue()))


def test_many_delta_names_for_one_tensor_share_one_copy(tmp_path):
    face = EditState(base=torch.randn(16), label="photo", z=torch.randn(16),
                     generator=GeneratorDelta(base_hash="h", tensors={"w": torch.randn(1000).half()}))
    session = Session(models=ModelsInfo(z_dim=16, attributes=["Smiling"]))
    session.history.push(face)
    good = save_session(session, tmp_path / "s.lsteer")
    meta = read_meta(good)
    tensors = tensors_of(good)
    key = next(iter(meta["deltas"][0]["tensors"].values()))
    tensors[key] = tensors[key].float()  # fp32: each name used to get its own fp16 copy
    meta["deltas"][0]["tensors"] = {f"w{i}": key for i in range(500)}
    loaded = load_session(rewrite(good, meta=meta, tensors=tensors)).current.generator.tensors
    assert len(loaded) == 500 and len({id(t) for t in loaded.values()}) == 1


# --- 13. garbage is refused, not reported as success ----------------------------------------------


def test_out_of_range_values_are_refused_in_one_sentence(tmp_path):
    good = small_session(tmp_path)
    meta, tensors = read_meta(good), tensors_of(good)
    z_key = meta["states"][0]["z"]
    with pytest.raises(SessionError, match="far outside"):
        load_session(rewrite(good, tensors={**tensors, z_key: torch.full((16,), 3e38)}))
    strong = json.loads(json.dumps(meta))
    strong["states"][0]["alphas"] = {"Smiling": 50.0}
    with pytest.raises(SessionError, match="beyond the ±"):
        load_session(rewrite(good, meta=strong), check=ModelsInfo(z_dim=16, attributes=["Smiling", "Male"]))
    face = EditState(base=torch.randn(16), label="photo", z=torch.randn(16),
                     generator=GeneratorDelta(base_hash="h", tensors={"w": torch.randn(10).half()}))
    session = Session(models=ModelsInfo(z_dim=16))
    session.history.push(face)
    photo = save_session(session, tmp_path / "p.lsteer")
    meta, tensors = read_meta(photo), tensors_of(photo)
    key = next(iter(meta["deltas"][0]["tensors"].values()))
    with pytest.raises(SessionError, match="too large"):
        load_session(rewrite(photo, tensors={**tensors, key: torch.full((10,), 1e6)}))


def test_a_delta_that_does_not_fit_the_generator_says_so():
    gen = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match="does not fit the generator .0.weight holds 5 values"):
        GeneratorDelta(base_hash="h", tensors={"0.weight": torch.zeros(5).half()}).apply(gen)


# --- 11, 12, 14, 15. outputs, links, modes, messages -----------------------------------------------


@pytest.mark.parametrize("argv", [["generate", "--n", "1024", "--size", "8192", "--out", "g.png"],
                                  ["walk", "--direction", "Smiling", "--frames", "2000", "--pingpong", "--out", "w.gif"],
                                  ["steer", "--more", "Smiling", "--steps", "1999", "--out", "s.gif"]])
def test_products_of_bounded_options_are_bounded_too(capsys, tiny_models, tmp_path, argv):
    argv = [a if not a.endswith((".png", ".gif")) else str(tmp_path / a) for a in argv]
    size = [] if "--size" in argv else ["--size", "1024"]
    code, _, err = run(capsys, argv[0], "--models", str(tiny_models), "--device", "cpu", *size, *argv[1:])
    assert code == 1 and one_line_error(err) and "too much for one" in err
    assert list(tmp_path.iterdir()) == []


def test_a_session_keeps_its_mode_and_its_link(tiny_models, tmp_path):
    from core.engine import Engine

    engine = Engine(tiny_models, device="cpu", start_worker=False)
    real = tmp_path / "private" / "me.lsteer"
    real.parent.mkdir()
    SessionFile(real, engine).record(EditState(base=SeedPoint(1), label="seed 1", seed=1))
    os.chmod(real, 0o600)
    link = tmp_path / "link.lsteer"
    link.symlink_to(real)
    SessionFile(link, engine).record(EditState(base=SeedPoint(1), label="seed 1", seed=1),
                                     EditState(base=SeedPoint(2), label="seed 2", seed=2))
    assert link.is_symlink() and load_session(real).current.seed == 2
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_messages_name_the_real_problem_in_one_line(capsys, tiny_models, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    code, _, err = run(capsys, "generate", "--models", str(tiny_models), "--device", "cpu", "--n", "1",
                       "--out", str(blocker / "g.png"))
    assert code == 1 and one_line_error(err) and "is a file, not a folder" in err
    assert one_line(ValueError("cannot read /tmp/two\nlines.png: damaged")) == "cannot read /tmp/two lines.png: damaged"
    with pytest.raises(OSError, match="is a file, not a folder"):
        save_tensor_atomic({"x": torch.zeros(1)}, blocker / "deeper" / "x.pt")


def test_invert_checks_every_input_before_any_work(capsys, tiny_models, tmp_path, monkeypatch):
    from PIL import Image

    import core.engine

    photo = tmp_path / "me.png"
    Image.new("RGB", (120, 90), (200, 150, 120)).save(photo)
    junk = tmp_path / "junk.lsteer"
    junk.write_bytes(b"not a session")
    monkeypatch.setattr(core.engine.Engine, "invert_job", lambda *a, **k: pytest.fail("inverted before checking"))
    base = ["invert", str(photo), "--models", str(tiny_models), "--device", "cpu"]
    for extra, message in [(["--out", str(tmp_path / "r.png"), "--session", str(junk)], "not a Latent Steer session"),
                           (["--out", str(tmp_path / "r.png"), "--crop-out", str(tmp_path / "c.txt")], "--crop-out"),
                           (["--out", str(tmp_path / "r.png"), "--paste-out", str(tmp_path / "p.jpg")], "--paste-out"),
                           (["--out", str(tmp_path / "r.txt")], "give a file name ending in .png")]:
        code, _, err = run(capsys, *base, *extra)
        assert code == 1 and one_line_error(err) and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.lsteer", "me.png"]
