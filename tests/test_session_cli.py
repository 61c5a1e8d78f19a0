"""`--session FILE` on generate / edit / steer: a command starts from the session's face and records
its result there; the window opens what the CLI wrote, and the CLI what the window saved."""
from __future__ import annotations

import pytest
import torch

import main
from core.engine import Engine
from core.session import SessionFile, face_z, load_session, save_session


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli(capsys, tiny_models, tmp_path):
    def call(command: str, *argv: str) -> tuple[int, str, str]:
        return run(capsys, command, "--models", str(tiny_models), "--device", "cpu", "--size", "64", *argv)
    return call


def test_generate_edit_steer_build_one_session(cli, tiny_models, tmp_path):
    session = tmp_path / "work.lsteer"
    code, text, err = cli("generate", "--seed", "4", "--n", "4", "--out", str(tmp_path / "g.png"),
                          "--session", str(session))
    assert code == 0, err
    assert "recorded seed 4" in text
    s = load_session(session)
    assert len(s.history) == 1 and s.current.seed == 4 and s.start is s.current

    code, text, err = cli("edit", "--set", "Smiling=1.5", "--lock", "Male", "--out", str(tmp_path / "e.png"),
                          "--session", str(session))
    assert code == 0, err
    s = load_session(session)
    edited = s.current
    assert len(s.history) == 2 and edited.alphas == {"Smiling": 1.5} and edited.locked == {"Male"}
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    seed_z = engine.z_from_seed(4)[0]
    assert torch.allclose(edited.z, engine.edit_z(seed_z, {"Smiling": 1.5}, ["Male"]), atol=1e-6)

    code, text, err = cli("edit", "--set", "Eyeglasses=-1", "--out", str(tmp_path / "e2.png"), "--session", str(session))
    assert code == 0, err
    s = load_session(session)
    assert s.current.alphas == {"Smiling": 1.5, "Eyeglasses": -1.0}  # sliders add up, as in the window

    code, text, err = cli("steer", "--more", "Young", "--steps", "3", "--until", "0", "--out", str(tmp_path / "s.gif"),
                          "--session", str(session))
    assert code == 0, err
    s = load_session(session)
    assert len(s.history) == 4 and s.current.label == "more Young" and s.current.locked == {"Male"}
    assert torch.equal(s.current.base, s.current.z)

    # generate from the session renders exactly its face
    code, text, err = cli("generate", "--out", str(tmp_path / "face.png"), "--session", str(session))
    assert code == 0 and "the face of" in text
    assert len(load_session(session).history) == 4  # nothing new to record
    code, _, err = cli("generate", "--n", "4", "--out", str(tmp_path / "x.png"), "--session", str(session))
    assert code == 1 and "--seed" in err


def test_without_a_session_the_commands_are_unchanged(cli, tmp_path):
    code, text, _ = cli("generate", "--n", "4", "--out", str(tmp_path / "g.png"))
    assert code == 0 and "wrote 4 faces (seed 0)" in text
    assert not list(tmp_path.glob("*.lsteer"))


def test_a_damaged_session_is_one_line_and_left_alone(cli, tmp_path):
    bad = tmp_path / "bad.lsteer"
    bad.write_bytes(b"not a session")
    code, _, err = cli("edit", "--set", "Smiling=1", "--out", str(tmp_path / "e.png"), "--session", str(bad))
    assert code == 1 and err.startswith("error: bad.lsteer") and len(err.strip().splitlines()) == 1
    assert bad.read_bytes() == b"not a session" and not (tmp_path / "e.png").exists()


def test_the_cli_continues_what_the_window_saved(make_window, qtbot, cli, tmp_path):
    w = make_window()
    w.attribute_panel.rows["Smiling"].slider.setValue(w.attribute_panel.rows["Smiling"].slider.maximum() // 2)
    qtbot.waitUntil(w.is_ready, timeout=20_000)
    from ui.session_flow import window_session

    path = save_session(window_session(w), tmp_path / "from-window.lsteer")
    code, _, err = cli("edit", "--set", "Eyeglasses=1", "--out", str(tmp_path / "e.png"), "--session", str(path))
    assert code == 0, err
    s = load_session(path)
    assert s.history.states[-2].label == w.state.label and torch.equal(s.history.states[-2].z, w.state.z)
    assert set(s.current.alphas) == {"Smiling", "Eyeglasses"}
    assert torch.allclose(face_z(w.engine, s.current.derive("x")), s.current.z, atol=1e-6)


def test_session_file_without_a_path_records_nothing(tiny_models):
    engine = Engine(tiny_models, device="cpu", start_worker=False)
    f = SessionFile(None, engine)
    assert f.origin(None).seed == 0 and f.record(f.origin(3)) is None


def test_a_photo_face_from_the_cli_is_steered_in_its_photo_and_walked(cli, tmp_path):
    """invert --session records the photo's face (its own generator and the photo); steer --in-photo and
    walk then start from it, with no window in between."""
    from PIL import Image

    photo, session = tmp_path / "me.png", tmp_path / "me.lsteer"
    Image.new("RGB", (150, 110), (190, 140, 110)).save(photo)
    code, text, err = cli("invert", str(photo), "--steps", "2", "--tune-steps", "2", "--out", str(tmp_path / "i.png"),
                          "--session", str(session))
    assert code == 0, err
    assert "recorded the photo's face" in text
    s = load_session(session)
    face = s.current
    assert len(s.history) == 1 and face.label == "photo me.png" and face.generator is not None
    assert face.generator.photo is not None and face.generator.photo.size == (150, 110)

    code, text, err = cli("steer", "--more", "Smiling", "--steps", "2", "--until", "0", "--in-photo",
                          "--out", str(tmp_path / "s.gif"), "--session", str(session))
    assert code == 0, err
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.size == (150, 110)  # pasted into the photo
    code, text, err = cli("walk", "--direction", "Smiling", "--frames", "3", "--out", str(tmp_path / "w.gif"),
                          "--session", str(session))
    assert code == 0, err
    assert len(load_session(session).history) == 2  # the walk recorded nothing
