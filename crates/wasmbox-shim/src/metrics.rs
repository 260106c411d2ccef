//! Converts libcgroups statistics into containerd's cgroup v1 `Metrics` message.
//!
//! containerd (ctr, CRI) decodes `io.containerd.cgroups.v1.Metrics` on any host; the figures
//! ctr and kubelet read (CPU, memory, pids) are filled from either cgroup version. CRI derives
//! a container's working set from `usage - total_inactive_file` and reports `total_rss`,
//! `total_pg_fault` and `total_pg_maj_fault`: those come from `memory.stat` (cgroup v1 names,
//! or v2's `anon`, `file`, `inactive_file`, `pgfault`... where v1's are absent).

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
    // memory.stat: the v1 key, else its cgroup v2 counterpart (v2 has no hierarchy totals:
    // its figures already include descendants).
    let stat = |v1: &str, v2: &str| mem.stats.get(v1).or_else(|| mem.stats.get(v2)).copied().unwrap_or(0);
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
            rss: stat("rss", "anon"),
            mapped_file: stat("mapped_file", "file_mapped"),
            dirty: stat("dirty", "file_dirty"),
            writeback: stat("writeback", "file_writeback"),
            pg_fault: stat("pgfault", "pgfault"),
            pg_maj_fault: stat("pgmajfault", "pgmajfault"),
            inactive_anon: stat("inactive_anon", "inactive_anon"),
            active_anon: stat("active_anon", "active_anon"),
            inactive_file: stat("inactive_file", "inactive_file"),
            active_file: stat("active_file", "active_file"),
            unevictable: stat("unevictable", "unevictable"),
            total_cache: stat("total_cache", "file"),
            total_rss: stat("total_rss", "anon"),
            total_mapped_file: stat("total_mapped_file", "file_mapped"),
            total_dirty: stat("total_dirty", "file_dirty"),
            total_writeback: stat("total_writeback", "file_writeback"),
            total_pg_fault: stat("total_pgfault", "pgfault"),
            total_pg_maj_fault: stat("total_pgmajfault", "pgmajfault"),
            total_inactive_anon: stat("total_inactive_anon", "inactive_anon"),
            total_active_anon: stat("total_active_anon", "active_anon"),
            total_inactive_file: stat("total_inactive_file", "inactive_file"),
            total_active_file: stat("total_active_file", "active_file"),
            total_unevictable: stat("total_unevictable", "unevictable"),
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

    #[test]
    fn fills_what_cri_reads_from_memory_stat_v1() {
        let mut s = Stats::default();
        s.memory.memory.usage = 10_000;
        for (k, v) in [("rss", 1), ("total_rss", 2), ("total_inactive_file", 3), ("total_pgfault", 4), ("total_pgmajfault", 5)] {
            s.memory.stats.insert(k.to_string(), v);
        }
        let m = to_metrics(&s);
        assert_eq!(m.memory.rss, 1);
        assert_eq!(m.memory.total_rss, 2);
        assert_eq!(m.memory.total_inactive_file, 3);
        assert_eq!(m.memory.total_pg_fault, 4);
        assert_eq!(m.memory.total_pg_maj_fault, 5);
    }

    #[test]
    fn fills_what_cri_reads_from_memory_stat_v2() {
        let mut s = Stats::default();
        for (k, v) in [("anon", 1), ("inactive_file", 3), ("pgfault", 4), ("pgmajfault", 5), ("file", 6)] {
            s.memory.stats.insert(k.to_string(), v);
        }
        let m = to_metrics(&s);
        assert_eq!((m.memory.rss, m.memory.total_rss), (1, 1));
        assert_eq!(m.memory.total_inactive_file, 3);
        assert_eq!((m.memory.pg_fault, m.memory.total_pg_fault), (4, 4));
        assert_eq!(m.memory.total_pg_maj_fault, 5);
        assert_eq!(m.memory.total_cache, 6);
    }
}
