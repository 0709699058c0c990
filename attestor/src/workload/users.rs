//! User and group names from `/etc/passwd` and `/etc/group`.
//!
//! Only the local files are read (no NSS: LDAP/SSSD users get no
//! `unix:user` selector). The parsed table is cached and re-read when the
//! file's identity, size, mtime or ctime changes, so a lookup costs one
//! open and one fstat.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// Largest passwd/group file read (a bigger one is a misconfiguration).
const MAX_DB_BYTES: u64 = 16 * 1024 * 1024;

/// Which file format a [`NameDb`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    /// `name:passwd:uid:gid:gecos:home:shell`
    Passwd,
    /// `name:passwd:gid:members`
    Group,
}

impl DbKind {
    fn fields(self) -> usize {
        match self {
            DbKind::Passwd => 7,
            DbKind::Group => 4,
        }
    }
}

/// Identity of one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A cached id → name table read from one passwd- or group-format file.
#[derive(Debug)]
pub(crate) struct NameDb {
    path: PathBuf,
    kind: DbKind,
    cache: Mutex<Option<(FileStamp, HashMap<u32, String>)>>,
}

impl NameDb {
    pub(crate) fn new(path: PathBuf, kind: DbKind) -> Self {
        Self {
            path,
            kind,
            cache: Mutex::new(None),
        }
    }

    /// The name of `id`, or `None` if the file has none (or cannot be read,
    /// which is logged: a missing name only removes a selector).
    pub(crate) fn name_of(&self, id: u32) -> Option<String> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot open name database");
                return None;
            }
        };
        let stamp = match file.metadata() {
            Ok(meta) => FileStamp::of(&meta),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot stat name database");
                return None;
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached_stamp, names)) = cache.as_ref()
            && *cached_stamp == stamp
        {
            return names.get(&id).cloned();
        }
        let mut bytes = Vec::new();
        if let Err(error) = (&mut file).take(MAX_DB_BYTES).read_to_end(&mut bytes) {
            tracing::warn!(path = %self.path.display(), %error, "cannot read name database");
            return None;
        }
        let names = parse_db(&bytes, self.kind);
        tracing::debug!(path = %self.path.display(), entries = names.len(), "name database loaded");
        let name = names.get(&id).cloned();
        *cache = Some((stamp, names));
        name
    }
}

/// Parses passwd- or group-format content into id → name. Malformed lines
/// (wrong field count, empty or odd name, non-numeric id, not UTF-8) and
/// NIS `+`/`-` lines are skipped; the first entry for an id wins, as with
/// `getpwuid(3)`.
pub(crate) fn parse_db(content: &[u8], kind: DbKind) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in content.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') || line.starts_with(['+', '-']) {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() != kind.fields() {
            continue;
        }
        let (Some(&name), Some(&id)) = (fields.first(), fields.get(2)) else {
            continue;
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            continue;
        }
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(id) = id.parse::<u32>() else {
            continue;
        };
        names.entry(id).or_insert_with(|| name.to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_parse_skips_malformed_lines() {
        let content = b"root:x:0:0:root:/root:/bin/bash\n\
# comment\n\
\n\
broken line without colons\n\
short:x:5:5\n\
toomany:x:6:6:a:b:c:d\n\
neg:x:-1:0::/:/bin/sh\n\
plus:x:+7:0::/:/bin/sh\n\
huge:x:99999999999:0::/:/bin/sh\n\
:x:8:8::/:/bin/sh\n\
sp ace:x:9:9::/:/bin/sh\n\
+nisuser::::::\n\
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\r\n\
alias:x:1000:1000::/home/alice:/bin/bash\n\
\xff\xfe:x:10:10::/:/bin/sh\n\
bob:x:1001:1001::/home/bob:/bin/sh";
        let names = parse_db(content, DbKind::Passwd);
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("alice"));
        assert_eq!(names.get(&1001).map(String::as_str), Some("bob"));
        for id in [5, 6, 7, 8, 9, 10] {
            assert_eq!(names.get(&id), None, "uid {id}");
        }
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn group_parse_skips_malformed_lines() {
        let content = b"root:x:0:\n\
wheel:x:10:alice,bob\n\
bad:x:11\n\
bad2:x:twelve:\n\
users:x:100:\n";
        let names = parse_db(content, DbKind::Group);
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&10).map(String::as_str), Some("wheel"));
        assert_eq!(names.get(&100).map(String::as_str), Some("users"));
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn db_reloads_when_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        std::fs::write(&path, "alice:x:1000:1000::/:/bin/sh\n").expect("write");
        let db = NameDb::new(path.clone(), DbKind::Passwd);
        assert_eq!(db.name_of(1000).as_deref(), Some("alice"));
        assert_eq!(db.name_of(1001), None);
        // Different size, so the stamp changes even within one mtime tick.
        std::fs::write(&path, "carol:x:1000:1000::/:/bin/sh\ndave:x:1001:1:::\n").expect("write");
        assert_eq!(db.name_of(1000).as_deref(), Some("carol"));
        assert_eq!(db.name_of(1001).as_deref(), Some("dave"));
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(db.name_of(1000), None);
    }
}
