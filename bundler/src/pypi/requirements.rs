//! pip's requirements file format, as far as a wheel bundle needs it: comments, line
//! continuations, `-r`/`-c` includes (relative to the including file), PEP 508 requirement
//! lines with extras and markers, `--hash` pins, and the index options that change what gets
//! resolved. Also the Kubespray requirements shipped in `manifests/`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use pep508_rs::{Requirement, VersionOrUrl};

use super::PypiError;

/// Kubespray requirements shipped with the bundler, newest release first; `master` last.
const SHIPPED: &[(&str, &str)] = &[
    (
        "2.31.0",
        include_str!("../../../manifests/kubespray-2.31.0.txt"),
    ),
    (
        "master",
        include_str!("../../../manifests/kubespray-master.txt"),
    ),
];

/// The versions `--kubespray` accepts.
pub fn shipped_kubespray_versions() -> Vec<&'static str> {
    SHIPPED.iter().map(|(version, _)| *version).collect()
}

/// The newest shipped Kubespray release: the default when no requirements are given.
pub fn default_kubespray_version() -> &'static str {
    SHIPPED[0].0
}

/// True when this bundler ships the requirements of Kubespray `version` (`v2.31.0` or
/// `2.31.0`).
pub fn is_shipped_kubespray(version: &str) -> bool {
    let version = version.trim_start_matches('v');
    SHIPPED.iter().any(|(known, _)| *known == version)
}

/// One requirement (or constraint) line after includes and continuations were resolved.
#[derive(Debug, Clone)]
pub struct RequirementLine {
    pub requirement: Requirement,
    /// `--hash=sha256:<hex>` pins (lowercase hex); empty when the line has none.
    pub sha256: Vec<String>,
    /// The requirement as written, without options.
    pub text: String,
    /// `file:line` where it came from.
    pub origin: String,
}

impl RequirementLine {
    /// The version this line pins with `==`/`===`, if it pins exactly one.
    pub fn pinned_version(&self) -> Option<pep440_rs::Version> {
        let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &self.requirement.version_or_url
        else {
            return None;
        };
        let mut iter = specifiers.iter();
        let first = iter.next()?;
        if iter.next().is_some() {
            return None;
        }
        matches!(
            first.operator(),
            pep440_rs::Operator::Equal | pep440_rs::Operator::ExactEqual
        )
        .then(|| first.version().clone())
    }
}

/// Everything a requirements file (and its includes) says.
#[derive(Debug, Clone, Default)]
pub struct RequirementSet {
    pub requirements: Vec<RequirementLine>,
    pub constraints: Vec<RequirementLine>,
    /// `-i/--index-url` given in the file; the command line wins over it.
    pub index_url: Option<String>,
    /// `--pre` given in the file.
    pub pre: bool,
    /// Where the requirements came from, for the manifest: a path, a shipped list, a URL.
    pub source: Option<String>,
}

impl RequirementSet {
    /// Reads a requirements file and everything it includes.
    pub fn from_file(path: &Path) -> Result<Self, PypiError> {
        let mut set = RequirementSet::default();
        let mut stack = HashSet::new();
        set.read_file(path, false, &mut stack)?;
        set.source = Some(path.display().to_string());
        Ok(set)
    }

    /// The requirements shipped for a Kubespray version (see `shipped_kubespray_versions`).
    pub fn kubespray(version: &str) -> Result<Self, PypiError> {
        let version = version.trim_start_matches('v');
        let (_, text) = SHIPPED
            .iter()
            .find(|(known, _)| *known == version)
            .ok_or_else(|| PypiError::Requirements {
                origin: format!("--kubespray {version}"),
                message: format!(
                    "no shipped requirements for this Kubespray version; known: {} (or pass --requirements FILE)",
                    shipped_kubespray_versions().join(", ")
                ),
            })?;
        let mut set = RequirementSet::default();
        let name = format!("kubespray-{version}.txt");
        set.parse_text(text, &name, None, false, &mut HashSet::new())?;
        set.source = Some(format!("manifests/{name} (shipped with bundler)"));
        Ok(set)
    }

    /// Parses requirements text; `-r`/`-c` in it are resolved relative to `base_dir`.
    /// `origin` names it in messages and is recorded as its source.
    pub fn from_text(text: &str, origin: &str, base_dir: Option<&Path>) -> Result<Self, PypiError> {
        let mut set = RequirementSet::default();
        set.parse_text(text, origin, base_dir, false, &mut HashSet::new())?;
        set.source = Some(origin.to_string());
        Ok(set)
    }

    /// The requirement lines as given, for the manifest.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .requirements
            .iter()
            .map(|line| line.text.clone())
            .collect();
        lines.extend(
            self.constraints
                .iter()
                .map(|line| format!("-c {}", line.text)),
        );
        lines
    }

    fn read_file(
        &mut self,
        path: &Path,
        constraint: bool,
        stack: &mut HashSet<PathBuf>,
    ) -> Result<(), PypiError> {
        let canonical = fs_err::canonicalize(path).map_err(|err| PypiError::Requirements {
            origin: path.display().to_string(),
            message: err.to_string(),
        })?;
        if !stack.insert(canonical.clone()) {
            return Err(PypiError::Requirements {
                origin: path.display().to_string(),
                message: "includes itself (directly or through -r/-c)".into(),
            });
        }
        let text = fs_err::read_to_string(&canonical).map_err(|err| PypiError::Requirements {
            origin: path.display().to_string(),
            message: err.to_string(),
        })?;
        self.parse_text(
            &text,
            &path.display().to_string(),
            canonical.parent(),
            constraint,
            stack,
        )?;
        stack.remove(&canonical);
        Ok(())
    }

    fn parse_text(
        &mut self,
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
        constraint: bool,
        stack: &mut HashSet<PathBuf>,
    ) -> Result<(), PypiError> {
        for (number, line) in logical_lines(text) {
            let here = format!("{origin}:{number}");
            let error = |message: String| PypiError::Requirements {
                origin: here.clone(),
                message,
            };
            if let Some(rest) = line.strip_prefix('-') {
                let (option, value) = split_option(rest);
                match option {
                    "r" | "-requirement" | "c" | "-constraint" => {
                        let value =
                            value.ok_or_else(|| error(format!("-{option} needs a file name")))?;
                        let include = match base_dir {
                            Some(dir) => dir.join(value),
                            None => PathBuf::from(value),
                        };
                        let as_constraint = constraint || option == "c" || option == "-constraint";
                        self.read_file(&include, as_constraint, stack)?;
                    }
                    "i" | "-index-url" => {
                        let value = value.ok_or_else(|| error("--index-url needs a URL".into()))?;
                        self.index_url = Some(value.to_string());
                    }
                    "-pre" => self.pre = true,
                    // Options that do not change what a wheel-only, hash-checked resolution picks.
                    "-only-binary" | "-prefer-binary" | "-require-hashes" | "-trusted-host" => {}
                    _ => {
                        return Err(error(format!(
                            "unsupported option `-{rest}`; the bundler supports -r, -c, -i/--index-url, --pre and --hash"
                        )));
                    }
                }
                continue;
            }
            let (spec, sha256) = split_hashes(&line).map_err(error)?;
            let requirement: Requirement =
                super::metadata::parse_requirement(spec).map_err(error)?;
            if let Some(VersionOrUrl::Url(url)) = &requirement.version_or_url {
                return Err(error(format!(
                    "direct URL requirement ({url}) is not supported; name a version from the index instead"
                )));
            }
            let entry = RequirementLine {
                requirement,
                sha256,
                text: spec.to_string(),
                origin: here.clone(),
            };
            if constraint {
                self.constraints.push(entry);
            } else {
                self.requirements.push(entry);
            }
        }
        Ok(())
    }
}

/// Joins `\` continuations, drops comments and blank lines; yields (first line number, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (index, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = index + 1;
        }
        let without_comment = strip_comment(raw);
        if let Some(body) = without_comment.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(without_comment);
        let line = pending.trim().to_string();
        pending.clear();
        if !line.is_empty() {
            lines.push((start, line));
        }
    }
    let line = pending.trim().to_string();
    if !line.is_empty() {
        lines.push((start, line));
    }
    lines
}

/// pip treats `#` as a comment at line start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'#' && (index == 0 || bytes[index - 1].is_ascii_whitespace()) {
            return line[..index].trim_end();
        }
    }
    line.trim_end()
}

/// `r file` / `-requirement=file` -> (option, value).
fn split_option(rest: &str) -> (&str, Option<&str>) {
    // Character boundaries, not bytes: the text may hold any character (found by fuzzing).
    let (option, value) = match rest
        .char_indices()
        .find(|&(_, c)| c == '=' || c.is_whitespace())
    {
        Some((at, c)) => (&rest[..at], Some(rest[at + c.len_utf8()..].trim())),
        None => (rest, None),
    };
    // `-rfile` (no space) is valid for single-letter options.
    let first = rest.chars().next().map_or(0, char::len_utf8);
    if value.is_none() && rest.len() > first && !rest.starts_with('-') {
        return (&rest[..first], Some(rest[first..].trim()));
    }
    (option, value.filter(|value| !value.is_empty()))
}

/// Splits `spec --hash=sha256:a --hash sha256:b` into the spec and the sha256 values.
fn split_hashes(line: &str) -> Result<(&str, Vec<String>), String> {
    let Some(at) = line.find(" --") else {
        return Ok((line.trim(), Vec::new()));
    };
    let spec = line[..at].trim();
    let mut hashes = Vec::new();
    let mut words = line[at..].split_whitespace();
    while let Some(word) = words.next() {
        let value = match word {
            "--hash" => words.next().ok_or("--hash needs a value")?.to_string(),
            _ if word.starts_with("--hash=") => word["--hash=".len()..].to_string(),
            _ => {
                return Err(format!(
                    "unsupported per-requirement option `{word}`; only --hash is"
                ));
            }
        };
        let (algorithm, hex) = value
            .split_once(':')
            .ok_or(format!("--hash `{value}` is not <algorithm>:<hex>"))?;
        if algorithm != "sha256" {
            return Err(format!("--hash `{value}`: only sha256 pins are supported"));
        }
        hashes.push(hex.to_ascii_lowercase());
    }
    Ok((spec, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pip_syntax() {
        let text = "\
# a comment
ansible==11.13.0   # trailing comment
requests[socks,security] >= 2.0 ; python_version >= '3.8' \\
    --hash=sha256:ABCDEF --hash sha256:0123
--pre
-i https://example.invalid/simple
";
        let set = RequirementSet::from_text(text, "req.txt", None).unwrap();
        assert_eq!(set.requirements.len(), 2);
        assert_eq!(
            set.requirements[0].pinned_version().unwrap().to_string(),
            "11.13.0"
        );
        assert_eq!(set.requirements[0].origin, "req.txt:2");
        let requests = &set.requirements[1];
        assert_eq!(requests.requirement.extras.len(), 2);
        assert_eq!(requests.sha256, vec!["abcdef", "0123"]);
        assert_eq!(requests.pinned_version(), None);
        assert!(set.pre);
        assert_eq!(
            set.index_url.as_deref(),
            Some("https://example.invalid/simple")
        );
    }

    #[test]
    fn includes_and_constraints_resolve_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("sub")).unwrap();
        fs_err::write(
            dir.path().join("top.txt"),
            "-r sub/more.txt\n-c sub/pins.txt\nalpha\n",
        )
        .unwrap();
        fs_err::write(dir.path().join("sub/more.txt"), "beta>=1\n").unwrap();
        fs_err::write(dir.path().join("sub/pins.txt"), "beta<2\n").unwrap();
        let set = RequirementSet::from_file(&dir.path().join("top.txt")).unwrap();
        let names: Vec<_> = set
            .requirements
            .iter()
            .map(|line| line.text.as_str())
            .collect();
        assert_eq!(names, ["beta>=1", "alpha"]);
        assert_eq!(set.constraints[0].text, "beta<2");
        assert_eq!(set.lines(), ["beta>=1", "alpha", "-c beta<2"]);

        fs_err::write(dir.path().join("loop.txt"), "-r loop.txt\n").unwrap();
        let err = RequirementSet::from_file(&dir.path().join("loop.txt")).unwrap_err();
        assert!(err.to_string().contains("includes itself"), "{err}");
    }

    #[test]
    fn rejects_what_it_cannot_honour() {
        for (text, needle) in [
            ("-e ./local\n", "unsupported option"),
            ("foo @ https://example.invalid/foo.whl\n", "direct URL"),
            ("foo==1 --hash=md5:00\n", "only sha256"),
            ("foo ===\n", "req.txt:1"),
        ] {
            let err = RequirementSet::from_text(text, "req.txt", None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn shipped_kubespray_requirements_parse() {
        for version in shipped_kubespray_versions() {
            let set = RequirementSet::kubespray(version).unwrap();
            assert!(
                set.requirements
                    .iter()
                    .any(|line| line.requirement.name.as_ref() == "ansible")
            );
        }
        assert_eq!(default_kubespray_version(), "2.31.0");
        assert!(RequirementSet::kubespray("v2.31.0").is_ok());
        assert!(
            RequirementSet::kubespray("1.0")
                .unwrap_err()
                .to_string()
                .contains("known: 2.31.0")
        );
    }
}
