"""Variable-length sequence classification with a mask, in the Keras API, on xpnet:
Embedding(mask_zero=True) > Bidirectional(LSTM) > Dense(sigmoid), trained with and without
the mask on a task this script generates.

    python examples/sentiment.py                 # both models, side by side
    python examples/sentiment.py --epochs 8 --backend cuda

The task: "reviews" of 10 to 40 tokens over a vocabulary of 60 words, of which words 1-5 are
positive and 6-10 negative; a review is positive when it holds more positive than negative
words (an odd number, 3 to 9, at random places). Reviews are padded with 0 to 80 steps
(``pad_sequences(..., padding="post")``), then each is shifted by a random number of steps,
so padding of varying length lies on both sides of it
(``pad_sequences(..., padding="post")``) to 80 steps, so the padding varies from 0 to 76
steps. With ``mask_zero=True`` the LSTMs skip the padding (the forward direction's output is
its state at the review's last word); without it they must learn to carry their state
through up to 76 padding steps, and do measurably worse in the same number of epochs.
"""

import argparse
import time

import numpy as np

from xpnet import keras

VOCAB, MAXLEN, POSITIVE, NEGATIVE = 60, 80, range(1, 6), range(6, 11)


def make_reviews(n, rng):
    """``n`` token lists and their labels (1: more positive than negative words)."""
    reviews, labels = [], []
    for _ in range(n):
        length = int(rng.integers(10, MAXLEN // 2 + 1))
        words = rng.integers(11, VOCAB, length)
        k = int(rng.integers(1, 5)) * 2 + 1  # an odd count, 3-9, at random places: no ties
        places = rng.choice(length, k, replace=False)
        words[places] = rng.integers(1, 11, k)
        reviews.append(words.tolist())
        labels.append(int(np.isin(words, POSITIVE).sum() > k / 2))
    return reviews, np.array(labels, dtype=np.float32)[:, None]


def build_model(mask_zero, backend):
    return keras.Sequential([
        keras.Input(shape=(MAXLEN,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 16, mask_zero=mask_zero),
        keras.layers.Bidirectional(keras.layers.LSTM(32)),
        keras.layers.Dense(1, activation="sigmoid"),
    ], backend=backend)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    reviews, y = make_reviews(args.train + args.test, rng)
    x = keras.utils.pad_sequences(reviews, maxlen=MAXLEN, padding="post")
    for row, review in zip(x, reviews):  # padding on both sides, of varying lengths
        row[:] = np.roll(row, int(rng.integers(0, MAXLEN - len(review) + 1)))
    x_train, y_train, x_test, y_test = x[:args.train], y[:args.train], x[args.train:], \
        y[args.train:]
    results = {}
    for mask_zero in (True, False):
        keras.utils.set_random_seed(args.seed)
        model = build_model(mask_zero, args.backend)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                      loss="binary_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
        p = model.predict(x_test, batch_size=500, verbose=0).ravel()
        results[mask_zero] = float(((p > 0.5) == (y_test.ravel() > 0.5)).mean())
        print(f"mask_zero={mask_zero!s:5}: test accuracy {results[mask_zero]:.4f} "
              f"({args.epochs} epochs, {time.perf_counter() - start:.1f} s)", flush=True)
    print(f"the mask is worth {100 * (results[True] - results[False]):+.1f} points")
    return results


if __name__ == "__main__":
    main()
