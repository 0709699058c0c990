//! Keeps the committed generated code in `src/gen/` in step with the `.proto`
//! files in `proto/`.
//!
//! The crate itself never runs a code generator (no `build.rs`, no `protoc`):
//! this test compiles the `.proto` files with `protox` (pure Rust), generates
//! the prost messages and tonic clients/servers with `tonic-prost-build` into a
//! temporary directory, and compares the result byte for byte with the
//! committed files.
//!
//! After editing a `.proto` file, regenerate the committed code with:
//!
//! ```text
//! ROOTMARK_REGEN_PROTO=1 cargo test -p rootmark-proto --test codegen
//! ```
//!
//! The generated code is formatted by `prettyplease` inside prost-build and
//! tonic-prost-build, so it depends only on the locked versions of those crates
//! (never on the installed `rustfmt`). `cargo fmt` does not touch it: it is
//! pulled in with `include!`, which rustfmt does not follow, and
//! `src/gen/rustfmt.toml` disables formatting for a direct `rustfmt` run.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::fs;
use std::path::{Path, PathBuf};

/// Environment variable that switches the test from "check" to "write".
const REGEN_VAR: &str = "ROOTMARK_REGEN_PROTO";

/// The `.proto` files to compile, relative to `proto/`.
const PROTO_FILES: &[&str] = &[
    "workload.proto",
    "rootmark/node/v1/node.proto",
    "rootmark/node/v1/issuance.proto",
];

/// Every file the generator writes, and the committed file under `src/gen/`
/// it becomes. prost-build names a file after its protobuf package; the
/// Workload API has none, hence `_.rs`.
const OUTPUTS: &[(&str, &str)] = &[
    ("_.rs", "workload.rs"),
    ("rootmark.node.v1.rs", "rootmark.node.v1.rs"),
    ("workload_descriptor.bin", "workload_descriptor.bin"),
];

/// The encoded `FileDescriptorSet` of the Workload API (with its imports),
/// which the attestor serves through gRPC server reflection.
const WORKLOAD_DESCRIPTOR: &str = "workload_descriptor.bin";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Generates the Rust code for [`PROTO_FILES`] into `out_dir`.
fn generate(out_dir: &Path) {
    let proto_dir = crate_dir().join("proto");
    // `compile` includes imports (google/protobuf/struct.proto, shipped with
    // protox) and source info, which carries the comments into the Rust docs.
    let fds = protox::compile(PROTO_FILES, [&proto_dir])
        .unwrap_or_else(|e| panic!("compiling the .proto files failed: {e:?}"));

    // prost-build maps the well-known types (`.google.protobuf.*`, here
    // `Struct`) to `::prost_types` by default, and rejects an explicit
    // `extern_path` for them as a duplicate; so none is set here. The check
    // on `::prost_types::Struct` in `generated_code_matches_proto_files`
    // guards that default.
    let config = tonic_prost_build::Config::new();

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .out_dir(out_dir)
        .compile_fds_with_config(fds, config)
        .unwrap_or_else(|e| panic!("generating Rust code failed: {e}"));

    let workload = protox::compile(["workload.proto"], [&proto_dir])
        .unwrap_or_else(|e| panic!("compiling workload.proto failed: {e:?}"));
    fs::write(
        out_dir.join(WORKLOAD_DESCRIPTOR),
        prost::Message::encode_to_vec(&workload),
    )
    .expect("write the workload descriptor set");
}

fn read_generated(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .expect("read generated dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = fs::read(entry.path()).expect("read generated file");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn generated_code_matches_proto_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    generate(tmp.path());

    let generated = read_generated(tmp.path());
    let mut names: Vec<&str> = generated.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = OUTPUTS.iter().map(|(g, _)| *g).collect();
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "the generator wrote a different set of files than tests/codegen.rs expects; \
         update OUTPUTS (and src/lib.rs) for the new .proto layout"
    );

    let workload = &generated
        .iter()
        .find(|(n, _)| n == "_.rs")
        .expect("checked above")
        .1;
    assert!(
        String::from_utf8_lossy(workload).contains("::prost_types::Struct"),
        "google.protobuf.Struct must map to ::prost_types::Struct"
    );

    let gen_dir = crate_dir().join("src").join("gen");
    let regen = std::env::var(REGEN_VAR).is_ok_and(|v| v == "1");
    let mut drifted = Vec::new();
    for (gen_name, committed_name) in OUTPUTS {
        let fresh = &generated
            .iter()
            .find(|(n, _)| n == gen_name)
            .expect("checked above")
            .1;
        let committed_path = gen_dir.join(committed_name);
        let committed = fs::read(&committed_path).ok();
        if committed.as_deref() == Some(fresh.as_slice()) {
            continue;
        }
        if regen {
            fs::create_dir_all(&gen_dir).expect("create src/gen");
            fs::write(&committed_path, fresh)
                .unwrap_or_else(|e| panic!("writing {}: {e}", committed_path.display()));
            eprintln!("regenerated {}", committed_path.display());
        } else {
            drifted.push(format!("proto/src/gen/{committed_name}"));
        }
    }

    // Nothing else may live in src/gen (besides the rustfmt.toml that keeps
    // rustfmt off these files): a stale file there would be dead code at best
    // and a silently outdated module at worst.
    let mut committed_names: Vec<&str> = OUTPUTS.iter().map(|(_, c)| *c).collect();
    committed_names.push("rustfmt.toml");
    let strays: Vec<String> = read_generated(&gen_dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !committed_names.contains(&n.as_str()))
        .collect();
    assert!(
        strays.is_empty(),
        "unexpected files in proto/src/gen/ (not produced by the generator): {strays:?}"
    );

    assert!(
        drifted.is_empty(),
        "generated code is out of date: [{}] no longer match(es) what the .proto \
         files under proto/proto/ generate. Regenerate with\n\n    \
         {REGEN_VAR}=1 cargo test -p rootmark-proto --test codegen\n\n\
         and commit the result. Never edit the generated files by hand.",
        drifted.join(", ")
    );
}

#[test]
fn generation_is_deterministic() {
    let a = tempfile::tempdir().expect("temp dir");
    let b = tempfile::tempdir().expect("temp dir");
    generate(a.path());
    generate(b.path());
    assert!(
        read_generated(a.path()) == read_generated(b.path()),
        "two generations from the same .proto files differ"
    );
}
