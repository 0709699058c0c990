//! The workload selector set and the systemd unit read from a cgroup path.

use std::collections::BTreeSet;

/// The selectors the attestor derived for one caller: an ordered set of
/// strings such as `unix:uid:1000` or `systemd:unit:nginx.service`
/// (DESIGN.md §2).
///
/// A registration entry matches when every one of its workload selectors is
/// in this set ([`WorkloadSelectors::contains_all`]). Selectors the attestor
/// could not establish are simply absent, so a missing fact can only make
/// fewer entries match, never more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadSelectors(BTreeSet<String>);

impl WorkloadSelectors {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `kind:value` (e.g. `unix:uid` and `0`).
    pub(crate) fn insert(&mut self, kind: &str, value: &str) {
        self.0.insert(format!("{kind}:{value}"));
    }

    /// Whether `selector` (the full string, e.g. `unix:uid:0`) is in the set.
    pub fn contains(&self, selector: &str) -> bool {
        self.0.contains(selector)
    }

    /// Whether every selector in `required` is in the set. An empty
    /// `required` is trivially satisfied; refusing entries without workload
    /// selectors is the caller's policy, not this type's.
    pub fn contains_all<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|s| self.0.contains(s.as_ref()))
    }

    /// The selectors in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(String::as_str)
    }

    /// Number of selectors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a WorkloadSelectors {
    type Item = &'a str;
    type IntoIter =
        std::iter::Map<std::collections::btree_set::Iter<'a, String>, fn(&String) -> &str>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(String::as_str as fn(&String) -> &str)
    }
}

impl IntoIterator for WorkloadSelectors {
    type Item = String;
    type IntoIter = std::collections::btree_set::IntoIter<String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl FromIterator<String> for WorkloadSelectors {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Unit types a process can live in (slices and targets hold none directly).
const PROCESS_UNIT_SUFFIXES: [&str; 5] = ["service", "scope", "socket", "mount", "swap"];

/// The systemd unit of a process, from the content of `/proc/<pid>/cgroup`.
///
/// Choice (the same as `sd_pid_get_unit(3)` and systemd's `GetUnitByPID`):
/// the unit is the first path component after the leading `.slice`
/// components, i.e. the unit of the *system* manager. A process started by
/// a user manager therefore gets `user@<uid>.service`, not the user unit
/// below it: user units are named by the unprivileged user, who could
/// otherwise call a unit `nginx.service` and pass for the system service.
/// Entries for user services combine `systemd:unit:user@1000.service` with
/// `unix:uid`, `unix:path` or `unix:sha256`.
///
/// The cgroup v2 line (`0::<path>`) is used when it yields a unit (unified
/// and hybrid hierarchies); otherwise the cgroup v1 `name=systemd` line
/// (legacy hierarchy, where the v2 line reads `0::/`). `None` when neither
/// names a unit (e.g. `0::/`, a container's own cgroup tree).
pub(crate) fn systemd_unit_from_cgroup(content: &str) -> Option<String> {
    let mut v2 = None;
    let mut v1 = None;
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "name=systemd") {
            v1 = Some(path);
        }
    }
    v2.and_then(unit_from_cgroup_path)
        .or_else(|| v1.and_then(unit_from_cgroup_path))
}

/// The first non-slice component of a systemd cgroup path, if it is a unit
/// that can hold processes.
fn unit_from_cgroup_path(path: &str) -> Option<String> {
    for component in path.split('/').filter(|c| !c.is_empty()) {
        // systemd prefixes names that would clash with kernel files with '_'.
        let name = component.strip_prefix('_').unwrap_or(component);
        let (stem, suffix) = split_unit_name(name)?;
        if suffix == "slice" {
            continue;
        }
        if !PROCESS_UNIT_SUFFIXES.contains(&suffix) || stem.is_empty() {
            return None;
        }
        return Some(name.to_owned());
    }
    None
}

/// Splits a syntactically valid unit name into stem and type suffix.
fn split_unit_name(name: &str) -> Option<(&str, &str)> {
    const UNIT_NAME_MAX: usize = 255;
    if name.is_empty() || name.len() > UNIT_NAME_MAX {
        return None;
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b);
    if !name.bytes().all(allowed) {
        return None;
    }
    let (stem, suffix) = name.rsplit_once('.')?;
    if stem.is_empty() || suffix.is_empty() || stem.starts_with('@') {
        return None;
    }
    if name.bytes().filter(|&b| b == b'@').count() > 1 {
        return None;
    }
    Some((stem, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_system_service() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/foo.service\n").as_deref(),
            Some("foo.service")
        );
    }

    #[test]
    fn v2_delegated_subgroup_gives_owning_unit() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/containerd.service/kubepods/x\n").as_deref(),
            Some("containerd.service")
        );
    }

    #[test]
    fn v2_nested_slices_and_template_instance() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/system-getty.slice/getty@tty1.service\n")
                .as_deref(),
            Some("getty@tty1.service")
        );
    }

    #[test]
    fn v2_user_unit_gives_user_manager_unit() {
        let content = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/bar.service\n";
        assert_eq!(
            systemd_unit_from_cgroup(content).as_deref(),
            Some("user@1000.service")
        );
    }

    #[test]
    fn v2_session_scope() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/user.slice/user-1000.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(
            systemd_unit_from_cgroup("0::/init.scope\n").as_deref(),
            Some("init.scope")
        );
    }

    #[test]
    fn no_unit() {
        assert_eq!(systemd_unit_from_cgroup("0::/\n"), None);
        assert_eq!(systemd_unit_from_cgroup(""), None);
        assert_eq!(systemd_unit_from_cgroup("0::/system.slice\n"), None);
        assert_eq!(systemd_unit_from_cgroup("0::/docker/abc123\n"), None);
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/foo.target\n"),
            None
        );
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/.service\n"),
            None
        );
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/a b.service\n"),
            None
        );
        // A dead cgroup is marked by the kernel; no unit.
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/foo.service (deleted)\n"),
            None
        );
        assert_eq!(systemd_unit_from_cgroup("garbage\n::\n0:\n"), None);
    }

    #[test]
    fn v1_legacy_hierarchy() {
        let content = "12:pids:/system.slice/foo.service\n\
                       11:memory:/system.slice/foo.service\n\
                       1:name=systemd:/system.slice/foo.service\n\
                       0::/\n";
        assert_eq!(
            systemd_unit_from_cgroup(content).as_deref(),
            Some("foo.service")
        );
    }

    #[test]
    fn v1_other_controllers_are_not_trusted() {
        // Only the name=systemd hierarchy is systemd's; others may be laid
        // out by anyone with access to them.
        assert_eq!(
            systemd_unit_from_cgroup("4:memory:/system.slice/foo.service\n0::/\n"),
            None
        );
    }

    #[test]
    fn v2_wins_in_hybrid_mode() {
        let content = "1:name=systemd:/system.slice/old.service\n0::/system.slice/new.service\n";
        assert_eq!(
            systemd_unit_from_cgroup(content).as_deref(),
            Some("new.service")
        );
    }

    #[test]
    fn escaped_component_is_unescaped() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/_cpu.service\n").as_deref(),
            Some("cpu.service")
        );
    }

    #[test]
    fn path_with_colons_is_kept_whole() {
        assert_eq!(
            systemd_unit_from_cgroup("0::/system.slice/a:b.service\n").as_deref(),
            Some("a:b.service")
        );
    }

    #[test]
    fn selector_set_matching() {
        let mut s = WorkloadSelectors::new();
        s.insert("unix:uid", "0");
        s.insert("unix:path", "/usr/bin/foo");
        assert!(s.contains("unix:uid:0"));
        assert!(s.contains_all(&["unix:uid:0".to_owned()]));
        assert!(s.contains_all(&["unix:uid:0", "unix:path:/usr/bin/foo"]));
        assert!(!s.contains_all(&["unix:uid:0", "unix:gid:0"]));
        assert!(s.contains_all::<String>(&[]));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            ["unix:path:/usr/bin/foo", "unix:uid:0"]
        );
        assert_eq!((&s).into_iter().count(), 2);
        assert_eq!(s.len(), 2);
    }
}
