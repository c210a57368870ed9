"""API operations on Charges, Refunds, Customers, Events and WebhookEndpoints."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from stripe_emulator import events, paging, render
from stripe_emulator.emulator import Emulator
from stripe_emulator.errors import ValidationError
from stripe_emulator.forms import Params, merge_metadata
from stripe_emulator.objects import JSON, Customer, Event, WebhookEndpoint
from stripe_emulator.pipeline import Execute

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# -- charges -----------------------------------------------------------------------------------


def retrieve_charge(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: emu.payments.render_charge(emu.state.charges.get(path["id"]))


def list_charges(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)
    customer, payment_intent = p.text("customer"), p.text("payment_intent")

    def execute() -> JSON:
        index = (
            ("payment_intent", payment_intent)
            if payment_intent
            else ("customer", customer)
            if customer
            else None
        )
        found, more = emu.state.charges.list(page, index)
        return render.list_object(
            "/v1/charges", [emu.payments.render_charge(c) for c in found], more
        )

    return execute


# -- refunds -----------------------------------------------------------------------------------


def create_refund(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    charge, payment_intent = p.text("charge"), p.text("payment_intent")
    if charge is None and payment_intent is None:
        raise ValidationError(
            "One of the following params should be provided for this request: charge or "
            "payment_intent.",
            code="parameter_missing",
        )
    amount = p.integer("amount", minimum=1)
    reason = p.text("reason", choices=("duplicate", "fraudulent", "requested_by_customer"))
    metadata = p.metadata()
    for accepted in ("refund_application_fee", "reverse_transfer"):  # no effect without Connect
        p.flag(accepted)

    def execute() -> JSON:
        ch = emu.refunds.charge_to_refund(charge, payment_intent)
        return render.refund(emu.refunds.create(ch, amount, reason, metadata))

    return execute


def retrieve_refund(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: render.refund(emu.state.refunds.get(path["id"]))


def update_refund(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    metadata = p.metadata()

    def execute() -> JSON:
        refund = emu.state.refunds.get(path["id"])
        if metadata is not None:
            refund.metadata = merge_metadata(refund.metadata, metadata)
            emu.state.log.emit("refund.updated", render.refund(refund))
        return render.refund(refund)

    return execute


def list_refunds(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)
    charge, payment_intent = p.text("charge"), p.text("payment_intent")

    def execute() -> JSON:
        index = (
            ("charge", charge)
            if charge
            else ("payment_intent", payment_intent)
            if payment_intent
            else None
        )
        found, more = emu.state.refunds.list(page, index)
        return render.list_object("/v1/refunds", [render.refund(r) for r in found], more)

    return execute


# -- customers ---------------------------------------------------------------------------------


def _customer_fields(p: Params) -> dict[str, str]:
    values = {name: p.text(name) for name in ("email", "name", "phone", "description")}
    return {k: v for k, v in values.items() if v is not None}


def create_customer(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    fields, metadata = _customer_fields(p), p.metadata() or {}
    payment_method = p.text("payment_method")

    def execute() -> JSON:
        s = emu.state
        customer = s.customers.add(Customer(s.ids.new("cus"), s.now(), metadata=metadata))
        for name, value in fields.items():
            setattr(customer, name, value)
        if payment_method is not None:
            pm = emu.payments.resolve_payment_method(payment_method)
            pm.customer = customer.id
            s.payment_methods.reindex("customer", pm, None)
        s.log.emit("customer.created", render.customer(customer))
        return render.customer(customer)

    return execute


def retrieve_customer(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: render.customer(emu.state.customers.get(path["id"]))


def update_customer(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    fields, metadata = _customer_fields(p), p.metadata()

    def execute() -> JSON:
        customer = emu.state.customers.get(path["id"])
        for name, value in fields.items():
            setattr(customer, name, value or None)
        customer.metadata = merge_metadata(customer.metadata, metadata)
        emu.state.log.emit("customer.updated", render.customer(customer))
        return render.customer(customer)

    return execute


def delete_customer(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    def execute() -> JSON:
        customer = emu.state.customers.get(path["id"])
        emu.state.log.emit("customer.deleted", render.customer(customer))
        customer.deleted = True
        return render.customer(customer)

    return execute


def list_customers(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page, email = paging.page(p), p.text("email")

    def keep(c: Customer) -> bool:
        return not c.deleted and (email is None or c.email == email)

    def execute() -> JSON:
        found, more = emu.state.customers.list(page, keep=keep)
        return render.list_object("/v1/customers", [render.customer(c) for c in found], more)

    return execute


# -- events ------------------------------------------------------------------------------------


def retrieve_event(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: events.render(emu.state.log.events.get(path["id"]))


def list_events(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)
    single, many = p.text("type"), p.text_list("types")
    if single is not None and many is not None:
        raise ValidationError("You cannot specify both type and types.", param="types")
    patterns = [single] if single is not None else many
    if patterns is not None and len(patterns) > 20:
        raise ValidationError("You can filter on at most 20 event types.", param="types")
    delivered = p.flag("delivery_success")

    def keep(event: Event) -> bool:
        if patterns is not None and not events.matches_type(event, patterns):
            return False
        return delivered is None or delivered == (not event.pending)

    def execute() -> JSON:
        found, more = emu.state.log.events.list(page, keep=keep)
        return render.list_object("/v1/events", [events.render(e) for e in found], more)

    return execute


# -- webhook endpoints -------------------------------------------------------------------------


def _url(emu: Emulator, p: Params, required: bool) -> str | None:
    url = p.text("url", required=required)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"Invalid URL: {url}", code="url_invalid", param="url")
    if parts.hostname not in _LOOPBACK and not emu.settings.allow_remote_webhooks:
        raise ValidationError(
            "Webhook URLs must point at this machine (127.0.0.1, localhost or ::1); start the "
            "emulator with --allow-remote-webhooks to lift this.",
            code="url_invalid",
            param="url",
        )
    return url


def create_webhook_endpoint(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    url = _url(emu, p, required=True) or ""
    enabled = p.text_list("enabled_events", required=True) or []
    description, metadata = p.text("description"), p.metadata() or {}
    api_version = p.text("api_version")
    p.flag("connect")

    def execute() -> JSON:
        s = emu.state
        endpoint = WebhookEndpoint(
            id=s.ids.new("we"),
            created=s.now(),
            url=url,
            secret=s.ids.secret("whsec"),
            enabled_events=enabled,
            description=description,
            metadata=metadata,
            api_version=api_version,
        )
        s.endpoints.add(endpoint)
        return render.webhook_endpoint(endpoint, with_secret=True)

    return execute


def retrieve_webhook_endpoint(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    return lambda: render.webhook_endpoint(emu.state.endpoints.get(path["id"]))


def update_webhook_endpoint(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    url, enabled = _url(emu, p, required=False), p.text_list("enabled_events")
    description, metadata, disabled = p.text("description"), p.metadata(), p.flag("disabled")

    def execute() -> JSON:
        endpoint = emu.state.endpoints.get(path["id"])
        endpoint.url = url or endpoint.url
        endpoint.enabled_events = enabled or endpoint.enabled_events
        endpoint.description = description if description is not None else endpoint.description
        endpoint.metadata = merge_metadata(endpoint.metadata, metadata)
        if disabled is not None:
            endpoint.status = "disabled" if disabled else "enabled"
        return render.webhook_endpoint(endpoint)

    return execute


def delete_webhook_endpoint(emu: Emulator, p: Params, path: Mapping[str, str]) -> Execute:
    def execute() -> JSON:
        endpoint = emu.state.endpoints.get(path["id"])
        emu.state.endpoints.remove(endpoint.id)
        return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}

    return execute


def list_webhook_endpoints(emu: Emulator, p: Params, _: Mapping[str, str]) -> Execute:
    page = paging.page(p)

    def execute() -> JSON:
        found, more = emu.state.endpoints.list(page)
        return render.list_object(
            "/v1/webhook_endpoints", [render.webhook_endpoint(w) for w in found], more
        )

    return execute
