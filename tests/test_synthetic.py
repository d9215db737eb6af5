"""The synthetic faces: CelebA's file layout, determinism, atomic writes, truthful attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqgen.data.synthetic import ATTRIBUTES, draw_face, write_synthetic

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def faces():
    """300 faces: float luminance images (N, 218, 178) and their attribute dicts."""
    images, attrs = [], []
    for seed in range(300):
        img, a = draw_face(seed)
        images.append(np.asarray(img, np.float32))
        attrs.append(a)
    return np.stack(images), attrs


def test_attribute_names_are_celeba_s():
    assert len(ATTRIBUTES) == 40 and len(set(ATTRIBUTES)) == 40
    assert ATTRIBUTES[0] == "5_o_Clock_Shadow" and ATTRIBUTES[20] == "Male" and ATTRIBUTES[-1] == "Young"
    assert list(ATTRIBUTES) == sorted(ATTRIBUTES, key=str.lower)


def test_draw_face_is_deterministic():
    img, attrs = draw_face(7)
    again, attrs_again = draw_face(7)
    assert img.mode == "RGB" and img.size == (178, 218)
    assert img.tobytes() == again.tobytes() and attrs == attrs_again
    assert set(attrs) == set(ATTRIBUTES) and set(attrs.values()) <= {0, 1}
    assert draw_face(8)[0].tobytes() != img.tobytes()


def test_layout(tmp_path):
    root = tmp_path / "celeba"
    done = []
    write_synthetic(root, 30, seed=0, workers=2, progress=done.append)
    assert sum(done) == 30

    names = [f"{i:06d}.jpg" for i in range(1, 31)]
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir()) == names
    with Image.open(root / "img_align_celeba" / "000017.jpg") as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (178, 218)

    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "30"
    assert tuple(lines[1].split()) == ATTRIBUTES
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == names
    assert all(len(r) == 41 and set(r[1:]) <= {"1", "-1"} for r in rows)

    parts = [line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines()]
    assert [p[0] for p in parts] == names
    splits = [int(p[1]) for p in parts]
    assert splits == sorted(splits) and set(splits) == {0, 1, 2}  # ordered blocks, like CelebA
    assert 0.7 < splits.count(0) / 30 < 0.9


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    write_synthetic(tmp_path / "a", 12, seed=3, workers=1)
    write_synthetic(tmp_path / "b", 12, seed=3, workers=2)
    write_synthetic(tmp_path / "c", 12, seed=4, workers=1)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert len(images) == 12 and all(a[k] != c[k] for k in images)


def test_write_replaces_root_atomically(tmp_path):
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    (root / "stray.txt").write_text("old")
    (tmp_path / "celeba.tmp").mkdir()  # left by an interrupted run
    (tmp_path / "celeba.tmp" / "junk").write_text("junk")
    write_synthetic(root, 10, seed=1)
    assert sorted(p.name for p in root.iterdir()) == [
        "img_align_celeba",
        "list_attr_celeba.txt",
        "list_eval_partition.txt",
    ]
    assert len(list((root / "img_align_celeba").iterdir())) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["celeba"]


def test_attribute_frequencies_are_plausible(faces):
    _, attrs = faces
    freq = {k: np.mean([a[k] for a in attrs]) for k in ATTRIBUTES}
    expected = {
        "Male": (0.3, 0.55),
        "Young": (0.65, 0.9),
        "Smiling": (0.35, 0.62),
        "Mouth_Slightly_Open": (0.3, 0.62),
        "Eyeglasses": (0.02, 0.15),
        "Wearing_Hat": (0.005, 0.12),
        "No_Beard": (0.75, 0.97),
        "Wearing_Lipstick": (0.3, 0.62),
        "Bangs": (0.07, 0.28),
        "Pale_Skin": (0.005, 0.1),
        "Bald": (0.0, 0.06),
        "Blond_Hair": (0.08, 0.28),
    }
    for name, (lo, hi) in expected.items():
        assert lo <= freq[name] <= hi, (name, freq[name])
    assert sum(f > 0 for f in freq.values()) >= 30


def test_attributes_co_occur_consistently(faces):
    _, attrs = faces
    for a in attrs:
        colours = sum(a[k] for k in HAIR_COLOURS)
        if a["Bald"]:
            assert a["Male"] and colours == 0 and not a["Bangs"]
        elif not a["Wearing_Hat"]:
            assert colours == 1
        else:
            assert colours <= 1
        if a["Mustache"] or a["Goatee"]:
            assert a["Male"] and not a["No_Beard"]
        if a["5_o_Clock_Shadow"] or a["Sideburns"] or a["Wearing_Necktie"]:
            assert a["Male"]
        if a["Wearing_Lipstick"] or a["Heavy_Makeup"] or a["Wearing_Earrings"]:
            assert not a["Male"]
        assert not (a["Wavy_Hair"] and a["Straight_Hair"])
        assert not (a["Big_Nose"] and a["Pointy_Nose"])
    smiling = np.array([a["Smiling"] for a in attrs], bool)
    open_ = np.array([a["Mouth_Slightly_Open"] for a in attrs], bool)
    assert open_[smiling].mean() > open_[~smiling].mean() + 0.3


def test_smiles_show_in_the_mouth_region(faces):
    images, attrs = faces
    smiling = np.array([a["Smiling"] for a in attrs], bool)
    mouth = images[:, 140:162, 70:108]  # around (89, 150)
    teeth = (mouth.min(-1) > 200).mean((1, 2))
    assert teeth[smiling].mean() > 2 * teeth[~smiling].mean()
    lum = mouth.mean(-1)
    assert np.abs(lum[smiling].mean(0) - lum[~smiling].mean(0)).mean() > 4


def test_eyeglasses_darken_the_eye_region(faces):
    images, attrs = faces
    glasses = np.array([a["Eyeglasses"] for a in attrs], bool)
    lum = images.mean(-1)
    eyes = lum[:, 102:124, 55:123].mean((1, 2)) / lum[:, 126:138, 55:123].mean((1, 2))  # relative to cheeks
    assert glasses.sum() >= 5
    assert eyes[glasses].mean() < eyes[~glasses].mean() - 0.08


def test_faces_sit_where_celeba_aligns_them(faces):
    images, attrs = faces
    plain = [i for i, a in enumerate(attrs) if not (a["Eyeglasses"] or a["Blurry"])]
    lum = images[plain].mean(-1)
    # Eyes are the darkest small features of the face; they sit near y=112, x=70 and x=108.
    for x in (70, 108):
        at_eye = lum[:, 107:118, x - 6 : x + 6].mean()
        below = lum[:, 121:132, x - 6 : x + 6].mean()
        assert at_eye < below - 10
