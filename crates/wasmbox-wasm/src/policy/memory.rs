//! The guest's memory budget: linear memories and tables may grow only while the container
//! stays inside its memory limit, so a guest that asks for too much sees `memory.grow` return
//! -1 (and can handle it) instead of being OOM-killed by the kernel.
//!
//! The cgroup's limit covers the whole container: the guest's linear memory, but also the
//! runtime's own pages (instance, tables, WASI buffers, stacks, page tables). Capping linear
//! memory at the limit itself lets the container hit the limit first. So, when the container's
//! memory cgroup files are at hand, every growth is checked against them: the container's
//! eventual usage is estimated as the larger of its usage now and its usage at start plus all
//! linear memory granted so far (grown pages may not be touched yet), plus the growth, plus a
//! reserve for what the runtime allocates later. Reading the limit each time means a raised or
//! lowered limit (an update) takes effect on the next growth.

use std::fs::File;
use std::os::unix::fs::FileExt;

use wasmtime::ResourceLimiter;

/// Room kept free below the limit for the runtime's later allocations and the kernel's own
/// accounting (page tables grow with linear memory): 2 MiB, or 1/32 of the limit if larger.
pub fn reserve(limit: u64) -> u64 {
    (2 << 20).max(limit / 32)
}

/// The container's memory cgroup: descriptors of its usage and limit files (cgroup v1
/// `memory.usage_in_bytes` / `memory.limit_in_bytes`, v2 `memory.current` / `memory.max`).
#[derive(Debug)]
pub struct MemoryCgroup {
    pub usage: File,
    pub limit: File,
}

fn read_value(f: &File) -> Option<Option<u64>> {
    let mut buf = [0u8; 32];
    let n = f.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?.trim();
    if text == "max" {
        return Some(None);
    }
    let v: u64 = text.parse().ok()?;
    // cgroup v1 says "no limit" with a huge page-aligned number.
    Some((v < (1 << 62)).then_some(v))
}

impl MemoryCgroup {
    /// Current usage and limit (None: unlimited); None when the files cannot be read.
    pub fn read(&self) -> Option<(u64, Option<u64>)> {
        let usage = read_value(&self.usage)??;
        let limit = read_value(&self.limit)?;
        Some((usage, limit))
    }
}

/// Bytes of host memory a table element costs, for the budget.
const TABLE_ELEMENT_BYTES: u64 = 16;

/// The store's resource limiter.
#[derive(Debug)]
pub struct Budget {
    cgroup: Option<MemoryCgroup>,
    /// Container usage when the budget was made, before the guest was instantiated.
    base: u64,
    /// Linear memory and table bytes granted so far.
    granted: u64,
    /// Without readable cgroup files: the spec's limit, less the reserve.
    static_cap: Option<u64>,
}

impl Budget {
    /// A budget from the container's cgroup when known, else from the spec's limit.
    pub fn new(cgroup: Option<MemoryCgroup>, spec_limit: Option<u64>) -> Self {
        let now = cgroup.as_ref().and_then(|c| c.read());
        // Unreadable files: fall back to the spec's limit.
        let cgroup = cgroup.filter(|_| now.is_some());
        let base = now.map_or(0, |(u, _)| u);
        if let Some((usage, Some(limit))) = now {
            // The runtime's own footprint, charged to the container before the guest runs.
            log::info!(
                "memory budget: limit {} KiB, container usage at start {} KiB, reserve {} KiB",
                limit >> 10,
                usage >> 10,
                reserve(limit) >> 10
            );
        }
        Self {
            cgroup,
            base,
            granted: 0,
            static_cap: spec_limit.map(|l| l.saturating_sub(reserve(l))),
        }
    }

    /// Whether `grow` more bytes fit; records them when they do.
    fn admit(&mut self, grow: u64) -> bool {
        let fits = match self.cgroup.as_ref().and_then(|c| c.read()) {
            Some((_, None)) => true,
            Some((usage, Some(limit))) => decide(usage, self.base, self.granted, grow, limit),
            None => self.static_cap.is_none_or(|cap| self.granted + grow <= cap),
        };
        if fits {
            self.granted += grow;
        } else {
            log::info!("memory growth by {grow} bytes refused: the container is at its memory limit");
        }
        fits
    }
}

/// The rule, on plain numbers: the eventual usage (the larger of usage now and usage at
/// start plus everything granted), plus the growth and the reserve, must fit the limit.
pub fn decide(usage: u64, base: u64, granted: u64, grow: u64, limit: u64) -> bool {
    let eventual = usage.max(base + granted);
    eventual + grow + reserve(limit) <= limit
}

impl ResourceLimiter for Budget {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        Ok(self.admit(desired.saturating_sub(current) as u64))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        Ok(self.admit(desired.saturating_sub(current) as u64 * TABLE_ELEMENT_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const MIB: u64 = 1 << 20;

    #[test]
    fn growth_stops_short_of_the_limit() {
        // 64 MiB limit, 10 MiB used by the runtime at start.
        assert!(decide(10 * MIB, 10 * MIB, 0, 40 * MIB, 64 * MIB));
        assert!(!decide(10 * MIB, 10 * MIB, 0, 54 * MIB, 64 * MIB), "no room left for the reserve");
        // Granted but untouched pages count: usage lags behind what was granted.
        assert!(!decide(12 * MIB, 10 * MIB, 48 * MIB, 6 * MIB, 64 * MIB));
        // Usage that grew beyond the estimate (files in tmpfs, buffers) counts too.
        assert!(!decide(62 * MIB, 10 * MIB, 8 * MIB, MIB, 64 * MIB));
    }

    #[test]
    fn reserve_scales_with_the_limit() {
        assert_eq!(reserve(16 * MIB), 2 * MIB);
        assert_eq!(reserve(256 * MIB), 8 * MIB);
    }

    fn file(text: &str) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_cgroup_files_and_follows_limit_changes() {
        let cg = MemoryCgroup {
            usage: file("8388608\n"),
            limit: file("max\n"),
        };
        assert_eq!(cg.read(), Some((8 * MIB, None)));
        let v1_unlimited = MemoryCgroup {
            usage: file("1\n"),
            limit: file("9223372036854771712\n"),
        };
        assert_eq!(v1_unlimited.read(), Some((1, None)));

        let limit = file("33554432\n");
        let mut budget = Budget::new(
            Some(MemoryCgroup {
                usage: file("8388608\n"),
                limit: limit.try_clone().unwrap(),
            }),
            Some(32 * MIB),
        );
        assert!(budget.memory_growing(0, (16 * MIB) as usize, None).unwrap());
        assert!(!budget.memory_growing((16 * MIB) as usize, (24 * MIB) as usize, None).unwrap());
        // The limit is raised (an update): the same growth now fits.
        limit.write_at(b"134217728\n", 0).unwrap();
        assert!(budget.memory_growing((16 * MIB) as usize, (24 * MIB) as usize, None).unwrap());
    }

    #[test]
    fn without_cgroup_files_the_spec_limit_less_the_reserve_caps() {
        let mut budget = Budget::new(None, Some(16 * MIB));
        assert!(budget.memory_growing(0, (14 * MIB) as usize, None).unwrap());
        assert!(!budget.memory_growing((14 * MIB) as usize, (15 * MIB) as usize, None).unwrap());
        let mut unlimited = Budget::new(None, None);
        assert!(unlimited.memory_growing(0, 1 << 30, None).unwrap());
    }
}
