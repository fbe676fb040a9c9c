//! Keeps docs/ARCHITECTURE.md's map true: every file, function and type its hop tables and
//! policy table name must exist where the table says, so moving code without updating the map
//! fails here, naming the hop and what is missing.
//!
//! What a table cell means to this check (ARCHITECTURE.md says the same to its editors), for
//! the names in backticks:
//! - a path (`build/rpm.rs`, `bundler/src/fetch/`) names a file or directory, relative to the
//!   workspace or to the `src/` of the crate the table (or the row's last full path) is about;
//! - a bare name after a run of paths must be defined in each of them (anywhere below a
//!   directory); a bare name before any path in its cell, anywhere in the crate;
//! - `module::item` and `Type::member` resolve like Rust paths: a leading crate name picks the
//!   crate, other module paths match the end of a file's module path, a member is a method or
//!   an enum variant of the type anywhere in its crate;
//! - flags, file extensions, environment variables and other spans are prose, not checked.
//!
//! Files are read with `syn`, so a name counts only where Rust defines it (a function, type,
//! trait, const, module, method, variant, or a `pub use` re-export), not where it is used.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Crate directories at the workspace root, and the names code uses for them.
const CRATES: [(&str, &str); 4] = [
    ("bundle", "bundle"),
    ("bundler", "bundler"),
    ("installer", "installer"),
    ("e2e", "tests"),
];

/// The tables checked: heading text (without `## `) and the crate their short paths are in.
const TABLES: [(&str, Option<&str>); 3] = [
    ("`bundler build`, hop by hop", Some("bundler")),
    ("`installer apply`, hop by hop", Some("installer")),
    ("Where each policy lives", None),
];

/// What one Rust file defines.
#[derive(Default)]
struct Defs {
    /// Functions, types, traits, consts, statics, modules, macros and `pub use` names.
    names: BTreeSet<String>,
    /// `(Type, member)`: methods in `impl` blocks and traits, enum variants.
    members: BTreeSet<(String, String)>,
}

impl Defs {
    fn has(&self, name: &str) -> bool {
        self.names.contains(name) || self.members.iter().any(|(_, m)| m == name)
    }
}

struct Checker {
    root: PathBuf,
    parsed: HashMap<PathBuf, Result<Defs, String>>,
}

/// The state of one row: the crate short paths resolve in, and the paths a bare name is
/// looked up in.
struct RowContext {
    crate_dir: Option<String>,
    /// Each entry is one path token's files (one file, or every file below a directory).
    run: Vec<(String, Vec<PathBuf>)>,
    last_was_path: bool,
}

impl Checker {
    fn new(root: &Path) -> Checker {
        Checker {
            root: root.to_path_buf(),
            parsed: HashMap::new(),
        }
    }

    fn defs(&mut self, file: &Path) -> Result<&Defs, String> {
        if !self.parsed.contains_key(file) {
            let parsed = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|text| {
                    syn::parse_file(&text)
                        .map_err(|e| format!("cannot parse {}: {e}", file.display()))
                })
                .map(|ast| {
                    let mut defs = Defs::default();
                    collect_items(&ast.items, &mut defs);
                    defs
                });
            self.parsed.insert(file.to_path_buf(), parsed);
        }
        self.parsed[file].as_ref().map_err(Clone::clone)
    }

    /// Whether any of `files` defines `name` (as an item, a re-export, a method or a variant).
    fn any_has(&mut self, files: &[PathBuf], name: &str) -> Result<bool, String> {
        for file in files {
            if self.defs(file)?.has(name) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Checks one table of `markdown`; returns how many names and paths it checked and what
    /// is missing, one line per problem.
    fn check_table(
        &mut self,
        markdown: &str,
        heading: &str,
        crate_dir: Option<&str>,
    ) -> (usize, Vec<String>) {
        let mut problems = Vec::new();
        let (column, rows) = match table_rows(markdown, heading) {
            Some((column, rows)) if !rows.is_empty() => (column, rows),
            _ => {
                return (
                    0,
                    vec![format!("no table under the heading `## {heading}`")],
                );
            }
        };
        let mut checked = 0;
        for cells in rows {
            let label = format!("{heading}, {column} {}", cells[0]);
            let mut row = RowContext {
                crate_dir: crate_dir.map(str::to_string),
                run: Vec::new(),
                last_was_path: false,
            };
            for cell in &cells[1..] {
                row.run.clear();
                row.last_was_path = false;
                for token in code_spans(cell) {
                    match self.check_token(&mut row, token) {
                        Ok(true) => checked += 1,
                        Ok(false) => {}
                        Err(problem) => problems.push(format!("{label}: {problem}")),
                    }
                }
            }
        }
        (checked, problems)
    }

    /// Checks one code span; Ok(false) when it is prose (a flag, an extension, a variable).
    fn check_token(&mut self, row: &mut RowContext, token: &str) -> Result<bool, String> {
        if token.starts_with('-')
            || token.starts_with('.')
            || token.contains(char::is_whitespace)
            || !token.contains(|c: char| c.is_ascii_lowercase())
        {
            return Ok(false);
        }
        if token.contains("::") {
            row.last_was_path = false;
            self.check_path_expr(row, token)?;
            return Ok(true);
        }
        if token.contains('/') || token.ends_with(".rs") {
            if !row.last_was_path {
                row.run.clear();
            }
            row.last_was_path = true;
            let resolved = self.resolve_file(row, token);
            // A missing path is one problem, not one more for every name after it.
            let files = resolved.as_ref().cloned().unwrap_or_default();
            row.run.push((token.to_string(), files));
            return resolved.map(|_| true);
        }
        if !is_ident(token) {
            return Ok(false);
        }
        row.last_was_path = false;
        if row.run.is_empty() {
            let files = self.crate_files(row, token)?;
            if !self.any_has(&files, token)? {
                return Err(format!(
                    "`{token}` is defined nowhere in {}",
                    row.crate_dir.as_deref().unwrap_or("?")
                ));
            }
        } else if row.run.iter().any(|(_, files)| files.is_empty()) {
            return Ok(false);
        } else {
            for (path, files) in row.run.clone() {
                if !self.any_has(&files, token)? {
                    return Err(format!("`{token}` is not defined in `{path}`"));
                }
            }
        }
        Ok(true)
    }

    /// The files a path token names: tried from the workspace root, then from the crate's
    /// `src/`. A full path (`bundle/src/write.rs`) also moves the row to that crate.
    fn resolve_file(&mut self, row: &mut RowContext, token: &str) -> Result<Vec<PathBuf>, String> {
        let mut tried = vec![self.root.join(token)];
        if let Some(dir) = &row.crate_dir {
            tried.push(self.root.join(dir).join("src").join(token));
        }
        let found = tried.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
            let tried: Vec<String> = tried.iter().map(|p| self.rel(p)).collect();
            format!(
                "file `{token}` does not exist (looked for {})",
                tried.join(", ")
            )
        })?;
        if let Some((first, _)) = token.split_once('/')
            && CRATES.iter().any(|(_, dir)| *dir == first)
            && found == self.root.join(token)
        {
            row.crate_dir = Some(first.to_string());
        }
        if found.is_dir() {
            let files = rust_files(&found);
            if files.is_empty() {
                return Err(format!("directory `{token}` holds no Rust file"));
            }
            Ok(files)
        } else {
            Ok(vec![found])
        }
    }

    fn crate_files(&self, row: &RowContext, token: &str) -> Result<Vec<PathBuf>, String> {
        let dir = row
            .crate_dir
            .as_deref()
            .ok_or_else(|| format!("`{token}` names no file and the row names no crate"))?;
        Ok(rust_files(&self.root.join(dir).join("src")))
    }

    /// `module::item`, `crate::module::item`, `Type::member`, `module::Type::member`.
    fn check_path_expr(&mut self, row: &RowContext, token: &str) -> Result<(), String> {
        let mut segs: Vec<&str> = token.split("::").collect();
        if segs.iter().any(|s| !is_ident(s)) {
            return Err(format!("`{token}` is not a Rust path"));
        }
        let mut crate_dir = row.crate_dir.clone();
        let mut absolute = false;
        if let Some((_, dir)) = CRATES.iter().find(|(name, _)| *name == segs[0]) {
            crate_dir = Some(dir.to_string());
            absolute = true;
            segs.remove(0);
        }
        let crate_dir = crate_dir
            .ok_or_else(|| format!("`{token}`: the row names no crate to look it up in"))?;
        let src = self.root.join(&crate_dir).join("src");
        let type_at = segs
            .iter()
            .position(|s| s.starts_with(|c: char| c.is_ascii_uppercase()));
        let module_len = type_at.unwrap_or(segs.len() - 1);
        let module = &segs[..module_len];
        let files = module_files(&src, module, absolute);
        if files.is_empty() {
            return Err(format!(
                "`{token}`: no module `{}` in {crate_dir}",
                module.join("::")
            ));
        }
        let Some(t) = type_at else {
            let item = segs[segs.len() - 1];
            return match self.any_has(&files, item)? {
                true => Ok(()),
                false => Err(format!(
                    "`{token}`: `{item}` is not defined in {}",
                    self.list(&files)
                )),
            };
        };
        let ty = segs[t];
        let mut defined = false;
        for file in &files {
            defined |= self.defs(file)?.names.contains(ty);
        }
        if !defined {
            return Err(format!(
                "`{token}`: type `{ty}` is not defined in {}",
                self.list(&files)
            ));
        }
        if let Some(member) = segs.get(t + 1) {
            let key = (ty.to_string(), member.to_string());
            let mut found = false;
            for file in rust_files(&src) {
                found |= self.defs(&file)?.members.contains(&key);
            }
            if !found {
                return Err(format!(
                    "`{token}`: `{ty}` has no method or variant `{member}` in {crate_dir}"
                ));
            }
        }
        Ok(())
    }

    fn list(&self, files: &[PathBuf]) -> String {
        match files {
            [one] => format!("`{}`", self.rel(one)),
            _ => format!("any of {} files", files.len()),
        }
    }
}

fn collect_items(items: &[syn::Item], defs: &mut Defs) {
    for item in items {
        let name = match item {
            syn::Item::Fn(f) => Some(&f.sig.ident),
            syn::Item::Struct(s) => Some(&s.ident),
            syn::Item::Union(u) => Some(&u.ident),
            syn::Item::Type(t) => Some(&t.ident),
            syn::Item::Const(c) => Some(&c.ident),
            syn::Item::Static(s) => Some(&s.ident),
            syn::Item::Macro(m) => m.ident.as_ref(),
            syn::Item::Enum(e) => {
                for v in &e.variants {
                    defs.members
                        .insert((e.ident.to_string(), v.ident.to_string()));
                }
                Some(&e.ident)
            }
            syn::Item::Trait(t) => {
                for ti in &t.items {
                    if let syn::TraitItem::Fn(f) = ti {
                        defs.members
                            .insert((t.ident.to_string(), f.sig.ident.to_string()));
                    }
                }
                Some(&t.ident)
            }
            syn::Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    collect_items(inner, defs);
                }
                Some(&m.ident)
            }
            syn::Item::Impl(imp) => {
                if let syn::Type::Path(p) = &*imp.self_ty
                    && let Some(last) = p.path.segments.last()
                {
                    for ii in &imp.items {
                        if let syn::ImplItem::Fn(f) = ii {
                            defs.members
                                .insert((last.ident.to_string(), f.sig.ident.to_string()));
                        }
                    }
                }
                None
            }
            syn::Item::Use(u) if !matches!(u.vis, syn::Visibility::Inherited) => {
                collect_use(&u.tree, defs);
                None
            }
            _ => None,
        };
        if let Some(name) = name {
            defs.names.insert(name.to_string());
        }
    }
}

/// The names a `pub use` makes reachable where it stands.
fn collect_use(tree: &syn::UseTree, defs: &mut Defs) {
    match tree {
        syn::UseTree::Path(p) => collect_use(&p.tree, defs),
        syn::UseTree::Name(n) if n.ident != "self" => {
            defs.names.insert(n.ident.to_string());
        }
        syn::UseTree::Rename(r) => {
            defs.names.insert(r.rename.to_string());
        }
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| collect_use(t, defs)),
        _ => {}
    }
}

/// The files of module `module` below `src`: an absolute path from the crate root, or, for a
/// relative one, every module whose path ends with it (`repos` finds `apply/repos.rs`). An
/// empty path means the crate root when absolute, every file otherwise.
fn module_files(src: &Path, module: &[&str], absolute: bool) -> Vec<PathBuf> {
    rust_files(src)
        .into_iter()
        .filter(|file| {
            let Some(path) = module_path(src, file) else {
                return false;
            };
            if absolute {
                path == module
            } else {
                path.ends_with(module)
            }
        })
        .collect()
}

/// `src/apply/mod.rs` -> `["apply"]`, `src/lib.rs` -> `[]`; None for `src/bin/` targets and
/// files that are not modules of the library.
fn module_path<'a>(src: &Path, file: &'a Path) -> Option<Vec<&'a str>> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap_or("")).collect();
    if parts.first() == Some(&"bin") {
        return None;
    }
    let last = parts.pop()?;
    match last {
        "mod.rs" => {}
        "lib.rs" | "main.rs" if parts.is_empty() => {}
        _ => parts.push(last.strip_suffix(".rs")?),
    }
    Some(parts)
}

/// Every `.rs` file below `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The first table after the heading `## {heading}`: its first column's name (`hop`) and its
/// rows, cells trimmed.
fn table_rows(markdown: &str, heading: &str) -> Option<(String, Vec<Vec<String>>)> {
    let mut lines = markdown.lines();
    lines.find(|l| l.trim_start_matches('#').trim() == heading && l.starts_with("##"))?;
    let mut rows = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| -> Vec<String> {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        });
    let column = rows.next()?.first()?.clone();
    Some((column, rows.skip(1).collect()))
}

/// The code spans of a markdown cell, in order.
fn code_spans(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2)
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate sits in the workspace")
            .to_path_buf()
    }

    #[test]
    fn architecture_tables_name_code_that_exists() {
        let root = root();
        let doc = root.join("docs/ARCHITECTURE.md");
        let markdown = std::fs::read_to_string(&doc)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", doc.display()));
        let mut checker = Checker::new(&root);
        let mut problems = Vec::new();
        for (heading, crate_dir) in TABLES {
            let (checked, found) = checker.check_table(&markdown, heading, crate_dir);
            // A table whose spans all went unchecked would pass without checking anything.
            if checked < 5 {
                problems.push(format!("{heading}: only {checked} names checked"));
            }
            problems.extend(found);
        }
        assert!(
            problems.is_empty(),
            "docs/ARCHITECTURE.md names code that is not where it says; update the table \
             (or the code):\n  {}",
            problems.join("\n  ")
        );
    }

    /// The checker itself: each kind of wrong name is reported, with its row.
    #[test]
    fn a_wrong_name_fails_naming_the_row() {
        let markdown = "## t\n\n| hop | function |\n|---|---|\n\
            | 1 | `build/rpm.rs` `plan`, `no_such_fn` |\n\
            | 2 | `build/no_such_file.rs` `plan` |\n\
            | 3 | `Fetcher::no_such_method` and `NoSuchType::fetch` |\n\
            | 4 | `bundle::read::read_manifest`, `bundle::read::no_such_item` |\n\
            | 5 | `commands/exit.rs` `installer/src/commands/exit.rs` `of_build` |\n\
            | 6 | `--flag` `KOI_VAR` `.run` `fetch_verified` `BuildError::Usage` |\n";
        let mut checker = Checker::new(&root());
        let (checked, problems) = checker.check_table(markdown, "t", Some("bundler"));
        let expected = [
            "hop 1: `no_such_fn` is not defined in `build/rpm.rs`",
            "hop 2: file `build/no_such_file.rs` does not exist",
            "hop 3: `Fetcher::no_such_method`: `Fetcher` has no method or variant",
            "hop 3: `NoSuchType::fetch`: type `NoSuchType` is not defined",
            "hop 4: `bundle::read::no_such_item`: `no_such_item` is not defined",
            "hop 5: `of_build` is not defined in `installer/src/commands/exit.rs`",
        ];
        for want in expected {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "expected a problem containing {want:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        // Passed: row 1's path and `plan`, `read_manifest`, the two exit.rs paths, row 6's
        // two names. Not counted: the flag, the variable, the extension, and `plan` after the
        // missing file.
        assert_eq!(checked, 7, "{problems:#?}");
    }
}
