//! `/dev/auditpipe`: live audit records on macOS and FreeBSD.
//!
//! **This module is compiled only on macOS and FreeBSD; it cannot be built or
//! tested on Linux, where sluice is developed and CI runs.** Everything it
//! feeds is shared and tested on Linux: the pipe is read by
//! [`super::live::LiveReader`] (framing, the bounded queue, drop accounting),
//! and records are decoded by [`super::BsmDecoder`]. What is left here is
//! opening the device and setting it up with the auditpipe ioctls of
//! `security/audit/audit_ioctl.h`:
//!
//! - preselection mode *local*, so that this pipe selects its own classes
//!   instead of inheriting the system's audit configuration;
//! - the classes to select for attributable events (success and failure)
//!   and for non-attributable ones;
//! - the queue length, by default the largest the kernel allows, so that the
//!   kernel drops as little as possible; what it does drop is read back with
//!   [`AuditPipe::kernel_drops`].

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The audit classes of OpenBSM's `audit_class` table that sluice's tables
/// want: file read, write, attribute modify, create, delete (`fr`, `fw`,
/// `fm`, `fc`, `fd`), process (`pc`), network (`nt`), login/logout (`lo`),
/// authentication (`aa`) and exec (`ex`).
pub const DEFAULT_CLASSES: u32 = 0x0000_0001
    | 0x0000_0002
    | 0x0000_0008
    | 0x0000_0010
    | 0x0000_0020
    | 0x0000_0080
    | 0x0000_0100
    | 0x0000_1000
    | 0x0000_2000
    | 0x4000_0000;

/// How to set up the pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPipeConfig {
    /// The device, `/dev/auditpipe` normally.
    pub path: PathBuf,
    /// Records the kernel may queue for this pipe; `None` for the largest
    /// allowed.
    pub queue_limit: Option<u32>,
    /// Classes selected when the event succeeded.
    pub success_classes: u32,
    /// Classes selected when the event failed.
    pub failure_classes: u32,
    /// Classes selected for non-attributable events.
    pub non_attributable_classes: u32,
}

impl Default for AuditPipeConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/dev/auditpipe"),
            queue_limit: None,
            success_classes: DEFAULT_CLASSES,
            failure_classes: DEFAULT_CLASSES,
            non_attributable_classes: 0x0000_1000 | 0x0000_2000,
        }
    }
}

/// BSD `_IOC`: direction, parameter length, group `'A'`, number.
const fn ioc(direction: u64, len: u64, number: u64) -> u64 {
    direction | ((len & 0x1fff) << 16) | ((b'A' as u64) << 8) | number
}
const IOC_OUT: u64 = 0x4000_0000;
const IOC_IN: u64 = 0x8000_0000;
const AU_MASK_LEN: u64 = 8; // au_mask_t: two u_int
const AUDITPIPE_SET_QLIMIT: u64 = ioc(IOC_IN, 4, 3);
const AUDITPIPE_GET_QLIMIT_MAX: u64 = ioc(IOC_OUT, 4, 5);
const AUDITPIPE_SET_PRESELECT_FLAGS: u64 = ioc(IOC_IN, AU_MASK_LEN, 7);
const AUDITPIPE_SET_PRESELECT_NAFLAGS: u64 = ioc(IOC_IN, AU_MASK_LEN, 9);
const AUDITPIPE_SET_PRESELECT_MODE: u64 = ioc(IOC_IN, 4, 20);
const AUDITPIPE_GET_DROPS: u64 = ioc(IOC_OUT, 8, 102);
const AUDITPIPE_PRESELECT_MODE_LOCAL: i32 = 2;

unsafe extern "C" {
    fn ioctl(fd: i32, request: std::ffi::c_ulong, ...) -> i32;
}

/// `au_mask_t`.
#[repr(C)]
struct AuMask {
    success: u32,
    failure: u32,
}

/// An open, configured audit pipe. Read it through
/// [`super::live::LiveReader`].
pub struct AuditPipe {
    file: File,
}

fn check(path: &Path, what: &str, result: i32) -> io::Result<()> {
    if result == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{}: {what}: {e}", path.display()),
        ));
    }
    Ok(())
}

impl AuditPipe {
    /// Opens the pipe and sets its preselection and queue length.
    pub fn open(config: &AuditPipeConfig) -> io::Result<Self> {
        let file = File::open(&config.path)?;
        let fd = file.as_raw_fd();
        let path = config.path.as_path();
        let mode = AUDITPIPE_PRESELECT_MODE_LOCAL;
        // SAFETY: each ioctl gets a pointer to a live value of the type the
        // request's encoded length says.
        unsafe {
            check(
                path,
                "set preselect mode",
                ioctl(fd, AUDITPIPE_SET_PRESELECT_MODE as _, &mode),
            )?;
            let flags = AuMask {
                success: config.success_classes,
                failure: config.failure_classes,
            };
            check(
                path,
                "set preselect flags",
                ioctl(fd, AUDITPIPE_SET_PRESELECT_FLAGS as _, &flags),
            )?;
            let na = AuMask {
                success: config.non_attributable_classes,
                failure: config.non_attributable_classes,
            };
            check(
                path,
                "set preselect naflags",
                ioctl(fd, AUDITPIPE_SET_PRESELECT_NAFLAGS as _, &na),
            )?;
            let mut limit: u32 = 0;
            match config.queue_limit {
                Some(l) => limit = l,
                None => check(
                    path,
                    "get queue limit max",
                    ioctl(fd, AUDITPIPE_GET_QLIMIT_MAX as _, &mut limit),
                )?,
            }
            check(
                path,
                "set queue limit",
                ioctl(fd, AUDITPIPE_SET_QLIMIT as _, &limit),
            )?;
        }
        Ok(Self { file })
    }

    /// Records the kernel dropped because this pipe's queue was full.
    pub fn kernel_drops(&self) -> io::Result<u64> {
        let mut drops: u64 = 0;
        // SAFETY: AUDITPIPE_GET_DROPS writes one u64.
        let result = unsafe { ioctl(self.file.as_raw_fd(), AUDITPIPE_GET_DROPS as _, &mut drops) };
        if result == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(drops)
    }
}

impl Read for AuditPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}
