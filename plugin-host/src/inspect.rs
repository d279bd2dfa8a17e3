//! What a file is, read from its bytes before anything is compiled: not
//! WebAssembly, a core module, or a component with its top-level exports,
//! whether it uses the component model's async ABI, and how much linear
//! memory it needs at start.
//!
//! This lets the host refuse a file with a one-line reason (and check the
//! memory floor against the configured limit) in milliseconds, instead of
//! after a Cranelift compile of tens of seconds, or with wasmtime's
//! message about the pooling allocator. It only reads; it must not know
//! about engines, caches or instances.

use wasmparser::{CanonicalFunction, CanonicalOption, Encoding, Parser, Payload};

/// The size of a WebAssembly page (memories without a custom page size).
const WASM_PAGE: u64 = 64 << 10;

/// What a component looks like from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Names of the component's top-level exports
    /// (`outpost:plugin/sensor@0.1.1`).
    pub exports: Vec<String>,
    /// Whether any function is lifted or lowered with the async ABI, or
    /// any async built-in (tasks, streams, futures, waitables) is used.
    pub uses_async: bool,
    /// The largest initial size of a linear memory one of its core modules
    /// defines: the memory an instance needs before it runs a line.
    pub initial_memory_bytes: u64,
}

/// Why a file is not a component at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAComponent {
    /// No WebAssembly magic number.
    #[error(
        "it does not start with the WebAssembly magic number (a component begins with `\\0asm`)"
    )]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "it is a core WebAssembly module, not a component; a plugin is a component targeting a world of outpost:plugin@0.1 (build for wasm32-wasip2, with componentize-py or jco, or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The bytes do not parse.
    #[error("it does not parse: {0}")]
    Malformed(String),
}

/// Reads what `bytes` is.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, NotAComponent> {
    if bytes.len() < 8 || bytes[..4] != *b"\0asm" {
        return Err(NotAComponent::NotWasm);
    }
    let mut out = Inspection::default();
    // Nesting depth: 1 is the outer component; nested modules and
    // components are deeper.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| NotAComponent::Malformed(e.message().to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(NotAComponent::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(s) if depth == 1 => {
                for e in s {
                    let e = e.map_err(|e| NotAComponent::Malformed(e.message().to_string()))?;
                    out.exports.push(e.name.name.to_string());
                }
            }
            Payload::ComponentCanonicalSection(s) => {
                for f in s {
                    let f = f.map_err(|e| NotAComponent::Malformed(e.message().to_string()))?;
                    out.uses_async |= is_async(&f);
                }
            }
            Payload::MemorySection(s) => {
                for m in s {
                    let m = m.map_err(|e| NotAComponent::Malformed(e.message().to_string()))?;
                    let page = m.page_size_log2.map(|l| 1u64 << l).unwrap_or(WASM_PAGE);
                    out.initial_memory_bytes =
                        out.initial_memory_bytes.max(m.initial.saturating_mul(page));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a canonical function belongs to the async ABI.
fn is_async(f: &CanonicalFunction) -> bool {
    match f {
        CanonicalFunction::Lift { options, .. } | CanonicalFunction::Lower { options, .. } => {
            options
                .iter()
                .any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
        }
        CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. }
        | CanonicalFunction::ThreadSpawnRef { .. }
        | CanonicalFunction::ThreadSpawnIndirect { .. }
        | CanonicalFunction::ThreadAvailableParallelism => false,
        // Tasks, subtasks, streams, futures, waitables, error contexts,
        // backpressure, cooperative threads: all async machinery.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_component() {
        assert_eq!(inspect(b"hello world"), Err(NotAComponent::NotWasm));
        assert_eq!(inspect(b""), Err(NotAComponent::NotWasm));
        // The smallest core module: magic and version 1.
        assert_eq!(inspect(b"\0asm\x01\0\0\0"), Err(NotAComponent::CoreModule));
        // A component header followed by garbage.
        assert!(matches!(
            inspect(b"\0asm\x0d\0\x01\0\xff\xff\xff"),
            Err(NotAComponent::Malformed(_))
        ));
    }

    #[test]
    fn reads_exports_and_memory_of_the_http_plugin() {
        let wasm = crate::builtin::find("http").unwrap().wasm;
        let i = inspect(wasm).unwrap();
        assert!(
            i.exports
                .iter()
                .any(|e| e == &format!("outpost:plugin/sensor@{}", crate::WIT_VERSION)),
            "{:?}",
            i.exports
        );
        assert!(!i.uses_async);
        // A Rust plugin starts with about a megabyte (stack + data).
        assert!(
            i.initial_memory_bytes >= WASM_PAGE && i.initial_memory_bytes < (8 << 20),
            "{}",
            i.initial_memory_bytes
        );
    }
}
