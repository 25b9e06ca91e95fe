import pytest

from edgekit.converters.tflite import check_builtin_only
from edgekit.errors import ConversionError, RuntimeFailure
from edgekit.runtimes.tflite_ops import list_ops


def test_flex_ops_are_a_failed_conversion(pool, tmp_path):
    path = tmp_path / "flex.tflite"
    pool.tf.call("tests.helpers_tf:make_flex_tflite", str(path), timeout=300)
    buf = path.read_bytes()
    ops = list_ops(buf)
    flex = [o for o in ops if o.is_flex]
    assert flex, [o.name for o in ops]
    with pytest.raises(ConversionError, match="Flex"):
        check_builtin_only(buf)
    # and LiteRT itself cannot run it, which is why edgekit never reports it as a success
    with pytest.raises(RuntimeFailure, match="Select TensorFlow op"):
        pool.rt.call("edgekit.tasks:run_artifact", "litert", str(path),
                     {"sequence": __import__("numpy").zeros((1, 5, 3), "float32")}, 0)


def test_list_ops_rejects_non_tflite():
    with pytest.raises(ValueError, match="TFL3"):
        list_ops(b"\x00" * 64)
