"""The AWS::Serverless transform of template.yaml, offline, as CloudFormation runs it after
`sam deploy` uploaded the code: one place for every template test that needs it."""

from __future__ import annotations

import copy
import os
from typing import Any

from samtranslator.translator.transform import transform

from local.cfn import load_template

Template = dict[str, Any]

CODE_URI = "s3://artifacts/code.zip"
LAYER_URI = "s3://artifacts/layer.zip"


class NoManagedPolicies:
    """The template names no managed policy, so the transform needs no IAM lookup."""

    def load(self) -> dict[str, str]:
        return {}


def packaged(code: str = CODE_URI, layer: str = LAYER_URI) -> Template:
    """template.yaml with the S3 locations `sam deploy` writes after the upload."""
    sam = load_template()  # a fresh copy
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = layer
    return sam


def sam_transform(
    template: Template, parameters: dict[str, str] | None = None, region: str = "eu-west-1"
) -> Template:
    """The transform of a copy of `template` (it mutates its input), in `region`."""
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        output: Template = transform(copy.deepcopy(template), parameters or {}, NoManagedPolicies())
    finally:
        if previous is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return output
