//! The plugin host as a library: a faulty plugin is contained while the
//! same host keeps serving other runs, and warm instances are reused only
//! within one sensor and recycled after a fault.

use crate::util::fixture;
use outpost_plugin_host::{HostConfig, NetPolicy, PluginHost, Status};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn host() -> PluginHost {
    PluginHost::new(HostConfig {
        cache_dir: Some(crate::util::shared_cache_dir()),
        ..HostConfig::default()
    })
    .unwrap()
}

/// A host that keeps instances warm between runs (not the default: every
/// run gets a fresh instance unless `warm_instances` is raised).
fn warm_host() -> PluginHost {
    PluginHost::new(HostConfig {
        cache_dir: Some(crate::util::shared_cache_dir()),
        warm_instances: 4,
        ..HostConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_plugin_does_not_stall_other_checks() {
    let host = host();
    let plugin = host.load_spec(&fixture("hostile")).await.unwrap();
    let mut looping = plugin.instance(Arc::new(NetPolicy::deny_all()), "looping");
    let runaway = tokio::spawn(async move {
        looping
            .check_result(r#"{"mode":"loop"}"#, Duration::from_secs(3))
            .await
    });
    // Checks run back to back until the runaway hits its time limit: all of
    // them complete promptly while it spins (no sleep guesses when it
    // started; the count shows the two overlapped for its whole 3 s).
    let mut ok = plugin.instance(Arc::new(NetPolicy::deny_all()), "healthy");
    let mut done = 0;
    while !runaway.is_finished() {
        let t = Instant::now();
        let r = ok
            .check_result(r#"{"mode":"ok"}"#, Duration::from_secs(1))
            .await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a check waited {:?} behind the runaway",
            t.elapsed()
        );
        done += 1;
    }
    assert!(
        done >= 50,
        "only {done} checks completed while the runaway spun"
    );
    let r = runaway.await.unwrap();
    assert_eq!(r.status, Status::Error);
    assert!(r.message.contains("time limit"), "{}", r.message);
}

#[tokio::test]
async fn warm_instances_are_per_sensor_and_recycled_after_a_fault() {
    let host = warm_host();
    let plugin = host.load_spec(&fixture("hostile")).await.unwrap();
    let mut a = plugin.instance(Arc::new(NetPolicy::deny_all()), "a");
    let mut b = plugin.instance(Arc::new(NetPolicy::deny_all()), "b");
    let counter = r#"{"mode":"counter"}"#;
    let calls = |r: &outpost_plugin_host::CheckResult| r.metrics["calls"];
    assert_eq!(
        calls(&a.check_result(counter, Duration::from_secs(1)).await),
        1.0
    );
    assert_eq!(
        calls(&a.check_result(counter, Duration::from_secs(1)).await),
        2.0
    );
    // Another sensor never sees a's state.
    assert_eq!(
        calls(&b.check_result(counter, Duration::from_secs(1)).await),
        1.0
    );
    // A fault discards the instance: the next run starts clean.
    let r = a
        .check_result(r#"{"mode":"trap"}"#, Duration::from_secs(1))
        .await;
    assert_eq!(r.status, Status::Error);
    assert!(!a.is_warm());
    assert_eq!(
        calls(&a.check_result(counter, Duration::from_secs(1)).await),
        1.0
    );
}

#[tokio::test]
async fn fresh_instance_per_run_by_default() {
    let host = host();
    let plugin = host.load_spec(&fixture("hostile")).await.unwrap();
    let mut a = plugin.instance(Arc::new(NetPolicy::deny_all()), "a");
    for _ in 0..3 {
        let r = a
            .check_result(r#"{"mode":"counter"}"#, Duration::from_secs(1))
            .await;
        assert_eq!(r.metrics["calls"], 1.0, "state survived a run");
        assert!(!a.is_warm());
    }
    assert_eq!(host.warm_instances(), 0);
}

#[tokio::test]
async fn fresh_store_per_run_when_reuse_is_off() {
    let host = PluginHost::new(HostConfig {
        reuse_instances: false,
        ..HostConfig::default()
    })
    .unwrap();
    let plugin = host.load_spec(&fixture("hostile")).await.unwrap();
    let mut a = plugin.instance(Arc::new(NetPolicy::deny_all()), "a");
    for _ in 0..3 {
        let r = a
            .check_result(r#"{"mode":"counter"}"#, Duration::from_secs(1))
            .await;
        assert_eq!(r.metrics["calls"], 1.0);
    }
}

#[tokio::test]
async fn no_socket_of_a_run_reaches_the_next_run_of_a_warm_instance() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    let host = warm_host();
    let plugin = host.load_spec(&fixture("hostile")).await.unwrap();
    let allow = vec![outpost_plugin_host::Endpoint::parse(&format!("127.0.0.1:{port}")).unwrap()];
    let mut a = plugin.instance(Arc::new(NetPolicy::new(allow)), "keeper");
    let cfg = format!(r#"{{"mode":"sockets","port":{port},"count":3}}"#);
    for _ in 0..3 {
        let r = a.check_result(&cfg, Duration::from_secs(5)).await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.metrics["held_before"], 0.0, "{r:?}");
        assert_eq!(r.metrics["held"], 3.0, "{r:?}");
        assert!(!a.is_warm(), "an instance holding sockets was kept warm");
    }
}

#[tokio::test]
async fn an_http_check_that_cleans_up_keeps_its_instance_warm() {
    let target = crate::util::Target::start(crate::util::Mode::Up);
    let host = warm_host();
    let plugin = host.load_spec("http").await.unwrap();
    let cfg = serde_json::json!({ "url": target.url() });
    let policy = NetPolicy::granted(plugin.info(), &cfg, None, &[]);
    let mut a = plugin.instance(Arc::new(policy), "web");
    for _ in 0..3 {
        let r = a
            .check_result(&cfg.to_string(), Duration::from_secs(5))
            .await;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(a.is_warm());
    }
}
