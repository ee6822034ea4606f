"""A character-level language model in the Keras API, on xpnet, trained on the Python
standard library's own source code (read at run time: no download).

    python examples/char_lm.py                    # 2-layer LSTM(128), 200k characters
    python examples/char_lm.py --cell GRU --epochs 20 --temperature 0.5
    python examples/char_lm.py --backend cuda

Embedding(V, 48) > LSTM(128, return_sequences) > LSTM(128, return_sequences) >
Dense(V, softmax) predicts every next character of 64-character windows (Adam 3e-3, batch
32). It reports the validation bits per character against a unigram model's (the
characters' frequencies), then samples text at a chosen temperature (p ** (1 / T),
renormalised).
"""

import argparse
import math
import os
import sys
import time

import numpy as np

from xpnet import keras

FILES = ["textwrap.py", "string.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py",
         "heapq.py", "calendar.py", "pprint.py", "difflib.py", "argparse.py", "random.py"]


def load_text(n_chars):
    """The first ``n_chars`` characters of a fixed list of standard-library modules."""
    root = os.path.dirname(os.__file__)
    parts = []
    for name in FILES:
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                parts.append(f.read())
    text = "\n".join(parts)
    if len(text) < 10_000:
        sys.exit(f"too little standard-library source found in {root}")
    return text[:n_chars]


def encode(text):
    """Ids (characters seen fewer than 5 times share one id) and the id -> char table."""
    chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32),
                              return_counts=True)
    kept = chars[counts >= 5]
    table = ["\ufffd"] + [chr(c) for c in kept]  # id 0: any rare character
    lookup = {c: i for i, c in enumerate(table)}
    ids = np.array([lookup.get(c, 0) for c in text], dtype=np.int32)
    return ids, table


def windows(ids, length):
    """(inputs, next-character targets), non-overlapping windows of ``length``."""
    n = (len(ids) - 1) // length
    x = ids[:n * length].reshape(n, length)
    y = ids[1:n * length + 1].reshape(n, length)
    return x, y


def unigram_bits(train_ids, val_ids, vocab):
    """Cross-entropy (bits per character) of the training frequencies on the validation
    text, add-one smoothed."""
    counts = np.bincount(train_ids, minlength=vocab) + 1.0
    p = counts / counts.sum()
    return float(-np.mean(np.log2(p[val_ids])))


def build_model(vocab, units, cell, backend):
    rnn = getattr(keras.layers, cell)
    return keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),
        keras.layers.Embedding(vocab, 48),
        rnn(units, return_sequences=True),
        rnn(units, return_sequences=True),
        keras.layers.Dense(vocab, activation="softmax"),
    ], backend=backend)


def sample(model, seed_ids, table, n, temperature, length, rng):
    """``n`` characters drawn one at a time from the model's next-character distribution,
    sharpened (T < 1) or flattened (T > 1) by the temperature."""
    ids = list(seed_ids)
    for _ in range(n):
        context = np.array([ids[-length:]], dtype=np.int32)
        p = model.predict(context, verbose=0)[0, -1].astype(np.float64)
        logp = np.log(np.maximum(p, 1e-12)) / temperature
        p = np.exp(logp - logp.max())
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return "".join(table[i] for i in ids[len(seed_ids):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU"])
    parser.add_argument("--chars", type=int, default=200_000)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    ids, table = encode(load_text(args.chars))
    cut = int(len(ids) * 0.9)
    train, val = ids[:cut], ids[cut:]
    x, y = windows(train, args.length)
    xv, yv = windows(val, args.length)
    baseline = unigram_bits(train, yv.ravel(), len(table))
    print(f"{len(ids):,} characters, vocabulary {len(table)}, {len(x)} training windows; "
          f"unigram baseline {baseline:.3f} bits/char")
    model = build_model(len(table), args.units, args.cell, args.backend)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss="sparse_categorical_crossentropy")
    bits = None
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=args.batch_size, verbose=0)
        bits = model.evaluate(xv, yv, batch_size=256, verbose=0) / math.log(2)
        print(f"epoch {epoch + 1}/{args.epochs}: {time.perf_counter() - start:.1f} s, "
              f"validation {bits:.3f} bits/char (unigram {baseline:.3f})", flush=True)
    rng = np.random.default_rng(args.seed)
    seed_ids = list(val[:args.length])
    print(f"--- seed ---\n{''.join(table[i] for i in seed_ids)}")
    print(f"--- sampled at temperature {args.temperature} ---")
    print(sample(model, seed_ids, table, args.sample, args.temperature, args.length, rng))
    return bits, baseline


if __name__ == "__main__":
    main()
