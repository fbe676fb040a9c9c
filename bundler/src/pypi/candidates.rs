//! Which files of a project page can serve a target, and which one per version is best:
//! the filter (yanked, Requires-Python, upload cutoff, hash pins, sdist policy) and the wheel
//! tag ranking, kept apart from the solver so prefetching tasks can use it too.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use pep440_rs::{Version, VersionSpecifiers};
use time::OffsetDateTime;

use super::index::{IndexFile, ProjectPage};
use super::metadata::DistFilename;
use super::target::Target;

/// Per-run options that change which files qualify.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// Use an sdist when a version has no compatible wheel (static metadata only).
    pub allow_sdist: bool,
    /// Allow pre-releases for every project.
    pub pre: bool,
    /// Ignore files uploaded after this instant.
    pub exclude_newer: Option<OffsetDateTime>,
}

/// What the requirements say about one project beyond its version range.
#[derive(Debug, Clone, Default)]
pub struct ProjectPolicy {
    /// Exact `==` pin from the requirements: a yanked file of that version stays usable.
    pub pinned: Option<Version>,
    /// `--hash` pins: only files with one of these sha256 qualify.
    pub sha256: HashSet<String>,
    /// A specifier in the requirements names a pre-release.
    pub pre: bool,
}

/// The best file of one version for a target, or why there is none.
#[derive(Debug, Clone)]
pub enum Candidate {
    Usable(IndexFile),
    Unusable(String),
}

/// Versions of a project, each with its best file for `target` or the reason it has none.
pub fn candidates(
    page: &ProjectPage,
    target: &Target,
    options: &ResolveOptions,
    policy: &ProjectPolicy,
) -> BTreeMap<Version, Candidate> {
    struct Best {
        key: (u8, usize),
        file: IndexFile,
    }
    let mut best: BTreeMap<Version, Best> = BTreeMap::new();
    let mut reasons: BTreeMap<Version, BTreeSet<String>> = BTreeMap::new();
    for file in &page.files {
        let Some(parsed) = DistFilename::parse(&file.filename, &page.name) else {
            continue;
        };
        let version = parsed.version().clone();
        let reject = |reasons: &mut BTreeMap<Version, BTreeSet<String>>, why: String| {
            reasons.entry(version.clone()).or_default().insert(why);
        };
        if let Some(cutoff) = options.exclude_newer {
            let uploaded = file.upload_time.as_deref().and_then(|time| {
                OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()
            });
            match uploaded {
                Some(uploaded) if uploaded <= cutoff => {}
                Some(_) => {
                    reject(&mut reasons, "uploaded after --exclude-newer".into());
                    continue;
                }
                None => {
                    reject(
                        &mut reasons,
                        "the index gives no upload time (needed by --exclude-newer)".into(),
                    );
                    continue;
                }
            }
        }
        if file.yanked.is_some() && policy.pinned.as_ref() != Some(&version) {
            reject(
                &mut reasons,
                "yanked (usable only when pinned with ==)".into(),
            );
            continue;
        }
        if let Some(requires) = &file.requires_python {
            // An unparsable Requires-Python is ignored, as pip does.
            if let Ok(specifiers) = requires.parse::<VersionSpecifiers>()
                && !specifiers.contains(target.python_version())
            {
                reject(&mut reasons, format!("requires Python {requires}"));
                continue;
            }
        }
        if !policy.sha256.is_empty()
            && !file
                .sha256
                .as_ref()
                .is_some_and(|hash| policy.sha256.contains(hash))
        {
            reject(&mut reasons, "sha256 does not match any --hash pin".into());
            continue;
        }
        let key = match &parsed {
            DistFilename::Wheel {
                python,
                abi,
                platform,
                ..
            } => match target.wheel_rank(python, abi, platform) {
                Some(rank) => (0, rank),
                None => {
                    reject(&mut reasons, format!("no wheel for {}", target.name()));
                    continue;
                }
            },
            DistFilename::Sdist { .. }
                if options.allow_sdist && file.filename.ends_with(".tar.gz") =>
            {
                (1, 0)
            }
            DistFilename::Sdist { .. } => {
                reject(
                    &mut reasons,
                    "source distribution only (wheels only; see --allow-sdist)".into(),
                );
                continue;
            }
        };
        let slot = best.entry(version).or_insert_with(|| Best {
            key,
            file: file.clone(),
        });
        if key < slot.key {
            *slot = Best {
                key,
                file: file.clone(),
            };
        }
    }
    let mut out: BTreeMap<Version, Candidate> = reasons
        .into_iter()
        .map(|(version, why)| (version, Candidate::Unusable(join(why))))
        .collect();
    out.extend(
        best.into_iter()
            .map(|(version, best)| (version, Candidate::Usable(best.file))),
    );
    out
}

/// The newest usable version allowed by `contains`, skipping pre-releases unless allowed.
pub fn newest(
    candidates: &BTreeMap<Version, Candidate>,
    contains: impl Fn(&Version) -> bool,
    allow_pre: bool,
) -> Option<(&Version, &IndexFile)> {
    candidates
        .iter()
        .rev()
        .find_map(|(version, candidate)| match candidate {
            Candidate::Usable(file)
                if contains(version) && (allow_pre || !version.any_prerelease()) =>
            {
                Some((version, file))
            }
            _ => None,
        })
}

fn join(reasons: BTreeSet<String>) -> String {
    reasons.into_iter().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> IndexFile {
        IndexFile {
            filename: name.into(),
            url: format!("http://127.0.0.1/files/{name}").parse().unwrap(),
            sha256: Some(format!("{:x}", name.len())),
            requires_python: None,
            yanked: None,
            size: None,
            upload_time: Some("2025-01-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn picks_best_tag_and_explains_rejections() {
        let mut yanked = file("demo-3.0-py3-none-any.whl");
        yanked.yanked = Some("broken".into());
        let mut old_python = file("demo-2.5-py3-none-any.whl");
        old_python.requires_python = Some("<3.10".into());
        let page = ProjectPage {
            name: "demo".parse().unwrap(),
            url: "http://127.0.0.1/simple/demo/".parse().unwrap(),
            files: vec![
                file("demo-2.0-cp312-cp312-manylinux2014_x86_64.whl"),
                file("demo-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
                file("demo-2.0-py3-none-any.whl"),
                file("demo-2.0.tar.gz"),
                file("demo-2.1-cp312-cp312-manylinux_2_28_aarch64.whl"),
                yanked,
                old_python,
                file("demo-3.1rc1-py3-none-any.whl"),
            ],
        };
        let target = Target::cpython("3.12", None, "x86_64", "2.39").unwrap();
        let options = ResolveOptions::default();
        let found = candidates(&page, &target, &options, &ProjectPolicy::default());
        let usable = |v: &str| match &found[&v.parse::<Version>().unwrap()] {
            Candidate::Usable(file) => Ok(file.filename.clone()),
            Candidate::Unusable(why) => Err(why.clone()),
        };
        assert_eq!(
            usable("2.0").unwrap(),
            "demo-2.0-cp312-cp312-manylinux_2_28_x86_64.whl"
        );
        assert_eq!(
            usable("2.1").unwrap_err(),
            "no wheel for cp312-manylinux_2_39-x86_64"
        );
        assert!(usable("3.0").unwrap_err().starts_with("yanked"));
        assert_eq!(usable("2.5").unwrap_err(), "requires Python <3.10");
        let (version, _) = newest(&found, |_| true, false).unwrap();
        assert_eq!(version.to_string(), "2.0");
        assert_eq!(
            newest(&found, |_| true, true).unwrap().0.to_string(),
            "3.1rc1"
        );

        let pinned = ProjectPolicy {
            pinned: Some("3.0".parse().unwrap()),
            ..Default::default()
        };
        let found = candidates(&page, &target, &options, &pinned);
        assert!(matches!(
            found[&"3.0".parse::<Version>().unwrap()],
            Candidate::Usable(_)
        ));

        let cutoff = ResolveOptions {
            exclude_newer: Some(time::macros::datetime!(2024-01-01 0:00 UTC)),
            ..options
        };
        let found = candidates(&page, &target, &cutoff, &ProjectPolicy::default());
        assert!(newest(&found, |_| true, true).is_none());
    }
}
