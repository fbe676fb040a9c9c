//! Replays every input the fuzzer found a fault with (`fuzz/regressions/<target>/*`), and each
//! target's seeds, through the same target functions the AFL binaries run: a fault once fixed
//! fails `cargo test` if it comes back. docs/RELIABILITY.md says what each input found.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by any panic, caught or not: under AFL a panic aborts even where the code catches it
/// (`parse_requirement` does, as a last resort), so a caught panic is a finding here too.
static PANICKED: AtomicBool = AtomicBool::new(false);

fn record_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default(info);
    }));
}

/// The fuzzer ran with 2 GiB of address space, so an input that made a parser allocate what
/// a header claimed (4 GB) crashed; without the same limit here, an overcommitting kernel
/// would let that allocation pass and the regression go unseen.
fn limit_memory_like_the_fuzzer() {
    let limit = libc::rlimit {
        rlim_cur: 3 << 30,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given and has no other preconditions.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
}

#[test]
fn every_kept_fuzz_input_runs_clean() {
    limit_memory_like_the_fuzzer();
    record_panics();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for (target, run) in fuzz::TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read regressions directory").path();
            let data = std::fs::read(&path).expect("read a regression input");
            run(&data);
            assert!(
                !PANICKED.load(Ordering::SeqCst),
                "{} panicked (caught or not)",
                path.display()
            );
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs under {}",
        root.display()
    );
}

#[test]
fn every_seed_runs_clean() {
    for (target, run) in fuzz::TARGETS {
        let seeds = fuzz::seeds(target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (_, data) in seeds {
            run(&data);
        }
    }
}
