//! A user's application from outside the built-ins (examples/mr-wordlen),
//! run loaded from its shared library by `mr` processes and linked into a
//! program; both must match the sequential reference.

mod common;

use common::{assert_same_output, sorted_lines, Lab};
use driver_threads::mr::local::run_local;
use mr_exec::options::{CoordinatorOptions, WorkerOptions};
use mr_exec::task::TaskOptions;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The example's cdylib, built by cargo beside this test's executable.
fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let name = format!(
        "{}mr_wordlen{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [deps.parent().unwrap(), deps] {
        let p = dir.join(&name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} not found near {}; build it with `cargo build -p mr-wordlen`",
        deps.display()
    );
}

#[test]
fn loaded_plugin_matches_sequential() {
    let lib = plugin_path();
    let mut lab = Lab::new("plugin");
    let seq_dir = lab.root.join("seq-lib");
    std::fs::create_dir_all(&seq_dir).unwrap();
    let st = Command::new(common::mr_exe())
        .current_dir(&seq_dir)
        .arg("sequential")
        .arg("--lib")
        .arg(&lib)
        .args(&lab.inputs)
        .status()
        .unwrap();
    assert!(st.success());
    let want = sorted_lines(&seq_dir);
    assert!(want.iter().any(|l| l.starts_with("len-03 ")), "{want:?}");

    let (coord, addr) = lab.start_coordinator("threads", &[]);
    let mut ws = Vec::new();
    for runtime in ["tokio", "threads"] {
        let log = std::fs::File::create(lab.root.join(format!("w-{runtime}.log"))).unwrap();
        let child = Command::new(common::mr_exe())
            .current_dir(&lab.work)
            .arg("worker")
            .arg("--lib")
            .arg(&lib)
            .args(["--coordinator", &addr, "--runtime", runtime])
            .stderr(log)
            .spawn()
            .unwrap();
        ws.push(child);
    }
    assert!(lab.wait(coord, Duration::from_secs(45)).success());
    for mut w in ws {
        assert!(common::wait_deadline(&mut w, Duration::from_secs(45))
            .unwrap()
            .success());
    }
    assert_same_output(&lab.outputs(), &want, "loaded plugin");

    // Linked: the same application compiled into this test program, run
    // by the library API (coordinator and workers as threads).
    let out_dir = lab.root.join("linked");
    std::fs::create_dir_all(&out_dir).unwrap();
    let coord = CoordinatorOptions {
        listen: "127.0.0.1:0".into(),
        quiet: true,
        grace: Duration::from_millis(100),
        ..CoordinatorOptions::new(
            lab.inputs
                .iter()
                .map(|i| lab.work.join(i).to_string_lossy().into_owned())
                .collect(),
        )
    };
    let worker = WorkerOptions {
        task: TaskOptions {
            work_dir: out_dir.clone(),
            ..TaskOptions::default()
        },
        ..WorkerOptions::default()
    };
    run_local(Arc::new(mr_wordlen::WordLengths), coord, worker, 2).unwrap();
    assert_same_output(&sorted_lines(&out_dir), &want, "linked example");
}

#[test]
fn library_errors_are_clear() {
    let lab = Lab::new("plugin-errors");
    let run = |lib: &str| {
        let out = Command::new(common::mr_exe())
            .current_dir(&lab.work)
            .args(["sequential", "--lib", lib])
            .args(&lab.inputs)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = run("/nonexistent/libnothing.so");
    assert!(missing.contains("does not exist"), "{missing}");
    // A real shared library that is not an mr application.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib64/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("no libm.so.6 found to use as a non-plugin library");
    let nosym = run(libm);
    assert!(
        nosym.contains("does not export `MR_PLUGIN_ABI_VERSION`"),
        "{nosym}"
    );
    // A file that is not a library at all.
    let junk = lab.root.join("junk.so");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let bad = run(junk.to_str().unwrap());
    assert!(bad.contains("cannot load application library"), "{bad}");
}
