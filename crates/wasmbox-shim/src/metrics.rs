//! Converts libcgroups statistics into containerd's cgroup v1 `Metrics` message.
//!
//! containerd (ctr, CRI) decodes `io.containerd.cgroups.v1.Metrics` on any host; the figures
//! ctr and kubelet read (CPU, memory, pids) are filled from either cgroup version.

use containerd_shim::protos::cgroups::metrics::{
    CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use libcgroups::stats::{MemoryData, Stats};

/// Type URL containerd registers for v1 metrics.
pub const METRICS_V1_TYPE: &str = "io.containerd.cgroups.v1.Metrics";

fn entry(d: &MemoryData) -> MemoryEntry {
    MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    }
}

/// The metrics message for `stats`.
pub fn to_metrics(stats: &Stats) -> Metrics {
    let cpu = &stats.cpu;
    let mem = &stats.memory;
    Metrics {
        pids: MessageField::some(PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(CPUStat {
            usage: MessageField::some(CPUUsage {
                total: cpu.usage.usage_total,
                kernel: cpu.usage.usage_kernel,
                user: cpu.usage.usage_user,
                per_cpu: cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(Throttle {
                periods: cpu.throttling.periods,
                throttled_periods: cpu.throttling.throttled_periods,
                throttled_time: cpu.throttling.throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(MemoryStat {
            cache: mem.cache,
            usage: MessageField::some(entry(&mem.memory)),
            swap: MessageField::some(entry(&mem.memswap)),
            kernel: MessageField::some(entry(&mem.kernel)),
            kernel_tcp: MessageField::some(entry(&mem.kernel_tcp)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `stats` packed as containerd expects in a StatsResponse.
pub fn to_any(stats: &Stats) -> Result<Any, String> {
    let value = to_metrics(stats)
        .write_to_bytes()
        .map_err(|e| format!("encode metrics: {e}"))?;
    Ok(Any {
        type_url: METRICS_V1_TYPE.to_string(),
        value,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_cpu_memory_and_pids() {
        let mut s = Stats::default();
        s.cpu.usage.usage_total = 1000;
        s.memory.memory.usage = 4096;
        s.memory.memory.limit = 1 << 20;
        s.pids.current = 2;
        let any = to_any(&s).unwrap();
        assert_eq!(any.type_url, METRICS_V1_TYPE);
        let m = Metrics::parse_from_bytes(&any.value).unwrap();
        assert_eq!(m.cpu.usage.total, 1000);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 1 << 20);
        assert_eq!(m.pids.current, 2);
    }
}
