"""Outpost plugin helpers for Python (componentize-py).

Wraps the bindings componentize-py generates for the `outpost:plugin`
worlds (`sensor-plugin`, `notifier-plugin`) so a plugin is its check and
little else:

    import outpost_sdk as sdk

    CONFIG = sdk.Fields(
        sdk.field("url", "url", "the URL to check", required=True),
        sdk.field("timeout_ms", "integer", "time allowed", default=2000),
    )

    class Sensor(sdk.SensorBase):
        NAME, VERSION, DESCRIPTION, CONFIG = "ping", "0.1.0", "Says hello", CONFIG

        def run(self, config, ctx):
            r = sdk.http_get(config["url"], timeout_ms=ctx.budget_ms())
            return sdk.ok(f"HTTP {r.status}", latency_ms=r.latency_ms)

What it owns: config parsing with errors that name the field
(`ConfigError`), result constructors (`ok`, `warn`, `fail`, `error`), an
HTTP client over `wasi:http` that tells refused, timed out and denied
apart (`http_get`, `http_request`, `HttpError`), what a notifier's HTTP
answer means (`delivery_error`), logging into the agent (`log`), and the
glue that turns exceptions into results instead of traps. It holds no
state between calls. Python in a component has no `ssl` module: HTTPS
goes through `wasi:http`, which this module uses.
"""

import json
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world.imports import plugin_types as pt
from wit_world.imports import types as http
from wit_world.imports import outgoing_handler, poll, monotonic_clock, host
from wit_world.imports import streams

# Time kept back from the agent's deadline so a slow target is reported by
# the plugin as `fail` (with a message) before the agent stops it as
# `error`: enough for Python to build its result.
DEADLINE_MARGIN_MS = 250


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration the plugin cannot work with; `field` is the dotted key."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


_TYPES = {
    "string": (str,),
    # Target fields: the agent grants the plugin the hosts they name.
    "url": (str,),
    "host:port": (str,),
    "list<url>": (list,),
    "list<host:port>": (list,),
    "integer": (int,),
    "number": (int, float),
    "bool": (bool,),
    "list<string>": (list,),
    "table": (dict,),
}


def field(name, type, description, required=False, default=None):
    """One configuration key: its name, type ("string", "integer", "number",
    "bool", "list<string>", "table"), what it is for, and whether it is
    required or its default."""
    if type not in _TYPES:
        raise ValueError(f"unknown config type {type!r}")
    return (name, type, description, required, default)


class Fields:
    """The configuration a plugin accepts (its `info` and its parser)."""

    def __init__(self, *fields):
        self.fields = fields

    def describe(self):
        return [
            pt.ConfigField(
                name=n,
                type=t,
                required=req,
                default=None if req or d is None else json.dumps(d),
                description=desc,
            )
            for (n, t, desc, req, d) in self.fields
        ]

    def parse(self, text):
        """The config document as a dict with defaults filled in; raises
        ConfigError naming the field on anything wrong."""
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ConfigError("", f"the configuration is not JSON: {e}")
        if not isinstance(doc, dict):
            raise ConfigError("", "the configuration must be a table (JSON object)")
        known = {f[0] for f in self.fields}
        for key in doc:
            if key not in known:
                raise ConfigError(
                    key, f"unknown key `{key}`; known keys: {', '.join(sorted(known))}"
                )
        out = {}
        for (name, type, _desc, required, default) in self.fields:
            if name not in doc:
                if required:
                    raise ConfigError(name, f"missing required key `{name}` ({type})")
                out[name] = default
                continue
            value = doc[name]
            ok = isinstance(value, _TYPES[type]) and not (
                type in ("integer", "number") and isinstance(value, bool)
            )
            if ok and type == "list<string>":
                ok = all(isinstance(v, str) for v in value)
            if not ok:
                raise ConfigError(
                    name, f"`{name}` must be {type}, got {json.dumps(value)[:60]}"
                )
            out[name] = value
        return out


def require_url(config, key="url"):
    """Raises ConfigError unless config[key] is an http(s) URL with a host."""
    u = urlsplit(config[key])
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(key, f"`{key}` must be an http:// or https:// URL, got {config[key]!r}")


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def _result(status, message, latency_ms, metrics, details):
    return pt.CheckResult(
        status=status,
        message=message,
        latency_ms=float(latency_ms or 0.0),
        metrics=[pt.Metric(name=k, value=float(v)) for k, v in (metrics or {}).items()],
        details=None if details is None else json.dumps(details),
    )


def ok(message, latency_ms=0.0, metrics=None, details=None):
    """The target works."""
    return _result(pt.Status.OK, message, latency_ms, metrics, details)


def warn(message, latency_ms=0.0, metrics=None, details=None):
    """The target works but crossed a warning threshold."""
    return _result(pt.Status.WARN, message, latency_ms, metrics, details)


def fail(message, latency_ms=0.0, metrics=None, details=None):
    """The target does not work."""
    return _result(pt.Status.FAIL, message, latency_ms, metrics, details)


def error(message, latency_ms=0.0, metrics=None, details=None):
    """The check could not be carried out."""
    return _result(pt.Status.ERROR, message, latency_ms, metrics, details)


# --------------------------------------------------------------------------
# HTTP over wasi:http
# --------------------------------------------------------------------------


class HttpError(Exception):
    """A request that got no answer. `kind` is one of "refused", "timeout",
    "denied" (the host is not in the plugin's network allow-list), "dns",
    "tls", "bad-url", "transport"."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


class Response:
    def __init__(self, status, headers, body, latency_ms):
        self.status = status
        self.headers = headers
        self.body = body
        self.latency_ms = latency_ms

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None


def _now_ms():
    return monotonic_clock.now() / 1e6


def _map_error(code, authority, timeout_ms):
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return HttpError("denied", f"{authority} is not allowed for this plugin (network allow-list)")
    if isinstance(code, http.ErrorCode_ConnectionRefused):
        return HttpError("refused", f"connection to {authority} refused")
    if isinstance(
        code,
        (
            http.ErrorCode_ConnectionTimeout,
            http.ErrorCode_ConnectionReadTimeout,
            http.ErrorCode_HttpResponseTimeout,
        ),
    ):
        return HttpError("timeout", f"{authority}: no answer within {timeout_ms:.0f} ms")
    if isinstance(code, (http.ErrorCode_DnsError, http.ErrorCode_DnsTimeout, http.ErrorCode_DestinationNotFound)):
        return HttpError("dns", f"cannot resolve {authority}")
    if isinstance(code, (http.ErrorCode_TlsProtocolError, http.ErrorCode_TlsCertificateError, http.ErrorCode_TlsAlertReceived)):
        return HttpError("tls", f"TLS with {authority} failed ({type(code).__name__[10:]})")
    return HttpError("transport", f"{authority}: {type(code).__name__.replace('ErrorCode_', '')}")


def http_request(method, url, headers=(), body=b"", timeout_ms=5000, max_body=1 << 20):
    """Sends one request and reads the answer (at most `max_body` bytes of
    body). Returns a Response, or raises HttpError. `timeout_ms` bounds the
    whole exchange."""
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise HttpError("bad-url", f"not an http(s) URL: {url!r}")
    authority = u.netloc.rsplit("@", 1)[-1]
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    started = _now_ms()
    timeout_ms = max(1, timeout_ms)
    entries = [(k.lower(), v.encode() if isinstance(v, str) else v) for k, v in headers]
    req = http.OutgoingRequest(http.Fields.from_list(entries))
    m = method.upper()
    methods = {
        "GET": http.Method_Get(), "HEAD": http.Method_Head(), "POST": http.Method_Post(),
        "PUT": http.Method_Put(), "DELETE": http.Method_Delete(), "PATCH": http.Method_Patch(),
    }
    req.set_method(methods.get(m) or http.Method_Other(m))
    req.set_scheme(http.Scheme_Https() if u.scheme == "https" else http.Scheme_Http())
    req.set_authority(authority)
    req.set_path_with_query(path)
    out_body = req.body() if body else None
    try:
        fut = outgoing_handler.handle(req, None)
    except Err as e:
        raise _map_error(e.value, authority, timeout_ms)
    deadline = monotonic_clock.subscribe_duration(int(timeout_ms * 1e6))
    if out_body is not None:
        stream = out_body.write()
        try:
            for i in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[i : i + 4096])
        except Err:
            pass  # the host closed the stream: the reason is in the response
        _drop(stream)
        http.OutgoingBody.finish(out_body, None)
    # Resources are dropped explicitly, children before their parents (the
    # host refuses to drop a resource that still has children).
    if not _wait(fut, deadline):
        _drop(fut, deadline)
        raise HttpError("timeout", f"{authority}: no answer within {timeout_ms:.0f} ms")
    got = fut.get()
    _drop(fut)
    if got is None or isinstance(got, Err):
        _drop(deadline)
        raise HttpError("transport", f"{authority}: the response was not available")
    if isinstance(got.value, Err):
        _drop(deadline)
        raise _map_error(got.value.value, authority, timeout_ms)
    resp = got.value.value
    latency = _now_ms() - started
    status = resp.status()
    with resp.headers() as fields:
        hdrs = [(k, v.decode("latin-1")) for k, v in fields.entries()]
    chunks, size = [], 0
    incoming = resp.consume()
    stream = incoming.stream()
    try:
        while size < max_body:
            if not _wait(stream, deadline):
                raise HttpError("timeout", f"{authority}: body not complete within {timeout_ms:.0f} ms")
            try:
                data = stream.read(min(65536, max_body - size))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise HttpError("transport", f"{authority}: reading the body failed")
            chunks.append(data)
            size += len(data)
    finally:
        _drop(stream, incoming, resp, deadline)
    return Response(status, hdrs, b"".join(chunks), latency)


def _wait(source, deadline):
    """Waits until `source` (a future or stream) is ready or `deadline`
    passes; True when it is ready."""
    sub = source.subscribe()
    try:
        return 0 in poll.poll([sub, deadline])
    finally:
        _drop(sub)


def _drop(*resources):
    for r in resources:
        r.__exit__(None, None, None)


def http_get(url, headers=(), timeout_ms=5000, max_body=1 << 20):
    """GET `url`; see http_request."""
    return http_request("GET", url, headers, b"", timeout_ms, max_body)


def http_post_json(url, document, headers=(), timeout_ms=5000):
    """POST `document` as JSON; see http_request."""
    hs = list(headers) + [("content-type", "application/json")]
    return http_request("POST", url, hs, json.dumps(document).encode(), timeout_ms)


# --------------------------------------------------------------------------
# Notifier delivery outcomes
# --------------------------------------------------------------------------


def delivery_error(message, permanent=False, retry_after_ms=None):
    """A failed delivery; raise it from `deliver` (or return it)."""
    return Err(pt.DeliveryError(message=message, retry_after_ms=retry_after_ms, permanent=permanent))


def judge_response(resp):
    """None when a receiver's answer means delivered (2xx); else the
    DeliveryError: 429 and 5xx are retried (429 honours Retry-After in
    seconds), other 4xx are permanent."""
    if 200 <= resp.status < 300:
        return None
    snippet = resp.text.strip().replace("\n", " ")[:200]
    msg = f"HTTP {resp.status}" + (f": {snippet}" if snippet else "")
    if resp.status == 429:
        ra = resp.header("retry-after")
        ms = int(float(ra) * 1000) if ra and ra.strip().replace(".", "", 1).isdigit() else None
        return delivery_error(msg, retry_after_ms=ms)
    return delivery_error(msg, permanent=400 <= resp.status < 500)


# --------------------------------------------------------------------------
# Logging and the call context
# --------------------------------------------------------------------------


def log(message, level="info"):
    """A line in the agent's log, tagged with the plugin and its sensor."""
    host.log(getattr(host.LogLevel, level.upper()), str(message))


class Context:
    """How much time a call has."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self._started = _now_ms()

    def remaining_ms(self):
        return max(0.0, self.timeout_ms - (_now_ms() - self._started))

    def budget_ms(self):
        """The time left minus a margin: what to give a request so that its
        timeout is a `fail` with a message, not the agent's `error`."""
        return max(1.0, self.remaining_ms() - min(DEADLINE_MARGIN_MS, self.timeout_ms / 4))


# --------------------------------------------------------------------------
# The exported interfaces
# --------------------------------------------------------------------------


class _Base:
    NAME = "unnamed"
    VERSION = "0.1.0"
    DESCRIPTION = ""
    CONFIG = Fields()
    KIND = None

    def info(self):
        return pt.PluginInfo(
            name=self.NAME,
            version=self.VERSION,
            kind=self.KIND,
            description=self.DESCRIPTION,
            config=self.CONFIG.describe(),
        )

    def check_config(self, config):
        """Semantic checks beyond types (ranges, URL syntax); raise
        ConfigError. Must not touch the network."""

    def _parse(self, text):
        config = self.CONFIG.parse(text)
        self.check_config(config)
        return config

    def validate(self, config):
        try:
            self._parse(config)
        except ConfigError as e:
            raise Err(pt.ConfigError(field=e.field, message=e.message))


class SensorBase(_Base):
    """Subclass as `class Sensor(SensorBase)` in your app module and define
    `run(self, config, ctx) -> CheckResult`."""

    KIND = pt.PluginKind.SENSOR

    def run(self, config, ctx):
        raise NotImplementedError

    def check(self, config, timeout_ms):
        ctx = Context(timeout_ms)
        try:
            parsed = self._parse(config)
        except ConfigError as e:
            return error(f"invalid configuration: {e}")
        try:
            return self.run(parsed, ctx)
        except HttpError as e:
            return fail(e.message)
        except Exception as e:  # a bug in the check is a result, not a trap
            return error(f"the check raised {type(e).__name__}: {e}")


class NotifierBase(_Base):
    """Subclass as `class Notifier(NotifierBase)` and define
    `deliver(self, config, alert, ctx)`: return None when delivered, or
    raise/return `delivery_error(...)`."""

    KIND = pt.PluginKind.NOTIFIER

    def deliver(self, config, alert, ctx):
        raise NotImplementedError

    def notify(self, config, alert, timeout_ms):
        ctx = Context(timeout_ms)
        try:
            parsed = self._parse(config)
        except ConfigError as e:
            raise delivery_error(f"invalid configuration: {e}", permanent=True)
        try:
            outcome = self.deliver(parsed, alert, ctx)
        except HttpError as e:
            raise delivery_error(e.message)
        except Err:
            raise
        except Exception as e:
            raise delivery_error(f"the notifier raised {type(e).__name__}: {e}")
        if isinstance(outcome, Err):
            raise outcome
