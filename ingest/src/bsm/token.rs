//! BSM tokens, read in place.
//!
//! A record is a header token, body tokens and a trailer token; every token
//! starts with a one-byte id that fixes the layout of what follows (see
//! `../shared/BSM_TOKENS.md`). This module says what each token holds:
//! [`Token`] and the structs of its variants, which borrow their strings
//! from the input, so nothing is copied. [`parse_token`] reads
//! one token at an offset of a buffer; a token's length is known once it is
//! read, so the next token starts right after it.
//!
//! All integers are big-endian. Ports in `socket`, `sockinet` and `iport`
//! tokens are stored in network order too, so they read as ordinary
//! big-endian numbers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod read;

pub use read::{TokenError, TokenErrorKind, c_string, parse_token, tokens};

/// The token ids sluice reads.
pub mod id {
    /// `file` (other_file32): a stand-alone token at the start or end of a
    /// Solaris trail, or inside a record.
    pub const FILE: u8 = 0x11;
    /// `trailer`.
    pub const TRAILER: u8 = 0x13;
    /// `header32`.
    pub const HEADER32: u8 = 0x14;
    /// `header32_ex`.
    pub const HEADER32_EX: u8 = 0x15;
    /// `data` (arbitrary).
    pub const DATA: u8 = 0x21;
    /// `ipc`.
    pub const IPC: u8 = 0x22;
    /// `path`.
    pub const PATH: u8 = 0x23;
    /// `subject32`.
    pub const SUBJECT32: u8 = 0x24;
    /// `process32`.
    pub const PROCESS32: u8 = 0x26;
    /// `return32`.
    pub const RETURN32: u8 = 0x27;
    /// `text`.
    pub const TEXT: u8 = 0x28;
    /// `opaque`.
    pub const OPAQUE: u8 = 0x29;
    /// `in_addr`.
    pub const IN_ADDR: u8 = 0x2a;
    /// `ip`.
    pub const IP: u8 = 0x2b;
    /// `iport`.
    pub const IPORT: u8 = 0x2c;
    /// `arg32`.
    pub const ARG32: u8 = 0x2d;
    /// `socket`.
    pub const SOCKET: u8 = 0x2e;
    /// `seq`.
    pub const SEQ: u8 = 0x2f;
    /// `ipc_perm`.
    pub const IPC_PERM: u8 = 0x32;
    /// `priv` (privilege set).
    pub const PRIV: u8 = 0x38;
    /// `upriv` (use of privilege).
    pub const UPRIV: u8 = 0x39;
    /// `newgroups`.
    pub const NEWGROUPS: u8 = 0x3b;
    /// `exec_args`.
    pub const EXEC_ARGS: u8 = 0x3c;
    /// `exec_env`.
    pub const EXEC_ENV: u8 = 0x3d;
    /// `attr32`.
    pub const ATTR32: u8 = 0x3e;
    /// `exit`.
    pub const EXIT: u8 = 0x52;
    /// `zonename`.
    pub const ZONENAME: u8 = 0x60;
    /// `arg64`.
    pub const ARG64: u8 = 0x71;
    /// `return64`.
    pub const RETURN64: u8 = 0x72;
    /// `attr64`.
    pub const ATTR64: u8 = 0x73;
    /// `header64`.
    pub const HEADER64: u8 = 0x74;
    /// `subject64`.
    pub const SUBJECT64: u8 = 0x75;
    /// `process64`.
    pub const PROCESS64: u8 = 0x77;
    /// `header64_ex`.
    pub const HEADER64_EX: u8 = 0x79;
    /// `subject32_ex`.
    pub const SUBJECT32_EX: u8 = 0x7a;
    /// `process32_ex`.
    pub const PROCESS32_EX: u8 = 0x7b;
    /// `subject64_ex`.
    pub const SUBJECT64_EX: u8 = 0x7c;
    /// `process64_ex`.
    pub const PROCESS64_EX: u8 = 0x7d;
    /// `in_addr_ex`.
    pub const IN_ADDR_EX: u8 = 0x7e;
    /// `socket_ex`.
    pub const SOCKET_EX: u8 = 0x7f;
    /// `sockinet32` (Darwin, FreeBSD).
    pub const SOCKINET32: u8 = 0x80;
    /// `sockinet128` (Darwin, FreeBSD).
    pub const SOCKINET128: u8 = 0x81;
    /// `sockunix` (Darwin, FreeBSD).
    pub const SOCKUNIX: u8 = 0x82;
    /// `arg_uuid` (OpenBSM 2017+).
    pub const ARG_UUID: u8 = 0x84;
    /// `ret_uuid` (OpenBSM 2017+).
    pub const RET_UUID: u8 = 0x85;
    /// Apple's code-signing `identity`.
    pub const IDENTITY: u8 = 0xed;

    /// Whether `b` is the id of one of the four header tokens.
    #[inline]
    pub fn is_header(b: u8) -> bool {
        matches!(b, HEADER32 | HEADER32_EX | HEADER64 | HEADER64_EX)
    }
}

/// The size of a trailer token: id, magic, record length.
pub const TRAILER_LEN: usize = 7;
/// The trailer's magic number.
pub const TRAILER_MAGIC: u16 = 0xb105;

/// Which of the four header layouts a record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderForm {
    /// `header32`: 32-bit seconds and milliseconds.
    Bits32,
    /// `header32_ex`: with the host address.
    Bits32Ex,
    /// `header64`: 64-bit seconds and milliseconds.
    Bits64,
    /// `header64_ex`: 64-bit, with the host address.
    Bits64Ex,
}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The layout.
    pub form: HeaderForm,
    /// The whole record's length, header and trailer included.
    pub record_len: u32,
    /// The format version: 11 for OpenBSM 1.1+, 10 for OpenBSM 1.0.
    pub version: u8,
    /// The event number (see [`super::events`]).
    pub event: u16,
    /// The event modifier bits (0x4000 not attributable, 0x8000 failure).
    pub modifier: u16,
    /// The host address, in the `_ex` forms.
    pub host: Option<IpAddr>,
    /// Seconds since the epoch.
    pub seconds: u64,
    /// Milliseconds past `seconds` (not microseconds, whatever some decoders
    /// assume).
    pub msec: u64,
}

impl Header {
    /// The event time in nanoseconds since the epoch, with millisecond
    /// precision; saturates rather than overflow on absurd values.
    pub fn time_ns(&self) -> i64 {
        let secs = i64::try_from(self.seconds).unwrap_or(i64::MAX);
        let msec = i64::try_from(self.msec).unwrap_or(i64::MAX);
        secs.saturating_mul(1_000_000_000)
            .saturating_add(msec.saturating_mul(1_000_000))
    }
}

/// Which of the four subject (or process) layouts a token uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectForm {
    /// 32-bit terminal port, IPv4 terminal address.
    Bits32,
    /// 64-bit terminal port, IPv4 terminal address.
    Bits64,
    /// 32-bit port, address with its type (IPv4 or IPv6).
    Bits32Ex,
    /// 64-bit port, address with its type.
    Bits64Ex,
}

/// The body of a subject or process token: who acted (or was acted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    /// Audit user id (0xFFFFFFFF when unset).
    pub auid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Real user id.
    pub ruid: u32,
    /// Real group id.
    pub rgid: u32,
    /// Process id.
    pub pid: u32,
    /// Audit session id.
    pub sid: u32,
    /// Terminal port (a device number, or a remote port for network logins).
    pub tid_port: u64,
    /// Terminal machine address.
    pub tid_addr: IpAddr,
}

/// A return token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Return {
    /// Whether it is `return64`.
    pub bits64: bool,
    /// BSM error number; 0 is success.
    pub status: u8,
    /// The return value.
    pub value: u64,
}

/// An `arg32` or `arg64` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg<'a> {
    /// Whether it is `arg64`.
    pub bits64: bool,
    /// The argument's position.
    pub number: u8,
    /// Its value.
    pub value: u64,
    /// What it is (`fd`, `flags`, `child PID`…), NUL included.
    pub description: &'a [u8],
}

/// An `arg_uuid` or `ret_uuid` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UuidArg<'a> {
    /// The argument's position.
    pub number: u8,
    /// The UUID, big-endian as on the wire.
    pub uuid: [u8; 16],
    /// What it is, NUL included.
    pub description: &'a [u8],
}

/// NUL-terminated strings laid end to end (`exec_args`, `exec_env`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strings<'a> {
    /// How many strings.
    pub count: u32,
    /// The strings, each followed by its NUL.
    pub bytes: &'a [u8],
}

impl<'a> Strings<'a> {
    /// The strings, without their NULs.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        // Arguments are short: a plain split beats a memchr call per string.
        self.bytes
            .split_inclusive(|&b| b == 0)
            .map(|s| s.strip_suffix(&[0]).unwrap_or(s))
    }
}

/// An `attr32` or `attr64` token: a file's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Whether it is `attr64` (64-bit device).
    pub bits64: bool,
    /// File mode, type bits included.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// File system id.
    pub fsid: u32,
    /// Inode number.
    pub node_id: u64,
    /// Device.
    pub device: u64,
}

/// The 20-byte IPv4 header of an `ip` token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader {
    /// Version and header length.
    pub version: u8,
    /// Type of service.
    pub tos: u8,
    /// Total length.
    pub len: u16,
    /// Identification.
    pub id: u16,
    /// Fragment offset.
    pub offset: u16,
    /// Time to live.
    pub ttl: u8,
    /// Protocol.
    pub protocol: u8,
    /// Checksum.
    pub checksum: u16,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

/// A `data` (arbitrary) token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data<'a> {
    /// How to print: 0 binary, 1 octal, 2 decimal, 3 hex, 4 string.
    pub print_format: u8,
    /// Unit: 0 byte, 1 short, 2 int32, 3 int64.
    pub unit_type: u8,
    /// How many units.
    pub unit_count: u8,
    /// The units, `unit_count × size` bytes.
    pub data: &'a [u8],
}

impl Data<'_> {
    /// The size in bytes of one unit of `unit_type`, if it is a known unit.
    pub fn unit_size(unit_type: u8) -> Option<usize> {
        match unit_type {
            0 => Some(1),
            1 => Some(2),
            2 => Some(4),
            3 => Some(8),
            _ => None,
        }
    }

    /// The units as unsigned numbers, big-endian.
    pub fn units(&self) -> impl Iterator<Item = u64> + '_ {
        let size = Self::unit_size(self.unit_type).unwrap_or(1);
        self.data
            .chunks_exact(size)
            .map(|c| c.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }
}

/// Apple's `identity` token: the code signature of the acting process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Signer type.
    pub signer_type: u32,
    /// Signing identifier, NUL included.
    pub signing_id: &'a [u8],
    /// Whether the signing id was truncated.
    pub signing_id_truncated: u8,
    /// Team identifier, NUL included.
    pub team_id: &'a [u8],
    /// Whether the team id was truncated.
    pub team_id_truncated: u8,
    /// The code directory hash, raw bytes.
    pub cdhash: &'a [u8],
}

/// One token, borrowing its variable-length parts from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // field names follow BSM_TOKENS.md
pub enum Token<'a> {
    /// Any of the four header tokens.
    Header(Header),
    /// The trailer.
    Trailer { magic: u16, record_len: u32 },
    /// The acting process.
    Subject(SubjectForm, Subject),
    /// A process acted on.
    Process(SubjectForm, Subject),
    /// The system call's result.
    Return(Return),
    /// A path, NUL included.
    Path(&'a [u8]),
    /// Free text, NUL included.
    Text(&'a [u8]),
    /// A system call argument.
    Arg(Arg<'a>),
    /// A UUID argument.
    ArgUuid(UuidArg<'a>),
    /// A UUID return value.
    RetUuid(UuidArg<'a>),
    /// The argument vector of an exec.
    ExecArgs(Strings<'a>),
    /// The environment of an exec.
    ExecEnv(Strings<'a>),
    /// File attributes.
    Attr(Attr),
    /// An exit status.
    Exit { status: u32, value: u32 },
    /// A trail file name with its time.
    File {
        seconds: u32,
        msec: u32,
        name: &'a [u8],
    },
    /// A sequence number.
    Seq(u32),
    /// An IPC object.
    Ipc { object_type: u8, id: u32 },
    /// IPC permissions.
    IpcPerm {
        uid: u32,
        gid: u32,
        creator_uid: u32,
        creator_gid: u32,
        mode: u32,
        seq: u32,
        key: u32,
    },
    /// A socket, IPv4 only.
    Socket {
        socket_type: u16,
        local_port: u16,
        local_addr: Ipv4Addr,
        remote_port: u16,
        remote_addr: Ipv4Addr,
    },
    /// A socket with its domain and address type.
    SocketEx {
        domain: u16,
        socket_type: u16,
        addr_type: u16,
        local_port: u16,
        local_addr: IpAddr,
        remote_port: u16,
        remote_addr: IpAddr,
    },
    /// An IPv4 socket address.
    SockInet32 {
        family: u16,
        port: u16,
        addr: Ipv4Addr,
    },
    /// An IPv6 socket address.
    SockInet128 {
        family: u16,
        port: u16,
        addr: Ipv6Addr,
    },
    /// A UNIX socket address; the path includes its NUL.
    SockUnix { family: u16, path: &'a [u8] },
    /// An IPv4 address.
    InAddr(Ipv4Addr),
    /// An IPv4 or IPv6 address.
    InAddrEx(IpAddr),
    /// A port.
    Iport(u16),
    /// An IPv4 header.
    Ip(IpHeader),
    /// Opaque bytes.
    Opaque(&'a [u8]),
    /// Arbitrary data.
    Data(Data<'a>),
    /// A Solaris zone name, NUL included.
    Zonename(&'a [u8]),
    /// A group list: `count` big-endian u32 gids.
    NewGroups { count: u16, gids: &'a [u8] },
    /// Use of a privilege.
    Upriv { success: u8, privilege: &'a [u8] },
    /// A privilege set.
    Privset {
        set_type: &'a [u8],
        privileges: &'a [u8],
    },
    /// Apple's code-signing identity.
    Identity(Identity<'a>),
}

impl Token<'_> {
    /// The token's id byte.
    pub fn id(&self) -> u8 {
        match self {
            Token::Header(h) => match h.form {
                HeaderForm::Bits32 => id::HEADER32,
                HeaderForm::Bits32Ex => id::HEADER32_EX,
                HeaderForm::Bits64 => id::HEADER64,
                HeaderForm::Bits64Ex => id::HEADER64_EX,
            },
            Token::Trailer { .. } => id::TRAILER,
            Token::Subject(form, _) => match form {
                SubjectForm::Bits32 => id::SUBJECT32,
                SubjectForm::Bits64 => id::SUBJECT64,
                SubjectForm::Bits32Ex => id::SUBJECT32_EX,
                SubjectForm::Bits64Ex => id::SUBJECT64_EX,
            },
            Token::Process(form, _) => match form {
                SubjectForm::Bits32 => id::PROCESS32,
                SubjectForm::Bits64 => id::PROCESS64,
                SubjectForm::Bits32Ex => id::PROCESS32_EX,
                SubjectForm::Bits64Ex => id::PROCESS64_EX,
            },
            Token::Return(r) if r.bits64 => id::RETURN64,
            Token::Return(_) => id::RETURN32,
            Token::Path(_) => id::PATH,
            Token::Text(_) => id::TEXT,
            Token::Arg(a) if a.bits64 => id::ARG64,
            Token::Arg(_) => id::ARG32,
            Token::ArgUuid(_) => id::ARG_UUID,
            Token::RetUuid(_) => id::RET_UUID,
            Token::ExecArgs(_) => id::EXEC_ARGS,
            Token::ExecEnv(_) => id::EXEC_ENV,
            Token::Attr(a) if a.bits64 => id::ATTR64,
            Token::Attr(_) => id::ATTR32,
            Token::Exit { .. } => id::EXIT,
            Token::File { .. } => id::FILE,
            Token::Seq(_) => id::SEQ,
            Token::Ipc { .. } => id::IPC,
            Token::IpcPerm { .. } => id::IPC_PERM,
            Token::Socket { .. } => id::SOCKET,
            Token::SocketEx { .. } => id::SOCKET_EX,
            Token::SockInet32 { .. } => id::SOCKINET32,
            Token::SockInet128 { .. } => id::SOCKINET128,
            Token::SockUnix { .. } => id::SOCKUNIX,
            Token::InAddr(_) => id::IN_ADDR,
            Token::InAddrEx(_) => id::IN_ADDR_EX,
            Token::Iport(_) => id::IPORT,
            Token::Ip(_) => id::IP,
            Token::Opaque(_) => id::OPAQUE,
            Token::Data(_) => id::DATA,
            Token::Zonename(_) => id::ZONENAME,
            Token::NewGroups { .. } => id::NEWGROUPS,
            Token::Upriv { .. } => id::UPRIV,
            Token::Privset { .. } => id::PRIV,
            Token::Identity(_) => id::IDENTITY,
        }
    }
}
