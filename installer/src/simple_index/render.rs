//! The pages of the static index: PEP 503 HTML and PEP 691 JSON (API 1.1) for the root and for
//! each project, rendered from [`IndexFile`] records. Pure functions; nothing here touches disk.
//!
//! Hrefs are relative (`../../files/F`) so that the tree works over http at `/pypi/simple/`,
//! behind the `/pypi/` redirect, and as a `file://` index; the file name in a URL is
//! percent-encoded, and every text or attribute is HTML-escaped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use super::{IndexFile, Project};

/// API version these pages honestly claim: size, upload-time and versions are emitted (PEP 700).
pub const API_VERSION: &str = "1.1";

/// Everything but RFC 3986 unreserved characters is encoded in a path segment (`+`, `!`, ...).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where project pages find the files, relative to `simple/<project>/`.
const FILES_FROM_PROJECT: &str = "../../files/";

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

fn head(out: &mut String, title: &str) {
    out.push_str("<!DOCTYPE html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">"
    );
    let _ = writeln!(out, "    <title>{}</title>", escape_html(title));
    out.push_str("  </head>\n  <body>\n");
}

const TAIL: &str = "  </body>\n</html>\n";

pub fn root_html(projects: &[Project]) -> String {
    let mut out = String::new();
    head(&mut out, "Simple index");
    for p in projects {
        let _ = writeln!(
            out,
            "    <a href=\"{}/\">{}</a><br/>",
            encode_segment(&p.name),
            escape_html(&p.name)
        );
    }
    out.push_str(TAIL);
    out
}

pub fn project_html(project: &Project) -> String {
    let mut out = String::new();
    let title = format!("Links for {}", project.name);
    head(&mut out, &title);
    let _ = writeln!(out, "    <h1>{}</h1>", escape_html(&title));
    for f in &project.files {
        let _ = write!(
            out,
            "    <a href=\"{}{}#sha256={}\"",
            FILES_FROM_PROJECT,
            encode_segment(&f.filename),
            f.sha256
        );
        if let Some(rp) = &f.requires_python {
            let _ = write!(out, " data-requires-python=\"{}\"", escape_html(rp));
        }
        if let Some(m) = &f.core_metadata {
            // PEP 714 name plus the legacy PEP 658 name for pip 22.3-23.1.
            let _ = write!(
                out,
                " data-core-metadata=\"sha256={m}\" data-dist-info-metadata=\"sha256={m}\""
            );
        }
        if let Some(reason) = &f.yanked {
            let _ = write!(out, " data-yanked=\"{}\"", escape_html(reason));
        }
        let _ = writeln!(out, ">{}</a><br/>", escape_html(&f.filename));
    }
    out.push_str(TAIL);
    out
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "api-version")]
    api_version: &'static str,
}

#[derive(Serialize)]
struct RootJson<'a> {
    meta: Meta,
    projects: Vec<RootProject<'a>>,
}

#[derive(Serialize)]
struct RootProject<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ProjectJson<'a> {
    meta: Meta,
    name: &'a str,
    versions: BTreeSet<&'a str>,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
struct Hashes<'a> {
    sha256: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Yanked<'a> {
    Flag(bool),
    Reason(&'a str),
}

#[derive(Serialize)]
struct FileJson<'a> {
    filename: &'a str,
    url: String,
    hashes: Hashes<'a>,
    #[serde(rename = "requires-python", skip_serializing_if = "Option::is_none")]
    requires_python: Option<&'a str>,
    #[serde(rename = "core-metadata", skip_serializing_if = "Option::is_none")]
    core_metadata: Option<Hashes<'a>>,
    size: u64,
    #[serde(rename = "upload-time", skip_serializing_if = "Option::is_none")]
    upload_time: Option<&'a str>,
    yanked: Yanked<'a>,
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string(value).expect("index pages serialize");
    s.push('\n');
    s
}

pub fn root_json(projects: &[Project]) -> String {
    to_json(&RootJson {
        meta: Meta {
            api_version: API_VERSION,
        },
        projects: projects
            .iter()
            .map(|p| RootProject { name: &p.name })
            .collect(),
    })
}

pub fn project_json(project: &Project) -> String {
    let files = project.files.iter().map(file_json).collect();
    to_json(&ProjectJson {
        meta: Meta {
            api_version: API_VERSION,
        },
        name: &project.name,
        versions: project.files.iter().map(|f| f.version.as_str()).collect(),
        files,
    })
}

fn file_json(f: &IndexFile) -> FileJson<'_> {
    FileJson {
        filename: &f.filename,
        url: format!("{FILES_FROM_PROJECT}{}", encode_segment(&f.filename)),
        hashes: Hashes { sha256: &f.sha256 },
        requires_python: f.requires_python.as_deref(),
        core_metadata: f.core_metadata.as_deref().map(|sha256| Hashes { sha256 }),
        size: f.size,
        upload_time: f.upload_time.as_deref(),
        yanked: match f.yanked.as_deref() {
            None => Yanked::Flag(false),
            Some("") => Yanked::Flag(true),
            Some(reason) => Yanked::Reason(reason),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> IndexFile {
        IndexFile {
            project: "demo".into(),
            version: "1.0".into(),
            filename: name.into(),
            sha256: "ab".repeat(32),
            size: 42,
            upload_time: None,
            requires_python: None,
            yanked: None,
            core_metadata: None,
        }
    }

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            escape_html(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
        assert_eq!(
            encode_segment("a+b!c d-1.0_x.whl"),
            "a%2Bb%21c%20d-1.0_x.whl"
        );
    }

    #[test]
    fn project_html_carries_every_attribute_escaped() {
        let mut f = file("demo-1.0+local-py3-none-any.whl");
        f.requires_python = Some(">=3.9, !=3.9.0".into());
        f.core_metadata = Some("cd".repeat(32));
        f.yanked = Some("broken <build>".into());
        let html = project_html(&Project {
            name: "demo".into(),
            files: vec![f],
        });
        let want = format!(
            "<a href=\"../../files/demo-1.0%2Blocal-py3-none-any.whl#sha256={}\" \
             data-requires-python=\"&gt;=3.9, !=3.9.0\" data-core-metadata=\"sha256={m}\" \
             data-dist-info-metadata=\"sha256={m}\" data-yanked=\"broken &lt;build&gt;\">\
             demo-1.0+local-py3-none-any.whl</a><br/>",
            "ab".repeat(32),
            m = "cd".repeat(32)
        );
        assert!(html.contains(&want), "{html}");
        assert!(html.contains("<meta name=\"pypi:repository-version\" content=\"1.1\">"));
    }

    #[test]
    fn project_json_follows_pep_691_and_700() {
        let mut a = file("demo-1.0-py3-none-any.whl");
        a.upload_time = Some("2024-01-02T03:04:05.000000Z".into());
        a.yanked = Some(String::new());
        let mut b = file("demo-2.0.tar.gz");
        b.version = "2.0".into();
        b.requires_python = Some(">=3.11".into());
        b.yanked = Some("bad".into());
        let json: serde_json::Value = serde_json::from_str(&project_json(&Project {
            name: "demo".into(),
            files: vec![a, b],
        }))
        .unwrap();
        assert_eq!(json["meta"]["api-version"], "1.1");
        assert_eq!(json["versions"], serde_json::json!(["1.0", "2.0"]));
        let f0 = &json["files"][0];
        assert_eq!(f0["url"], "../../files/demo-1.0-py3-none-any.whl");
        assert_eq!(f0["size"], 42);
        assert_eq!(f0["yanked"], true);
        assert_eq!(f0["upload-time"], "2024-01-02T03:04:05.000000Z");
        assert!(f0.get("requires-python").is_none());
        assert!(f0.get("core-metadata").is_none());
        let f1 = &json["files"][1];
        assert_eq!(f1["yanked"], "bad");
        assert_eq!(f1["requires-python"], ">=3.11");
        assert!(
            f1.get("upload-time").is_none(),
            "never an empty upload-time"
        );
    }
}
