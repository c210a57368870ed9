"""Stripe-shaped JSON for the emulator's records.

Field names and nesting follow Stripe's published example objects (``fixtures3.json`` in
stripe/openapi); fields for products the emulator does not model (Connect, Issuing,
invoices ...) are present and null, as they are on a plain card payment at Stripe.
"""

from __future__ import annotations

from typing import Any

import orjson

from stripe_emulator.cards import TestCard
from stripe_emulator.objects import (
    JSON,
    Charge,
    Customer,
    PaymentIntent,
    PaymentMethod,
    Refund,
    WebhookEndpoint,
)


def compact_json(value: Any) -> bytes:
    """``orjson.dumps`` copied into an exactly sized ``bytes``.

    orjson's result keeps its over-allocated buffer (measured: 20,000 stored 1.5 KB documents
    cost 158 MB, copied 29 MB); everything the emulator keeps (event snapshots, idempotent
    responses) goes through here.
    """
    return memoryview(orjson.dumps(value)).tobytes()


_ADDRESS: JSON = {
    "city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None,
}  # fmt: skip


def billing_details() -> JSON:
    return {"address": dict(_ADDRESS), "email": None, "name": None, "phone": None, "tax_id": None}


def _checks() -> JSON:
    return {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"}


def payment_method(pm: PaymentMethod) -> JSON:
    card = pm.card
    return {
        "id": pm.id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": billing_details(),
        "card": {
            "brand": card.brand,
            "checks": _checks(),
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": pm.exp_month,
            "exp_year": pm.exp_year,
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
            "regulated_status": "unregulated",
        },
        "created": pm.created,
        "customer": pm.customer,
        "customer_account": None,
        "livemode": False,
        "metadata": dict(pm.metadata),
        "type": "card",
    }


def customer(c: Customer) -> JSON:
    if c.deleted:
        return {"id": c.id, "object": "customer", "deleted": True}
    return {
        "id": c.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": c.created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": c.description,
        "discount": None,
        "email": c.email,
        "invoice_prefix": c.id[-8:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": dict(c.metadata),
        "name": c.name,
        "next_invoice_sequence": 1,
        "phone": c.phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def payment_intent(pi: PaymentIntent) -> JSON:
    return {
        "id": pi.id,
        "object": "payment_intent",
        "amount": pi.amount,
        "amount_capturable": pi.amount_capturable,
        "amount_details": {"tip": {}},
        "amount_received": pi.amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": pi.canceled_at,
        "cancellation_reason": pi.cancellation_reason,
        "capture_method": pi.capture_method,
        "client_secret": pi.client_secret,
        "confirmation_method": pi.confirmation_method,
        "created": pi.created,
        "currency": pi.currency,
        "customer": pi.customer,
        "customer_account": None,
        "description": pi.description,
        "excluded_payment_method_types": None,
        "last_payment_error": pi.last_payment_error,
        "latest_charge": pi.latest_charge,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(pi.metadata),
        "next_action": pi.next_action,
        "on_behalf_of": None,
        "payment_method": pi.payment_method,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            },
        },
        "payment_method_types": list(pi.payment_method_types),
        "processing": None,
        "receipt_email": pi.receipt_email,
        "review": None,
        "setup_future_usage": pi.setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": pi.statement_descriptor,
        "statement_descriptor_suffix": None,
        "status": pi.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _card_details(card: TestCard, amount: int) -> JSON:
    return {
        "amount_authorized": amount,
        "authorization_code": None,
        "brand": card.brand,
        "checks": _checks(),
        "country": card.country,
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": card.last4,
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": card.brand,
        "network_token": {"used": False},
        "network_transaction_id": None,
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def _outcome(ch: Charge) -> JSON:
    failed = ch.status == "failed"
    return {
        "advice_code": "try_again_later" if failed else None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network" if failed else "approved_by_network",
        "reason": ch.decline_code,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "The bank declined the payment." if failed else "Payment complete.",
        "type": "issuer_declined" if failed else "authorized",
    }


def charge(ch: Charge, refunds: list[Refund]) -> JSON:
    return {
        "id": ch.id,
        "object": "charge",
        "amount": ch.amount,
        "amount_captured": ch.amount_captured,
        "amount_refunded": ch.amount_refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": billing_details(),
        "calculated_statement_descriptor": "GAMEDAY",
        "captured": ch.captured,
        "created": ch.created,
        "currency": ch.currency,
        "customer": ch.customer,
        "description": ch.description,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": ch.failure_code,
        "failure_message": ch.failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(ch.metadata),
        "on_behalf_of": None,
        "outcome": _outcome(ch),
        "paid": ch.status == "succeeded",
        "payment_intent": ch.payment_intent,
        "payment_method": ch.payment_method,
        "payment_method_details": {"card": _card_details(ch.card, ch.amount), "type": "card"},
        "receipt_email": ch.receipt_email,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": ch.amount_refunded > 0 and ch.amount_refunded >= ch.amount_captured,
        "refunds": {
            "object": "list",
            "data": [refund(r) for r in reversed(refunds[-10:])],
            "has_more": len(refunds) > 10,
            "url": f"/v1/charges/{ch.id}/refunds",
        },
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": ch.status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(r: Refund) -> JSON:
    return {
        "id": r.id,
        "object": "refund",
        "amount": r.amount,
        "balance_transaction": None,
        "charge": r.charge,
        "created": r.created,
        "currency": r.currency,
        "customer": None,
        "customer_account": None,
        "destination_details": {"card": {"type": "reversal"}, "type": "card"},
        "metadata": dict(r.metadata),
        "payment_intent": r.payment_intent,
        "payment_method": None,
        "reason": r.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": r.status,
        "transfer_reversal": None,
    }


def webhook_endpoint(we: WebhookEndpoint, *, with_secret: bool = False) -> JSON:
    body: JSON = {
        "id": we.id,
        "object": "webhook_endpoint",
        "api_version": we.api_version,
        "application": None,
        "created": we.created,
        "description": we.description,
        "enabled_events": list(we.enabled_events),
        "livemode": False,
        "metadata": dict(we.metadata),
        "status": we.status,
        "url": we.url,
    }
    if with_secret:
        body["secret"] = we.secret
    return body


def list_object(url: str, data: list[JSON], has_more: bool) -> JSON:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}
