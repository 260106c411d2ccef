//! The three layers (defaults, the operator's file, the annotations) resolved into one plain
//! [`Policy`] per container.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::{Default_, OperatorConfig, PolicyError};
use super::egress::{Egress, EgressLayer, EgressRule};
use super::grants::{parse_preopens, Listen, Preopens};
use super::keys::*;

/// Everything the capability layers grant a guest, beyond the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub preopens: Preopens,
    /// The guest is ended after this long (exit status [`TIMEOUT_EXIT`]).
    pub timeout: Option<Duration>,
    pub egress: Egress,
    /// The sockets the container declares it listens on.
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// Whether binding what `listen` does not declare is allowed (the operator's choice).
    #[serde(default = "yes")]
    pub bind_undeclared: bool,
    /// Where a `wasi:http/proxy` component is served ([`DEFAULT_HTTP`] unless annotated).
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// A request's time limit (504 after it).
    #[serde(default = "default_http_timeout")]
    pub http_timeout: Duration,
    /// Handlers running at once; more requests wait. None: [`HTTP_CONCURRENCY_PER_CORE`] per core.
    #[serde(default)]
    pub http_max_concurrency: Option<usize>,
    /// The operator's cap on handlers running at once (bounds the per-core default too).
    #[serde(default)]
    pub http_max_concurrency_cap: Option<usize>,
    /// A line per request on the container's stderr.
    #[serde(default)]
    pub http_access_log: bool,
    /// What the server keeps of idle and slow connections.
    #[serde(default)]
    pub http_connections: HttpConnections,
    /// How instances of a WASI 0.3 handler are shared by requests.
    #[serde(default)]
    pub http_instances: HttpInstances,
}

/// The HTTP server's hold on connections that are not serving a request: idle keep-alive
/// ones, and ones whose request head is still arriving (or never will).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpConnections {
    /// A request head must be complete this long after its first byte.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long without one.
    pub idle_timeout: Duration,
    /// Open connections at most; at the bound the one waiting longest for a request goes.
    pub max_connections: usize,
}

impl Default for HttpConnections {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
        }
    }
}

/// How a WASI 0.3 handler's instances serve requests, as `wasmtime serve` does: each instance
/// takes several requests at once and a number in turn, then is dropped. A 0.2 handler gets a
/// fresh instance per request whatever these say (its calls cannot overlap, and it was not
/// built to keep state between requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInstances {
    /// Requests one instance serves at once.
    pub concurrency: usize,
    /// Requests one instance serves before it is dropped.
    pub reuse: usize,
    /// An instance with no request is dropped after this long.
    pub idle_timeout: Duration,
    /// Live instances at most (None: as many as requests run at once).
    pub max: Option<usize>,
}

impl Default for HttpInstances {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_HTTP_INSTANCE_CONCURRENCY,
            reuse: DEFAULT_HTTP_INSTANCE_REUSE,
            idle_timeout: DEFAULT_HTTP_INSTANCE_IDLE_TIMEOUT,
            max: None,
        }
    }
}

fn default_http_timeout() -> Duration {
    DEFAULT_HTTP_TIMEOUT
}

fn default_http() -> SocketAddr {
    DEFAULT_HTTP
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            preopens: Preopens::default(),
            timeout: None,
            egress: Egress::default(),
            listen: Vec::new(),
            bind_undeclared: true,
            http: DEFAULT_HTTP,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            http_max_concurrency: None,
            http_max_concurrency_cap: None,
            http_access_log: false,
            http_connections: HttpConnections::default(),
            http_instances: HttpInstances::default(),
        }
    }
}

impl Policy {
    /// Handlers that may run at once on a node with `cores` cores.
    pub fn http_concurrency(&self, cores: usize) -> usize {
        let default = cores.max(1) * HTTP_CONCURRENCY_PER_CORE;
        let default = self
            .http_max_concurrency_cap
            .map_or(default, |cap| default.min(cap));
        self.http_max_concurrency.unwrap_or(default)
    }

    /// None when a component may bind `addr`, else why not. Port 0 (an ephemeral port, also
    /// the implicit bind of a connect) is always allowed: it is not listening on anything
    /// chosen.
    pub fn bind_denied(&self, addr: &SocketAddr) -> Option<String> {
        if self.bind_undeclared || addr.port() == 0 || self.listen.iter().any(|l| l.covers(addr)) {
            return None;
        }
        Some(format!(
            "not declared in {LISTEN} (the operator's listen.bind_undeclared is false)"
        ))
    }

    /// The policy for a container: `config` (None: no operator file) read from
    /// `config_source`, narrowed by the spec's `annotations`.
    pub fn new(
        config: Option<&OperatorConfig>,
        config_source: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, PolicyError> {
        for key in annotations.keys().filter(|k| k.starts_with(PREFIX)) {
            if !KNOWN.contains(&key.as_str()) {
                return Err(PolicyError::Annotation {
                    key: key.clone(),
                    value: annotations[key].clone(),
                    message: format!("unknown wasmbox annotation (known: {})", KNOWN.join(", ")),
                });
            }
        }
        let bad = |key: &str, message: String| PolicyError::Annotation {
            key: key.to_string(),
            value: annotations.get(key).cloned().unwrap_or_default(),
            message,
        };
        let config_err = |message: String| PolicyError::Config {
            source_name: config_source.to_string(),
            message,
        };
        let default = OperatorConfig::default();
        let config = config.unwrap_or(&default);

        let preopens = match annotations.get(PREOPENS) {
            None => Preopens::Root,
            Some(v) => parse_preopens(v).map_err(|m| bad(PREOPENS, m))?,
        };

        // A duration of the file, its key in the error.
        let config_duration = |value: &Option<String>, key: &str| {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|m| config_err(format!("{key}: {m}")))
        };
        let max = config_duration(&config.limits.max_timeout, "limits.max_timeout")?;
        let default_timeout =
            config_duration(&config.limits.default_timeout, "limits.default_timeout")?;
        let timeout = match annotations.get(TIMEOUT) {
            Some(v) => {
                let t = parse_duration(v).map_err(|m| bad(TIMEOUT, m))?;
                if let Some(max) = max.filter(|m| t > *m) {
                    return Err(bad(
                        TIMEOUT,
                        format!(
                            "longer than limits.max_timeout ({}) in {config_source}",
                            show_duration(max)
                        ),
                    ));
                }
                Some(t)
            }
            None => match (default_timeout, max) {
                (Some(d), Some(m)) => Some(d.min(m)),
                (d, m) => d.or(m),
            },
        };

        let mut egress = Egress::default();
        if config.egress.default == Default_::Deny {
            let rules = parse_rules(&config.egress.allow).map_err(config_err)?;
            egress.layers.push(EgressLayer {
                source: format!("{config_source} (egress.default = \"deny\")"),
                rules,
            });
        }
        if let Some(v) = annotations.get(EGRESS) {
            let list: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let rules = if v.trim() == "none" {
                Vec::new()
            } else {
                parse_rules(&list).map_err(|m| bad(EGRESS, m))?
            };
            egress.layers.push(EgressLayer {
                source: format!("annotation {EGRESS}"),
                rules,
            });
        }
        let listen: Vec<Listen> = match annotations.get(LISTEN) {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|l| Listen::parse(l).map_err(|m| bad(LISTEN, m)))
                .collect::<Result<_, _>>()?,
        };
        if let Some(max) = config.listen.max.filter(|m| listen.len() > *m) {
            return Err(bad(
                LISTEN,
                format!(
                    "{} sockets, more than listen.max ({max}) in {config_source}",
                    listen.len()
                ),
            ));
        }
        let http_config = &config.http;
        let http = match (annotations.get(HTTP), &http_config.address) {
            (Some(v), _) => parse_http_addr(v).map_err(|m| bad(HTTP, m))?,
            (None, Some(v)) => {
                parse_http_addr(v).map_err(|m| config_err(format!("http.address: {m}")))?
            }
            (None, None) => DEFAULT_HTTP,
        };
        let max_http_timeout = config_duration(&http_config.max_timeout, "http.max_timeout")?;
        let http_timeout = match annotations.get(HTTP_TIMEOUT) {
            Some(v) => {
                let t = parse_duration(v).map_err(|m| bad(HTTP_TIMEOUT, m))?;
                if let Some(max) = max_http_timeout.filter(|m| t > *m) {
                    return Err(bad(
                        HTTP_TIMEOUT,
                        format!(
                            "longer than http.max_timeout ({}) in {config_source}",
                            show_duration(max)
                        ),
                    ));
                }
                t
            }
            None => {
                let t = config_duration(&http_config.timeout, "http.timeout")?
                    .unwrap_or(DEFAULT_HTTP_TIMEOUT);
                max_http_timeout.map_or(t, |m| t.min(m))
            }
        };
        if http_config.max_concurrency == Some(0) {
            return Err(config_err(
                "http.max_concurrency: not a whole number above 0".into(),
            ));
        }
        // A count of an annotation: a whole number above 0, at most the file's `cap_key`.
        let count = |annotation: &str,
                     cap_key: &str,
                     cap: Option<usize>|
         -> Result<Option<usize>, PolicyError> {
            let Some(v) = annotations.get(annotation) else {
                return Ok(None);
            };
            let n = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(annotation, "not a whole number above 0".into()))?;
            if let Some(max) = cap.filter(|m| n > *m) {
                return Err(bad(
                    annotation,
                    format!("more than {cap_key} ({max}) in {config_source}"),
                ));
            }
            Ok(Some(n))
        };
        let http_max_concurrency = count(
            HTTP_MAX_CONCURRENCY,
            "http.max_concurrency",
            http_config.max_concurrency,
        )?;
        let http_access_log = match annotations.get(HTTP_ACCESS_LOG).map(|v| v.trim()) {
            None => http_config.access_log,
            Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad(HTTP_ACCESS_LOG, "true or false".into())),
        };
        // A timeout of the annotation, else the file's, else the default.
        let timeout_of =
            |annotation: &str, key: &str, configured: &Option<String>, default: Duration| {
                match annotations.get(annotation) {
                    Some(v) => parse_duration(v).map_err(|m| bad(annotation, m)),
                    None => Ok(config_duration(configured, key)?.unwrap_or(default)),
                }
            };
        let header_timeout = timeout_of(
            HTTP_HEADER_TIMEOUT,
            "http.header_timeout",
            &http_config.header_timeout,
            DEFAULT_HTTP_HEADER_TIMEOUT,
        )?;
        let idle_timeout = timeout_of(
            HTTP_IDLE_TIMEOUT,
            "http.idle_timeout",
            &http_config.idle_timeout,
            DEFAULT_HTTP_IDLE_TIMEOUT,
        )?;
        // A count whose value in the file is both the default and the cap of its annotation.
        let operator_count = |annotation: &str, key: &str, configured: Option<usize>| {
            if configured == Some(0) {
                return Err(config_err(format!("{key}: not a whole number above 0")));
            }
            Ok(count(annotation, key, configured)?.or(configured))
        };
        let max_connections = operator_count(
            HTTP_MAX_CONNECTIONS,
            "http.max_connections",
            http_config.max_connections,
        )?
        .unwrap_or(DEFAULT_HTTP_MAX_CONNECTIONS);
        let http_instances = HttpInstances {
            concurrency: operator_count(
                HTTP_INSTANCE_CONCURRENCY,
                "http.instance_concurrency",
                http_config.instance_concurrency,
            )?
            .unwrap_or(DEFAULT_HTTP_INSTANCE_CONCURRENCY),
            reuse: operator_count(HTTP_INSTANCE_REUSE, "http.instance_reuse", http_config.instance_reuse)?
                .unwrap_or(DEFAULT_HTTP_INSTANCE_REUSE),
            idle_timeout: config_duration(&http_config.instance_idle_timeout, "http.instance_idle_timeout")?
                .unwrap_or(DEFAULT_HTTP_INSTANCE_IDLE_TIMEOUT),
            max: operator_count(HTTP_MAX_INSTANCES, "http.max_instances", http_config.max_instances)?,
        };
        Ok(Self {
            preopens,
            timeout,
            egress,
            listen,
            bind_undeclared: config.listen.bind_undeclared,
            http,
            http_timeout,
            http_max_concurrency,
            http_max_concurrency_cap: http_config.max_concurrency,
            http_access_log,
            http_connections: HttpConnections {
                header_timeout,
                idle_timeout,
                max_connections,
            },
            http_instances,
        })
    }
}

fn parse_rules(list: &[String]) -> Result<Vec<EgressRule>, String> {
    list.iter()
        .map(|r| EgressRule::parse(r).map_err(|m| format!("{}: {m}", quote(r))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::egress::Host;
    use crate::policy::grants::Preopen;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_what_runc_allows() {
        let p = Policy::new(None, "none", &ann(&[("io.kubernetes.cri.sandbox-id", "x")])).unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.preopens, Preopens::Root);
        assert!(p.egress.unrestricted() && p.timeout.is_none());
    }

    #[test]
    fn unknown_and_bad_annotations_are_named() {
        let e = Policy::new(None, "f", &ann(&[("wasmbox.dev/preopen", "/data")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("wasmbox.dev/preopen")
                && e.contains("unknown wasmbox annotation")
                && e.contains(PREOPENS),
            "{e}"
        );
        let e = Policy::new(None, "f", &ann(&[(TIMEOUT, "soon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("wasmbox.dev/timeout=\"soon\"") && e.contains("e.g. 500ms"),
            "{e}"
        );
        let e = Policy::new(None, "f", &ann(&[(PREOPENS, "data")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an absolute path"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(PREOPENS, "/a/../etc")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"..\""), "{e}");
        let e = Policy::new(None, "f", &ann(&[(EGRESS, "10.0.0.0/33:80")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefix length"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(EGRESS, "db:http")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a port"), "{e}");
    }

    #[test]
    fn preopens_narrow_the_tree() {
        let p = Policy::new(None, "f", &ann(&[(PREOPENS, "/data:ro, /tmp/, /./x//y")])).unwrap();
        assert_eq!(
            p.preopens,
            Preopens::Only(vec![
                Preopen {
                    path: "/data".into(),
                    read_only: true
                },
                Preopen {
                    path: "/tmp".into(),
                    read_only: false
                },
                Preopen {
                    path: "/x/y".into(),
                    read_only: false
                },
            ])
        );
        assert_eq!(
            Policy::new(None, "f", &ann(&[(PREOPENS, "none")]))
                .unwrap()
                .preopens,
            Preopens::None
        );
        assert!(Policy::new(None, "f", &ann(&[(PREOPENS, "/a,/a")])).is_err());
        assert!(Policy::new(None, "f", &ann(&[(PREOPENS, "/a:rx")])).is_err());
    }

    #[test]
    fn timeouts_are_capped_by_the_operator() {
        let config = OperatorConfig::parse(
            "[limits]\nmax_timeout = \"1m\"\ndefault_timeout = \"2m\"\n",
            "/etc/wasmbox/config.toml",
        )
        .unwrap();
        let p = Policy::new(
            Some(&config),
            "/etc/wasmbox/config.toml",
            &ann(&[(TIMEOUT, "30s")]),
        )
        .unwrap();
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
        let e = Policy::new(
            Some(&config),
            "/etc/wasmbox/config.toml",
            &ann(&[(TIMEOUT, "2m")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("limits.max_timeout (60s) in /etc/wasmbox/config.toml"),
            "{e}"
        );
        // The default never exceeds the cap.
        let p = Policy::new(Some(&config), "c", &ann(&[])).unwrap();
        assert_eq!(p.timeout, Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("0s").is_err() && parse_duration("-1s").is_err());
    }

    #[test]
    fn config_errors_name_the_file_and_key() {
        let e = OperatorConfig::parse("[egress]\ndefualt = \"deny\"\n", "/etc/wasmbox/strict.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/wasmbox/strict.toml:")
                && e.contains("defualt")
                && e.contains("default"),
            "{e}"
        );
        let e = OperatorConfig::parse("[egress]\ndefault = \"block\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("block") && e.contains("allow") && e.contains("deny"),
            "{e}"
        );
        let e = OperatorConfig::parse(
            "[egress]\ndefault = \"deny\"\nallow = [\"nope\"]\n",
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("egress.allow[0]"), "{e}");
        let e = OperatorConfig::parse("[limits]\nmax_timeout = \"forever\"\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_timeout"), "{e}");
        assert_eq!(
            OperatorConfig::parse("", "f").unwrap(),
            OperatorConfig::default()
        );
    }

    #[test]
    fn a_wasi_0_3_handlers_instances_from_file_and_annotations() {
        let p = Policy::new(None, "f", &ann(&[])).unwrap();
        assert_eq!(p.http_instances, HttpInstances::default());
        assert_eq!((p.http_instances.concurrency, p.http_instances.reuse, p.http_instances.max), (16, 128, None));
        let config = OperatorConfig::parse(
            "[http]\ninstance_concurrency = 8\ninstance_reuse = 10\ninstance_idle_timeout = \"250ms\"\nmax_instances = 4\n",
            "ops.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "ops.toml", &ann(&[])).unwrap();
        let expected = HttpInstances {
            concurrency: 8,
            reuse: 10,
            idle_timeout: Duration::from_millis(250),
            max: Some(4),
        };
        assert_eq!(p.http_instances, expected);
        let narrowed = [(HTTP_INSTANCE_CONCURRENCY, "2"), (HTTP_INSTANCE_REUSE, "1"), (HTTP_MAX_INSTANCES, "1")];
        let p = Policy::new(Some(&config), "ops.toml", &ann(&narrowed)).unwrap();
        assert_eq!(p.http_instances, HttpInstances { concurrency: 2, reuse: 1, max: Some(1), ..expected });
        // A pod may narrow the operator's values, never widen them.
        for (key, value, cap) in [
            (HTTP_INSTANCE_CONCURRENCY, "9", "http.instance_concurrency (8)"),
            (HTTP_INSTANCE_REUSE, "11", "http.instance_reuse (10)"),
            (HTTP_MAX_INSTANCES, "5", "http.max_instances (4)"),
        ] {
            let e = Policy::new(Some(&config), "ops.toml", &ann(&[(key, value)])).unwrap_err().to_string();
            assert!(e.contains(&format!("more than {cap} in ops.toml")) && e.contains(key), "{e}");
        }
        let e = Policy::new(None, "f", &ann(&[(HTTP_MAX_INSTANCES, "0")])).unwrap_err().to_string();
        assert!(e.contains("not a whole number above 0"), "{e}");
        let zero = OperatorConfig::parse("[http]\ninstance_reuse = 0\n", "ops.toml").unwrap();
        let e = Policy::new(Some(&zero), "ops.toml", &ann(&[])).unwrap_err().to_string();
        assert!(e.contains("http.instance_reuse: not a whole number above 0"), "{e}");
    }

    #[test]
    fn http_connection_limits_from_file_and_annotations() {
        let p = Policy::new(None, "f", &ann(&[])).unwrap();
        assert_eq!(p.http_connections, HttpConnections::default());
        let config = OperatorConfig::parse(
            "[http]\nheader_timeout = \"5s\"\nidle_timeout = \"10s\"\nmax_connections = 100\n",
            "ops.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "ops.toml", &ann(&[])).unwrap();
        assert_eq!(
            p.http_connections,
            HttpConnections {
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(10),
                max_connections: 100
            }
        );
        let p = Policy::new(
            Some(&config),
            "ops.toml",
            &ann(&[
                (HTTP_HEADER_TIMEOUT, "2s"),
                (HTTP_IDLE_TIMEOUT, "500ms"),
                (HTTP_MAX_CONNECTIONS, "50"),
            ]),
        )
        .unwrap();
        assert_eq!(
            p.http_connections,
            HttpConnections {
                header_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_millis(500),
                max_connections: 50
            }
        );
        let e = Policy::new(
            Some(&config),
            "ops.toml",
            &ann(&[(HTTP_MAX_CONNECTIONS, "101")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("more than http.max_connections (100) in ops.toml"),
            "{e}"
        );
        let e = Policy::new(None, "f", &ann(&[(HTTP_MAX_CONNECTIONS, "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number above 0"), "{e}");
        assert!(Policy::new(None, "f", &ann(&[(HTTP_IDLE_TIMEOUT, "soon")])).is_err());
    }

    #[test]
    fn egress_layers_only_narrow() {
        let names = BTreeMap::from([(
            "db.default.svc".to_string(),
            vec!["10.96.0.7".parse().unwrap()],
        )]);
        // The pod's list alone.
        let p = Policy::new(
            None,
            "f",
            &ann(&[(EGRESS, "10.0.0.0/8:5432, db.default.svc:5432, *:443")]),
        )
        .unwrap();
        assert_eq!(p.egress.names(), vec!["db.default.svc".to_string()]);
        assert_eq!(p.egress.check(&addr("10.1.2.3:5432"), &names), None);
        assert_eq!(p.egress.check(&addr("10.96.0.7:5432"), &names), None);
        assert_eq!(p.egress.check(&addr("93.184.216.34:443"), &names), None);
        assert_eq!(
            p.egress.check(&addr("93.184.216.34:80"), &names),
            Some("annotation wasmbox.dev/egress")
        );
        assert_eq!(
            p.egress.check(&addr("[::ffff:10.1.2.3]:5432"), &names),
            None,
            "IPv4-mapped IPv6"
        );

        // The operator denies by default and allows the cluster's network: the pod cannot
        // widen that with its own rules.
        let config = OperatorConfig::parse(
            "[egress]\ndefault = \"deny\"\nallow = [\"10.0.0.0/8:*\"]\n",
            "strict.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "strict.toml", &ann(&[(EGRESS, "*:443")])).unwrap();
        assert_eq!(p.egress.check(&addr("10.0.0.1:443"), &names), None);
        assert_eq!(
            p.egress.check(&addr("93.184.216.34:443"), &names),
            Some("strict.toml (egress.default = \"deny\")")
        );
        let p = Policy::new(Some(&config), "strict.toml", &ann(&[])).unwrap();
        assert!(!p.egress.denies_all());
        let p = Policy::new(None, "f", &ann(&[(EGRESS, "none")])).unwrap();
        assert!(p.egress.denies_all());
        assert_eq!(EgressRule::parse("[fd00::/8]:443").unwrap().port, Some(443));
    }

    #[test]
    fn url_rules_bind_http_requests_to_their_scheme() {
        let names = BTreeMap::from([(
            "api.example.com".to_string(),
            vec!["93.184.216.34".parse().unwrap()],
        )]);
        let rule = EgressRule::parse("https://api.example.com").unwrap();
        assert_eq!(
            (rule.port, rule.scheme.as_deref()),
            (Some(443), Some("https"))
        );
        assert_eq!(
            EgressRule::parse("http://10.0.0.0/8:8080/").unwrap().port,
            Some(8080)
        );
        assert_eq!(
            EgressRule::parse("https://[fd00::/8]").unwrap().port,
            Some(443)
        );
        assert_eq!(EgressRule::parse("HTTPS://*").unwrap().host, Host::Any);
        for bad in [
            "ftp://x",
            "https://api.example.com/v1",
            "https://x?y",
            "https://:443",
        ] {
            assert!(EgressRule::parse(bad).is_err(), "{bad}");
        }

        let p = Policy::new(
            None,
            "f",
            &ann(&[(
                EGRESS,
                "https://api.example.com, http://127.0.0.1:9000, 10.0.0.0/8:*",
            )]),
        )
        .unwrap();
        let e = &p.egress;
        // By name, whatever the name resolves to now; only with the rule's scheme and port.
        assert_eq!(
            e.check_request(
                "https",
                "api.example.com",
                &addr("198.51.100.1:443"),
                &names
            ),
            None
        );
        assert_eq!(
            e.check_request(
                "https",
                "API.example.com",
                &addr("198.51.100.1:443"),
                &names
            ),
            None
        );
        assert!(e
            .check_request("http", "api.example.com", &addr("198.51.100.1:443"), &names)
            .is_some());
        assert!(e
            .check_request(
                "https",
                "api.example.com",
                &addr("198.51.100.1:8443"),
                &names
            )
            .is_some());
        assert!(e
            .check_request(
                "https",
                "evil.example.com",
                &addr("198.51.100.1:443"),
                &names
            )
            .is_some());
        // An IP literal the rule's name resolved to.
        assert_eq!(
            e.check_request("https", "93.184.216.34", &addr("93.184.216.34:443"), &names),
            None
        );
        assert_eq!(
            e.check_request("http", "127.0.0.1", &addr("127.0.0.1:9000"), &names),
            None
        );
        assert!(e
            .check_request("https", "127.0.0.1", &addr("127.0.0.1:9000"), &names)
            .is_some());
        // A name allowed only by the address it resolves to: the connection goes there.
        assert_eq!(
            e.check_request("http", "db.internal", &addr("10.1.2.3:80"), &names),
            None
        );
        assert!(e
            .check_request("http", "db.internal", &addr("192.0.2.1:80"), &names)
            .is_some());
        // Sockets: a URL rule allows its host and port to any socket.
        assert_eq!(e.check(&addr("127.0.0.1:9000"), &names), None);
        assert_eq!(e.check(&addr("93.184.216.34:443"), &names), None);
    }

    #[test]
    fn the_operator_sets_containers_per_shim() {
        let config = OperatorConfig::parse("[shim]\ncontainers_per_shim = 4\n", "s.toml").unwrap();
        assert_eq!(config.shim.containers_per_shim, Some(4));
        let e = OperatorConfig::parse("[shim]\ncontainers_per_shim = 0\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shim.containers_per_shim = 0") && e.contains("s.toml"),
            "{e}"
        );
        assert!(OperatorConfig::parse("[shim]\nper_shim = 4\n", "s.toml").is_err());
    }

    #[test]
    fn the_operator_sets_pods_per_shim() {
        let config = OperatorConfig::parse("[shim]\npods_per_shim = 8\n", "s.toml").unwrap();
        assert_eq!(config.shim.pods_per_shim, Some(8));
        let e = OperatorConfig::parse("[shim]\npods_per_shim = 0\n", "s.toml").unwrap_err().to_string();
        assert!(e.contains("shim.pods_per_shim = 0") && e.contains("s.toml"), "{e}");
    }

    #[test]
    fn the_operator_sets_http_defaults_and_caps() {
        let config = OperatorConfig::parse(
            "[http]\naddress = \":9090\"\ntimeout = \"2m\"\nmax_timeout = \"90s\"\nmax_concurrency = 8\naccess_log = true\n",
            "h.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "h.toml", &ann(&[])).unwrap();
        assert_eq!(p.http, addr("0.0.0.0:9090"));
        assert_eq!(
            p.http_timeout,
            Duration::from_secs(90),
            "the default within the cap"
        );
        assert_eq!(
            p.http_concurrency(4),
            8,
            "the per-core default within the cap"
        );
        assert!(p.http_access_log);
        let p = Policy::new(
            Some(&config),
            "h.toml",
            &ann(&[
                (HTTP, ":8080"),
                (HTTP_TIMEOUT, "5s"),
                (HTTP_MAX_CONCURRENCY, "2"),
                (HTTP_ACCESS_LOG, "false"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                p.http,
                p.http_timeout,
                p.http_concurrency(4),
                p.http_access_log
            ),
            (addr("0.0.0.0:8080"), Duration::from_secs(5), 2, false)
        );
        let e = Policy::new(Some(&config), "h.toml", &ann(&[(HTTP_TIMEOUT, "5m")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.max_timeout (90s) in h.toml"), "{e}");
        let e = Policy::new(
            Some(&config),
            "h.toml",
            &ann(&[(HTTP_MAX_CONCURRENCY, "9")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("http.max_concurrency (8) in h.toml"), "{e}");
        // Without a file: 60 s, 16 per core.
        let p = Policy::new(None, "f", &ann(&[])).unwrap();
        assert_eq!(
            (p.http, p.http_timeout, p.http_concurrency(2)),
            (DEFAULT_HTTP, DEFAULT_HTTP_TIMEOUT, 32)
        );
        let bad = OperatorConfig::parse("[http]\ntimeout = \"soon\"\n", "b.toml").unwrap();
        let e = Policy::new(Some(&bad), "b.toml", &ann(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.toml") && e.contains("http.timeout"), "{e}");
    }

    #[test]
    fn http_addresses() {
        assert_eq!(
            parse_http_addr(":8081").unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
        assert_eq!(
            parse_http_addr("9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert_eq!(
            parse_http_addr("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_http_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(parse_http_addr(":0").is_err() && parse_http_addr("x").is_err());
    }

    #[test]
    fn listeners_are_declared_and_binds_follow_the_operator() {
        let p = Policy::new(
            None,
            "f",
            &ann(&[(LISTEN, "tcp:8080, tcp:127.0.0.1:9000,unix:/run/app.sock")]),
        )
        .unwrap();
        assert_eq!(
            p.listen,
            vec![
                Listen::Tcp(addr("0.0.0.0:8080")),
                Listen::Tcp(addr("127.0.0.1:9000")),
                Listen::Unix("/run/app.sock".into()),
            ]
        );
        // As runc: any port, unless the operator says otherwise.
        assert_eq!(p.bind_denied(&addr("0.0.0.0:5000")), None);
        let strict =
            OperatorConfig::parse("[listen]\nbind_undeclared = false\nmax = 2\n", "s.toml")
                .unwrap();
        let p = Policy::new(
            Some(&strict),
            "s.toml",
            &ann(&[(LISTEN, "tcp:8080,tcp:127.0.0.1:9000")]),
        )
        .unwrap();
        assert_eq!(p.bind_denied(&addr("0.0.0.0:8080")), None);
        assert_eq!(
            p.bind_denied(&addr("10.1.2.3:8080")),
            None,
            "tcp:8080 is every address"
        );
        assert_eq!(p.bind_denied(&addr("127.0.0.1:9000")), None);
        assert!(
            p.bind_denied(&addr("0.0.0.0:9000")).is_some(),
            "9000 only on 127.0.0.1"
        );
        assert!(p
            .bind_denied(&addr("0.0.0.0:5000"))
            .unwrap()
            .contains("bind_undeclared"));
        assert_eq!(p.bind_denied(&addr("0.0.0.0:0")), None, "ephemeral ports");
        let e = Policy::new(
            Some(&strict),
            "s.toml",
            &ann(&[(LISTEN, "tcp:1,tcp:2,tcp:3")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than listen.max (2) in s.toml"), "{e}");
        for bad in [
            "8080",
            "tcp:http",
            "tcp:0",
            "udp:53",
            "unix:run/x",
            "tcp:1.2.3.4",
        ] {
            assert!(
                Policy::new(None, "f", &ann(&[(LISTEN, bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_policy_travels_as_json() {
        let p = Policy::new(
            None,
            "f",
            &ann(&[(PREOPENS, "/data:ro"), (TIMEOUT, "3s"), (EGRESS, "db:5432")]),
        )
        .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }
}
