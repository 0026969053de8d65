"""A model-based test of the payment path: requests, faults, reconciler runs and clock jumps.

Hypothesis mixes, in any order: payments (same or different body, same or different
Idempotency-Key, two at once in threads); at every AWS call a fault before it, an answer lost
after it (botocore resends), or an answer cut short; at the processor a timeout before or
after the charge; reconciler runs; the clock jumping past the claim lease and past expiry.
After every step, and at the end, the invariants of the payment state machine must hold:
- at most one charge per token;
- every 201 `approved` matches exactly one charge of its amount;
- a charged payment is reported as that payment to its original request (its retry gets the
  201, and it is never told `token_already_used`);
- once the reconciler has run past the lease, every charge has its final record and its
  token no data key;
- a token never charged stays usable until it expires;
- every answer is one the contract documents.
The machine runs once per processor adapter, each against its processor (PROCESSORS_UNDER_TEST:
the sandbox's ledger table, a local Stripe fake, a local HTTPS processor for the forwarding
adapter), with the same cards and invariants. `make chaos` runs more examples (CHAOS_EXAMPLES).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from card_tokens.aws import dynamodb_client, kms_client
from card_tokens.config import CLOCK_LEEWAY_SECONDS, issuer_settings, payment_settings
from card_tokens.errors import CardTokensError
from card_tokens.forwarding_processor import ForwardingProcessor
from card_tokens.issuing import Issuer
from card_tokens.key_store import KEYS as key_store
from card_tokens.kms_data_keys import KmsDataKeys
from card_tokens.merchants import Caller
from card_tokens.payments import CLAIM_LEASE_SECONDS, Cashier
from card_tokens.processor import (
    ChargeResult,
    PaymentProcessor,
    ProcessorFailure,
    ProcessorOutcomeUnknown,
    SandboxProcessor,
)
from card_tokens.reconciliation import Reconciler
from card_tokens.records import epoch_seconds
from card_tokens.request_body import PaymentRequest
from card_tokens.stores import DynamoDBPaymentStates, DynamoDBTokenStore
from card_tokens.stripe_processor import StripeProcessor
from card_tokens.tokens import verify_token
from card_tokens.wiring import merchant_directory
from local.provision import LocalStack
from tests.aws_faults import AwsFaults, Fault, faults_on
from tests.processors.forward_fake import running_forward_fake
from tests.processors.https_fake import ThrowawayPki
from tests.processors.stripe_fake import API_KEY as STRIPE_API_KEY
from tests.processors.stripe_fake import running_stripe_fake
from tests.support import PAYMENT_ERRORS

# No merchant registered, no principal: the single-caller mode every request here runs in.
SINGLE_CALLER = Caller()

EXAMPLES = int(os.environ.get("CHAOS_EXAMPLES", "40"))
# The machine explores the cashier's paths; an adapter only translates at its edge, and
# tests/processors holds each one to its fake directly. Half the examples keep `make test`
# inside its time; `make chaos` gives every adapter many more.
ADAPTER_EXAMPLES = {"sandbox": EXAMPLES, "forward": EXAMPLES // 2, "stripe": EXAMPLES // 2}
STEPS = int(os.environ.get("CHAOS_STEPS", "25"))

CARDS = {
    "approves": "4242 4242 4242 4242",
    "declines": "4000 0000 0000 0002",
    "fails": "4000 0000 0000 0119",  # the processor refuses it, nothing charged, every time
}
AMOUNTS = (1500, 2500)
KEYS = (None, "a", "b")
AWS_OPERATIONS = ("UpdateItem", "TransactWriteItems", "GetItem", "PutItem", "Decrypt")
AWS_FAULTS: tuple[Fault, ...] = ("before", "lost", "hollow")
AwsPlan = list[tuple[str, Fault]]  # (operation, fault), in the order they fire
ProcessorPlan = Sequence[tuple[str, str]]  # ("charge" or "find", "before" or "after")
# At the processor: none, or a timeout before/after the charge, or on the lookup.
PROCESSOR_FAULTS: tuple[ProcessorPlan, ...] = (
    (),
    (("charge", "after"),),
    (("charge", "after"),),
    (("charge", "before"),),
    (("find", "before"),),
)


def aws_faults(most: int) -> st.SearchStrategy[AwsPlan]:
    """Up to `most` planned faults, each on one AWS operation."""
    return st.lists(
        st.tuples(st.sampled_from(AWS_OPERATIONS), st.sampled_from(AWS_FAULTS)), max_size=most
    )


@dataclass
class FlakyProcessor:
    """The adapter under test, with planned timeouts before or after its charge and its lookup.

    It also watches the rule "never a second charge without a lookup": once a request that
    made a charge call for a token has ended (the payment may be in doubt), a later charge call
    for that token must come from a request that asked (find_charge) first. Two requests in
    flight at once may both call: the idempotency key makes that one charge.
    """

    inner: PaymentProcessor
    planned: deque[tuple[str, str]] = field(default_factory=deque)
    charge_calls: dict[str, int] = field(default_factory=dict)
    unasked_second_charges: list[str] = field(default_factory=list)
    _request: threading.local = field(default_factory=threading.local)

    @property
    def lookup_lag_seconds(self) -> int:
        return self.inner.lookup_lag_seconds

    def worst_case_seconds(self) -> float:
        return self.inner.worst_case_seconds()

    def new_request(self) -> None:
        self._request.asked = set()
        self._request.made = []

    def end_request(self) -> None:
        for jti in getattr(self._request, "made", []):
            self.charge_calls[jti] = self.charge_calls.get(jti, 0) + 1
        self._request.made = []

    def _made(self) -> list[str]:
        if not hasattr(self._request, "made"):
            self.new_request()
        made: list[str] = self._request.made
        return made

    def _asked(self) -> set[str]:
        if not hasattr(self._request, "asked"):
            self.new_request()  # the reconciler's thread
        asked: set[str] = self._request.asked
        return asked

    def _fault(self, call: str) -> str | None:
        if self.planned and self.planned[0][0] == call:
            return self.planned.popleft()[1]
        return None

    def charge(self, **kwargs: Any) -> ChargeResult:
        fault = self._fault("charge")
        if fault == "before":
            raise ProcessorOutcomeUnknown("timed out before sending")
        jti = kwargs["idempotency_key"]
        if self.charge_calls.get(jti) and jti not in self._asked():
            self.unasked_second_charges.append(jti)
        try:
            result = self.inner.charge(**kwargs)
        except ProcessorFailure:
            raise  # refused: nothing was charged, so no lookup is owed for it
        except ProcessorOutcomeUnknown:
            self._made().append(jti)
            raise
        self._made().append(jti)
        if fault == "after":
            raise ProcessorOutcomeUnknown("timed out reading the answer")
        return result

    def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        if self._fault("find") is not None:
            raise ProcessorOutcomeUnknown("lookup timed out")
        self._asked().add(idempotency_key)
        return self.inner.find_charge(idempotency_key)


class Books(Protocol):
    """The processor's own records, read by the test past every fault (never by the adapter)."""

    def charge_of(self, idempotency_key: str) -> ChargeResult | None: ...

    def charge_count(self, idempotency_key: str) -> int:
        """How many charges the processor made under the key (one at most, or money doubled)."""
        ...


@dataclass(frozen=True)
class ProcessorUnderTest:
    """An adapter, and the books of the processor (or fake) it talks to."""

    adapter: PaymentProcessor
    books: Books


class SandboxBooks:
    """The sandbox's ledger table, read with a client of the test's own (no faults on it)."""

    def __init__(self) -> None:
        self._observer = boto3.client("dynamodb")
        self._table = payment_settings().sandbox_ledger_table

    def charge_of(self, idempotency_key: str) -> ChargeResult | None:
        item = self._observer.get_item(
            TableName=self._table,
            Key={"idempotency_key": {"S": idempotency_key}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return ChargeResult(
            outcome=item["outcome"]["S"],
            decline_code=item.get("decline_code", {}).get("S"),
            processor_reference=item["processor_reference"]["S"],
            amount=int(item["amount"]["N"]),
            currency=item["currency"]["S"],
        )

    def charge_count(self, idempotency_key: str) -> int:
        # The ledger's key is the idempotency key: it holds one charge per key by construction.
        return 0 if self.charge_of(idempotency_key) is None else 1


@contextmanager
def sandbox() -> Iterator[ProcessorUnderTest]:
    yield ProcessorUnderTest(
        SandboxProcessor(payment_settings().sandbox_ledger_table), SandboxBooks()
    )


@contextmanager
def forward() -> Iterator[ProcessorUnderTest]:
    """The forwarding adapter, with mTLS, against a local HTTPS processor with books."""
    pki = ThrowawayPki.generate()
    # Stops by itself too, after long enough for `make chaos`.
    with running_forward_fake(pki, require_client_certificate=True, lifetime=1800) as fake:
        adapter = ForwardingProcessor.from_secrets(
            fake.charge_document, fake.lookup_document, fake.allowed_hosts
        )
        yield ProcessorUnderTest(adapter, fake.books)


@contextmanager
def stripe() -> Iterator[ProcessorUnderTest]:
    """The Stripe adapter against a local fake of Stripe's endpoints, every request and answer
    checked against their schemas. Its lookup lag (an hour) leaves uncharged payments in doubt
    past the lease: the machine's invariants hold for them too."""
    with running_stripe_fake(lifetime_seconds=1800) as fake:
        adapter = StripeProcessor.from_secret({"api_key": STRIPE_API_KEY}, api_base=fake.base_url)
        yield ProcessorUnderTest(adapter, fake)
    assert not fake.violations, fake.violations


# Each adapter against its processor: the same machine, cards and invariants for every one.
PROCESSORS_UNDER_TEST: dict[str, Callable[[], AbstractContextManager[ProcessorUnderTest]]] = {
    "sandbox": sandbox,
    "forward": forward,
    "stripe": stripe,
}


@dataclass
class World:
    """What the machine runs against: the emulated stack, the faults on the layer's clients,
    and the processor adapter under test."""

    stack: LocalStack
    faults: AwsFaults
    under_test: ProcessorUnderTest


WORLD: World | None = None


def payment_settings_lifetime() -> int:
    return issuer_settings().token_lifetime_seconds


@dataclass
class Token:
    token: str
    jti: str
    card: str
    expires_at: int


@dataclass
class Answer:
    status: int
    code: str | None
    payment: dict[str, Any] | None
    # The ledger's charge for this token when the answer was given, if any.
    charged_amount: int | None


class PaymentModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.world = WORLD
        self.now = epoch_seconds()
        issuer_env = issuer_settings()
        env = payment_settings()
        self.books = self.world.under_test.books
        self.processor = FlakyProcessor(self.world.under_test.adapter)
        states = DynamoDBPaymentStates(
            token_table=env.token_table,
            payment_table=env.payment_table,
            idempotency_table=env.idempotency_table,
        )
        self.states = states
        self.issuer = Issuer(
            settings=issuer_env,
            data_keys=KmsDataKeys(issuer_env.card_key_id),
            tokens=DynamoDBTokenStore(issuer_env.token_table),
            signing_key=lambda: key_store.current_signing_key(issuer_env.signing_key_secret_id),
            merchants=merchant_directory(
                issuer_env.merchant_table, issuer_env.merchant_cache_seconds
            ),
            clock=lambda: self.now,
        )
        self.cashier = Cashier(
            settings=env,
            data_keys=KmsDataKeys(env.card_key_id),
            states=states,
            processor=self.processor,
            find_key=lambda kid: key_store.find_verification_key(
                env.verification_keys_secret_id, kid
            ),
            merchants=merchant_directory(env.merchant_table, env.merchant_cache_seconds),
            clock=lambda: self.now,
        )
        self.reconciler = Reconciler(
            states=states, processor=self.processor, clock=lambda: self.now
        )
        self.tokens: list[Token] = []
        # (jti, amount, key) -> answers, in order
        self.answers: dict[tuple[str, int, str | None], list[Answer]] = {}
        self.key_prefix = uuid.uuid4().hex  # keys of one example never meet another's
        self.lock = threading.Lock()
        self.observer = boto3.client("dynamodb")  # no faults on it
        # Requests answered "in progress": their retries and rivals get rules of their own.
        self.in_doubt: list[tuple[Token, int, str | None]] = []
        self.expired_once = False

    # ------------------------------------------------------------------ helpers

    def charge_of(self, jti: str) -> ChargeResult | None:
        """What the processor's books say, read past the faults."""
        return self.books.charge_of(jti)

    def pay(self, token: Token, amount: int, key: str | None) -> Answer:
        request = PaymentRequest(
            token=token.token, amount=amount, currency="EUR", reference="order-1"
        )
        # Keys are per token: a key reused with another body is then the same token's.
        idempotency_key = f"{self.key_prefix}-{token.jti}-{key}" if key else None
        self.processor.new_request()
        try:
            payment = self.cashier.pay(
                request, caller=SINGLE_CALLER, idempotency_key=idempotency_key
            )
            answer = Answer(201, None, payment.to_response(), None)
        except CardTokensError as error:
            answer = Answer(error.status, error.code, None, None)
        finally:
            self.processor.end_request()
        charge = self.charge_of(token.jti)
        answer.charged_amount = charge.amount if charge else None
        with self.lock:
            self.answers.setdefault((token.jti, amount, key), []).append(answer)
            if answer.code == "payment_in_progress":
                self.in_doubt.append((token, amount, key))
        return answer

    def check_answer(self, token: Token, amount: int, answer: Answer) -> None:
        if answer.status == 201:
            assert answer.payment is not None
            charge = self.charge_of(token.jti)
            assert charge is not None, "a 201 without a charge"
            assert answer.payment["amount"] == charge.amount == amount
            assert answer.payment["status"] == charge.outcome
            assert answer.payment["payment_id"] == self.token_item(token)["payment_id"]["S"]
            return
        assert (answer.status, answer.code) in PAYMENT_ERRORS, (answer.status, answer.code)
        if answer.code == "token_already_used":
            assert answer.charged_amount != amount, (
                "the charged request was told token_already_used"
            )
        if answer.code == "invalid_token":
            assert self.now > token.expires_at, "a live token was refused"

    def plan_faults(self, faults: AwsPlan, processor: ProcessorPlan) -> None:
        self.world.faults.clear()
        for operation, fault in faults:
            self.world.faults.plan(operation, fault)
        self.processor.planned = deque(processor)

    def pay_with_faults(
        self,
        token: Token,
        amount: int,
        key: str | None,
        faults: AwsPlan,
        processor: ProcessorPlan,
    ) -> Answer:
        """One payment with these faults planned, its answer checked against the contract."""
        self.plan_faults(faults, processor)
        try:
            answer = self.pay(token, amount, key)
        finally:
            self.clear_faults()
        self.check_answer(token, amount, answer)
        return answer

    def clear_faults(self) -> None:
        self.world.faults.clear()
        self.processor.planned.clear()

    # ------------------------------------------------------------------ rules

    # Mostly cards that charge: the interesting states begin with a charge.
    @rule(card=st.sampled_from(("approves", "approves", "declines", "fails")))
    def issue(self, card: str) -> None:
        self.clear_faults()
        issued = self.issuer.issue(
            {"card_number": CARDS[card], "exp_month": 12, "exp_year": 2030, "cvv": "123"}
        )
        env = payment_settings()
        claims = verify_token(
            issued["token"],
            find_key=lambda kid: key_store.find_verification_key(
                env.verification_keys_secret_id, kid
            ),
            settings=env.token,
            now=self.now,
        )
        self.tokens.append(Token(issued["token"], claims.jti, card, claims.exp))

    @precondition(lambda self: self.tokens)
    @rule(
        index=st.integers(min_value=0, max_value=50),
        amount=st.sampled_from(AMOUNTS),
        key=st.sampled_from(KEYS),
        faults=aws_faults(3),
        processor=st.sampled_from(PROCESSOR_FAULTS),
    )
    def pay_once(
        self, index: int, amount: int, key: str | None, faults: AwsPlan, processor: ProcessorPlan
    ) -> None:
        token = self.tokens[index % len(self.tokens)]
        self.pay_with_faults(token, amount, key, faults, list(processor))

    @precondition(lambda self: self.tokens)
    @rule(
        index=st.integers(min_value=0, max_value=50),
        amount=st.sampled_from(AMOUNTS),
        key=st.sampled_from(KEYS),
        lose=st.sampled_from(("the charge's answer", "the record's answers")),
    )
    def pay_and_leave_it_in_doubt(
        self, index: int, amount: int, key: str | None, lose: str
    ) -> None:
        """The charge happens, and then the request cannot learn or record it."""
        token = self.tokens[index % len(self.tokens)]
        if lose == "the charge's answer":
            self.pay_with_faults(token, amount, key, [], [("charge", "after")])
        else:
            # With a key the first transaction is the claim; the finishing one loses both answers.
            finish: AwsPlan = [("TransactWriteItems", "lost")] * 2
            claim: AwsPlan = [("TransactWriteItems", "pass")] if key else []
            self.pay_with_faults(token, amount, key, claim + finish, [])

    @precondition(lambda self: self.tokens)
    @rule(
        index=st.integers(min_value=0, max_value=50),
        first=st.tuples(st.sampled_from(AMOUNTS), st.sampled_from(KEYS)),
        second=st.tuples(st.sampled_from(AMOUNTS), st.sampled_from(KEYS)),
        faults=aws_faults(2),
    )
    def pay_twice_at_once(
        self,
        index: int,
        first: tuple[int, str | None],
        second: tuple[int, str | None],
        faults: AwsPlan,
    ) -> None:
        token = self.tokens[index % len(self.tokens)]
        self.plan_faults(faults, [])
        answers: list[tuple[int, Answer]] = []
        barrier = threading.Barrier(2)

        def one(amount: int, key: str | None) -> None:
            barrier.wait()
            answers.append((amount, self.pay(token, amount, key)))

        threads = [threading.Thread(target=one, args=request) for request in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.clear_faults()
        assert len(answers) == 2
        for amount, answer in answers:
            self.check_answer(token, amount, answer)

    @rule()
    def reconcile_after_the_lease(self) -> None:
        self.clear_faults()
        self.now += CLAIM_LEASE_SECONDS + 1
        outcomes = self.reconciler.run()
        assert outcomes["failed"] == 0, outcomes
        # Every charge now has its final record, and its token no data key.
        for token in self.tokens:
            charge = self.charge_of(token.jti)
            item = self.token_item(token)
            if charge is not None:
                payment = self.states.get(item["payment_id"]["S"])
                assert (payment.amount, payment.status) == (charge.amount, charge.outcome)
                assert item["status"]["S"] == "used"
            if charge is not None or self.now > token.expires_at + 30:
                assert "encrypted_data_key" not in item, "a data key outlived its use"

    @precondition(lambda self: len(self.tokens) >= 3 and not self.expired_once)
    @rule()
    def reconcile_after_expiry(self) -> None:
        """Every token past its expiry loses its data key at the next sweep, charged or not."""
        self.expired_once = True  # once per example: after it, every token is dead
        self.sweep_past_expiry()

    def sweep_past_expiry(self) -> None:
        self.clear_faults()
        self.now += payment_settings_lifetime() + CLOCK_LEEWAY_SECONDS + 1
        outcomes = self.reconciler.run()
        assert outcomes["failed"] == 0, outcomes
        for token in self.tokens:
            assert "encrypted_data_key" not in self.token_item(token), "a CVV outlived its token"

    @precondition(lambda self: self.in_doubt)
    @rule(
        which=st.integers(min_value=0, max_value=50),
        keep_key=st.booleans(),
        faults=aws_faults(2),
        processor=st.sampled_from(PROCESSOR_FAULTS),
    )
    def retry_a_request_in_doubt(
        self, which: int, keep_key: bool, faults: AwsPlan, processor: ProcessorPlan
    ) -> None:
        """The original request again: with its key, or the same body without one."""
        token, amount, key = self.in_doubt[which % len(self.in_doubt)]
        answer = self.pay_with_faults(
            token, amount, key if keep_key else None, faults, list(processor)
        )
        if not faults and not processor and self.now <= token.expires_at:
            # With nothing failing, the retry settles it: its payment, or why it has none.
            charge = self.charge_of(token.jti)
            if charge is not None and charge.amount != amount:
                expected = 409  # another request paid after this one's claim lapsed uncharged
            elif charge is None and token.card == "fails":
                expected = 502
            else:
                expected = 201
            assert answer.status == expected, (answer.status, answer.code)

    @precondition(lambda self: self.in_doubt)
    @rule(which=st.integers(min_value=0, max_value=50), key=st.sampled_from(KEYS))
    def another_request_for_a_token_in_doubt(self, which: int, key: str | None) -> None:
        token, amount, _ = self.in_doubt[which % len(self.in_doubt)]
        other = next(a for a in AMOUNTS if a != amount)
        answer = self.pay(token, other, key)
        self.check_answer(token, other, answer)

    @rule()
    def jump_past_the_lease(self) -> None:
        self.now += CLAIM_LEASE_SECONDS + 1

    # ------------------------------------------------------------------ invariants

    def token_item(self, token: Token) -> dict[str, Any]:
        item: dict[str, Any] = self.observer.get_item(
            TableName=payment_settings().token_table,
            Key={"jti": {"S": token.jti}},
            ConsistentRead=True,
        )["Item"]
        return item

    @invariant()
    def no_charged_token_is_given_back(self) -> None:
        for token in self.tokens:
            if self.token_item(token)["status"]["S"] == "issued":
                assert self.charge_of(token.jti) is None, "a charged token is free again"

    @invariant()
    def at_most_one_charge_per_token(self) -> None:
        for token in self.tokens:
            assert self.books.charge_count(token.jti) <= 1, "two charges for one token"

    @invariant()
    def no_second_charge_without_a_lookup(self) -> None:
        assert not self.processor.unasked_second_charges

    @invariant()
    def approvals_match_charges(self) -> None:
        for (jti, amount, _), answers in self.answers.items():
            for answer in answers:
                if answer.status == 201:
                    charge = self.charge_of(jti)
                    assert charge is not None
                    assert (charge.amount, charge.outcome) == (amount, answer.payment["status"])

    def teardown(self) -> None:
        """The original request of every charge gets it; every uncharged live token pays."""
        self.clear_faults()
        self.now += CLAIM_LEASE_SECONDS + 1  # every claim's holder is gone by now
        for token in self.tokens:
            charge = self.charge_of(token.jti)
            if charge is None or self.now > token.expires_at:
                continue
            retry = self.pay(token, charge.amount, None)
            assert retry.status == 201, (retry.status, retry.code)
            assert retry.payment is not None
            assert retry.payment["status"] == charge.outcome
        for token in self.tokens:
            if self.charge_of(token.jti) is not None or self.now > token.expires_at - 5:
                continue
            fresh = self.pay(token, 4242, None)
            expected = 502 if token.card == "fails" else 201
            assert fresh.status == expected, (fresh.status, fresh.code, token.card)
        # and once every token is past its expiry, one sweep leaves no data key anywhere
        self.sweep_past_expiry()


@pytest.mark.parametrize("processor", sorted(PROCESSORS_UNDER_TEST))
def test_the_payment_state_machine_holds_its_invariants(stack: LocalStack, processor: str) -> None:
    global WORLD
    with (
        PROCESSORS_UNDER_TEST[processor]() as under_test,
        faults_on(dynamodb_client(), kms_client()) as faults,
    ):
        WORLD = World(stack, faults, under_test)
        try:
            run_state_machine_as_test(
                PaymentModel,
                settings=settings(
                    max_examples=max(1, ADAPTER_EXAMPLES[processor]),
                    stateful_step_count=STEPS,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                    # A fixed seed explores the same few paths every run; a random one covers
                    # more over time, and Hypothesis prints how to replay any failure.
                    derandomize=False,
                ),
            )
        finally:
            WORLD = None
