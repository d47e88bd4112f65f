//! Every dependency points down: reads `src/` and fails if a module names one in its own layer
//! or above (`crate::x` anywhere: `use`, paths, `use crate::{…}` groups, tests included). The
//! layers are `src/lib.rs`'s map; a new top-level module must be placed in one here.

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom up. A module may name only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    // leaves: name nothing in the crate
    &["secret", "flight", "http", "metrics"],
    // the settings, over the leaves
    &["config"],
    &["telemetry", "store", "upstream"],
    &["account"],
    &["meta", "body"],
    &["proxy"],
    &["app"],
    &["server"],
    // tools beside the proxy: the emulator, the linking console; the demo runs both (main.rs,
    // the binary, is over everything)
    &["emulator", "console"],
    &["demo"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The crate modules a source text names, outside comments.
fn named(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in source.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c, d}`: the first segment of each item (one line).
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != "self" {
                        out.push(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Upward or sideways names: (file, its module, the module it names). The binary (`main.rs`
/// and the modules it declares) is over everything, and its `crate::` is its own.
fn violations(files: &BTreeMap<String, String>) -> Vec<String> {
    let binary: Vec<String> = files
        .get("src/main.rs")
        .map(|main| {
            main.lines()
                .filter_map(|l| l.strip_prefix("mod "))
                .map(|m| m.trim_end_matches(';').to_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut bad = Vec::new();
    for (file, source) in files {
        let module = module_of(file);
        if module == "lib" || module == "main" || binary.contains(&module) {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            bad.push(format!("{file}: module `{module}` is in no layer"));
            continue;
        };
        for name in named(source) {
            if name == module {
                continue;
            }
            match layer_of(&name) {
                Some(l) if l < own => {}
                Some(l) => bad.push(format!(
                    "{file}: `{module}` (layer {own}) names `crate::{name}` (layer {l})"
                )),
                None => bad.push(format!("{file}: names `crate::{name}`, in no layer")),
            }
        }
    }
    bad
}

/// `src/meta/feed.rs` → `meta`; `src/app.rs` → `app`.
fn module_of(file: &str) -> String {
    let rel = file.trim_start_matches("src/");
    let first = rel.split('/').next().unwrap_or(rel);
    first.trim_end_matches(".rs").to_owned()
}

fn read_src(dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_src(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel, std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn every_dependency_in_src_points_down() {
    let mut files = BTreeMap::new();
    read_src(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 40, "read {} files", files.len());
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "upward or sideways names:\n{}",
        bad.join("\n")
    );
    // Every top-level module is placed.
    let lib = &files["src/lib.rs"];
    for line in lib.lines().filter_map(|l| l.strip_prefix("pub mod ")) {
        let module = line.trim_end_matches(';');
        assert!(layer_of(module).is_some(), "`{module}` is in no layer");
    }
}

#[test]
fn the_check_catches_upward_and_sideways_names() {
    let case = |file: &str, text: &str| {
        let files = BTreeMap::from([(file.to_owned(), text.to_owned())]);
        violations(&files)
    };
    assert!(case("src/store/redis.rs", "use crate::config::StoreConfig;\n").is_empty());
    assert_eq!(
        case("src/store/redis.rs", "use crate::meta::entry::now_ms;\n").len(),
        1
    );
    assert_eq!(
        case("src/body/mod.rs", "use crate::{app::App, http::Body};\n").len(),
        1
    );
    assert_eq!(
        case("src/body/mod.rs", "    let x = crate::meta::now();\n").len(),
        1
    );
    assert_eq!(
        case("src/http/body.rs", "use crate::config::Config;\n").len(),
        1
    );
    assert_eq!(
        case("src/proxy/mod.rs", "fn f(_: &crate::server::X) {}\n").len(),
        1
    );
    assert!(
        case(
            "src/proxy/mod.rs",
            "// crate::server::access, in a comment\n"
        )
        .is_empty()
    );
    assert_eq!(case("src/newthing.rs", "\n").len(), 1, "an unplaced module");
    let with_main = |file: &str, text: &str| {
        let files = BTreeMap::from([
            ("src/main.rs".to_owned(), "mod cli;\n".to_owned()),
            (file.to_owned(), text.to_owned()),
        ]);
        violations(&files)
    };
    assert!(with_main("src/cli/args.rs", "use crate::load_config;\n").is_empty());
    assert_eq!(with_main("src/other.rs", "\n").len(), 1);
}
