"""The default optimizer's learning-rate schedules (salsa.training.optimizer)."""

import ml_collections
import numpy as np
import pytest

from salsa.errors import UserError
from salsa.training.optimizer import make_optimizer


def _optim(**kw):
    base = dict(name="adam", lr=1e-3, b1=0.9, b2=0.999, warmup_steps=50, grad_clip=1.0, ema=0.0)
    return ml_collections.ConfigDict({**base, **kw})


def test_constant_schedule_after_warmup_is_the_default():
    _, schedule = make_optimizer(_optim())
    np.testing.assert_allclose([schedule(s) for s in (0, 25, 50, 999, 10**6)], [0, 5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_schedule_decays_from_lr_to_zero_at_total_steps():
    _, schedule = make_optimizer(_optim(schedule="cosine"), total_steps=1000)
    rates = np.array([schedule(s) for s in range(1001)])
    np.testing.assert_allclose(rates[[0, 25, 50]], [0, 5e-4, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(rates[525], 5e-4, rtol=1e-6)  # half way through the decay
    assert rates[1000] == 0.0 and np.all(np.diff(rates[50:]) <= 0)


@pytest.mark.parametrize(
    ("kw", "total", "words"),
    [
        (dict(schedule="linear"), 1000, "optim.schedule must be one of constant, cosine"),
        (dict(schedule="cosine"), 40, "total_steps 40 must exceed warmup_steps 50"),
    ],
)
def test_bad_schedule_is_one_sentence(kw, total, words):
    with pytest.raises(UserError, match=words):
        make_optimizer(_optim(**kw), total_steps=total)
