//! The copying baseline: the sender pulls the file into user memory and pushes it into the
//! socket, with `read`/`write` or their vectored forms.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;

use super::tcp::{run_stream, Receive};
use super::{piece, rewind, transfer_all, Mode, Params, Sizes};
use crate::child::ChildResult;
use crate::ground_truth::{Failure, OrFail, Recorder};
use crate::net;
use crate::report::ProcessReport;
use crate::setup::input_file;
use crate::sys;

/// sender: `read` the input file a chunk at a time, `write` each chunk to the socket.
/// receiver: `read`.
pub fn read_write(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("read-write.input"), sizes.bytes)?;
    let file = input.as_raw_fd();
    let mut buf = vec![0u8; sizes.chunk];
    let send = move |rec: &Recorder, socket| send_read_write(rec, file, socket, &mut buf, sizes);
    let pair = net::tcp_pair()?;
    run_stream(Mode::ReadWrite, params, pair, Receive::Read, &[file], send)
}

/// sender: `readv` the input file into two iovecs (half a chunk each), `writev` the same two
/// to the socket (again after a partial write). receiver: `readv` into two halves.
pub fn readv_writev(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("readv-writev.input"), sizes.bytes)?;
    let file = input.as_raw_fd();
    let mut buf = vec![0u8; sizes.chunk];
    let send = move |rec: &Recorder, socket| send_readv_writev(rec, file, socket, &mut buf, sizes);
    let pair = net::tcp_pair()?;
    run_stream(
        Mode::ReadvWritev,
        params,
        pair,
        Receive::Readv,
        &[file],
        send,
    )
}

fn send_read_write(
    rec: &Recorder,
    file: RawFd,
    socket: RawFd,
    buf: &mut [u8],
    sizes: Sizes,
) -> ChildResult {
    for _ in 0..sizes.rounds {
        rewind(file)?;
        let mut left = sizes.bytes;
        while left > 0 {
            let want = piece(sizes.chunk, left);
            let n = sys::read(rec, file, &mut buf[..want]).or_fail("read the input file")?;
            if n == 0 {
                return Err(Failure::new("input file ended early"));
            }
            transfer_all(&buf[..n], "write to the socket", |d| {
                sys::write(rec, socket, d)
            })?;
            left -= n as u64;
        }
    }
    Ok(())
}

fn send_readv_writev(
    rec: &Recorder,
    file: RawFd,
    socket: RawFd,
    buf: &mut [u8],
    sizes: Sizes,
) -> ChildResult {
    for _ in 0..sizes.rounds {
        rewind(file)?;
        let mut left = sizes.bytes;
        while left > 0 {
            let want = piece(sizes.chunk, left);
            let half = want / 2;
            let n = {
                let (a, b) = buf[..want].split_at_mut(half);
                let mut iov = [IoSliceMut::new(a), IoSliceMut::new(b)];
                sys::readv(rec, file, &mut iov).or_fail("readv the input file")?
            };
            if n == 0 {
                return Err(Failure::new("input file ended early"));
            }
            // The halves fill in order, so the data is buf[..n]: send it as the same two
            // iovecs, cut at n.
            let (a, b) = buf[..n].split_at(half.min(n));
            let mut iov = [IoSlice::new(a), IoSlice::new(b)];
            let mut rest = &mut iov[..];
            while !rest.is_empty() {
                let sent = sys::writev(rec, socket, rest).or_fail("writev to the socket")?;
                if sent == 0 {
                    return Err(Failure::new("writev accepted no bytes"));
                }
                IoSlice::advance_slices(&mut rest, sent);
            }
            left -= n as u64;
        }
    }
    Ok(())
}
