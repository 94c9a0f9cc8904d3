"""Render the 737,280 dSprites images (official grid and order) without the official file.

The geometry was calibrated against 160 real dSprites frames (frames of the dataset's animated
preview, which traverses scale, orientation and position for each shape; the tests read them
from `shared/reference/` beside the repository when it exists; `best_iou` measures the fit).
dSprites was drawn with Love2D (its author, in deepmind/dsprites-dataset issue 2): vector
shapes rasterised on a 64 x 64 canvas. What the frames showed (continuous pixel coordinates,
pixel i covers [i, i + 1), sizes at scale 1, all sizes proportional to scale):

* Sampling: a pixel is on when its centre (i + 0.5) is strictly inside the shape (binary, no
  anti-aliasing, as an OpenGL rasteriser does).
* Position: the sprite's reference point is at 16 + 32 * pos px, so neighbouring classes are
  32/31 px apart; 62 heart frames at 31 sub-pixel phases agree with this to 1/31 px.
* Square: half-side 9.599 px (side 19.2 * scale: 10 px wide at 0.5, 20 px at 1.0 after
  sampling); 19 rotated frames pin the half-side to [9.598, 9.5995].
* Ellipse: a 64-gon (Love2D draws ellipses as polygons) of semi-axes 12.78 x 7.22 px, the long
  axis along x at orientation 0 (an exact ellipse of 12.77 x 7.21 matches one frame fewer).
* Heart: the classic curve x = 16 sin^3 t, y = -(13 cos t - 5 cos 2t - 2 cos 3t - cos 4t)
  (lobes up, tip down), scaled by 0.59963 in x and 0.66227 in y (a box of about 19.2 px, like
  the square's) and shifted 1.437 px up from the reference point. Fitted to the sub-pixel outline
  of the upright heart frames (within 0.015 px); drawn as a 400-gon it reproduces all 45,292
  of their pixels near the sprite.
* Rotation: about the reference point (the heart's offset turns with it).
* Result: mean best IoU 0.99979 over the 160 frames, 156 pixel-exact, minimum 0.989; each
  remaining frame differs in one or two pixels whose centres lie within 0.004 px of the
  outline (sub-pixel rounding in the original GPU rasteriser).

Conventions the frames cannot settle (relabelling positions or mirroring the rotation leaves the
set of images unchanged), chosen with the other evidence:
* posX is the image column, increasing to the right: the official notebook's density plot for
  "posX = 0" (its comment: "Fix posX latent to left") is a band on the left.
* posY is the row, increasing downwards (Love2D's y-down screen; the preview then starts its
  square tour at posX = posY = 0, top left).
* Increasing orientation turns the sprite counter-clockwise as displayed (row 0 on top): the
  preview steps through the classes in this sense, 0, 2, ..., 38. `ORIENTATION_SENSE = -1`
  gives the other reading.

Images come out bit-packed: one uint64 per image row (pixel 0 in the most significant bit),
filled from the row's crossings with the outline, so a row costs a few integer operations.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from trainables import factors

RENDERER_VERSION = 1
GENERATOR = "wae-study"

SIZE = factors.IMAGE_SIZE  # 64
PIXEL_CENTRE = 0.5  # samples at pixel centres
POSITION_ORIGIN = 16.0  # px: reference point at pos = 0
POSITION_SPAN = 32.0  # px: from pos = 0 to pos = 1
ORIENTATION_SENSE = 1.0  # +1: counter-clockwise as displayed; -1: clockwise
SQUARE_HALF_SIDE = 9.599
ELLIPSE_SEMI_AXES = (12.78, 7.22)
ELLIPSE_SEGMENTS = 64
HEART_SCALE = (0.59963, 0.66227)
HEART_SHIFT_Y = -1.43695
HEART_VERTICES = 400

_N_POS = factors.FACTOR_SIZES[4]  # 32 (posX and posY have the same grid)
_COMBO = _N_POS * _N_POS  # images per (shape, scale, orientation): 1024
_PACKED_BYTES = SIZE * SIZE // 8  # 512
_HDF5_CHUNK = _COMBO  # images per HDF5 chunk (4 MB of uint8)

# _FILL[c]: the bits of pixels c..63 (pixel 0 = most significant bit); _FILL[64] = 0.
_FILL = np.array([(1 << (SIZE - c)) - 1 for c in range(SIZE + 1)], dtype=np.uint64)


def outline(shape: int) -> np.ndarray:
    """The shape's outline at scale 1 (V, 2) in px around its reference point, y pointing down."""
    if shape == 0:  # square
        h = SQUARE_HALF_SIDE
        return np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    if shape == 1:  # ellipse, as Love2D draws it: a polygon starting on the x axis
        t = np.arange(ELLIPSE_SEGMENTS) * (2 * np.pi / ELLIPSE_SEGMENTS)
        a, b = ELLIPSE_SEMI_AXES
        return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    if shape == 2:  # heart
        t = np.arange(HEART_VERTICES) * (2 * np.pi / HEART_VERTICES)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([HEART_SCALE[0] * x, HEART_SCALE[1] * y + HEART_SHIFT_Y], axis=1)
    raise ValueError(f"unknown shape class {shape}")


def centres() -> np.ndarray:
    """Pixel coordinate of the reference point for each position class (32,)."""
    return POSITION_ORIGIN + POSITION_SPAN * factors.factor_values()[4]


def place(shape: int, scale: float, orientation: float) -> np.ndarray:
    """The outline scaled and rotated (about the reference point) for one sprite (V, 2)."""
    pts = outline(shape) * scale
    angle = ORIENTATION_SENSE * orientation
    c, s = np.cos(angle), np.sin(angle)
    # y points down, so this turns the sprite counter-clockwise on screen for angle > 0.
    return np.stack([c * pts[:, 0] + s * pts[:, 1], -s * pts[:, 0] + c * pts[:, 1]], axis=1)


def _crossings(poly: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sorted x where the horizontal lines `ys` cross the closed polygon (M, K), inf-padded.

    The outline is cut into y-monotone chains; each chain gives at most one crossing per line,
    found by linear interpolation. An edge from ya to yb counts for ya <= y < yb (or the
    reverse), the usual half-open rule, so vertices and horizontal edges are counted once.
    """
    x, y = poly[:, 0], poly[:, 1]
    dy = np.roll(y, -1) - y
    sign = np.sign(dy)
    moving = np.nonzero(sign)[0]
    # Start at an edge that begins a new monotone run, so no run wraps around the end.
    turns = moving[sign[moving] != sign[np.roll(moving, 1)]]
    first = turns[0] if turns.size else moving[0]
    order = np.roll(np.arange(len(x)), -first)
    chains: list[tuple[np.ndarray, np.ndarray]] = []
    run: list[int] = []
    for i in order:
        if sign[i] == 0 or (run and sign[i] != sign[run[-1]]):
            if run:
                chains.append(_chain(x, y, run))
            run = [] if sign[i] == 0 else [i]
        else:
            run.append(i)
    if run:
        chains.append(_chain(x, y, run))
    out = np.full((ys.size, len(chains)), np.inf)
    for k, (cy, cx) in enumerate(chains):
        hit = (ys >= cy[0]) & (ys < cy[-1])
        out[hit, k] = np.interp(ys[hit], cy, cx)
    out.sort(axis=1)
    return out


def _chain(x: np.ndarray, y: np.ndarray, run: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of a monotone run of edges, ordered by increasing y."""
    idx = np.array(run + [(run[-1] + 1) % len(x)])
    cy, cx = y[idx], x[idx]
    if cy[0] > cy[-1]:
        cy, cx = cy[::-1], cx[::-1]
    return cy, cx


def _render_sprite(poly: np.ndarray) -> np.ndarray:
    """All 32 x 32 positions of one placed outline as packed rows (posX, posY, row) uint64."""
    pos = centres()
    rows = np.arange(SIZE) + PIXEL_CENTRE
    ys = (rows[None, :] - pos[:, None]).ravel()  # (posY * row,) relative to the sprite
    cross = _crossings(poly, ys)
    if cross.shape[1] % 2:  # each line crosses an even number of times; pad the pairs
        cross = np.concatenate([cross, np.full((len(ys), 1), np.inf)], axis=1)
    left = cross[:, 0::2].reshape(_N_POS, SIZE, -1)  # (posY, row, K)
    right = cross[:, 1::2].reshape(_N_POS, SIZE, -1)
    inside = np.isfinite(right)
    shift = pos[:, None, None, None] - PIXEL_CENTRE  # (posX, 1, 1, 1)
    # Pixel c is on when left < c + 0.5 - centre < right (strict).
    with np.errstate(invalid="ignore"):
        lo = np.floor(left[None] + shift) + 1
        hi_end = np.ceil(right[None] + shift)  # one past the last pixel
    lo = np.where(inside[None], np.clip(lo, 0, SIZE), SIZE).astype(np.intp)
    hi_end = np.where(inside[None], np.clip(hi_end, 0, SIZE), SIZE).astype(np.intp)
    bits = _FILL[lo] & ~_FILL[hi_end]
    return np.bitwise_or.reduce(bits, axis=-1)  # (posX, posY, row)


def render_sprites(shape: int, scale_class: int, orientation_class: int) -> np.ndarray:
    """The 1,024 images of one (shape, scale, orientation), packed (1024, 512) in official order."""
    values = factors.factor_values()
    poly = place(shape, values[2][scale_class], values[3][orientation_class])
    rows = _render_sprite(poly).reshape(_COMBO, SIZE)
    return rows.astype(">u8").view(np.uint8).reshape(_COMBO, _PACKED_BYTES)


def _combos() -> Iterator[tuple[int, int, int]]:
    for shape in range(factors.FACTOR_SIZES[1]):
        for scale in range(factors.FACTOR_SIZES[2]):
            for orientation in range(factors.FACTOR_SIZES[3]):
                yield shape, scale, orientation


def render_packed() -> np.ndarray:
    """Every image flattened row-major and `np.packbits`-ed (737280, 512): the training form."""
    packed = np.empty((factors.N_IMAGES, _PACKED_BYTES), dtype=np.uint8)
    for n, combo in enumerate(_combos()):
        packed[n * _COMBO : (n + 1) * _COMBO] = render_sprites(*combo)
    return packed


def iter_blocks(block: int = 40 * _COMBO) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start index, uint8 images (n, 64, 64)) covering the set in official order.

    `block` (a multiple of 1,024) bounds memory: the default, one (shape, scale), is 168 MB.
    """
    if block <= 0 or block % _COMBO:
        raise ValueError(f"block must be a positive multiple of {_COMBO}, got {block}")
    per = block // _COMBO
    combos = list(_combos())
    for first in range(0, len(combos), per):
        part = [render_sprites(*c) for c in combos[first : first + per]]
        packed = np.concatenate(part)
        yield first * _COMBO, np.unpackbits(packed, axis=-1).reshape(-1, SIZE, SIZE)


def write_hdf5(path: Path, *, level: int = 3, threads: int | None = None) -> None:
    """Render the set into `path` in the official HDF5 layout, atomically.

    Datasets `imgs` (uint8), `latents/classes` (int64) and `latents/values` (float64), gzip
    compressed (plain h5py reads them, no plugins). Chunks are deflated on `threads` threads
    (zlib releases the GIL) and written with `write_direct_chunk`, which keeps the whole job
    within a minute on two cores. The file appears at `path` only once complete.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    workers = threads or min(4, os.cpu_count() or 1)
    try:
        with h5py.File(tmp, "w") as f, ThreadPoolExecutor(workers) as pool:
            f.attrs["generator"] = GENERATOR
            f.attrs["renderer_version"] = RENDERER_VERSION
            imgs = f.create_dataset(
                "imgs", shape=(factors.N_IMAGES, SIZE, SIZE), dtype=np.uint8,
                chunks=(_HDF5_CHUNK, SIZE, SIZE), compression="gzip", compression_opts=level,
            )
            f.create_dataset("latents/classes", data=factors.all_classes(), chunks=(40960, 6),
                             compression="gzip", compression_opts=level)
            f.create_dataset("latents/values", data=factors.all_values(), chunks=(40960, 6),
                             compression="gzip", compression_opts=level)
            # One block deflates on the pool while the next one renders.
            pending: deque = deque()
            for start, images in iter_blocks():
                submitted = [
                    (start + i, pool.submit(zlib.compress, images[i : i + _HDF5_CHUNK], level))
                    for i in range(0, len(images), _HDF5_CHUNK)
                ]
                while pending:
                    offset, job = pending.popleft()
                    imgs.id.write_direct_chunk((offset, 0, 0), job.result())
                pending.extend(submitted)
            while pending:
                offset, job = pending.popleft()
                imgs.id.write_direct_chunk((offset, 0, 0), job.result())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _centroid(poly: np.ndarray) -> np.ndarray:
    """Area centroid of a simple polygon (2,)."""
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)


def best_iou(frames: np.ndarray, packed: np.ndarray, *, reach: float = 2.5) -> np.ndarray:
    """Best IoU of each reference frame (n, 64, 64) against the rendered set `packed` (n,).

    Every (shape, scale, orientation) is tried at the positions whose sprite centroid lies
    within `reach` px of the frame's centroid in both axes (farther ones cannot overlap well);
    IoU is counted on packed bits.
    """
    frames = np.asarray(frames).astype(bool)
    bits = np.packbits(frames.reshape(len(frames), -1), axis=-1)
    area = np.bitwise_count(bits).sum(axis=1)
    pos = centres()
    values = factors.factor_values()
    offsets = np.array([_centroid(place(shape, values[2][scale], values[3][orientation]))
                        for shape, scale, orientation in _combos()])  # (combos, 2)
    best = np.zeros(len(frames))
    for n in np.nonzero(area)[0]:
        r, c = np.nonzero(frames[n])
        target = np.array([c.mean(), r.mean()]) + PIXEL_CENTRE
        near_x = np.abs(pos[None, :] + offsets[:, :1] - target[0]) <= reach  # (combos, posX)
        near_y = np.abs(pos[None, :] + offsets[:, 1:] - target[1]) <= reach  # (combos, posY)
        index = np.flatnonzero(near_x[:, :, None] & near_y[:, None, :])
        if index.size == 0:
            continue
        cand = packed[index]
        inter = np.bitwise_count(cand & bits[n]).sum(axis=1)
        union = np.bitwise_count(cand).sum(axis=1) + area[n] - inter
        best[n] = (inter / union).max()
    return best
