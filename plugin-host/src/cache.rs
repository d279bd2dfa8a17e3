//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from tens of milliseconds to
//! seconds; the agent does it once per component and engine. A cache entry
//! is named by the SHA-256 of the component bytes and the engine's
//! precompile-compatibility hash, and only files this module wrote (in a
//! directory it created) are ever deserialized: deserializing is `unsafe`
//! because a crafted file could contain arbitrary machine code.
//!
//! A miss is compiled by a child process when one is configured
//! ([`super::compiler`]), in-process otherwise or when the child fails.
//!
//! One directory serves every command (`outpost run`, `check-config`,
//! `plugin run|test|info`): entries of engines built with other settings
//! have other names, and nothing here ever deletes an entry.

use super::compiler::ChildCompiler;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    child: Option<ChildCompiler>,
}

impl ComponentCache {
    /// Uses (and creates, owner-only) `dir`; misses are compiled by
    /// `child` when given.
    pub(crate) fn new(
        engine: &Engine,
        dir: PathBuf,
        child: Option<ChildCompiler>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        Ok(Self {
            dir,
            engine_key: format!("{:016x}", h.finish()),
            child,
        })
    }

    fn path_for(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir
            .join(format!("{}-{}.cwasm", &digest[..32], self.engine_key))
    }

    /// The compiled component for `wasm`: from the cache, or compiled and
    /// stored. Returns whether it was a cache hit.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path_for(wasm);
        if path.exists()
            && let Some(c) = load(engine, &path)
        {
            return Ok((c, true));
        }
        if let Some(c) = self
            .child
            .as_ref()
            .and_then(|child| compile_in(child, engine, wasm, &path))
        {
            return Ok((c, false));
        }
        let component = Component::from_binary(engine, wasm)?;
        match store(&path, &component.serialize()?) {
            // Mapped from the file, the code is page cache the kernel can
            // drop, not anonymous memory for the process's life.
            Ok(()) => match load(engine, &path) {
                Some(mapped) => Ok((mapped, false)),
                None => Ok((component, false)),
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
                Ok((component, false))
            }
        }
    }
}

/// Has `child` compile `wasm` into the entry `path` and maps it; `None`
/// (with a warning saying why) when that did not work out.
fn compile_in(
    child: &ChildCompiler,
    engine: &Engine,
    wasm: &[u8],
    path: &Path,
) -> Option<Component> {
    let tmp = tmp_path(path);
    let started = std::time::Instant::now();
    if let Err(e) = child.compile(wasm, &tmp) {
        tracing::warn!(error = %e, "compiling the component in a child process failed; compiling it here");
        return None;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    let c = load(engine, path)?;
    tracing::info!(path = %path.display(), ms = started.elapsed().as_millis() as u64, "component compiled in a child process and cached");
    Some(c)
}

/// Maps a cache entry; `None` when it is unusable here. The entry is left
/// in place: what makes it unusable may be this engine's settings (a
/// memory limit below the component's initial memory) rather than the
/// file, and another engine (the agent, `plugin run` with other limits)
/// may use it. A miss that compiles writes a fresh entry over it
/// atomically, so a truly broken file does not stay.
fn load(engine: &Engine, path: &Path) -> Option<Component> {
    // SAFETY: the file lives in our owner-only cache directory, is named by
    // the content hash of the component and the engine's compatibility
    // hash, and was written by `store` below from `Component::serialize`,
    // or by our own executable's `compile-plugin` from the same engine
    // settings. wasmtime additionally checks its header and engine
    // compatibility before use.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "compiled-component cache entry unusable by this engine; compiling again");
            None
        }
    }
}

/// Where an entry is written before it is renamed to `path`.
fn tmp_path(path: &Path) -> PathBuf {
    path.with_extension(format!("tmp{}", std::process::id()))
}

/// Writes atomically (temporary file + rename) so a crash never leaves a
/// half-written entry under the final name.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostConfig, builtin, engine_config};

    fn cache_with(child: &str) -> (tempfile::TempDir, Engine, ComponentCache) {
        let config = HostConfig::default();
        let engine = Engine::new(&engine_config(&config)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let child = ChildCompiler::new(PathBuf::from(child), &config);
        let cache = ComponentCache::new(&engine, dir.path().join("c"), Some(child)).unwrap();
        (dir, engine, cache)
    }

    fn entries(cache: &ComponentCache) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&cache.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A child that cannot start, or exits without an image, costs nothing
    /// but a log line: the component is compiled here and cached, and the
    /// next load is a hit.
    #[test]
    fn a_failing_child_compiler_falls_back_to_compiling_here() {
        let wasm = builtin::BUILTINS[0].wasm;
        for exe in ["/nonexistent/outpost", "/bin/true", "/bin/false"] {
            let (_dir, engine, cache) = cache_with(exe);
            let (_, hit) = cache.load_or_compile(&engine, wasm).unwrap();
            assert!(!hit, "{exe}");
            let files = entries(&cache);
            assert_eq!(files.len(), 1, "{exe}: {files:?}");
            assert!(files[0].ends_with(".cwasm"), "{exe}: {files:?}");
            let (_, hit) = cache.load_or_compile(&engine, wasm).unwrap();
            assert!(hit, "{exe}");
        }
    }

    /// An entry an engine cannot use because of its own limits (a memory
    /// cap below the component's initial memory) is not deleted: the
    /// engine it was made for still finds it.
    #[test]
    fn an_entry_unusable_under_a_small_memory_limit_is_kept() {
        let wasm = builtin::BUILTINS[0].wasm;
        let (_dir, engine, cache) = cache_with("/nonexistent/outpost");
        cache.load_or_compile(&engine, wasm).unwrap();
        let before = entries(&cache);
        let mut small = HostConfig::default();
        small.limits.memory_bytes = 64 << 10;
        let small_engine = Engine::new(&engine_config(&small)).unwrap();
        assert!(load(&small_engine, &cache.path_for(wasm)).is_none());
        assert_eq!(entries(&cache), before);
        let (_, hit) = cache.load_or_compile(&engine, wasm).unwrap();
        assert!(hit);
    }

    /// The child builds its engine from [`EngineArgs`]: an image from an
    /// engine built that way loads into the host's engine.
    #[test]
    fn an_image_from_the_childs_engine_settings_loads_into_the_hosts_engine() {
        use crate::compiler::EngineArgs;
        let config = HostConfig {
            warm_instances: 7,
            concurrent_runs: 40,
            ..HostConfig::default()
        };
        let mut config = config;
        config.limits.memory_bytes = 16 << 20;
        let host_engine = Engine::new(&engine_config(&config)).unwrap();
        let child_config = EngineArgs::of(&config).host_config();
        let image = crate::precompile(&child_config, builtin::BUILTINS[0].wasm).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.cwasm");
        std::fs::write(&path, image).unwrap();
        assert!(load(&host_engine, &path).is_some());
    }
}
