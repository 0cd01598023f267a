//! The layering check of `cargo xtask lint`: imports point down, never back up, and no file
//! takes a name from a file that takes one back.
//!
//! Each crate's files are read as text: a file's module path comes from where it sits
//! (`src/kernel/maps.rs` is `kernel::maps`), and every path it names from its own crate
//! (`use crate::...`, `use super::...`, `crate::x::y` in code) is followed to the file that
//! defines the name, through re-exports (`pub use`). Test modules (`#[cfg(test)] mod ...`) are
//! left out: a test may reach for a fixture anywhere.
//!
//! Two rules:
//! - in every crate, no circle between files;
//! - in the agent, each top-level module is a layer with a rank (`AGENT_LAYERS`), and a file
//!   imports only from its own layer or from lower ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The crates checked, by the folder of their sources.
const CRATES: [&str; 7] = [
    "zerocopy-trace/src",
    "zerocopy-trace-common/src",
    "zerocopy-trace-ebpf/src",
    "xtask/src",
    "bench/src",
    "dev-support/src",
    "test-workload/src",
];

/// The agent's sources, whose top-level modules are layers.
const AGENT: &str = "zerocopy-trace/src";

/// The agent's layers and their ranks, from the top down (ARCHITECTURE.md draws them): a
/// layer imports only from layers of a lower rank. Layers of one rank are independent.
const AGENT_LAYERS: [(&str, u32); 14] = [
    // The crate root: `main.rs`.
    ("", 10),
    ("commands", 9),
    ("cli", 8),
    ("session", 7),
    ("output", 6),
    ("analysis", 5),
    ("correlate", 4),
    ("model", 3),
    ("collect", 3),
    ("kernel", 2),
    ("system", 1),
    ("snapshot", 0),
    // Hooks and inputs for tests only: anything may use them; they use nothing.
    ("test_hooks", 0),
    ("text_mutations", 0),
];

/// One file of a crate.
#[derive(Debug)]
struct SourceFile {
    /// Relative to the workspace, for messages.
    path: PathBuf,
    /// Its module path within the crate (empty for `main.rs`/`lib.rs`).
    module: Vec<String>,
    /// Names it defines (items, and modules declared inline).
    defines: BTreeSet<String>,
    /// Names it re-exports: the name and the path it stands for (absolute in the crate).
    reexports: BTreeMap<String, Vec<String>>,
    /// Globs it re-exports (`pub use x::*`): the module paths.
    reexported_globs: Vec<Vec<String>>,
    /// Paths it names from its own crate, absolute.
    uses: Vec<Vec<String>>,
}

/// Runs both rules over every crate; fails with every violation listed.
pub fn check(workspace: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let (mut file_count, mut edge_count) = (0, 0);
    for dir in CRATES {
        let files = read_crate(workspace, dir)?;
        let edges = edges(&files);
        file_count += files.len();
        edge_count += edges.iter().map(BTreeSet::len).sum::<usize>();
        for circle in circles(files.len(), &edges) {
            let names: Vec<String> = circle
                .iter()
                .map(|&i| files[i].path.display().to_string())
                .collect();
            problems.push(format!("a circle of imports: {}", names.join(" -> ")));
        }
        if dir == AGENT {
            problems.extend(upward_imports(&files, &edges)?);
        }
    }
    if problems.is_empty() {
        eprintln!(
            "xtask: layers: {file_count} files, {edge_count} imports between them: none runs back up, no circle"
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("xtask: layers: {p}");
        }
        bail!(
            "{} layering problem(s); see ARCHITECTURE.md for what may import what",
            problems.len()
        )
    }
}

/// Every edge of the agent that runs from a layer to one not below it.
fn upward_imports(files: &[SourceFile], edges: &[BTreeSet<usize>]) -> Result<Vec<String>> {
    let rank = |file: &SourceFile| -> Result<(&str, u32)> {
        let layer = file.module.first().map_or("", String::as_str);
        AGENT_LAYERS
            .iter()
            .find(|(name, _)| *name == layer)
            .map(|&(name, rank)| (name, rank))
            .with_context(|| {
                format!(
                    "{} is in no layer: add `{layer}` to AGENT_LAYERS in xtask/src/layers.rs",
                    file.path.display()
                )
            })
    };
    let mut problems = Vec::new();
    for (from, targets) in edges.iter().enumerate() {
        let (from_layer, from_rank) = rank(&files[from])?;
        for &to in targets {
            let (to_layer, to_rank) = rank(&files[to])?;
            if from_layer != to_layer && to_rank >= from_rank {
                problems.push(format!(
                    "{} ({from_layer}, rank {from_rank}) imports {} ({to_layer}, rank {to_rank}): imports point down",
                    files[from].path.display(),
                    files[to].path.display()
                ));
            }
        }
    }
    Ok(problems)
}

/// Reads every `.rs` file under `dir` (relative to `workspace`), skipping `build.rs`-like
/// files outside it.
fn read_crate(workspace: &Path, dir: &str) -> Result<Vec<SourceFile>> {
    let root = workspace.join(dir);
    let mut paths = Vec::new();
    collect_rs(&root, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let relative = path.strip_prefix(&root).unwrap_or(&path);
        let module = module_of(relative);
        let text = without_test_modules(&text);
        let mut file = SourceFile {
            path: path.strip_prefix(workspace).unwrap_or(&path).to_path_buf(),
            module,
            defines: BTreeSet::new(),
            reexports: BTreeMap::new(),
            reexported_globs: Vec::new(),
            uses: Vec::new(),
        };
        scan(&text, &mut file);
        files.push(file);
    }
    Ok(files)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module path of a file at `relative` (to the crate's `src`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    match stem {
        "mod" => parts,
        "main" | "lib" if parts.is_empty() => parts,
        _ => {
            parts.push(stem.to_owned());
            parts
        }
    }
}

/// `text` with every `#[cfg(test)]` module's body blanked out (its braces matched).
fn without_test_modules(text: &str) -> String {
    let mut out = text.to_owned();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = &out[start..];
        // Only a module: an attribute on anything else keeps its item.
        let Some(brace) = rest.find('{') else { break };
        let head = &rest[..brace];
        let is_module = head.contains("mod ") && !head.contains(';');
        if !is_module {
            from = start + "#[cfg(test)]".len();
            continue;
        }
        let open = start + brace;
        let mut depth = 0usize;
        let mut end = out.len();
        for (i, c) in out[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.replace_range(start..end, "");
        from = start;
    }
    out
}

/// Reads a file's definitions, re-exports and uses.
fn scan(text: &str, file: &mut SourceFile) {
    let code = without_comments(text);
    for line in code.lines() {
        if let Some(name) = defined_name(line) {
            file.defines.insert(name);
        }
    }
    for statement in use_statements(&code) {
        let public = statement.public;
        for path in expand_tree(&statement.tree) {
            let Some(absolute) = absolute(&path.segments, file) else {
                continue;
            };
            let own_child =
                absolute.len() > file.module.len() && absolute.starts_with(&file.module);
            if public {
                if path.glob {
                    file.reexported_globs.push(absolute.clone());
                } else if let Some(last) = absolute.last() {
                    let name = path.alias.clone().unwrap_or_else(|| last.clone());
                    file.reexports.insert(name, absolute.clone());
                }
                // A module publishing what its own children define depends on nothing
                // outside itself.
                if own_child {
                    continue;
                }
            }
            file.uses.push(absolute);
        }
    }
    // Paths in code: `crate::a::b` (uses were read above; these are the others).
    for found in code.match_indices("crate::") {
        let before = code[..found.0].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '{' || c == ':') {
            continue;
        }
        let line_start = code[..found.0].rfind('\n').map_or(0, |i| i + 1);
        if code[line_start..found.0].trim_start().starts_with("use ")
            || code[line_start..found.0].trim_start().starts_with("pub")
        {
            continue;
        }
        let segments = path_at(&code[found.0 + "crate::".len()..]);
        if !segments.is_empty() {
            file.uses.push(segments);
        }
    }
}

/// `text` with `//` comments (doc comments included) removed; strings are kept, which is
/// good enough for code that names paths in strings rarely.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `use` statement: whether it is `pub`, and its tree after `use`.
struct UseStatement {
    public: bool,
    tree: String,
}

fn use_statements(code: &str) -> Vec<UseStatement> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_use(rest) {
        let (public, start) = at;
        let tail = &rest[start..];
        let Some(end) = tail.find(';') else { break };
        out.push(UseStatement {
            public,
            tree: tail[..end].split_whitespace().collect::<Vec<_>>().join(" "),
        });
        rest = &tail[end..];
    }
    out
}

/// The next `use` keyword at the start of a statement: (public, index just after `use `).
fn find_use(code: &str) -> Option<(bool, usize)> {
    let mut from = 0;
    while let Some(at) = code[from..].find("use ") {
        let i = from + at;
        let line_start = code[..i].rfind('\n').map_or(0, |n| n + 1);
        let head = code[line_start..i].trim();
        let statement_start =
            head.is_empty() || head.starts_with("pub") && head.ends_with(')') || head == "pub";
        if statement_start {
            return Some((head.starts_with("pub"), i + "use ".len()));
        }
        from = i + "use ".len();
    }
    None
}

/// One path of a use tree.
#[derive(Debug, PartialEq)]
struct TreePath {
    segments: Vec<String>,
    alias: Option<String>,
    glob: bool,
}

/// Every path of a use tree (`a::{b, c::{d as e, *}}`).
fn expand_tree(tree: &str) -> Vec<TreePath> {
    let mut out = Vec::new();
    expand(tree.trim(), &[], &mut out);
    out
}

fn expand(tree: &str, prefix: &[String], out: &mut Vec<TreePath>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::");
        let mut base = prefix.to_vec();
        base.extend(split_path(head));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top_level(inner) {
            if part.trim() == "self" {
                out.push(TreePath {
                    segments: base.clone(),
                    alias: None,
                    glob: false,
                });
            } else if !part.trim().is_empty() {
                expand(part, &base, out);
            }
        }
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p.trim(), Some(a.trim().to_owned())),
        None => (tree, None),
    };
    let mut segments = prefix.to_vec();
    segments.extend(split_path(path));
    let glob = segments.last().is_some_and(|s| s == "*");
    if glob {
        segments.pop();
    }
    if segments.last().is_some_and(|s| s == "self") {
        segments.pop();
    }
    out.push(TreePath {
        segments,
        alias,
        glob,
    });
}

fn split_path(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Splits at the commas not inside braces.
fn split_top_level(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
}

/// A use path made absolute in the crate (`crate::`, `super::`, `self::`); `None` for paths
/// into other crates.
fn absolute(segments: &[String], file: &SourceFile) -> Option<Vec<String>> {
    let first = segments.first()?;
    let mut rest = &segments[1..];
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => file.module.clone(),
        "super" => {
            let mut m = file.module.clone();
            m.pop();
            m
        }
        // A child module of this file, named without `self::` (Rust 2018 paths).
        child if file.defines.contains(child) => {
            rest = segments;
            file.module.clone()
        }
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The path of identifiers at the start of `code` (`a::b::C` of `a::b::C::new(...)`).
fn path_at(code: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = code;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segments.push(rest[..end].to_owned());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    segments
}

/// The name an item line defines, if it defines one.
fn defined_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    // Qualifiers: visibility, `unsafe`, `async`, `extern "C"`, and `const` before `fn`.
    while let Some(&w) = words.get(i) {
        let next = words.get(i + 1).copied();
        let qualifier = w.starts_with("pub")
            || matches!(w, "unsafe" | "async" | "extern" | "\"C\"")
            || (w == "const" && matches!(next, Some("fn" | "unsafe")));
        if !qualifier {
            break;
        }
        i += 1;
    }
    let keyword = *words.get(i)?;
    if !matches!(
        keyword,
        "struct" | "enum" | "fn" | "const" | "static" | "type" | "trait" | "mod" | "union"
    ) {
        return None;
    }
    let name = *words.get(i + 1)?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| name[..end].to_owned())
}

/// For each file, the files it takes names from (itself excluded).
fn edges(files: &[SourceFile]) -> Vec<BTreeSet<usize>> {
    let by_module: HashMap<&[String], usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.as_slice(), i))
        .collect();
    files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            file.uses
                .iter()
                .filter_map(|path| resolve(path, files, &by_module, 0))
                .filter(|&target| target != i)
                .collect()
        })
        .collect()
}

/// The file that defines what `path` names: the deepest module with a file of its own, then
/// through its re-exports of that name.
fn resolve(
    path: &[String],
    files: &[SourceFile],
    by_module: &HashMap<&[String], usize>,
    depth: u32,
) -> Option<usize> {
    // Re-exports chain a few times at most; a deeper chain is a cycle of re-exports.
    if depth > 8 {
        return None;
    }
    let (file, consumed) = (0..=path.len())
        .rev()
        .find_map(|n| by_module.get(&path[..n]).map(|&f| (f, n)))?;
    let Some(name) = path.get(consumed) else {
        return Some(file);
    };
    let source = &files[file];
    if source.defines.contains(name) {
        return Some(file);
    }
    if let Some(target) = source.reexports.get(name) {
        let mut next = target.clone();
        next.extend(path[consumed + 1..].iter().cloned());
        return resolve(&next, files, by_module, depth + 1).or(Some(file));
    }
    for glob in &source.reexported_globs {
        let mut next = glob.clone();
        next.extend(path[consumed..].iter().cloned());
        if let Some(found) = resolve(&next, files, by_module, depth + 1) {
            if found != file {
                return Some(found);
            }
        }
    }
    Some(file)
}

/// The circles of the graph: every strongly connected component of more than one file
/// (Tarjan's algorithm, iterative over a small graph).
fn circles(n: usize, edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        let module = module_of(Path::new(path));
        let mut f = SourceFile {
            path: PathBuf::from(path),
            module,
            defines: BTreeSet::new(),
            reexports: BTreeMap::new(),
            reexported_globs: Vec::new(),
            uses: Vec::new(),
        };
        scan(&without_test_modules(text), &mut f);
        f
    }

    #[test]
    fn use_trees_expand_to_every_path() {
        let paths = expand_tree("crate::{a::{self, B as C}, d::*}");
        assert_eq!(
            paths,
            [
                TreePath {
                    segments: vec!["crate".into(), "a".into()],
                    alias: None,
                    glob: false
                },
                TreePath {
                    segments: vec!["crate".into(), "a".into(), "B".into()],
                    alias: Some("C".into()),
                    glob: false
                },
                TreePath {
                    segments: vec!["crate".into(), "d".into()],
                    alias: None,
                    glob: true
                },
            ]
        );
    }

    #[test]
    fn names_resolve_through_reexports_to_their_file() {
        let files = vec![
            file("main.rs", "mod snapshot;\nmod output;\n"),
            file(
                "snapshot/mod.rs",
                "pub mod counters;\npub use self::counters::Counts;\n",
            ),
            file("snapshot/counters.rs", "pub struct Counts;\n"),
            file(
                "output/report.rs",
                "use crate::snapshot::Counts;\nfn f() { crate::snapshot::counters::Counts; }\n",
            ),
        ];
        let edges = edges(&files);
        // The report takes Counts from counters.rs, not from the module that re-exports it.
        assert_eq!(edges[3], BTreeSet::from([2]));
        assert!(circles(files.len(), &edges).is_empty());
    }

    #[test]
    fn a_circle_and_an_upward_import_are_found() {
        let files = vec![
            file("main.rs", ""),
            file(
                "kernel/maps.rs",
                "use crate::collect::read;\npub fn take() {}\n",
            ),
            file(
                "collect/mod.rs",
                "use crate::kernel::maps::take;\npub fn read() {}\n",
            ),
            file(
                "snapshot/mod.rs",
                "pub struct S;\n#[cfg(test)]\nmod tests {\n    use crate::collect::read;\n}\n",
            ),
        ];
        let edges = edges(&files);
        assert_eq!(circles(files.len(), &edges), [vec![1, 2]]);
        let problems = upward_imports(&files, &edges).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("kernel/maps.rs (kernel, rank 2) imports collect/mod.rs"));
        // A test module's imports are not the file's.
        assert!(edges[3].is_empty());
    }

    #[test]
    fn super_is_relative_to_the_files_module() {
        let leaf = file("output/dashboard/app.rs", "use super::view::draw;\n");
        assert_eq!(leaf.uses, [vec!["output", "dashboard", "view", "draw"]]);
        let module = file("output/dashboard/mod.rs", "use super::Control;\n");
        assert_eq!(module.uses, [vec!["output", "Control"]]);
    }

    #[test]
    fn a_file_outside_every_layer_is_an_error() {
        let files = vec![
            file("main.rs", ""),
            file("extra.rs", "use crate::snapshot::S;\n"),
        ];
        assert!(upward_imports(&files, &[BTreeSet::new(), BTreeSet::from([0])]).is_err());
    }
}
