//! The kernel's word on zero-copy sends. A `MSG_ZEROCOPY` send pins user pages; when the
//! kernel is done with them it queues a completion notice on the socket's error queue, which
//! the application reads with `recvmsg(..., MSG_ERRQUEUE)`: a control message (`IP_RECVERR`
//! or `IPV6_RECVERR`) holding a `struct sock_extended_err` with origin
//! `SO_EE_ORIGIN_ZEROCOPY`, the range of sends it covers (`ee_info..=ee_data`, numbered per
//! socket from 0) and, in `ee_code`, `SO_EE_CODE_ZEROCOPY_COPIED` when the kernel copied them
//! after all (loopback, veth, NICs without scatter-gather). io_uring's `SEND_ZC` says the same
//! in its notification CQE (`IORING_CQE_F_NOTIF`), with `IORING_NOTIF_USAGE_ZC_COPIED` in the
//! result when the application asked for usage reports.
//!
//! Pure functions over bytes, so the kernel program (reading the control buffer from user
//! memory at recvmsg's exit) and the host tests run the same code.

/// `MSG_ERRQUEUE` from `<linux/socket.h>`.
pub const MSG_ERRQUEUE: u64 = 0x2000;
/// `struct cmsghdr` on 64-bit Linux: `size_t cmsg_len; int cmsg_level; int cmsg_type;`.
pub const CMSG_HEADER_SIZE: usize = 16;
/// `struct sock_extended_err`: `u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad; u32
/// ee_info, ee_data;`.
pub const EXTENDED_ERR_SIZE: usize = 16;
/// Offsets in a 64-bit `struct user_msghdr` of `msg_control` (a pointer) and, right after it,
/// `msg_controllen`, which recvmsg sets to the length of control data it wrote.
pub const MSGHDR_CONTROL_OFFSET: u64 = 32;

const SOL_IP: i32 = 0;
const IP_RECVERR: i32 = 11;
const SOL_IPV6: i32 = 41;
const IPV6_RECVERR: i32 = 25;
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in the result of a `SEND_ZC` notification.
pub const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// What one completion notice says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Sends it covers.
    pub sends: u64,
    /// The kernel copied them instead of sending the pinned pages.
    pub copied: bool,
}

/// A control message's header, read from its first `CMSG_HEADER_SIZE` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmsgHeader {
    pub len: u64,
    pub level: i32,
    pub kind: i32,
}

#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl CmsgHeader {
    #[inline(always)]
    pub fn parse(bytes: &[u8; CMSG_HEADER_SIZE]) -> CmsgHeader {
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[..8]);
        CmsgHeader {
            len: u64::from_ne_bytes(len),
            level: u32_at(bytes, 8) as i32,
            kind: u32_at(bytes, 12) as i32,
        }
    }

    /// An extended error (`IP_RECVERR`, `IPV6_RECVERR`) long enough to hold one.
    #[inline(always)]
    pub fn is_extended_err(&self) -> bool {
        let recverr = matches!(
            (self.level, self.kind),
            (SOL_IP, IP_RECVERR) | (SOL_IPV6, IPV6_RECVERR)
        );
        recverr && self.len >= (CMSG_HEADER_SIZE + EXTENDED_ERR_SIZE) as u64
    }

    /// Offset of the next control message from this one's start (`CMSG_ALIGN(cmsg_len)`);
    /// `None` for a length that would not move on.
    #[inline(always)]
    pub fn next_offset(&self) -> Option<u64> {
        if self.len < CMSG_HEADER_SIZE as u64 {
            return None;
        }
        self.len.checked_add(7).map(|l| l & !7)
    }
}

/// The zero-copy notice in a `struct sock_extended_err`, if it is one.
#[inline(always)]
pub fn zerocopy_notice(ee: &[u8; EXTENDED_ERR_SIZE]) -> Option<Notice> {
    let (errno, origin, code) = (u32_at(ee, 0), ee[4], ee[6]);
    if errno != 0 || origin != SO_EE_ORIGIN_ZEROCOPY {
        return None;
    }
    let (first, last) = (u32_at(ee, 8), u32_at(ee, 12));
    // The range is inclusive and its numbers wrap at 2^32.
    Some(Notice {
        sends: u64::from(last.wrapping_sub(first)) + 1,
        copied: code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
    })
}

/// The zero-copy notice in a control buffer of `len` bytes (as recvmsg left
/// `msg_controllen`), looking at up to `max_messages` control messages: a socket with
/// timestamping on puts a timestamp before the extended error.
pub fn notice_in(control: &[u8], max_messages: usize) -> Option<Notice> {
    let mut at = 0usize;
    for _ in 0..max_messages {
        let header: &[u8; CMSG_HEADER_SIZE] =
            control.get(at..at + CMSG_HEADER_SIZE)?.try_into().ok()?;
        let header = CmsgHeader::parse(header);
        if header.len > (control.len() - at) as u64 {
            return None;
        }
        if header.is_extended_err() {
            let start = at + CMSG_HEADER_SIZE;
            let ee: &[u8; EXTENDED_ERR_SIZE] = control
                .get(start..start + EXTENDED_ERR_SIZE)?
                .try_into()
                .ok()?;
            return zerocopy_notice(ee);
        }
        at = at.checked_add(usize::try_from(header.next_offset()?).ok()?)?;
    }
    None
}

/// What an io_uring `SEND_ZC`/`SENDMSG_ZC` notification says: its result carries
/// `IORING_NOTIF_USAGE_ZC_COPIED` when the kernel copied, but only if the application asked
/// for usage reports (`reported`); without them it says nothing either way.
pub fn io_uring_notice(res: i32, reported: bool) -> Option<Notice> {
    reported.then_some(Notice {
        sends: 1,
        copied: res as u32 & IORING_NOTIF_USAGE_ZC_COPIED != 0,
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A control message as the kernel writes it for a zero-copy notice over IPv4 (the
    /// extended error, then the offender's `sockaddr_in`, zero for local notices).
    fn recverr(level: i32, kind: i32, first: u32, last: u32, code: u8) -> Vec<u8> {
        let data_len = EXTENDED_ERR_SIZE + 16;
        let mut out = Vec::new();
        out.extend_from_slice(&((CMSG_HEADER_SIZE + data_len) as u64).to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&[SO_EE_ORIGIN_ZEROCOPY, 0, code, 0]);
        out.extend_from_slice(&first.to_ne_bytes());
        out.extend_from_slice(&last.to_ne_bytes());
        out.extend_from_slice(&[0; 16]);
        out
    }

    #[test]
    fn copied_and_not_copied_notices() {
        let copied = recverr(SOL_IP, IP_RECVERR, 0, 255, SO_EE_CODE_ZEROCOPY_COPIED);
        assert_eq!(
            notice_in(&copied, 2),
            Some(Notice {
                sends: 256,
                copied: true
            })
        );
        let zero_copy = recverr(SOL_IPV6, IPV6_RECVERR, 7, 7, 0);
        assert_eq!(
            notice_in(&zero_copy, 2),
            Some(Notice {
                sends: 1,
                copied: false
            })
        );
    }

    #[test]
    fn ranges_wrap_at_two_to_the_32() {
        let wrapped = recverr(SOL_IP, IP_RECVERR, u32::MAX - 1, 1, 0);
        assert_eq!(notice_in(&wrapped, 1).map(|n| n.sends), Some(4));
    }

    #[test]
    fn a_timestamp_before_the_notice_is_skipped() {
        // SOL_SOCKET (1) / SCM_TIMESTAMPNS (35), a 16-byte timespec, padded to 8.
        let mut control = Vec::new();
        control.extend_from_slice(&20u64.to_ne_bytes());
        control.extend_from_slice(&1i32.to_ne_bytes());
        control.extend_from_slice(&35i32.to_ne_bytes());
        control.extend_from_slice(&[0; 8]);
        control.extend_from_slice(&recverr(SOL_IP, IP_RECVERR, 3, 4, 1));
        assert_eq!(notice_in(&control, 1), None);
        assert_eq!(
            notice_in(&control, 2),
            Some(Notice {
                sends: 2,
                copied: true
            })
        );
    }

    #[test]
    fn what_is_not_a_notice_is_none() {
        let mut other_origin = recverr(SOL_IP, IP_RECVERR, 0, 0, 0);
        other_origin[CMSG_HEADER_SIZE + 4] = 2; // SO_EE_ORIGIN_ICMP
        assert_eq!(notice_in(&other_origin, 2), None);
        let mut an_error = recverr(SOL_IP, IP_RECVERR, 0, 0, 0);
        an_error[CMSG_HEADER_SIZE] = 111; // ECONNREFUSED
        assert_eq!(notice_in(&an_error, 2), None);
        assert_eq!(notice_in(&recverr(1, 35, 0, 0, 0), 2), None);
        // Truncated (MSG_CTRUNC), empty, and a length that does not move on.
        let whole = recverr(SOL_IP, IP_RECVERR, 0, 0, 0);
        assert_eq!(notice_in(&whole[..20], 2), None);
        assert_eq!(notice_in(&[], 2), None);
        let mut stuck = whole.clone();
        stuck[..8].copy_from_slice(&0u64.to_ne_bytes());
        assert_eq!(notice_in(&stuck, 4), None);
    }

    #[test]
    fn io_uring_notifications() {
        let copied = IORING_NOTIF_USAGE_ZC_COPIED as i32;
        assert_eq!(
            io_uring_notice(copied, true),
            Some(Notice {
                sends: 1,
                copied: true
            })
        );
        assert_eq!(
            io_uring_notice(0, true),
            Some(Notice {
                sends: 1,
                copied: false
            })
        );
        // Without usage reports the result is 0 whether or not the kernel copied.
        assert_eq!(io_uring_notice(0, false), None);
    }
}
