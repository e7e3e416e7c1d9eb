//! Builds the test guests (tests/guests/examples, and the example crates the tests run) for
//! wasm32-wasip2 and writes their paths as constants for the harness.

#[path = "../host/build_guests.rs"]
mod build_guests;

use std::fmt::Write;
use std::path::Path;

/// Scenario guests in tests/guests/examples.
const SCENARIOS: &[&str] =
    &["echo", "crash", "spin", "limits", "names", "relay", "bench", "sink", "sandbox", "hello", "calls"];
/// Guests on the SDK without std, in tests/lean-guests/examples.
const LEAN: &[&str] = &["lean_hello", "lean_probe", "lean_bench"];
/// Example crates the tests run, with the file each builds.
const EXAMPLES: &[(&str, &str)] = &[("ping-pong", "ping_pong"), ("links", "links")];

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let workspace = Path::new(&manifest_dir).parent().expect("tests/ is inside the workspace");
    let mut packages = vec!["spore-test-guests"];
    packages.extend(EXAMPLES.iter().map(|(p, _)| *p));
    // Examples of a package are built only when asked for.
    let scenarios_dir =
        build_guests::build_guests(workspace, "guest-fast", &packages, &["--examples", "--lib"]);
    // Apart: built with the std guests, feature unification would link std into these.
    let lean_dir = build_guests::build_guests(workspace, "guest", &["spore-lean-guests"], &["--examples"]);
    let mut consts = String::new();
    for name in LEAN {
        let path = lean_dir.join("examples").join(format!("{name}.wasm"));
        path_const(&mut consts, name, &format!("The `{name}` test guest (no std)."), &path);
    }
    for name in SCENARIOS {
        let path = scenarios_dir.join("examples").join(format!("{name}.wasm"));
        path_const(&mut consts, name, &format!("The `{name}` test guest."), &path);
    }
    for (_, file) in EXAMPLES {
        path_const(
            &mut consts,
            file,
            &format!("The `{file}` example."),
            &scenarios_dir.join(format!("{file}.wasm")),
        );
    }
    let out = std::env::var("OUT_DIR").expect("set by cargo");
    std::fs::write(Path::new(&out).join("guests.rs"), consts).expect("write guests.rs");
    for dir in ["tests/guests", "tests/lean-guests", "examples"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
}

/// Appends `/// {doc}` and `pub const {NAME}: &str = "{path}";` to `consts`.
fn path_const(consts: &mut String, name: &str, doc: &str, path: &Path) {
    writeln!(
        consts,
        "/// {doc}\npub const {}: &str = {:?};",
        name.to_uppercase(),
        path.display().to_string()
    )
    .unwrap();
}
