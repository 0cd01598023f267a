//! A small reader for the kernel's BTF (BPF Type Format): just enough to find where a member
//! lives inside a kernel struct.
//!
//! Why it exists: the eBPF programs read kernel structs with `bpf_probe_read_kernel`, and our
//! Rust toolchain emits no CO-RE relocations, so nothing patches member offsets at load time.
//! The agent therefore looks them up once at start-up in `/sys/kernel/btf/vmlinux` and hands
//! them to the programs.
//!
//! Layout (Documentation/bpf/btf.rst): a header, then a type section of variable-length records
//! (a type's id is its 1-based position; id 0 is `void`), then a section of NUL-terminated
//! strings that the records name by byte offset.
//!
//! The input is untrusted as far as this module is concerned: every read is bounds-checked,
//! every arithmetic step on input-derived numbers is checked, and every walk along type chains
//! is capped, so a corrupt blob yields a `BtfError`, never a panic or a hang.

// Enforced here rather than by review: the parser must not be able to panic on any input.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use std::{collections::HashMap, fmt, fs, io, path::PathBuf};

/// Where the running kernel exposes its own BTF.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const BTF_MAGIC: u16 = 0xeb9f;
const BTF_VERSION: u8 = 1;
/// The header as first defined; newer kernels may append fields, which `hdr_len` skips.
const MIN_HEADER_LEN: u32 = 24;
/// `struct btf_type`: name_off, info, size_or_type.
const TYPE_RECORD_LEN: usize = 12;
/// `struct btf_member`: name_off, type, offset.
const MEMBER_LEN: usize = 12;
/// The 64-bit kernels we trace.
const POINTER_SIZE: u64 = 8;

/// Caps on walks whose length the input controls. Real kernels need a handful of hops and a
/// few levels of anonymous nesting; the caps only exist so cyclic garbage cannot hang us.
const MAX_TYPE_HOPS: usize = 64;
const MAX_ANON_NESTING: usize = 32;
/// Members examined by one lookup at most. Bounds the fan-out of anonymous members, which a
/// depth cap alone does not (a type reused as several anonymous members multiplies the work).
const MEMBER_VISIT_BUDGET: usize = 1 << 20;

/// BTF kinds (`BTF_KIND_*`), the 5-bit field in bits 24..29 of `info`.
mod kind {
    pub const INT: u8 = 1;
    pub const PTR: u8 = 2;
    pub const ARRAY: u8 = 3;
    pub const STRUCT: u8 = 4;
    pub const UNION: u8 = 5;
    pub const ENUM: u8 = 6;
    pub const FWD: u8 = 7;
    pub const TYPEDEF: u8 = 8;
    pub const VOLATILE: u8 = 9;
    pub const CONST: u8 = 10;
    pub const RESTRICT: u8 = 11;
    pub const FUNC: u8 = 12;
    pub const FUNC_PROTO: u8 = 13;
    pub const VAR: u8 = 14;
    pub const DATASEC: u8 = 15;
    pub const FLOAT: u8 = 16;
    pub const DECL_TAG: u8 = 17;
    pub const TYPE_TAG: u8 = 18;
    pub const ENUM64: u8 = 19;
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "kernel has no BTF at {} (CONFIG_DEBUG_INFO_BTF); run on a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y",
        VMLINUX_BTF
    )]
    Missing,
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("BTF is big-endian (magic bytes eb 9f); this reader only handles little-endian BTF")]
    BigEndian,
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("no struct or union named `{0}` in BTF")]
    NoSuchStruct(String),
    #[error("no typedef named {0}")]
    NoSuchTypedef(String),
    #[error("no function named {0} (the kernel lacks this kfunc)")]
    NoSuchFunc(String),
    #[error("empty member path for struct {0}")]
    EmptyPath(String),
    #[error("struct {struct_name} has no member `{member}`")]
    NoSuchMember { struct_name: String, member: String },
    #[error(
        "struct {struct_name} member `{member}` is a {kind}, not a struct or union, so `{next}` \
         cannot be looked up inside it"
    )]
    NotComposite {
        struct_name: String,
        member: String,
        kind: &'static str,
        next: String,
    },
    /// Also used for a member that does not start on a byte boundary: only bitfields can.
    #[error(
        "struct {struct_name} member `{member}` is a bitfield (bit {bit_offset}, {bit_size} bits \
         wide), so it has no byte offset; read the containing word and mask it instead"
    )]
    Bitfield {
        struct_name: String,
        member: String,
        /// From the start of the outer struct.
        bit_offset: u64,
        /// 0 when the encoding does not say.
        bit_size: u32,
    },
    #[error("struct {struct_name} member `{member}` has no size (its type is a {kind})")]
    NoSize {
        struct_name: String,
        member: String,
        kind: &'static str,
    },
    #[error(
        "struct {struct_name} is defined {definitions} times in BTF and they disagree on \
         `{member}`"
    )]
    Ambiguous {
        struct_name: String,
        member: String,
        definitions: usize,
    },
    #[error("struct or union {name} is defined {definitions} times in BTF")]
    SeveralDefinitions { name: String, definitions: usize },
}

fn malformed(what: impl Into<String>) -> BtfError {
    BtfError::Malformed(what.into())
}

/// One decoded `struct btf_type`; the kind-specific data that follows it stays in the raw type
/// section and is read on demand from `extra_at`.
#[derive(Clone, Copy, Debug)]
struct TypeRecord {
    kind: u8,
    kind_flag: bool,
    vlen: u16,
    name_off: u32,
    /// A byte size or a type id, depending on the kind.
    size_or_type: u32,
    /// Offset in the type section of the data following the 12-byte record.
    extra_at: usize,
}

/// Stands in for type id 0, so ids index `types` directly.
const VOID: TypeRecord = TypeRecord {
    kind: 0,
    kind_flag: false,
    vlen: 0,
    name_off: 0,
    size_or_type: 0,
    extra_at: 0,
};

/// A struct or union member as stored, with the kind_flag packing already undone.
#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    /// Non-zero only for bitfields of a struct encoded with kind_flag.
    bitfield_size: u32,
}

/// A member found by name, with its offset relative to the container that was searched
/// (anonymous members in between already added in).
#[derive(Clone, Copy, Debug)]
struct Hit {
    bit_offset: u64,
    type_id: u32,
    bitfield_size: u32,
}

/// Where a member path ends up inside one definition of the outer struct.
#[derive(Clone, Copy, Debug)]
struct Located {
    byte_offset: u32,
    type_id: u32,
}

/// Parsed BTF: the raw type and string sections plus a decoded index over them.
pub struct Btf {
    /// The whole blob, kept as read: the sections are ranges of it (no copies; vmlinux BTF is
    /// megabytes, and this is most of the agent's peak memory).
    data: Vec<u8>,
    type_range: std::ops::Range<usize>,
    string_range: std::ops::Range<usize>,
    /// Indexed by type id; `types[0]` is `void`.
    types: Vec<TypeRecord>,
    /// Named structs and unions (C keeps them in one tag namespace). A name can have several
    /// definitions in vmlinux (file-local structs), hence the Vec.
    composites_by_name: HashMap<Box<[u8]>, Vec<u32>>,
}

impl fmt::Debug for Btf {
    // The derived form would print megabytes of raw sections.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len().saturating_sub(1))
            .field("named_structs_and_unions", &self.composites_by_name.len())
            .field("string_bytes", &self.strings().len())
            .finish()
    }
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        let bytes = match fs::read(VMLINUX_BTF) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(BtfError::Missing),
            Err(source) => {
                return Err(BtfError::Io {
                    path: VMLINUX_BTF.into(),
                    source,
                })
            }
        };
        Btf::from_vec(bytes)
    }

    /// Parses a raw little-endian BTF blob (as in `/sys/kernel/btf/vmlinux`).
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<Btf, BtfError> {
        Btf::from_vec(bytes.to_vec())
    }

    /// Parses a blob, keeping it.
    fn from_vec(data: Vec<u8>) -> Result<Btf, BtfError> {
        let header = Header::parse(&data)?;
        let type_section = section(&data, header.len, header.type_off, header.type_len, "type")?;
        let strings = section(&data, header.len, header.str_off, header.str_len, "string")?;
        check_strings(strings)?;
        let types = parse_types(type_section)?;
        let range_of = |part: &[u8]| {
            // `part` is a sub-slice of `data`, so the difference is its offset in it.
            let start = (part.as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
            start..start.saturating_add(part.len())
        };
        let (type_range, string_range) = (range_of(type_section), range_of(strings));
        let mut btf = Btf {
            data,
            type_range,
            string_range,
            types,
            composites_by_name: HashMap::new(),
        };
        btf.composites_by_name = btf.index_composites()?;
        Ok(btf)
    }

    fn type_section(&self) -> &[u8] {
        self.data.get(self.type_range.clone()).unwrap_or_default()
    }

    fn strings(&self) -> &[u8] {
        self.data.get(self.string_range.clone()).unwrap_or_default()
    }

    /// The type id of the typedef called `name` (tp_btf programs name their tracepoint by the
    /// id of its `btf_trace_<name>` typedef).
    pub fn typedef_id(&self, name: &str) -> Result<u32, BtfError> {
        self.first_named(kind::TYPEDEF, name)?
            .ok_or_else(|| BtfError::NoSuchTypedef(name.to_owned()))
    }

    /// The type id of the function called `name` (a kfunc call names its function by it).
    pub fn func_id(&self, name: &str) -> Result<u32, BtfError> {
        self.first_named(kind::FUNC, name)?
            .ok_or_else(|| BtfError::NoSuchFunc(name.to_owned()))
    }

    /// The type id of the one struct called `name`; several definitions are an error, since a
    /// pointer cast to the wrong one would read the wrong members.
    pub fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        let ids = self
            .composites_by_name
            .get(name.as_bytes())
            .ok_or_else(|| BtfError::NoSuchStruct(name.to_owned()))?;
        match ids.as_slice() {
            [id] if self.types.get(*id as usize).map(|t| t.kind) == Some(kind::STRUCT) => Ok(*id),
            [_] => Err(BtfError::NoSuchStruct(name.to_owned())),
            _ => Err(BtfError::SeveralDefinitions {
                name: name.to_owned(),
                definitions: ids.len(),
            }),
        }
    }

    /// The id of the first type of `kind` called `name`.
    fn first_named(&self, kind: u8, name: &str) -> Result<Option<u32>, BtfError> {
        for (id, record) in self.types.iter().enumerate().skip(1) {
            if record.kind == kind && self.name(record.name_off)? == name.as_bytes() {
                return u32::try_from(id)
                    .map(Some)
                    .map_err(|_| malformed("type id past u32"));
            }
        }
        Ok(None)
    }

    /// Byte offset of a member path inside a struct, e.g. `member_offset("sock",
    /// &["__sk_common", "skc_family"])`. Each name is also searched for inside anonymous
    /// struct/union members, as C does. Bitfields and members not on a byte boundary are
    /// `BtfError::Bitfield`.
    pub fn member_offset(&self, struct_name: &str, path: &[&str]) -> Result<u32, BtfError> {
        self.across_definitions(struct_name, path, |located| Ok(located.byte_offset))
    }

    /// Size in bytes of a member's type once typedefs and qualifiers are peeled off (pointers
    /// are 8, arrays are element size times length). A bitfield is `BtfError::Bitfield`, which
    /// is how a caller tells e.g. a `u16 sk_protocol` from an older kernel's bitfield one.
    pub fn member_size(&self, struct_name: &str, path: &[&str]) -> Result<u32, BtfError> {
        self.across_definitions(struct_name, path, |located| {
            let member = path.join(".");
            match self.type_size(located.type_id)? {
                TypeSize::Bytes(bytes) => u32::try_from(bytes).map_err(|_| {
                    malformed(format!(
                        "struct {struct_name} member `{member}` has size {bytes}"
                    ))
                }),
                TypeSize::Unsized(kind) => Err(BtfError::NoSize {
                    struct_name: struct_name.to_owned(),
                    member,
                    kind,
                }),
            }
        })
    }

    /// Runs `project` on the member path in every definition named `struct_name`. vmlinux has
    /// a few duplicate names; an answer only counts if the definitions that have the member
    /// agree on it, so a clash is an error rather than a silently wrong offset.
    fn across_definitions<T: PartialEq>(
        &self,
        struct_name: &str,
        path: &[&str],
        project: impl Fn(&Located) -> Result<T, BtfError>,
    ) -> Result<T, BtfError> {
        let ids = self
            .composites_by_name
            .get(struct_name.as_bytes())
            .ok_or_else(|| BtfError::NoSuchStruct(struct_name.to_owned()))?;
        let mut agreed: Option<T> = None;
        let mut first_error = None;
        for &id in ids {
            match self.locate(id, struct_name, path).and_then(|l| project(&l)) {
                Ok(value) => match &agreed {
                    Some(previous) if *previous != value => {
                        return Err(BtfError::Ambiguous {
                            struct_name: struct_name.to_owned(),
                            member: path.join("."),
                            definitions: ids.len(),
                        })
                    }
                    Some(_) => {}
                    None => agreed = Some(value),
                },
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (agreed, first_error) {
            (Some(value), _) => Ok(value),
            (None, Some(e)) => Err(e),
            (None, None) => Err(BtfError::NoSuchStruct(struct_name.to_owned())),
        }
    }

    /// Follows `path` from the struct with id `root`, adding up bit offsets.
    fn locate(&self, root: u32, struct_name: &str, path: &[&str]) -> Result<Located, BtfError> {
        if path.is_empty() {
            return Err(BtfError::EmptyPath(struct_name.to_owned()));
        }
        let shown = |depth: usize| {
            path.iter()
                .take(depth.saturating_add(1))
                .copied()
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut budget = MEMBER_VISIT_BUDGET;
        let mut container = root;
        let mut bits: u64 = 0;
        let mut located = None;
        for (depth, name) in path.iter().enumerate() {
            if let Some(Located { type_id, .. }) = located {
                container =
                    self.descend(type_id, struct_name, &shown(depth.saturating_sub(1)), name)?;
            }
            let hit = self
                .find_member(container, name.as_bytes(), 0, &mut budget)?
                .ok_or_else(|| BtfError::NoSuchMember {
                    struct_name: struct_name.to_owned(),
                    member: shown(depth),
                })?;
            bits = bits.saturating_add(hit.bit_offset);
            self.reject_bitfield(&hit, bits, struct_name, &shown(depth))?;
            let byte_offset = u32::try_from(bits / 8).map_err(|_| {
                malformed(format!(
                    "struct {struct_name} member `{}` is at bit {bits}",
                    shown(depth)
                ))
            })?;
            located = Some(Located {
                byte_offset,
                type_id: hit.type_id,
            });
        }
        located.ok_or_else(|| BtfError::EmptyPath(struct_name.to_owned()))
    }

    /// The struct/union a path step goes into, or why it cannot (e.g. a pointer: following it
    /// would take a kernel read, which is the eBPF program's job, not an offset).
    fn descend(
        &self,
        type_id: u32,
        struct_name: &str,
        member: &str,
        next: &str,
    ) -> Result<u32, BtfError> {
        let (id, record) = self.skip_modifiers(type_id)?;
        if is_composite(record.kind) {
            return Ok(id);
        }
        Err(BtfError::NotComposite {
            struct_name: struct_name.to_owned(),
            member: member.to_owned(),
            kind: kind_name(record.kind),
            next: next.to_owned(),
        })
    }

    /// Searches the struct/union `container` for `name`, looking inside anonymous members too.
    fn find_member(
        &self,
        container: u32,
        name: &[u8],
        nesting: usize,
        budget: &mut usize,
    ) -> Result<Option<Hit>, BtfError> {
        // An empty name would match the first anonymous member, which is never what was meant.
        if name.is_empty() {
            return Ok(None);
        }
        if nesting > MAX_ANON_NESTING {
            return Err(malformed(format!(
                "anonymous members nested more than {MAX_ANON_NESTING} deep (cyclic types?)"
            )));
        }
        let record = self.record(container)?;
        for index in 0..record.vlen {
            *budget = budget.checked_sub(1).ok_or_else(|| {
                malformed("member lookup visited too many members (cyclic types?)")
            })?;
            let member = self.member(record, index)?;
            let member_name = self.name(member.name_off)?;
            if member_name == name {
                return Ok(Some(Hit {
                    bit_offset: u64::from(member.bit_offset),
                    type_id: member.type_id,
                    bitfield_size: member.bitfield_size,
                }));
            }
            if !member_name.is_empty() {
                continue;
            }
            let (inner, inner_record) = self.skip_modifiers(member.type_id)?;
            if !is_composite(inner_record.kind) {
                continue;
            }
            let nested = self.find_member(inner, name, nesting.saturating_add(1), budget)?;
            if let Some(hit) = nested {
                return Ok(Some(Hit {
                    bit_offset: hit.bit_offset.saturating_add(u64::from(member.bit_offset)),
                    ..hit
                }));
            }
        }
        Ok(None)
    }

    /// Bitfields have no byte offset to hand to `bpf_probe_read_kernel`. BTF marks them two
    /// ways: a width in the member (structs with kind_flag), or, in the older encoding, an INT
    /// type narrower than its storage or shifted within it.
    fn reject_bitfield(
        &self,
        hit: &Hit,
        bits: u64,
        struct_name: &str,
        member: &str,
    ) -> Result<(), BtfError> {
        let bitfield = |bit_offset: u64, bit_size: u32| BtfError::Bitfield {
            struct_name: struct_name.to_owned(),
            member: member.to_owned(),
            bit_offset,
            bit_size,
        };
        if hit.bitfield_size != 0 {
            return Err(bitfield(bits, hit.bitfield_size));
        }
        let (_, record) = self.skip_modifiers(hit.type_id)?;
        if record.kind == kind::INT {
            let encoding = self.extra_u32(record, 0)?;
            let int_bits = encoding & 0xff;
            let int_offset = (encoding >> 16) & 0xff;
            if int_offset != 0
                || u64::from(int_bits) != u64::from(record.size_or_type).saturating_mul(8)
            {
                return Err(bitfield(
                    bits.saturating_add(u64::from(int_offset)),
                    int_bits,
                ));
            }
        }
        if !bits.is_multiple_of(8) {
            let width = match self.type_size(hit.type_id) {
                Ok(TypeSize::Bytes(bytes)) => u32::try_from(bytes.saturating_mul(8)).unwrap_or(0),
                _ => 0,
            };
            return Err(bitfield(bits, width));
        }
        Ok(())
    }

    /// Size of a type in bytes, or the kind that has none (functions, `void`, forward
    /// declarations).
    fn type_size(&self, type_id: u32) -> Result<TypeSize, BtfError> {
        // Arrays of arrays multiply up; the hop cap also bounds that walk.
        let mut count: u64 = 1;
        let mut id = type_id;
        for _ in 0..MAX_TYPE_HOPS {
            let (_, record) = self.skip_modifiers(id)?;
            let unit = match record.kind {
                kind::INT
                | kind::ENUM
                | kind::ENUM64
                | kind::STRUCT
                | kind::UNION
                | kind::FLOAT
                | kind::DATASEC => u64::from(record.size_or_type),
                kind::PTR => POINTER_SIZE,
                kind::ARRAY => {
                    count = count
                        .checked_mul(u64::from(self.extra_u32(record, 2)?))
                        .ok_or_else(|| malformed(format!("array type #{id} is too large")))?;
                    id = self.extra_u32(record, 0)?;
                    continue;
                }
                other => return Ok(TypeSize::Unsized(kind_name(other))),
            };
            return count
                .checked_mul(unit)
                .map(TypeSize::Bytes)
                .ok_or_else(|| malformed(format!("type #{type_id} is too large")));
        }
        Err(malformed(format!(
            "type #{type_id}: array chain longer than {MAX_TYPE_HOPS} (cyclic?)"
        )))
    }

    /// Peels typedefs and qualifiers (`const`, `volatile`, `restrict`, type tags) off a type.
    fn skip_modifiers(&self, type_id: u32) -> Result<(u32, &TypeRecord), BtfError> {
        let mut id = type_id;
        for _ in 0..MAX_TYPE_HOPS {
            let record = self.record(id)?;
            match record.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = record.size_or_type;
                }
                _ => return Ok((id, record)),
            }
        }
        Err(malformed(format!(
            "type #{type_id}: typedef/qualifier chain longer than {MAX_TYPE_HOPS} (cyclic?)"
        )))
    }

    fn record(&self, type_id: u32) -> Result<&TypeRecord, BtfError> {
        usize::try_from(type_id)
            .ok()
            .and_then(|index| self.types.get(index))
            .ok_or_else(|| malformed(format!("reference to type #{type_id}, past the last type")))
    }

    /// The `index`th member of a struct/union record.
    fn member(&self, record: &TypeRecord, index: u16) -> Result<Member, BtfError> {
        let at = usize::from(index)
            .checked_mul(MEMBER_LEN)
            .and_then(|offset| offset.checked_add(record.extra_at))
            .ok_or_else(|| malformed("member offset overflows"))?;
        let word = |n: usize| {
            n.checked_mul(4)
                .and_then(|delta| at.checked_add(delta))
                .and_then(|pos| read_u32(self.type_section(), pos))
                .ok_or_else(|| malformed("member record past the end of the type section"))
        };
        let offset = word(2)?;
        // kind_flag on a struct/union packs a bitfield width into the top 8 bits of `offset`.
        let (bit_offset, bitfield_size) = if record.kind_flag {
            (offset & 0x00ff_ffff, offset >> 24)
        } else {
            (offset, 0)
        };
        Ok(Member {
            name_off: word(0)?,
            type_id: word(1)?,
            bit_offset,
            bitfield_size,
        })
    }

    /// The `n`th u32 of the kind-specific data after a record (INT encoding, ARRAY fields).
    fn extra_u32(&self, record: &TypeRecord, n: usize) -> Result<u32, BtfError> {
        n.checked_mul(4)
            .and_then(|delta| record.extra_at.checked_add(delta))
            .and_then(|pos| read_u32(self.type_section(), pos))
            .ok_or_else(|| malformed("type data past the end of the type section"))
    }

    /// The NUL-terminated name at `offset` in the string section, as bytes: lookups compare
    /// bytes, so names need not be valid UTF-8.
    fn name(&self, offset: u32) -> Result<&[u8], BtfError> {
        let tail = usize::try_from(offset)
            .ok()
            .and_then(|start| self.strings().get(start..))
            .ok_or_else(|| {
                malformed(format!("string offset {offset} is past the string section"))
            })?;
        let end = tail
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed(format!("string at offset {offset} is not NUL-terminated")))?;
        tail.get(..end)
            .ok_or_else(|| malformed(format!("string at offset {offset} is out of bounds")))
    }

    /// Built once at parse time so each lookup is a hash probe instead of a scan of ~100k
    /// types. Names are checked here, so a bad struct name fails the parse, not a later lookup.
    fn index_composites(&self) -> Result<HashMap<Box<[u8]>, Vec<u32>>, BtfError> {
        let mut index: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        for (id, record) in self.types.iter().enumerate() {
            if !is_composite(record.kind) || record.name_off == 0 {
                continue;
            }
            let name = self.name(record.name_off)?;
            if name.is_empty() {
                continue;
            }
            let id = u32::try_from(id).map_err(|_| malformed("more than 2^32 types"))?;
            index.entry(name.into()).or_default().push(id);
        }
        Ok(index)
    }
}

/// What `type_size` found: a size, or the kind of a type that has none.
enum TypeSize {
    Bytes(u64),
    Unsized(&'static str),
}

/// The fields of `struct btf_header` this reader uses.
struct Header {
    len: u32,
    type_off: u32,
    type_len: u32,
    str_off: u32,
    str_len: u32,
}

impl Header {
    fn parse(bytes: &[u8]) -> Result<Header, BtfError> {
        let too_short = || {
            malformed(format!(
                "{} bytes is too short for a BTF header",
                bytes.len()
            ))
        };
        let [magic_lo, magic_hi, version, _flags, ..] = *bytes else {
            return Err(too_short());
        };
        let magic = u16::from_le_bytes([magic_lo, magic_hi]);
        if magic == BTF_MAGIC.swap_bytes() {
            return Err(BtfError::BigEndian);
        }
        if magic != BTF_MAGIC {
            return Err(malformed(format!(
                "bad magic {magic:#06x}, expected {BTF_MAGIC:#06x}"
            )));
        }
        if version != BTF_VERSION {
            return Err(malformed(format!("unsupported BTF version {version}")));
        }
        let field = |at: usize| read_u32(bytes, at).ok_or_else(too_short);
        let len = field(4)?;
        if len < MIN_HEADER_LEN {
            return Err(malformed(format!(
                "header length {len} is below {MIN_HEADER_LEN}"
            )));
        }
        Ok(Header {
            len,
            type_off: field(8)?,
            type_len: field(12)?,
            str_off: field(16)?,
            str_len: field(20)?,
        })
    }
}

/// A section of the blob; its offset is relative to the end of the header.
fn section<'a>(
    bytes: &'a [u8],
    header_len: u32,
    offset: u32,
    len: u32,
    what: &str,
) -> Result<&'a [u8], BtfError> {
    let start = u64::from(header_len).checked_add(u64::from(offset));
    let end = start.and_then(|start| start.checked_add(u64::from(len)));
    let range = start
        .zip(end)
        .and_then(|(start, end)| Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?));
    range.and_then(|range| bytes.get(range)).ok_or_else(|| {
        malformed(format!(
            "{what} section (offset {offset}, length {len}) runs past the {} bytes of BTF",
            bytes.len()
        ))
    })
}

/// Offset 0 must be the empty string (anonymous types point there) and the last string must be
/// terminated, so name lookups always find a NUL.
fn check_strings(strings: &[u8]) -> Result<(), BtfError> {
    match (strings.first(), strings.last()) {
        (Some(0), Some(0)) => Ok(()),
        (None, _) => Err(malformed("empty string section")),
        _ => Err(malformed(
            "string section must start and end with a NUL byte",
        )),
    }
}

/// Walks the variable-length records of the type section.
fn parse_types(section: &[u8]) -> Result<Vec<TypeRecord>, BtfError> {
    // ~20 bytes per record on average in vmlinux; the hint saves regrowing a large Vec.
    let mut types = Vec::with_capacity(section.len() / 20);
    types.push(VOID);
    let mut pos = 0;
    while pos < section.len() {
        let (record, next) = parse_type(section, pos, types.len())?;
        types.push(record);
        pos = next;
    }
    Ok(types)
}

/// Decodes the record at `pos` (type id `id`, for messages); returns it and where the next
/// one starts.
fn parse_type(section: &[u8], pos: usize, id: usize) -> Result<(TypeRecord, usize), BtfError> {
    let truncated = || {
        malformed(format!(
            "type #{id} is cut off by the end of the type section"
        ))
    };
    let word = |n: usize| {
        pos.checked_add(n)
            .and_then(|at| read_u32(section, at))
            .ok_or_else(truncated)
    };
    let name_off = word(0)?;
    let info = word(4)?;
    let size_or_type = word(8)?;
    let kind = ((info >> 24) & 0x1f) as u8;
    let vlen = (info & 0xffff) as u16;
    let extra_len = extra_len(kind, vlen).ok_or_else(|| {
        malformed(format!(
            "type #{id} has kind {kind}, unknown to this reader (BTF from a newer kernel?)"
        ))
    })?;
    let extra_at = pos.checked_add(TYPE_RECORD_LEN).ok_or_else(truncated)?;
    let next = extra_at.checked_add(extra_len).ok_or_else(truncated)?;
    if next > section.len() {
        return Err(truncated());
    }
    let record = TypeRecord {
        kind,
        kind_flag: info >> 31 == 1,
        vlen,
        name_off,
        size_or_type,
        extra_at,
    };
    Ok((record, next))
}

/// Bytes of kind-specific data after a record; `None` for kinds we cannot skip.
fn extra_len(kind: u8, vlen: u16) -> Option<usize> {
    let vlen = usize::from(vlen);
    match kind {
        kind::PTR
        | kind::FWD
        | kind::TYPEDEF
        | kind::VOLATILE
        | kind::CONST
        | kind::RESTRICT
        | kind::FUNC
        | kind::FLOAT
        | kind::TYPE_TAG => Some(0),
        kind::INT | kind::VAR | kind::DECL_TAG => Some(4),
        kind::ARRAY => Some(12),
        kind::STRUCT | kind::UNION => vlen.checked_mul(MEMBER_LEN),
        kind::ENUM | kind::FUNC_PROTO => vlen.checked_mul(8),
        kind::DATASEC | kind::ENUM64 => vlen.checked_mul(12),
        _ => None,
    }
}

fn is_composite(kind: u8) -> bool {
    kind == kind::STRUCT || kind == kind::UNION
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        0 => "void",
        kind::INT => "integer",
        kind::PTR => "pointer",
        kind::ARRAY => "array",
        kind::STRUCT => "struct",
        kind::UNION => "union",
        kind::ENUM | kind::ENUM64 => "enum",
        kind::FWD => "forward declaration",
        kind::TYPEDEF => "typedef",
        kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => "qualifier",
        kind::FUNC => "function",
        kind::FUNC_PROTO => "function prototype",
        kind::VAR => "variable",
        kind::DATASEC => "data section",
        kind::FLOAT => "float",
        kind::DECL_TAG => "declaration tag",
        _ => "unknown kind",
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let chunk: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(chunk))
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::{prelude::*, sample::Index, test_runner::TestRunner};

    use super::*;

    /// Assembles BTF blobs by hand, so each test states exactly the layout it checks.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            offset
        }

        fn add(
            &mut self,
            name: &str,
            kind: u8,
            kind_flag: bool,
            vlen: usize,
            size_or_type: u32,
            extra: &[u32],
        ) -> u32 {
            let name_off = self.string(name);
            let info = (u32::from(kind_flag) << 31) | (u32::from(kind) << 24) | vlen as u32;
            for word in [name_off, info, size_or_type].iter().chain(extra) {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            self.add(name, kind::INT, false, 0, size, &[size * 8])
        }

        /// The older bitfield encoding: an INT whose bits sit at `offset` within its storage.
        fn int_bits(&mut self, name: &str, size: u32, offset: u32, bits: u32) -> u32 {
            self.add(name, kind::INT, false, 0, size, &[(offset << 16) | bits])
        }

        fn modifier(&mut self, kind: u8, name: &str, target: u32) -> u32 {
            self.add(name, kind, false, 0, target, &[])
        }

        fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
            self.add("", kind::ARRAY, false, 0, 0, &[elem, index, len])
        }

        /// `members`: (name, type id, offset word as stored, i.e. with the bitfield width in
        /// the top byte when `kind_flag`).
        fn composite(
            &mut self,
            kind: u8,
            name: &str,
            size: u32,
            kind_flag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut extra = Vec::new();
            for &(member, type_id, offset) in members {
                extra.extend([self.string(member), type_id, offset]);
            }
            self.add(name, kind, kind_flag, members.len(), size, &extra)
        }

        fn build(&self) -> Vec<u8> {
            let mut blob = Vec::new();
            blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            blob.extend([BTF_VERSION, 0]);
            let type_len = self.types.len() as u32;
            for word in [
                MIN_HEADER_LEN,
                0,
                type_len,
                type_len,
                self.strings.len() as u32,
            ] {
                blob.extend_from_slice(&word.to_le_bytes());
            }
            blob.extend_from_slice(&self.types);
            blob.extend_from_slice(&self.strings);
            blob
        }
    }

    /// ```c
    /// typedef unsigned short __u16; typedef __u16 u16;
    /// struct inner { int a; u16 b; };                                   // 8 bytes
    /// struct outer {
    ///     unsigned long long head;                                      // 0
    ///     union { int x; struct { u16 y; u16 z; }; };                   // 8
    ///     struct inner in;                                              // 16
    ///     const volatile u16 t;                                         // 24
    ///     struct inner *p;                                              // 32
    ///     unsigned long long arr[4];                                    // 40
    /// };                                                                // 72 bytes
    /// struct flags { unsigned int lo:3, hi:5; unsigned int whole; };    // kind_flag encoding
    /// struct legacy { int low3 (INT with 3 bits); short odd at bit 36; } // older encoding
    /// ```
    fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let ushort = b.int("unsigned short", 2);
        let u64_ = b.int("long long unsigned int", 8);
        let uint = b.int("unsigned int", 4);
        let kernel_u16 = b.modifier(kind::TYPEDEF, "__u16", ushort);
        let u16_ = b.modifier(kind::TYPEDEF, "u16", kernel_u16);
        let volatile_u16 = b.modifier(kind::VOLATILE, "", u16_);
        let const_volatile_u16 = b.modifier(kind::CONST, "", volatile_u16);
        let inner = b.composite(
            kind::STRUCT,
            "inner",
            8,
            false,
            &[("a", int, 0), ("b", u16_, 32)],
        );
        let anon_struct = b.composite(
            kind::STRUCT,
            "",
            4,
            false,
            &[("y", u16_, 0), ("z", u16_, 16)],
        );
        let anon_union = b.composite(
            kind::UNION,
            "",
            4,
            false,
            &[("x", int, 0), ("", anon_struct, 0)],
        );
        let inner_ptr = b.modifier(kind::PTR, "", inner);
        let arr = b.array(u64_, int, 4);
        b.composite(
            kind::STRUCT,
            "outer",
            72,
            false,
            &[
                ("head", u64_, 0),
                ("", anon_union, 64),
                ("in", inner, 128),
                ("t", const_volatile_u16, 192),
                ("p", inner_ptr, 256),
                ("arr", arr, 320),
            ],
        );
        b.composite(
            kind::STRUCT,
            "flags",
            8,
            true,
            &[
                ("lo", uint, 3 << 24),
                ("hi", uint, (5 << 24) | 3),
                ("whole", uint, 32),
            ],
        );
        let low3 = b.int_bits("int", 4, 0, 3);
        b.composite(
            kind::STRUCT,
            "legacy",
            8,
            false,
            &[("low3", low3, 0), ("odd", ushort, 36)],
        );
        b.build()
    }

    fn parsed() -> Btf {
        Btf::parse(&sample()).expect("sample BTF parses")
    }

    #[test]
    fn plain_and_nested_members() {
        let btf = parsed();
        assert_eq!(btf.member_offset("outer", &["head"]).unwrap(), 0);
        assert_eq!(btf.member_offset("outer", &["in"]).unwrap(), 16);
        assert_eq!(btf.member_offset("outer", &["in", "b"]).unwrap(), 20);
        assert_eq!(btf.member_size("outer", &["in"]).unwrap(), 8);
        assert_eq!(btf.member_size("outer", &["head"]).unwrap(), 8);
        assert_eq!(btf.member_offset("inner", &["b"]).unwrap(), 4);
    }

    #[test]
    fn anonymous_union_and_struct_members_are_searched() {
        let btf = parsed();
        assert_eq!(btf.member_offset("outer", &["x"]).unwrap(), 8);
        assert_eq!(btf.member_offset("outer", &["y"]).unwrap(), 8);
        assert_eq!(btf.member_offset("outer", &["z"]).unwrap(), 10);
        assert_eq!(btf.member_size("outer", &["z"]).unwrap(), 2);
        assert_eq!(btf.member_size("outer", &["x"]).unwrap(), 4);
    }

    #[test]
    fn typedef_and_qualifier_chains_resolve() {
        let btf = parsed();
        assert_eq!(btf.member_offset("outer", &["t"]).unwrap(), 24);
        assert_eq!(btf.member_size("outer", &["t"]).unwrap(), 2);
    }

    #[test]
    fn pointers_and_arrays() {
        let btf = parsed();
        assert_eq!(btf.member_size("outer", &["p"]).unwrap(), 8);
        assert_eq!(btf.member_offset("outer", &["arr"]).unwrap(), 40);
        assert_eq!(btf.member_size("outer", &["arr"]).unwrap(), 32);
        let err = btf.member_offset("outer", &["p", "a"]).unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::NotComposite {
                    kind: "pointer",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "struct outer member `p` is a pointer, not a struct or union, so `a` cannot be looked \
             up inside it"
        );
    }

    #[test]
    fn bitfields_are_errors_not_offsets() {
        let btf = parsed();
        let err = btf.member_offset("flags", &["hi"]).unwrap_err();
        assert!(
            matches!(
                err,
                BtfError::Bitfield {
                    bit_offset: 3,
                    bit_size: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("struct flags member `hi` is a bitfield"),
            "{err}"
        );
        assert!(matches!(
            btf.member_offset("flags", &["lo"]),
            Err(BtfError::Bitfield { bit_size: 3, .. })
        ));
        assert!(matches!(
            btf.member_size("flags", &["lo"]),
            Err(BtfError::Bitfield { .. })
        ));
        // A full-width member of the same kind_flag struct is fine.
        assert_eq!(btf.member_offset("flags", &["whole"]).unwrap(), 4);
        // The older encoding: a narrow INT, and a member off a byte boundary.
        assert!(matches!(
            btf.member_offset("legacy", &["low3"]),
            Err(BtfError::Bitfield { bit_size: 3, .. })
        ));
        assert!(matches!(
            btf.member_offset("legacy", &["odd"]),
            Err(BtfError::Bitfield {
                bit_offset: 36,
                bit_size: 16,
                ..
            })
        ));
    }

    #[test]
    fn missing_names_are_named_in_errors() {
        let btf = parsed();
        let err = btf.member_offset("outer", &["nope"]).unwrap_err();
        assert_eq!(err.to_string(), "struct outer has no member `nope`");
        let err = btf.member_offset("outer", &["in", "nope"]).unwrap_err();
        assert_eq!(err.to_string(), "struct outer has no member `in.nope`");
        assert!(matches!(
            btf.member_offset("outer", &[""]),
            Err(BtfError::NoSuchMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("outer", &[]),
            Err(BtfError::EmptyPath(_))
        ));
        let err = btf.member_offset("nosuch", &["a"]).unwrap_err();
        assert!(matches!(err, BtfError::NoSuchStruct(_)), "{err}");
        assert!(err.to_string().contains("`nosuch`"), "{err}");
    }

    #[test]
    fn duplicate_struct_names_must_agree() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.composite(
            kind::STRUCT,
            "dup",
            8,
            false,
            &[("a", int, 0), ("b", int, 32)],
        );
        b.composite(
            kind::STRUCT,
            "dup",
            8,
            false,
            &[("a", int, 32), ("c", int, 0)],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert!(matches!(
            btf.member_offset("dup", &["a"]),
            Err(BtfError::Ambiguous { definitions: 2, .. })
        ));
        // Only one definition has these, so there is nothing to disagree with.
        assert_eq!(btf.member_offset("dup", &["b"]).unwrap(), 4);
        assert_eq!(btf.member_offset("dup", &["c"]).unwrap(), 0);
        // Both agree on the size of `a`.
        assert_eq!(btf.member_size("dup", &["a"]).unwrap(), 4);
    }

    #[test]
    fn cyclic_types_error_instead_of_hanging() {
        let mut b = Builder::new();
        // Type 1 and 2 are typedefs of each other; type 3 holds itself as an anonymous member;
        // type 4 is an array of itself.
        b.modifier(kind::TYPEDEF, "t1", 2);
        b.modifier(kind::TYPEDEF, "t2", 1);
        b.composite(
            kind::STRUCT,
            "selfish",
            4,
            false,
            &[("", 3, 0), ("", 3, 0), ("loop", 1, 0)],
        );
        b.array(4, 4, 2);
        b.composite(
            kind::STRUCT,
            "holder",
            4,
            false,
            &[("arr", 4, 0), ("missing_type", 999, 0)],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        assert!(matches!(
            btf.member_size("selfish", &["loop"]),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_offset("selfish", &["absent"]),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_size("holder", &["arr"]),
            Err(BtfError::Malformed(_))
        ));
        assert!(matches!(
            btf.member_size("holder", &["missing_type"]),
            Err(BtfError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let blob = sample();
        for len in 0..blob.len() {
            assert!(
                Btf::parse(&blob[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
        }
        assert!(matches!(
            Btf::parse(b"not BTF at all, just text"),
            Err(BtfError::Malformed(_))
        ));
        let mut big_endian = blob.clone();
        big_endian.swap(0, 1);
        assert!(matches!(Btf::parse(&big_endian), Err(BtfError::BigEndian)));
        let mut version_2 = blob.clone();
        version_2[2] = 2;
        assert!(matches!(
            Btf::parse(&version_2),
            Err(BtfError::Malformed(_))
        ));
        // An unknown kind (31) in the first record.
        let mut unknown_kind = blob;
        unknown_kind[24 + 7] = 0x1f;
        let err = Btf::parse(&unknown_kind).unwrap_err();
        assert!(err.to_string().contains("kind 31"), "{err}");
    }

    #[test]
    fn missing_file_message_is_actionable() {
        let message = BtfError::Missing.to_string();
        assert!(message
            .contains("kernel has no BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)"));
    }

    /// What becomes of one byte of a damaged blob.
    #[derive(Clone, Debug)]
    enum Damage {
        Zero,
        Ones,
        FlipBit(u8),
        Byte(u8),
    }

    /// What becomes of a damaged blob's end.
    #[derive(Clone, Debug)]
    enum End {
        Keep,
        Cut(Index),
        Extend(Vec<u8>),
    }

    /// The sample blob with 1 to 9 bytes overwritten and, one time in four, cut short or
    /// extended; or, one time in ten, random bytes, half of them behind a valid magic and
    /// version to get past the first check. Overwrites keep the layout, so most cases still
    /// parse and the lookups get exercised on damaged offsets, names and types.
    fn damaged_or_random(sample: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let damage = prop_oneof![
            Just(Damage::Zero),
            Just(Damage::Ones),
            (0..8u8).prop_map(Damage::FlipBit),
            any::<u8>().prop_map(Damage::Byte),
        ];
        let end = prop_oneof![
            6 => Just(End::Keep),
            1 => any::<Index>().prop_map(End::Cut),
            1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(End::Extend),
        ];
        let damaged = (prop::collection::vec((any::<Index>(), damage), 1..=9), end).prop_map(
            move |(writes, end)| {
                let mut bytes = sample.clone();
                for (at, damage) in writes {
                    let byte = &mut bytes[at.index(sample.len())];
                    *byte = match damage {
                        Damage::Zero => 0,
                        Damage::Ones => 0xff,
                        Damage::FlipBit(bit) => *byte ^ (1 << bit),
                        Damage::Byte(b) => b,
                    };
                }
                match end {
                    End::Keep => {}
                    End::Cut(at) => bytes.truncate(at.index(bytes.len())),
                    End::Extend(tail) => bytes.extend(tail),
                }
                bytes
            },
        );
        let random = (prop::collection::vec(any::<u8>(), 0..256), any::<bool>()).prop_map(
            |(mut bytes, with_magic)| {
                if with_magic && bytes.len() >= 4 {
                    bytes[..4].copy_from_slice(&[0x9f, 0xeb, 1, 0]);
                }
                bytes
            },
        );
        prop_oneof![9 => damaged, 1 => random]
    }

    #[test]
    fn damaged_input_never_panics() {
        let paths: [&[&str]; 8] = [
            &["head"],
            &["z"],
            &["in", "b"],
            &["t"],
            &["arr"],
            &["p", "a"],
            &["hi"],
            &["odd"],
        ];
        let parsed = std::cell::Cell::new(0);
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 10_000,
            source_file: Some(file!()),
            ..ProptestConfig::default()
        });
        let outcome = runner.run(&damaged_or_random(sample()), |input| {
            let Ok(btf) = Btf::parse(&input) else {
                return Ok(());
            };
            parsed.set(parsed.get() + 1);
            let names: Vec<String> = btf
                .composites_by_name
                .keys()
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .chain(["outer".to_owned(), "flags".to_owned(), "legacy".to_owned()])
                .collect();
            for name in &names {
                for path in paths {
                    let _ = btf.member_offset(name, path);
                    let _ = btf.member_size(name, path);
                }
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
        // Most damage lands in member offsets and names, which still parse; make sure the
        // lookups were really exercised.
        let parsed = parsed.get();
        eprintln!("{parsed} of 10000 damaged inputs parsed");
        assert!(parsed > 1_000, "only {parsed} inputs parsed");
    }

    /// Offsets in the running kernel. Nothing is hard-coded (they differ between builds), so the
    /// checks are what holds on any kernel: found, inside the struct, of the expected width.
    #[test]
    fn running_kernel() {
        if !std::path::Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipping: {VMLINUX_BTF} does not exist on this machine");
            return;
        }
        let started = std::time::Instant::now();
        let btf = Btf::from_sys_fs().unwrap();
        eprintln!("parsed {btf:?} in {:?}", started.elapsed());

        let expected: [(&str, &[&str], u32); 14] = [
            ("task_struct", &["files"], 8),
            ("task_struct", &["tgid"], 4),
            ("task_struct", &["real_parent"], 8),
            ("task_struct", &["start_time"], 8),
            ("files_struct", &["fdt"], 8),
            ("fdtable", &["fd"], 8),
            ("fdtable", &["max_fds"], 4),
            ("file", &["f_inode"], 8),
            ("file", &["private_data"], 8),
            ("inode", &["i_mode"], 2),
            ("socket", &["sk"], 8),
            ("sock", &["__sk_common", "skc_family"], 2),
            ("sock", &["sk_protocol"], 2),
            ("sock", &["sk_type"], 2),
        ];
        for (struct_name, path, size) in expected {
            let offset = btf.member_offset(struct_name, path).unwrap();
            let struct_size = btf.struct_size(struct_name);
            eprintln!(
                "{struct_name}.{} = {offset} (size {size}; struct is {struct_size} bytes)",
                path.join(".")
            );
            assert_eq!(
                btf.member_size(struct_name, path).unwrap(),
                size,
                "{struct_name}.{path:?}"
            );
            assert!(
                offset + size <= struct_size,
                "{struct_name}.{path:?} at {offset} past {struct_size}"
            );
        }
        // The kernel casts between `struct sock *` and `struct sock_common *`, so the common
        // part must be first, and the nested path must agree with the direct lookup.
        assert_eq!(btf.member_offset("sock", &["__sk_common"]).unwrap(), 0);
        assert_eq!(
            btf.member_offset("sock", &["__sk_common", "skc_family"])
                .unwrap(),
            btf.member_offset("sock_common", &["skc_family"]).unwrap()
        );
        assert_eq!(
            btf.member_offset("task_struct", &["filez"])
                .unwrap_err()
                .to_string(),
            "struct task_struct has no member `filez`"
        );
    }

    impl Btf {
        /// Test helper: the byte size of the (single) struct of that name.
        fn struct_size(&self, name: &str) -> u32 {
            let ids = &self.composites_by_name[name.as_bytes()];
            self.types[ids[0] as usize].size_or_type
        }
    }
}
