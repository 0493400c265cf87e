"""The shared Trainer: bad steps, solver failures, early stopping and resumable checkpoints."""

import math

import pytest
import torch
from torch import nn

from latode.exceptions import InvalidCheckpointError, SolverError, TrainingDivergedError
from latode.training import CHECKPOINT_NAME, Callback, EarlyStopping, Trainer


def regression_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return x, y


def make_trainer(module=None, loss=None, **kw):
    x, y = regression_problem()
    torch.manual_seed(0)
    module = module or nn.Linear(3, 1)

    def batches(generator):
        order = torch.randperm(64, generator=generator)
        for s in range(0, 64, 16):
            yield order[s:s + 16]

    def default_loss(m, idx, step):
        return ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()

    def validate(m):
        return float(((m(x).squeeze(-1) - y) ** 2).mean())

    kw.setdefault("validate", validate)
    return Trainer(module, loss or default_loss, batches, learning_rate=0.05, **kw)


def test_training_reduces_the_loss_and_records_history():
    trainer = make_trainer(max_epochs=30)
    history = trainer.fit()
    assert len(history) == 30
    assert history[-1]["val_loss"] < 0.01 * history[0]["val_loss"]
    assert {"train_loss", "val_loss", "lr", "epoch_time", "grad_norm"} <= set(history[0])


def test_non_finite_losses_are_skipped_counted_and_lower_the_learning_rate():
    calls = {"n": 0}
    x, y = regression_problem()

    def flaky(m, idx, step):
        calls["n"] += 1
        loss = ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        return loss * float("nan") if calls["n"] % 4 == 0 else loss

    trainer = make_trainer(loss=flaky, max_epochs=3)
    history = trainer.fit()
    assert trainer.total_bad_steps == 3
    assert [r["bad_steps"] for r in history] == [1.0, 1.0, 1.0]
    assert trainer.learning_rate == pytest.approx(0.05 * 0.5**3)
    assert all(math.isfinite(r["train_loss"]) for r in history)


def test_consecutive_failures_stop_with_a_clear_error_and_keep_best_weights():
    x, y = regression_problem()
    calls = {"n": 0}

    def breaks_later(m, idx, step):
        calls["n"] += 1
        loss = ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        return loss if calls["n"] <= 8 else loss * float("inf")

    early = EarlyStopping(patience=None)
    trainer = make_trainer(loss=breaks_later, max_epochs=10, max_bad_steps=5, callbacks=[early])
    with pytest.raises(TrainingDivergedError, match="5 consecutive failed steps"):
        trainer.fit()
    # 4 steps an epoch: epochs 1-2 train, epoch 3 fails 4 times, the 5th failure stops it
    assert len(trainer.history) == 3 and early.best_epoch == 2
    for name, value in trainer.module.state_dict().items():
        torch.testing.assert_close(value, early.best_state[name])


def test_solver_failure_restores_last_good_weights_and_warns():
    x, y = regression_problem()
    calls = {"n": 0}

    def solver_fails_once(m, idx, step):
        calls["n"] += 1
        if calls["n"] == 6:
            with torch.no_grad():
                m.weight.fill_(1e6)  # the step that failed had wrecked the weights
            raise AssertionError("underflow in dt 1e-20")
        return ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()

    trainer = make_trainer(loss=solver_fails_once, max_epochs=3)
    with pytest.warns(RuntimeWarning, match="step size underflowed"):
        history = trainer.fit()
    assert trainer.total_bad_steps == 1
    assert trainer.module.weight.abs().max() < 100
    assert history[-1]["val_loss"] < history[0]["val_loss"]


def test_other_assertion_errors_are_not_swallowed():
    def broken(m, idx, step):
        raise AssertionError("a bug, not a solver failure")

    with pytest.raises(AssertionError, match="a bug"):
        make_trainer(loss=broken, max_epochs=1).fit()


def test_early_stopping_stops_and_restores_best():
    early = EarlyStopping(patience=2)

    class Worsen(Callback):
        def on_epoch_end(self, trainer, record):
            record["val_loss"] = float(record["epoch"]) if record["epoch"] > 1 else 0.0

    trainer = make_trainer(max_epochs=20, callbacks=[Worsen(), early])
    trainer.fit()
    assert len(trainer.history) == 3 and early.best_epoch == 1
    for name, value in trainer.module.state_dict().items():
        torch.testing.assert_close(value, early.best_state[name])


def _without_time(history):
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in history]


def test_checkpoints_resume_to_the_same_history(tmp_path):
    straight = make_trainer(max_epochs=6, callbacks=[EarlyStopping(patience=None)])
    straight.fit()

    first = make_trainer(max_epochs=3, checkpoint_dir=tmp_path,
                         callbacks=[EarlyStopping(patience=None)])
    first.fit()
    assert (tmp_path / CHECKPOINT_NAME).exists()
    # A longer run on the same folder continues the 3-epoch one.
    resumed = make_trainer(max_epochs=6, checkpoint_dir=tmp_path,
                           callbacks=[EarlyStopping(patience=None)])
    resumed.fit()
    assert resumed.resumed_from_epoch == 3
    assert _without_time(resumed.history) == _without_time(straight.history)
    for name, value in resumed.module.state_dict().items():
        torch.testing.assert_close(value, straight.module.state_dict()[name])


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    make_trainer(max_epochs=1, checkpoint_dir=tmp_path, checkpoint_tag={"a": 1}).fit()
    with pytest.raises(InvalidCheckpointError, match="belongs to another fit"):
        make_trainer(max_epochs=1, checkpoint_dir=tmp_path, checkpoint_tag={"a": 2}).fit()


def test_solver_error_in_validation_gives_infinite_val_loss():
    def validate(m):
        raise SolverError("boom")

    trainer = make_trainer(max_epochs=1, validate=validate)
    with pytest.warns(RuntimeWarning, match="Validation solve failed"):
        history = trainer.fit()
    assert history[0]["val_loss"] == math.inf


def test_exponential_learning_rate_schedule_decays_per_step_down_to_its_floor():
    # 4 steps an epoch: the rate after epoch e is 0.05 * 0.9 ** (4 e), until it meets 0.02.
    trainer = make_trainer(max_epochs=5, lr_decay=0.9, min_learning_rate=0.02)
    history = trainer.fit()
    expected = [max(0.05 * 0.9 ** (4 * e), 0.02) for e in range(1, 6)]
    assert [r["lr"] for r in history] == pytest.approx(expected)
    assert history[-1]["lr"] == pytest.approx(0.02)  # 0.05 * 0.9**20 = 0.006 would be below
    assert trainer.global_step == 20
    constant = make_trainer(max_epochs=2)
    assert [r["lr"] for r in constant.fit()] == [0.05, 0.05]


def test_schedule_does_not_raise_a_rate_that_failed_steps_pushed_below_its_floor():
    x, y = regression_problem()
    calls = {"n": 0}

    def fails_twice(m, idx, step):
        calls["n"] += 1
        loss = ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        return loss * float("nan") if calls["n"] in (1, 2) else loss

    trainer = make_trainer(loss=fails_twice, max_epochs=1, lr_decay=0.9,
                           min_learning_rate=0.04)
    trainer.fit()
    # Halved twice to 0.0125 (< floor 0.04): the two good steps leave it there.
    assert trainer.learning_rate == pytest.approx(0.0125)
    assert trainer.global_step == 2 and trainer.total_bad_steps == 2


@pytest.mark.parametrize("kwargs", [{"lr_decay": 0.0}, {"lr_decay": 1.5},
                                    {"min_learning_rate": -1.0}])
def test_bad_schedule_arguments_are_named(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_trainer(**kwargs)


def test_resumed_fit_continues_the_schedule_and_step_count(tmp_path):
    kw = dict(lr_decay=0.95, min_learning_rate=0.01, callbacks=[EarlyStopping(patience=None)])
    straight = make_trainer(max_epochs=6, **kw)
    straight.fit()
    make_trainer(max_epochs=3, checkpoint_dir=tmp_path, **kw).fit()
    resumed = make_trainer(max_epochs=6, checkpoint_dir=tmp_path, **kw)
    resumed.fit()
    assert resumed.resumed_from_epoch == 3
    assert resumed.global_step == straight.global_step == 24
    assert _without_time(resumed.history) == _without_time(straight.history)
    assert resumed.learning_rate == pytest.approx(straight.learning_rate)


def test_annealed_epochs_are_not_compared_with_the_full_objective():
    # A KL-style warm-up: the penalty's weight ramps 1/8 ... 1 over the first 8 steps (two
    # epochs). The penalty is large and constant, so the annealed epochs have the lowest
    # training losses; without a validation split they must still not be kept as best.
    x, y = regression_problem()

    def annealed(m, idx, step):
        weight = min(1.0, (step + 1) / 8)  # the trainer's clock: 0 on the first batch
        loss = ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean() + weight * 100.0
        return loss, {"kl_weight": weight}

    early = EarlyStopping(patience=None)
    history = make_trainer(loss=annealed, validate=None, max_epochs=4,
                           callbacks=[early]).fit()
    assert history[0]["train_loss"] < history[3]["train_loss"]
    assert early.best_epoch == 4  # the fit improves on the full objective: epoch 4 is best


def test_the_loss_reads_the_training_clock_which_skipped_steps_do_not_advance(tmp_path):
    x, y = regression_problem()
    seen = []

    def clocked(m, idx, step):
        seen.append(step)
        loss = ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        return loss * float("nan") if len(seen) == 3 else loss  # the third batch is skipped

    trainer = make_trainer(loss=clocked, max_epochs=2, checkpoint_dir=tmp_path)
    trainer.fit()
    assert seen == [0, 1, 2, 2, 3, 4, 5, 6] and trainer.global_step == 7
    # A resumed fit's clock goes on from the checkpoint's step count.
    make_trainer(loss=clocked, max_epochs=3, checkpoint_dir=tmp_path).fit()
    assert seen[8:] == [7, 8, 9, 10]


class RecordsWeights(Callback):
    """The module's own (not averaged) weights after every optimisation step."""

    def __init__(self):
        self.steps = []

    def on_fit_start(self, trainer):
        original = trainer.optimizer.step

        def step(*args, **kwargs):
            out = original(*args, **kwargs)
            self.steps.append({k: v.detach().clone()
                               for k, v in trainer.module.state_dict().items()})
            return out

        trainer.optimizer.step = step


def test_weight_average_follows_the_exponential_moving_average_of_the_steps():
    record = RecordsWeights()
    trainer = make_trainer(max_epochs=4, ema_decay=0.5, validate=None, callbacks=[record])
    trainer.fit()
    assert len(record.steps) == 16
    # The first step's weights start the average; the n-th later one moves it by
    # 1 - min(0.5, n / (n + 9)): the decay warms up to 0.5, reached at n = 9.
    expected = dict(record.steps[0])
    for n, weights in enumerate(record.steps[1:], start=1):
        decay = min(0.5, n / (n + 9))
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    for name, value in trainer.module.state_dict().items():  # fit ends on the average
        torch.testing.assert_close(value, expected[name])
    assert not torch.equal(trainer.module.weight, record.steps[-1]["weight"])


def test_validation_and_early_stopping_see_the_averaged_weights():
    seen = []
    early = EarlyStopping(patience=None)
    trainer = make_trainer(max_epochs=3, ema_decay=0.9, callbacks=[early],
                           validate=lambda m: seen.append(m) or 1.0 / (len(seen)))
    trainer.fit()
    assert all(m is trainer.averaged.module for m in seen)
    best = early.best_state
    for name, value in trainer.module.state_dict().items():
        torch.testing.assert_close(value, best[name])


def test_resumed_fit_continues_the_weight_average(tmp_path):
    kw = dict(ema_decay=0.8, callbacks=[EarlyStopping(patience=None)])
    straight = make_trainer(max_epochs=4, **kw)
    straight.fit()
    make_trainer(max_epochs=2, checkpoint_dir=tmp_path, **kw).fit()
    resumed = make_trainer(max_epochs=4, checkpoint_dir=tmp_path, **kw)
    resumed.fit()
    assert _without_time(resumed.history) == _without_time(straight.history)
    for name, value in resumed.module.state_dict().items():
        torch.testing.assert_close(value, straight.module.state_dict()[name])


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_bad_weight_average_decay_is_named(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        make_trainer(ema_decay=decay)
