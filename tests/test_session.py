"""core.session: a whole editing session round-trips through a `.lsteer` file bit for bit, and a
damaged, hostile or too-new file is refused in one sentence (no Qt, no models)."""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import pytest
import torch

from core.canvas import LatentPlane
from core.history import EditState, History, Keyframes, PlanePoint, SeedPoint, Snapshots
from core.session import (FORMAT, VERSION, ModelsInfo, Session, SessionError, encode, load_session, read_meta,
                          save_session)
from core.tuning import GeneratorDelta

D = 8


def build_session() -> Session:
    """Every kind of base, shared objects, a photo's own generator, a redo branch, snapshots, pins."""
    torch.manual_seed(0)
    history = History()
    seed = EditState(base=SeedPoint(3), label="seed 3", seed=3, z=torch.randn(D))
    smile = seed.derive("Smiling +1.5", alphas={"Smiling": 1.5})
    smile.z = torch.randn(D)
    locked = smile.derive("lock Male", locked=frozenset({"Male"}))  # z unknown (not rendered yet)
    plane = LatentPlane(torch.randn(D), torch.randn(D), torch.randn(D), labels=("Smiling", "Male"))
    on_plane = EditState(base=PlanePoint(plane, 0.25, -1.0), label="move on the canvas")
    delta = GeneratorDelta(base_hash="abc123", tensors={"net.0.weight": torch.randn(4, 3).half()})
    photo_z = torch.randn(1, D)
    photo = EditState(base=photo_z, label="photo me.jpg", z=photo_z, generator=delta)
    photo_edit = photo.derive("Eyeglasses +2.0", alphas={"Eyeglasses": 2.0})
    for s in (seed, smile, locked, on_plane, photo, photo_edit):
        history.push(s)
    history.undo()  # a redo branch: the file keeps the position, not just the top
    snapshots = Snapshots()
    snapshots.add(smile, torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8), "smiling")
    snapshots.add(photo, None, "the photo")
    keyframes = Keyframes()
    keyframes.add(seed, (0.0, 0.0), torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8))
    keyframes.add(on_plane, (0.25, -1.0))
    return Session(history=history, snapshots=snapshots, keyframes=keyframes, start=photo,
                   models=ModelsInfo(z_dim=D, attributes=["Smiling", "Male", "Eyeglasses"], generator_hash="abc123"))


def same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.dtype == b.dtype and torch.equal(a, b))


def assert_same_state(a: EditState, b: EditState) -> None:
    assert (a.alphas, a.locked, a.label, a.seed) == (b.alphas, b.locked, b.label, b.seed)
    assert same(a.z, b.z)
    assert type(a.base) is type(b.base)
    if isinstance(a.base, SeedPoint):
        assert a.base.seed == b.base.seed
    elif isinstance(a.base, PlanePoint):
        assert (a.base.u, a.base.v) == (b.base.u, b.base.v) and torch.equal(a.base.z(), b.base.z())
        assert a.base.plane.labels == b.base.plane.labels
    else:
        assert torch.equal(a.base, b.base)
    assert (a.generator is None) == (b.generator is None)
    if a.generator is not None:
        assert a.generator.base_hash == b.generator.base_hash and a.generator.key == b.generator.key
        assert a.generator.tensors.keys() == b.generator.tensors.keys()
        assert all(same(a.generator.tensors[k], b.generator.tensors[k]) for k in a.generator.tensors)


def assert_same_session(a: Session, b: Session) -> None:
    assert a.history.index == b.history.index and len(a.history) == len(b.history)
    for x, y in zip(a.history.states, b.history.states):
        assert_same_state(x, y)
    assert_same_state(a.start, b.start)
    assert [s.label for s in a.snapshots] == [s.label for s in b.snapshots]
    for x, y in zip(a.snapshots, b.snapshots):
        assert_same_state(x.state, y.state)
        assert same(x.image, y.image)
    assert [k.uv for k in a.keyframes] == [k.uv for k in b.keyframes]
    for x, y in zip(a.keyframes, b.keyframes):
        assert_same_state(x.state, y.state)
        assert same(x.image, y.image)


def test_session_round_trips_bit_for_bit(tmp_path):
    session = build_session()
    path = save_session(session, tmp_path / "s.lsteer")
    back = load_session(path, check=ModelsInfo(z_dim=D, attributes=["Smiling", "Male", "Eyeglasses"]))
    assert_same_session(session, back)
    assert back.current.label == "photo me.jpg" and back.history.can_redo
    assert back.models.generator_hash == "abc123" and back.models.attributes == ["Smiling", "Male", "Eyeglasses"]
    # a second round trip writes the same structure
    again = load_session(save_session(back, tmp_path / "t.lsteer"))
    assert_same_session(session, again)


def test_shared_objects_come_back_shared(tmp_path):
    """States made by `derive` share their base (same_recipe compares by identity); a photo's
    generator is stored once however many states use it."""
    session = build_session()
    back = load_session(save_session(session, tmp_path / "s.lsteer"))
    states = back.history.states
    assert states[0].base is states[1].base is states[2].base
    assert states[0].same_recipe(states[0].derive("again"))
    assert states[4].generator is states[5].generator
    assert back.start is states[4] and back.snapshots[1].state is states[4] and back.keyframes[0].state is states[0]
    meta = read_meta(tmp_path / "s.lsteer")
    assert len(meta["deltas"]) == 1 and len(meta["planes"]) == 1
    assert meta["format"] == FORMAT and meta["version"] == VERSION


def test_tensors_are_stored_once_and_loaded_with_weights_only(tmp_path, monkeypatch):
    session = build_session()
    encoded = encode(session)
    ids = [id(t) for t in encoded.tensors.values()]
    assert len(ids) == len(set(ids))  # one entry per tensor object
    seen = []
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_session(save_session(session, tmp_path / "s.lsteer"))
    assert seen == [True]


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_session(build_session(), tmp_path / "s.lsteer")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("core.session.zipfile.ZipFile.writestr", broken)
    with pytest.raises(OSError, match="No space left"):
        save_session(build_session(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.lsteer"]  # no temp file left behind


def test_a_session_for_other_models_is_refused(tmp_path):
    path = save_session(build_session(), tmp_path / "s.lsteer")
    with pytest.raises(SessionError, match="16"):
        load_session(path, check=ModelsInfo(z_dim=16, attributes=["Smiling", "Male", "Eyeglasses"]))
    with pytest.raises(SessionError, match="Eyeglasses"):
        load_session(path, check=ModelsInfo(z_dim=D, attributes=["Smiling", "Male"]))


# -- damaged, hostile, too new -------------------------------------------------------------------


def rewrite(path, meta=None, tensors=None, extra: dict[str, bytes] | None = None, deflate_tensors: bool = False):
    """A session file with its JSON and/or tensors replaced."""
    with zipfile.ZipFile(path) as zf:
        old_meta = zf.read("session.json")
        old_tensors = zf.read("tensors.pt")
    out = path.with_name("changed.lsteer")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", old_meta if meta is None else json.dumps(meta).encode())
        zf.writestr("tensors.pt", old_tensors if tensors is None else tensors,
                    compress_type=zipfile.ZIP_DEFLATED if deflate_tensors else zipfile.ZIP_STORED)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def one_sentence(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.strip() and "Traceback" not in text
    return text


@pytest.fixture
def good(tmp_path):
    return save_session(build_session(), tmp_path / "s.lsteer")


def test_not_a_session_file_is_one_sentence(tmp_path):
    junk = tmp_path / "junk.lsteer"
    junk.write_bytes(b"hello, not a zip")
    with pytest.raises(SessionError) as exc:
        load_session(junk)
    assert "not a Latent Steer session" in one_sentence(exc)
    with pytest.raises(SessionError, match="does not exist"):
        load_session(tmp_path / "missing.lsteer")
    with pytest.raises(SessionError, match="not a file"):
        load_session(tmp_path)
    truncated = tmp_path / "cut.lsteer"
    truncated.write_bytes(save_session(build_session(), tmp_path / "full.lsteer").read_bytes()[:300])
    with pytest.raises(SessionError) as exc:
        load_session(truncated)
    one_sentence(exc)


def test_a_newer_format_says_so(good):
    meta = read_meta(good)
    meta["version"] = VERSION + 1
    with pytest.raises(SessionError) as exc:
        load_session(rewrite(good, meta=meta))
    assert "newer Latent Steer" in one_sentence(exc) and f"format {VERSION + 1}" in str(exc.value)


def test_a_pickle_that_runs_code_is_refused(good, capsys):
    for payload in (pickle.dumps({"t0": Boom()}), pickle.dumps(Boom())):
        with pytest.raises(SessionError) as exc:
            load_session(rewrite(good, tensors=payload))
        assert "cannot be read safely" in one_sentence(exc)
    assert "pwned" not in capsys.readouterr().out


def test_a_zip_bomb_is_refused_before_it_inflates(good):
    bomb = b"\0" * (64 * 2**20)  # deflates ~1000x
    with pytest.raises(SessionError) as exc:
        load_session(rewrite(good, tensors=bomb, deflate_tensors=True))
    assert "inflates" in one_sentence(exc)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format="something-else"), "not a Latent Steer session"),
    (lambda m: m.update(version="1"), "format version"),
    (lambda m: m["history"].update(index=99), "history position"),
    (lambda m: m["history"].update(states=[]), "history is empty"),
    (lambda m: m["history"].update(states=[0] * 30_000), "at most"),
    (lambda m: m["states"][0].update(base=1234), "face base reference"),
    (lambda m: m["states"][0].update(alphas={"Smiling": "lots"}), "slider strength"),
    (lambda m: m["states"][0].update(alphas={"Smiling": float("inf")}), "not valid JSON"),  # written Infinity
    (lambda m: m["states"][0].update(z="t999"), "missing tensor"),
    (lambda m: m["bases"][0].update(kind="python"), "unknown kind"),
    (lambda m: m["bases"][0].update(seed=-1), "seed"),
    (lambda m: m["snapshots"][0].update(state=None), "state reference"),
    (lambda m: m.update(snapshots="all of them"), "not a list"),
])
def test_damaged_metadata_is_one_sentence(good, change, message):
    meta = read_meta(good)
    change(meta)
    with pytest.raises(SessionError) as exc:
        load_session(rewrite(good, meta=meta))
    assert message in one_sentence(exc)


def test_bad_tensors_are_refused(good):
    with zipfile.ZipFile(good) as zf:
        tensors = torch.load(io.BytesIO(zf.read("tensors.pt")), weights_only=True)
    meta = read_meta(good)
    z_key = meta["states"][0]["z"]
    for bad, message in [({**tensors, z_key: torch.full((D,), float("nan"))}, "NaN"),
                         ({**tensors, z_key: torch.zeros(3, D)}, "not a face code"),
                         ({**tensors, z_key: torch.zeros(D + 1)}, "different sizes"),
                         ({**tensors, z_key: torch.zeros(D, dtype=torch.int64)}, "not a face code"),
                         ([1, 2, 3], "name → tensor table")]:
        with pytest.raises(SessionError) as exc:
            load_session(rewrite(good, tensors=torch_bytes(bad)))
        assert message in one_sentence(exc)
    image_key = meta["snapshots"][0]["image"]
    with pytest.raises(SessionError, match="not a picture"):
        load_session(rewrite(good, tensors=torch_bytes({**tensors, image_key: torch.zeros(3, 64, 64)})))


def test_too_many_members_or_no_json_is_refused(good, tmp_path):
    with pytest.raises(SessionError, match="holds"):
        load_session(rewrite(good, extra={f"x{i}": b"" for i in range(20)}))
    empty = tmp_path / "empty.lsteer"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(SessionError, match="no session.json"):
        load_session(empty)
