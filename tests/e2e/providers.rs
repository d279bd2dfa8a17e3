//! Providers: the built-in `kubernetes` provider against a loopback
//! server that answers the documented Kubernetes list format
//! (`GET /apis/networking.k8s.io/v1/ingresses` with `limit`/`continue`
//! pagination). No real cluster runs here; the ingress hosts are
//! `127.0.0.1:<port>` of a loopback target so the generated http sensors
//! have something to check.

use crate::util::http_server::{HttpServer, Reply};
use crate::util::{Agent, Mode, Target, entry, fixture, http_get};
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
    // Its next checks add to the same history (the writer batches: poll).
    agent.wait_until(
        &format!("history of {ing0} grows past {before} results"),
        WAIT,
        || stored(&ing0) > before,
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
