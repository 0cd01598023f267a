//! Pipes without copies: `vmsplice` user pages into a pipe, `tee` them into a second pipe,
//! and `splice` both pipes out to /dev/null. One child, role "splicer".

use std::fs::OpenOptions;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};

use super::{piece, Mode, Params};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Failure, OrFail, Recorder, SharedSlots};
use crate::pattern::pattern;
use crate::report::ProcessReport;
use crate::setup::pipe;
use crate::sys;

/// A chunk of user memory spans one page more than its length when it is not page-aligned;
/// sizing both pipes for that lets a whole chunk go in with one `vmsplice`.
const PAGE: usize = 4096;

/// splicer, per chunk of the data (from memory): `vmsplice` it into pipe 1, then until pipe 1
/// is empty: `tee` pipe 1 -> pipe 2, `splice` what was teed from pipe 2 to /dev/null and the
/// same amount from pipe 1 to /dev/null. Both pipes get the same capacity, so a `tee` takes
/// all of pipe 1 in practice.
pub fn pipe_zero_copy(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let capacity = sizes.chunk.saturating_add(PAGE);
    let (first, second) = (pipe(capacity)?, pipe(capacity)?);
    let null = OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")?;
    let fds = Fds {
        first_r: first.read.as_raw_fd(),
        first_w: first.write.as_raw_fd(),
        second_r: second.read.as_raw_fd(),
        second_w: second.write.as_raw_fd(),
        null: null.as_raw_fd(),
    };
    let keep = [
        fds.first_r,
        fds.first_w,
        fds.second_r,
        fds.second_w,
        fds.null,
    ];

    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::PipeZeroCopy.name(), &slots, params.hold);
    children.spawn("splicer", &keep, move |rec| {
        for _ in 0..sizes.rounds {
            let mut sent = 0;
            while sent < data.len() {
                let want = piece(sizes.chunk, (data.len() - sent) as u64);
                let iov = [IoSlice::new(&data[sent..sent + want])];
                let n = sys::vmsplice(rec, fds.first_w, &iov, 0).or_fail("vmsplice into pipe 1")?;
                if n == 0 {
                    return Err(Failure::new("vmsplice moved no bytes"));
                }
                tee_and_drain(rec, fds, n)?;
                sent += n;
            }
        }
        Ok(())
    })?;
    drop((first, second, null));
    children.wait()
}

#[derive(Clone, Copy)]
struct Fds {
    first_r: RawFd,
    first_w: RawFd,
    second_r: RawFd,
    second_w: RawFd,
    null: RawFd,
}

/// Empties pipe 1 (holding `pending` bytes) through `tee` and `splice`. `tee` does not consume
/// pipe 1, so after each `tee` the same bytes are taken out of both pipes before the next.
fn tee_and_drain(rec: &Recorder, fds: Fds, mut pending: usize) -> ChildResult {
    while pending > 0 {
        let teed =
            sys::tee(rec, fds.first_r, fds.second_w, pending, 0).or_fail("tee pipe 1 -> 2")?;
        if teed == 0 {
            return Err(Failure::new("tee moved no bytes"));
        }
        splice_out(rec, fds.second_r, fds.null, teed)?;
        splice_out(rec, fds.first_r, fds.null, teed)?;
        pending -= teed;
    }
    Ok(())
}

/// `splice`s exactly `len` bytes from the pipe `from` to `to`.
fn splice_out(rec: &Recorder, from: RawFd, to: RawFd, mut len: usize) -> ChildResult {
    while len > 0 {
        let n =
            sys::splice(rec, from, None, to, None, len, 0).or_fail("splice a pipe to /dev/null")?;
        if n == 0 {
            return Err(Failure::new("splice to /dev/null moved no bytes"));
        }
        len -= n;
    }
    Ok(())
}
