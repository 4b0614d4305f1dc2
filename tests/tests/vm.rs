//! VM tier: Debian's stock kernels, bullseye's 5.10 (`linux-image-amd64` of Debian 11, a kernel
//! before 5.18, which keeps no address protocol) and bookworm's 6.1 (`linux-image-amd64`) and
//! 6.12 (`linux-image-6.12-amd64`), each booted in a throwaway qemu VM that runs the static
//! release sidecar (`make docker-binaries`) through the named cases of `scripts/vm/guest/cases`,
//! against that kernel's real dummy, veth, nf_tables and legacy xtables. The runner,
//! `scripts/vm/run.py`, fetches the kernels and tools with `apt-get download` into
//! `target/vm-cache`, builds the initramfs, boots qemu and prints a table of the cases per
//! kernel; this test fails when any case fails or goes missing on any kernel (docs/vm.md).
//!
//! One test boots the three kernels side by side: each guest is one emulated CPU, and on two
//! cores three at once end sooner than two and then the third (libtest runs two tests at once).

use std::path::Path;
use std::process::Command;

use blackbox_tests::skip;

/// The runner's exit status when the tier cannot run on this machine (no qemu, no package lists,
/// no static sidecar): a loud skip, a failure with `REQUIRE_PRIVILEGED=1`.
const CANNOT_RUN: i32 = 2;

#[test]
fn every_debian_kernel_passes_every_named_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate");
    let output = Command::new("python3")
        .arg(root.join("scripts/vm/run.py"))
        .arg("--quiet")
        .current_dir(root)
        .output()
        .expect("python3 runs scripts/vm/run.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => println!("{stdout}"),
        Some(CANNOT_RUN) => skip("every_debian_kernel_passes_every_named_case", stderr.trim()),
        status => panic!("the VM tier failed (exit {status:?}):\n{stdout}\n{stderr}"),
    }
}
