//! The status page in a real headless browser (Debian's chromium): the
//! rendered DOM shows the services by category with their states and
//! reasons, and a 90-day uptime bar each; a screenshot is written to the
//! test's output directory.

use crate::util::{Agent, Mode, Target, entry, http_get};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where this test leaves its screenshot: `target/test-output/`.
fn output_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-output")
        .join("status_page");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chromium(args: &[&str], url: &str, profile: &Path) -> std::process::Output {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("{CHROMIUM} (installed by scripts/install-test-deps): {e}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_status_page_renders_services_states_and_uptime_bars_in_chromium() {
    let (ok, bad) = (Target::start(Mode::Up), Target::start(Mode::Error));
    let sensor = |name: &str, url: &str| {
        format!(
            "[[sensor]]\nname = \"{name}\"\nplugin = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfail_after = 1\nconfig = {{ url = \"{url}\" }}\n"
        )
    };
    let a = Agent::start(&format!(
        "{}{}[[service]]\nname = \"checkout\"\ncategory = \"Shop\"\ndescription = \"Pay <for> an order\"\ndepends_on = [\"db\"]\n\
         [[service]]\nname = \"search\"\ncategory = \"Catalog\"\ndepends_on = [\"web\"]\n",
        sensor("db", &bad.url()),
        sensor("web", &ok.url())
    ));
    a.wait_status("states settled", Duration::from_secs(20), |s| {
        entry(s, "services", "checkout")["state"] == "down"
            && entry(s, "services", "search")["state"] == "up"
    });
    // Today's rollup must exist for a coloured day: the store commits in
    // batches, so wait until the page shows both colours.
    let (code, head, html) = a.wait_some("today's days coloured", Duration::from_secs(20), || {
        let (code, head, html) = http_get(&a.api("/"), &[]);
        (html.contains("class=\"day bad\"") && html.contains("class=\"day good\""))
            .then_some((code, head, html))
    });
    assert_eq!(code, 200);
    assert!(head.contains("text/html"));
    // Nothing external: no script, no remote URL.
    assert!(!html.contains("<script"), "the page has a script");
    for attr in ["src=", "href=", "url("] {
        assert!(!html.contains(attr), "the page loads something ({attr})");
    }

    let profile = tempfile::tempdir().unwrap();
    let out = chromium(&["--dump-dom"], &a.api("/"), profile.path());
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("data-category=\"Shop\""), "{dom}");
    assert!(dom.contains("data-category=\"Catalog\""));
    assert!(
        dom.contains("data-service=\"checkout\" data-state=\"down\""),
        "{dom}"
    );
    assert!(dom.contains("data-service=\"search\" data-state=\"up\""));
    assert!(
        dom.contains("checkout is down because sensor db is down"),
        "{dom}"
    );
    // Escaped, not interpreted.
    assert!(dom.contains("Pay &lt;for&gt; an order"));
    // One 90-day bar per service and per sensor, today's day coloured.
    let bars = dom.matches("class=\"uptime\" data-days=\"90\"").count();
    assert_eq!(bars, 4, "{dom}");
    let days = dom.matches("class=\"day ").count();
    assert_eq!(days, 4 * 90);
    assert!(
        dom.contains("class=\"day bad\""),
        "no red day for the failing sensor:\n{dom}"
    );
    assert!(
        dom.contains("class=\"day good\""),
        "no green day for the working one:\n{dom}"
    );

    let shot = output_dir().join("status.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1400",
        ],
        &a.api("/"),
        profile.path(),
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "{} bytes",
        png.len()
    );
}
