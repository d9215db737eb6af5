"""The image-folder source, on a folder of real files in every format and state it must cope with."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFile

from vqgen.data import decode, folder

RED, BLUE, GREEN, WHITE = (220, 20, 20), (20, 20, 220), (20, 200, 20), (255, 255, 255)

USED = [
    "anim.gif",
    "cmyk.jpg",
    "deep.png",
    "grey.png",
    "palette.png",
    "photo.jpg",
    "pic.bmp",
    "pic.webp",
    "rgba.png",
    "rotated.jpg",
    "shout.JPEG",
    "sub/nested.png",
]
UNREADABLE = ["bad/corrupt.png", "bad/empty.jpg", "bad/text.jpg", "bad/truncated.jpg"]


def solid(w, h, colour, mode="RGB"):
    return Image.new(mode, (w, h), colour)


def write_good(root):
    """The usable images, each at least 16 px on its shorter side."""
    (root / "sub").mkdir(parents=True, exist_ok=True)
    solid(48, 32, RED).save(root / "photo.jpg", quality=95)
    solid(32, 32, BLUE).save(root / "shout.JPEG")
    solid(24, 40, GREEN).save(root / "sub/nested.png")
    solid(20, 20, 128, "L").save(root / "grey.png")
    rgba = solid(32, 16, (*BLUE, 255), "RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, 16, 16))  # left half transparent black
    rgba.save(root / "rgba.png")
    pal = Image.new("P", (32, 16), 0)
    pal.putpalette([0, 0, 0, *RED] + [0] * 762)
    pal.paste(1, (16, 0, 32, 16))  # left half index 0 (transparent), right half red
    pal.save(root / "palette.png", transparency=0)
    Image.fromarray(np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))).save(root / "deep.png")
    solid(32, 32, (0, 255, 255, 0), "CMYK").save(root / "cmyk.jpg", quality=95)
    rotated = np.full((20, 40, 3), BLUE, np.uint8)
    rotated[:8, :8] = RED  # stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rotated).save(root / "rotated.jpg", quality=95, exif=exif)
    solid(24, 24, RED).save(root / "anim.gif", save_all=True, append_images=[solid(24, 24, BLUE)], duration=100)
    solid(24, 24, GREEN).save(root / "pic.webp", lossless=True)
    solid(24, 24, BLUE).save(root / "pic.bmp")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    write_good(root)
    (root / "bad").mkdir()
    (root / "bad/empty.jpg").touch()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "whole.jpg", quality=95)
    data = (root / "whole.jpg").read_bytes()
    (root / "whole.jpg").unlink()
    (root / "bad/truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "bad/corrupt.png").write_bytes(np.random.default_rng(1).bytes(500))
    (root / "bad/text.jpg").write_text("not a picture\n")
    (root / "notes.txt").write_text("shot in 2024\n")
    solid(8, 8, RED).save(root / "tiny.png")
    solid(32, 32, RED).save(root / ".hidden.jpg")
    (root / ".cache").mkdir()
    solid(32, 32, RED).save(root / ".cache/inside.jpg")
    return root


def near(pixel, colour, tol=40):
    return bool(np.all(np.abs(np.asarray(pixel, int) - colour) <= tol))


def rgb(path):
    return np.asarray(decode.open_rgb(path))


def test_scan_sorts_files_into_used_and_skipped(root):
    s = folder.scan(root, min_size=16, val_fraction=0.2, test_fraction=0.2)
    assert [p.relative_to(root).as_posix() for p in s.paths] == USED
    assert s.skipped == {
        "unreadable": UNREADABLE,
        "too_small": ["tiny.png"],
        "not_an_image": ["notes.txt"],
        "link_outside": [],
        "dangling_link": [],
        "name_not_utf8": [],
    }
    assert s.found == 18  # hidden files and directories are not even considered
    assert s.split.dtype == np.uint8 and s.split.shape == (len(USED),)
    assert list(s.split) == [folder.split_of(rel, 0.2, 0.2) for rel in USED]
    assert s.details["bad/truncated.jpg"] == "truncated" and s.details["bad/empty.jpg"] == "empty file"
    assert folder.counts(s) == {
        "found": 18,
        "used": 12,
        "duplicates": 0,
        "skipped_unreadable": 4,
        "skipped_too_small": 1,
        "skipped_not_an_image": 1,
        "skipped_link_outside": 0,
        "skipped_dangling_link": 0,
        "skipped_name_not_utf8": 0,
    }
    lines = folder.warnings(s)
    assert len(lines) == 6 and "skipped bad/truncated.jpg: unreadable (truncated)" in lines
    for rel in [*UNREADABLE, "tiny.png", "notes.txt"]:
        assert sum(f"skipped {rel}:" in line for line in lines) == 1
    assert folder.warnings(s, limit=2)[-1] == "... and 4 more" and len(folder.warnings(s, limit=2)) == 3


def test_truncated_files_are_not_loaded_leniently(root):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    with pytest.raises(decode.UnreadableImage, match="truncated"):
        decode.open_rgb(root / "bad/truncated.jpg")


def test_open_rgb_flattens_every_mode_to_rgb(root):
    for rel in USED:
        img = decode.open_rgb(root / rel)
        assert img.mode == "RGB", rel
    assert near(rgb(root / "grey.png")[5, 5], (128, 128, 128), 0)
    rgba = rgb(root / "rgba.png")
    assert near(rgba[8, 4], WHITE, 0) and near(rgba[8, 28], BLUE, 0)
    pal = rgb(root / "palette.png")
    assert near(pal[8, 4], WHITE, 0) and near(pal[8, 28], RED, 0)
    assert near(rgb(root / "cmyk.jpg")[16, 16], (255, 0, 0))
    assert near(rgb(root / "anim.gif")[12, 12], RED, 10)  # the first frame, not the second
    assert near(rgb(root / "pic.webp")[12, 12], GREEN, 0) and near(rgb(root / "pic.bmp")[12, 12], BLUE, 0)


def test_sixteen_bit_becomes_an_eight_bit_gradient(root):
    deep = rgb(root / "deep.png").astype(int)
    assert deep.shape == (16, 64, 3) and (deep[..., 0] == deep[..., 2]).all()
    row = deep[0, :, 0]
    assert row[0] <= 2 and row[-1] >= 253 and (np.diff(row) >= 0).all() and len(np.unique(row)) > 50


def test_exif_orientation_is_honoured(root):
    img = rgb(root / "rotated.jpg")
    assert img.shape == (40, 20, 3)  # stored 40 wide, shown 20 wide
    # orientation 6: stored row 0 is the right-hand column, stored column 0 the top row
    assert near(img[2, 17], RED) and near(img[2, 2], BLUE) and near(img[37, 17], BLUE)


def test_load_square_crops_the_centre(tmp_path):
    img = np.full((20, 40, 3), RED, np.uint8)
    img[:, 10:30] = GREEN  # the centre 20 x 20
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = folder.load_square(tmp_path / "wide.png", 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert near(out[1, 1], GREEN, 2) and near(out[14, 14], GREEN, 2)


def test_decompression_bombs_are_unreadable(tmp_path, monkeypatch):
    solid(12, 12, RED).save(tmp_path / "warns.png")  # over the limit: a warning, by default
    solid(32, 32, RED).save(tmp_path / "errors.png")  # over twice the limit: an error
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for name in ("warns.png", "errors.png"):
        with pytest.raises(decode.UnreadableImage, match="pixels"):
            decode.open_rgb(tmp_path / name)


def test_split_of_is_a_stable_hash_of_the_path():
    names = [f"people/{i:05d}.jpg" for i in range(5000)]
    splits = np.array([folder.split_of(n, 0.1, 0.2) for n in names])
    assert abs((splits == 1).mean() - 0.1) < 0.02 and abs((splits == 2).mean() - 0.2) < 0.02
    assert [folder.split_of(n, 0.1, 0.2) for n in names] == list(splits)
    # pinned, so a switch to Python's salted hash() or another digest shows up
    assert [folder.split_of(f"img{i}.jpg", 0.3, 0.3) for i in range(10)] == [1, 2, 1, 1, 0, 2, 0, 2, 0, 0]
    assert {folder.split_of(n, 0, 0) for n in names[:100]} == {0}
    assert {folder.split_of(n, 0, 1) for n in names[:100]} == {2}
    with pytest.raises(ValueError):
        folder.split_of("a.jpg", 0.6, 0.6)


def test_splits_depend_only_on_relative_paths(tmp_path):
    write_good(tmp_path / "a")
    before = folder.scan(tmp_path / "a", 16, 0.3, 0.3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for i in range(8):  # new files, some sorting before the old ones
        solid(16, 16, RED).save(tmp_path / "b" / f"{'aa' if i % 2 else 'zz'}{i}.png")
    after = folder.scan(tmp_path / "b", 16, 0.3, 0.3)
    old = {p.relative_to(before.root).as_posix(): s for p, s in zip(before.paths, before.split)}
    new = {p.relative_to(after.root).as_posix(): s for p, s in zip(after.paths, after.split)}
    assert len(new) == len(old) + 8 and {rel: new[rel] for rel in old} == old
    assert len(set(old.values())) > 1


def test_workers_give_the_same_scan(root):
    seen = []
    one = folder.scan(root, 16, 0.2, 0.2, workers=1)
    two = folder.scan(root, 16, 0.2, 0.2, workers=2, progress=seen.append, chunk=4)
    assert two.paths == one.paths and np.array_equal(two.split, one.split)
    assert (two.skipped, two.details, two.found) == (one.skipped, one.details, one.found)
    assert sum(seen) == len(USED) + len(UNREADABLE) + 1 and len(seen) == 5  # every image file, in chunks


def test_folders_without_usable_images_are_errors(tmp_path):
    with pytest.raises(folder.FolderError, match="does not exist"):
        folder.scan(tmp_path / "missing", 16, 0.1, 0.1)
    (tmp_path / "file.jpg").write_text("x")
    with pytest.raises(folder.FolderError, match="not a directory"):
        folder.scan(tmp_path / "file.jpg", 16, 0.1, 0.1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(folder.FolderError, match=re.escape(str(tmp_path / "empty"))):
        folder.scan(tmp_path / "empty", 16, 0.1, 0.1)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("x")
    (bad / "y.txt").write_text("y")
    solid(8, 8, RED).save(bad / "z.png")
    with pytest.raises(folder.FolderError) as e:
        folder.scan(bad, 16, 0.1, 0.1)
    assert str(bad) in str(e.value) and "1 are unreadable" in str(e.value) and "1 are smaller" in str(e.value)


def test_check_splits_refuses_nearly_empty_val_or_test(tmp_path):
    for i in range(40):
        Image.new("RGB", (20, 20), (i, 0, 0)).save(tmp_path / f"{i}.png")
    found = folder.scan(tmp_path, 16, 0.3, 0.3)
    folder.check_splits(found, 0.3, 0.3)
    found.split[:] = 0
    with pytest.raises(folder.FolderError, match="Only 0 of the 40 usable images .* fall in the val split"):
        folder.check_splits(found, 0.3, 0.3)


def test_links_out_of_the_folder_and_dangling_links_are_counted_not_followed(tmp_path):
    outside, root = tmp_path / "private", tmp_path / "photos"
    outside.mkdir()
    write_good(root)
    solid(32, 32, GREEN).save(outside / "secret.png")
    (root / "secret.png").symlink_to(outside / "secret.png")
    (root / "again.png").symlink_to(root / "photo.jpg")  # a link within the folder is an ordinary file
    (root / "gone.png").symlink_to(root / "deleted.png")
    s = folder.scan(root, 16, 0.2, 0.2)
    used = [p.relative_to(root).as_posix() for p in s.paths]
    assert "secret.png" not in used and "again.png" in used and "gone.png" not in used
    assert s.skipped["link_outside"] == ["secret.png"] and s.skipped["dangling_link"] == ["gone.png"]
    counted = folder.counts(s)
    assert counted["skipped_link_outside"] == counted["skipped_dangling_link"] == 1
    assert counted["found"] == len(USED) + 3 and counted["used"] == len(USED) + 1
    folder.write_import(s, tmp_path / "raw")
    assert not (tmp_path / "raw/images/secret.png").exists()


def test_names_that_are_not_utf8_are_skipped_and_printable(tmp_path):
    write_good(tmp_path)
    odd = "caf\udce9.png"  # the byte 0xE9 (Latin-1 e-acute) as Python holds it from the file system
    solid(32, 32, RED).save(tmp_path / odd)
    s = folder.scan(tmp_path, 16, 0.2, 0.2)
    assert s.skipped["name_not_utf8"] == [odd] and len(s.paths) == len(USED)
    assert "skipped caf\\xe9.png: name not utf8" in folder.warnings(s)
    "\n".join(folder.warnings(s)).encode("utf-8")  # printable to a UTF-8 terminal
    folder.write_import(s, tmp_path / "raw")  # no name it cannot write
    assert folder.read_import(tmp_path / "raw")[2]["skipped_name_not_utf8"] == 1


def test_byte_identical_files_land_in_one_split(tmp_path):
    for i in range(200):
        solid(20, 20, RED).save(tmp_path / f"copy{i:03d}.png")
    for i in range(30):
        solid(20, 20, (i, 0, 0)).save(tmp_path / f"own{i}.png")
    s = folder.scan(tmp_path, 16, 0.2, 0.2)
    copies = s.split[:200]
    assert len(set(copies.tolist())) == 1 and copies[0] == folder.split_of("copy000.png", 0.2, 0.2)
    assert s.duplicates == 199 and folder.counts(s)["duplicates"] == 199
    assert len(set(s.split[200:].tolist())) > 1  # distinct files are still spread by their paths


def test_a_photo_of_celebas_size_at_the_runs_crop_is_framed_as_prepare_frames_its_faces(tmp_path):
    from vqgen.config import Data
    from vqgen.data import images, synthetic

    synthetic.draw_face(3)[0].save(tmp_path / "face.jpg", quality=95)  # 178 x 218, as CelebA's aligned faces
    d = Data()
    prepared = images.load_face(tmp_path / "face.jpg", d.crop_size, d.image_size)
    photo, size = folder.load_photo(tmp_path / "face.jpg", d.image_size, d.min_size, d.photo_crop)
    assert size == (178, 218) and np.array_equal(photo, prepared)
    whole = folder.load_photo(tmp_path / "face.jpg", d.image_size, d.min_size)[0]  # the whole 178 x 178 square
    assert np.abs(whole.astype(int) - prepared).mean() > 10
    assert Data(source="folder").photo_crop == 1.0


@pytest.mark.parametrize("crop", [0.0, 1.5, -1.0])
def test_a_crop_that_is_not_a_share_of_the_photo_is_refused(tmp_path, crop):
    solid(40, 40, RED).save(tmp_path / "red.png")
    with pytest.raises(folder.FolderError, match=rf"^crop {crop:g} is not a share of the photo's shorter side; use"):
        folder.load_photo(tmp_path / "red.png", 16, 8, crop)
