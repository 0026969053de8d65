"""The template's functions as Lambda runs them: in execution environments, each its own process.

`make run` gives every function a `local.environments.FunctionEnvironments`: an invocation goes
to an idle execution environment of that function, or starts a new one (a worker process that
imports the handler, a cold start) while the function has fewer than its limit (`--concurrency`),
or waits for one to be free. Each environment serves one invocation at a time and has its own
module-level state (cached boto3 clients, key caches, the Powertools logger), its own copy of
the function's environment variables, and its own Timeout; environments of one function and of
different functions run at the same time, all against the one AWS endpoint. So races between
invocations reach the emulator as they would reach AWS.

A `LocalFunction` without environments (`make rotate`, the benchmarks) runs the handler in the
calling process instead; those callers invoke one function at a time.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local.cfn import TEMPLATE_PATH, resources_of_type
from local.environments import FunctionEnvironments, FunctionSpec
from local.intrinsics import Resolver
from local.provision import FUNCTION, LAYER, function_arn, physical_name

Handler = Callable[[dict[str, Any], Any], Any]


class LambdaContext:
    """The attributes of the runtime's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, memory_limit_in_mb: int, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = function_arn(function_name)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    """One AWS::Serverless::Function: where its code is and how Lambda would run it."""

    logical_id: str
    function_name: str
    code_uri: Path
    handler: str
    memory_mb: int
    timeout_seconds: int
    _loaded: Handler | None = field(default=None, repr=False)
    environments: FunctionEnvironments | None = field(default=None, repr=False)

    @property
    def source(self) -> Path:
        """The handler's module file, under CodeUri."""
        module_path = self.handler.rpartition(".")[0]
        return self.code_uri / (module_path.replace(".", "/") + ".py")

    def check(self) -> None:
        """Fail now, not at the first request, if the handler's module is not there."""
        if not self.source.is_file():
            raise FileNotFoundError(f"{self.logical_id}: handler module {self.source} not found")

    def spec(self, python_path: list[Path]) -> FunctionSpec:
        return FunctionSpec(
            logical_id=self.logical_id,
            function_name=self.function_name,
            code_uri=str(self.code_uri),
            handler=self.handler,
            memory_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            python_path=tuple(str(path) for path in python_path),
        )

    def run_in_environments(
        self,
        variables: Mapping[str, str],
        max_environments: int,
        python_path: list[Path],
        *,
        function_logs: bool = True,
    ) -> FunctionEnvironments:
        """From now on, invocations go to execution environments (worker processes).

        `function_logs=False` drops what the handlers print (their Powertools JSON logs and EMF
        metrics); their stderr still reaches this process's.
        """
        self.check()
        self.environments = FunctionEnvironments(
            self.spec(python_path), variables, max_environments, function_logs=function_logs
        )
        return self.environments

    def load(self) -> Handler:
        """Import the handler into this process, under a module name unique to this function."""
        if self._loaded is None:
            self.check()
            module_path, _, attribute = self.handler.rpartition(".")
            # Every function has an `app` module; distinct names keep them apart in sys.modules.
            module_name = f"_local_lambda_{self.logical_id}_{module_path.replace('.', '_')}"
            module = sys.modules.get(module_name) or _import_file(module_name, self.source)
            handler = getattr(module, attribute)
            if not callable(handler):
                raise TypeError(f"{self.logical_id}: {self.handler} is not callable")
            self._loaded = handler
        return self._loaded

    def context(self) -> LambdaContext:
        return LambdaContext(self.function_name, self.memory_mb, self.timeout_seconds)

    def invoke(self, event: dict[str, Any]) -> Any:
        """Call the handler like the runtime does: one event, a fresh context.

        In an execution environment if the function has them (local.environments raises
        FunctionError, or FunctionTimeoutError past the Timeout), else in this process.
        """
        if self.environments is not None:
            return self.environments.invoke(event)
        return self.load()(event, self.context())


def _import_file(module_name: str, source: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, source)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {source}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def functions_from_template(
    template: dict[str, Any], stack_name: str, root: Path = TEMPLATE_PATH.parent
) -> dict[str, LocalFunction]:
    """Every function of the template, with Globals applied."""
    global_properties = template.get("Globals", {}).get("Function", {})
    functions = {}
    for logical_id, resource in resources_of_type(template, FUNCTION).items():
        properties = {**global_properties, **resource.get("Properties", {})}
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            function_name=physical_name(stack_name, logical_id),
            code_uri=root / str(properties["CodeUri"]),
            handler=str(properties["Handler"]),
            memory_mb=int(properties.get("MemorySize", 128)),
            timeout_seconds=int(properties.get("Timeout", 3)),
        )
    return functions


def layer_paths(template: dict[str, Any], root: Path = TEMPLATE_PATH.parent) -> list[Path]:
    """The ContentUri of every layer the functions use: what Lambda puts on /opt/python."""
    resolver = Resolver(template, "layers")
    layers = resources_of_type(template, LAYER)
    used: list[str] = []
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    functions = resources_of_type(template, FUNCTION).values()
    for layer_list in [
        global_layers,
        *(f.get("Properties", {}).get("Layers", []) for f in functions),
    ]:
        for layer in layer_list:
            if isinstance(layer, dict) and layer.get("Ref") in layers and layer["Ref"] not in used:
                used.append(layer["Ref"])
    return [root / str(resolver.resolve(layers[name]["Properties"]["ContentUri"])) for name in used]


def put_layers_on_path(template: dict[str, Any], root: Path = TEMPLATE_PATH.parent) -> None:
    """Make the layers importable, as /opt/python is in Lambda (dependencies come from the venv)."""
    for path in reversed(layer_paths(template, root)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
