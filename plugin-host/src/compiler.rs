//! Compiling components in a child process.
//!
//! Cranelift is only needed the first time a component meets an engine
//! (then the compiled image is cached on disk), but compiling in the agent
//! leaves its mark for the agent's whole life: the compiled code sits in
//! anonymous memory instead of a file mapping the kernel can drop, and the
//! compiler's scratch heap and worker threads fragment and outlast it. At
//! 1,000 sensors that was 27–29 MiB of RSS after a first start, against
//! 19–21 MiB after a start with a warm cache. So the long-running agent
//! hands a cache miss to a short-lived copy of itself
//! (`outpost compile-plugin`, hidden), which builds an engine from the same
//! [`HostConfig`], compiles the component read from stdin and writes the
//! image to the path it is given; the agent then maps it like any cache
//! hit.
//!
//! Any failure (the executable is gone after an upgrade, the child is
//! killed, the image does not fit the agent's engine) makes the caller
//! compile in-process as before, so this only ever saves memory. This
//! module owns the parent/child protocol; it knows nothing of the cache's
//! naming or of plugins.

use super::HostConfig;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to start the child: the executable and the engine settings it must
/// reproduce.
#[derive(Debug, Clone)]
pub(crate) struct ChildCompiler {
    exe: PathBuf,
    engine: EngineArgs,
}

/// The parts of [`HostConfig`] the engine is built from (see
/// `super::engine_config`); everything else is left at its default in the
/// child.
/// They are also the child's command-line flags (`--memory-bytes`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct EngineArgs {
    /// [`super::Limits::memory_bytes`].
    #[arg(long)]
    pub memory_bytes: usize,
    /// [`HostConfig::warm_instances`].
    #[arg(long)]
    pub warm_instances: u32,
    /// [`HostConfig::concurrent_runs`].
    #[arg(long)]
    pub concurrent_runs: u32,
}

impl EngineArgs {
    /// The engine-relevant settings of `config`.
    pub fn of(config: &HostConfig) -> Self {
        Self {
            memory_bytes: config.limits.memory_bytes,
            warm_instances: config.warm_instances,
            concurrent_runs: config.concurrent_runs,
        }
    }

    /// A host config that builds the same engine.
    pub fn host_config(self) -> HostConfig {
        let mut c = HostConfig::default();
        c.limits.memory_bytes = self.memory_bytes;
        c.warm_instances = self.warm_instances;
        c.concurrent_runs = self.concurrent_runs;
        c
    }
}

impl ChildCompiler {
    pub(crate) fn new(exe: PathBuf, config: &HostConfig) -> Self {
        Self {
            exe,
            engine: EngineArgs::of(config),
        }
    }

    /// Compiles `wasm` in a child process into `out`. The error says what
    /// went wrong (for a log line); `out` is removed on failure.
    pub(crate) fn compile(&self, wasm: &[u8], out: &Path) -> Result<(), String> {
        let r = self.compile_inner(wasm, out);
        if r.is_err() {
            let _ = std::fs::remove_file(out);
        }
        r
    }

    fn compile_inner(&self, wasm: &[u8], out: &Path) -> Result<(), String> {
        let e = self.engine;
        let mut child = Command::new(&self.exe)
            .arg("compile-plugin")
            .arg("--out")
            .arg(out)
            .args(["--memory-bytes", &e.memory_bytes.to_string()])
            .args(["--warm-instances", &e.warm_instances.to_string()])
            .args(["--concurrent-runs", &e.concurrent_runs.to_string()])
            // Nothing but errors: the child's stderr becomes our message.
            .env("OUTPOST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        // The child reads all of stdin before it writes anything, so
        // writing first cannot deadlock on a full stderr pipe.
        let sent = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(wasm)
            .map_err(|e| format!("cannot send the component: {e}"));
        let output = child
            .wait_with_output()
            .map_err(|e| format!("waiting for the compiler: {e}"))?;
        if !output.status.success() {
            let msg = String::from_utf8_lossy(&output.stderr);
            return Err(format!("{} ({})", msg.trim(), output.status));
        }
        sent?;
        match std::fs::metadata(out) {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => Err(format!(
                "{} exited without writing {}",
                self.exe.display(),
                out.display()
            )),
        }
    }
}

/// The child's side (`outpost compile-plugin`): reads a component from
/// stdin, compiles it for the engine `engine` describes and writes the
/// image to `out`.
pub fn child_main(engine: EngineArgs, out: &Path) -> anyhow::Result<()> {
    let mut wasm = Vec::new();
    std::io::stdin().read_to_end(&mut wasm)?;
    let image = super::precompile(&engine.host_config(), &wasm)?;
    std::fs::write(out, image)?;
    Ok(())
}
