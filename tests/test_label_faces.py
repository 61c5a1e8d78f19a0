"""Counting distorted faces by eye: the sheets mix generators blindly, and the report gives each
generator back exactly the faces that were its own."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.checkpoint import save_checkpoint
from core.data import load_datasets
from core.models import Generator, GeneratorConfig
from conftest import write_celeba
from training import label_faces


@pytest.fixture
def two_sets(tiny_models, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_models, other)
    torch.manual_seed(5)
    save_checkpoint(other / "generator.pt", "generator", Generator(GeneratorConfig(z_dim=16, width=8)).eval())
    return str(tiny_models), str(other)


def test_sheets_mix_both_generators_and_the_key_says_whose(two_sets, tmp_path):
    out = tmp_path / "look"
    label_faces.main(["sheets", "--models", two_sets[0], "--models", two_sets[1], "--faces", "30", "--out", str(out)])
    sheets = sorted(out.glob("sheet*.png"))
    assert [p.name for p in sheets] == ["sheet00.png", "sheet01.png"]  # 60 faces, 48 a sheet
    key = json.loads((out / label_faces.KEY).read_text())
    owner = key["owner"]
    assert sorted(owner) == [0] * 30 + [1] * 30
    assert owner[:30] != sorted(owner[:30]) or owner[30:] != sorted(owner[30:])  # shuffled, not in blocks
    assert sorted(zip(owner, key["index"])) == [(s, i) for s in (0, 1) for i in range(30)]
    # the face at sheet position p is face key.index[p] of generator key.owner[p]
    faces = [label_faces.draw(source, 30, key["seed"]) for source in key["sources"]]
    with Image.open(sheets[0]) as sheet:
        pad = label_faces.PADDING
        tile = sheet.crop((pad, pad, pad + label_faces.SIZE, pad + label_faces.SIZE)).resize((64, 64), Image.LANCZOS)
    seen = torch.from_numpy(np.array(tile)).permute(2, 0, 1).float()
    error = [[float((seen - face.float()).abs().mean()) for face in drawn] for drawn in faces]
    right = error[owner[0]][key["index"][0]]
    assert right < 3 and right < 0.5 * min(e for s, row in enumerate(error) for i, e in enumerate(row)
                                          if (s, i) != (owner[0], key["index"][0]))
    assert json.loads((out / label_faces.LABELS).read_text()) == {"00": [], "01": []}


def test_report_counts_each_generators_own_faces(two_sets, tmp_path):
    out = tmp_path / "look"
    label_faces.make_sheets(list(two_sets), 30, 3, out)
    owner = json.loads((out / label_faces.KEY).read_text())["owner"]
    marked = [p for p, s in enumerate(owner) if s == 1][:12]  # 12 faces of the second generator
    labels = {"00": [p for p in marked if p < 48], "01": [p - 48 for p in marked if p >= 48]}
    (out / label_faces.LABELS).write_text(json.dumps(labels))
    result = label_faces.report(out, tmp_path / "other")
    first, second = (result[s] for s in two_sets)
    assert (first["distorted"], first["faces"]) == (0, 30)
    assert (second["distorted"], second["faces"]) == (12, 30)
    low, high = second["interval_95"]
    assert low < 0.4 < high and high - low < 0.4
    (out / label_faces.LABELS).write_text(json.dumps({"00": [48]}))
    with pytest.raises(SystemExit, match="outside its sheet"):
        label_faces.report(out, tmp_path / "other")
    with pytest.raises(SystemExit, match="already holds a look"):  # new sheets never overwrite labels
        label_faces.make_sheets(list(two_sets), 30, 3, out)
    (out / label_faces.LABELS).write_text(json.dumps(labels))
    torch.manual_seed(9)  # a source whose weights changed since the look was drawn
    save_checkpoint(tmp_path / "other" / "generator.pt", "generator", Generator(GeneratorConfig(z_dim=16, width=8)).eval())
    with pytest.raises(SystemExit, match="not the generator this look drew from"):
        label_faces.report(out, tmp_path / "other")


def test_wilson_interval():
    assert label_faces.wilson(0, 10)[0] == 0.0 and label_faces.wilson(10, 10)[1] == 1.0
    low, high = label_faces.wilson(15, 144)
    assert low == pytest.approx(0.0642, abs=1e-3) and high == pytest.approx(0.1645, abs=1e-3)


def test_real_faces_join_a_look_as_a_control_and_come_back_to_their_source(tiny_models, tmp_path):
    data = write_celeba(tmp_path / "celeba", n=60)  # 12 held-out faces
    out = tmp_path / "look"
    label_faces.main(["sheets", "--models", str(tiny_models), "--real", str(data), "--faces", "10", "--out", str(out)])
    key = json.loads((out / label_faces.KEY).read_text())
    real_source = label_faces.REAL + str(data)
    assert key["sources"] == [str(tiny_models), real_source]
    held, _ = load_datasets(data, size=64).split(held_out=True)
    with Image.open(out / "sheet00.png") as sheet:  # every real face on the sheet is a held-out face
        pad, size = label_faces.PADDING, label_faces.SIZE
        for p, (s, i) in enumerate(zip(key["owner"], key["index"])):
            if s != 1:
                continue
            row, col = divmod(p, label_faces.COLUMNS)
            x, y = pad + col * (size + pad), pad + row * (size + pad)
            tile = sheet.crop((x, y, x + size, y + size)).resize((64, 64), Image.LANCZOS)
            seen = torch.from_numpy(np.array(tile)).permute(2, 0, 1).float()
            errors = (held.float() - seen).abs().mean((1, 2, 3))
            assert float(errors.min()) < 3 and float(errors.min()) < 0.5 * float(errors.sort().values[1])
    real_places = [p for p, s in enumerate(key["owner"]) if s == 1][:4]
    (out / label_faces.LABELS).write_text(json.dumps({"00": real_places}))
    result = label_faces.report(out, tiny_models)
    assert (result[real_source]["distorted"], result[real_source]["faces"]) == (4, 10)
    assert result[str(tiny_models)]["distorted"] == 0
    with pytest.raises(SystemExit, match="fewer than"):
        label_faces.make_sheets([str(tiny_models)], 13, 3, tmp_path / "too_many", real=(str(data),))
    held_out_file = sorted((data / "img_align_celeba").glob("*.jpg"))[-1]  # the data changed since the look
    Image.new("RGB", (89, 109), (9, 9, 9)).save(held_out_file)
    with pytest.raises(SystemExit, match="not the data this look drew from"):
        label_faces.report(out, tiny_models)
