//! The checked-in CRD manifests match the Rust types.

#[test]
fn manifests_match_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let mut stale = Vec::new();
    for (name, body) in ferrolb_crds::manifests().unwrap() {
        let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        if on_disk != body {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD manifests {stale:?}: run `cargo run -p ferrolb-controller --bin ferrolb-crdgen`"
    );
}

#[test]
fn manifests_are_structural_and_namespaced() {
    for (name, body) in ferrolb_crds::manifests().unwrap() {
        if name == "kustomization.yaml" {
            continue;
        }
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_saphyr::from_str(&body).unwrap();
        assert_eq!(crd.spec.group, "ferrolb.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1beta1");
        if !name.starts_with("bfdprofiles") {
            assert!(
                body.contains("x-kubernetes-validations"),
                "{name} carries no CEL rules"
            );
        }
    }
}
