"""Checks of the arguments of ``fit``/``evaluate``/``predict``/``train_on_batch``: sizes,
class weights and input data, each refused with a ValueError naming the argument and the
value received, before any work starts.

Keras 3 is the reference: sizes are positive ints or None; ``class_weight`` is a dict from
class index to a weight; ``x`` is an array (or a list/dict of arrays, one per input), and a
Python list of numbers is refused (Keras 3's ``ArrayDataAdapter`` raises "Expected all
elements of `x` to be array-like"). Data NumPy would convert lossily or by guessing
(complex numbers, strings, ragged object arrays) is refused too, naming its dtype.
"""

import math

__all__ = ["check_sizes", "check_class_weight", "check_x"]


def _is_bool(value):
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _is_int(value):
    if _is_bool(value):
        return False
    try:
        return int(value) == value and hasattr(value, "__index__")
    except (TypeError, ValueError, OverflowError):
        return False


def check_sizes(who, what, **sizes):
    """Each of ``sizes`` (``batch_size=...``) a positive int or None; ``epochs`` and
    ``validation_freq`` positive ints and ``initial_epoch`` an int >= 0. Returns nothing."""
    for name, value in sizes.items():
        if value is None and name not in ("epochs", "initial_epoch", "validation_freq"):
            continue
        if name == "validation_freq" and isinstance(value, list) and value and \
                all(_is_int(v) and v >= 1 for v in value):
            continue  # Keras 3: a list of the (1-based) epochs to validate after
        low = 0 if name == "initial_epoch" else 1
        if not _is_int(value) or value < low:
            kind = "an int >= 0" if low == 0 else "a positive int" + \
                ("" if name in ("epochs", "validation_freq") else " or None")
            raise ValueError(f"{who}: {what}() argument {name} must be {kind}. Received: "
                             f"{name}={value!r}")


def check_class_weight(who, class_weight, output_width):
    """``class_weight``: a dict from class index (an int in ``[0, classes)``) to a finite
    weight >= 0, not all 0. ``output_width`` is the model output's last axis (1: binary,
    classes 0 and 1)."""
    if not isinstance(class_weight, dict):
        raise ValueError(f"{who}: class_weight must be a dict mapping class indices to "
                         f"weights, e.g. {{0: 1.0, 1: 5.0}}. Received: class_weight of type "
                         f"{type(class_weight).__name__}")
    classes = 2 if output_width in (None, 1) else output_width
    for key, weight in class_weight.items():
        if not _is_int(key):
            raise ValueError(f"{who}: class_weight keys must be int class indices. "
                             f"Received: key {key!r} ({type(key).__name__})")
        if not 0 <= key < classes:
            raise ValueError(f"{who}: class_weight has class {key!r}, but the model's output "
                             f"has {classes} classes (0 to {classes - 1})")
        if _is_bool(weight) or not isinstance(weight, (int, float)) and \
                not hasattr(weight, "__float__"):
            raise ValueError(f"{who}: class_weight[{key!r}] must be a number. Received: "
                             f"{weight!r}")
        if not math.isfinite(float(weight)) or float(weight) < 0:
            raise ValueError(f"{who}: class_weight[{key!r}] must be a finite weight >= 0 "
                             f"(a negative weight makes training ascend the loss). "
                             f"Received: {weight!r}")
    if class_weight and not any(float(w) > 0 for w in class_weight.values()):
        raise ValueError(f"{who}: every class_weight is 0: nothing would be learned. "
                         f"Received: {class_weight!r}")


# dtype kinds (NumPy's ``dtype.kind``) that are not real numbers
_REFUSED = {"c": "complex numbers (the imaginary part would be dropped; pass np.real(x), "
                 "or the real and imaginary parts as separate features)",
            "U": "strings (convert them to numbers first)",
            "S": "bytes strings (convert them to numbers first)",
            "O": "Python objects (a ragged or mixed-type array; pad it to one shape of "
                 "numbers)",
            "V": "raw records (pass numeric arrays)",
            "M": "datetimes (convert them to numbers first)",
            "m": "time deltas (convert them to numbers first)"}


def check_x(who, what, x, n_inputs):
    """``x``: an array, or a list/tuple/dict of arrays (one per input), of real numbers or
    booleans. A Python list of numbers (or of lists) is refused, as Keras 3 refuses it."""
    if isinstance(x, dict):
        arrays = [(f"x[{k!r}]", a) for k, a in x.items()]
    elif isinstance(x, (list, tuple)):
        loose = [a for a in x if not hasattr(a, "shape")]
        if loose:
            raise ValueError(
                f"{who}: {what}() argument x is a Python {type(x).__name__} of "
                f"{len(x)} element(s), not of arrays (the model has {n_inputs} input(s)): "
                f"pass an array, e.g. x=np.asarray(x, dtype='float32'). Received: an "
                f"element of type {type(loose[0]).__name__}")
        arrays = [(f"x[{i}]", a) for i, a in enumerate(x)]
    else:
        arrays = [("x", x)]
    for name, a in arrays:
        dtype = getattr(a, "dtype", None)
        if dtype is None:
            raise ValueError(f"{who}: {what}() argument {name} must be an array. "
                             f"Received: {type(a).__name__}")
        kind = getattr(dtype, "kind", None) or ("c" if "complex" in str(dtype) else None)
        if kind in _REFUSED:
            raise ValueError(f"{who}: {what}() argument {name} has dtype {dtype}: "
                             f"{_REFUSED[kind]}")
