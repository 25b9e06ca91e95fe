"""Device profiles, their resolution and availability, the GPU-use checks (against the real
ONNX Runtime installed here), and the self-test's judging."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgekit import errors
from edgekit.devices import HOST, availability, load_profiles, resolve
from edgekit.devices.cuda import CUDA_EP, cuda_status, require_provider, run_onnx_cuda
from edgekit.devices.selftest import HERE as SELFTEST, judge


def test_builtin_profiles():
    p = load_profiles()
    assert {"x86-cpu", "arm64-cortex-a53", "arm64-cortex-a72", "arm64-cortex-a76", "arm64-neoverse-n1", "cuda"} <= set(p)
    assert p["arm64-cortex-a76"].kind == "qemu" and p["arm64-cortex-a76"].qemu_cpu == "cortex-a76"
    assert p["arm64-neoverse-n1"].runs("litert") and p["arm64-neoverse-n1"].runs("onnxruntime")
    assert not p["arm64-cortex-a53"].runs("tf-savedmodel")
    assert p["cuda"].runs("onnxruntime") and p["cuda"].runs("tf-savedmodel") and not p["cuda"].runs("litert")
    assert p["cuda"].tolerance["float32"] == (2e-4, 2e-4)
    assert availability(p[HOST]) == (True, "native x86_64")


def test_user_profiles_and_their_errors(tmp_path, monkeypatch):
    (tmp_path / "pi.toml").write_text('name = "my-pi"\nkind = "qemu"\narch = "aarch64"\nqemu_cpu = "cortex-a72"\n'
                                      'runtimes = ["litert"]\nthreads = 4\n')
    monkeypatch.setenv("EDGEKIT_DEVICE_PROFILES", str(tmp_path))
    p = load_profiles()
    assert p["my-pi"].threads == 4 and p["my-pi"].runs("litert") and not p["my-pi"].runs("onnxruntime")
    (tmp_path / "bad.toml").write_text('name = "b"\nkind = "qemu"\narch = "aarch64"\nruntimes = ["litert"]\n')
    with pytest.raises(errors.InputError, match="a qemu profile needs qemu_cpu"):
        load_profiles()
    (tmp_path / "bad.toml").write_text('name = "b"\nkind = "host"\narch = "x86_64"\nruntimes = []\ncolour = 1\n')
    with pytest.raises(errors.InputError, match=r"unknown key\(s\) \['colour'\]"):
        load_profiles()


def test_resolve(tmp_path, monkeypatch):
    assert [p.name for p in resolve(None)] == [HOST]
    with pytest.raises(errors.InputError, match="unknown device 'tpu'"):
        resolve("x86-cpu,tpu")
    monkeypatch.setenv("EDGEKIT_ARM64_ENV", str(tmp_path))  # not a built environment
    with pytest.raises(errors.InputError, match="device arm64-cortex-a76 is not available: .*not a complete"):
        resolve("arm64-cortex-a76")
    chosen = [p.name for p in resolve("all-available")]
    assert chosen[0] == HOST and not any(n.startswith("arm64") for n in chosen)
    # the host always comes first, whatever order is asked for
    assert [p.name for p in resolve("x86-cpu")] == [HOST]


def test_cuda_is_reported_unavailable_without_a_gpu():
    ok, why = cuda_status()
    if shutil.which("nvidia-smi") is None:
        assert not ok and "nvidia-smi" in why
    else:
        assert ok or why  # a GPU machine: either usable or a reason


def test_provider_check():
    require_provider([CUDA_EP, "CPUExecutionProvider"])
    with pytest.raises(errors.DeviceUnavailable, match="would run this on CPUExecutionProvider, not CUDAExecutionProvider"):
        require_provider(["CPUExecutionProvider"])


def test_onnx_runtime_falling_back_to_cpu_is_caught():
    """The real onnxruntime, asked for CUDA: without a usable GPU it silently takes the CPU;
    edgekit reports the device unavailable instead of a pass."""
    import onnxruntime as ort

    with np.load(SELFTEST / "inputs.npz") as z:
        feeds = {k: z[k] for k in z.files}
    if CUDA_EP in ort.get_available_providers() and cuda_status()[0]:
        res = run_onnx_cuda(str(SELFTEST / "float.onnx"), feeds, 1)
        assert res["providers"][0] == CUDA_EP
    else:
        with pytest.raises(errors.DeviceUnavailable, match="the GPU was not used"):
            run_onnx_cuda(str(SELFTEST / "float.onnx"), feeds, 1)


@pytest.fixture(scope="module")
def host_answers(pool):
    return pool.rt.call("edgekit.devices.selftest:answers", timeout=120)


def test_self_test_judging(host_answers):
    guest = {**host_answers, "machine": "aarch64"}
    ok, detail = judge(host_answers, guest)
    assert ok and "int8.tflite bit-exact" in detail
    assert judge(host_answers, host_answers)[1].endswith("not emulated")  # the host itself is no ARM device
    off = {k: (dict(v) if isinstance(v, dict) else v) for k, v in guest.items()}
    name = next(iter(off["int8.tflite"]))
    off["int8.tflite"][name] = off["int8.tflite"][name] + np.float32(1 / 256)  # one int8 step
    ok, detail = judge(host_answers, off)
    assert not ok and "must be bit-exact" in detail
    broken = {**guest, "float.onnx": "RuntimeError: illegal instruction"}
    ok, detail = judge(host_answers, broken)
    assert not ok and "failed in the emulator" in detail


def test_a_partial_arm_environment_is_not_used(tmp_path, monkeypatch):
    import json

    from edgekit.devices.arm import ENV_VERSION, find_env, host_versions

    for rel in ("qemu-aarch64", "sysroot/usr/bin/python3.11", "site/numpy", "site/onnxruntime"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    monkeypatch.setenv("EDGEKIT_ARM64_ENV", str(tmp_path))
    (tmp_path / "env.json").write_text(json.dumps({"env_version": ENV_VERSION, "versions": host_versions()}))
    assert find_env()[0] is None  # site/ai_edge_litert is missing: an interrupted build
    (tmp_path / "site" / "ai_edge_litert").mkdir()
    assert find_env()[0] == tmp_path
    (tmp_path / "env.json").write_text(json.dumps({"env_version": ENV_VERSION, "versions": {"numpy": "1.0"}}))
    env, why = find_env()
    assert env is None and "run 'edgekit devices setup arm64' again" in why  # built for other versions


def test_every_runtime_a_device_lists_has_a_route():
    from edgekit.devices.executor import ROUTES

    for p in load_profiles().values():
        if p.kind != "host":
            assert [rt for rt in p.runtimes if (p.kind, rt) not in ROUTES] == [], p.name


class _Recorder:
    """A stand-in worker: records what it was asked to run."""

    def __init__(self, name):
        self.name, self.calls = name, []

    def call(self, task, *args, timeout=None, tag=""):
        self.calls.append((task, tag))
        return {"worker": self.name, "task": task, "args": args}

    def close(self):
        pass


def test_runs_are_routed_by_device_kind_and_runtime():
    from edgekit.devices.executor import DeviceWorkers

    p = load_profiles()
    rt, tf, guest = _Recorder("rt"), _Recorder("tf"), _Recorder("guest")
    dw = DeviceWorkers([p["cuda"], p["arm64-cortex-a76"]], rt, tf)
    dw._workers["arm64-cortex-a76"] = guest
    dw._checked.add("arm64-cortex-a76")  # as if its self-test had passed
    feeds = {"x": np.zeros((1, 2), np.float32)}
    res = dw.run("cuda", "onnxruntime", "m.onnx", feeds, 3, 60, label="onnx")
    assert (res["worker"], res["task"], res["args"][0]) == ("rt", "edgekit.devices.cuda:run_onnx_cuda", "m.onnx")
    for runtime in ("tf-savedmodel", "keras"):
        res = dw.run("cuda", runtime, "m", feeds, 3, 60)
        assert (res["worker"], res["task"], res["args"][0]) == ("tf", "edgekit.devices.cuda:run_tf_gpu", runtime)
    res = dw.run("arm64-cortex-a76", "litert", "m.tflite", feeds, 2, 60, label="tflite")
    assert (res["worker"], res["task"]) == ("guest", "edgekit.tasks:run_artifact")
    assert res["args"][0] == "litert" and res["args"][-1] == {"threads": 1}  # the profile's threads, for LiteRT
    assert dw.run("arm64-cortex-a76", "onnxruntime", "m.onnx", feeds, 2, 60)["args"][-1] == {}
    assert guest.calls[0][1] == "run:arm64-cortex-a76:tflite" and rt.calls[0][1] == "run:cuda:onnx"
    with pytest.raises(errors.DeviceUnavailable, match="has no way to run litert"):
        dw.run("cuda", "litert", "m.tflite", feeds, 2, 60)
    with pytest.raises(errors.DeviceUnavailable, match="no TensorFlow worker"):
        DeviceWorkers([p["cuda"]], rt, None).run("cuda", "keras", "m.keras", feeds, 2, 60)
    with pytest.raises(errors.DeviceUnavailable, match="x86-cpu: the host runs in the main workers"):
        DeviceWorkers([p["x86-cpu"]], rt, tf).run("x86-cpu", "litert", "m.tflite", feeds, 2, 60)
