import shutil
import zipfile

import pytest

from edgekit.errors import InputError, UnsafeModelError
from edgekit.models.source import detect, find_code_layers


def test_detects_each_kind_from_content(keras_files):
    assert detect(keras_files["cnn.keras"]).kind == "keras"
    assert detect(keras_files["cnn.h5"]).kind == "h5"
    assert detect(keras_files["cnn_saved_model"]).kind == "saved_model"
    assert detect("builtin:mlp").kind == "builtin"


def test_hdf5_named_keras_gets_a_rename_message(keras_files, tmp_path):
    p = tmp_path / "model.keras"
    shutil.copy(keras_files["cnn.h5"], p)
    with pytest.raises(InputError, match="HDF5.*named .keras: rename it to .h5"):
        detect(str(p))


def test_zip_named_h5_gets_a_rename_message(keras_files, tmp_path):
    p = tmp_path / "model.h5"
    shutil.copy(keras_files["cnn.keras"], p)
    with pytest.raises(InputError, match="rename it to .keras"):
        detect(str(p))


def test_weights_only_file_is_not_a_model(keras_files):
    with pytest.raises(InputError, match="weights only"):
        detect(keras_files["cnn.weights.h5"])


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_keras_archive(keras_files, tmp_path, cut):
    data = open(keras_files["cnn.keras"], "rb").read()
    p = tmp_path / "cut.keras"
    p.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="truncated or corrupted"):
        detect(str(p))


def test_corrupted_member_detected_by_checksum(keras_files, tmp_path):
    data = bytearray(open(keras_files["cnn.keras"], "rb").read())
    with zipfile.ZipFile(keras_files["cnn.keras"]) as zf:
        info = zf.getinfo("model.weights.h5")
    # flip bytes inside the weights member's data (past its local header)
    start = info.header_offset + 30 + len(info.filename) + 200
    for i in range(start, start + 16):
        data[i] ^= 0xFF
    p = tmp_path / "flipped.keras"
    p.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupted|truncated"):
        detect(str(p))


def test_truncated_h5(keras_files, tmp_path):
    data = open(keras_files["cnn.h5"], "rb").read()
    p = tmp_path / "cut.h5"
    p.write_bytes(data[:4096])
    with pytest.raises(InputError, match="truncated or corrupted HDF5"):
        detect(str(p))


def test_non_model_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "blob.bin").write_bytes(bytes(range(200)))
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as zf:
        zf.writestr("readme.md", "not a model")
    cases = {"notes.txt": "text file", "empty.keras": "is empty", "blob.bin": "binary file",
             "plain.keras": "no config.json"}
    for name, msg in cases.items():
        with pytest.raises(InputError, match=msg):
            detect(str(tmp_path / name))


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        detect(str(tmp_path / "nope.keras"))
    with pytest.raises(InputError, match="directory but not a SavedModel"):
        detect(str(tmp_path))
    with pytest.raises(InputError, match="builder module .* does not exist"):
        detect(str(tmp_path / "mod.py") + ":build")
    with pytest.raises(InputError, match="unknown built-in model 'resnet'"):
        detect("builtin:resnet")


def test_path_traversal_member_refused(keras_files, tmp_path):
    p = tmp_path / "evil.keras"
    shutil.copy(keras_files["cnn.keras"], p)
    with zipfile.ZipFile(p, "a") as zf:
        zf.writestr("../../etc/cron.d/evil", "* * * * * root true")
    with pytest.raises(InputError, match="unsafe path"):
        detect(str(p))


def test_lambda_refused_by_default_and_named(keras_files):
    with pytest.raises(UnsafeModelError, match="Lambda layer 'doubler'.*--unsafe"):
        detect(keras_files["lambda.keras"])
    assert detect(keras_files["lambda.keras"], unsafe=True).unsafe


def test_find_code_layers_in_nested_config():
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d"}},
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "inner"}}]}},
    ]}}
    assert find_code_layers(cfg) == ["Lambda layer 'inner'"]


def test_tflite_file_is_not_a_keras_model(tmp_path):
    p = tmp_path / "m.keras"
    p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(InputError, match="TFLite model"):
        detect(str(p))


def test_damaged_config_fields_do_not_break_the_class_scan():
    """A fuzzed config can put numbers or lists where Keras writes strings: the scans that
    explain a load failure skip such entries instead of raising (found by the slow fuzz)."""
    from edgekit.models.source import find_code_layers, find_custom_classes

    cfg = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "module": 0.5, "registered_name": None, "config": {"name": "d"}},
        {"class_name": ["Lambda"], "config": {"name": "x"}},
        {"class_name": "Lambda", "module": "keras.layers", "config": {"name": "lam"}},
        {"class_name": "MyLayer", "module": "mypkg", "registered_name": 7, "config": {}},
    ]}}
    assert find_custom_classes(cfg) == ["mypkg.MyLayer"]
    assert find_code_layers(cfg) == ["Lambda layer 'lam'"]
