"""The control API: the :class:`~esp_forms.emulator.server.EmulatorServer` methods over HTTP.

JSON in, JSON out, under ``/_emulator/`` (a prefix no provider uses). It lets a shell, a browser
test or another process drive the emulator the way the Python API does; ``docs/emulator.md``
lists every call with a curl example. Control calls are never recorded in the request log.
API keys travel in JSON bodies, never in control URLs, so no key lands in an access log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from esp_forms import __version__
from esp_forms.emulator.wire import CONTROL_PREFIX, RecordedRequest, Response, json_response

if TYPE_CHECKING:
    from esp_forms.emulator.server import EmulatorServer


class BadInput(Exception):
    """Answered as 400."""


Route = Callable[["EmulatorServer", RecordedRequest, dict[str, Any]], Any]


def body_of(request: RecordedRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    if not isinstance(request.json, dict):
        raise BadInput("the body must be a JSON object")
    return request.json


def need(data: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    if name not in data:
        raise BadInput(f"{name!r} is required")
    return typed(data, name, kind)


def typed(data: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None
          ) -> Any:
    value = data.get(name, default)
    if value is None:
        return default
    # bool is an int in Python; a JSON true is never a valid count or status.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int, float))):
        raise BadInput(f"{name!r} has the wrong type")
    return value


def query_flag(request: RecordedRequest, name: str) -> bool:
    return (request.query.get(name) or [""])[0].lower() in ("1", "true", "yes")


# ---- routes ---------------------------------------------------------------------------------


def health(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    return {"ok": True, "version": __version__, "url": server.url}


def reset(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.reset()
    return {"ok": True}


def esputnik_account(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                     ) -> Any:
    groups = typed(data, "groups", list, [])
    if not all(isinstance(g, str) for g in groups):
        raise BadInput("'groups' must be a list of names")
    server.add_esputnik_account(need(data, "api_key"), groups=groups,
                                org=typed(data, "org", str, "Demo org"))
    return {"ok": True}


def unisender_account(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                      ) -> Any:
    lists = need(data, "lists", list)
    for item in lists:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int):
            raise BadInput("each list needs an integer 'id' (and 'title', "
                           "'confirmation_letter')")
    server.add_unisender_account(need(data, "api_key"), lists=lists,
                                 login=typed(data, "login", str, "demo"))
    return {"ok": True}


def list_requests(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    provider = (request.query.get("provider") or [None])[0]
    reveal = query_flag(request, "reveal")
    return [r.as_dict(reveal=reveal) for r in server.requests(provider)]


def clear_requests(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                   ) -> Any:
    server.clear_requests()
    return {"ok": True}


def add_fault(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.fault(
        need(data, "provider"),
        status=typed(data, "status", int),
        body=typed(data, "body", str),
        unisender_code=typed(data, "unisender_code", str),
        unisender_message=typed(data, "unisender_message", str),
        delay=float(typed(data, "delay", (int, float), 0.0)),
        reset_connection=bool(typed(data, "reset_connection", bool, False)),
        times=typed(data, "times", int, 1),
        path_contains=typed(data, "path_contains", str),
        apply=bool(typed(data, "apply", bool, False)),
    )
    return {"ok": True}


def list_faults(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    return [f.as_dict() for f in server.faults()]


def clear_faults(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.clear_faults()
    return {"ok": True}


def latency(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.set_latency(float(need(data, "seconds", (int, float))))
    return {"ok": True}


def rate_limit(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.set_rate_limit(need(data, "provider"), need(data, "api_key"),
                          need(data, "limit", int), float(need(data, "window", (int, float))),
                          all_methods=bool(typed(data, "all_methods", bool, False)))
    return {"ok": True}


def duplicate_window(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                     ) -> Any:
    server.set_duplicate_window(float(need(data, "seconds", (int, float))))
    return {"ok": True}


def confirm(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.confirm(need(data, "provider"), need(data, "api_key"), need(data, "email"),
                   group=typed(data, "group", str, "Confirmed"))
    return {"ok": True}


def unsubscribe(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    server.unsubscribe(need(data, "provider"), need(data, "api_key"), need(data, "email"),
                       list_id=typed(data, "list_id", int))
    return {"ok": True}


def contact(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    found = server.contact(need(data, "provider"), need(data, "api_key"), need(data, "email"))
    if found is None:
        raise LookupError("no such contact")
    return found


def esputnik_webhooks(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                      ) -> Any:
    server.set_esputnik_webhooks(need(data, "api_key"),
                                 workflow_url=typed(data, "workflow_url", str),
                                 account_url=typed(data, "account_url", str),
                                 secret=typed(data, "secret", str, ""),
                                 account_login=typed(data, "account_login", str),
                                 account_password=typed(data, "account_password", str))
    return {"ok": True}


def drop_webhooks(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                  ) -> Any:
    server.drop_webhooks(float(need(data, "rate", (int, float))),
                         seed=typed(data, "seed", int, 0))
    return {"ok": True}


def redeliver_webhooks(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]
                       ) -> Any:
    return [d.as_dict() for d in server.redeliver_webhooks()]


def send_webhook(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    deliveries = server.send_webhook(need(data, "provider"), need(data, "api_key"),
                                     need(data, "event"), need(data, "email"),
                                     list_id=typed(data, "list_id", int))
    return [d.as_dict() for d in deliveries]


def list_webhooks(server: EmulatorServer, request: RecordedRequest, data: dict[str, Any]) -> Any:
    return [d.as_dict() for d in server.webhooks()]


ROUTES: dict[str, dict[str, Route]] = {
    "": {"GET": health},
    "/health": {"GET": health},
    "/reset": {"POST": reset},
    "/accounts/esputnik": {"POST": esputnik_account},
    "/accounts/unisender": {"POST": unisender_account},
    "/requests": {"GET": list_requests, "DELETE": clear_requests},
    "/faults": {"GET": list_faults, "POST": add_fault, "DELETE": clear_faults},
    "/latency": {"POST": latency},
    "/rate-limits": {"POST": rate_limit},
    "/duplicate-window": {"POST": duplicate_window},
    "/confirm": {"POST": confirm},
    "/unsubscribe": {"POST": unsubscribe},
    "/contact": {"POST": contact},
    "/esputnik/webhooks": {"POST": esputnik_webhooks},
    "/webhooks": {"GET": list_webhooks},
    "/webhooks/send": {"POST": send_webhook},
    "/webhooks/drop": {"POST": drop_webhooks},
    "/webhooks/redeliver": {"POST": redeliver_webhooks},
}


def handle(server: EmulatorServer, request: RecordedRequest) -> Response:
    sub = request.path[len(CONTROL_PREFIX):].rstrip("/")
    methods = ROUTES.get(sub)
    if methods is None:
        return json_response(404, {"error": f"no control endpoint {request.path}",
                                   "endpoints": sorted(CONTROL_PREFIX + p for p in ROUTES)})
    route = methods.get(request.method)
    if route is None:
        return json_response(405, {"error": f"{request.method} not allowed here"},
                             {"Allow": ", ".join(methods)})
    try:
        return json_response(200, route(server, request, body_of(request)))
    except (BadInput, ValueError) as err:
        return json_response(400, {"error": str(err)})
    except LookupError as err:
        # args[0], not str(): str() of a KeyError wraps the message in quotes.
        return json_response(404, {"error": str(err.args[0]) if err.args else "not found"})
