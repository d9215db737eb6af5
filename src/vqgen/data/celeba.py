"""CelebA's file layout: `img_align_celeba/`, `list_attr_celeba.txt`, `list_eval_partition.txt`.

The synthetic faces are written in this layout, so reading it is the default code path. The real
dataset also ships `identity_CelebA.txt` (read when present) and bounding-box and landmark files
(not read). Every parser checks each line and names the file and line of the first bad one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from vqgen.data import LayoutError
from vqgen.data.splits import OFFICIAL_SPLIT, SPLIT_NAMES

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
BBOX_FILE = "list_bbox_celeba.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"

ATTRIBUTES: tuple[str, ...] = (  # the official 40, in the official order
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
IMAGE_COUNT = 202_599


def _table_lines(path: Path, first: int, columns: int, what: str) -> list[str]:
    """The lines of path from line number `first` on (1-based), each checked to hold `columns` fields."""
    lines = path.read_text().splitlines()[first - 1 :]
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=first):
        found = len(line.split())
        if found != columns:
            raise LayoutError(f"{path}, line {number}: expected {columns} fields ({what}), found {found}.")
    return lines


def _parse(path: Path, lines: list[str], names: list[str], first: int) -> pd.DataFrame:
    """Whitespace-separated rows as a table indexed by image name; non-numbers become NaN."""
    table = pd.read_csv(
        io.StringIO("\n".join(lines)), sep=r"\s+", header=None, names=["image", *names], dtype={"image": str}
    )
    return _by_image(path, table, "image", first)


def _by_image(path: Path, table: pd.DataFrame, column: str, first: int) -> pd.DataFrame:
    """The table's values as numbers (NaN where not), indexed by its `column` of image names, each listed
    once; `first` is the file's line number of the table's first row."""
    dup = table[column].duplicated()
    if dup.any():
        row = int(dup.to_numpy().argmax())
        raise LayoutError(f"{path}, line {first + row}: {table[column].iloc[row]} is listed twice.")
    values = table.drop(columns=column).apply(pd.to_numeric, errors="coerce")
    values.index = pd.Index(table[column], name="image")
    return values


def _check_values(path: Path, table: pd.DataFrame, allowed: list[int], first: int, what: str, raw=None) -> None:
    bad = ~table.isin(allowed).to_numpy()
    if bad.any():
        row, col = divmod(int(bad.argmax()), bad.shape[1])
        raw = (raw or _raw_value)(path, first + row, col)
        raise LayoutError(f"{path}, line {first + row}: {what}, found {raw!r}.")


def _raw_value(path: Path, number: int, col: int) -> str:
    return path.read_text().splitlines()[number - 1].split()[col + 1]


def read_attributes(path: str | Path) -> pd.DataFrame:
    """The attribute table: one row per image file name, one 0/1 int8 column per attribute of the header."""
    path = Path(path)
    with path.open() as f:
        head = f.readline().strip()
        names = f.readline().split()
    if not head.isdigit():
        raise LayoutError(f"{path}, line 1: expected the number of images, found {head!r}.")
    if not names or len(set(names)) != len(names):
        raise LayoutError(f"{path}, line 2: expected distinct attribute names, found {' '.join(names)!r}.")
    count = int(head)
    lines = _table_lines(path, 3, len(names) + 1, f"an image name and {len(names)} values of -1 or 1")
    if len(lines) != count:
        raise LayoutError(f"{path} announces {count} images but lists {len(lines)}.")
    table = _parse(path, lines, names, 3)
    _check_values(path, table, [-1, 1], 3, "attribute values must be -1 or 1")
    return (table == 1).astype("int8")


def read_partition(path: str | Path) -> pd.Series:
    """The official split of each image file name: 0 train, 1 val, 2 test.

    A file listing all 202,599 CelebA images must hold the official 162,770 / 19,867 / 19,962 split;
    smaller sets (the synthetic faces) may split as they like.
    """
    path = Path(path)
    lines = _table_lines(path, 1, 2, "an image name and a split 0, 1 or 2")
    table = _parse(path, lines, ["split"], 1)
    _check_values(path, table, [0, 1, 2], 1, "the split must be 0, 1 or 2")
    part = table["split"].astype("int64")
    if len(part) == IMAGE_COUNT:
        counts = part.value_counts().reindex(list(OFFICIAL_SPLIT), fill_value=0).to_dict()
        if counts != OFFICIAL_SPLIT:
            found = " / ".join(f"{SPLIT_NAMES[k]} {v}" for k, v in counts.items())
            official = " / ".join(f"{SPLIT_NAMES[k]} {v}" for k, v in OFFICIAL_SPLIT.items())
            raise LayoutError(
                f"{path} lists all {IMAGE_COUNT} images but splits them {found}, not the official {official}."
            )
    return part


def read_identities(path: str | Path) -> pd.Series:
    """The person shown in each image file name, as a positive integer id (`identity_CelebA.txt`)."""
    path = Path(path)
    lines = _table_lines(path, 1, 2, "an image name and an identity number")
    table = _parse(path, lines, ["identity"], 1)
    ids = table["identity"]
    bad = ~(ids.notna() & (ids >= 1) & (ids == ids.round())).to_numpy()
    if bad.any():
        row = int(bad.argmax())
        raise LayoutError(
            f"{path}, line {row + 1}: the identity must be a positive integer, found {_raw_value(path, row + 1, 0)!r}."
        )
    return ids.astype("int64")


def _same_images(root: Path, reference: pd.Index, other: pd.Index, name: str) -> None:
    if reference.equals(other):
        return
    extra, missing = other.difference(reference), reference.difference(other)
    example = (
        f"{extra[0]} is only in {name}"
        if len(extra)
        else f"{missing[0]} is missing from {name}"
        if len(missing)
        else "they list them in another order"
    )
    raise LayoutError(f"{ATTR_FILE} and {name} in {root} do not list the same images: {example}.")


def read_layout(root: str | Path, missing_ok: bool = False) -> tuple[list[Path], pd.DataFrame, pd.Series]:
    """Image paths, attributes and splits of a CelebA directory, checked against each other.

    The identity file is optional; when present it must list the same images as the attributes.
    Listed images missing from the image folder are refused unless `missing_ok` (then they are
    left for the caller to skip and count), and refused even then when none is there.
    """
    root = Path(root)
    for name in (IMAGE_DIR, ATTR_FILE, PARTITION_FILE):
        if not (root / name).exists():
            raise LayoutError(
                f"{root / name} is missing; a CelebA directory holds {IMAGE_DIR}/, {ATTR_FILE} and {PARTITION_FILE}."
            )
    attrs = read_attributes(root / ATTR_FILE)
    part = read_partition(root / PARTITION_FILE)
    _same_images(root, attrs.index, part.index, PARTITION_FILE)
    if (root / IDENTITY_FILE).exists():
        _same_images(root, attrs.index, read_identities(root / IDENTITY_FILE).index, IDENTITY_FILE)
    paths = [root / IMAGE_DIR / name for name in attrs.index]
    missing = [p.name for p in paths if not p.exists()]
    if missing and (not missing_ok or len(missing) == len(paths)):
        raise LayoutError(
            f"{len(missing)} of the {len(paths)} listed images are missing from {root / IMAGE_DIR}, e.g. {missing[0]}."
        )
    return paths, attrs, part


def write_attributes(table: pd.DataFrame, path: str | Path) -> None:
    """An attribute table (0/1 or -1/1 columns, indexed by image name) as CelebA's list_attr_celeba.txt."""
    signs = table.to_numpy() * 2 - 1 if table.isin([0, 1]).all().all() else table.to_numpy()
    lines = [str(len(table)), " ".join(table.columns)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(table.index, signs)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_partition(part: pd.Series, path: str | Path) -> None:
    Path(path).write_text("".join(f"{name} {split}\n" for name, split in part.items()))


def read_kaggle_attributes(path: str | Path) -> pd.DataFrame:
    """`list_attr_celeba.csv` of the Kaggle copy (image_id, then the 40 attributes as -1/1), checked
    as strictly as the official file; returned as `read_attributes` returns it."""
    path = Path(path)
    table = _read_csv(path, ["image_id", *ATTRIBUTES], "image_id and the 40 CelebA attributes")
    _check_values(path, table, [-1, 1], 2, "attribute values must be -1 or 1", raw=_raw_csv)
    return (table == 1).astype("int8")


def read_kaggle_partition(path: str | Path) -> pd.Series:
    """`list_eval_partition.csv` of the Kaggle copy (image_id, partition), as `read_partition` returns it."""
    path = Path(path)
    table = _read_csv(path, ["image_id", "partition"], "image_id,partition")
    _check_values(path, table, [0, 1, 2], 2, "the split must be 0, 1 or 2", raw=_raw_csv)
    return table["partition"].astype("int64").rename("split")


def _read_csv(path: Path, header: list[str], what: str) -> pd.DataFrame:
    """A comma-separated table with exactly `header`, one row per distinct image, indexed by image name."""
    lines = path.read_text(errors="replace").splitlines()
    if not lines or lines[0].strip().split(",") != header:
        found = lines[0][:80] if lines else ""
        raise LayoutError(f"{path}, line 1: expected the header {what}, found {found!r}.")
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() and len(line.split(",")) != len(header):
            raise LayoutError(
                f"{path}, line {number}: expected {len(header)} comma-separated fields, found {len(line.split(','))}."
            )
    return _by_image(path, pd.read_csv(path, dtype={"image_id": str}, skip_blank_lines=True), "image_id", 2)


def _raw_csv(path: Path, number: int, col: int) -> str:
    return path.read_text().splitlines()[number - 1].split(",")[col + 1]
