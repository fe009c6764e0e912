//! The CEL rules in the CRD schemas, evaluated as the API server would, on objects that
//! must pass and objects that must be rejected (with the message a user would see).

use ferrolb_crds::{BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::core::cel::{Validator, compile_schema};
use serde_json::{Value, json};

fn schema(crd: &CustomResourceDefinition) -> Value {
    let s = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap();
    serde_json::to_value(s).unwrap()
}

fn check(crd: &CustomResourceDefinition, spec: Value) -> Result<(), Vec<String>> {
    let obj = json!({"apiVersion": "ferrolb.io/v1beta1", "kind": crd.spec.names.kind, "metadata": {"name": "x"}, "spec": spec});
    Validator::new()
        .validate(&schema(crd), &obj, None)
        .map_err(|errs| errs.iter().map(|e| e.message.clone()).collect())
}

fn rejects(crd: &CustomResourceDefinition, spec: Value, needle: &str) {
    match check(crd, spec.clone()) {
        Ok(()) => panic!("{spec} should be rejected ({needle})"),
        Err(msgs) => assert!(
            msgs.iter().any(|m| m.contains(needle)),
            "{spec}: {msgs:?} lacks {needle:?}"
        ),
    }
}

#[test]
fn every_rule_compiles() {
    for crd in ferrolb_crds::crds() {
        let compiled = compile_schema(&schema(&crd));
        fn walk(c: &kube::core::cel::CompiledSchema, name: &str) {
            assert!(
                c.compilation_errors().is_empty(),
                "{name}: {:?}",
                c.compilation_errors()
            );
            for p in c.properties.values() {
                walk(p, name);
            }
            if let Some(i) = &c.items {
                walk(i, name);
            }
        }
        walk(&compiled, &crd.spec.names.kind);
    }
}

#[test]
fn pool_addresses() {
    let crd = IPAddressPool::crd();
    for ok in [
        json!({"addresses": ["198.51.100.0/24", "2001:db8::/64"]}),
        json!({"addresses": ["198.51.100.10-198.51.100.20", " 203.0.113.1 - 203.0.113.9"]}),
        json!({"addresses": ["2001:db8::1-2001:db8::ff"]}),
        json!({"addresses": ["198.51.100.9-198.51.100.9"]}),
    ] {
        assert_eq!(check(&crd, ok.clone()), Ok(()), "{ok}");
    }
    rejects(&crd, json!({"addresses": ["198.51.100.0/33"]}), "CIDR");
    rejects(&crd, json!({"addresses": ["not-an-ip"]}), "CIDR");
    rejects(&crd, json!({"addresses": ["198.51.100.1"]}), "CIDR");
    rejects(
        &crd,
        json!({"addresses": ["198.51.100.1-2001:db8::1"]}),
        "one family",
    );
    rejects(
        &crd,
        json!({"addresses": ["198.51.100.20-198.51.100.10"]}),
        "must not start after",
    );
    rejects(
        &crd,
        json!({"addresses": ["198.51.101.1-198.51.100.200"]}),
        "must not start after",
    );
    rejects(
        &crd,
        json!({"addresses": ["198.51.100.0/24"], "serviceAllocation": {"namespaces": ["a", "a"]}}),
        "must not repeat",
    );
}

#[test]
fn peer_rules() {
    let crd = BGPPeer::crd();
    let base = || json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1"});
    assert_eq!(check(&crd, base()), Ok(()));
    let with = |k: &str, v: Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    assert_eq!(check(&crd, with("holdTime", json!("0s"))), Ok(()));
    assert_eq!(check(&crd, with("holdTime", json!("1m30s"))), Ok(()));
    rejects(
        &crd,
        with("holdTime", json!("2s")),
        "holdTime must be 0 or at least 3s",
    );
    rejects(
        &crd,
        with("holdTime", json!("soon")),
        "holdTime must be a duration",
    );
    let mut b = with("holdTime", json!("9s"));
    b["keepaliveTime"] = json!("10s");
    rejects(&crd, b, "keepaliveTime must not exceed holdTime");
    // Without holdTime the default 90s is the bound.
    assert_eq!(check(&crd, with("keepaliveTime", json!("90s"))), Ok(()));
    assert_eq!(check(&crd, with("keepaliveTime", json!("1m"))), Ok(()));
    rejects(
        &crd,
        with("keepaliveTime", json!("91s")),
        "keepaliveTime must not exceed holdTime (90s when unset)",
    );
    rejects(
        &crd,
        with("keepaliveTime", json!("2m")),
        "keepaliveTime must not exceed holdTime",
    );
    // holdTime 0 disables keepalives: only keepaliveTime 0 goes with it.
    let mut b = with("holdTime", json!("0s"));
    b["keepaliveTime"] = json!("0s");
    assert_eq!(check(&crd, b.clone()), Ok(()));
    b["keepaliveTime"] = json!("30s");
    rejects(&crd, b, "keepaliveTime must not exceed holdTime");
    rejects(
        &crd,
        with("connectTime", json!("0s")),
        "connectTime must be between",
    );
    rejects(
        &crd,
        with("dynamicASN", json!("external")),
        "exactly one of peerASN and dynamicASN",
    );
    let mut b = base();
    b.as_object_mut().unwrap().remove("peerASN");
    rejects(&crd, b.clone(), "exactly one of peerASN and dynamicASN");
    b["dynamicASN"] = json!("internal");
    assert_eq!(check(&crd, b.clone()), Ok(()));
    b["ebgpMultiHop"] = json!(true);
    rejects(&crd, b, "ebgpMultiHop cannot be set for an iBGP peer");
    rejects(
        &crd,
        with("peerASN", json!(64500)).tap_multihop(),
        "ebgpMultiHop cannot be set for an iBGP peer",
    );
    assert_eq!(check(&crd, with("ebgpMultiHop", json!(true))), Ok(()));
    let mut b = with("password", json!("s3cret"));
    b["passwordSecret"] = json!({"name": "bgp-md5"});
    rejects(&crd, b, "mutually exclusive");
    rejects(
        &crd,
        with("peerAddress", json!("router1")),
        "peerAddress must be an IP",
    );
    rejects(
        &crd,
        with("routerID", json!("2001:db8::1")),
        "routerID must be an IPv4",
    );
    rejects(
        &crd,
        with("sourceAddress", json!("eth0")),
        "sourceAddress must be an IP",
    );
}

trait TapMultihop {
    fn tap_multihop(self) -> Self;
}
impl TapMultihop for Value {
    fn tap_multihop(mut self) -> Self {
        self["ebgpMultiHop"] = json!(true);
        self
    }
}

#[test]
fn graceful_restart_is_immutable() {
    let crd = BGPPeer::crd();
    let obj = |gr: bool| {
        json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "x"},
               "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1", "enableGracefulRestart": gr}})
    };
    let v = Validator::new();
    assert!(
        v.validate(&schema(&crd), &obj(true), Some(&obj(true)))
            .is_ok()
    );
    let errs = v
        .validate(&schema(&crd), &obj(true), Some(&obj(false)))
        .unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("cannot be changed")),
        "{errs:?}"
    );
}

#[test]
fn advertisement_rules() {
    let crd = BGPAdvertisement::crd();
    assert_eq!(
        check(
            &crd,
            json!({"communities": ["65000:100", "large:64500:1:2", "no-export"]})
        ),
        Ok(())
    );
    rejects(&crd, json!({"communities": ["65536:1"]}), "a community is");
    rejects(
        &crd,
        json!({"communities": ["large:1:2"]}),
        "a community is",
    );
    rejects(
        &crd,
        json!({"communities": ["65000:1", "65000:1"]}),
        "must not repeat",
    );
    rejects(
        &crd,
        json!({"aggregationLength": 24, "serviceSelectors": [{"matchLabels": {"a": "b"}}]}),
        "serviceSelectors can only",
    );
    assert_eq!(
        check(
            &crd,
            json!({"aggregationLength": 32, "serviceSelectors": [{"matchLabels": {"a": "b"}}]})
        ),
        Ok(())
    );
    let l2 = L2Advertisement::crd();
    rejects(
        &l2,
        json!({"interfaces": ["eth0", "eth0"]}),
        "must not repeat",
    );
    let c = Community::crd();
    assert_eq!(
        check(
            &c,
            json!({"communities": [{"name": "no-export", "value": "65535:65281"}]})
        ),
        Ok(())
    );
    rejects(
        &c,
        json!({"communities": [{"name": "a", "value": "1:2"}, {"name": "a", "value": "1:3"}]}),
        "must not repeat",
    );
    rejects(
        &c,
        json!({"communities": [{"name": "a", "value": "1:70000"}]}),
        "a community value is",
    );
}

/// The API server refuses a CRD whose rules may cost too much to evaluate; every list
/// and string a rule walks must be bounded.
#[test]
fn rules_fit_the_api_servers_cost_budget() {
    fn walk(schema: &Value, kind: &str, checked: &mut usize) {
        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let compiled = compile_schema(schema);
            for r in rules {
                let rule = r["rule"].as_str().unwrap();
                let warnings = kube::core::cel::estimate_rule_cost(rule, &compiled);
                assert!(
                    warnings.is_empty(),
                    "{kind}: {rule}: {:?}",
                    warnings.iter().map(|w| &w.message).collect::<Vec<_>>()
                );
                *checked += 1;
            }
        }
        for key in ["properties"] {
            if let Some(props) = schema.get(key).and_then(Value::as_object) {
                for v in props.values() {
                    walk(v, kind, checked);
                }
            }
        }
        if let Some(items) = schema.get("items") {
            walk(items, kind, checked);
        }
    }
    let mut checked = 0;
    for crd in ferrolb_crds::crds() {
        walk(&schema(&crd), &crd.spec.names.kind, &mut checked);
    }
    assert!(checked >= 20, "only {checked} rules found");
}

#[test]
fn status_objects_keep_their_identity() {
    use ferrolb_crds::{ServiceBGPStatus, ServiceL2Status};
    for crd in [ServiceL2Status::crd(), ServiceBGPStatus::crd()] {
        let obj = |node: &str, name: &str| {
            json!({"apiVersion": "ferrolb.io/v1beta1", "kind": crd.spec.names.kind, "metadata": {"name": "x"},
                   "spec": {}, "status": {"node": node, "serviceName": name, "serviceNamespace": "ns"}})
        };
        let v = Validator::new();
        let old = obj("n1", "web");
        assert!(
            v.validate(&schema(&crd), &obj("n1", "web"), Some(&old))
                .is_ok()
        );
        assert!(v.validate(&schema(&crd), &obj("n1", "web"), None).is_ok());
        for (new, needle) in [
            (obj("n2", "web"), "node is immutable"),
            (obj("n1", "db"), "serviceName is immutable"),
        ] {
            let errs = v.validate(&schema(&crd), &new, Some(&old)).unwrap_err();
            assert!(
                errs.iter().any(|e| e.message.contains(needle)),
                "{errs:?} lacks {needle:?}"
            );
        }
    }
}
