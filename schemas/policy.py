"""The policy file (docs/rules.md, policy file): marketplace rules with their default numbers.

Loading and merging live here as pure functions over dicts; reading the file is the
shell's job (worker/settings.py).
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.durations import Duration, parse_window
from schemas.durations import Window as Window  # re-exported: the rules name it
from schemas.durations import parse_duration as parse_duration  # worker/settings.py reads it
from schemas.types import CurrencyCode, Money

UNTIL_READY_TO_SHIP = "until_ready_to_ship"
"""Seller option: a buyer's cancellation is approved at once until the order is ready to
ship (a per-seller `free_cancel_window`)."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rate(Strict):
    up_to_kg: Annotated[Decimal, Field(gt=0)]
    price: Money


class DropOffPolicy(Strict):
    carrier: Annotated[str, Field(min_length=1, max_length=64)] = "Drop-off"
    max_weight_kg: Annotated[Decimal, Field(gt=0)] | None = None
    max_perimeter_cm: Annotated[Decimal, Field(gt=0)] | None = None
    max_value: Money | None = None
    rates: list[Rate] = Field(default_factory=list)

    @field_validator("rates")
    @classmethod
    def _ascending(cls, rates: list[Rate]) -> list[Rate]:
        limits = [rate.up_to_kg for rate in rates]
        if limits != sorted(limits) or len(set(limits)) != len(limits):
            raise ValueError("rates must be in strictly ascending order of up_to_kg")
        return rates


class SellerPolicy(Strict):
    """Per-seller overrides inside a marketplace."""

    # Widens the buyer's instant-cancel window (never narrows it).
    free_cancel_window: Duration | Literal["until_ready_to_ship"] | None = None
    # The seller's own answer window; it always ends, so it is a duration only.
    cancel_response_window: Duration | None = None

    @field_validator("cancel_response_window", mode="before")
    @classmethod
    def _answer_window_ends(cls, value: Any) -> Any:
        if value == UNTIL_READY_TO_SHIP:
            raise ValueError(
                "'until_ready_to_ship' is not an answer window (an answer window always "
                "ends); to approve buyers' cancellations at once until the order is ready "
                'to ship, set free_cancel_window = "until_ready_to_ship" for this seller'
            )
        return value


@lru_cache(maxsize=256)
def _holidays_known(code: str) -> bool:
    """Cached: every order's state carries its policy, and is validated on every load."""
    import holidays as holidays_lib  # pure library, imported lazily: it is large

    country, _, subdivision = code.partition("-")
    try:
        holidays_lib.country_holidays(country, subdiv=subdivision or None, years=2026)
    except NotImplementedError:
        return False
    return True


class MarketplacePolicy(Strict):
    # None: orders in any currency, and no money limits (they would need a currency).
    currency: CurrencyCode | None = None
    timezone: str = "UTC"
    holidays: str | None = None
    free_cancel_window: Duration = parse_window("PT1H")
    cancel_response_window: Duration = parse_window("PT48H")
    unpaid_cancel_after: Duration = parse_window("PT48H")
    return_window: Duration = parse_window("P14D")
    return_response_window: Duration = parse_window("PT48H")
    return_response_calendar: Literal["business", "calendar"] = "calendar"
    resubmit_window: Duration = parse_window("PT48H")
    self_arrange_tracking_window: Duration = parse_window("P5D")
    label_validity: Duration = parse_window("P14D")
    receipt_confirm_window: Duration = parse_window("P8D")
    # 1.2 (docs/rules.md cites the sources): the seller's time to send the replacement of
    # an approved reshipment (from approval) or exchange (from receipt), counted like the
    # answer window (business time where `return_response_calendar` says so); and the
    # buyer's time to answer the seller's offer (calendar time).
    replacement_ship_window: Duration = parse_window("P2D")
    offer_response_window: Duration = parse_window("PT24H")
    # None: the buyer's postage of a seller-fault return is paid back in full (rule 11).
    self_arrange_postage_cap: Money | None = None
    drop_off: DropOffPolicy = Field(default_factory=DropOffPolicy)
    sellers: dict[str, SellerPolicy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _amounts_have_a_currency(self) -> MarketplacePolicy:
        amounts = (
            self.drop_off.max_value is not None
            or self.drop_off.rates
            or self.self_arrange_postage_cap is not None
        )
        if amounts and self.currency is None:
            raise ValueError(
                "currency is required when drop_off.max_value, drop_off.rates or "
                "self_arrange_postage_cap are given: amounts are in the marketplace's currency"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("holidays")
    @classmethod
    def _known_holidays(cls, value: str | None) -> str | None:
        if value is not None and not _holidays_known(value):
            raise ValueError(f"no public holidays are known for {value!r}")
        return value

    def end(self, window: Window, start: datetime) -> datetime:
        """The end of `window` opened at `start`, days counted in this marketplace."""
        return window.after(start, self.timezone)

    def cancel_response_for(self, seller_id: str) -> Window:
        """The seller's own answer window for cancellations, or the marketplace's."""
        seller = self.sellers.get(seller_id)
        if seller is not None and seller.cancel_response_window is not None:
            return seller.cancel_response_window
        return self.cancel_response_window

    def free_cancel_for(self, seller_id: str) -> Window | Literal["until_ready_to_ship"]:
        """The buyer's instant-cancel window with this seller: the wider of the two."""
        seller = self.sellers.get(seller_id)
        own = seller.free_cancel_window if seller is not None else None
        if own is None:
            return self.free_cancel_window
        if own == UNTIL_READY_TO_SHIP:
            return own
        return max(own, self.free_cancel_window, key=lambda w: w.nominal)


class PolicySet(Strict):
    default: MarketplacePolicy = Field(default_factory=MarketplacePolicy)
    marketplaces: dict[str, MarketplacePolicy] = Field(default_factory=dict)

    def for_marketplace(self, marketplace: str) -> MarketplacePolicy:
        return self.marketplaces.get(marketplace, self.default)


BUILT_IN_MARKETPLACES: dict[str, dict[str, Any]] = {
    "UK": {
        "currency": "GBP",
        "timezone": "Europe/London",
        "holidays": "GB-ENG",
        "free_cancel_window": "PT1H",
        "cancel_response_window": "PT48H",
        "unpaid_cancel_after": "PT48H",
        "return_window": "P30D",
        "return_response_window": "PT48H",
        "return_response_calendar": "business",
        "resubmit_window": "PT48H",
        "self_arrange_tracking_window": "P5D",
        "label_validity": "P14D",
        "receipt_confirm_window": "P8D",
        "self_arrange_postage_cap": "6.99",  # the highest drop-off rate below
        "drop_off": {
            "carrier": "Evri",
            "max_weight_kg": 15,
            "max_perimeter_cm": 245,
            "max_value": "1500",
            "rates": [
                {"up_to_kg": 2, "price": "2.99"},
                {"up_to_kg": 5, "price": "4.49"},
                {"up_to_kg": 15, "price": "6.99"},
            ],
        },
    }
}
"""The built-in `UK` section (docs/rules.md); every other marketplace starts from defaults."""


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the key and the problem."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "sellers":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_policy(document: dict[str, Any] | None = None) -> PolicySet:
    """The built-in policy, overridden by a parsed policy file `document` (may be None)."""
    document = document or {}
    unknown = sorted(set(document) - {"marketplaces"})
    if unknown:
        raise PolicyError(f"unknown top-level key(s) {', '.join(unknown)}; expected [marketplaces]")
    given = document.get("marketplaces", {})
    if not isinstance(given, dict):
        raise PolicyError("marketplaces must be a table of [marketplaces.<CODE>] sections")
    raw = {code: dict(section) for code, section in BUILT_IN_MARKETPLACES.items()}
    for code, section in given.items():
        if not isinstance(section, dict):
            raise PolicyError(f"marketplaces.{code} must be a table")
        raw[code] = _merge(raw.get(code, {}), section)
    marketplaces: dict[str, MarketplacePolicy] = {}
    for code, section in raw.items():
        try:
            marketplaces[code] = MarketplacePolicy.model_validate(section)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(('marketplaces', code, *(str(p) for p in err['loc'])))}: {err['msg']}"
                for err in exc.errors()
            )
            raise PolicyError(problems) from None
    return PolicySet(marketplaces=marketplaces)
