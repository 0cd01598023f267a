//! Reading a whole per-CPU map (hash or array) in a few syscalls. Iterating with aya costs two
//! syscalls per entry (the next key, then its values): with 1 000 live processes of two
//! syscalls each, 4 000 a refresh. The kernel's `BPF_MAP_LOOKUP_BATCH` (Linux 5.6) copies many
//! entries per call; aya has no wrapper for it, so the syscall is made here, and everything it
//! returns is decoded by the pure `decode`.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd},
};

use aya::{maps::MapData, Pod};
use aya_obj::generated::{bpf_attr, bpf_cmd};

/// Entries asked for per call at first. A call fails with ENOSPC when a hash bucket holds
/// more entries than that; the size then doubles, up to `MAX_BATCH` (a bucket that full is
/// not a hash table any more: the caller then reads entry by entry).
const BATCH: usize = 256;
const MAX_BATCH: usize = 4096;

/// The kernel's ENOTSUPP (not in libc): a map type without batch operations.
const ENOTSUPP: i32 = 524;

/// A per-CPU map's entries: each key with its value on every possible CPU.
pub type PerCpuEntries<K, V> = Vec<(K, Vec<V>)>;

/// Every entry of per-CPU map `map` (a hash or an array) with its values on each of `cpus`
/// possible CPUs.
/// `Ok(None)` when this kernel or map has no batch lookup: the caller iterates instead.
/// Like any walk of a map that changes meanwhile, an entry deleted or added during the read
/// may or may not be in it (a snapshot covers deleted ones by their exit records).
pub fn per_cpu_entries<K: Pod, V: Pod>(
    map: &MapData,
    cpus: usize,
) -> io::Result<Option<PerCpuEntries<K, V>>> {
    let fd = map.fd().as_fd().as_raw_fd();
    let stride = per_cpu_stride::<V>();
    let mut batch = BATCH;
    let mut keys = vec![0u8; batch * size_of::<K>()];
    let mut values = vec![0u8; batch * stride * cpus];
    let mut entries = Vec::new();
    // The position to resume from, as the kernel hands it back (a bucket index for a hash).
    let mut token = 0u64;
    let mut next = 0u64;
    let mut first = true;
    loop {
        // SAFETY: an all-zero bpf_attr is its valid empty state.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // Writing a union's member is safe; reading one back is not.
        attr.batch.in_batch = if first {
            0
        } else {
            &token as *const u64 as u64
        };
        attr.batch.out_batch = &mut next as *mut u64 as u64;
        attr.batch.keys = keys.as_mut_ptr() as u64;
        attr.batch.values = values.as_mut_ptr() as u64;
        attr.batch.count = batch as u32;
        attr.batch.map_fd = fd as u32;

        // SAFETY: `attr` points to buffers sized for `count` entries, alive across the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                bpf_cmd::BPF_MAP_LOOKUP_BATCH as libc::c_long,
                &mut attr as *mut bpf_attr,
                size_of::<bpf_attr>() as libc::c_uint,
            )
        };
        let error = (ret < 0).then(io::Error::last_os_error);
        // SAFETY: the kernel wrote back how many entries it copied.
        let copied = unsafe { attr.batch.count } as usize;
        match error.as_ref().and_then(io::Error::raw_os_error) {
            None | Some(libc::ENOENT) => {
                entries.extend(decode::<K, V>(&keys, &values, copied.min(batch), cpus));
                if error.is_some() {
                    // ENOENT: the last bucket was read.
                    return Ok(Some(entries));
                }
                token = next;
                first = false;
            }
            Some(libc::ENOSPC) if batch < MAX_BATCH => {
                batch *= 2;
                keys.resize(batch * size_of::<K>(), 0);
                values.resize(batch * stride * cpus, 0);
            }
            Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if first => return Ok(None),
            _ => return Err(error.unwrap_or_else(|| io::Error::other("unexpected batch result"))),
        }
    }
}

/// Every entry of plain (not per-CPU) map `map`, as `per_cpu_entries` reads them. A plain
/// map's values come back to back at their own size, a per-CPU map's padded to 8 each: the
/// same layout for one CPU where the size is a multiple of 8, which it is for every value
/// read here (checked at compile time).
pub fn entries<K: Pod, V: Pod>(map: &MapData) -> io::Result<Option<Vec<(K, V)>>> {
    const { assert!(size_of::<V>().is_multiple_of(8)) };
    Ok(per_cpu_entries::<K, V>(map, 1)?.map(|entries| {
        entries
            .into_iter()
            .filter_map(|(key, mut values)| values.pop().map(|value| (key, value)))
            .collect()
    }))
}

/// Bytes of one CPU's value in a per-CPU map's user-space layout: padded to 8.
fn per_cpu_stride<V>() -> usize {
    size_of::<V>().next_multiple_of(8)
}

/// The first `count` entries of a batch: `keys` holds them back to back, `values` each
/// entry's per-CPU values back to back (`cpus` of them, each padded to 8 bytes).
fn decode<K: Pod, V: Pod>(
    keys: &[u8],
    values: &[u8],
    count: usize,
    cpus: usize,
) -> PerCpuEntries<K, V> {
    let stride = per_cpu_stride::<V>();
    (0..count)
        .filter_map(|i| {
            let key = read::<K>(keys, i * size_of::<K>())?;
            let base = i * stride * cpus;
            let per_cpu = (0..cpus)
                .map(|cpu| read::<V>(values, base + cpu * stride))
                .collect::<Option<Vec<V>>>()?;
            Some((key, per_cpu))
        })
        .collect()
}

/// The `T` at byte `offset` of `bytes`, if it is all there.
fn read<T: Pod>(bytes: &[u8], offset: usize) -> Option<T> {
    let end = offset.checked_add(size_of::<T>())?;
    let slice = bytes.get(offset..end)?;
    // SAFETY: `slice` holds size_of::<T>() bytes, and any bytes are a valid `T` (Pod).
    Some(unsafe { std::ptr::read_unaligned(slice.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy_trace_common::{Counters, ProcKey};

    fn bytes_of<T: Pod>(value: &T) -> Vec<u8> {
        // SAFETY: a Pod value is plain bytes.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn decodes_keys_and_each_cpus_value_in_the_kernels_layout() {
        let cpus = 3;
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for tgid in [7u32, 9] {
            keys.extend(bytes_of(&ProcKey { tgid, syscall: 1 }));
            for cpu in 0..cpus as u64 {
                let c = Counters {
                    calls: tgid as u64 * 10 + cpu,
                    bytes: cpu,
                    ..Counters::default()
                };
                values.extend(bytes_of(&c));
            }
        }
        let entries = decode::<ProcKey, Counters>(&keys, &values, 2, cpus);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0.tgid, 9);
        let calls: Vec<u64> = entries[1].1.iter().map(|c| c.calls).collect();
        assert_eq!(calls, [90, 91, 92]);
        assert_eq!(entries[0].1[2].bytes, 2);
        // A count past what the buffers hold is cut short, not read out of bounds.
        assert_eq!(
            decode::<ProcKey, Counters>(&keys, &values, 5, cpus).len(),
            2
        );
        assert!(decode::<ProcKey, Counters>(&keys, &values, 0, cpus).is_empty());
    }

    #[test]
    fn values_are_padded_to_eight_bytes() {
        assert_eq!(per_cpu_stride::<u32>(), 8);
        assert_eq!(per_cpu_stride::<u64>(), 8);
        assert_eq!(per_cpu_stride::<[u8; 12]>(), 16);
        let keys = bytes_of(&1u32);
        let values = [5u8, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA, 6, 0, 0, 0, 0, 0, 0, 0];
        let entries = decode::<u32, u32>(&keys, &values, 1, 2);
        assert_eq!(entries, vec![(1, vec![5, 6])]);
    }
}
