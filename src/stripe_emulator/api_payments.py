"""API operations on PaymentIntents.

Each operation reads and validates its parameters first and returns a thunk that executes;
the pipeline runs the thunk only after validation passed, which is how "nothing is saved
for an idempotency key when validation fails" falls out of the structure.
"""

from __future__ import annotations

from collections.abc import Mapping

from stripe_emulator import paging, render
from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import InvalidRequestError, ValidationError
from stripe_emulator.forms import Params, merge_metadata
from stripe_emulator.objects import JSON, PaymentIntent
from stripe_emulator.payments import FROZEN, unexpected_state
from stripe_emulator.pipeline import Execute

_MINIMUM = {"usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50}
_CAPTURE = ("automatic", "automatic_async", "manual")


def _currency(params: Params, required: bool) -> str | None:
    currency = params.text("currency", required=required)
    if currency is None:
        return None
    if len(currency) != 3 or not currency.isalpha():
        raise ValidationError(
            f"Invalid currency: {currency}", code="parameter_invalid_string", param="currency"
        )
    return currency.lower()


def _check_minimum(amount: int, currency: str) -> None:
    minimum = _MINIMUM.get(currency, 1)
    if amount < minimum:
        raise ValidationError(
            f"Amount must be at least {minimum} {currency} minor units",
            code="amount_too_small",
            param="amount",
        )


def _render_pi(emu: Emulator, pi: PaymentIntent, expand: set[str]) -> JSON:
    body = render.payment_intent(pi)
    s = emu.state
    if "latest_charge" in expand and pi.latest_charge:
        body["latest_charge"] = emu.payments.render_charge(s.charges.get(pi.latest_charge))
    if "payment_method" in expand and pi.payment_method:
        body["payment_method"] = render.payment_method(s.payment_methods.get(pi.payment_method))
    if "customer" in expand and pi.customer:
        body["customer"] = render.customer(s.customers.get(pi.customer))
    return body


def _common_pi_fields(p: Params) -> dict[str, object]:
    fields: dict[str, object] = {
        "description": p.text("description"),
        "receipt_email": p.text("receipt_email"),
        "statement_descriptor": p.text("statement_descriptor"),
        "setup_future_usage": p.text("setup_future_usage", choices=("on_session", "off_session")),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _accept_ignored(p: Params, *names: str) -> None:
    """Hash parameters Stripe accepts that change nothing in the emulator's card-only world."""
    for name in names:
        p.mapping(name)


def _accept_flags(p: Params) -> None:
    """Boolean parameters that only matter for off-session or client-side flows."""
    for name in ("off_session", "error_on_requires_action", "use_stripe_sdk"):
        p.flag(name)


def create_payment_intent(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    amount = p.required_integer("amount", minimum=1)
    currency = _currency(p, required=True) or ""
    _check_minimum(amount, currency)
    customer, payment_method = p.text("customer"), p.text("payment_method")
    confirm = p.flag("confirm") or False
    capture_method = p.text("capture_method", choices=_CAPTURE) or "automatic"
    confirmation_method = (
        p.text("confirmation_method", choices=("automatic", "manual")) or "automatic"
    )
    metadata = p.metadata() or {}
    types = p.text_list("payment_method_types") or ["card"]
    if types != ["card"]:
        raise ValidationError(
            "The emulator supports payment_method_types=['card'] only.",
            param="payment_method_types",
        )
    return_url = p.text("return_url")
    fields = _common_pi_fields(p)
    _accept_flags(p)
    _accept_ignored(p, "automatic_payment_methods", "payment_method_options", "shipping")
    expand = p.expand()

    def execute() -> JSON:
        s = emu.state
        if customer is not None and s.customers.get(customer, "customer").deleted:
            raise InvalidRequestError(
                f"No such customer: '{customer}'", code="resource_missing", param="customer"
            )
        pm = emu.payments.resolve_payment_method(payment_method) if payment_method else None
        pi = PaymentIntent(
            id=s.ids.new("pi"),
            created=s.now(),
            amount=amount,
            currency=currency,
            client_secret="",
            status="requires_confirmation" if pm else "requires_payment_method",
            capture_method=capture_method,
            confirmation_method=confirmation_method,
            customer=customer,
            payment_method=pm.id if pm else None,
            metadata=metadata,
            return_url=return_url,
            **fields,  # type: ignore[arg-type]
        )
        pi.client_secret = s.ids.secret(f"{pi.id}_secret", 25)
        emu.payments.created(pi)
        if confirm:
            emu.payments.confirm(pi)
        return _render_pi(emu, pi, expand)

    return execute


def retrieve_payment_intent(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    p.text("client_secret")
    expand = p.expand()
    return lambda: _render_pi(emu, emu.state.payment_intents.get(path["id"]), expand)


def update_payment_intent(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    amount = p.integer("amount", minimum=1)
    currency = _currency(p, required=False)
    customer, payment_method = p.text("customer"), p.text("payment_method")
    capture_method = p.text("capture_method", choices=_CAPTURE)
    metadata = p.metadata()
    fields = _common_pi_fields(p)
    expand = p.expand()
    money_changes = any(
        v is not None for v in (amount, currency, customer, payment_method, capture_method)
    )

    def execute() -> JSON:
        pi = emu.state.payment_intents.get(path["id"])
        if pi.status in FROZEN or (money_changes and pi.status == "requires_capture"):
            raise unexpected_state(
                pi,
                "update",
                ("requires_payment_method", "requires_confirmation", "requires_action"),
            )
        if amount is not None or currency is not None:
            _check_minimum(amount or pi.amount, currency or pi.currency)
            pi.amount, pi.currency = amount or pi.amount, currency or pi.currency
        if customer is not None:
            old = pi.customer
            pi.customer = emu.state.customers.get(customer, "customer").id
            emu.state.payment_intents.reindex("customer", pi, old)
        if capture_method is not None:
            pi.capture_method = capture_method
        if payment_method is not None:
            pi.payment_method = emu.payments.resolve_payment_method(payment_method).id
            pi.status, pi.next_action = "requires_confirmation", None
        pi.metadata = merge_metadata(pi.metadata, metadata)
        for name, value in fields.items():
            setattr(pi, name, value)
        return _render_pi(emu, pi, expand)

    return execute


def confirm_payment_intent(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    payment_method, return_url = p.text("payment_method"), p.text("return_url")
    capture_method = p.text("capture_method", choices=_CAPTURE)
    _accept_flags(p)
    _accept_ignored(p, "mandate_data", "payment_method_options", "shipping")
    p.text("receipt_email")
    expand = p.expand()

    def execute() -> JSON:
        pi = emu.state.payment_intents.get(path["id"])
        if return_url is not None:
            pi.return_url = return_url
        if capture_method is not None and pi.status in (
            "requires_payment_method",
            "requires_confirmation",
        ):
            pi.capture_method = capture_method
        emu.payments.confirm(pi, payment_method)
        return _render_pi(emu, pi, expand)

    return execute


def capture_payment_intent(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    amount = p.integer("amount_to_capture", minimum=1)
    metadata = p.metadata()
    expand = p.expand()

    def execute() -> JSON:
        pi = emu.payments.capture(emu.state.payment_intents.get(path["id"]), amount)
        pi.metadata = merge_metadata(pi.metadata, metadata)
        return _render_pi(emu, pi, expand)

    return execute


def cancel_payment_intent(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    reason = p.text(
        "cancellation_reason",
        choices=("duplicate", "fraudulent", "requested_by_customer", "abandoned"),
    )
    expand = p.expand()
    return lambda: _render_pi(
        emu, emu.payments.cancel(emu.state.payment_intents.get(path["id"]), reason), expand
    )


def list_payment_intents(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)
    customer = p.text("customer")
    # Stripe expands inside a list with the "data." prefix: expand[]=data.latest_charge.
    expand = {e.removeprefix("data.") for e in p.expand()}

    def execute() -> JSON:
        index = ("customer", customer) if customer else None
        found, more = emu.state.payment_intents.list(page, index)
        return render.list_object(
            "/v1/payment_intents", [_render_pi(emu, pi, expand) for pi in found], more
        )

    return execute
