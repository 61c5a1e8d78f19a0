"""The canvas and playback flow of the main window: the latent canvas map, its handle and pins,
playing the keyframe path, snapshots (and mixing two of them), PNG/clipboard/GIF export.

A mixin of `ui.main_window.MainWindow`.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog

from core.engine import Frame
from core.export import save_png
from core.history import EditState, PlanePoint
from core.jobs import CanvasMap, canvas_map, keyframe_frames
from core.policy import PATH_FRAMES_PER_SEGMENT, PATH_LOOPS
from ui.bridge import Task
from ui.gif_dialog import GifDialog, GifSources
from ui.images import to_qimage
from ui.mix_dialog import MixDialog

PLAY_FPS = PATH_FRAMES_PER_SEGMENT  # one second per segment of the path
MAP_DELAY_MS = 250  # the canvas map is re-rendered once the face has settled this long


class CanvasFlow:
    """Latent canvas, path playback, snapshots and export (mixed into MainWindow)."""

    # =========================================================================== latent canvas
    def _schedule_map(self) -> None:
        """Re-render the canvas map once the face has settled; a map in progress is dropped (the
        face's own render goes first on the one worker)."""
        if self._closing:
            return
        self.bridge.cancel_key("map")
        self.canvas_panel.canvas.set_stale(True)
        self._map_timer.start()

    def _on_view_changed(self) -> None:
        if self.canvas_panel.axis_a.count():
            self._saved_axes = (self.canvas_panel.axis_a.currentText(), self.canvas_panel.axis_b.currentText())
        self._schedule_map()

    def recentre_canvas(self) -> None:
        self._map_timer.stop()
        self._refresh_map(centre_on_face=True)

    def _state_plane(self, labels: tuple[str, str]) -> PlanePoint | None:
        """The face's point on its canvas plane, when the face is one (a move on the canvas, unedited
        since) and the plane has the chosen axes: the map is drawn on that plane again, handle and pins
        where they were (a reopened session, an undo, a new grid size), not re-centred."""
        base = self.state.base if self.state is not None else None
        if isinstance(base, PlanePoint) and not self.state.edits and base.plane.labels == labels:
            return base
        return None

    def _refresh_map(self, centre_on_face: bool = False) -> None:
        if self._closing or self.state is None:
            return
        a, b = self.canvas_panel.axes()
        if a is None or b is None:
            return
        panel = self.canvas_panel
        point = None if centre_on_face else self._state_plane((a.label, b.label))
        self.bridge.request("map", canvas_map, self.engine, self.state, a, b, panel.grid.value(), panel.extent.value(),
                            [k.state for k in self.keyframes], point.plane if point is not None else None,
                            name="canvas map", on_result=self._on_map, on_error=self._on_map_error)

    def _on_map(self, cmap: CanvasMap) -> None:
        self.canvas_map = cmap
        canvas = self.canvas_panel.canvas
        canvas.set_map(cmap.images, cmap.n, cmap.extent, cmap.plane.labels)
        point = self._state_plane(cmap.plane.labels)
        canvas.set_handle(*((point.u, point.v) if point is not None and point.plane is cmap.plane else (0.0, 0.0)))
        self._pin_uv = list(cmap.pins)
        canvas.set_pins(self._pin_uv)

    def _on_map_error(self, exc: BaseException) -> None:
        self.canvas_panel.canvas.set_stale(False)
        self.show_message(f"The canvas plane could not be drawn: {exc}")

    def _on_handle_moved(self, u: float, v: float) -> None:
        cmap = self.canvas_map
        if cmap is None or self.state is None:
            return
        if not self._canvas_drag:
            self._canvas_drag = True
            self.history.seal()
        self._cancel_face_jobs()
        self.set_playing(False)
        self.canvas_panel.canvas.set_handle(u, v)
        state = EditState(base=PlanePoint(cmap.plane, u, v), locked=self.state.locked, label="move on the canvas",
                          generator=self.state.generator)  # a photo face keeps its own generator
        self._apply(state, merge="canvas", recentre=False)

    def _on_handle_released(self, u: float, v: float) -> None:
        self._canvas_drag = False
        self.history.seal()

    def add_pin(self) -> None:
        if self.state is None:
            return
        uv = self.canvas_panel.canvas.handle()
        image = self.frame.image if self.frame is not None and self.frame_state is self.state else None
        self.keyframes.add(self.state, uv, image)
        self._pin_uv = (self._pin_uv + [uv])[-len(self.keyframes):]
        self.canvas_panel.canvas.set_pins(self._pin_uv)
        self.canvas_panel.set_pin_count(len(self.keyframes))
        self.status_text.setText(f"Pin {len(self.keyframes)} dropped")

    def clear_pins(self) -> None:
        self.set_playing(False)
        self.keyframes.clear()
        self._pin_uv = []
        self.canvas_panel.canvas.set_pins([])
        self.canvas_panel.set_pin_count(0)

    def _playing(self) -> bool:
        return self._play_timer.isActive() or (self._play_task is not None and not self._play_task.done)

    def set_playing(self, on: bool) -> None:
        """Play (render, then loop) the path through the pins, or stop."""
        for control in (self.action_play, self.canvas_panel.play):
            with QSignalBlocker(control):
                control.setChecked(bool(on) and self.keyframes.can_play)
        if not on:
            was_playing = self._playing()
            self._play_timer.stop()
            if self._play_task is not None and not self._play_task.done:
                self._play_task.cancel()
            self._play_task = None
            self.canvas_panel.canvas.set_marker(None)
            if was_playing:
                self.face_view.set_badge("")
                self._display_current()
            self.canvas_panel.set_pin_count(len(self.keyframes))
            return
        if not self.keyframes.can_play:
            self.show_message("Drop at least two pins on the latent canvas to play a path.", "info")
            return
        if self._playing():
            return
        task = self.bridge.submit(keyframe_frames, self.engine, [k.state for k in self.keyframes], PATH_FRAMES_PER_SEGMENT, PATH_LOOPS,
                                  name="render path", long=True)
        task.succeeded.connect(lambda frames, t=task: self._on_path_frames(t, frames))
        task.failed.connect(lambda exc: (self.set_playing(False), self.show_message(f"The path could not be "
                                                                                      f"rendered: {exc}")))
        self._play_task = task
        self.face_view.set_badge("Rendering path…")

    def _on_path_frames(self, task: Task, frames: list[Frame]) -> None:
        if task is not self._play_task:
            return
        self._play_task = None
        self._play_frames, self._play_index = frames, 0
        self._play_tick()
        self._play_timer.start()

    def _play_tick(self) -> None:
        frames = self._play_frames
        if not frames:
            return
        i = self._play_index % len(frames)
        self.face_view.set_image(frames[i].image)
        self.face_view.set_badge(f"Path {i + 1}/{len(frames)}")
        self.attribute_panel.set_probabilities(frames[i].probs.tolist())  # the bars follow the face shown
        if self._pin_uv and len(self._pin_uv) == len(self.keyframes):
            seg, t = divmod(i / PLAY_FPS, 1.0)
            k = int(seg)
            a = self._pin_uv[k % len(self._pin_uv)]
            b = self._pin_uv[(k + 1) % len(self._pin_uv)]
            self.canvas_panel.canvas.set_marker((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        self._play_index = i + 1

    # =========================================================================== snapshots, export
    def take_snapshot(self) -> None:
        if self.state is None or self.frame is None or self.frame_state is not self.state:
            self.status_text.setText("Wait for the face to finish rendering, then take the snapshot")
            return
        snap = self.snapshots.add(self.state, self.frame.image, self.state.label)
        if self.snapshot_strip.count() >= self.snapshots.limit:
            self.snapshot_strip.remove(0)
        self.snapshot_strip.add(snap.image, snap.label)
        self.status_text.setText(f"Snapshot {len(self.snapshots)} taken")

    def restore_snapshot(self, index: int) -> None:
        if not 0 <= index < len(self.snapshots):
            return
        snap = self.snapshots[index]
        self._cancel_face_jobs()
        self.set_playing(False)
        self._apply(snap.state.derive(f"snapshot: {snap.label}", z=snap.state.z))

    def remove_snapshot(self, index: int) -> None:
        if 0 <= index < len(self.snapshots):
            self.snapshots.remove(index)
            self.snapshot_strip.remove(index)

    def open_mix_dialog(self, first: int | None = None) -> MixDialog | None:
        """Mix two snapshots: `first` (else the selected one, else the one before last) and another."""
        if len(self.snapshots) < 2:
            self.show_message("Take two snapshots (Ctrl+B) of faces you like, then mix them.", "info")
            return None
        last = len(self.snapshots) - 1
        if first is None:
            first = self.snapshot_strip.currentRow() if self.snapshot_strip.currentRow() >= 0 else last - 1
        dialog = MixDialog(self.bridge, self.engine, self.snapshots, first, last if first != last else last - 1, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.use_face.connect(self._use_mix)
        dialog.show()
        self.mix_dialog = dialog
        return dialog

    def _use_mix(self, state: EditState, frame: Frame) -> None:
        """The blend becomes the face being edited (the current locks stay on): one undo step."""
        self._cancel_face_jobs()
        self.set_playing(False)
        self._apply(state.derive(state.label, locked=self.state.locked if self.state else frozenset(), z=state.z),
                    frame=frame)
        self.status_text.setText(state.label)

    def save_png_dialog(self) -> None:
        if self.frame is None:
            return
        folder = self.settings.value("paths/save_dir", str(Path.home()), type=str)
        name = f"face-seed{self.state.seed}.png" if self.state and self.state.seed is not None else "face.png"
        path, _ = QFileDialog.getSaveFileName(self, "Save the face", str(Path(folder) / name), "PNG images (*.png)")
        if path:
            self.settings.setValue("paths/save_dir", str(Path(path).parent))
            self.save_png(path)

    def save_png(self, path: str | Path) -> Task | None:
        """Save the face as shown (its displayed size and scaling) to a PNG, on the worker."""
        if self.frame is None:
            self.show_message("There is no face to save yet.")
            return None
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_name(path.name + ".png")
        return self.bridge.submit(save_png, self.frame.image, path, self.face_view.side(),
                                  self.action_smooth.isChecked(), name="save PNG",
                                  on_result=lambda p: self.status_text.setText(f"Saved {p}"),
                                  on_error=lambda exc: self.show_message(f"The PNG could not be saved: {exc}"))

    def copy_image(self) -> None:
        if self.frame is None:
            return
        side = self.face_view.side()
        mode = Qt.TransformationMode.SmoothTransformation if self.action_smooth.isChecked() \
            else Qt.TransformationMode.FastTransformation
        image = to_qimage(self.frame.image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, mode)
        QGuiApplication.clipboard().setImage(image)
        self.status_text.setText(f"Copied the face ({side}×{side}) to the clipboard")

    def gif_sources(self) -> GifSources:
        return GifSources(attributes=list(self.engine.attributes), available=self.directions_available,
                          steer_frames=self.last_steer.frames if self.last_steer is not None else None,
                          steer_targets=list(self.last_steer_targets), pins=[k.state for k in self.keyframes],
                          state=self.state, walk_attribute=self.last_attribute)

    def open_gif_dialog(self, source: str | None = None) -> GifDialog:
        if self.gif_dialog is not None and self.gif_dialog.task is None:
            self.gif_dialog.close()
            self.gif_dialog.deleteLater()
            self.gif_dialog = None
        if self.gif_dialog is None:
            self.gif_dialog = GifDialog(self.bridge, self.engine, self.gif_sources(), self.settings, source, self)
        self.gif_dialog.show()
        self.gif_dialog.raise_()
        return self.gif_dialog
