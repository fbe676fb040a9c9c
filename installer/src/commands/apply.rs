//! `installer apply`: verify a bundle and install its repos, PyPI index and nginx config.

use std::path::PathBuf;

use bundle::progress::term::TermReporter;
use clap::{Args, ValueEnum};
use installer::apply::{self, ApplyOptions};
use installer::repodata::Compression;
use installer::site::FlagOverride;

use super::exit::ExitStatus;
use super::{IoArg, SiteArgs};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
  installer apply bundle.tar.zst\n  \
  installer apply bundle.tar.zst --dry-run          # print the plan and every diff, write nothing\n  \
  installer apply bundle.tar.zst --key bundle.pub   # require a valid signature\n  \
  installer apply new.tar.zst --keep-old            # keep packages the new bundle dropped\n  \
  installer apply bundle.tar.zst --site site.toml    # addresses, forwarders, ports (installer site init)\n  \
  installer apply bundle.tar.zst --root /tmp/admin --http-port 18080 --http-address 127.0.0.1\n\n\
Besides the repos and the index, apply writes the admin's service configs from the site (the\n\
reference topology without --site): named.conf and zones, chrony.conf, the landing page and node\n\
files, IP forwarding and the NAT ruleset. With --root other than / or --no-services, the system\n\
actions (SELinux labels, firewalld, systemctl enable/restart, NAT now) are printed, not run.\n\n\
Exit status: 0 ok, 1 operational failure, 2 usage error (a bad flag, a bad site setting: --http-port\n\
and --data-root are held to the rules of http.port and data_root), 3 the bundle failed verification.")]
pub struct ApplyArgs {
    /// The bundle file (`bundle.tar.zst`), or the first volume of a split bundle
    /// (`bundle.tar.zst.001`) or the directory holding its volumes.
    #[arg(env = "KOI_BUNDLE")]
    pub bundle: PathBuf,
    /// Write everything under DIR instead of `/` (tests, staging an image).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    #[command(flatten)]
    pub site: SiteArgs,
    /// Data root on the admin server (default: the site's `data_root`, /data): repos under
    /// `<DIR>/repos`, the PyPI index under `<DIR>/pypi`.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// ed25519 public key (PEM); the bundle must then carry a valid signature.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Print the plan and the diff of every file it would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write files but start, enable or reload no service.
    #[arg(long)]
    pub no_services: bool,
    /// Keep packages and wheels that the new bundle no longer carries.
    #[arg(long)]
    pub keep_old: bool,
    /// Compression of the generated repodata.
    #[arg(long, value_enum, default_value_t = CompressArg::Gzip)]
    pub compress: CompressArg,
    /// Port nginx serves the repos and the index on (default: the site's `http.port`, 80).
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Address nginx listens on (default: every address).
    #[arg(long, value_name = "ADDR")]
    pub http_address: Option<String>,
    /// Host names and addresses the nginx server answers to (repeat the flag; default: the
    /// admin's address, host name and FQDN from the site, localhost and 127.0.0.1).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// No progress and no per-step lines (the plan, each file written, each service action);
    /// backups, the result, what is left to run by hand, notes and errors still print.
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub io: IoArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompressArg {
    Gzip,
    Zstd,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    let mut flags = Vec::new();
    if let Some(dir) = &args.data_root {
        flags.push(FlagOverride::new("--data-root", "data_root", dir)?);
    }
    if let Some(port) = args.http_port {
        flags.push(FlagOverride::new("--http-port", "http.port", port)?);
    }
    let site = args.site.load_with_flags(&flags)?;
    let listen = match &args.http_address {
        Some(addr) => format!("{addr}:{}", site.http.port),
        None => site.http.port.to_string(),
    };
    let server_names = if args.server_names.is_empty() {
        vec![
            site.admin.address.to_string(),
            site.admin.hostname.clone(),
            site.fqdn(&site.admin.hostname),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ]
    } else {
        args.server_names.clone()
    };
    let real_root = args.root == std::path::Path::new("/");
    let opts = ApplyOptions {
        bundle: args.bundle,
        root: args.root,
        data_root: site.data_root.clone(),
        key: args.key,
        keep_old: args.keep_old,
        compression: match args.compress {
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
        },
        listen: vec![listen],
        server_names,
        site: Some(site.clone()),
        io: args.io.mode,
    };
    // A dry run writes nothing and so takes no lock; a real run holds it until the services
    // are switched too. A bundle that cannot even be read (a missing volume, a foreign file) is
    // refused before the lock is taken, since taking it writes the lock file in the data root.
    let _lock = if args.dry_run {
        None
    } else {
        apply::plan(&opts, false, &bundle::NoProgress)?;
        Some(super::lock(&super::data_dir(&opts.root, &site)?)?)
    };
    let reporter = TermReporter::new(args.quiet);
    let result = if args.dry_run {
        apply::plan(&opts, true, &reporter).map(|plan| {
            print!("{plan}");
            print!("{}", plan.diffs());
            println!("dry run: nothing was written");
        })
    } else {
        apply::plan(&opts, false, &reporter).and_then(|plan| {
            if !args.quiet {
                print!("{plan}");
            }
            let outcome = apply::run(&opts, &plan, &reporter)?;
            for b in &outcome.backups {
                println!("backup     {}", b.display());
            }
            if outcome.changed_anything() {
                println!("applied bundle {}", plan.manifest.bundle_id);
            } else {
                println!("no changes");
            }
            Ok(())
        })
    };
    result?;
    service_step(
        &site,
        &opts.root,
        args.dry_run || args.no_services || !real_root,
        args.quiet,
    )
}

/// Run the system actions (a real root, services wanted) or print them for the operator.
/// An action whose condition does not hold here (no systemd, no firewalld, SELinux not
/// enforcing) is skipped and says so.
fn service_step(
    site: &installer::site::SiteConfig,
    root: &std::path::Path,
    print_only: bool,
    quiet: bool,
) -> anyhow::Result<ExitStatus> {
    let actions = apply::service_actions(site, root);
    if print_only {
        println!("services: not started (--dry-run, --no-services or --root); the commands are:");
        for action in &actions {
            println!("{action}");
        }
        return Ok(ExitStatus::Success);
    }
    let mut failed = false;
    for action in &actions {
        match action.run() {
            Ok(_) if quiet => {}
            Ok(installer::actions::ActionOutcome::Ran) => println!("ran        {}", action.summary),
            Ok(installer::actions::ActionOutcome::NotApplicable) => {
                println!("skipped    {} ({})", action.summary, action.when.describe());
            }
            Err(e) => {
                eprintln!("error: {}: {e}", action.summary);
                failed = true;
            }
        }
    }
    if !installer::actions::Condition::Systemd.holds() {
        println!(
            "systemd is not running: start named, chronyd and nginx yourself, e.g.\n  \
             named -u {} -c /etc/named.conf && chronyd -f /etc/chrony.conf && nginx",
            named_user()
        );
    }
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// The account named drops to: `named` on Rocky/RHEL, `bind` on Debian.
fn named_user() -> &'static str {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let has = |user: &str| passwd.lines().any(|l| l.split(':').next() == Some(user));
    if !has("named") && has("bind") {
        "bind"
    } else {
        "named"
    }
}
