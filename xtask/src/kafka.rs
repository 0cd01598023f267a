//! Apache Kafka for the Kafka integration test: the broker, its command-line tools and their
//! runtime dependencies, fetched from Maven Central with Maven into `target/kafka/lib` (once; a
//! stamp says what is there). The test runs them with plain `java -cp 'target/kafka/lib/*'`,
//! so nothing of Kafka's own distribution (scripts, config) is needed.
//!
//! Java and Maven come with this project's machines; where they are missing, xtask installs the
//! Debian packages when it can, and otherwise says in one line what to install.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use dev_support::apt::{self, Apt};
use dev_support::cmd;

/// Kafka's version: the newest 4.x that Maven Central serves here, with all its dependencies.
pub const VERSION: &str = "4.4.0";

/// The test reads the Kafka directory from this variable (`target/kafka` by default).
pub const DIR_ENV: &str = "ZEROCOPY_TRACE_KAFKA_DIR";

/// The broker needs Java 17 (Kafka 4 dropped older runtimes).
const JAVA_MAJOR: u32 = 17;

/// The Debian packages that bring `java`, `keytool` (the test makes its TLS keys with it) and
/// `mvn`.
const PACKAGES: [&str; 2] = ["openjdk-17-jre-headless", "maven"];

/// Pinned, so a fresh machine resolves the same plugin (Maven 3.8's default, 2.8, is ancient).
const DEPENDENCY_PLUGIN: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1";

/// Maven coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    pub group: &'static str,
    pub artifact: &'static str,
    pub version: &'static str,
}

/// What the test runs: the broker (`kafka.Kafka`, `kafka.tools.StorageTool`), the tools
/// (`TopicCommand`, `ProducerPerformance`, `ConsumerPerformance`), and the SLF4J binding
/// Kafka's distribution ships to send its log to log4j 2 (not a dependency of the jars, so
/// without it the broker would log nothing).
pub const ARTIFACTS: [Artifact; 3] = [
    Artifact {
        group: "org.apache.kafka",
        artifact: "kafka_2.13",
        version: VERSION,
    },
    Artifact {
        group: "org.apache.kafka",
        artifact: "kafka-tools",
        version: VERSION,
    },
    Artifact {
        group: "org.apache.logging.log4j",
        artifact: "log4j-slf4j-impl",
        version: "2.25.5",
    },
];

/// `<workspace>/target/kafka`.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("kafka")
}

/// Makes sure `target/kafka/lib` holds Kafka's jars; returns `target/kafka`.
pub fn ensure(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let dir = dir(workspace);
    let pom = pom(&ARTIFACTS);
    let lib = dir.join("lib");
    // The stamp is the pom the jars came from: a changed artefact list fetches again.
    if fs::read_to_string(lib.join(STAMP)).is_ok_and(|stamp| stamp == pom) {
        return Ok(dir);
    }
    ensure_java_and_maven(apt)?;
    eprintln!(
        "xtask: fetching Apache Kafka {VERSION} with Maven into {}",
        dir.display()
    );
    // Into a fresh directory first, so an interrupted fetch never looks complete.
    let partial = dir.join("lib.partial");
    remove_dir_if_there(&partial)?;
    fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let pom_path = dir.join("pom.xml");
    fs::write(&pom_path, &pom).with_context(|| format!("writing {}", pom_path.display()))?;
    cmd::run(&mut maven_command(&pom_path, &partial))
        .context("fetching Kafka from Maven Central (is it reachable?)")?;
    fs::write(partial.join(STAMP), &pom).context("writing the Kafka stamp")?;
    remove_dir_if_there(&lib)?;
    fs::rename(&partial, &lib).with_context(|| format!("moving the jars to {}", lib.display()))?;
    Ok(dir)
}

/// The stamp file inside `lib/`.
const STAMP: &str = "fetched-from.pom.xml";

fn remove_dir_if_there(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A pom that only declares `artifacts`: `dependency:copy-dependencies` on it copies them and
/// their compile and runtime dependencies.
pub fn pom(artifacts: &[Artifact]) -> String {
    let dependencies: String = artifacts
        .iter()
        .map(|a| {
            format!(
                "    <dependency>\n      <groupId>{}</groupId>\n      <artifactId>{}</artifactId>\n      \
                 <version>{}</version>\n    </dependency>\n",
                a.group, a.artifact, a.version
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!-- Written by `cargo xtask test`: the jars the Kafka test runs. -->\n\
         <project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n  \
         <modelVersion>4.0.0</modelVersion>\n  \
         <groupId>zerocopy-trace</groupId>\n  \
         <artifactId>kafka-test-jars</artifactId>\n  \
         <version>1</version>\n  \
         <packaging>pom</packaging>\n  \
         <dependencies>\n{dependencies}  </dependencies>\n\
         </project>\n"
    )
}

/// `mvn` copying the pom's dependencies into `out`: batch mode (no prompts, no colours) and
/// quiet (errors still show).
pub fn maven_command(pom: &Path, out: &Path) -> Command {
    let mut command = Command::new("mvn");
    command
        .args(["-B", "-q", "-f"])
        .arg(pom)
        .arg(format!("{DEPENDENCY_PLUGIN}:copy-dependencies"))
        .arg(format!("-DoutputDirectory={}", out.display()))
        .arg("-DincludeScope=runtime");
    command
}

/// Java 17+ (with `keytool`) and Maven, installed from Debian where missing and possible.
fn ensure_java_and_maven(apt: &mut Apt) -> Result<()> {
    let missing = missing_tools();
    if !missing.is_empty() {
        if let Err(reason) = apt::can_install() {
            bail!(
                "the Kafka test needs {} and xtask cannot install them ({reason}): install Java \
                 {JAVA_MAJOR}+ and Maven, e.g. `apt-get install -y {}`",
                missing.join(", "),
                PACKAGES.join(" ")
            );
        }
        apt.install(&PACKAGES, "the Kafka test (Java and Maven)")?;
    }
    let out = Command::new("java")
        .arg("-version")
        .output()
        .context("running `java -version`")?;
    // `java -version` writes to stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(major) if major >= JAVA_MAJOR => Ok(()),
        found => bail!(
            "Kafka {VERSION} needs Java {JAVA_MAJOR} or newer, and `java` is {}: install e.g. \
             `apt-get install -y {}` and make it the default java",
            found.map_or("of an unknown version".to_owned(), |m| format!("Java {m}")),
            PACKAGES[0]
        ),
    }
}

/// The commands among java, keytool and mvn that are not on `PATH`.
fn missing_tools() -> Vec<&'static str> {
    ["java", "keytool", "mvn"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The major version in `java -version`'s first line: `openjdk version "17.0.15" ...` -> 17,
/// and the old scheme `"1.8.0_392"` -> 8.
pub fn java_major(text: &str) -> Option<u32> {
    let version = text.split('"').nth(1)?;
    let mut parts = version.split(['.', '_', '-', '+']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pom_declares_each_artifact_once() {
        let text = pom(&ARTIFACTS);
        assert!(text.starts_with("<?xml"), "{text}");
        assert_eq!(text.matches("<dependency>").count(), ARTIFACTS.len());
        assert!(text.contains(
            "<groupId>org.apache.kafka</groupId>\n      <artifactId>kafka_2.13</artifactId>\n      \
             <version>4.4.0</version>"
        ));
        assert!(text.contains("<artifactId>kafka-tools</artifactId>"));
        assert!(text.contains("<packaging>pom</packaging>"));
        assert!(text.trim_end().ends_with("</project>"));
    }

    #[test]
    fn pom_without_artifacts_is_still_a_project() {
        let text = pom(&[]);
        assert!(text.contains("<dependencies>\n  </dependencies>"), "{text}");
    }

    #[test]
    fn maven_copies_runtime_dependencies_with_a_pinned_plugin() {
        let command = maven_command(Path::new("/ws/target/kafka/pom.xml"), Path::new("/out"));
        assert_eq!(
            cmd::describe(&command),
            "mvn -B -q -f /ws/target/kafka/pom.xml \
             org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
             -DoutputDirectory=/out -DincludeScope=runtime"
        );
    }

    #[test]
    fn java_versions() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("openjdk version \"25-ea\""), Some(25));
        assert_eq!(java_major("no quotes here"), None);
        assert_eq!(java_major("version \"x.y\""), None);
    }

    #[test]
    fn kafka_lives_under_target() {
        assert_eq!(dir(Path::new("/ws")), Path::new("/ws/target/kafka"));
    }
}
