"""The latent-directions flow of the main window: which directions exist, and Tools → Fit latent
directions (time one batch, ask with the estimate, fit on the worker, Esc cancels).

A mixin of `ui.main_window.MainWindow`.
"""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker

from core.jobs import directions_status, estimate_fit_seconds
from ui.bridge import Task
from ui.dialogs import fit_confirmation
from ui.latent_canvas import axis_choices

FIT_BATCH = 200  # faces per step of the directions fit: a cancel lands between steps, ~1 s apart on
# one CPU thread (6 s at the default 1,000), at the same faces per second


class DirectionsFlow:
    """Directions status and fitting (mixed into MainWindow)."""

    # =========================================================================== directions
    def _refresh_directions(self) -> None:
        self.bridge.submit(directions_status, self.engine, name="check directions", on_result=self._on_directions)

    def _on_directions(self, available: list[bool] | None) -> None:
        self.directions_available = available
        self.attribute_panel.set_directions(available)
        with QSignalBlocker(self.canvas_panel):
            self.canvas_panel.set_axis_choices(axis_choices(self.engine.attributes, available), self._saved_axes)
        self.action_fit.setEnabled(True)
        if available is None:
            self.attribute_panel.notice.setText("The strength sliders need the latent directions of this generator, "
                                                "which are not fitted yet. More/less steering works without them.")
            self.attribute_panel.notice.setVisible(True)
            self.show_message("The latent directions of this generator are not fitted yet, so the sliders and the "
                              "attribute axes are off. Fitting them takes a few minutes.", "warning",
                              action=("Learn the sliders", self.fit_directions))
        else:
            self.attribute_panel.notice.setVisible(False)
        self._schedule_map()

    def fit_directions(self) -> None:
        """Tools → Fit latent directions: time one batch on the worker, then ask with the estimate."""
        if self._closing or self.fit_confirm is not None or self._fitting():
            return
        self.action_fit.setEnabled(False)
        self.status_text.setText("Measuring how long fitting the directions takes…")
        self.bridge.submit(estimate_fit_seconds, self.engine, self.fit_config, name="estimate the fit",
                           on_result=self._ask_fit,
                           on_error=lambda exc: (self.action_fit.setEnabled(True), self.status_text.setText("Ready"),
                                                 self.show_message(f"Fitting the directions failed: {exc}")))

    def _ask_fit(self, seconds: float) -> None:
        if self._closing:
            return
        self.status_text.setText("Ready")
        box = fit_confirmation(self, self.fit_config.samples, seconds)
        box.finished.connect(lambda _r, b=box: self._on_fit_answer(b))
        self.fit_confirm = box
        box.open()

    def _on_fit_answer(self, box) -> None:
        self.fit_confirm = None
        box.deleteLater()
        if box.clickedButton() is box.fit_button and not self._closing:
            self.start_fit()
        else:
            self.action_fit.setEnabled(True)
            self.status_text.setText("Fitting the directions: not started")

    def _fitting(self) -> bool:
        return self._fit_task is not None and not self._fit_task.done

    def start_fit(self) -> Task | None:
        """Fit the latent directions now (no question); Esc or Cancel stops it."""
        if self._closing or self._fitting():
            return None
        self.action_fit.setEnabled(False)
        self.status_text.setText("Fitting the latent directions… (Esc cancels)")
        task = self.bridge.submit(self.engine.fit_directions_job, self.fit_config, name="fit directions", long=True)
        task.succeeded.connect(lambda _d: (self.status_text.setText("The latent directions are fitted"),
                                           self.show_message("The latent directions are fitted: the sliders are on.",
                                                             "info"), self._refresh_directions()))
        task.failed.connect(lambda exc: (self.action_fit.setEnabled(True), self.status_text.setText("Ready"),
                                         self.show_message(f"Fitting the directions failed: {exc}")))
        task.cancelled.connect(lambda: (self.action_fit.setEnabled(True),
                                        self.status_text.setText("Fitting the directions was cancelled")))
        task.finished.connect(lambda _state: self._update_actions())
        self._fit_task = task
        self._update_actions()
        return task

    def cancel_jobs(self) -> None:
        """Esc / Cancel: stop the long jobs; the status says so at once (a fit stops between batches)."""
        if self._fitting():
            self.status_text.setText("Stopping the fit…")
        self.bridge.cancel_long()
