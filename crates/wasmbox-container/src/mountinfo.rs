//! `/proc/<pid>/mountinfo`, parsed: which filesystem is mounted where.

/// One line of `/proc/<pid>/mountinfo`, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The path inside the filesystem that is mounted (a bind's source within it).
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub super_options: String,
}

/// Decodes the octal escapes (`\040` for a space) the kernel uses in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let root = unescape(l.nth(3)?);
            let mount_point = unescape(l.next()?);
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let super_options = r.nth(1).unwrap_or_default().to_string();
            Some(MountEntry {
                root,
                mount_point,
                fstype,
                super_options,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_escapes() {
        let e = parse_mountinfo(
            "35 30 0:31 /sub /sys/fs/cgroup/my\\040mem rw,nosuid - cgroup cgroup rw,memory\ngarbage\n",
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].root, "/sub");
        assert_eq!(e[0].mount_point, "/sys/fs/cgroup/my mem");
        assert_eq!((e[0].fstype.as_str(), e[0].super_options.as_str()), ("cgroup", "rw,memory"));
    }
}
