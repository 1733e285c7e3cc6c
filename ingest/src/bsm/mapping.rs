//! Which BSM events feed which osquery table.
//!
//! The header's event number alone decides, so a record that no table wants
//! is counted and skipped without reading its body:
//!
//! | table | events |
//! |---|---|
//! | `process_events` | execve, exec, fexecve, execveat, mac_execve, posix_spawn, fork, vfork, fork1, rfork, pdfork, exit |
//! | `socket_events` | connect, connectat, bind, bindat, accept |
//! | `process_file_events` | every open and openat variant, creat, rename(at), unlink(at), link(at), the chmod and chown families, truncate, ftruncate |
//! | `user_events` | every event of the `lo` (login/logout) and `aa` (authentication) classes of `audit_event`: login, logout, su, sudo, ssh, loginwindow, authorization… and Darwin's old sudo number |

use std::sync::OnceLock;

use super::events;

/// The four tables BSM feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BsmTable {
    /// `process_events`.
    Process,
    /// `process_file_events`.
    ProcessFile,
    /// `socket_events`.
    Socket,
    /// `user_events`.
    User,
}

/// What a process event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessOp {
    /// Replaces the subject's image (execve and friends).
    Exec,
    /// Creates a child running a new image (posix_spawn).
    Spawn,
    /// Creates a child (fork, vfork, rfork…).
    Fork,
    /// Ends the subject.
    Exit,
}

/// What a socket event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketOp {
    /// connect(2): the address is the remote end.
    Connect,
    /// bind(2): the address is the local end.
    Bind,
    /// accept(2): the address is the remote end.
    Accept,
}

impl SocketOp {
    /// osquery's `action`.
    pub fn action(self) -> &'static str {
        match self {
            SocketOp::Connect => "connect",
            SocketOp::Bind => "bind",
            SocketOp::Accept => "accept",
        }
    }
}

/// What a file event does, as osquery's `operation` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// open, openat, creat.
    Open,
    /// rename, renameat.
    Rename,
    /// unlink, unlinkat.
    Unlink,
    /// link, linkat.
    Link,
    /// The chmod family.
    Chmod,
    /// The chown family.
    Chown,
    /// truncate, ftruncate.
    Truncate,
}

impl FileOp {
    /// osquery's `operation`.
    pub fn operation(self) -> &'static str {
        match self {
            FileOp::Open => "open",
            FileOp::Rename => "rename",
            FileOp::Unlink => "unlink",
            FileOp::Link => "link",
            FileOp::Chmod => "chmod",
            FileOp::Chown => "chown",
            FileOp::Truncate => "truncate",
        }
    }

    /// Whether the event names a destination after its source.
    pub fn has_destination(self) -> bool {
        matches!(self, FileOp::Rename | FileOp::Link)
    }
}

/// What an event number means for the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A `process_events` row.
    Process {
        /// What the call does.
        op: ProcessOp,
        /// The system call's name.
        syscall: &'static str,
    },
    /// A `process_file_events` row.
    File {
        /// What the call does.
        op: FileOp,
        /// For opens, the access the event number encodes
        /// (`O_RDWR|O_CREAT`); `None` for "attr only" opens, whose flags are
        /// only in an argument token.
        open_flags: Option<&'static str>,
    },
    /// A `socket_events` row.
    Socket(SocketOp),
    /// A `user_events` row.
    User,
}

impl EventKind {
    /// The table the event feeds.
    pub fn table(self) -> BsmTable {
        match self {
            EventKind::Process { .. } => BsmTable::Process,
            EventKind::File { .. } => BsmTable::ProcessFile,
            EventKind::Socket(_) => BsmTable::Socket,
            EventKind::User => BsmTable::User,
        }
    }
}

/// The open variants, in the order of their event numbers: read, read+creat,
/// read+trunc, read+creat+trunc, write…, read-write… The three ranges (open,
/// openat, open_extended) use the same order.
const OPEN_FLAGS: [&str; 12] = [
    "O_RDONLY",
    "O_RDONLY|O_CREAT",
    "O_RDONLY|O_TRUNC",
    "O_RDONLY|O_CREAT|O_TRUNC",
    "O_WRONLY",
    "O_WRONLY|O_CREAT",
    "O_WRONLY|O_TRUNC",
    "O_WRONLY|O_CREAT|O_TRUNC",
    "O_RDWR",
    "O_RDWR|O_CREAT",
    "O_RDWR|O_TRUNC",
    "O_RDWR|O_CREAT|O_TRUNC",
];

/// Darwin's old number for sudo(1), in the `ad` class rather than `aa`.
const AUE_DARWIN_SUDO: u16 = 6300;

fn open(flags: Option<&'static str>) -> Option<EventKind> {
    Some(EventKind::File {
        op: FileOp::Open,
        open_flags: flags,
    })
}

fn file(op: FileOp) -> Option<EventKind> {
    Some(EventKind::File {
        op,
        open_flags: None,
    })
}

fn process(op: ProcessOp, syscall: &'static str) -> Option<EventKind> {
    Some(EventKind::Process { op, syscall })
}

/// What an event number feeds, or `None` if no table wants it.
///
/// ```
/// use sluice_ingest::bsm::mapping::{classify, BsmTable};
///
/// assert_eq!(classify(23).map(|k| k.table()), Some(BsmTable::Process)); // execve
/// assert_eq!(classify(32800).map(|k| k.table()), Some(BsmTable::User)); // OpenSSH login
/// assert_eq!(classify(45000), None); // audit startup
/// ```
pub fn classify(event: u16) -> Option<EventKind> {
    use ProcessOp::*;
    match event {
        1 => process(Exit, "exit"),
        2 => process(Fork, "fork"),
        7 => process(Exec, "exec"),
        23 => process(Exec, "execve"),
        25 => process(Fork, "vfork"),
        241 => process(Fork, "fork1"),
        353 | 43043 => process(Fork, "rfork"),
        43131 => process(Exec, "mac_execve"),
        43144 => process(Exec, "fexecve"),
        43190 => process(Spawn, "posix_spawn"),
        43197 => process(Fork, "pdfork"),
        43262 => process(Exec, "execveat"),

        32 | 43208 => Some(EventKind::Socket(SocketOp::Connect)),
        33 => Some(EventKind::Socket(SocketOp::Accept)),
        34 | 43207 => Some(EventKind::Socket(SocketOp::Bind)),

        // open(2) - attr only, openat(2) - attr only, open_extended(2) - attr only.
        3 | 43184 | 43169 => open(None),
        4 => open(Some("O_WRONLY|O_CREAT|O_TRUNC")), // creat(2)
        72..=83 => open(OPEN_FLAGS.get(usize::from(event - 72)).copied()),
        270..=281 => open(OPEN_FLAGS.get(usize::from(event - 270)).copied()),
        43170..=43181 => open(OPEN_FLAGS.get(usize::from(event - 43170)).copied()),
        42 | 282 => file(FileOp::Rename),
        6 | 286 => file(FileOp::Unlink),
        5 | 43147 => file(FileOp::Link),
        // chmod, fchmod, lchmod (Darwin and FreeBSD numbers), fchmodat, and
        // Darwin's chmod_extended and fchmod_extended.
        10 | 39 | 354 | 43044 | 43146 | 43163 | 43164 => file(FileOp::Chmod),
        // chown, fchown, lchown, fchownat.
        11 | 38 | 237 | 284 => file(FileOp::Chown),
        43 | 44 | 329 | 330 => file(FileOp::Truncate),

        AUE_DARWIN_SUDO => Some(EventKind::User),
        _ => events::event(event)
            .filter(|e| e.in_classes(user_class_mask()))
            .map(|_| EventKind::User),
    }
}

/// The `lo` and `aa` classes: login/logout and authentication.
fn user_class_mask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        events::class_mask("lo").unwrap_or(0) | events::class_mask("aa").unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_events_land_in_their_tables() {
        let table = |n| classify(n).map(EventKind::table);
        for n in [23, 43190, 2, 25, 1] {
            assert_eq!(table(n), Some(BsmTable::Process), "{n}");
        }
        for n in [32, 33, 34] {
            assert_eq!(table(n), Some(BsmTable::Socket), "{n}");
        }
        for n in [72, 83, 3, 42, 6, 5, 10, 11, 43, 44, 286, 282] {
            assert_eq!(table(n), Some(BsmTable::ProcessFile), "{n}");
        }
        // login, logout, su, sudo (both numbers), ssh, OpenSSH, auth_user.
        for n in [6152, 6153, 6159, 45028, 6300, 6172, 32800, 45023] {
            assert_eq!(table(n), Some(BsmTable::User), "{n}");
        }
        // audit startup, audit shutdown, kill(2), an unknown number.
        for n in [45000, 45001, 37, 9999] {
            assert_eq!(table(n), None, "{n}");
        }
    }

    #[test]
    fn open_numbers_carry_their_access() {
        let flags = |n| match classify(n) {
            Some(EventKind::File { open_flags, .. }) => open_flags,
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(flags(72), Some("O_RDONLY"));
        assert_eq!(flags(83), Some("O_RDWR|O_CREAT|O_TRUNC"));
        assert_eq!(flags(277), Some("O_WRONLY|O_CREAT|O_TRUNC"));
        assert_eq!(flags(43178), Some("O_RDWR"));
        assert_eq!(flags(3), None);
        // The descriptions in audit_event agree with the table above.
        for (n, desc) in [
            (73, "read,creat"),
            (78, "write,trunc"),
            (81, "read,write,creat"),
        ] {
            assert!(events::event(n).unwrap().description.ends_with(desc), "{n}");
        }
    }
}
