"""CelebA's file layout: `img_align_celeba/`, `list_attr_celeba.txt`, `list_eval_partition.txt`.

The synthetic faces are written in this layout, so reading it is the default code path.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"


class LayoutError(ValueError):
    """A CelebA directory whose files are missing or inconsistent."""


def read_attributes(path: str | Path) -> pd.DataFrame:
    """The attribute table: one row per image file name, one 0/1 column per attribute."""
    path = Path(path)
    with path.open() as f:
        count = int(f.readline())
        names = f.readline().split()
    table = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, index_col=0, names=["image", *names])
    if len(table) != count:
        raise LayoutError(f"{path} announces {count} images but lists {len(table)}.")
    if not table.isin([-1, 1]).all().all():
        raise LayoutError(f"{path} holds values other than -1 and 1.")
    return (table == 1).astype("int8")


def read_partition(path: str | Path) -> pd.Series:
    """The official split of each image file name: 0 train, 1 val, 2 test."""
    part = pd.read_csv(path, sep=r"\s+", header=None, index_col=0, names=["image", "split"])["split"]
    if not part.isin([0, 1, 2]).all():
        raise LayoutError(f"{path} holds split values other than 0, 1 and 2.")
    return part


def read_layout(root: str | Path) -> tuple[list[Path], pd.DataFrame, pd.Series]:
    """Image paths, attributes and splits of a CelebA directory, checked against each other."""
    root = Path(root)
    for name in (IMAGE_DIR, ATTR_FILE, PARTITION_FILE):
        if not (root / name).exists():
            raise LayoutError(f"{root / name} is missing; a CelebA directory holds {IMAGE_DIR}/, {ATTR_FILE} "
                              f"and {PARTITION_FILE}.")
    attrs = read_attributes(root / ATTR_FILE)
    part = read_partition(root / PARTITION_FILE)
    if not attrs.index.equals(part.index):
        raise LayoutError(f"{ATTR_FILE} and {PARTITION_FILE} in {root} do not list the same images.")
    paths = [root / IMAGE_DIR / name for name in attrs.index]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise LayoutError(f"{len(missing)} listed images are missing from {root / IMAGE_DIR}, e.g. {missing[0]}.")
    return paths, attrs, part
