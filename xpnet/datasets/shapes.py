"""A synthetic detection data set made offline: filled squares, disks and triangles of
several sizes and colours, some overlapping, on a noisy background, with their boxes and
labels. Like :mod:`xpnet.datasets`, this is host-side data preparation and uses NumPy.

Labels are 1-based (0 is the background, as torchvision's detectors expect):
1 = square, 2 = disk, 3 = triangle.
"""

import numpy as np

__all__ = ["CLASS_NAMES", "synthetic_shapes", "load_shapes"]

CLASS_NAMES = ("background", "square", "disk", "triangle")


def _mask(kind, size, rng):
    """Boolean (size, size) mask of one shape filling its box."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if kind == 1:
        return np.ones((size, size), dtype=bool)
    if kind == 2:
        r = size / 2
        return (yy - r) ** 2 + (xx - r) ** 2 <= r * r
    # an isosceles triangle pointing up or down, base on the box's edge
    t = yy / size if rng.random() < 0.5 else 1 - yy / size
    return np.abs(xx - size / 2) <= t * size / 2


def _place(boxes, size, image_size, rng, max_iou):
    """Top-left corner for a box of ``size`` overlapping earlier ones by IoU <= max_iou."""
    for _ in range(50):
        x, y = rng.integers(0, image_size - size + 1, 2)
        b = np.array([x, y, x + size, y + size], dtype=np.float64)
        if not boxes:
            return b
        o = np.array(boxes)
        w = np.clip(np.minimum(o[:, 2], b[2]) - np.maximum(o[:, 0], b[0]), 0, None)
        h = np.clip(np.minimum(o[:, 3], b[3]) - np.maximum(o[:, 1], b[1]), 0, None)
        inter = w * h
        iou = inter / (size * size + (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]) - inter)
        if iou.max() <= max_iou:
            return b
    return None


def _image(rng, image_size, max_objects, size_range, noise, max_iou):
    bg = rng.uniform(0.0, 0.35, 3)
    img = np.broadcast_to(bg, (image_size, image_size, 3)).copy()
    boxes, labels = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        kind = int(rng.integers(1, 4))
        size = int(rng.integers(size_range[0], size_range[1] + 1))
        b = _place(boxes, size, image_size, rng, max_iou)
        if b is None:
            continue
        m = _mask(kind, size, rng)
        colour = rng.uniform(0.45, 1.0, 3) * (rng.random(3) < 0.8)
        if colour.max() < 0.45:
            colour[int(rng.integers(3))] = rng.uniform(0.6, 1.0)
        x0, y0 = int(b[0]), int(b[1])
        img[y0:y0 + size, x0:x0 + size][m] = colour
        ys, xs = np.nonzero(m)  # the tight box of the drawn pixels
        boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
        labels.append(kind)
    img += rng.normal(0.0, noise, img.shape)
    return (np.clip(img, 0.0, 1.0).astype(np.float32),
            {"boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
             "labels": np.array(labels, dtype=np.int64)})


def synthetic_shapes(n, image_size=64, seed=0, max_objects=5, size_range=None, noise=0.05,
                     max_iou=0.3):
    """``n`` images with one to ``max_objects`` shapes each.

    Parameters
    ----------
    n : int
    image_size : int, default=64
        Side of the square images (64 to 128 in the examples).
    seed : int, default=0
        The generator's seed: the same seed gives the same images.
    max_objects : int, default=5
    size_range : (int, int), default=None
        Shape sizes in pixels; default ``(image_size // 6, image_size // 2.5)``.
    noise : float, default=0.05
        Standard deviation of the Gaussian pixel noise.
    max_iou : float, default=0.3
        Largest overlap (IoU) between two shapes' boxes; later shapes occlude earlier ones.

    Returns
    -------
    images : ndarray (n, image_size, image_size, 3) float32 in [0, 1]
    targets : list of dict
        ``boxes`` (G, 4) float32 as ``(x1, y1, x2, y2)`` in pixels, ``labels`` (G,) int64.
    """
    if size_range is None:
        size_range = (image_size // 6, int(image_size / 2.5))
    if not 0 < size_range[0] <= size_range[1] <= image_size:
        raise ValueError(f"synthetic_shapes: size_range must lie in (0, {image_size}], "
                         f"got size_range={size_range!r}")
    rng = np.random.default_rng(seed)
    pairs = [_image(rng, image_size, max_objects, size_range, noise, max_iou)
             for _ in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def load_shapes(n_train=1000, n_test=200, image_size=64, seed=0, **kwargs):
    """``(train, test)``, each ``(images, targets)`` from :func:`synthetic_shapes`, the
    test split drawn from a different seed (``seed + 1``) than the training split."""
    return (synthetic_shapes(n_train, image_size, seed=2 * seed, **kwargs),
            synthetic_shapes(n_test, image_size, seed=2 * seed + 1, **kwargs))
