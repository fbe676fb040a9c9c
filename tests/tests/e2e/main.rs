//! The end-to-end tests, one binary: every topic module below links the bundler and installer
//! libraries once instead of once per file, and the tests share one harness. Tests run on
//! threads of one process, so nothing here may rely on process-global state (environment,
//! current directory, fixed ports or namespace names).

mod harness;

mod airgap_lab;
mod apply_crash;
mod apply_dnf;
mod apply_images;
mod apply_pypi;
mod apply_refused;
mod apply_services;
mod bundle_cli;
mod delta_bundles;
mod images_build;
mod mirror_build;
mod mirror_fetch;
mod mirror_multi;
mod mirror_stream;
mod oci_upstream;
mod pypi_cli;
mod pypi_live;
mod pypi_resolve;
mod repomd_signature;
mod rocky_release;
mod rpm_signatures;
mod rsa_signatures;
mod self_extracting;
mod services_chrony;
mod services_firewalld;
mod services_named;
mod services_nat;
mod services_networkmanager;
mod services_node;
mod services_selinux;
mod services_site;
mod services_status;
mod split_volumes;
