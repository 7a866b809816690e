//! Docker cannot run here, so the images are checked by reading them: each function image
//! copies the binary the build stage produces to the runtime's bootstrap, and the OCR
//! image gets ONNX Runtime and the models at the /opt paths the engine looks in first,
//! from the layer image that models/fetch lays out (the same layout the tests run on).

use std::collections::BTreeSet;

use docusnap_tests::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `[[bin]]` names of a crate's manifest.
fn binaries(manifest: &str) -> BTreeSet<String> {
    let text = read(manifest);
    text.split("[[bin]]")
        .skip(1)
        .filter_map(|block| block.lines().find_map(|l| l.trim().strip_prefix("name = ").map(|n| n.trim_matches('"').to_owned())))
        .collect()
}

fn copies(dockerfile: &str) -> Vec<(String, String, String)> {
    read(dockerfile)
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("COPY --from=")?;
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

#[test]
fn each_function_image_runs_its_own_binary_as_bootstrap() {
    for (dockerfile, manifest, binary) in [
        ("functions/upload/Dockerfile", "functions/upload/Cargo.toml", "upload"),
        ("functions/ocr/Dockerfile", "functions/ocr/Cargo.toml", "ocr"),
        ("functions/extract/Dockerfile", "functions/extract/Cargo.toml", "extract"),
    ] {
        assert!(binaries(manifest).contains(binary), "{manifest} has no binary {binary}");
        let text = read(dockerfile);
        assert!(text.contains(&format!("cargo build --release --locked --bin {binary}")), "{dockerfile} builds {binary}");
        let copied = copies(dockerfile);
        assert!(
            copied.contains(&("build".into(), format!("/src/target/release/{binary}"), "/var/runtime/bootstrap".into())),
            "{dockerfile}: {copied:?}"
        );
        assert!(text.contains("FROM public.ecr.aws/lambda/provided:al2023"), "{dockerfile} runs on the custom-runtime base");
        // The build context is the repository root (template.yaml's DockerContext).
        let template = read("template.yaml");
        assert!(template.contains(&format!("Dockerfile: {dockerfile}")), "template.yaml names {dockerfile}");
    }
}

#[test]
fn the_ocr_image_has_the_runtime_and_models_where_the_engine_looks() {
    let copied = copies("functions/ocr/Dockerfile");
    for dir in ["/opt/lib", "/opt/models"] {
        assert!(copied.contains(&("layer".into(), dir.into(), dir.into())), "{copied:?}");
    }
    let layer = read("layers/Dockerfile");
    assert!(layer.contains("RUN /src/models/fetch /opt"), "the layer is laid out by models/fetch");
    assert!(layer.contains("COPY models/manifest.tsv models/fetch /src/models/"));
    // Every file the manifest lays out lands under /opt/lib or /opt/models.
    let manifest = read("models/manifest.tsv");
    let destinations: Vec<&str> = manifest.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(|l| l.split('\t').next().unwrap()).collect();
    assert!(destinations.iter().all(|d| d.starts_with("lib/") || d.starts_with("models/")), "{destinations:?}");
    assert!(destinations.contains(&format!("lib/{}", docusnap_ocr::runtime::ORT_LIBRARY).as_str()));
    for set in docusnap_ocr::ModelSet::ALL {
        for file in set.files() {
            assert!(destinations.contains(&format!("models/{}/{file}", set.name()).as_str()), "{} {file}", set.name());
        }
    }
    // What the tests run on is that same layout: models/opt mirrors /opt.
    assert!(repo_root().join("models/opt/lib").join(docusnap_ocr::runtime::ORT_LIBRARY).is_file(), "run models/fetch");
}

#[test]
fn the_build_context_leaves_out_local_state() {
    let ignored = read(".dockerignore");
    for path in ["target", ".venv", ".local", "models/opt", "models/cache"] {
        assert!(ignored.lines().any(|l| l.trim() == path), "{path} should be in .dockerignore");
    }
}
