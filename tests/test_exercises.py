"""Every exercise checker: accepts the worked solution, rejects a wrong answer, explains bad input."""
import pytest

from dni_lite.exercises import nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08
from dni_lite.exercises import solutions as S


def boom(*args):
    raise RuntimeError("not written yet")


# (checker, solution, a wrong answer); number-valued answers also get a text-typed check below
NUMBERS = [
    (nb00.check_idle_fraction, S.NB00_IDLE_FRACTION, 0.25),
    (nb00.check_minibatches_for_3x, S.NB00_MINIBATCHES_FOR_3X, 4),
    (nb00.check_unlocked_makespan, S.NB00_UNLOCKED_MAKESPAN, 30.0),
    (nb04.check_unlocked_speedup, S.NB04_UNLOCKED_SPEEDUP, 4.0),
    (nb05.check_fixed_point, S.NB05_FIXED_POINT, 1.0),
    (nb05.check_reach, S.NB05_REACH, 2),
    (nb06.check_floor, S.nb06_floor(), 3.0),
    (nb06.check_unigram, S.nb06_unigram(), 0.0),
    (nb07.check_pipeline_throughput, S.NB07_PIPELINE_THROUGHPUT, 6400.0),
    (nb07.check_best_speedup, S.NB07_BEST_SPEEDUP, 2.0),
    (nb07.check_target_delay, S.NB07_TARGET_DELAY, 0),
    (nb08.check_chance, S.NB08_CHANCE, 6 / 16),
]


@pytest.mark.parametrize("check, solution, wrong", NUMBERS, ids=[c.__module__[-4:] + "." + c.__name__
                                                                   for c, _, _ in NUMBERS])
def test_number_checkers(check, solution, wrong):
    assert check(None).startswith("Not attempted")
    assert check(solution).startswith("Correct"), check(solution)
    assert check(wrong).startswith("Not yet")
    typed = f"{solution:g}" if isinstance(solution, float) else str(solution)
    assert "without quotes" in check(typed), check(typed)      # the right number, typed as text
    assert check([solution]).startswith("Not yet")


FUNCTIONS = [
    (nb01.check_exact_cdni, S.nb01_exact_cdni, lambda w2, b2: (w2.T @ w2, w2.T @ b2)),
    (nb02.check_linear_cka, S.nb02_my_cka, lambda x, y: 1.0),
    (nb02.check_dfa_as_backprop, S.nb02_dfa_matrix, lambda weights, k: weights[-1]),
    (nb03.check_output_gradient, S.nb03_output_gradient, lambda w, b, h, y: h),
    (nb03.check_bootstrap_target, S.nb03_bootstrap_target, lambda layer, synth, h: h),
    (nb04.check_input_model, S.nb04_make_input_model,
     lambda i, o: __import__("torch").nn.Linear(i, o)),
    (nb05.check_pairs_within_chunk, S.nb05_pairs_within_chunk, lambda length, T: 0),
    (nb06.check_min_window, S.nb06_min_window, lambda k: k - 1),
    (nb06.check_discount, S.nb06_discount, lambda scale, n: scale * n),
    (nb08.check_updates, S.nb08_fast_updates, lambda method, K, windows: windows),
    (nb08.check_window_time, S.nb08_window_time, lambda ff, fb, sf, sb, syn: (ff + fb + sf + sb,) * 2),
]


@pytest.mark.parametrize("check, solution, wrong", FUNCTIONS, ids=[c.__module__[-4:] + "." + c.__name__
                                                                     for c, _, _ in FUNCTIONS])
def test_function_checkers(check, solution, wrong):
    assert check(None).startswith("Not attempted")
    assert check(solution).startswith("Correct"), check(solution)
    assert check(wrong).startswith("Not yet"), check(wrong)
    assert "raised RuntimeError: not written yet" in check(boom)


def test_choice_and_list_checkers():
    assert nb02.check_trivial_solution(S.NB02_TRIVIAL_SOLUTION).startswith("Correct")
    assert nb02.check_trivial_solution("a").startswith("Not yet")
    modes = ["dni", "backprop", "cdni", "backprop"]
    assert nb03.check_true_targets(modes, S.NB03_TRUE_TARGETS).startswith("Correct")
    assert nb03.check_true_targets(modes, [1, 3]).startswith("Not yet")
    assert "text" in nb03.check_true_targets(modes, "[3]")


@pytest.mark.claims      # trains the notebook's model: a few seconds
def test_nb01_training_checkers():
    assert nb01.check_slow_synthesizer(S.NB01_SLOW_SYNTH_LR).startswith("Correct")
    assert nb01.check_slow_synthesizer(0.1).startswith("Not yet")
    assert "without quotes" in nb01.check_slow_synthesizer("0.0001")
    best = S.nb01_best_unconditioned_cosine()
    assert nb01.check_best_unconditioned_cosine(best).startswith("Correct")
    assert nb01.check_best_unconditioned_cosine(best + 0.5).startswith("Not yet")
