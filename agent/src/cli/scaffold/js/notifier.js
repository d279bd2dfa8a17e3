// `{{name}}`: an Outpost notifier written in JavaScript.
//
// It POSTs each alert as JSON to `url`; a 2xx answer is delivered, 429 and
// 5xx are retried by the agent, other 4xx are permanent.
//
// `./build` makes {{name}}.wasm; `outpost plugin test {{name}}.wasm` checks it.

import * as sdk from "./outpost_sdk.js";

export const notifier = sdk.notifier({
  name: "{{name}}",
  version: "0.1.0",
  description: "Posts alerts as JSON",
  config: sdk.fields(sdk.field("url", "url", "the http:// or https:// URL to POST to", { required: true })),

  checkConfig(config) {
    sdk.requireUrl(config);
  },

  deliver(config, alert, ctx) {
    const r = sdk.httpPostJson(
      config.url,
      { target: alert.target, event: alert.event, state: alert.newState, message: alert.message, ack_url: alert.ackUrl },
      { timeoutMs: ctx.budgetMs() },
    );
    return sdk.judgeResponse(r);
  },
});
