"""Draw the sample project's reference images (characters and poses) with Pillow.

Run from anywhere: ``python examples/make_images.py``. The drawing is deterministic (no
randomness, no timestamps or text chunks in the PNGs), so running it again reproduces the
committed images. Backgrounds, styles and objects get no image on purpose: they have
descriptions, so keyframed generates them in Phase 2.5.

The figures are simple shape people on a plain background, 256x384: a character sheet (the
identity reference AnyPose keeps) and pose silhouettes (the pose AnyPose copies).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = (256, 384)
HERE = Path(__file__).resolve().parent / "samurai"
Point = tuple[int, int]

# Joints of each pose: head centre, neck, hip, then (elbow, hand) x2 and (knee, foot) x2.
POSES: dict[str, dict[str, Point]] = {
    "standing": {
        "head": (128, 70), "neck": (128, 105), "hip": (128, 215),
        "l_elbow": (98, 160), "l_hand": (92, 215), "r_elbow": (158, 160), "r_hand": (164, 215),
        "l_knee": (112, 280), "l_foot": (108, 350), "r_knee": (144, 280), "r_foot": (148, 350),
    },
    "meditation": {
        "head": (128, 130), "neck": (128, 165), "hip": (128, 265),
        "l_elbow": (92, 215), "l_hand": (78, 275), "r_elbow": (164, 215), "r_hand": (178, 275),
        "l_knee": (68, 290), "l_foot": (150, 305), "r_knee": (188, 290), "r_foot": (106, 305),
    },
    "fighting": {
        "head": (120, 80), "neck": (122, 115), "hip": (128, 220),
        "l_elbow": (88, 140), "l_hand": (70, 100), "r_elbow": (165, 135), "r_hand": (185, 80),
        "l_knee": (88, 280), "l_foot": (58, 350), "r_knee": (168, 280), "r_foot": (196, 350),
    },
}
LIMBS = (
    ("neck", "l_elbow"), ("l_elbow", "l_hand"), ("neck", "r_elbow"), ("r_elbow", "r_hand"),
    ("hip", "l_knee"), ("l_knee", "l_foot"), ("hip", "r_knee"), ("r_knee", "r_foot"),
)
SKIN = (232, 190, 150)


def figure(
    draw: ImageDraw.ImageDraw, joints: dict[str, Point], body: tuple[int, int, int],
    limbs: tuple[int, int, int], head: tuple[int, int, int],
) -> None:
    """Draw a shape person: thick limbs, a torso block and a round head."""
    for a, b in LIMBS:
        draw.line([joints[a], joints[b]], fill=limbs, width=16)
        draw.ellipse(_box(joints[b], 8), fill=limbs)
    neck, hip = joints["neck"], joints["hip"]
    draw.polygon(
        [(neck[0] - 34, neck[1]), (neck[0] + 34, neck[1]), (hip[0] + 26, hip[1]),
         (hip[0] - 26, hip[1])],
        fill=body,
    )
    draw.ellipse(_box(joints["head"], 28), fill=head)


def _box(centre: Point, radius: int) -> tuple[int, int, int, int]:
    return (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)


def samurai() -> Image.Image:
    """Red armour, dark trousers, a helmet with a crest, a katana at the hip."""
    im = Image.new("RGB", SIZE, (245, 240, 228))
    draw = ImageDraw.Draw(im)
    joints = POSES["standing"]
    figure(draw, joints, body=(190, 30, 35), limbs=(70, 40, 40), head=SKIN)
    hx, hy = joints["head"]
    draw.chord((hx - 32, hy - 36, hx + 32, hy + 20), 180, 360, fill=(40, 30, 30))  # helmet
    draw.polygon([(hx - 20, hy - 30), (hx, hy - 62), (hx + 20, hy - 30)], fill=(212, 175, 55))
    draw.rectangle((90, 105, 166, 122), fill=(150, 20, 25))  # shoulder plates
    draw.line([(150, 200), (205, 120)], fill=(200, 200, 210), width=5)  # katana
    draw.line([(146, 206), (156, 192)], fill=(30, 30, 30), width=9)
    draw.ellipse(_box((hx - 10, hy + 4), 3), fill=(20, 20, 20))
    draw.ellipse(_box((hx + 10, hy + 4), 3), fill=(20, 20, 20))
    return im


def ninja() -> Image.Image:
    """All black, a grey mask band with an eye slit, a red sash."""
    im = Image.new("RGB", SIZE, (236, 236, 240))
    draw = ImageDraw.Draw(im)
    joints = POSES["standing"]
    figure(draw, joints, body=(25, 25, 30), limbs=(35, 35, 40), head=(25, 25, 30))
    hx, hy = joints["head"]
    draw.rectangle((hx - 24, hy - 6, hx + 24, hy + 8), fill=SKIN)  # eye slit
    draw.ellipse(_box((hx - 9, hy + 1), 3), fill=(20, 20, 20))
    draw.ellipse(_box((hx + 9, hy + 1), 3), fill=(20, 20, 20))
    draw.rectangle((100, 196, 156, 206), fill=(170, 20, 30))  # sash
    return im


def pose(name: str) -> Image.Image:
    """A neutral grey silhouette of one pose on white, like a pose reference photo."""
    im = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(im)
    figure(draw, POSES[name], body=(90, 90, 96), limbs=(90, 90, 96), head=(90, 90, 96))
    if name == "fighting":
        draw.line([POSES[name]["r_hand"], (215, 20)], fill=(60, 60, 64), width=6)  # weapon
    return im


def images() -> dict[str, Image.Image]:
    """Every image, by project-relative path."""
    out = {"assets/characters/samurai.png": samurai(), "assets/characters/ninja.png": ninja()}
    for name in POSES:
        out[f"assets/poses/{name}.png"] = pose(name)
    return out


def main() -> None:
    """Write the images into examples/samurai/."""
    for rel, im in images().items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im.quantize(colors=16, dither=Image.Dither.NONE).save(path, format="PNG", optimize=True)
        print(f"{path.relative_to(HERE.parent)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
