"""The Training tab's five steps, one module each: dataset, prepare, train, evaluate,
export (fasdesk.ui.training.tab puts them together). Each builds the backend's command
line (training.layout), follows the run's events, and hands its result to the next step."""
from fasdesk.ui.training.dataset import DatasetStep
from fasdesk.ui.training.evaluate import EvaluateStep
from fasdesk.ui.training.export import ExportStep
from fasdesk.ui.training.prepare import PrepareStep
from fasdesk.ui.training.train import TrainStep

__all__ = ["DatasetStep", "PrepareStep", "TrainStep", "EvaluateStep", "ExportStep"]
