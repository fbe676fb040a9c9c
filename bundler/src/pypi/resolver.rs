//! The solver: pubgrub over PEP 440 version ranges, with one pubgrub package per distribution
//! and one per (distribution, extra). Markers are evaluated against the target's environment.
//! pubgrub asks synchronously; answers come from the shared async index client, and every
//! dependency found starts fetching its page and likely metadata in the background so the
//! network stays busy while the solver walks the graph.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use pep440_rs::Version;
use pep508_rs::{ExtraName, PackageName, Requirement, VersionOrUrl};
use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyConstraints, DependencyProvider,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};

use super::PypiError;
use super::candidates::{Candidate, ProjectPolicy, ResolveOptions, candidates, newest};
use super::index::{IndexClient, IndexFile};
use super::metadata::normalize;
use super::requirements::RequirementSet;
use super::target::Target;

/// A node of the resolution graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    Dist(PackageName),
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Root => f.write_str("<requirements>"),
            Node::Dist(name) => write!(f, "{name}"),
            Node::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

/// One resolved distribution and the file chosen for the target.
#[derive(Debug, Clone)]
pub struct ResolvedDist {
    pub name: PackageName,
    pub version: Version,
    pub file: IndexFile,
}

/// Everything one target's resolution needs; shared with background prefetch tasks.
struct Context {
    client: Arc<IndexClient>,
    target: Target,
    options: ResolveOptions,
    policies: HashMap<PackageName, ProjectPolicy>,
    constraints: HashMap<PackageName, Ranges<Version>>,
}

impl Context {
    fn policy(&self, name: &PackageName) -> ProjectPolicy {
        self.policies.get(name).cloned().unwrap_or_default()
    }

    fn allow_pre(&self, name: &PackageName) -> bool {
        self.options.pre || self.policies.get(name).is_some_and(|policy| policy.pre)
    }

    /// Fetch the page and the newest matching version's metadata, ignoring errors: the solver
    /// asks again and reports them.
    async fn prefetch(self: Arc<Self>, name: PackageName, range: Ranges<Version>) {
        let Ok(page) = self.client.project(&name).await else {
            return;
        };
        let found = candidates(&page, &self.target, &self.options, &self.policy(&name));
        if let Some((_, file)) = newest(&found, |v| range.contains(v), self.allow_pre(&name)) {
            let _ = self.client.metadata(file).await;
        }
    }
}

struct Provider {
    context: Arc<Context>,
    handle: tokio::runtime::Handle,
    root: Vec<Requirement>,
    candidates: RefCell<HashMap<PackageName, Arc<BTreeMap<Version, Candidate>>>>,
    /// Why versions in a requested range were unusable, for the failure explanation.
    skipped: RefCell<BTreeMap<String, Vec<String>>>,
}

impl Provider {
    /// The answer of `request`, run on the runtime while this thread (pubgrub's provider is
    /// synchronous; the solver runs on the blocking pool) waits for it.
    fn wait<T: Send + 'static>(
        &self,
        request: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = answer.send(request.await);
        });
        answered.recv().expect("index requests do not panic")
    }

    fn candidates_of(
        &self,
        name: &PackageName,
    ) -> Result<Arc<BTreeMap<Version, Candidate>>, PypiError> {
        if let Some(found) = self.candidates.borrow().get(name) {
            return Ok(found.clone());
        }
        let (client, wanted) = (self.context.client.clone(), name.clone());
        let page = self.wait(async move { client.project(&wanted).await })?;
        let found = Arc::new(candidates(
            &page,
            &self.context.target,
            &self.context.options,
            &self.context.policy(name),
        ));
        self.candidates
            .borrow_mut()
            .insert(name.clone(), found.clone());
        Ok(found)
    }

    fn file_of(&self, name: &PackageName, version: &Version) -> Result<IndexFile, PypiError> {
        match self.candidates_of(name)?.get(version) {
            Some(Candidate::Usable(file)) => Ok(file.clone()),
            _ => unreachable!("the solver only picks versions choose_version offered"),
        }
    }

    /// Adds the dependencies `requirements` give under `extras` to `deps`.
    fn add_requirements(
        &self,
        deps: &mut DependencyConstraints<Node, Ranges<Version>>,
        requirements: &[Requirement],
        extras: &[ExtraName],
        myself: &Node,
    ) {
        for requirement in requirements {
            if !requirement
                .marker
                .evaluate(self.context.target.markers(), extras)
            {
                continue;
            }
            let name = requirement.name.clone();
            let mut range = match &requirement.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(specifiers)) => {
                    Ranges::from(specifiers.clone())
                }
                _ => Ranges::full(),
            };
            if let Some(constraint) = self.context.constraints.get(&name) {
                range = range.intersection(constraint);
            }
            let mut nodes = vec![Node::Dist(name.clone())];
            nodes.extend(
                requirement
                    .extras
                    .iter()
                    .map(|extra| Node::Extra(name.clone(), extra.clone())),
            );
            for node in nodes {
                if &node == myself {
                    continue;
                }
                let merged = match deps.get(&node) {
                    Some(existing) => existing.intersection(&range),
                    None => range.clone(),
                };
                deps.insert(node, merged);
            }
            let context = self.context.clone();
            self.handle.spawn(context.prefetch(name, range));
        }
    }
}

impl DependencyProvider for Provider {
    type P = Node;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = PypiError;
    type Priority = (u8, u32);

    fn prioritize(
        &self,
        _node: &Node,
        range: &Ranges<Version>,
        stats: &PackageResolutionStatistics,
    ) -> (u8, u32) {
        // Exact pins first: they cannot branch.
        (
            u8::from(range.as_singleton().is_some()),
            stats.conflict_count(),
        )
    }

    fn choose_version(
        &self,
        node: &Node,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, PypiError> {
        let name = match node {
            Node::Root => return Ok(Some(Version::new([0]))),
            Node::Dist(name) | Node::Extra(name, _) => name,
        };
        let found = self.candidates_of(name)?;
        if let Some((version, _)) =
            newest(&found, |v| range.contains(v), self.context.allow_pre(name))
        {
            return Ok(Some(version.clone()));
        }
        let mut skipped: Vec<String> = found
            .iter()
            .rev()
            .filter(|(version, _)| range.contains(version))
            .map(|(version, candidate)| match candidate {
                Candidate::Unusable(why) => format!("{name} {version}: {why}"),
                Candidate::Usable(_) => {
                    format!("{name} {version}: pre-release (pass --pre to allow)")
                }
            })
            .take(5)
            .collect();
        if skipped.is_empty() && found.is_empty() {
            skipped.push(format!("{name}: the index lists no files for it"));
        }
        self.skipped.borrow_mut().insert(name.to_string(), skipped);
        Ok(None)
    }

    fn get_dependencies(
        &self,
        node: &Node,
        version: &Version,
    ) -> Result<Dependencies<Node, Ranges<Version>, String>, PypiError> {
        let mut deps = DependencyConstraints::default();
        let (name, extra) = match node {
            Node::Root => {
                let root = self.root.clone();
                self.add_requirements(&mut deps, &root, &[], node);
                return Ok(Dependencies::Available(deps));
            }
            Node::Dist(name) => (name, None),
            Node::Extra(name, extra) => (name, Some(extra.clone())),
        };
        let file = self.file_of(name, version)?;
        let (client, wanted) = (self.context.client.clone(), file.clone());
        let metadata = self.wait(async move { client.metadata(&wanted).await })?;
        if normalize(&metadata.name) != name.as_ref() || &metadata.version != version {
            return Err(PypiError::BadMetadata {
                url: file.url.to_string(),
                message: format!(
                    "metadata names {} {}, expected {name} {version}",
                    metadata.name, metadata.version
                ),
            });
        }
        if !file.filename.ends_with(".whl") && !metadata.dependencies_are_static() {
            return Err(PypiError::DynamicSdist {
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        if let Some(requires) = &metadata.requires_python
            && !requires.contains(self.context.target.python_version())
        {
            return Ok(Dependencies::Unavailable(format!(
                "requires Python {requires}"
            )));
        }
        match extra {
            None => self.add_requirements(&mut deps, &metadata.requires_dist, &[], node),
            Some(extra) => {
                deps.insert(Node::Dist(name.clone()), Ranges::singleton(version.clone()));
                self.add_requirements(&mut deps, &metadata.requires_dist, &[extra], node);
            }
        }
        Ok(Dependencies::Available(deps))
    }
}

/// Resolves `requirements` for `target`. Blocks the calling thread (run it on a blocking
/// thread); network work runs on `handle`.
pub fn resolve(
    client: Arc<IndexClient>,
    handle: tokio::runtime::Handle,
    requirements: &RequirementSet,
    target: Target,
    options: ResolveOptions,
) -> Result<Vec<ResolvedDist>, PypiError> {
    let mut policies: HashMap<PackageName, ProjectPolicy> = HashMap::new();
    let mut constraints: HashMap<PackageName, Ranges<Version>> = HashMap::new();
    for line in requirements
        .requirements
        .iter()
        .chain(&requirements.constraints)
    {
        let policy = policies.entry(line.requirement.name.clone()).or_default();
        if let Some(pinned) = line.pinned_version() {
            policy.pinned = Some(pinned);
        }
        policy.sha256.extend(line.sha256.iter().cloned());
        if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &line.requirement.version_or_url {
            policy.pre |= specifiers
                .iter()
                .any(|specifier| specifier.version().any_prerelease());
        }
    }
    for line in &requirements.constraints {
        if !line.requirement.marker.evaluate(target.markers(), &[]) {
            continue;
        }
        if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &line.requirement.version_or_url {
            let range = Ranges::from(specifiers.clone());
            let entry = constraints
                .entry(line.requirement.name.clone())
                .or_insert_with(Ranges::full);
            *entry = entry.intersection(&range);
        }
    }
    let target_name = target.name();
    let provider = Provider {
        context: Arc::new(Context {
            client,
            target,
            options,
            policies,
            constraints,
        }),
        handle,
        root: requirements
            .requirements
            .iter()
            .map(|line| line.requirement.clone())
            .collect(),
        candidates: RefCell::default(),
        skipped: RefCell::default(),
    };
    match pubgrub::resolve(&provider, Node::Root, Version::new([0])) {
        Ok(selected) => {
            let mut resolved = Vec::new();
            for (node, version) in selected {
                if let Node::Dist(name) = node {
                    let file = provider.file_of(&name, &version)?;
                    resolved.push(ResolvedDist {
                        name,
                        version,
                        file,
                    });
                }
            }
            resolved.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(resolved)
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let report = DefaultStringReporter::report(&tree)
                .replace("<requirements> 0 depends", "the requirements depend")
                .replace(
                    "<requirements> 0 is forbidden",
                    "the requirements cannot be satisfied",
                )
                .replace("<requirements> 0", "the requirements")
                // A full range reads as "any version": say nothing.
                .replace(" *,", ",")
                .replace(" * ", " ");
            let mut explanation = report.clone();
            for (name, reasons) in provider.skipped.borrow().iter() {
                if report.contains(name.as_str()) && !reasons.is_empty() {
                    explanation.push_str(&format!("\n  skipped versions of {name}:"));
                    for reason in reasons {
                        explanation.push_str(&format!("\n    {reason}"));
                    }
                }
            }
            Err(PypiError::NoSolution {
                target: target_name,
                explanation,
            })
        }
        Err(PubGrubError::ErrorRetrievingDependencies { source, .. }) => Err(source),
        Err(PubGrubError::ErrorChoosingVersion { source, .. }) => Err(source),
        Err(PubGrubError::ErrorInShouldCancel(source)) => Err(source),
    }
}
