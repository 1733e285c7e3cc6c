//! Records printed the way OpenBSM's `praudit` prints them.
//!
//! An analyst checks a decoder against the tool they trust. This module
//! prints tokens with praudit's names, field order, number formats and
//! delimiter, so `sluice bsm dump` output can be diffed against
//! `praudit -n -l` (one record per line), `praudit -n` (one token per line)
//! or `praudit -r -l` (raw numbers). sluice never resolves user and group
//! ids through the host's password file: ids always print as numbers, as
//! with praudit's `-n`.
//!
//! Where praudit is wrong, sluice prints the value and says so here:
//! - `socket` (0x2e): libbsm reads the remote address over the local one;
//!   sluice prints both where they are.
//! - `arbitrary` data of shorts, ints and int64s: libbsm prints them in host
//!   byte order; sluice prints the big-endian values that were written.
//! - `header_ex` with `-r`: libbsm prints XML-style attributes; sluice
//!   prints the same fields as without `-r`, in raw form.
//! - `exec arg`/`exec env` with more than 128 strings: libbsm prints the
//!   first 128; sluice prints them all.
//! - Apple's `identity` token is unknown to OpenBSM's praudit; sluice prints
//!   it as macOS' praudit does: `identity,<signer type>,<signing id>,
//!   complete|truncated,<team id>,complete|truncated,<cdhash in hex>`.
//!
//! Return statuses are printed with GNU libc's error messages (see
//! [`super::errno`]), as in the reference decodes sluice is tested against.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;

use crate::time::civil_from_days;

use super::errno;
use super::events;
use super::token::{Subject, SubjectForm, TRAILER_LEN, Token, parse_token};

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrauditOptions {
    /// Numbers instead of names (`praudit -r`): token ids, event numbers,
    /// seconds, error numbers.
    pub raw: bool,
    /// Event `AUE_` names instead of descriptions (`praudit -s`).
    pub short_events: bool,
    /// One record per line (`praudit -l`): each token is followed by the
    /// delimiter, each record by a newline. Otherwise each token is
    /// followed by a newline.
    pub one_line: bool,
    /// The field delimiter (`praudit -d`); `,` by default.
    pub delimiter: u8,
}

impl Default for PrauditOptions {
    fn default() -> Self {
        Self {
            raw: false,
            short_events: false,
            one_line: true,
            delimiter: b',',
        }
    }
}

/// Output under construction: bytes, because paths need not be UTF-8.
struct Out<'o> {
    buf: &'o mut Vec<u8>,
    opts: PrauditOptions,
}

impl Out<'_> {
    fn delim(&mut self) {
        self.buf.push(self.opts.delimiter);
    }

    fn text(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn fmt(&mut self, args: std::fmt::Arguments<'_>) {
        // Writing to a Vec cannot fail.
        let _ = self.buf.write_fmt(args);
    }

    /// The token's name, or its id with `-r`.
    fn kind(&mut self, id: u8, name: &str) {
        if self.opts.raw {
            self.fmt(format_args!("{id}"));
        } else {
            self.text(name);
        }
    }

    /// Every byte but NULs, as libbsm's `print_string` does.
    fn string(&mut self, bytes: &[u8]) {
        self.buf.extend(bytes.iter().copied().filter(|&b| b != 0));
    }

    /// `0x` and two hex digits a byte; nothing for no bytes.
    fn mem(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.text("0x");
            for b in bytes {
                self.fmt(format_args!("{b:02x}"));
            }
        }
    }

    /// C's `%#x`: no prefix for zero.
    fn alt_hex(&mut self, v: u64) {
        if v == 0 {
            self.text("0");
        } else {
            self.fmt(format_args!("{v:#x}"));
        }
    }

    /// A user or group id: praudit prints them as signed 32-bit numbers.
    fn id(&mut self, v: u32) {
        self.fmt(format_args!("{}", v as i32));
    }

    fn ip(&mut self, addr: IpAddr) {
        self.fmt(format_args!("{addr}"));
    }

    fn seconds(&mut self, secs: u64) {
        if self.opts.raw {
            // libbsm truncates 64-bit seconds to 32 bits in raw output.
            self.fmt(format_args!("{}", secs as u32));
        } else {
            ctime(self.buf, secs);
        }
    }

    fn msec(&mut self, msec: u64) {
        let msec = msec as u32;
        if self.opts.raw {
            self.fmt(format_args!("{msec}"));
        } else {
            self.fmt(format_args!(" + {msec} msec"));
        }
    }

    fn event(&mut self, event: u16) {
        match events::event(event) {
            Some(e) if !self.opts.raw => self.text(if self.opts.short_events {
                e.name
            } else {
                e.description
            }),
            _ => self.fmt(format_args!("{event}")),
        }
    }

    fn subject(&mut self, form: SubjectForm, s: &Subject) {
        self.delim();
        self.id(s.auid);
        self.delim();
        self.id(s.euid);
        self.delim();
        self.id(s.egid);
        self.delim();
        self.id(s.ruid);
        self.delim();
        self.id(s.rgid);
        self.delim();
        self.fmt(format_args!("{}", s.pid));
        self.delim();
        self.fmt(format_args!("{}", s.sid));
        self.delim();
        match form {
            SubjectForm::Bits32 | SubjectForm::Bits32Ex => {
                self.fmt(format_args!("{}", s.tid_port as u32))
            }
            SubjectForm::Bits64 | SubjectForm::Bits64Ex => self.fmt(format_args!("{}", s.tid_port)),
        }
        self.delim();
        self.ip(s.tid_addr);
    }

    fn retval(&mut self, status: u8) {
        if self.opts.raw {
            self.fmt(format_args!("{status}"));
            return;
        }
        match errno::message(status) {
            Some(_) if status == 0 => self.text("success"),
            Some(message) => self.fmt(format_args!("failure : {message}")),
            None => self.fmt(format_args!("failure: Unknown error: {status}")),
        }
    }
}

/// Appends `secs` as C's `ctime()` prints it in UTC, without the newline:
/// `Sun Dec 28 15:12:18 2008`.
pub fn ctime(out: &mut Vec<u8>, secs: u64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Past year 9999 ctime's layout breaks down; print the number instead.
    if secs >= 253_402_300_800 {
        let _ = write!(out, "{secs}");
        return;
    }
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[(days % 7) as usize];
    let month = MONTHS[(month - 1) as usize];
    let _ = write!(
        out,
        "{weekday} {month} {day:2} {:02}:{:02}:{:02} {year}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// A UUID as `uuid_to_string` writes it: 8-4-4-4-12 lowercase hex.
fn uuid(out: &mut Out<'_>, bytes: &[u8; 16]) {
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    out.text(&s);
}

/// Appends one token, without the delimiter or newline that follows it.
pub fn write_token(buf: &mut Vec<u8>, token: &Token<'_>, opts: &PrauditOptions) {
    let mut o = Out { buf, opts: *opts };
    let id = token.id();
    match *token {
        Token::Header(h) => {
            let ex = h.host.is_some();
            o.kind(id, if ex { "header_ex" } else { "header" });
            o.delim();
            o.fmt(format_args!("{}", h.record_len));
            o.delim();
            o.fmt(format_args!("{}", h.version));
            o.delim();
            o.event(h.event);
            o.delim();
            o.fmt(format_args!("{}", h.modifier));
            if let Some(host) = h.host {
                o.delim();
                o.ip(host);
            }
            o.delim();
            o.seconds(h.seconds);
            o.delim();
            o.msec(h.msec);
        }
        Token::Trailer { record_len, .. } => {
            o.kind(id, "trailer");
            o.delim();
            o.fmt(format_args!("{record_len}"));
        }
        Token::Subject(form, ref s) => {
            let ex = matches!(form, SubjectForm::Bits32Ex | SubjectForm::Bits64Ex);
            o.kind(id, if ex { "subject_ex" } else { "subject" });
            o.subject(form, s);
        }
        Token::Process(form, ref s) => {
            let ex = matches!(form, SubjectForm::Bits32Ex | SubjectForm::Bits64Ex);
            o.kind(id, if ex { "process_ex" } else { "process" });
            o.subject(form, s);
        }
        Token::Return(r) => {
            o.kind(id, "return");
            o.delim();
            o.retval(r.status);
            o.delim();
            if r.bits64 {
                o.fmt(format_args!("{}", r.value as i64));
            } else {
                o.fmt(format_args!("{}", r.value));
            }
        }
        Token::Path(p) => {
            o.kind(id, "path");
            o.delim();
            o.string(p);
        }
        Token::Text(t) => {
            o.kind(id, "text");
            o.delim();
            o.string(t);
        }
        Token::Zonename(z) => {
            o.kind(id, "zone");
            o.delim();
            o.string(z);
        }
        Token::Arg(a) => {
            o.kind(id, "argument");
            o.delim();
            o.fmt(format_args!("{}", a.number));
            o.delim();
            o.fmt(format_args!("{:#x}", a.value));
            o.delim();
            o.string(a.description);
        }
        Token::ArgUuid(a) | Token::RetUuid(a) => {
            o.kind(
                id,
                if matches!(token, Token::ArgUuid(_)) {
                    "arg_uuid"
                } else {
                    "ret_uuid"
                },
            );
            o.delim();
            o.fmt(format_args!("{}", a.number));
            o.delim();
            uuid(&mut o, &a.uuid);
            o.delim();
            o.string(a.description);
        }
        Token::ExecArgs(strings) | Token::ExecEnv(strings) => {
            let name = if matches!(token, Token::ExecArgs(_)) {
                "exec arg"
            } else {
                "exec env"
            };
            o.kind(id, name);
            for s in strings.iter() {
                o.delim();
                o.string(s);
            }
        }
        Token::Attr(a) => {
            o.kind(id, "attribute");
            o.delim();
            o.fmt(format_args!("{:o}", a.mode));
            o.delim();
            o.id(a.uid);
            o.delim();
            o.id(a.gid);
            o.delim();
            o.fmt(format_args!("{}", a.fsid));
            o.delim();
            o.fmt(format_args!("{}", a.node_id as i64));
            o.delim();
            o.fmt(format_args!("{}", a.device));
        }
        Token::Exit { status, value } => {
            o.kind(id, "exit");
            o.delim();
            o.fmt(format_args!("Error {status}"));
            o.delim();
            o.fmt(format_args!("{value}"));
        }
        Token::File {
            seconds,
            msec,
            name,
        } => {
            o.kind(id, "file");
            o.delim();
            o.seconds(u64::from(seconds));
            o.delim();
            o.msec(u64::from(msec));
            o.delim();
            o.string(name);
        }
        Token::Seq(n) => {
            o.kind(id, "sequence");
            o.delim();
            o.fmt(format_args!("{n}"));
        }
        Token::Ipc {
            object_type,
            id: ipc_id,
        } => {
            o.kind(id, "IPC");
            o.delim();
            match object_type {
                1 if !o.opts.raw => o.text("Message IPC"),
                2 if !o.opts.raw => o.text("Semaphore IPC"),
                3 if !o.opts.raw => o.text("Shared Memory IPC"),
                t => o.fmt(format_args!("{t}")),
            }
            o.delim();
            o.fmt(format_args!("{ipc_id}"));
        }
        Token::IpcPerm {
            uid,
            gid,
            creator_uid,
            creator_gid,
            mode,
            seq,
            key,
        } => {
            o.kind(id, "IPC perm");
            for v in [uid, gid, creator_uid, creator_gid] {
                o.delim();
                o.id(v);
            }
            o.delim();
            o.fmt(format_args!("{mode:o}"));
            o.delim();
            o.fmt(format_args!("{seq}"));
            o.delim();
            o.fmt(format_args!("{key}"));
        }
        Token::Socket {
            socket_type,
            local_port,
            local_addr,
            remote_port,
            remote_addr,
        } => {
            o.kind(id, "socket");
            o.delim();
            o.fmt(format_args!("{socket_type}"));
            o.delim();
            o.fmt(format_args!("{local_port}"));
            o.delim();
            o.ip(IpAddr::V4(local_addr));
            o.delim();
            o.fmt(format_args!("{remote_port}"));
            o.delim();
            o.ip(IpAddr::V4(remote_addr));
        }
        Token::SocketEx {
            domain,
            socket_type,
            local_port,
            local_addr,
            remote_port,
            remote_addr,
            ..
        } => {
            o.kind(id, "socket");
            o.delim();
            o.alt_hex(u64::from(domain));
            o.delim();
            o.alt_hex(u64::from(socket_type));
            o.delim();
            o.alt_hex(u64::from(local_port));
            o.delim();
            o.ip(local_addr);
            o.delim();
            o.alt_hex(u64::from(remote_port));
            o.delim();
            o.ip(remote_addr);
        }
        Token::SockInet32 { family, port, addr } => {
            o.kind(id, "socket-inet");
            o.delim();
            o.fmt(format_args!("{family}"));
            o.delim();
            o.fmt(format_args!("{port}"));
            o.delim();
            o.ip(IpAddr::V4(addr));
        }
        Token::SockInet128 { family, port, addr } => {
            o.kind(id, "socket-inet6");
            o.delim();
            o.fmt(format_args!("{family}"));
            o.delim();
            o.fmt(format_args!("{port}"));
            o.delim();
            o.ip(IpAddr::V6(addr));
        }
        Token::SockUnix { family, path } => {
            o.kind(id, "socket-unix");
            o.delim();
            o.fmt(format_args!("{family}"));
            o.delim();
            o.string(super::token::c_string(path));
        }
        Token::InAddr(addr) => {
            o.kind(id, "ip addr");
            o.delim();
            o.ip(IpAddr::V4(addr));
        }
        Token::InAddrEx(addr) => {
            o.kind(id, "ip addr ex");
            o.delim();
            o.ip(addr);
        }
        Token::Iport(port) => {
            o.kind(id, "ip port");
            o.delim();
            o.alt_hex(u64::from(port));
        }
        Token::Ip(ip) => {
            o.kind(id, "ip");
            o.delim();
            o.mem(&[ip.version]);
            o.delim();
            o.mem(&[ip.tos]);
            o.delim();
            o.fmt(format_args!("{}", ip.len));
            o.delim();
            o.fmt(format_args!("{}", ip.id));
            o.delim();
            o.fmt(format_args!("{}", ip.offset));
            o.delim();
            o.mem(&[ip.ttl]);
            o.delim();
            o.mem(&[ip.protocol]);
            o.delim();
            o.fmt(format_args!("{}", ip.checksum));
            o.delim();
            o.ip(IpAddr::V4(ip.src));
            o.delim();
            o.ip(IpAddr::V4(ip.dst));
        }
        Token::Opaque(bytes) => {
            o.kind(id, "opaque");
            o.delim();
            o.fmt(format_args!("{}", bytes.len()));
            o.delim();
            o.mem(bytes);
        }
        Token::Data(d) => {
            o.kind(id, "arbitrary");
            o.delim();
            let how = match d.print_format {
                0 => "binary",
                1 => "octal",
                2 => "decimal",
                3 => "hex",
                4 => "string",
                // libbsm stops here for a print format it does not know.
                _ => return,
            };
            o.text(how);
            o.delim();
            o.text(match d.unit_type {
                0 => "byte",
                1 => "short",
                2 => "int",
                _ => "int64",
            });
            o.delim();
            o.fmt(format_args!("{}", d.unit_count));
            o.delim();
            for v in d.units() {
                match d.print_format {
                    0 => o.fmt(format_args!(" {}", char::from(v as u8))),
                    1 => o.fmt(format_args!(" {v:o}")),
                    2 => match d.unit_type {
                        2 => o.fmt(format_args!(" {}", v as u32 as i32)),
                        3 => o.fmt(format_args!(" {}", v as i64)),
                        _ => o.fmt(format_args!(" {v}")),
                    },
                    3 => o.fmt(format_args!(" {v:x}")),
                    _ => o.buf.push(v as u8),
                }
            }
        }
        Token::NewGroups { gids, .. } => {
            o.kind(id, "group");
            for gid in gids.chunks_exact(4) {
                o.delim();
                o.id(u32::from_be_bytes([gid[0], gid[1], gid[2], gid[3]]));
            }
        }
        Token::Upriv { success, privilege } => {
            o.kind(id, "use of privilege");
            o.delim();
            o.text(if success != 0 {
                "successful use of priv"
            } else {
                "failed use of priv"
            });
            o.delim();
            o.string(privilege);
        }
        Token::Privset {
            set_type,
            privileges,
        } => {
            o.kind(id, "privilege");
            o.delim();
            o.string(set_type);
            o.delim();
            o.string(privileges);
        }
        Token::Identity(ident) => {
            o.kind(id, "identity");
            o.delim();
            o.fmt(format_args!("{}", ident.signer_type));
            for (value, truncated) in [
                (ident.signing_id, ident.signing_id_truncated),
                (ident.team_id, ident.team_id_truncated),
            ] {
                o.delim();
                o.string(value);
                o.delim();
                if o.opts.raw {
                    o.fmt(format_args!("{truncated}"));
                } else {
                    o.text(if truncated != 0 {
                        "truncated"
                    } else {
                        "complete"
                    });
                }
            }
            o.delim();
            o.mem(ident.cdhash);
        }
    }
}

/// After a token: the delimiter with `-l`, a newline without.
fn end_token(buf: &mut Vec<u8>, opts: &PrauditOptions) {
    buf.push(if opts.one_line { opts.delimiter } else { b'\n' });
}

/// Appends one record (or stand-alone file token) as praudit prints it. A
/// token sluice cannot read is printed as praudit does, `unknown` and the
/// rest of the body in hex, and the trailer after it.
pub fn write_record(buf: &mut Vec<u8>, record: &[u8], opts: &PrauditOptions) {
    let mut at = 0;
    while at < record.len() {
        match parse_token(record, at) {
            Ok((token, len)) => {
                write_token(buf, &token, opts);
                end_token(buf, opts);
                at += len;
            }
            Err(e) => {
                let mut o = Out { buf, opts: *opts };
                o.kind(e.id, "unknown");
                o.delim();
                // The bytes up to the trailer, when the record has one.
                let trailer = record.len().saturating_sub(TRAILER_LEN);
                let end = if at < trailer { trailer } else { record.len() };
                o.mem(record.get(at + 1..end).unwrap_or_default());
                end_token(buf, opts);
                at = end;
            }
        }
    }
    if opts.one_line {
        buf.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_matches_c() {
        let mut out = Vec::new();
        ctime(&mut out, 1_230_477_138);
        assert_eq!(out, b"Sun Dec 28 15:12:18 2008");
        out.clear();
        ctime(&mut out, 74_565);
        assert_eq!(out, b"Thu Jan  1 20:42:45 1970");
        out.clear();
        ctime(&mut out, 951_782_400); // a leap day
        assert_eq!(out, b"Tue Feb 29 00:00:00 2000");
    }
}
