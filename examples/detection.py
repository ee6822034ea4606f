"""A small Faster R-CNN on the synthetic shapes data set (squares, disks, triangles), on xpnet.

    python examples/detection.py                      # 64x64 images, CPU
    python examples/detection.py --epochs 8 --plot detections.png
    python examples/detection.py --backend cuda       # on the GPU, through CuPy

The detector is :func:`xpnet.applications_detection.faster_rcnn`: three 3x3 convolutions
(stride 4), an RPN with four square anchors per cell, RoIAlign (7x7) and a two-layer box
head, trained jointly with Adam. It prints COCO AP on the test split after every epoch, and
ends with ``test AP50 0.xxx mAP 0.xxx``. ``--plot`` (needs matplotlib, the ``examples``
extra) saves test images with the predicted boxes, labels and scores.
"""

import argparse
import time

from xpnet import optimizers
from xpnet.applications_detection import faster_rcnn
from xpnet.applications_detection import small_backbone
from xpnet.datasets.shapes import CLASS_NAMES
from xpnet.datasets.shapes import load_shapes
from xpnet.detection.metrics import coco_evaluate


def _host(model, preds):
    to = model.backend.to_numpy
    return [{k: to(v) for k, v in p.items()} for p in preds]


def plot(images, preds, targets, path, n=8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, n // 2, figsize=(3 * n // 2, 6.4))
    for ax, img, p, t in zip(axes.flat, images, preds, targets):
        ax.imshow(img)
        ax.set_axis_off()
        for b in t["boxes"]:
            ax.add_patch(plt.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0], b[3] - b[1],
                                       fill=False, color="white", lw=0.8, ls="--"))
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"]):
            if s < 0.5:
                continue
            ax.add_patch(plt.Rectangle((b[0] - 0.5, b[1] - 0.5), b[2] - b[0], b[3] - b[1],
                                       fill=False, color="yellow", lw=1.2))
            ax.text(b[0], b[1] - 1, f"{CLASS_NAMES[int(lab)]} {s:.2f}", color="yellow",
                    fontsize=7, va="bottom")
    fig.suptitle("predictions (yellow, score >= 0.5) and ground truth (white, dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"saved {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default=None)
    ap.add_argument("--plot", default=None, help="save a picture of test detections here")
    args = ap.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_shapes(args.train, args.test,
                                                       args.image_size, seed=args.seed)
    s = args.image_size / 64  # anchors and widths follow the image size
    model = faster_rcnn(small_backbone((16, 32, 64)), num_classes=3,
                        input_shape=(args.image_size, args.image_size, 3),
                        anchor_sizes=tuple(round(a * s) for a in (8, 12, 18, 26)),
                        rpn_filters=32, seed=args.seed, backend=args.backend)
    opt = optimizers.Adam(args.lr)
    model.compile(opt)
    print(f"faster_rcnn: {model.count_params()} parameters, {args.train} training and "
          f"{args.test} test images of {args.image_size}x{args.image_size}")
    decay_at = max(1, round(args.epochs * 0.75))
    for epoch in range(args.epochs):
        if epoch == decay_at:
            opt.learning_rate = args.lr / 10
        t = time.perf_counter()
        logs = model.fit(x_train, y_train, epochs=1, batch_size=args.batch_size,
                         seed=args.seed + epoch, verbose=0)[0]
        dt = time.perf_counter() - t
        preds = model.predict(x_test)
        r = coco_evaluate(preds, y_test, 3)
        print(f"epoch {epoch + 1}/{args.epochs} {dt:.1f} s loss "
              + " ".join(f"{k} {v:.3f}" for k, v in logs.items())
              + f" | test AP50 {r['ap50']:.3f} AP75 {r['ap75']:.3f} mAP {r['map']:.3f} "
              + " ".join(f"{CLASS_NAMES[c]} {v:.3f}" for c, v in r["per_class"].items()),
              flush=True)
    if args.plot:
        plot(x_test[:8], _host(model, preds[:8]), y_test[:8], args.plot)
    print(f"test AP50 {r['ap50']:.3f} mAP {r['map']:.3f}")
    return r


if __name__ == "__main__":
    main()
