"""A sequence-to-sequence Transformer (encoder-decoder with cross-attention) that learns to
reverse digit strings of 1 to 8 digits, then decodes held-out strings greedily.

    python examples/transformer_seq2seq.py              # about 30-60 s on 2 cores
    python examples/transformer_seq2seq.py --steps 3000

Tokens: 0 padding, 1-10 the digits 0-9, 11 start, 12 end. The encoder reads the digits
(padding masked); the decoder reads start + the reversed digits with a causal mask and
attends to the encoder's output; the loss skips padding. Success: at least 99 % of the
held-out strings reproduced exactly.
"""

import argparse
import time

import numpy as np
from transformer_utils import Trainer
from transformer_utils import sequence_loss

from xpnet import layers
from xpnet import optimizers
from xpnet.backend import get_backend
from xpnet.kernels import threads
from xpnet.utils import set_random_seed

PAD, START, END, VOCAB = 0, 11, 12, 13


def make_data(rng, n, max_len):
    """``(source, decoder_input, target)`` int arrays for ``n`` random digit strings."""
    lengths = rng.integers(1, max_len + 1, size=n)
    src = np.zeros((n, max_len), dtype=np.int64)
    dec = np.zeros((n, max_len + 1), dtype=np.int64)
    tgt = np.zeros((n, max_len + 1), dtype=np.int64)
    for i, n_digits in enumerate(lengths):
        digits = rng.integers(0, 10, size=n_digits) + 1
        src[i, :n_digits] = digits
        out = digits[::-1]
        dec[i, 0], dec[i, 1:n_digits + 1] = START, out
        tgt[i, :n_digits], tgt[i, n_digits] = out, END
    return src, dec, tgt


class Seq2Seq:
    """Token and position embeddings, encoder blocks, decoder blocks, a vocabulary head."""

    def __init__(self, backend, max_len, width=64, heads=4, ff=128, depth=1):
        self.src_embed = layers.TokenAndPositionEmbedding(VOCAB, max_len, width,
                                                          mask_zero=True)
        self.dec_embed = layers.TokenAndPositionEmbedding(VOCAB, max_len + 1, width,
                                                          mask_zero=True)
        self.encoders = [layers.TransformerEncoder(ff, heads) for _ in range(depth)]
        self.decoders = [layers.TransformerDecoder(ff, heads) for _ in range(depth)]
        self.head = layers.Dense(VOCAB)
        self.src_embed.build_on(backend, (None, max_len))
        self.dec_embed.build_on(backend, (None, max_len + 1))
        for block in self.encoders:
            block.build_on(backend, (None, max_len, width))
        for block in self.decoders:
            block.build_on(backend, [(None, max_len + 1, width), (None, max_len, width)])
        self.head.build_on(backend, (None, max_len + 1, width))

    def parts(self):
        return [self.src_embed, self.dec_embed, *self.encoders, *self.decoders, self.head]

    def forward(self, src, dec, training=False):
        src_mask, dec_mask = src != PAD, dec != PAD
        x, c_src = self.src_embed.forward(src)
        c_enc = []
        for block in self.encoders:
            x, c = block.forward(x, padding_mask=src_mask, training=training)
            c_enc.append(c)
        y, c_dec_embed = self.dec_embed.forward(dec)
        c_dec = []
        for block in self.decoders:
            y, c = block.forward(y, x, decoder_padding_mask=dec_mask,
                                 encoder_padding_mask=src_mask, training=training)
            c_dec.append(c)
        logits, c_head = self.head.forward(y)
        return logits, (c_src, c_enc, c_dec_embed, c_dec, c_head)

    def backward(self, ctx, dlogits):
        c_src, c_enc, c_dec_embed, c_dec, c_head = ctx
        dy = self.head.backward(c_head, dlogits)
        dx = 0.0
        for block, c in zip(reversed(self.decoders), reversed(c_dec)):
            dy, denc = block.backward(c, dy)
            dx = dx + denc
        self.dec_embed.backward(c_dec_embed, dy)
        for block, c in zip(reversed(self.encoders), reversed(c_enc)):
            dx = block.backward(c, dx)
        self.src_embed.backward(c_src, dx)


def greedy_decode(model, backend, src, max_len):
    """Feed the model its own most likely token, one step at a time (the whole batch)."""
    xp = backend.xp
    n = src.shape[0]
    dec = np.zeros((n, max_len + 1), dtype=np.int64)
    dec[:, 0] = START
    out = np.zeros((n, max_len + 1), dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    for t in range(max_len + 1):
        logits, _ = model.forward(backend.asarray(src), backend.asarray(dec))
        token = backend.to_numpy(xp.argmax(logits[:, t, :], axis=-1))
        token = np.where(done, PAD, token)
        out[:, t] = token
        done |= token == END
        if t + 1 <= max_len:
            dec[:, t + 1] = np.where(done, PAD, token)
    return out


def exact_match(pred, tgt):
    """Fraction of rows whose tokens up to and including the end token all match."""
    keep = tgt != PAD
    return float(np.mean(np.all((pred == tgt) | ~keep, axis=1)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=8)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_random_seed(args.seed)
    backend = get_backend(args.backend)
    rng = np.random.default_rng(args.seed)
    train = make_data(rng, args.steps * args.batch_size // 4, args.max_len)
    test = make_data(np.random.default_rng(args.seed + 1), 2000, args.max_len)
    seen = {tuple(r) for r in train[0]}
    fresh = np.array([tuple(r) not in seen for r in test[0]])
    test = tuple(a[fresh] for a in test)
    model = Seq2Seq(backend, args.max_len)
    trainer = Trainer(model.parts(), optimizers.Adam(learning_rate=2e-3))
    print(f"{trainer.count_params()} parameters; {len(train[0])} training strings, "
          f"{len(test[0])} held-out strings never seen in training")
    start = time.perf_counter()
    with backend.limit_threads(1), threads.using(threads.available()):
        for step in range(args.steps):
            idx = rng.integers(0, len(train[0]), size=args.batch_size)
            src, dec, tgt = (backend.asarray(a[idx]) for a in train)

            def run():
                logits, ctx = model.forward(src, dec, training=True)
                loss, dz = sequence_loss(logits, tgt, tgt != PAD)
                model.backward(ctx, dz)
                return loss
            loss = trainer.step(run)
            if (step + 1) % 250 == 0:
                print(f"step {step + 1}: loss {float(loss):.4f} "
                      f"({time.perf_counter() - start:.1f} s)")
        pred = greedy_decode(model, backend, test[0], args.max_len)
    acc = exact_match(pred, test[2])
    print(f"held-out exact match (greedy decoding): {acc:.4f}")
    for i in range(3):
        digits = "".join(str(d - 1) for d in test[0][i] if d)
        out = "".join(str(d - 1) for d in pred[i] if 0 < d < START)
        print(f"  {digits} -> {out}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    main()
