//! The interfaces a component imports and exports, for the CNCF config's `component` field.
//!
//! Only the outermost component's own import and export names are read (for a `wasi:cli`
//! command: `wasi:cli/environment@0.2.x`, ..., `wasi:cli/run@0.2.x`); nested modules and
//! components are skipped.

use std::collections::BTreeSet;

use wasmparser::{Parser, Payload};

/// Sorted, de-duplicated import and export names of a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Parses the whole component (so a truncated or malformed one is refused).
pub fn interfaces(bytes: &[u8]) -> Result<Interfaces, String> {
    let mut imports = BTreeSet::new();
    let mut exports = BTreeSet::new();
    // Every module or component, nested or not, starts with a Version payload and ends with End.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("malformed component: {e}"))?;
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| format!("malformed component import: {e}"))?;
                    imports.insert(import.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| format!("malformed component export: {e}"))?;
                    exports.insert(export.name.full_name().into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(Interfaces {
        imports: imports.into_iter().collect(),
        exports: exports.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_names_only() {
        let wat = r#"(component
            (import "wasi:cli/stdout@0.2.0" (instance))
            (import "wasi:cli/environment@0.2.0" (instance))
            (component $inner
                (import "nested-import" (instance))
            )
            (instance $i)
            (export "wasi:cli/run@0.2.0" (instance $i))
        )"#;
        let bytes = wat::parse_str(wat).unwrap();
        let found = interfaces(&bytes).unwrap();
        assert_eq!(
            found.imports,
            ["wasi:cli/environment@0.2.0", "wasi:cli/stdout@0.2.0"]
        );
        assert_eq!(found.exports, ["wasi:cli/run@0.2.0"]);
    }
}
