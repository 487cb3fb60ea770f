"""The trainer runs each step in the phase its task names for it (`task.phase(step)`): a task whose loss
changes structure part-way (the VAE's GAN terms from loss.adversarial_start) gets the new loss from that
step on, without restarting."""

from __future__ import annotations

import jax.numpy as jnp

from salsa.training import loop
from salsa.training.setup import prepare_data
from tests import toy_config
from tests.toy_task import ToyTask


class PhaseTask(ToyTask):
    """The toy task in phase 1 from step config.phase_start on; its metrics report the phase it ran in."""

    def phase(self, step: int) -> int:
        return int(step >= self.config.phase_start)

    def loss(self, model, ema, batch, key, step, phase=0):
        loss, metrics = super().loss(model, ema, batch, key, step)
        return loss, {**metrics, "phase": jnp.float32(phase)}


def test_the_trainer_switches_phase_at_the_step_the_task_names(tmp_path):
    config = toy_config.get_config()
    config.task = "tests.test_phases:PhaseTask"
    config.phase_start = 2
    config.total_steps, config.log_every, config.checkpoint_every = 4, 1, 4
    prepare_data(config, str(tmp_path))
    logged = {}
    loop.train(config, str(tmp_path), hooks=[lambda step, m: logged.update({step: m["phase"]})])
    assert logged == {1: 0.0, 2: 0.0, 3: 1.0, 4: 1.0}  # steps 0, 1 in phase 0; 2, 3 in phase 1
