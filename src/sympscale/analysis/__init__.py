"""From a sweep folder to tables, figures and a summary. Everything is drawn from one tidy DataFrame."""

from sympscale.analysis.collect import collect
from sympscale.analysis.stats import mean_ci, median_iqr, paired_ratios

__all__ = ["collect", "mean_ci", "median_iqr", "paired_ratios"]
