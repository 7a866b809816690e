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

/// Each function of the template as (logical id, FUNCTION build argument, build target).
fn function_images() -> Vec<(String, String, String)> {
    let template = docusnap_infra::Template::from_file(&repo_root().join("template.yaml")).unwrap();
    template
        .resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .map(|(id, _)| {
            let metadata = &template.resource(&id).unwrap()["Metadata"];
            assert_eq!(metadata["Dockerfile"].as_str(), Some(DOCKERFILE), "{id} builds from the one Dockerfile");
            assert_eq!(metadata["DockerContext"].as_str(), Some("."), "{id}: the build context is the repository root");
            let function = metadata["DockerBuildArgs"]["FUNCTION"].as_str().unwrap_or_else(|| panic!("{id}: no FUNCTION")).to_owned();
            let target = metadata["DockerBuildTarget"].as_str().unwrap_or_else(|| panic!("{id}: no target")).to_owned();
            (id, function, target)
        })
        .collect()
}

const DOCKERFILE: &str = "functions/Dockerfile";

#[test]
fn one_dockerfile_builds_each_function_as_its_own_bootstrap() {
    let images = function_images();
    let functions: BTreeSet<&str> = images.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(functions, BTreeSet::from(["callback", "extract", "ocr", "upload"]));
    for (id, function, target) in &images {
        let manifest = format!("functions/{function}/Cargo.toml");
        assert!(binaries(&manifest).contains(function), "{manifest} has no binary {function}");
        let expected = if function == "ocr" { "ocr" } else { "function" };
        assert_eq!(target, expected, "{id}: only the OCR image carries the runtime and models");
    }
    let text = read(DOCKERFILE);
    assert!(text.contains("cargo build --release --locked --manifest-path functions/${FUNCTION}/Cargo.toml --bin ${FUNCTION}"));
    let copied = copies(DOCKERFILE);
    assert!(
        copied.contains(&("build".into(), "/src/target/release/${FUNCTION}".into(), "/var/runtime/bootstrap".into())),
        "{copied:?}"
    );
    assert!(text.contains("FROM public.ecr.aws/lambda/provided:al2023 AS function"), "runs on the custom-runtime base");
    assert!(text.contains("FROM function AS ocr"), "the OCR target is the function image plus /opt");
}

#[test]
fn release_builds_of_the_functions_carry_no_test_helpers() {
    // What the Dockerfile builds: one function's package alone. Its features are resolved
    // without the tests crate, so docusnap-core's and docusnap-ocr's `testing` stay off.
    let tree = |manifest: &str| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .args(["tree", "--locked", "--offline", "-e", "normal,features", "--prefix", "none", "--manifest-path"])
            .arg(repo_root().join(manifest))
            .output()
            .expect("running cargo tree");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The tests crate does switch the helpers on: the check can see them.
    assert!(tree("tests/Cargo.toml").contains("docusnap-core feature \"testing\""));
    for function in ["upload", "ocr", "extract"] {
        let tree = tree(&format!("functions/{function}/Cargo.toml"));
        assert!(tree.contains("docusnap-core"), "{function}: {tree:.400}");
        assert!(!tree.contains("feature \"testing\""), "{function}'s release build has test helpers:\n{tree}");
    }
}

#[test]
fn the_ocr_image_has_the_runtime_and_models_where_the_engine_looks() {
    let copied = copies(DOCKERFILE);
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
    // PDFium too, where the PDF input stage binds it.
    assert!(destinations.contains(&format!("lib/{}", docusnap_ocr::runtime::PDFIUM_LIBRARY).as_str()));
    for set in docusnap_ocr::ModelSet::ALL {
        for file in set.files() {
            assert!(destinations.contains(&format!("models/{}/{file}", set.name()).as_str()), "{} {file}", set.name());
        }
    }
    // The OCR image prepares its models at build time (its /opt is read-only on Lambda),
    // after they are copied in, with the function's own binary.
    let dockerfile = read(DOCKERFILE);
    let ocr_stage = &dockerfile[dockerfile.find("AS ocr").expect("an ocr target")..];
    let prepare = ocr_stage.find(r#"RUN ["/var/runtime/bootstrap", "--prepare-models"]"#).expect("the ocr target prepares its models");
    assert!(ocr_stage.find("COPY --from=layer /opt/models /opt/models").is_some_and(|copy| copy < prepare));
    let main = read("functions/ocr/src/main.rs");
    assert!(main.contains(r#"Some("--prepare-models")"#) && main.contains("prepare_models"), "the bootstrap answers --prepare-models");
    // What the tests run on is that same layout: models/opt mirrors /opt.
    assert!(repo_root().join("models/opt/lib").join(docusnap_ocr::runtime::ORT_LIBRARY).is_file(), "run models/fetch");
    assert!(repo_root().join("models/opt/lib").join(docusnap_ocr::runtime::PDFIUM_LIBRARY).is_file(), "run models/fetch");
}

#[test]
fn the_build_context_leaves_out_local_state() {
    let ignored = read(".dockerignore");
    for path in ["target", ".venv", ".local", "models/opt", "models/cache"] {
        assert!(ignored.lines().any(|l| l.trim() == path), "{path} should be in .dockerignore");
    }
}
