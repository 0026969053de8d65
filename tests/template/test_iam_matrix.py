"""template.yaml grants exactly the IAM matrix of docs/design.md, and the checks catch over-broad
grants."""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.cfn import load_template, resources_of_type
from local.intrinsics import Resolver
from tests.template.policies import as_list, referenced_ids, resource_targets
from tests.template.sam import packaged, sam_transform

Template = dict[str, Any]

ISSUER, PAYMENTS, ROTATION = "IssueTokenRole", "ProcessPaymentRole", "RotateSigningKeyRole"
RECONCILER = "ReconcilePaymentsRole"  # the scheduled sweep that settles in-doubt payments
CHECKOUT = "CheckoutPageRole"  # the optional checkout page (CheckoutPage=enabled)
JWKS = "PublishJwksRole"  # the public keys, on a function that holds nothing else
LAMBDA_ROLES = (ISSUER, PAYMENTS, ROTATION, RECONCILER, CHECKOUT, JWKS)
# CodeDeploy's, for the `live` shifts (DeploymentPreference Role, docs/rollout.md): written out
# like the others, in place of the CodeDeployServiceRole SAM would add without a boundary.
CODEDEPLOY = "CodeDeployRole"
# The one role no function runs as: API Gateway's logging role (ApiGatewayLogsRole=create), the
# role the region's API Gateway account setting names. Written out too, with the boundary.
API_GATEWAY_LOGS_ROLE = "ApiGatewayCloudWatchRole"
ROLES = (*LAMBDA_ROLES, CODEDEPLOY, API_GATEWAY_LOGS_ROLE)
# The functions behind `live`, and the alarms their deployment groups watch.
DEPLOYED_FUNCTIONS = (
    "IssueTokenFunction",
    "ProcessPaymentFunction",
    "PublishJwksFunction",
    "CheckoutPageFunction",
)
ROLLBACK_ALARMS = (
    *(
        f"{f.removesuffix('Function')}Rollback{k}Alarm"
        for f in DEPLOYED_FUNCTIONS
        for k in ("Errors", "Latency")
    ),
    "ApiServerErrorRateAlarm",
)
FUNCTION_ROLES = {
    "IssueTokenFunction": ISSUER,
    "ProcessPaymentFunction": PAYMENTS,
    "RotateSigningKeyFunction": ROTATION,
    "ReconcilePaymentsFunction": RECONCILER,
    "CheckoutPageFunction": CHECKOUT,
    "PublishJwksFunction": JWKS,
}
# The merchant registry: read (GetItem) by the issuer and payments, written by the operator's
# CLI only, never by a function.
REGISTRY = "MerchantTable"
REGISTRY_READERS = (ISSUER, PAYMENTS)
DYNAMODB_READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PartiQLSelect",
)
READS_BEYOND_GETITEM = tuple(a for a in DYNAMODB_READ_ACTIONS if a != "dynamodb:GetItem")
DYNAMODB_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
)
# The only Query anywhere: the reconciler's, on the token table's sparse sweep index.
SWEEP_INDEX = "TokenTable/index/sweep"
# Exactly the encryption context sealing.py binds (purpose, jti, aud), and no other key.
PURPOSE_CONDITION = {
    "StringEquals": {
        "kms:EncryptionContext:purpose": "card-token",
        "kms:EncryptionContext:aud": {"Ref": "TokenAudience"},
    },
    "Null": {"kms:EncryptionContext:jti": "false"},
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["purpose", "jti", "aud"]},
}
# The private signing key's own KMS key: usable only through Secrets Manager, with the
# context Secrets Manager sets (SecretARN, SecretVersionId).
SIGNING_SECRET_KEY = "SigningKeySecretKey"
VIA_SECRETS_MANAGER = {
    "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}},
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["SecretARN", "SecretVersionId"]},
}

# The processor's credentials (Processor=stripe or forward): two secrets under their own key.
# Secrets Manager names the key's encryption context after the secret (SecretARN), and the key
# policy names each secret by the name it is created with plus Secrets Manager's 6-character
# suffix (it cannot Ref them: each secret needs the key first).
PROCESSORS = ("sandbox", "stripe", "forward")
EXTERNAL_PROCESSOR = "ChargesAnExternalProcessor"
PROCESSOR_SECRET_KEY = "ProcessorSecretKey"
CHARGE_CREDENTIALS, LOOKUP_CREDENTIALS = "ProcessorSecret", "ProcessorLookupSecret"
PROCESSOR_RESOURCES = (
    PROCESSOR_SECRET_KEY,
    "ProcessorSecretKeyAlias",
    CHARGE_CREDENTIALS,
    LOOKUP_CREDENTIALS,
    "ProcessorSecretPolicy",
    "ProcessorLookupSecretPolicy",
    "ProcessPaymentRoleProcessorPolicy",
    "ReconcilePaymentsRoleProcessorPolicy",
)
STACK_UUID = {"StackUuid": {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}}
SECRET_NAMES = {
    CHARGE_CREDENTIALS: "${AWS::StackName}/processor/${StackUuid}/charge",
    LOOKUP_CREDENTIALS: "${AWS::StackName}/processor/${StackUuid}/lookup",
}
SECRET_ARN_PREFIX = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"


def _secret_arn_like(secret: str) -> dict[str, Any]:
    return {"Fn::Sub": [f"{SECRET_ARN_PREFIX}{SECRET_NAMES[secret]}-??????", STACK_UUID]}


def _through_secrets_manager_for(arns: Any) -> dict[str, Any]:
    return {**VIA_SECRETS_MANAGER, "StringLike": {"kms:EncryptionContext:SecretARN": arns}}


BOTH_CREDENTIALS = _through_secrets_manager_for(
    [_secret_arn_like(CHARGE_CREDENTIALS), _secret_arn_like(LOOKUP_CREDENTIALS)]
)
LOOKUP_ONLY = _through_secrets_manager_for(_secret_arn_like(LOOKUP_CREDENTIALS))
# Every use of the processor secrets' key the key policy allows: (principal, actions) → its
# condition. The account may only have Secrets Manager generate a data key (PutSecretValue: a
# write reveals nothing, and IAM decides who may put); only these two roles may decrypt.
ACCOUNT = "account"
PROCESSOR_KEY_USES: dict[tuple[str, frozenset[str]], dict[str, Any]] = {
    (ACCOUNT, frozenset({"kms:generatedatakey"})): BOTH_CREDENTIALS,
    (PAYMENTS, frozenset({"kms:decrypt"})): BOTH_CREDENTIALS,
    (RECONCILER, frozenset({"kms:decrypt"})): LOOKUP_ONLY,
}

# Actions that reveal or produce key material under the card key.
KMS_DECRYPT_ACTIONS = ("kms:Decrypt", "kms:ReEncryptFrom")
KMS_ENCRYPT_ACTIONS = (
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:ReEncryptTo",
)
# CreateGrant lets its holder hand any of the above to anyone.
KMS_USE_ACTIONS = (*KMS_DECRYPT_ACTIONS, *KMS_ENCRYPT_ACTIONS, "kms:CreateGrant")
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue")

XRAY = {("xray:puttracesegments", "*"), ("xray:puttelemetryrecords", "*")}
# What AWS's AmazonAPIGatewayPushToCloudWatchLogs (v1) allows, on every log group: the actions
# AWS documents for API Gateway's CloudWatch Logs role ("Set up CloudWatch logging for REST
# APIs in API Gateway").
PUSH_TO_CLOUDWATCH_LOGS = (
    "logs:createloggroup",
    "logs:createlogstream",
    "logs:describeloggroups",
    "logs:describelogstreams",
    "logs:putlogevents",
    "logs:getlogevents",
    "logs:filterlogevents",
)
API_ACCESS_LOG = "CardTokensApiAccessLogGroup"
# Who reads each processor secret: what charges, the payment function alone; what finds a
# charge again, the reconciler too.
CREDENTIAL_READERS = {CHARGE_CREDENTIALS: {PAYMENTS}, LOOKUP_CREDENTIALS: {PAYMENTS, RECONCILER}}
ALIAS_SHIFT = ("lambda:getalias", "lambda:updatealias")


def _logs(log_group: str) -> set[tuple[str, str]]:
    return {("logs:createlogstream", log_group), ("logs:putlogevents", log_group)}


# docs/design.md "Keys and least privilege": (lower-case action, logical id, index or "*") per
# role. DynamoDB grants are the item-level actions the code calls (card_tokens/stores.py,
# processor.py, reconciliation.py); TransactWriteItems needs no grant of its own, only those of
# its Put (PutItem), Update (UpdateItem) and Delete (DeleteItem) items.
EXPECTED_GRANTS: dict[str, set[tuple[str, str]]] = {
    ISSUER: {
        ("kms:generatedatakey", "CardKey"),
        ("secretsmanager:getsecretvalue", "SigningKeySecret"),
        # Secrets Manager decrypts the private key's data key as the caller (key policy only).
        ("kms:decrypt", SIGNING_SECRET_KEY),
        ("dynamodb:putitem", "TokenTable"),
        ("dynamodb:getitem", REGISTRY),  # the merchant of a publishable key
        *_logs("IssueTokenLogGroup"),
        *XRAY,
    },
    PAYMENTS: {
        ("kms:decrypt", "CardKey"),
        ("secretsmanager:getsecretvalue", "VerificationKeysSecret"),
        # Claim (UpdateItem, or a transaction's Update), release, finish; GetItem reads a
        # claim made in a transaction back (a transaction returns no item).
        ("dynamodb:getitem", "TokenTable"),
        ("dynamodb:updateitem", "TokenTable"),
        # Put in the finishing transaction; GetItem serves GET /payments/{payment_id} and a
        # replay. Payment records are never updated.
        ("dynamodb:getitem", "PaymentTable"),
        ("dynamodb:putitem", "PaymentTable"),
        # Idempotency-Key records: put in progress, update with the answer, delete on release.
        # Never read: a conflicting put returns the stored record.
        ("dynamodb:putitem", "IdempotencyTable"),
        ("dynamodb:updateitem", "IdempotencyTable"),
        ("dynamodb:deleteitem", "IdempotencyTable"),
        # The sandbox processor: a conditional put per charge, a lookup by idempotency key.
        ("dynamodb:getitem", "SandboxLedgerTable"),
        ("dynamodb:putitem", "SandboxLedgerTable"),
        ("dynamodb:getitem", REGISTRY),  # the merchant of the calling principal
        *_logs("ProcessPaymentLogGroup"),
        *XRAY,
    },
    ROTATION: {
        ("secretsmanager:describesecret", "SigningKeySecret"),
        ("secretsmanager:getsecretvalue", "SigningKeySecret"),
        ("secretsmanager:putsecretvalue", "SigningKeySecret"),
        ("secretsmanager:updatesecretversionstage", "SigningKeySecret"),
        # The public keys are read and rewritten whole, never described or re-staged.
        ("secretsmanager:getsecretvalue", "VerificationKeysSecret"),
        ("secretsmanager:putsecretvalue", "VerificationKeysSecret"),
        # PutSecretValue generates a data key, GetSecretValue decrypts it (key policy only).
        ("kms:decrypt", SIGNING_SECRET_KEY),
        ("kms:generatedatakey", SIGNING_SECRET_KEY),
        *_logs("RotateSigningKeyLogGroup"),
        *XRAY,
    },
    # No KMS and no secret: it records what the processor says and destroys data keys by
    # removing them from the item; it never sees card data.
    RECONCILER: {
        ("dynamodb:query", SWEEP_INDEX),  # tokens due for a sweep, keys only
        # claim_of (GetItem), strip_data_key (UpdateItem), release and finish (transactions'
        # Update, or UpdateItem)
        ("dynamodb:getitem", "TokenTable"),
        ("dynamodb:updateitem", "TokenTable"),
        ("dynamodb:putitem", "PaymentTable"),  # finish: the transaction's Put
        # finish answers the key (Update), release deletes it (Delete)
        ("dynamodb:updateitem", "IdempotencyTable"),
        ("dynamodb:deleteitem", "IdempotencyTable"),
        ("dynamodb:getitem", "SandboxLedgerTable"),  # find_charge: the processor's answer
        *_logs("ReconcilePaymentsLogGroup"),
        *XRAY,
    },
    # Static files packaged with the code: its own logs and nothing else (not even X-Ray).
    CHECKOUT: {*_logs("CheckoutPageLogGroup")},
    # The public keys and nothing else: no KMS, no private key, no table.
    JWKS: {
        ("secretsmanager:getsecretvalue", "VerificationKeysSecret"),
        *_logs("PublishJwksLogGroup"),
        *XRAY,
    },
    # What AWSCodeDeployRoleForLambda gives a Lambda deployment without hooks or triggers, on
    # this stack: read and move each `live` alias (on the function's ARN), ask whether `live`
    # has provisioned concurrency (on the alias's ARN), read the deployment groups' alarms.
    # No S3 (the AppSpec is inline), no hook function to invoke, no SNS (no triggers).
    CODEDEPLOY: {
        *((action, function) for function in DEPLOYED_FUNCTIONS for action in ALIAS_SHIFT),
        *(("lambda:getprovisionedconcurrencyconfig", f"{f}:live") for f in DEPLOYED_FUNCTIONS),
        *(("cloudwatch:describealarms", alarm) for alarm in ROLLBACK_ALARMS),
    },
    # The managed policy's actions, on this stack's API access log only (DescribeLogGroups has
    # no resource-level permissions): no other log group, and nothing but logs.
    API_GATEWAY_LOGS_ROLE: {
        ("logs:describeloggroups", "*"),
        *(
            (action, API_ACCESS_LOG)
            for action in PUSH_TO_CLOUDWATCH_LOGS
            if action != "logs:describeloggroups"
        ),
    },
}


# With Processor=stripe or forward, on top of EXPECTED_GRANTS: GetSecretValue on the secrets
# a role reads, and Decrypt (key policy only) under their key.
PROCESSOR_GRANTS: dict[str, set[tuple[str, str]]] = {
    role: {
        *(
            ("secretsmanager:getsecretvalue", secret)
            for secret, readers in CREDENTIAL_READERS.items()
            if role in readers
        ),
        ("kms:decrypt", PROCESSOR_SECRET_KEY),
    }
    for role in (PAYMENTS, RECONCILER)
}


def with_processor(template: Template, processor: str) -> Template:
    """`template` as a deploy with Processor=`processor` creates it: the processor's resources
    only when their condition holds (the template's other conditions stay as written)."""
    deployed = copy.deepcopy(template)
    deployed["Parameters"]["Processor"]["Default"] = processor
    external = Resolver(deployed, "matrix").condition(EXTERNAL_PROCESSOR)
    deployed["Resources"] = {
        logical_id: resource
        for logical_id, resource in deployed["Resources"].items()
        if external or resource.get("Condition") != EXTERNAL_PROCESSOR
    }
    return deployed


def _charges_externally(template: Template) -> bool:
    return template["Parameters"]["Processor"]["Default"] != "sandbox"


def expected_grants(template: Template, role: str) -> set[tuple[str, str]]:
    """EXPECTED_GRANTS, plus the processor's for the processor `template` is deployed with."""
    extra = PROCESSOR_GRANTS.get(role, set()) if _charges_externally(template) else set()
    return EXPECTED_GRANTS[role] | extra


# ------------------------------------------------------------------ reading policies


def _iam_pattern(pattern: str) -> re.Pattern[str]:
    """IAM action matching: case-insensitive, `*` any run of characters, `?` any one."""
    escaped = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(escaped)


def action_matches(pattern: str, action: str) -> bool:
    return _iam_pattern(pattern).fullmatch(action.lower()) is not None


# "${Table.Arn}/index/name": one index of a table, which is not the table itself; and
# "${Function.Arn}:alias": one alias of a function, likewise.
_PART_ARN = re.compile(r"\$\{([A-Za-z0-9]+)\.Arn\}(/index/[A-Za-z0-9_.-]+|:[A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Statement:
    """One policy statement and the resources (logical ids, or "*") it can reach."""

    source: str
    body: dict[str, Any]
    targets: frozenset[str]

    @property
    def patterns(self) -> list[str]:
        return [str(p) for p in as_list(self.body.get("Action", []))]

    def allows(self, action: str) -> bool:
        if self.body.get("Effect") != "Allow":
            return False
        if "NotAction" in self.body:
            return not any(action_matches(p, action) for p in as_list(self.body["NotAction"]))
        return any(action_matches(p, action) for p in self.patterns)

    def allows_on(self, action: str, logical_id: str) -> bool:
        return self.allows(action) and ("*" in self.targets or logical_id in self.targets)

    def touches(self, service: str) -> bool:
        """True when any action of `service` could be allowed, however it is spelled."""
        if self.body.get("Effect") != "Allow":
            return False
        if "NotAction" in self.body:
            return True
        return any(
            p.lower().startswith(f"{service}:") or action_matches(p, f"{service}:AnyAction")
            for p in self.patterns
        )

    def __str__(self) -> str:
        return f"{self.source}: {self.body}"


def _part_target(resource: Any) -> str | None:
    """ "Table/index/name" for exactly one index of a table, "Function:alias" for one alias of
    a function; None for anything else."""
    sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
    match = _PART_ARN.fullmatch(sub) if isinstance(sub, str) else None
    return f"{match[1]}{match[2]}" if match else None


def _named_targets(resource: Any) -> set[str]:
    part = _part_target(resource)
    return {part} if part else referenced_ids(resource) or {"*"}


def _targets(resources: Any) -> frozenset[str]:
    """Logical ids (or one index of a table, one alias of a function) a Resource list names; a
    literal or wildcard ARN could be anything: "*". An index wildcard ("${Table.Arn}/index/*")
    counts as the table."""
    return frozenset(
        set().union(*(resource_targets(r, _named_targets) for r in as_list(resources)))
    )


def _statements(source: str, document: dict[str, Any]) -> Iterator[Statement]:
    for body in as_list(document.get("Statement", [])):
        # NotResource grants everything else: as broad as "*".
        targets = frozenset({"*"}) if "NotResource" in body else _targets(body.get("Resource"))
        yield Statement(source, body, targets)


def key_policy_statements(template: Template) -> Iterator[Statement]:
    for key_id, key in resources_of_type(template, "AWS::KMS::Key").items():
        for statement in _statements(f"{key_id} key policy", key["Properties"]["KeyPolicy"]):
            # In a key policy, Resource "*" means the key itself.
            yield Statement(statement.source, statement.body, frozenset({key_id}))


def _names_role(principal: Any, role_id: str) -> bool:
    if principal == "*":
        return True
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    return "*" in as_list(aws) or role_id in referenced_ids(aws)


def role_statements(template: Template, role_id: str) -> list[Statement]:
    """Everything that can grant `role_id` a permission: inline policies, attached policies
    and KMS key policy statements whose principal is the role (or anyone)."""
    resources = template["Resources"]
    found: list[Statement] = []
    for policy in resources[role_id]["Properties"].get("Policies", []):
        found += _statements(f"{role_id} inline {policy['PolicyName']}", policy["PolicyDocument"])
    for policy_id, policy in resources.items():
        properties = policy.get("Properties", {})
        attached_to = {
            "AWS::IAM::RolePolicy": properties.get("RoleName"),
            "AWS::IAM::Policy": properties.get("Roles"),
            "AWS::IAM::ManagedPolicy": properties.get("Roles"),
        }
        if policy.get("Type") in attached_to and role_id in referenced_ids(
            attached_to[policy["Type"]]
        ):
            found += _statements(policy_id, properties["PolicyDocument"])
    found += [
        s for s in key_policy_statements(template) if _names_role(s.body["Principal"], role_id)
    ]
    return found


def all_iam_statements(template: Template) -> list[Statement]:
    """Role-attached statements plus any policy resource in the template, attached or not."""
    statements = [s for role in ROLES for s in role_statements(template, role)]
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        for policy_id, policy in resources_of_type(template, policy_type).items():
            statements += _statements(policy_id, policy["Properties"]["PolicyDocument"])
    return statements


def granted(template: Template, role_id: str, actions: tuple[str, ...], target: str) -> list[str]:
    return [
        f"{action} via {statement}"
        for statement in role_statements(template, role_id)
        for action in actions
        if statement.allows_on(action, target)
    ]


def grant_pairs(statements: list[Statement]) -> set[tuple[str, str]]:
    """(action, target) pairs as written; NotAction shows up as itself so it never matches."""
    pairs: set[tuple[str, str]] = set()
    for statement in statements:
        if statement.body.get("Effect") != "Allow":
            continue
        actions = statement.patterns or [f"NotAction:{statement.body.get('NotAction')}"]
        pairs |= {(a.lower(), t) for a in actions for t in statement.targets}
    return pairs


def _is_account_root(principal: Any) -> bool:
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    return any(":root" in str(p) for p in as_list(aws))


# ------------------------------------------------------------------ the checks
# Each returns the violations it found; the real template must have none, and each synthetic
# over-broad template below must trip the check aimed at it.


def issuer_cannot_decrypt(t: Template) -> list[str]:
    return granted(t, ISSUER, KMS_DECRYPT_ACTIONS, "CardKey")


def payments_cannot_read_signing_key(t: Template) -> list[str]:
    return granted(t, PAYMENTS, SECRET_READ_ACTIONS, "SigningKeySecret")


def payments_cannot_generate_data_keys(t: Template) -> list[str]:
    return granted(t, PAYMENTS, KMS_ENCRYPT_ACTIONS, "CardKey")


def rotation_has_no_kms_or_dynamodb(t: Template) -> list[str]:
    """No table, and KMS only on the signing key's own key, only through Secrets Manager."""
    return [
        str(s)
        for s in role_statements(t, ROTATION)
        if s.touches("dynamodb")
        or (s.touches("kms") and not _only_via_secrets_manager_on_signing_key(s))
    ]


def _only_via_secrets_manager_on_signing_key(s: Statement) -> bool:
    return s.targets == {SIGNING_SECRET_KEY} and s.body.get("Condition") == VIA_SECRETS_MANAGER


def jwks_has_no_kms_or_private_key(t: Template) -> list[str]:
    return [
        str(s)
        for s in role_statements(t, JWKS)
        if s.touches("kms")
        or s.touches("dynamodb")
        or any(s.allows_on(a, "SigningKeySecret") for a in SECRET_READ_ACTIONS)
    ]


def only_issuer_and_rotation_open_the_private_key(t: Template) -> list[str]:
    """The second gate: no other role, and no IAM policy at all, can decrypt under the
    signing key's own key; the key policy grants it through Secrets Manager only."""
    violations = [
        f"{role}: {s}"
        for role in ROLES
        if role not in (ISSUER, ROTATION)
        for s in role_statements(t, role)
        if any(s.allows_on(a, SIGNING_SECRET_KEY) for a in KMS_USE_ACTIONS)
    ]
    key_policy = [s for s in key_policy_statements(t) if SIGNING_SECRET_KEY in s.targets]
    violations += [
        str(s)
        for s in key_policy
        if any(s.allows(a) for a in KMS_USE_ACTIONS)
        and (
            _is_account_root(s.body["Principal"]) or not _only_via_secrets_manager_on_signing_key(s)
        )
    ]
    return violations + iam_policies_using(t, SIGNING_SECRET_KEY)


def iam_policies_using(t: Template, key: str) -> list[str]:
    """IAM statements that would let someone use a key whose policy delegates nothing to IAM:
    without effect today, but a grant in waiting should the key policy ever delegate."""
    iam_policies = [s for s in all_iam_statements(t) if not s.source.endswith("key policy")]
    return [
        f"IAM policy {s}" for s in iam_policies if any(s.allows_on(a, key) for a in KMS_USE_ACTIONS)
    ]


def _deny_others(statement: dict[str, Any], actions: set[str], allowed_roles: set[str]) -> bool:
    condition = statement.get("Condition", {}).get("ArnNotEquals", {})
    return (
        statement.get("Effect") == "Deny"
        and statement.get("Principal") == "*"
        and {a.lower() for a in as_list(statement.get("Action"))} >= actions
        and set(condition) == {"aws:PrincipalArn"}
        and {next(iter(referenced_ids(p))) for p in as_list(condition["aws:PrincipalArn"])}
        == allowed_roles
    )


def secret_policies_deny_everyone_else(t: Template) -> list[str]:
    """Resource policies: only the issuer and rotation read the private key; only the rotation
    writes or re-stages either key secret; only the payment function (and, for lookups, the
    reconciler) reads the processor's credentials, whatever IAM grants elsewhere."""
    policies: dict[str, list[dict[str, Any]]] = {}
    for policy in resources_of_type(t, "AWS::SecretsManager::ResourcePolicy").values():
        properties = policy["Properties"]
        secret = next(iter(referenced_ids(properties["SecretId"])))
        policies[secret] = as_list(properties["ResourcePolicy"]["Statement"])
        if properties.get("BlockPublicPolicy") is not True:
            return [f"{secret}: BlockPublicPolicy is not on"]
    # UpdateSecret can carry a new value as well as PutSecretValue.
    write = {
        "secretsmanager:putsecretvalue",
        "secretsmanager:updatesecret",
        "secretsmanager:updatesecretversionstage",
    }
    read = {"secretsmanager:getsecretvalue"}
    wanted = {
        ("SigningKeySecret", "read"): (read, {ISSUER, ROTATION}),
        ("SigningKeySecret", "write"): (write, {ROTATION}),
        ("VerificationKeysSecret", "write"): (write, {ROTATION}),
    }
    if _charges_externally(t):
        wanted |= {(secret, "read"): (read, roles) for secret, roles in CREDENTIAL_READERS.items()}
    return [
        f"{secret}: no statement denies {sorted(actions)} to all but {sorted(roles)}"
        for (secret, _), (actions, roles) in wanted.items()
        if not any(_deny_others(s, actions, roles) for s in policies.get(secret, []))
    ]


def reconciler_opens_nothing_but_the_lookup_credentials(t: Template) -> list[str]:
    """No card key and no key secret: KMS and Secrets Manager only to read the processor's
    lookup credentials (never those that charge)."""
    return [
        str(s)
        for s in role_statements(t, RECONCILER)
        if (s.touches("kms") or s.touches("secretsmanager")) and not _reads_lookup_credentials(s)
    ]


def _reads_lookup_credentials(s: Statement) -> bool:
    actions = {p.lower() for p in s.patterns}
    if s.targets == {LOOKUP_CREDENTIALS}:
        return actions == {"secretsmanager:getsecretvalue"}
    return (
        s.targets == {PROCESSOR_SECRET_KEY}
        and actions == {"kms:decrypt"}
        and s.body.get("Condition") == LOOKUP_ONLY
    )


def _key_user(principal: Any) -> str:
    """The role a key policy statement names, ACCOUNT for the account root, else its repr."""
    if _is_account_root(principal):
        return ACCOUNT
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    named = referenced_ids(aws)
    return next(iter(named)) if len(as_list(aws)) == 1 and len(named) == 1 else repr(principal)


def only_payments_and_the_reconciler_reach_the_processor_credentials(t: Template) -> list[str]:
    """GetSecretValue: the charge credentials for payments, the lookup ones for payments and
    the reconciler, no other role and no other policy. Their key: exactly PROCESSOR_KEY_USES in
    the key policy (so nobody else decrypts), and nothing in any IAM policy."""
    violations = [
        f"{role}: {violation}"
        for secret, readers in CREDENTIAL_READERS.items()
        for role in ROLES
        if role not in readers
        for violation in granted(t, role, SECRET_READ_ACTIONS, secret)
    ]
    violations += [
        f"{policy_id} (attached to {sorted(attached) or 'no role'}): {statement}"
        for policy_id, attached, statement in _policy_resource_statements(t)
        for secret, readers in CREDENTIAL_READERS.items()
        if not attached or not attached <= readers
        if any(statement.allows_on(a, secret) for a in SECRET_READ_ACTIONS)
    ]
    violations += [
        f"key policy: {s}"
        for s in key_policy_statements(t)
        if s.targets == {PROCESSOR_SECRET_KEY}
        and any(s.allows(a) for a in KMS_USE_ACTIONS)
        and PROCESSOR_KEY_USES.get((_key_user(s.body["Principal"]), _actions(s)))
        != s.body.get("Condition")
    ]
    return violations + iam_policies_using(t, PROCESSOR_SECRET_KEY)


def _actions(s: Statement) -> frozenset[str]:
    return frozenset(p.lower() for p in s.patterns)


def _policy_resource_statements(t: Template) -> Iterator[tuple[str, set[str], Statement]]:
    """Every statement of a policy resource, with the logical ids of what it is attached to."""
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
        for policy_id, policy in resources_of_type(t, policy_type).items():
            properties = policy["Properties"]
            attached = referenced_ids(
                [properties.get(k) for k in ("RoleName", "Roles", "Users", "Groups")]
            )
            for statement in _statements(policy_id, properties["PolicyDocument"]):
                yield policy_id, attached, statement


def processor_credentials_only_with_an_external_processor(t: Template) -> list[str]:
    """Processor=sandbox: no processor secret, key, policy or grant; stripe or forward: all."""
    present = set(PROCESSOR_RESOURCES) & set(t["Resources"])
    if _charges_externally(t):
        return [f"missing {r}" for r in PROCESSOR_RESOURCES if r not in present]
    return [f"{r} with Processor=sandbox" for r in sorted(present)] + [
        f"{role} reaches {target} with Processor=sandbox"
        for role in ROLES
        for _, target in grant_pairs(role_statements(t, role))
        if target in PROCESSOR_RESOURCES
    ]


def only_issuer_and_payments_read_the_registry(t: Template) -> list[str]:
    """GetItem and nothing else for the two readers; no read of any kind for any other role."""
    return [
        f"{role}: {violation}"
        for role in ROLES
        for violation in granted(
            t,
            role,
            READS_BEYOND_GETITEM if role in REGISTRY_READERS else DYNAMODB_READ_ACTIONS,
            REGISTRY,
        )
    ]


def no_role_writes_the_registry(t: Template) -> list[str]:
    """Merchants are added, re-keyed and removed by the operator (`card-tokens merchants`)."""
    return [
        f"{role}: {violation}"
        for role in ROLES
        for violation in granted(t, role, DYNAMODB_WRITE_ACTIONS, REGISTRY)
    ]


def kms_grants_require_purpose(t: Template) -> list[str]:
    """Every statement that can use the card key (role or key policy) carries the condition."""
    candidates = all_iam_statements(t) + list(key_policy_statements(t))
    return [
        str(s)
        for s in candidates
        if any(s.allows_on(a, "CardKey") for a in KMS_USE_ACTIONS)
        and s.body.get("Condition") != PURPOSE_CONDITION
    ]


def account_root_cannot_use_key(t: Template) -> list[str]:
    """The one exception: Secrets Manager may generate data keys for the processor's secrets
    when any principal IAM lets put a value does (PROCESSOR_KEY_USES)."""
    operators_write = PROCESSOR_KEY_USES[(ACCOUNT, frozenset({"kms:generatedatakey"}))]
    return [
        f"{action} via {s}"
        for s in key_policy_statements(t)
        if _is_account_root(s.body["Principal"])
        and not (
            s.targets == {PROCESSOR_SECRET_KEY}
            and _actions(s) == {"kms:generatedatakey"}
            and s.body.get("Condition") == operators_write
        )
        for action in KMS_USE_ACTIONS
        if s.allows(action)
    ]


def no_wildcard_resource_on_kms_or_secrets(t: Template) -> list[str]:
    return [
        str(s)
        for s in all_iam_statements(t)
        if (s.touches("kms") or s.touches("secretsmanager")) and "*" in s.targets
    ]


def no_wildcard_actions(t: Template) -> list[str]:
    statements = all_iam_statements(t) + list(key_policy_statements(t))
    return [
        str(s)
        for s in statements
        if "NotAction" in s.body
        or "NotResource" in s.body
        or any("*" in p or "?" in p for p in s.patterns)
    ]


def dynamodb_actions_match_matrix(t: Template) -> list[str]:
    violations = []
    for role in ROLES:
        actual = {p for p in grant_pairs(role_statements(t, role)) if p[0].startswith("dynamodb:")}
        expected = {p for p in expected_grants(t, role) if p[0].startswith("dynamodb:")}
        if actual != expected:
            violations.append(f"{role}: extra {actual - expected}, missing {expected - actual}")
    return violations


def role_grants_match_matrix(t: Template) -> list[str]:
    violations = []
    for role in ROLES:
        actual, expected = grant_pairs(role_statements(t, role)), expected_grants(t, role)
        if actual != expected:
            extra, missing = actual - expected, expected - actual
            violations.append(f"{role}: extra {extra}, missing {missing}")
    return violations


CHECKS: dict[str, Callable[[Template], list[str]]] = {
    check.__name__: check
    for check in (
        issuer_cannot_decrypt,
        payments_cannot_read_signing_key,
        payments_cannot_generate_data_keys,
        rotation_has_no_kms_or_dynamodb,
        reconciler_opens_nothing_but_the_lookup_credentials,
        jwks_has_no_kms_or_private_key,
        only_issuer_and_rotation_open_the_private_key,
        secret_policies_deny_everyone_else,
        only_payments_and_the_reconciler_reach_the_processor_credentials,
        processor_credentials_only_with_an_external_processor,
        only_issuer_and_payments_read_the_registry,
        no_role_writes_the_registry,
        kms_grants_require_purpose,
        account_root_cannot_use_key,
        no_wildcard_resource_on_kms_or_secrets,
        no_wildcard_actions,
        dynamodb_actions_match_matrix,
        role_grants_match_matrix,
    )
}


@pytest.mark.parametrize("processor", PROCESSORS)
@pytest.mark.parametrize("check", CHECKS)
def test_template_passes_iam_check(template: Template, check: str, processor: str) -> None:
    violations = CHECKS[check](with_processor(template, processor))

    assert violations == [], "\n".join(violations)


# ------------------------------------------------------------------ the checks can fail


def _attach_policy(role: str, *statements: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        t["Resources"]["SyntheticPolicy"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "synthetic",
                "Roles": [{"Ref": role}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
            },
        }

    return mutate


def _role_policy(role: str, statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        t["Resources"]["SyntheticRolePolicy"] = {
            "Type": "AWS::IAM::RolePolicy",
            "Properties": {
                "PolicyName": "synthetic",
                "RoleName": {"Ref": role},
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [statement]},
            },
        }

    return mutate


def _inline(role: str, statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        policies = t["Resources"][role]["Properties"]["Policies"]
        policies[0]["PolicyDocument"]["Statement"].append(statement)

    return mutate


def _key_policy(statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        t["Resources"]["CardKey"]["Properties"]["KeyPolicy"]["Statement"].append(statement)

    return mutate


def _signing_key_policy(statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        key = t["Resources"][SIGNING_SECRET_KEY]
        key["Properties"]["KeyPolicy"]["Statement"].append(statement)

    return mutate


def _processor_key_policy(statement: dict[str, Any]) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        key = t["Resources"][PROCESSOR_SECRET_KEY]
        key["Properties"]["KeyPolicy"]["Statement"].append(statement)

    return mutate


def _processor_key_statement(sid: str, **changes: Any) -> Callable[[Template], None]:
    """One statement of the processor secrets' key policy changed (None removes a field)."""

    def mutate(t: Template) -> None:
        policy = t["Resources"][PROCESSOR_SECRET_KEY]["Properties"]["KeyPolicy"]
        (statement,) = [s for s in policy["Statement"] if s.get("Sid") == sid]
        for field, value in changes.items():
            if value is None:
                del statement[field]
            else:
                statement[field] = value

    return mutate


def _unconditional(logical_id: str) -> Callable[[Template], None]:
    """The resource created whatever the processor."""
    return lambda t: t["Resources"][logical_id].pop("Condition")


def _secret_policy_exempts(policy_id: str, role: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        for statement in t["Resources"][policy_id]["Properties"]["ResourcePolicy"]["Statement"]:
            condition = statement["Condition"]["ArnNotEquals"]
            arns = as_list(condition["aws:PrincipalArn"])
            condition["aws:PrincipalArn"] = [*arns, {"Fn::GetAtt": [role, "Arn"]}]

    return mutate


def _admin_also(action: str) -> Callable[[Template], None]:
    def mutate(t: Template) -> None:
        for s in t["Resources"]["CardKey"]["Properties"]["KeyPolicy"]["Statement"]:
            if _is_account_root(s["Principal"]):
                s["Action"].append(action)

    return mutate


CARD_KEY = {"Fn::GetAtt": ["CardKey", "Arn"]}  # its ARN, as a Resource names it
ACCOUNT_ROOT = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
READ_SECRET = "secretsmanager:GetSecretValue"
ANY_FUNCTION = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*"
ANY_SECRET = {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:*:secret:*"}
ALLOW = "Allow"


def _allow(action: str | list[str], resource: Any, **more: Any) -> dict[str, Any]:
    """An Allow statement; a key policy's names its Principal in `more`."""
    return {"Effect": ALLOW, "Action": action, "Resource": resource, **more}


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _key_grant(role: str, action: str, **condition: Any) -> dict[str, Any]:
    """A key policy statement that lets `role` use the key."""
    return _allow(action, "*", Principal={"AWS": _arn(role)}, **condition)


def _on_registry(
    attach: Callable[[str, dict[str, Any]], Callable[[Template], None]],
    role: str,
    action: str,
    resource: Any = None,
) -> Callable[[Template], None]:
    """`role` granted `action` on the merchant registry (or on `resource`), attached by `attach`."""
    return attach(role, _allow(action, resource or _arn(REGISTRY)))


# For each check, over-broad grants it must catch: a name, and how the template gets it.
OVER_BROAD: dict[str, dict[str, Callable[[Template], None]]] = {
    "issuer_cannot_decrypt": {
        "kms:* on *": _attach_policy(ISSUER, _allow("kms:*", "*")),
        "kms:Decrypt* prefix": _role_policy(ISSUER, _allow("kms:Decrypt*", CARD_KEY)),
        "upper-case action": _inline(ISSUER, _allow(["KMS:DECRYPT"], CARD_KEY)),
        "? wildcard": _inline(ISSUER, _allow("kms:De?rypt", CARD_KEY)),
        "bare * action": _inline(ISSUER, _allow("*", "*")),
        "NotAction": _inline(
            ISSUER, {"Effect": ALLOW, "NotAction": "kms:Encrypt", "Resource": CARD_KEY}
        ),
        "key policy open to every principal": _key_policy(
            {"Effect": ALLOW, "Principal": {"AWS": "*"}, "Action": "kms:Decrypt"}
        ),
        "key policy names the issuer": _key_policy(_key_grant(ISSUER, "kms:ReEncrypt*")),
    },
    "payments_cannot_read_signing_key": {
        "GetSecretValue on every secret": _inline(
            PAYMENTS, _allow("secretsmanager:GetSecretValue", ANY_SECRET)
        ),
        "GetSecretValue on the signing key": _attach_policy(
            PAYMENTS, _allow("secretsmanager:Get*", {"Ref": "SigningKeySecret"})
        ),
    },
    "payments_cannot_generate_data_keys": {
        "GenerateDataKey* on the card key": _role_policy(
            PAYMENTS, _allow("kms:GenerateDataKey*", CARD_KEY)
        ),
    },
    "rotation_has_no_kms_or_dynamodb": {
        "DynamoDB read": _inline(ROTATION, _allow("dynamodb:GetItem", {"Ref": "TokenTable"})),
        "kms:DescribeKey": _role_policy(ROTATION, _allow("kms:DescribeKey", CARD_KEY)),
    },
    "reconciler_opens_nothing_but_the_lookup_credentials": {
        "key policy lets the reconciler decrypt": _key_policy(
            _key_grant(RECONCILER, "kms:Decrypt", Condition=PURPOSE_CONDITION)
        ),
        "the reconciler reads the charge credentials": _role_policy(
            RECONCILER, _allow(READ_SECRET, {"Ref": CHARGE_CREDENTIALS})
        ),
        "the reconciler may decrypt both processor secrets": _processor_key_statement(
            "ReconcilerReadsTheLookupCredentials", Condition=BOTH_CREDENTIALS
        ),
        "public verification keys": _inline(
            RECONCILER, _allow("secretsmanager:GetSecretValue", {"Ref": "VerificationKeysSecret"})
        ),
        "kms:DescribeKey in a role policy": _role_policy(
            RECONCILER, _allow("kms:DescribeKey", CARD_KEY)
        ),
    },
    "only_issuer_and_payments_read_the_registry": {
        "the reconciler reads a merchant": _on_registry(_inline, RECONCILER, "dynamodb:GetItem"),
        "payments lists every merchant": _on_registry(_role_policy, PAYMENTS, "dynamodb:Scan"),
        "the issuer queries any table": _on_registry(_attach_policy, ISSUER, "dynamodb:Query", "*"),
        "the page reads it by a Get* wildcard": _on_registry(
            _role_policy, CHECKOUT, "dynamodb:Get*"
        ),
    },
    "no_role_writes_the_registry": {
        "the issuer registers merchants": _on_registry(_inline, ISSUER, "dynamodb:PutItem"),
        "payments rotates keys": _on_registry(_role_policy, PAYMENTS, "dynamodb:UpdateItem"),
        "the reconciler removes merchants in bulk": _on_registry(
            _attach_policy, RECONCILER, "dynamodb:BatchWriteItem"
        ),
        "rotation writes every table": _on_registry(_inline, ROTATION, "dynamodb:*", "*"),
    },
    "kms_grants_require_purpose": {
        "Decrypt without the condition": _role_policy(PAYMENTS, _allow("kms:Decrypt", CARD_KEY)),
        "condition on another context key": _key_policy(
            _key_grant(
                ISSUER,
                "kms:GenerateDataKey",
                Condition={"StringEquals": {"kms:EncryptionContext:jti": "card-token"}},
            )
        ),
    },
    "jwks_has_no_kms_or_private_key": {
        "the JWKS reads the private key": _inline(
            JWKS, _allow("secretsmanager:GetSecretValue", {"Ref": "SigningKeySecret"})
        ),
        "the JWKS may describe the card key": _role_policy(
            JWKS, _allow("kms:DescribeKey", CARD_KEY)
        ),
    },
    "only_issuer_and_rotation_open_the_private_key": {
        "payments decrypt under the signing key's key": _role_policy(
            PAYMENTS, _allow("kms:Decrypt", _arn(SIGNING_SECRET_KEY))
        ),
        "the account may decrypt (IAM policies then can)": _signing_key_policy(
            _allow(
                "kms:Decrypt",
                "*",
                Principal={"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                Condition=VIA_SECRETS_MANAGER,
            )
        ),
        "the issuer decrypts directly, not through Secrets Manager": _signing_key_policy(
            _key_grant(ISSUER, "kms:Decrypt")
        ),
    },
    "secret_policies_deny_everyone_else": {
        "payments exempted from the read deny": _secret_policy_exempts(
            "SigningKeySecretPolicy", PAYMENTS
        ),
        "no policy on the verification keys": lambda t: t["Resources"].pop(
            "VerificationKeysSecretPolicy"
        ),
        "the reconciler exempted from the charge credentials' deny": _secret_policy_exempts(
            "ProcessorSecretPolicy", RECONCILER
        ),
        "no policy on the lookup credentials": lambda t: t["Resources"].pop(
            "ProcessorLookupSecretPolicy"
        ),
    },
    "only_payments_and_the_reconciler_reach_the_processor_credentials": {
        "the reconciler reads the charge credentials": _role_policy(
            RECONCILER, _allow(READ_SECRET, {"Ref": CHARGE_CREDENTIALS})
        ),
        "the JWKS reads every secret": _inline(JWKS, _allow(READ_SECRET, ANY_SECRET)),
        "CodeDeploy reads the lookup credentials by a Get* wildcard": _inline(
            CODEDEPLOY, _allow("secretsmanager:Get*", {"Ref": LOOKUP_CREDENTIALS})
        ),
        "the rotation batch-reads the charge credentials": _role_policy(
            ROTATION, _allow("secretsmanager:BatchGetSecretValue", {"Ref": CHARGE_CREDENTIALS})
        ),
        "a policy attached to no role of the stack": _attach_policy(
            "SomeOtherRole", _allow(READ_SECRET, {"Ref": LOOKUP_CREDENTIALS})
        ),
        "the reconciler may decrypt both secrets": _processor_key_statement(
            "ReconcilerReadsTheLookupCredentials", Condition=BOTH_CREDENTIALS
        ),
        "payments decrypt without Secrets Manager": _processor_key_statement(
            "PaymentsReadTheProcessorCredentials", Condition=None
        ),
        "the account may decrypt (IAM policies then can)": _processor_key_policy(
            _allow("kms:Decrypt", "*", Principal=ACCOUNT_ROOT, Condition=BOTH_CREDENTIALS)
        ),
        "the checkout page may create grants": _processor_key_policy(
            _key_grant(CHECKOUT, "kms:CreateGrant", Condition=BOTH_CREDENTIALS)
        ),
        "an IAM policy lets the issuer decrypt under the key": _role_policy(
            ISSUER, _allow("kms:Decrypt", _arn(PROCESSOR_SECRET_KEY))
        ),
    },
    "processor_credentials_only_with_an_external_processor": {
        "the charge credentials exist with the sandbox": _unconditional(CHARGE_CREDENTIALS),
        "payments' grant stays with the sandbox": _unconditional(
            "ProcessPaymentRoleProcessorPolicy"
        ),
        "a real processor without the lookup credentials' policy": lambda t: t["Resources"].pop(
            "ProcessorLookupSecretPolicy"
        ),
    },
    "account_root_cannot_use_key": {
        "root may decrypt": _admin_also("kms:Decrypt"),
        "root may create grants": _admin_also("kms:Create*"),
        "root may also decrypt the processor credentials": _processor_key_statement(
            "OperatorsWriteTheProcessorCredentials",
            Action=["kms:GenerateDataKey", "kms:Decrypt"],
        ),
        "root generates data keys outside Secrets Manager": _processor_key_statement(
            "OperatorsWriteTheProcessorCredentials", Condition=None
        ),
    },
    "no_wildcard_resource_on_kms_or_secrets": {
        "ListSecrets on *": _inline(ROTATION, _allow("secretsmanager:ListSecrets", "*")),
        "unattached policy with kms on *": _attach_policy(
            "SomeOtherRole", _allow("kms:List*", "*")
        ),
    },
    "no_wildcard_actions": {
        "dynamodb:*": _inline(PAYMENTS, _allow("dynamodb:*", _arn("TokenTable"))),
    },
    "dynamodb_actions_match_matrix": {
        "Scan on the token table": _inline(PAYMENTS, _allow("dynamodb:Scan", _arn("TokenTable"))),
        "issuer may read tokens back": _inline(
            ISSUER, _allow("dynamodb:GetItem", {"Fn::Sub": "${TokenTable.Arn}"})
        ),
        "reconciler queries the table, not the index": _inline(
            RECONCILER, _allow("dynamodb:Query", _arn("TokenTable"))
        ),
        "reconciler queries every index": _inline(
            RECONCILER, _allow("dynamodb:Query", {"Fn::Sub": "${TokenTable.Arn}/index/*"})
        ),
        "payments read idempotency records again": _inline(
            PAYMENTS, _allow("dynamodb:GetItem", _arn("IdempotencyTable"))
        ),
        "reconciler writes the sandbox ledger": _inline(
            RECONCILER, _allow("dynamodb:PutItem", _arn("SandboxLedgerTable"))
        ),
    },
    "role_grants_match_matrix": {
        "CodeDeploy moves the alias of any function": _inline(
            CODEDEPLOY, _allow("lambda:UpdateAlias", {"Fn::Sub": ANY_FUNCTION})
        ),
        "CodeDeploy invokes the issuer (a hook would)": _inline(
            CODEDEPLOY,
            _allow("lambda:InvokeFunction", {"Fn::Sub": "${IssueTokenFunction.Arn}:live"}),
        ),
        "issuer writes its log elsewhere": _inline(
            ISSUER, _allow("logs:PutLogEvents", _arn("ProcessPaymentLogGroup"))
        ),
        "API Gateway's logging role writes every log group (the managed policy's scope)": _inline(
            API_GATEWAY_LOGS_ROLE,
            _allow(
                "logs:PutLogEvents",
                {
                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
                    ":log-group:*"
                },
            ),
        ),
        "API Gateway's logging role reads the functions' logs": _inline(
            API_GATEWAY_LOGS_ROLE,
            _allow("logs:GetLogEvents", _arn("IssueTokenLogGroup")),
        ),
        "payments may overwrite the charge credentials": _inline(
            PAYMENTS, _allow("secretsmanager:PutSecretValue", {"Ref": CHARGE_CREDENTIALS})
        ),
    },
}


@pytest.mark.parametrize(
    ("check", "mutate"),
    [
        pytest.param(check, mutate, id=f"{check}-{name}")
        for check, cases in OVER_BROAD.items()
        for name, mutate in cases.items()
    ],
)
def test_check_flags_an_over_broad_template(
    template: Template, check: str, mutate: Callable[[Template], None]
) -> None:
    # Given the real template with one over-broad grant added
    mutate(template)

    # When the check aimed at it runs, as for the real one, with each processor
    violations = [v for p in PROCESSORS for v in CHECKS[check](with_processor(template, p))]

    # Then it reports the grant
    assert violations != []


def test_every_check_has_an_over_broad_counterexample() -> None:
    assert set(OVER_BROAD) == set(CHECKS)
    assert all(OVER_BROAD.values())


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("kms:Decrypt", "kms:Decrypt", True),
        ("KMS:decrypt", "kms:Decrypt", True),
        ("kms:*", "kms:Decrypt", True),
        ("kms:Decrypt*", "kms:Decrypt", True),
        ("kms:Re*", "kms:ReEncryptFrom", True),
        ("*", "kms:Decrypt", True),
        ("kms:De?rypt", "kms:Decrypt", True),
        ("kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", False),
        ("kms:Encrypt", "kms:Decrypt", False),
        ("secretsmanager:Get*", "kms:GetKeyPolicy", False),
        ("kms:[D]ecrypt", "kms:Decrypt", False),  # IAM has no character classes
    ],
)
def test_action_matcher_understands_iam_wildcards(
    pattern: str, action: str, expected: bool
) -> None:
    assert action_matches(pattern, action) is expected


# ------------------------------------------------------------------ roles and functions


def test_each_function_runs_as_its_own_hand_written_role(template: Template) -> None:
    functions = resources_of_type(template, "AWS::Serverless::Function")
    globals_function = template.get("Globals", {}).get("Function", {})

    assert set(functions) == set(FUNCTION_ROLES)
    assert "Role" not in globals_function
    assert "Policies" not in globals_function
    for function_id, role_id in FUNCTION_ROLES.items():
        properties = functions[function_id]["Properties"]
        assert properties["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}, function_id
        # SAM policy templates and managed policies would add grants this file cannot see.
        assert "Policies" not in properties, function_id
        # CodeDeploy shifts traffic as the hand-written CodeDeployRole (checked after the
        # transform below), without traffic hooks (functions with roles) or triggers (SNS).
        preference = properties.get("DeploymentPreference")
        if preference is not None:
            assert set(preference) <= {"Type", "Alarms", "PassthroughCondition", "Role"}
            assert preference["Role"] == {"Fn::GetAtt": [CODEDEPLOY, "Arn"]}, function_id
    # and no role the template writes is unaccounted for (API Gateway's logging role is in ROLES)
    assert set(resources_of_type(template, "AWS::IAM::Role")) == set(ROLES)


# A REST API stage logs only once the region's API Gateway account settings name a CloudWatch
# role. With ApiGatewayLogsRole=create the stack sets one: assumable by API Gateway of this
# account only, carrying the boundary like every role, with the grants of AWS's
# AmazonAPIGatewayPushToCloudWatchLogs written out on this stack's access log (EXPECTED_GRANTS):
# no managed policy, which would grant them on every log group of the account.


def test_api_gateways_logging_role_writes_this_stacks_access_log_only(
    template: Template,
) -> None:
    role = template["Resources"][API_GATEWAY_LOGS_ROLE]
    properties = role["Properties"]
    account = template["Resources"]["ApiGatewayAccount"]
    access_log = template["Resources"][API_ACCESS_LOG]

    assert role["Condition"] == account["Condition"] == "SetsApiGatewayLogsRole"
    assert properties["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "apigateway.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]
    assert properties["PermissionsBoundary"] == BOUNDARY_IF
    assert set(properties) == {
        "Description",
        "AssumeRolePolicyDocument",
        "PermissionsBoundary",
        "Policies",
    }
    assert account["Properties"] == {
        "CloudWatchRoleArn": {"Fn::GetAtt": [API_GATEWAY_LOGS_ROLE, "Arn"]}
    }
    # The managed policy's actions, nothing more (role_grants_match_matrix checks where)...
    assert {action for action, _ in EXPECTED_GRANTS[API_GATEWAY_LOGS_ROLE]} == set(
        PUSH_TO_CLOUDWATCH_LOGS
    )
    # ...on the one log group the stage writes, whose name CloudFormation generates
    stage_logs = template["Resources"]["CardTokensApi"]["Properties"]["AccessLogSetting"]
    assert stage_logs["DestinationArn"] == {"Fn::GetAtt": [API_ACCESS_LOG, "Arn"]}
    assert access_log["Type"] == "AWS::Logs::LogGroup"
    assert "LogGroupName" not in access_log["Properties"]
    # Nothing else grants it anything.
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
        for policy in resources_of_type(template, policy_type).values():
            assert API_GATEWAY_LOGS_ROLE not in repr(policy["Properties"])


# SAM adds a role for the reconciler's schedule (ScheduleV2). CodeDeploy's traffic shifting
# (DeploymentPreference, docs/rollout.md) runs as CodeDeployRole, so SAM adds no
# CodeDeployServiceRole: that one would carry no permissions boundary.
SCHEDULE_ROLE = "ReconcilePaymentsFunctionSweepRole"
BOUNDARY_IF = {
    "Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
}


def _transformed(monkeypatch: pytest.MonkeyPatch, **parameters: str) -> Template:
    """template.yaml through the AWS::Serverless transform, as CloudFormation runs it."""
    # The stub answers no managed-policy name: the template names none (above).
    return sam_transform(packaged(), parameters)


# Parameter values that deploy each processor (forward needs its allow-list).
PROCESSOR_PARAMETERS = {
    "sandbox": {},
    "stripe": {"Processor": "stripe"},
    "forward": {"Processor": "forward", "ForwardAllowedHosts": "api.processor.example"},
}


@pytest.mark.parametrize("processor", PROCESSORS)
def test_the_only_role_sam_adds_is_the_schedules(
    monkeypatch: pytest.MonkeyPatch, processor: str
) -> None:
    roles = resources_of_type(
        _transformed(monkeypatch, **PROCESSOR_PARAMETERS[processor]), "AWS::IAM::Role"
    )

    # The hand-written roles are unchanged, and SAM adds exactly one
    assert {role_id: roles[role_id] for role_id in ROLES} == {
        role_id: load_template()["Resources"][role_id] for role_id in ROLES
    }
    assert set(roles) - set(ROLES) == {SCHEDULE_ROLE}
    # which names none of the processor's secrets or their key
    assert not referenced_ids(roles[SCHEDULE_ROLE]) & set(PROCESSOR_RESOURCES)


def test_each_processor_secret_is_created_empty_under_its_key_with_the_name_the_key_names(
    template: Template,
) -> None:
    for secret, name in SECRET_NAMES.items():
        resource = template["Resources"][secret]
        assert resource["Condition"] == EXTERNAL_PROCESSOR, secret
        assert resource["Properties"] == {
            "Name": {"Fn::Sub": [name, STACK_UUID]},
            "Description": resource["Properties"]["Description"],
            "KmsKeyId": {"Ref": PROCESSOR_SECRET_KEY},
            # no SecretString: created empty, the operator puts the value, and a template
            # edit never overwrites it
        }, secret
        # Gone with the stack, like the signing key (docs/deploy.md "Destroy").
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Delete", secret


def _secret_arn(secret: str, stack_name: str, stack_uuid: str) -> str:
    """The ARN Secrets Manager gives the secret in one stack: its name and a 6-character suffix."""
    name = SECRET_NAMES[secret].replace("${AWS::StackName}", stack_name)
    name = name.replace("${StackUuid}", stack_uuid)
    return f"arn:aws:secretsmanager:eu-west-1:210987654321:secret:{name}-Ab3dE9"


def _arn_patterns(condition: dict[str, Any], stack_name: str, stack_uuid: str) -> list[str]:
    """The SecretARN patterns of a key policy condition, in one stack."""
    substituted = {
        "${AWS::Partition}": "aws",
        "${AWS::Region}": "eu-west-1",
        "${AWS::AccountId}": "210987654321",
        "${AWS::StackName}": stack_name,
        "${StackUuid}": stack_uuid,
    }
    patterns = []
    for value in as_list(condition["StringLike"]["kms:EncryptionContext:SecretARN"]):
        text, variables = value["Fn::Sub"]
        assert variables == STACK_UUID
        for variable, replacement in substituted.items():
            text = text.replace(variable, replacement)
        patterns.append(text)
    return patterns


THIS_STACK = ("card-tokens-prod", "6f1c2a10-7c5e-11ef-9a4b-0a1b2c3d4e5f")
OTHER_STACK = ("card-tokens-prod", "0d9e8f70-7c5f-11ef-9a4b-0a1b2c3d4e5f")  # re-created


@pytest.mark.parametrize(
    ("sid", "secret", "opens"),
    [
        ("PaymentsReadTheProcessorCredentials", CHARGE_CREDENTIALS, True),
        ("PaymentsReadTheProcessorCredentials", LOOKUP_CREDENTIALS, True),
        ("ReconcilerReadsTheLookupCredentials", LOOKUP_CREDENTIALS, True),
        ("ReconcilerReadsTheLookupCredentials", CHARGE_CREDENTIALS, False),
        ("OperatorsWriteTheProcessorCredentials", CHARGE_CREDENTIALS, True),
        ("OperatorsWriteTheProcessorCredentials", LOOKUP_CREDENTIALS, True),
    ],
)
def test_the_key_policy_reaches_exactly_the_secrets_of_this_stack_each_user_needs(
    template: Template, sid: str, secret: str, opens: bool
) -> None:
    # IAM's StringLike: `*` any run of characters, `?` exactly one, no character classes.
    statements = template["Resources"][PROCESSOR_SECRET_KEY]["Properties"]["KeyPolicy"]
    (statement,) = [s for s in statements["Statement"] if s.get("Sid") == sid]
    patterns = _arn_patterns(statement["Condition"], *THIS_STACK)

    def matched(arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in patterns)

    assert not any("[" in pattern for pattern in patterns)
    assert matched(_secret_arn(secret, *THIS_STACK)) is opens
    # A secret of the same name in another stack (or before a re-creation) is never reached.
    assert not matched(_secret_arn(secret, *OTHER_STACK))


def test_the_schedule_role_lets_the_scheduler_invoke_the_reconciler_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    properties = resources_of_type(_transformed(monkeypatch), "AWS::IAM::Role")[SCHEDULE_ROLE][
        "Properties"
    ]

    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["scheduler.amazonaws.com"]}
    assert set(properties) == {"AssumeRolePolicyDocument", "Policies", "PermissionsBoundary"}
    # The boundary of every role in the stack (tests/template/test_pipeline_permissions.py).
    assert properties["PermissionsBoundary"] == BOUNDARY_IF
    statements = [s for p in properties["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": ["ReconcilePaymentsFunction", "Arn"]},
        }
    ]


def assert_assumable_only_by(role_properties: dict[str, Any], service: str) -> None:
    assert role_properties["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    ]


def test_only_codedeploy_may_assume_its_role_which_carries_the_boundary(
    template: Template,
) -> None:
    properties = template["Resources"][CODEDEPLOY]["Properties"]

    assert_assumable_only_by(properties, "codedeploy.amazonaws.com")
    assert properties["PermissionsBoundary"] == BOUNDARY_IF
    # Its grants are all in this file (EXPECTED_GRANTS): no managed policy
    assert "ManagedPolicyArns" not in properties


def test_every_deployment_group_runs_as_the_codedeploy_role_granted_exactly_its_deployments(
    monkeypatch: pytest.MonkeyPatch, template: Template
) -> None:
    # Given the transformed template with the checkout page (every deployment group)
    output = _transformed(monkeypatch, CheckoutPage="enabled")
    groups = resources_of_type(output, "AWS::CodeDeploy::DeploymentGroup")
    aliases = resources_of_type(output, "AWS::Lambda::Alias").values()
    shifted = {
        alias["Properties"]["FunctionName"]["Ref"]
        for alias in aliases
        if "CodeDeployLambdaAliasUpdate" in alias.get("UpdatePolicy", {})
    }
    watched = {
        alarm["Name"]["Ref"]
        for group in groups.values()
        for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]
    }

    # Then every group runs as CodeDeployRole
    assert groups
    assert shifted == set(DEPLOYED_FUNCTIONS)
    for group_id, group in groups.items():
        assert group["Properties"]["ServiceRoleArn"] == {"Fn::GetAtt": [CODEDEPLOY, "Arn"]}, (
            group_id
        )
    # which may shift exactly the aliases CodeDeploy moves, and read exactly the alarms it polls
    assert watched == set(ROLLBACK_ALARMS)
    assert grant_pairs(role_statements(template, CODEDEPLOY)) == {
        *((action, function) for function in shifted for action in ALIAS_SHIFT),
        *(("lambda:getprovisionedconcurrencyconfig", f"{f}:live") for f in shifted),
        *(("cloudwatch:describealarms", alarm) for alarm in watched),
    }


def _conditional_grants(value: Any) -> Iterator[tuple[str | None, str]]:
    """(condition or None, logical id) of each resource a Resource list names."""
    for item in as_list(value):
        if isinstance(item, dict) and "Fn::If" in item:
            condition, when_true, when_false = item["Fn::If"]
            assert when_false == {"Ref": "AWS::NoValue"}, item
            yield from ((condition, target) for _, target in _conditional_grants(when_true))
        else:
            yield from ((None, target) for target in referenced_ids(item))


def test_the_codedeploy_role_names_the_checkout_page_only_when_it_exists(
    template: Template,
) -> None:
    # A grant names a resource under the condition that resource exists under, and no other:
    # the page's function and alarms only with the page (otherwise the role would fail to
    # create, or keep a grant to nothing).
    resources = template["Resources"]
    named = [
        (condition, target)
        for statement in role_statements(template, CODEDEPLOY)
        for condition, target in _conditional_grants(statement.body["Resource"])
    ]

    assert {target for _, target in named} == {*DEPLOYED_FUNCTIONS, *ROLLBACK_ALARMS}
    for condition, target in named:
        assert condition == resources[target].get("Condition"), target


@pytest.mark.parametrize("role_id", LAMBDA_ROLES)
def test_role_is_assumable_by_lambda_only_and_has_no_managed_policies(
    template: Template, role_id: str
) -> None:
    properties = template["Resources"][role_id]["Properties"]

    assert_assumable_only_by(properties, "lambda.amazonaws.com")
    assert "ManagedPolicyArns" not in properties


@pytest.mark.parametrize(
    ("role_id", "action"), [(ISSUER, "kms:GenerateDataKey"), (PAYMENTS, "kms:Decrypt")]
)
def test_kms_grant_is_in_both_the_key_policy_and_the_role_policy(
    template: Template, role_id: str, action: str
) -> None:
    sources = {
        s.source for s in role_statements(template, role_id) if s.allows_on(action, "CardKey")
    }

    assert "CardKey key policy" in sources
    assert f"{role_id}KmsPolicy" in sources
