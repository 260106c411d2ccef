//! Calling a core module's entry: `_start` for a command, or an export named by `path#func`
//! with its parameters from the command line (as `wasmtime run --invoke`).

use std::io::Write;

use wasmtime::{Store, Val, ValType};

use crate::p1::P1State;

/// Runs the instantiated module. Without `#func` this is a WASI command: `_start` takes
/// no parameters and the process args are the guest's argv. With `#func`, like
/// `wasmtime run --invoke`, parameters come from the process args after argv[0] and results
/// are printed one per line.
pub(crate) fn call_module(
    store: &mut Store<P1State>,
    instance: &wasmtime::Instance,
    func: Option<&str>,
    args: &[String],
) -> wasmtime::Result<()> {
    let Some(func) = func else {
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        return start.call(&mut *store, ());
    };
    if let Some(init) = instance.get_func(&mut *store, "_initialize") {
        init.call(&mut *store, &[], &mut [])?;
    }
    let f = instance
        .get_func(&mut *store, func)
        .ok_or_else(|| wasmtime::format_err!("export {func:?} not found"))?;
    let ty = f.ty(&*store);
    let params = parse_params(
        &ty.params().collect::<Vec<_>>(),
        args.get(1..).unwrap_or_default(),
    )?;
    let mut results = vec![Val::I32(0); ty.results().len()];
    f.call(&mut *store, &params, &mut results)?;
    let mut out = std::io::stdout().lock();
    for r in results {
        match r {
            Val::I32(v) => writeln!(out, "{v}")?,
            Val::I64(v) => writeln!(out, "{v}")?,
            Val::F32(v) => writeln!(out, "{}", f32::from_bits(v))?,
            Val::F64(v) => writeln!(out, "{}", f64::from_bits(v))?,
            other => writeln!(out, "{other:?}")?,
        }
    }
    out.flush()?;
    Ok(())
}

/// Parses invoke arguments for an export's parameter types.
pub fn parse_params(types: &[ValType], args: &[String]) -> wasmtime::Result<Vec<Val>> {
    if types.len() != args.len() {
        wasmtime::bail!(
            "the export takes {} argument(s), {} given",
            types.len(),
            args.len()
        );
    }
    types
        .iter()
        .zip(args)
        .map(|(t, a)| {
            let bad = || wasmtime::format_err!("argument {a:?} is not a valid {t}");
            Ok(match t {
                ValType::I32 => Val::I32(a.parse().map_err(|_| bad())?),
                ValType::I64 => Val::I64(a.parse().map_err(|_| bad())?),
                ValType::F32 => Val::F32(a.parse::<f32>().map_err(|_| bad())?.to_bits()),
                ValType::F64 => Val::F64(a.parse::<f64>().map_err(|_| bad())?.to_bits()),
                _ => wasmtime::bail!("parameter type {t} is not supported on the command line"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_invoke_params() {
        let v = parse_params(&[ValType::I32, ValType::F64], &["7".into(), "1.5".into()]).unwrap();
        assert!(matches!(v[0], Val::I32(7)));
        assert!(parse_params(&[ValType::I32], &[]).is_err());
        assert!(parse_params(&[ValType::I32], &["x".into()]).is_err());
    }
}
