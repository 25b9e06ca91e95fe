import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.feeds import bind, load_arrays, parse_shapes, random_feeds
from edgekit.specs import TensorSpec

IMG = TensorSpec("image", (None, 4, 4, 3), "float32")
META = TensorSpec("meta", (None, 10), "float32")
TOK = TensorSpec("tokens", (None, 5), "int32", (0, 50))


def test_bind_by_name_regardless_of_order():
    arrays = {"meta": np.ones((2, 10)), "image": np.zeros((2, 4, 4, 3))}
    out = bind(arrays, (IMG, META))
    assert list(out) == ["image", "meta"]
    assert out["meta"].dtype == np.float32


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"image": np.zeros((2, 4, 4, 3)), "meta": np.zeros((2, 10)), "extra": np.zeros(1)}, "no input named 'extra'"),
        ({"image": np.zeros((2, 4, 4, 3))}, "no array for input 'meta'"),
        ({"image": np.zeros((2, 4, 4)), "meta": np.zeros((2, 10))}, "expects (batch, 4, 4, 3)"),
        ({"image": np.zeros((2, 4, 4, 3)), "meta": np.zeros((3, 10))}, "different batch sizes"),
        ({"image": np.array([["a"]]), "meta": np.zeros((2, 10))}, "expected numbers"),
    ],
)
def test_bind_rejects(arrays, message):
    with pytest.raises(InputError, match=None) as e:
        bind(arrays, (IMG, META))
    assert message in str(e.value)


def test_integer_inputs_checked_for_kind_and_range():
    with pytest.raises(InputError, match="expects integers"):
        bind({"tokens": np.full((1, 5), 0.5)}, (TOK,))
    with pytest.raises(InputError, match=r"accepts \[0, 50\)"):
        bind({"tokens": np.full((1, 5), 50)}, (TOK,))
    assert bind({"tokens": np.full((1, 5), 3.0)}, (TOK,))["tokens"].dtype == np.int32


def test_single_npy_feeds_single_input_only(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((2, 10), np.float32))
    assert bind(load_arrays(str(p)), (META,))["meta"].shape == (2, 10)
    with pytest.raises(InputError, match="single .npy"):
        bind(load_arrays(str(p)), (IMG, META))


def test_pickled_npz_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="pickled"):
        load_arrays(str(p))


def test_unreadable_npz(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"this is not a zip")
    with pytest.raises(InputError, match="not a readable"):
        load_arrays(str(p))


def test_random_feeds_are_seeded_and_respect_ranges():
    a = random_feeds((IMG, TOK), batch=3, seed=7)
    b = random_feeds((IMG, TOK), batch=3, seed=7)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["tokens"], b["tokens"])
    assert a["image"].shape == (3, 4, 4, 3) and a["tokens"].dtype == np.int32
    assert a["tokens"].min() >= 0 and a["tokens"].max() < 50
    assert not np.array_equal(a["image"], random_feeds((IMG,), batch=3, seed=8)["image"])


def test_unknown_dims_need_shape():
    seq = TensorSpec("seq", (None, None, 8), "float32")
    with pytest.raises(InputError, match="--shape seq="):
        random_feeds((seq,))
    assert random_feeds((seq,), shapes=parse_shapes(["seq=12,8"]))["seq"].shape == (2, 12, 8)
    with pytest.raises(InputError, match="does not fit"):
        random_feeds((seq,), shapes={"seq": (12, 9)})
    with pytest.raises(InputError, match="NAME=D1"):
        parse_shapes(["seq12"])
