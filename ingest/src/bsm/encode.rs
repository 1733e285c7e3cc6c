//! Writing BSM records, for tests, benchmarks and fuzzing seeds.
//!
//! sluice only reads audit trails in production; this writer exists so that
//! tests can build exactly the records they need (an identity token, an IPv6
//! subject, a socket address) and benchmarks can generate a trail of any
//! size. It writes what libbsm writes: big-endian integers, strings with a
//! u16 length that counts their NUL, and a trailer that repeats the record
//! length.
//!
//! ```
//! use sluice_ingest::bsm::encode::RecordWriter;
//!
//! let record = RecordWriter::new(23, 1_700_000_000, 5)
//!     .exec_args(["ls", "-l"])
//!     .path("/bin/ls")
//!     .subject32(501, 501, 20, 501, 20, 4242, 100001, 0, [0, 0, 0, 0])
//!     .return32(0, 0)
//!     .finish();
//! assert_eq!(record[0], 0x14); // header32
//! assert_eq!(&record[record.len() - 7..record.len() - 4], &[0x13, 0xb1, 0x05]);
//! ```

use std::net::IpAddr;

use super::token::{Attr, HeaderForm, SubjectForm, TRAILER_MAGIC, id};

/// Builds one record, token by token; [`finish`](Self::finish) fills in the
/// lengths and appends the trailer.
#[derive(Debug, Clone)]
pub struct RecordWriter {
    buf: Vec<u8>,
}

fn put_ip(buf: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
    }
}

fn addr_type(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

/// A string with its u16 length, NUL added.
fn put_counted(buf: &mut Vec<u8>, s: &[u8]) {
    let len = u16::try_from(s.len() + 1).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&s[..usize::from(len) - 1]);
    buf.push(0);
}

impl RecordWriter {
    /// A record with a version-11 `header32`: event number, seconds and
    /// milliseconds, no modifier.
    pub fn new(event: u16, seconds: u32, msec: u32) -> Self {
        Self::with_header(
            HeaderForm::Bits32,
            11,
            event,
            0,
            None,
            u64::from(seconds),
            u64::from(msec),
        )
    }

    /// A record with any header form and version. `host` is written by the
    /// `_ex` forms only (IPv4 if `None`).
    pub fn with_header(
        form: HeaderForm,
        version: u8,
        event: u16,
        modifier: u16,
        host: Option<IpAddr>,
        seconds: u64,
        msec: u64,
    ) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.push(match form {
            HeaderForm::Bits32 => id::HEADER32,
            HeaderForm::Bits32Ex => id::HEADER32_EX,
            HeaderForm::Bits64 => id::HEADER64,
            HeaderForm::Bits64Ex => id::HEADER64_EX,
        });
        buf.extend_from_slice(&[0; 4]); // record length, filled by finish
        buf.push(version);
        buf.extend_from_slice(&event.to_be_bytes());
        buf.extend_from_slice(&modifier.to_be_bytes());
        if matches!(form, HeaderForm::Bits32Ex | HeaderForm::Bits64Ex) {
            let host = host.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            buf.extend_from_slice(&addr_type(host).to_be_bytes());
            put_ip(&mut buf, host);
        }
        match form {
            HeaderForm::Bits32 | HeaderForm::Bits32Ex => {
                buf.extend_from_slice(&(seconds as u32).to_be_bytes());
                buf.extend_from_slice(&(msec as u32).to_be_bytes());
            }
            HeaderForm::Bits64 | HeaderForm::Bits64Ex => {
                buf.extend_from_slice(&seconds.to_be_bytes());
                buf.extend_from_slice(&msec.to_be_bytes());
            }
        }
        Self { buf }
    }

    /// Appends raw token bytes (an id and its body), for tokens this writer
    /// has no method for, or deliberately wrong ones.
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// A `subject32` token (IPv4 terminal address).
    #[allow(clippy::too_many_arguments)]
    pub fn subject32(
        self,
        auid: u32,
        euid: u32,
        egid: u32,
        ruid: u32,
        rgid: u32,
        pid: u32,
        sid: u32,
        tid_port: u32,
        tid_addr: [u8; 4],
    ) -> Self {
        self.subject(
            SubjectForm::Bits32,
            [auid, euid, egid, ruid, rgid, pid, sid],
            u64::from(tid_port),
            IpAddr::from(tid_addr),
        )
    }

    /// A subject token of any form; `ids` are auid, euid, egid, ruid, rgid,
    /// pid and sid.
    pub fn subject(
        self,
        form: SubjectForm,
        ids: [u32; 7],
        tid_port: u64,
        tid_addr: IpAddr,
    ) -> Self {
        let token = match form {
            SubjectForm::Bits32 => id::SUBJECT32,
            SubjectForm::Bits64 => id::SUBJECT64,
            SubjectForm::Bits32Ex => id::SUBJECT32_EX,
            SubjectForm::Bits64Ex => id::SUBJECT64_EX,
        };
        self.subject_like(token, form, ids, tid_port, tid_addr)
    }

    /// A process token of any form (same layout as a subject).
    pub fn process(
        self,
        form: SubjectForm,
        ids: [u32; 7],
        tid_port: u64,
        tid_addr: IpAddr,
    ) -> Self {
        let token = match form {
            SubjectForm::Bits32 => id::PROCESS32,
            SubjectForm::Bits64 => id::PROCESS64,
            SubjectForm::Bits32Ex => id::PROCESS32_EX,
            SubjectForm::Bits64Ex => id::PROCESS64_EX,
        };
        self.subject_like(token, form, ids, tid_port, tid_addr)
    }

    fn subject_like(
        mut self,
        token: u8,
        form: SubjectForm,
        ids: [u32; 7],
        tid_port: u64,
        tid_addr: IpAddr,
    ) -> Self {
        self.buf.push(token);
        for v in ids {
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        match form {
            SubjectForm::Bits32 | SubjectForm::Bits32Ex => {
                self.buf.extend_from_slice(&(tid_port as u32).to_be_bytes())
            }
            SubjectForm::Bits64 | SubjectForm::Bits64Ex => {
                self.buf.extend_from_slice(&tid_port.to_be_bytes())
            }
        }
        match form {
            SubjectForm::Bits32 | SubjectForm::Bits64 => {
                let v4 = match tid_addr {
                    IpAddr::V4(a) => a.octets(),
                    IpAddr::V6(_) => [0; 4],
                };
                self.buf.extend_from_slice(&v4);
            }
            SubjectForm::Bits32Ex | SubjectForm::Bits64Ex => {
                self.buf
                    .extend_from_slice(&addr_type(tid_addr).to_be_bytes());
                put_ip(&mut self.buf, tid_addr);
            }
        }
        self
    }

    /// A `return32` token.
    pub fn return32(mut self, status: u8, value: u32) -> Self {
        self.buf.push(id::RETURN32);
        self.buf.push(status);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A `return64` token.
    pub fn return64(mut self, status: u8, value: u64) -> Self {
        self.buf.push(id::RETURN64);
        self.buf.push(status);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A `path` token.
    pub fn path(mut self, path: impl AsRef<[u8]>) -> Self {
        self.buf.push(id::PATH);
        put_counted(&mut self.buf, path.as_ref());
        self
    }

    /// A `text` token.
    pub fn text(mut self, text: impl AsRef<[u8]>) -> Self {
        self.buf.push(id::TEXT);
        put_counted(&mut self.buf, text.as_ref());
        self
    }

    /// An `arg32` token.
    pub fn arg32(mut self, number: u8, value: u32, description: &str) -> Self {
        self.buf.push(id::ARG32);
        self.buf.push(number);
        self.buf.extend_from_slice(&value.to_be_bytes());
        put_counted(&mut self.buf, description.as_bytes());
        self
    }

    /// An `arg64` token.
    pub fn arg64(mut self, number: u8, value: u64, description: &str) -> Self {
        self.buf.push(id::ARG64);
        self.buf.push(number);
        self.buf.extend_from_slice(&value.to_be_bytes());
        put_counted(&mut self.buf, description.as_bytes());
        self
    }

    fn strings<I>(mut self, token: u8, strings: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.buf.push(token);
        let count_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let mut count = 0u32;
        for s in strings {
            self.buf.extend_from_slice(s.as_ref());
            self.buf.push(0);
            count += 1;
        }
        self.buf[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
        self
    }

    /// An `exec_args` token.
    pub fn exec_args<I>(self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.strings(id::EXEC_ARGS, args)
    }

    /// An `exec_env` token.
    pub fn exec_env<I>(self, env: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.strings(id::EXEC_ENV, env)
    }

    /// An `attr32` (or, with `attr.bits64`, `attr64`) token.
    pub fn attr(mut self, attr: &Attr) -> Self {
        self.buf
            .push(if attr.bits64 { id::ATTR64 } else { id::ATTR32 });
        for v in [attr.mode, attr.uid, attr.gid, attr.fsid] {
            self.buf.extend_from_slice(&v.to_be_bytes());
        }
        self.buf.extend_from_slice(&attr.node_id.to_be_bytes());
        if attr.bits64 {
            self.buf.extend_from_slice(&attr.device.to_be_bytes());
        } else {
            self.buf
                .extend_from_slice(&(attr.device as u32).to_be_bytes());
        }
        self
    }

    /// An `exit` token.
    pub fn exit(mut self, status: u32, value: u32) -> Self {
        self.buf.push(id::EXIT);
        self.buf.extend_from_slice(&status.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A `sockinet32` token (family in BSM numbering: 2 for IPv4).
    pub fn sock_inet32(mut self, family: u16, port: u16, addr: [u8; 4]) -> Self {
        self.buf.push(id::SOCKINET32);
        self.buf.extend_from_slice(&family.to_be_bytes());
        self.buf.extend_from_slice(&port.to_be_bytes());
        self.buf.extend_from_slice(&addr);
        self
    }

    /// A `sockinet128` token (family 26 is BSM's IPv6).
    pub fn sock_inet128(mut self, family: u16, port: u16, addr: [u8; 16]) -> Self {
        self.buf.push(id::SOCKINET128);
        self.buf.extend_from_slice(&family.to_be_bytes());
        self.buf.extend_from_slice(&port.to_be_bytes());
        self.buf.extend_from_slice(&addr);
        self
    }

    /// A `sockunix` token.
    pub fn sock_unix(mut self, family: u16, path: impl AsRef<[u8]>) -> Self {
        self.buf.push(id::SOCKUNIX);
        self.buf.extend_from_slice(&family.to_be_bytes());
        self.buf.extend_from_slice(path.as_ref());
        self.buf.push(0);
        self
    }

    /// A `socket_ex` token; both addresses must be of the same family.
    pub fn socket_ex(
        mut self,
        domain: u16,
        socket_type: u16,
        local: (u16, IpAddr),
        remote: (u16, IpAddr),
    ) -> Self {
        self.buf.push(id::SOCKET_EX);
        self.buf.extend_from_slice(&domain.to_be_bytes());
        self.buf.extend_from_slice(&socket_type.to_be_bytes());
        self.buf
            .extend_from_slice(&(addr_type(local.1) as u16).to_be_bytes());
        self.buf.extend_from_slice(&local.0.to_be_bytes());
        put_ip(&mut self.buf, local.1);
        self.buf.extend_from_slice(&remote.0.to_be_bytes());
        put_ip(&mut self.buf, remote.1);
        self
    }

    /// Apple's `identity` token.
    pub fn identity(
        mut self,
        signer_type: u32,
        signing_id: &str,
        team_id: &str,
        cdhash: &[u8],
    ) -> Self {
        self.buf.push(id::IDENTITY);
        self.buf.extend_from_slice(&signer_type.to_be_bytes());
        put_counted(&mut self.buf, signing_id.as_bytes());
        self.buf.push(0);
        put_counted(&mut self.buf, team_id.as_bytes());
        self.buf.push(0);
        let len = u16::try_from(cdhash.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&cdhash[..usize::from(len)]);
        self
    }

    /// Fills in the record length and appends the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        let len = (self.buf.len() + 7) as u32;
        self.buf[1..5].copy_from_slice(&len.to_be_bytes());
        self.buf.push(id::TRAILER);
        self.buf.extend_from_slice(&TRAILER_MAGIC.to_be_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf
    }
}

/// A stand-alone `file` token, as Solaris writes at the start and end of a
/// trail.
pub fn file_token(seconds: u32, msec: u32, name: &str) -> Vec<u8> {
    let mut buf = vec![id::FILE];
    buf.extend_from_slice(&seconds.to_be_bytes());
    buf.extend_from_slice(&msec.to_be_bytes());
    put_counted(&mut buf, name.as_bytes());
    buf
}
