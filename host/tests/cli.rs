//! The `spore` command line, run as a user would: exit codes and messages for good and bad
//! input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spore_host::demo::PING_PONG_WASM;

mod common;
use common::{free_port, output_within};

/// A scratch directory for this test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli").join(test);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `spore` with `args`, its module cache inside `dir`; a run that hangs is killed and
/// fails the test.
fn spore(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spore"));
    cmd.args(args).env("XDG_CACHE_HOME", dir.join("cache"));
    output_within(cmd, std::time::Duration::from_secs(60))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write test file");
    path.display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_prints_the_tutorial_and_exits_zero() {
    let dir = scratch("run");
    let module = write(&dir, "ping_pong.wasm", PING_PONG_WASM);
    let out = spore(&dir, &["run", &module]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = "Pong received ping\nPing received pong\n".repeat(3) + "Ping finished\nPong finished\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

#[test]
fn the_baseline_compiler_runs_the_same_program() {
    let dir = scratch("winch");
    let module = write(&dir, "ping_pong.wasm", PING_PONG_WASM);
    let out = spore(&dir, &["run", "--compiler", "winch", "--no-cache", &module]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = "Pong received ping\nPing received pong\n".repeat(3) + "Ping finished\nPong finished\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    let refused = spore(&dir, &["run", "--compiler", "fast", &module]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("cranelift"), "{}", stderr(&refused));
}

#[test]
fn demo_runs_on_embedded_defaults() {
    let dir = scratch("demo");
    let out = spore(&dir, &["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Ping finished\nPong finished\n"));
}

#[test]
fn a_tick_out_of_range_or_not_a_number_is_refused_before_anything_starts() {
    let dir = scratch("tick");
    // `inf` and `1e300` made `spore node` panic (exit 101) converting them to a duration.
    for (tick, says) in [
        ("inf", "inf seconds is outside 0.1 to 86400"),
        ("1e300", "1e300 seconds is outside 0.1 to 86400"),
        ("0", "0 seconds is outside 0.1 to 86400"),
        ("abc", "`abc` is not a number of seconds"),
    ] {
        let out = spore(&dir, &["node", "--name", "tick@localhost", "--tick", tick]);
        assert_eq!(out.status.code(), Some(2), "--tick {tick}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "--tick {tick}: {}", stderr(&out));
    }
}

#[test]
fn a_memory_limit_of_zero_or_too_large_to_count_in_bytes_is_refused() {
    let dir = scratch("memory-limit");
    // 2^44 MiB used to wrap around to a limit of 0 bytes when made bytes.
    for mib in ["0", "17592186044416"] {
        let out = spore(&dir, &["run", "--memory-limit", mib, "unused.wasm"]);
        assert_eq!(out.status.code(), Some(2), "--memory-limit {mib}: {}", stderr(&out));
        assert!(stderr(&out).contains(&format!("{mib} is not in 1..=1048576")), "{}", stderr(&out));
    }
}

#[test]
fn a_directory_grant_must_name_a_directory() {
    let dir = scratch("dir-grant");
    let missing = dir.join("missing").display().to_string();
    let out = spore(&dir, &["run", "--dir", &missing, "unused.wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("cannot open {missing}: No such file")), "{}", stderr(&out));
    let file = write(&dir, "file.txt", b"not a directory");
    let out = spore(&dir, &["run", "--dir-rw", &format!("{file}:/data"), "unused.wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("{file} is not a directory")), "{}", stderr(&out));
}

#[test]
fn a_port_mapper_on_port_0_is_refused() {
    let dir = scratch("mapper-port");
    // It used to start a mapper on a port of the system's choosing, where no node looks.
    let out = spore(&dir, &["node", "--name", "lost@localhost", "--mapper-port", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("0 is not in 1..=65535"), "{}", stderr(&out));
}

#[test]
fn a_node_name_no_node_can_have_is_refused_by_every_command() {
    let dir = scratch("node-names");
    // `ps` and `nodes` used to try "nohost" as a host name, and `spawn` to report the node
    // unreachable, each in its own words.
    let commands: [&[&str]; 6] = [
        &["spawn", "unused.wasm", "--on"],
        &["ps", "--node"],
        &["nodes", "--node"],
        &["node", "--name"],
        &["run", "unused.wasm", "--name"],
        &["node", "--name", "a@localhost", "--peer"],
    ];
    for command in commands {
        for bad in ["nohost", "a b@localhost", "@localhost", "a@"] {
            let arg = if command.contains(&"--peer") { format!("{bad}=127.0.0.1:1") } else { bad.to_owned() };
            let out = spore(&dir, &[command, &[arg.as_str()]].concat());
            assert_eq!(out.status.code(), Some(2), "{command:?} {bad}: {}", stderr(&out));
            let expected = format!("`{bad}` is not a node name: expected name@host");
            assert!(stderr(&out).contains(&expected), "{command:?} {bad}: {}", stderr(&out));
        }
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = scratch("missing");
    let out = spore(&dir, &["run", "/nonexistent/nothing.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent/nothing.wasm"), "{}", stderr(&out));
}

#[test]
fn a_module_file_over_the_size_limit_is_refused_unread() {
    let dir = scratch("huge");
    // 3 GiB, sparse: `run` used to read all of it (3 GB resident, 17 s) before refusing it.
    let huge = dir.join("huge.wasm");
    std::fs::File::create(&huge).unwrap().set_len(3 << 30).unwrap();
    let huge = huge.display().to_string();
    for command in [
        &["run", huge.as_str()][..],
        &["spawn", huge.as_str(), "--on", "nowhere@localhost"],
        &["node", "--name", "huge@localhost", "--run", huge.as_str()],
    ] {
        let out = spore(&dir, command);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        let expected =
            format!("cannot load {huge}: module is 3221225472 bytes, over the node's limit of 67108864");
        assert!(stderr(&out).contains(&expected), "{command:?}: {}", stderr(&out));
    }
}

#[test]
fn a_node_told_to_run_a_missing_file_or_entry_says_so_before_it_starts() {
    let dir = scratch("node-missing");
    let missing = dir.join("missing.wasm").display().to_string();
    let mapper = free_port().to_string();
    let node = ["node", "--name", "x@localhost", "--cookie", "c", "--mapper-port", &mapper, "--run"];
    let out = spore(&dir, &[&node[..], &[&missing]].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cannot read") && err.contains("missing.wasm"), "{err}");
    assert!(!err.contains("listening"), "{err}");
    // An entry the module lacks, the same way.
    let module = write(&dir, "ping_pong.wasm", PING_PONG_WASM);
    let out = spore(&dir, &[&node[..], &[&module, "nosuch"]].concat());
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown entry `nosuch`") && !err.contains("listening"), "{err}");
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = scratch("notwasm");
    let module = write(&dir, "notes.txt", b"hello, this is text\n");
    let out = spore(&dir, &["run", &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a WebAssembly file"), "{}", stderr(&out));
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    let dir = scratch("core");
    let module = write(&dir, "core.wasm", b"\0asm\x01\0\0\0");
    let out = spore(&dir, &["run", &module]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("core WebAssembly module, not a component") && err.contains("wasm32-wasip2"),
        "{err}"
    );
}

#[test]
fn a_component_of_another_world_is_refused() {
    let dir = scratch("world");
    // The smallest valid component: it exports nothing.
    let module = write(&dir, "empty.wasm", b"\0asm\x0d\0\x01\0");
    let out = spore(&dir, &["run", &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not target the spore:process/guest world"), "{}", stderr(&out));
}

#[test]
fn a_corrupt_component_is_refused() {
    let dir = scratch("corrupt");
    let mut bytes = PING_PONG_WASM.to_vec();
    bytes.truncate(bytes.len() / 2);
    let module = write(&dir, "half.wasm", &bytes);
    let out = spore(&dir, &["run", &module]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid component"), "{}", stderr(&out));
}

#[test]
fn an_unknown_entry_lists_the_ones_there_are() {
    let dir = scratch("entry");
    let module = write(&dir, "ping_pong.wasm", PING_PONG_WASM);
    let out = spore(&dir, &["run", &module, "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown entry `nope`; the module exports: main, start_pong"), "{err}");
}

#[test]
fn bad_entry_arguments_end_the_process_with_a_reason() {
    let dir = scratch("args");
    let module = write(&dir, "ping_pong.wasm", PING_PONG_WASM);
    let out = spore(&dir, &["run", &module, "ping", "--", "three", "ping@localhost"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("exited: bad arguments for entry `ping`: `three` is not a u32"), "{err}");
}

#[test]
fn help_explains_each_subcommand() {
    let dir = scratch("help");
    let out = spore(&dir, &["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("demo"), "{text}");
    let out = spore(&dir, &["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--allow-clock") && text.contains("ENTRY"), "{text}");
}
