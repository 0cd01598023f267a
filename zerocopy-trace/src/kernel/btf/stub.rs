//! A BTF blob that holds one typedef at a given type id, and nothing else worth parsing.
//!
//! aya loads a tp_btf program given a `Btf` in which it looks up one id: that of the
//! tracepoint's `btf_trace_<name>` typedef in the kernel's BTF. Handing it the kernel's whole
//! BTF costs tens of megabytes of memory for that one number; our own reader (`btf.rs`) has
//! found it already, so aya gets this stub instead: placeholder integer types up to the id,
//! then the typedef.

use aya::{Btf, Endianness};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: u32 = 24;
const KIND_INT: u32 = 1;
const KIND_TYPEDEF: u32 = 8;
/// `struct btf_type` (12 bytes) plus the 4-byte encoding of an int.
const INT_LEN: usize = 16;

/// The stub's raw bytes: `name` is a typedef of type id `id` (at least 2: id 1 is the first
/// placeholder, which the typedef refers to).
pub fn typedef_blob(name: &str, id: u32) -> Vec<u8> {
    let placeholders = id.saturating_sub(1).max(1) as usize;
    let mut types = Vec::with_capacity(placeholders * INT_LEN + 12);
    let mut put = |v: u32| types.extend_from_slice(&v.to_le_bytes());
    for _ in 0..placeholders {
        // Anonymous 32-bit int: name_off 0, kind INT, size 4, encoding: 32 bits.
        put(0);
        put(KIND_INT << 24);
        put(4);
        put(32);
    }
    // The typedef: its name at string offset 1, of type 1.
    put(1);
    put(KIND_TYPEDEF << 24);
    put(1);
    let mut strings = vec![0u8];
    strings.extend_from_slice(name.as_bytes());
    strings.push(0);

    let mut blob = Vec::with_capacity(HEADER_LEN as usize + types.len() + strings.len());
    blob.extend_from_slice(&MAGIC.to_le_bytes());
    blob.push(1); // version
    blob.push(0); // flags
    for v in [
        HEADER_LEN,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(&strings);
    blob
}

/// The stub, as aya's `Btf`.
pub fn typedef_only(name: &str, id: u32) -> Result<Btf, aya::BtfError> {
    Btf::parse(&typedef_blob(name, id), Endianness::Little)
}

#[cfg(test)]
mod tests {
    use aya_obj::btf::BtfKind;

    use super::*;

    #[test]
    fn aya_finds_the_typedef_at_the_given_id() {
        for id in [2, 3, 11328, 100_000] {
            let btf = typedef_only("btf_trace_sys_exit", id).unwrap();
            assert_eq!(
                btf.id_by_type_name_kind("btf_trace_sys_exit", BtfKind::Typedef)
                    .unwrap(),
                id
            );
        }
    }

    #[test]
    fn the_stub_is_small() {
        // 16 bytes a placeholder: a kernel's ~11 000 types before the typedef make ~180 KiB.
        assert!(typedef_blob("btf_trace_sys_exit", 11328).len() < 200 * 1024);
    }
}
