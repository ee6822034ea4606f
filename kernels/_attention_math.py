"""Scalar pieces of the fused attention kernels, compiled by both Numba targets (njit and
numba.cuda): the dropout hash that forward and backward replay, and the visibility test of
one (query, key) pair. Every integer is uint64 so no step mixes signed and unsigned types
(Numba would promote that to float)."""

import numpy as np

MAXD = 128  # the CUDA kernels' largest head size (query/key and value)

_M32 = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0x85EBCA6B)
_C2 = np.uint64(0xC2B2AE35)
_S16 = np.uint64(16)
_S13 = np.uint64(13)
_S8 = np.uint64(8)


def fmix(x):
    """MurmurHash3's 32-bit finaliser (on the low 32 bits of a uint64)."""
    x = x ^ (x >> _S16)
    x = (x * _C1) & _M32
    x = x ^ (x >> _S13)
    x = (x * _C2) & _M32
    return x ^ (x >> _S16)


def make_keep(jit):
    """``keep(seed, bh, i, j, threshold)`` compiled with ``jit`` (njit or cuda device):
    whether dropout keeps weight (bh, i, j), ``fmix(fmix(fmix(seed + bh) + i) + j) >> 8 >=
    threshold`` with ``threshold = ceil(rate * 2**24)`` (reference_attention.keep_mask)."""
    mix = jit(fmix)

    def keep(seed, bh, i, j, threshold):
        h = mix((np.uint64(seed) + np.uint64(bh)) & _M32)
        h = mix((h + np.uint64(i)) & _M32)
        h = mix((h + np.uint64(j)) & _M32)
        return (h >> _S8) >= np.uint64(threshold)

    return jit(keep)


HAS_KV, HAS_Q, HAS_FULL = 1, 2, 4  # bits of ``flags``: which masks were given


def visible(kvm, qm, am, flags, b, ab, i, j, causal):
    """Whether query ``i`` of batch row ``b`` sees key ``j``. The masks are uint8 arrays,
    ``kvm`` (B, Tk), ``qm`` (B, Tq), ``am`` (B or 1, Tq, Tk), read only where ``flags``
    says they were given; ``ab`` is ``am``'s batch row."""
    if causal and i < j:
        return False
    if (flags & HAS_KV) and kvm[b, j] == 0:
        return False
    if (flags & HAS_Q) and qm[b, i] == 0:
        return False
    return not ((flags & HAS_FULL) and am[ab, i, j] == 0)
