//! The files the workloads move: a fixed pattern of known size.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` of a fixed pattern to `path`.
pub fn write(path: &Path, bytes: u64) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    // Not all zeros, so nothing along the way can special-case the data.
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64);
        file.write_all(&block[..n as usize])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n;
    }
    Ok(())
}
