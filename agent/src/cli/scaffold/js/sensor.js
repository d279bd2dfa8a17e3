// `{{name}}`: an Outpost sensor written in JavaScript.
//
// It GETs `url` and reports `ok` when the status is `expect_status` and the
// body contains `body_contains` (when set), `warn` when slower than
// `warn_latency_ms`, and `fail` with a message on another status, a missing
// text, a refused connection, a timeout or a host outside the allow-list.
//
// `./build` makes {{name}}.wasm; `outpost plugin test {{name}}.wasm` checks it.

import * as sdk from "./outpost_sdk.js";

export const sensor = sdk.sensor({
  name: "{{name}}",
  version: "0.1.0",
  description: "HTTP check: status, latency and body text",
  config: sdk.fields(
    sdk.field("url", "url", "the http:// or https:// URL to GET", { required: true }),
    sdk.field("expect_status", "integer", "the status that means up", { default: 200 }),
    sdk.field("body_contains", "string", "text the body must contain"),
    sdk.field("warn_latency_ms", "number", "slower than this is `warn`", { default: 1000 }),
  ),

  checkConfig(config) {
    sdk.requireUrl(config);
    if (config.expect_status < 100 || config.expect_status > 599) {
      throw new sdk.ConfigError("expect_status", "must be an HTTP status between 100 and 599");
    }
  },

  // sdk.HttpError (refused, timeout, denied, ...) thrown here is reported
  // as `fail` with its message.
  run(config, ctx) {
    const r = sdk.httpGet(config.url, { timeoutMs: ctx.budgetMs() });
    const extra = { latencyMs: r.latencyMs, metrics: { status_code: r.status } };
    if (r.status !== config.expect_status) {
      return sdk.fail(`HTTP ${r.status} (expected ${config.expect_status})`, extra);
    }
    if (config.body_contains && !r.text.includes(config.body_contains)) {
      return sdk.fail(`HTTP ${r.status} but the body does not contain ${JSON.stringify(config.body_contains)}`, extra);
    }
    if (r.latencyMs > config.warn_latency_ms) {
      return sdk.warn(`HTTP ${r.status} in ${Math.round(r.latencyMs)} ms (over ${config.warn_latency_ms} ms)`, extra);
    }
    return sdk.ok(`HTTP ${r.status} in ${r.latencyMs.toFixed(1)} ms`, extra);
  },
});
