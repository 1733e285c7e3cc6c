//! The ES event types sluice maps, by name and by number.

/// Which table an event type feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsTable {
    /// `es_process_events`.
    Process,
    /// `es_process_file_events`.
    File,
}

/// The ES event types that sluice maps to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsEventKind {
    /// `ES_EVENT_TYPE_NOTIFY_EXEC` (9).
    Exec,
    /// `ES_EVENT_TYPE_NOTIFY_OPEN` (10): the firehose.
    Open,
    /// `ES_EVENT_TYPE_NOTIFY_FORK` (11).
    Fork,
    /// `ES_EVENT_TYPE_NOTIFY_CLOSE` (12).
    Close,
    /// `ES_EVENT_TYPE_NOTIFY_CREATE` (13).
    Create,
    /// `ES_EVENT_TYPE_NOTIFY_EXCHANGEDATA` (14).
    ExchangeData,
    /// `ES_EVENT_TYPE_NOTIFY_EXIT` (15).
    Exit,
    /// `ES_EVENT_TYPE_NOTIFY_LINK` (19).
    Link,
    /// `ES_EVENT_TYPE_NOTIFY_RENAME` (25).
    Rename,
    /// `ES_EVENT_TYPE_NOTIFY_UNLINK` (32).
    Unlink,
    /// `ES_EVENT_TYPE_NOTIFY_WRITE` (33).
    Write,
    /// `ES_EVENT_TYPE_NOTIFY_TRUNCATE` (41).
    Truncate,
    /// `ES_EVENT_TYPE_NOTIFY_CLONE` (61).
    Clone,
    /// `ES_EVENT_TYPE_NOTIFY_COPYFILE` (110).
    CopyFile,
}

impl EsEventKind {
    /// Every mapped kind.
    pub const ALL: [EsEventKind; 14] = [
        EsEventKind::Exec,
        EsEventKind::Open,
        EsEventKind::Fork,
        EsEventKind::Close,
        EsEventKind::Create,
        EsEventKind::ExchangeData,
        EsEventKind::Exit,
        EsEventKind::Link,
        EsEventKind::Rename,
        EsEventKind::Unlink,
        EsEventKind::Write,
        EsEventKind::Truncate,
        EsEventKind::Clone,
        EsEventKind::CopyFile,
    ];

    /// The event's short name, as eslogger keys its body and as osquery
    /// writes `event_type`.
    pub fn name(self) -> &'static str {
        match self {
            EsEventKind::Exec => "exec",
            EsEventKind::Open => "open",
            EsEventKind::Fork => "fork",
            EsEventKind::Close => "close",
            EsEventKind::Create => "create",
            EsEventKind::ExchangeData => "exchangedata",
            EsEventKind::Exit => "exit",
            EsEventKind::Link => "link",
            EsEventKind::Rename => "rename",
            EsEventKind::Unlink => "unlink",
            EsEventKind::Write => "write",
            EsEventKind::Truncate => "truncate",
            EsEventKind::Clone => "clone",
            EsEventKind::CopyFile => "copyfile",
        }
    }

    /// The `es_event_type_t` number of the NOTIFY variant.
    pub fn number(self) -> i64 {
        match self {
            EsEventKind::Exec => 9,
            EsEventKind::Open => 10,
            EsEventKind::Fork => 11,
            EsEventKind::Close => 12,
            EsEventKind::Create => 13,
            EsEventKind::ExchangeData => 14,
            EsEventKind::Exit => 15,
            EsEventKind::Link => 19,
            EsEventKind::Rename => 25,
            EsEventKind::Unlink => 32,
            EsEventKind::Write => 33,
            EsEventKind::Truncate => 41,
            EsEventKind::Clone => 61,
            EsEventKind::CopyFile => 110,
        }
    }

    /// Looks a kind up by the key of the message's `event` object.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"exec" => EsEventKind::Exec,
            b"open" => EsEventKind::Open,
            b"fork" => EsEventKind::Fork,
            b"close" => EsEventKind::Close,
            b"create" => EsEventKind::Create,
            b"exchangedata" => EsEventKind::ExchangeData,
            b"exit" => EsEventKind::Exit,
            b"link" => EsEventKind::Link,
            b"rename" => EsEventKind::Rename,
            b"unlink" => EsEventKind::Unlink,
            b"write" => EsEventKind::Write,
            b"truncate" => EsEventKind::Truncate,
            b"clone" => EsEventKind::Clone,
            b"copyfile" => EsEventKind::CopyFile,
            _ => return None,
        })
    }

    /// Looks a kind up by its `event_type` number.
    pub fn from_number(number: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.number() == number)
    }

    /// The table the kind feeds.
    pub fn table(self) -> EsTable {
        match self {
            EsEventKind::Exec | EsEventKind::Fork | EsEventKind::Exit => EsTable::Process,
            _ => EsTable::File,
        }
    }
}

/// Names of NOTIFY event types that sluice does not map, so that a summary
/// can say "mmap" rather than "20" when only the number is known.
pub fn unmapped_event_name(number: i64) -> Option<&'static str> {
    Some(match number {
        16 => "get_task",
        17 => "kextload",
        20 => "mmap",
        22 => "mount",
        26 => "setattrlist",
        27 => "setextattr",
        29 => "setmode",
        30 => "setowner",
        31 => "signal",
        55 => "access",
        111 => "authentication",
        114 => "lw_session_login",
        115 => "lw_session_logout",
        120 => "openssh_login",
        121 => "openssh_logout",
        128 => "su",
        131 => "sudo",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for kind in EsEventKind::ALL {
            assert_eq!(EsEventKind::from_name(kind.name().as_bytes()), Some(kind));
            assert_eq!(EsEventKind::from_number(kind.number()), Some(kind));
        }
        assert_eq!(EsEventKind::from_name(b"mmap"), None);
        assert_eq!(unmapped_event_name(20), Some("mmap"));
    }
}
