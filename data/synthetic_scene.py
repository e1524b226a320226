"""Drawing of the synthetic driving scenes: street geometry, background (sky, road, clutter), shadows, noise.

Every function takes an explicit NumPy Generator and draws with integer coordinates and ``LINE_8`` (no blending), and
the final noise is integer arithmetic, so one generator state gives the same pixels whatever OpenCV's thread count:
its parallel loops split rows and compute each row the same way. Colours are BGR (OpenCV's order); cv2.imwrite
stores them as RGB PNGs.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data.synthetic_sprites import LINE, pick_colour, pixels

FOCAL = 721.54      # px; KITTI's left colour camera (P2 of its calibration files)
CAM_HEIGHT = 1.65   # m; KITTI's camera height above the road
SIDEWALK = 2.5      # m; pavement width beside the kerb on each side
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


def draw_shadow(image: np.ndarray, rng: np.random.Generator, box) -> None:
    """A dark flat ellipse on the road under an object (image only: shadows are not part of the object)."""
    x1, y1, x2, y2 = box
    centre = tuple(int(v) for v in pixels([((x1 + x2) / 2, y2 - 0.01 * (y2 - y1))])[0])
    axes = (max(1, int((x2 - x1) * 0.58)), max(1, int((y2 - y1) * 0.05)))
    cv2.ellipse(image, centre, axes, 0, 0, 360, pick_colour(rng, ((38, 38, 42),), 6), -1, LINE)


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
    top = np.array(pick_colour(rng, [(205, 205, 205) if overcast else (225, 170, 120)], 15), np.float64)
    low = np.array(pick_colour(rng, [(228, 228, 228) if overcast else (240, 220, 200)], 10), np.float64)
    far = np.array(pick_colour(rng, TERRAIN, 15), np.float64)
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
    cv2.fillPoly(image, [pixels(points)], pick_colour(rng, ((110, 125, 115), (150, 150, 140), (90, 110, 90)), 15), LINE)


def _ground_quad(street: Street, x0: float, x1: float, z0: float = 1.0, z1: float = 3000.0) -> np.ndarray:
    """A road-plane rectangle between lateral offsets x0..x1 and depths z0..z1 (m), projected -> int32 (4, 2)."""
    return pixels([(street.col(x0, z0), street.row(z0)), (street.col(x1, z0), street.row(z0)),
                 (street.col(x1, z1), street.row(z1)), (street.col(x0, z1), street.row(z1))])


def _draw_road(rng: np.random.Generator, street: Street, image: np.ndarray) -> None:
    hw = street.half_width
    grey = int(rng.integers(80, 130))
    cv2.fillPoly(image, [_ground_quad(street, -hw, hw)], (grey + 4, grey + 2, grey), LINE)
    pavement = pick_colour(rng, ((165, 165, 160), (140, 145, 150)), 12)
    for side in (-1.0, 1.0):
        cv2.fillPoly(image, [_ground_quad(street, side * hw, side * (hw + SIDEWALK))], pavement, LINE)
        cv2.fillPoly(image, [_ground_quad(street, side * hw, side * (hw + 0.2))], (200, 200, 200), LINE)
    white = pick_colour(rng, ((225, 225, 225),), 15)
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
    cv2.fillPoly(image, [pixels(pts)], colour, LINE)


def _building(rng: np.random.Generator, street: Street, x: float, z0: float, z1: float):
    """A facade parallel to the road (x fixed, depth z0..z1) with a grid of windows, plus its end wall."""
    height = rng.uniform(5.0, 20.0)
    wall = pick_colour(rng, FACADES, 15)
    glass = (pick_colour(rng, ((70, 55, 45), (110, 95, 80)), 10), pick_colour(rng, ((150, 200, 220),), 15))
    floors, columns = int(height / 3.2), int((z1 - z0) / 3.5)
    lit = rng.random((floors, columns)) < 0.2

    def quad(xa, xb, za, zb, ua, ub):
        return pixels([(street.col(xa, za), street.row(za, ua)), (street.col(xb, zb), street.row(zb, ua)),
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
    leaves = pick_colour(rng, ((45, 110, 50), (60, 140, 90), (40, 90, 70), (50, 120, 150)), 20)
    bark = pick_colour(rng, ((40, 60, 80),), 10)
    conifer = rng.random() < 0.3

    def draw(image):
        _upright(image, street, x, z, 0.35, 0.0, trunk, bark)
        if conifer:
            pts = [(street.col(x - radius, z), street.row(z, trunk * 0.6)),
                   (street.col(x + radius, z), street.row(z, trunk * 0.6)),
                   (street.col(x, z), street.row(z, trunk + 3 * radius))]
            cv2.fillPoly(image, [pixels(pts)], leaves, LINE)
            return
        centre = pixels([(street.col(x, z), street.row(z, trunk + radius * 0.8))])[0]
        axes = (max(1, int(radius * FOCAL / z)), max(1, int(1.1 * radius * FOCAL / z)))
        cv2.ellipse(image, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, leaves, -1, LINE)
    return z, draw


def _pole(rng: np.random.Generator, street: Street, side: float, x: float, z: float):
    """A street light (arm over the road) or a sign post with a coloured plate."""
    height = rng.uniform(4.0, 9.0)
    grey = pick_colour(rng, ((120, 120, 120),), 25)
    sign = pick_colour(rng, ((40, 40, 200), (170, 90, 30), (40, 200, 230), (235, 235, 235)), 15) \
        if rng.random() < 0.5 else None

    def draw(image):
        _upright(image, street, x, z, 0.15, 0.0, height, grey)
        if sign is not None:
            _upright(image, street, x, z, 0.8, height - 0.8, height, sign)
            return
        a = pixels([(street.col(x, z), street.row(z, height)), (street.col(x - side * 1.8, z), street.row(z, height))])
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
