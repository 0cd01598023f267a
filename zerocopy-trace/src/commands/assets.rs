//! The man pages and shell completions, generated from the command line itself (`cli.rs`), so
//! they never drift from `--help`. `cargo xtask dist` runs the hidden `assets` subcommand of the
//! agent it has just built and packages what it writes.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use roff::{bold, roman, Roff};

use crate::cli::Cli;

/// The manual section: an administrator's tool (it needs root or capabilities) and a daemon.
pub const MAN_SECTION: &str = "8";

const BIN: &str = "zerocopy-trace";

/// The pages' date: the commit's (see build.rs), so a rebuild gives the same pages.
const DATE: &str = env!("ZEROCOPY_TRACE_REVISION_DATE");

/// The date field of `.TH` must not be empty: the roff writer leaves an empty argument out
/// rather than quoting it, which shifts the source and manual into the wrong places.
fn page_date() -> &'static str {
    if DATE.is_empty() {
        "undated"
    } else {
        DATE
    }
}

/// Where the packaged exporter unit and its settings live; named in the exporter's page.
const EXPORTER_FILES: [(&str, &str); 3] = [
    (
        "/lib/systemd/system/zerocopy-trace-exporter.service",
        "The exporter as a systemd service (Debian package), disabled until enabled, with only \
         the capabilities it needs.",
    ),
    (
        "/etc/default/zerocopy-trace-exporter",
        "The address the service listens on (loopback by default) and its other options, such \
         as filters; read at each start.",
    ),
    (
        "/usr/share/zerocopy-trace/",
        "A Grafana dashboard, Prometheus alert rules and a scrape configuration for the \
         exporter.",
    ),
];

/// One generated file: its path under the output directory, and its contents.
#[derive(Debug)]
pub struct Asset {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Every man page and completion script, in memory.
pub fn generate() -> io::Result<Vec<Asset>> {
    let cli = Cli::command();
    let mut assets = man_pages(&cli)?;
    assets.extend(completions(&cli));
    Ok(assets)
}

/// Writes every asset under `dir` and returns their paths.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>> {
    let assets = generate().context("rendering the man pages")?;
    let mut written = Vec::with_capacity(assets.len());
    for asset in assets {
        let path = dir.join(&asset.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, &asset.contents).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `zerocopy-trace.8`, and a page for each visible subcommand (`zerocopy-trace-report.8`...):
/// the main page lists the subcommands, their own pages hold their options.
fn man_pages(cli: &clap::Command) -> io::Result<Vec<Asset>> {
    let mut cli = cli.clone().disable_help_subcommand(true);
    // Building names each subcommand `zerocopy-trace-<name>`, as their pages are called.
    cli.build();
    let subcommands: Vec<clap::Command> = cli
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .cloned()
        .collect();
    let sub_names: Vec<String> = subcommands.iter().map(page_title).collect();
    let mut pages = vec![man_page(cli.clone(), &sub_names, &[])?];
    for sub in subcommands {
        let files: &[(&str, &str)] = if sub.get_name() == "exporter" {
            &EXPORTER_FILES
        } else {
            &[]
        };
        pages.push(man_page(sub, &[BIN.to_owned()], files)?);
    }
    Ok(pages)
}

fn page_title(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

/// clap_mangen's page, then FILES and SEE ALSO sections of our own.
fn man_page(cmd: clap::Command, see_also: &[String], files: &[(&str, &str)]) -> io::Result<Asset> {
    let man = clap_mangen::Man::new(cmd)
        .section(MAN_SECTION)
        // Every page, the subcommands' too, names the release it documents in its footer (the
        // revision, in the VERSION section, would not fit beside the date in 80 columns).
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .date(page_date())
        .manual("zerocopy-trace manual");
    let mut contents = Vec::new();
    man.render(&mut contents)?;

    let mut extra = Roff::new();
    if !files.is_empty() {
        extra.control("SH", ["FILES"]);
        for (path, what) in files {
            extra.control("TP", []);
            extra.text([bold(*path)]);
            extra.text([roman(*what)]);
        }
    }
    extra.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for (i, name) in see_also.iter().enumerate() {
        let separator = if i + 1 < see_also.len() { ", " } else { "" };
        refs.push(bold(name.as_str()));
        refs.push(roman(format!("({MAN_SECTION}){separator}")));
    }
    extra.text(refs);
    // Without the apostrophe preamble the first part already wrote (none of our words has one).
    contents.extend_from_slice(extra.to_roff().as_bytes());

    Ok(Asset {
        path: Path::new("man").join(man.get_filename()),
        contents,
    })
}

/// Completion scripts, named for where Debian's shells look (the packaging renames the bash one
/// to the command's name). They offer only what `--help` shows.
fn completions(cli: &clap::Command) -> Vec<Asset> {
    let mut visible = without_hidden_subcommands(cli);
    [
        (Shell::Bash, "zerocopy-trace.bash"),
        (Shell::Zsh, "_zerocopy-trace"),
        (Shell::Fish, "zerocopy-trace.fish"),
    ]
    .into_iter()
    .map(|(shell, file)| {
        let mut contents = Vec::new();
        clap_complete::generate(shell, &mut visible, BIN, &mut contents);
        if shell == Shell::Bash {
            contents = fix_bash_states(&contents).into_bytes();
        }
        Asset {
            path: Path::new("completions").join(file),
            contents,
        }
    })
    .collect()
}

/// The command line as completion should see it: clap_complete offers hidden subcommands
/// (`empty-programs`, `assets`), and clap has no way to drop a subcommand, so this rebuilds the top
/// level around the visible ones.
fn without_hidden_subcommands(cli: &clap::Command) -> clap::Command {
    let mut visible = clap::Command::new(BIN)
        .args(cli.get_arguments().cloned())
        .groups(cli.get_groups().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
        .args_conflicts_with_subcommands(true)
        .version(crate::cli::VERSION);
    if let Some(about) = cli.get_about() {
        visible = visible.about(about.clone());
    }
    visible
}

/// clap_complete 4.6's bash script spells its states two ways when the command's name has a
/// hyphen: the loop over the words reaches `zerocopy__trace__subcmd__report`, the case arms say
/// `zerocopy__subcmd__trace__subcmd__report`, so no subcommand's options ever complete
/// (clap-rs/clap#6421, unfixed in a release). The arms are made to match the loop; where clap
/// fixes it, there is nothing left to replace.
fn fix_bash_states(script: &[u8]) -> String {
    let script = String::from_utf8_lossy(script);
    let escaped = BIN.replace('-', "__");
    let misspelled = BIN.replace('-', "__subcmd__");
    script.replace(
        &format!("{misspelled}__subcmd__"),
        &format!("{escaped}__subcmd__"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(asset: &Asset) -> &str {
        std::str::from_utf8(&asset.contents).expect("utf-8")
    }

    fn find<'a>(assets: &'a [Asset], path: &str) -> &'a Asset {
        assets
            .iter()
            .find(|a| a.path == Path::new(path))
            .unwrap_or_else(|| panic!("no {path} among {:?}", paths(assets)))
    }

    fn paths(assets: &[Asset]) -> Vec<String> {
        assets
            .iter()
            .map(|a| a.path.display().to_string())
            .collect()
    }

    /// How roff writes a long option: every `-` escaped.
    fn roff_flag(long: &str) -> String {
        format!("\\-\\-{}", long.replace('-', "\\-"))
    }

    #[test]
    fn a_page_per_visible_subcommand_and_three_shells() {
        let assets = generate().unwrap();
        assert_eq!(
            paths(&assets),
            [
                "man/zerocopy-trace.8",
                "man/zerocopy-trace-top.8",
                "man/zerocopy-trace-report.8",
                "man/zerocopy-trace-run.8",
                "man/zerocopy-trace-exporter.8",
                "completions/zerocopy-trace.bash",
                "completions/_zerocopy-trace",
                "completions/zerocopy-trace.fish",
            ]
        );
    }

    /// The pages follow the command line: every visible option of every subcommand is in its
    /// page, and nothing hidden is anywhere.
    #[test]
    fn every_visible_option_is_in_its_page_and_nothing_hidden() {
        let assets = generate().unwrap();
        // `help` is a subcommand of the command line, not a page.
        let mut cli = Cli::command().disable_help_subcommand(true);
        cli.build();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            let page = text(find(
                &assets,
                &format!("man/zerocopy-trace-{}.8", sub.get_name()),
            ));
            assert!(page.starts_with(".ie \\n(.g"), "{page}");
            assert!(
                page.contains(&format!(".TH zerocopy-trace-{} 8", sub.get_name())),
                "{page}"
            );
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    assert!(
                        page.contains(&roff_flag(long)),
                        "{} lacks --{long}",
                        sub.get_name()
                    );
                }
            }
            for hidden in sub.get_arguments().filter(|a| a.is_hide_set()) {
                if let Some(long) = hidden.get_long() {
                    assert!(!page.contains(&roff_flag(long)), "--{long} shown");
                }
            }
        }
        let main = text(find(&assets, "man/zerocopy-trace.8"));
        for sub in ["top", "report", "run", "exporter"] {
            assert!(
                main.contains(&format!("zerocopy\\-trace\\-{sub}(8)")),
                "{main}"
            );
        }
        for page in assets.iter().filter(|a| a.path.starts_with("man")) {
            let body = text(page);
            assert!(
                !body.contains("empty-programs") && !body.contains("assets"),
                "{body}"
            );
        }
    }

    #[test]
    fn every_page_names_the_version_and_revision() {
        let source = format!(
            "{} \"zerocopy-trace {}\" \"zerocopy-trace manual\"",
            page_date(),
            env!("CARGO_PKG_VERSION")
        );
        let main = text(&generate().unwrap()[0]).to_owned();
        for asset in generate()
            .unwrap()
            .iter()
            .filter(|a| a.path.starts_with("man"))
        {
            let page = text(asset);
            let title = page.lines().find(|l| l.starts_with(".TH ")).unwrap();
            assert!(title.contains(&source), "{title}");
        }
        assert!(crate::cli::VERSION.contains("(revision "));
        assert!(
            main.contains(&format!(".SH VERSION\nv{}\n", crate::cli::VERSION)),
            "{main}"
        );
    }

    #[test]
    fn the_exporter_page_names_the_packaged_files() {
        let assets = generate().unwrap();
        let page = text(find(&assets, "man/zerocopy-trace-exporter.8"));
        assert!(page.contains(".SH FILES"), "{page}");
        assert!(
            page.contains("/etc/default/zerocopy\\-trace\\-exporter"),
            "{page}"
        );
        assert!(page.contains(&roff_flag("listen")), "{page}");
        assert!(page.contains("\\fBzerocopy\\-trace\\fR(8)"), "{page}");
    }

    #[test]
    fn completions_offer_the_subcommands_and_their_flags() {
        let assets = generate().unwrap();
        for path in [
            "completions/zerocopy-trace.bash",
            "completions/_zerocopy-trace",
            "completions/zerocopy-trace.fish",
        ] {
            let script = text(find(&assets, path));
            for word in ["report", "exporter", "listen", "max-rows"] {
                assert!(script.contains(word), "{path} lacks {word}");
            }
        }
    }

    #[test]
    fn completions_leave_out_what_help_hides() {
        let assets = generate().unwrap();
        let bash = text(find(&assets, "completions/zerocopy-trace.bash"));
        let top_level = bash
            .lines()
            .find(|l| l.trim_start().starts_with("opts=\"-p "))
            .expect("the top level's words");
        assert!(
            top_level.ends_with(" --help --version top report run exporter help\""),
            "{top_level}"
        );
        for script in &assets[5..] {
            let script = text(script);
            assert!(
                !script.contains("empty-programs") && !script.contains("assets"),
                "{script}"
            );
        }
        without_hidden_subcommands(&Cli::command()).debug_assert();
    }

    /// Every state the bash script's loop can reach has its case arm.
    #[test]
    fn bash_states_are_spelled_one_way() {
        let assets = generate().unwrap();
        let bash = text(find(&assets, "completions/zerocopy-trace.bash"));
        let reached: Vec<&str> = bash
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .map(|l| l.trim_end_matches('"'))
            .filter(|state| !state.is_empty())
            .collect();
        assert!(
            reached.contains(&"zerocopy__trace__subcmd__exporter"),
            "{reached:?}"
        );
        for state in reached {
            assert!(
                bash.contains(&format!("\n        {state})\n")),
                "no case arm for {state}"
            );
        }
        assert!(!bash.contains("zerocopy__subcmd__trace"));
        assert_eq!(
            fix_bash_states(b"x zerocopy__subcmd__trace__subcmd__run)"),
            "x zerocopy__trace__subcmd__run)"
        );
    }

    #[test]
    fn write_creates_the_tree() {
        let dir =
            std::env::temp_dir().join(format!("zerocopy-trace-assets-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = write(&dir).unwrap();
        assert_eq!(written.len(), 8);
        assert!(dir.join("man/zerocopy-trace-run.8").is_file());
        assert!(dir.join("completions/_zerocopy-trace").is_file());
        fs::remove_dir_all(&dir).unwrap();
    }
}
