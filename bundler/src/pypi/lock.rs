//! Reuse a previous bundle's PyPI resolution (`--pypi-lock BUNDLE`): the manifest records, per
//! target, every chosen file with its URL, size and sha256, so a later build can fetch exactly
//! those files again instead of resolving against an index that has moved on. Nothing is asked
//! of the index; the fetcher still checks every file against the recorded size and sha256.

use std::str::FromStr;

use bundle::manifest::PypiTarget;
use pep440_rs::Version;
use pep508_rs::PackageName;
use url::Url;

use super::index::IndexFile;
use super::{PypiError, RequirementSet, ResolvedDist, ResolvedTarget, Target};

/// The recorded targets as resolutions, in the recorded order.
pub fn resolved_from_lock(
    origin: &str,
    targets: &[PypiTarget],
) -> Result<Vec<ResolvedTarget>, PypiError> {
    let bad = |message: String| PypiError::Requirements {
        origin: origin.to_string(),
        message,
    };
    let mut resolved = Vec::new();
    for recorded in targets {
        let target = Target::cpython(
            &recorded.python_version,
            None,
            &recorded.machine,
            &recorded.glibc,
        )?;
        let mut dists = Vec::new();
        for file in &recorded.lock {
            let name = PackageName::from_str(&file.name)
                .map_err(|e| bad(format!("locked name `{}`: {e}", file.name)))?;
            let version = Version::from_str(&file.version).map_err(|e| {
                bad(format!(
                    "locked version `{}` of {}: {e}",
                    file.version, file.name
                ))
            })?;
            let url = Url::parse(&file.url)
                .map_err(|e| bad(format!("locked URL `{}`: {e}", file.url)))?;
            dists.push(ResolvedDist {
                name,
                version,
                file: IndexFile {
                    filename: file.filename.clone(),
                    url,
                    sha256: Some(file.sha256.clone()),
                    requires_python: file.requires_python.clone(),
                    yanked: file.yanked.clone(),
                    size: Some(file.size),
                    upload_time: file.upload_time.clone(),
                },
            });
        }
        resolved.push(ResolvedTarget { target, dists });
    }
    Ok(resolved)
}

/// The requirement lines recorded with the lock (constraints were recorded as `-c <line>`).
pub fn recorded_requirements(
    origin: &str,
    targets: &[PypiTarget],
) -> Result<RequirementSet, PypiError> {
    let lines = targets
        .first()
        .map(|t| t.requirements.as_slice())
        .unwrap_or_default();
    let (constraints, requirements): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.starts_with("-c "));
    let join = |lines: &[&String], strip: &str| {
        lines
            .iter()
            .map(|l| l.strip_prefix(strip).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut set = RequirementSet::from_text(&join(&requirements, ""), origin, None)?;
    set.constraints =
        RequirementSet::from_text(&join(&constraints, "-c "), origin, None)?.requirements;
    Ok(set)
}
