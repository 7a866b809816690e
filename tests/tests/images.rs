//! The images' recipe, read: template.yaml's image metadata is what scripts/images builds,
//! each from the one functions/Dockerfile, which copies what scripts/images staged and
//! never compiles; the OCR image gets ONNX Runtime, PDFium and the models at the /opt paths
//! the engine looks in first. The images themselves are built and run by scripts/test
//! (scripts/images, tests/images/, scripts/dev --images).

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
        .filter_map(|block| {
            block.lines().find_map(|l| l.trim().strip_prefix("name = ").map(|n| n.trim_matches('"').to_owned()))
        })
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
            let function = metadata["DockerBuildArgs"]["FUNCTION"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no FUNCTION"))
                .to_owned();
            let target = metadata["DockerBuildTarget"].as_str().unwrap_or_else(|| panic!("{id}: no target")).to_owned();
            (id, function, target)
        })
        .collect()
}

const DOCKERFILE: &str = "functions/Dockerfile";

/// scripts/images' table of (function, Dockerfile target).
fn scripts_images_table() -> Vec<(String, String)> {
    let script = read("scripts/images");
    let table = &script[script.find("IMAGES=(").expect("scripts/images has its IMAGES table")..];
    let table = &table[..table.find("\n)").expect("the table ends")];
    table
        .lines()
        .skip(1)
        .map(|line| {
            let mut words = line.trim().trim_matches('"').split_whitespace();
            (words.next().unwrap().to_owned(), words.next().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn the_template_builds_each_function_image_as_scripts_images_does() {
    let images = function_images();
    let functions: BTreeSet<&str> = images.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(functions, BTreeSet::from(["callback", "extract", "ocr", "upload"]));
    let table = scripts_images_table();
    assert_eq!(table.len(), images.len(), "{table:?}");
    for (id, function, target) in &images {
        let manifest = format!("functions/{function}/Cargo.toml");
        assert!(binaries(&manifest).contains(function), "{manifest} has no binary {function}");
        assert!(
            table.contains(&(function.clone(), target.clone())),
            "{id}: ({function}, {target}) is not in scripts/images: {table:?}"
        );
        let expected = if function == "ocr" { "ocr" } else { "function" };
        assert_eq!(target, expected, "{id}: only the OCR image carries the runtime and models");
    }
    let text = read(DOCKERFILE);
    // What `sam build` uses when the template passes no BASE: Lambda's custom-runtime base.
    assert!(text.contains("ARG BASE=public.ecr.aws/lambda/provided:al2023"));
    assert!(!text.contains("cargo build"), "the images copy scripts/images' binaries, they never compile");
    assert!(text.contains("COPY --from=staged /pick/bootstrap /var/runtime/bootstrap"));
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
    let tree_of = |packages: &[&str]| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        command
            .args(["tree", "--locked", "--offline", "-e", "normal,features", "--prefix", "none"])
            .current_dir(repo_root());
        for package in packages {
            command.args(["-p", package]);
        }
        let output = command.output().expect("running cargo tree");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // The tests crate does switch the helpers on: the check can see them.
    assert!(tree("tests/Cargo.toml").contains("docusnap-core feature \"testing\""));
    // scripts/images builds the four function packages together, in one invocation.
    let tree = tree_of(&["docusnap-upload", "docusnap-ocr-fn", "docusnap-extract-fn", "docusnap-callback-fn"]);
    assert!(
        tree.contains("docusnap-core") && tree.contains("docusnap-ocr ") && tree.contains("docusnap-extract "),
        "{tree:.400}"
    );
    assert!(!tree.contains("feature \"testing\""), "the functions' release build has test helpers:\n{tree}");
}

#[test]
fn the_ocr_image_has_the_runtime_and_models_where_the_engine_looks() {
    let copied = copies(DOCKERFILE);
    assert!(copied.contains(&("staged".into(), "/pick/opt".into(), "/opt".into())), "{copied:?}");
    // scripts/images stages what models/fetch laid out for the images' machine.
    let script = read("scripts/images");
    assert!(script.contains(r#"models/fetch --arch "$machine" "$opt""#));
    // Every file the manifest lays out lands under /opt/lib or /opt/models; the native
    // libraries once for each machine the images are built for.
    let manifest = read("models/manifest.tsv");
    let rows: Vec<Vec<&str>> =
        manifest.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(|l| l.split('\t').collect()).collect();
    assert!(rows.iter().all(|row| row.len() == 5), "destination, SHA-256, wheel, member, machine");
    let destinations: Vec<&str> = rows.iter().map(|row| row[0]).collect();
    assert!(destinations.iter().all(|d| d.starts_with("lib/") || d.starts_with("models/")), "{destinations:?}");
    for machine in ["x86_64", "aarch64"] {
        // ONNX Runtime, and PDFium where the PDF input stage binds it.
        for library in [docusnap_ocr::runtime::ORT_LIBRARY, docusnap_ocr::runtime::PDFIUM_LIBRARY] {
            let destination = format!("lib/{library}");
            assert!(rows.iter().any(|row| row[0] == destination && row[4] == machine), "{destination} for {machine}");
        }
    }
    for set in docusnap_ocr::ModelSet::ALL {
        for file in set.files() {
            assert!(destinations.contains(&format!("models/{}/{file}", set.name()).as_str()), "{} {file}", set.name());
        }
    }
    // The OCR image prepares its models at build time (its /opt is read-only on Lambda),
    // after they are copied in, with the function's own binary.
    let dockerfile = read(DOCKERFILE);
    let ocr_stage = &dockerfile[dockerfile.find("AS ocr").expect("an ocr target")..];
    let prepare = ocr_stage
        .find(r#"RUN ["/var/runtime/bootstrap", "--prepare-models"]"#)
        .expect("the ocr target prepares its models");
    assert!(ocr_stage.find("COPY --from=staged /pick/opt /opt").is_some_and(|copy| copy < prepare));
    let main = read("functions/ocr/src/main.rs");
    assert!(
        main.contains(r#"Some("--prepare-models")"#) && main.contains("prepare_models"),
        "the bootstrap answers --prepare-models"
    );
    // What the tests run on is that same layout: models/opt mirrors /opt.
    assert!(repo_root().join("models/opt/lib").join(docusnap_ocr::runtime::ORT_LIBRARY).is_file(), "run models/fetch");
    assert!(
        repo_root().join("models/opt/lib").join(docusnap_ocr::runtime::PDFIUM_LIBRARY).is_file(),
        "run models/fetch"
    );
}

#[test]
fn the_build_context_is_only_what_scripts_images_staged() {
    let ignored = read(".dockerignore");
    let rules: Vec<&str> = ignored.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(rules.first(), Some(&"*"), "everything is left out first");
    let allowed: Vec<&&str> = rules.iter().filter(|r| r.starts_with('!')).collect();
    assert_eq!(allowed, [&"!target/images"], "then only the staged folder is let in");
    assert!(read(DOCKERFILE).contains("COPY target/images /staged"));
}
