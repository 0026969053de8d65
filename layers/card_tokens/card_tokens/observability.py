"""The one Logger, Tracer and Metrics of the service (Powertools)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
logger = Logger()
tracer = Tracer()
metrics = Metrics()


def count(name: str, **dimensions: str) -> None:
    """One count of `name`, split by the given dimensions (e.g. reason, status) in CloudWatch."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1) as metric:
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


# A GET or a refused request adds no metric; that is expected, not worth a warning per container.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
