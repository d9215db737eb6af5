"""Masks of completion and inpainting: named and drawn masks in pixels, and the token masks they become."""

import numpy as np
import pytest
import torch
from PIL import Image

from vqgen import masks
from vqgen.config import ConfigError


def test_named_masks_regenerate_the_half_or_box_they_name():
    bottom = masks.pixels("bottom", 8)
    assert bottom[4:].all() and not bottom[:4].any()
    assert np.array_equal(masks.pixels("top", 8), ~bottom)
    left = masks.pixels("left", 8)
    assert left[:, :4].all() and not left[:, 4:].any()
    assert np.array_equal(masks.pixels("right", 8), ~left)
    centre = masks.pixels("centre", 8)
    assert centre[2:6, 2:6].all() and centre.sum() == 16
    box = masks.pixels("box:1,2,3,7", 8)  # x from 1 to 3, y from 2 to 7, the ends excluded
    assert box.sum() == 2 * 5 and box[2:7, 1:3].all()


def test_a_token_is_drawn_again_if_its_patch_holds_one_regenerated_pixel():
    hidden = np.zeros((8, 8), bool)
    hidden[5, 6] = True  # one pixel of the patch at row 1, column 1 of a 2x2 grid of 4-pixel patches
    known = masks.known_tokens(hidden, (2, 2))
    assert known.tolist() == [[[True, True], [True, False]]]
    assert masks.known_tokens(masks.pixels("bottom", 8)[None].repeat(3, 0), (4, 4)).shape == (3, 4, 4)


def test_a_mask_image_is_taken_at_the_models_size_or_cropped_and_resized_as_the_photo_is(tmp_path):
    drawn = np.zeros((30, 60), np.uint8)  # a wide photo's mask: its centre square is columns 15 to 45
    drawn[:, 15:30] = 255  # the left half of that square
    Image.fromarray(drawn).save(tmp_path / "wide.png")
    assert np.array_equal(masks.pixels(str(tmp_path / "wide.png"), 8, photo_size=(60, 30)), masks.pixels("left", 8))
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "model.png")
    assert masks.pixels(str(tmp_path / "model.png"), 8, photo_size=(60, 30)).all()
    with pytest.raises(ConfigError, match=r"is 60x30 pixels; use a mask of the photo's size \(40x40\) or the model"):
        masks.pixels(str(tmp_path / "wide.png"), 8, photo_size=(40, 40))
    inner = np.zeros((30, 60), np.uint8)  # a centre square of half the shorter side: columns 22 to 37
    inner[:, 22:30] = 255  # about its left half
    Image.fromarray(inner).save(tmp_path / "inner.png")
    assert np.array_equal(masks.pixels(str(tmp_path / "inner.png"), 8, (60, 30), crop=0.5), masks.pixels("left", 8))
    assert not np.array_equal(masks.pixels(str(tmp_path / "inner.png"), 8, (60, 30)), masks.pixels("left", 8))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("box:0,0,9,4", "does not lie inside the 8x8 image; use 0 <= X0 < X1 <= 8 and 0 <= Y0 < Y1 <= 8."),
        ("box:4,0,4,4", "does not lie inside the 8x8 image"),
        ("box:1,2,3", "is not box:X0,Y0,X1,Y1 with four whole numbers of pixels"),
        ("box:-1,0,2,2", "is not box:X0,Y0,X1,Y1"),
        ("bottom-half", "is neither a mask name nor a file"),
    ],
)
def test_a_bad_mask_is_one_sentence(spec, message):
    with pytest.raises(ConfigError) as e:
        masks.pixels(spec, 8)
    assert str(e.value).startswith(f"--mask {spec} ") and message in str(e.value)


def test_only_masks_giving_the_first_tokens_in_raster_order_are_prefixes():
    assert masks.is_prefix(masks.prefix_mask(2, (3, 3), 4))
    assert masks.is_prefix(masks.known_tokens(masks.pixels("bottom", 6), (3, 3)))
    assert not masks.is_prefix(masks.known_tokens(masks.pixels("left", 6), (3, 3)))
    assert not masks.is_prefix(torch.tensor([[[False, True], [True, True]]]))


def test_completions_start_from_the_first_half_quarter_of_the_rows_and_the_first_token():
    assert masks.from_rows((8, 8)) == [
        ("half", 32, "first 4 of 8 token rows"),
        ("quarter", 16, "first 2 of 8 token rows"),
        ("first_token", 1, "first token only"),
    ]
    assert [keep for _, keep, _ in masks.from_rows((2, 3))] == [3, 3, 1]  # at least one row
