//! VM tier: Debian bookworm's stock kernels, 6.1 (`linux-image-amd64`) and 6.12
//! (`linux-image-6.12-amd64`), each booted in a throwaway qemu VM that runs the static release
//! sidecar (`make docker-binaries`) through the named cases of `scripts/vm/guest/cases`, against
//! that kernel's real dummy, veth, nf_tables and legacy xtables. The runner,
//! `scripts/vm/run.py`, fetches the kernels and tools with `apt-get download` into
//! `target/vm-cache`, builds the initramfs, boots qemu and prints a table of the cases; this test
//! fails when any case fails or goes missing on its kernel (docs/vm.md).
//!
//! The two kernels are two tests, so they boot side by side on the two cores.

use std::path::Path;
use std::process::Command;

use blackbox_tests::skip;

/// The runner's exit status when the tier cannot run on this machine (no qemu, no package lists,
/// no static sidecar): a loud skip, a failure with `REQUIRE_PRIVILEGED=1`.
const CANNOT_RUN: i32 = 2;

fn every_case_passes_on(series: &str, test: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate");
    let output = Command::new("python3")
        .arg(root.join("scripts/vm/run.py"))
        .args(["--kernel", series, "--quiet"])
        .current_dir(root)
        .output()
        .expect("python3 runs scripts/vm/run.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => println!("{stdout}"),
        Some(CANNOT_RUN) => skip(test, stderr.trim()),
        status => panic!(
            "the VM tier failed on Debian's {series} kernel (exit {status:?}):\n{stdout}\n{stderr}"
        ),
    }
}

#[test]
fn debian_6_1_kernel_passes_every_named_case() {
    every_case_passes_on("6.1", "debian_6_1_kernel_passes_every_named_case");
}

#[test]
fn debian_6_12_kernel_passes_every_named_case() {
    every_case_passes_on("6.12", "debian_6_12_kernel_passes_every_named_case");
}
