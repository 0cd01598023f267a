//! Failing calls are counted too: a child makes a known number of calls that fail and a known
//! number that succeed, and checks each fails with the errno it should.

use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;

use super::{Mode, Params};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Errno, Failure, OrFail, SharedSlots};
use crate::report::ProcessReport;
use crate::setup::{output_file, pipe};
use crate::sys;

/// An fd number that is closed in the child: the child closes every fd >= 3 it was not told
/// to keep, and it keeps only a few low ones.
const CLOSED_FD: RawFd = 999;

/// Bytes written to and read back from the pipe per round: within PIPE_BUF, so the write is
/// atomic and the read gets it whole.
const PIPE_BYTES: usize = 4096;

/// failer, per round:
/// - `read(CLOSED_FD)` twice -> EBADF; `write(CLOSED_FD)` twice -> EBADF
/// - `pread64` on a pipe -> ESPIPE; `sendto` on a regular file -> ENOTSOCK
/// - `write` then `read` of min(--chunk, 4096) bytes through a pipe, both succeeding
///
/// So per round: read 3 calls / 2 errors, write 3 calls / 2 errors, pread64 1 call / 1 error,
/// sendto 1 call / 1 error. `--bytes` is not used.
pub fn errors(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let pipe = pipe(PIPE_BYTES)?;
    let file = output_file(&params.dir.file("errors.file"))?;
    let (pipe_r, pipe_w, file_fd) = (
        pipe.read.as_raw_fd(),
        pipe.write.as_raw_fd(),
        file.as_raw_fd(),
    );
    if [pipe_r, pipe_w, file_fd].contains(&CLOSED_FD) {
        anyhow::bail!("fd {CLOSED_FD} is needed open; cannot use it as the closed fd");
    }
    let len = sizes.chunk.min(PIPE_BYTES);
    let data = vec![0x5a_u8; len];
    let mut buf = vec![0u8; len];

    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::Errors.name(), &slots, params.hold);
    children.spawn("failer", &[pipe_r, pipe_w, file_fd], move |rec| {
        for _ in 0..sizes.rounds {
            for _ in 0..2 {
                expect(
                    sys::read(rec, CLOSED_FD, &mut buf),
                    libc::EBADF,
                    "read a closed fd",
                )?;
                expect(
                    sys::write(rec, CLOSED_FD, &data),
                    libc::EBADF,
                    "write a closed fd",
                )?;
            }
            expect(
                sys::pread64(rec, pipe_r, &mut buf, 0),
                libc::ESPIPE,
                "pread64 a pipe",
            )?;
            expect(
                sys::sendto(rec, file_fd, &data, 0),
                libc::ENOTSOCK,
                "sendto a file",
            )?;

            let written = sys::write(rec, pipe_w, &data).or_fail("write the pipe")?;
            let read = sys::read(rec, pipe_r, &mut buf).or_fail("read the pipe")?;
            if written != len || read != len {
                return Err(Failure::new("the pipe moved a short amount"));
            }
        }
        Ok(())
    })?;
    drop((pipe, file));
    children.wait()
}

/// Checks that a call failed with `errno`.
fn expect(result: Result<usize, Errno>, errno: i32, what: &'static str) -> ChildResult {
    match result {
        Err(Errno(e)) if e == errno => Ok(()),
        Err(Errno(e)) => Err(Failure { what, errno: e }),
        Ok(_) => Err(Failure::new("a call meant to fail succeeded")),
    }
}
