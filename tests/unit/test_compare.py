import numpy as np
import pytest

from edgekit.validate import Tolerance, compare, compare_output, default_tolerance


def _resnet_like_logits(rng):
    # Logits of magnitude ~100, some elements near zero, each off by up to 2e-4: what a
    # correct float32 conversion of a deep CNN produces.
    ref = rng.normal(0, 60, size=(8, 1000)).astype(np.float32)
    ref[:, :10] = rng.normal(0, 1e-3, size=(8, 10))
    cand = ref + rng.uniform(-2e-4, 2e-4, size=ref.shape).astype(np.float32)
    return ref, cand


def test_magnitude_scaled_policy_passes_large_activations_that_absolute_fails():
    ref, cand = _resnet_like_logits(np.random.default_rng(0))
    scaled = compare_output("logits", ref, cand, default_tolerance("float32"))
    assert scaled.passed
    assert 1e-4 < scaled.max_abs <= 2.1e-4
    assert scaled.scale > 100
    absolute = compare_output("logits", ref, cand, Tolerance(1e-4, 0.0))
    assert not absolute.passed
    # numpy's element-wise relative rule fails it too (near-zero elements)
    assert not np.allclose(cand, ref, rtol=1e-4, atol=1e-5)


def test_scaled_policy_still_catches_a_real_error():
    ref, cand = _resnet_like_logits(np.random.default_rng(1))
    cand[3, 500] += 0.5  # one wrong element, tiny relative to max|ref| ~ 250 but real
    r = compare_output("logits", ref, cand, default_tolerance("float32"))
    assert not r.passed
    assert r.max_abs == pytest.approx(0.5, rel=1e-3)


def test_statistics():
    ref = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    cand = np.array([[0.1, 0.6, 0.3], [0.2, 0.6, 0.2]])
    r = compare_output("p", ref, cand, Tolerance(0.5, 0))
    assert r.passed
    assert r.max_abs == pytest.approx(0.3)
    assert r.mean_abs == pytest.approx((0 + 0.1 + 0.1 + 0.3 + 0.3 + 0) / 6)
    assert r.max_rel == pytest.approx(0.3 / 0.7)
    assert r.top1_agreement == pytest.approx(0.5)
    cos = float(np.dot(ref.ravel(), cand.ravel()) / np.linalg.norm(ref) / np.linalg.norm(cand))
    assert r.cosine == pytest.approx(cos)


def test_shape_mismatch_is_a_failed_comparison_not_an_exception():
    r = compare({"y": np.zeros((2, 3))}, {"y": np.zeros((3, 2))}, Tolerance(1, 1))
    assert not r
    assert "shape" in r.failures()[0]


def test_output_names_must_match():
    r = compare({"y": np.zeros(2)}, {"z": np.zeros(2)}, Tolerance(1, 1))
    assert not r and "missing ['y']" in r.error


def test_nan_in_candidate_fails():
    r = compare_output("y", np.ones(4), np.array([1, np.nan, 1, 1]), Tolerance(1, 1))
    assert not r.passed and "non-finite" in r.error


def test_per_output_tolerances():
    ref = {"a": np.array([1.0]), "b": np.array([1.0])}
    cand = {"a": np.array([1.01]), "b": np.array([1.01])}
    r = compare(ref, cand, {"a": Tolerance(0.1, 0), "b": Tolerance(0.001, 0)})
    assert [o.passed for o in r.outputs] == [True, False]
    assert not r


def test_tolerance_rejects_negative_and_unknown_policy():
    with pytest.raises(ValueError):
        Tolerance(-1, 0)
    with pytest.raises(ValueError):
        default_tolerance("float7")


def test_top1_tie_aware_ignores_flips_between_tied_classes():
    rng = np.random.default_rng(0)
    # an uncertain 2-class model: probabilities within 0.002 of 0.5
    p = 0.5 + rng.uniform(-0.002, 0.002, size=64)
    ref = np.stack([p, 1 - p], axis=1)
    cand = ref + rng.normal(0, 0.004, size=ref.shape)  # int8-sized noise (1/256)
    r = compare_output("probs", ref, cand, default_tolerance("int8"))
    assert r.top1_strict < 0.8  # many flips between tied classes
    assert r.top1_agreement == 1.0  # none of them is a real disagreement
    # a confident model where the artifact picks a clearly worse class does disagree
    conf = np.tile([[0.9, 0.1]], (10, 1))
    wrong = conf.copy()
    wrong[:5] = [0.1, 0.9]
    r2 = compare_output("probs", conf, wrong, default_tolerance("int8"))
    assert r2.top1_agreement == r2.top1_strict == 0.5 and not r2.passed


def test_quality_criteria_for_quantized_policies():
    ref = np.linspace(-1, 1, 200).reshape(20, 10)
    noisy = ref + np.random.default_rng(0).normal(0, 0.01, size=ref.shape)  # ~35 dB
    ok = compare_output("y", ref, noisy, default_tolerance("int8"))
    assert ok.passed and 30 < ok.snr_db < 40
    bad = compare_output("y", ref, noisy, default_tolerance("float16"))  # needs 40 dB
    assert not bad.passed and "SNR" in compare({"y": ref}, {"y": noisy}, default_tolerance("float16")).failures()[0]
