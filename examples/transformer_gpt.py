"""A character-level GPT (decoder-only Transformer, causal self-attention) trained on the
Python standard library's own source code, read at run time; reports validation bits per
character and samples text.

    python examples/transformer_gpt.py                   # about 20-40 s on 2 cores
    python examples/transformer_gpt.py --epochs 4 --width 192

A functional Keras model trained with ``compile`` and ``fit`` on windows of ``context``
characters (one every ``stride`` characters; the target is the window shifted by one).
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

from xpnet import keras

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


def windows(data, context, stride):
    """Inputs and next-character targets, ``(n, context)`` each, one window every
    ``stride`` characters."""
    starts = np.arange(0, len(data) - context - 1, stride)
    chunk = data[starts[:, None] + np.arange(context + 1)[None, :]]
    return chunk[:, :-1], chunk[:, 1:]


def build_model(context, width, heads, depth):
    """Token and position embeddings, causal decoder blocks (no cross-attention, the
    normalisation first, as GPT-2), a final layer norm and a vocabulary head; any input
    length up to ``context``."""
    layers = keras.layers
    ids = keras.Input((None,), dtype="int64")
    x = layers.TokenAndPositionEmbedding(VOCAB, context, width)(ids)
    for _ in range(depth):
        x = layers.TransformerDecoder(2 * width, heads, normalize_first=True)(x)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    return keras.Model(ids, layers.Dense(VOCAB)(x), name="gpt")


def sample(model, prompt, n, context, rng, temperature=0.8):
    """Continue ``prompt`` by ``n`` characters, each drawn from the model's softmax at the
    last position of the (up to ``context``) characters so far."""
    table = {c: i for i, c in enumerate(CHARS)}
    ids = [table.get(c, UNKNOWN) for c in prompt]
    for _ in range(n):
        x = np.array([ids[-context:]], dtype=np.int64)
        logits = keras.ops.convert_to_numpy(model(x, training=False))
        z = logits[0, -1].astype(np.float64) / temperature
        p = np.exp(z - z.max())
        ids.append(int(rng.choice(VOCAB, p=p / p.sum())))
    return "".join(CHARS[i] if i < len(CHARS) else "?" for i in ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--chars", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    data = load_text(args.chars)
    split = int(len(data) * 0.9)
    x_train, y_train = windows(data[:split], args.context, args.stride)
    x_val, y_val = windows(data[split:], args.context, args.context)
    model = build_model(args.context, args.width, args.heads, args.depth)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    print(f"{model.count_params()} parameters; {split} training characters "
          f"({len(x_train)} windows) and {len(data) - split} validation characters of the "
          f"standard library's source")
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_data=(x_val, y_val), verbose=2)
    print(f"fit: {(time.perf_counter() - start) / args.epochs:.1f} s per epoch "
          f"(validation included)")
    bpc = history.history["val_loss"][-1] / math.log(2)
    print(f"validation: {bpc:.3f} bits per character")
    print("sample:\n" + sample(model, "def ", 200, args.context,
                               np.random.default_rng(args.seed)))
    print(f"total {time.perf_counter() - start:.1f} s")
    return bpc


if __name__ == "__main__":
    main()
