//! A corpus of broken configurations (`tests/configs/broken/*.toml`): each
//! must give a one-line error naming the file and line, say what is wrong,
//! and exit with code 2. Each file states its expectation in its first
//! lines: `# line: N` and `# expect: <text>`.

use crate::util;

#[test]
fn every_broken_config_gets_a_located_error_and_exit_2() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs/broken");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "the corpus shrank to {} files",
        files.len()
    );
    let mut failures = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let line: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("# line: "))
            .expect("# line:")
            .trim()
            .parse()
            .unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .expect("# expect:")
            .trim()
            .to_string();
        let out = util::outpost()
            .args(["check-config", "-c"])
            .arg(f)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let located = format!("{}:{line}:", f.display());
        let ok = out.status.code() == Some(2)
            && stderr.starts_with("error: ")
            && stderr.contains(&located)
            && stderr.contains(&expect)
            && stderr.lines().count() == 1;
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, wanted `{located}` and `{expect}` in one line, got: {stderr}",
                f.display(),
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} configs:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_example_config_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/outpost.toml");
    let out = util::outpost()
        .args(["check-config", "-c"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 sensor(s)"));
}
