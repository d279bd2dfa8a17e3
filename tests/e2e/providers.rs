//! Providers: the built-in `kubernetes` provider against a loopback
//! server that answers the documented Kubernetes list format
//! (`GET /apis/networking.k8s.io/v1/ingresses` with `limit`/`continue`
//! pagination). No real cluster runs here; the ingress hosts are
//! `127.0.0.1:<port>` of a loopback target so the generated http sensors
//! have something to check.

use crate::util::http_server::{HttpServer, Reply};
use crate::util::{Agent, Mode, Receiver, Target, entry, fixture, http_get};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Cluster {
    ingresses: Vec<Value>,
    fail: bool,
}

fn ingress(ns: &str, name: &str, host: &str, path: &str, team: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"team": team}},
        "spec": {"rules": [{"host": host, "http": {"paths": [{"path": path, "pathType": "Prefix"}]}}]}
    })
}

/// A fake API server: pages of 7 items, `continue` is the next offset.
fn api_server(cluster: Arc<Mutex<Cluster>>) -> HttpServer {
    HttpServer::start(move |req| {
        let c = cluster.lock().unwrap();
        if c.fail {
            return Reply::new(500, "etcdserver: request timed out");
        }
        if req.header("authorization") != Some("Bearer s3cret") {
            return Reply::new(401, "Unauthorized");
        }
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        assert_eq!(path, "/apis/networking.k8s.io/v1/ingresses");
        let q = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
        };
        let limit: usize = q("limit").and_then(|l| l.parse().ok()).unwrap_or(500);
        let start: usize = q("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + limit).min(c.ingresses.len());
        let mut meta = json!({"resourceVersion": "1"});
        if end < c.ingresses.len() {
            meta["continue"] = json!(end.to_string());
        }
        Reply::json(&json!({
            "kind": "IngressList",
            "apiVersion": "networking.k8s.io/v1",
            "metadata": meta,
            "items": c.ingresses[start..end],
        }))
    })
}

fn config(api: &str) -> String {
    format!(
        r#"
[[provider]]
name = "k8s"
plugin = "kubernetes"
interval = "300ms"
config = {{ api_url = "{api}", token = "s3cret", page_size = 7, exclude = ["/skip"] }}

[[kind]]
match = "kubernetes.io/Ingress"
  [[kind.sensor]]
  name = "http"
  plugin = "http"
  interval = "500ms"
  config = {{ url = "{{url}}" }}
  [[kind.system]]
  by = "label:namespace"
  name = "k8s-{{value}}"
  rule = "all"
  [kind.service]
  name = "k8s-ingresses"
  rule = "all"

# A user's own sensor for every ingress, beside the template above.
[[kind]]
match = "kubernetes.io/Ingress"
  [[kind.sensor]]
  name = "latency"
  plugin = "http"
  interval = "500ms"
  config = {{ url = "{{url}}", warn_latency = "2s" }}

[[sensor]]
name = "own"
plugin = "http"
interval = "1s"
config = {{ url = "{api}/healthz", expect_status = [401] }}
"#
    )
}

fn provider_sensors(s: &Value, template: &str) -> Vec<String> {
    s["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["labels"]["provider"] == "k8s" && x["name"].as_str().unwrap().ends_with(template)
        })
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn providers_kubernetes_ingresses_become_sensors_systems_and_a_service() {
    let target = Target::start(Mode::Up);
    let host = target
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    {
        let mut c = cluster.lock().unwrap();
        for i in 0..20 {
            let ns = ["ns-a", "ns-b", "ns-c"][i % 3];
            c.ingresses.push(ingress(
                ns,
                &format!("ing{i}"),
                &host,
                &format!("/p{i}"),
                "web",
            ));
        }
        // Excluded by the provider's `exclude`.
        c.ingresses
            .push(ingress("ns-a", "hidden", &host, "/skip", "web"));
    }
    let api = api_server(cluster.clone());
    let agent = Agent::start(&config(api.url("").trim_end_matches('/')));

    // 20 ingresses × 2 templates, 3 systems (one per namespace), 1 service.
    let s = agent.wait_status("40 provider sensors up", WAIT, |s| {
        let names = provider_sensors(s, "");
        names.len() == 40
            && names
                .iter()
                .all(|n| entry(s, "sensors", n)["state"] == "up")
            && entry(s, "services", "k8s-ingresses")["state"] == "up"
    });
    assert_eq!(provider_sensors(&s, ".http").len(), 20);
    assert_eq!(provider_sensors(&s, ".latency").len(), 20);
    for (ns, n) in [("ns-a", 7), ("ns-b", 7), ("ns-c", 6)] {
        let sys = entry(&s, "systems", &format!("k8s-{ns}"));
        // The first rule's systems group its own template's sensors.
        assert_eq!(sys["members"].as_array().unwrap().len(), n, "{sys}");
        assert_eq!(sys["state"], "up");
    }
    let svc = entry(&s, "services", "k8s-ingresses");
    assert_eq!(svc["members"].as_array().unwrap().len(), 3, "{svc}");
    let p = &s["providers"][0];
    assert_eq!(p["name"], "k8s");
    assert_eq!(p["state"], "ok");
    assert_eq!(p["objects"], 20);
    assert_eq!(p["sensors"], 40);
    assert!(entry(&s, "sensors", "own")["name"] == "own");

    // History of ing0's sensor before it goes away.
    let ing0 = provider_sensors(&s, ".http")
        .into_iter()
        .find(|n| n.contains("ing0-"))
        .unwrap();
    // The writer batches: wait until some of its results are stored.
    let stored = |name: &str| {
        agent.history(name)["results"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0)
    };
    let before = agent.wait_some(&format!("results of {ing0} stored"), WAIT, || {
        Some(stored(&ing0)).filter(|n| *n > 0)
    });

    // Added, changed (a label), deleted: within one interval or so.
    {
        let mut c = cluster.lock().unwrap();
        c.ingresses
            .push(ingress("ns-c", "new", &host, "/new", "web"));
        c.ingresses[1]["metadata"]["labels"]["team"] = json!("payments");
        c.ingresses.remove(0); // ing0
    }
    let s = agent.wait_status("add/change/delete reflected", WAIT, |s| {
        let names = provider_sensors(s, ".http");
        names.len() == 20
            && names.iter().any(|n| n.contains(".ns-c-new-"))
            && !names.iter().any(|n| n == &ing0)
            && s["sensors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["labels"]["ingress"] == "ing1" && x["labels"]["team"] == "payments")
    });
    assert_eq!(
        entry(&s, "systems", "k8s-ns-a")["members"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        entry(&s, "systems", "k8s-ns-c")["members"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // Rediscovered with the same id: the same sensor, its history kept.
    {
        let mut c = cluster.lock().unwrap();
        c.ingresses
            .insert(0, ingress("ns-a", "ing0", &host, "/p0", "web"));
    }
    // The same sensor is back (results of its last run before the removal
    // may still be committing, so wait for the sensor, not for history).
    agent.wait_status("ing0 rediscovered", WAIT, |s| {
        provider_sensors(s, "").len() == 42 && provider_sensors(s, ".http").contains(&ing0)
    });
    // Its old history is kept and its next checks add to it.
    let kept = stored(&ing0);
    assert!(
        kept >= before,
        "history of {ing0} shrank: {before} -> {kept}"
    );
    agent.wait_until(
        &format!("history of {ing0} grows past {kept} results"),
        WAIT,
        || stored(&ing0) > kept,
    );

    // The API answering 500: the last set stays, marked stale.
    cluster.lock().unwrap().fail = true;
    let s = agent.wait_status("provider stale", WAIT, |s| {
        s["providers"][0]["state"] == "stale"
    });
    assert_eq!(provider_sensors(&s, "").len(), 42);
    assert!(
        s["providers"][0]["error"].as_str().unwrap().contains("500"),
        "{s}"
    );
    assert_eq!(
        entry(&s, "services", "k8s-ingresses")["members"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The page and `outpost status` show it too.
    let (_, _, page) = http_get(&agent.api("/"), &[]);
    assert!(
        page.contains("data-provider=\"k8s\" data-state=\"stale\""),
        "{page}"
    );
    let out = agent.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("k8s "))
        .unwrap_or_else(|| panic!("no provider line in:\n{text}"));
    assert!(line.contains("STALE") && line.contains("500"), "{line}");
    let (_, _, metrics) = http_get(&agent.api("/metrics"), &[]);
    assert!(
        metrics.contains("outpost_provider_stale{provider=\"k8s\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outpost_provider_objects{provider=\"k8s\"} 21"),
        "{metrics}"
    );
    cluster.lock().unwrap().fail = false;
    agent.wait_status("provider ok again", WAIT, |s| {
        s["providers"][0]["state"] == "ok"
    });
    let errors = crate::util::schema_errors(&serde_json::to_string(&agent.status()).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn providers_hostile_answers_are_bounded_and_reported() {
    let provider = fixture("hostile-provider");
    let cases = [
        ("many", "memory limit"),
        ("deep", "cycle or deeper"),
        ("cycle", "cycle"),
        ("collide", "already used"),
        ("huge-id", "bytes"),
    ];
    let mut body = String::new();
    for (mode, _) in cases {
        body.push_str(&format!(
            "[[provider]]\nname = \"{mode}\"\nplugin = \"{provider}\"\ninterval = \"1s\"\nconfig = {{ mode = \"{mode}\" }}\n\n"
        ));
    }
    body.push_str(
        "[[kind]]\nmatch = \"example.com/Thing\"\n  [[kind.sensor]]\n  plugin = \"http\"\n  interval = \"10s\"\n  config = { url = \"{url}\" }\n",
    );
    let agent = Agent::start(&body);
    let s = agent.wait_status(
        "every hostile provider reported",
        Duration::from_secs(60),
        |s| {
            s["providers"].as_array().is_some_and(|a| {
                a.len() == cases.len() && a.iter().all(|p| p["state"] != "pending")
            })
        },
    );
    for (mode, needle) in cases {
        let p = entry(&s, "providers", mode);
        let text = p.to_string();
        // 1,000,000 objects do not fit the instance's 64 MiB: the memory
        // limit stops it before the host's object limit would.
        assert!(
            text.contains(needle) || (mode == "many" && text.contains("more than the limit")),
            "{mode}: {p}"
        );
        if mode == "many" {
            // The whole answer is refused (or the instance hit its memory
            // limit building it): nothing replaces the (empty) last set.
            assert_eq!(p["state"], "stale", "{p}");
            assert_eq!(p["objects"], 0);
        } else {
            assert_eq!(p["state"], "ok", "{p}");
            assert!(p["dropped"].as_u64().unwrap() >= 1, "{p}");
        }
    }
    // The good object of the cycle case became a sensor; the cyclic ones did not.
    let names: Vec<&str> = s["sensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cycle.good.http"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("cycle.a.")),
        "{names:?}"
    );
    assert!(names.contains(&"collide.same.http"), "{names:?}");
    // The agent still answers promptly.
    let (code, _, _) = http_get(&agent.api("/api/v1/status"), &[]);
    assert_eq!(code, 200);
}

/// A service catalog serving an inventory document with an ETag.
#[derive(Default)]
struct Catalog {
    objects: Vec<Value>,
    version: u32,
}

fn catalog_server(catalog: Arc<Mutex<Catalog>>) -> HttpServer {
    HttpServer::start(move |req| {
        let c = catalog.lock().unwrap();
        if req.header("x-api-key") != Some("k3y") {
            return Reply::new(403, "forbidden");
        }
        let etag = format!("\"v{}\"", c.version);
        if req.header("if-none-match") == Some(etag.as_str()) {
            return Reply::new(304, "").header("etag", &etag);
        }
        Reply::json(&json!({ "objects": c.objects })).header("etag", &etag)
    })
}

#[test]
fn providers_http_inventory_objects_follow_the_catalog_and_unchanged_answers_cost_nothing() {
    let target = Target::start(Mode::Up);
    let host = |path: &str| format!("{}{path}", target.url());
    let catalog = Arc::new(Mutex::new(Catalog::default()));
    {
        let mut c = catalog.lock().unwrap();
        for (id, dc) in [("db-1", "eu"), ("db-2", "eu"), ("web-1", "us")] {
            c.objects.push(json!({
                "id": id, "name": format!("{id} in {dc}"),
                "labels": {"dc": dc},
                "attributes": {"url": host(id), "port": 8080},
            }));
        }
    }
    let server = catalog_server(catalog.clone());
    let agent = Agent::start(&format!(
        r#"
[[provider]]
name = "cmdb"
plugin = "http-inventory"
interval = "300ms"
config = {{ url = "{url}", headers = {{ x-api-key = "k3y" }}, kind = "example.com/Host" }}

[[kind]]
match = "example.com/Host"
  [[kind.sensor]]
  name = "health"
  plugin = "http"
  interval = "500ms"
  config = {{ url = "{{url}}" }}
  [[kind.system]]
  by = "label:dc"
  name = "dc-{{value}}"
  rule = "all"
"#,
        url = server.url("/inventory")
    ));
    let names = |s: &Value| -> Vec<String> {
        let mut v: Vec<String> = s["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["labels"]["provider"] == "cmdb")
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let s = agent.wait_status("three hosts up", WAIT, |s| {
        names(s).len() == 3
            && names(s)
                .iter()
                .all(|n| entry(s, "sensors", n)["state"] == "up")
            && entry(s, "systems", "dc-eu")["state"] == "up"
    });
    assert_eq!(
        names(&s),
        ["cmdb.db-1.health", "cmdb.db-2.health", "cmdb.web-1.health"]
    );
    assert_eq!(
        entry(&s, "systems", "dc-eu")["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s["providers"][0]["state"], "ok");

    // Unchanged: later discoveries carry the ETag and get 304.
    let not_modified = |server: &HttpServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.header("if-none-match") == Some("\"v0\""))
            .count()
    };
    agent.wait_until("three conditional requests answered 304", WAIT, || {
        not_modified(&server) >= 3
    });

    // The catalog changes: one host leaves, one arrives.
    {
        let mut c = catalog.lock().unwrap();
        c.objects.remove(0);
        c.objects.push(
            json!({"id": "web-2", "labels": {"dc": "us"}, "attributes": {"url": host("web-2")}}),
        );
        c.version = 1;
    }
    let s = agent.wait_status("catalog change reflected", WAIT, |s| {
        names(s) == ["cmdb.db-2.health", "cmdb.web-1.health", "cmdb.web-2.health"]
    });
    assert_eq!(
        entry(&s, "systems", "dc-us")["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A broken document keeps the last good set and says which object.
    {
        let mut c = catalog.lock().unwrap();
        c.objects.push(json!({"name": "no id"}));
        c.version = 2;
    }
    let s = agent.wait_status("provider stale", WAIT, |s| {
        s["providers"][0]["state"] == "stale"
    });
    assert_eq!(names(&s).len(), 3);
    let err = s["providers"][0]["error"].as_str().unwrap();
    assert!(err.contains("object 3") && err.contains("`id`"), "{err}");
}

#[test]
fn providers_file_objects_are_reread_when_the_file_changes() {
    let target = Target::start(Mode::Up);
    let yaml = |ids: &[&str]| {
        let mut s = String::from("objects:\n");
        for id in ids {
            s.push_str(&format!(
                "  - id: {id}\n    labels: {{team: ops}}\n    attributes:\n      url: \"{}{id}\"\n",
                target.url()
            ));
        }
        s
    };
    let mut agent = Agent::new("file");
    let hosts = agent.write_file("hosts.yaml", &yaml(&["a", "b"]));
    agent.launch(
        r#"
[[provider]]
name = "hosts"
plugin = "file"
interval = "200ms"
config = { path = "hosts.yaml", kind = "example.com/Host" }

[[kind]]
match = "example.com/Host"
  [[kind.sensor]]
  name = "up"
  plugin = "http"
  interval = "300ms"
  config = { url = "{url}" }
"#,
    );
    let names = |s: &Value| -> Vec<String> {
        let mut v: Vec<String> = s["sensors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["labels"]["provider"] == "hosts")
            .map(|x| x["name"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    agent.wait_status("two hosts up", WAIT, |s| {
        names(s) == ["hosts.a.up", "hosts.b.up"]
            && names(s)
                .iter()
                .all(|n| entry(s, "sensors", n)["state"] == "up")
    });

    // Edited in place (as an operator would): reflected within an interval.
    std::fs::write(&hosts, yaml(&["b", "c"])).unwrap();
    agent.wait_status("the edit is reflected", WAIT, |s| {
        names(s) == ["hosts.b.up", "hosts.c.up"]
    });

    // A broken edit keeps the last good set and says where.
    std::fs::write(&hosts, "objects:\n  - id: [\n").unwrap();
    let s = agent.wait_status("stale on a broken file", WAIT, |s| {
        s["providers"][0]["state"] == "stale"
    });
    assert_eq!(names(&s), ["hosts.b.up", "hosts.c.up"]);
    let err = s["providers"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("hosts.yaml") && err.contains("not YAML"),
        "{err}"
    );

    // Replaced by something that is not a regular file: refused, not read.
    std::fs::remove_file(&hosts).unwrap();
    let fifo = std::ffi::CString::new(hosts.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    agent.wait_status("a FIFO is refused", WAIT, |s| {
        s["providers"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a regular file"))
    });
    std::fs::remove_file(&hosts).unwrap();
    std::fs::write(&hosts, yaml(&["d"])).unwrap();
    agent.wait_status("fixed again", WAIT, |s| {
        s["providers"][0]["state"] == "ok" && names(s) == ["hosts.d.up"]
    });
}

#[test]
fn providers_file_config_errors_name_file_line_and_key() {
    let a = Agent::new("bad");
    a.write_config(
        "\n[[provider]]\nname = \"hosts\"\nplugin = \"file\"\nconfig = { path = \"hosts\", kind = \"example.com/Host\" }\n",
    );
    let out = a.cli(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("outpost.toml:11"), "{err}");
    assert!(err.contains("config.format"), "{err}");
}

#[test]
fn providers_a_vanished_objects_open_incident_resolves_as_removed_not_recovered() {
    let down = Target::start(Mode::Error);
    let rx = Receiver::start();
    let mut agent = Agent::new("removed");
    let object = format!(
        "[{{\"id\": \"api\", \"kind\": \"example.com/Host\", \"attributes\": {{\"url\": \"{}\"}}}}]",
        down.url()
    );
    let hosts = agent.write_file("hosts.json", &object);
    agent.launch(&format!(
        r#"
[[provider]]
name = "hosts"
plugin = "file"
interval = "200ms"
config = {{ path = "hosts.json" }}

[[kind]]
match = "example.com/Host"
  [[kind.sensor]]
  name = "up"
  plugin = "http"
  interval = "200ms"
  fail_after = 1
  config = {{ url = "{{url}}" }}

[[notifier]]
name = "pager"
plugin = "webhook"
config = {{ url = "{rx}" }}

[[escalation]]
name = "all"
targets = ["*"]
alert_after = "0s"
notify_on_resolve = true
[[escalation.level]]
notify = ["pager"]
"#,
        rx = rx.url("/hook")
    ));
    let opened = rx.wait_for("/hook", 1, WAIT, &agent);
    assert_eq!(opened[0].json()["event"], "opened");
    assert_eq!(opened[0].json()["target"], "hosts.api.up");

    // The object leaves the inventory while its target is still down.
    std::fs::write(&hosts, "[]").unwrap();
    let got = rx.wait_for("/hook", 2, WAIT, &agent);
    let resolved = got[1].json();
    assert_eq!(resolved["event"], "resolved", "{resolved}");
    let message = resolved["message"].as_str().unwrap();
    assert!(
        message.contains("removed") && message.contains("not recovered"),
        "{message}"
    );
    let out = agent.cli(&["incidents", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let inc = &list[0];
    assert_eq!(inc["state"], "resolved", "{inc}");
    let kinds: Vec<&str> = inc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"removed") && !kinds.contains(&"recovered"),
        "{kinds:?}"
    );
}
