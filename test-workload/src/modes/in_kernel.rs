//! File to socket without the data entering user memory: `sendfile`, and `splice` through a
//! pipe.

use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;

use super::tcp::{run_stream, Receive};
use super::{piece, Mode, Params, Sizes};
use crate::child::ChildResult;
use crate::ground_truth::{Failure, OrFail, Recorder};
use crate::net;
use crate::report::ProcessReport;
use crate::setup::{input_file, pipe};
use crate::sys;

/// sender: `sendfile` (tracepoint `sendfile64`) input file -> socket, at most a chunk per
/// call, with an explicit offset so each round restarts at 0. receiver: `read`.
pub fn sendfile(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("sendfile.input"), sizes.bytes)?;
    let file = input.as_raw_fd();
    let send = move |rec: &Recorder, socket| send_sendfile(rec, file, socket, sizes);
    let pair = net::tcp_pair()?;
    run_stream(Mode::Sendfile, params, pair, Receive::Read, &[file], send)
}

/// sender: per chunk, `splice` input file -> pipe (explicit offset), then `splice` pipe ->
/// socket until the pipe is empty again. receiver: `read`. The pipe is sized to a chunk when
/// the system allows; a smaller pipe only means more, shorter calls.
pub fn splice(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("splice.input"), sizes.bytes)?;
    let file = input.as_raw_fd();
    let pipe = pipe(sizes.chunk)?;
    let (pipe_r, pipe_w) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let send =
        move |rec: &Recorder, socket| send_splice(rec, file, (pipe_r, pipe_w), socket, sizes);
    let pair = net::tcp_pair()?;
    let keep = [file, pipe_r, pipe_w];
    run_stream(Mode::Splice, params, pair, Receive::Read, &keep, send)
}

fn send_sendfile(rec: &Recorder, file: RawFd, socket: RawFd, sizes: Sizes) -> ChildResult {
    for _ in 0..sizes.rounds {
        let mut pos: i64 = 0;
        let mut left = sizes.bytes;
        while left > 0 {
            let want = piece(sizes.chunk, left);
            let n = sys::sendfile64(rec, socket, file, &mut pos, want)
                .or_fail("sendfile to the socket")?;
            if n == 0 {
                return Err(Failure::new("input file ended early"));
            }
            left -= n as u64;
        }
    }
    Ok(())
}

fn send_splice(
    rec: &Recorder,
    file: RawFd,
    (pipe_r, pipe_w): (RawFd, RawFd),
    socket: RawFd,
    sizes: Sizes,
) -> ChildResult {
    for _ in 0..sizes.rounds {
        let mut pos: i64 = 0;
        let mut left = sizes.bytes;
        while left > 0 {
            let want = piece(sizes.chunk, left);
            let n = sys::splice(rec, file, Some(&mut pos), pipe_w, None, want, 0)
                .or_fail("splice the input file into the pipe")?;
            if n == 0 {
                return Err(Failure::new("input file ended early"));
            }
            let mut in_pipe = n;
            while in_pipe > 0 {
                let m = sys::splice(rec, pipe_r, None, socket, None, in_pipe, 0)
                    .or_fail("splice the pipe into the socket")?;
                if m == 0 {
                    return Err(Failure::new("splice to the socket moved no bytes"));
                }
                in_pipe -= m;
            }
            left -= n as u64;
        }
    }
    Ok(())
}
