//! Reading one token: every field bounds-checked against the buffer.
//!
//! A token that runs past the end, an unknown id, an address type other
//! than IPv4 or IPv6, or a data unit that does not exist is a [`TokenError`]
//! carrying the offset of the token, never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Arg, Attr, Data, Header, HeaderForm, Identity, IpHeader, Return, Strings, Subject, SubjectForm,
    Token, UuidArg, id,
};

/// What was wrong with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenErrorKind {
    /// The id is not one sluice knows (Apple's 0xee and 0xef included:
    /// their layouts are not published).
    UnknownId,
    /// The token runs past the end of its buffer (its record).
    Short,
    /// An address type other than 4 (IPv4) or 16 (IPv6).
    BadAddressType(u32),
    /// A `data` token's unit is not byte, short, int32 or int64.
    BadUnitType(u8),
}

/// A token that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenError {
    /// Offset of the token's id byte in the buffer that was parsed.
    pub offset: usize,
    /// The token's id byte.
    pub id: u8,
    /// What was wrong.
    pub kind: TokenErrorKind,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TokenErrorKind::UnknownId => write!(f, "unknown token id {:#04x}", self.id),
            TokenErrorKind::Short => {
                write!(f, "token {:#04x} runs past the end of its record", self.id)
            }
            TokenErrorKind::BadAddressType(t) => {
                write!(
                    f,
                    "token {:#04x} has address type {t}, not 4 or 16",
                    self.id
                )
            }
            TokenErrorKind::BadUnitType(u) => {
                write!(f, "data token has unit type {u}, not 0 to 3")
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// A bounds-checked big-endian reader.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Not enough bytes left.
struct Short;

type Read<T> = Result<T, Short>;

impl<'a> Cursor<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Short)
    }

    #[inline]
    fn u8(&mut self) -> Read<u8> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn u16(&mut self) -> Read<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    #[inline]
    fn ipv4(&mut self) -> Read<Ipv4Addr> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }

    /// A u16 length, then that many bytes.
    #[inline]
    fn counted(&mut self) -> Read<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// `count` NUL-terminated strings.
    fn strings(&mut self, count: u32) -> Read<&'a [u8]> {
        let start = self.pos;
        for _ in 0..count {
            // Each string consumes at least its NUL, so a huge count on a
            // short buffer ends at the buffer's end.
            let rest = self.buf.get(self.pos..).ok_or(Short)?;
            let nul = memchr::memchr(0, rest).ok_or(Short)?;
            self.pos += nul + 1;
        }
        self.buf.get(start..self.pos).ok_or(Short)
    }
}

/// Why an address could not be read.
enum AddrError {
    Short,
    BadType(u32),
}

impl From<Short> for AddrError {
    fn from(_: Short) -> Self {
        AddrError::Short
    }
}

/// An address of `addr_type` bytes (4 or 16).
fn address(c: &mut Cursor<'_>, addr_type: u32) -> Result<IpAddr, AddrError> {
    match addr_type {
        4 => Ok(IpAddr::V4(c.ipv4()?)),
        16 => Ok(IpAddr::V6(Ipv6Addr::from(c.array::<16>()?))),
        other => Err(AddrError::BadType(other)),
    }
}

fn subject(c: &mut Cursor<'_>, form: SubjectForm) -> Result<Subject, AddrError> {
    let auid = c.u32()?;
    let euid = c.u32()?;
    let egid = c.u32()?;
    let ruid = c.u32()?;
    let rgid = c.u32()?;
    let pid = c.u32()?;
    let sid = c.u32()?;
    let tid_port = match form {
        SubjectForm::Bits32 | SubjectForm::Bits32Ex => u64::from(c.u32()?),
        SubjectForm::Bits64 | SubjectForm::Bits64Ex => c.u64()?,
    };
    let tid_addr = match form {
        SubjectForm::Bits32 | SubjectForm::Bits64 => IpAddr::V4(c.ipv4()?),
        SubjectForm::Bits32Ex | SubjectForm::Bits64Ex => {
            let addr_type = c.u32()?;
            address(c, addr_type)?
        }
    };
    Ok(Subject {
        auid,
        euid,
        egid,
        ruid,
        rgid,
        pid,
        sid,
        tid_port,
        tid_addr,
    })
}

fn header(c: &mut Cursor<'_>, form: HeaderForm) -> Result<Header, AddrError> {
    let record_len = c.u32()?;
    let version = c.u8()?;
    let event = c.u16()?;
    let modifier = c.u16()?;
    let host = match form {
        HeaderForm::Bits32Ex | HeaderForm::Bits64Ex => {
            let addr_type = c.u32()?;
            Some(address(c, addr_type)?)
        }
        _ => None,
    };
    let (seconds, msec) = match form {
        HeaderForm::Bits32 | HeaderForm::Bits32Ex => (u64::from(c.u32()?), u64::from(c.u32()?)),
        HeaderForm::Bits64 | HeaderForm::Bits64Ex => (c.u64()?, c.u64()?),
    };
    Ok(Header {
        form,
        record_len,
        version,
        event,
        modifier,
        host,
        seconds,
        msec,
    })
}

fn uuid_arg<'a>(c: &mut Cursor<'a>) -> Read<UuidArg<'a>> {
    Ok(UuidArg {
        number: c.u8()?,
        uuid: c.array()?,
        description: c.counted()?,
    })
}

/// Reads the token whose id byte is at `buf[at]`. Returns the token and its
/// length in bytes (id included).
pub fn parse_token(buf: &[u8], at: usize) -> Result<(Token<'_>, usize), TokenError> {
    let Some(&token_id) = buf.get(at) else {
        return Err(TokenError {
            offset: at,
            id: 0,
            kind: TokenErrorKind::Short,
        });
    };
    let mut c = Cursor { buf, pos: at + 1 };
    let error = |kind| TokenError {
        offset: at,
        id: token_id,
        kind,
    };
    let short = |_: Short| error(TokenErrorKind::Short);
    let addr = |e: AddrError| match e {
        AddrError::Short => error(TokenErrorKind::Short),
        AddrError::BadType(t) => error(TokenErrorKind::BadAddressType(t)),
    };
    let token = match token_id {
        id::HEADER32 => Token::Header(header(&mut c, HeaderForm::Bits32).map_err(addr)?),
        id::HEADER32_EX => Token::Header(header(&mut c, HeaderForm::Bits32Ex).map_err(addr)?),
        id::HEADER64 => Token::Header(header(&mut c, HeaderForm::Bits64).map_err(addr)?),
        id::HEADER64_EX => Token::Header(header(&mut c, HeaderForm::Bits64Ex).map_err(addr)?),
        id::TRAILER => Token::Trailer {
            magic: c.u16().map_err(short)?,
            record_len: c.u32().map_err(short)?,
        },
        id::SUBJECT32 | id::SUBJECT64 | id::SUBJECT32_EX | id::SUBJECT64_EX => {
            let form = match token_id {
                id::SUBJECT32 => SubjectForm::Bits32,
                id::SUBJECT64 => SubjectForm::Bits64,
                id::SUBJECT32_EX => SubjectForm::Bits32Ex,
                _ => SubjectForm::Bits64Ex,
            };
            Token::Subject(form, subject(&mut c, form).map_err(addr)?)
        }
        id::PROCESS32 | id::PROCESS64 | id::PROCESS32_EX | id::PROCESS64_EX => {
            let form = match token_id {
                id::PROCESS32 => SubjectForm::Bits32,
                id::PROCESS64 => SubjectForm::Bits64,
                id::PROCESS32_EX => SubjectForm::Bits32Ex,
                _ => SubjectForm::Bits64Ex,
            };
            Token::Process(form, subject(&mut c, form).map_err(addr)?)
        }
        id::RETURN32 => Token::Return(Return {
            bits64: false,
            status: c.u8().map_err(short)?,
            value: u64::from(c.u32().map_err(short)?),
        }),
        id::RETURN64 => Token::Return(Return {
            bits64: true,
            status: c.u8().map_err(short)?,
            value: c.u64().map_err(short)?,
        }),
        id::PATH => Token::Path(c.counted().map_err(short)?),
        id::TEXT => Token::Text(c.counted().map_err(short)?),
        id::ZONENAME => Token::Zonename(c.counted().map_err(short)?),
        id::ARG32 => Token::Arg(Arg {
            bits64: false,
            number: c.u8().map_err(short)?,
            value: u64::from(c.u32().map_err(short)?),
            description: c.counted().map_err(short)?,
        }),
        id::ARG64 => Token::Arg(Arg {
            bits64: true,
            number: c.u8().map_err(short)?,
            value: c.u64().map_err(short)?,
            description: c.counted().map_err(short)?,
        }),
        id::ARG_UUID => Token::ArgUuid(uuid_arg(&mut c).map_err(short)?),
        id::RET_UUID => Token::RetUuid(uuid_arg(&mut c).map_err(short)?),
        id::EXEC_ARGS | id::EXEC_ENV => {
            let count = c.u32().map_err(short)?;
            let strings = Strings {
                count,
                bytes: c.strings(count).map_err(short)?,
            };
            if token_id == id::EXEC_ARGS {
                Token::ExecArgs(strings)
            } else {
                Token::ExecEnv(strings)
            }
        }
        id::ATTR32 | id::ATTR64 => {
            let bits64 = token_id == id::ATTR64;
            Token::Attr(Attr {
                bits64,
                mode: c.u32().map_err(short)?,
                uid: c.u32().map_err(short)?,
                gid: c.u32().map_err(short)?,
                fsid: c.u32().map_err(short)?,
                node_id: c.u64().map_err(short)?,
                device: if bits64 {
                    c.u64().map_err(short)?
                } else {
                    u64::from(c.u32().map_err(short)?)
                },
            })
        }
        id::EXIT => Token::Exit {
            status: c.u32().map_err(short)?,
            value: c.u32().map_err(short)?,
        },
        id::FILE => Token::File {
            seconds: c.u32().map_err(short)?,
            msec: c.u32().map_err(short)?,
            name: c.counted().map_err(short)?,
        },
        id::SEQ => Token::Seq(c.u32().map_err(short)?),
        id::IPC => Token::Ipc {
            object_type: c.u8().map_err(short)?,
            id: c.u32().map_err(short)?,
        },
        id::IPC_PERM => Token::IpcPerm {
            uid: c.u32().map_err(short)?,
            gid: c.u32().map_err(short)?,
            creator_uid: c.u32().map_err(short)?,
            creator_gid: c.u32().map_err(short)?,
            mode: c.u32().map_err(short)?,
            seq: c.u32().map_err(short)?,
            key: c.u32().map_err(short)?,
        },
        id::SOCKET => Token::Socket {
            socket_type: c.u16().map_err(short)?,
            local_port: c.u16().map_err(short)?,
            local_addr: c.ipv4().map_err(short)?,
            remote_port: c.u16().map_err(short)?,
            remote_addr: c.ipv4().map_err(short)?,
        },
        id::SOCKET_EX => {
            let domain = c.u16().map_err(short)?;
            let socket_type = c.u16().map_err(short)?;
            let addr_type = c.u16().map_err(short)?;
            let local_port = c.u16().map_err(short)?;
            let local_addr = address(&mut c, u32::from(addr_type)).map_err(addr)?;
            let remote_port = c.u16().map_err(short)?;
            let remote_addr = address(&mut c, u32::from(addr_type)).map_err(addr)?;
            Token::SocketEx {
                domain,
                socket_type,
                addr_type,
                local_port,
                local_addr,
                remote_port,
                remote_addr,
            }
        }
        id::SOCKINET32 => Token::SockInet32 {
            family: c.u16().map_err(short)?,
            port: c.u16().map_err(short)?,
            addr: c.ipv4().map_err(short)?,
        },
        id::SOCKINET128 => Token::SockInet128 {
            family: c.u16().map_err(short)?,
            port: c.u16().map_err(short)?,
            addr: Ipv6Addr::from(c.array::<16>().map_err(short)?),
        },
        id::SOCKUNIX => {
            let family = c.u16().map_err(short)?;
            // At most 104 path bytes and a NUL; without a NUL among the
            // first 104 bytes, libbsm reads 105.
            let rest = buf.get(c.pos..).unwrap_or_default();
            let window = rest.get(..104).unwrap_or(rest);
            let len = memchr::memchr(0, window).map_or(105, |nul| nul + 1);
            Token::SockUnix {
                family,
                path: c.take(len).map_err(short)?,
            }
        }
        id::IN_ADDR => Token::InAddr(c.ipv4().map_err(short)?),
        id::IN_ADDR_EX => {
            let addr_type = c.u32().map_err(short)?;
            Token::InAddrEx(address(&mut c, addr_type).map_err(addr)?)
        }
        id::IPORT => Token::Iport(c.u16().map_err(short)?),
        id::IP => Token::Ip(IpHeader {
            version: c.u8().map_err(short)?,
            tos: c.u8().map_err(short)?,
            len: c.u16().map_err(short)?,
            id: c.u16().map_err(short)?,
            offset: c.u16().map_err(short)?,
            ttl: c.u8().map_err(short)?,
            protocol: c.u8().map_err(short)?,
            checksum: c.u16().map_err(short)?,
            src: c.ipv4().map_err(short)?,
            dst: c.ipv4().map_err(short)?,
        }),
        id::OPAQUE => Token::Opaque(c.counted().map_err(short)?),
        id::DATA => {
            let print_format = c.u8().map_err(short)?;
            let unit_type = c.u8().map_err(short)?;
            let unit_count = c.u8().map_err(short)?;
            let size = Data::unit_size(unit_type)
                .ok_or_else(|| error(TokenErrorKind::BadUnitType(unit_type)))?;
            Token::Data(Data {
                print_format,
                unit_type,
                unit_count,
                data: c.take(size * usize::from(unit_count)).map_err(short)?,
            })
        }
        id::NEWGROUPS => {
            let count = c.u16().map_err(short)?;
            Token::NewGroups {
                count,
                gids: c.take(4 * usize::from(count)).map_err(short)?,
            }
        }
        id::UPRIV => Token::Upriv {
            success: c.u8().map_err(short)?,
            privilege: c.counted().map_err(short)?,
        },
        id::PRIV => Token::Privset {
            set_type: c.counted().map_err(short)?,
            privileges: c.counted().map_err(short)?,
        },
        id::IDENTITY => Token::Identity(Identity {
            signer_type: c.u32().map_err(short)?,
            signing_id: c.counted().map_err(short)?,
            signing_id_truncated: c.u8().map_err(short)?,
            team_id: c.counted().map_err(short)?,
            team_id_truncated: c.u8().map_err(short)?,
            cdhash: c.counted().map_err(short)?,
        }),
        _ => return Err(error(TokenErrorKind::UnknownId)),
    };
    Ok((token, c.pos - at))
}

/// The tokens of a buffer, one after the other, with their offsets. Stops
/// after the first error.
pub fn tokens(buf: &[u8]) -> impl Iterator<Item = Result<(usize, Token<'_>), TokenError>> + '_ {
    let mut at = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= buf.len() {
            return None;
        }
        match parse_token(buf, at) {
            Ok((token, len)) => {
                let offset = at;
                at += len;
                Some(Ok((offset, token)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// A string token's value: its bytes without the terminating NUL that
/// libbsm counts in the length. Bytes after an embedded NUL (which no
/// kernel writes) are kept rather than cut, so nothing is lost.
#[inline]
pub fn c_string(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = bytes {
        bytes = rest;
    }
    bytes
}
