//! tracefs: where it is, mounting it when it is missing, and parsing tracepoint `format` files.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::system::procfs;

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACEFS: &str = "/sys/kernel/debug/tracing";

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u16,
    pub size: u16,
}

/// A parsed `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    pub fields: Vec<Field>,
}

impl Format {
    /// Offset of field `name`, or an error naming the tracepoint.
    pub fn offset(&self, name: &str) -> Result<u16> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.offset)
            .with_context(|| format!("tracepoint {} has no field `{name}`", self.name))
    }
}

/// Parses the text of a tracepoint `format` file. Lines look like
/// `\tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;`; the field name is the last word
/// of the declaration, without array brackets.
pub fn parse_format(text: &str) -> Result<Format> {
    let mut name = None;
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("name:") {
            name = Some(rest.trim().to_string());
            continue;
        }
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let declaration = parts.next().unwrap_or_default();
        let (mut offset, mut size) = (None, None);
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse::<u16>().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse::<u16>().ok();
            }
        }
        let field_name = declaration
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or_default();
        let field_name = field_name.split('[').next().unwrap_or_default();
        match (offset, size) {
            (Some(offset), Some(size)) if !field_name.is_empty() => fields.push(Field {
                name: field_name.to_string(),
                offset,
                size,
            }),
            _ => bail!("malformed tracepoint format line: {line:?}"),
        }
    }
    let Some(name) = name else {
        bail!("tracepoint format without a `name:` line");
    };
    Ok(Format { name, fields })
}

/// The mounted tracefs, mounting it at /sys/kernel/tracing when it is not (we run as root or
/// with the capabilities to attach, so mounting is what an operator would do by hand).
pub fn locate_or_mount() -> Result<PathBuf> {
    let mounted = procfs::mount_points(&procfs::mounts(), "tracefs");
    for dir in [TRACEFS, DEBUGFS_TRACEFS] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    if let Some(dir) = mounted.first() {
        // Mounted, but its directory is closed to us: root only, by default.
        bail!(
            "tracefs at {} is not readable: run as root, or add CAP_DAC_READ_SEARCH to \
             CAP_BPF and CAP_PERFMON",
            dir.display()
        );
    }
    mount_tracefs().with_context(|| {
        format!(
            "tracefs is not mounted and mounting it failed; mount it with \
             `mount -t tracefs tracefs {TRACEFS}` and try again"
        )
    })?;
    if Path::new(TRACEFS).join("events").is_dir() {
        Ok(PathBuf::from(TRACEFS))
    } else {
        bail!("tracefs mounted at {TRACEFS} but has no events/ directory")
    }
}

fn mount_tracefs() -> Result<()> {
    let target = std::ffi::CString::new(TRACEFS)?;
    let kind = std::ffi::CString::new("tracefs")?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("mount(tracefs)");
    }
    Ok(())
}

/// Reads and parses `events/<category>/<name>/format`. `Ok(None)` when the tracepoint does not
/// exist in this kernel.
pub fn read_format(tracefs: &Path, category: &str, name: &str) -> Result<Option<Format>> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    match fs::read_to_string(&path) {
        Ok(text) => parse_format(&text)
            .with_context(|| format!("parsing {}", path.display()))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SPLICE: &str = "name: sys_enter_splice
ID: 1013
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd_in;\toffset:16;\tsize:8;\tsigned:0;
\tfield:loff_t * off_in;\toffset:24;\tsize:8;\tsigned:0;
\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;

print fmt: \"fd_in: 0x%08lx\", ((unsigned long)(REC->fd_in))
";

    #[test]
    fn parses_fields_pointers_and_arrays() {
        let f = parse_format(SPLICE).unwrap();
        assert_eq!(f.name, "sys_enter_splice");
        assert_eq!(f.offset("__syscall_nr").unwrap(), 8);
        assert_eq!(f.offset("fd_in").unwrap(), 16);
        assert_eq!(f.offset("off_in").unwrap(), 24);
        assert_eq!(f.offset("comm").unwrap(), 32);
        assert_eq!(f.fields.len(), 6);
    }

    #[test]
    fn missing_field_names_the_tracepoint() {
        let f = parse_format(SPLICE).unwrap();
        let err = f.offset("fd_out").unwrap_err().to_string();
        assert!(
            err.contains("sys_enter_splice") && err.contains("fd_out"),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Mangled `format` files: an error or a format, never a panic; and every field of a
        /// format that parses has a plain name, by which it is found.
        #[test]
        fn mutated_formats_never_panic(text in crate::text_mutations::mutated(SPLICE)) {
            if let Ok(format) = parse_format(&text) {
                for field in &format.fields {
                    prop_assert!(
                        !field.name.is_empty()
                            && !field.name.contains(|c: char| c.is_whitespace() || "*[".contains(c)),
                        "{:?}", field
                    );
                    prop_assert!(format.offset(&field.name).is_ok());
                }
            }
        }
    }

    /// A field as the kernel declares it: type, name, and maybe an array length.
    fn declared_field() -> impl Strategy<Value = (String, Field)> {
        (
            prop::sample::select(&["int", "unsigned long", "const char *", "loff_t *", "char"][..]),
            "[a-z_][a-z0-9_]{0,20}",
            prop::option::of(1..64u16),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(|(kind, name, array, offset, size)| {
                let length = array.map(|n| format!("[{n}]")).unwrap_or_default();
                (
                    format!(
                        "\tfield:{kind} {name}{length};\toffset:{offset};\tsize:{size};\tsigned:0;"
                    ),
                    Field { name, offset, size },
                )
            })
    }

    proptest! {
        /// A `format` file written from fields parses back to exactly those fields.
        #[test]
        fn written_formats_parse_back(
            name in "sys_(enter|exit)_[a-z0-9_]{1,20}",
            fields in prop::collection::vec(declared_field(), 0..10),
        ) {
            let lines: Vec<&str> = fields.iter().map(|(line, _)| line.as_str()).collect();
            let text = format!("name: {name}\nID: 7\nformat:\n{}\n\nprint fmt: \"\"\n", lines.join("\n"));
            let parsed = parse_format(&text).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            let want: Vec<Field> = fields.into_iter().map(|(_, field)| field).collect();
            prop_assert_eq!(parsed, Format { name, fields: want });
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(parse_format("").is_err());
        assert!(parse_format("name: x\n\tfield:int a;\toffset:zz;\tsize:4;").is_err());
        assert!(parse_format("name: x\n\tfield:;\toffset:1;\tsize:4;").is_err());
        assert!(parse_format("name: x\n\tfield:int a;\toffset:99999999;\tsize:4;").is_err());
        assert!(parse_format("\u{0}\u{ffff}field:").is_err());
    }
}
