"""The training loop: schedule, prefactors, batches, learning curve, checkpoints, Ctrl-C.

Step ``t`` (0-based) uses the learning rate ``lr(t)`` of :class:`dpmodel.schedule.ExponentialDecay`
and prefactors interpolated with ``lr(t)`` (``start_lr`` during warmup, as DeePMD-kit),
draws the next batch of :class:`dpmodel.data.DataSystems` and calls the backend's
``step``. After ``t + 1`` steps, when ``t + 1`` is 1 or a multiple of ``disp_freq``, a row
goes to ``lcurve.out``: the training metrics of that step's batch (before its update) and
the validation metrics (after it) averaged over ``numb_btch`` batches, weighted by atoms.
The host work of each training batch (neighbour lists) is staged one step ahead on a
background thread when the backend allows it (:mod:`dpmodel.training.prefetch`).
When ``t + 1`` is a multiple of ``save_freq``, or the last step, a checkpoint is written.

Ctrl-C (SIGINT) finishes the running step, writes a checkpoint and raises
:class:`TrainingInterrupted`; a second Ctrl-C aborts at once without saving.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from dpmodel import allocator, neighbor_cache
from dpmodel.io import atomic_write
from dpmodel.schedule import ExponentialDecay
from dpmodel.training.checkpoint import Checkpoint, CheckpointKeeper
from dpmodel.training.lcurve import Lcurve
from dpmodel.training.loss import METRICS, active_terms, displayed, prefactors, weighted_mean
from dpmodel.training.prefetch import StagedBatches
from dpmodel.training.progress import Progress, eta_text
from dpmodel.training.setup import Prepared, TrainOptions

__all__ = ["Trainer", "TrainingInterrupted"]

log = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C after saving ``checkpoint`` at ``step``."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted after step {step}; checkpoint saved to {checkpoint}; continue with "
                         f"--restart {checkpoint}")
        self.step, self.checkpoint = step, checkpoint


class _SigintGuard:
    """First SIGINT sets :attr:`requested`; the second raises ``KeyboardInterrupt``."""

    def __init__(self) -> None:
        self.requested, self._previous = False, None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: finishing this step and saving a checkpoint (press again to abort without saving)")

    def __enter__(self) -> "_SigintGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Runs a :class:`~dpmodel.training.setup.Prepared` training to ``numb_steps``.

    Attributes
    ----------
    history : list of dict
        One entry per learning-curve row: ``step``, ``lr``, ``train`` and ``valid``
        metrics as full-precision floats.
    """

    def __init__(self, prepared: Prepared, options: TrainOptions | None = None) -> None:
        allocator.tune()
        self.p = prepared
        self.options = options or TrainOptions()
        config = prepared.config
        self.training, self.loss = config["training"], config["loss"]
        self.numb_steps = int(self.training["numb_steps"])
        self.schedule = ExponentialDecay.from_config(config["learning_rate"], self.numb_steps)
        self.active = active_terms(self.loss)
        self.metrics = [m for m, term in METRICS.items() if term is None or term in self.active]
        workdir = Path(self.options.workdir)
        self.keeper = CheckpointKeeper(workdir, self.training["save_ckpt"], self.training["max_ckpt_keep"])
        self.lcurve_path = workdir / self.training["disp_file"]
        self.history: list[dict] = []
        self.last_checkpoint: Path | None = None
        self.batches: StagedBatches | None = None  # while run() trains
        # data-parallel ranks other than 0 train but write no files (the backend says which rank it is)
        self.main = bool(getattr(prepared.trainer, "is_main", True))

    # ------------------------------------------------------------------ pieces
    def _prefactors(self, step: int, lr: float) -> dict[str, float]:
        pref_lr = self.schedule.start_lr if step < self.schedule.warmup_steps else lr
        return prefactors(self.loss, pref_lr, self.schedule.start_lr)

    def _validate(self, prefs: dict[str, float]) -> dict[str, float] | None:
        if self.p.valid is None:
            return None
        results, natoms = [], []
        for _ in range(self.training["validation_data"]["numb_btch"]):
            _, batch = self.p.valid.next_batch()
            results.append(displayed(self.p.trainer.evaluate(batch, prefs), batch, self.active))
            natoms.append(batch["atype"].shape[1])
        return weighted_mean(results, natoms)

    def save(self, step: int) -> Path | None:
        """Write the checkpoint of ``step`` completed steps (on the main rank only)."""
        if not self.main:
            return None
        data = {"train": (self.batches or self.p.train).state()}
        if self.p.valid is not None:
            data["valid"] = self.p.valid.state()
        ckpt = Checkpoint(self.p.trainer.model_dict(), self.p.config, self.p.backend.name, step,
                          self.p.trainer.state(), data, self.p.min_nbor_dist)
        self.last_checkpoint = self.keeper.save(ckpt)
        log.info("saved checkpoint %s", self.last_checkpoint)
        return self.last_checkpoint

    def write_config(self) -> None:
        """The normalized, resolved input to ``out.json`` (``-o``)."""
        if not self.main:
            return
        path = Path(self.options.workdir) / self.options.output
        text = json.dumps(self.p.config, indent=4) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def _display(self, step: int, lr: float, prefs: dict, metrics: Any, batch: dict, clock: "_Clock",
                 bar: Progress) -> None:
        """One learning-curve row and log line after ``step`` steps."""
        train = displayed(metrics, batch, self.active)
        valid = self._validate(prefs)
        seconds, steps = clock.lap(step)
        self.history.append({"step": step, "lr": lr, "train": train, "valid": valid})
        if self.lcurve is not None:
            self.lcurve.write(step, train, valid, lr)
        parts = [f"{k}_trn {train[k]:.3e}" + ("" if valid is None else f" {k}_val {valid[k]:.3e}")
                 for k in self.metrics]
        timing = f"; {seconds:.2f} s for {steps} steps ({seconds / max(steps, 1):.4f} s/step)" \
            if self.training["time_training"] else ""
        eta = "" if bar.bar else f", ETA {eta_text(bar.eta())}"
        log.info("step %d/%d: %s; lr %.2e%s%s", step, self.numb_steps, ", ".join(parts), lr, timing, eta)
        log.debug("metrics step=%d lr=%r train=%s valid=%s", step, lr, json.dumps(train), json.dumps(valid))

    # ------------------------------------------------------------------ loop
    def run(self) -> int:
        """Train to ``numb_steps``; return the number of completed steps.

        Raises
        ------
        TrainingInterrupted
            After Ctrl-C, once the checkpoint is written.
        """
        start = done = self.p.start_step
        self.write_config()
        self.lcurve = Lcurve(self.lcurve_path, self.metrics, self.p.valid is not None,
                             start if self.p.restarted else None) \
            if self.training["disp_training"] and self.main else None
        disp_freq, save_freq = self.training["disp_freq"], self.training["save_freq"]
        log.info("training %s with %s from step %d to %d", self.training["training_data"]["systems"],
                 self.p.backend.title or self.p.backend.name, start, self.numb_steps)
        clock = _Clock(start)
        cache = neighbor_cache.activate()  # frames recur every epoch; their neighbour lists do not change
        self.batches = StagedBatches(self.p.train, getattr(self.p.trainer, "stage", None))
        try:
            with _SigintGuard() as guard, Progress(self.numb_steps, start, self.options.progress) as bar:
                for t in range(start, self.numb_steps):
                    lr = float(self.schedule.value(t))
                    prefs = self._prefactors(t, lr)
                    batch, staged = self.batches.next(more=t + 1 < self.numb_steps)
                    metrics = self.p.trainer.step(staged, lr, prefs)
                    done = t + 1
                    bar.advance()
                    if self.training["disp_training"] and (done % disp_freq == 0 or done == 1):
                        self._display(done, lr, prefs, metrics, batch, clock, bar)
                    if done % save_freq == 0 or done == self.numb_steps:
                        self.save(done)
                    if guard.requested and done < self.numb_steps:
                        path = self.last_checkpoint if done % save_freq == 0 else self.save(done)
                        raise TrainingInterrupted(done, path)
        finally:
            self.batches.close()
            self.batches = None
            neighbor_cache.deactivate(cache)
            close = getattr(self.p.trainer, "close", None)
            if close is not None:
                close()
        clock.summary(done)
        if start >= self.numb_steps:
            log.warning("the checkpoint is at step %d >= numb_steps = %d: nothing to train", start, self.numb_steps)
        return done


class _Clock:
    """Wall time per display interval, and the mean after the first interval (compilation, warm-up)."""

    def __init__(self, start: int) -> None:
        self.start, self.tick, self.tick_step = start, time.perf_counter(), start
        self.warm: tuple[float, int] | None = None

    def lap(self, step: int) -> tuple[float, int]:
        """Seconds and steps since the previous lap."""
        now = time.perf_counter()
        lap = (now - self.tick, step - self.tick_step)
        self.tick, self.tick_step = now, step
        if self.warm is None and step > self.start + 1:
            self.warm = (now, step)
        return lap

    def summary(self, done: int) -> None:
        if self.warm is not None and done > self.warm[1]:
            log.info("average training time: %.4f s/step (excluding the first %d steps)",
                     (time.perf_counter() - self.warm[0]) / (done - self.warm[1]), self.warm[1] - self.start)
