//! Slim mode: expand a package list to its dependency closure against the target repos (never
//! the build host). A name in the list matches packages by name (globs allowed), else, like
//! dnf, the packages that provide it. Candidates are the newest EVR per name.arch with arch in {target, noarch};
//! a requirement is met by every candidate that provides it (by name and version, by a file in
//! primary, or implicitly by its own name). The caller adds files from filelists
//! ([`super::filelists`]) when a required path is not in primary, and resolves again. Rich dependencies are expanded conservatively: both
//! branches of `if`/`unless`, the first satisfiable alternative of `or`. Taking more than a
//! solver would never leaves dnf short of a package; it only costs a few extra files.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use globset::Glob;
use rpm_version::Evr;

use super::RpmMetaError;
use super::primary::{DepEntry, PrimaryPackage};
use super::richdep::{RichDep, parse_rich};

/// A package of some repo, by (repo index, package index in that repo).
pub type PkgRef = (usize, usize);

pub struct ClosureInput<'a> {
    /// Every selected repo's packages.
    pub repos: &'a [Vec<PrimaryPackage>],
    pub arch: &'a str,
    pub patterns: &'a [String],
    pub weak_deps: bool,
}

/// Newest EVR per name.arch among target-arch and noarch packages.
fn candidates(repos: &[Vec<PrimaryPackage>], arch: &str) -> Vec<PkgRef> {
    let mut newest: BTreeMap<(String, String), PkgRef> = BTreeMap::new();
    for (r, pkgs) in repos.iter().enumerate() {
        for (i, p) in pkgs.iter().enumerate() {
            if p.arch != arch && p.arch != "noarch" {
                continue;
            }
            let key = (p.name.clone(), p.arch.clone());
            match newest.get(&key) {
                Some(&(br, bi)) if evr_of(&repos[br][bi]) >= evr_of(p) => {}
                _ => {
                    newest.insert(key, (r, i));
                }
            }
        }
    }
    newest.into_values().collect()
}

fn evr_of(p: &PrimaryPackage) -> Evr<'_> {
    Evr::new(p.epoch.as_str(), p.version.as_str(), p.release.as_str())
}

/// Does a provide (or the package's own EVR) satisfy `flags` `wanted`? A side without a
/// release ignores releases, as rpm does; an unversioned provide satisfies any version.
fn version_matches(
    provided: Option<(&str, &str, &str)>,
    flags: &str,
    wanted: (&str, &str, &str),
) -> bool {
    let Some((pe, pv, pr)) = provided else {
        return true;
    };
    let pr = if wanted.2.is_empty() { "" } else { pr };
    let have = Evr::new(if pe.is_empty() { "0" } else { pe }, pv, pr);
    let want = Evr::new(
        if wanted.0.is_empty() { "0" } else { wanted.0 },
        wanted.1,
        wanted.2,
    );
    let ord = have.cmp(&want);
    match flags {
        "EQ" => ord == Ordering::Equal,
        "LT" => ord == Ordering::Less,
        "LE" => ord != Ordering::Greater,
        "GT" => ord == Ordering::Greater,
        "GE" => ord != Ordering::Less,
        _ => true,
    }
}

/// Who provides what, over the candidates.
struct ProvideIndex<'a> {
    repos: &'a [Vec<PrimaryPackage>],
    by_name: HashMap<&'a str, Vec<(PkgRef, Option<&'a DepEntry>)>>,
    by_file: HashMap<&'a str, Vec<PkgRef>>,
}

impl<'a> ProvideIndex<'a> {
    fn new(repos: &'a [Vec<PrimaryPackage>], cands: &[PkgRef]) -> Self {
        let mut by_name: HashMap<&str, Vec<_>> = HashMap::new();
        let mut by_file: HashMap<&str, Vec<_>> = HashMap::new();
        for &(r, i) in cands {
            let p = &repos[r][i];
            by_name
                .entry(p.name.as_str())
                .or_default()
                .push(((r, i), None));
            for d in &p.provides {
                by_name
                    .entry(d.name.as_str())
                    .or_default()
                    .push(((r, i), Some(d)));
            }
            for f in &p.files {
                by_file.entry(f.as_str()).or_default().push((r, i));
            }
        }
        Self {
            repos,
            by_name,
            by_file,
        }
    }

    /// Every candidate providing `name [flags version]`.
    fn providers(
        &self,
        name: &str,
        flags: Option<&str>,
        wanted: (&str, &str, &str),
    ) -> Vec<PkgRef> {
        let mut out = Vec::new();
        if name.starts_with('/') {
            out.extend(self.by_file.get(name).into_iter().flatten().copied());
        }
        for &(pkg, entry) in self.by_name.get(name).into_iter().flatten() {
            let ok = match (flags, entry) {
                (None, _) => true,
                (Some(f), Some(e)) => version_matches(
                    e.ver.as_deref().map(|v| {
                        (
                            e.epoch.as_deref().unwrap_or("0"),
                            v,
                            e.rel.as_deref().unwrap_or(""),
                        )
                    }),
                    f,
                    wanted,
                ),
                (Some(f), None) => {
                    let p = &self.repos[pkg.0][pkg.1];
                    version_matches(Some((&p.epoch, &p.version, &p.release)), f, wanted)
                }
            };
            if ok && !out.contains(&pkg) {
                out.push(pkg);
            }
        }
        out
    }

    fn providers_of_entry(&self, d: &DepEntry) -> Vec<PkgRef> {
        self.providers(
            &d.name,
            d.flags.as_deref(),
            (
                d.epoch.as_deref().unwrap_or("0"),
                d.ver.as_deref().unwrap_or(""),
                d.rel.as_deref().unwrap_or(""),
            ),
        )
    }

    /// Providers a rich dependency needs (None when it cannot be satisfied).
    fn providers_of_rich(&self, dep: &RichDep) -> Option<Vec<PkgRef>> {
        match dep {
            RichDep::Simple { name, op, evr } => {
                let (e, v, r) = split_evr(evr);
                let found = self.providers(name, op.as_deref(), (e, v, r));
                (!found.is_empty()).then_some(found)
            }
            RichDep::And(parts) | RichDep::With(parts) => {
                let mut all = Vec::new();
                for p in parts {
                    all.extend(self.providers_of_rich(p)?);
                }
                Some(all)
            }
            RichDep::Or(parts) => parts.iter().find_map(|p| self.providers_of_rich(p)),
            RichDep::Cond {
                then, otherwise, ..
            } => {
                let mut all = self.providers_of_rich(then)?;
                if let Some(o) = otherwise {
                    all.extend(self.providers_of_rich(o).unwrap_or_default());
                }
                Some(all)
            }
            RichDep::Without(a, _) => self.providers_of_rich(a),
        }
    }
}

fn split_evr(evr: &str) -> (&str, &str, &str) {
    let (epoch, rest) = evr.split_once(':').unwrap_or(("0", evr));
    let (ver, rel) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (epoch, ver, rel)
}

/// The closure, or an error naming the unmet requirement and the chain that needs it.
pub fn resolve_closure(input: &ClosureInput<'_>) -> Result<Vec<PkgRef>, RpmMetaError> {
    let cands = candidates(input.repos, input.arch);
    let index = ProvideIndex::new(input.repos, &cands);
    let name_of = |(r, i): PkgRef| -> &PrimaryPackage { &input.repos[r][i] };
    // Package -> (parent, requirement) that pulled it in; roots have no parent.
    let mut why: HashMap<PkgRef, Option<(PkgRef, String)>> = HashMap::new();
    let mut queue = VecDeque::new();
    for pattern in input.patterns {
        let glob = Glob::new(pattern)
            .map_err(|e| RpmMetaError::BadPattern {
                pattern: pattern.clone(),
                reason: e.to_string(),
            })?
            .compile_matcher();
        let mut matched: Vec<PkgRef> = cands
            .iter()
            .copied()
            .filter(|&p| {
                let pkg = name_of(p);
                glob.is_match(&pkg.name) || glob.is_match(format!("{}.{}", pkg.name, pkg.arch))
            })
            .collect();
        // Like `dnf install NAME`: a plain name no package has is looked up in provides
        // (Kubespray asks for `iptables`, which iptables-nft provides on EL 9 and 10).
        if matched.is_empty() && !pattern.contains(['*', '?', '[', '{']) {
            matched = index.providers(pattern, None, ("", "", ""));
        }
        if matched.is_empty() {
            return Err(RpmMetaError::NoMatch {
                pattern: pattern.clone(),
            });
        }
        for p in matched {
            if why.insert(p, None).is_none() {
                queue.push_back(p);
            }
        }
    }
    while let Some(pkg) = queue.pop_front() {
        let p = name_of(pkg);
        let weak = if input.weak_deps {
            p.recommends.as_slice()
        } else {
            &[]
        };
        let deps = p
            .requires
            .iter()
            .map(|d| (d, true))
            .chain(weak.iter().map(|d| (d, false)));
        for (dep, strong) in deps {
            let found = if dep.name.starts_with('(') {
                parse_rich(&dep.name)
                    .ok()
                    .and_then(|rich| index.providers_of_rich(&rich))
            } else {
                Some(index.providers_of_entry(dep)).filter(|f| !f.is_empty())
            };
            match found {
                Some(providers) => {
                    for q in providers {
                        if let std::collections::hash_map::Entry::Vacant(v) = why.entry(q) {
                            v.insert(Some((pkg, dep.name.clone())));
                            queue.push_back(q);
                        }
                    }
                }
                None if strong => {
                    let mut chain = vec![p.nevra()];
                    let mut at = pkg;
                    while let Some(Some((parent, req))) = why.get(&at) {
                        chain.push(format!("{} (requires {req})", name_of(*parent).nevra()));
                        at = *parent;
                    }
                    return Err(RpmMetaError::Unresolvable {
                        requirement: describe(dep),
                        chain: chain.join(" <- "),
                    });
                }
                None => {}
            }
        }
    }
    let mut out: Vec<PkgRef> = why.into_keys().collect();
    out.sort();
    Ok(out)
}

/// Every path some package requires or recommends, inside rich dependencies too: what to look
/// for in filelists when primary does not list a required file.
pub fn required_paths(repos: &[Vec<PrimaryPackage>]) -> HashSet<String> {
    repos
        .iter()
        .flatten()
        .flat_map(|p| p.requires.iter().chain(&p.recommends))
        .flat_map(|d| {
            d.name
                .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        })
        .filter(|t| t.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn describe(d: &DepEntry) -> String {
    match (&d.flags, &d.ver) {
        (Some(f), Some(v)) => format!("{} {f} {v}", d.name),
        _ => d.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(
        name: &str,
        rel: &str,
        arch: &str,
        requires: &[&str],
        provides: &[&str],
        files: &[&str],
    ) -> PrimaryPackage {
        let dep = |n: &&str| DepEntry {
            name: n.to_string(),
            flags: None,
            epoch: None,
            ver: None,
            rel: None,
        };
        PrimaryPackage {
            name: name.into(),
            arch: arch.into(),
            epoch: "0".into(),
            version: "1.0".into(),
            release: rel.into(),
            href: format!("Packages/{name}-1.0-{rel}.{arch}.rpm"),
            requires: requires.iter().map(dep).collect(),
            provides: provides.iter().map(dep).collect(),
            files: files.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        }
    }

    fn names(repos: &[Vec<PrimaryPackage>], refs: &[PkgRef]) -> Vec<String> {
        refs.iter().map(|&(r, i)| repos[r][i].nevra()).collect()
    }

    #[test]
    fn closure_follows_files_rich_deps_and_newest_evr_across_repos() {
        let repos = vec![
            vec![
                pkg("bash", "1", "x86_64", &[], &[], &["/bin/sh"]),
                pkg("lib", "1", "x86_64", &[], &["libx.so"], &[]),
                pkg("lib", "2", "x86_64", &[], &["libx.so"], &[]),
                pkg("lib", "3", "aarch64", &[], &["libx.so"], &[]),
            ],
            vec![
                pkg(
                    "app",
                    "1",
                    "x86_64",
                    &["/bin/sh", "libx.so", "(fs-a or fs-b)"],
                    &[],
                    &[],
                ),
                pkg("fs-b", "1", "noarch", &[], &[], &[]),
                pkg("unrelated", "1", "noarch", &[], &[], &[]),
            ],
        ];
        let patterns = vec!["app".to_string()];
        let got = resolve_closure(&ClosureInput {
            repos: &repos,
            arch: "x86_64",
            patterns: &patterns,
            weak_deps: true,
        })
        .unwrap();
        assert_eq!(
            names(&repos, &got),
            [
                "bash-1.0-1.x86_64",
                "lib-1.0-2.x86_64",
                "app-1.0-1.x86_64",
                "fs-b-1.0-1.noarch"
            ]
        );
    }

    #[test]
    fn a_plain_name_no_package_has_selects_its_providers_like_dnf() {
        let repos = vec![vec![
            pkg(
                "iptables-nft",
                "1",
                "x86_64",
                &[],
                &["iptables", "ebtables"],
                &[],
            ),
            pkg("other", "1", "x86_64", &[], &[], &[]),
        ]];
        let resolve = |pattern: &str| {
            resolve_closure(&ClosureInput {
                repos: &repos,
                arch: "x86_64",
                patterns: &[pattern.to_string()],
                weak_deps: false,
            })
        };
        for name in ["iptables", "ebtables"] {
            assert_eq!(
                names(&repos, &resolve(name).unwrap()),
                ["iptables-nft-1.0-1.x86_64"]
            );
        }
        // Globs match package names only; they are not looked up in provides.
        assert!(matches!(resolve("ebt*"), Err(RpmMetaError::NoMatch { .. })));
    }

    #[test]
    fn unresolvable_requirement_names_the_chain() {
        let repos = vec![vec![
            pkg("top", "1", "noarch", &["middle"], &[], &[]),
            pkg("middle", "1", "noarch", &["libgone.so.1"], &[], &[]),
        ]];
        let patterns = vec!["top".to_string()];
        let err = resolve_closure(&ClosureInput {
            repos: &repos,
            arch: "x86_64",
            patterns: &patterns,
            weak_deps: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("libgone.so.1"), "{err}");
        assert!(
            err.contains("middle-1.0-1.noarch <- top-1.0-1.noarch (requires middle)"),
            "{err}"
        );
    }

    #[test]
    fn required_paths_include_those_inside_rich_dependencies() {
        let mut a = pkg(
            "a",
            "1",
            "noarch",
            &["(/usr/share/x/y or z)", "b"],
            &[],
            &[],
        );
        a.recommends.push(DepEntry {
            name: "/usr/libexec/w".into(),
            flags: None,
            epoch: None,
            ver: None,
            rel: None,
        });
        let mut got: Vec<String> = required_paths(&[vec![a]]).into_iter().collect();
        got.sort();
        assert_eq!(got, ["/usr/libexec/w", "/usr/share/x/y"]);
    }

    #[test]
    fn versions_compare_like_rpm() {
        assert!(version_matches(
            Some(("0", "10.0", "1")),
            "GE",
            ("0", "10", "")
        ));
        assert!(!version_matches(
            Some(("0", "9.6", "1")),
            "GE",
            ("0", "10", "")
        ));
        assert!(version_matches(
            Some(("2", "1.0", "1")),
            "GT",
            ("1", "9.9", "")
        ));
        assert!(
            version_matches(None, "EQ", ("0", "1", "1")),
            "unversioned provide matches"
        );
        assert!(version_matches(
            Some(("0", "1.2", "3.el10")),
            "EQ",
            ("0", "1.2", "")
        ));
        assert_eq!(split_evr("2:1.26.3-1.el10"), ("2", "1.26.3", "1.el10"));
    }
}
