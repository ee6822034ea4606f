"""A character-level GPT (decoder-only Transformer, causal self-attention) trained on the
Python standard library's own source code, read at run time; reports validation bits per
character and samples text.

    python examples/transformer_gpt.py                   # 30-60 s on 2 cores
    python examples/transformer_gpt.py --steps 2000 --width 192

The text is the stdlib's top-level ``*.py`` files in sorted order (the last 10 % of the
characters are held out for validation). Characters outside printable ASCII map to one
"unknown" id. Bits per character = mean cross-entropy / ln 2 (a uniform guess over the
~97 ids is 6.6 bits; gzip gets about 2).
"""

import argparse
import math
import os
import time

import numpy as np
from transformer_utils import Trainer
from transformer_utils import sequence_loss

from xpnet import layers
from xpnet import optimizers
from xpnet.backend import get_backend
from xpnet.kernels import threads
from xpnet.utils import set_random_seed

CHARS = "\n\t" + "".join(chr(c) for c in range(32, 127))
UNKNOWN = len(CHARS)
VOCAB = len(CHARS) + 1


def load_text(max_chars):
    """Ids of the first ``max_chars`` characters of the stdlib's top-level modules."""
    root = os.path.dirname(os.__file__)
    parts, total = [], 0
    for name in sorted(os.listdir(root)):
        if name.endswith(".py") and total < max_chars:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
            total += len(parts[-1])
    text = "".join(parts)[:max_chars]
    table = {c: i for i, c in enumerate(CHARS)}
    return np.array([table.get(c, UNKNOWN) for c in text], dtype=np.int64)


class GPT:
    """Token and position embeddings, causal decoder blocks (no cross-attention), a head."""

    def __init__(self, backend, context, width, heads, depth):
        self.embed = layers.TokenAndPositionEmbedding(VOCAB, context, width)
        self.blocks = [layers.TransformerDecoder(2 * width, heads, normalize_first=True)
                       for _ in range(depth)]
        self.norm = layers.LayerNormalization(epsilon=1e-5)
        self.head = layers.Dense(VOCAB)
        self.embed.build_on(backend, (None, context))
        for block in self.blocks:
            block.build_on(backend, (None, context, width))
        self.norm.build_on(backend, (None, context, width))
        self.head.build_on(backend, (None, context, width))

    def parts(self):
        return [self.embed, *self.blocks, self.norm, self.head]

    def forward(self, ids, training=False):
        x, c_embed = self.embed.forward(ids)
        ctxs = []
        for block in self.blocks:
            x, c = block.forward(x, training=training)
            ctxs.append(c)
        x, c_norm = self.norm.forward(x)
        logits, c_head = self.head.forward(x)
        return logits, (c_embed, ctxs, c_norm, c_head)

    def backward(self, ctx, dlogits):
        c_embed, ctxs, c_norm, c_head = ctx
        d = self.norm.backward(c_norm, self.head.backward(c_head, dlogits))
        for block, c in zip(reversed(self.blocks), reversed(ctxs)):
            d = block.backward(c, d)
        self.embed.backward(c_embed, d)


def windows(data, starts, context):
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    chunk = data[idx]
    return chunk[:, :-1], chunk[:, 1:]


def bits_per_char(model, backend, data, context, batch=64):
    """Mean cross-entropy in bits over non-overlapping windows of the validation text."""
    xp = backend.xp
    starts = np.arange(0, len(data) - context - 1, context)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x, y = windows(data, starts[i:i + batch], context)
        logits, _ = model.forward(backend.asarray(x))
        y_dev = backend.asarray(y)
        loss, _ = sequence_loss(logits, y_dev, xp.ones(y_dev.shape, dtype=xp.bool))
        total += float(loss) * y.size
        count += y.size
    return total / count / math.log(2)


def sample(model, backend, prompt, n, context, rng, temperature=0.8):
    """Continue ``prompt`` by ``n`` characters drawn from the model's softmax."""
    table = {c: i for i, c in enumerate(CHARS)}
    ids = [table.get(c, UNKNOWN) for c in prompt]
    for _ in range(n):
        window = ids[-context:]
        x = np.zeros((1, context), dtype=np.int64)
        x[0, :len(window)] = window
        logits, _ = model.forward(backend.asarray(x))
        z = backend.to_numpy(logits[0, len(window) - 1, :]).astype(np.float64) / temperature
        p = np.exp(z - z.max())
        ids.append(int(rng.choice(VOCAB, p=p / p.sum())))
    return "".join(CHARS[i] if i < len(CHARS) else "?" for i in ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--chars", type=int, default=400_000)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_random_seed(args.seed)
    backend = get_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    data = load_text(args.chars)
    split = int(len(data) * 0.9)
    train, val = data[:split], data[split:]
    model = GPT(backend, args.context, args.width, args.heads, args.depth)
    trainer = Trainer(model.parts(), optimizers.Adam(learning_rate=3e-3))
    print(f"{trainer.count_params()} parameters; {len(train)} training and {len(val)} "
          f"validation characters of the standard library's source")
    start = time.perf_counter()
    with backend.limit_threads(1), threads.using(threads.available()):
        for step in range(args.steps):
            x, y = windows(train, rng.integers(0, len(train) - args.context - 1,
                                               size=args.batch_size), args.context)
            x, y = backend.asarray(x), backend.asarray(y)

            def run():
                logits, ctx = model.forward(x, training=True)
                loss, dz = sequence_loss(logits, y, y >= 0)
                model.backward(ctx, dz)
                return loss
            loss = trainer.step(run)
            if (step + 1) % 100 == 0:
                print(f"step {step + 1}: train {float(loss) / math.log(2):.3f} bits/char "
                      f"({time.perf_counter() - start:.1f} s)")
        bpc = bits_per_char(model, backend, val, args.context)
        print(f"validation: {bpc:.3f} bits per character")
        print("sample:\n" + sample(model, backend, "def ", 200, args.context, rng))
    print(f"total {time.perf_counter() - start:.1f} s")
    return bpc


if __name__ == "__main__":
    main()
