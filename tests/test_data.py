"""The image store, the token shards and the CelebA layout reader, on real files."""

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from vqgen.data import celeba, images, tokens


def test_image_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    attrs = rng.integers(0, 2, (10, 3), dtype=np.int8)
    split = np.array([0] * 6 + [1] * 2 + [2] * 2, np.uint8)
    w = images.ImageStoreWriter(tmp_path / "s.h5", 10, 8, ["a", "b", "c"])
    w.append(imgs[:4], attrs[:4], split[:4], np.arange(4))
    w.append(imgs[4:], attrs[4:], split[4:], np.arange(4, 10))
    assert not (tmp_path / "s.h5").exists()  # nothing under the final name until complete
    w.close()
    for limit in (0, 1 << 20):  # read on demand, or kept in memory
        train = images.Split(tmp_path / "s.h5", "train", memory_limit=limit)
        assert len(train) == 6 and train.shape == (6, 8, 8, 3)
        assert np.array_equal(train[np.array([4, 0, 4, 2])], imgs[[4, 0, 4, 2]])  # any order, repeats
        assert np.array_equal(train[1:3], imgs[1:3])
        val = images.Split(tmp_path / "s.h5", "val", memory_limit=limit)
        assert np.array_equal(val[:], imgs[6:8]) and np.array_equal(val.attributes, attrs[6:8])
        assert list(val.source_index) == [6, 7] and val.attribute_names == ["a", "b", "c"]
    assert [len(b) for b in images.batched(train, 4)] == [4, 2]
    x = images.to_tensor(imgs)
    assert x.shape == (10, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(images.to_uint8(x), imgs)


def test_an_image_store_holds_only_the_images_appended(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    w = images.ImageStoreWriter(tmp_path / "s.h5", 8, 8, ["a"])  # room for 8; 3 did not decode
    w.append(imgs, np.ones((5, 1)), np.array([0, 0, 1, 2, 2], np.uint8), np.array([0, 2, 3, 6, 7]))
    w.close()
    with h5py.File(tmp_path / "s.h5") as f:
        assert {key: f[key].shape[0] for key in images.FIELDS} == dict.fromkeys(images.FIELDS, 5)
        assert np.array_equal(f["images"][:], imgs) and f["source_index"][:].tolist() == [0, 2, 3, 6, 7]
    assert images.Split(tmp_path / "s.h5", "test").attribute_names == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_load_face_crops_the_centre(tmp_path):
    img = np.zeros((218, 178, 3), np.uint8)
    img[39:179, 19:159] = 200  # the centre 140 x 140
    Image.fromarray(img).save(tmp_path / "f.png")
    face = images.load_face(tmp_path / "f.png", 140, 32)
    assert face.shape == (32, 32, 3) and face.min() == 200


@pytest.mark.parametrize("k,dtype", [(256, np.uint8), (257, np.uint16), (70000, np.uint32)])
def test_shards_round_trip(tmp_path, k, dtype):
    rng = np.random.default_rng(0)
    grids = rng.integers(0, k, (10, 4, 4))
    attrs = rng.integers(0, 2, (10, 3))
    paths = tokens.write_shards(tmp_path, "train", grids, attrs, np.arange(10), k, "abc", shard_size=4)
    assert [p.name for p in paths] == [f"train-{i:05d}-of-00003.h5" for i in range(3)]
    with h5py.File(paths[0]) as f:
        assert f["tokens"].dtype == dtype and tuple(f.attrs["grid"]) == (4, 4)
    back = tokens.read_shards(tmp_path, "train", k, "abc")
    assert np.array_equal(back["tokens"], grids) and np.array_equal(back["source_index"], np.arange(10))
    assert np.array_equal(back["attributes"], attrs)


def test_shards_of_another_tokenizer_are_refused(tmp_path):
    grids = np.zeros((2, 4, 4), np.int64)
    tokens.write_shards(tmp_path, "val", grids, np.zeros((2, 1)), np.arange(2), 256, "abc", 10)
    with pytest.raises(tokens.ShardError, match="re-run `vqgen encode`"):
        tokens.read_shards(tmp_path, "val", 256, "def")
    with pytest.raises(tokens.ShardError, match="512"):
        tokens.read_shards(tmp_path, "val", 512, "abc")
    with pytest.raises(tokens.ShardError, match="no test shards"):
        tokens.read_shards(tmp_path, "test")


def test_tokens_outside_the_codebook_are_refused_not_wrapped(tmp_path):
    grids = np.full((2, 4, 4), 300)
    with pytest.raises(tokens.ShardError, match="code 300, outside the 256-code codebook"):
        tokens.write_shards(tmp_path, "val", grids, np.zeros((2, 1)), np.arange(2), 256, "abc", 10)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(tokens.ShardError, match="code -1"):
        tokens.write_shards(tmp_path, "val", grids * 0 - 1, np.zeros((2, 1)), np.arange(2), 256, "abc", 10)


def _shards(directory, n=10, grid=(4, 4), shard_size=4, split="train"):
    rng = np.random.default_rng(0)
    return tokens.write_shards(
        directory, split, rng.integers(0, 256, (n, *grid)), np.zeros((n, 1)), np.arange(n), 256, "abc", shard_size
    )


def _edit(path, change):
    with h5py.File(path, "a") as f:
        change(f)


def _regrid(f):
    """A shard written for a 2x8 grid, consistent on its own."""
    del f["tokens"]
    f.create_dataset("tokens", data=np.zeros((4, 2, 8), np.uint8))
    f.attrs["grid"] = (2, 8)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d, paths: paths[1].unlink(), r"not one complete set \(0-of-3, 2-of-3\)"),
        (
            lambda d, paths: _shards(d, n=6, shard_size=3),
            r"not one complete set \(0-of-2, 0-of-3, 1-of-2, 1-of-3, 2-of-3\)",
        ),
        (lambda d, paths: paths[2].write_bytes(b"garbage" * 100), "train-00002-of-00003.h5 is not a readable HDF5"),
        (lambda d, paths: _edit(paths[0], lambda f: f.__delitem__("attributes")), "lacks attributes"),
        (lambda d, paths: _edit(paths[0], lambda f: f.attrs.__delitem__("tokenizer")), "lacks tokenizer"),
        (lambda d, paths: _edit(paths[0], lambda f: f.attrs.__setitem__("grid", (2, 8))), r"for a \(2, 8\) grid"),
        (
            lambda d, paths: _edit(
                paths[1], lambda f: f["tokens"].__setitem__((0, 0, 0), 255) or f.attrs.__setitem__("codebook_size", 200)
            ),
            "holds codes of a 200-code codebook",
        ),
        (lambda d, paths: _edit(paths[1], _regrid), r"hold grids of different shapes \(\(2, 8\), \(4, 4\)\)"),
        (lambda d, paths: (d / "train-x-of-00003.h5").write_bytes(b""), "is not named train-<i>-of-<n>.h5"),
    ],
)
def test_damaged_or_mixed_shards_are_refused_with_one_sentence(tmp_path, damage, message):
    paths = _shards(tmp_path)
    damage(tmp_path, paths)
    with pytest.raises(tokens.ShardError, match=message):
        tokens.read_shards(tmp_path, "train", 256)


def test_a_shard_with_a_code_beyond_its_codebook_is_refused(tmp_path):
    paths = tokens.write_shards(
        tmp_path, "train", np.zeros((4, 4, 4), np.int64), np.zeros((4, 1)), np.arange(4), 200, "abc", 10
    )
    _edit(paths[0], lambda f: f["tokens"].__setitem__((1, 2, 3), 250))  # fits the uint8 dtype, not the codebook
    with pytest.raises(tokens.ShardError, match="holds the code 250, outside its 200-code codebook"):
        tokens.read_shards(tmp_path, "train", 200)


def write_layout(root, n=5):
    (root / celeba.IMAGE_DIR).mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        Image.new("RGB", (178, 218), (120, 90, 60)).save(root / celeba.IMAGE_DIR / name)
    attr = [str(n), "Male Smiling"] + [f"{name}  1 -1" for name in names]
    (root / celeba.ATTR_FILE).write_text("\n".join(attr) + "\n")
    (root / celeba.PARTITION_FILE).write_text("".join(f"{name} {i % 3}\n" for i, name in enumerate(names)))
    return names


def test_read_layout(tmp_path):
    names = write_layout(tmp_path)
    paths, attrs, part = celeba.read_layout(tmp_path)
    assert [p.name for p in paths] == names
    assert list(attrs.columns) == ["Male", "Smiling"]
    assert attrs["Male"].tolist() == [1] * 5 and attrs["Smiling"].tolist() == [0] * 5
    assert part.tolist() == [0, 1, 2, 0, 1]


def test_read_layout_refuses_inconsistent_files(tmp_path):
    names = write_layout(tmp_path)
    (tmp_path / celeba.IMAGE_DIR / names[2]).unlink()
    with pytest.raises(celeba.LayoutError, match="missing"):
        celeba.read_layout(tmp_path)
    (tmp_path / celeba.ATTR_FILE).write_text("9\nMale\n000001.jpg 1\n")
    with pytest.raises(celeba.LayoutError, match="announces 9 images but lists 1"):
        celeba.read_attributes(tmp_path / celeba.ATTR_FILE)


def test_building_replaces_a_directory_only_when_complete(tmp_path):
    from vqgen.files import building

    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("old")
    with pytest.raises(RuntimeError):
        with building(dest) as tmp:
            (tmp / "new").write_text("half")
            raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (dest / "old").exists()
    with building(dest) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in dest.iterdir()] == ["new"] and not (tmp_path / "out.tmp").exists()


def test_building_swaps_by_renaming_so_a_kill_never_leaves_a_half_deleted_output(tmp_path, monkeypatch):
    from vqgen import files

    dest = tmp_path / "out"
    dest.mkdir()
    for i in range(3):
        (dest / f"old{i}").write_text("old")
    replace, calls = files.os.replace, []

    def killed_after_moving_the_old_one_aside(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill between the two renames
        replace(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_after_moving_the_old_one_aside)
    with pytest.raises(KeyboardInterrupt):
        with files.building(dest) as tmp:
            (tmp / "new").write_text("new")
    assert not dest.exists()  # absent, not half-deleted: the old output is whole beside it
    assert sorted(p.name for p in (tmp_path / "out.old").iterdir()) == ["old0", "old1", "old2"]
    monkeypatch.setattr(files.os, "replace", replace)
    with files.building(dest) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and [p.name for p in dest.iterdir()] == ["new"]


def test_building_replaces_a_plain_file_in_the_way(tmp_path):
    from vqgen.files import building

    (tmp_path / "out").write_text("a file where the directory goes")
    with building(tmp_path / "out") as tmp:
        (tmp / "new").write_text("new")
    assert (tmp_path / "out" / "new").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_writing_replaces_a_file_only_when_complete(tmp_path):
    from vqgen.files import writing

    path = tmp_path / "figures" / "plot.png"
    with writing(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".png" and tmp != path  # the format stays readable
        tmp.write_bytes(b"first")
    with pytest.raises(RuntimeError):
        with writing(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"first" and [p.name for p in path.parent.iterdir()] == ["plot.png"]


def test_a_disk_error_names_the_output_not_its_temporary_name(tmp_path):
    import errno

    from vqgen.files import building, writing

    def full(name):  # what the system raises when a write fails for want of space
        raise OSError(errno.ENOSPC, "No space left on device", str(name))

    with pytest.raises(OSError) as failed:
        with writing(tmp_path / "metrics" / "vqvae.json") as tmp:
            full(tmp)
    assert failed.value.filename == str(tmp_path / "metrics" / "vqvae.json")
    with pytest.raises(OSError) as failed:
        with building(tmp_path / "raw") as tmp:
            full(tmp / "images" / "000001.jpg")
    assert failed.value.filename == str(tmp_path / "raw" / "images" / "000001.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics"] and not any((tmp_path / "metrics").iterdir())


def test_random_flip_mirrors_each_image_or_leaves_it():
    x = torch.rand(64, 3, 8, 8)
    out = images.random_flip(x, torch.Generator().manual_seed(0))
    same = [torch.equal(a, b) for a, b in zip(out, x)]
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(out, x)]
    assert all(s != m for s, m in zip(same, mirrored)) and 16 < sum(mirrored) < 48
