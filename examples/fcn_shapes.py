"""Semantic segmentation with a fully convolutional network on synthetic shapes.

    python examples/fcn_shapes.py                    # 32x32 images, 2,000 to train
    python examples/fcn_shapes.py --size 16 --epochs 9     # 16x16: about 15 s
    python examples/fcn_shapes.py --backend cuda

Each image holds one to three non-overlapping disks and squares of random colours and sizes
on a noisy background of random colour; colour says nothing about the class, so the network
has to learn shapes. Every pixel is labelled 0 (background), 1 (disk) or 2 (square).
``xpnet.applications.fcn`` (an encoder of convolutions and pooling, a decoder of transposed
convolutions with skip connections) learns a per-pixel softmax with sparse categorical
cross-entropy; the script reports pixel accuracy and the intersection over union of each
class on held-out images.
"""

import argparse
import time

import numpy as np

from xpnet import applications
from xpnet import keras

CLASSES = ("background", "disk", "square")


def make_shapes(n, size=32, seed=0, max_shapes=3):
    """``(images (n, size, size, 3) float32 in [0, 1], masks (n, size, size) int64)``.

    One to ``max_shapes`` disks and squares per image, radius 3 to ``size / 4``, never
    overlapping, each in a random colour at least 0.5 away from the background's.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.zeros((n, size, size), np.int64)
    for i in range(n):
        background = rng.uniform(0, 1, 3)
        image = background + rng.normal(0, 0.05, (size, size, 3))
        for _ in range(rng.integers(1, max_shapes + 1)):
            kind = rng.integers(1, 3)
            r = rng.uniform(3.0, max(size / 4, 4.0))
            cy, cx = rng.uniform(r, size - r, 2)
            if kind == 1:
                inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
            else:
                inside = (np.abs(rows - cy) <= r * 0.9) & (np.abs(cols - cx) <= r * 0.9)
            if (masks[i][inside] != 0).any():  # no overlaps: each shape stays whole
                continue
            colour = rng.uniform(0, 1, 3)
            while np.linalg.norm(colour - background) < 0.5:
                colour = rng.uniform(0, 1, 3)
            image[inside] = colour + rng.normal(0, 0.05, (int(inside.sum()), 3))
            masks[i][inside] = kind
        images[i] = np.clip(image, 0, 1)
    return images, masks


def segmentation_scores(masks, predicted, classes=3):
    """``(pixel accuracy, [IoU per class])``."""
    accuracy = float((masks == predicted).mean())
    ious = []
    for c in range(classes):
        union = np.logical_or(masks == c, predicted == c).sum()
        inter = np.logical_and(masks == c, predicted == c).sum()
        ious.append(float(inter / union) if union else float("nan"))
    return accuracy, ious


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32, help="image rows and cols")
    parser.add_argument("--train", type=int, default=2000, help="training images")
    parser.add_argument("--test", type=int, default=200, help="held-out images")
    parser.add_argument("--filters", default="16,32,64", help="channels per resolution")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--backend", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    x_train, y_train = make_shapes(args.train, args.size, seed=args.seed)
    x_test, y_test = make_shapes(args.test, args.size, seed=args.seed + 1)
    keras.utils.set_random_seed(args.seed)
    model = applications.fcn(input_shape=(args.size, args.size, 3), classes=len(CLASSES),
                             filters=tuple(int(f) for f in args.filters.split(",")),
                             backend=args.backend)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if not args.quiet:
        model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              verbose=0 if args.quiet else 2)
    took = time.perf_counter() - start
    predicted = model.predict(x_test, batch_size=100, verbose=0).argmax(axis=-1)
    accuracy, ious = segmentation_scores(y_test, predicted)
    background = float((y_test == 0).mean())
    print(f"{args.epochs} epochs in {took:.1f} s ({took / args.epochs:.2f} s/epoch)")
    print(f"held-out pixel accuracy {accuracy:.4f} (all-background would score "
          f"{background:.4f}); IoU " + ", ".join(f"{name} {iou:.3f}" for name, iou in
                                                  zip(CLASSES, ious)))
    return accuracy, ious


if __name__ == "__main__":
    main()
