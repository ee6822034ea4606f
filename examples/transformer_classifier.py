"""Sequence classification with a ``TransformerEncoder`` and a padding mask: synthetic
"reviews" of 8 to 48 words, positive when they hold more of the 5 positive words than of
the 5 negative ones.

    python examples/transformer_classifier.py             # 20-40 s on 2 cores

Word 0 is padding: ``TokenAndPositionEmbedding(mask_zero=True)`` makes the mask, the
encoder's self-attention ignores padded keys, and the average over time counts only the
real words (a masked mean), so the prediction does not depend on how much padding a
sequence has (checked at the end: the same reviews padded to twice the length).
"""

import argparse
import time

import numpy as np
from transformer_utils import Trainer

from xpnet import kernels
from xpnet import layers
from xpnet import optimizers
from xpnet.backend import get_backend
from xpnet.kernels import threads
from xpnet.utils import set_random_seed

VOCAB, POSITIVE, NEGATIVE = 60, range(1, 6), range(6, 11)


def make_data(rng, n, max_len):
    x = np.zeros((n, max_len), dtype=np.int64)
    y = np.zeros(n, dtype=np.int64)
    i = 0
    while i < n:
        length = rng.integers(8, max_len + 1)
        words = rng.integers(11, VOCAB, size=length)
        k = rng.integers(1, 6)
        pos = rng.integers(0, k + 1)
        spots = rng.choice(length, size=k, replace=False)
        words[spots[:pos]] = rng.choice(list(POSITIVE), size=pos)
        words[spots[pos:]] = rng.choice(list(NEGATIVE), size=k - pos)
        if 2 * pos == k:
            continue  # no ties
        x[i, :length], y[i] = words, int(2 * pos > k)
        i += 1
    return x, y


class Classifier:
    def __init__(self, backend, max_len, width=64, heads=4, ff=128):
        self.embed = layers.TokenAndPositionEmbedding(VOCAB, max_len, width, mask_zero=True)
        self.encoder = layers.TransformerEncoder(ff, heads)
        self.head = layers.Dense(2)
        self.embed.build_on(backend, (None, max_len))
        self.encoder.build_on(backend, (None, max_len, width))
        self.head.build_on(backend, (None, width))

    def parts(self):
        return [self.embed, self.encoder, self.head]

    def forward(self, ids, training=False):
        xp = ids.__array_namespace__()
        mask = self.embed.compute_mask(ids)
        x, c1 = self.embed.forward(ids)
        x, c2 = self.encoder.forward(x, padding_mask=mask, training=training)
        w = xp.astype(mask, x.dtype)
        w = w / xp.sum(w, axis=1, keepdims=True)  # masked mean over the real words
        pooled = xp.sum(x * w[..., None], axis=1)
        logits, c3 = self.head.forward(pooled)
        return logits, (c1, c2, c3, w)

    def backward(self, ctx, dlogits):
        c1, c2, c3, w = ctx
        dpooled = self.head.backward(c3, dlogits)
        dx = dpooled[:, None, :] * w[..., None]
        self.embed.backward(c1, self.encoder.backward(c2, dx))


def accuracy(model, backend, x, y, batch=500):
    xp = backend.xp
    hits = 0
    for i in range(0, len(x), batch):
        logits, _ = model.forward(backend.asarray(x[i:i + batch]))
        hits += int(np.sum(backend.to_numpy(xp.argmax(logits, axis=1)) == y[i:i + batch]))
    return hits / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=48)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_random_seed(args.seed)
    backend = get_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(rng, 8000, args.max_len)
    x_test, y_test = make_data(np.random.default_rng(args.seed + 1), 2000, args.max_len)
    model = Classifier(backend, 2 * args.max_len)
    trainer = Trainer(model.parts(), optimizers.Adam(learning_rate=1e-3))
    start = time.perf_counter()
    with backend.limit_threads(1), threads.using(threads.available()):
        for step in range(args.steps):
            idx = rng.integers(0, len(x_train), size=args.batch_size)
            xb, yb = backend.asarray(x_train[idx]), backend.asarray(y_train[idx])

            def run():
                logits, ctx = model.forward(xb, training=True)
                loss, dz = kernels.softmax_cross_entropy(logits, yb)
                model.backward(ctx, dz)
                return loss
            loss = trainer.step(run)
            if (step + 1) % 200 == 0:
                print(f"step {step + 1}: loss {float(backend.xp.mean(loss)):.4f} "
                      f"({time.perf_counter() - start:.1f} s)")
        acc = accuracy(model, backend, x_test, y_test)
        wide = np.zeros((len(x_test), 2 * args.max_len), dtype=np.int64)
        wide[:, :args.max_len] = x_test
        acc_wide = accuracy(model, backend, wide, y_test)
    print(f"test accuracy {acc:.4f}; the same reviews with twice the padding: {acc_wide:.4f}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return acc, acc_wide


if __name__ == "__main__":
    main()
