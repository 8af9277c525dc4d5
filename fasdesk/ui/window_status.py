"""The main window's status bar: live stats, the model, the provider (the camera
profile shows in the Live tab, by the threshold).

A view of AppState: the model label follows its events; the model check's
outcome (a refused file, a missing model) is shown by the window's banner and notice.
"""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar

from fasdesk.app.state import AppState
from fasdesk.core.inference.liveness import best_providers
from fasdesk.ui.subscribe import subscribe


class WindowStatus:
    """The permanent labels of `bar`; `engine` is what the live worker said of the model
    it loaded: (model file, optimized, why)."""

    def __init__(self, bar: QStatusBar, state: AppState):
        self.bar, self.state = bar, state
        self.engine: tuple[str, bool | None, str] = ("", None, "")
        # Live stats show only while live runs (on any tab); model and provider always.
        self.stats_label = QLabel("")
        self.stats_label.setToolTip("Live view: frames per second and time per stage")
        self.stats_label.hide()
        self.model_label = QLabel("")
        # What onnxruntime will use until a live pipeline reports what it got.
        self.provider_label = QLabel(best_providers()[0].replace("ExecutionProvider", ""))
        self.provider_label.setToolTip("onnxruntime execution provider")
        for label in (self.stats_label, self.model_label, self.provider_label):
            bar.addPermanentWidget(label)
        # Wide enough for the longest stats line, so it never jumps or gets cut.
        self.stats_label.setMinimumWidth(self.stats_label.fontMetrics().horizontalAdvance(
            "live 00.0 fps | detect 000.0 ms, crop 00.0 ms, liveness 000.0 ms") + 20)
        subscribe(bar, state.status, self.show_message)

    def show_message(self, text: str) -> None:
        self.bar.showMessage(text, 8000)

    def show_model(self, optimized: bool | None = None, note: str = "") -> None:
        """'model: ID (optimized)', the reason in its tooltip. Whether it runs optimized
        comes from the live worker once it has loaded the model (building the fast copy
        is its work, never the UI thread's)."""
        from fasdesk.core.inference.optimize import describe

        path = self.state.model_path()
        if optimized is None and path is not None and self.engine[0] == str(path):
            optimized, note = self.engine[1:]  # what the worker said of this file
        text, tip = f"model: {self.state.model_name()}", "Liveness model"
        if optimized is not None:
            text += " (optimized)" if optimized else " (not optimized)"
            tip += "; optimized: " + describe(optimized, note)
        self.model_label.setText(text)
        self.model_label.setToolTip(tip)

    def show_refused(self, refused: list[str]) -> None:
        self.model_label.setText("model refused")
        self.model_label.setToolTip("\n".join(refused))

    def pipeline_loaded(self, model_file: str, provider: str, optimized: bool, note: str) -> None:
        self.engine = (model_file, optimized, note)
        self.show_model(optimized, note)
        self.provider_label.setText(provider.replace("ExecutionProvider", ""))

    def live_running(self, running: bool) -> None:
        self.stats_label.clear()  # no numbers from an earlier run
        self.stats_label.setVisible(running)
