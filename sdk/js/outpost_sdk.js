// Outpost plugin helpers for JavaScript (jco / componentize-js).
//
// Wraps the `outpost:plugin` worlds (`sensor-plugin`, `notifier-plugin`)
// so a plugin is its check and little else:
//
//   import * as sdk from "./outpost_sdk.js";
//   const CONFIG = sdk.fields(sdk.field("url", "url", "the URL", { required: true }));
//   export const sensor = sdk.sensor({
//     name: "ping", version: "0.1.0", description: "Says hello", config: CONFIG,
//     run(config, ctx) {
//       const r = sdk.httpGet(config.url, { timeoutMs: ctx.budgetMs() });
//       return sdk.ok(`HTTP ${r.status}`, { latencyMs: r.latencyMs });
//     },
//   });
//
// What it owns: config parsing with errors that name the field
// (ConfigError), result constructors (ok, warn, fail, error), an HTTP client
// over wasi:http that tells refused, timed out and denied apart (httpGet,
// httpRequest, HttpError; `fetch` reports all of them as one NetworkError),
// what a notifier's HTTP answer means (judgeResponse), logging into the
// agent (log), and the glue that turns exceptions into results instead of
// traps. It holds no state between calls.

import { handle } from "wasi:http/outgoing-handler@0.2.12";
import { Fields, OutgoingRequest, OutgoingBody } from "wasi:http/types@0.2.12";
import { poll } from "wasi:io/poll@0.2.12";
import { now, subscribeDuration } from "wasi:clocks/monotonic-clock@0.2.12";
import { log as hostLog } from "outpost:plugin/host@0.1.1";

// Time kept back from the agent's deadline so a slow target is reported by
// the plugin as `fail` (with a message) before the agent stops it.
export const DEADLINE_MARGIN_MS = 250;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

export class ConfigError extends Error {
  constructor(field, message) {
    super(field ? `${field}: ${message}` : message);
    this.field = field;
    this.detail = message;
  }
}

const TYPES = {
  string: (v) => typeof v === "string",
  // Target fields: the agent grants the plugin the hosts they name.
  url: (v) => typeof v === "string",
  "host:port": (v) => typeof v === "string",
  "list<url>": (v) => Array.isArray(v) && v.every((x) => typeof x === "string"),
  "list<host:port>": (v) => Array.isArray(v) && v.every((x) => typeof x === "string"),
  integer: (v) => Number.isInteger(v),
  number: (v) => typeof v === "number",
  bool: (v) => typeof v === "boolean",
  "list<string>": (v) => Array.isArray(v) && v.every((x) => typeof x === "string"),
  table: (v) => v !== null && typeof v === "object" && !Array.isArray(v),
};

/** One configuration key. */
export function field(name, type, description, { required = false, default: dflt = null } = {}) {
  if (!TYPES[type]) throw new Error(`unknown config type ${type}`);
  return { name, type, description, required, default: dflt };
}

/** The configuration a plugin accepts: its `info` and its parser. */
export function fields(...list) {
  return {
    describe: () =>
      list.map((f) => ({
        name: f.name,
        type: f.type,
        required: f.required,
        default: f.required || f.default === null ? undefined : JSON.stringify(f.default),
        description: f.description,
      })),
    parse(text) {
      let doc;
      try {
        doc = JSON.parse(text);
      } catch (e) {
        throw new ConfigError("", `the configuration is not JSON: ${e.message}`);
      }
      if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
        throw new ConfigError("", "the configuration must be a table (JSON object)");
      }
      const known = list.map((f) => f.name);
      for (const key of Object.keys(doc)) {
        if (!known.includes(key)) {
          throw new ConfigError(key, `unknown key \`${key}\`; known keys: ${known.join(", ")}`);
        }
      }
      const out = {};
      for (const f of list) {
        if (!(f.name in doc)) {
          if (f.required) throw new ConfigError(f.name, `missing required key \`${f.name}\` (${f.type})`);
          out[f.name] = f.default;
          continue;
        }
        const v = doc[f.name];
        if (!TYPES[f.type](v)) {
          throw new ConfigError(f.name, `\`${f.name}\` must be ${f.type}, got ${JSON.stringify(v).slice(0, 60)}`);
        }
        out[f.name] = v;
      }
      return out;
    },
  };
}

/** Throws ConfigError unless config[key] is an http(s) URL with a host. */
export function requireUrl(config, key = "url") {
  if (!/^https?:\/\/[^/?#]+/.test(config[key])) {
    throw new ConfigError(key, `\`${key}\` must be an http:// or https:// URL, got ${JSON.stringify(config[key])}`);
  }
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

function result(status, message, { latencyMs = 0, metrics = {}, details } = {}) {
  return {
    status,
    message,
    latencyMs: Number(latencyMs) || 0,
    metrics: Object.entries(metrics).map(([name, value]) => ({ name, value: Number(value) })),
    details: details === undefined ? undefined : JSON.stringify(details),
  };
}

export const ok = (message, extra) => result("ok", message, extra);
export const warn = (message, extra) => result("warn", message, extra);
export const fail = (message, extra) => result("fail", message, extra);
export const error = (message, extra) => result("error", message, extra);

// ---------------------------------------------------------------------------
// HTTP over wasi:http
// ---------------------------------------------------------------------------

/** A request without an answer; `kind` is "refused", "timeout", "denied"
 * (the host is not in the plugin's network allow-list), "dns", "tls",
 * "bad-url" or "transport". */
export class HttpError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const nowMs = () => Number(now()) / 1e6;

function mapError(code, authority, timeoutMs) {
  switch (code && code.tag) {
    case "HTTP-request-denied":
      return new HttpError("denied", `${authority} is not allowed for this plugin (network allow-list)`);
    case "connection-refused":
      return new HttpError("refused", `connection to ${authority} refused`);
    case "connection-timeout":
    case "connection-read-timeout":
    case "HTTP-response-timeout":
      return new HttpError("timeout", `${authority}: no answer within ${Math.round(timeoutMs)} ms`);
    case "DNS-error":
    case "DNS-timeout":
    case "destination-not-found":
      return new HttpError("dns", `cannot resolve ${authority}`);
    case "TLS-protocol-error":
    case "TLS-certificate-error":
    case "TLS-alert-received":
      return new HttpError("tls", `TLS with ${authority} failed (${code.tag})`);
    default:
      return new HttpError("transport", `${authority}: ${code ? code.tag : "unknown error"}`);
  }
}

/** The wasi:http error inside whatever a failed call threw. */
function errorCode(e) {
  return e && e.payload !== undefined ? e.payload : e;
}

function drop(...resources) {
  for (const r of resources) {
    if (r && typeof r[Symbol.dispose] === "function") r[Symbol.dispose]();
  }
}

/** Waits until `source` (a future or stream) is ready or `deadline`
 * passes; true when ready. */
function wait(source, deadline) {
  const sub = source.subscribe();
  try {
    return poll([sub, deadline]).includes(0);
  } finally {
    drop(sub);
  }
}

const METHODS = { GET: "get", HEAD: "head", POST: "post", PUT: "put", DELETE: "delete", PATCH: "patch" };

/** Sends one request and reads the answer; returns
 * { status, headers, body (Uint8Array), text, json(), header(name), latencyMs }
 * or throws HttpError. `timeoutMs` bounds the whole exchange. */
export function httpRequest(method, url, { headers = [], body, timeoutMs = 5000, maxBody = 1 << 20 } = {}) {
  const m = /^(https?):\/\/([^/?#]+)([^#]*)/.exec(url);
  if (!m) throw new HttpError("bad-url", `not an http(s) URL: ${JSON.stringify(url)}`);
  const [, scheme, hostPart, rest] = m;
  const authority = hostPart.split("@").pop();
  const path = rest === "" ? "/" : rest.startsWith("/") ? rest : `/${rest}`;
  timeoutMs = Math.max(1, timeoutMs);
  const started = nowMs();
  const enc = new TextEncoder();
  const bytes = body === undefined ? null : typeof body === "string" ? enc.encode(body) : body;
  const req = new OutgoingRequest(Fields.fromList(headers.map(([k, v]) => [k.toLowerCase(), enc.encode(v)])));
  const verb = method.toUpperCase();
  req.setMethod(METHODS[verb] ? { tag: METHODS[verb] } : { tag: "other", val: verb });
  req.setScheme({ tag: scheme === "https" ? "HTTPS" : "HTTP" });
  req.setAuthority(authority);
  req.setPathWithQuery(path);
  const outBody = bytes ? req.body() : null;
  let fut;
  try {
    fut = handle(req, undefined);
  } catch (e) {
    throw mapError(errorCode(e), authority, timeoutMs);
  }
  const deadline = subscribeDuration(BigInt(Math.round(timeoutMs * 1e6)));
  if (outBody) {
    const stream = outBody.write();
    try {
      for (let i = 0; i < bytes.length; i += 4096) stream.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
    } catch (_) {
      // the host closed the stream: the reason is in the response
    }
    drop(stream);
    OutgoingBody.finish(outBody, undefined);
  }
  // Resources are dropped explicitly, children before their parents.
  if (!wait(fut, deadline)) {
    drop(fut, deadline);
    throw new HttpError("timeout", `${authority}: no answer within ${Math.round(timeoutMs)} ms`);
  }
  const got = fut.get();
  drop(fut);
  if (got === undefined || got.tag === "err") {
    drop(deadline);
    throw new HttpError("transport", `${authority}: the response was not available`);
  }
  if (got.val.tag === "err") {
    drop(deadline);
    throw mapError(got.val.val, authority, timeoutMs);
  }
  const resp = got.val.val;
  const latencyMs = nowMs() - started;
  const status = resp.status();
  const hf = resp.headers();
  const dec = new TextDecoder();
  const hdrs = hf.entries().map(([k, v]) => [k, dec.decode(v)]);
  drop(hf);
  const incoming = resp.consume();
  const stream = incoming.stream();
  const chunks = [];
  let size = 0;
  try {
    while (size < maxBody) {
      if (!wait(stream, deadline)) {
        throw new HttpError("timeout", `${authority}: body not complete within ${Math.round(timeoutMs)} ms`);
      }
      let data;
      try {
        data = stream.read(BigInt(Math.min(65536, maxBody - size)));
      } catch (e) {
        const p = errorCode(e);
        if (p && p.tag === "closed") break;
        throw new HttpError("transport", `${authority}: reading the body failed`);
      }
      chunks.push(data);
      size += data.length;
    }
  } finally {
    drop(stream, incoming, resp, deadline);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const text = dec.decode(all);
  return {
    status,
    headers: hdrs,
    body: all,
    text,
    json: () => JSON.parse(text),
    header: (name) => (hdrs.find(([k]) => k === name.toLowerCase()) || [])[1],
    latencyMs,
  };
}

export const httpGet = (url, opts = {}) => httpRequest("GET", url, opts);

export const httpPostJson = (url, document, opts = {}) =>
  httpRequest("POST", url, {
    ...opts,
    headers: [...(opts.headers || []), ["content-type", "application/json"]],
    body: JSON.stringify(document),
  });

// ---------------------------------------------------------------------------
// Notifier delivery outcomes
// ---------------------------------------------------------------------------

/** A failed delivery: throw it from `deliver` (or return it). */
export class DeliveryError extends Error {
  constructor(message, { permanent = false, retryAfterMs } = {}) {
    super(message);
    this.permanent = permanent;
    this.retryAfterMs = retryAfterMs;
  }
}

/** null when a receiver's answer means delivered (2xx); else the
 * DeliveryError: 429 and 5xx are retried, other 4xx are permanent. */
export function judgeResponse(r) {
  if (r.status >= 200 && r.status < 300) return null;
  const snippet = r.text.trim().replace(/\s+/g, " ").slice(0, 200);
  const msg = `HTTP ${r.status}${snippet ? `: ${snippet}` : ""}`;
  if (r.status === 429) {
    const ra = Number(r.header("retry-after"));
    return new DeliveryError(msg, { retryAfterMs: Number.isFinite(ra) ? BigInt(Math.round(ra * 1000)) : undefined });
  }
  return new DeliveryError(msg, { permanent: r.status >= 400 && r.status < 500 });
}

// ---------------------------------------------------------------------------
// Logging, context, exports
// ---------------------------------------------------------------------------

/** A line in the agent's log, tagged with the plugin and its sensor. */
export function log(message, level = "info") {
  hostLog(level, String(message));
}

class Context {
  constructor(timeoutMs) {
    this.timeoutMs = timeoutMs;
    this.started = nowMs();
  }
  remainingMs() {
    return Math.max(0, this.timeoutMs - (nowMs() - this.started));
  }
  /** Time left minus a margin: what to give a request so its timeout is a
   * `fail` with a message, not the agent's `error`. */
  budgetMs() {
    return Math.max(1, this.remainingMs() - Math.min(DEADLINE_MARGIN_MS, this.timeoutMs / 4));
  }
}

function common(kind, spec) {
  const parse = (text) => {
    const config = spec.config.parse(text);
    if (spec.checkConfig) spec.checkConfig(config);
    return config;
  };
  return {
    parse,
    info: () => ({
      name: spec.name,
      version: spec.version,
      kind,
      description: spec.description,
      config: spec.config.describe(),
    }),
    validate(text) {
      try {
        parse(text);
      } catch (e) {
        if (e instanceof ConfigError) throw { field: e.field, message: e.detail };
        throw { field: "", message: String(e) };
      }
    },
  };
}

/** The `sensor` export: { name, version, description, config, checkConfig?, run(config, ctx) }. */
export function sensor(spec) {
  const c = common("sensor", spec);
  return {
    info: c.info,
    validate: c.validate,
    check(text, timeoutMs) {
      const ctx = new Context(timeoutMs);
      let config;
      try {
        config = c.parse(text);
      } catch (e) {
        return error(`invalid configuration: ${e.message}`);
      }
      try {
        return spec.run(config, ctx);
      } catch (e) {
        if (e instanceof HttpError) return fail(e.message);
        return error(`the check threw ${e && e.name}: ${e && e.message}`);
      }
    },
  };
}

/** The `notifier` export: { name, version, description, config, checkConfig?, deliver(config, alert, ctx) }. */
export function notifier(spec) {
  const c = common("notifier", spec);
  const asWit = (e) => ({ message: e.message, retryAfterMs: e.retryAfterMs, permanent: e.permanent });
  return {
    info: c.info,
    validate: c.validate,
    notify(text, alert, timeoutMs) {
      const ctx = new Context(timeoutMs);
      let config;
      try {
        config = c.parse(text);
      } catch (e) {
        throw asWit(new DeliveryError(`invalid configuration: ${e.message}`, { permanent: true }));
      }
      let outcome;
      try {
        outcome = spec.deliver(config, alert, ctx);
      } catch (e) {
        if (e instanceof DeliveryError) throw asWit(e);
        if (e instanceof HttpError) throw asWit(new DeliveryError(e.message, { permanent: e.kind === "denied" || e.kind === "bad-url" }));
        throw asWit(new DeliveryError(`the notifier threw ${e && e.name}: ${e && e.message}`));
      }
      if (outcome instanceof DeliveryError) throw asWit(outcome);
    },
  };
}
