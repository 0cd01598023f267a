//! Turning the eBPF object's placeholder helper calls into kfunc calls.
//!
//! A call to a kernel function (kfunc) names it by its BTF id in the running kernel, which is
//! only known at load time, and aya has no relocation for it. The eBPF side calls a helper
//! number no kernel has (`RDONLY_CAST_PLACEHOLDER`); before loading, each such call instruction
//! in the object's code sections is rewritten to a kfunc call of the given id. The verifier
//! refuses an unknown helper, so a placeholder left in a loaded program can never run.

use anyhow::{Context, Result};
use object::{Object, ObjectSection, SectionKind};

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `src_reg` of a call to a kernel function by BTF id (`BPF_PSEUDO_KFUNC_CALL`).
const PSEUDO_KFUNC_CALL: u8 = 2;
const INSTRUCTION: usize = 8;

/// A copy of `object` with every call of helper `placeholder` in a code section made a call of
/// the kfunc `func_id` (of vmlinux), and the number of calls rewritten.
pub fn rewrite(object: &[u8], placeholder: u32, func_id: u32) -> Result<(Vec<u8>, usize)> {
    let file = object::File::parse(object).context("reading the eBPF object")?;
    let mut patched = object.to_vec();
    let mut count = 0;
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let Some((start, len)) = section.file_range() else {
            continue;
        };
        let code = usize::try_from(start)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(start, len)| patched.get_mut(start..start.checked_add(len)?))
            .context("a code section lies outside the eBPF object")?;
        count += rewrite_code(code, placeholder, func_id);
    }
    Ok((patched, count))
}

/// Rewrites the placeholder calls in one section's instructions; returns how many.
fn rewrite_code(code: &mut [u8], placeholder: u32, func_id: u32) -> usize {
    let mut count = 0;
    for instruction in code.chunks_exact_mut(INSTRUCTION) {
        // opcode, dst/src registers (0 for a helper call), offset, imm: the helper number.
        let is_placeholder = instruction[0] == CALL
            && instruction[1] == 0
            && instruction[2..4] == [0, 0]
            && instruction[4..8] == placeholder.to_le_bytes();
        if is_placeholder {
            // src_reg is the high nibble of byte 1; offset 0 names vmlinux's BTF.
            instruction[1] = PSEUDO_KFUNC_CALL << 4;
            instruction[4..8].copy_from_slice(&func_id.to_le_bytes());
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(helper: u32) -> [u8; 8] {
        let mut i = [CALL, 0, 0, 0, 0, 0, 0, 0];
        i[4..].copy_from_slice(&helper.to_le_bytes());
        i
    }

    #[test]
    fn only_placeholder_calls_become_kfunc_calls() {
        let mov = [0xb7, 0x01, 0, 0, 0x01, 0, 0x63, 0x7a];
        let mut code = [call(0x7a63_0001), call(14), mov, call(0x7a63_0001)].concat();
        assert_eq!(rewrite_code(&mut code, 0x7a63_0001, 54321), 2);
        let kfunc = {
            let mut i = [CALL, 0x20, 0, 0, 0, 0, 0, 0];
            i[4..].copy_from_slice(&54321u32.to_le_bytes());
            i
        };
        assert_eq!(code, [kfunc, call(14), mov, kfunc].concat());
        // Already rewritten: nothing left to do.
        assert_eq!(rewrite_code(&mut code, 0x7a63_0001, 54321), 0);
    }

    #[test]
    fn the_agents_object_has_the_typed_hooks_placeholders() {
        let (patched, count) = rewrite(
            crate::kernel::attach::object(),
            zerocopy_trace_common::RDONLY_CAST_PLACEHOLDER,
            1,
        )
        .unwrap();
        // The fd array's file and a socket file's socket, in the typed program at least.
        assert!(count >= 2, "{count}");
        assert_eq!(patched.len(), crate::kernel::attach::object().len());
    }
}
