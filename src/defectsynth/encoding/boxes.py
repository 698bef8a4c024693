"""BASD and C-BASD box maps (Simoni & Pelosin, section 3.2 and Algorithm 1), and the boxmask ablation.

Definitions (implemented exactly; ``defectsynth.encoding.reference`` is a literal, slow reading of
the same text that the tests compare against):

- A box is ``[x_min, y_min, x_max, y_max]`` in integer pixels, half-open: it covers
  ``mask[y_min:y_max, x_min:x_max]``. Geometry is continuous: pixel (row i, column j) is the point
  (j + 0.5, i + 0.5) and the box is the rectangle [x_min, x_max] x [y_min, y_max].
- BASD at a pixel inside at least one box: + the smallest distance from the pixel to the edge of a
  box that contains it (always >= 0.5). Outside every box: - the Euclidean distance to the nearest
  box. Divided by the image diagonal sqrt(H^2 + W^2). No boxes: every pixel is -1.
- C-BASD, ``class_fill="inside"`` (default; the paper's text and public code): inside boxes, the
  class of the box that gave the BASD value (ties: the box listed first); 0 outside all boxes.
  ``class_fill="nearest"`` (the paper's Algorithm 1): outside pixels take the class of the nearest
  box (ties: the box listed first).
- boxmask (the ablation baseline): occupancy (+1 inside any box, -1 outside) and a class map filled
  box by box, larger boxes first, so that smaller boxes are drawn last (on top; equal areas: the
  box listed later is drawn later).

How it is computed, exactly and without a loop over pixels or boxes: in doubled coordinates
(pixel centres 2j + 1, box edges 2 x_min, 2 x_max) every distance is an integer. Per box and
axis, ``a = min(centre - 2 lo, 2 hi - centre)`` is odd, positive inside the box's span; a pixel
lies inside box k when both axes are positive, its inside distance is ``min(a_x, a_y) / 2`` and
its squared outside distance ``(relu(-a_x)^2 + relu(-a_y)^2) / 4``. Each box/pixel pair gets an
integer key ``(distance << s) | k`` (k the box's position in the list, k < 2**s), so one
``amin`` over the box axis finds both the winning distance and, on ties, the box listed first.
The (N, H, W) keys are built from (N, W) and (N, H) rows by broadcasting, in the narrowest integer
type that holds them, chunk by chunk of boxes; decoding uses only integer ops and one lookup.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from defectsynth.encoding._tensors import as_tensor
from defectsynth.encoding.analog_bits import encode_bits_torch

CLASS_FILLS = ("inside", "nearest")
CONDITIONS = ("basd", "boxmask")
_CHUNK_ELEMENTS = 1 << 22  # (boxes x pixels) per chunk: at most 32 MiB of keys


def _as_tensors(xyxy, classes, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Validated ``(N, 4)`` int64 boxes and ``(N,)`` int64 classes on ``xyxy``'s device, and the
    size as ints (ValueError: a caller's bug; user input is validated when a dataset is read)."""
    height, width = int(height), int(width)
    xyxy = as_tensor(xyxy).to(torch.int64).reshape(-1, 4)
    classes = as_tensor(classes, xyxy.device).to(torch.int64).reshape(-1)
    if len(xyxy) != len(classes):
        raise ValueError(f"{len(xyxy)} boxes but {len(classes)} classes")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    for x0, y0, x1, y1 in xyxy.tolist():  # a few boxes: Python is cheaper than tensor ops here
        if not 0 <= x0 < x1 <= width or not 0 <= y0 < y1 <= height:
            raise ValueError(f"boxes must be non-empty and inside the {width}x{height} image, got {[x0, y0, x1, y1]}")
    if not all(0 <= c <= 255 for c in classes.tolist()):
        raise ValueError(f"box classes must lie in 0..255, got {classes.tolist()}")
    return xyxy, classes, height, width


def _axis_distances(xyxy: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Twice the signed distance from pixel centres to the nearer edge, per box and axis.

    Returns ``ax`` (N, W) and ``ay`` (N, H), int64, odd: positive where the column (row) lies in
    the box's span, else minus twice the distance to the span.
    """
    centres_x = 2 * torch.arange(width, device=xyxy.device) + 1
    centres_y = 2 * torch.arange(height, device=xyxy.device) + 1
    b = 2 * xyxy
    ax = torch.minimum(centres_x - b[:, 0:1], b[:, 2:3] - centres_x)
    ay = torch.minimum(centres_y - b[:, 1:2], b[:, 3:4] - centres_y)
    return ax, ay


def _amin_over_boxes(
    add_x: torch.Tensor, add_y: torch.Tensor, min_x: torch.Tensor | None = None, min_y: torch.Tensor | None = None
) -> torch.Tensor:
    """``min_k [add_x[k, j] + add_y[k, i] (+ min(min_x[k, j], min_y[k, i]))]`` as an (H, W) tensor.

    Inputs are (N, W) and (N, H) integer keys of one dtype; the (N, H, W) sum is built in chunks
    of boxes so that memory stays bounded for large images and many boxes.
    """
    n, height, width = add_x.shape[0], add_y.shape[1], add_x.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // (height * width))
    best = None
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        if min_x is None:
            keys = add_x[part, None, :] + add_y[part, :, None]
        else:
            keys = torch.minimum(min_x[part, None, :], min_y[part, :, None])
            keys += add_x[part, None, :]
            keys += add_y[part, :, None]
        low = keys.amin(0)
        best = low if best is None else torch.minimum(best, low)
    return best


def _lookup(classes: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """``classes[box]`` as uint8 for an (H, W) integer ``box`` map; ``box == len(classes)`` reads 0."""
    table = torch.cat([classes, classes.new_zeros(1)]).to(torch.uint8)
    return table.index_select(0, box.reshape(-1).int()).reshape(box.shape)


def _no_boxes(height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The maps of an image without boxes: -1 everywhere (float32) and background (uint8)."""
    return torch.full((height, width), -1.0, device=device), torch.zeros(
        (height, width), dtype=torch.uint8, device=device
    )


def _key_dtype(largest: int) -> torch.dtype:
    """The narrowest integer type holding keys up to ``largest`` (less memory traffic, same result)."""
    return next(dtype for dtype in (torch.int16, torch.int32, torch.int64) if largest <= torch.iinfo(dtype).max)


def basd_maps_torch(
    xyxy, classes, height: int, width: int, class_fill: str = "inside"
) -> tuple[torch.Tensor, torch.Tensor]:
    """BASD and C-BASD maps of one image, on the device of ``xyxy`` (a tensor or an array).

    xyxy: (N, 4) half-open integer pixel boxes inside the image. classes: (N,) class ids (0..255).
    Returns ``basd`` (H, W) float32 in [-1, 1] and ``cbasd`` (H, W) uint8 class ids.
    """
    if class_fill not in CLASS_FILLS:
        raise ValueError(f"class_fill must be one of {CLASS_FILLS}, got {class_fill!r}")
    xyxy, classes, height, width = _as_tensors(xyxy, classes, height, width)
    device, n = xyxy.device, len(xyxy)
    if n == 0:
        return _no_boxes(height, width, device)
    shift = (n - 1).bit_length()  # keys are (distance << shift) | k, k < 2**shift
    ax, ay = _axis_distances(xyxy, height, width)
    index = torch.arange(n, device=device)[:, None]
    # 1. inside: (2 * distance << shift) | k for a containing box; for any other box a key >= limit
    #    whose bits above ``shift`` read exactly 2**p or 2**(p + 1), so they mask to 0 below.
    p = max(height, width).bit_length()  # 2 * inside distance <= min(H, W) < 2**p
    limit = 1 << (p + shift)
    dtype = _key_dtype(3 * limit)
    inside_keys = _amin_over_boxes(
        ((ax < 0) * limit).to(dtype),
        ((ay < 0) * limit).to(dtype),
        ((ax.clamp(min=0) << shift) | index).to(dtype),
        ((ay.clamp(min=0) << shift) | index).to(dtype),
    )
    # 2. outside: (4 * squared distance << shift) | k; inside box k the distance is 0.
    dtype = _key_dtype(4 * (height**2 + width**2 + 2) << shift)
    outside_keys = _amin_over_boxes(
        ((ax.clamp(max=0).square() << shift) | index).to(dtype), (ay.clamp(max=0).square() << shift).to(dtype)
    )
    # 3. decode with integer ops only (torch's boolean masks are slow on the CPU). Exactly one of
    #    the two distances is non-zero at a pixel.
    twice_inside = (inside_keys >> shift) & ((1 << p) - 1)
    four_squared_outside = outside_keys >> shift
    basd = twice_inside.to(torch.float32) - four_squared_outside.to(torch.float32).sqrt_()
    basd *= 0.5 / math.hypot(height, width)
    # 4. class: of the winning containing box, else of the nearest box or of "box n" (background).
    outside = four_squared_outside.clamp(max=1)  # 0 inside a box, else 1
    box_inside = inside_keys & ((1 << shift) - 1)
    box_outside = outside_keys & ((1 << shift) - 1) if class_fill == "nearest" else n
    cbasd = _lookup(classes, box_inside + outside * (box_outside - box_inside))
    return basd, cbasd


def basd_maps(
    xyxy: np.ndarray, classes: np.ndarray, height: int, width: int, class_fill: str = "inside"
) -> tuple[np.ndarray, np.ndarray]:
    """BASD and C-BASD maps of one image (numpy in and out; see :func:`basd_maps_torch`).

    xyxy: (N, 4) half-open integer pixel boxes inside the image. classes: (N,) class ids (0..255).
    Returns ``basd`` (H, W) float32 in [-1, 1] and ``cbasd`` (H, W) uint8 class ids.
    """
    basd, cbasd = basd_maps_torch(xyxy, classes, height, width, class_fill)
    return basd.numpy(), cbasd.numpy()


def boxmask_maps_torch(xyxy, classes, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Occupancy (H, W) float32 (+1 inside any box, -1 outside) and class map (H, W) uint8, on the
    device of ``xyxy``: boxes painted largest first, so smaller boxes are drawn last (on top)."""
    xyxy, classes, height, width = _as_tensors(xyxy, classes, height, width)
    device, n = xyxy.device, len(xyxy)
    if n == 0:
        return _no_boxes(height, width, device)
    ax, ay = _axis_distances(xyxy, height, width)
    # 1. painting order: the box drawn last wins, i.e. the smallest area, then the later one listed.
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    order = torch.argsort(area * n + (n - 1 - torch.arange(n, device=device)))  # winner first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=device)
    # 2. key = rank | (number of axes outside the box's span << shift): the smallest rank wins.
    shift = n.bit_length()  # 2**shift > n
    dtype = _key_dtype(3 << shift)
    keys = _amin_over_boxes(((ax < 0).long() << shift | rank[:, None]).to(dtype), ((ay < 0).long() << shift).to(dtype))
    outside = ((keys >> shift) + 1) >> 1  # 0 inside a box, else 1
    occupancy = (1 - 2 * outside).to(torch.float32)
    winner = keys & ((1 << shift) - 1)
    class_map = _lookup(classes[order], winner + outside * (n - winner))
    return occupancy, class_map


def boxmask_maps(xyxy: np.ndarray, classes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy (+1 inside any box, -1 outside; float32 (H, W)) and class map (uint8 (H, W)),
    filled box by box with larger boxes first, so smaller boxes are drawn last."""
    occupancy, class_map = boxmask_maps_torch(xyxy, classes, height, width)
    return occupancy.numpy(), class_map.numpy()


def condition_channels(
    xyxy, classes, height: int, width: int, num_classes: int, cond: str = "basd", class_fill: str = "inside"
) -> torch.Tensor:
    """The conditioning the box-guided model receives: (1 + bits, H, W) float32 on ``xyxy``'s device.

    Channel 0 is the BASD map (``cond="basd"``) or the occupancy (``cond="boxmask"``); the others
    are the analog bits of the C-BASD (or boxmask) class map, most significant bit first.
    """
    if cond == "basd":
        distance, class_map = basd_maps_torch(xyxy, classes, height, width, class_fill)
    elif cond == "boxmask":
        distance, class_map = boxmask_maps_torch(xyxy, classes, height, width)
    else:
        raise ValueError(f"cond must be one of {CONDITIONS}, got {cond!r}")
    bits = encode_bits_torch(class_map, num_classes).movedim(-1, 0)
    return torch.cat([distance[None], bits])
