"""`{{name}}`: an Outpost sensor written in Python.

It GETs `url` and reports `ok` when the status is `expect_status` and the
body contains `body_contains` (when set), `warn` when slower than
`warn_latency_ms`, and `fail` with a message on another status, a missing
text, a refused connection, a timeout or a host outside the allow-list.

`./build` makes {{name}}.wasm; `outpost plugin test {{name}}.wasm` checks it.
"""

import outpost_sdk as sdk
from wit_world import exports


class Sensor(sdk.SensorBase, exports.Sensor):
    NAME = "{{name}}"
    VERSION = "0.1.0"
    DESCRIPTION = "HTTP check: status, latency and body text"
    CONFIG = sdk.Fields(
        sdk.field("url", "url", "the http:// or https:// URL to GET", required=True),
        sdk.field("expect_status", "integer", "the status that means up", default=200),
        sdk.field("body_contains", "string", "text the body must contain"),
        sdk.field("warn_latency_ms", "number", "slower than this is `warn`", default=1000),
    )

    def check_config(self, config):
        sdk.require_url(config)
        if not 100 <= config["expect_status"] <= 599:
            raise sdk.ConfigError("expect_status", "must be an HTTP status between 100 and 599")

    def run(self, config, ctx):
        # Raises sdk.HttpError (refused, timeout, denied, ...), which the
        # SDK reports as `fail` with its message.
        r = sdk.http_get(config["url"], timeout_ms=ctx.budget_ms())
        metrics = {"status_code": r.status}
        if r.status != config["expect_status"]:
            return sdk.fail(f"HTTP {r.status} (expected {config['expect_status']})", r.latency_ms, metrics)
        want = config["body_contains"]
        if want and want not in r.text:
            return sdk.fail(f"HTTP {r.status} but the body does not contain {want!r}", r.latency_ms, metrics)
        if r.latency_ms > config["warn_latency_ms"]:
            return sdk.warn(
                f"HTTP {r.status} in {r.latency_ms:.0f} ms (over {config['warn_latency_ms']} ms)",
                r.latency_ms,
                metrics,
            )
        return sdk.ok(f"HTTP {r.status} in {r.latency_ms:.1f} ms", r.latency_ms, metrics)
