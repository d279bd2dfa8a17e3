//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from tens of milliseconds to
//! seconds; the agent does it once per component and engine. A cache entry
//! is named by the SHA-256 of the component bytes and the engine's
//! precompile-compatibility hash, and only files this module wrote (in a
//! directory it created) are ever deserialized: deserializing is `unsafe`
//! because a crafted file could contain arbitrary machine code.

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
}

impl ComponentCache {
    /// Uses (and creates, owner-only) `dir`.
    pub fn new(engine: &Engine, dir: PathBuf) -> std::io::Result<Self> {
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
        if path.exists() {
            // SAFETY: the file lives in our owner-only cache directory, is
            // named by the content hash of the component and the engine's
            // compatibility hash, and was written by `store` below from
            // `Component::serialize`. wasmtime additionally checks its
            // header and engine compatibility before use.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled-component cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::from_binary(engine, wasm)?;
        if let Err(e) = store(&path, &component.serialize()?) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
        }
        Ok((component, false))
    }
}

/// Writes atomically (temporary file + rename) so a crash never leaves a
/// half-written entry under the final name.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
