"""The one Logger, Tracer and Metrics of the service (Powertools)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
logger = Logger()
tracer = Tracer()
metrics = Metrics()

# A GET or a refused request adds no metric; that is expected, not worth a warning per container.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
