"""`{{name}}`: an Outpost notifier written in Python.

It POSTs each alert as JSON to `url`; a 2xx answer is delivered, 429 and
5xx are retried by the agent, other 4xx are permanent.

`./build` makes {{name}}.wasm; `outpost plugin test {{name}}.wasm` checks it.
"""

import outpost_sdk as sdk
from wit_world import exports


class Notifier(sdk.NotifierBase, exports.Notifier):
    NAME = "{{name}}"
    VERSION = "0.1.0"
    DESCRIPTION = "Posts alerts as JSON"
    CONFIG = sdk.Fields(
        sdk.field("url", "url", "the http:// or https:// URL to POST to", required=True),
    )

    def check_config(self, config):
        sdk.require_url(config)

    def deliver(self, config, alert, ctx):
        document = {
            "target": alert.target,
            "event": alert.event.name.lower(),
            "state": alert.new_state,
            "message": alert.message,
            "ack_url": alert.ack_url,
        }
        r = sdk.http_post_json(config["url"], document, timeout_ms=ctx.budget_ms())
        return sdk.judge_response(r)
