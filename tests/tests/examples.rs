//! Every example manifest in `examples/` parses and validates: each file loads with the
//! controller's reader, pools and cross-object references pass the shared validation, and
//! every FerroLB object passes its CRD's CEL rules as the API server would evaluate them.
//!
//! The files of one directory are one configuration (applied together), so cross-object
//! rules (overlapping pools, unknown pool or peer names) are checked per directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrolb_controller::model::{self, Inputs};
use ferrolb_crds::addresses::AddrRange;
use ferrolb_crds::validate::{check_pools, check_references};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;

/// The ranges examples may use: the documentation ranges of RFC 5737 and RFC 3849.
const DOCUMENTATION: [&str; 4] = [
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8::/32",
];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Every `*.yaml` / `*.yml` file under `examples/`, recursively, skipping dot-directories
/// (the controller's `.ferrolb/` output), grouped by directory, sorted.
fn example_files() -> BTreeMap<PathBuf, Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<PathBuf>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.entry(dir.to_path_buf()).or_default().push(path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&examples_dir(), &mut out);
    assert!(
        !out.is_empty(),
        "no YAML files under {}",
        examples_dir().display()
    );
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(examples_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// All objects of one directory.
fn load_dir(files: &[PathBuf]) -> Inputs {
    let mut inputs = Inputs::default();
    for f in files {
        inputs
            .parse(&read(f), &rel(f))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    inputs
}

/// Every document of every example file, with the file it came from.
fn raw_documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for files in example_files().values() {
        for f in files {
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(&read(f)).unwrap_or_else(|e| panic!("{}: {e}", rel(f)));
            out.extend(
                docs.into_iter()
                    .filter(|d| !d.is_null())
                    .map(|d| (rel(f), d)),
            );
        }
    }
    out
}

fn group_of(doc: &Value) -> &str {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    api.rsplit_once('/').map_or("", |(g, _)| g)
}

#[test]
fn the_examples_are_there() {
    let dir = examples_dir();
    for f in [
        "pools.yaml",
        "l2advertisement.yaml",
        "bgp.yaml",
        "services.yaml",
        "metallb-pool.yaml",
        "standalone/pools.yaml",
        "standalone/services.yaml",
        "standalone/namespaces.yaml",
    ] {
        assert!(dir.join(f).is_file(), "examples/{f} is missing");
    }
    // The README's "run it" command writes examples/standalone/.ferrolb/: keep it out of git.
    let ignore = read(&dir.join("standalone/.gitignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == ".ferrolb/"),
        "examples/standalone/.gitignore must list .ferrolb/"
    );
}

#[test]
fn every_example_file_parses() {
    for files in example_files().values() {
        for f in files {
            let mut inputs = Inputs::default();
            inputs
                .parse(&read(f), &rel(f))
                .unwrap_or_else(|e| panic!("{e}"));
            let objects = inputs.pools.len()
                + inputs.services.len()
                + inputs.namespaces.len()
                + inputs.l2_advertisements.len()
                + inputs.bgp_advertisements.len()
                + inputs.bgp_peers.len()
                + inputs.communities.len()
                + inputs.bfd_profiles.len();
            assert!(
                objects > 0,
                "{}: holds no object the controller reads",
                rel(f)
            );
        }
    }
}

#[test]
fn pools_and_references_are_valid_per_directory() {
    for (dir, files) in example_files() {
        let inputs = load_dir(&files);
        let check = check_pools(&inputs.pools);
        let problems: Vec<String> = check.problems.iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
        assert_eq!(
            check.valid.len(),
            inputs.pools.len(),
            "{}: pools with duplicate names",
            dir.display()
        );
        let problems: Vec<String> = check_references(
            &check,
            &inputs.l2_advertisements,
            &inputs.bgp_advertisements,
            &inputs.bgp_peers,
            &inputs.communities,
        )
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(problems.is_empty(), "{}: {problems:?}", dir.display());
        // BGPPeers name BFDProfiles that exist in the same directory.
        let profiles: Vec<String> = inputs.bfd_profiles.iter().map(|p| p.name_any()).collect();
        for peer in &inputs.bgp_peers {
            if let Some(p) = &peer.spec.bfd_profile {
                assert!(
                    profiles.contains(p),
                    "{}: BGPPeer {} names BFDProfile {p:?}",
                    dir.display(),
                    peer.name_any()
                );
            }
        }
    }
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let s = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap();
    serde_json::to_value(s).unwrap()
}

fn cel(crds: &BTreeMap<String, Value>, what: &str, obj: &Value) {
    let kind = obj["kind"].as_str().unwrap();
    let schema = crds
        .get(kind)
        .unwrap_or_else(|| panic!("{what}: no CRD for kind {kind}"));
    if let Err(errs) = Validator::new().validate(schema, obj, None) {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        panic!("{what} fails its CRD's rules: {msgs:?}");
    }
}

#[test]
fn every_ferrolb_object_passes_its_crd_rules() {
    let crds: BTreeMap<String, Value> = ferrolb_crds::crds()
        .iter()
        .map(|c| (c.spec.names.kind.clone(), schema_of(c)))
        .collect();
    let mut checked = 0;
    // As written (MetalLB's objects as they will be after renaming the group)...
    for (file, mut doc) in raw_documents() {
        let group = group_of(&doc).to_string();
        if group != ferrolb_crds::GROUP && group != ferrolb_crds::METALLB_GROUP {
            continue;
        }
        doc["apiVersion"] = Value::String(format!("{}/v1beta1", ferrolb_crds::GROUP));
        let what = format!(
            "{file}: {} {}",
            doc["kind"].as_str().unwrap_or("?"),
            doc["metadata"]["name"]
        );
        cel(&crds, &what, &doc);
        checked += 1;
    }
    // ...and as the programs read them, every default filled in.
    let mut typed = 0;
    for files in example_files().values() {
        let inputs = load_dir(files);
        let objects: Vec<Value> = [
            inputs
                .pools
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect::<Vec<_>>(),
            inputs
                .l2_advertisements
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
            inputs
                .bgp_advertisements
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
            inputs
                .bgp_peers
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
            inputs
                .communities
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
            inputs
                .bfd_profiles
                .iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
        ]
        .concat();
        for obj in objects {
            let what = format!(
                "{} {} (typed)",
                obj["kind"].as_str().unwrap_or("?"),
                obj["metadata"]["name"]
            );
            cel(&crds, &what, &obj);
            typed += 1;
        }
    }
    assert_eq!(
        checked, typed,
        "every FerroLB document is read by the controller"
    );
    // One of each kind at least.
    let kinds: std::collections::BTreeSet<String> = raw_documents()
        .into_iter()
        .filter(|(_, d)| group_of(d) == ferrolb_crds::GROUP)
        .map(|(_, d)| d["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    // ...except the status kinds, which the speakers write and nobody writes by hand.
    let written_by_speakers = [
        <ferrolb_crds::ServiceL2Status as kube::Resource>::kind(&()),
        <ferrolb_crds::ServiceBGPStatus as kube::Resource>::kind(&()),
    ];
    for kind in crds.keys() {
        if written_by_speakers.iter().any(|k| k == kind) {
            continue;
        }
        assert!(kinds.contains(kind), "no example of {kind}");
    }
}

#[test]
fn ferrolb_objects_live_in_ferrolb_system() {
    for (file, doc) in raw_documents() {
        if group_of(&doc) == ferrolb_crds::GROUP {
            assert_eq!(
                doc["metadata"]["namespace"].as_str(),
                Some("ferrolb-system"),
                "{file}: {} {}",
                doc["kind"],
                doc["metadata"]["name"]
            );
        }
    }
}

#[test]
fn every_service_is_a_well_formed_request() {
    for (dir, files) in example_files() {
        let inputs = load_dir(&files);
        let labels = inputs.namespace_labels();
        for svc in &inputs.services {
            let key = model::service_key(svc);
            assert!(
                model::is_handled(svc, None),
                "{}: {key} is not a LoadBalancer Service",
                dir.display()
            );
            let ns = labels.get(&key.namespace).cloned().unwrap_or_default();
            let request = model::service_request(svc, &ns)
                .unwrap_or_else(|e| panic!("{}: {key}: {e}", dir.display()))
                .unwrap_or_else(|| panic!("{}: {key} is headless", dir.display()));
            assert!(
                request.aliases.is_empty(),
                "{key} uses MetalLB annotation keys: use ferrolb.io/…"
            );
        }
    }
}

#[test]
fn only_documentation_addresses() {
    let allowed: Vec<AddrRange> = DOCUMENTATION
        .iter()
        .map(|r| AddrRange::parse(r).unwrap())
        .collect();
    let inside = |r: &AddrRange| {
        allowed
            .iter()
            .any(|a| a.contains(&r.first_ip()) && a.contains(&r.last_ip()))
    };
    let mut seen = 0;
    for files in example_files().values() {
        let inputs = load_dir(files);
        for pool in &inputs.pools {
            for entry in &pool.spec.addresses {
                let r = AddrRange::parse(entry).unwrap();
                assert!(
                    inside(&r),
                    "pool {}: {entry} is outside the documentation ranges",
                    pool.name_any()
                );
                seen += 1;
            }
        }
        for peer in &inputs.bgp_peers {
            let r = AddrRange::parse(&format!("{0}-{0}", peer.spec.peer_address)).unwrap();
            assert!(
                inside(&r),
                "BGPPeer {}: {} is not a documentation address",
                peer.name_any(),
                peer.spec.peer_address
            );
        }
        for svc in &inputs.services {
            let ann = svc.annotations();
            let requested = ann
                .get(ferrolb_crds::annotations::LOAD_BALANCER_IPS)
                .into_iter()
                .flat_map(|v| v.split(','));
            for ip in requested {
                let r = AddrRange::parse(&format!("{0}-{0}", ip.trim())).unwrap();
                assert!(
                    inside(&r),
                    "{}: {ip} is not a documentation address",
                    model::service_key(svc)
                );
            }
        }
    }
    assert!(seen > 0);
}

/// The examples show what the documentation promises they show.
#[test]
fn examples_cover_the_features() {
    let dir = examples_dir();
    let mut top = Inputs::default();
    for f in [
        "pools.yaml",
        "l2advertisement.yaml",
        "bgp.yaml",
        "services.yaml",
    ] {
        top.parse(&read(&dir.join(f)), f).unwrap();
    }
    let pool = |name: &str| {
        top.pools
            .iter()
            .find(|p| p.name_any() == name)
            .unwrap_or_else(|| panic!("no pool {name}"))
    };
    assert_eq!(
        pool("lan").spec.addresses,
        [
            "198.51.100.200-198.51.100.250",
            "2001:db8:51::200-2001:db8:51::250"
        ]
    );
    assert_eq!(
        pool("bgp").spec.addresses,
        ["203.0.113.0/24", "2001:db8:113::/120"]
    );
    assert!(!pool("reserved").spec.auto_assign);
    assert!(top.pools.iter().any(|p| {
        p.spec
            .service_allocation
            .as_ref()
            .is_some_and(|sa| sa.priority == Some(10) && sa.namespaces == ["shop"])
    }));
    let peer = top
        .bgp_peers
        .iter()
        .find(|p| p.spec.peer_asn == Some(64500))
        .expect("an eBGP peer");
    assert_eq!(
        (peer.spec.my_asn, peer.spec.peer_address.as_str()),
        (64512, "198.51.100.1")
    );
    assert!(
        top.bgp_advertisements
            .iter()
            .any(|a| !a.spec.communities.is_empty() && a.spec.local_pref.is_some())
    );
    assert!(
        !top.communities.is_empty()
            && !top.bfd_profiles.is_empty()
            && !top.l2_advertisements.is_empty()
    );

    let ann =
        |svc: &k8s_openapi::api::core::v1::Service, key: &str| svc.annotations().get(key).cloned();
    let svcs = &top.services;
    assert!(
        svcs.iter()
            .any(|s| s.spec.as_ref().unwrap().ip_family_policy.as_deref()
                == Some("RequireDualStack"))
    );
    assert!(
        svcs.iter()
            .any(|s| ann(s, "ferrolb.io/loadBalancerIPs").is_some())
    );
    assert!(
        svcs.iter()
            .any(|s| ann(s, "ferrolb.io/address-pool").as_deref() == Some("reserved"))
    );
    assert!(
        svcs.iter()
            .any(|s| s.namespace().as_deref() == Some("shop"))
    );
    let shared: Vec<_> = svcs
        .iter()
        .filter(|s| ann(s, "ferrolb.io/allow-shared-ip").is_some())
        .collect();
    assert!(shared.len() >= 2, "two Services sharing an address");

    let mut metallb = Inputs::default();
    let text = read(&dir.join("metallb-pool.yaml"));
    assert!(text.contains("apiVersion: metallb.io/v1beta1"));
    metallb.parse(&text, "metallb-pool.yaml").unwrap();
    assert_eq!(metallb.pools.len(), 1);
}
