"""Schemathesis hooks for tools/schemathesis/run.sh (loaded via SCHEMATHESIS_HOOKS).

Narrow adjustments, each explained where it is made; every check stays on.
"""

import json
import os
import re
import urllib.parse
import urllib.request

import schemathesis

# The admin key schemathesis authenticates with (entity id and key), and
# the server's base URL.
ADMIN_ID = os.environ["KEYGATE_ADMIN_ID"]
ADMIN_KEY = os.environ["KEYGATE_ADMIN_KEY"]
BASE_URL = os.environ["KEYGATE_BASE_URL"]
# Where each dropped failure's reason is appended (run.sh prints a tally).
DROPPED_LOG = os.environ.get("KEYGATE_DROPPED_LOG")


def _dropped(reason):
    if DROPPED_LOG:
        with open(DROPPED_LOG, "a", encoding="utf-8") as log:
            log.write(reason + "\n")
    return False


@schemathesis.hook
def filter_case(context, case):
    """Never change the admin key the run authenticates with.

    The stateful phase follows links from `GET /api-keys` to every key,
    this one included, and rotating it (new secret, the old one refused at
    once) or deleting it would turn every later request into a 401 and
    end the run's coverage. The server refuses to deactivate or delete the
    last admin key (409), but a rotation is legitimate, and so is removing
    this key once schemathesis has created another admin key. Reads of it
    stay in; so does every change to every other key.
    """
    return case.method.upper() == "GET" or ADMIN_ID not in case.formatted_path


# Constraints the server enforces that JSON Schema cannot express:
# (field, start of the 422 message).
INEXPRESSIBLE = (
    # SPEC §5: an expiry in the past is refused; JSON Schema has no "after now".
    ("expires_at", "must be in the future"),
    # `meta` is at most 8 KiB of compact JSON; JSON Schema has no byte size.
    ("meta", "must be at most 8192 bytes"),
) + tuple(
    # Every store keeps times alike only in the years 1000-9999 in UTC and
    # without leap seconds (`format: date-time` allows year 0000, offsets
    # that move a date past 9999, and `:60`).
    (field, message)
    for field in (
        "expires_at", "since",
        "expires_before", "expires_after", "created_before", "created_after",
        "last_used_before", "last_used_after",
    )
    for message in ("must be between the years 1000 and 9999", "must not be a leap second")
)


# The same, for fields named with an array index (`rate_limits.1.name`):
# (field pattern, start of the 422 message).
INEXPRESSIBLE_INDEXED = (
    # SPEC §12: the rate-limit windows of a key have distinct names (they
    # name the windows in `usage`). JSON Schema's `uniqueItems` compares
    # whole items, so two windows with one name and different limits are
    # schema-valid; the server rightly refuses them.
    (re.compile(r"rate_limits\.\d+\.name"), "duplicate window name"),
)


def _inexpressible(issue):
    """The INEXPRESSIBLE or INEXPRESSIBLE_INDEXED problem a 422 issue is,
    as `field: message`, or None."""
    field, msg = issue.get("field"), str(issue.get("msg", ""))
    for known, message in INEXPRESSIBLE:
        if field == known and msg.startswith(message):
            return f"{known}: {message}"
    for pattern, message in INEXPRESSIBLE_INDEXED:
        if isinstance(field, str) and pattern.fullmatch(field) and msg.startswith(message):
            return f"{pattern.pattern}: {message}"
    return None


def _inexpressible_refusals(response):
    """The INEXPRESSIBLE problems a 422 lists, or None when it is not a 422
    or lists any other problem."""
    if response.status_code != 422:
        return None
    try:
        detail = json.loads(response.content)["detail"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(detail, list) or not detail:
        return None
    found = set()
    for issue in detail:
        known = _inexpressible(issue) if isinstance(issue, dict) else None
        if known is None:
            return None
        found.add(known)
    return sorted(found)


def _deleted(key_id):
    """True when the server's audit log records the deletion of the key
    with this public key id."""
    query = urllib.parse.urlencode({"action": "delete", "key_id": key_id})
    request = urllib.request.Request(
        f"{BASE_URL}/audit?{query}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["total"] > 0


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drop three false positives, each only in its exact form.

    ST202 (`positive_data_acceptance`): a schema-valid request refused with a
    422 that names only constraints JSON Schema cannot express (INEXPRESSIBLE
    and INEXPRESSIBLE_INDEXED above: an `expires_at` in the past, a time
    outside the years 1000-9999 in UTC or on a leap second, a `meta` above
    8 KiB, two rate-limit windows with one name). Those refusals are right.
    Any other 422 (or 400) on a schema-valid request still fails.

    ST301 (`use_after_free`): `GET /api-keys/{id}/events` answers 200 after
    `DELETE /api-keys/{id}`. By design, audit events outlive their key
    (README "Changes are atomic and audited", SPEC §13): a deleted key's
    history stays readable. `GET /api-keys/{id}` and every other route under
    the deleted key stay checked. (A per-operation `use_after_free = false`
    in schemathesis.toml is not honoured by the stateful phase.)

    ST302 (`ensure_resource_availability`): `POST /api-keys`, then `DELETE
    /api-keys/{id}`, then `GET /api-keys/by-key-id/{key_id}` (both ids from
    the creation's answer) is 404, rightly: schemathesis only counts a
    DELETE as removing paths below its own, and `/by-key-id/{key_id}` is
    another path to the same key. Dropped only when the server's audit log
    holds a `delete` event for that key id.
    """
    if failure.code == "ST202":
        refusals = _inexpressible_refusals(response)
        if refusals:
            return _dropped(f"ST202 {case.method.upper()} {case.path}: 422 {', '.join(refusals)}")
    if failure.code == "ST301" and case.method.upper() == "GET" and case.path == "/api-keys/{id}/events":
        return _dropped("ST301 GET /api-keys/{id}/events after DELETE: events outlive their key")
    if (
        failure.code == "ST302"
        and case.path == "/api-keys/by-key-id/{key_id}"
        and _deleted(str((case.path_parameters or {}).get("key_id", "")))
    ):
        return _dropped("ST302 GET /api-keys/by-key-id/{key_id}: the key was deleted (audit log)")
    return True
