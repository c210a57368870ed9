"""Stripe's wire conventions: keys, the error envelope, ids, list objects and form encoding.

Through the official SDK wherever it can make the request; ``httpx`` only for what the SDK
cannot send (a missing ``Authorization`` header, unknown routes, oversized queries). The form
decoder and the collections' pagination are also checked directly, by example and by
hypothesis against the SDK's own encoder and a naive list model.
"""

from __future__ import annotations

import itertools
import operator
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode
from stripe.params import PaymentIntentCreateParams, PaymentIntentListParams

from stripe_emulator import EmulatorServer
from stripe_emulator.errors import ValidationError
from stripe_emulator.forms import decode
from stripe_emulator.store import Collection, CreatedRange, Page
from tests.conftest import TEST_KEY

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
MakeClient = Callable[..., stripe.StripeClient]


def _intent(client: stripe.StripeClient, customer: str | None = None) -> stripe.PaymentIntent:
    params: PaymentIntentCreateParams = {"amount": 1000, "currency": "usd"}
    if customer is not None:
        params["customer"] = customer
    return client.v1.payment_intents.create(params=params)


def _paid(client: stripe.StripeClient) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": 1500,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )


def _ids(listed: stripe.ListObject[stripe.PaymentIntent]) -> list[str]:
    return [item.id for item in listed.data]


# -- API keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "sk_test_", "not-a-key", "pk_test_publishable0123", "sk_test_x"]
)
def test_missing_or_invalid_key_is_an_authentication_error(
    make_client: MakeClient, emulator: EmulatorServer, key: str
) -> None:
    with pytest.raises(stripe.AuthenticationError) as info:
        make_client(0, key).v1.customers.list()
    assert info.value.http_status == 401
    assert info.value.error is not None
    assert info.value.error.type == "invalid_request_error"


def test_request_without_authorization_header_is_401_in_stripes_envelope(
    emulator: EmulatorServer,
) -> None:
    response = httpx.get(f"{emulator.url}/v1/customers")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]


def test_live_mode_key_is_refused_with_401_and_nothing_is_created(
    make_client: MakeClient, emulator: EmulatorServer
) -> None:
    live = make_client(0, "sk_live_" + "a" * 24)
    with pytest.raises(stripe.AuthenticationError) as info:
        live.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert info.value.http_status == 401
    assert emulator.ledger()["payment_intents"] == []


# -- the error envelope ------------------------------------------------------------------------


def test_unknown_parameter_is_refused_by_name_and_creates_nothing(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    bogus = cast(PaymentIntentCreateParams, {"amount": 1000, "currency": "usd", "colour": "red"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(params=bogus)
    error = info.value
    assert (error.http_status, error.code, error.param) == (400, "parameter_unknown", "colour")
    assert error.error is not None
    assert error.error.type == "invalid_request_error"
    assert "colour" in str(error.error.message)
    assert str(error.request_id).startswith("req_")
    assert emulator.ledger()["payment_intents"] == []


def test_unknown_query_parameter_on_a_list_is_refused(client: stripe.StripeClient) -> None:
    bogus = cast(PaymentIntentListParams, {"limit": 3, "sort": "asc"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.list(params=bogus)
    assert (info.value.http_status, info.value.code, info.value.param) == (
        400,
        "parameter_unknown",
        "sort",
    )


def test_unknown_nested_parameter_has_code_parameter_unknown(emulator: EmulatorServer) -> None:
    response = httpx.get(f"{emulator.url}/v1/payment_intents?created[foo]=1", headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.get("code") == "parameter_unknown"
    assert error.get("param") == "created[foo]"


def test_missing_required_parameter_names_it(client: stripe.StripeClient) -> None:
    incomplete = cast(PaymentIntentCreateParams, {"currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.create(params=incomplete)
    error = info.value
    assert (error.http_status, error.code, error.param) == (400, "parameter_missing", "amount")
    assert error.error is not None
    assert error.error.type == "invalid_request_error"
    assert "amount" in str(error.error.message)


RETRIEVE: dict[str, Callable[[stripe.StripeClient, str], object]] = {
    "pi_missing0001": lambda c, i: c.v1.payment_intents.retrieve(i),
    "ch_missing0001": lambda c, i: c.v1.charges.retrieve(i),
    "re_missing0001": lambda c, i: c.v1.refunds.retrieve(i),
    "pm_missing0001": lambda c, i: c.v1.payment_methods.retrieve(i),
    "cus_missing0001": lambda c, i: c.v1.customers.retrieve(i),
    "evt_missing0001": lambda c, i: c.v1.events.retrieve(i),
    "we_missing0001": lambda c, i: c.v1.webhook_endpoints.retrieve(i),
}


@pytest.mark.parametrize("object_id", sorted(RETRIEVE))
def test_unknown_id_is_resource_missing_404(client: stripe.StripeClient, object_id: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        RETRIEVE[object_id](client, object_id)
    error = info.value
    assert (error.http_status, error.code) == (404, "resource_missing")
    assert error.error is not None
    assert error.error.type == "invalid_request_error"
    assert object_id in str(error.error.message)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/nothing_here"), ("POST", "/v1/payment_intents/pi_1/explode"), ("GET", "/v9")],
)
def test_unknown_route_is_404_in_stripes_envelope(
    emulator: EmulatorServer, method: str, path: str
) -> None:
    response = httpx.request(method, f"{emulator.url}{path}", headers=AUTH)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"Unrecognized request URL ({method}: {path})")


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclined", "generic_decline"),
    ],
)
def test_decline_is_a_card_error_with_decline_code(
    client: stripe.StripeClient, card: str, decline_code: str
) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "payment_method": card, "confirm": True}
        )
    error = info.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error is not None
    assert (error.error.type, error.error.decline_code) == ("card_error", decline_code)
    assert error.error.message
    assert str(error.error.charge).startswith("ch_")
    intent = error.error.payment_intent
    assert intent is not None
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == decline_code


# -- ids, object names, created stamps ---------------------------------------------------------


def test_objects_have_prefixed_ids_object_names_and_integer_created(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    now = emulator.call(emulator.emulator.clock.timestamp)
    intent = _paid(client)
    made: list[tuple[str, str, stripe.StripeObject]] = [
        ("pi_", "payment_intent", intent),
        ("ch_", "charge", client.v1.charges.retrieve(str(intent.latest_charge))),
        ("re_", "refund", client.v1.refunds.create(params={"payment_intent": intent.id})),
        ("pm_", "payment_method", client.v1.payment_methods.retrieve(str(intent.payment_method))),
        ("cus_", "customer", client.v1.customers.create(params={"name": "Ada"})),
        (
            "we_",
            "webhook_endpoint",
            client.v1.webhook_endpoints.create(
                params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
            ),
        ),
        ("evt_", "event", client.v1.events.list(params={"limit": 1}).data[0]),
    ]
    for prefix, kind, obj in made:
        body = obj.to_dict()
        assert str(body["id"]).startswith(prefix), f"{kind} id {body['id']!r}"
        assert len(str(body["id"])) > len(prefix) + 8, f"{kind} id {body['id']!r}"
        assert body["object"] == kind
        assert type(body["created"]) is int, f"{kind} created {body['created']!r}"
        assert abs(body["created"] - now) <= 5, f"{kind} created {body['created']} vs {now}"


# -- list objects ------------------------------------------------------------------------------


def test_cursor_pagination_walks_25_intents_once_in_both_directions(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    created = [_intent(client).id for _ in range(25)]
    pages: list[stripe.ListObject[stripe.PaymentIntent]] = []
    for _ in range(3):
        params: PaymentIntentListParams = {"limit": 10}
        if pages:
            params["starting_after"] = pages[-1].data[-1].id
        page = client.v1.payment_intents.list(params=params)
        assert (page.to_dict(recursive=False)["object"], page.url) == (
            "list",
            "/v1/payment_intents",
        )
        pages.append(page)
    assert [len(p.data) for p in pages] == [10, 10, 5]
    assert [p.has_more for p in pages] == [True, True, False]
    walked = [item for page in pages for item in _ids(page)]
    assert len(set(walked)) == 25
    assert walked == created[::-1], "a list is newest first"

    back = client.v1.payment_intents.list(
        params={"limit": 10, "ending_before": pages[2].data[0].id}
    )
    assert (_ids(back), back.has_more) == (_ids(pages[1]), True)
    first = client.v1.payment_intents.list(
        params={"limit": 10, "ending_before": pages[1].data[0].id}
    )
    assert (_ids(first), first.has_more) == (_ids(pages[0]), False)


def test_customer_filter_lists_only_that_customers_intents(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    ada = client.v1.customers.create(params={"name": "Ada"}).id
    bob = client.v1.customers.create(params={"name": "Bob"}).id
    mine: list[str] = []
    for owner in (ada, bob, None, ada, bob, None, ada):
        intent = _intent(client, owner)
        if owner == ada:
            mine.append(intent.id)
    listed = client.v1.payment_intents.list(params={"customer": ada})
    assert (_ids(listed), listed.has_more) == (mine[::-1], False)
    assert {item.customer for item in listed.data} == {ada}
    two = client.v1.payment_intents.list(params={"customer": ada, "limit": 2})
    assert (_ids(two), two.has_more) == (mine[:0:-1], True)


def test_created_filter_with_gte_lt_gt_lte_and_exact(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    ids: list[str] = []
    stamps: list[int] = []
    for step in range(4):
        if step:
            emulator.advance_clock(10)
        intent = _intent(client)
        ids.append(intent.id)
        stamps.append(intent.created)
    assert all(later - earlier >= 10 for earlier, later in itertools.pairwise(stamps))
    between = client.v1.payment_intents.list(
        params={"created": {"gte": stamps[1], "lt": stamps[3]}}
    )
    assert (_ids(between), between.has_more) == ([ids[2], ids[1]], False)
    after = client.v1.payment_intents.list(params={"created": {"gt": stamps[1], "lte": stamps[3]}})
    assert _ids(after) == [ids[3], ids[2]]
    exact = client.v1.payment_intents.list(params={"created": stamps[2]})
    assert _ids(exact) == [ids[2]]
    paged = client.v1.payment_intents.list(params={"created": {"gte": stamps[1]}, "limit": 2})
    assert (_ids(paged), paged.has_more) == ([ids[3], ids[2]], True)


def _customer_with_a_moved_intent(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> tuple[str, stripe.PaymentIntent, stripe.PaymentIntent]:
    """An older intent given a customer after a newer one was created for that customer."""
    customer = client.v1.customers.create().id
    older = _intent(client)
    emulator.advance_clock(100)
    newer = _intent(client, customer)
    client.v1.payment_intents.update(older.id, params={"customer": customer})
    return customer, older, newer


def test_customer_filter_stays_newest_first_after_an_update(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    customer, older, newer = _customer_with_a_moved_intent(client, emulator)
    listed = client.v1.payment_intents.list(params={"customer": customer})
    assert _ids(listed) == [newer.id, older.id]


def test_customer_and_created_filters_agree_after_an_update(
    client: stripe.StripeClient, emulator: EmulatorServer
) -> None:
    customer, _, newer = _customer_with_a_moved_intent(client, emulator)
    listed = client.v1.payment_intents.list(
        params={"customer": customer, "created": {"gte": newer.created}}
    )
    assert _ids(listed) == [newer.id]


@pytest.mark.parametrize("limit", [0, 101, 1000])
def test_limit_outside_1_to_100_is_refused(client: stripe.StripeClient, limit: int) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_intents.list(params={"limit": limit})
    assert (info.value.http_status, info.value.param) == (400, "limit")


def test_limit_100_is_accepted(client: stripe.StripeClient, emulator: EmulatorServer) -> None:
    created = [_intent(client).id for _ in range(3)]
    listed = client.v1.payment_intents.list(params={"limit": 100})
    assert (_ids(listed), listed.has_more) == (created[::-1], False)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_oversized_form_is_a_400_in_stripes_envelope(emulator: EmulatorServer, method: str) -> None:
    form = "&".join(f"metadata[k{i}]=1" for i in range(1001))
    response = httpx.request(
        method,
        f"{emulator.url}/v1/customers",
        params=form if method == "GET" else None,
        content=form if method == "POST" else None,
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert emulator.ledger()["payment_intents"] == []


# -- forms.decode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tree"),
    [
        ("a[b][c]=1", {"a": {"b": {"c": "1"}}}),
        ("a[]=x&a[]=y", {"a": ["x", "y"]}),
        ("a[0]=x&a[1]=y", {"a": ["x", "y"]}),
        ("a[1]=y&a[0]=x", {"a": ["x", "y"]}),
        ("&".join(f"a[{i}]={i}" for i in range(12)), {"a": [str(i) for i in range(12)]}),
        ("a[0][b]=x&a[1][b]=y", {"a": [{"b": "x"}, {"b": "y"}]}),
        ("m[k][]=1&m[k][]=2&m[j]=3", {"m": {"k": ["1", "2"], "j": "3"}}),
        ("a=&b[c]=&d[]=", {"a": "", "b": {"c": ""}, "d": [""]}),
        ("a%5Bb%5D=1+2&c=%26%3D", {"a": {"b": "1 2"}, "c": "&="}),
        ("", {}),
    ],
)
def test_decode_examples(raw: str, tree: dict[str, Any]) -> None:
    assert decode(raw) == tree
    assert decode(raw.encode()) == tree


@pytest.mark.parametrize(
    "raw",
    [
        "a=1&a[b]=2",
        "a[b]=2&a=1",
        "a[b]=1&a[b][c]=2",
        "a[b][c]=2&a[b]=1",
        "a[b=1",
        "a]=1",
        "[a]=1",
        "a[b]x=1",
        "a[[b]]=1",
        "a[][b]=x",
        "a[]=x&a[0]=y",
        "a[0]=y&a[]=x",
        "a[]=1&a[x][y]=2",
        "a[b]=1&a[b][]=2",
    ],
)
def test_decode_refuses_invalid_nesting(raw: str) -> None:
    with pytest.raises(ValidationError):
        decode(raw)


def test_decode_refuses_too_many_pairs_as_a_validation_error() -> None:
    assert len(decode("&".join(f"x{i}=1" for i in range(1000)))) == 1000
    with pytest.raises(ValidationError):
        decode("&".join(f"x{i}=1" for i in range(1001)))


def sdk_form(params: dict[str, Any]) -> str:
    """Exactly how stripe 16's ``_api_requestor`` encodes a v1 form body or query."""
    encoded = urlencode(list(_api_encode(params)))
    return encoded.replace("%5B", "[").replace("%5D", "]")


def test_sdk_form_is_what_the_sdk_sends() -> None:
    params = {"metadata": {"order": "o 1"}, "expand": ["latest_charge"], "confirm": True}
    assert sdk_form(params) == "metadata[order]=o+1&expand[0]=latest_charge&confirm=true"


_KEYS = st.builds(
    operator.add,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "_", max_size=6),
)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=10)
_STRINGS = st.lists(_TEXT, min_size=1, max_size=12)


def _nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    mapping = st.dictionaries(_KEYS, children, min_size=1, max_size=3)
    return mapping | st.lists(mapping, min_size=1, max_size=2)


_TREES = st.dictionaries(
    _KEYS, st.recursive(_TEXT | _STRINGS, _nest, max_leaves=10), min_size=1, max_size=4
)


@settings(max_examples=200, deadline=None)
@given(_TREES)
def test_decode_inverts_the_sdks_encoding(tree: dict[str, Any]) -> None:
    # Non-empty lists and hashes only: the SDK sends nothing at all for an empty one.
    assert decode(sdk_form(tree)) == tree


# -- store.Collection.list against a naive model -----------------------------------------------


@dataclass
class Rec:
    id: str
    created: int
    owner: str | None = None


@dataclass(frozen=True)
class Scenario:
    records: list[Rec]
    removed: frozenset[str]
    keep: frozenset[str] | None
    owner: str | None
    page: Page


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    gaps = draw(st.lists(st.integers(0, 3), max_size=30))
    stamps = list(itertools.accumulate(gaps, initial=1000))[1:]
    records = [
        Rec(f"rec_{i:03d}", stamp, draw(st.sampled_from(["a", "b", None])))
        for i, stamp in enumerate(stamps)
    ]
    ids = [r.id for r in records]
    removed = frozenset(draw(st.sets(st.sampled_from(ids)))) if ids else frozenset()
    keep = draw(st.none() | st.sets(st.sampled_from(ids)).map(frozenset)) if ids else None
    owner = draw(st.sampled_from(["a", None]))
    live = [r.id for r in records if r.id not in removed and owner in (None, r.owner)]
    direction = draw(st.sampled_from(["starting_after", "ending_before", None])) if live else None
    cursor = draw(st.sampled_from(live)) if direction else None
    bound = st.none() | st.integers(998, (stamps[-1] if stamps else 1000) + 2)
    page = Page(
        limit=draw(st.integers(1, 12)),
        starting_after=cursor if direction == "starting_after" else None,
        ending_before=cursor if direction == "ending_before" else None,
        created=CreatedRange(gt=draw(bound), gte=draw(bound), lt=draw(bound), lte=draw(bound)),
    )
    return Scenario(records, removed, keep, owner, page)


def _in_range(stamp: int, created: CreatedRange) -> bool:
    return (
        (created.gt is None or stamp > created.gt)
        and (created.gte is None or stamp >= created.gte)
        and (created.lt is None or stamp < created.lt)
        and (created.lte is None or stamp <= created.lte)
    )


def naive_list(s: Scenario) -> tuple[list[str], bool]:
    """Filter a plain list, newest first; a cursor cuts the list at its own position."""
    source = [r for r in s.records if s.owner is None or r.owner == s.owner]
    position = {r.id: i for i, r in enumerate(source)}
    page = s.page
    chosen = [
        (i, r)
        for i, r in enumerate(source)
        if _in_range(r.created, page.created)
        and r.id not in s.removed
        and (s.keep is None or r.id in s.keep)
        and (page.starting_after is None or i < position[page.starting_after])
        and (page.ending_before is None or i > position[page.ending_before])
    ]
    if page.ending_before is not None:  # the page just newer than the cursor
        nearest = [r.id for _, r in chosen[: page.limit]]
        return nearest[::-1], len(chosen) > page.limit
    newest = [r.id for _, r in chosen[::-1]]
    return newest[: page.limit], len(newest) > page.limit


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_collection_list_matches_a_naive_model(s: Scenario) -> None:
    collection: Collection[Rec] = Collection("rec", {"owner": lambda r: r.owner})
    for record in s.records:
        collection.add(record)
    for object_id in s.removed:
        collection.remove(object_id)
    keep = None if s.keep is None else s.keep.__contains__
    found, more = collection.list(
        s.page,
        index=None if s.owner is None else ("owner", s.owner),
        keep=None if keep is None else (lambda r: keep(r.id)),
    )
    assert ([r.id for r in found], more) == naive_list(s)


def test_collection_cursor_unknown_to_the_list_is_resource_missing() -> None:
    collection: Collection[Rec] = Collection("rec", {"owner": lambda r: r.owner})
    collection.add(Rec("rec_1", 1, "a"))
    collection.add(Rec("rec_2", 2, "b"))
    with pytest.raises(ValidationError) as info:
        collection.list(Page(starting_after="rec_2"), index=("owner", "a"))
    assert (info.value.code, info.value.param) == ("resource_missing", "starting_after")


def test_collection_reindex_keeps_the_index_in_created_order() -> None:
    collection: Collection[Rec] = Collection("rec", {"owner": lambda r: r.owner})
    older, newer = Rec("rec_1", 100), Rec("rec_2", 200, "a")
    collection.add(older)
    collection.add(newer)
    older.owner = "a"
    collection.reindex("owner", older, None)
    found, _ = collection.list(Page(), index=("owner", "a"))
    assert [r.id for r in found] == ["rec_2", "rec_1"]
    ranged, _ = collection.list(Page(created=CreatedRange(gte=200)), index=("owner", "a"))
    assert [r.id for r in ranged] == ["rec_2"]
