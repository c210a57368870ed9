"""The PaymentIntent lifecycle and the test cards' outcomes.

Statuses move as at Stripe::

    requires_payment_method ─▶ requires_confirmation ─▶ (confirm)
        ├─▶ requires_action ─(3DS ok)─▶ charge   ─(3DS failed)─▶ requires_payment_method
        ├─▶ [processing ─▶] succeeded                 (automatic capture)
        ├─▶ requires_capture ─(capture)─▶ succeeded   (manual capture)
        └─▶ requires_payment_method + last_payment_error   (decline: 402 card_error)
    any of requires_* ─(cancel)─▶ canceled

Everything here runs on the event loop without awaiting, so each operation is atomic with
respect to every other request: that is what makes "20 concurrent refunds never exceed the
captured amount" hold by construction rather than by luck.
"""

from __future__ import annotations

from typing import NoReturn

from stripe_emulator import render
from stripe_emulator.cards import ALIASES, CARDS, DECLINE_MESSAGES, Behaviour, TestCard
from stripe_emulator.errors import CardError, InvalidRequestError, ResourceMissingError
from stripe_emulator.objects import JSON, Charge, PaymentIntent, PaymentMethod
from stripe_emulator.state import State

CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
)
CONFIRMABLE = ("requires_payment_method", "requires_confirmation")
FROZEN = ("succeeded", "canceled", "processing")


def unexpected_state(
    pi: PaymentIntent, action: str, allowed: tuple[str, ...]
) -> InvalidRequestError:
    return InvalidRequestError(
        f"You cannot {action} this PaymentIntent because it has a status of {pi.status}. "
        f"Only a PaymentIntent with one of the following statuses may be {action}ed: "
        f"{', '.join(allowed)}.",
        code="payment_intent_unexpected_state",
        extra={"payment_intent": render.payment_intent(pi)},
    )


class Payments:
    def __init__(self, state: State) -> None:
        self.s = state

    # -- payment methods -------------------------------------------------------------------

    def new_payment_method(
        self, card: TestCard, exp_month: int = 12, exp_year: int = 2034
    ) -> PaymentMethod:
        pm = PaymentMethod(self.s.ids.new("pm"), self.s.now(), card, exp_month, exp_year)
        return self.s.payment_methods.add(pm)

    def resolve_payment_method(self, ref: str, param: str = "payment_method") -> PaymentMethod:
        """A ``pm_card_*`` alias makes a fresh PaymentMethod, as Stripe's test aliases do."""
        number = ALIASES.get(ref)
        if number is not None:
            return self.new_payment_method(CARDS[number])
        if ref not in self.s.payment_methods.by_id:
            raise ResourceMissingError("PaymentMethod", ref, param)
        return self.s.payment_methods.by_id[ref]

    # -- payment intents -------------------------------------------------------------------

    def emit(self, event_type: str, pi: PaymentIntent, previous: JSON | None = None) -> None:
        self.s.log.emit(event_type, render.payment_intent(pi), previous)

    def created(self, pi: PaymentIntent) -> PaymentIntent:
        self.s.payment_intents.add(pi)
        self.emit("payment_intent.created", pi)
        return pi

    def confirm(self, pi: PaymentIntent, payment_method: str | None = None) -> PaymentIntent:
        if pi.status not in CONFIRMABLE:
            raise unexpected_state(pi, "confirm", CONFIRMABLE)
        if payment_method is not None:
            pi.payment_method = self.resolve_payment_method(payment_method).id
        if pi.payment_method is None:
            raise InvalidRequestError(
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        pm = self.s.payment_methods.get(pi.payment_method, "payment_method")
        pi.last_payment_error = None
        forced = self.s.faults.forced_decline(pi.amount, pi.metadata)
        if forced is not None:
            self._decline(pi, pm, forced)
        if pm.card.behaviour is Behaviour.REQUIRE_3DS:
            self._require_action(pi)
        elif pm.card.behaviour in (Behaviour.DECLINE, Behaviour.FAIL_ON_CHARGE):
            self._decline(pi, pm, pm.card.decline_code or "generic_decline")
        else:
            self._authorize(pi, pm)
        return pi

    def _require_action(self, pi: PaymentIntent) -> None:
        pi.status = "requires_action"
        url = f"{self.s.base_url}/_emulator/payment_intents/{pi.id}/authenticate"
        pi.next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {"return_url": pi.return_url, "url": url},
        }
        self.emit("payment_intent.requires_action", pi)

    def _authorize(self, pi: PaymentIntent, pm: PaymentMethod) -> None:
        delay = self.s.faults.config.processing_delay_s
        if delay > 0:
            pi.status = "processing"
            self.emit("payment_intent.processing", pi)
            self.s.scheduler.call_later(delay, lambda: self._settle(pi.id, pm.id))
            return
        self._charge(pi, pm)

    def _settle(self, pi_id: str, pm_id: str) -> None:
        pi = self.s.payment_intents.by_id.get(pi_id)
        if pi is not None and pi.status == "processing":
            self._charge(pi, self.s.payment_methods.get(pm_id))

    def _new_charge(self, pi: PaymentIntent, pm: PaymentMethod, status: str) -> Charge:
        ch = Charge(
            id=self.s.ids.new("ch"),
            created=self.s.now(),
            amount=pi.amount,
            currency=pi.currency,
            payment_intent=pi.id,
            payment_method=pm.id,
            card=pm.card,
            status=status,
            customer=pi.customer,
            description=pi.description,
            receipt_email=pi.receipt_email,
            metadata=dict(pi.metadata),
        )
        self.s.charges.add(ch)
        pi.latest_charge = ch.id
        return ch

    def _charge(self, pi: PaymentIntent, pm: PaymentMethod) -> None:
        ch = self._new_charge(pi, pm, "succeeded")
        pi.next_action = None
        if pi.capture_method == "manual":
            pi.status = "requires_capture"
            pi.amount_capturable = pi.amount
            self.s.log.emit("charge.succeeded", self.render_charge(ch))
            self.emit("payment_intent.amount_capturable_updated", pi)
            return
        ch.captured = True
        ch.amount_captured = pi.amount
        pi.status = "succeeded"
        pi.amount_received = pi.amount
        self.s.log.emit("charge.succeeded", self.render_charge(ch))
        self.emit("payment_intent.succeeded", pi)

    def _decline(self, pi: PaymentIntent, pm: PaymentMethod, decline_code: str) -> NoReturn:
        """A declined card: a failed Charge, the intent back to requires_payment_method, a 402."""
        message = DECLINE_MESSAGES.get(decline_code, "Your card was declined.")
        ch = self._new_charge(pi, pm, "failed")
        ch.failure_code, ch.failure_message, ch.decline_code = (
            "card_declined",
            message,
            decline_code,
        )
        pm_json = render.payment_method(pm)
        error: JSON = {
            "charge": ch.id,
            "code": "card_declined",
            "decline_code": decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "message": message,
            "payment_method": pm_json,
            "type": "card_error",
        }
        pi.status = "requires_payment_method"
        pi.payment_method = None
        pi.next_action = None
        pi.last_payment_error = error
        self.s.log.emit("charge.failed", self.render_charge(ch))
        self.emit("payment_intent.payment_failed", pi)
        raise CardError(
            message,
            code="card_declined",
            decline_code=decline_code,
            extra={
                "charge": ch.id,
                "payment_intent": render.payment_intent(pi),
                "payment_method": pm_json,
            },
        )

    def authenticate(self, pi: PaymentIntent, succeed: bool) -> PaymentIntent:
        """The test-only end of a 3D Secure challenge."""
        if pi.status != "requires_action":
            raise unexpected_state(pi, "authenticate", ("requires_action",))
        if succeed:
            self._authorize(pi, self.s.payment_methods.get(pi.payment_method or ""))
            return pi
        pi.status = "requires_payment_method"
        pi.next_action = None
        pi.payment_method = None
        pi.last_payment_error = {
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. Provide a new "
            "PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "type": "invalid_request_error",
        }
        self.emit("payment_intent.payment_failed", pi)
        return pi

    def capture(self, pi: PaymentIntent, amount: int | None) -> PaymentIntent:
        if pi.status != "requires_capture":
            raise unexpected_state(pi, "capture", ("requires_capture",))
        to_capture = pi.amount_capturable if amount is None else amount
        if to_capture > pi.amount_capturable:
            raise InvalidRequestError(
                f"The amount to capture ({to_capture}) is greater than the amount capturable "
                f"({pi.amount_capturable}).",
                code="amount_too_large",
                param="amount_to_capture",
            )
        ch = self.s.charges.get(pi.latest_charge or "")
        ch.captured, ch.amount_captured = True, to_capture
        pi.amount_received, pi.amount_capturable, pi.status = to_capture, 0, "succeeded"
        self.s.log.emit("charge.captured", self.render_charge(ch))
        self.emit("payment_intent.succeeded", pi)
        return pi

    def cancel(self, pi: PaymentIntent, reason: str | None) -> PaymentIntent:
        if pi.status not in CANCELABLE:
            raise unexpected_state(pi, "cancel", CANCELABLE)
        if pi.status == "requires_capture" and pi.latest_charge is not None:
            ch = self.s.charges.get(pi.latest_charge)
            ch.amount_refunded = ch.amount
        pi.status, pi.amount_capturable, pi.next_action = "canceled", 0, None
        pi.canceled_at, pi.cancellation_reason = self.s.now(), reason
        self.emit("payment_intent.canceled", pi)
        return pi

    def render_charge(self, ch: Charge) -> JSON:
        return render.charge(ch, [self.s.refunds.by_id[r] for r in ch.refunds])
