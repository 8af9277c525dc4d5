"""The pages and widgets of the Calibrate dialog (fasdesk.ui.calibration_dialog) and what
the profiles dialog shares with it."""
