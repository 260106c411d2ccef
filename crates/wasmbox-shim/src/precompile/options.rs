//! The `precompile` action's command line.

/// containerd's gRPC socket unless `--address` says otherwise.
pub const DEFAULT_ADDRESS: &str = "/run/containerd/containerd.sock";

pub(super) const USAGE: &str =
    "usage: containerd-shim-wasmbox-v1 precompile [--address SOCKET] [--namespace NS] IMAGE...
       containerd-shim-wasmbox-v1 precompile --watch [--address SOCKET] [--namespace NS]...
Compiles the wasm of containerd images into wasmbox's compile cache (WASMBOX_CACHE_DIR, default
/var/lib/wasmbox/cache): the named images (namespace `default` unless given), or with --watch
every wasm image on the node and each one pulled later (all namespaces unless given).";

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Options {
    pub(super) address: String,
    pub(super) namespaces: Vec<String>,
    pub(super) watch: bool,
    pub(super) images: Vec<String>,
}

pub(super) fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        address: DEFAULT_ADDRESS.to_string(),
        namespaces: Vec::new(),
        watch: false,
        images: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--address" | "-a" => o.address = value(arg)?,
            "--namespace" | "-n" => o.namespaces.push(value(arg)?),
            "--watch" => o.watch = true,
            "--help" | "-h" => return Err(String::new()),
            a if a.starts_with('-') => return Err(format!("unknown flag {a}")),
            image => o.images.push(image.to_string()),
        }
    }
    match (o.watch, o.images.is_empty(), o.namespaces.len()) {
        (true, false, _) => Err("--watch takes no image names".into()),
        (false, true, _) => Err("name at least one image, or --watch".into()),
        (false, false, n) if n > 1 => Err("name one --namespace for the images".into()),
        _ => Ok(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options() {
        let o = parse(&args("-n k8s.io docker.io/x:1 y:2")).unwrap();
        assert_eq!(o.namespaces, ["k8s.io"]);
        assert_eq!(o.images, ["docker.io/x:1", "y:2"]);
        assert_eq!(o.address, DEFAULT_ADDRESS);
        let o = parse(&args("--watch --address /s.sock -n a -n b")).unwrap();
        assert!(o.watch);
        assert_eq!((o.address.as_str(), o.namespaces.len()), ("/s.sock", 2));
        assert!(parse(&args("--watch x:1")).is_err());
        assert!(parse(&args("")).is_err());
        assert!(parse(&args("-n a -n b x:1")).is_err());
        assert!(parse(&args("--address")).is_err());
        assert!(parse(&args("--bogus x")).is_err());
    }
}
