//! Names that never collide between tests, test processes or reruns.

use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `wbx-<test>-<pid>-<n>`: a container id unique within this machine's current processes.
pub fn container_id(test: &str) -> String {
    format!("wbx-{}-{}-{}", sanitize(test), std::process::id(), next())
}

/// `docker.io/library/wbx-<name>:latest`: the fully qualified form, since ctr matches names as given.
pub fn image_ref(name: &str) -> String {
    format!("docker.io/library/wbx-{}:latest", sanitize(name))
}

pub(crate) fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_clean() {
        let a = container_id("My_Test");
        let b = container_id("My_Test");
        assert_ne!(a, b);
        assert!(a.starts_with("wbx-my-test-"));
        assert_eq!(image_ref("x y"), "docker.io/library/wbx-x-y:latest");
    }
}
