//! BSM error numbers and their messages.
//!
//! A return token's status is a BSM error number, not the host's `errno`:
//! OpenBSM maps each OS's errors into one portable space (Solaris' numbers,
//! plus its own from 190 up). praudit turns the number back into the local
//! `errno` and prints `strerror()` of it. sluice prints the messages of the
//! GNU C library, which is where the reference decodes in
//! `../shared/data/bsm/openbsm-reference` were made, and for the BSD- and
//! Darwin-only numbers the messages of those systems.

/// `(BSM error number, message)`, sorted by number.
static MESSAGES: &[(u8, &str)] = &[
    (0, "Success"),
    (1, "Operation not permitted"),
    (2, "No such file or directory"),
    (3, "No such process"),
    (4, "Interrupted system call"),
    (5, "Input/output error"),
    (6, "No such device or address"),
    (7, "Argument list too long"),
    (8, "Exec format error"),
    (9, "Bad file descriptor"),
    (10, "No child processes"),
    (11, "Resource temporarily unavailable"),
    (12, "Cannot allocate memory"),
    (13, "Permission denied"),
    (14, "Bad address"),
    (15, "Block device required"),
    (16, "Device or resource busy"),
    (17, "File exists"),
    (18, "Invalid cross-device link"),
    (19, "No such device"),
    (20, "Not a directory"),
    (21, "Is a directory"),
    (22, "Invalid argument"),
    (23, "Too many open files in system"),
    (24, "Too many open files"),
    (25, "Inappropriate ioctl for device"),
    (26, "Text file busy"),
    (27, "File too large"),
    (28, "No space left on device"),
    (29, "Illegal seek"),
    (30, "Read-only file system"),
    (31, "Too many links"),
    (32, "Broken pipe"),
    (33, "Numerical argument out of domain"),
    (34, "Numerical result out of range"),
    (35, "No message of desired type"),
    (36, "Identifier removed"),
    (37, "Channel number out of range"),
    (38, "Level 2 not synchronized"),
    (39, "Level 3 halted"),
    (40, "Level 3 reset"),
    (41, "Link number out of range"),
    (42, "Protocol driver not attached"),
    (43, "No CSI structure available"),
    (44, "Level 2 halted"),
    (45, "Resource deadlock avoided"),
    (46, "No locks available"),
    (47, "Operation canceled"),
    (48, "Operation not supported"),
    (49, "Disk quota exceeded"),
    (50, "Invalid exchange"),
    (51, "Invalid request descriptor"),
    (52, "Exchange full"),
    (53, "No anode"),
    (54, "Invalid request code"),
    (55, "Invalid slot"),
    (56, "Resource deadlock avoided"),
    (57, "Bad font file format"),
    (58, "Owner died"),
    (59, "State not recoverable"),
    (60, "Device not a stream"),
    (61, "No data available"),
    (62, "Timer expired"),
    (63, "Out of streams resources"),
    (64, "Machine is not on the network"),
    (65, "Package not installed"),
    (66, "Object is remote"),
    (67, "Link has been severed"),
    (68, "Advertise error"),
    (69, "Srmount error"),
    (70, "Communication error on send"),
    (71, "Protocol error"),
    (72, "Locked lock was unmapped"),
    (73, "Facility is not active"),
    (74, "Multihop attempted"),
    (77, "Bad message"),
    (78, "File name too long"),
    (79, "Value too large for defined data type"),
    (80, "Name not unique on network"),
    (81, "File descriptor in bad state"),
    (82, "Remote address changed"),
    (83, "Can not access a needed shared library"),
    (84, "Accessing a corrupted shared library"),
    (85, ".lib section in a.out corrupted"),
    (86, "Attempting to link in too many shared libraries"),
    (87, "Cannot exec a shared library directly"),
    (88, "Invalid or incomplete multibyte or wide character"),
    (89, "Function not implemented"),
    (90, "Too many levels of symbolic links"),
    (91, "Interrupted system call should be restarted"),
    (92, "Streams pipe error"),
    (93, "Directory not empty"),
    (94, "Too many users"),
    (95, "Socket operation on non-socket"),
    (96, "Destination address required"),
    (97, "Message too long"),
    (98, "Protocol wrong type for socket"),
    (99, "Protocol not available"),
    (120, "Protocol not supported"),
    (121, "Socket type not supported"),
    (122, "Operation not supported"),
    (123, "Protocol family not supported"),
    (124, "Address family not supported by protocol"),
    (125, "Address already in use"),
    (126, "Cannot assign requested address"),
    (127, "Network is down"),
    (128, "Network is unreachable"),
    (129, "Network dropped connection on reset"),
    (130, "Software caused connection abort"),
    (131, "Connection reset by peer"),
    (132, "No buffer space available"),
    (133, "Transport endpoint is already connected"),
    (134, "Transport endpoint is not connected"),
    (143, "Cannot send after transport endpoint shutdown"),
    (144, "Too many references: cannot splice"),
    (145, "Connection timed out"),
    (146, "Connection refused"),
    (147, "Host is down"),
    (148, "No route to host"),
    (149, "Operation already in progress"),
    (150, "Operation now in progress"),
    (151, "Stale file handle"),
    (190, "Too many processes"),
    (191, "RPC struct is bad"),
    (192, "RPC version wrong"),
    (193, "RPC prog. not avail"),
    (194, "Program version wrong"),
    (195, "Bad procedure for program"),
    (196, "Inappropriate file type or format"),
    (197, "Authentication error"),
    (198, "Need authenticator"),
    (199, "Attribute not found"),
    (200, "Programming error"),
    (201, "Just return"),
    (202, "No ioctl"),
    (203, "Directory ioctl"),
    (204, "Device power is off"),
    (205, "Device error"),
    (206, "Bad executable (or shared library)"),
    (207, "Bad CPU type in executable"),
    (208, "Shared library version mismatch"),
    (209, "Malformed Mach-o file"),
    (210, "Operation failed by policy"),
    (211, "RFS specific error"),
    (212, "Structure needs cleaning"),
    (213, "Not a XENIX named type file"),
    (214, "No XENIX semaphores available"),
    (215, "Is a named type file"),
    (216, "Remote I/O error"),
    (217, "No medium found"),
    (218, "Wrong medium type"),
    (219, "Required key not available"),
    (220, "Key has expired"),
    (221, "Key has been revoked"),
    (222, "Key was rejected by service"),
    (223, "Capabilities insufficient"),
    (224, "Not permitted in capability mode"),
];

/// The message for a BSM error number, if it is one OpenBSM defines.
///
/// ```
/// assert_eq!(sluice_ingest::bsm::errno::message(22), Some("Invalid argument"));
/// assert_eq!(sluice_ingest::bsm::errno::message(100), None);
/// ```
pub fn message(status: u8) -> Option<&'static str> {
    MESSAGES
        .binary_search_by_key(&status, |(n, _)| *n)
        .ok()
        .and_then(|i| MESSAGES.get(i))
        .map(|(_, m)| *m)
}

/// BSM's "in progress" error (`EINPROGRESS`): a non-blocking connect.
pub const EINPROGRESS: u8 = 150;
/// BSM's "try again" error (`EAGAIN`): a non-blocking accept with no client.
pub const EAGAIN: u8 = 11;

#[cfg(test)]
mod tests {
    #[test]
    fn sorted() {
        assert!(super::MESSAGES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
