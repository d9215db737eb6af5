"""Synthetic CelebA: procedurally drawn, stylised faces written in the exact file layout
of CelebA "aligned" (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt),
so the pipeline's default dataset needs no download and still goes through the real
CelebA reader. Faces are aligned like CelebA (eyes near y=112 of 218), smoothly shaded,
varied in shape, colour, pose and lighting, and labelled with the 40 CelebA attributes:
those the drawing shows are recorded truthfully, the others are 0 (-1 in the file).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vqgen.data.celeba import ATTRIBUTES
from vqgen.data.splits import split_sizes
from vqgen.files import building

W, H = 178, 218  # CelebA aligned image size
S = 2  # drawing is supersampled S times, then reduced (anti-aliasing)
CX, EYE_Y = 89.0, 112.0
_YY, _XX = np.mgrid[0:H, 0:W].astype(np.float32)

_SKIN = np.array(
    [(250, 226, 214), (240, 204, 180), (222, 176, 144), (190, 138, 102), (140, 94, 64), (92, 60, 42)], float
)  # pale ... dark
_HAIR = {
    "Black_Hair": ((16, 14, 14), (52, 40, 34)),
    "Brown_Hair": ((72, 46, 30), (140, 94, 58)),
    "Blond_Hair": ((184, 144, 84), (236, 208, 150)),
    "Gray_Hair": ((128, 126, 124), (214, 212, 208)),
}
_IRIS = [(78, 50, 30), (50, 32, 22), (70, 110, 150), (80, 110, 70), (110, 86, 50)]
_LIPSTICK = [(186, 28, 48), (166, 36, 72), (204, 70, 90), (140, 26, 40), (214, 96, 110)]


def _mix(a, b, t: float) -> tuple[int, ...]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _shade(c, k: float, alpha: int | None = None) -> tuple[int, ...]:
    rgb = tuple(int(min(255, max(0, round(x * k)))) for x in c[:3])
    return rgb if alpha is None else rgb + (alpha,)


def _coin(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def _hsv(h: float, s: float, v: float) -> tuple[int, ...]:
    return tuple(int(round(255 * x)) for x in colorsys.hsv_to_rgb(h % 1.0, s, v))


class _Pen:
    """Draws in image coordinates on the S-times larger canvas, with the head's roll applied.
    Shapes marked skin=True are also drawn into the skin mask used for shading."""

    def __init__(self, img: Image.Image, mask: Image.Image, centre, roll_deg: float):
        self.draw = ImageDraw.Draw(img, "RGBA")
        self.mask = ImageDraw.Draw(mask)
        self.cx, self.cy = centre
        self.cos, self.sin = np.cos(np.deg2rad(roll_deg)), np.sin(np.deg2rad(roll_deg))

    def _pts(self, x, y) -> list[float]:
        x, y = np.broadcast_arrays(np.asarray(x, float) - self.cx, np.asarray(y, float) - self.cy)
        p = np.empty((x.size, 2))
        p[:, 0] = self.cos * x - self.sin * y + self.cx
        p[:, 1] = self.sin * x + self.cos * y + self.cy
        return (p * S).ravel().tolist()

    def poly(self, x, y, fill, skin: bool = False) -> None:
        pts = self._pts(x, y)
        self.draw.polygon(pts, fill=fill)
        if skin:
            self.mask.polygon(pts, fill=255)

    def line(self, x, y, fill, width: float) -> None:
        self.draw.line(self._pts(x, y), fill=fill, width=max(1, round(width * S)), joint="curve")

    def ellipse(self, cx, cy, rx, ry, fill, n: int = 32, skin: bool = False) -> None:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        self.poly(cx + rx * np.cos(t), cy + ry * np.sin(t), fill, skin)


def _sample_attributes(rng: np.random.Generator) -> dict:
    """Attributes with CelebA-like frequencies and co-occurrences, plus a few private drawing choices."""
    p = rng.random
    a = dict.fromkeys(ATTRIBUTES, False)
    male = a["Male"] = p() < 0.42
    young = a["Young"] = p() < (0.70 if male else 0.82)
    a["Bald"] = male and p() < (0.03 if young else 0.14)
    hat = a["Wearing_Hat"] = p() < 0.05
    if a["Bald"]:
        hair = "none"
    else:
        hair = str(rng.choice(["short", "medium", "long"], p=[0.84, 0.1, 0.06] if male else [0.06, 0.24, 0.70]))
        if hat and hair == "short":
            hair = "hidden"  # nothing of it shows under the hat
    a["hair"] = hair
    if hair not in ("none", "hidden"):
        if p() < (0.02 if young else 0.35):
            a["Gray_Hair"] = True
        else:
            names = ["Black_Hair", "Brown_Hair", "Blond_Hair"]
            a[names[rng.choice(3, p=[0.45, 0.47, 0.08] if male else [0.32, 0.40, 0.28])]] = True
        if hair != "short":
            wavy = a["Wavy_Hair"] = p() < 0.55
            a["Straight_Hair"] = not wavy
    a["Bangs"] = hair not in ("none", "hidden") and not hat and p() < (0.07 if male else 0.24)
    a["Receding_Hairline"] = hair == "short" and not hat and not a["Bangs"] and p() < (0.10 if young else 0.35)

    smiling = a["Smiling"] = p() < 0.48
    a["Mouth_Slightly_Open"] = p() < (0.75 if smiling else 0.2)
    a["High_Cheekbones"] = p() < (0.75 if smiling else 0.12)
    a["Eyeglasses"] = p() < (0.04 if young else 0.14) + 0.02 * male
    a["sunglasses"] = a["Eyeglasses"] and p() < 0.25

    beard = "none"
    if male:
        r = p()
        beard = (
            "none"
            if r < 0.55
            else "stubble"
            if r < 0.75
            else "goatee"
            if r < 0.85
            else "full"
            if r < 0.92
            else "mustache"
        )
    a["beard"] = beard
    a["5_o_Clock_Shadow"] = beard == "stubble"
    a["Goatee"] = beard == "goatee"
    a["Mustache"] = beard in ("mustache", "full") or (beard == "goatee" and p() < 0.6)
    a["No_Beard"] = not (a["Mustache"] or beard in ("goatee", "full"))
    a["Sideburns"] = beard == "full" or (male and hair == "short" and not hat and p() < 0.3)

    female = not male
    a["Wearing_Lipstick"] = female and p() < 0.8
    a["Heavy_Makeup"] = a["Wearing_Lipstick"] and p() < 0.75
    a["Wearing_Earrings"] = female and p() < 0.35
    a["Wearing_Necklace"] = female and p() < 0.22
    a["Wearing_Necktie"] = male and p() < 0.17

    a["Pale_Skin"] = p() < (0.03 if male else 0.05)
    a["Rosy_Cheeks"] = p() < (0.02 if male else 0.11)
    a["Chubby"] = p() < (0.03 if young else 0.16)
    a["Double_Chin"] = (a["Chubby"] and p() < 0.6) or (not young and p() < 0.04)
    a["Oval_Face"] = not a["Chubby"] and p() < 0.3
    a["Narrow_Eyes"] = p() < 0.11
    a["Big_Nose"] = p() < (0.32 if male else 0.16)
    a["Pointy_Nose"] = not a["Big_Nose"] and p() < 0.32
    a["Big_Lips"] = p() < (0.18 if male else 0.30)
    a["Arched_Eyebrows"] = p() < (0.08 if male else 0.42)
    a["Bushy_Eyebrows"] = not a["Arched_Eyebrows"] and p() < (0.26 if male else 0.06)
    a["Bags_Under_Eyes"] = p() < (0.12 if young else 0.45)
    a["Blurry"] = p() < 0.05
    # Not drawn as such: a fixed function of what is drawn.
    a["Attractive"] = young and not any(
        a[k]
        for k in ("Chubby", "Double_Chin", "Bags_Under_Eyes", "Big_Nose", "Bald", "Blurry", "Gray_Hair", "Narrow_Eyes")
    )
    return a


def _render(a: dict, rng: np.random.Generator) -> Image.Image:
    u = rng.uniform
    male, smiling = a["Male"], a["Smiling"]

    # Colours.
    tone = u(0.0, 0.07) if a["Pale_Skin"] else 0.12 + 0.88 * rng.beta(1.4, 3.2)
    skin = np.array([np.interp(tone * (len(_SKIN) - 1), np.arange(len(_SKIN)), _SKIN[:, k]) for k in range(3)])
    skin = _shade(skin + rng.normal(0, 4, 3) + (0, 0, -4 * male), u(0.97, 1.03))
    dark_skin = _shade(skin, 0.82)
    hair_name = next((k for k in _HAIR if a[k]), None)
    if hair_name is not None:
        hair_c = _mix(*_HAIR[hair_name], u(0, 1))
    else:
        hair_c = _mix(*_HAIR["Brown_Hair" if _coin(rng, 0.5) else "Black_Hair"], u(0, 1))
    brow_c = _shade(hair_c, 0.55 if hair_name == "Blond_Hair" else 0.8)
    lip_c = _mix(skin, (196, 84, 88), u(0.35, 0.55))
    if a["Wearing_Lipstick"]:
        lip_c = _mix(_LIPSTICK[rng.integers(len(_LIPSTICK))], lip_c, u(0.0, 0.3))
    iris_c = _mix(_IRIS[rng.integers(len(_IRIS))], (0, 0, 0), u(0, 0.3))
    cloth_c = _hsv(u(0, 1), u(0.1, 0.7), u(0.15, 0.85))
    if a["Wearing_Necktie"]:
        cloth_c = _hsv(u(0, 1), u(0, 0.25), u(0.1, 0.35))

    # Pose and geometry, in image coordinates.
    roll = float(np.clip(rng.normal(0, 3), -7, 7))
    yaw = u(-1, 1)
    light = u(-1, 1)
    cx = CX + u(-1.5, 1.5) + yaw
    rx = u(38.5, 43) + 5 * a["Chubby"] + 1.5 * male - 3 * a["Oval_Face"]
    top = EYE_Y - u(44, 50) - 2 * a["Oval_Face"]
    chin = EYE_Y + u(55, 60) + 4 * a["Oval_Face"] + 2 * a["Double_Chin"]
    fy, ry = (top + chin) / 2, (chin - top) / 2
    jaw = u(0.18, 0.32) - 0.08 * male - 0.1 * a["Chubby"] + 0.06 * a["Oval_Face"]
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    face_x = cx + rx * np.cos(t) * (1 - jaw * np.clip(np.sin(t), 0, 1) ** 2)
    face_y = fy + ry * np.sin(t)

    img = _background(rng)
    mask = Image.new("L", img.size, 0)
    pen = _Pen(img, mask, (cx, EYE_Y + 10), roll)

    # Hair behind the head.
    hair = a["hair"]
    hrx = rx + (u(2, 5) if hair == "short" else u(6, 12))
    hair_top = top - (u(3, 10) if hair == "short" else u(8, 16))
    hy = EYE_Y - 4
    arc = np.linspace(np.pi, 2 * np.pi, 25)
    arc_x, arc_y = cx + hrx * np.cos(arc), hy + (hy - hair_top) * np.sin(arc)
    wavy = a["Wavy_Hair"]
    if hair not in ("none", "hidden"):
        if hair == "short":
            side_x, end_y = rx + 2, EYE_Y + 4
        else:
            side_x = hrx + (u(3, 10) if hair == "long" else u(0, 3)) + 3 * wavy
            end_y = EYE_Y + (u(65, 105) if hair == "long" else u(28, 48))
        ys = np.linspace(hy, end_y, 12)
        wave = 3.0 * np.sin(ys / 5.0 + u(0, 6)) * wavy * (ys > hy + 5)
        sx = np.interp(ys, [hy, end_y], [hrx, side_x]) + wave
        back_x = np.concatenate([arc_x, cx + sx, cx - sx[::-1]])
        back_y = np.concatenate([arc_y, ys, ys[::-1]])
        pen.poly(back_x, back_y, _shade(hair_c, 0.72))
        if wavy:
            for k in (-1, 1):
                for off in (4, 9):
                    pen.line(cx + k * (sx - off), ys, _shade(hair_c, 0.55, 90), 1.2)

    # Shoulders, neck and what is worn there.
    sy = chin + u(14, 22)
    pen.poly(
        cx + np.array([-110, -110, -75, -42, 42, 75, 110, 110]), sy + np.array([80, 22, 6, 0, 0, 6, 22, 80]), cloth_c
    )
    nw = rx * (0.5 + 0.06 * male) + 2 * a["Chubby"]
    vy = sy + u(6, 24)
    if a["Wearing_Necktie"]:
        pen.poly(cx + np.array([-nw - 6, nw + 6, 0]), np.array([sy - 2, sy - 2, sy + 34]), (236, 236, 232))
    pen.poly(
        cx + np.array([-nw, nw, nw * 1.05, 0, -nw * 1.05]), np.array([fy, fy, sy + 1, vy, sy + 1]), dark_skin, skin=True
    )
    pen.ellipse(cx, chin, rx * 0.5, 9, (0, 0, 0, 32))
    if a["Wearing_Necktie"]:
        tie_c = _hsv(u(0, 1), u(0.4, 0.9), u(0.3, 0.8))
        pen.poly(cx + np.array([-3.5, 3.5, 6, 0, -6]), sy + np.array([2, 2, 40, 46, 40]), tie_c)
        pen.poly(cx + np.array([-4.5, 4.5, 3, -3]), sy + np.array([-3, -3, 3, 3]), _shade(tie_c, 0.8))
    if a["Wearing_Necklace"]:
        arc2 = np.linspace(0.1 * np.pi, 0.9 * np.pi, 15)
        pen.line(
            cx + nw * 1.05 * np.cos(arc2),
            sy - 6 + u(6, 14) * np.sin(arc2),
            (214, 178, 70) if _coin(rng, 0.6) else (206, 206, 212),
            1.4,
        )

    # Ears, face, skull.
    ears_visible = hair in ("none", "hidden", "short")
    if ears_visible:
        for k in (-1, 1):
            ear_x = cx + k * (rx - 1) - yaw * 1.5
            pen.ellipse(ear_x, EYE_Y + 12, 5.5, 10, _shade(skin, 0.92), skin=True)
            pen.ellipse(ear_x + k * 1.2, EYE_Y + 12, 2.5, 6, (0, 0, 0, 40))
    pen.poly(face_x, face_y, skin, skin=True)
    if hair in ("none", "hidden"):
        pen.poly(cx + (rx + 1) * np.cos(arc), hy + (hy - top + 6) * np.sin(arc), skin, skin=True)
        pen.ellipse(cx - 10 * light, top + 6, 14, 7, (255, 255, 255, 40))
    if a["Double_Chin"]:
        dc = np.linspace(0.2 * np.pi, 0.8 * np.pi, 11)
        pen.line(cx + rx * 0.45 * np.cos(dc), chin - 3 + 4 * np.sin(dc), _shade(skin, 0.7, 110), 1.2)

    # Features, shifted by yaw by their depth.
    ey = EYE_Y + u(-1.5, 1.5)
    eye_d = u(18, 20)
    nx, ny = cx + 4 * yaw, EYE_Y + u(22, 26) + 2 * a["Pointy_Nose"]
    mx, my = cx + 3 * yaw, EYE_Y + u(36, 40)
    mw = u(10, 12) + 2.5 * smiling + 1 * a["Big_Lips"]

    # Cheeks.
    for k in (-1, 1):
        chx = cx + k * (eye_d + 2) + 2 * yaw
        if a["High_Cheekbones"]:
            pen.ellipse(chx + k, EYE_Y + 15, 9, 5, (255, 255, 255, 26))
        if a["Rosy_Cheeks"]:
            pen.ellipse(chx, EYE_Y + 19, 9, 6.5, (230, 60, 70, 70))
        elif a["Heavy_Makeup"]:
            pen.ellipse(chx, EYE_Y + 18, 9, 6, (220, 90, 100, 35))

    # Facial hair under everything of the mouth.
    beard = a["beard"]
    if beard in ("stubble", "full"):
        low = face_y > EYE_Y + 12
        order = np.argsort(np.where(low, t, 9))[: low.sum()]  # lower outline, right to left
        k = 1.05 if beard == "full" else 1.0
        bx = np.concatenate([cx + (face_x[order] - cx) * k, [mx - mw - 4, mx + mw + 4]])
        by = np.concatenate([fy + (face_y[order] - fy) * k + 3 * (beard == "full"), [my - 5, my - 5]])
        pen.poly(bx, by, _shade(hair_c, 0.8, 235) if beard == "full" else (40, 34, 34, 60))
    if beard == "goatee":
        pen.ellipse(mx, (my + chin) / 2 + 2, mw * 0.6, (chin - my) / 2 + 1, _shade(hair_c, 0.8, 235))
    if not a["Young"]:
        for k in (-1, 1):
            pen.line(
                np.array([nx + k * 8, nx + k * 11, mx + k * (mw + 2)]),
                np.array([ny - 1, ny + 7, my + 2]),
                (0, 0, 0, 32),
                1.2,
            )

    _nose(pen, rng, a, skin, nx, ny, light)
    _mouth(pen, rng, a, skin, lip_c, mx, my, mw, nx, ny)
    if a["Mustache"]:
        uu = np.linspace(-1, 1, 13)
        bottom = my - 2.5 + 1.5 * uu**2 - (4.5 if smiling else 0) * uu**2
        thick = u(3.5, 5) * (1 - 0.45 * uu**2)
        pen.poly(
            np.concatenate([mx + (mw + 3) * uu, mx + (mw + 3) * uu[::-1]]),
            np.concatenate([bottom, (bottom - thick)[::-1]]),
            _shade(hair_c, 0.75),
        )

    # Eyes and brows.
    lid_w = 1.8 if a["Heavy_Makeup"] else 1.1
    hh = u(3.2, 4.0) * (0.6 if a["Narrow_Eyes"] else 1.0) * (0.85 if smiling else 1.0)
    hw = u(7.5, 8.8)
    gaze = u(-1, 1) + yaw
    brow_y = ey - u(9.5, 12)
    arch = u(3, 4.5) if a["Arched_Eyebrows"] else u(0.5, 2)
    brow_t = u(3.6, 4.4) if a["Bushy_Eyebrows"] else (u(1.6, 2.3) if not male else u(2.2, 3.0))
    shadow_c = (_hsv(u(0, 1), u(0.3, 0.6), u(0.3, 0.6)) + (70,)) if a["Heavy_Makeup"] else None
    for k in (-1, 1):
        ex = cx + k * eye_d + 2.5 * yaw
        ehw = hw * (1 - 0.08 * k * yaw)
        _eye(pen, a, skin, ex, ey, ehw, hh, k, iris_c, gaze, lid_w, shadow_c)
        v = np.linspace(0, 1, 12)
        x = ex + k * (-9 + 20 * v) + yaw
        y = brow_y - arch * np.sin(np.pi * v**0.8) + 1.5 * v
        th = brow_t * (1 - 0.5 * v)
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([y - th / 2, (y + th / 2)[::-1]]), brow_c)

    # Hair over the forehead.
    if hair not in ("none", "hidden"):
        temple_y = EYE_Y - u(3, 9)
        uu = np.linspace(1, -1, 21)
        if a["Bangs"]:
            mid, pw = brow_y - u(4, 8), 6.0
        elif a["Receding_Hairline"]:
            mid, pw = top + u(1, 5), 1.3
            temple_y -= u(12, 18)
        else:
            mid, pw = top + u(9, 16), 2.5
        hl_y = mid + (temple_y - mid) * np.abs(uu) ** pw + u(-4, 4) * uu * (not a["Bangs"])
        hl_x = cx + yaw + uu * (rx + 1)
        pen.poly(np.concatenate([arc_x, hl_x]), np.concatenate([arc_y, hl_y]), hair_c)
        sheen = np.linspace(1.2 * np.pi, 1.55 * np.pi, 9) + 0.15 * light
        pen.line(
            cx + 0.72 * hrx * np.cos(sheen),
            hy + 0.85 * (hy - hair_top) * np.sin(sheen),
            (255, 255, 255, 30 if hair_name == "Black_Hair" else 45),
            4,
        )
        if a["Sideburns"]:
            for k in (-1, 1):
                sbx = cx + k * (rx - 3.5) - yaw
                pen.poly(
                    np.array([sbx - 3, sbx + 3, sbx + 2.5, sbx - 2.5]),
                    np.array([temple_y - 4, temple_y - 4, EYE_Y + 17, EYE_Y + 17]),
                    _shade(hair_c, 0.85),
                )

    if a["Wearing_Earrings"]:
        ec = (220, 186, 80) if _coin(rng, 0.6) else (214, 214, 222)
        for k in (-1, 1):
            erx = cx + k * (rx + 0.5) - yaw * 1.5
            pen.ellipse(erx, EYE_Y + 24, 2.0, 2.0, ec, n=12)
            if _coin(rng, 0.4):
                pen.ellipse(erx, EYE_Y + 30, 1.6, 3.0, ec, n=12)

    if a["Eyeglasses"]:
        _glasses(pen, rng, a["sunglasses"], cx + 2.5 * yaw, ey, eye_d, cx - yaw, rx)
    if a["Wearing_Hat"]:
        _hat(pen, rng, cx, yaw, top, min(hair_top, top - 8), max(hrx, rx + 4) + 2)

    # Back to image size, then smooth shading and lighting.
    img = img.reduce(S)
    m = np.asarray(mask.reduce(S), np.float32)[..., None] / 255
    r2 = np.minimum(((_XX - cx) / rx) ** 2 + ((_YY - fy) / ry) ** 2, 1.1)
    g = np.clip(light * (_XX - cx) / rx, -1.3, 1.3)[..., None]
    shade = (1 - 0.2 * r2**2)[..., None]
    factor = m * shade * (1 + 0.16 * g) + (1 - m) * (1 + 0.05 * g)
    arr = np.asarray(img, np.float32) * factor
    img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if a["Blurry"]:
        img = img.filter(ImageFilter.GaussianBlur(u(1.2, 2.0)))
    return img


def _background(rng: np.random.Generator) -> Image.Image:
    """A smooth random gradient: a 3x3 grid of related colours, bilinearly enlarged."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.95)
    base = np.array(_hsv(h, s, v), float)
    grid = base + rng.normal(0, 28, (3, 3, 1)) + rng.normal(0, 10, (3, 3, 3))
    grid = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8))
    return grid.resize((W, H), Image.BILINEAR).resize((W * S, H * S), Image.NEAREST)  # smooth, and quick


def _eye(pen, a, skin, ex, ey, hw, hh, side, iris_c, gaze, lid_w, shadow_c) -> None:
    uu = np.linspace(-1, 1, 17)
    x = ex + hw * uu
    base = ey - 0.8 * side * uu  # outer corners slightly higher
    top = base - hh * (1 - uu**2) ** 0.7
    bot = base + 0.7 * hh * (1 - uu**2) ** 0.9
    if shadow_c is not None:
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([top, (top - 4.5 * (1 - uu**2) ** 0.5)[::-1]]), shadow_c)
    if a["Bags_Under_Eyes"]:
        pen.poly(
            np.concatenate([x, x[::-1]]),
            np.concatenate([bot + 1, (bot + 1 + 3.5 * (1 - uu**2))[::-1]]),
            (60, 30, 40, 45),
        )
    pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([top, bot[::-1]]), _mix((240, 236, 232), skin, 0.15))
    t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    for r, c in ((3.4, iris_c), (1.6, (12, 10, 12))):  # iris and pupil, clipped to the eye
        px = np.clip(ex + gaze + r * np.cos(t), x[0], x[-1])
        py = np.clip(ey + 0.3 + r * np.sin(t), np.interp(px, x, top), np.interp(px, x, bot))
        pen.poly(px, py, c)
    pen.line(x, top, (30, 20, 20), lid_w)
    if a["Heavy_Makeup"]:  # eyeliner wing at the outer corner
        end = -1 if side > 0 else 0
        pen.line(np.array([x[end], x[end] + 3 * side]), np.array([base[end], base[end] - 2]), (30, 20, 20), 1.2)
    pen.line(x[3:-3], top[3:-3] - 2.6, _shade(skin, 0.75, 110), 0.8)


def _glasses(pen, rng, sunglasses, gx, ey, eye_d, ear_cx, rx) -> None:
    u = rng.uniform
    frame = _hsv(u(0, 1), u(0, 0.5), u(0.05, 0.3))
    lens = (20, 20, 26, 215) if sunglasses else (200, 220, 235, 35)
    gw, gh = u(10.5, 12.5), u(7.5, 9.5)
    t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    for k in (-1, 1):
        rim_x = gx + k * eye_d + gw * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.6
        rim_y = ey + 1 + gh * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.8
        pen.poly(rim_x, rim_y, lens)
        pen.line(np.append(rim_x, rim_x[0]), np.append(rim_y, rim_y[0]), frame, u(1.3, 2.2))
        pen.line(np.array([gx + k * (eye_d + gw), ear_cx + k * (rx + 1)]), np.array([ey - 2, ey]), frame, 1.4)
    pen.line(np.array([gx - eye_d + gw, gx, gx + eye_d - gw]), np.array([ey - 1, ey - 2.5, ey - 1]), frame, 1.5)


def _hat(pen, rng, cx, yaw, top, crown, half) -> None:
    """A beanie or a cap over the top of the head, its brim above the brows."""
    u = rng.uniform
    colour = _hsv(u(0, 1), u(0.2, 0.8), u(0.2, 0.85))
    brim, hat_top = top + u(14, 24), crown - u(4, 10)
    arc = np.linspace(np.pi, 2 * np.pi, 25)
    pen.poly(
        np.append(cx + half * np.cos(arc), cx + half),
        np.append(brim + (brim - hat_top) * np.sin(arc), brim + 2),
        colour,
    )
    if _coin(rng, 0.5):  # beanie: a folded band
        pen.poly(
            cx + np.array([-half - 1, half + 1, half + 1, -half - 1]),
            brim + np.array([-9, -9, 2, 2]),
            _shade(colour, 0.8),
        )
    else:  # cap: a visor
        pen.ellipse(cx + 3 * yaw, brim + 1, half * 0.85, 5.5, _shade(colour, 0.65))
    pen.line(
        cx + half * 0.55 * np.cos(arc[4:12]), brim + (brim - hat_top) * 0.8 * np.sin(arc[4:12]), (255, 255, 255, 40), 3
    )


def _nose(pen, rng, a, skin, nx, ny, light) -> None:
    nw = rng.uniform(5.5, 7) + 2.2 * a["Big_Nose"] - 1.2 * a["Pointy_Nose"]
    k = -1 if light > 0 else 1  # the shadowed side
    pen.line(
        np.array([nx + k * 2.5, nx + k * (nw * 0.7), nx + k * nw * 0.8]),
        np.array([EYE_Y + 2, ny - 8, ny - 1]),
        (0, 0, 0, int(20 + 25 * abs(light))),
        2.4,
    )
    pen.ellipse(nx, ny - 2.5, 2.6, 2.2, (255, 255, 255, 40), n=16)
    wing = np.linspace(-1, 1, 11)
    pen.line(nx + nw * wing, ny - 1.5 + 3.5 * (1 - wing**2) - 1.5 * wing**4, _shade(skin, 0.62, 150), 1.3)
    for s in (-1, 1):
        pen.ellipse(nx + s * nw * 0.45, ny + 0.8, 1.6 + 0.5 * a["Big_Nose"], 1.0, _shade(skin, 0.4, 220), n=12)


def _mouth(pen, rng, a, skin, lip_c, mx, my, mw, nx, ny) -> None:
    u = rng.uniform
    smiling = a["Smiling"]
    curve = u(3, 5) if smiling else u(-1, 0.8)
    h = (u(4, 7) if smiling else u(2, 3.5)) if a["Mouth_Slightly_Open"] else 0.0
    big = 1 + 0.45 * a["Big_Lips"]
    ut, lt = u(2.2, 2.9) * big, u(3.0, 3.9) * big
    uu = np.linspace(-1, 1, 21)
    x = mx + mw * uu
    line = my - curve * uu**2
    gap = h * (1 - uu**2) ** 0.8
    up_in, lo_in = line - 0.35 * gap, line + 0.65 * gap
    up_out = up_in - ut * (1 - uu**2) ** 0.5 * (1 - 0.3 * np.exp(-((uu / 0.18) ** 2)))
    lo_out = lo_in + lt * (1 - uu**2) ** 0.6
    if smiling:
        for s in (-1, 1):
            pen.line(
                np.array([nx + s * 9, nx + s * 12.5, mx + s * (mw + 2.5)]),
                np.array([ny, ny + 6, my - curve + 2]),
                (0, 0, 0, 38),
                1.4,
            )
    if h > 0:
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([up_in, lo_in[::-1]]), (70, 22, 28))
        teeth_bot = np.minimum(up_in + (0.7 if smiling else 0.45) * h, lo_in)
        xt = mx + 0.85 * mw * uu
        pen.poly(
            np.concatenate([xt, xt[::-1]]),
            np.concatenate([np.interp(xt, x, up_in), np.interp(xt, x, teeth_bot)[::-1]]),
            (238, 234, 224),
        )
    pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([up_out, up_in[::-1]]), _shade(lip_c, 0.88))
    pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([lo_in, lo_out[::-1]]), lip_c)
    pen.line(x, line if h == 0 else up_in, _shade(lip_c, 0.45), 0.9)
    pen.ellipse(mx, my + 0.65 * h + lt * 0.45, mw * 0.35, lt * 0.22, (255, 255, 255, 45), n=16)


def draw_face(seed: int) -> tuple[Image.Image, dict[str, int]]:
    """One 178x218 RGB face, deterministic in seed, and its 40 attributes as 0/1."""
    rng = np.random.default_rng(seed)
    a = _sample_attributes(rng)
    img = _render(a, rng)
    return img, {name: int(a[name]) for name in ATTRIBUTES}


def _image_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _draw_chunk(job: tuple[Path, int, list[int]]) -> list[dict[str, int]]:
    folder, seed, indices = job
    rows = []
    for i in indices:
        img, attrs = draw_face(_image_seed(seed, i))
        img.save(folder / f"{i:06d}.jpg", quality=95)
        rows.append(attrs)
    return rows


def write_synthetic(
    root: Path, count: int, seed: int, workers: int = 1, progress: Callable[[int], None] | None = None
) -> None:
    """Write `count` faces into root in CelebA's layout."""
    with building(root) as tmp:
        _write(tmp, count, seed, workers, progress)


def _write(tmp: Path, count: int, seed: int, workers: int, progress: Callable[[int], None] | None) -> None:
    folder = tmp / "img_align_celeba"
    folder.mkdir()

    size = max(1, min(200, count // (4 * max(1, workers))))
    jobs = [(folder, seed, list(range(i, min(i + size, count + 1)))) for i in range(1, count + 1, size)]
    rows: list[dict[str, int]] = []

    def collect(results):
        for job, chunk in zip(jobs, results):
            rows.extend(chunk)
            if progress is not None:
                progress(len(job[2]))

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            collect(pool.map(_draw_chunk, jobs))
    else:
        collect(map(_draw_chunk, jobs))

    names = [f"{i:06d}.jpg" for i in range(1, count + 1)]
    lines = [str(count), " ".join(ATTRIBUTES)]
    lines += [f"{n} " + " ".join(f"{1 if r[k] else -1:2d}" for k in ATTRIBUTES) for n, r in zip(names, rows)]
    (tmp / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")

    split = [s for s, n in enumerate(split_sizes(count)) for _ in range(n)]  # ordered, as CelebA's file is
    (tmp / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(names, split)))
