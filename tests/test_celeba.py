"""The real CelebA files: parsing them, taking them from a directory, downloading them (network faked)."""

import hashlib
import warnings
import zipfile
from pathlib import Path

import pytest
import torchvision.datasets.utils
from PIL import Image

from vqgen.data import celeba, celeba_fetch
from vqgen.data.celeba_fetch import FetchError, FetchWarning
from vqgen.data.synthetic import ATTRIBUTES

NAMES = [f"{i:06d}.jpg" for i in range(1, 7)]
SPLIT = [0, 0, 0, 0, 1, 2]
LANDMARKS = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
HTML = "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>\n"


def value(i, j):
    return 1 if (i + j) % 3 == 0 else -1


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)


def make_celeba(folder):
    """A six-image CelebA in folder, as the official files; returns its (id, md5, name) table."""
    folder.mkdir(parents=True, exist_ok=True)
    images = folder / "images"
    images.mkdir()
    for i, name in enumerate(NAMES):
        Image.new("RGB", (178, 218), (40 * i, 90, 60)).save(images / name)
    write_zip(
        folder / "img_align_celeba.zip",
        [("img_align_celeba/", b"")] + [(f"img_align_celeba/{name}", (images / name).read_bytes()) for name in NAMES],
    )
    attr = [str(len(NAMES)), " ".join(ATTRIBUTES) + " "]
    attr += [f"{name} " + " ".join(f"{value(i, j):2d}" for j in range(40)) for i, name in enumerate(NAMES)]
    (folder / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} {100 + i // 2}\n" for i, n in enumerate(NAMES)))
    bbox = [str(len(NAMES)), "image_id x_1 y_1 width height"] + [f"{n}  95  71 226 313" for n in NAMES]
    (folder / "list_bbox_celeba.txt").write_text("\n".join(bbox) + "\n")
    marks = [str(len(NAMES)), LANDMARKS] + [f"{n}  69 109 106 113  77 142  73 152 108 154" for n in NAMES]
    (folder / "list_landmarks_align_celeba.txt").write_text("\n".join(marks) + "\n")
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(NAMES, SPLIT)))
    return [
        (f"id-{name}", hashlib.md5((folder / name).read_bytes()).hexdigest(), name) for _, _, name in celeba_fetch.FILES
    ]


@pytest.fixture
def source(tmp_path):
    return tmp_path / "mirror", make_celeba(tmp_path / "mirror")


def fetch(tmp_path, celeba_dir, files):
    return celeba_fetch.fetch(tmp_path / "raw", celeba_dir, cache_dir=tmp_path / "cache", files=files)


def test_official_file_table_comes_from_torchvision():
    names = [name for _, _, name in celeba_fetch.FILES]
    assert sorted(names) == sorted(
        [
            "img_align_celeba.zip",
            celeba.ATTR_FILE,
            celeba.IDENTITY_FILE,
            celeba.BBOX_FILE,
            celeba.LANDMARKS_FILE,
            celeba.PARTITION_FILE,
        ]
    )
    assert all(len(md5) == 32 for _, md5, _ in celeba_fetch.FILES)


def test_fetch_from_a_directory_with_the_zip(tmp_path, source):
    folder, files = source
    placed = []
    root = celeba_fetch.fetch(
        tmp_path / "raw", folder, cache_dir=tmp_path / "cache", files=files, progress=placed.append
    )
    paths, attrs, part = celeba.read_layout(root)
    assert [p.name for p in paths] == NAMES and placed == [1] * 6
    assert list(attrs.columns) == list(ATTRIBUTES)
    assert attrs.iloc[1].tolist() == [int(value(1, j) == 1) for j in range(40)]
    assert part.tolist() == SPLIT
    assert celeba.read_identities(root / celeba.IDENTITY_FILE).tolist() == [100, 100, 101, 101, 102, 102]
    assert (root / celeba.IMAGE_DIR / NAMES[3]).read_bytes() == (folder / "images" / NAMES[3]).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "raw"]  # no download cache, no leftovers


def test_fetch_uses_an_extracted_folder_without_the_zip(tmp_path, source):
    folder, files = source
    (folder / "img_align_celeba.zip").unlink()
    (folder / "images").rename(folder / celeba.IMAGE_DIR)
    placed = []
    root = celeba_fetch.fetch(tmp_path / "raw", str(folder), files=files, progress=placed.append)
    paths, _, _ = celeba.read_layout(root)
    assert len(placed) == 6
    assert all(p.samefile(folder / celeba.IMAGE_DIR / p.name) for p in paths)  # hard links, not copies


def test_a_quota_page_saved_as_the_zip_is_refused(tmp_path, source):
    folder, files = source
    (folder / "img_align_celeba.zip").write_text(HTML)
    with pytest.raises(FetchError, match=r"img_align_celeba\.zip is an HTML page .*CelebA site.*data\.celeba_dir"):
        fetch(tmp_path, folder, files)
    assert not (tmp_path / "raw").exists() and not (tmp_path / "raw.tmp").exists()


def test_a_missing_annotation_file_is_named(tmp_path, source):
    folder, files = source
    (folder / celeba.ATTR_FILE).unlink()
    with pytest.raises(FetchError, match=rf"{celeba.ATTR_FILE} is missing; download it from the CelebA site"):
        fetch(tmp_path, folder, files)


def test_box_landmark_and_identity_files_are_optional(tmp_path, source):
    folder, files = source
    for name in (celeba.BBOX_FILE, celeba.LANDMARKS_FILE, celeba.IDENTITY_FILE):
        (folder / name).unlink()
    root = fetch(tmp_path, folder, files)
    assert sorted(p.name for p in root.iterdir()) == sorted([celeba.IMAGE_DIR, celeba.ATTR_FILE, celeba.PARTITION_FILE])
    assert len(celeba.read_layout(root)[0]) == 6


def test_a_subset_with_annotation_files_cut_to_match_warns_and_is_parsed(tmp_path, source):
    folder, files = source
    lines = (folder / celeba.ATTR_FILE).read_text().splitlines()
    (folder / celeba.ATTR_FILE).write_text("\n".join(["4", lines[1], *lines[2:6]]) + "\n")
    (folder / celeba.PARTITION_FILE).write_text("".join(f"{n} {s}\n" for n, s in zip(NAMES[:4], [0, 0, 1, 2])))
    (folder / celeba.IDENTITY_FILE).write_text("".join(f"{n} 7\n" for n in NAMES[:4]))
    with pytest.warns(
        FetchWarning, match=rf"{celeba.ATTR_FILE} has md5 \w{{32}}, not the official \w{{32}} \(a subset"
    ):
        root = fetch(tmp_path, folder, files)
    paths, attrs, part = celeba.read_layout(root, missing_ok=True)
    assert [p.name for p in paths] == NAMES[:4] and part.tolist() == [0, 0, 1, 2]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: HTML, r"list_attr_celeba.txt is an HTML page"),
        (lambda text: text.replace(" 1", " 2", 1), r"list_attr_celeba.txt, line 3: attribute values must be -1 or 1"),
        (lambda text: text.replace("Smiling", "Smiles"), r"names the attributes .* not CelebA's 40"),
        (lambda text: text.replace("6\n", "7\n", 1), r"announces 7 images but lists 6"),
    ],
)
def test_an_annotation_file_of_another_md5_is_still_refused_when_damaged(tmp_path, source, damage, message):
    folder, files = source
    path = folder / celeba.ATTR_FILE
    path.write_text(damage(path.read_text()))
    with pytest.raises((FetchError, celeba.LayoutError), match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore", FetchWarning)  # the md5 differs, of course
        fetch(tmp_path, folder, files)
    assert not (tmp_path / "raw").exists()


def test_listed_images_missing_from_the_folder_are_counted_not_fatal(tmp_path, source):
    folder, files = source
    (folder / "img_align_celeba.zip").unlink()
    (folder / "images").rename(folder / celeba.IMAGE_DIR)
    (folder / celeba.IMAGE_DIR / NAMES[2]).unlink()
    with pytest.warns(FetchWarning, match="1 of the 6 listed images are not in the image folder"):
        root = fetch(tmp_path, folder, files)
    with pytest.raises(celeba.LayoutError, match="1 of the 6 listed images are missing"):
        celeba.read_layout(root)
    for name in NAMES:
        (folder / celeba.IMAGE_DIR / name).unlink(missing_ok=True)
    with pytest.raises(celeba.LayoutError, match="6 of the 6 listed images are missing"):
        fetch(tmp_path, folder, files)


def write_kaggle(folder):
    """The Kaggle copy of the six-image CelebA: CSV annotations, images nested one folder deeper."""
    kaggle = folder.parent / "kaggle"
    (kaggle / celeba.IMAGE_DIR).mkdir(parents=True)
    (folder / "images").rename(kaggle / celeba.IMAGE_DIR / celeba.IMAGE_DIR)
    rows = [",".join(["image_id", *ATTRIBUTES])]
    rows += [",".join([name, *(str(value(i, j)) for j in range(40))]) for i, name in enumerate(NAMES)]
    (kaggle / "list_attr_celeba.csv").write_text("\n".join(rows) + "\n")
    (kaggle / "list_eval_partition.csv").write_text(
        "image_id,partition\n" + "".join(f"{n},{s}\n" for n, s in zip(NAMES, SPLIT))
    )
    (kaggle / "list_bbox_celeba.csv").write_text("image_id,x_1,y_1,width,height\n")
    return kaggle


def test_the_kaggle_copy_is_accepted_and_rewritten_in_the_official_layout(tmp_path, source):
    folder, files = source
    kaggle = write_kaggle(folder)
    root = fetch(tmp_path, kaggle, files)
    paths, attrs, part = celeba.read_layout(root)
    assert [p.name for p in paths] == NAMES and list(attrs.columns) == list(ATTRIBUTES)
    assert attrs.iloc[1].tolist() == [int(value(1, j) == 1) for j in range(40)] and part.tolist() == SPLIT
    assert (root / celeba.ATTR_FILE).read_text() == (folder / celeba.ATTR_FILE).read_text().replace(" \n", "\n", 1)


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("list_attr_celeba.csv", lambda t: HTML, "list_attr_celeba.csv is an HTML page"),
        (
            "list_attr_celeba.csv",
            lambda t: t.replace("Young", "Old"),
            "line 1: expected the header image_id and the 40",
        ),
        (
            "list_attr_celeba.csv",
            lambda t: t.replace(",-1", ",0", 1),
            "line 2: attribute values must be -1 or 1, found '0'",
        ),
        ("list_attr_celeba.csv", lambda t: t + "000009.jpg,1\n", "line 8: expected 41 comma-separated fields, found 2"),
        ("list_eval_partition.csv", lambda t: t.replace(",2", ",3"), "line 7: the split must be 0, 1 or 2, found '3'"),
        ("list_eval_partition.csv", lambda t: t.replace("000002", "000001"), "line 3: 000001.jpg is listed twice"),
    ],
)
def test_a_damaged_kaggle_copy_is_one_sentence(tmp_path, source, name, damage, message):
    folder, files = source
    kaggle = write_kaggle(folder)
    (kaggle / name).write_text(damage((kaggle / name).read_text()))
    with pytest.raises((FetchError, celeba.LayoutError), match=message):
        fetch(tmp_path, kaggle, files)
    assert not (tmp_path / "raw").exists()


def test_a_kaggle_copy_without_its_partition_file_is_one_sentence(tmp_path, source):
    folder, files = source
    kaggle = write_kaggle(folder)
    (kaggle / "list_eval_partition.csv").unlink()
    with pytest.raises(FetchError, match=r"list_eval_partition.csv is missing; the Kaggle copy of CelebA holds"):
        fetch(tmp_path, kaggle, files)


def test_archives_that_unpack_too_large_or_compress_like_a_bomb_are_refused(tmp_path):
    write_zip(tmp_path / "big.zip", [(f"img_align_celeba/{i}.jpg", bytes(range(256)) * 40) for i in range(3)])
    with pytest.raises(FetchError, match="would unpack to 30720 bytes, more than the 30000 allowed"):
        celeba_fetch.safe_extract(tmp_path / "big.zip", tmp_path / "out", max_bytes=30_000)
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("img_align_celeba/000001.jpg", b"\0" * (8 << 20))
    with pytest.raises(FetchError, match=r"compressed 8388608 to \d+ bytes, more than 200 times \(a zip bomb\?\)"):
        celeba_fetch.safe_extract(tmp_path / "bomb.zip", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip", "bomb.zip"]


def test_a_re_zipped_image_archive_only_warns(tmp_path, source):
    folder, files = source
    write_zip(folder / "img_align_celeba.zip", [(n, (folder / "images" / n).read_bytes()) for n in NAMES])
    with pytest.warns(FetchWarning, match="mirrors re-zip the images"):
        root = fetch(tmp_path, folder, files)
    assert len(celeba.read_layout(root)[0]) == 6


def test_a_damaged_zip_is_refused(tmp_path, source):
    folder, files = source
    data = (folder / "img_align_celeba.zip").read_bytes()
    (folder / "img_align_celeba.zip").write_bytes(data[: len(data) // 2])
    with pytest.warns(FetchWarning), pytest.raises(FetchError, match="is not a readable zip archive"):
        fetch(tmp_path, folder, files)


@pytest.mark.parametrize("member", ["img_align_celeba/../../evil.jpg", "ABSOLUTE"])
def test_unsafe_zip_members_are_refused(tmp_path, member):
    member = str(tmp_path / "evil.jpg") if member == "ABSOLUTE" else member
    write_zip(tmp_path / "bad.zip", [("img_align_celeba/000001.jpg", b"jpeg"), (member, b"evil")])
    (tmp_path / "out").mkdir()
    with pytest.raises(FetchError, match=rf"unsafe member '{member}'"):
        celeba_fetch.safe_extract(tmp_path / "bad.zip", tmp_path / "out" / "dest")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.zip", "out"]


def test_an_unsafe_zip_in_celeba_dir_stops_fetch(tmp_path, source):
    folder, files = source
    write_zip(folder / "img_align_celeba.zip", [("../evil.jpg", b"evil")])
    with pytest.warns(FetchWarning), pytest.raises(FetchError, match="unsafe member '../evil.jpg'"):
        fetch(tmp_path, folder, files)
    assert not list(tmp_path.rglob("evil.jpg"))


def test_interrupted_work_is_redone_not_trusted(tmp_path, source):
    folder, files = source
    (tmp_path / "raw.tmp" / celeba.IMAGE_DIR).mkdir(parents=True)  # an interrupted fetch
    (tmp_path / "raw.tmp" / celeba.ATTR_FILE).write_text("junk")
    (tmp_path / "raw" / celeba.IMAGE_DIR).mkdir(parents=True)  # a half-built root
    (tmp_path / "raw" / celeba.IMAGE_DIR / "junk.jpg").write_bytes(b"junk")
    root = fetch(tmp_path, folder, files)
    assert sorted(p.name for p in (root / celeba.IMAGE_DIR).iterdir()) == NAMES
    texts = [name for _, _, name in files if name.endswith(".txt")]
    assert sorted(p.name for p in root.iterdir()) == sorted([celeba.IMAGE_DIR, *texts])
    assert not (tmp_path / "raw.tmp").exists()

    dest = tmp_path / "unzipped"
    (tmp_path / "unzipped.partial").mkdir()  # an interrupted extraction
    (tmp_path / "unzipped.partial" / "junk.jpg").write_bytes(b"junk")
    celeba_fetch.safe_extract(folder / "img_align_celeba.zip", dest)
    assert sorted(p.name for p in (dest / celeba.IMAGE_DIR).iterdir()) == NAMES
    assert not (tmp_path / "unzipped.partial").exists()


# Downloading: only torchvision's Google Drive call (the network) is replaced.


def fake_drive(monkeypatch, folder, calls, html_for=None):
    def download(file_id, root, filename=None, md5=None):
        calls.append(file_id)
        name = file_id.removeprefix("id-")
        data = HTML.encode() if name == html_for else (folder / name).read_bytes()
        (Path(root) / filename).write_bytes(data)

    monkeypatch.setattr(torchvision.datasets.utils, "download_file_from_google_drive", download)


def test_download_goes_through_a_cache(tmp_path, source, monkeypatch):
    folder, files = source
    calls = []
    fake_drive(monkeypatch, folder, calls)
    root = fetch(tmp_path, None, files)
    assert len(celeba.read_layout(root)[0]) == 6
    assert sorted(calls) == sorted(file_id for file_id, _, _ in files)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(n for _, _, n in files)

    (tmp_path / "cache" / celeba.IDENTITY_FILE).write_text(HTML)  # a bad cached copy
    calls.clear()
    root = fetch(tmp_path, "", files)
    assert calls == [f"id-{celeba.IDENTITY_FILE}"]
    assert len(celeba.read_layout(root)[0]) == 6


def test_a_quota_page_from_google_drive_is_refused(tmp_path, source, monkeypatch):
    folder, files = source
    fake_drive(monkeypatch, folder, [], html_for="img_align_celeba.zip")
    with pytest.raises(
        FetchError,
        match=r"Google Drive sent an HTML page .* instead of img_align_celeba\.zip; "
        r"download it from the CelebA site .* put it in .*cache",
    ):
        fetch(tmp_path, None, files)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
    assert not (tmp_path / "raw").exists() and not (tmp_path / "raw.tmp").exists()


def test_a_failing_download_is_one_clear_error(tmp_path, source, monkeypatch):
    _, files = source

    def download(file_id, root, filename=None, md5=None):
        raise RuntimeError(
            "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file "
            "recently. Please\n\ttry accessing the file again later.\n"
        )

    monkeypatch.setattr(torchvision.datasets.utils, "download_file_from_google_drive", download)
    reason = r"\(Failed to retrieve file url: Too many users have viewed or downloaded this file recently\)"
    with pytest.raises(
        FetchError,
        match=rf"img_align_celeba\.zip could not be downloaded from Google Drive {reason}; "
        r"download it from the CelebA site [^\n]*$",
    ):
        fetch(tmp_path, None, files)


# Parsing.


def test_attribute_parsing_refuses_bad_rows(tmp_path, source):
    folder, _ = source
    path = folder / celeba.ATTR_FILE
    good = path.read_text().splitlines()

    path.write_text("\n".join(good[:4] + [good[4].replace(" 1", " 0", 1)] + good[5:]) + "\n")
    with pytest.raises(
        celeba.LayoutError,
        match=r"list_attr_celeba\.txt, line 5: attribute values must be -1 or 1, "
        r"found '0'",
    ):
        celeba.read_attributes(path)
    path.write_text("\n".join(good[:3] + [good[3].rsplit(" ", 1)[0]] + good[4:]) + "\n")
    with pytest.raises(celeba.LayoutError, match=r"list_attr_celeba\.txt, line 4: expected 41 fields .*found 40"):
        celeba.read_attributes(path)
    path.write_text("\n".join(["7"] + good[1:]) + "\n")
    with pytest.raises(celeba.LayoutError, match="announces 7 images but lists 6"):
        celeba.read_attributes(path)
    path.write_text("\n".join(good + [good[2]]).replace("6", "7", 1) + "\n")
    with pytest.raises(celeba.LayoutError, match="line 9: 000001.jpg is listed twice"):
        celeba.read_attributes(path)


def test_lists_that_disagree_are_refused(tmp_path, source):
    folder, files = source
    root = fetch(tmp_path, folder, files)
    (root / celeba.PARTITION_FILE).write_text("".join(f"{n} {s}\n" for n, s in zip(NAMES[:5], SPLIT)))
    with pytest.raises(
        celeba.LayoutError, match=f"do not list the same images: {NAMES[5]} is missing from {celeba.PARTITION_FILE}"
    ):
        celeba.read_layout(root)
    (root / celeba.PARTITION_FILE).write_text("".join(f"{n} {s}\n" for n, s in zip(NAMES, SPLIT)))
    (root / celeba.IDENTITY_FILE).write_text("".join(f"{n} 1\n" for n in NAMES[:5] + ["999999.jpg"]))
    with pytest.raises(celeba.LayoutError, match=f"999999.jpg is only in {celeba.IDENTITY_FILE}"):
        celeba.read_layout(root)
    (root / celeba.IDENTITY_FILE).write_text("".join(f"{n} {0 if n == NAMES[2] else 1}\n" for n in NAMES))
    with pytest.raises(celeba.LayoutError, match="identity_CelebA.txt, line 3: the identity must be a positive"):
        celeba.read_layout(root)
    (root / celeba.PARTITION_FILE).write_text("".join(f"{n} 3\n" for n in NAMES))
    with pytest.raises(celeba.LayoutError, match="list_eval_partition.txt, line 1: the split must be 0, 1 or 2"):
        celeba.read_layout(root)


def test_all_of_celeba_must_use_the_official_split(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, celeba.IMAGE_COUNT + 1)]
    official = [0] * 162_770 + [1] * 19_867 + [2] * 19_962
    path = tmp_path / celeba.PARTITION_FILE
    path.write_text("".join(f"{n} {s}\n" for n, s in zip(names, official)))
    assert celeba.read_partition(path).value_counts().to_dict() == celeba.OFFICIAL_SPLIT
    path.write_text("".join(f"{n} {s}\n" for n, s in zip(names, sorted(official[1:] + [1]))))
    with pytest.raises(
        celeba.LayoutError,
        match="splits them train 162769 / val 19868 / test 19962, not the "
        "official train 162770 / val 19867 / test 19962",
    ):
        celeba.read_partition(path)
