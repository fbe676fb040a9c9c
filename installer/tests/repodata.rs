//! Repodata against the real tools: createrepo_c as the oracle for primary/filelists/other, and
//! Debian's dnf installing signed packages from our metadata.

#[path = "repodata/dnf.rs"]
mod dnf;
#[path = "repodata/oracle.rs"]
mod oracle;
#[path = "repodata/xmltree.rs"]
mod xmltree;
