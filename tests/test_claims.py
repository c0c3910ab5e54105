"""Every notebook claim's check passes on the method and fails on its control."""
import pytest

from dni_lite.claims import ClaimFailed
from dni_lite.claims import nb01
from dni_lite.experiments.linear import compare_linear
from dni_lite.runner import run_to_end

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def linear_rows():
    return run_to_end(compare_linear())[0]


def test_nb01_checks_pass_on_the_method(linear_rows):
    for check in (nb01.cdni_gradient_is_exact, nb01.cdni_trains_like_backprop,
                  nb01.dni_stalls_like_the_control):
        assert check(linear_rows).startswith("PASS")
    assert nb01.lambda_one_is_backprop(0.0, 0.05).startswith("PASS")


def test_nb01_checks_fail_on_their_controls(linear_rows):
    shuffled = run_to_end(compare_linear(ablation="shuffled_context", controls=()))[0]
    with pytest.raises(ClaimFailed, match="cosine"):
        nb01.cdni_gradient_is_exact(shuffled, control="dni")
    zeroed = run_to_end(compare_linear(ablation="zero_synthetic_gradient", controls=()))[0]
    with pytest.raises(ClaimFailed, match="within 5%"):
        nb01.cdni_trains_like_backprop(zeroed, control="dni")
    with pytest.raises(ClaimFailed):           # cDNI does not stall: the label is what matters
        nb01.dni_stalls_like_the_control(linear_rows, method="cdni")
    with pytest.raises(ClaimFailed, match="not mixed in"):
        nb01.lambda_one_is_backprop(0.0, 0.0)   # a BP(lambda) that ignored the synthetic part
