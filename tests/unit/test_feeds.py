import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.feeds import DEFAULT_IMAGE_SIZE, DEFAULT_LENGTH, MAX_CHECK_LENGTH, describe_distribution, bind, load_arrays, parse_shapes, random_feeds
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


def test_open_dims_get_documented_check_sizes():
    seq = TensorSpec("seq", (None, None, 8), "float32")
    assert random_feeds((seq,))["seq"].shape == (2, DEFAULT_LENGTH, 8)
    assert random_feeds((seq,), second=True)["seq"].shape == (2, DEFAULT_LENGTH // 2, 8)
    assert random_feeds((seq,), max_length=10)["seq"].shape == (2, 10, 8)  # never past the declared maximum
    assert random_feeds((seq,), max_length=4096)["seq"].shape == (2, MAX_CHECK_LENGTH, 8)
    img = TensorSpec("img", (None, None, None, 3), "float32")
    assert random_feeds((img,))["img"].shape == (2, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, 3)
    assert random_feeds((seq,), shapes=parse_shapes(["seq=12,8"]))["seq"].shape == (2, 12, 8)
    with pytest.raises(InputError, match="does not fit"):
        random_feeds((seq,), shapes={"seq": (12, 9)})
    with pytest.raises(InputError, match="NAME=D1"):
        parse_shapes(["seq12"])


def test_text_inputs_are_valid_for_the_model():
    tok = TensorSpec("token_ids", (None, None), "int32", (0, 1000), "tokens")
    seg = TensorSpec("segment_ids", (None, None), "int32", (0, 2), "segments")
    mask = TensorSpec("padding_mask", (None, None), "int32", (0, 2), "mask")
    f = random_feeds((tok, seg, mask), batch=64, seed=3)
    assert f["token_ids"].max() > 900 and f["token_ids"].min() >= 0  # the whole vocabulary, not [0, 10)
    assert set(np.unique(f["segment_ids"])) == {0, 1}
    m = f["padding_mask"]
    assert m[0].all()  # row 0 is unpadded
    # every row is ones, then zeros: never a one after a zero
    assert all(np.all(np.diff(row) <= 0) and row[0] == 1 for row in m)
    assert 0 < m.mean() < 1


def test_pixels_behind_rescaling_are_drawn_in_its_range():
    img = TensorSpec("image", (None, 8, 8, 3), "float32", role="scaled", value_range=(0.0, 255.0))
    a = random_feeds((img,), batch=4)["image"]
    assert a.min() >= 0 and a.max() <= 255 and a.max() > 200
    assert "0, 255" in describe_distribution(img)
