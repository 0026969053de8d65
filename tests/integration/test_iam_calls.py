"""IAM with nothing unused: each function's AWS calls, mapped to its role's grants both ways.

Every function's code paths run in-process on the emulated stack, and every call the layer's
three clients (card_tokens.aws) make is recorded with its parameters and attributed to the
function whose handler was running. Each call becomes the IAM requests AWS evaluates for it
(action, logical resource, request context); Lambda's own writes (logs, traces) are added from
the template. Then, per role: every request is allowed by the role's statements under their
conditions, and every (action, resource) the role is granted is requested by some call.

A static scan of the layer and the handlers lists every AWS operation the code can call; the
runs must have made each one, so a new call on a path no run takes fails here first.

AWS documentation this relies on:
- TransactWriteItems has no action of its own: "Permissions for Put, Update, Delete, and Get
  actions are governed by the permissions used for the underlying PutItem, UpdateItem,
  DeleteItem, and GetItem operations. For the ConditionCheck action, you can use the
  dynamodb:ConditionCheckItem permission."
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
- ReturnValuesOnConditionCheckFailure, ReturnValues, ConsistentRead and ReturnConsumedCapacity
  are parameters of the call itself, and AWS documents no further action for any of them. The
  API reference describes ReturnValuesOnConditionCheckFailure on PutItem/UpdateItem as "An
  optional parameter that returns the item attributes for a PutItem operation that failed a
  condition check. There is no additional cost ... No read capacity units are consumed."; the
  transaction page above names only the item-level actions (and a GetItem only for a Get item
  of TransactGetItems, which nothing here sends). ReturnValues and ReturnConsumedCapacity appear
  in IAM only as condition keys of the call's own action (dynamodb:ReturnValues,
  dynamodb:ReturnConsumedCapacity), which can narrow a grant and which no statement here uses.
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
  So none is modelled. REVIEWED_PARAMETERS lists every parameter looked at; a call with any
  other parameter fails until someone checks it the same way.
- Secrets Manager uses a secret's KMS key as the caller: GetSecretValue needs kms:Decrypt and
  PutSecretValue kms:GenerateDataKey on it, through Secrets Manager (kms:ViaService) with the
  encryption context SecretARN and SecretVersionId. The AWS managed key aws/secretsmanager
  needs no grant from the caller.
  https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html
  (sections "Permissions for the KMS key", "How Secrets Manager uses your KMS key", "Key policy
  of the AWS managed key", "Secrets Manager encryption context")
- Lambda writes the function's logs with its execution role (logs:CreateLogStream and
  logs:PutLogEvents; the stack creates the log group, so no logs:CreateLogGroup):
  https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html
- With Tracing: Active, "your function needs permission to upload trace data to X-Ray"
  through its execution role; modelled as the two upload actions of AWSXRayDaemonWriteAccess,
  xray:PutTraceSegments and xray:PutTelemetryRecords (no resource-level permissions: "*"):
  https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXRayDaemonWriteAccess.html
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import importlib
import io
import json
import re
import tokenize
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from card_tokens.aws import dynamodb_client, kms_client, secretsmanager_client
from card_tokens.config import CLOCK_LEEWAY_SECONDS, issuer_settings
from card_tokens.key_store import KEYS
from card_tokens.payments import CLAIM_LEASE_SECONDS
from card_tokens.processor import ProcessorOutcomeUnknown, SandboxProcessor
from card_tokens.reconciliation import Reconciler
from card_tokens.records import epoch_seconds
from card_tokens.wiring import reset_merchant_directories
from local.cfn import TEMPLATE_PATH, load_template, resources_of_type
from local.intrinsics import ACCOUNT_ID, REGION
from local.lambda_runtime import LambdaContext
from local.provision import LocalStack, alias_arn, physical_name, table_arn
from local.rotation import rotate
from local.sample_events import get_event, load_event, payment_event, token_event
from tests.template.test_iam_matrix import (
    FUNCTION_ROLES,
    Statement,
    action_matches,
    grant_pairs,
    referenced_ids,
    role_statements,
    with_processor,
)

Template = dict[str, Any]
ROOT = TEMPLATE_PATH.parent
CARDS = {
    "approves": "4242 4242 4242 4242",
    "declines": "4000 0000 0000 0002",
    "fails": "4000 0000 0000 0119",  # the sandbox processor refuses it, nothing charged
}
# One transaction item → the item-level action it is authorized by (transaction-apis-iam).
TRANSACTION_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# What Secrets Manager asks of the secret's own KMS key, as the caller (security-encryption).
SECRET_KMS_ACTIONS = {
    "GetSecretValue": "kms:Decrypt",
    "BatchGetSecretValue": "kms:Decrypt",
    "PutSecretValue": "kms:GenerateDataKey",
    "CreateSecret": "kms:GenerateDataKey",
    "UpdateSecret": "kms:GenerateDataKey",
}
# Every request parameter checked for IAM impact: none needs an action beyond the call's own
# (module docstring). A parameter not here fails the mapping until it has been checked.
REVIEWED_PARAMETERS = {
    "dynamodb": {
        "TableName", "Key", "Item", "TransactItems", "ClientRequestToken", "IndexName",
        "UpdateExpression", "ConditionExpression", "KeyConditionExpression",
        "ExpressionAttributeNames", "ExpressionAttributeValues", "ExclusiveStartKey",
        "ReturnValues", "ReturnValuesOnConditionCheckFailure", "ConsistentRead",
        "ReturnConsumedCapacity",
    },
    "kms": {"KeyId", "KeySpec", "EncryptionContext", "CiphertextBlob"},
    "secretsmanager": {
        "SecretId", "VersionId", "VersionStage", "VersionStages", "ClientRequestToken",
        "SecretString", "MoveToVersionId", "RemoveFromVersionId",
    },
}  # fmt: skip
# IAM-only actions that no botocore operation is named after (for wildcard expansion).
IAM_ONLY_ACTIONS = {"dynamodb": {"ConditionCheckItem"}}


@cache
def _template() -> Template:
    return load_template()


def full_template() -> Template:
    """template.yaml with every resource, the checkout page's included, as deployed with the
    sandbox processor the local stack runs (an external processor's secrets and grants are in
    test_iam_matrix.py); a copy per caller."""
    return with_processor(_template(), "sandbox")


# ------------------------------------------------------------------ recording the calls


@dataclass(frozen=True)
class Call:
    """One API call as the code made it: the function running, the service, its parameters."""

    function: str
    service: str  # the IAM prefix: dynamodb, kms, secretsmanager
    operation: str
    params: dict[str, Any] = field(compare=False)


@dataclass
class Recorder:
    """Calls of the layer's clients, each attributed to the function whose code is running."""

    calls: list[Call] = field(default_factory=list)
    invoked: Counter[str] = field(default_factory=Counter)
    strays: list[str] = field(default_factory=list)  # calls made outside any function
    _function: str | None = None

    @contextmanager
    def running(self, function_id: str) -> Iterator[None]:
        assert function_id in FUNCTION_ROLES, function_id
        previous, self._function = self._function, function_id
        self.invoked[function_id] += 1
        try:
            yield
        finally:
            self._function = previous

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        if self._function is None:
            self.strays.append(f"{service}:{model.name}")
            return
        self.calls.append(Call(self._function, service, model.name, copy.deepcopy(params)))

    @contextmanager
    def attached(self, *clients: Any) -> Iterator[None]:
        # before-parameter-build, not before-call: it carries the parameters as the code
        # passed them (before-call sees the serialized request), fires once per call (never
        # per retry), and fires before any fault hook on before-call can stop the call.
        for client in clients:
            client.meta.events.register_first(
                "before-parameter-build", self._record, unique_id="iam-calls"
            )
        try:
            yield
        finally:
            for client in clients:
                client.meta.events.unregister("before-parameter-build", unique_id="iam-calls")


# ------------------------------------------------------------------ running every code path


def _timeout(template: Template, function_id: str) -> int:
    properties = template["Resources"][function_id]["Properties"]
    return int(properties.get("Timeout", template["Globals"]["Function"].get("Timeout", 3)))


def _handler(template: Template, function_id: str) -> Callable[..., Any]:
    """The handler as template.yaml names it: CodeUri + Handler (functions/ is on sys.path)."""
    properties = template["Resources"][function_id]["Properties"]
    module, attribute = str(properties["Handler"]).rsplit(".", 1)
    code = Path(properties["CodeUri"]).parts
    package = code[1:] if code[0] == "functions" else code
    handler: Callable[..., Any] = getattr(
        importlib.import_module(".".join((*package, module))), attribute
    )
    return handler


def jti_of(token: str) -> str:
    jti: str = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["jti"]
    return jti


def new_key() -> str:
    return f"iam-{uuid.uuid4()}"


@dataclass(frozen=True)
class OnlyTheseTokens:
    """The reconciler's store, sweeping only this test's tokens (the index is the session's)."""

    inner: Any
    jtis: frozenset[str]

    def due_for_sweep(self, now: int) -> Iterator[str]:
        return (jti for jti in self.inner.due_for_sweep(now) if jti in self.jtis)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Functions:
    """Invokes each function's handler as Lambda would, inside the recorder's attribution."""

    recorder: Recorder
    template: Template

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        handler = _handler(self.template, function_id)
        context = LambdaContext(function_id, 512, _timeout(self.template, function_id))
        with self.recorder.running(function_id):
            return handler(event, context)

    def issue(self, card: str = "approves") -> str:
        response = self.invoke("IssueTokenFunction", token_event(card_number=CARDS[card]))
        assert response["statusCode"] == 201, response["body"]
        token: str = json.loads(response["body"])["token"]
        return token

    def pay(
        self, token: str, key: str | None = None, expect: int = 201, **fields: Any
    ) -> dict[str, Any]:
        response = self.invoke("ProcessPaymentFunction", payment_event(token, key, **fields))
        assert response["statusCode"] == expect, response["body"]
        body: dict[str, Any] = json.loads(response["body"])
        return body

    def sweep(self, *, at: int, tokens: list[str]) -> dict[str, int]:
        """One scheduled run of the reconciler's handler, its clock at `at`."""
        app = importlib.import_module("reconcile_payments.app")
        reconciler = Reconciler(
            states=OnlyTheseTokens(app.reconciler.states, frozenset(map(jti_of, tokens))),
            processor=app.reconciler.processor,
            clock=lambda: at,
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(app, "reconciler", reconciler)
            outcomes: dict[str, int] = self.invoke("ReconcilePaymentsFunction", {})
        return outcomes

    @contextmanager
    def processor_times_out(self, when: str) -> Iterator[None]:
        """The sandbox processor's next charge times out, before or after charging."""
        original = SandboxProcessor.charge
        calls: list[int] = []

        def charge(processor: SandboxProcessor, **kwargs: Any) -> Any:
            if calls:
                return original(processor, **kwargs)
            calls.append(1)
            if when == "after":
                original(processor, **kwargs)
            raise ProcessorOutcomeUnknown(f"timed out {when} charging")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(SandboxProcessor, "charge", charge)
            yield
        assert calls, "the processor was never called"


@contextmanager
def kms_fails(operation: str) -> Iterator[list[int]]:
    """Calls of one KMS operation fail before they are sent, as after every retry."""
    client = kms_client()
    hits: list[int] = []

    def fail(**_: Any) -> None:
        hits.append(1)
        raise ClientError(
            {"Error": {"Code": "KMSInternalException", "Message": "injected"}}, operation
        )

    client.meta.events.register(f"before-call.kms.{operation}", fail)
    try:
        yield hits
    finally:
        client.meta.events.unregister(f"before-call.kms.{operation}", fail)


def issue_token_paths(fx: Functions) -> None:
    KEYS.reset()  # the signing key's first read: GetSecretValue
    reset_merchant_directories()  # the registry's first read (GetItem): no merchant yet
    fx.issue()  # GenerateDataKey, PutItem (ReturnValuesOnConditionCheckFailure)


def process_payment_paths(fx: Functions) -> None:
    KEYS.reset()  # the verification keys' first read: GetSecretValue
    # Approved without a key: the registry (GetItem: no merchant), claim (UpdateItem), Decrypt,
    # the charge (ledger PutItem), the finishing transaction (Put payment, Update token).
    paid = fx.issue()
    # Each function has its own cache in AWS; here the issuer's answers would serve payments.
    reset_merchant_directories()
    payment = fx.pay(paid)
    assert payment["status"] == "approved"
    # The same request again: the claim's condition fails and returns the item
    # (ReturnValuesOnConditionCheckFailure); the payment is read back (GetItem).
    assert fx.pay(paid) == payment
    # The same body under a key first seen now: the key's record remembers the answer.
    assert fx.pay(paid, new_key()) == payment
    # Another request for the spent token: 409 from the returned item.
    fx.pay(paid, expect=409, amount=1)
    # GET /payments/{payment_id}
    response = fx.invoke("ProcessPaymentFunction", get_event(payment["payment_id"]))
    assert response["statusCode"] == 200, response["body"]

    # Declined, with a key: claim transaction (Put key, Update token), the claim read back
    # (GetItem), the finishing transaction with the key's answer (Update key).
    declined, key = fx.issue("declines"), new_key()
    answer = fx.pay(declined, key)
    assert answer["status"] == "declined"
    assert fx.pay(declined, key) == answer  # replay: the key's stored answer
    fx.pay(declined, key, expect=422, amount=1)  # the key with another body

    # The processor refuses: the claim is given back (UpdateItem; with a key, a transaction
    # that also deletes the key's record).
    refused = fx.issue("fails")
    fx.pay(refused, expect=502)
    fx.pay(refused, new_key(), expect=502)

    # KMS fails before the charge: given back the same way; then the token pays.
    unopened = fx.issue()
    with kms_fails("Decrypt") as hits:
        fx.pay(unopened, expect=503)
        fx.pay(unopened, new_key(), expect=503)
    assert len(hits) == 2
    fx.pay(unopened)

    # In doubt: the processor times out after charging; the retry asks it (find_charge,
    # ledger GetItem) before charging again, finds the charge and records it.
    doubtful = fx.issue()
    with fx.processor_times_out("after"):
        assert fx.pay(doubtful, expect=503)["error"]["code"] == "payment_in_progress"
    assert fx.pay(doubtful)["status"] == "approved"


def reconcile_payments_paths(fx: Functions) -> None:
    # Two payments left in doubt with a key: one charged, one not; and a token never paid.
    charged, uncharged, unpaid = fx.issue(), fx.issue(), fx.issue()
    with fx.processor_times_out("after"):
        fx.pay(charged, new_key(), expect=503)
    with fx.processor_times_out("before"):
        fx.pay(uncharged, new_key(), expect=503)
    mine = [charged, uncharged, unpaid]
    # Past the claims' lease: the index (Query), each claim (GetItem), the processor's answer
    # (ledger GetItem); the charge recorded (Put payment, Update token, Update key), the other
    # claim released (Update token, Delete key).
    after_lease = fx.sweep(at=epoch_seconds() + CLAIM_LEASE_SECONDS + 1, tokens=mine)
    assert after_lease == {"recorded": 1, "released": 1}, after_lease
    # Past the tokens' expiry: the data keys of the two unpaid tokens go (UpdateItem).
    lifetime = issuer_settings().token_lifetime_seconds
    after_expiry = fx.sweep(at=epoch_seconds() + lifetime + CLOCK_LEEWAY_SECONDS + 1, tokens=mine)
    assert after_expiry == {"stripped": 2}, after_expiry


def rotate_signing_key_paths(fx: Functions, stack: LocalStack) -> None:
    # Secrets Manager's part (RotateSecret, staging) is local.rotation's own client; the four
    # steps are the function's.
    rotate(
        stack.environment["SIGNING_KEY_SECRET_ID"],
        lambda event: fx.invoke("RotateSigningKeyFunction", event),
    )


def publish_jwks_paths(fx: Functions) -> None:
    KEYS.reset()
    response = fx.invoke("PublishJwksFunction", load_event("jwks.json"))
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["keys"]


def checkout_page_paths(fx: Functions) -> None:
    events = fx.template["Resources"]["CheckoutPageFunction"]["Properties"]["Events"]
    for route in events.values():
        path = route["Properties"]["Path"]
        response = fx.invoke("CheckoutPageFunction", {"resource": path, "path": path})
        assert response["statusCode"] == 200, route


@dataclass(frozen=True)
class Run:
    calls: list[Call]
    invoked: Counter[str]
    strays: list[str]


@pytest.fixture(scope="module")
def run(stack: LocalStack) -> Run:
    """Every function's code paths once, with every call of the layer's clients recorded."""
    recorder = Recorder()
    clients = (dynamodb_client(), kms_client(), secretsmanager_client())
    with recorder.attached(*clients):
        fx = Functions(recorder, full_template())
        try:
            issue_token_paths(fx)
            process_payment_paths(fx)
            reconcile_payments_paths(fx)
            rotate_signing_key_paths(fx, stack)
            publish_jwks_paths(fx)
            checkout_page_paths(fx)
        finally:
            KEYS.reset()  # the rotation changed the keys: nothing stale for others
    return Run(recorder.calls, recorder.invoked, recorder.strays)


# ------------------------------------------------------------------ calls → IAM requests


@dataclass(frozen=True)
class Need:
    """One IAM request: an action on a logical resource, with its condition context."""

    function: str
    action: str
    resource: str  # logical id, "Table/index/name", or "*"
    because: str
    context: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Names:
    """Physical names and ARNs of the stack's tables, keys and secrets → logical ids."""

    tables: dict[str, str]
    keys: dict[str, str]
    secrets: dict[str, str]
    secret_keys: dict[str, str]  # secret → the KMS key in its KmsKeyId, if any
    secret_arns: dict[str, str]

    @classmethod
    def of(cls, stack: LocalStack) -> Names:
        template = stack.resolver.template  # the resources the stack has
        refs, attributes = stack.resolver.refs, stack.resolver.attributes
        tables: dict[str, str] = {}
        for table in resources_of_type(template, "AWS::DynamoDB::Table"):
            tables |= {refs[table]: table, table_arn(refs[table]): table}
        keys: dict[str, str] = {}
        for key in resources_of_type(template, "AWS::KMS::Key"):
            names = {refs[key], attributes[f"{key}.Arn"], attributes[f"{key}.KeyId"]}
            names.add(f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{refs[key]}")
            keys |= dict.fromkeys(names, key)
        for alias, resource in resources_of_type(template, "AWS::KMS::Alias").items():
            (key,) = referenced_ids(resource["Properties"]["TargetKeyId"])
            keys |= {refs[alias]: key, alias_arn(refs[alias]): key}
        secrets: dict[str, str] = {}
        secret_keys: dict[str, str] = {}
        for secret, resource in resources_of_type(template, "AWS::SecretsManager::Secret").items():
            secrets |= {refs[secret]: secret, physical_name(stack.stack_name, secret): secret}
            kms_key = referenced_ids(resource["Properties"].get("KmsKeyId"))
            if kms_key:
                (secret_keys[secret],) = kms_key
        arns = {secret: refs[secret] for secret in set(secrets.values())}
        return cls(tables, keys, secrets, secret_keys, arns)

    @staticmethod
    def _find(names: dict[str, str], value: str, what: str) -> str:
        assert value in names, f"{value!r} names no {what} of the stack"
        return names[value]

    def table(self, value: str) -> str:
        return self._find(self.tables, value, "table")

    def key(self, value: str) -> str:
        return self._find(self.keys, value, "KMS key")

    def secret(self, value: str) -> str:
        return self._find(self.secrets, value, "secret")


def _check_parameters(service: str, operation: str, params: dict[str, Any]) -> None:
    unreviewed = set(params) - REVIEWED_PARAMETERS[service]
    assert not unreviewed, (
        f"{service}:{operation} passes {sorted(unreviewed)}: check whether AWS requires an IAM "
        "action for it, model it, then add it to REVIEWED_PARAMETERS"
    )


def kms_context(encryption_context: dict[str, str] | None) -> dict[str, Any]:
    """The request context of a KMS call: its encryption context as condition keys."""
    context = encryption_context or {}
    return {
        "kms:EncryptionContextKeys": sorted(context),
        **{f"kms:EncryptionContext:{k}": v for k, v in context.items()},
    }


def needs_of(call: Call, names: Names) -> list[Need]:
    """The IAM requests AWS evaluates for one call, with the caller's role."""
    params, function, operation = call.params, call.function, call.operation
    _check_parameters(call.service, operation, params)
    if call.service == "dynamodb":
        if operation == "TransactWriteItems":
            needs = []
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                _check_parameters("dynamodb", f"{operation} {kind}", body)
                table = names.table(body["TableName"])
                action = TRANSACTION_ITEM_ACTIONS[kind]
                needs.append(Need(function, action, table, f"{kind} in a transaction"))
            return needs
        resource = names.table(params["TableName"])
        if "IndexName" in params:
            resource = f"{resource}/index/{params['IndexName']}"
        return [Need(function, f"dynamodb:{operation}", resource, operation)]
    if call.service == "kms":
        assert "KeyId" in params, f"kms:{operation} without KeyId: its key is unknown here"
        key = names.key(params["KeyId"])
        context = kms_context(params.get("EncryptionContext"))
        return [Need(function, f"kms:{operation}", key, operation, context)]
    if call.service == "secretsmanager":
        secret = names.secret(params["SecretId"])
        needs = [Need(function, f"secretsmanager:{operation}", secret, operation)]
        if operation in SECRET_KMS_ACTIONS and secret in names.secret_keys:
            context = {
                "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
                **kms_context({"SecretARN": names.secret_arns[secret], "SecretVersionId": "*"}),
            }
            action, key = SECRET_KMS_ACTIONS[operation], names.secret_keys[secret]
            needs.append(Need(function, action, key, f"Secrets Manager {operation}", context))
        return needs
    raise AssertionError(f"no IAM mapping for {call.service}:{operation}")


def runtime_needs(template: Template, function_id: str) -> list[Need]:
    """What Lambda does with the function's role: its logs, and its traces if Active."""
    log_groups = [
        log_group
        for log_group, resource in resources_of_type(template, "AWS::Logs::LogGroup").items()
        if function_id in referenced_ids(resource["Properties"].get("LogGroupName"))
    ]
    assert len(log_groups) == 1, f"{function_id} has no log group of its own: {log_groups}"
    needs = [
        Need(function_id, action, log_groups[0], "Lambda writes the function's logs")
        for action in ("logs:CreateLogStream", "logs:PutLogEvents")
    ]
    properties = template["Resources"][function_id]["Properties"]
    tracing = properties.get("Tracing", template["Globals"]["Function"].get("Tracing"))
    if tracing == "Active":
        needs += [
            Need(function_id, action, "*", "Lambda uploads traces (Tracing: Active)")
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
        ]
    return needs


def all_needs(run: Run, names: Names, template: Template) -> dict[str, list[Need]]:
    needs: dict[str, list[Need]] = defaultdict(list)
    for call in run.calls:
        needs[call.function] += needs_of(call, names)
    for function_id in FUNCTION_ROLES:
        needs[function_id] += runtime_needs(template, function_id)
    return needs


# ------------------------------------------------------------------ needs ↔ grants


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def principal_arn(role_id: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{role_id}"


@dataclass(frozen=True)
class Policy:
    """Evaluates statements of the template for one stack: values resolved, conditions checked."""

    template: Template
    stack: LocalStack

    def value(self, value: Any) -> str:
        roles = resources_of_type(self.template, "AWS::IAM::Role")
        if isinstance(value, dict) and value.get("Fn::GetAtt", [None])[0] in roles:
            return principal_arn(value["Fn::GetAtt"][0])  # the role the request comes from
        return str(self.stack.resolver.resolve(value))

    def condition_holds(self, statement: Statement, context: dict[str, Any]) -> bool:
        for operator, entries in statement.body.get("Condition", {}).items():
            for key, expected in entries.items():
                wanted = [self.value(v) for v in _as_list(expected)]
                actual = context.get(key)
                if operator == "StringEquals":
                    holds = isinstance(actual, str) and actual in wanted
                elif operator == "ArnNotEquals":
                    # A negated operator holds when the key is absent (IAM condition operators).
                    holds = actual is None or all(
                        not fnmatch.fnmatchcase(actual, w) for w in wanted
                    )
                elif operator == "Null":
                    holds = (actual is None) == (wanted == ["true"])
                elif operator == "ForAllValues:StringEquals":
                    holds = all(value in wanted for value in _as_list(actual or []))
                else:
                    raise AssertionError(f"condition operator {operator} is not modelled here")
                if not holds:
                    return False
        return True

    def resource_policy_statements(self, secret: str) -> list[Statement]:
        """The secret's resource policy; its "*" is the secret itself."""
        return [
            Statement(policy_id, body, frozenset({secret}))
            for policy_id, policy in resources_of_type(
                self.template, "AWS::SecretsManager::ResourcePolicy"
            ).items()
            if secret in referenced_ids(policy["Properties"]["SecretId"])
            for body in _as_list(policy["Properties"]["ResourcePolicy"]["Statement"])
        ]


def _denies(statement: Statement, action: str, resource: str) -> bool:
    return (
        statement.body.get("Effect") == "Deny"
        and any(action_matches(p, action) for p in statement.patterns)
        and ("*" in statement.targets or resource in statement.targets)
    )


@cache
def _service_actions(prefix: str) -> frozenset[str]:
    """Every action of an IAM prefix: botocore's operations plus IAM-only ones."""
    model = botocore.session.get_session().get_service_model(prefix)
    return frozenset(model.operation_names) | IAM_ONLY_ACTIONS.get(prefix, set())


def granted_actions(pattern: str) -> set[str] | None:
    """The actions a pattern grants (lower case), or None when it spans every service."""
    prefix, _, name = pattern.partition(":")
    if "*" in prefix or "?" in prefix or not name:
        return None
    if "*" not in name and "?" not in name:
        return {pattern.lower()}
    actions = (f"{prefix}:{action}" for action in _service_actions(prefix))
    return {action.lower() for action in actions if action_matches(pattern, action)}


def grant_problems(
    template: Template, needs: dict[str, list[Need]], stack: LocalStack
) -> dict[str, list[str]]:
    """Per function: requests its role does not allow, and grants no request uses."""
    policy = Policy(template, stack)
    problems: dict[str, list[str]] = {}
    for function_id, role in FUNCTION_ROLES.items():
        statements = role_statements(template, role)
        found: list[str] = []
        distinct = {
            (n.action, n.resource, json.dumps(n.context, sort_keys=True)): n
            for n in needs[function_id]
        }
        for need in distinct.values():
            context = {**need.context, "aws:PrincipalArn": principal_arn(role)}
            what = f"{need.action} on {need.resource} ({need.because})"
            allowing = [s for s in statements if s.allows_on(need.action, need.resource)]
            effective = [s for s in allowing if policy.condition_holds(s, context)]
            grants = effective
            if need.action.startswith("kms:"):
                # These key policies give the account no cryptographic use, so IAM cannot
                # grant it: only a key policy statement naming the role can.
                grants = [s for s in effective if s.source.endswith("key policy")]
            if not grants:
                found.append(f"needs {what}: {role} is not allowed it")
            # A statement whose condition the real request fails is a grant nothing uses.
            found += [
                f"needs {what}: {s.source} allows it only under a condition the request does "
                f"not meet (context {need.context})"
                for s in allowing
                if s not in effective
            ]
            # An explicit deny wins: in the role's own policies, or the secret's.
            found += [
                f"needs {what}: {s.source} denies it"
                for s in [*statements, *policy.resource_policy_statements(need.resource)]
                if _denies(s, need.action, need.resource) and policy.condition_holds(s, context)
            ]
        used = {(n.action.lower(), n.resource) for n in needs[function_id]}
        for pattern, target in sorted(grant_pairs(statements)):
            actions = granted_actions(pattern)
            if actions is None:
                found.append(f"{role} grants {pattern} on {target}: every action of every service")
                continue
            unused = {a for a in actions if not any(a == u and target in ("*", r) for u, r in used)}
            found += [f"{role} grants {a} on {target}, which no call needs" for a in sorted(unused)]
        problems[function_id] = found
    return problems


def matrix(needs: dict[str, list[Need]], template: Template) -> str:
    """Needed and granted (action, resource) per role, for failure messages."""
    lines = []
    for function_id, role in FUNCTION_ROLES.items():
        needed = sorted({(n.action.lower(), n.resource) for n in needs[function_id]})
        granted = sorted(grant_pairs(role_statements(template, role)))
        lines.append(f"{role} ({function_id})")
        lines += [f"  needed  {a} on {r}" for a, r in needed]
        lines += [f"  granted {a} on {r}" for a, r in granted]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def needs(run: Run, stack: LocalStack) -> dict[str, list[Need]]:
    template = full_template()
    return all_needs(run, Names.of(stack), template)


# ------------------------------------------------------------------ the checks


def test_every_function_ran_and_every_call_came_from_one(run: Run) -> None:
    functions = set(resources_of_type(full_template(), "AWS::Serverless::Function"))

    assert set(run.invoked) == functions == set(FUNCTION_ROLES)
    assert run.strays == [], "calls of the layer's clients outside any function's code"
    assert {call.function for call in run.calls} == functions - {"CheckoutPageFunction"}


@pytest.mark.parametrize("function_id", sorted(FUNCTION_ROLES))
def test_role_allows_every_call_of_its_function_and_grants_nothing_else(
    needs: dict[str, list[Need]], stack: LocalStack, function_id: str
) -> None:
    template = full_template()

    problems = grant_problems(template, needs, stack)[function_id]

    assert problems == [], "\n".join([*problems, "", matrix(needs, template)])


def test_card_key_calls_carry_exactly_the_context_the_key_policy_pins(
    run: Run, stack: LocalStack
) -> None:
    names = Names.of(stack)
    card_key_calls = [
        call
        for call in run.calls
        if call.service == "kms" and names.key(call.params["KeyId"]) == "CardKey"
    ]

    assert {(c.function, c.operation) for c in card_key_calls} == {
        ("IssueTokenFunction", "GenerateDataKey"),
        ("ProcessPaymentFunction", "Decrypt"),
    }
    for call in card_key_calls:
        context = call.params["EncryptionContext"]
        assert set(context) == {"purpose", "jti", "aud"}, call.operation
        assert context["purpose"] == "card-token"
        assert context["aud"] == stack.environment["TOKEN_AUDIENCE"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", context["jti"]), context["jti"]


# ------------------------------------------------------------------ completeness: a static scan

_SERVICES = ("dynamodb", "kms", "secretsmanager")
_CLIENT = r"\b(dynamodb|kms|secretsmanager)_client\(\)"
CLIENT_CALL = re.compile(_CLIENT + r"\s*\.\s*(\w+)\(")
PAGINATOR = re.compile(_CLIENT + r"\s*\.\s*get_paginator\(\s*[\"'](\w+)[\"']\s*\)")
CLIENT_DEFINITION = re.compile(r"def (?=(dynamodb|kms|secretsmanager)_client\(\))")
# The layer hands its Secrets Manager client on in exactly two places; the calls made
# through each are scanned by their own pattern.
HANDED_ON = (
    re.compile(r"SigningKeyRotation\(\s*(?=secretsmanager_client\(\))"),
    re.compile(r"SecretsProvider\(\s*boto3_client\s*=\s*(?=secretsmanager_client\(\))"),
)
ROTATION_CALL = re.compile(r"\bself\._sm\s*\.\s*(\w+)\(")  # SigningKeyRotation's client
PROVIDER_CALL = re.compile(r"\b_secrets\(\)\s*\.\s*(\w+)\(")  # the SecretsProvider
# Powertools' SecretsProvider methods → the Secrets Manager operation each makes.
PROVIDER_OPERATIONS = {"get": "GetSecretValue", "clear_cache": None}
# The kinds of item a transaction is built from: each is authorized by its own action.
TRANSACTION_ITEM = re.compile(r"\{\s*[\"'](Put|Update|Delete|ConditionCheck)[\"']\s*:")
# Any other way to a client: only card_tokens/aws.py may build one.
NEW_CLIENT = re.compile(r"\.client\(|\.resource\(|boto3\.client\b|Session\(")
# Code no function runs: the sandbox ledger's full Scan, for tests and reconciliation reports.
NOT_ON_ANY_PATH = {("dynamodb", "Scan"): re.compile(r"\.ledger\(")}


def code_files(template: Template) -> list[Path]:
    """The layer's and every function's Python files, from ContentUri and CodeUri."""
    roots = [
        ROOT / str(resource["Properties"]["ContentUri"])
        for resource in resources_of_type(template, "AWS::Serverless::LayerVersion").values()
    ]
    roots += [
        ROOT / str(resource["Properties"]["CodeUri"])
        for resource in resources_of_type(template, "AWS::Serverless::Function").values()
    ]
    return sorted({path for root in roots for path in root.rglob("*.py")})


_STATEMENT_EDGE = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}


def code_only(text: str) -> str:
    """The source with its comments and string statements (docstrings) blanked, every offset
    kept: a client named there (`kms_client()` in a docstring) is no call. Strings inside code
    (a paginator's name) stay."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    significant = [t for t in tokens if t.type not in (tokenize.NL, tokenize.COMMENT)]
    blanked = [t for t in tokens if t.type == tokenize.COMMENT] + [
        token
        for before, token, after in zip(
            [None, *significant], significant, [*significant[1:], None], strict=False
        )
        if token.type == tokenize.STRING
        and (before is None or before.type in _STATEMENT_EDGE)
        and (after is None or after.type in (tokenize.NEWLINE, tokenize.ENDMARKER))
    ]
    characters = list(text)
    for token in blanked:
        start = starts[token.start[0] - 1] + token.start[1]
        end = starts[token.end[0] - 1] + token.end[1]
        for index in range(start, end):
            if characters[index] != "\n":
                characters[index] = " "
    return "".join(characters)


def scan(sources: dict[str, str]) -> tuple[set[tuple[str, str]], list[str]]:
    """(service, operation) of every AWS call in the sources, and every use of a client the
    scan cannot follow. Comments and docstrings are not code."""
    operations: set[tuple[str, str]] = set()
    unfollowed: list[str] = []
    for name, source in sources.items():
        text = code_only(source)
        followed = {m.end() for m in CLIENT_DEFINITION.finditer(text)}
        for pattern in HANDED_ON:
            followed |= {m.end() for m in pattern.finditer(text)}
        for match in PAGINATOR.finditer(text):
            operations.add((match[1], _operation(match[1], match[2])))
        for match in CLIENT_CALL.finditer(text):
            followed.add(match.start())
            if match[2] != "get_paginator":
                operations.add((match[1], _operation(match[1], match[2])))
        operations |= {
            ("secretsmanager", _operation("secretsmanager", m[1]))
            for m in ROTATION_CALL.finditer(text)
        }
        operations |= {
            ("dynamodb", f"TransactWriteItems {m[1]}") for m in TRANSACTION_ITEM.finditer(text)
        }
        for match in PROVIDER_CALL.finditer(text):
            assert match[1] in PROVIDER_OPERATIONS, f"{name}: SecretsProvider.{match[1]}"
            if PROVIDER_OPERATIONS[match[1]] is not None:
                operations.add(("secretsmanager", str(PROVIDER_OPERATIONS[match[1]])))
        unfollowed += [
            f"{name}: {text[m.start() : m.end() + 30]!r}"
            for m in re.finditer(_CLIENT, text)
            if m.start() not in followed
        ]
        if not name.endswith("card_tokens/aws.py"):
            unfollowed += [f"{name}: builds a client ({m[0]})" for m in NEW_CLIENT.finditer(text)]
    return operations, unfollowed


@cache
def _method_to_api(service: str) -> dict[str, str]:
    """A client's method names → API operations, as botocore names a client's methods; from the
    service model alone, so the scan needs no client, region or endpoint (it runs in any order)."""
    assert service in _SERVICES, service
    model = botocore.session.get_session().get_service_model(service)
    return {botocore.xform_name(name): name for name in model.operation_names}


def _operation(service: str, method: str) -> str:
    mapping = _method_to_api(service)
    assert method in mapping, f"{service} client has no method {method}"
    return mapping[method]


def _sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in code_files(full_template())
    }


def test_static_scan_lists_no_aws_call_the_runs_did_not_make(run: Run) -> None:
    sources = _sources()

    in_code, unfollowed = scan(sources)
    made = {(call.service, call.operation) for call in run.calls} | {
        (call.service, f"{call.operation} {kind}")
        for call in run.calls
        if call.operation == "TransactWriteItems"
        for item in call.params["TransactItems"]
        for kind in item
    }

    assert unfollowed == [], "client uses the scan cannot follow: extend it"
    for operation, caller in NOT_ON_ANY_PATH.items():
        callers = [name for name, text in sources.items() if caller.search(text)]
        assert callers == [], f"{operation} is on a function's path now: {callers}"
    assert in_code - NOT_ON_ANY_PATH.keys() == made, (
        f"in the code, never run: {sorted(in_code - NOT_ON_ANY_PATH.keys() - made)}; "
        f"run, not found by the scan: {sorted(made - in_code)}"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("dynamodb_client().delete_item(TableName=t)", ({("dynamodb", "DeleteItem")}, False)),
        ('kms_client().get_paginator("list_keys")', ({("kms", "ListKeys")}, False)),
        ("self._sm.delete_secret(SecretId=s)", ({("secretsmanager", "DeleteSecret")}, False)),
        (
            'items = [{"ConditionCheck": check}]',
            ({("dynamodb", "TransactWriteItems ConditionCheck")}, False),
        ),
        ("client = dynamodb_client()\nclient.delete_item(TableName=t)", (set(), True)),
        ("Other(secretsmanager_client()).run()", (set(), True)),
        ("boto3.client('sqs').send_message()", (set(), True)),
        ("kms = boto3.session.Session().client('kms')", (set(), True)),
        ('def f():\n    """kms_client() is cached."""\n    return 1\n', (set(), False)),
        ("n = 1  # dynamodb_client().delete_item(...) below\n", (set(), False)),
        (
            '"""Module: dynamodb_client()."""\nx = dynamodb_client().get_item(Key=k)\n',
            ({("dynamodb", "GetItem")}, False),
        ),
        ('def f():\n    """Doc."""\n    client = kms_client()\n', (set(), True)),
    ],
    ids=[
        "direct-call",
        "paginator",
        "rotation-client",
        "transaction-item",
        "client-in-a-variable",
        "client-handed-elsewhere",
        "own-client",
        "own-session",
        "named-in-a-docstring",
        "named-in-a-comment",
        "call-after-a-module-docstring",
        "client-in-a-variable-after-a-docstring",
    ],
)
def test_the_scan_finds_calls_and_flags_what_it_cannot_follow(
    source: str, expected: tuple[set[tuple[str, str]], bool]
) -> None:
    operations, unfollowed = scan({"layers/card_tokens/card_tokens/new.py": source})

    assert (operations, unfollowed != []) == expected, unfollowed


# ------------------------------------------------------------------ the comparison can fail


def _statement(template: Template, resource: str, sid: str) -> dict[str, Any]:
    properties = template["Resources"][resource]["Properties"]
    documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
    documents += [properties[k] for k in ("PolicyDocument", "KeyPolicy") if k in properties]
    documents += [properties["ResourcePolicy"]] if "ResourcePolicy" in properties else []
    for document in documents:
        for statement in _as_list(document["Statement"]):
            if statement.get("Sid", "") == sid:
                return statement
    raise AssertionError(f"{resource} has no statement {sid!r}")


def _drop_action(resource: str, sid: str, action: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        statement = _statement(t, resource, sid)
        statement["Action"] = [a for a in _as_list(statement["Action"]) if a != action]

    return mutate


def _add_action(resource: str, sid: str, action: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        statement = _statement(t, resource, sid)
        statement["Action"] = [*_as_list(statement["Action"]), action]

    return mutate


def _drop_key_statement(key: str, sid: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        policy = t["Resources"][key]["Properties"]["KeyPolicy"]
        policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != sid]

    return mutate


def _add_inline(role: str, statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            statement
        )

    return mutate


def _pin_another_audience(t: Template) -> None:
    condition = _statement(t, "CardKey", "IssuerGeneratesCardDataKeys")["Condition"]
    condition["StringEquals"]["kms:EncryptionContext:aud"] = "some-other-audience"


def _deny_the_rotation(t: Template) -> None:
    statement = _statement(t, "SigningKeySecretPolicy", "OnlyTheRotationWritesThePrivateKey")
    statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = {
        "Fn::GetAtt": ["IssueTokenRole", "Arn"]
    }


def _narrow_the_issuer_s_kms_policy(t: Template) -> None:
    condition = _statement(t, "IssueTokenRoleKmsPolicy", "")["Condition"]
    condition["StringEquals"]["kms:EncryptionContext:purpose"] = "something-else"


TOKEN_TABLE = {"Fn::GetAtt": ["TokenTable", "Arn"]}
MUTATIONS: list[tuple[str, Callable[[Template], None], str, str]] = [
    (
        "payments-lose-getitem-on-tokens",
        _drop_action("ProcessPaymentRole", "ClaimTokenRecords", "dynamodb:GetItem"),
        "ProcessPaymentFunction",
        "needs dynamodb:GetItem on TokenTable (GetItem): ProcessPaymentRole is not allowed it",
    ),
    (
        "reconciler-loses-the-transaction-delete",
        _drop_action("ReconcilePaymentsRole", "IdempotencyRecords", "dynamodb:DeleteItem"),
        "ReconcilePaymentsFunction",
        "needs dynamodb:DeleteItem on IdempotencyTable (Delete in a transaction)",
    ),
    (
        "key-policy-stops-payments-decrypting",
        _drop_key_statement("CardKey", "PaymentsDecryptCardDataKeys"),
        "ProcessPaymentFunction",
        "needs kms:Decrypt on CardKey (Decrypt): ProcessPaymentRole is not allowed it",
    ),
    (
        "issuer-cannot-open-the-signing-key-secret",
        _drop_key_statement("SigningKeySecretKey", "IssuerReadsThePrivateKey"),
        "IssueTokenFunction",
        "needs kms:Decrypt on SigningKeySecretKey (Secrets Manager GetSecretValue)",
    ),
    (
        "rotation-loses-its-log-stream",
        _drop_action("RotateSigningKeyRoleLogsPolicy", "", "logs:CreateLogStream"),
        "RotateSigningKeyFunction",
        "needs logs:CreateLogStream on RotateSigningKeyLogGroup",
    ),
    (
        "key-policy-pins-another-audience",
        _pin_another_audience,
        "IssueTokenFunction",
        "CardKey key policy allows it only under a condition the request does not meet",
    ),
    (
        "role-policy-pins-another-purpose",
        _narrow_the_issuer_s_kms_policy,
        "IssueTokenFunction",
        "IssueTokenRoleKmsPolicy allows it only under a condition the request does not meet",
    ),
    (
        "secret-policy-denies-the-rotation",
        _deny_the_rotation,
        "RotateSigningKeyFunction",
        "needs secretsmanager:PutSecretValue on SigningKeySecret (PutSecretValue): "
        "SigningKeySecretPolicy denies it",
    ),
    (
        "payments-may-delete-tokens",
        _add_action("ProcessPaymentRole", "ClaimTokenRecords", "dynamodb:DeleteItem"),
        "ProcessPaymentFunction",
        "ProcessPaymentRole grants dynamodb:deleteitem on TokenTable, which no call needs",
    ),
    (
        "reconciler-queries-the-table-itself",
        _add_inline(
            "ReconcilePaymentsRole",
            {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": TOKEN_TABLE},
        ),
        "ReconcilePaymentsFunction",
        "ReconcilePaymentsRole grants dynamodb:query on TokenTable, which no call needs",
    ),
    (
        "wildcard-grants-more-than-the-calls",
        _add_inline(
            "ProcessPaymentRole",
            {"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": TOKEN_TABLE},
        ),
        "ProcessPaymentFunction",
        "ProcessPaymentRole grants dynamodb:batchwriteitem on TokenTable, which no call needs",
    ),
    (
        "checkout-page-may-trace",
        _add_action("CheckoutPageRoleLogsPolicy", "", "xray:PutTraceSegments"),
        "CheckoutPageFunction",
        "CheckoutPageRole grants xray:puttracesegments on CheckoutPageLogGroup",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "function_id", "expected"),
    [pytest.param(m, f, e, id=name) for name, m, f, e in MUTATIONS],
)
def test_the_comparison_reports_a_missing_or_unused_grant(
    needs: dict[str, list[Need]],
    stack: LocalStack,
    mutate: Callable[[Template], None],
    function_id: str,
    expected: str,
) -> None:
    # Given template.yaml with one grant taken away, narrowed or added
    template = full_template()
    mutate(template)

    # When the recorded calls are compared with it
    problems = grant_problems(template, needs, stack)

    # Then the comparison names that grant, for that function only
    assert any(expected in problem for problem in problems[function_id]), problems[function_id]
    assert all(found == [] for f, found in problems.items() if f != function_id), problems


def test_the_mapping_follows_transaction_items_and_a_secret_s_own_key(stack: LocalStack) -> None:
    names = Names.of(stack)
    tokens, keys = stack.resolver.refs["TokenTable"], stack.resolver.refs["IdempotencyTable"]
    transaction = Call(
        "ProcessPaymentFunction",
        "dynamodb",
        "TransactWriteItems",
        {
            "TransactItems": [
                {"ConditionCheck": {"TableName": tokens, "Key": {}, "ConditionExpression": "c"}},
                {"Delete": {"TableName": table_arn(keys), "Key": {}}},
            ]
        },
    )
    read = Call(
        "IssueTokenFunction",
        "secretsmanager",
        "GetSecretValue",
        {"SecretId": stack.resolver.refs["SigningKeySecret"]},
    )
    public = Call(
        "PublishJwksFunction",
        "secretsmanager",
        "GetSecretValue",
        {"SecretId": physical_name(stack.stack_name, "VerificationKeysSecret")},
    )

    assert [(n.action, n.resource) for n in needs_of(transaction, names)] == [
        ("dynamodb:ConditionCheckItem", "TokenTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
    ]
    assert [(n.action, n.resource) for n in needs_of(read, names)] == [
        ("secretsmanager:GetSecretValue", "SigningKeySecret"),
        ("kms:Decrypt", "SigningKeySecretKey"),
    ]
    assert [(n.action, n.resource) for n in needs_of(public, names)] == [
        ("secretsmanager:GetSecretValue", "VerificationKeysSecret")
    ]
    with pytest.raises(AssertionError, match="Select"):
        needs_of(Call("X", "dynamodb", "Query", {"TableName": tokens, "Select": "ALL"}), names)
