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


# -- non-finite values: part of the answer, position for position --------------------------

def test_nan_against_a_finite_value_fails():
    r = compare_output("y", np.array([5.0, 1.0]), np.array([np.nan, 1.0]), Tolerance(1, 1))
    assert not r.passed and "NaN at 1 position(s) where the reference has none" in r.error


def test_inf_sign_must_match():
    r = compare_output("y", np.array([np.inf, 1.0]), np.array([-np.inf, 1.0]), Tolerance(1, 1))
    assert not r.passed
    assert "-inf at 1" in r.error and "reference's +inf at 1" in r.error


def test_all_nan_reference_against_zeros_fails():
    r = compare_output("y", np.full((4, 5), np.nan), np.zeros((4, 5)), Tolerance(1, 1))
    assert not r.passed and "reference's NaN at 20 position(s) not reproduced" in r.error


def test_inf_reference_against_a_huge_finite_value_fails():
    # Keras overflowed to inf, the file stopped at 4.28e37: not the same answer
    r = compare_output("y", np.array([np.inf, 2.0], np.float32), np.array([4.28e37, 2.0], np.float32),
                       default_tolerance("float32"))
    assert not r.passed and r.max_abs == 0.0 and "+inf" in r.error
    assert "non-finite values differ" in compare({"y": np.array([np.inf])}, {"y": np.array([1.0])},
                                                 Tolerance(1, 1)).failures()[0]


def test_matching_nonfinite_positions_pass_and_the_finite_rest_is_judged():
    ref = np.array([[np.nan, np.inf, -np.inf, 1.0, 2.0]])
    ok = compare_output("y", ref, ref + np.array([[0, 0, 0, 1e-6, 0]]), Tolerance(1e-5, 0))
    assert ok.passed and ok.max_abs == pytest.approx(1e-6)
    bad = compare_output("y", ref, ref + np.array([[0, 0, 0, 1e-3, 0]]), Tolerance(1e-5, 0))
    assert not bad.passed and bad.error is None and bad.max_abs == pytest.approx(1e-3)


def test_describe_nonfinite_reference():
    from edgekit.validate.compare import describe_nonfinite

    assert describe_nonfinite("probs", np.full((4, 5), np.nan)) == \
        "the model's own output 'probs' is NaN at 20 of 20 positions"
    assert describe_nonfinite("y", np.array([np.inf, -np.inf, 1.0])) == \
        "the model's own output 'y' is +inf at 1 and -inf at 1 of 3 positions"
    assert describe_nonfinite("y", np.ones(3)) is None
    assert describe_nonfinite("ids", np.arange(3)) is None


def test_reference_nonfinite_is_a_tolerance_failure_exit_3():
    from edgekit.errors import EXIT_TOLERANCE, ToleranceExceeded
    from edgekit.verdict import check_reference

    with pytest.raises(ToleranceExceeded, match="'probs' is NaN at 20 of 20 positions on these inputs") as e:
        check_reference({"probs": np.full((4, 5), np.nan, np.float32)})
    assert e.value.exit_code == EXIT_TOLERANCE
    check_reference({"probs": np.ones((4, 5))})  # finite: no error


@pytest.mark.parametrize("arr, allow, match", [
    (np.zeros((0, 3), np.float32), False, "has no rows"),
    (np.zeros((0, 3), np.float32), True, "has no rows"),  # nothing to compare, whatever is allowed
    (np.array([[1.0, np.nan, np.inf]], np.float32), False, "1 NaN and 1 inf value"),
])
def test_check_feeds_refuses_empty_and_nonfinite_inputs(arr, allow, match):
    from edgekit.errors import EXIT_USAGE, InputError
    from edgekit.verdict import check_feeds

    with pytest.raises(InputError, match=match) as e:
        check_feeds({"x": arr}, allow_nonfinite=allow)
    assert e.value.exit_code == EXIT_USAGE


def test_check_feeds_accepts_nonfinite_when_asked_and_integers_always():
    from edgekit.verdict import check_feeds

    check_feeds({"x": np.array([[np.nan]], np.float32)}, allow_nonfinite=True)
    check_feeds({"ids": np.array([[1, 2]], np.int32)})


# -- the float64 truth ----------------------------------------------------------------------

def _ill_conditioned(rng, keras_err=5.0, art_err=6.0):
    truth = rng.normal(0, 100, size=(4, 10))
    ref = truth + keras_err * np.sign(rng.normal(size=truth.shape))
    cand = truth - art_err * np.sign(rng.normal(size=truth.shape))
    return truth, ref, cand


def test_truth_widens_the_bound_only_when_keras_itself_is_far_from_it():
    from edgekit.validate.truth import TRUTH_FACTOR, judge

    truth, ref, cand = _ill_conditioned(np.random.default_rng(0))
    tol = default_tolerance("float32")
    plain = compare({"y": ref}, {"y": cand}, tol)
    assert not plain  # |cand - ref| ~ 11 >> 1e-4 + 1e-4 * 300
    judged = judge(plain, {"y": ref}, {"y": cand}, {"y": truth})
    o = judged.outputs[0]
    assert judged and o.judged_by == "truth" and o.ill_conditioned
    assert o.keras_truth_abs == pytest.approx(5.0) and o.truth_abs == pytest.approx(6.0)
    # an artifact much further from the truth than Keras is still a failure
    far = truth + (TRUTH_FACTOR * 5.0 + 2.0)
    assert not judge(compare({"y": ref}, {"y": far}, tol), {"y": ref}, {"y": far}, {"y": truth})
    # a bound the user gave is never widened
    user = Tolerance(1e-4, 1e-4, "user")
    assert not judge(compare({"y": ref}, {"y": cand}, user), {"y": ref}, {"y": cand}, {"y": truth})


def test_truth_catches_a_bug_the_bound_lets_through_when_keras_is_close_to_it():
    from edgekit.validate.truth import judge

    rng = np.random.default_rng(1)
    truth = rng.normal(0, 100, size=(4, 10))
    ref = truth + rng.normal(0, 1e-5, size=truth.shape)  # float32-sized rounding of ~300
    ok = ref + rng.normal(0, 1e-5, size=truth.shape)  # a correct file: the same size of rounding
    bug = truth * (1 + 5e-5)  # a float16 cast in one layer: 5e-5 of the scale, within the bound
    tol = default_tolerance("float32")
    assert compare({"y": ref}, {"y": bug}, tol)  # the fixed bound alone passes the bug
    good = judge(compare({"y": ref}, {"y": ok}, tol), {"y": ref}, {"y": ok}, {"y": truth})
    assert good and good.outputs[0].ill_conditioned is False and good.outputs[0].judged_by == "bound+truth"
    caught = judge(compare({"y": ref}, {"y": bug}, tol), {"y": ref}, {"y": bug}, {"y": truth})
    assert not caught
    assert "against the float64 model" in caught.failures()[0]
    # non-finite mismatches are never excused by the truth
    nan = ok.copy()
    nan[0, 0] = np.nan
    assert not judge(compare({"y": ref}, {"y": nan}, tol), {"y": ref}, {"y": nan}, {"y": truth})


def _peaked_lm_logits(rng, batch=4, steps=16, vocab=256):
    """Logits of a trained-like LM: one token per position far above the rest."""
    ref = rng.normal(0, 1.0, size=(batch, steps, vocab))
    best = rng.integers(0, vocab, size=(batch, steps))
    np.put_along_axis(ref, best[..., None], 8.0, axis=-1)
    return ref


def test_lm_logits_are_judged_on_next_token_top1_and_kl_not_snr():
    rng = np.random.default_rng(0)
    ref = _peaked_lm_logits(rng)
    tol = default_tolerance("int4", "lm")
    assert tol.kind == "lm" and tol.max_kl == 0.1
    # noise on every logit (SNR far below int4's 12 dB floor) that keeps every next token
    noisy = ref + rng.normal(0, 0.5, size=ref.shape)
    o = compare_output("logits", ref, noisy, tol)
    assert o.snr_db < 12 and o.top1_agreement == 1.0 and o.kl < 0.1 and o.passed
    # a shift of all logits of a position changes no probability: KL 0, top-1 100%
    shifted = ref + rng.normal(0, 5, size=ref.shape[:-1] + (1,))
    o = compare_output("logits", ref, shifted, tol)
    assert o.kl == pytest.approx(0.0, abs=1e-9) and o.top1_agreement == 1.0 and o.passed
    # the best token of a quarter of the positions moved elsewhere: top-1 75% and a large KL
    wrong = ref.copy()
    rows = wrong.reshape(-1, ref.shape[-1])
    for i in range(0, len(rows), 4):
        rows[i] = np.roll(rows[i], 7)
    o = compare_output("logits", ref, wrong, tol)
    assert o.top1_agreement == pytest.approx(0.75) and o.kl > 1.0 and not o.passed
    msgs = compare({"logits": ref}, {"logits": wrong}, {"logits": tol}).failures()
    assert "top-1 75.0% < 85%" in msgs[0] and "mean KL" in msgs[0] and "SNR" not in msgs[0]


def test_lm_near_ties_of_an_untrained_model_are_not_disagreements():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 0.02, size=(2, 32, 512))  # an untrained LM: every token about as likely
    cand = ref + rng.normal(0, 0.02, size=ref.shape)
    o = compare_output("logits", ref, cand, default_tolerance("int8", "lm"))
    assert o.top1_strict < 0.5 and o.top1_agreement == 1.0 and o.kl < 1e-3 and o.passed


def test_lm_probabilities_are_judged_like_logits():
    rng = np.random.default_rng(2)
    logits = _peaked_lm_logits(rng)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    cand = np.exp(logits + rng.normal(0, 0.3, size=logits.shape))
    cand /= cand.sum(-1, keepdims=True)
    a = compare_output("p", probs, cand, default_tolerance("int8", "lm"))
    b = compare_output("l", logits, np.log(cand), default_tolerance("int8", "lm"))
    assert a.kl == pytest.approx(b.kl, rel=1e-6) and a.top1_agreement == b.top1_agreement


def test_features_are_judged_on_snr_and_cosine_without_top1():
    rng = np.random.default_rng(3)
    pooled = np.tanh(rng.normal(0, 1, size=(2, 128)))  # BERT's pooled output: 2 rows, no classes
    cand = pooled + rng.normal(0, 0.08, size=pooled.shape)
    o = compare_output("pooled_output", pooled, cand, default_tolerance("int4", "features"))
    assert o.top1_agreement is None and o.cosine > 0.96 and o.passed
    # the same rows read as class scores: two argmaxes flip and top-1 fails what is fine
    assert not compare_output("pooled_output", pooled, cand, default_tolerance("int4")).passed
    # a scaled copy keeps the cosine but not the SNR: fails on SNR
    o = compare_output("pooled_output", pooled, 0.5 * pooled, default_tolerance("int4", "features"))
    assert o.cosine == pytest.approx(1.0) and not o.passed
    with pytest.raises(ValueError, match="unknown output kind"):
        default_tolerance("int4", "words")
