"""Drawing primitives and object sprites of the synthetic scenes (data/synthetic_scene.py draws the background).

Integer coordinates and ``LINE_8`` (no blending) everywhere, so one generator state gives the same pixels whatever
OpenCV's thread count. Colours are BGR (OpenCV's order).
"""
from __future__ import annotations

import cv2
import numpy as np

LINE = cv2.LINE_8   # no anti-aliasing: the id map must get exactly the pixels the image gets


def pixels(points) -> np.ndarray:
    """Float (N, 2) px -> int32 (N, 2) for OpenCV, rounding half to even (np.rint) so it never depends on the CPU."""
    return np.rint(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 2)


def pick_colour(rng: np.random.Generator, choices, spread: int) -> tuple[int, int, int]:
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
    return {"body": pick_colour(rng, _VEHICLE, 15), "cargo": pick_colour(rng, _CARGO, 15),
            "trim": pick_colour(rng, _VEHICLE, 15),
            "glass": pick_colour(rng, ((70, 50, 40), (50, 40, 35), (95, 80, 65)), 10),
            "tyre": pick_colour(rng, ((25, 25, 25),), 6), "hub": pick_colour(rng, ((150, 150, 150),), 25),
            "light": pick_colour(rng, [(200, 235, 245) if front else (40, 40, 210)], 10),
            "plate": pick_colour(rng, ((225, 225, 225),), 8), "dark": pick_colour(rng, ((45, 45, 48),), 8),
            "skin": pick_colour(rng, _SKIN, 10), "hair": pick_colour(rng, _HAIR, 10),
            "pants": pick_colour(rng, _PANTS, 15),
            "shirt": tuple(int(v) for v in rng.integers(20, 236, 3)), "frame": pick_colour(rng, _VEHICLE, 20)}


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
        pts = pixels(points)
        self._fill(lambda img, c: cv2.fillPoly(img, [pts], c, LINE), colour)

    def circle(self, centre, radius: float, colour, thickness: int = -1) -> None:
        c, r = tuple(int(v) for v in pixels([centre])[0]), max(1, int(np.rint(radius)))
        self._fill(lambda img, col: cv2.circle(img, c, r, col, thickness, LINE), colour)

    def line(self, p, q, colour, thickness: int) -> None:
        a, b = (tuple(int(v) for v in pt) for pt in pixels([p, q]))
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
