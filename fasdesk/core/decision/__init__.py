"""Error rates and threshold picking: the place that turns scores into decisions."""
