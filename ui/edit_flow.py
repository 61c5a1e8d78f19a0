"""The editing flow of the main window: the face being edited (a `core.history.EditState`
recipe), new faces (or one picked from a grid), sliders, locks, undo/redo and "more"/"less" steering.

A mixin of `ui.main_window.MainWindow`: it uses the widgets and the bridge the window builds.
"""
from __future__ import annotations

import random
from typing import Any

from PySide6.QtCore import QSignalBlocker

from core.engine import Frame, Progress, SteerOutcome
from core.history import EditState, PlanePoint
from core.jobs import FaceResult, render_face, slider_end_ready, window_steer_face
from core.readout import describe, identity_distance, identity_words, side_effects
from core.seed import MAX_SEED
from ui.attribute_panel import MAX_ALPHA, display_name
from ui.bridge import Task
from ui.face_grid import FaceGridDialog

SEED_BOX_MAX = min(MAX_SEED, 2**31 - 1)  # the seed box is a QSpinBox (a 32-bit int); seeds above come from files
STUCK = 0.01  # a steering run that moved its target's probability less than this changed nothing
NO_SEED = -1  # the seed box's value (shown as "—") while the face is not a seed's (a photo, a steered face)


class EditFlow:
    """Face state, edits and steering (mixed into MainWindow)."""

    # =========================================================================== the face state
    def _apply(self, state: EditState, *, push: bool = True, merge: Any = None, frame: Frame | None = None,
               recentre: bool = True) -> None:
        """Make `state` the face being edited: record it, sync the controls, show or render its face."""
        self.state = state
        if push:
            self.history.push(state, merge)
        self._sync_controls()
        if frame is not None:
            if state.z is None:
                state.z = frame.z
            self._show_frame(state, frame)
        else:
            self.bridge.request("face", render_face, self.engine, state, name="render face",
                                on_result=self._on_face, on_error=self._on_face_error)
        if recentre:
            base = state.base
            if (isinstance(base, PlanePoint) and self.canvas_map is not None and base.plane is self.canvas_map.plane
                    and not state.edits):
                self.canvas_panel.canvas.set_handle(base.u, base.v)
            else:
                self._schedule_map()
        self._update_actions()

    def _sync_controls(self) -> None:
        state = self.state
        if state is None:
            return
        self.attribute_panel.set_alphas(state.alphas)
        self.attribute_panel.set_locked(state.locked)
        seed = state.seed if state.seed is not None else NO_SEED
        if self.seed_box.value() != seed:
            with QSignalBlocker(self.seed_box):
                self.seed_box.setValue(seed)
        origin = f"seed {state.seed}" if state.seed is not None else state.label if not state.edits else "edited face"
        parts = [origin] + [f"{display_name(k)} {v:+.1f}" for k, v in state.edits.items()]
        if state.locked:
            parts.append(f"{len(state.locked)} locked")
        self.caption.setText(" · ".join(parts))
        self.caption.setToolTip(self.caption.text())

    def _on_face(self, result: FaceResult) -> None:
        state = result.state
        if state.z is None:
            state.z = result.frame.z
        if state is self.state:
            self._show_frame(state, result.frame)
        elif self.bridge.has_pending("face") and not self._previewing():
            self.face_view.set_image(result.frame.image)  # a passing frame while the newest one renders

    def _on_face_error(self, exc: BaseException) -> None:
        self.show_message(f"This face could not be rendered: {exc}")

    def _show_frame(self, state: EditState, frame: Frame) -> None:
        self.frame, self.frame_state = frame, state
        if state is self._start_state:
            self.start_frame = frame
        self._display_current()
        self._sync_photo_panel()
        self._update_actions()
        self._update_readout()
        if self._reach_check is not None and not self.bridge.has_pending("face"):
            name, self._reach_check = self._reach_check, None
            self._hint_if_unreached(name)
        self.face_shown.emit()

    def _update_readout(self) -> None:
        """Plain words under the face: the other attributes this edit moved (the readout beside the
        face) and, from the identity metric on the worker, whether it is still the same person."""
        start, frame = self.start_frame, self.frame
        if start is None or frame is None or frame is start or self.frame_state is self._start_state:
            self.readout.setText("")
            return
        edited = set(self.state.edits) | ({self.last_attribute} if self.last_attribute else set())
        text = describe(side_effects(start.probs, frame.probs, self.engine.attributes, edited), display_name)
        self.readout.setText(text)

        def show(distance: float | None, shown: Frame = frame) -> None:
            if shown is self.frame and distance is not None:
                self.readout.setText(f"{text} {identity_words(distance)}")

        photo = self.current_photo()  # a photo's face is compared with the photo itself, as its likeness was
        reference, shown = (photo.found.crop.likeness_pair(frame.image) if photo is not None
                            else (start.image, frame.image))
        self.bridge.request("identity", identity_distance, reference, shown, name="identity readout",
                            on_result=show)

    def _previewing(self) -> bool:
        """Something else owns the face view right now (a live job, the path player)."""
        return self._playing() or (self._face_task is not None and not self._face_task.done)

    def _display_current(self) -> None:
        """Show the current face (or the "before" face); a live job or the player keeps the view."""
        if self._previewing():
            return
        photo = self.current_photo()
        if self.action_before.isChecked() and photo is not None:
            shown, badge = photo.before, "Before: the photo"  # the aligned crop itself, not its inversion
        elif self.action_before.isChecked() and self.start_frame is not None:
            shown, badge = self.start_frame, "Before"
        else:
            shown, badge = self.frame, ""
        if shown is None:
            return
        self.face_view.set_image(shown.image)
        self.face_view.set_badge(badge)
        self.attribute_panel.set_probabilities(shown.probs.tolist())

    def is_ready(self) -> bool:
        """No job running or waiting, and the current state's face is on screen."""
        return (self.bridge.idle() and not self._map_timer.isActive() and self.state is not None
                and self.frame_state is self.state)

    def _cancel_face_jobs(self) -> None:
        """A new edit supersedes a running steering run or photo inversion."""
        task, self._face_task = self._face_task, None
        if task is not None and not task.done:
            task.cancel()
        self.attribute_panel.set_busy_attribute(None)

    # =========================================================================== edits
    def new_face(self, seed: int | None = None) -> None:
        """A random face (a new seed, or `seed`); it becomes the "before" face."""
        seed = random.randint(0, SEED_BOX_MAX) if seed is None else max(0, min(MAX_SEED, int(seed)))
        self._cancel_face_jobs()
        self.set_playing(False)
        state = EditState.seed_face(seed)
        self._start_new_face(state)
        self._sync_photo_panel()
        self._apply(state)

    def pick_random_face(self) -> FaceGridDialog:
        """A grid of new random faces; the one clicked becomes the face being edited (as `new_face`)."""
        grid = self.face_grid
        if grid is None:
            grid = self.face_grid = FaceGridDialog(self.bridge, self.engine, self.icons, SEED_BOX_MAX, self)
            grid.picked.connect(self.new_face)
        elif not grid.isVisible():
            grid.more()  # opened again: new faces
        grid.show()
        grid.raise_()
        grid.activateWindow()
        return grid

    def _start_new_face(self, state: EditState) -> None:
        """`state` starts a new face (a seed, a photo): it becomes the "before" face, and the pins of the
        previous face go (they were its keyframes), and so does its last steering run (the GIF dialog
        must not offer another face's run). A new face starts with no locks: a lock holds what
        one face has (this woman stays a woman), and carried over unseen it silently blocked edits of
        the next; the message bar says which were cleared."""
        cleared = sorted(self.state.locked) if self.state is not None else []
        self._start_state = state
        self.last_steer, self.last_steer_targets = None, []  # a steering run belongs to the face it steered
        if len(self.keyframes):
            self.clear_pins()
        if cleared:
            names = ", ".join(display_name(n) for n in cleared)
            self.show_message(f"New face: the lock{'s' if len(cleared) > 1 else ''} on {names} "
                              f"{'were' if len(cleared) > 1 else 'was'} cleared; lock again to keep "
                              f"{'them' if len(cleared) > 1 else 'it'} on this face.", "info")

    def _on_seed(self, seed: int) -> None:
        if seed == NO_SEED:  # stepped below 0 onto "—": a seed face keeps showing its seed
            self._sync_controls()
        elif self.state is None or self.state.seed != seed:
            self.new_face(seed)

    def _on_alpha(self, name: str, alpha: float) -> None:
        if self.state is None:
            return
        self._cancel_face_jobs()
        self.set_playing(False)
        alphas = {k: v for k, v in self.state.alphas.items() if k != name}
        if alpha:
            alphas[name] = alpha
        self.last_attribute = name
        state = self.state.derive(f"{display_name(name)} {alpha:+.2f}" if alpha else f"{display_name(name)} off",
                                  alphas=alphas)
        if alpha:  # asked on the worker, ahead of the render: the face's code may need the model (a style G)
            self.bridge.request("slider end", slider_end_ready, self.engine, state, name, 1 if alpha > 0 else -1,
                                name="slider end ready?",
                                on_result=lambda ready, s=state: ready or self._finding_end(s, name, alpha))
        self._apply(state, merge=("alpha", name))

    def _finding_end(self, state: EditState, name: str, alpha: float) -> None:
        """The slider's first move on this face steers its end once (about a second on a CPU): say so
        while that face is still on its way."""
        if state is self.state and self.frame_state is not state:
            self.face_view.set_badge(f"Finding how this face gets {'more' if alpha > 0 else 'less'} "
                                     f"{display_name(name)}…")

    def _on_slider_released(self, name: str) -> None:
        self.history.seal()
        self._reach_check = name
        if self.is_ready():  # the last value is already on screen
            self._reach_check = None
            self._hint_if_unreached(name)

    def _hint_if_unreached(self, name: str) -> None:
        """A slider at its end that still leaves the face on the wrong side of 0.5: point to steering.

        A slider ends where one run of the window's "+" gets (core.slider_paths); on rare attributes
        (Bald, Mustache) that run falls short for some faces, and steering on from there gets further.
        """
        if self.state is None or self.frame is None or self.frame_state is not self.state:
            return
        alpha = self.state.edits.get(name, 0.0)
        if abs(alpha) < MAX_ALPHA - 1e-6:
            return
        p = float(self.frame.probs[self.engine.attribute_index(name)])
        sign = 1 if alpha > 0 else -1
        if (p >= 0.5) if sign > 0 else (p <= 0.5):
            return
        label = display_name(name)
        word = "more" if sign > 0 else "less"
        self.show_message(f"The {label} slider is at its end and the face reads {100 * p:.0f} % {label}: a slider "
                          f"does not get there for every face. Steering keeps nudging this face until it does.", "info",
                          action=(f"Steer {word} {label}", lambda: self.steer(name, sign)))

    def _on_lock(self, name: str, on: bool) -> None:
        if self.state is None:
            return
        locked = set(self.state.locked)
        (locked.add if on else locked.discard)(name)
        keep_z = self.state.z if not self.state.edits else None  # without edits, locks do not move the face
        self._apply(self.state.derive(f"{'lock' if on else 'unlock'} {display_name(name)}",
                                      locked=frozenset(locked), z=keep_z))

    def reset_face(self) -> None:
        """Back to this face's starting point (the "before" face: the seed's, the photo's), with the
        locks as they are now; one undo step, like any edit."""
        start = self._start_state
        if self.state is None or start is None or self.state is start:
            return
        self._cancel_face_jobs()
        self.set_playing(False)
        keep_z = start.z if not start.edits else None  # locks do not move a face without edits
        self._apply(start.derive("reset to the starting face", locked=self.state.locked, z=keep_z))

    def can_reset(self) -> bool:
        """Something to reset: the face is not its starting point."""
        start = self._start_state
        return bool(self.state is not None and start is not None and self.state is not start
                    and not (self.state.same_recipe(start) and self.state.z is not None and start.z is not None
                             and bool((self.state.z == start.z).all())))

    def undo(self) -> None:
        state = self.history.undo()
        if state is not None:
            self._restore(state)

    def redo(self) -> None:
        state = self.history.redo()
        if state is not None:
            self._restore(state)

    def _restore(self, state: EditState) -> None:
        self._cancel_face_jobs()
        self.set_playing(False)
        self._apply(state, push=False)

    # =========================================================================== steering
    def steer(self, name: str, sign: int) -> Task | None:
        """Classifier-gradient steering of the current face ("more"/"less"), with live frames."""
        if self.state is None:
            return None
        self._cancel_face_jobs()
        self.set_playing(False)
        origin = self.state
        label = f"{'more' if sign > 0 else 'less'} {display_name(name)}"
        self.last_attribute = name
        task = self.bridge.submit(window_steer_face, self.engine, origin, name, sign, self.steer_config,
                                  name=f"steering ({label})", long=True)
        task.progress.connect(lambda item, t=task: self._on_steer_progress(t, label, item))
        task.succeeded.connect(lambda out, t=task: self._on_steered(t, origin, name, label, out))
        task.failed.connect(lambda exc, t=task: self._on_face_task_failed(t, f"Steering ({label}) failed: {exc}"))
        task.cancelled.connect(lambda t=task: self._on_face_task_cancelled(t, "Steering cancelled"))
        self._face_task = task
        self.attribute_panel.set_busy_attribute(name)
        self.face_view.set_badge(f"{label}…")
        self.status_text.setText(f"Steering: {label}…")
        return task

    def _on_steer_progress(self, task: Task, label: str, item: Any) -> None:
        if task is not self._face_task or not isinstance(item, Progress) or item.frame is None:
            return
        self.live_frames += 1
        self.face_view.set_image(item.frame.image)
        self.face_view.set_badge(f"{label} {item.step}/{item.total}")
        self.attribute_panel.set_probabilities(item.frame.probs.tolist())

    def _on_steered(self, task: Task, origin: EditState, name: str, label: str, outcome: SteerOutcome) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        first, final = outcome.frames[0], outcome.frames[-1]
        self.last_steer, self.last_steer_targets = outcome, [name]
        index = self.engine.attribute_index(name)
        before, after = first.probs.tolist()[index], final.probs.tolist()[index]
        steps = len(outcome.frames) - 1
        reading = f"{display_name(name)} {before:.2f} → {after:.2f}"
        if abs(after - before) < STUCK:  # nothing moved: say why instead of reporting a run as if it worked
            self._explain_stuck(origin, name, label, reading)
            return
        state = EditState.steered(origin, final.z, label)
        self._apply(state, frame=final)
        self.status_text.setText(f"{label}: {reading} in {steps} step{'s' if steps != 1 else ''}")

    def _explain_stuck(self, origin: EditState, name: str, label: str, reading: str) -> None:
        """A steering run that did not change the target: the face stays as it was, and the message
        names the locks that held it (with an offer to unlock them and try again) or says it plainly."""
        self._display_current()
        self.status_text.setText(f"{label}: no change ({reading})")
        locks = sorted(origin.locked - {name})
        if not locks:
            self.show_message(f"Steering could not make this face {label.split(' ', 1)[0]} {display_name(name)} "
                              f"({reading}); the face was left as it was.", "info")
            return
        names = ", ".join(display_name(n) for n in locks)
        word = "lock" + ("s" if len(locks) > 1 else "")
        self.show_message(f"The {word} on {names} kept this face from getting {label} ({reading}): on this face "
                          f"{display_name(name)} cannot change while {names} stay{'s' if len(locks) == 1 else ''} "
                          f"as {'it is' if len(locks) == 1 else 'they are'}. Unlocking lets the edit through, "
                          f"at the cost of changing {names}.", "warning",
                          action=(f"Unlock {names} and steer", lambda: self._unlock_and_steer(locks, name, label)))

    def _unlock_and_steer(self, locks: list[str], name: str, label: str) -> None:
        if self.state is None:
            return
        self._apply(self.state.derive(f"unlock {', '.join(display_name(n) for n in locks)}",
                                      locked=self.state.locked - set(locks), z=self.state.z if not self.state.edits
                                      else None))
        self.steer(name, 1 if label.startswith("more") else -1)

    def _on_face_task_failed(self, task: Task, text: str) -> None:
        if task is not self._face_task:
            return
        self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        self._display_current()
        self.show_message(text)

    def _on_face_task_cancelled(self, task: Task, text: str) -> None:
        if task is self._face_task:
            self._face_task = None
        self.attribute_panel.set_busy_attribute(None)
        if not self._previewing():
            self._display_current()
        self.status_text.setText(text)
