"""Ops that force a TFLite file to a fixed size, written while tracing as builtin ones.

TFLite's converter legalizes ``tf.StridedSlice`` with a ``new_axis_mask`` only where the
input's shape is known; keras-hub's attention writes its mask as ``mask[:, None, :, :]`` on a
mask of free length, which then needs Flex (every Llama/Gemma/Qwen/Mistral-style decoder). A
slice that only adds axes is ``ExpandDims``. ``tf.roll`` (shifted-window attention) has no
builtin; it is a gather of ``(i - shift) mod n`` along each rolled axis.

``builtin_lowering()`` rewrites both while a function is traced for TFLite (the float
SavedModel the converter reads), and only then: every other format traces the model as it is.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator


def _expansion_only(key: Any) -> bool:
    items = key if isinstance(key, tuple) else (key,)
    whole = all(k is None or k is Ellipsis or (isinstance(k, slice) and k == slice(None)) for k in items)
    return whole and any(k is None for k in items) and sum(k is Ellipsis for k in items) <= 1


def _expand(tf: Any, x: Any, key: Any) -> Any:
    """``x[key]`` for a key of whole slices, ``None`` and at most one ``...``, as ExpandDims."""
    items = list(key if isinstance(key, tuple) else (key,))
    rank = x.shape.rank
    if rank is None:
        raise ValueError("unknown rank")
    n_real = sum(1 for k in items if k is not None and k is not Ellipsis)
    if Ellipsis in items:
        i = items.index(Ellipsis)
        items[i:i + 1] = [slice(None)] * (rank - n_real)
    else:
        items += [slice(None)] * (rank - n_real)
    for axis, k in enumerate(items):  # output axes, left to right: each None is a new axis there
        if k is None:
            x = tf.expand_dims(x, axis)
    return x


def _roll(tf: Any, x: Any, shift: Any, axis: Any) -> Any:
    """``tf.roll`` as one GATHER per axis of ``(i - shift) mod n``: builtin ops, any length."""
    shifts = list(shift) if isinstance(shift, (list, tuple)) else [shift]
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    for s, a in zip(shifts, axes):
        n = tf.shape(x, out_type=tf.int32)[a]
        idx = tf.math.floormod(tf.range(n, dtype=tf.int32) - tf.cast(s, tf.int32), n)
        x = tf.gather(x, idx, axis=a)
    return x


@contextlib.contextmanager
def builtin_lowering() -> Iterator[None]:
    import tensorflow as tf

    base = tf.Tensor.__getitem__  # every graph and eager tensor class inherits it
    roll = tf.roll

    def getitem(self: Any, key: Any) -> Any:
        if _expansion_only(key):
            try:
                return _expand(tf, self, key)
            except ValueError:
                pass
        return base(self, key)

    def rolled(x: Any, shift: Any, axis: Any, name: Any = None) -> Any:
        return _roll(tf, tf.convert_to_tensor(x), shift, axis)

    try:
        tf.Tensor.__getitem__ = getitem
        tf.roll = rolled
        yield
    finally:
        tf.roll = roll
        tf.Tensor.__getitem__ = base
