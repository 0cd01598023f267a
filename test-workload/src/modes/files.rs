//! File to file: `copy_file_range` inside the kernel, and the positional read/write pairs
//! through user memory. The parent checks the output file against the input afterwards.

use std::io::{IoSlice, IoSliceMut};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};

use super::{loff, piece, Mode, Params};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Failure, OrFail, Recorder, SharedSlots};
use crate::report::ProcessReport;
use crate::setup::{input_file, output_file, same_contents};
use crate::sys;

/// copier: `copy_file_range` input -> output, at most a chunk per call, with explicit offsets
/// (each round rewrites the same output from offset 0).
pub fn copy_file_range(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let (input_path, output_path) = (
        params.dir.file("copy-file-range.input"),
        params.dir.file("copy-file-range.output"),
    );
    let input = input_file(&input_path, sizes.bytes)?;
    let output = output_file(&output_path)?;
    let (src, dst) = (input.as_raw_fd(), output.as_raw_fd());

    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::CopyFileRange.name(), &slots, params.hold);
    children.spawn("copier", &[src, dst], move |rec| {
        for _ in 0..sizes.rounds {
            let (mut pos_in, mut pos_out) = (0i64, 0i64);
            let mut left = sizes.bytes;
            while left > 0 {
                let want = piece(sizes.chunk, left);
                let n = sys::copy_file_range(
                    rec,
                    src,
                    Some(&mut pos_in),
                    dst,
                    Some(&mut pos_out),
                    want,
                )
                .or_fail("copy_file_range input -> output")?;
                if n == 0 {
                    return Err(Failure::new("input file ended early"));
                }
                left -= n as u64;
            }
        }
        Ok(())
    })?;
    drop((input, output));
    let reports = children.wait()?;
    same_contents(&input_path, &output_path).context("copy-file-range output")?;
    Ok(reports)
}

/// Which positional pair copies a part of the file.
#[derive(Clone, Copy)]
enum Pair {
    /// `pread64` + `pwrite64`
    Plain,
    /// `preadv` + `pwritev`, two iovecs of half a piece each
    Vectored,
    /// `preadv2` + `pwritev2` with flags 0, two iovecs of half a piece each
    Vectored2,
}

/// copier: the file is cut in three parts, `[0, n/3)`, `[n/3, 2n/3)`, `[2n/3, n)`, copied to
/// the same offsets of the output with `pread64`/`pwrite64`, `preadv`/`pwritev` and
/// `preadv2`/`pwritev2` respectively, at most a chunk per read. Each round copies all three.
pub fn positional(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let (input_path, output_path) = (
        params.dir.file("positional.input"),
        params.dir.file("positional.output"),
    );
    let input = input_file(&input_path, sizes.bytes)?;
    let output = output_file(&output_path)?;
    let (src, dst) = (input.as_raw_fd(), output.as_raw_fd());
    let (third, two_thirds) = (sizes.bytes / 3, sizes.bytes / 3 * 2);
    let parts = [
        (Pair::Plain, 0..third),
        (Pair::Vectored, third..two_thirds),
        (Pair::Vectored2, two_thirds..sizes.bytes),
    ];
    let mut buf = vec![0u8; sizes.chunk];

    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::Positional.name(), &slots, params.hold);
    children.spawn("copier", &[src, dst], move |rec| {
        for _ in 0..sizes.rounds {
            for (pair, range) in parts.iter().cloned() {
                copy_part(rec, pair, src, dst, &mut buf, range)?;
            }
        }
        Ok(())
    })?;
    drop((input, output));
    let reports = children.wait()?;
    same_contents(&input_path, &output_path).context("positional output")?;
    Ok(reports)
}

fn copy_part(
    rec: &Recorder,
    pair: Pair,
    src: RawFd,
    dst: RawFd,
    buf: &mut [u8],
    range: Range<u64>,
) -> ChildResult {
    let mut pos = range.start;
    while pos < range.end {
        let want = piece(buf.len(), range.end - pos);
        let n = read_at(rec, pair, src, &mut buf[..want], loff(pos)?)?;
        if n == 0 {
            return Err(Failure::new("input file ended early"));
        }
        write_all_at(rec, pair, dst, &buf[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

fn read_at(
    rec: &Recorder,
    pair: Pair,
    fd: RawFd,
    data: &mut [u8],
    pos: i64,
) -> Result<usize, Failure> {
    match pair {
        Pair::Plain => sys::pread64(rec, fd, data, pos).or_fail("pread64 the input file"),
        Pair::Vectored => {
            sys::preadv(rec, fd, &mut halves(data), pos).or_fail("preadv the input file")
        }
        Pair::Vectored2 => {
            sys::preadv2(rec, fd, &mut halves(data), pos, 0).or_fail("preadv2 the input file")
        }
    }
}

/// Two iovecs over the halves of `data`; they fill in order, so `n` bytes read are
/// `data[..n]`.
fn halves(data: &mut [u8]) -> [IoSliceMut<'_>; 2] {
    let (a, b) = data.split_at_mut(data.len() / 2);
    [IoSliceMut::new(a), IoSliceMut::new(b)]
}

/// Writes all of `data` at `pos` with the pair's write syscall, however little each call takes.
fn write_all_at(rec: &Recorder, pair: Pair, fd: RawFd, data: &[u8], mut pos: u64) -> ChildResult {
    let (a, b) = data.split_at(data.len() / 2);
    let mut iov = [IoSlice::new(a), IoSlice::new(b)];
    let mut rest = &mut iov[..];
    let mut plain = data;
    while !rest.is_empty() && !plain.is_empty() {
        let at = loff(pos)?;
        let n = match pair {
            Pair::Plain => sys::pwrite64(rec, fd, plain, at).or_fail("pwrite64 the output file")?,
            Pair::Vectored => sys::pwritev(rec, fd, rest, at).or_fail("pwritev the output file")?,
            Pair::Vectored2 => {
                sys::pwritev2(rec, fd, rest, at, 0).or_fail("pwritev2 the output file")?
            }
        };
        if n == 0 {
            return Err(Failure::new("a positional write accepted no bytes"));
        }
        // Both views advance together, whichever one the call used.
        plain = &plain[n..];
        IoSlice::advance_slices(&mut rest, n);
        pos += n as u64;
    }
    Ok(())
}
