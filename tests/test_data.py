"""The image store, the token shards and the CelebA layout reader, on real files."""

import h5py
import numpy as np
import pytest
from PIL import Image

from vqgen.data import celeba, images, tokens


def test_image_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    attrs = rng.integers(0, 2, (10, 3), dtype=np.int8)
    split = np.array([0] * 6 + [1] * 2 + [2] * 2, np.uint8)
    w = images.ImageStoreWriter(tmp_path / "s.h5", 10, 8, ["a", "b", "c"])
    w.write(0, imgs[:4], attrs[:4], split[:4], np.arange(4))
    w.write(4, imgs[4:], attrs[4:], split[4:], np.arange(4, 10))
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
