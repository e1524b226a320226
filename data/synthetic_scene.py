"""Drawing of the synthetic driving scenes: street geometry, background (sky, road, clutter), object sprites, noise.

Every function takes an explicit NumPy Generator and draws with integer coordinates and ``LINE_8`` (no blending), and
the final noise is integer arithmetic, so one generator state gives the same pixels whatever OpenCV's thread count:
its parallel loops split rows and compute each row the same way. Colours are BGR (OpenCV's order); cv2.imwrite
stores them as RGB PNGs.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FOCAL = 721.54      # px; KITTI's left colour camera (P2 of its calibration files)
CAM_HEIGHT = 1.65   # m; KITTI's camera height above the road
SIDEWALK = 2.5      # m; pavement width beside the kerb on each side
LINE = cv2.LINE_8   # no anti-aliasing: the id map must get exactly the pixels the image gets
SIZES = ((1242, 375), (1224, 370))  # (width, height) px; the two sizes of KITTI's first frames
TERRAIN = ((70, 120, 80), (95, 125, 130), (120, 125, 128), (60, 105, 110))  # grass, dry grass, gravel, dirt
FACADES = ((170, 180, 190), (90, 100, 150), (200, 205, 210), (120, 150, 175), (140, 140, 140), (80, 85, 95))


@dataclass(frozen=True)
class Street:
    """A level pinhole camera over a flat straight road; rows grow downwards.

    Attributes:
        width, height: frame size, px.
        horizon: row of the horizon (the road's vanishing line), px.
        cx: column of the road's vanishing point, px.
        half_width: half the road width kerb to kerb, m.
        lanes: number of lanes across the road.
    """

    width: int
    height: int
    horizon: float
    cx: float
    half_width: float
    lanes: int

    def row(self, z: float, up: float = 0.0) -> float:
        """Image row (px) of a point ``up`` m above the road at depth ``z`` m."""
        return self.horizon + FOCAL * (CAM_HEIGHT - up) / z

    def col(self, x: float, z: float) -> float:
        """Image column (px) of a point at lateral offset ``x`` m (right positive) and depth ``z`` m."""
        return self.cx + FOCAL * x / z


def sample_street(rng: np.random.Generator) -> Street:
    """Frame size, horizon (varies by a few percent of the height, as camera pitch does) and road layout."""
    width, height = SIZES[int(rng.random() < 0.3)]
    half_width = rng.uniform(5.0, 8.0)
    return Street(width=width, height=height, horizon=height * rng.uniform(0.42, 0.50),
                  cx=width / 2 + rng.uniform(-40, 40), half_width=half_width,
                  lanes=max(2, round(2 * half_width / 3.5)))


def _int(points) -> np.ndarray:
    """Float (N, 2) px -> int32 (N, 2) for OpenCV, rounding half to even (np.rint) so it never depends on the CPU."""
    return np.rint(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 2)


def _colour(rng: np.random.Generator, choices, spread: int) -> tuple[int, int, int]:
    """One of ``choices`` (BGR) with each channel moved by up to +-spread."""
    base = np.asarray(choices[int(rng.integers(len(choices)))], dtype=np.int64)
    return tuple(int(v) for v in np.clip(base + rng.integers(-spread, spread + 1, 3), 0, 255))


# Sprites: parts drawn in order into the object's box, coordinates as fractions of the box (x right, y down).
# ("poly"|"rect", colour, points | (x0, y0, x1, y1)); ("line", colour, (x0, y0, x1, y1, thickness / box height));
# ("wheel"|"ring", colour, (centre x, radius / box height[, thickness])) touching the bottom; ("head", ...) the top.
# "rear" views serve front views too (the palette swaps tail lights for headlights); side views face right.
_CAR_REAR = (("poly", "body", ((.12, 0), (.88, 0), (.97, .42), (.03, .42))), ("rect", "body", (0, .38, 1, .84)),
             ("poly", "glass", ((.17, .06), (.83, .06), (.90, .37), (.10, .37))),
             ("rect", "light", (.03, .45, .20, .55)), ("rect", "light", (.80, .45, .97, .55)),
             ("rect", "plate", (.39, .58, .61, .68)), ("rect", "dark", (0, .74, 1, .84)),
             ("rect", "tyre", (.06, .84, .24, 1)), ("rect", "tyre", (.76, .84, .94, 1)))
_CAR_SIDE = (("poly", "body", ((.20, .42), (.32, .02), (.68, .02), (.82, .42))),
             ("poly", "body", ((0, .42), (.02, .36), (.82, .36), (1, .46), (1, .78), (0, .78))),
             ("poly", "glass", ((.25, .40), (.35, .08), (.49, .08), (.49, .40))),
             ("poly", "glass", ((.52, .40), (.52, .08), (.66, .08), (.77, .40))),
             ("rect", "dark", (0, .70, 1, .78)), ("rect", "light", (.96, .48, 1, .56)),
             ("wheel", "tyre", (.19, .22)), ("wheel", "tyre", (.81, .22)))
_VAN_REAR = (("poly", "body", ((.04, 0), (.96, 0), (1, .08), (1, .86), (0, .86), (0, .08))),
             ("rect", "glass", (.08, .07, .92, .40)), ("rect", "dark", (.49, .40, .51, .78)),
             ("rect", "light", (.02, .44, .10, .66)), ("rect", "light", (.90, .44, .98, .66)),
             ("rect", "plate", (.40, .70, .60, .77)), ("rect", "dark", (0, .78, 1, .86)),
             ("rect", "tyre", (.06, .86, .22, 1)), ("rect", "tyre", (.78, .86, .94, 1)))
_VAN_SIDE = (("poly", "body", ((0, .02), (.74, .02), (.86, .30), (1, .38), (1, .84), (0, .84))),
             ("rect", "glass", (.04, .10, .66, .34)), ("poly", "glass", ((.72, .08), (.84, .32), (.72, .32))),
             ("rect", "dark", (.55, .36, .565, .80)), ("rect", "dark", (0, .76, 1, .84)),
             ("rect", "light", (.97, .42, 1, .50)), ("wheel", "tyre", (.16, .16)), ("wheel", "tyre", (.84, .16)))
_TRUCK_REAR = (("rect", "cargo", (0, 0, 1, .84)), ("rect", "trim", (0, 0, 1, .05)),
               ("rect", "dark", (.49, .04, .51, .82)), ("rect", "dark", (.30, .40, .34, .50)),
               ("rect", "dark", (.66, .40, .70, .50)), ("rect", "dark", (0, .84, 1, .90)),
               ("rect", "light", (.03, .78, .16, .83)), ("rect", "light", (.84, .78, .97, .83)),
               ("rect", "tyre", (.04, .88, .32, 1)), ("rect", "tyre", (.68, .88, .96, 1)))
_TRUCK_SIDE = (("rect", "cargo", (0, 0, .74, .80)), ("rect", "trim", (0, .66, .74, .72)),
               ("poly", "body", ((.76, .24), (.95, .24), (1, .42), (1, .86), (.76, .86))),
               ("poly", "glass", ((.80, .29), (.94, .29), (.97, .46), (.80, .46))), ("rect", "dark", (0, .80, 1, .88)),
               ("wheel", "tyre", (.08, .12)), ("wheel", "tyre", (.20, .12)), ("wheel", "tyre", (.62, .12)),
               ("wheel", "tyre", (.90, .12)))
_TRAM_SIDE = ((("rect", "body", (0, .05, 1, .92)), ("rect", "dark", (.05, .02, .95, .06)),
               ("line", "dark", (.45, .03, .52, 0, .01)))
              + tuple(("rect", "glass", (.03 + k * .137, .18, .12 + k * .137, .50)) for k in range(7))
              + (("rect", "trim", (0, .60, 1, .66)), ("rect", "glass", (.25, .18, .29, .86)),
                 ("rect", "glass", (.70, .18, .74, .86)), ("rect", "tyre", (.08, .90, .26, 1)),
                 ("rect", "tyre", (.74, .90, .92, 1))))
_TRAILER_SIDE = (("rect", "cargo", (.12, 0, 1, .70)), ("rect", "trim", (.12, 0, 1, .08)),
                 ("rect", "dark", (.12, .68, 1, .78)), ("line", "dark", (0, .72, .14, .72, .04)),
                 ("wheel", "tyre", (.60, .22)))
_WALKER = (("head", "skin", (.5, .065)), ("rect", "hair", (.38, 0, .62, .045)),
           ("poly", "shirt", ((.22, .14), (.78, .14), (.74, .56), (.26, .56))),
           ("poly", "shirt", ((.22, .15), (.10, .20), (0, .50), (.12, .52), (.26, .28))),
           ("poly", "shirt", ((.78, .15), (.90, .20), (1, .50), (.88, .52), (.74, .28))),
           ("poly", "pants", ((.26, .54), (.50, .54), (.42, .97), (.20, .97))),
           ("poly", "pants", ((.50, .54), (.74, .54), (.80, .97), (.58, .97))),
           ("rect", "dark", (.14, .95, .42, 1)), ("rect", "dark", (.58, .95, .86, 1)))
_SITTER = (("rect", "frame", (.04, .66, .56, .72)), ("line", "frame", (.10, .70, .10, 1, .03)),
           ("line", "frame", (.50, .70, .50, 1, .03)), ("head", "skin", (.30, .10)),
           ("poly", "shirt", ((.12, .20), (.46, .20), (.50, .62), (.14, .62))),
           ("poly", "pants", ((.14, .54), (.86, .54), (.86, .68), (.14, .68))),
           ("poly", "pants", ((.72, .62), (.86, .62), (.84, .96), (.70, .96))),
           ("rect", "dark", (.68, .94, 1, 1)), ("line", "shirt", (.40, .26, .66, .50, .06)))
_BIKE_SIDE = (("ring", "tyre", (.19, .19, .03)), ("ring", "tyre", (.81, .19, .03)),
              ("line", "frame", (.19, .81, .46, .80, .025)), ("line", "frame", (.46, .80, .40, .52, .025)),
              ("line", "frame", (.40, .52, .19, .81, .025)), ("line", "frame", (.40, .52, .72, .50, .025)),
              ("line", "frame", (.46, .80, .72, .50, .025)), ("line", "frame", (.72, .50, .81, .81, .025)),
              ("line", "dark", (.72, .50, .70, .42, .025)),
              ("poly", "pants", ((.36, .50), (.46, .46), (.58, .64), (.50, .68))),
              ("poly", "pants", ((.50, .64), (.58, .64), (.50, .82), (.45, .82))),
              ("poly", "shirt", ((.36, .52), (.48, .50), (.66, .22), (.54, .16))),
              ("line", "shirt", (.60, .20, .71, .43, .045)), ("head", "hair", (.62, .075)))
_BIKE_REAR = (("rect", "tyre", (.42, .60, .58, 1)), ("rect", "frame", (0, .38, 1, .43)),
              ("poly", "shirt", ((.20, .16), (.80, .16), (.70, .56), (.30, .56))),
              ("line", "shirt", (.22, .18, .04, .40, .06)), ("line", "shirt", (.78, .18, .96, .40, .06)),
              ("poly", "pants", ((.28, .54), (.48, .54), (.40, .86), (.26, .86))),
              ("poly", "pants", ((.52, .54), (.72, .54), (.74, .86), (.60, .86))), ("head", "hair", (.5, .075)))
SPRITES = {"Car": {"rear": _CAR_REAR, "side": _CAR_SIDE}, "Van": {"rear": _VAN_REAR, "side": _VAN_SIDE},
           "Truck": {"rear": _TRUCK_REAR, "side": _TRUCK_SIDE}, "Tram": {"side": _TRAM_SIDE},
           "Misc": {"side": _TRAILER_SIDE}, "Pedestrian": {"rear": _WALKER}, "Person_sitting": {"side": _SITTER},
           "Cyclist": {"rear": _BIKE_REAR, "side": _BIKE_SIDE}}
_VEHICLE = ((235, 235, 232), (190, 190, 195), (120, 120, 125), (40, 40, 45), (40, 40, 170), (140, 75, 35),
            (85, 45, 25), (55, 100, 50), (45, 190, 225), (165, 190, 210), (40, 65, 105), (35, 115, 220))
_CARGO = ((230, 230, 230), (200, 200, 205), (60, 60, 160), (150, 100, 40), (70, 140, 70), (40, 160, 220))
_SKIN = ((140, 170, 220), (110, 145, 200), (80, 110, 160), (60, 80, 120), (170, 195, 235))
_PANTS = ((90, 50, 30), (40, 40, 40), (110, 110, 110), (140, 170, 190), (50, 70, 100), (120, 80, 60))
_HAIR = ((20, 25, 30), (40, 60, 90), (60, 80, 110), (150, 170, 190), (30, 30, 160), (200, 200, 200))


def palette(rng: np.random.Generator, front: bool) -> dict[str, tuple[int, int, int]]:
    """Colours of one object, BGR; every key is drawn for every class so the number of draws is fixed."""
    return {"body": _colour(rng, _VEHICLE, 15), "cargo": _colour(rng, _CARGO, 15), "trim": _colour(rng, _VEHICLE, 15),
            "glass": _colour(rng, ((70, 50, 40), (50, 40, 35), (95, 80, 65)), 10),
            "tyre": _colour(rng, ((25, 25, 25),), 6), "hub": _colour(rng, ((150, 150, 150),), 25),
            "light": _colour(rng, [(200, 235, 245) if front else (40, 40, 210)], 10),
            "plate": _colour(rng, ((225, 225, 225),), 8), "dark": _colour(rng, ((45, 45, 48),), 8),
            "skin": _colour(rng, _SKIN, 10), "hair": _colour(rng, _HAIR, 10), "pants": _colour(rng, _PANTS, 15),
            "shirt": tuple(int(v) for v in rng.integers(20, 236, 3)), "frame": _colour(rng, _VEHICLE, 20)}


class Painter:
    """Draws each shape on the image, on the object-id map (uint8, 0 = background) and on a scratch mask of the
    current object, so occlusion and tight boxes come from exactly the pixels drawn."""

    def __init__(self, image: np.ndarray):
        self.image = image                                   # (H, W, 3) uint8, drawn in place
        self.ids = np.zeros(image.shape[:2], np.uint8)       # (H, W) id of the object owning each pixel
        self.scratch = np.zeros(image.shape[:2], np.uint8)   # (H, W) pixels of the current object alone
        self.current = 0

    def begin(self, obj_id: int) -> None:
        if not 0 < obj_id < 256:
            raise ValueError(f"object ids must be in 1..255, got {obj_id}")
        self.current = obj_id
        self.scratch.fill(0)

    def extent(self) -> tuple[tuple[int, int, int, int], int]:
        """Tight xyxy box (continuous px, pixel i spans [i, i+1)) and pixel count of the current object, in frame."""
        x, y, w, h = cv2.boundingRect(self.scratch)
        return (x, y, x + w, y + h), cv2.countNonZero(self.scratch)

    def _fill(self, draw, colour) -> None:
        draw(self.image, colour)
        draw(self.ids, self.current)
        draw(self.scratch, 255)

    def poly(self, points, colour) -> None:
        pts = _int(points)
        self._fill(lambda img, c: cv2.fillPoly(img, [pts], c, LINE), colour)

    def circle(self, centre, radius: float, colour, thickness: int = -1) -> None:
        c, r = tuple(int(v) for v in _int([centre])[0]), max(1, int(np.rint(radius)))
        self._fill(lambda img, col: cv2.circle(img, c, r, col, thickness, LINE), colour)

    def line(self, p, q, colour, thickness: int) -> None:
        a, b = (tuple(int(v) for v in pt) for pt in _int([p, q]))
        self._fill(lambda img, c: cv2.line(img, a, b, c, max(1, thickness), LINE), colour)


def draw_sprite(painter: Painter, rng: np.random.Generator, name: str, view: str, box, flip: bool) -> None:
    """Draw one object into ``box`` (nominal xyxy px): parts given as fractions of the box, each vertex jittered by
    ~1% so no two instances are identical. ``flip`` mirrors side views (object facing left)."""
    parts = SPRITES[name]["side" if view == "side" else "rear"]
    colours = palette(rng, front=view == "front")
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1

    def px(fx, fy):
        return x1 + (1.0 - fx if flip else fx) * w, y1 + fy * h

    for kind, key, geo in parts:
        colour = colours[key]
        if kind in ("wheel", "ring", "head"):
            fx = geo[0] + rng.normal(0.0, 0.01)
            radius = geo[1] * h
            cy = y1 + radius if kind == "head" else y2 - radius
            centre = (px(fx, 0.0)[0], cy)
            painter.circle(centre, radius, colour, int(max(1, geo[2] * h)) if kind == "ring" else -1)
            if kind == "wheel":
                painter.circle(centre, radius * 0.45, colours["hub"])
            continue
        coords = np.asarray(geo[:4] if kind == "line" else geo, dtype=np.float64).reshape(-1)
        coords = coords + rng.normal(0.0, 0.01, coords.shape)
        if kind == "rect":
            a, b, c, d = coords
            painter.poly([px(a, b), px(c, b), px(c, d), px(a, d)], colour)
        elif kind == "poly":
            painter.poly([px(fx, fy) for fx, fy in coords.reshape(-1, 2)], colour)
        elif kind == "line":
            painter.line(px(*coords[:2]), px(*coords[2:]), colour, int(geo[4] * h))
        else:
            raise ValueError(f"sprite {name}/{view}: unknown part kind {kind!r}")


def draw_shadow(image: np.ndarray, rng: np.random.Generator, box) -> None:
    """A dark flat ellipse on the road under an object (image only: shadows are not part of the object)."""
    x1, y1, x2, y2 = box
    centre = tuple(int(v) for v in _int([((x1 + x2) / 2, y2 - 0.01 * (y2 - y1))])[0])
    axes = (max(1, int((x2 - x1) * 0.58)), max(1, int((y2 - y1) * 0.05)))
    cv2.ellipse(image, centre, axes, 0, 0, 360, _colour(rng, ((38, 38, 42),), 6), -1, LINE)


def draw_background(rng: np.random.Generator, street: Street) -> np.ndarray:
    """Sky gradient, distant skyline, ground, road with lane markings and roadside clutter -> (H, W, 3) uint8."""
    image = _sky_and_ground(rng, street)
    _draw_skyline(rng, street, image)
    _draw_road(rng, street, image)
    items = [item for side in (-1.0, 1.0) for item in _clutter(rng, street, side)]
    for _, draw in sorted(items, key=lambda item: -item[0]):  # far to near; each item already holds its randomness
        draw(image)
    return image


def _sky_and_ground(rng: np.random.Generator, street: Street) -> np.ndarray:
    overcast = rng.random() < 0.35
    top = np.array(_colour(rng, [(205, 205, 205) if overcast else (225, 170, 120)], 15), np.float64)
    low = np.array(_colour(rng, [(228, 228, 228) if overcast else (240, 220, 200)], 10), np.float64)
    far = np.array(_colour(rng, TERRAIN, 15), np.float64)
    near = far * rng.uniform(0.7, 0.9)
    hz = int(np.ceil(street.horizon))
    rows = np.empty((street.height, 3))
    rows[:hz] = top + (low - top) * np.linspace(0.0, 1.0, hz)[:, None]
    rows[hz:] = far + (near - far) * np.linspace(0.0, 1.0, street.height - hz)[:, None]
    rows = np.rint(rows).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(rows[:, None, :], (street.height, street.width, 3)))


def _draw_skyline(rng: np.random.Generator, street: Street, image: np.ndarray) -> None:
    """Far hills or tree line just above the horizon."""
    xs = np.arange(0, street.width + 60, 60, dtype=np.float64)
    tops = street.horizon - rng.uniform(0, 28, xs.size)
    points = np.concatenate([np.stack([xs, tops], 1), [[xs[-1], street.horizon + 1], [0, street.horizon + 1]]])
    cv2.fillPoly(image, [_int(points)], _colour(rng, ((110, 125, 115), (150, 150, 140), (90, 110, 90)), 15), LINE)


def _ground_quad(street: Street, x0: float, x1: float, z0: float = 1.0, z1: float = 3000.0) -> np.ndarray:
    """A road-plane rectangle between lateral offsets x0..x1 and depths z0..z1 (m), projected -> int32 (4, 2)."""
    return _int([(street.col(x0, z0), street.row(z0)), (street.col(x1, z0), street.row(z0)),
                 (street.col(x1, z1), street.row(z1)), (street.col(x0, z1), street.row(z1))])


def _draw_road(rng: np.random.Generator, street: Street, image: np.ndarray) -> None:
    hw = street.half_width
    grey = int(rng.integers(80, 130))
    cv2.fillPoly(image, [_ground_quad(street, -hw, hw)], (grey + 4, grey + 2, grey), LINE)
    pavement = _colour(rng, ((165, 165, 160), (140, 145, 150)), 12)
    for side in (-1.0, 1.0):
        cv2.fillPoly(image, [_ground_quad(street, side * hw, side * (hw + SIDEWALK))], pavement, LINE)
        cv2.fillPoly(image, [_ground_quad(street, side * hw, side * (hw + 0.2))], (200, 200, 200), LINE)
    white = _colour(rng, ((225, 225, 225),), 15)
    lane = 2 * hw / street.lanes
    phase = rng.uniform(0.0, 9.0)
    for k in range(street.lanes + 1):
        x = -hw + 0.3 + k * (lane - 0.6 / street.lanes)
        if k in (0, street.lanes) or 2 * k == street.lanes:  # road edges and the centre line are solid
            cv2.fillPoly(image, [_ground_quad(street, x - 0.08, x + 0.08, 2.0)], white, LINE)
            continue
        for z0 in np.arange(2.0 + phase, 90.0, 9.0):  # 3 m dashes every 9 m
            cv2.fillPoly(image, [_ground_quad(street, x - 0.08, x + 0.08, z0, z0 + 3.0)], white, LINE)


def _clutter(rng: np.random.Generator, street: Street, side: float) -> list:
    """Buildings, trees, poles with signs and bins on one side: (depth m, draw(image)) items. These distractors are
    never labelled; some share colours and shapes with objects so the detector must use context and shape."""
    items = []
    edge = street.half_width + SIDEWALK
    if rng.random() < 0.8:
        z = rng.uniform(5.0, 25.0)
        while z < 120.0:
            length = rng.uniform(8.0, 25.0)
            items.append(_building(rng, street, side * (edge + rng.uniform(0.5, 6.0)), z, z + length))
            z += length + rng.uniform(0.0, 10.0)
    for _ in range(int(rng.integers(0, 7))):
        items.append(_tree(rng, street, side * (street.half_width + rng.uniform(1.0, SIDEWALK + 6.0)),
                           rng.uniform(8.0, 80.0)))
    for _ in range(int(rng.integers(0, 5))):
        items.append(_pole(rng, street, side, side * (street.half_width + rng.uniform(0.3, 1.2)),
                           rng.uniform(4.0, 70.0)))
    for _ in range(int(rng.integers(0, 4))):
        x, z = side * (street.half_width + rng.uniform(0.3, SIDEWALK)), rng.uniform(4.0, 50.0)
        size = (rng.uniform(0.4, 1.4), rng.uniform(0.6, 1.6))
        colour = tuple(int(v) for v in rng.integers(20, 236, 3))
        items.append((z, lambda img, x=x, z=z, s=size, c=colour: _upright(img, street, x, z, s[0], 0.0, s[1], c)))
    return items


def _upright(image, street: Street, x: float, z: float, width: float, up0: float, up1: float, colour) -> None:
    """A rectangle facing the camera at depth z, centred on lateral x, from up0 to up1 m above the road."""
    pts = [(street.col(x - width / 2, z), street.row(z, up1)), (street.col(x + width / 2, z), street.row(z, up1)),
           (street.col(x + width / 2, z), street.row(z, up0)), (street.col(x - width / 2, z), street.row(z, up0))]
    cv2.fillPoly(image, [_int(pts)], colour, LINE)


def _building(rng: np.random.Generator, street: Street, x: float, z0: float, z1: float):
    """A facade parallel to the road (x fixed, depth z0..z1) with a grid of windows, plus its end wall."""
    height = rng.uniform(5.0, 20.0)
    wall = _colour(rng, FACADES, 15)
    glass = (_colour(rng, ((70, 55, 45), (110, 95, 80)), 10), _colour(rng, ((150, 200, 220),), 15))
    floors, columns = int(height / 3.2), int((z1 - z0) / 3.5)
    lit = rng.random((floors, columns)) < 0.2

    def quad(xa, xb, za, zb, ua, ub):
        return _int([(street.col(xa, za), street.row(za, ua)), (street.col(xb, zb), street.row(zb, ua)),
                     (street.col(xb, zb), street.row(zb, ub)), (street.col(xa, za), street.row(za, ub))])

    def draw(image):
        end = x + np.sign(x) * 10.0
        cv2.fillPoly(image, [quad(x, end, z0, z0, 0.0, height)], tuple(int(v * 0.75) for v in wall), LINE)
        cv2.fillPoly(image, [quad(x, x, z0, z1, 0.0, height)], wall, LINE)
        for f in range(floors):
            for c in range(columns):
                za, ua = z0 + c * 3.5 + 0.8, f * 3.2 + 1.0  # 2.0 x 1.4 m windows on a 3.5 x 3.2 m grid
                cv2.fillPoly(image, [quad(x, x, za, za + 2.0, ua, ua + 1.4)], glass[int(lit[f, c])], LINE)
    return z0, draw


def _tree(rng: np.random.Generator, street: Street, x: float, z: float):
    trunk, radius = rng.uniform(1.5, 3.0), rng.uniform(1.2, 3.0)
    leaves = _colour(rng, ((45, 110, 50), (60, 140, 90), (40, 90, 70), (50, 120, 150)), 20)
    bark = _colour(rng, ((40, 60, 80),), 10)
    conifer = rng.random() < 0.3

    def draw(image):
        _upright(image, street, x, z, 0.35, 0.0, trunk, bark)
        if conifer:
            pts = [(street.col(x - radius, z), street.row(z, trunk * 0.6)),
                   (street.col(x + radius, z), street.row(z, trunk * 0.6)),
                   (street.col(x, z), street.row(z, trunk + 3 * radius))]
            cv2.fillPoly(image, [_int(pts)], leaves, LINE)
            return
        centre = _int([(street.col(x, z), street.row(z, trunk + radius * 0.8))])[0]
        axes = (max(1, int(radius * FOCAL / z)), max(1, int(1.1 * radius * FOCAL / z)))
        cv2.ellipse(image, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, leaves, -1, LINE)
    return z, draw


def _pole(rng: np.random.Generator, street: Street, side: float, x: float, z: float):
    """A street light (arm over the road) or a sign post with a coloured plate."""
    height = rng.uniform(4.0, 9.0)
    grey = _colour(rng, ((120, 120, 120),), 25)
    sign = _colour(rng, ((40, 40, 200), (170, 90, 30), (40, 200, 230), (235, 235, 235)), 15) \
        if rng.random() < 0.5 else None

    def draw(image):
        _upright(image, street, x, z, 0.15, 0.0, height, grey)
        if sign is not None:
            _upright(image, street, x, z, 0.8, height - 0.8, height, sign)
            return
        a = _int([(street.col(x, z), street.row(z, height)), (street.col(x - side * 1.8, z), street.row(z, height))])
        cv2.line(image, tuple(int(v) for v in a[0]), tuple(int(v) for v in a[1]), grey,
                 max(1, int(0.15 * FOCAL / z)), LINE)
    return z, draw


def add_noise(rng: np.random.Generator, image: np.ndarray) -> None:
    """Exposure gain and low-frequency colour blotches (texture), in place, integer arithmetic only (bit-exact on any
    CPU): ``image * gain / 256 + blotches``, clipped to 0..255. No per-pixel grain: it would double the PNG size
    and is averaged away by the 1/3 letterbox of CPU training anyway."""
    height, width = image.shape[:2]
    gain = int(rng.integers(215, 290))
    small = rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), dtype=np.uint8)
    blotch = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.int32) - 128
    amplitude = int(rng.integers(4, 10))
    out = (image.astype(np.int32) * gain >> 8) + (blotch * amplitude >> 7)
    image[:] = np.clip(out, 0, 255).astype(np.uint8)
