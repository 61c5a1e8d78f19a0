"""The eval scripts' "try this policy" options: both scripts take them and they change only what was given."""
from types import SimpleNamespace

import pytest

from core.policy import WINDOW_STEER
from training import eval_control, eval_photo_edits
from training.policy_options import apply_policy_options, policy_label


@pytest.mark.parametrize("parse", [eval_control.parse_args, eval_photo_edits.parse_args])
def test_both_eval_scripts_measure_the_same_policy_variant(parse):
    engine = SimpleNamespace(steer_config=WINDOW_STEER)
    tried = apply_policy_options(engine, parse(["--views", "8", "--identity-weight", "3"]))
    assert tried == {"views": 8, "identity_weight": 3.0}
    assert engine.steer_config.views == 8 and engine.steer_config.identity_weight == 3.0
    assert engine.steer_config.until == WINDOW_STEER.until and engine.steer_config.guide == WINDOW_STEER.guide
    assert WINDOW_STEER.views != 8  # the shipped policy itself is untouched
    assert policy_label(tried) == "shipped, views 8, identity_weight 3.0"


def test_no_options_keep_the_shipped_policy():
    engine = SimpleNamespace(steer_config=WINDOW_STEER)
    assert apply_policy_options(engine, eval_photo_edits.parse_args([])) == {}
    assert engine.steer_config is WINDOW_STEER
    assert policy_label({}) == "shipped"


def test_an_impossible_variant_is_refused_before_any_work():
    engine = SimpleNamespace(steer_config=WINDOW_STEER)
    with pytest.raises(ValueError, match="views"):
        apply_policy_options(engine, eval_control.parse_args(["--views", "9"]))
    assert engine.steer_config is WINDOW_STEER
