"""An Outpost notifier in Python: posts each alert to a chat-style webhook
as `{"text": "..."}` (the format Mattermost, Rocket.Chat and many chat
bridges accept).

It shows the notifier world in another language than Rust: `info`,
`validate` with field-named errors, and `notify` whose failures tell the
agent's outbox whether to retry (429 and 5xx) or give up (other 4xx).
Build it with ./build (componentize-py), check it with
`outpost plugin test python-notifier.wasm`.
"""

import outpost_sdk as sdk
from wit_world import exports

ICONS = {
    "opened": "🔴",
    "escalated": "🟠",
    "reminder": "🔁",
    "acknowledged": "🙋",
    "resolved": "✅",
}


class Notifier(sdk.NotifierBase, exports.Notifier):
    NAME = "python-notifier"
    VERSION = "0.1.0"
    DESCRIPTION = "Posts alerts to a chat webhook as {\"text\": ...} (example in Python)"
    CONFIG = sdk.Fields(
        sdk.field("url", "url", "the webhook URL", required=True),
        sdk.field("channel", "string", "a channel to post to, when the receiver takes one"),
    )

    def check_config(self, config):
        sdk.require_url(config)

    def deliver(self, config, alert, ctx):
        event = alert.event.name.lower()
        text = f"{ICONS.get(event, '')} {alert.target} is {alert.new_state}: {alert.message}"
        if alert.ack_url:
            text += f" (acknowledge: {alert.ack_url})"
        document = {"text": text}
        if config["channel"]:
            document["channel"] = config["channel"]
        r = sdk.http_post_json(config["url"], document, timeout_ms=ctx.budget_ms())
        return sdk.judge_response(r)
