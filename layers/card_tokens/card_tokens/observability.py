"""The one Logger, Tracer and Metrics of the service (Powertools)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
logger = Logger()
tracer = Tracer()
metrics = Metrics()

# At DEBUG the AWS SDK logs whole requests and responses: KMS data keys in the clear
# (GenerateDataKey, Decrypt), the signing key's private PEM (GetSecretValue, PutSecretValue).
# Lambda's ApplicationLogLevel=DEBUG puts the root logger at DEBUG before this module is
# imported, and a logging.basicConfig(level=DEBUG) can do so later. A level set on these loggers
# wins over the root's for them and every child (botocore.parsers, urllib3.connectionpool, ...),
# whenever and however the root is changed; warnings and errors still get through. stripe's
# DEBUG lines carry each request body: a card's number and CVC on its way to Stripe.
SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3", "stripe")
SDK_LOG_LEVEL = logging.WARNING


def pin_sdk_loggers() -> None:
    """Keep the SDK loggers at WARNING or above (a stricter level set elsewhere is kept)."""
    for name in SDK_LOGGERS:
        sdk_logger = logging.getLogger(name)
        sdk_logger.setLevel(max(SDK_LOG_LEVEL, sdk_logger.level))


pin_sdk_loggers()


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


def lambda_entry[Handler: Callable[..., Any]](
    *, correlation_path: str | None = None, cold_start_metric: bool = False
) -> Callable[[Handler], Handler]:
    """The observability every handler gets: a Lambda context in each log line (and the
    correlation id at correlation_path), a traced invocation, the metrics flushed at its end.

    Events carry card data or tokens, and answers carry tokens: the event is never logged
    (log_event=False wins over POWERTOOLS_LOGGER_LOG_EVENT=true), and the tracer records
    neither the response nor the error.
    """

    def decorate(handler: Handler) -> Handler:
        traced = tracer.capture_lambda_handler(capture_response=False, capture_error=False)(
            metrics.log_metrics(capture_cold_start_metric=cold_start_metric)(handler)
        )
        logged = logger.inject_lambda_context(correlation_id_path=correlation_path, log_event=False)
        return cast(Handler, logged(traced))

    return decorate
