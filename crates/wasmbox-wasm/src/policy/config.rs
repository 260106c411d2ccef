//! The node operator's config file (`[shim]`, `[http]`, `[listen]`, `[egress]`, `[limits]`),
//! parsed and checked once; its errors name the file, the line and the key.

use serde::{Deserialize, Serialize};

use super::egress::EgressRule;
use super::keys::{clip, parse_duration, quote, yes};

/// A policy that cannot be made: the message names the file or annotation, the key and what
/// is allowed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: {message}", clip(.source_name))]
    Config {
        source_name: String,
        message: String,
    },
    #[error("annotation {}={}: {message}", clip(.key), quote(.value))]
    Annotation {
        key: String,
        value: String,
        message: String,
    },
}

/// Whether outbound connections not matched by a rule are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Default_ {
    #[default]
    Allow,
    Deny,
}

/// The operator's file (the runtime handler's `ConfigPath`, else `/etc/wasmbox/config.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    #[serde(default)]
    pub egress: EgressConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub shim: ShimConfig,
}

/// How containers share shim processes (read by the shim's `start` action).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShimConfig {
    /// The most containers outside pods one shim serves (1: a shim per container). A pod's
    /// containers always share their pod's shim.
    pub containers_per_shim: Option<usize>,
    /// The most pods one shim serves, each with all its containers (1: a shim per pod, as
    /// with runc).
    pub pods_per_shim: Option<usize>,
}

/// Defaults and caps for serving `wasi:http/proxy` components; annotations override the
/// defaults within the caps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where components are served unless `wasmbox.dev/http` says (`:8080`, `ADDRESS:PORT`).
    pub address: Option<String>,
    /// A request's time limit unless `wasmbox.dev/http-timeout` says (`60s`).
    pub timeout: Option<String>,
    /// The longest `wasmbox.dev/http-timeout` a pod may ask for; also bounds `timeout`.
    pub max_timeout: Option<String>,
    /// The most handlers one container runs at once: caps `wasmbox.dev/http-max-concurrency`
    /// and the per-core default.
    pub max_concurrency: Option<usize>,
    /// The access log unless `wasmbox.dev/http-access-log` says.
    #[serde(default)]
    pub access_log: bool,
    /// A request head's time limit from its first byte unless `wasmbox.dev/http-header-timeout`
    /// says (`30s`).
    pub header_timeout: Option<String>,
    /// How long a connection may wait for a request unless `wasmbox.dev/http-idle-timeout`
    /// says (`60s`).
    pub idle_timeout: Option<String>,
    /// Open connections per container: the default and the cap of
    /// `wasmbox.dev/http-max-connections` (1024).
    pub max_connections: Option<usize>,
    /// Requests one instance of a WASI 0.3 handler serves at once: the default and the cap of
    /// `wasmbox.dev/http-instance-concurrency` (16).
    pub instance_concurrency: Option<usize>,
    /// Requests one instance of a 0.3 handler serves before it is dropped: the default and
    /// the cap of `wasmbox.dev/http-instance-reuse` (128).
    pub instance_reuse: Option<usize>,
    /// How long an idle instance of a 0.3 handler is kept for the next request (`1s`).
    pub instance_idle_timeout: Option<String>,
    /// Live instances of a 0.3 handler: the default and the cap of
    /// `wasmbox.dev/http-max-instances` (none: as many as requests run at once).
    pub max_instances: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The most `wasmbox.dev/listen` entries a container may declare.
    pub max: Option<usize>,
    /// Whether a component may bind ports its `wasmbox.dev/listen` does not declare (as a runc
    /// container may); `false`: only the declared ones.
    #[serde(default = "yes")]
    pub bind_undeclared: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            max: None,
            bind_undeclared: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// `allow` (as runc) or `deny`: what an address no rule matches gets.
    #[serde(default)]
    pub default: Default_,
    /// Destinations allowed when the default is `deny` (same syntax as `wasmbox.dev/egress`).
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A guest's run time when no annotation sets one (`30s`, `5m`, `1h`).
    pub default_timeout: Option<String>,
    /// The longest `wasmbox.dev/timeout` a pod may ask for; also bounds `default_timeout`.
    pub max_timeout: Option<String>,
}

impl OperatorConfig {
    /// Parses the file's text; `source_name` (its path) goes into every error.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::Config {
            source_name: source_name.to_string(),
            message,
        };
        // Not the error's Display: it quotes the whole offending line, which may be megabytes.
        let config: Self = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                format!("line {line}, column {column}: ")
            });
            err(format!(
                "{}{}",
                at.unwrap_or_default(),
                clip(e.message().trim())
            ))
        })?;
        for (i, rule) in config.egress.allow.iter().enumerate() {
            EgressRule::parse(rule)
                .map_err(|m| err(format!("egress.allow[{i}] = {}: {m}", quote(rule))))?;
        }
        for (key, value) in [
            ("limits.default_timeout", &config.limits.default_timeout),
            ("limits.max_timeout", &config.limits.max_timeout),
        ] {
            if let Some(v) = value {
                parse_duration(v).map_err(|m| err(format!("{key} = {}: {m}", quote(v))))?;
            }
        }
        if config.shim.containers_per_shim == Some(0) {
            return Err(err(
                "shim.containers_per_shim = 0: at least 1 (1 gives every container its own shim)"
                    .into(),
            ));
        }
        if config.shim.pods_per_shim == Some(0) {
            return Err(err("shim.pods_per_shim = 0: at least 1 (1 gives every pod its own shim)".into()));
        }
        Ok(config)
    }
}
